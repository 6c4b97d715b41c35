#include "core/chunk_scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace vertebra {

ChunkScheduler::ChunkScheduler(const ChunkSchedulerConfig& cfg) : cfg_(cfg) {
  if (cfg.dim < 1 || cfg.dim > kMaxActionDim)
    throw std::invalid_argument("ChunkScheduler: dim must be in [1, " + std::to_string(kMaxActionDim) + "], found " +
                                std::to_string(cfg.dim));
  if (!(cfg.prefix_s >= 0) || !(cfg.blend_s >= 0) || !(cfg.ensemble_decay >= 0) || !std::isfinite(cfg.prefix_s) ||
      !std::isfinite(cfg.blend_s) || !std::isfinite(cfg.ensemble_decay))
    throw std::invalid_argument("ChunkScheduler: prefix_s, blend_s and ensemble_decay must be finite and >= 0");
}

bool ChunkScheduler::valid(const ActionChunk& c) const {
  if (c.dim != cfg_.dim || c.steps < 1 || c.steps > kMaxChunkSteps || c.dt_ns <= 0) return false;
  for (int i = 0; i < c.steps * c.dim; ++i)
    if (!std::isfinite(c.a[i])) return false;
  return true;
}

uint64_t ChunkScheduler::push(const ActionChunk& c) {
  if (c.dim != cfg_.dim || c.steps < 1 || c.steps > kMaxChunkSteps || c.dt_ns <= 0) return 0;
  std::lock_guard<std::mutex> lock(push_mutex_);
  ActionChunk copy = c;
  copy.seq = pushed_.fetch_add(1, std::memory_order_relaxed) + 1;
  in_.write(copy);
  return copy.seq;
}

void ChunkScheduler::reset() {
  n_ring_ = 0;
  newest_ = active_ = next_ = pending_ = -1;
  st_.has_output = false;
  st_.starved = false;
  st_.blend = 1.0;
}

void ChunkScheduler::eval(const ActionChunk& c, int64_t t, double* out) {
  const double u = static_cast<double>(t - c.t0_ns) / static_cast<double>(c.dt_ns);
  if (u <= 0.0) {
    for (int j = 0; j < c.dim; ++j) out[j] = c.at(0, j);
    return;
  }
  const int k = static_cast<int>(u);
  if (k >= c.steps - 1) {
    for (int j = 0; j < c.dim; ++j) out[j] = c.at(c.steps - 1, j);
    return;
  }
  const double w = u - k;
  for (int j = 0; j < c.dim; ++j) out[j] = (1.0 - w) * c.at(k, j) + w * c.at(k + 1, j);
}

void ChunkScheduler::take_new() {
  if (!in_.read(scratch_) || scratch_.seq <= taken_seq_) return;
  st_.chunks_dropped += scratch_.seq - taken_seq_ - 1;
  taken_seq_ = scratch_.seq;
  if (!valid(scratch_)) {
    ++st_.chunks_rejected;
    return;
  }
  ++st_.chunks_received;
  st_.last_seq = scratch_.seq;
  // Slot for the new chunk: the oldest in the ring (never the one being executed or blended to).
  int slot = -1;
  if (n_ring_ < kMaxEnsemble) {
    slot = n_ring_++;
  } else {
    int64_t oldest = INT64_MAX;
    for (int i = 0; i < n_ring_; ++i)
      if (i != active_ && i != next_ && i != pending_ && ring_[i].seq < static_cast<uint64_t>(oldest)) {
        oldest = static_cast<int64_t>(ring_[i].seq);
        slot = i;
      }
  }
  ring_[slot] = scratch_;
  newest_ = slot;
  if (cfg_.mode == MergeMode::kKeepPrefix) {
    if (active_ < 0) {
      active_ = slot;  // the first chunk: no prefix to keep
    } else if (next_ < 0) {
      next_ = slot;
      switch_ns_ = ring_[slot].t0_ns + static_cast<int64_t>(cfg_.prefix_s * 1e9);
    } else {
      pending_ = slot;  // a cross-fade is in progress: this one follows it (a newer one replaces it)
    }
  }
}

Status ChunkScheduler::sample(int64_t now, double* out) {
  take_new();
  const int dim = cfg_.dim;
  bool have = false;
  if (cfg_.mode == MergeMode::kKeepPrefix) {
    st_.blend = 1.0;
    if (next_ >= 0) {
      const ActionChunk& nc = ring_[next_];
      const bool old_alive = active_ >= 0 && covers(ring_[active_], now);
      const double blend_ns = cfg_.blend_s * 1e9;
      double w = now <= switch_ns_ ? 0.0 : (blend_ns > 0 ? (now - switch_ns_) / blend_ns : 1.0);
      if (!old_alive) w = 1.0;
      if (w >= 1.0) {  // the cross-fade is over: the new chunk is the one executing
        active_ = next_;
        next_ = pending_;
        pending_ = -1;
        if (next_ >= 0)
          switch_ns_ = std::max(now, ring_[next_].t0_ns + static_cast<int64_t>(cfg_.prefix_s * 1e9));
      } else if (covers(nc, now) || old_alive) {
        eval(ring_[active_], now, tmp_.data());
        eval(nc, now, out);
        for (int j = 0; j < dim; ++j) out[j] = (1.0 - w) * tmp_[j] + w * out[j];
        st_.blend = w;
        have = true;
      }
    }
    if (!have && active_ >= 0 && covers(ring_[active_], now)) {
      eval(ring_[active_], now, out);
      have = true;
    }
  } else {
    double wsum = 0.0;
    for (int j = 0; j < dim; ++j) tmp_[j] = 0.0;
    // Oldest first: rank chunks covering now by seq.
    int rank = 0;
    uint64_t prev = 0;
    for (int r = 0; r < n_ring_; ++r) {
      int best = -1;
      for (int i = 0; i < n_ring_; ++i)
        if (ring_[i].seq > prev && covers(ring_[i], now) && (best < 0 || ring_[i].seq < ring_[best].seq)) best = i;
      if (best < 0) break;
      prev = ring_[best].seq;
      const double w = std::exp(-cfg_.ensemble_decay * rank++);
      eval(ring_[best], now, out);
      for (int j = 0; j < dim; ++j) tmp_[j] += w * out[j];
      wsum += w;
    }
    if (wsum > 0) {
      for (int j = 0; j < dim; ++j) out[j] = tmp_[j] / wsum;
      have = true;
    }
  }
  if (have) {
    for (int j = 0; j < dim; ++j) last_[j] = out[j];
    st_.has_output = true;
    st_.starved = false;
    return Status::kOk;
  }
  st_.starved = true;
  ++st_.starved_ticks;
  if (st_.has_output)
    for (int j = 0; j < dim; ++j) out[j] = last_[j];
  return Status::kNoNewData;
}

}  // namespace vertebra
