#include "safety/events.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "core/modes.hpp"
#include "core/types.hpp"
#include "safety/safety.hpp"

namespace vertebra {

bool EventRing::push(Event e) {
  e.seq = next_seq_++;
  const uint64_t h = head_.load(std::memory_order_relaxed);
  const uint64_t t = tail_.load(std::memory_order_acquire);
  if (h - t >= kCapacity) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  buf_[h & (kCapacity - 1)] = e;
  head_.store(h + 1, std::memory_order_release);
  return true;
}

bool EventRing::pop(Event& e) {
  const uint64_t t = tail_.load(std::memory_order_relaxed);
  if (t == head_.load(std::memory_order_acquire)) return false;
  e = buf_[t & (kCapacity - 1)];
  tail_.store(t + 1, std::memory_order_release);
  return true;
}

uint32_t crc32(const char* data, size_t n) {
  // CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the one zlib.crc32 computes.
  static uint32_t table[256];
  static bool init = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)init;
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ static_cast<uint8_t>(data[i])) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

static std::string iso_time(int64_t wall_ns) {
  const time_t sec = static_cast<time_t>(wall_ns / 1'000'000'000);
  tm t{};
  gmtime_r(&sec, &t);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                t.tm_hour, t.tm_min, t.tm_sec, static_cast<long>((wall_ns % 1'000'000'000) / 1000));
  return buf;
}

static const char* kind_name(EventKind k) {
  switch (k) {
    case EventKind::kModeChange: return "mode";
    case EventKind::kFault: return "fault";
    case EventKind::kFaultCleared: return "fault_cleared";
    case EventKind::kOperator: return "operator";
    case EventKind::kClampBurst: return "clamp";
    case EventKind::kDropped: return "dropped";
    case EventKind::kNote: return "note";
  }
  return "unknown";
}

static const char* cause_name(int32_t c) {
  switch (static_cast<ModeCause>(c)) {
    case ModeCause::kRequest: return "request";
    case ModeCause::kFault: return "fault";
    case ModeCause::kStopDone: return "stop_done";
    case ModeCause::kEstop: return "estop";
    case ModeCause::kReset: return "reset";
    case ModeCause::kOperatorStop: return "operator_stop";
    case ModeCause::kStandupDone: return "standup_done";
  }
  return "unknown";
}

static const char* action_name(int32_t c) {
  switch (static_cast<OperatorAction>(c)) {
    case OperatorAction::kEnable: return "enable";
    case OperatorAction::kDisable: return "disable";
    case OperatorAction::kEstop: return "estop";
    case OperatorAction::kReset: return "reset";
    case OperatorAction::kResetRefused: return "reset_refused";
    case OperatorAction::kStop: return "stop";
    case OperatorAction::kRequestAccepted: return "request_accepted";
    case OperatorAction::kRequestRefused: return "request_refused";
  }
  return "unknown";
}

static std::string fault_list(uint64_t mask) {
  std::string s = "[";
  for (int f = 0; f < kNumFaults; ++f)
    if (mask & (uint64_t{1} << f)) {
      if (s.size() > 1) s += ",";
      s += "\"";
      s += fault_name(static_cast<FaultId>(f));
      s += "\"";
    }
  return s + "]";
}

static std::string num(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "\"nan\"" : (v > 0 ? "\"inf\"" : "\"-inf\"");
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

static std::string secs(int64_t ns) {
  char b[48];
  std::snprintf(b, sizeof b, "%lld.%06lld", static_cast<long long>(ns / 1'000'000'000),
                static_cast<long long>((ns % 1'000'000'000) / 1000));
  return b;
}

std::string event_json(const Event& e) {
  std::string s = "{\"seq\":" + std::to_string(e.seq) + ",\"time\":\"" + iso_time(e.wall_ns) + "\",\"wall_ns\":" +
                  std::to_string(e.wall_ns) + ",\"tick\":" + std::to_string(e.tick) + ",\"robot_time_ns\":" +
                  std::to_string(e.driver_ns) + ",\"robot_time_s\":" + secs(e.driver_ns) + ",\"kind\":\"" +
                  kind_name(e.kind) + "\"";
  auto mode = [](int32_t m) { return std::string("\"") + safety_mode_name(static_cast<SafetyMode>(m)) + "\""; };
  switch (e.kind) {
    case EventKind::kModeChange:
      s += ",\"from\":" + mode(e.from) + ",\"to\":" + mode(e.to) + ",\"cause\":\"" + cause_name(e.code) + "\"";
      if (e.fault >= 0) s += std::string(",\"fault\":\"") + fault_name(static_cast<FaultId>(e.fault)) + "\"";
      break;
    case EventKind::kFault:
    case EventKind::kFaultCleared:
      s += std::string(",\"fault\":\"") + fault_name(static_cast<FaultId>(e.fault)) + "\"";
      if (e.kind == EventKind::kFault) {
        s += std::string(",\"response\":\"") + response_name(static_cast<Response>(e.response)) + "\"";
        if (e.joint >= 0) s += ",\"joint\":" + std::to_string(e.joint);
        s += ",\"value\":" + num(e.value);
        s += ",\"mode\":" + mode(e.from);
      }
      break;
    case EventKind::kOperator:
      s += std::string(",\"action\":\"") + action_name(e.code) + "\",\"mode\":" + mode(e.from);
      if (e.code == static_cast<int32_t>(OperatorAction::kResetRefused)) s += ",\"still_active\":" + fault_list(e.mask);
      if (e.code == static_cast<int32_t>(OperatorAction::kRequestAccepted) ||
          e.code == static_cast<int32_t>(OperatorAction::kRequestRefused)) {
        s += ",\"requested\":" + mode(e.to);
        s += std::string(",\"controller\":\"") + mode_name(static_cast<ModeId>(e.joint)) + "\"";
        if (e.code == static_cast<int32_t>(OperatorAction::kRequestRefused))
          s += std::string(",\"status\":\"") + status_name(static_cast<Status>(e.status)) + "\"";
      }
      if (e.code == static_cast<int32_t>(OperatorAction::kReset) && e.mask) s += ",\"cleared\":" + fault_list(e.mask);
      break;
    case EventKind::kClampBurst: {
      s += e.code == 0 ? ",\"burst\":\"start\"" : ",\"burst\":\"end\"";
      static const char* names[] = {"non_finite", "position", "rate", "velocity", "kp", "kd", "torque"};
      s += ",\"clamped\":[";
      bool first = true;
      for (int b = 0; b < 7; ++b)
        if (e.mask & (1u << b)) {
          s += first ? "\"" : ",\"";
          s += names[b];
          s += "\"";
          first = false;
        }
      s += "]";
      if (e.code == 1)
        s += ",\"clamps\":" + std::to_string(static_cast<uint64_t>(e.value)) + ",\"ticks\":" +
             std::to_string(static_cast<uint64_t>(e.value2));
      break;
    }
    case EventKind::kDropped: s += ",\"lost\":" + std::to_string(static_cast<uint64_t>(e.value)); break;
    case EventKind::kNote: break;
  }
  return s;
}

static int64_t clock_ns(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

EventLog::EventLog(std::shared_ptr<EventRing> ring, const std::string& path, int flush_ms, int fsync_ms, size_t keep)
    : ring_(std::move(ring)), path_(path), flush_ms_(flush_ms), fsync_ms_(fsync_ms), keep_(keep) {
  if (!ring_) throw std::invalid_argument("EventLog: an event ring is required");
  if (flush_ms < 1 || fsync_ms < 1)
    throw std::invalid_argument("EventLog: flush_ms and fsync_ms must be >= 1, found " + std::to_string(flush_ms) +
                                " and " + std::to_string(fsync_ms));
  rotate_bytes_ = ring_->log_rotate_bytes();
  keep_files_ = ring_->log_keep_files();
  if (rotate_bytes_ < 1 || keep_files_ < 1)
    throw std::invalid_argument("EventLog: rotation needs rotate_bytes >= 1 and keep_files >= 1, found " +
                                std::to_string(rotate_bytes_) + " and " + std::to_string(keep_files_));
  if (!ring_->claim())
    throw std::logic_error("EventLog: this loop's events already have a log (a ring has one consumer)");
  ring_->reset_log_health();
  if (!path_.empty() && !open_locked()) {
    const int err = errno;
    ring_->release();
    throw std::runtime_error("EventLog: cannot open '" + path_ + "' for appending: " + std::strerror(err));
  }
  last_fsync_ns_ = clock_ns(CLOCK_MONOTONIC);
  run_ = std::to_string(static_cast<long long>(::getpid())) + "-" + std::to_string(clock_ns(CLOCK_REALTIME) / 1'000'000);
}

EventLog::~EventLog() {
  stop();
  if (fd_ >= 0) ::close(fd_);
  ring_->reset_log_health();
  ring_->release();
}

bool EventLog::open_locked() {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) return false;
  struct stat st {};
  if (::fstat(fd_, &st) == 0) {
    regular_ = S_ISREG(st.st_mode);
    file_bytes_ = static_cast<uint64_t>(st.st_size);
    file_dev_ = static_cast<uint64_t>(st.st_dev);
    file_ino_ = static_cast<uint64_t>(st.st_ino);
  } else {
    regular_ = false;
    file_bytes_ = 0;
  }
  rotate_at_ = rotate_bytes_;
  torn_ = false;  // a freshly opened file holds no torn line of this log's
  return true;
}

void EventLog::io_failed_locked() {
  ring_->add_log_io_error();
  ring_->set_log_failing(true);  // at once: the tick sees it before this drain ends
  io_error_ = true;
}

void EventLog::settle_health_locked() {
  // Only a line written whole proves the log works again (an fsync alone succeeds on a full disk).
  if (wrote_line_ && !io_error_) ring_->set_log_failing(false);
  wrote_line_ = io_error_ = false;
}

void EventLog::rotate_locked() {
  if (::fdatasync(fd_) != 0) io_failed_locked();
  // Shift <path>.k -> <path>.k+1 from the oldest kept down; renaming onto <path>.keep drops the
  // oldest. A missing generation is not an error.
  for (int k = keep_files_ - 1; k >= 1; --k) {
    const std::string from = path_ + "." + std::to_string(k), to = path_ + "." + std::to_string(k + 1);
    if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) ring_->add_log_io_error();
  }
  if (::rename(path_.c_str(), (path_ + ".1").c_str()) != 0) {
    ring_->add_log_io_error();  // keep appending to this file; try again after another rotate_bytes
    rotate_at_ = file_bytes_ + rotate_bytes_;
    return;
  }
  ::close(fd_);
  rotations_.fetch_add(1);
  if (!open_locked()) io_failed_locked();  // lines fail (counted) until a drain reopens it
}

void EventLog::follow_path_locked() {
  if (fd_ < 0 || !regular_) return;
  struct stat named {};
  if (::stat(path_.c_str(), &named) != 0 || static_cast<uint64_t>(named.st_dev) != file_dev_ ||
      static_cast<uint64_t>(named.st_ino) != file_ino_) {
    // Renamed (another writer rotated it) or deleted: what we append would be out of sight.
    ::close(fd_);
    if (!open_locked()) io_failed_locked();
    return;
  }
  file_bytes_ = static_cast<uint64_t>(named.st_size);  // other appenders count too
}

void EventLog::append_locked(const std::string& json) {
  char tail[32];
  const std::string body = json + ",\"run\":\"" + run_ + "\"";
  const uint32_t c = crc32(body.data(), body.size());
  std::snprintf(tail, sizeof tail, ",\"crc\":\"%08x\"}\n", c);
  if (!path_.empty()) {
    const uint64_t line_bytes = body.size() + std::strlen(tail) + 1;
    if (fd_ >= 0 && regular_ && file_bytes_ > 0 && file_bytes_ + line_bytes > rotate_at_) rotate_locked();
    // After a failed write the file may end in a partial line: start this one on a new line so only
    // the torn one fails its checksum.
    const std::string line = (torn_ ? "\n" : "") + body + tail;
    if (fd_ < 0) {
      io_failed_locked();  // no file open (a reopen failed): the in-memory copy still has it
    } else {
      size_t off = 0;
      while (off < line.size()) {
        const ssize_t w = ::write(fd_, line.data() + off, line.size() - off);
        if (w < 0) {
          if (errno == EINTR) continue;
          io_failed_locked();
          break;  // disk full or similar: the in-memory copy still has it
        }
        off += static_cast<size_t>(w);
      }
      file_bytes_ += off;
      torn_ = off < line.size();
      wrote_line_ = wrote_line_ || !torn_;
    }
  }
  recent_.emplace_back(written_.load() + 1, body + "}");
  while (recent_.size() > keep_) recent_.pop_front();
  written_.fetch_add(1);
}

void EventLog::drain_locked(bool sync_now) {
  if (!path_.empty() && fd_ < 0) {  // a reopen failed earlier: try again once per drain
    if (!open_locked()) io_failed_locked();
  }
  Event e;
  while (ring_->pop(e)) {
    if (last_seq_ != 0 && e.seq > last_seq_ + 1) {  // the ring dropped events just before this one
      Event de;
      de.kind = EventKind::kDropped;
      de.seq = last_seq_ + 1;
      de.tick = e.tick;
      de.wall_ns = e.wall_ns;
      de.mono_ns = e.mono_ns;
      de.driver_ns = e.driver_ns;
      de.value = static_cast<double>(e.seq - last_seq_ - 1);
      append_locked(event_json(de));
    }
    last_seq_ = e.seq;
    append_locked(event_json(e));
  }
  const int64_t now = clock_ns(CLOCK_MONOTONIC);
  if (fd_ >= 0 && regular_ && (sync_now || now - last_fsync_ns_ >= static_cast<int64_t>(fsync_ms_) * 1'000'000)) {
    if (::fdatasync(fd_) != 0) io_failed_locked();
    last_fsync_ns_ = now;
    follow_path_locked();
  }
  settle_health_locked();
}

void EventLog::flush() {
  std::lock_guard<std::mutex> lock(mu_);
  drain_locked(true);
}

void EventLog::note(const std::string& text, const std::string& fields_json, int64_t driver_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  drain_locked();  // keep the file in order: tick events so far first
  Event e;
  e.kind = EventKind::kNote;
  e.wall_ns = clock_ns(CLOCK_REALTIME);
  e.mono_ns = clock_ns(CLOCK_MONOTONIC);
  e.driver_ns = driver_ns;
  std::string j = event_json(e);
  std::string esc;
  for (char ch : text) {
    if (ch == '"' || ch == '\\') esc += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) continue;
    esc += ch;
  }
  j += ",\"text\":\"" + esc + "\"";
  if (!fields_json.empty()) j += "," + fields_json;
  append_locked(j);
  settle_health_locked();
}

std::vector<std::pair<uint64_t, std::string>> EventLog::recent(uint64_t since) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<uint64_t, std::string>> out;
  for (const auto& r : recent_)
    if (r.first > since) out.push_back(r);
  return out;
}

void EventLog::start() {
  if (running_.exchange(true)) return;
  thread_ = std::thread([this] { run(); });
}

void EventLog::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (running_.load()) {
    drain_locked();
    cv_.wait_for(lock, std::chrono::milliseconds(flush_ms_));
  }
  drain_locked();
}

void EventLog::stop() {
  if (running_.exchange(false)) {
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  flush();
}

}  // namespace vertebra
