#include "loop/loop_stats.hpp"

#include <algorithm>

namespace vertebra {

int LatencyHistogram::bin_of(int64_t ns) {
  const int64_t us = ns / 1000;
  if (us < kFineBins) return static_cast<int>(us);
  const int64_t coarse = (us - kFineBins) / 50;
  if (coarse < kCoarseBins) return kFineBins + static_cast<int>(coarse);
  return kBins - 1;
}

double LatencyHistogram::bin_upper_us(int bin) {
  if (bin < kFineBins) return bin + 1.0;
  if (bin < kFineBins + kCoarseBins) return kFineBins + (bin - kFineBins + 1) * 50.0;
  return 1e300;  // overflow: callers substitute the tracked maximum
}

void LatencyHistogram::record_ns(int64_t ns) {
  if (ns < 0) ns = 0;
  bins_[bin_of(ns)].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(ns, std::memory_order_relaxed);
  int64_t prev = max_ns_.load(std::memory_order_relaxed);
  while (ns > prev && !max_ns_.compare_exchange_weak(prev, ns, std::memory_order_relaxed)) {
  }
}

void LatencyHistogram::reset() {
  for (auto& b : bins_) b.store(0, std::memory_order_relaxed);
  count_.store(0, std::memory_order_relaxed);
  max_ns_.store(0, std::memory_order_relaxed);
  sum_ns_.store(0, std::memory_order_relaxed);
}

double LatencyHistogram::mean_us() const {
  const uint64_t n = count();
  return n ? static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e3 / n : 0.0;
}

double LatencyHistogram::percentile_us(double q) const {
  uint64_t total = 0;
  for (const auto& b : bins_) total += b.load(std::memory_order_relaxed);
  if (total == 0) return 0.0;
  q = std::clamp(q, 0.0, 1.0);
  // rank of the sample that holds quantile q (1-based, nearest-rank definition)
  uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total) + 0.999999);
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i < kBins; ++i) {
    seen += bins_[i].load(std::memory_order_relaxed);
    if (seen >= rank) return std::min(bin_upper_us(i), max_us());
  }
  return max_us();
}

}  // namespace vertebra
