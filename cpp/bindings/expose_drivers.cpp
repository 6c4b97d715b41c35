// vertebra._rt bindings: the Driver interface and lifecycle, the mock, the fault injector, MuJoCo.
#include "bindings/common.hpp"

#include "drivers/driver.hpp"
#include "drivers/fault_injector.hpp"
#include "drivers/mock_driver.hpp"
#ifdef VERTEBRA_WITH_MUJOCO
#include "drivers/mujoco_driver.hpp"
#endif
#ifdef VERTEBRA_WITH_DDS
#include "drivers/unitree/unitree_dds_driver.hpp"
#if defined(VERTEBRA_WITH_MUJOCO)
#include "drivers/unitree/unitree_sim_bridge.hpp"
#endif
#endif

namespace vertebra::bindings {

#ifdef VERTEBRA_WITH_DDS
py::dict remote_dict(const unitree::RemoteState& r) {
  py::dict d;
  d["buttons"] = r.buttons;
  d["lx"] = r.lx;
  d["rx"] = r.rx;
  d["ry"] = r.ry;
  d["l2"] = r.l2;
  d["ly"] = r.ly;
  return d;
}
#endif

void expose_drivers(py::module_& m) {
  py::class_<Driver, std::shared_ptr<Driver>>(m, "Driver", "robot bus or simulator (see cpp/drivers/driver.hpp)")
      .def("configure", [](Driver& d, const std::vector<std::string>& names, double rate, const std::vector<double>& damping_kd) {
        DriverInit i;
        i.joint_names = names;
        i.control_rate_hz = rate;
        i.damping_kd = damping_kd;
        d.configure(i);
      }, py::arg("joint_names"), py::arg("control_rate_hz"), py::arg("damping_kd") = std::vector<double>{},
         "lifecycle: unconfigured -> inactive (load, open, map joints); damping_kd: the hand-back on deactivate")
      .def("activate", &Driver::activate, "lifecycle: inactive -> active (motors into the command mode)")
      .def("deactivate", &Driver::deactivate, "lifecycle: active -> inactive (the robot handed back damped)")
      .def("cleanup", &Driver::cleanup, "lifecycle: inactive -> unconfigured")
      .def("shutdown", &Driver::shutdown, "lifecycle: from any state to finalized (deactivating and cleaning up)")
      .def_property_readonly("lifecycle_state", [](const Driver& d) { return std::string(driver_state_name(d.lifecycle_state())); })
      .def("init", [](Driver& d, const std::vector<std::string>& names, double rate) {
        DriverInit i;
        i.joint_names = names;
        i.control_rate_hz = rate;
        d.configure(i);
        d.activate();
      }, py::arg("joint_names"), py::arg("control_rate_hz"), "configure() then activate() (tests and simple tools)")
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

#ifdef VERTEBRA_WITH_MUJOCO
  py::class_<SimOptions>(m, "SimOptions", "MuJoCo driver options (see cpp/drivers/mujoco_driver.hpp)")
      .def(py::init<>())
      .def_readwrite("mjcf_path", &SimOptions::mjcf_path)
      .def_readwrite("sim_rate_hz", &SimOptions::sim_rate_hz)
      .def_readwrite("base_pos", &SimOptions::base_pos)
      .def_readwrite("base_quat", &SimOptions::base_quat)
      .def_readwrite("foot_bodies", &SimOptions::foot_bodies)
      .def_readwrite("initial_joint_q", &SimOptions::initial_joint_q)
      .def_readwrite("noise_q_rad", &SimOptions::noise_q_rad)
      .def_readwrite("noise_q_resolution_rad", &SimOptions::noise_q_resolution_rad)
      .def_readwrite("noise_dq_rad_s", &SimOptions::noise_dq_rad_s)
      .def_readwrite("noise_gyro_rad_s", &SimOptions::noise_gyro_rad_s)
      .def_readwrite("noise_gyro_bias_rad_s", &SimOptions::noise_gyro_bias_rad_s)
      .def_readwrite("noise_acc_m_s2", &SimOptions::noise_acc_m_s2)
      .def_readwrite("noise_acc_bias_m_s2", &SimOptions::noise_acc_bias_m_s2)
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

  py::class_<MotorThermal>(m, "MotorThermal",
                           "first-order motor thermal model, off while either coefficient is 0 "
                           "(cpp/drivers/mujoco_driver.hpp)")
      .def(py::init([](double heating, double time_constant) { return MotorThermal{heating, time_constant}; }),
           py::arg("heating_c_per_nm2_s") = 0.0, py::arg("time_constant_s") = 0.0)
      .def_readwrite("heating_c_per_nm2_s", &MotorThermal::heating_c_per_nm2_s, "°C/s per (N·m)² of motor torque")
      .def_readwrite("time_constant_s", &MotorThermal::time_constant_s, "s, cooling towards the ambient motor_temp_c")
      .def_property_readonly("enabled", &MotorThermal::enabled);

  auto friction_dict = [](const JointFriction& f) {
    py::dict d;
    d["damping_nm_s_rad"] = f.damping_nm_s_rad;
    d["frictionloss_nm"] = f.frictionloss_nm;
    return d;
  };
  py::class_<MujocoDriver, Driver, std::shared_ptr<MujocoDriver>>(m, "MujocoDriver", "simulated robot (cpp/drivers/mujoco_driver.hpp)")
      .def(py::init<SimOptions>(), py::arg("options"))
      .def("hoist_lower_to", &MujocoDriver::hoist_lower_to, py::arg("anchor_z_m"), py::arg("speed_m_s"))
      .def("hoist_release", &MujocoDriver::hoist_release)
      .def("push", &MujocoDriver::push, py::arg("fx"), py::arg("fy"), py::arg("fz"), py::arg("duration_s"),
           "apply an external force (N, world) on the base's centre of mass for duration_s of sim time")
      .def_property_readonly("pushing", &MujocoDriver::pushing)
      .def("set_joint_friction", [](MujocoDriver& d, int joint, double damping, double frictionloss) {
        d.set_joint_friction(joint, {damping, frictionloss});
      }, py::arg("joint"), py::arg("damping_nm_s_rad"), py::arg("frictionloss_nm"),
         "joint (motor order): viscous damping and dry friction (MuJoCo dof_damping, dof_frictionloss), in force "
         "from the next physics step; safe while the loop or a bridge steps")
      .def("joint_friction", [friction_dict](const MujocoDriver& d, int joint) { return friction_dict(d.joint_friction(joint)); },
           py::arg("joint"), "{damping_nm_s_rad, frictionloss_nm} as last set")
      .def("nominal_joint_friction", [friction_dict](const MujocoDriver& d, int joint) {
        return friction_dict(d.nominal_joint_friction(joint));
      }, py::arg("joint"), "{damping_nm_s_rad, frictionloss_nm} of the model as loaded (the robot config's sim.joint_dynamics)")
      .def("set_effort_limit", &MujocoDriver::set_effort_limit, py::arg("joint"), py::arg("limit_nm"),
           "the motor's torque saturation (N·m, > 0), in force from the next physics step")
      .def("effort_limit", &MujocoDriver::effort_limit, py::arg("joint"))
      .def("nominal_effort_limit", &MujocoDriver::nominal_effort_limit, py::arg("joint"),
           "the model's (the URDF's effort limit)")
      .def("set_motor_thermal", &MujocoDriver::set_motor_thermal, py::arg("thermal"),
           "the motor thermal model (MotorThermal; both coefficients > 0: on, every motor starting at motor_temp_c)")
      .def_property_readonly("motor_thermal", &MujocoDriver::motor_thermal)
      .def("set_heat_scale", &MujocoDriver::set_heat_scale, py::arg("joint"), py::arg("scale"),
           "multiplier (>= 0) of the joint motor's heating in the thermal model")
      .def("heat_scale", &MujocoDriver::heat_scale, py::arg("joint"))
      .def_property_readonly("hoist_engaged", &MujocoDriver::hoist_engaged)
      .def_property_readonly("hoist_anchor_z", &MujocoDriver::hoist_anchor_z)
      .def_property_readonly("hoist_tension_n", &MujocoDriver::hoist_tension_n)
      .def_property_readonly("sim_timestep", &MujocoDriver::sim_timestep)
      .def_property_readonly("total_mass", &MujocoDriver::total_mass)
      .def_property_readonly("steps_per_tick", &MujocoDriver::steps_per_tick)
      .def_property_readonly("gyro_bias", [](const MujocoDriver& d) { return std::vector<double>(d.gyro_bias().begin(), d.gyro_bias().end()); },
                             "the per-run gyroscope bias (rad/s, IMU frame) the noise model drew at configure time")
      .def_property_readonly("acc_bias", [](const MujocoDriver& d) { return std::vector<double>(d.acc_bias().begin(), d.acc_bias().end()); },
                             "the per-run accelerometer bias (m/s², IMU frame) the noise model drew at configure time")
      .def("qpos", [](const MujocoDriver& d) {
        SimPose p;
        d.pose(p);
        return py::make_tuple(p.time, arr(p.qpos.data(), p.nq));
      }, "(sim time, full MuJoCo qpos) after the latest write; safe while the loop runs")
      .def("base_truth", [](const MujocoDriver& d) {
        SimPose p;
        d.pose(p);
        py::dict t;
        t["time_s"] = p.time;
        t["base_pos"] = arr(p.base_pos.data(), 3);
        t["base_quat"] = arr(p.base_quat.data(), 4);
        t["base_lin_vel"] = arr(p.base_lin_vel.data(), 3);
        t["base_ang_vel"] = arr(p.base_ang_vel.data(), 3);
        return t;
      }, "the floating base's truth after the latest write (time_s, base_pos, base_quat, base_lin_vel world, "
         "base_ang_vel base frame); safe while the loop or a bridge runs");
#endif
#ifdef VERTEBRA_WITH_DDS
  namespace uni = vertebra::unitree;
  auto messages_of = [](const std::string& s) {
    if (s == "hg") return uni::Messages::kHg;
    if (s == "go") return uni::Messages::kGo;
    throw std::invalid_argument("messages: found '" + s + "'; valid: hg (G1), go (Go2)");
  };
  py::class_<uni::UnitreeDdsOptions>(m, "UnitreeDdsOptions", "Unitree DDS driver options (cpp/drivers/unitree/unitree_dds_driver.hpp)")
      .def(py::init<>())
      .def_property("messages", [](const uni::UnitreeDdsOptions& o) { return o.messages == uni::Messages::kHg ? "hg" : "go"; },
                    [messages_of](uni::UnitreeDdsOptions& o, const std::string& v) { o.messages = messages_of(v); })
      .def_readwrite("domain_id", &uni::UnitreeDdsOptions::domain_id)
      .def_readwrite("network_interface", &uni::UnitreeDdsOptions::network_interface)
      .def_readwrite("lowcmd_topic", &uni::UnitreeDdsOptions::lowcmd_topic)
      .def_readwrite("lowstate_topic", &uni::UnitreeDdsOptions::lowstate_topic)
      .def_readwrite("motors", &uni::UnitreeDdsOptions::motors)
      .def_readwrite("mode_pr", &uni::UnitreeDdsOptions::mode_pr)
      .def_readwrite("estop_buttons", &uni::UnitreeDdsOptions::estop_buttons)
      .def_readwrite("lockstep", &uni::UnitreeDdsOptions::lockstep)
      .def_readwrite("state_timeout_s", &uni::UnitreeDdsOptions::state_timeout_s)
      .def_readwrite("lockstep_timeout_s", &uni::UnitreeDdsOptions::lockstep_timeout_s)
      .def_readwrite("sportmodestate_topic", &uni::UnitreeDdsOptions::sportmodestate_topic)
      .def_readwrite("motion_service_timeout_s", &uni::UnitreeDdsOptions::motion_service_timeout_s,
                     "activate(): how long to wait for motion_switcher's CheckMode answer (none: no service)")
      .def_readwrite("release_motion_service", &uni::UnitreeDdsOptions::release_motion_service,
                     "activate() releases Unitree's built-in motion service (ReleaseMode) instead of refusing")
      .def_readwrite("release_timeout_s", &uni::UnitreeDdsOptions::release_timeout_s);
  py::class_<uni::UnitreeDdsDriver, Driver, std::shared_ptr<uni::UnitreeDdsDriver>>(
      m, "UnitreeDdsDriver", "Unitree G1/Go2 over DDS rt/lowcmd, rt/lowstate (cpp/drivers/unitree/unitree_dds_driver.hpp)")
      .def(py::init<uni::UnitreeDdsOptions>(), py::arg("options"))
      .def("counters", [](const uni::UnitreeDdsDriver& d) {
        const auto c = d.counters();
        py::dict r;
        r["states"] = c.states;
        r["crc_errors"] = c.crc_errors;
        r["commands"] = c.commands;
        r["write_errors"] = c.write_errors;
        r["lockstep_timeouts"] = c.lockstep_timeouts;
        r["lowcmd_writers"] = c.lowcmd_writers;
        r["sportmodestate_writers"] = c.sportmodestate_writers;
        r["sportmodestates"] = c.sportmodestates;
        r["motion_service_answered"] = c.motion_service_answered;
        r["motion_service_mode"] = c.motion_service_mode;
        r["motion_service_released"] = c.motion_service_released;
        r["rpc_requests"] = c.rpc_requests;
        r["lowcmd_conflict"] = c.lowcmd_conflict;
        return r;
      }, "samples taken, CRC errors (dropped), commands sent, lockstep waits that timed out, other rt/lowcmd "
         "writers and rt/sportmodestate publishers now, what activate() learnt of the motion service, and "
         "whether read() reports a lowcmd conflict")
      .def("foot_force", [](const uni::UnitreeDdsDriver& d) {
        return std::vector<double>(d.foot_force().begin(), d.foot_force().end());
      }, "the foot forces of the newest state read on the tick (Go2 LowState_.foot_force; zeros on a G1)")
      .def("remote", [](const uni::UnitreeDdsDriver& d) { return remote_dict(d.remote()); },
           "the wireless remote in the newest state");
#if defined(VERTEBRA_WITH_MUJOCO)
  py::class_<uni::BridgeOptions>(m, "BridgeOptions", "DDS sim bridge options (cpp/drivers/unitree/unitree_sim_bridge.hpp)")
      .def(py::init<>())
      .def_property("messages", [](const uni::BridgeOptions& o) { return o.messages == uni::Messages::kHg ? "hg" : "go"; },
                    [messages_of](uni::BridgeOptions& o, const std::string& v) { o.messages = messages_of(v); })
      .def_readwrite("domain_id", &uni::BridgeOptions::domain_id)
      .def_readwrite("network_interface", &uni::BridgeOptions::network_interface)
      .def_readwrite("lowcmd_topic", &uni::BridgeOptions::lowcmd_topic)
      .def_readwrite("lowstate_topic", &uni::BridgeOptions::lowstate_topic)
      .def_readwrite("motors", &uni::BridgeOptions::motors)
      .def_readwrite("lockstep", &uni::BridgeOptions::lockstep)
      .def_readwrite("rate_hz", &uni::BridgeOptions::rate_hz)
      .def_readwrite("mode_machine", &uni::BridgeOptions::mode_machine)
      .def_readwrite("motion_service", &uni::BridgeOptions::motion_service,
                     "the emulated built-in motion service starts active (as the robot boots); false: released")
      .def_readwrite("motion_service_mode", &uni::BridgeOptions::motion_service_mode)
      .def_readwrite("sportmodestate_topic", &uni::BridgeOptions::sportmodestate_topic)
      .def_readwrite("sportmodestate_rate_hz", &uni::BridgeOptions::sportmodestate_rate_hz)
      .def_readwrite("motion_switcher", &uni::BridgeOptions::motion_switcher,
                     "answer motion_switcher RPC; false: no such service (an older robot or bridge)");
  py::class_<uni::UnitreeSimBridge, std::shared_ptr<uni::UnitreeSimBridge>>(
      m, "UnitreeSimBridge", "the simulated robot over DDS (cpp/drivers/unitree/unitree_sim_bridge.hpp)")
      .def(py::init<std::shared_ptr<MujocoDriver>, uni::BridgeOptions>(), py::arg("sim"), py::arg("options"))
      .def("start", &uni::UnitreeSimBridge::start, py::call_guard<py::gil_scoped_release>())
      .def("stop", &uni::UnitreeSimBridge::stop, py::call_guard<py::gil_scoped_release>())
      .def("counters", [](const uni::UnitreeSimBridge& b) {
        const auto c = b.counters();
        py::dict r;
        r["commands"] = c.commands;
        r["crc_errors"] = c.crc_errors;
        r["states"] = c.states;
        r["corrupted_sent"] = c.corrupted_sent;
        r["dropped_sent"] = c.dropped_sent;
        r["ignored_commands"] = c.ignored_commands;
        r["sportmodestates"] = c.sportmodestates;
        r["rpc_requests"] = c.rpc_requests;
        r["motion_service_active"] = c.motion_service_active;
        r["motion_service_mode"] = c.motion_service_mode;
        return r;
      })
      .def("select_motion_service", &uni::UnitreeSimBridge::select_motion_service, py::arg("mode") = "normal",
           "start the emulated motion service (as motion_switcher SelectMode)")
      .def("release_motion_service", &uni::UnitreeSimBridge::release_motion_service,
           "stop the emulated motion service (as motion_switcher ReleaseMode)")
      .def_property_readonly("motion_service_active", &uni::UnitreeSimBridge::motion_service_active)
      .def("set_remote", [](uni::UnitreeSimBridge& b, int buttons, float lx, float rx, float ry, float l2, float ly) {
        uni::RemoteState r;
        r.buttons = static_cast<uint16_t>(buttons);
        r.lx = lx, r.rx = rx, r.ry = ry, r.l2 = l2, r.ly = ly;
        b.set_remote(r);
      }, py::arg("buttons") = 0, py::arg("lx") = 0.f, py::arg("rx") = 0.f, py::arg("ry") = 0.f, py::arg("l2") = 0.f,
         py::arg("ly") = 0.f)
      .def("corrupt_states", &uni::UnitreeSimBridge::corrupt_states, py::arg("n"))
      .def("drop_states", &uni::UnitreeSimBridge::drop_states, py::arg("n"));
#endif
  py::class_<uni::MotionSwitcherClient, std::shared_ptr<uni::MotionSwitcherClient>>(
      m, "MotionSwitcherClient",
      "Unitree's motion_switcher service over DDS RPC, as unitree_sdk2's client calls it "
      "(cpp/drivers/unitree/motion_switcher.hpp): a robot's, or the sim bridge's")
      .def(py::init<int, const std::string&>(), py::arg("domain_id") = 0, py::arg("network_interface") = "")
      .def("check_mode", &uni::MotionSwitcherClient::check_mode, py::arg("timeout_s") = 1.0,
           py::call_guard<py::gil_scoped_release>(), "CheckMode: the active mode (\"\" released); None: no answer")
      .def("select_mode", &uni::MotionSwitcherClient::select_mode, py::arg("mode"), py::arg("timeout_s") = 1.0,
           py::call_guard<py::gil_scoped_release>(), "SelectMode: the answer's code (0: done); None: no answer")
      .def("release_mode", &uni::MotionSwitcherClient::release_mode, py::arg("timeout_s") = 1.0,
           py::call_guard<py::gil_scoped_release>(), "ReleaseMode: the answer's code (0: done); None: no answer");
#endif
}

}  // namespace vertebra::bindings
