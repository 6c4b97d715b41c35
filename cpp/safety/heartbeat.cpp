#include "safety/heartbeat.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace vertebra {

// The documented offsets (heartbeat.hpp): a change here is a new layout version.
static_assert(offsetof(HeartbeatLayout, magic) == 0 && offsetof(HeartbeatLayout, version) == 4 &&
              offsetof(HeartbeatLayout, size) == 8);
static_assert(offsetof(HeartbeatLayout, runtime_pid) == 64 && offsetof(HeartbeatLayout, runtime_start_time) == 72 &&
              offsetof(HeartbeatLayout, runtime_epoch) == 80 && offsetof(HeartbeatLayout, runtime_period_ns) == 88);
static_assert(offsetof(HeartbeatLayout, tick) == 128 && offsetof(HeartbeatLayout, last_write_ns) == 136 &&
              offsetof(HeartbeatLayout, safety_mode) == 144 && offsetof(HeartbeatLayout, standing) == 148 &&
              offsetof(HeartbeatLayout, cmd_seq) == 152 && offsetof(HeartbeatLayout, cmd_n) == 160 &&
              offsetof(HeartbeatLayout, cmd_q) == 168 && offsetof(HeartbeatLayout, cmd_tau_ff) == 1320);
static_assert(offsetof(HeartbeatLayout, guard_pid) == 1704 && offsetof(HeartbeatLayout, guard_start_time) == 1712 &&
              offsetof(HeartbeatLayout, guard_beat_ns) == 1720 && offsetof(HeartbeatLayout, guard_state) == 1728 &&
              offsetof(HeartbeatLayout, guard_armed) == 1732 && offsetof(HeartbeatLayout, takeovers) == 1736 &&
              offsetof(HeartbeatLayout, takeover_reason) == 1744 &&
              offsetof(HeartbeatLayout, takeover_runtime_pid) == 1748 &&
              offsetof(HeartbeatLayout, takeover_runtime_last_write_ns) == 1752 &&
              offsetof(HeartbeatLayout, takeover_detect_ns) == 1760 &&
              offsetof(HeartbeatLayout, takeover_first_write_ns) == 1768 &&
              offsetof(HeartbeatLayout, takeover_tick) == 1776 && offsetof(HeartbeatLayout, takeover_safety_mode) == 1784 &&
              offsetof(HeartbeatLayout, takeover_settle) == 1788 && offsetof(HeartbeatLayout, guard_commands) == 1792 &&
              offsetof(HeartbeatLayout, takeover_released_ns) == 1800);
static_assert(offsetof(HeartbeatLayout, ack_requested) == 1832 && offsetof(HeartbeatLayout, ack_done) == 1840 &&
              sizeof(HeartbeatLayout) == 1848);

const char* guard_state_name(GuardState s) {
  switch (s) {
    case GuardState::kOff: return "off";
    case GuardState::kWatching: return "watching";
    case GuardState::kHolding: return "holding";
  }
  return "off";
}

const char* takeover_reason_name(TakeoverReason r) {
  switch (r) {
    case TakeoverReason::kNone: return "none";
    case TakeoverReason::kHeartbeatTimeout: return "heartbeat_timeout";
    case TakeoverReason::kProcessExit: return "process_exit";
  }
  return "none";
}

int64_t heartbeat_clock_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

bool parse_proc_stat(const char* text, size_t n, ProcessInfo& out) {
  out = ProcessInfo{};
  size_t close = n;
  for (size_t i = n; i > 0; --i)
    if (text[i - 1] == ')') {
      close = i - 1;
      break;
    }
  if (close == n) return false;
  // After ')': " state ppid pgrp session tty_nr tpgid flags ..." -- field 3 is the first.
  size_t i = close + 1;
  int field = 2;
  uint64_t value = 0;
  bool in_token = false;
  char first = 0;
  for (; i <= n; ++i) {
    const char c = i < n ? text[i] : ' ';
    if (c == ' ' || c == '\n') {
      if (in_token) {
        if (field == 3) out.state = first;
        if (field == 9) out.flags = value;
        if (field == 22) {
          out.start_time = value;
          out.exists = true;
          return true;
        }
      }
      in_token = false;
      continue;
    }
    if (!in_token) {
      in_token = true;
      ++field;
      value = 0;
      first = c;
    }
    if (c >= '0' && c <= '9') value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return false;
}

ProcessInfo process_info(int pid) {
  ProcessInfo p;
  if (pid <= 0) return p;
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return p;
  char buf[1024];
  const ssize_t got = ::read(fd, buf, sizeof(buf));
  ::close(fd);
  if (got > 0) parse_proc_stat(buf, static_cast<size_t>(got), p);
  return p;
}

uint64_t process_start_time(int pid) { return process_info(pid).start_time; }

static void check_name(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 201;
  for (size_t i = 0; ok && i < name.size(); ++i) {
    const char c = name[i];
    const bool word = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    ok = word || (i > 0 && (c == '.' || c == '-'));
  }
  if (!ok)
    throw std::invalid_argument("heartbeat: name: found '" + name +
                                "'; valid: [A-Za-z0-9_][A-Za-z0-9_.-]{0,200} (a file in /dev/shm)");
}

bool Heartbeat::exists(const std::string& name) {
  check_name(name);
  struct stat st;
  return ::stat(("/dev/shm/" + name).c_str(), &st) == 0;
}

bool Heartbeat::unlink(const std::string& name) {
  check_name(name);
  return shm_unlink(("/" + name).c_str()) == 0;
}

Heartbeat::Heartbeat(const std::string& name, bool create) : name_(name) {
  check_name(name);
  const std::string shm = "/" + name;
  const size_t size = sizeof(HeartbeatLayout);
  int fd = shm_open(shm.c_str(), O_RDWR | (create ? O_CREAT : 0), 0660);
  if (fd < 0)
    throw std::runtime_error("heartbeat: cannot open " + path() + ": " + std::strerror(errno) +
                             (errno == ENOENT ? " (no runtime or guard has created it)" : ""));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    close(fd);
    throw std::runtime_error("heartbeat: fstat " + path() + ": " + std::strerror(e));
  }
  if (st.st_size == 0) {
    // Ours to size (created now, or by a peer that has not sized it yet: both size it alike).
    fchmod(fd, 0660);  // shm_open's mode passes through the umask
    if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
      const int e = errno;
      close(fd);
      throw std::runtime_error("heartbeat: sizing " + path() + ": " + std::strerror(e));
    }
  } else if (static_cast<size_t>(st.st_size) != size) {
    close(fd);
    throw std::runtime_error("heartbeat: " + path() + " is " + std::to_string(st.st_size) + " bytes; expected " +
                             std::to_string(size) + " (a version-" + std::to_string(kHeartbeatVersion) +
                             " Vertebra heartbeat); remove it (rm " + path() +
                             ") with the runtime and guard stopped to reset it");
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int e = errno;
  close(fd);
  if (p == MAP_FAILED) throw std::runtime_error("heartbeat: mmap " + path() + ": " + std::strerror(e));
  seg_ = static_cast<HeartbeatLayout*>(p);  // zero-filled when new: every atomic reads 0
  // The header: whoever finds magic 0 writes version and size, then publishes magic (one CAS wins;
  // both write the same values).
  uint32_t magic = seg_->magic.load(std::memory_order_acquire);
  if (magic == 0) {
    seg_->version.store(kHeartbeatVersion, std::memory_order_relaxed);
    seg_->size.store(static_cast<uint32_t>(size), std::memory_order_relaxed);
    uint32_t expected = 0;
    seg_->magic.compare_exchange_strong(expected, kHeartbeatMagic, std::memory_order_acq_rel);
    magic = seg_->magic.load(std::memory_order_acquire);
  }
  const uint32_t version = seg_->version.load(std::memory_order_acquire);
  const uint32_t found_size = seg_->size.load(std::memory_order_acquire);
  if (magic != kHeartbeatMagic || version != kHeartbeatVersion || found_size != size) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), "magic 0x%08x, version %u, size %u; expected magic 0x%08x, version %u, size %zu",
                  magic, version, found_size, kHeartbeatMagic, kHeartbeatVersion, size);
    munmap(seg_, size);
    seg_ = nullptr;
    throw std::runtime_error("heartbeat: " + path() + " is not a Vertebra heartbeat of this version (" + buf +
                             "); remove it (rm " + path() + ") with the runtime and guard stopped to reset it");
  }
}

Heartbeat::~Heartbeat() {
  if (seg_) munmap(seg_, sizeof(HeartbeatLayout));
}

void Heartbeat::attach_runtime(int64_t period_ns) {
  HeartbeatLayout& h = *seg_;
  const int pid = static_cast<int>(getpid());
  // Published in an order the guard can follow: no pid while the fields change, the pid last.
  h.runtime_pid.store(0, std::memory_order_release);
  h.last_write_ns.store(0, std::memory_order_relaxed);
  h.tick.store(0, std::memory_order_relaxed);
  h.standing.store(0, std::memory_order_relaxed);
  h.safety_mode.store(0, std::memory_order_relaxed);
  h.runtime_period_ns.store(period_ns, std::memory_order_relaxed);
  h.runtime_start_time.store(process_start_time(pid), std::memory_order_relaxed);
  h.runtime_epoch.fetch_add(1, std::memory_order_acq_rel);
  h.runtime_pid.store(pid, std::memory_order_release);
}

void Heartbeat::detach_runtime() {
  if (seg_->runtime_pid.load(std::memory_order_acquire) == static_cast<int>(getpid()))
    seg_->runtime_pid.store(0, std::memory_order_release);
}

uint64_t Heartbeat::request_ack() { return seg_->ack_requested.fetch_add(1, std::memory_order_acq_rel) + 1; }

HeartbeatView Heartbeat::view() const {
  const HeartbeatLayout& h = *seg_;
  constexpr auto a = std::memory_order_acquire;
  HeartbeatView v;
  v.magic = h.magic.load(a);
  v.version = h.version.load(a);
  v.size = h.size.load(a);
  v.runtime_pid = h.runtime_pid.load(a);
  v.runtime_start_time = h.runtime_start_time.load(a);
  v.runtime_epoch = h.runtime_epoch.load(a);
  v.runtime_period_ns = h.runtime_period_ns.load(a);
  v.last_write_ns = h.last_write_ns.load(a);
  v.tick = h.tick.load(a);
  v.safety_mode = h.safety_mode.load(a);
  v.standing = h.standing.load(a) != 0;
  v.guard_pid = h.guard_pid.load(a);
  v.guard_start_time = h.guard_start_time.load(a);
  v.guard_beat_ns = h.guard_beat_ns.load(a);
  v.guard_state = static_cast<GuardState>(h.guard_state.load(a));
  v.guard_armed = h.guard_armed.load(a) != 0;
  v.takeovers = h.takeovers.load(a);
  v.takeover_reason = static_cast<TakeoverReason>(h.takeover_reason.load(a));
  v.takeover_runtime_pid = h.takeover_runtime_pid.load(a);
  v.takeover_runtime_last_write_ns = h.takeover_runtime_last_write_ns.load(a);
  v.takeover_detect_ns = h.takeover_detect_ns.load(a);
  v.takeover_first_write_ns = h.takeover_first_write_ns.load(a);
  v.takeover_tick = h.takeover_tick.load(a);
  v.takeover_safety_mode = h.takeover_safety_mode.load(a);
  v.takeover_settle = h.takeover_settle.load(a) != 0;
  v.guard_commands = h.guard_commands.load(a);
  v.takeover_released_ns = h.takeover_released_ns.load(a);
  v.ack_requested = h.ack_requested.load(a);
  v.ack_done = h.ack_done.load(a);
  v.now_ns = heartbeat_clock_ns();
  return v;
}

HeartbeatCommand Heartbeat::last_command() const {
  const HeartbeatLayout& h = *seg_;
  HeartbeatCommand c;
  for (int attempt = 0; attempt < 100; ++attempt) {
    const uint64_t s0 = h.cmd_seq.load(std::memory_order_acquire);
    const int n = h.cmd_n.load(std::memory_order_relaxed);
    c.n = n < 0 ? 0 : (n > kMaxJoints ? kMaxJoints : n);
    for (int i = 0; i < c.n; ++i) {
      c.q[i] = h.cmd_q[i].load(std::memory_order_relaxed);
      c.kp[i] = h.cmd_kp[i].load(std::memory_order_relaxed);
      c.kd[i] = h.cmd_kd[i].load(std::memory_order_relaxed);
      c.tau_ff[i] = h.cmd_tau_ff[i].load(std::memory_order_relaxed);
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    const uint64_t s1 = h.cmd_seq.load(std::memory_order_relaxed);
    if (s0 == s1 && (s0 & 1u) == 0) {
      c.consistent = true;
      return c;
    }
    if ((s0 & 1u) != 0) std::this_thread::yield();  // a tick writing now (or one that died writing)
  }
  return c;  // the writer died mid-write: the copy is at most one tick apart per joint
}

}  // namespace vertebra
