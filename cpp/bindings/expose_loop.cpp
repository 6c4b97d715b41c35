// vertebra._rt bindings: the real-time loop (modes by name, targets, operator inputs, snapshots, statistics).
#include "bindings/common.hpp"

#include <thread>
#include "loop/rt_loop.hpp"
#include "safety/events.hpp"

namespace vertebra::bindings {

void expose_loop(py::module_& m) {
  py::class_<LoopConfig>(m, "LoopConfig")
      .def(py::init<>())
      .def_readwrite("rate_hz", &LoopConfig::rate_hz)
      .def_readwrite("lockstep", &LoopConfig::lockstep)
      .def_readwrite("realtime_priority", &LoopConfig::realtime_priority)
      .def_readwrite("fifo_priority", &LoopConfig::fifo_priority)
      .def_readwrite("cpu", &LoopConfig::cpu)
      .def_readwrite("lock_memory", &LoopConfig::lock_memory)
      .def_readwrite("spin_ns", &LoopConfig::spin_ns);

  py::class_<RtLoop, std::shared_ptr<RtLoop>>(m, "RtLoop", "the real-time control loop (cpp/core/rt_loop.hpp)")
      .def(py::init<std::shared_ptr<Driver>, const RobotParams&, const LoopConfig&, const SafetyConfig&>(), py::arg("driver"),
           py::arg("params"), py::arg("config"), py::arg_v("safety", SafetyConfig(), "SafetyConfig()"))
      .def("start", &RtLoop::start, py::call_guard<py::gil_scoped_release>())
      .def("stop", &RtLoop::stop, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("running", &RtLoop::running)
      .def("run_ticks", &RtLoop::run_ticks, py::arg("n"), py::call_guard<py::gil_scoped_release>())
      .def("request_mode", [](RtLoop& l, py::handle mode, double duration_s, const std::vector<double>& pose, bool stream) {
        ModeRequest r;
        r.mode = mode_from_py(mode);
        r.stream = stream;
        r.duration_s = duration_s;
        r.n = static_cast<int32_t>(pose.size());
        r.pose = to_joint_array(pose, "pose");
        py::gil_scoped_release release;
        return l.request_mode(r);
      }, py::arg("mode"), py::arg("duration_s") = 0.0, py::arg("pose") = std::vector<double>{}, py::arg("stream") = false,
         "queue a mode change (a _rt.Mode or a mode name: built-in or registered on this loop); returns its sequence "
         "number (see snapshot()['request_seq'/'request_status'/'request_reason']). stream=True (ACTIVE): a policy "
         "stream is expected and watched for starvation")
      .def("register_mode", [](RtLoop& l, const std::string& name, std::shared_ptr<ControllerMode> mode) {
        return static_cast<int>(l.register_mode(name, std::move(mode)));
      }, py::arg("name"), py::arg("mode"),
         "configuration time: register a controller mode under a name (requestable by that name; runs in ACTIVE); "
         "returns its id")
      .def("mode", &RtLoop::mode, py::arg("name"), "the mode registered on this loop under `name`, or None")
      .def_property_readonly("mode_names", &RtLoop::mode_names, "requestable modes: built-in, then registered")
      .def("set_targets", [](RtLoop& l, const std::vector<double>& q, const std::vector<double>& dq, const std::vector<double>& kp,
                             const std::vector<double>& kd, const std::vector<double>& tau_ff, uint64_t seq) {
        const size_t n = static_cast<size_t>(l.params().n);
        for (const auto* v : {&q, &dq, &kp, &kd, &tau_ff})
          if (v->size() != n)
            throw std::invalid_argument("set_targets: expected " + std::to_string(n) + " values per field, found " + std::to_string(v->size()));
        Targets t;
        t.n = static_cast<int32_t>(n);
        t.seq = seq;
        t.q = to_joint_array(q, "q");
        t.dq = to_joint_array(dq, "dq");
        t.kp = to_joint_array(kp, "kp");
        t.kd = to_joint_array(kd, "kd");
        t.tau_ff = to_joint_array(tau_ff, "tau_ff");
        py::gil_scoped_release release;
        l.set_targets(t);
      }, py::arg("q"), py::arg("dq"), py::arg("kp"), py::arg("kd"), py::arg("tau_ff"), py::arg("seq"))
      .def("set_estimator", &RtLoop::set_estimator, py::arg("estimator"), py::arg("always"),
           "configuration time: run the state estimator every tick; its base replaces the driver's when the driver "
           "has no truth, and always when `always` (a simulator run as on hardware)")
      .def_property_readonly("estimator", &RtLoop::estimator)
      .def("reset_faults", &RtLoop::reset_faults, "operator reset: clears latched faults whose cause is gone -> DAMP")
      .def("estop", &RtLoop::estop, "operator emergency stop (taken by the next tick)")
      .def("request_stop", &RtLoop::request_stop, "operator stop: settle-then-cut when armed")
      .def("set_enabled", &RtLoop::set_enabled, py::arg("enabled"), "operator enable (arming gate) / disable (stops when armed)")
      .def_property_readonly("limiter", [](const RtLoop& l) { return l.limiter(); })
      .def("snapshot", [](const RtLoop& l) {
        Snapshot s;
        {
          py::gil_scoped_release release;
          l.snapshot(s);
        }
        py::dict d;
        d["tick"] = s.tick;
        d["time_s"] = s.driver_time_ns * 1e-9;
        d["state"] = state_dict(s.state);
        d["estimate"] = estimate_dict(s.estimate);
        d["estimate_used"] = s.estimate_used;
        d["last_estimate"] = status_name(s.last_estimate);
        // The base the controller saw: the estimate when used, else the driver's.
        py::dict base;
        const bool est = s.estimate_used;
        base["source"] = est ? (s.estimate.valid ? "estimate" : "none") : (s.state.has_base_truth ? "truth" : "none");
        base["pos"] = est ? arr(s.estimate.base_pos.data(), 3) : arr(s.state.base_pos.data(), 3);
        base["quat"] = est ? arr(s.estimate.base_quat.data(), 4) : arr(s.state.base_quat.data(), 4);
        base["lin_vel"] = est ? arr(s.estimate.base_lin_vel.data(), 3) : arr(s.state.base_lin_vel.data(), 3);
        d["base"] = base;
        d["command"] = command_dict(s.command);
        const SupervisorStatus& ss = s.safety;
        d["mode"] = mode_name(ss.controller);
        d["safety_mode"] = safety_mode_name(ss.mode);
        d["mode_progress"] = ss.progress;
        d["mode_tick"] = ss.mode_tick;
        d["faults"] = fault_names(ss.latched);
        d["active_faults"] = fault_names(ss.active);
        py::dict raised;
        for (int f = 0; f < kNumFaults; ++f)
          if (ss.raised_tick[f]) raised[fault_name(static_cast<FaultId>(f))] = ss.raised_tick[f];
        d["raised_tick"] = raised;
        d["enabled"] = ss.enabled;
        d["pose_interpolated"] = ss.pose_interpolated;
        d["stream_expected"] = ss.stream_expected;
        d["stream_age_ms"] = ss.stream_age_ms;
        std::vector<int> derated;
        for (int i = 0; i < kMaxJoints; ++i)
          if ((ss.derated >> i) & 1u) derated.push_back(i);
        d["derated_joints"] = derated;
        d["cut"] = ss.cut;
        d["request_seq"] = ss.request_seq;
        d["request_status"] = status_name(ss.request_status);
        d["request_reason"] = request_refusal_text(ss.request_reason);
        d["requests_rejected"] = ss.requests_rejected;
        d["resets_refused"] = ss.resets_refused;
        d["targets_seq"] = s.targets_seq;
        d["clamps"] = ss.clamps.total();
        d["clamp_counts"] = limiter_counts_dict(ss.clamps);
        d["clamp_ticks"] = s.clamp_ticks;
        d["last_clamp_flags"] = ss.last_clamp_flags;
        d["events_dropped"] = s.events_dropped;
        d["chunks"] = chunk_status_dict(s.chunks);
        d["last_read"] = status_name(s.last_read);
        d["last_write"] = status_name(s.last_write);
        return d;
      })
      .def("stats", [](const RtLoop& l) {
        py::dict d;
        d["rate_hz"] = l.rate_hz();
        d["ticks"] = l.ticks();
        d["lateness_us"] = histogram_dict(l.lateness());
        d["compute_us"] = histogram_dict(l.compute());
        d["overruns"] = l.overruns();
        return d;
      }, "loop statistics; safe to call while the loop runs")
      .def("reset_stats", &RtLoop::reset_stats)
      .def("rt_report", [](const RtLoop& l) {
        const RtReport r = l.rt_report();
        py::dict d;
        d["sched_fifo"] = r.sched_fifo;
        d["mlockall"] = r.mlockall;
        d["affinity"] = r.affinity;
        d["timer_slack"] = r.timer_slack;
        d["notes"] = r.notes;
        return d;
      });

  // The loop's safety-event writer (cpp/safety/events.hpp): bound here because it reads a loop's ring.
  py::class_<EventLog, std::shared_ptr<EventLog>>(m, "EventLog",
      "writes the loop's safety events to an append-only JSON-lines file (cpp/safety/events.hpp)")
      .def(py::init([](const RtLoop& l, const std::string& path, int flush_ms, int fsync_ms) {
        return std::make_shared<EventLog>(l.event_ring(), path, flush_ms, fsync_ms);
      }), py::arg("loop"), py::arg("path") = "", py::arg("flush_ms") = 50, py::arg("fsync_ms") = 1000)
      .def("start", &EventLog::start, py::call_guard<py::gil_scoped_release>())
      .def("stop", &EventLog::stop, py::call_guard<py::gil_scoped_release>())
      .def("flush", &EventLog::flush, py::call_guard<py::gil_scoped_release>())
      .def("note", &EventLog::note, py::arg("text"), py::arg("fields_json") = "", py::arg("robot_time_ns") = 0,
           py::call_guard<py::gil_scoped_release>())
      .def("recent", &EventLog::recent, py::arg("since") = 0, "[(line number, JSON)] written after line `since`")
      .def_property_readonly("path", &EventLog::path)
      .def_property_readonly("written", &EventLog::written)
      .def_property_readonly("io_errors", &EventLog::io_errors);
}

}  // namespace vertebra::bindings
