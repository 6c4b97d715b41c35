#include "drivers/unitree/unitree_dds_driver.hpp"

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "drivers/unitree/unitree_crc.hpp"
#include "safety/heartbeat.hpp"

namespace vertebra::unitree {

namespace {
constexpr int64_t kLockstepPollNs = 100'000;
constexpr int64_t kPublishLeadNs = 60'000;   // the publisher wakes this long before the next write is due
constexpr int64_t kPublishSpinNs = 400'000;  // and watches for it at most this long
std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", s);
  return buf;
}
const dds_topic_descriptor_t* cmd_desc(Messages m) {
  return m == Messages::kHg ? &unitree_hg_msg_dds__LowCmd__desc : &unitree_go_msg_dds__LowCmd__desc;
}
const dds_topic_descriptor_t* state_desc(Messages m) {
  return m == Messages::kHg ? &unitree_hg_msg_dds__LowState__desc : &unitree_go_msg_dds__LowState__desc;
}
}  // namespace

UnitreeDdsDriver::UnitreeDdsDriver(UnitreeDdsOptions opt) : opt_(std::move(opt)) {}

UnitreeDdsDriver::~UnitreeDdsDriver() { on_cleanup(); }

void UnitreeDdsDriver::on_configure(const DriverInit& init) {
  const int n = static_cast<int>(init.joint_names.size());
  const int slots = opt_.messages == Messages::kHg ? kHgMotors : kGoMotors;
  if (static_cast<int>(opt_.motors.size()) != n)
    throw std::invalid_argument("unitree_dds: motors: " + std::to_string(opt_.motors.size()) + " motor slots for " +
                                std::to_string(n) + " joints; valid: one per joint (the robot config's motor column)");
  map_.n = n;
  for (int j = 0; j < n; ++j) {
    const int m = opt_.motors[j];
    if (m < 0 || m >= slots)
      throw std::invalid_argument("unitree_dds: motors[" + std::to_string(j) + "] (" + init.joint_names[j] +
                                  "): found " + std::to_string(m) + "; valid: 0 to " + std::to_string(slots - 1));
    map_.motor[j] = m;
  }
  if (opt_.estop_buttons < 0 || opt_.estop_buttons > 0xFFFF)
    throw std::invalid_argument("unitree_dds: estop_buttons: found " + std::to_string(opt_.estop_buttons) +
                                "; valid: a 16-bit mask of remote buttons (0: none)");
  if (opt_.mode_pr < 0 || opt_.mode_pr > 1)
    throw std::invalid_argument("unitree_dds: mode_pr: found " + std::to_string(opt_.mode_pr) + "; valid: 0 (PR), 1 (AB)");
  if (!(opt_.motion_service_timeout_s > 0) || !(opt_.release_timeout_s > 0))
    throw std::invalid_argument("unitree_dds: motion_service_timeout_s and release_timeout_s: found " +
                                seconds_text(opt_.motion_service_timeout_s) + ", " +
                                seconds_text(opt_.release_timeout_s) + "; valid: > 0 s");
  damping_kd_ = init.damping_kd;
  if (!(init.control_rate_hz >= 1.0 && init.control_rate_hz <= 10000.0))
    throw std::invalid_argument("unitree_dds: control_rate_hz: found " + std::to_string(init.control_rate_hz) +
                                "; valid: 1 to 10000 Hz");
  period_ns_ = static_cast<int64_t>(1e9 / init.control_rate_hz);
  pp_ = std::make_unique<DdsParticipant>(opt_.domain_id, opt_.network_interface);
  writer_ = std::make_unique<DdsWriter>(*pp_, cmd_desc(opt_.messages), opt_.lowcmd_topic);
  const size_t size = opt_.messages == Messages::kHg ? sizeof(HgLowState) : sizeof(GoLowState);
  reader_ = std::make_unique<DdsReader>(*pp_, state_desc(opt_.messages), opt_.lowstate_topic, size,
                                        [this](const void* m) { on_state(m); }, opt_.lockstep);
  // Who else publishes rt/lowcmd (the built-in motion service, a second controller): a reader of
  // our own that counts matched writers (ours included), less the guard's (its user_data names it:
  // it is silent until it takes over, and the loop sees that in the heartbeat segment).
  cmd_watch_ = std::make_unique<DdsReader>(*pp_, cmd_desc(opt_.messages), opt_.lowcmd_topic,
                                           opt_.messages == Messages::kHg ? sizeof(HgLowCmd) : sizeof(GoLowCmd),
                                           [](const void*) {}, false, Delivery::kReceiveThread,
                                           kGuardUserDataPrefix);
  // Unitree's built-in motion service: its state topic (a publisher: the service runs) and the
  // motion_switcher that starts and stops it. Made here so discovery runs while we wait for state.
  sport_watch_ = std::make_unique<DdsReader>(*pp_, &unitree_go_msg_dds__SportModeState__desc, opt_.sportmodestate_topic,
                                             sizeof(GoSportModeState),
                                             [this](const void*) { sportmodestates_.fetch_add(1, std::memory_order_relaxed); });
  motion_switcher_ = std::make_unique<RpcClient>(*pp_, kMotionSwitcherService);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(opt_.state_timeout_s);
  while (states_.load(std::memory_order_acquire) == 0) {
    if (std::chrono::steady_clock::now() > end) {
      const uint64_t bad = crc_errors_.load();
      motion_switcher_.reset();
      sport_watch_.reset();
      cmd_watch_.reset();
      reader_.reset();
      writer_.reset();
      pp_.reset();
      throw std::runtime_error(
          "unitree_dds: no valid " + opt_.lowstate_topic + " within " + seconds_text(opt_.state_timeout_s) +
          " s on domain " + std::to_string(opt_.domain_id) + ", interface '" + opt_.network_interface + "'" +
          (bad ? " (" + std::to_string(bad) + " sample(s) with a bad CRC: wrong message type, hg for G1 / go for Go2?)"
               : " (is the robot on, or the bridge running, on this domain and interface?)"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void UnitreeDdsDriver::on_state(const void* msg) {
  Sample s{};
  if (opt_.messages == Messages::kHg) {
    const auto& m = *static_cast<const HgLowState*>(msg);
    if (!crc_ok(m)) {
      crc_errors_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    decode_lowstate(map_, m, s.state);
    s.remote = decode_remote(m.wireless_remote);
    s.mode_machine = m.mode_machine;
  } else {
    const auto& m = *static_cast<const GoLowState*>(msg);
    if (!crc_ok(m)) {
      crc_errors_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    decode_lowstate(map_, m, s.state, s.foot_force);
    s.remote = decode_remote(m.wireless_remote);
  }
  // Lockstep (the bridge): the robot's own clock, its tick in ms, so that robot time advances one
  // control period per command whatever this machine's speed. Real time: this machine's clock.
  const uint32_t tick = opt_.messages == Messages::kHg ? static_cast<const HgLowState*>(msg)->tick
                                                       : static_cast<const GoLowState*>(msg)->tick;
  s.state.stamp_ns = opt_.lockstep ? static_cast<int64_t>(tick) * 1'000'000 : steady_ns();
  s.state.seq = states_.fetch_add(1, std::memory_order_acq_rel) + 1;
  if (opt_.lockstep) {
    {
      std::lock_guard<std::mutex> lock(answer_mutex_);  // a lockstep read() waiting sees it
      latest_.store(s);
    }
    answer_cv_.notify_one();
  } else {
    latest_.store(s);  // real time: the tick only ever reads the seqlock
  }
  stamp_ns_.store(s.state.stamp_ns, std::memory_order_release);
}

Status UnitreeDdsDriver::read(State& out) {
  uint64_t v = latest_.load(tick_sample_);
  if (opt_.lockstep && written_at_ != 0) {
    // Lockstep: the bridge answers each command with one state; wait for it (bounded). A short
    // poll first (an answer on the same machine comes within tens of µs, and a thread woken from a
    // condition variable costs as much again), then block: a longer wait is not the tick's CPU time.
    // Only the bridge runs lockstep.
    const int64_t poll_until = steady_ns() + kLockstepPollNs;
    while (latest_.version() == written_at_ && steady_ns() < poll_until) {
    }
    if (latest_.version() == written_at_) {
      std::unique_lock<std::mutex> lock(answer_mutex_);
      const bool answered = answer_cv_.wait_for(lock, std::chrono::duration<double>(opt_.lockstep_timeout_s),
                                                [&] { return latest_.version() != written_at_; });
      if (!answered) lockstep_timeouts_.fetch_add(1, std::memory_order_relaxed);
    }
    v = latest_.load(tick_sample_);
  }
  out = tick_sample_.state;
  const uint16_t mask = static_cast<uint16_t>(opt_.estop_buttons);
  out.remote_estop = mask != 0 && (tick_sample_.remote.buttons & mask) == mask;
  out.lowcmd_conflict = lowcmd_conflict_now();
  foot_force_ = tick_sample_.foot_force;
  const bool fresh = v != last_seen_;
  last_seen_ = v;
  return fresh ? Status::kOk : Status::kNoNewData;
}

void UnitreeDdsDriver::publish_frame(const Frame& f) {
  const int rc = writer_->write(opt_.messages == Messages::kHg ? static_cast<const void*>(&f.hg)
                                                               : static_cast<const void*>(&f.go));
  if (rc < 0)
    write_errors_.fetch_add(1, std::memory_order_relaxed);
  else
    commands_.fetch_add(1, std::memory_order_relaxed);
}

void UnitreeDdsDriver::publish(const Command& cmd) {
  // [tick] Encode and seal here; the publisher thread sends it (directly while it is not running:
  // the lifecycle's damping frames).
  if (opt_.messages == Messages::kHg)
    encode_lowcmd(map_, cmd, static_cast<uint8_t>(opt_.mode_pr), tick_sample_.mode_machine, frame_.hg);
  else
    encode_lowcmd(map_, cmd, frame_.go);
  if (publishing_.load(std::memory_order_acquire)) {
    outbox_.write(frame_);  // no system call: the publisher is already watching for it
    last_write_ns_.store(steady_ns(), std::memory_order_release);
  } else {
    publish_frame(frame_);
  }
}

void UnitreeDdsDriver::start_publisher() {
  if (publishing_.load()) return;
  publishing_.store(true, std::memory_order_release);
  publisher_ = std::thread([this] {
    // Time-triggered: the tick writes once a period, so sleep until shortly before the next write
    // is due (the last one + a period - kPublishLeadNs), then watch the outbox for up to
    // kPublishSpinNs and send the frame the moment it appears. The tick never makes a system call
    // to wake this thread; the cost is this watch (about a tenth of a period of one core, the same
    // trade as the loop's own spin before its deadline). No write for two periods (the loop
    // stopped, or not started): poll every quarter period instead.
    Frame f{};
    while (publishing_.load(std::memory_order_acquire)) {
      const int64_t now = steady_ns();
      const int64_t last = last_write_ns_.load(std::memory_order_acquire);
      int64_t wake = last + period_ns_ - kPublishLeadNs;
      if (last == 0 || now - last > 2 * period_ns_) wake = now + period_ns_ / 4;
      if (wake > now) {
        timespec ts{static_cast<time_t>(wake / 1'000'000'000), static_cast<long>(wake % 1'000'000'000)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
        }
      }
      const int64_t until = steady_ns() + kPublishSpinNs;
      bool got = outbox_.read(f);
      while (!got && steady_ns() < until && publishing_.load(std::memory_order_relaxed)) got = outbox_.read(f);
      if (got) publish_frame(f);
    }
    if (outbox_.read(f)) publish_frame(f);  // the last tick's frame
  });
}

void UnitreeDdsDriver::stop_publisher() {
  if (!publishing_.exchange(false, std::memory_order_acq_rel)) return;
  if (publisher_.joinable()) publisher_.join();
}

Status UnitreeDdsDriver::write(const Command& cmd) {
  if (!writer_) return Status::kNotReady;
  written_at_ = latest_.version();
  publish(cmd);
  return Status::kOk;
}

bool UnitreeDdsDriver::lowcmd_conflict_now() const {
  // [tick] Two atomic loads. Our own writer is one of rt/lowcmd's matched writers.
  return (cmd_watch_ && cmd_watch_->matched_writers_now() > 1) ||
         (sport_watch_ && sport_watch_->matched_writers_now() > 0);
}

void UnitreeDdsDriver::check_motion_service() {
  namespace api = motion_switcher_api;
  // CheckMode: {"form": "0", "name": "<mode>"}, name "" once released.
  auto check = [this](std::string& mode) {
    const auto a = motion_switcher_->call(api::kCheckMode, "{}", opt_.motion_service_timeout_s);
    if (!a || a->code != kRpcOk) return false;
    mode = json_field(a->data, "name").value_or("");
    return true;
  };
  service_released_ = false;
  service_mode_.clear();
  service_answered_ = check(service_mode_);
  const int sport = sport_watch_->matched_writers();
  if (service_mode_.empty() && sport == 0) return;  // released, or no service (a robot or bridge without one)
  const std::string found =
      (service_answered_ ? "motion_switcher CheckMode names mode '" + service_mode_ + "'"
                         : "motion_switcher did not answer CheckMode within " +
                               seconds_text(opt_.motion_service_timeout_s) + " s") +
      ", " + opt_.sportmodestate_topic + " has " + std::to_string(sport) + " publisher(s)";
  if (!opt_.release_motion_service)
    throw std::runtime_error(
        "unitree_dds: Unitree's built-in motion service is active (" + found +
        "): it commands the motors, so Vertebra does not take them. Release it first, with the robot in its "
        "hoist or lying down: call motion_switcher ReleaseMode (unitree_sdk2 "
        "unitree::robot::b2::MotionSwitcherClient::ReleaseMode(), unitree_sdk2py MotionSwitcherClient()."
        "ReleaseMode(); on a G1 the remote's L2+B then L2+R2 enters debug mode) until CheckMode names no mode, "
        "then activate again; or set the driver option release_motion_service: true to have Vertebra send "
        "ReleaseMode itself (an explicit operator choice: the robot stops standing and its motors go limp)");
  // The operator chose to release it: ReleaseMode, then wait until CheckMode names no mode (or goes
  // unanswered: no service left) and nobody publishes rt/sportmodestate.
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(opt_.release_timeout_s);
  const auto released = motion_switcher_->call(api::kReleaseMode, "{}", opt_.motion_service_timeout_s);
  for (;;) {
    std::string mode;
    const bool answered = check(mode);
    if ((!answered || mode.empty()) && sport_watch_->matched_writers() == 0) break;
    if (std::chrono::steady_clock::now() > end)
      throw std::runtime_error(
          "unitree_dds: release_motion_service: sent motion_switcher ReleaseMode (" +
          std::string(released ? "answered with code " + std::to_string(released->code) : "unanswered") +
          ") but after " + seconds_text(opt_.release_timeout_s) + " s " +
          (answered ? "CheckMode still names mode '" + mode + "'" : "CheckMode goes unanswered") + " and " +
          opt_.sportmodestate_topic + " has " + std::to_string(sport_watch_->matched_writers()) +
          " publisher(s); release it by hand (ReleaseMode, or the remote) and activate again");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  service_released_ = true;
  service_mode_.clear();
}

void UnitreeDdsDriver::check_guard(const std::string& heartbeat) {
  // A guard's writer on rt/lowcmd: silent while it watches, publishing while it holds. Its segment
  // (same machine: the guard reads the runtime's heartbeat in /dev/shm) says which.
  if (!Heartbeat::exists(heartbeat)) return;  // a guard of another machine's runtime: not ours to ask
  std::unique_ptr<Heartbeat> hb;
  try {
    hb = std::make_unique<Heartbeat>(heartbeat, false);
  } catch (const std::exception&) {
    return;  // not a segment of this layout: that guard cannot be holding for this runtime either
  }
  const HeartbeatView v = hb->view();
  const ProcessInfo p = process_info(v.guard_pid);
  const bool alive = v.guard_pid != 0 && p.exists && !p.exiting() && p.start_time == v.guard_start_time;
  if (!alive || !hb->guard_holding(v.now_ns)) return;
  throw std::runtime_error(
      "unitree_dds: the guard (vertebra guard, pid " + std::to_string(v.guard_pid) + ", heartbeat " + hb->path() +
      ") holds the robot: it took over " + opt_.lowcmd_topic + " from runtime pid " +
      std::to_string(v.takeover_runtime_pid) + " (" + takeover_reason_name(v.takeover_reason) +
      ") and commands the motors until an operator acknowledges. With the robot safe, run `vertebra guard ack "
      "--config <deploy>`, then activate again");
}

void UnitreeDdsDriver::on_activate() {
  // Give discovery a moment (the robot's endpoints, the motion service, other controllers).
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // 1. Unitree's motion service still controls the robot: refuse, or release it when told to.
  check_motion_service();
  // 2. Another publisher of rt/lowcmd: a second controller is connected (or a motion service that
  // neither answers motion_switcher nor publishes its state). Count writers other than ours and the
  // guard's; a guard that holds the robot (its heartbeat segment, named by its user_data) refuses.
  int writers = 0;
  for (const std::string& ud : cmd_watch_->matched_writer_user_data()) {
    const std::string prefix = kGuardUserDataPrefix;
    if (ud.compare(0, prefix.size(), prefix) != 0) {
      ++writers;
      continue;
    }
    check_guard(ud.substr(prefix.size()));
  }
  if (writers > 1)
    throw std::runtime_error(
        "unitree_dds: another participant publishes " + opt_.lowcmd_topic + " (" + std::to_string(writers - 1) +
        " writer(s) besides Vertebra): release Unitree's built-in motion service first (motion_switcher "
        "ReleaseMode; on a G1 the remote's L2+B, then L2+R2 to enter debug mode), and stop any other controller");
  // Real time: the network send leaves the tick (its cost and jitter are the publisher thread's;
  // the frame leaves a thread wake-up later). Lockstep: the loop waits for the answer anyway, so
  // the tick sends it itself and the round trip has no extra hand-off.
  if (!opt_.lockstep) start_publisher();
}

void UnitreeDdsDriver::on_deactivate() {
  stop_publisher();  // the last tick's frame is sent first; the damping frames go out from here
  // Hand the motors back damped: kd only, no stiffness, a few times over 50 ms.
  Command c{};
  c.n = map_.n;
  for (int j = 0; j < map_.n; ++j) {
    c.q[j] = tick_sample_.state.q[j];
    c.kd[j] = j < static_cast<int>(damping_kd_.size()) ? damping_kd_[j] : 0.0;
  }
  for (int k = 0; k < 10 && writer_; ++k) {
    publish(c);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void UnitreeDdsDriver::on_cleanup() {
  stop_publisher();
  motion_switcher_.reset();
  sport_watch_.reset();
  cmd_watch_.reset();
  reader_.reset();
  writer_.reset();
  pp_.reset();
}

int64_t UnitreeDdsDriver::now_ns() const {
  return opt_.lockstep ? stamp_ns_.load(std::memory_order_acquire) : steady_ns();
}

DdsCounters UnitreeDdsDriver::counters() const {
  DdsCounters c;
  c.states = states_.load();
  c.crc_errors = crc_errors_.load();
  c.commands = commands_.load();
  c.write_errors = write_errors_.load();
  c.lockstep_timeouts = lockstep_timeouts_.load();
  c.lowcmd_writers = cmd_watch_ ? std::max(0, cmd_watch_->matched_writers_now() - 1) : 0;  // the guard's not counted
  c.sportmodestate_writers = sport_watch_ ? sport_watch_->matched_writers_now() : 0;
  c.sportmodestates = sportmodestates_.load();
  c.motion_service_answered = service_answered_;
  c.motion_service_mode = service_mode_;
  c.motion_service_released = service_released_;
  c.rpc_requests = motion_switcher_ ? motion_switcher_->requests_sent() : 0;
  c.lowcmd_conflict = lowcmd_conflict_now();
  return c;
}

RemoteState UnitreeDdsDriver::remote() const {
  Sample s;
  latest_.load(s);
  return s.remote;
}

}  // namespace vertebra::unitree
