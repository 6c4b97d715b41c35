// ChunkScheduler: turns time-stamped action chunks from a policy into one target per tick.
//
// A chunk is `steps` actions of `dim` values, action k meant for time t0 + k·dt (driver clock).
// Each tick, sample(now) interpolates linearly between the two actions around `now`.
//
// Merging a new chunk without a jump (configurable):
//  - kKeepPrefix (real-time chunking): the chunk being executed keeps control until the new one's
//    start plus `prefix_s` (the part already committed to), then control cross-fades from old to
//    new over `blend_s` (a chunk arriving during a cross-fade waits for it to finish; a newer one
//    replaces it). During the cross-fade the output moves by at most
//    |old(t) - new(t)| · tick/blend_s per tick more than the chunks themselves move.
//  - kTemporalEnsemble (ACT): every chunk still covering `now` contributes, weighted by
//    exp(-decay · i), where i = 0 is the oldest; a new chunk enters with the smallest weight.
// Starvation: when no chunk covers `now`, sample() holds the last output, counts the tick and
// reports kNoNewData.
//
// Threads: push() from any thread (a triple buffer, latest wins: a chunk superseded before the tick
// took it is counted as dropped); sample() on the tick [tick]: no allocation, no exceptions.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>

#include "core/exchange.hpp"
#include "core/types.hpp"

namespace vertebra {

inline constexpr int kMaxChunkSteps = 64;
inline constexpr int kMaxActionDim = 48;
inline constexpr int kMaxEnsemble = 8;

struct ActionChunk {
  uint64_t seq = 0;    // assigned by push()
  int64_t t0_ns = 0;   // time of action 0 (driver clock)
  int64_t dt_ns = 0;   // spacing of the actions
  int32_t steps = 0;
  int32_t dim = 0;
  std::array<double, kMaxChunkSteps * kMaxActionDim> a{};
  double at(int k, int j) const { return a[static_cast<size_t>(k) * dim + j]; }
  int64_t end_ns() const { return t0_ns + static_cast<int64_t>(steps - 1) * dt_ns; }
};

enum class MergeMode : int32_t { kKeepPrefix = 0, kTemporalEnsemble = 1 };

struct ChunkSchedulerConfig {
  int32_t dim = 0;
  MergeMode mode = MergeMode::kKeepPrefix;
  double prefix_s = 0.0;      // kKeepPrefix: the old chunk keeps control this long into the new one
  double blend_s = 0.1;       // kKeepPrefix: cross-fade duration
  double ensemble_decay = 0.1;  // kTemporalEnsemble: weight exp(-decay * i), i = 0 oldest
};

struct SchedulerStatus {
  uint64_t chunks_received = 0;   // chunks the tick took
  uint64_t chunks_dropped = 0;    // superseded before the tick took them
  uint64_t chunks_rejected = 0;   // wrong dim/steps/dt or non-finite
  uint64_t last_seq = 0;          // newest chunk taken
  uint64_t starved_ticks = 0;     // ticks with no chunk covering now (held the last output)
  bool starved = false;
  bool has_output = false;
  double blend = 1.0;             // kKeepPrefix: weight of the newest chunk (1 outside a cross-fade)
};

class ChunkScheduler {
 public:
  explicit ChunkScheduler(const ChunkSchedulerConfig& cfg);  // throws on a bad config
  const ChunkSchedulerConfig& config() const { return cfg_; }

  // Any thread. Returns the seq given to the chunk (0: refused here: wrong dim or size).
  uint64_t push(const ActionChunk& c);

  // [tick] The target for `now_ns` into out[0..dim). kOk, or kNoNewData when starved (out holds
  // the last output; before any output: untouched).
  Status sample(int64_t now_ns, double* out);
  const SchedulerStatus& status() const { return st_; }
  void reset();  // [tick-safe] forget every chunk (a policy swap or a new episode)

 private:
  bool valid(const ActionChunk& c) const;
  static bool covers(const ActionChunk& c, int64_t t) { return c.steps > 0 && t <= c.end_ns(); }
  static void eval(const ActionChunk& c, int64_t t, double* out);
  void take_new();

  ChunkSchedulerConfig cfg_;
  TripleBuffer<ActionChunk> in_;
  std::mutex push_mutex_;           // serialises writers (never taken on the tick)
  std::atomic<uint64_t> pushed_{0};
  uint64_t taken_seq_ = 0;
  // kKeepPrefix: current (old) and next (new) chunk; kTemporalEnsemble: a ring of recent chunks.
  std::array<ActionChunk, kMaxEnsemble> ring_{};
  int n_ring_ = 0;
  int newest_ = -1;
  int64_t switch_ns_ = 0;           // kKeepPrefix: when the cross-fade to ring_[newest_] starts
  int active_ = -1, next_ = -1, pending_ = -1;  // kKeepPrefix: executing, blending to, queued
  ActionChunk scratch_{};
  std::array<double, kMaxActionDim> tmp_{}, last_{};
  SchedulerStatus st_{};
};

}  // namespace vertebra
