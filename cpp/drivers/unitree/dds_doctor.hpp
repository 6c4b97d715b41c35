// `vertebra dds doctor`: what is on a DDS domain, seen from one interface, over a listening window.
// What an integrator connecting a G1 or Go2 needs on day one: which participants there are (host,
// process), which topics with which type names, who publishes rt/lowcmd (Unitree's built-in motion
// service, a second controller), and how rt/lowstate arrives (rate, gaps between samples, CRC
// errors). The doctor only listens: it creates readers, never a writer, so it cannot disturb a
// robot. Configuration-time code (it allocates, blocks for the window and throws); never on the tick.
//
// Built on Cyclone DDS 0.10.2's C API (Debian cyclonedds-dev): the built-in topics
// DCPSParticipant (dds_builtintopic_participant_t: GUID, QoS) and DCPSPublication /
// DCPSSubscription (dds_builtintopic_endpoint_t: GUID, participant GUID, topic_name, type_name,
// QoS). A Cyclone peer (Unitree's SDKs use Cyclone 0.10.2 as well) announces its host, process
// name, pid and addresses as the participant QoS properties __Hostname, __ProcessName, __Pid and
// __NetworkAddresses (dds/ddsi/q_protocol.h, DDS_BUILTIN_TOPIC_PARTICIPANT_PROPERTY_*); other
// vendors' participants leave them empty.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vertebra::unitree {

struct SurveyOptions {
  int domain_id = 0;              // 0 to 232 (Unitree robots use 0)
  std::string network_interface;  // as the driver's: "" Cyclone chooses, "lo" this machine only
  double seconds = 2.0;           // the listening window, > 0
  std::string lowstate_topic = "rt/lowstate";
  std::string lowcmd_topic = "rt/lowcmd";
};

// A network interface of this machine (getifaddrs), for "no participant at all" findings.
struct NetInterface {
  std::string name;
  bool up = false, multicast = false, loopback = false;
  std::vector<std::string> ipv4;  // dotted addresses
};

struct SurveyParticipant {
  std::string guid;  // 16 bytes as four 8-digit hex groups "0110abcd:...:000001c1"
  std::string entity_name;  // the participant's QoS entity name, "" when it has none
  std::string hostname, process, pid, addresses;  // Cyclone's properties, "" from other vendors
  bool alive = true;  // false: it left during the window
};

struct SurveyEndpoint {
  bool writer = true;  // a publication (DataWriter), else a subscription (DataReader)
  std::string guid, participant_guid, topic, type;
  bool reliable = false;  // its QoS reliability kind
  bool alive = true;
};

// What arrived on one topic decoded as one type, over the window. Gaps are between the arrival
// times of consecutive samples (this machine's steady clock, as the driver would see them).
struct TopicTraffic {
  std::string topic, type;  // the type this reader was created with
  int matched_writers = 0;  // at the end of the window
  uint64_t samples = 0, crc_errors = 0;  // crc_errors: samples whose Unitree CRC does not match
  double rate_hz = 0;        // (samples - 1) / (last arrival - first arrival); 0 below 2 samples
  double gap_p50_ms = 0, gap_p99_ms = 0, gap_max_ms = 0;
};

struct DdsSurvey {
  SurveyOptions options;
  double listened_s = 0;
  std::string own_guid;  // the doctor's participant (left out of everything below)
  std::vector<SurveyParticipant> participants;
  std::vector<SurveyEndpoint> endpoints;
  // lowstate as unitree_hg, lowstate as unitree_go, lowcmd as unitree_hg, lowcmd as unitree_go
  // (a reader only matches a writer of its type name, so the one with samples is the one spoken).
  std::vector<TopicTraffic> traffic;
  std::vector<NetInterface> interfaces;
};

// This machine's interfaces, sorted by name.
std::vector<NetInterface> network_interfaces();

// Join the domain on the interface, listen for `seconds`, and report. Throws std::invalid_argument
// for a bad domain, interface or window (naming what is valid), std::runtime_error when DDS fails.
DdsSurvey survey_dds(const SurveyOptions& opt);

}  // namespace vertebra::unitree
