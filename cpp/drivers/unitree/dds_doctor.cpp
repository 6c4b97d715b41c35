#include "drivers/unitree/dds_doctor.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>
#include <tuple>

#include "drivers/unitree/dds.hpp"
#include "drivers/unitree/unitree_codec.hpp"
#include "drivers/unitree/unitree_crc.hpp"

namespace vertebra::unitree {

namespace {

std::string guid_text(const dds_guid_t& g) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%02x%02x%02x%02x:%02x%02x%02x%02x:%02x%02x%02x%02x:%02x%02x%02x%02x", g.v[0],
                g.v[1], g.v[2], g.v[3], g.v[4], g.v[5], g.v[6], g.v[7], g.v[8], g.v[9], g.v[10], g.v[11], g.v[12],
                g.v[13], g.v[14], g.v[15]);
  return buf;
}

std::string property(const dds_qos_t* qos, const char* name) {
  char* v = nullptr;
  if (!qos || !dds_qget_prop(qos, name, &v) || !v) return "";
  std::string s(v);
  dds_free(v);
  return s;
}

std::string entity_name(const dds_qos_t* qos) {
  char* v = nullptr;
  if (!qos || !dds_qget_entity_name(qos, &v) || !v) return "";
  std::string s(v);
  dds_free(v);
  return s;
}

// Takes every sample of a built-in topic reader (loaned from Cyclone) and hands each valid one,
// with whether its instance is still alive, to `fn`.
template <class Sample, class Fn>
void take_builtin(dds_entity_t rd, Fn fn) {
  constexpr int kBatch = 64;
  for (;;) {
    void* buf[kBatch] = {nullptr};
    dds_sample_info_t info[kBatch];
    const dds_return_t n = dds_take(rd, buf, info, kBatch, kBatch);
    if (n <= 0) return;
    for (int i = 0; i < n; ++i)
      if (info[i].valid_data) fn(*static_cast<const Sample*>(buf[i]), info[i].instance_state == DDS_IST_ALIVE);
    dds_return_loan(rd, buf, n);
  }
}

// One reader on a topic with one of the candidate types, and what arrived on it.
struct Tap {
  TopicTraffic traffic;
  dds_entity_t reader = 0;
  size_t size = 0;
  bool (*crc_valid)(const void*) = nullptr;
  std::vector<int64_t> arrivals_ns;
  std::vector<unsigned char> buf;
};

template <class Msg>
bool crc_valid_as(const void* m) {
  return crc_ok(*static_cast<const Msg*>(m));
}

template <class Msg>
Tap make_tap(DdsParticipant& p, const dds_topic_descriptor_t* desc, const std::string& topic) {
  Tap t;
  t.traffic.topic = topic;
  t.traffic.type = desc->m_typename;
  t.size = sizeof(Msg);
  t.crc_valid = &crc_valid_as<Msg>;
  t.buf.resize(sizeof(Msg));
  // Best effort matches every writer (reliable or not); a deep history so that a slow wake-up of
  // this thread loses no sample from the count.
  dds_qos_t* q = dds_create_qos();
  dds_qset_reliability(q, DDS_RELIABILITY_BEST_EFFORT, 0);
  dds_qset_history(q, DDS_HISTORY_KEEP_LAST, 256);
  t.reader = dds_create_reader(p.handle(), p.topic(desc, topic), q, nullptr);
  dds_delete_qos(q);
  if (t.reader < 0)
    throw std::runtime_error("DDS: create reader " + topic + ": " + dds_strretcode(t.reader));
  t.arrivals_ns.reserve(4096);
  return t;
}

void drain(Tap& t) {
  for (;;) {
    std::memset(t.buf.data(), 0, t.size);  // padding zero: the CRC covers it (unitree_crc.hpp)
    void* samples[1] = {t.buf.data()};
    dds_sample_info_t info[1];
    if (dds_take(t.reader, samples, info, 1, 1) <= 0) return;
    if (!info[0].valid_data) continue;
    t.arrivals_ns.push_back(steady_ns());
    ++t.traffic.samples;
    if (!t.crc_valid(t.buf.data())) ++t.traffic.crc_errors;
  }
}

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t k = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size(), std::max<size_t>(k, 1)) - 1];
}

void summarise(Tap& t) {
  dds_subscription_matched_status_t st;
  if (dds_get_subscription_matched_status(t.reader, &st) == DDS_RETCODE_OK)
    t.traffic.matched_writers = static_cast<int>(st.current_count);
  const auto& a = t.arrivals_ns;
  if (a.size() < 2) return;
  std::vector<double> gaps_ms;
  gaps_ms.reserve(a.size() - 1);
  for (size_t i = 1; i < a.size(); ++i) gaps_ms.push_back(static_cast<double>(a[i] - a[i - 1]) * 1e-6);
  std::sort(gaps_ms.begin(), gaps_ms.end());
  const double span_s = static_cast<double>(a.back() - a.front()) * 1e-9;
  t.traffic.rate_hz = span_s > 0 ? static_cast<double>(a.size() - 1) / span_s : 0;
  t.traffic.gap_p50_ms = percentile(gaps_ms, 0.50);
  t.traffic.gap_p99_ms = percentile(gaps_ms, 0.99);
  t.traffic.gap_max_ms = gaps_ms.back();
}

}  // namespace

std::vector<NetInterface> network_interfaces() {
  std::map<std::string, NetInterface> by_name;
  ifaddrs* ifs = nullptr;
  if (getifaddrs(&ifs) != 0) return {};
  for (ifaddrs* i = ifs; i; i = i->ifa_next) {
    if (!i->ifa_name) continue;
    NetInterface& n = by_name[i->ifa_name];
    n.name = i->ifa_name;
    n.up = n.up || (i->ifa_flags & IFF_UP);
    n.multicast = n.multicast || (i->ifa_flags & IFF_MULTICAST);
    n.loopback = n.loopback || (i->ifa_flags & IFF_LOOPBACK);
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET) {
      char buf[INET_ADDRSTRLEN];
      const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      if (inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf))) n.ipv4.push_back(buf);
    }
  }
  freeifaddrs(ifs);
  std::vector<NetInterface> out;
  for (auto& [name, n] : by_name) out.push_back(std::move(n));
  return out;
}

DdsSurvey survey_dds(const SurveyOptions& opt) {
  if (!(opt.seconds > 0) || opt.seconds > 3600)
    throw std::invalid_argument("seconds: found " + std::to_string(opt.seconds) +
                                "; valid: a listening window > 0 and <= 3600 s");
  if (opt.lowstate_topic.empty() || opt.lowcmd_topic.empty())
    throw std::invalid_argument("lowstate_topic, lowcmd_topic: found an empty name; valid: a DDS topic name");
  DdsSurvey out;
  out.options = opt;
  out.interfaces = network_interfaces();
  DdsParticipant pp(opt.domain_id, opt.network_interface);  // validates domain and interface (throws)
  dds_guid_t own;
  if (dds_get_guid(pp.handle(), &own) != DDS_RETCODE_OK) throw std::runtime_error("DDS: participant GUID");
  out.own_guid = guid_text(own);

  // Built-in topics first, so that everything discovered during the window is in their history.
  const dds_entity_t pp_h = pp.handle();
  const dds_entity_t participants = dds_create_reader(pp_h, DDS_BUILTIN_TOPIC_DCPSPARTICIPANT, nullptr, nullptr);
  const dds_entity_t publications = dds_create_reader(pp_h, DDS_BUILTIN_TOPIC_DCPSPUBLICATION, nullptr, nullptr);
  const dds_entity_t subscriptions = dds_create_reader(pp_h, DDS_BUILTIN_TOPIC_DCPSSUBSCRIPTION, nullptr, nullptr);
  if (participants < 0 || publications < 0 || subscriptions < 0)
    throw std::runtime_error("DDS: create built-in topic readers");

  // Each topic with both candidate types (one participant may hold one topic name with several
  // types in Cyclone 0.10; a reader matches only writers of its own type name).
  std::vector<Tap> taps;
  taps.push_back(make_tap<HgLowState>(pp, &unitree_hg_msg_dds__LowState__desc, opt.lowstate_topic));
  taps.push_back(make_tap<GoLowState>(pp, &unitree_go_msg_dds__LowState__desc, opt.lowstate_topic));
  taps.push_back(make_tap<HgLowCmd>(pp, &unitree_hg_msg_dds__LowCmd__desc, opt.lowcmd_topic));
  taps.push_back(make_tap<GoLowCmd>(pp, &unitree_go_msg_dds__LowCmd__desc, opt.lowcmd_topic));

  const dds_entity_t ws = dds_create_waitset(pp.handle());
  if (ws < 0) throw std::runtime_error(std::string("DDS: create waitset: ") + dds_strretcode(ws));
  for (size_t i = 0; i < taps.size(); ++i) {
    const dds_entity_t rc = dds_create_readcondition(taps[i].reader, DDS_ANY_STATE);
    if (rc < 0 || dds_waitset_attach(ws, rc, static_cast<dds_attach_t>(i)) != DDS_RETCODE_OK)
      throw std::runtime_error("DDS: attach read condition");
  }
  const int64_t start = steady_ns();
  const int64_t end = start + static_cast<int64_t>(opt.seconds * 1e9);
  for (int64_t now = start; now < end; now = steady_ns()) {
    dds_attach_t hits[4];
    const dds_return_t n = dds_waitset_wait(ws, hits, 4, std::min<int64_t>(end - now, DDS_MSECS(100)));
    if (n < 0) throw std::runtime_error(std::string("DDS: wait: ") + dds_strretcode(n));
    for (dds_return_t k = 0; k < n; ++k) drain(taps[static_cast<size_t>(hits[k])]);
  }
  for (auto& t : taps) {
    drain(t);
    summarise(t);
    out.traffic.push_back(t.traffic);
  }
  out.listened_s = static_cast<double>(steady_ns() - start) * 1e-9;

  take_builtin<dds_builtintopic_participant_t>(participants, [&](const dds_builtintopic_participant_t& s, bool alive) {
    SurveyParticipant p;
    p.guid = guid_text(s.key);
    if (p.guid == out.own_guid) return;
    p.entity_name = entity_name(s.qos);
    p.hostname = property(s.qos, "__Hostname");
    p.process = property(s.qos, "__ProcessName");
    p.pid = property(s.qos, "__Pid");
    p.addresses = property(s.qos, "__NetworkAddresses");
    p.alive = alive;
    out.participants.push_back(std::move(p));
  });
  for (const dds_entity_t rd : {publications, subscriptions}) {
    const bool writer = rd == publications;
    take_builtin<dds_builtintopic_endpoint_t>(rd, [&](const dds_builtintopic_endpoint_t& s, bool alive) {
      SurveyEndpoint e;
      e.participant_guid = guid_text(s.participant_key);
      if (e.participant_guid == out.own_guid) return;
      e.writer = writer;
      e.guid = guid_text(s.key);
      e.topic = s.topic_name ? s.topic_name : "";
      e.type = s.type_name ? s.type_name : "";
      dds_reliability_kind_t kind;
      dds_duration_t blocking;
      e.reliable = s.qos && dds_qget_reliability(s.qos, &kind, &blocking) && kind == DDS_RELIABILITY_RELIABLE;
      e.alive = alive;
      out.endpoints.push_back(std::move(e));
    });
  }
  auto by_guid = [](const auto& a, const auto& b) { return a.guid < b.guid; };
  std::sort(out.participants.begin(), out.participants.end(), by_guid);
  std::sort(out.endpoints.begin(), out.endpoints.end(), [](const SurveyEndpoint& a, const SurveyEndpoint& b) {
    return std::tie(a.topic, a.writer, a.guid) < std::tie(b.topic, b.writer, b.guid);
  });
  return out;
}

}  // namespace vertebra::unitree
