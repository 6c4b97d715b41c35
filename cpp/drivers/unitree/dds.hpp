// A thin C++ layer over Cyclone DDS's C API (Debian cyclonedds-dev 0.10.2) for the Unitree driver
// and sim bridge: one participant on a domain whose network configuration is generated from the
// driver config, best-effort keep-last-1 readers (they match any writer: the robot's, Unitree's
// SDK, ours) and reliable keep-last-1 writers (they match any reader), and a reader thread that
// takes each new sample into a zeroed buffer (so the struct's padding is zero when its CRC is
// checked) and hands it to a callback. Configuration time only, except write(),
// matched_writers_now() and ignored_writers_now() (tick). Types with strings or sequences (unitree_api Request_/Response_)
// are taken the same way; the reader frees what DDS allocated for them after the callback.
#pragma once

#include <dds/dds.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace vertebra::unitree {

inline int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The Cyclone XML for an interface: "" lets Cyclone choose; "lo" (tests, the sim bridge on one
// machine) uses unicast discovery to 127.0.0.1; any other name must exist and be multicast-capable
// (what Unitree robots use). Throws std::invalid_argument naming the interface and the ones there are.
std::string cyclone_config(const std::string& network_interface);

class DdsParticipant {
 public:
  DdsParticipant(int domain_id, const std::string& network_interface);
  ~DdsParticipant();
  DdsParticipant(const DdsParticipant&) = delete;
  DdsParticipant& operator=(const DdsParticipant&) = delete;
  dds_entity_t handle() const { return pp_; }
  dds_entity_t topic(const dds_topic_descriptor_t* desc, const std::string& name);

 private:
  dds_entity_t domain_ = 0, pp_ = 0;
};

// The guard's rt/lowcmd writer carries this prefix in its QoS user_data, then its heartbeat's name
// ("vertebra-guard/1 vertebra-g1"; cpp/drivers/unitree/dds_guard.hpp). The driver's conflict
// detection does not count such a writer (it publishes only while the guard holds, and the runtime
// learns that from the heartbeat segment, not from DDS).
inline constexpr const char* kGuardUserDataPrefix = "vertebra-guard/1 ";

class DdsWriter {
 public:
  // `user_data`: the writer's USER_DATA QoS (dds_qset_userdata; readers see it in the matched
  // publication's QoS), "" for none.
  DdsWriter(DdsParticipant& p, const dds_topic_descriptor_t* desc, const std::string& topic,
            const std::string& user_data = "");
  ~DdsWriter();  // deletes the writer: its readers see it leave (discovery), e.g. a service stopping
  DdsWriter(const DdsWriter&) = delete;
  DdsWriter& operator=(const DdsWriter&) = delete;
  // [tick] 0 on success, else the DDS return code.
  int write(const void* sample) { return dds_write(wr_, sample); }
  int matched_readers() const;
  dds_entity_t handle() const { return wr_; }

 private:
  dds_entity_t wr_ = 0;
};

// Calls on_sample(buffer) for every valid sample, the buffer zeroed first.
//  - kReceiveThread: on the thread Cyclone received it on (a data-available listener: no hand-off,
//    which on a small machine costs a wake-up per sample). on_sample must be short and must not
//    create or delete DDS entities (Cyclone's listener rule). The state and command paths.
//  - kOwnThread: on a thread of the reader's own (a waitset), where a handler may do anything
//    (an RPC server whose request releases a service and deletes its writer).
enum class Delivery { kReceiveThread, kOwnThread };

class DdsReader {
 public:
  // reliable: only for a peer known to write reliably (the bridge and the driver in lockstep, where
  // no sample may be lost); best effort matches every writer (a robot's, Unitree's SDK).
  // ignore_user_data_prefix: matched writers whose QoS user_data starts with it are not counted by
  // matched_writers_now() (they are by ignored_writers_now()); "" counts every writer.
  DdsReader(DdsParticipant& p, const dds_topic_descriptor_t* desc, const std::string& topic, size_t sample_size,
            std::function<void(const void*)> on_sample, bool reliable = false,
            Delivery delivery = Delivery::kReceiveThread, std::string ignore_user_data_prefix = "");
  ~DdsReader();
  DdsReader(const DdsReader&) = delete;
  DdsReader& operator=(const DdsReader&) = delete;
  // Writers matched now (DDS discovery; a writer of this participant counts too), asking DDS;
  // ignored ones included.
  int matched_writers() const;
  // Configuration time: the QoS user_data of each writer matched now ("" for a writer without),
  // asking DDS (dds_get_matched_publications, dds_get_matched_publication_data).
  std::vector<std::string> matched_writer_user_data() const;
  // [tick] The matched writers, less the ignored ones, as DDS's subscription-matched listener last
  // counted them: one atomic load, no lock, so the tick can watch who else writes a topic. With an
  // ignore prefix the listener (Cyclone's thread, off the tick) recounts from the matched
  // publications' QoS on every change.
  int matched_writers_now() const { return matched_.load(std::memory_order_acquire); }
  int ignored_writers_now() const { return ignored_.load(std::memory_order_acquire); }

 private:
  static void on_matched(dds_entity_t reader, const dds_subscription_matched_status_t status, void* self);
  void recount(dds_entity_t reader, int current);  // the listener, with an ignore prefix
  static void on_data(dds_entity_t reader, void* self);
  void run();  // kOwnThread
  dds_entity_t rd_ = 0, ws_ = 0, stop_ = 0;
  const dds_topic_descriptor_t* desc_;
  bool owns_contents_;  // the type has strings/sequences: free them after each sample
  size_t size_;
  std::function<void(const void*)> on_sample_;
  std::string ignore_prefix_;
  std::atomic<int> matched_{0}, ignored_{0};
  std::vector<unsigned char> buf_;  // the sample buffer (of the one thread that takes)
  std::thread thread_;               // kOwnThread
};

}  // namespace vertebra::unitree
