#include "drivers/unitree/dds.hpp"

#include <ifaddrs.h>
#include <net/if.h>

#include <cstring>
#include <set>
#include <stdexcept>
#include <vector>

namespace vertebra::unitree {

namespace {
std::string fail_text(const char* what, dds_return_t rc) {
  return std::string("DDS: ") + what + ": " + dds_strretcode(rc);
}

void check(dds_return_t rc, const char* what) {
  if (rc < 0) throw std::runtime_error(fail_text(what, rc));
}
}  // namespace

std::string cyclone_config(const std::string& nic) {
  const std::string head = "<CycloneDDS><Domain Id=\"any\">";
  const std::string tail = "</Domain></CycloneDDS>";
  if (nic.empty()) return "";
  // Interfaces there are, and whether they multicast (SIOCGIFFLAGS through getifaddrs).
  std::set<std::string> names, multicast;
  ifaddrs* ifs = nullptr;
  if (getifaddrs(&ifs) == 0) {
    for (ifaddrs* i = ifs; i; i = i->ifa_next) {
      if (!i->ifa_name) continue;
      names.insert(i->ifa_name);
      if (i->ifa_flags & IFF_MULTICAST) multicast.insert(i->ifa_name);
    }
    freeifaddrs(ifs);
  }
  std::string have;
  for (const auto& n : names) have += (have.empty() ? "" : ", ") + n;
  if (!names.count(nic))
    throw std::invalid_argument("network_interface: found '" + nic + "'; valid: an interface of this machine (" + have +
                                "); on a Unitree robot, the one on 192.168.123.x");
  if (nic == "lo")  // one machine: loopback has no multicast, so discovery goes to the local peer
    return head +
           "<General><Interfaces><NetworkInterface name=\"lo\" multicast=\"false\"/></Interfaces>"
           "<AllowMulticast>false</AllowMulticast></General>"
           "<Discovery><ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>60</MaxAutoParticipantIndex>"
           "<Peers><Peer address=\"127.0.0.1\"/></Peers></Discovery>" +
           tail;
  if (!multicast.count(nic))
    throw std::invalid_argument("network_interface: '" + nic + "' cannot multicast, and DDS discovery on a Unitree "
                                "robot's network needs it; valid: a multicast-capable interface (" + have + ")");
  return head + "<General><Interfaces><NetworkInterface name=\"" + nic +
         "\"/></Interfaces></General>" + tail;
}

DdsParticipant::DdsParticipant(int domain_id, const std::string& nic) {
  if (domain_id < 0 || domain_id > 232)
    throw std::invalid_argument("domain_id: found " + std::to_string(domain_id) + "; valid: 0 to 232");
  const std::string xml = cyclone_config(nic);
  if (!xml.empty()) {
    domain_ = dds_create_domain(static_cast<dds_domainid_t>(domain_id), xml.c_str());
    if (domain_ < 0 && domain_ != DDS_RETCODE_PRECONDITION_NOT_MET)  // already created in this process
      check(domain_, "create domain");
  }
  pp_ = dds_create_participant(static_cast<dds_domainid_t>(domain_id), nullptr, nullptr);
  check(pp_, "create participant");
}

DdsParticipant::~DdsParticipant() {
  if (pp_ > 0) dds_delete(pp_);
  if (domain_ > 0) dds_delete(domain_);
}

dds_entity_t DdsParticipant::topic(const dds_topic_descriptor_t* desc, const std::string& name) {
  const dds_entity_t t = dds_create_topic(pp_, desc, name.c_str(), nullptr, nullptr);
  check(t, ("create topic " + name).c_str());
  return t;
}

DdsWriter::DdsWriter(DdsParticipant& p, const dds_topic_descriptor_t* desc, const std::string& topic,
                     const std::string& user_data) {
  dds_qos_t* q = dds_create_qos();
  dds_qset_reliability(q, DDS_RELIABILITY_RELIABLE, DDS_MSECS(10));
  dds_qset_history(q, DDS_HISTORY_KEEP_LAST, 1);
  if (!user_data.empty()) dds_qset_userdata(q, user_data.data(), user_data.size());
  wr_ = dds_create_writer(p.handle(), p.topic(desc, topic), q, nullptr);
  dds_delete_qos(q);
  check(wr_, ("create writer " + topic).c_str());
}

DdsWriter::~DdsWriter() {
  if (wr_ > 0) dds_delete(wr_);  // an error once the participant is gone (it deleted the writer)
}

int DdsWriter::matched_readers() const {
  dds_publication_matched_status_t st;
  return dds_get_publication_matched_status(wr_, &st) == DDS_RETCODE_OK ? static_cast<int>(st.current_count) : -1;
}

DdsReader::DdsReader(DdsParticipant& p, const dds_topic_descriptor_t* desc, const std::string& topic,
                     size_t sample_size, std::function<void(const void*)> on_sample, bool reliable,
                     Delivery delivery, std::string ignore_user_data_prefix)
    : desc_(desc),
      owns_contents_((desc->m_flagset & DDS_TOPIC_FIXED_SIZE) == 0),
      size_(sample_size),
      on_sample_(std::move(on_sample)),
      ignore_prefix_(std::move(ignore_user_data_prefix)),
      buf_(sample_size) {
  dds_qos_t* q = dds_create_qos();
  dds_qset_reliability(q, reliable ? DDS_RELIABILITY_RELIABLE : DDS_RELIABILITY_BEST_EFFORT, DDS_MSECS(10));
  dds_qset_history(q, DDS_HISTORY_KEEP_LAST, 1);
  // Matched writers as discovery changes them, into an atomic the tick can read (the status itself
  // is not reset: matched_writers() still asks DDS).
  dds_listener_t* l = dds_create_listener(this);
  dds_lset_subscription_matched_arg(l, &DdsReader::on_matched, this, false);
  if (delivery == Delivery::kReceiveThread) dds_lset_data_available_arg(l, &DdsReader::on_data, this, false);
  rd_ = dds_create_reader(p.handle(), p.topic(desc, topic), q, l);
  dds_delete_listener(l);
  dds_delete_qos(q);
  check(rd_, ("create reader " + topic).c_str());
  if (delivery == Delivery::kOwnThread) {
    ws_ = dds_create_waitset(p.handle());
    check(ws_, "create waitset");
    const dds_entity_t rc = dds_create_readcondition(rd_, DDS_ANY_STATE);
    check(rc, "create read condition");
    check(dds_waitset_attach(ws_, rc, rd_), "attach read condition");
    stop_ = dds_create_guardcondition(p.handle());
    check(stop_, "create guard condition");
    check(dds_waitset_attach(ws_, stop_, stop_), "attach guard condition");
    thread_ = std::thread([this] { run(); });
  }
}

DdsReader::~DdsReader() {
  if (thread_.joinable()) {
    dds_set_guardcondition(stop_, true);
    thread_.join();
    dds_delete(ws_);
    dds_delete(stop_);
  }
  // Deleting the reader waits for a listener call in progress; errors once the participant is gone.
  dds_delete(rd_);
}

void DdsReader::run() {
  for (;;) {
    dds_attach_t hit[2];
    const dds_return_t n = dds_waitset_wait(ws_, hit, 2, DDS_MSECS(100));
    bool triggered = false;
    // Stop when asked, and when the entities are gone (Cyclone deletes everything at process exit).
    if (n < 0 || dds_read_guardcondition(stop_, &triggered) != DDS_RETCODE_OK || triggered) return;
    if (n > 0) on_data(rd_, this);
  }
}

namespace {
// The user_data of one matched writer ("" when it has none or it is no longer matched).
std::string writer_user_data(dds_entity_t reader, dds_instance_handle_t ih) {
  std::string out;
  dds_builtintopic_endpoint_t* ep = dds_get_matched_publication_data(reader, ih);
  if (!ep) return out;
  void* value = nullptr;
  size_t sz = 0;
  if (ep->qos && dds_qget_userdata(ep->qos, &value, &sz) && value) out.assign(static_cast<const char*>(value), sz);
  if (value) dds_free(value);  // dds_qget_userdata allocates a copy (sz + 1 bytes), or leaves it null
  dds_builtintopic_free_endpoint(ep);
  return out;
}
constexpr size_t kMaxMatched = 64;  // writers looked at per recount; more are counted, never ignored
}  // namespace

void DdsReader::on_matched(dds_entity_t reader, const dds_subscription_matched_status_t status, void* arg) {
  auto* self = static_cast<DdsReader*>(arg);
  const int current = static_cast<int>(status.current_count);
  if (self->ignore_prefix_.empty())
    self->matched_.store(current, std::memory_order_release);
  else
    self->recount(reader, current);
}

void DdsReader::recount(dds_entity_t reader, int current) {
  // Cyclone's listener thread (not the tick): the matched set has already changed when the
  // listener runs (the reader's connection is added or dropped before the status callback).
  dds_instance_handle_t h[kMaxMatched];
  const dds_return_t n = dds_get_matched_publications(reader, h, kMaxMatched);
  if (n < 0) {  // the reader is going away: count what the status says, ignore nothing
    matched_.store(current, std::memory_order_release);
    ignored_.store(0, std::memory_order_release);
    return;
  }
  int ignored = 0;
  const size_t seen = static_cast<size_t>(n) < kMaxMatched ? static_cast<size_t>(n) : kMaxMatched;
  for (size_t i = 0; i < seen; ++i)
    if (writer_user_data(reader, h[i]).compare(0, ignore_prefix_.size(), ignore_prefix_) == 0) ++ignored;
  matched_.store(static_cast<int>(n) - ignored, std::memory_order_release);
  ignored_.store(ignored, std::memory_order_release);
}

std::vector<std::string> DdsReader::matched_writer_user_data() const {
  std::vector<dds_instance_handle_t> h(kMaxMatched);
  dds_return_t n = dds_get_matched_publications(rd_, h.data(), h.size());
  if (n > static_cast<dds_return_t>(h.size())) {
    h.resize(static_cast<size_t>(n));
    n = dds_get_matched_publications(rd_, h.data(), h.size());
  }
  std::vector<std::string> out;
  for (dds_return_t i = 0; i < n && i < static_cast<dds_return_t>(h.size()); ++i) out.push_back(writer_user_data(rd_, h[i]));
  return out;
}

int DdsReader::matched_writers() const {
  dds_subscription_matched_status_t st;
  return dds_get_subscription_matched_status(rd_, &st) == DDS_RETCODE_OK ? static_cast<int>(st.current_count) : -1;
}

void DdsReader::on_data(dds_entity_t reader, void* arg) {
  auto* self = static_cast<DdsReader*>(arg);
  unsigned char* buf = self->buf_.data();
  for (;;) {
    std::memset(buf, 0, self->size_);  // padding stays zero: the CRC covers it
    void* samples[1] = {buf};
    dds_sample_info_t info[1];
    const dds_return_t got = dds_take(reader, samples, info, 1, 1);
    if (got <= 0) return;
    if (info[0].valid_data) self->on_sample_(buf);
    if (self->owns_contents_) dds_sample_free(buf, self->desc_, DDS_FREE_CONTENTS);  // strings, sequences
  }
}

}  // namespace vertebra::unitree
