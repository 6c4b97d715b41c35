// vertebra._rt bindings: DDS tools that are not a driver (the survey behind `vertebra dds doctor`),
// the sim bridge's emulated hardware faults (added to UnitreeSimBridge and BridgeOptions, which
// expose_drivers.cpp declares) and a lockstep exchange for bench tests against the bridge.
#include "bindings/common.hpp"

#ifdef VERTEBRA_WITH_DDS
#include "drivers/driver.hpp"
#include "drivers/unitree/dds_doctor.hpp"
#if defined(VERTEBRA_WITH_MUJOCO)
#include "drivers/unitree/bridge_faults.hpp"
#include "drivers/unitree/unitree_sim_bridge.hpp"
#endif
#endif

namespace vertebra::bindings {

#ifdef VERTEBRA_WITH_DDS
namespace {
namespace uni = vertebra::unitree;

py::dict survey_dict(const uni::DdsSurvey& s) {
  py::dict d;
  d["domain_id"] = s.options.domain_id;
  d["network_interface"] = s.options.network_interface;
  d["seconds"] = s.options.seconds;
  d["lowstate_topic"] = s.options.lowstate_topic;
  d["lowcmd_topic"] = s.options.lowcmd_topic;
  d["listened_s"] = s.listened_s;
  d["own_guid"] = s.own_guid;
  py::list participants;
  for (const auto& p : s.participants) {
    py::dict e;
    e["guid"] = p.guid;
    e["entity_name"] = p.entity_name;
    e["hostname"] = p.hostname;
    e["process"] = p.process;
    e["pid"] = p.pid;
    e["addresses"] = p.addresses;
    e["alive"] = p.alive;
    participants.append(e);
  }
  d["participants"] = participants;
  py::list endpoints;
  for (const auto& p : s.endpoints) {
    py::dict e;
    e["kind"] = p.writer ? "publication" : "subscription";
    e["guid"] = p.guid;
    e["participant_guid"] = p.participant_guid;
    e["topic"] = p.topic;
    e["type"] = p.type;
    e["reliable"] = p.reliable;
    e["alive"] = p.alive;
    endpoints.append(e);
  }
  d["endpoints"] = endpoints;
  py::list traffic;
  for (const auto& t : s.traffic) {
    py::dict e;
    e["topic"] = t.topic;
    e["type"] = t.type;
    e["matched_writers"] = t.matched_writers;
    e["samples"] = t.samples;
    e["crc_errors"] = t.crc_errors;
    e["rate_hz"] = t.rate_hz;
    e["gap_p50_ms"] = t.gap_p50_ms;
    e["gap_p99_ms"] = t.gap_p99_ms;
    e["gap_max_ms"] = t.gap_max_ms;
    traffic.append(e);
  }
  d["traffic"] = traffic;
  py::list interfaces;
  for (const auto& n : s.interfaces) {
    py::dict e;
    e["name"] = n.name;
    e["up"] = n.up;
    e["multicast"] = n.multicast;
    e["loopback"] = n.loopback;
    e["ipv4"] = n.ipv4;
    interfaces.append(e);
  }
  d["interfaces"] = interfaces;
  return d;
}
}  // namespace
#endif

void expose_dds(py::module_& m) {
#ifdef VERTEBRA_WITH_DDS
  m.def("dds_survey", [](int domain_id, const std::string& network_interface, double seconds,
                         const std::string& lowstate_topic, const std::string& lowcmd_topic) {
    uni::SurveyOptions o;
    o.domain_id = domain_id;
    o.network_interface = network_interface;
    o.seconds = seconds;
    o.lowstate_topic = lowstate_topic;
    o.lowcmd_topic = lowcmd_topic;
    uni::DdsSurvey s;
    {
      py::gil_scoped_release release;  // the whole listening window
      s = uni::survey_dds(o);
    }
    return survey_dict(s);
  }, py::arg("domain_id"), py::arg("network_interface"), py::arg("seconds"), py::arg("lowstate_topic") = "rt/lowstate",
     py::arg("lowcmd_topic") = "rt/lowcmd",
     "Listen on a DDS domain through an interface for `seconds` without writing anything, and report: "
     "participants (guid, host, process, pid), endpoints (publications and subscriptions: topic, type name, "
     "participant), the traffic on lowstate_topic and lowcmd_topic decoded as unitree_hg and as unitree_go "
     "(samples, CRC errors, rate, arrival gaps p50/p99/max) and this machine's interfaces. The doctor's own "
     "participant is left out (cpp/drivers/unitree/dds_doctor.hpp). ValueError for a bad domain, interface "
     "or window.");

  m.def("dds_lockstep_exchange", [](Driver& driver, py::dict command, int steps) {
    if (!driver.simulated())
      throw std::invalid_argument("dds_lockstep_exchange: driver '" + driver.name() +
                                  "' is not simulated; valid: a lockstep driver of the sim bridge (no safety runs here)");
    if (steps < 1) throw std::invalid_argument("dds_lockstep_exchange: steps: found " + std::to_string(steps) + "; valid: >= 1");
    const int n = static_cast<int>(py::len(command["q"]));
    if (n < 1 || n > kMaxJoints)
      throw std::invalid_argument("dds_lockstep_exchange: command: found " + std::to_string(n) + " joints; valid: 1 to " +
                                  std::to_string(kMaxJoints));
    const Command c = command_from_dict(n, command);
    State s;
    Status read = Status::kOk, wrote = Status::kOk;
    {
      py::gil_scoped_release release;
      for (int k = 0; k < steps; ++k) {
        wrote = driver.write(c);
        read = driver.read(s);
      }
    }
    py::dict out = state_dict(s);
    out["status"] = status_name(read);
    out["write_status"] = status_name(wrote);
    return out;
  }, py::arg("driver"), py::arg("command"), py::arg("steps") = 1,
     "Outside any loop (no limiter, no safety): `steps` times driver.write(command) then driver.read(), which in "
     "lockstep waits for the bridge's answer (one control period per command). command: {q, dq, kp, kd, tau_ff}, "
     "one value per joint. Returns the last state read (state dict, with status and write_status). Refuses a "
     "driver that is not simulated (a real robot). For bench tests against the sim bridge.");

#if defined(VERTEBRA_WITH_MUJOCO)
  py::class_<uni::JointFault>(m, "JointFault",
                              "one joint's emulated hardware faults, healthy by default "
                              "(cpp/drivers/unitree/bridge_faults.hpp)")
      .def(py::init<>())
      .def_readwrite("sign", &uni::JointFault::sign, "1, or -1: the motor wired reversed (motor frame)")
      .def_readwrite("offset_rad", &uni::JointFault::offset_rad, "encoder offset: reported q = sign * theta + offset")
      .def_readwrite("friction_scale", &uni::JointFault::friction_scale,
                     "x the joint's damping and frictionloss (the robot config's sim.joint_dynamics)")
      .def_readwrite("torque_limit_scale", &uni::JointFault::torque_limit_scale,
                     "(0, 1]: the motor saturates at this fraction of its effort limit")
      .def_readwrite("heat_scale", &uni::JointFault::heat_scale, "x the heating of the motor thermal model")
      .def_property_readonly("healthy", &uni::JointFault::healthy)
      .def("__repr__", [](const uni::JointFault& f) {
        return "JointFault(sign=" + std::to_string(f.sign) + ", offset_rad=" + std::to_string(f.offset_rad) +
               ", friction_scale=" + std::to_string(f.friction_scale) + ", torque_limit_scale=" +
               std::to_string(f.torque_limit_scale) + ", heat_scale=" + std::to_string(f.heat_scale) + ")";
      });
  py::class_<uni::HardwareFaults>(m, "HardwareFaults",
                                  "the sim bridge's emulated hardware faults, none by default "
                                  "(cpp/drivers/unitree/bridge_faults.hpp)")
      .def(py::init<>())
      .def_readwrite("joints", &uni::HardwareFaults::joints, "empty (none), or one JointFault per joint, robot joint order")
      .def_readwrite("state_drop_probability", &uni::HardwareFaults::state_drop_probability,
                     "each rt/lowstate sample is not sent with this probability (0 to 0.5)")
      .def_readwrite("crc_corrupt_probability", &uni::HardwareFaults::crc_corrupt_probability,
                     "each rt/lowstate sample goes out with a wrong CRC with this probability (0 to 0.5)")
      .def_readwrite("command_latency_ms", &uni::HardwareFaults::command_latency_ms,
                     "received rt/lowcmd take effect this much later (0 to 200 ms)")
      .def_readwrite("seed", &uni::HardwareFaults::seed, "the random bus faults' generator seed");

  auto options = py::reinterpret_borrow<py::class_<uni::BridgeOptions>>(m.attr("BridgeOptions"));
  options.def_readwrite("faults", &uni::BridgeOptions::faults, "the emulated hardware faults at start (HardwareFaults)")
      .def_readwrite("motor_thermal", &uni::BridgeOptions::motor_thermal,
                     "the motors' thermal model (MotorThermal; off by default: constant temperature)");
  auto bridge = py::reinterpret_borrow<py::class_<uni::UnitreeSimBridge, std::shared_ptr<uni::UnitreeSimBridge>>>(
      m.attr("UnitreeSimBridge"));
  bridge.def("set_faults", &uni::UnitreeSimBridge::set_faults, py::arg("faults"), py::call_guard<py::gil_scoped_release>(),
             "the emulated hardware faults from the next control period (checked: ValueError naming the field); "
             "the random generator restarts from faults.seed")
      .def("faults", &uni::UnitreeSimBridge::faults, "the emulated hardware faults in force (HardwareFaults)");
#endif
#endif
}

}  // namespace vertebra::bindings
