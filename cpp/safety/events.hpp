// Safety events: produced on the tick into a lock-free ring, written by a logger thread to an
// append-only JSON-lines file.
//
// Contract
//  - EventRing::push() is [tick]: single producer (the tick), wait-free, no allocation. When the
//    ring is full the event is counted as dropped (the next written event reports the count).
//  - EventLog is the single consumer. Its thread drains the ring every flush_ms and appends each
//    event as one line with write(2) to a file opened O_APPEND, so a SIGKILL of the runtime loses
//    only what is still in the ring (at most flush_ms of events); it fsyncs at most every
//    fsync_ms so a power loss loses at most that much. Every line ends with a CRC-32 of its text
//    ("crc": 8 hex digits, zlib's polynomial), so a reader can tell a torn last line from data.
//  - Lines are self-describing JSON: names, not numbers (`"kind": "fault", "fault": "state_loss"`),
//    with the run they belong to ("run": pid-start time) since many runs append to one file.
//  - Events the ring had to drop show up as one "dropped" line, where they were lost, with the
//    number lost (the producer numbers every event, dropped or not), written when the next event
//    after the loss arrives; the loop's snapshot counts drops at once.
//  - The log's health flows back through the ring: the writer counts every line, fsync, rotation
//    or reopen that failed (log_io_errors()) and raises log_failing() while its writes fail (set on
//    the first failure, cleared by the next drain that wrote a line and had no failure). The tick reads
//    both with relaxed atomic loads (the supervisor's event_log_write monitor): no I/O on the tick.
//  - Size rotation, by the writer and never on the tick: before a line would take a regular file
//    past rotate_bytes, the file is renamed <path>.1 (older ones shift to <path>.2 .. <path>.<keep>,
//    the oldest is dropped) and a new <path> is started. The limits ride in the ring from the
//    safety config (the supervisor sets them at configuration time; an EventLog reads them when
//    it is built). Non-regular files (/dev/null, a pipe) are never rotated nor fsynced. If <path>
//    stops naming the file the log has open (another process rotated it, someone deleted it), the
//    writer reopens <path> at its next fsync. A rotation that fails is counted and retried after
//    another rotate_bytes; a reopen that fails is retried at every drain, its lines counted as
//    failed writes meanwhile. Rotation assumes one writer per file (concurrent appenders are
//    followed across a rename, but two that rotate at once may drop one generation).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace vertebra {

enum class EventKind : int32_t {
  kModeChange = 0,   // from -> to, cause (+ fault when the cause is a fault)
  kFault = 1,        // a monitor raised `fault` (joint, value), with its configured response
  kFaultCleared = 2, // the condition behind `fault` went away (latched faults stay latched)
  kOperator = 3,     // code: OperatorAction
  kClampBurst = 4,   // code 0: a burst of limiter clamps started (mask = LimiterFlags); 1: it ended (value = clamps)
  kDropped = 5,      // value = events lost because the ring was full
  kNote = 6,         // written from Python (runtime start/stop, harness phases)
};

enum class ModeCause : int32_t { kRequest = 0, kFault = 1, kStopDone = 2, kEstop = 3, kReset = 4, kOperatorStop = 5, kStandupDone = 6 };

enum class OperatorAction : int32_t {
  kEnable = 0, kDisable = 1, kEstop = 2, kReset = 3, kResetRefused = 4, kStop = 5,
  kRequestAccepted = 6, kRequestRefused = 7,
};

struct Event {
  uint64_t seq = 0;       // assigned by the ring
  uint64_t tick = 0;
  int64_t mono_ns = 0;    // CLOCK_MONOTONIC
  int64_t wall_ns = 0;    // CLOCK_REALTIME
  int64_t driver_ns = 0;  // the driver's clock (simulation time in sim)
  EventKind kind = EventKind::kNote;
  int32_t code = 0;
  int32_t fault = -1;     // FaultId
  int32_t joint = -1;
  int32_t from = -1, to = -1;  // SafetyMode
  int32_t response = -1;  // Response
  int32_t status = 0;     // Status (refused requests)
  uint64_t mask = 0;
  double value = 0, value2 = 0;
};

class EventRing {
 public:
  static constexpr uint64_t kCapacity = 4096;  // power of two
  bool push(Event e);   // [tick] producer only
  bool pop(Event& e);   // consumer only
  // The ring has one consumer: an EventLog claims it for its lifetime (a second claim fails).
  bool claim() { return !claimed_.exchange(true); }
  void release() { claimed_.store(false); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t produced() const { return next_seq_; }

  // The consumer's health (see the contract above). [tick]: log_failing(), log_io_errors().
  bool log_failing() const { return log_failing_.load(std::memory_order_relaxed); }
  uint64_t log_io_errors() const { return log_io_errors_.load(std::memory_order_relaxed); }
  void set_log_failing(bool failing) { log_failing_.store(failing, std::memory_order_relaxed); }  // consumer
  void add_log_io_error() { log_io_errors_.fetch_add(1, std::memory_order_relaxed); }            // consumer
  void reset_log_health() {  // a new consumer starts healthy
    log_failing_.store(false, std::memory_order_relaxed);
    log_io_errors_.store(0, std::memory_order_relaxed);
  }

  // Rotation of the consumer's file (configuration time, before an EventLog is built).
  void set_log_rotation(uint64_t rotate_bytes, int keep_files) {
    rotate_bytes_ = rotate_bytes;
    keep_files_ = keep_files;
  }
  uint64_t log_rotate_bytes() const { return rotate_bytes_; }
  int log_keep_files() const { return keep_files_; }

  static constexpr uint64_t kDefaultRotateBytes = uint64_t{64} << 20;  // 64 MiB
  static constexpr int kDefaultKeepFiles = 5;

 private:
  Event buf_[kCapacity];
  std::atomic<uint64_t> head_{0}, tail_{0}, dropped_{0};
  std::atomic<bool> claimed_{false};
  uint64_t next_seq_ = 1;  // producer-owned
  std::atomic<bool> log_failing_{false};
  std::atomic<uint64_t> log_io_errors_{0};
  uint64_t rotate_bytes_ = kDefaultRotateBytes;
  int keep_files_ = kDefaultKeepFiles;
};

// Formats one event as a JSON line (without the trailing newline and CRC).
std::string event_json(const Event& e);
uint32_t crc32(const char* data, size_t n);

class EventLog {
 public:
  // path "" keeps events in memory only (recent()). The rotation limits are the ring's
  // (set_log_rotation(); the safety config's event_log section).
  EventLog(std::shared_ptr<EventRing> ring, const std::string& path, int flush_ms = 50, int fsync_ms = 1000,
           size_t keep_recent = 4096);
  ~EventLog();
  void start();       // the writer thread
  void stop();        // drains, fsyncs and joins
  void flush();       // drain now on the calling thread (lockstep), write and fsync
  void note(const std::string& text, const std::string& fields_json, int64_t driver_ns);  // from Python
  // Lines written after line number `since` (1-based, counting every line this log wrote), as
  // (line number, JSON without the CRC), oldest first; at most keep_recent are retained.
  std::vector<std::pair<uint64_t, std::string>> recent(uint64_t since) const;
  const std::string& path() const { return path_; }
  uint64_t written() const { return written_.load(); }
  uint64_t io_errors() const { return ring_->log_io_errors(); }  // failed writes, fsyncs, rotations, reopens
  uint64_t rotations() const { return rotations_.load(); }

 private:
  void drain_locked(bool sync_now = false);  // sync_now: fdatasync even if fsync_ms has not passed
  void append_locked(const std::string& json);
  void run();
  bool open_locked();         // (re)open path_ for appending; false (and fd_ < 0) on failure
  void rotate_locked();       // path -> path.1 (shifting older ones), then a new path
  void follow_path_locked();  // reopen when path_ no longer names the open file; refresh its size
  void io_failed_locked();    // count one failed operation and report the log as failing
  void settle_health_locked();  // after a drain: healthy again if it wrote lines and nothing failed

  std::shared_ptr<EventRing> ring_;
  std::string path_;
  int fd_ = -1;
  int flush_ms_, fsync_ms_;
  size_t keep_;
  mutable std::mutex mu_;
  std::deque<std::pair<uint64_t, std::string>> recent_;
  uint64_t last_seq_ = 0;          // the newest ring seq written (a gap = events the ring dropped)
  bool torn_ = false;              // the last write failed part-way: start the next line afresh
  std::string run_;                // this log's run id (pid and start time), on every line
  int64_t last_fsync_ns_ = 0;
  std::atomic<uint64_t> written_{0};
  std::atomic<bool> running_{false};
  std::thread thread_;
  std::condition_variable cv_;
  // the file: regular files are rotated, fsynced and followed across renames
  bool regular_ = false;
  uint64_t file_bytes_ = 0;        // its size (fstat at open and each fsync, plus what this log wrote)
  uint64_t rotate_at_ = 0;         // rotate before a line would take it past this
  uint64_t rotate_bytes_ = EventRing::kDefaultRotateBytes;
  int keep_files_ = EventRing::kDefaultKeepFiles;
  uint64_t file_dev_ = 0, file_ino_ = 0;
  bool wrote_line_ = false, io_error_ = false;  // this drain's outcome (settle_health_locked())
  std::atomic<uint64_t> rotations_{0};
};

}  // namespace vertebra
