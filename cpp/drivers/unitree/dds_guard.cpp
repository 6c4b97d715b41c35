#include "drivers/unitree/dds_guard.hpp"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "drivers/unitree/unitree_crc.hpp"
#include "safety/supervisor.hpp"

namespace vertebra::unitree {

namespace {
const dds_topic_descriptor_t* cmd_desc(Messages m) {
  return m == Messages::kHg ? &unitree_hg_msg_dds__LowCmd__desc : &unitree_go_msg_dds__LowCmd__desc;
}
const dds_topic_descriptor_t* state_desc(Messages m) {
  return m == Messages::kHg ? &unitree_hg_msg_dds__LowState__desc : &unitree_go_msg_dds__LowState__desc;
}
void sleep_until_ns(int64_t t) {
  timespec ts{static_cast<time_t>(t / 1'000'000'000), static_cast<long>(t % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}
std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof(b), "%g", v);
  return b;
}
// pidfd_open(2) (Linux 5.3): a file descriptor that polls readable once the process has exited.
int open_pidfd(int pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#else
  errno = ENOSYS;
  return -1;
#endif
}
}  // namespace

DdsGuard::DdsGuard(GuardOptions opt, const RobotParams& params, const SafetyConfig& safety)
    : opt_(std::move(opt)), params_(params), safety_(safety) {
  const int slots = opt_.messages == Messages::kHg ? kHgMotors : kGoMotors;
  if (static_cast<int>(opt_.motors.size()) != params_.n)
    throw std::invalid_argument("guard: motors: " + std::to_string(opt_.motors.size()) + " motor slots for " +
                                std::to_string(params_.n) + " joints; valid: one per joint (the robot config's motor column)");
  map_.n = params_.n;
  for (int j = 0; j < map_.n; ++j) {
    if (opt_.motors[j] < 0 || opt_.motors[j] >= slots)
      throw std::invalid_argument("guard: motors[" + std::to_string(j) + "]: found " + std::to_string(opt_.motors[j]) +
                                  "; valid: 0 to " + std::to_string(slots - 1));
    map_.motor[j] = opt_.motors[j];
  }
  if (!(opt_.timeout_ms >= 1.0 && opt_.timeout_ms <= 10'000.0))
    throw std::invalid_argument("guard: timeout_ms: found " + num(opt_.timeout_ms) + "; valid: 1 to 10000 ms");
  if (!(opt_.rate_hz >= 10.0 && opt_.rate_hz <= 10'000.0))
    throw std::invalid_argument("guard: rate_hz: found " + num(opt_.rate_hz) + "; valid: 10 to 10000 Hz");
  if (!(opt_.watch_hz >= 1000.0 && opt_.watch_hz <= 100'000.0))
    throw std::invalid_argument("guard: watch_hz: found " + num(opt_.watch_hz) + "; valid: 1000 to 100000 Hz");
  if (opt_.mode_pr < 0 || opt_.mode_pr > 1)
    throw std::invalid_argument("guard: mode_pr: found " + std::to_string(opt_.mode_pr) + "; valid: 0 (PR), 1 (AB)");
  period_ns_ = static_cast<int64_t>(1e9 / opt_.rate_hz);
  watch_ns_ = static_cast<int64_t>(1e9 / opt_.watch_hz);
  timeout_ns_ = static_cast<int64_t>(opt_.timeout_ms * 1e6);
  if (opt_.idle_timeout_ms < 0 || !std::isfinite(opt_.idle_timeout_ms))
    throw std::invalid_argument("guard: idle_timeout_ms: found " + num(opt_.idle_timeout_ms) +
                                "; valid: >= 0 ms (0: 10 x timeout_ms, at least 250 ms)");
  idle_timeout_ns_ = opt_.idle_timeout_ms > 0 ? static_cast<int64_t>(opt_.idle_timeout_ms * 1e6)
                                              : std::max<int64_t>(10 * timeout_ns_, 250'000'000);
  hb_ = std::make_shared<Heartbeat>(opt_.heartbeat, true);  // throws naming the segment
  const HeartbeatView v = hb_->view();
  if (v.guard_pid != 0 && v.guard_pid != static_cast<int>(getpid()) && v.guard_start_time != 0 &&
      process_start_time(v.guard_pid) == v.guard_start_time && v.now_ns - v.guard_beat_ns < 1'000'000'000)
    throw std::runtime_error("guard: another guard (pid " + std::to_string(v.guard_pid) + ") watches heartbeat '" +
                             opt_.heartbeat + "'; valid: one guard per runtime (stop that one first)");
  settle_ = std::make_unique<SettleMode>(&safety_);
  cmd_.n = params_.n;
  sample_.state.n = params_.n;
  pp_ = std::make_unique<DdsParticipant>(opt_.domain_id, opt_.network_interface);
  const size_t size = opt_.messages == Messages::kHg ? sizeof(HgLowState) : sizeof(GoLowState);
  reader_ = std::make_unique<DdsReader>(*pp_, state_desc(opt_.messages), opt_.lowstate_topic, size,
                                        [this](const void* m) { on_state(m); });
  // The rt/lowcmd writer, now: discovered by the robot's reader (and the runtime's driver, which
  // does not count it: its user_data names the guard) long before any takeover, and silent until one.
  const int64_t t0 = steady_ns();
  writer_ = std::make_unique<DdsWriter>(*pp_, cmd_desc(opt_.messages), opt_.lowcmd_topic,
                                        std::string(kGuardUserDataPrefix) + opt_.heartbeat);  // throws naming the topic
  status_.writer_create_ns = steady_ns() - t0;
}

DdsGuard::~DdsGuard() {
  stop();
  writer_.reset();  // the robot's reader and the runtime's driver see it leave
  reader_.reset();
  pp_.reset();
}

void DdsGuard::on_state(const void* msg) {
  Sample s{};
  s.state.n = map_.n;
  if (opt_.messages == Messages::kHg) {
    const auto& m = *static_cast<const HgLowState*>(msg);
    if (!crc_ok(m)) {
      crc_errors_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    decode_lowstate(map_, m, s.state);
    s.mode_machine = m.mode_machine;
  } else {
    const auto& m = *static_cast<const GoLowState*>(msg);
    if (!crc_ok(m)) {
      crc_errors_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    decode_lowstate(map_, m, s.state);
  }
  s.state.stamp_ns = steady_ns();
  s.state.seq = states_.fetch_add(1, std::memory_order_acq_rel) + 1;
  latest_.store(s);
}

void DdsGuard::start() {
  if (running_.exchange(true)) return;
  reported_.store(false);
  thread_ = std::thread([this] { thread_main(); });
  while (!reported_.load(std::memory_order_acquire)) std::this_thread::yield();
}

void DdsGuard::stop() {
  if (!running_.exchange(false)) return;
  if (thread_.joinable()) thread_.join();
}

GuardStatus DdsGuard::status() const {
  std::lock_guard<std::mutex> lock(status_mutex_);
  GuardStatus s = status_;
  s.states = states_.load();
  s.crc_errors = crc_errors_.load();
  return s;
}

void DdsGuard::publish_status() {
  std::lock_guard<std::mutex> lock(status_mutex_);
  status_.state = holding_ ? GuardState::kHolding : GuardState::kWatching;
  status_.armed = armed_;
  status_.runtime_pid = following_ ? pid_ : 0;
  status_.pidfd = pidfd_ >= 0;
  status_.phase = holding_ ? (settling_ ? "settle" : "damping") : "";
  status_.matched_readers = writer_ ? writer_->matched_readers() : -1;
}

void DdsGuard::follow(int pid, uint64_t start_time, uint64_t epoch) {
  forget();
  pid_ = pid;
  start_time_ = start_time;
  epoch_ = epoch;
  following_ = true;
  armed_ = false;
  pidfd_ = open_pidfd(pid);
  stat_fd_ = ::open(("/proc/" + std::to_string(pid) + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
  // The pid may already name another process (the runtime gone, its pid reused): the start time
  // recorded at attach decides. A mismatch is a runtime already gone.
  if (process_start_time(pid) != start_time) forget();  // pid_ and epoch_ stay: it is not followed again
}

void DdsGuard::forget() {
  if (pidfd_ >= 0) close(pidfd_);
  pidfd_ = -1;
  if (stat_fd_ >= 0) close(stat_fd_);
  stat_fd_ = -1;
  following_ = false;
  armed_ = false;
}

bool DdsGuard::runtime_exited() {
  if (!following_) return false;
  if (pidfd_ >= 0) {
    pollfd p{pidfd_, POLLIN, 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR));
  }
  // No pidfd (an old kernel): the pid gone, or reused by another process.
  const ProcessInfo p = process_info(pid_);
  return !p.exists || p.state == 'Z' || p.state == 'X' || p.start_time != start_time_;
}

bool DdsGuard::runtime_exiting() {
  if (!following_) return false;
  if (stat_fd_ < 0) return process_info(pid_).exiting();
  char buf[1024];
  const ssize_t got = pread(stat_fd_, buf, sizeof(buf), 0);  // the kernel regenerates it at offset 0
  if (got <= 0) return true;                                  // ESRCH: the process is gone
  ProcessInfo p;
  return !parse_proc_stat(buf, static_cast<size_t>(got), p) || p.exiting();
}

void DdsGuard::take_over(TakeoverReason why, const HeartbeatView& v, int64_t now) {
  HeartbeatLayout& h = hb_->layout();
  holding_ = true;
  armed_ = false;
  latest_.load(sample_);
  const bool have_state = sample_.state.seq > 0;
  // Settle-then-cut from where the runtime's last command held the robot (its spring and
  // feed-forward torque, as entering a mode from a running command does), when it was standing.
  settling_ = false;
  if (opt_.settle && v.standing && safety_.n_settle > 0 && have_state) {
    const HeartbeatCommand hc = hb_->last_command();
    Command last{};
    if (hc.n == params_.n) {
      last.n = hc.n;
      last.q = hc.q;
      last.kp = hc.kp;
      last.kd = hc.kd;
      last.tau_ff = hc.tau_ff;
    }
    settling_ = settle_->enter(params_, sample_.state, last, Targets{}, ModeRequest{}) == Status::kOk;
  }
  h.takeover_reason.store(static_cast<int32_t>(why), std::memory_order_relaxed);
  h.takeover_runtime_pid.store(v.runtime_pid, std::memory_order_relaxed);
  h.takeover_runtime_last_write_ns.store(v.last_write_ns, std::memory_order_relaxed);
  h.takeover_detect_ns.store(now, std::memory_order_relaxed);
  h.takeover_first_write_ns.store(0, std::memory_order_relaxed);
  h.takeover_tick.store(v.tick, std::memory_order_relaxed);
  h.takeover_safety_mode.store(v.safety_mode, std::memory_order_relaxed);
  h.takeover_settle.store(settling_ ? 1u : 0u, std::memory_order_relaxed);
  h.takeover_released_ns.store(0, std::memory_order_relaxed);
  h.guard_armed.store(0, std::memory_order_relaxed);
  h.guard_state.store(static_cast<int32_t>(GuardState::kHolding), std::memory_order_release);
  h.takeovers.fetch_add(1, std::memory_order_acq_rel);
  // The writer exists since construction and the robot's reader matched it then: the first frame
  // needs no discovery. (The runtime's loop reads guard_state holding, stored above, every tick.)
  {
    std::lock_guard<std::mutex> lock(status_mutex_);
    ++status_.takeovers;
    status_.matched_readers_at_first_write = -1;
  }
  first_write_pending_ = true;
  next_publish_ns_ = steady_ns();
  publish_one();
}

void DdsGuard::publish_one() {
  Sample s;
  if (latest_.load(s) > 0 && s.state.seq > 0) sample_ = s;
  const double dt = period_ns_ * 1e-9;
  if (settling_) {
    settle_->update(params_, sample_.state, Targets{}, dt, cmd_);
    if (settle_->done()) settling_ = false;
  } else {
    damping_.update(params_, sample_.state, Targets{}, dt, cmd_);
  }
  int rc = DDS_RETCODE_ERROR;
  if (writer_) {
    if (opt_.messages == Messages::kHg) {
      encode_lowcmd(map_, cmd_, static_cast<uint8_t>(opt_.mode_pr), sample_.mode_machine, hg_);
      rc = writer_->write(&hg_);
    } else {
      encode_lowcmd(map_, cmd_, go_);
      rc = writer_->write(&go_);
    }
  }
  const int64_t done = steady_ns();
  HeartbeatLayout& h = hb_->layout();
  std::lock_guard<std::mutex> lock(status_mutex_);
  if (rc == DDS_RETCODE_OK) {
    ++status_.commands;
    if (settling_) ++status_.settle_commands;
    h.guard_commands.fetch_add(1, std::memory_order_relaxed);
    if (first_write_pending_) {
      first_write_pending_ = false;
      h.takeover_first_write_ns.store(done, std::memory_order_release);
      status_.matched_readers_at_first_write = writer_->matched_readers();
    }
  } else {
    ++status_.write_errors;
  }
}

void DdsGuard::release(int64_t now) {
  holding_ = false;  // the writer stays (silent): the next takeover needs no discovery either
  settling_ = false;
  HeartbeatLayout& h = hb_->layout();
  h.takeover_released_ns.store(now, std::memory_order_relaxed);
  h.guard_state.store(static_cast<int32_t>(GuardState::kWatching), std::memory_order_release);
  std::lock_guard<std::mutex> lock(status_mutex_);
  ++status_.releases;
}

void DdsGuard::answer_acks(int64_t now) {
  HeartbeatLayout& h = hb_->layout();
  const uint64_t req = h.ack_requested.load(std::memory_order_acquire);
  if (req == h.ack_done.load(std::memory_order_acquire)) return;
  if (holding_) release(now);
  h.ack_done.store(req, std::memory_order_release);
}

void DdsGuard::thread_main() {
  std::string notes;
  bool fifo = false;
  if (opt_.realtime_priority) {
    sched_param sp{};
    sp.sched_priority = opt_.fifo_priority;
    const int rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
    fifo = rc == 0;
    if (rc != 0) notes += std::string("SCHED_FIFO: ") + std::strerror(rc) + "; ";
  }
  HeartbeatLayout& h = hb_->layout();
  const int self = static_cast<int>(getpid());
  h.guard_start_time.store(process_start_time(self), std::memory_order_relaxed);
  h.guard_beat_ns.store(heartbeat_clock_ns(), std::memory_order_relaxed);
  h.guard_armed.store(0, std::memory_order_relaxed);
  h.guard_pid.store(self, std::memory_order_release);
  // Requests made while no guard ran are answered now (nothing was held).
  h.ack_done.store(h.ack_requested.load(std::memory_order_acquire), std::memory_order_release);
  h.guard_state.store(static_cast<int32_t>(GuardState::kWatching), std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(status_mutex_);
    status_.sched_fifo = fifo;
    status_.notes = notes;
  }
  publish_status();
  reported_.store(true, std::memory_order_release);

  while (running_.load(std::memory_order_acquire)) {
    int64_t now = heartbeat_clock_ns();
    h.guard_beat_ns.store(now, std::memory_order_relaxed);
    answer_acks(now);
    if (holding_) {
      // Publish at rate_hz to absolute deadlines (a late one is sent at once; missed ones dropped).
      next_publish_ns_ += period_ns_;
      if (next_publish_ns_ < now - period_ns_) next_publish_ns_ = now;
      publish_status();
      sleep_until_ns(next_publish_ns_);
      if (!running_.load(std::memory_order_acquire)) break;
      if (holding_) publish_one();
      continue;
    }
    // Watching: which runtime, and is it alive?
    const HeartbeatView v = hb_->view();
    if (v.runtime_pid == 0) {
      if (following_) forget();
    } else if (!following_ || v.runtime_pid != pid_ || v.runtime_epoch != epoch_) {
      if (!(following_ == false && v.runtime_pid == pid_ && v.runtime_epoch == epoch_))  // not one already gone
        follow(v.runtime_pid, v.runtime_start_time, v.runtime_epoch);
    }
    if (following_) {
      const bool beat_fresh = v.last_write_ns != 0 && now - v.last_write_ns < timeout_ns_;
      if (beat_fresh && !armed_) {
        armed_ = true;
        h.guard_armed.store(1, std::memory_order_release);
      }
      bool exited = runtime_exited();
      // One period late (and more than a quarter of one): is the process being torn down?
      const int64_t period = v.runtime_period_ns > 0 ? v.runtime_period_ns : 2'000'000;
      const bool late = v.last_write_ns != 0 && now - v.last_write_ns > period + std::max<int64_t>(period / 4, 300'000);
      if (armed_ && !exited && late && runtime_exiting()) exited = true;
      if (armed_ && exited) {
        take_over(TakeoverReason::kProcessExit, v, now);
      } else if (armed_ && v.last_write_ns != 0 && now - v.last_write_ns >= (v.standing ? timeout_ns_ : idle_timeout_ns_)) {
        take_over(TakeoverReason::kHeartbeatTimeout, v, now);
      } else if (exited) {
        // Gone before it was armed (never ticked, or its hold was acknowledged): nothing to hold.
        forget();
        h.guard_armed.store(0, std::memory_order_release);
      }
      if (holding_) {
        if (following_ && exited) forget();  // the process is gone: stop polling its pidfd (it stays readable)
        publish_status();
        continue;
      }
    } else if (h.guard_armed.load(std::memory_order_relaxed)) {
      h.guard_armed.store(0, std::memory_order_release);
    }
    publish_status();
    // Wait one watch period, or less: the runtime's pidfd wakes us the moment the process ends.
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      const timespec ts{0, static_cast<long>(watch_ns_)};
      ppoll(&p, 1, &ts, nullptr);
    } else {
      sleep_until_ns(now + watch_ns_);
    }
  }
  holding_ = false;  // the writer stays until destruction (silent)
  forget();
  h.guard_armed.store(0, std::memory_order_relaxed);
  h.guard_state.store(static_cast<int32_t>(GuardState::kOff), std::memory_order_release);
  if (h.guard_pid.load(std::memory_order_acquire) == self) h.guard_pid.store(0, std::memory_order_release);
  std::lock_guard<std::mutex> lock(status_mutex_);
  status_.state = GuardState::kOff;
  status_.armed = false;
  status_.phase = "";
}

}  // namespace vertebra::unitree
