// Loop statistics: lateness and compute-time histograms the real-time thread fills and any other
// thread reads while it runs.
//
// record() is wait-free and allocation-free (relaxed atomic increments on fixed bins); readers
// compute percentiles from a consistent-enough view (counts are monotonic, so a percentile read
// during a run is at worst one sample stale). Resolution: 1 µs below 2 ms, 50 µs up to 100 ms,
// then one overflow bin; the exact maximum is tracked separately.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace vertebra {

class LatencyHistogram {
 public:
  static constexpr int kFineBins = 2000;    // [0, 2000) µs at 1 µs
  static constexpr int kCoarseBins = 1960;  // [2000, 100000) µs at 50 µs
  static constexpr int kBins = kFineBins + kCoarseBins + 1;

  void record_ns(int64_t ns);  // negative values count as 0
  void reset();

  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double max_us() const { return static_cast<double>(max_ns_.load(std::memory_order_relaxed)) / 1e3; }
  double mean_us() const;
  // q in [0, 1]; returns the upper edge of the bin holding that quantile, in µs (0 when empty).
  double percentile_us(double q) const;

 private:
  static int bin_of(int64_t ns);
  static double bin_upper_us(int bin);
  std::array<std::atomic<uint64_t>, kBins> bins_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<int64_t> max_ns_{0};
  std::atomic<int64_t> sum_ns_{0};
};

}  // namespace vertebra
