// vertebra._rt: Python bindings of the C++ real-time core.
// Every call that may wait or run ticks releases the GIL; values cross as numpy arrays/dicts.
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <thread>

#include "core/exchange.hpp"
#include "core/loop_stats.hpp"
#include "core/modes.hpp"
#include "core/robot_model.hpp"
#include "core/rt_loop.hpp"
#include "drivers/fault_injector.hpp"
#include "drivers/mock_driver.hpp"
#include "drivers/mujoco_driver.hpp"
#include "safety/events.hpp"
#include "safety/safety.hpp"
#include "safety/supervisor.hpp"
#include "wbc/wbc.hpp"

namespace py = pybind11;
using namespace vertebra;

namespace {

JointArray to_joint_array(const std::vector<double>& v, const char* what) {
  if (v.size() > static_cast<size_t>(kMaxJoints))
    throw std::invalid_argument(std::string(what) + ": at most " + std::to_string(kMaxJoints) + " values, found " +
                                std::to_string(v.size()));
  JointArray a{};
  for (size_t i = 0; i < v.size(); ++i) a[i] = v[i];
  return a;
}

py::array_t<double> arr(const double* p, int n) { return py::array_t<double>(n, p); }

py::dict state_dict(const State& s) {
  py::dict d;
  d["seq"] = s.seq;
  d["stamp_ns"] = s.stamp_ns;
  d["q"] = arr(s.q.data(), s.n);
  d["dq"] = arr(s.dq.data(), s.n);
  d["tau"] = arr(s.tau.data(), s.n);
  d["imu_quat"] = arr(s.imu_quat.data(), 4);
  d["imu_gyro"] = arr(s.imu_gyro.data(), 3);
  d["imu_acc"] = arr(s.imu_acc.data(), 3);
  d["has_base_truth"] = s.has_base_truth;
  d["base_pos"] = arr(s.base_pos.data(), 3);
  d["base_quat"] = arr(s.base_quat.data(), 4);
  d["base_lin_vel"] = arr(s.base_lin_vel.data(), 3);
  d["base_ang_vel"] = arr(s.base_ang_vel.data(), 3);
  d["has_motor_temp"] = s.has_motor_temp;
  d["motor_temp_c"] = arr(s.motor_temp_c.data(), s.n);
  std::vector<uint32_t> err(s.motor_error.begin(), s.motor_error.begin() + s.n);
  d["motor_error"] = err;
  d["has_battery"] = s.has_battery;
  d["battery_v"] = s.battery_v;
  return d;
}

py::dict command_dict(const Command& c) {
  py::dict d;
  d["q"] = arr(c.q.data(), c.n);
  d["dq"] = arr(c.dq.data(), c.n);
  d["kp"] = arr(c.kp.data(), c.n);
  d["kd"] = arr(c.kd.data(), c.n);
  d["tau_ff"] = arr(c.tau_ff.data(), c.n);
  return d;
}

py::dict histogram_dict(const LatencyHistogram& h) {
  py::dict d;
  d["count"] = h.count();
  d["p50"] = h.percentile_us(0.50);
  d["p99"] = h.percentile_us(0.99);
  d["p999"] = h.percentile_us(0.999);
  d["max"] = h.max_us();
  d["mean"] = h.mean_us();
  return d;
}

py::list fault_names(uint64_t mask) {
  py::list l;
  for (int f = 0; f < kNumFaults; ++f)
    if (mask & (uint64_t{1} << f)) l.append(fault_name(static_cast<FaultId>(f)));
  return l;
}

FaultId fault_by_name(const std::string& name) {
  std::string all;
  for (int f = 0; f < kNumFaults; ++f) {
    if (name == fault_name(static_cast<FaultId>(f))) return static_cast<FaultId>(f);
    all += (f ? ", " : "") + std::string(fault_name(static_cast<FaultId>(f)));
  }
  throw std::invalid_argument("unknown fault '" + name + "'; faults are: " + all);
}

Response response_by_name(const std::string& name) {
  for (int r = 0; r <= static_cast<int>(Response::kCut); ++r)
    if (name == response_name(static_cast<Response>(r))) return static_cast<Response>(r);
  throw std::invalid_argument("unknown response '" + name + "'; responses are: warn, derate, hold, stop, damp, cut");
}

py::dict limiter_counts_dict(const LimiterCounts& c) {
  py::dict d;
  d["non_finite"] = c.nonfinite;
  d["position"] = c.position;
  d["rate"] = c.rate;
  d["velocity"] = c.velocity;
  d["kp"] = c.kp;
  d["kd"] = c.kd;
  d["torque"] = c.torque;
  return d;
}

py::dict chunk_status_dict(const SchedulerStatus& s) {
  py::dict d;
  d["chunks_received"] = s.chunks_received;
  d["chunks_dropped"] = s.chunks_dropped;
  d["chunks_rejected"] = s.chunks_rejected;
  d["last_seq"] = s.last_seq;
  d["starved_ticks"] = s.starved_ticks;
  d["starved"] = s.starved;
  d["has_output"] = s.has_output;
  d["blend"] = s.blend;
  return d;
}

Command command_from_dict(int n, py::dict d) {
  Command c;
  c.n = n;
  for (const char* k : {"q", "dq", "kp", "kd", "tau_ff"}) {
    auto v = py::cast<std::vector<double>>(d[k]);
    if (v.size() != static_cast<size_t>(n))
      throw std::invalid_argument(std::string("command field '") + k + "' needs " + std::to_string(n) + " values");
    JointArray& a = std::string(k) == "q" ? c.q : std::string(k) == "dq" ? c.dq : std::string(k) == "kp" ? c.kp
                  : std::string(k) == "kd" ? c.kd : c.tau_ff;
    for (int i = 0; i < n; ++i) a[i] = v[i];
  }
  return c;
}

State state_from_dict(int n, py::dict state) {
  State s;
  s.n = n;
  auto fill = [](py::handle h, double* out, size_t len) {
    auto a = py::cast<std::vector<double>>(h);
    if (a.size() != len) throw std::invalid_argument("state field has the wrong length");
    for (size_t i = 0; i < len; ++i) out[i] = a[i];
  };
  fill(state["q"], s.q.data(), n);
  fill(state["dq"], s.dq.data(), n);
  fill(state["base_pos"], s.base_pos.data(), 3);
  fill(state["base_quat"], s.base_quat.data(), 4);
  fill(state["base_lin_vel"], s.base_lin_vel.data(), 3);
  fill(state["base_ang_vel"], s.base_ang_vel.data(), 3);
  s.has_base_truth = true;
  return s;
}

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

PYBIND11_MODULE(_rt, m) {
  m.doc() = "Vertebra real-time core (C++): robot model, real-time loop, controller modes, drivers.";
  m.attr("MAX_JOINTS") = kMaxJoints;

  py::enum_<ModeId>(m, "Mode")
      .value("ZERO_TORQUE", ModeId::kZeroTorque)
      .value("DAMPING", ModeId::kDamping)
      .value("HOLD", ModeId::kHold)
      .value("INTERPOLATE", ModeId::kInterpolate)
      .value("JOINT_PD", ModeId::kJointPD)
      .value("WBC", ModeId::kWbc)
      .value("SETTLE", ModeId::kSettle);

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

  py::class_<RobotModel, std::shared_ptr<RobotModel>>(m, "RobotModel", "pinocchio model with a free-floating base; joints in motor order")
      .def(py::init<const std::string&, const std::vector<std::string>&>(), py::arg("urdf_path"), py::arg("joint_names"))
      .def_property_readonly("n_joints", &RobotModel::n_joints)
      .def_property_readonly("nq", &RobotModel::nq)
      .def_property_readonly("nv", &RobotModel::nv)
      .def_property_readonly("total_mass", &RobotModel::total_mass)
      .def_property_readonly("joint_names", &RobotModel::joint_names)
      .def_property_readonly("model_joint_names", &RobotModel::model_joint_names)
      .def_property_readonly("frame_names", &RobotModel::frame_names)
      .def_property_readonly("limits", [](const RobotModel& r) {
        py::dict d;
        d["lower"] = r.limits().lower;
        d["upper"] = r.limits().upper;
        d["velocity"] = r.limits().velocity;
        d["effort"] = r.limits().effort;
        return d;
      })
      .def("frame_id", &RobotModel::frame_id)
      .def("full_configuration", &RobotModel::full_configuration, py::arg("base_pos"), py::arg("base_quat_wxyz"), py::arg("joint_q"))
      .def("frame_translation", [](RobotModel& r, const Eigen::VectorXd& q, const std::string& frame) {
        const int id = r.frame_id(frame);
        r.forward_kinematics(q);
        return Eigen::Vector3d(r.frame_translation(id));
      })
      .def("frame_rotation", [](RobotModel& r, const Eigen::VectorXd& q, const std::string& frame) {
        const int id = r.frame_id(frame);
        r.forward_kinematics(q);
        return Eigen::Matrix3d(r.frame_rotation(id));
      }, "3x3 rotation of a frame in world at the full configuration q")
      .def("center_of_mass", &RobotModel::center_of_mass)
      .def("gravity_torques", &RobotModel::gravity_torques)
      .def("standing_base_height", &RobotModel::standing_base_height, py::arg("joint_q"), py::arg("foot_frames"), py::arg("sole_offset_m"));

  py::class_<RobotParams>(m, "RobotParams", "per-robot constants of the modes and the limiter (motor order)")
      .def(py::init([](const std::vector<double>& kp, const std::vector<double>& kd, const std::vector<double>& kd_damping,
                       const std::vector<double>& kp_max, const std::vector<double>& kd_max, const std::vector<double>& q_lower,
                       const std::vector<double>& q_upper, const std::vector<double>& dq_max, const std::vector<double>& tau_max,
                       const std::vector<double>& default_pose) {
             const size_t n = kp.size();
             for (const auto* v : {&kd, &kd_damping, &kp_max, &kd_max, &q_lower, &q_upper, &dq_max, &tau_max, &default_pose})
               if (v->size() != n) throw std::invalid_argument("RobotParams: every array needs " + std::to_string(n) + " values");
             RobotParams p;
             p.n = static_cast<int32_t>(n);
             p.kp = to_joint_array(kp, "kp");
             p.kd = to_joint_array(kd, "kd");
             p.kd_damping = to_joint_array(kd_damping, "kd_damping");
             p.kp_max = to_joint_array(kp_max, "kp_max");
             p.kd_max = to_joint_array(kd_max, "kd_max");
             p.q_lower = to_joint_array(q_lower, "q_lower");
             p.q_upper = to_joint_array(q_upper, "q_upper");
             p.dq_max = to_joint_array(dq_max, "dq_max");
             p.tau_max = to_joint_array(tau_max, "tau_max");
             p.default_pose = to_joint_array(default_pose, "default_pose");
             return p;
           }),
           py::arg("kp"), py::arg("kd"), py::arg("kd_damping"), py::arg("kp_max"), py::arg("kd_max"), py::arg("q_lower"),
           py::arg("q_upper"), py::arg("dq_max"), py::arg("tau_max"), py::arg("default_pose"))
      .def_readonly("n", &RobotParams::n);

  py::class_<Driver, std::shared_ptr<Driver>>(m, "Driver", "robot bus or simulator (see cpp/drivers/driver.hpp)")
      .def("init", [](Driver& d, const std::vector<std::string>& names, double rate) {
        DriverInit i;
        i.joint_names = names;
        i.control_rate_hz = rate;
        d.init(i);
      }, py::arg("joint_names"), py::arg("control_rate_hz"))
      .def("read", [](Driver& d) {
        State s;
        const Status st = d.read(s);
        py::dict out = state_dict(s);
        out["status"] = status_name(st);
        return out;
      })
      .def_property_readonly("name", &Driver::name)
      .def_property_readonly("simulated", &Driver::simulated)
      .def("now_ns", &Driver::now_ns);

  py::class_<MockDriver, Driver, std::shared_ptr<MockDriver>>(m, "MockDriver", "ideal joints for tests (cpp/drivers/mock_driver.hpp)")
      .def(py::init([](double inertia, double friction, double gravity_torque) {
        MockDriverOptions o;
        o.joint_inertia = inertia;
        o.joint_friction = friction;
        o.gravity_torque = gravity_torque;
        return std::make_shared<MockDriver>(o);
      }), py::arg("joint_inertia") = 0.05, py::arg("joint_friction") = 0.1, py::arg("gravity_torque") = 0.0)
      .def("set_joint_positions", [](MockDriver& d, const std::vector<double>& q) { d.set_joint_positions(to_joint_array(q, "q")); })
      .def("set_fail_reads", &MockDriver::set_fail_reads)
      .def("set_nan_state", &MockDriver::set_nan_state)
      .def_property_readonly("writes", &MockDriver::writes)
      .def_property_readonly("last_command", [](const MockDriver& d) { return command_dict(d.last_command()); });

  py::class_<SimOptions>(m, "SimOptions", "MuJoCo driver options (see cpp/drivers/mujoco_driver.hpp)")
      .def(py::init<>())
      .def_readwrite("mjcf_path", &SimOptions::mjcf_path)
      .def_readwrite("sim_rate_hz", &SimOptions::sim_rate_hz)
      .def_readwrite("base_pos", &SimOptions::base_pos)
      .def_readwrite("base_quat", &SimOptions::base_quat)
      .def_readwrite("initial_joint_q", &SimOptions::initial_joint_q)
      .def_readwrite("noise_q_rad", &SimOptions::noise_q_rad)
      .def_readwrite("noise_dq_rad_s", &SimOptions::noise_dq_rad_s)
      .def_readwrite("noise_gyro_rad_s", &SimOptions::noise_gyro_rad_s)
      .def_readwrite("noise_acc_m_s2", &SimOptions::noise_acc_m_s2)
      .def_readwrite("noise_seed", &SimOptions::noise_seed)
      .def_readwrite("command_latency_s", &SimOptions::command_latency_s)
      .def_readwrite("hoist_engaged", &SimOptions::hoist_engaged)
      .def_readwrite("hoist_anchor_z_m", &SimOptions::hoist_anchor_z_m)
      .def_readwrite("hoist_stiffness_n_m", &SimOptions::hoist_stiffness_n_m)
      .def_readwrite("hoist_damping_n_s_m", &SimOptions::hoist_damping_n_s_m)
      .def_readwrite("hoist_lateral_stiffness_n_m", &SimOptions::hoist_lateral_stiffness_n_m)
      .def_readwrite("hoist_rot_stiffness_nm_rad", &SimOptions::hoist_rot_stiffness_nm_rad)
      .def_readwrite("hoist_rot_damping_nms_rad", &SimOptions::hoist_rot_damping_nms_rad)
      .def_readwrite("motor_temp_c", &SimOptions::motor_temp_c)
      .def_readwrite("battery_v", &SimOptions::battery_v);

  py::class_<FaultInjector, Driver, std::shared_ptr<FaultInjector>>(m, "FaultInjector",
      "wraps a driver and corrupts what it reports on command (cpp/drivers/fault_injector.hpp)")
      .def(py::init<std::shared_ptr<Driver>>(), py::arg("inner"))
      .def_property_readonly("inner", &FaultInjector::inner)
      .def("set_drop_reads", &FaultInjector::set_drop_reads)
      .def("set_freeze", &FaultInjector::set_freeze)
      .def("set_nan_state", &FaultInjector::set_nan_state)
      .def("set_read_stall_us", &FaultInjector::set_read_stall_us)
      .def("set_motor_temp", &FaultInjector::set_motor_temp, py::arg("joint"), py::arg("celsius"))
      .def("set_motor_error", &FaultInjector::set_motor_error, py::arg("joint"), py::arg("bits"))
      .def("set_battery_v", &FaultInjector::set_battery_v)
      .def("clear", &FaultInjector::clear);

  py::class_<MujocoDriver, Driver, std::shared_ptr<MujocoDriver>>(m, "MujocoDriver", "simulated robot (cpp/drivers/mujoco_driver.hpp)")
      .def(py::init<SimOptions>(), py::arg("options"))
      .def("hoist_lower_to", &MujocoDriver::hoist_lower_to, py::arg("anchor_z_m"), py::arg("speed_m_s"))
      .def("hoist_release", &MujocoDriver::hoist_release)
      .def("push", &MujocoDriver::push, py::arg("fx"), py::arg("fy"), py::arg("fz"), py::arg("duration_s"),
           "apply an external force (N, world) on the base's centre of mass for duration_s of sim time")
      .def_property_readonly("pushing", &MujocoDriver::pushing)
      .def_property_readonly("hoist_engaged", &MujocoDriver::hoist_engaged)
      .def_property_readonly("hoist_anchor_z", &MujocoDriver::hoist_anchor_z)
      .def_property_readonly("hoist_tension_n", &MujocoDriver::hoist_tension_n)
      .def_property_readonly("sim_timestep", &MujocoDriver::sim_timestep)
      .def_property_readonly("total_mass", &MujocoDriver::total_mass)
      .def_property_readonly("steps_per_tick", &MujocoDriver::steps_per_tick)
      .def("qpos", [](const MujocoDriver& d) {
        SimPose p;
        d.pose(p);
        return py::make_tuple(p.time, arr(p.qpos.data(), p.nq));
      }, "(sim time, full MuJoCo qpos) after the latest write; safe while the loop runs");

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
           py::arg("params"), py::arg("config"), py::arg("safety") = SafetyConfig())
      .def("start", &RtLoop::start, py::call_guard<py::gil_scoped_release>())
      .def("stop", &RtLoop::stop, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("running", &RtLoop::running)
      .def("run_ticks", &RtLoop::run_ticks, py::arg("n"), py::call_guard<py::gil_scoped_release>())
      .def("request_mode", [](RtLoop& l, ModeId mode, double duration_s, const std::vector<double>& pose, bool stream) {
        ModeRequest r;
        r.mode = mode;
        r.stream = stream;
        r.duration_s = duration_s;
        r.n = static_cast<int32_t>(pose.size());
        r.pose = to_joint_array(pose, "pose");
        py::gil_scoped_release release;
        return l.request_mode(r);
      }, py::arg("mode"), py::arg("duration_s") = 0.0, py::arg("pose") = std::vector<double>{}, py::arg("stream") = false,
         "queue a mode change; returns its sequence number (see snapshot()['request_seq'/'request_status']). "
         "stream=True (ACTIVE): a policy stream is expected and watched for starvation")
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

  py::class_<ChunkScheduler, std::shared_ptr<ChunkScheduler>>(m, "ChunkScheduler",
      "time-stamped action chunks -> one target per tick (cpp/core/chunk_scheduler.hpp)")
      .def(py::init([](int dim, const std::string& mode, double prefix_s, double blend_s, double ensemble_decay) {
        ChunkSchedulerConfig c;
        c.dim = dim;
        if (mode == "keep_prefix") c.mode = MergeMode::kKeepPrefix;
        else if (mode == "ensemble") c.mode = MergeMode::kTemporalEnsemble;
        else throw std::invalid_argument("ChunkScheduler: unknown mode '" + mode + "'; modes are: keep_prefix, ensemble");
        c.prefix_s = prefix_s;
        c.blend_s = blend_s;
        c.ensemble_decay = ensemble_decay;
        return std::make_shared<ChunkScheduler>(c);
      }), py::arg("dim"), py::arg("mode") = "keep_prefix", py::arg("prefix_s") = 0.0, py::arg("blend_s") = 0.1,
          py::arg("ensemble_decay") = 0.1)
      .def("push", [](ChunkScheduler& cs, int64_t t0_ns, int64_t dt_ns,
                      py::array_t<double, py::array::c_style | py::array::forcecast> a) {
        if (a.ndim() != 2) throw std::invalid_argument("push: actions must be a [steps, dim] array");
        const int steps = static_cast<int>(a.shape(0)), dim = static_cast<int>(a.shape(1));
        if (dim != cs.config().dim)
          throw std::invalid_argument("push: chunk has " + std::to_string(dim) + " values per action, the scheduler takes " +
                                      std::to_string(cs.config().dim) + " values per action");
        if (steps < 1 || steps > kMaxChunkSteps)
          throw std::invalid_argument("push: a chunk has 1.." + std::to_string(kMaxChunkSteps) + " actions, found " +
                                      std::to_string(steps));
        if (dt_ns <= 0) throw std::invalid_argument("push: dt_ns must be > 0");
        auto c = std::make_unique<ActionChunk>();
        c->t0_ns = t0_ns;
        c->dt_ns = dt_ns;
        c->steps = steps;
        c->dim = dim;
        std::copy(a.data(), a.data() + steps * dim, c->a.begin());
        py::gil_scoped_release release;
        return cs.push(*c);
      }, py::arg("t0_ns"), py::arg("dt_ns"), py::arg("actions"),
         "queue a chunk: actions[k] is for time t0_ns + k*dt_ns (driver clock); returns its seq")
      .def("sample", [](ChunkScheduler& cs, int64_t now_ns) {
        std::vector<double> out(cs.config().dim, NAN);
        const Status st = cs.sample(now_ns, out.data());
        return py::make_tuple(status_name(st), arr(out.data(), cs.config().dim));
      }, py::arg("now_ns"), "tests only (the loop samples it when attached): (status, target)")
      .def("reset", &ChunkScheduler::reset)
      .def("status", [](const ChunkScheduler& cs) { return chunk_status_dict(cs.status()); });

  m.def("set_chunk_scheduler", [](RtLoop& l, std::shared_ptr<ChunkScheduler> s, const std::string& target) {
    if (target != "joints" && target != "hands")
      throw std::invalid_argument("set_chunk_scheduler: target '" + target + "' is not one of: joints, hands");
    l.set_chunk_scheduler(s, target == "joints" ? RtLoop::ChunkTarget::kJointTargets : RtLoop::ChunkTarget::kTaskTargets);
  }, py::arg("loop"), py::arg("scheduler"), py::arg("target") = "joints");

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

  py::class_<WbcGains>(m, "WbcGains")
      .def(py::init<>())
      .def_readwrite("kp", &WbcGains::kp)
      .def_readwrite("kd", &WbcGains::kd)
      .def_readwrite("weight", &WbcGains::weight);
  py::class_<WbcConfig>(m, "WbcConfig", "whole-body controller settings (cpp/wbc/wbc.hpp)")
      .def(py::init<>())
      .def_readwrite("flat_feet", &WbcConfig::flat_feet)
      .def_readwrite("foot_frames", &WbcConfig::foot_frames)
      .def_readwrite("sole_offset_m", &WbcConfig::sole_offset_m)
      .def_readwrite("friction", &WbcConfig::friction)
      .def_readwrite("sole_half_length_m", &WbcConfig::sole_half_length_m)
      .def_readwrite("sole_half_width_m", &WbcConfig::sole_half_width_m)
      .def_readwrite("min_normal_force_n", &WbcConfig::min_normal_force_n)
      .def_readwrite("max_normal_force_n", &WbcConfig::max_normal_force_n)
      .def_readwrite("contact_ramp_s", &WbcConfig::contact_ramp_s)
      .def_readwrite("base_frame", &WbcConfig::base_frame)
      .def_readwrite("torso_frame", &WbcConfig::torso_frame)
      .def_readwrite("hand_frames", &WbcConfig::hand_frames)
      .def_readwrite("com", &WbcConfig::com)
      .def_readwrite("base", &WbcConfig::base)
      .def_readwrite("torso", &WbcConfig::torso)
      .def_readwrite("hands", &WbcConfig::hands)
      .def_readwrite("swing_foot", &WbcConfig::swing_foot)
      .def_readwrite("posture", &WbcConfig::posture)
      .def_readwrite("reg_ddq", &WbcConfig::reg_ddq)
      .def_readwrite("reg_force", &WbcConfig::reg_force)
      .def_readwrite("limit_horizon_s", &WbcConfig::limit_horizon_s)
      .def_readwrite("max_position_error_m", &WbcConfig::max_position_error_m)
      .def_readwrite("balance_guard_start_m", &WbcConfig::balance_guard_start_m)
      .def_readwrite("balance_guard_full_m", &WbcConfig::balance_guard_full_m)
      .def_readwrite("balance_guard_scale", &WbcConfig::balance_guard_scale)
      .def_readwrite("max_rotation_error_rad", &WbcConfig::max_rotation_error_rad)
      .def_readwrite("armature", &WbcConfig::armature)
      .def_readwrite("out_kp", &WbcConfig::out_kp)
      .def_readwrite("out_kd", &WbcConfig::out_kd)
      .def_readwrite("control_rate_hz", &WbcConfig::control_rate_hz)
      .def_readwrite("max_consecutive_failures", &WbcConfig::max_consecutive_failures)
      .def_readwrite("eps_abs", &WbcConfig::eps_abs)
      .def_readwrite("max_iter", &WbcConfig::max_iter)
      .def_readwrite("qp_backend", &WbcConfig::qp_backend)
      .def_readwrite("eliminate_contacts", &WbcConfig::eliminate_contacts);
  py::class_<WbcTargets>(m, "WbcTargets", "whole-body targets; a field counts when its *_set flag is true")
      .def(py::init<>())
      .def(py::init<const WbcTargets&>(), "a copy")
      .def_readwrite("seq", &WbcTargets::seq)
      .def_readwrite("com_set", &WbcTargets::com_set)
      .def_readwrite("com", &WbcTargets::com)
      .def_readwrite("base_set", &WbcTargets::base_set)
      .def_readwrite("base_pos", &WbcTargets::base_pos)
      .def_readwrite("base_quat", &WbcTargets::base_quat)
      .def_readwrite("torso_set", &WbcTargets::torso_set)
      .def_readwrite("torso_quat", &WbcTargets::torso_quat)
      .def_readwrite("hand_set", &WbcTargets::hand_set)
      .def_readwrite("hand_pos", &WbcTargets::hand_pos)
      .def_readwrite("hand_quat", &WbcTargets::hand_quat)
      .def_readwrite("contact_active", &WbcTargets::contact_active)
      .def_readwrite("foot_set", &WbcTargets::foot_set)
      .def_readwrite("foot_pos", &WbcTargets::foot_pos)
      .def_readwrite("foot_quat", &WbcTargets::foot_quat)
      .def_readwrite("posture_set", &WbcTargets::posture_set)
      .def_readwrite("posture", &WbcTargets::posture);
  py::class_<ControllerMode, std::shared_ptr<ControllerMode>>(m, "ControllerMode");
  py::class_<WholeBodyController, ControllerMode, std::shared_ptr<WholeBodyController>>(
      m, "WholeBodyController", "task-space inverse-dynamics QP (cpp/wbc/wbc.hpp)")
      .def(py::init<const RobotModel&, const WbcConfig&>(), py::arg("robot"), py::arg("config"))
      .def_property_readonly("n_variables", &WholeBodyController::n_variables)
      .def_property_readonly("n_eq", &WholeBodyController::n_eq)
      .def_property_readonly("n_in", &WholeBodyController::n_in)
      .def_property_readonly("solver_variables", &WholeBodyController::solver_variables)
      .def_property_readonly("solver_inequalities", &WholeBodyController::solver_inequalities)
      .def_property_readonly("n_contacts", &WholeBodyController::n_contacts)
      .def_property_readonly("contact_dim", &WholeBodyController::contact_dim)
      .def("publish_targets", &WholeBodyController::publish_targets, py::arg("targets"),
           py::call_guard<py::gil_scoped_release>())
      .def("inject_failures", &WholeBodyController::inject_failures, py::arg("n"))
      .def("last_ddq", &WholeBodyController::last_ddq)
      .def("last_forces", &WholeBodyController::last_forces)
      .def("last_tau", &WholeBodyController::last_tau)
      .def("status", [](const WholeBodyController& w) {
        WbcStatus s;
        w.status(s);
        py::dict d;
        d["solves"] = s.solves;
        d["failures"] = s.failures;
        d["cold_restarts"] = s.cold_restarts;
        d["relaxed_solves"] = s.relaxed_solves;
        d["eliminated_solves"] = s.eliminated_solves;
        d["consecutive_failures"] = s.consecutive_failures;
        d["iterations"] = s.last_iterations;
        d["solve_us"] = s.last_solve_us;
        d["model_us"] = s.last_model_us;
        d["com"] = arr(s.com.data(), 3);
        d["com_err"] = arr(s.com_err.data(), 3);
        d["balance_guard"] = s.balance_guard;
        d["base_pos_err"] = s.base_pos_err;
        d["base_rot_err"] = s.base_rot_err;
        d["torso_rot_err"] = s.torso_rot_err;
        d["hand_pos_err"] = arr(s.hand_pos_err.data(), kMaxHands);
        d["hand_rot_err"] = arr(s.hand_rot_err.data(), kMaxHands);
        d["hand_active"] = arr(s.hand_active.data(), kMaxHands);
        py::list wr;
        for (int c = 0; c < w.n_contacts(); ++c) wr.append(arr(s.contact_wrench[c].data(), 6));
        d["contact_wrench"] = wr;
        d["contact_weight"] = arr(s.contact_weight.data(), w.n_contacts());
        d["primal_residual"] = s.max_constraint_violation;
        d["dual_residual"] = s.last_dual_residual;
        d["qp_status"] = s.last_qp_status;
        return d;
      })
      .def("step", [](WholeBodyController& w, const RobotParams& p, py::dict state) {
        const State s = state_from_dict(p.n, state);
        Command c;
        Status st;
        {
          py::gil_scoped_release release;
          Command last;
          last.n = p.n;
          Targets none;
          ModeRequest req;
          st = w.enter(p, s, last, none, req);
          if (st == Status::kOk) st = w.step(p, s, c);
        }
        py::dict out = command_dict(c);
        out["status"] = status_name(st);
        return out;
      }, "enter + one update on a state dict (tests); the loop calls the C++ directly")
      .def("enter", [](WholeBodyController& w, const RobotParams& p, py::dict state) {
        const State s = state_from_dict(p.n, state);
        Command last;
        last.n = p.n;
        Targets none;
        ModeRequest req;
        return std::string(status_name(w.enter(p, s, last, none, req)));
      })
      .def("tick", [](WholeBodyController& w, const RobotParams& p, py::dict state) {
        const State s = state_from_dict(p.n, state);
        Command c;
        Status st;
        {
          py::gil_scoped_release release;
          st = w.step(p, s, c);
        }
        return std::string(status_name(st));
      }, "one update() on a state dict (benchmarks: timing is read from status())")
      .def("replay", [](WholeBodyController& w, const RobotParams& p, py::list states, py::list targets) {
        // The production path: updates back to back in C++, as the real-time loop calls them, with no
        // Python between ticks. targets[k] (a WbcTargets or None) is published before tick k.
        const size_t n = py::len(states);
        if (py::len(targets) != n) throw std::invalid_argument("replay: one targets entry (or None) per state");
        std::vector<State> ss;
        std::vector<WbcTargets> ts;
        std::vector<int> t_at;
        ss.reserve(n);
        for (size_t k = 0; k < n; ++k) {
          ss.push_back(state_from_dict(p.n, states[k].cast<py::dict>()));
          if (!targets[k].is_none()) {
            ts.push_back(targets[k].cast<WbcTargets>());
            t_at.push_back(static_cast<int>(k));
          }
        }
        const int nv = static_cast<int>(w.last_ddq().size());
        py::array_t<double> model_us(n), solve_us(n), ddq({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(nv)});
        py::array_t<int> iterations(n);
        auto mu = model_us.mutable_unchecked<1>();
        auto su = solve_us.mutable_unchecked<1>();
        auto it = iterations.mutable_unchecked<1>();
        auto dd = ddq.mutable_unchecked<2>();
        int failures = 0;
        {
          py::gil_scoped_release release;
          size_t next = 0;
          Command c;
          WbcStatus st;
          for (size_t k = 0; k < n; ++k) {
            if (next < ts.size() && t_at[next] == static_cast<int>(k)) w.publish_targets(ts[next++]);
            if (w.step(p, ss[k], c) != Status::kOk) ++failures;
            w.status(st);
            mu(k) = st.last_model_us;
            su(k) = st.last_solve_us;
            it(k) = st.last_iterations;
            w.copy_last_ddq(&dd(k, 0));
          }
        }
        py::dict out;
        out["model_us"] = model_us;
        out["solve_us"] = solve_us;
        out["iterations"] = iterations;
        out["ddq"] = ddq;
        out["failures"] = failures;
        return out;
      }, py::arg("params"), py::arg("states"), py::arg("targets"),
      "update() on each state back to back in C++ (the real-time path); per-tick model/solve times, "
      "iterations and accelerations");
  m.def("set_wbc_mode", [](RtLoop& l, std::shared_ptr<WholeBodyController> w) { l.set_wbc_mode(w); });

  py::class_<LatencyHistogram>(m, "LatencyHistogram", "the loop's histogram, exposed for tests")
      .def(py::init<>())
      .def("record_ns", &LatencyHistogram::record_ns)
      .def("record_many_ns", [](LatencyHistogram& h, const std::vector<int64_t>& v) { for (auto x : v) h.record_ns(x); })
      .def("percentile_us", &LatencyHistogram::percentile_us)
      .def_property_readonly("count", &LatencyHistogram::count)
      .def_property_readonly("max_us", &LatencyHistogram::max_us)
      .def_property_readonly("mean_us", &LatencyHistogram::mean_us)
      .def("reset", &LatencyHistogram::reset);

  py::module_ t = m.def_submodule("testing", "stress helpers for the lock-free buffers");
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
