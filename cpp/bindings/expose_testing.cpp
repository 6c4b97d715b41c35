// vertebra._rt bindings: vertebra._rt.testing, hooks for tests only (never used by the runtime).
#include "bindings/common.hpp"

#include <atomic>
#include <chrono>
#include <thread>
#include "core/exchange.hpp"
#include "loop/loop_stats.hpp"
#include "wbc/qp_solver.hpp"

namespace vertebra::bindings {

namespace {
// Test support: hammer a buffer from a writer thread while reading on this one; every value
// written has all fields equal, so a reader seeing two different fields saw a torn value. The
// writer runs until the reader has seen `min_distinct` different values (however the OS schedules
// the two threads) or `max_seconds` passed.
template <class Buffer, class Write, class Read>
py::dict stress(uint64_t min_distinct, double max_seconds, Write write, Read read) {
  Buffer buf;
  std::atomic<bool> done{false}, enough{false};
  uint64_t torn = 0, reads = 0, changes = 0, last = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(max_seconds);
  {
    py::gil_scoped_release release;
    std::thread writer([&] {
      Targets t{};
      t.n = kMaxJoints;
      for (uint64_t k = 1; !enough.load(std::memory_order_relaxed) && std::chrono::steady_clock::now() < deadline; ++k) {
        t.seq = k;
        for (int i = 0; i < kMaxJoints; ++i) t.q[i] = t.dq[i] = t.kp[i] = t.kd[i] = t.tau_ff[i] = static_cast<double>(k);
        write(buf, t);
      }
      done.store(true);
    });
    Targets r{};
    while (!done.load() || reads == 0) {
      if (!read(buf, r)) continue;
      ++reads;
      if (r.seq == 0) continue;
      const double v = static_cast<double>(r.seq);
      for (int i = 0; i < kMaxJoints; ++i)
        if (r.q[i] != v || r.dq[i] != v || r.kp[i] != v || r.kd[i] != v || r.tau_ff[i] != v) { ++torn; break; }
      if (r.seq < last) ++torn;  // going back in time is as bad as tearing
      if (r.seq != last) ++changes;
      last = r.seq;
      if (changes >= min_distinct) enough.store(true, std::memory_order_relaxed);
    }
    writer.join();
  }
  py::dict d;
  d["torn"] = torn;
  d["reads"] = reads;
  d["distinct_values_seen"] = changes;
  return d;
}
}  // namespace

void expose_testing(py::module_& m) {
  py::module_ t = m.def_submodule("testing", "hooks for tests only: lock-free buffer stress, the loop's histogram, the solver's iteration split");
  py::class_<LatencyHistogram>(t, "LatencyHistogram", "the loop's histogram, exposed for tests")
      .def(py::init<>())
      .def("record_ns", &LatencyHistogram::record_ns)
      .def("record_many_ns", [](LatencyHistogram& h, const std::vector<int64_t>& v) { for (auto x : v) h.record_ns(x); })
      .def("percentile_us", &LatencyHistogram::percentile_us)
      .def_property_readonly("count", &LatencyHistogram::count)
      .def_property_readonly("max_us", &LatencyHistogram::max_us)
      .def_property_readonly("mean_us", &LatencyHistogram::mean_us)
      .def("reset", &LatencyHistogram::reset);

  t.def("solve_cap", [](int iterations, int max_outer, int max_inner) {
    const SolveCap c = solve_cap(iterations, max_outer, max_inner);
    return py::make_tuple(c.outer, c.inner);
  }, py::arg("iterations"), py::arg("max_outer"), py::arg("max_inner"),
  "the whole-body solver's split of an iteration share into (outer, inner) caps");
  t.def("stress_triple_buffer", [](uint64_t min_distinct, double max_seconds) {
    return stress<TripleBuffer<Targets>>(min_distinct, max_seconds,
                                         [](TripleBuffer<Targets>& b, const Targets& v) { b.write(v); },
                                         [](TripleBuffer<Targets>& b, Targets& out) { return b.read(out); });
  }, py::arg("min_distinct"), py::arg("max_seconds") = 20.0);
  t.def("stress_seqlock", [](uint64_t min_distinct, double max_seconds) {
    return stress<SeqLock<Targets>>(min_distinct, max_seconds,
                                    [](SeqLock<Targets>& b, const Targets& v) { b.store(v); },
                                    [](SeqLock<Targets>& b, Targets& out) { b.load(out); return true; });
  }, py::arg("min_distinct"), py::arg("max_seconds") = 20.0);
}

}  // namespace vertebra::bindings
