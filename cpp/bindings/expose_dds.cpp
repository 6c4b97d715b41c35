// vertebra._rt bindings: DDS tools that are not a driver (the survey behind `vertebra dds doctor`).
#include "bindings/common.hpp"

#ifdef VERTEBRA_WITH_DDS
#include "drivers/unitree/dds_doctor.hpp"
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
#endif
}

}  // namespace vertebra::bindings
