// Heartbeat: the shared-memory segment between the runtime's real-time thread and the guard
// (`vertebra guard`, cpp/drivers/unitree/dds_guard.hpp), an independent process that takes the
// robot over with damping when the runtime stops.
//
// The segment is a POSIX shared-memory object, /dev/shm/<name> (shm_open(3)), mode 0660, holding
// one HeartbeatLayout: lock-free std::atomic fields only (address-free, so valid across processes:
// C++17 [atomics.lockfree] note; static_asserts below). Either side may create it; the guard
// normally starts first. Each side writes only its own fields:
//
//   offset  field                         writer   meaning
//   0       magic  u32 = 0x56485254 "VHRT" creator  a Vertebra heartbeat segment
//   4       version u32 = 1                creator  this layout (a reader refuses another)
//   8       size   u32 = sizeof(layout)    creator  bytes (a reader refuses another)
//   --- runtime side (RtLoop, set_heartbeat) ---
//   64      runtime_pid i32                runtime  0: no runtime attached (never attached, or closed cleanly)
//   72      runtime_start_time u64         runtime  /proc/<pid>/stat field 22 (starttime, clock ticks since boot):
//                                                   with the pid, names the process even if the pid is reused
//   80      runtime_epoch u64              runtime  +1 each time a runtime attaches
//   88      runtime_period_ns i64          runtime  the control period
//   128     tick u64                       tick     the last tick that wrote (1, 2, ...)
//   136     last_write_ns i64              tick     CLOCK_MONOTONIC of that tick's driver write (release store,
//                                                   written last: a reader that acquires it sees the rest)
//   144     safety_mode i32                tick     SafetyMode (cpp/safety/safety.hpp)
//   148     standing u32                   tick     1 in STANDUP, HOLD, ACTIVE (the robot carries itself)
//   152     cmd_seq u64                    tick     seqlock over cmd_* (odd while the tick writes them)
//   160     cmd_n i32                      tick     joints in the last command
//   168     cmd_q, cmd_kp, cmd_kd, cmd_tau_ff: f64[48] each   the last command written (motor order)
//   --- guard side (DdsGuard) ---
//   1704    guard_pid i32                  guard    0: no guard
//   1712    guard_start_time u64           guard    as runtime_start_time, for the guard
//   1720    guard_beat_ns i64              guard    CLOCK_MONOTONIC of the guard's last watch cycle
//   1728    guard_state i32                guard    GuardState: 0 off, 1 watching, 2 holding
//   1732    guard_armed u32                guard    1: the guard has seen this runtime's heartbeat fresh
//   1736    takeovers u64                  guard    takeovers since the segment was created
//   1744    takeover_reason i32            guard    TakeoverReason of the last: 1 heartbeat_timeout, 2 process_exit
//   1748    takeover_runtime_pid i32       guard    the runtime the last takeover replaced
//   1752    takeover_runtime_last_write_ns i64  guard  its last_write_ns then
//   1760    takeover_detect_ns i64         guard    when the guard saw it (CLOCK_MONOTONIC)
//   1768    takeover_first_write_ns i64    guard    the guard's first rt/lowcmd write
//   1776    takeover_tick u64              guard    the runtime's last tick
//   1784    takeover_safety_mode i32       guard    its safety mode then
//   1788    takeover_settle u32            guard    1: the settle-then-cut poses ran before damping
//   1792    guard_commands u64             guard    rt/lowcmd frames the guard has published (all takeovers)
//   1800    takeover_released_ns i64       guard    when the last hold ended (acknowledged), 0 while holding
//   --- operator ---
//   1832    ack_requested u64              anyone   +1 per acknowledgement requested (vertebra guard ack)
//   1840    ack_done u64                   guard    the last request the guard answered
//   1848    (end: size = 1848)
//
// The exact offsets are checked by static_asserts in heartbeat.cpp; tests read the header bytes.
// [tick] beat() is a handful of relaxed stores and one release store: no system call, no allocation,
// no lock, no exception. Everything else (open, attach, detach) is configuration time and may throw
// with what was expected, what was found and what is valid.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/types.hpp"

namespace vertebra {

inline constexpr uint32_t kHeartbeatMagic = 0x56485254u;  // "VHRT"
inline constexpr uint32_t kHeartbeatVersion = 1;

enum class GuardState : int32_t { kOff = 0, kWatching = 1, kHolding = 2 };
enum class TakeoverReason : int32_t { kNone = 0, kHeartbeatTimeout = 1, kProcessExit = 2 };
const char* guard_state_name(GuardState s);
const char* takeover_reason_name(TakeoverReason r);

struct HeartbeatLayout {
  std::atomic<uint32_t> magic;
  std::atomic<uint32_t> version;
  std::atomic<uint32_t> size;
  uint32_t reserved0;
  uint8_t pad0[48];
  // runtime side (configuration time)
  std::atomic<int32_t> runtime_pid;
  int32_t reserved1;
  std::atomic<uint64_t> runtime_start_time;
  std::atomic<uint64_t> runtime_epoch;
  std::atomic<int64_t> runtime_period_ns;
  uint8_t pad1[32];
  // runtime side (every tick)
  std::atomic<uint64_t> tick;
  std::atomic<int64_t> last_write_ns;
  std::atomic<int32_t> safety_mode;
  std::atomic<uint32_t> standing;
  std::atomic<uint64_t> cmd_seq;
  std::atomic<int32_t> cmd_n;
  int32_t reserved2;
  std::atomic<double> cmd_q[kMaxJoints];
  std::atomic<double> cmd_kp[kMaxJoints];
  std::atomic<double> cmd_kd[kMaxJoints];
  std::atomic<double> cmd_tau_ff[kMaxJoints];
  // guard side
  std::atomic<int32_t> guard_pid;
  int32_t reserved3;
  std::atomic<uint64_t> guard_start_time;
  std::atomic<int64_t> guard_beat_ns;
  std::atomic<int32_t> guard_state;
  std::atomic<uint32_t> guard_armed;
  std::atomic<uint64_t> takeovers;
  std::atomic<int32_t> takeover_reason;
  std::atomic<int32_t> takeover_runtime_pid;
  std::atomic<int64_t> takeover_runtime_last_write_ns;
  std::atomic<int64_t> takeover_detect_ns;
  std::atomic<int64_t> takeover_first_write_ns;
  std::atomic<uint64_t> takeover_tick;
  std::atomic<int32_t> takeover_safety_mode;
  std::atomic<uint32_t> takeover_settle;
  std::atomic<uint64_t> guard_commands;
  std::atomic<int64_t> takeover_released_ns;
  uint8_t pad2[24];
  // operator
  std::atomic<uint64_t> ack_requested;
  std::atomic<uint64_t> ack_done;
};

static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<int64_t>::is_always_lock_free &&
                  std::atomic<double>::is_always_lock_free && std::atomic<uint32_t>::is_always_lock_free &&
                  std::atomic<int32_t>::is_always_lock_free,
              "the heartbeat is shared between processes: its atomics must be lock-free (address-free)");

// The last command as the segment holds it (what the guard's settle starts from).
struct HeartbeatCommand {
  int n = 0;
  JointArray q{}, kp{}, kd{}, tau_ff{};
  bool consistent = false;  // false: the writer died mid-write (the copy may mix two ticks)
};

// A plain copy of every field (reading it is a series of acquire loads; not one instant).
struct HeartbeatView {
  uint32_t magic = 0, version = 0, size = 0;
  int32_t runtime_pid = 0;
  uint64_t runtime_start_time = 0, runtime_epoch = 0;
  int64_t runtime_period_ns = 0;
  uint64_t tick = 0;
  int64_t last_write_ns = 0;
  int32_t safety_mode = 0;
  bool standing = false;
  int32_t guard_pid = 0;
  uint64_t guard_start_time = 0;
  int64_t guard_beat_ns = 0;
  GuardState guard_state = GuardState::kOff;
  bool guard_armed = false;
  uint64_t takeovers = 0;
  TakeoverReason takeover_reason = TakeoverReason::kNone;
  int32_t takeover_runtime_pid = 0;
  int64_t takeover_runtime_last_write_ns = 0, takeover_detect_ns = 0, takeover_first_write_ns = 0;
  uint64_t takeover_tick = 0;
  int32_t takeover_safety_mode = 0;
  bool takeover_settle = false;
  uint64_t guard_commands = 0;
  int64_t takeover_released_ns = 0;
  uint64_t ack_requested = 0, ack_done = 0;
  int64_t now_ns = 0;  // CLOCK_MONOTONIC when read
};

// CLOCK_MONOTONIC in ns (the clock of every timestamp in the segment).
int64_t heartbeat_clock_ns();

// A process as /proc/<pid>/stat shows it (proc(5)): field 3 state, field 9 the kernel's task flags,
// field 22 starttime (clock ticks since boot).
struct ProcessInfo {
  bool exists = false;
  char state = 0;          // R, S, D, T (stopped), t, Z (zombie), X (dead), ...
  uint64_t flags = 0;
  uint64_t start_time = 0;
  // The kernel has begun tearing it down: PF_EXITING (0x4, include/linux/sched.h; set by
  // exit_signals() at the top of do_exit(), long before the process's memory is unmapped and a
  // pidfd polls readable: an mlockall'ed runtime takes several ms to unmap), or it is a zombie.
  bool exiting() const { return !exists || state == 'Z' || state == 'X' || state == 'x' || (flags & 0x4u) != 0; }
};
// Parse one /proc/<pid>/stat text (comm may hold spaces and parentheses: fields count from the last ')').
bool parse_proc_stat(const char* text, size_t n, ProcessInfo& out);
ProcessInfo process_info(int pid);
// /proc/<pid>/stat's starttime (field 22), 0 when the process does not exist.
uint64_t process_start_time(int pid);

class Heartbeat {
 public:
  // Open /dev/shm/<name>, creating it (mode 0660) when `create` and it does not exist. Throws
  // std::invalid_argument for a bad name (valid: [A-Za-z0-9_][A-Za-z0-9_.-]{0,200}),
  // std::runtime_error when it cannot be opened or is not a version-1 Vertebra heartbeat (naming
  // what was found and that removing /dev/shm/<name> resets it), or does not exist and !create.
  explicit Heartbeat(const std::string& name, bool create = true);
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;
  const std::string& name() const { return name_; }
  std::string path() const { return "/dev/shm/" + name_; }
  static bool exists(const std::string& name);
  static bool unlink(const std::string& name);  // true when it was there

  // Runtime side. attach(): this process (pid, start time) is the runtime, epoch + 1, no tick yet.
  // detach(): a clean close (runtime_pid 0): the guard stops watching it, no takeover.
  void attach_runtime(int64_t period_ns);
  void detach_runtime();
  // [tick] After the driver write: the command written, the safety mode, then the write time.
  void beat(uint64_t tick, int64_t write_ns, int32_t safety_mode, bool standing, const Command& cmd) {
    HeartbeatLayout& h = *seg_;
    const uint64_t s = h.cmd_seq.load(std::memory_order_relaxed);
    h.cmd_seq.store(s + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    const int n = cmd.n < 0 ? 0 : (cmd.n > kMaxJoints ? kMaxJoints : cmd.n);
    h.cmd_n.store(n, std::memory_order_relaxed);
    for (int i = 0; i < n; ++i) {
      h.cmd_q[i].store(cmd.q[i], std::memory_order_relaxed);
      h.cmd_kp[i].store(cmd.kp[i], std::memory_order_relaxed);
      h.cmd_kd[i].store(cmd.kd[i], std::memory_order_relaxed);
      h.cmd_tau_ff[i].store(cmd.tau_ff[i], std::memory_order_relaxed);
    }
    h.cmd_seq.store(s + 2, std::memory_order_release);
    h.tick.store(tick, std::memory_order_relaxed);
    h.safety_mode.store(safety_mode, std::memory_order_relaxed);
    h.standing.store(standing ? 1u : 0u, std::memory_order_relaxed);
    h.last_write_ns.store(write_ns, std::memory_order_release);
  }

  // [tick] The guard holds the robot (its state is holding and its watch cycle wrote within the
  // last kGuardAliveNs of `now_ns`, CLOCK_MONOTONIC): two acquire loads, no system call. A guard that
  // died or froze while holding leaves the state at holding but its beat ages: it commands nothing,
  // so it holds nothing. The runtime's loop reads this every tick (lowcmd_conflict; no write).
  static constexpr int64_t kGuardAliveNs = 1'000'000'000;
  bool guard_holding(int64_t now_ns) const {
    const HeartbeatLayout& h = *seg_;
    if (h.guard_state.load(std::memory_order_acquire) != static_cast<int32_t>(GuardState::kHolding)) return false;
    return now_ns - h.guard_beat_ns.load(std::memory_order_acquire) < kGuardAliveNs;
  }

  // Operator: ask the guard for an acknowledgement; returns the request's number (done when
  // ack_done reaches it).
  uint64_t request_ack();

  HeartbeatView view() const;
  HeartbeatCommand last_command() const;  // a seqlock read (a few tries)
  HeartbeatLayout& layout() { return *seg_; }  // the guard's side writes through this
  const HeartbeatLayout& layout() const { return *seg_; }

 private:
  std::string name_;
  HeartbeatLayout* seg_ = nullptr;
};

}  // namespace vertebra
