// vertebra._rt bindings: the guard's heartbeat (shared memory, safety/heartbeat.hpp), the loop's
// heartbeat hook, the DDS guard (drivers/unitree/dds_guard.hpp) and the sim bridge's received
// command stream (what a takeover looks like from the robot's side).
#include "bindings/common.hpp"

#include "loop/rt_loop.hpp"
#include "safety/heartbeat.hpp"

#ifdef VERTEBRA_WITH_DDS
#include "drivers/unitree/dds_guard.hpp"
#if VERTEBRA_WITH_MUJOCO
#include "drivers/unitree/unitree_sim_bridge.hpp"
#endif
#endif

namespace vertebra::bindings {

namespace {

// A process named by pid and start time (/proc/<pid>/stat) still runs (a zombie counts as gone).
bool process_alive(int pid, uint64_t start_time) {
  const ProcessInfo p = process_info(pid);
  return p.exists && !p.exiting() && (start_time == 0 || p.start_time == start_time);
}

double ms(int64_t ns) { return static_cast<double>(ns) * 1e-6; }

const char* mode_text(int32_t m) {
  return m >= 0 && m < kNumSafetyModes ? safety_mode_name(static_cast<SafetyMode>(m)) : "unknown";
}

py::dict view_dict(const Heartbeat& hb) {
  const HeartbeatView v = hb.view();
  py::dict d;
  d["name"] = hb.name();
  d["path"] = hb.path();
  d["magic"] = v.magic;
  d["version"] = v.version;
  d["size"] = v.size;
  d["now_ns"] = v.now_ns;
  py::dict r;
  r["pid"] = v.runtime_pid;
  r["start_time"] = v.runtime_start_time;
  r["epoch"] = v.runtime_epoch;
  r["period_ns"] = v.runtime_period_ns;
  r["tick"] = v.tick;
  r["last_write_ns"] = v.last_write_ns;
  r["heartbeat_age_ms"] = v.last_write_ns ? py::object(py::float_(ms(v.now_ns - v.last_write_ns))) : py::object(py::none());
  r["safety_mode"] = mode_text(v.safety_mode);
  r["standing"] = v.standing;
  r["alive"] = process_alive(v.runtime_pid, v.runtime_start_time);
  d["runtime"] = r;
  py::dict g;
  g["pid"] = v.guard_pid;
  g["start_time"] = v.guard_start_time;
  g["beat_ns"] = v.guard_beat_ns;
  g["beat_age_ms"] = v.guard_beat_ns ? py::object(py::float_(ms(v.now_ns - v.guard_beat_ns))) : py::object(py::none());
  // Alive: the process runs and its watch cycle wrote within the last second (not frozen).
  g["alive"] = process_alive(v.guard_pid, v.guard_start_time) && v.guard_beat_ns != 0 &&
               v.now_ns - v.guard_beat_ns < 1'000'000'000;
  g["state"] = guard_state_name(v.guard_state);
  g["armed"] = v.guard_armed;
  g["takeovers"] = v.takeovers;
  g["commands"] = v.guard_commands;
  d["guard"] = g;
  py::dict t;
  t["reason"] = takeover_reason_name(v.takeover_reason);
  t["runtime_pid"] = v.takeover_runtime_pid;
  t["runtime_last_write_ns"] = v.takeover_runtime_last_write_ns;
  t["detect_ns"] = v.takeover_detect_ns;
  t["guard_first_write_ns"] = v.takeover_first_write_ns;
  t["released_ns"] = v.takeover_released_ns;
  t["runtime_tick"] = v.takeover_tick;
  t["runtime_safety_mode"] = mode_text(v.takeover_safety_mode);
  t["settle"] = v.takeover_settle;
  const bool timed = v.takeover_first_write_ns != 0 && v.takeover_runtime_last_write_ns != 0;
  t["detect_ms"] = v.takeover_detect_ns && v.takeover_runtime_last_write_ns
                       ? py::object(py::float_(ms(v.takeover_detect_ns - v.takeover_runtime_last_write_ns)))
                       : py::object(py::none());
  t["takeover_ms"] = timed ? py::object(py::float_(ms(v.takeover_first_write_ns - v.takeover_runtime_last_write_ns)))
                           : py::object(py::none());
  d["last_takeover"] = v.takeovers ? py::object(t) : py::object(py::none());
  py::dict a;
  a["requested"] = v.ack_requested;
  a["done"] = v.ack_done;
  d["ack"] = a;
  return d;
}

#ifdef VERTEBRA_WITH_DDS
py::dict guard_status_dict(const unitree::GuardStatus& s) {
  py::dict d;
  d["state"] = guard_state_name(s.state);
  d["armed"] = s.armed;
  d["runtime_pid"] = s.runtime_pid;
  d["pidfd"] = s.pidfd;
  d["phase"] = s.phase;
  d["takeovers"] = s.takeovers;
  d["releases"] = s.releases;
  d["commands"] = s.commands;
  d["settle_commands"] = s.settle_commands;
  d["write_errors"] = s.write_errors;
  d["states"] = s.states;
  d["crc_errors"] = s.crc_errors;
  d["writer_create_us"] = s.writer_create_ns * 1e-3;
  d["matched_readers_at_first_write"] = s.matched_readers_at_first_write;
  d["matched_readers"] = s.matched_readers;
  d["sched_fifo"] = s.sched_fifo;
  d["notes"] = s.notes;
  return d;
}
#endif

}  // namespace

void expose_guard(py::module_& m) {
  m.def("heartbeat_clock_ns", &heartbeat_clock_ns, "CLOCK_MONOTONIC in ns (the heartbeat's timestamps)");
  m.attr("HEARTBEAT_VERSION") = kHeartbeatVersion;
  m.attr("HEARTBEAT_MAGIC") = kHeartbeatMagic;
  m.attr("HEARTBEAT_SIZE") = sizeof(HeartbeatLayout);
  py::class_<Heartbeat, std::shared_ptr<Heartbeat>>(
      m, "Heartbeat", "the runtime/guard heartbeat segment /dev/shm/<name> (cpp/safety/heartbeat.hpp)")
      .def(py::init<const std::string&, bool>(), py::arg("name"), py::arg("create") = true,
           "open /dev/shm/<name> (created, mode 0660, when `create` and missing); refuses another layout")
      .def_property_readonly("name", &Heartbeat::name)
      .def_property_readonly("path", &Heartbeat::path)
      .def_static("exists", &Heartbeat::exists, py::arg("name"))
      .def_static("unlink", &Heartbeat::unlink, py::arg("name"), "remove /dev/shm/<name>; True when it was there")
      .def("read", &view_dict, "every field as a dict: runtime, guard, last_takeover (None before one), ack")
      .def("request_ack", &Heartbeat::request_ack,
           "ask the guard for an acknowledgement (it releases a hold); the request's number (done when ack.done reaches it)")
      .def("attach_runtime", &Heartbeat::attach_runtime, py::arg("period_ns"),
           "this process becomes the segment's runtime (what RtLoop.start() does)")
      .def("detach_runtime", &Heartbeat::detach_runtime, "a clean close (what RtLoop.stop() does)")
      .def("beat", [](Heartbeat& hb, uint64_t tick, const std::string& safety_mode, bool standing, py::dict command) {
        int32_t mode = -1;
        std::string names;
        for (int k = 0; k < kNumSafetyModes; ++k) {
          const char* n = safety_mode_name(static_cast<SafetyMode>(k));
          names += (names.empty() ? "" : ", ") + std::string(n);
          if (safety_mode == n) mode = k;
        }
        if (mode < 0)
          throw std::invalid_argument("beat: safety_mode: found '" + safety_mode + "'; valid: " + names);
        const int n = static_cast<int>(py::len(command["q"]));
        const Command c = command_from_dict(n, command);
        hb.beat(tick, heartbeat_clock_ns(), mode, standing, c);
      }, py::arg("tick"), py::arg("safety_mode"), py::arg("standing"), py::arg("command"),
         "one tick's heartbeat as RtLoop writes it (tests and tools): command {q, dq, kp, kd, tau_ff}")
      .def("last_command", [](const Heartbeat& hb) {
        const HeartbeatCommand c = hb.last_command();
        Command cmd{};
        cmd.n = c.n;
        cmd.q = c.q;
        cmd.kp = c.kp;
        cmd.kd = c.kd;
        cmd.tau_ff = c.tau_ff;
        py::dict d = command_dict(cmd);
        d["consistent"] = c.consistent;
        return d;
      }, "the last command the runtime wrote (q, kp, kd, tau_ff; dq is not kept)");

  // The loop's hook (configuration time; loop/rt_loop.hpp).
  auto loop = py::reinterpret_borrow<py::class_<RtLoop, std::shared_ptr<RtLoop>>>(m.attr("RtLoop"));
  loop.def("set_heartbeat", &RtLoop::set_heartbeat, py::arg("heartbeat"),
           "real time, configuration time: write the guard's heartbeat after every driver write (None: none)")
      .def_property_readonly("heartbeat", &RtLoop::heartbeat);

#ifdef VERTEBRA_WITH_DDS
  namespace uni = vertebra::unitree;
  py::class_<uni::GuardOptions>(m, "GuardOptions", "the DDS guard's options (cpp/drivers/unitree/dds_guard.hpp)")
      .def(py::init<>())
      .def_property("messages", [](const uni::GuardOptions& o) { return o.messages == uni::Messages::kHg ? "hg" : "go"; },
                    [](uni::GuardOptions& o, const std::string& v) {
                      if (v == "hg") o.messages = uni::Messages::kHg;
                      else if (v == "go") o.messages = uni::Messages::kGo;
                      else throw std::invalid_argument("messages: found '" + v + "'; valid: hg (G1), go (Go2)");
                    })
      .def_readwrite("domain_id", &uni::GuardOptions::domain_id)
      .def_readwrite("network_interface", &uni::GuardOptions::network_interface)
      .def_readwrite("lowcmd_topic", &uni::GuardOptions::lowcmd_topic)
      .def_readwrite("lowstate_topic", &uni::GuardOptions::lowstate_topic)
      .def_readwrite("motors", &uni::GuardOptions::motors)
      .def_readwrite("mode_pr", &uni::GuardOptions::mode_pr)
      .def_readwrite("heartbeat", &uni::GuardOptions::heartbeat)
      .def_readwrite("timeout_ms", &uni::GuardOptions::timeout_ms)
      .def_readwrite("idle_timeout_ms", &uni::GuardOptions::idle_timeout_ms)
      .def_readwrite("rate_hz", &uni::GuardOptions::rate_hz)
      .def_readwrite("settle", &uni::GuardOptions::settle)
      .def_readwrite("watch_hz", &uni::GuardOptions::watch_hz)
      .def_readwrite("realtime_priority", &uni::GuardOptions::realtime_priority)
      .def_readwrite("fifo_priority", &uni::GuardOptions::fifo_priority);
  py::class_<uni::DdsGuard, std::shared_ptr<uni::DdsGuard>>(
      m, "DdsGuard", "takes rt/lowcmd over with damping when the runtime stops (cpp/drivers/unitree/dds_guard.hpp)")
      .def(py::init<uni::GuardOptions, const RobotParams&, const SafetyConfig&>(), py::arg("options"),
           py::arg("params"), py::arg("safety"), py::call_guard<py::gil_scoped_release>())
      .def("start", &uni::DdsGuard::start, py::call_guard<py::gil_scoped_release>())
      .def("stop", &uni::DdsGuard::stop, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("running", &uni::DdsGuard::running)
      .def_property_readonly("heartbeat", &uni::DdsGuard::heartbeat)
      .def("status", [](const uni::DdsGuard& g) { return guard_status_dict(g.status()); },
           "state, phase, counters, the last takeover's writer creation time, what the OS granted");
#if VERTEBRA_WITH_MUJOCO
  auto bridge = py::reinterpret_borrow<py::class_<uni::UnitreeSimBridge, std::shared_ptr<uni::UnitreeSimBridge>>>(
      m.attr("UnitreeSimBridge"));
  bridge
      .def("command_stream", [](const uni::UnitreeSimBridge& b) {
        const uni::CommandStream c = b.command_stream();
        py::dict d;
        d["samples"] = c.samples;
        d["max_gap_ms"] = c.max_gap_ms;
        d["max_gap_end_ns"] = c.max_gap_end_ns;
        d["since_reset_s"] = c.since_reset_s;
        d["last_age_ms"] = c.last_age_ms;
        return d;
      }, "valid rt/lowcmd received since reset_command_stream(): samples, the largest gap between two (ms)")
      .def("reset_command_stream", &uni::UnitreeSimBridge::reset_command_stream)
      .def("last_command", [](const uni::UnitreeSimBridge& b) { return command_dict(b.last_command()); },
           "the newest valid command received, decoded (q, dq, kp, kd, tau_ff per joint)");
#endif
#endif
}

}  // namespace vertebra::bindings
