// vertebra._rt bindings: vertebra._rt.testing, hooks for tests only (never used by the runtime).
#include "bindings/common.hpp"

#include <atomic>
#include <chrono>
#include <thread>
#include "core/exchange.hpp"
#include "loop/loop_stats.hpp"
#include "wbc/qp_solver.hpp"
#if VERTEBRA_WITH_DDS
#include "drivers/unitree/unitree_codec.hpp"
#include "drivers/unitree/unitree_crc.hpp"
#include "unitree_api.h"
#include "drivers/unitree/dds_bench.hpp"
#endif

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

#if VERTEBRA_WITH_DDS
namespace {
namespace uni = vertebra::unitree;

uni::MotorMap motor_map(const std::vector<int>& motors) {
  if (motors.size() > static_cast<size_t>(kMaxJoints)) throw std::invalid_argument("motors: too many joints");
  uni::MotorMap map;
  map.n = static_cast<int>(motors.size());
  for (size_t j = 0; j < motors.size(); ++j) map.motor[j] = motors[j];
  return map;
}

template <class Msg>
Msg from_bytes(const py::bytes& data, const char* what) {
  const std::string b = data;
  if (b.size() != sizeof(Msg))
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(b.size()) + " bytes, the message has " +
                                std::to_string(sizeof(Msg)));
  Msg m;
  std::memcpy(&m, b.data(), sizeof(Msg));
  return m;
}

template <class Msg>
py::bytes to_bytes(const Msg& m) {
  return py::bytes(reinterpret_cast<const char*>(&m), sizeof(Msg));
}

py::dict state_dict(const State& s, int n) {
  py::dict d;
  d["q"] = std::vector<double>(s.q.begin(), s.q.begin() + n);
  d["dq"] = std::vector<double>(s.dq.begin(), s.dq.begin() + n);
  d["tau"] = std::vector<double>(s.tau.begin(), s.tau.begin() + n);
  d["imu_quat"] = std::vector<double>(s.imu_quat.begin(), s.imu_quat.end());
  d["imu_gyro"] = std::vector<double>(s.imu_gyro.begin(), s.imu_gyro.end());
  d["imu_acc"] = std::vector<double>(s.imu_acc.begin(), s.imu_acc.end());
  d["motor_temp_c"] = std::vector<double>(s.motor_temp_c.begin(), s.motor_temp_c.begin() + n);
  d["motor_error"] = std::vector<uint32_t>(s.motor_error.begin(), s.motor_error.begin() + n);
  d["has_battery"] = s.has_battery;
  d["battery_v"] = s.battery_v;
  return d;
}

void expose_unitree(py::module_& t) {
  t.def("unitree_crc32", [](const py::bytes& data) {
    const std::string b = data;
    if (b.size() % 4) throw std::invalid_argument("unitree_crc32: a whole number of 32-bit words");
    std::vector<uint32_t> w(b.size() / 4);
    std::memcpy(w.data(), b.data(), b.size());
    return uni::crc32_words(w.data(), w.size());
  }, py::arg("words"), "the Unitree CRC of little-endian 32-bit words (all of them)");
  t.def("unitree_message_sizes", []() {
    py::dict d;
    d["hg.LowCmd_"] = sizeof(uni::HgLowCmd);
    d["hg.LowState_"] = sizeof(uni::HgLowState);
    d["go.LowCmd_"] = sizeof(uni::GoLowCmd);
    d["go.LowState_"] = sizeof(uni::GoLowState);
    return d;
  });
  t.def("unitree_type_names", []() {
    py::dict d;
    d["hg.LowCmd_"] = unitree_hg_msg_dds__LowCmd__desc.m_typename;
    d["hg.LowState_"] = unitree_hg_msg_dds__LowState__desc.m_typename;
    d["go.LowCmd_"] = unitree_go_msg_dds__LowCmd__desc.m_typename;
    d["go.LowState_"] = unitree_go_msg_dds__LowState__desc.m_typename;
    d["go.WirelessController_"] = unitree_go_msg_dds__WirelessController__desc.m_typename;
    return d;
  });
  t.def("unitree_encode_lowcmd", [](const std::string& messages, const std::vector<int>& motors,
                                    const std::vector<double>& q, const std::vector<double>& dq,
                                    const std::vector<double>& kp, const std::vector<double>& kd,
                                    const std::vector<double>& tau, int mode_pr, int mode_machine) {
    const uni::MotorMap map = motor_map(motors);
    Command c;
    c.n = map.n;
    for (const auto* v : {&q, &dq, &kp, &kd, &tau})
      if (v->size() != motors.size()) throw std::invalid_argument("unitree_encode_lowcmd: one value per motor");
    for (int j = 0; j < map.n; ++j) {
      c.q[j] = q[j];
      c.dq[j] = dq[j];
      c.kp[j] = kp[j];
      c.kd[j] = kd[j];
      c.tau_ff[j] = tau[j];
    }
    if (messages == "hg") {
      uni::HgLowCmd m;
      std::memset(&m, 0xAB, sizeof(m));  // stale bytes: encode must clear the padding
      uni::encode_lowcmd(map, c, static_cast<uint8_t>(mode_pr), static_cast<uint8_t>(mode_machine), m);
      return to_bytes(m);
    }
    if (messages == "go") {
      uni::GoLowCmd m;
      std::memset(&m, 0xAB, sizeof(m));
      uni::encode_lowcmd(map, c, m);
      return to_bytes(m);
    }
    throw std::invalid_argument("messages: found '" + messages + "'; valid: hg (G1), go (Go2)");
  }, py::arg("messages"), py::arg("motors"), py::arg("q"), py::arg("dq"), py::arg("kp"), py::arg("kd"),
     py::arg("tau"), py::arg("mode_pr") = 0, py::arg("mode_machine") = 0);
  t.def("unitree_decode_lowstate", [](const std::string& messages, const py::bytes& data,
                                      const std::vector<int>& motors) {
    const uni::MotorMap map = motor_map(motors);
    State s;
    py::dict d;
    if (messages == "hg") {
      const auto m = from_bytes<uni::HgLowState>(data, "hg LowState_");
      uni::decode_lowstate(map, m, s);
      d = state_dict(s, map.n);
      d["crc_ok"] = uni::crc_ok(m);
      d["mode_machine"] = m.mode_machine;
    } else if (messages == "go") {
      const auto m = from_bytes<uni::GoLowState>(data, "go LowState_");
      std::array<double, 4> ff{};
      uni::decode_lowstate(map, m, s, ff);
      d = state_dict(s, map.n);
      d["crc_ok"] = uni::crc_ok(m);
      d["foot_force"] = std::vector<double>(ff.begin(), ff.end());
    } else {
      throw std::invalid_argument("messages: found '" + messages + "'; valid: hg (G1), go (Go2)");
    }
    return d;
  }, py::arg("messages"), py::arg("data"), py::arg("motors"));
  t.def("unitree_decode_remote", [](const py::bytes& data) {
    const std::string b = data;
    if (b.size() != 40) throw std::invalid_argument("wireless_remote: 40 bytes");
    return remote_dict(uni::decode_remote(reinterpret_cast<const uint8_t*>(b.data())));
  }, py::arg("wireless_remote"));
}
}  // namespace
#endif

#if VERTEBRA_WITH_DDS
namespace {
// `vertebra bench dds` (runtime/benchmarks/dds.py): the driver's exchange timed in C++
// (cpp/drivers/unitree/dds_bench.hpp), one command held for every iteration.
Command bench_command(const std::vector<double>& q, const std::vector<double>& kp, const std::vector<double>& kd) {
  if (q.empty() || q.size() > static_cast<size_t>(kMaxJoints) || kp.size() != q.size() || kd.size() != q.size())
    throw std::invalid_argument("bench command: found " + std::to_string(q.size()) + " q, " + std::to_string(kp.size()) +
                                " kp, " + std::to_string(kd.size()) + " kd; valid: one of each per joint (1 to " +
                                std::to_string(kMaxJoints) + ")");
  Command c{};
  c.n = static_cast<int32_t>(q.size());
  for (size_t j = 0; j < q.size(); ++j) {
    c.q[j] = q[j];
    c.kp[j] = kp[j];
    c.kd[j] = kd[j];
  }
  return c;
}

py::dict times_dict(const uni::ExchangeTimes& t) {
  py::dict d;
  d["ns"] = t.ns;
  d["read_ns"] = t.read_ns;
  d["write_ns"] = t.write_ns;
  d["stale"] = t.stale;
  d["errors"] = t.errors;
  return d;
}

void expose_dds_bench(py::module_& t) {
  t.def("dds_round_trips", [](Driver& driver, const std::vector<double>& q, const std::vector<double>& kp,
                              const std::vector<double>& kd, int iterations, int warmup) {
    const Command c = bench_command(q, kp, kd);
    uni::ExchangeTimes r;
    {
      py::gil_scoped_release release;
      r = uni::time_round_trips(driver, c, iterations, warmup);
    }
    return times_dict(r);
  }, py::arg("driver"), py::arg("q"), py::arg("kp"), py::arg("kd"), py::arg("iterations"), py::arg("warmup") = 20,
  "lockstep: per iteration driver.write(cmd) then driver.read() (waits for the bridge's answer), timed in C++; "
  "returns {ns, read_ns, write_ns: [per iteration], stale, errors}");
  t.def("dds_tick_cost", [](Driver& driver, const std::vector<double>& q, const std::vector<double>& kp,
                            const std::vector<double>& kd, int ticks, double rate_hz, int warmup, int fifo_priority) {
    if (!(rate_hz > 0) || rate_hz > 10000)
      throw std::invalid_argument("dds_tick_cost: rate_hz " + std::to_string(rate_hz) + "; valid: 0 < rate_hz <= 10000");
    const Command c = bench_command(q, kp, kd);
    uni::ExchangeTimes r;
    {
      py::gil_scoped_release release;
      r = uni::time_tick_cost(driver, c, ticks, static_cast<int64_t>(1e9 / rate_hz), warmup, fifo_priority);
    }
    py::dict d = times_dict(r);
    d["sched_fifo"] = r.sched_fifo;
    return d;
  }, py::arg("driver"), py::arg("q"), py::arg("kp"), py::arg("kd"), py::arg("ticks"), py::arg("rate_hz"),
  py::arg("warmup") = 50, py::arg("fifo_priority") = 80,
  "real time: per tick driver.read() + driver.write(cmd) timed together in C++, ticks paced at rate_hz on a "
  "thread set up as the loop's (SCHED_FIFO at fifo_priority where permitted; 0: not asked); "
  "returns {ns, read_ns, write_ns: [per tick], stale, errors, sched_fifo}");
  py::class_<uni::LowCmdEcho, std::shared_ptr<uni::LowCmdEcho>>(t, "LowCmdEcho",
      "a robot that answers each valid LowCmd_ at once with one LowState_, no simulation "
      "(cpp/drivers/unitree/dds_bench.hpp)")
      .def(py::init([](const std::string& messages, int domain_id, const std::string& network_interface,
                       const std::vector<int>& motors, int mode_machine) {
        if (messages != "hg" && messages != "go")
          throw std::invalid_argument("messages: found '" + messages + "'; valid: hg (G1), go (Go2)");
        return std::make_shared<uni::LowCmdEcho>(messages == "hg" ? uni::Messages::kHg : uni::Messages::kGo, domain_id,
                                                 network_interface, motors, mode_machine);
      }), py::arg("messages"), py::arg("domain_id"), py::arg("network_interface"), py::arg("motors"),
      py::arg("mode_machine") = 0)
      .def("stop", &uni::LowCmdEcho::stop, py::call_guard<py::gil_scoped_release>())
      .def("counters", [](const uni::LowCmdEcho& e) {
        const uni::EchoCounters c = e.counters();
        py::dict d;
        d["commands"] = c.commands;
        d["crc_errors"] = c.crc_errors;
        d["states"] = c.states;
        return d;
      });
}
}  // namespace
#endif

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

#if VERTEBRA_WITH_DDS
  expose_unitree(t);
  expose_dds_bench(t);
#endif
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
#if VERTEBRA_WITH_DDS
  // Unitree foot forces: State -> Go2 LowState_ (the bridge's encode) -> State (the driver's decode).
  t.def("unitree_go_foot_force_round_trip", [](const std::vector<double>& foot_force, bool has_foot_force) {
    if (foot_force.size() != 4) throw std::invalid_argument("foot_force: 4 values (one per foot)");
    vertebra::unitree::MotorMap map;
    map.n = 1;
    State s;
    s.n = 1;
    s.has_foot_force = has_foot_force;
    for (int i = 0; i < 4; ++i) s.foot_force[i] = foot_force[i];
    vertebra::unitree::GoLowState m;
    std::memset(&m, 0xAB, sizeof(m));
    vertebra::unitree::encode_lowstate(map, s, 0, vertebra::unitree::RemoteState{}, m);
    State back;
    vertebra::unitree::decode_lowstate(map, m, back);
    py::dict d;
    d["wire"] = std::vector<int>(m.foot_force, m.foot_force + 4);
    d["crc_ok"] = vertebra::unitree::crc_ok(m);
    d["has_foot_force"] = back.has_foot_force;
    d["foot_force"] = std::vector<double>(back.foot_force.begin(), back.foot_force.end());
    return d;
  }, py::arg("foot_force"), py::arg("has_foot_force") = true);
  t.def("unitree_service_types", []() {
    py::dict d;
    d["api.Request_"] = unitree_api_msg_dds__Request__desc.m_typename;
    d["api.Response_"] = unitree_api_msg_dds__Response__desc.m_typename;
    d["go.SportModeState_"] = unitree_go_msg_dds__SportModeState__desc.m_typename;
    d["go.SportModeState_.size"] = sizeof(vertebra::unitree::GoSportModeState);
    return d;
  }, "type names of the RPC and sport-state messages, and SportModeState_'s in-memory size");
#endif
}

}  // namespace vertebra::bindings
