// vertebra._rt bindings: faults, safety modes, thresholds, the command limiter.
#include "bindings/common.hpp"

#include "safety/events.hpp"
#include "safety/safety.hpp"
#include "safety/supervisor.hpp"

namespace vertebra::bindings {

void expose_safety(py::module_& m) {
  m.def("fault_names", [] {
    std::vector<std::string> v;
    for (int f = 0; f < kNumFaults; ++f) v.emplace_back(fault_name(static_cast<FaultId>(f)));
    return v;
  }, "every fault the supervisor's monitors can raise");
  m.def("safety_mode_names", [] {
    std::vector<std::string> v;
    for (int k = 0; k < kNumSafetyModes; ++k) v.emplace_back(safety_mode_name(static_cast<SafetyMode>(k)));
    return v;
  });

  py::class_<SafetyConfig>(m, "SafetyConfig", "supervisor thresholds and responses (cpp/safety/safety.hpp)")
      .def(py::init<>())
      .def_readwrite("state_timeout_ms", &SafetyConfig::state_timeout_ms)
      .def_readwrite("frozen_ms", &SafetyConfig::frozen_ms)
      .def_readwrite("tilt_warn_deg", &SafetyConfig::tilt_warn_deg)
      .def_readwrite("fall_tilt_deg", &SafetyConfig::fall_tilt_deg)
      .def_readwrite("fall_height_m", &SafetyConfig::fall_height_m)
      .def_readwrite("fall_rate_rad_s", &SafetyConfig::fall_rate_rad_s)
      .def_readwrite("soft_limit_margin_rad", &SafetyConfig::soft_limit_margin_rad)
      .def_readwrite("hard_limit_tolerance_rad", &SafetyConfig::hard_limit_tolerance_rad)
      .def_readwrite("joint_limit_monitor", &SafetyConfig::joint_limit_monitor)
      .def_readwrite("velocity_fault_scale", &SafetyConfig::velocity_fault_scale)
      .def_readwrite("torque_fault_scale", &SafetyConfig::torque_fault_scale)
      .def_readwrite("temp_warn_c", &SafetyConfig::temp_warn_c)
      .def_readwrite("temp_derate_c", &SafetyConfig::temp_derate_c)
      .def_readwrite("temp_stop_c", &SafetyConfig::temp_stop_c)
      .def_readwrite("temp_hysteresis_c", &SafetyConfig::temp_hysteresis_c)
      .def_readwrite("derate_scale", &SafetyConfig::derate_scale)
      .def_readwrite("motor_error_monitor", &SafetyConfig::motor_error_monitor)
      .def_readwrite("battery_warn_v", &SafetyConfig::battery_warn_v)
      .def_readwrite("battery_stop_v", &SafetyConfig::battery_stop_v)
      .def_readwrite("battery_hysteresis_v", &SafetyConfig::battery_hysteresis_v)
      .def_readwrite("starvation_hold_ms", &SafetyConfig::starvation_hold_ms)
      .def_readwrite("starvation_stop_ms", &SafetyConfig::starvation_stop_ms)
      .def_readwrite("overrun_window_ticks", &SafetyConfig::overrun_window_ticks)
      .def_readwrite("overrun_max", &SafetyConfig::overrun_max)
      .def_readwrite("rate_limit_scale", &SafetyConfig::rate_limit_scale)
      .def_readwrite("estop_cut", &SafetyConfig::estop_cut)
      .def_readwrite("settle_hold_s", &SafetyConfig::settle_hold_s)
      .def_readwrite("clamp_quiet_ticks", &SafetyConfig::clamp_quiet_ticks)
      .def_readwrite("event_log_monitor", &SafetyConfig::event_log_monitor,
                     "raise event_log_write (warn) while the event log's writer cannot write")
      .def_readwrite("event_log_rotate_bytes", &SafetyConfig::event_log_rotate_bytes,
                     "the event log file is rotated to <path>.1 before it passes this size (>= 4096)")
      .def_readwrite("event_log_keep_files", &SafetyConfig::event_log_keep_files,
                     "rotated event log files kept: <path>.1 (newest) .. <path>.<keep> (1..99)")
      .def("set_response", [](SafetyConfig& c, const std::string& fault, const std::string& response) {
        c.response[static_cast<int>(fault_by_name(fault))] = response_by_name(response);
      }, py::arg("fault"), py::arg("response"))
      .def("response", [](const SafetyConfig& c, const std::string& fault) {
        return std::string(response_name(c.response[static_cast<int>(fault_by_name(fault))]));
      }, py::arg("fault"))
      .def("set_settle", [](SafetyConfig& c, const std::vector<std::vector<double>>& poses, const std::vector<double>& durations) {
        if (poses.size() != durations.size()) throw std::invalid_argument("set_settle: one duration per keyframe");
        if (poses.size() > static_cast<size_t>(kMaxSettleKeyframes))
          throw std::invalid_argument("set_settle: at most " + std::to_string(kMaxSettleKeyframes) + " keyframes");
        c.n_settle = static_cast<int>(poses.size());
        for (size_t k = 0; k < poses.size(); ++k) {
          c.settle_pose[k] = to_joint_array(poses[k], "settle pose");
          c.settle_duration_s[k] = durations[k];
        }
      }, py::arg("poses"), py::arg("durations_s"))
      .def_readonly("n_settle", &SafetyConfig::n_settle);

  py::class_<CommandLimiter>(m, "CommandLimiter", "the last gate before the driver (cpp/safety/safety.hpp)")
      .def(py::init<const RobotParams&, const SafetyConfig&, double>(), py::arg("params"), py::arg("config"), py::arg("dt_s"))
      .def("apply", [](const CommandLimiter& lim, const RobotParams& p, const std::vector<double>& q_measured, py::dict prev,
                       py::dict cmd, uint64_t derated_mask, bool mode_entry) {
        State s;
        s.n = p.n;
        if (q_measured.size() != static_cast<size_t>(p.n)) throw std::invalid_argument("apply: q_measured needs n values");
        for (int i = 0; i < p.n; ++i) s.q[i] = q_measured[i];
        const Command pv = command_from_dict(p.n, prev);
        Command c = command_from_dict(p.n, cmd);
        LimiterCounts counts;
        const uint32_t flags = lim.apply(s, pv, c, derated_mask, counts, mode_entry);
        return py::make_tuple(command_dict(c), flags, limiter_counts_dict(counts));
      }, py::arg("params"), py::arg("q_measured"), py::arg("prev"), py::arg("cmd"), py::arg("derated_mask") = 0,
         py::arg("mode_entry") = false)
      .def("soft_lower", &CommandLimiter::soft_lower)
      .def("soft_upper", &CommandLimiter::soft_upper)
      .def("max_step", &CommandLimiter::max_step);

}

}  // namespace vertebra::bindings
