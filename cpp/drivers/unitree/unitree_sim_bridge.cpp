#include "drivers/unitree/unitree_sim_bridge.hpp"

#include <chrono>
#include <cmath>
#include <stdexcept>

#include "drivers/unitree/unitree_crc.hpp"

namespace vertebra::unitree {

namespace {
// Commands the delay line holds: lockstep needs depth + 1 at the longest latency; real time twice
// the commands of that latency at the nominal rate (a faster writer overflows, dropping the oldest).
size_t delay_capacity(double rate_hz) {
  if (!(rate_hz > 0) || !std::isfinite(rate_hz)) return 2;
  return 2 * static_cast<size_t>(std::ceil(kMaxCommandLatencyMs * 1e-3 * rate_hz)) + 8;
}
}  // namespace

UnitreeSimBridge::UnitreeSimBridge(std::shared_ptr<MujocoDriver> sim, BridgeOptions opt)
    : sim_(std::move(sim)), opt_(std::move(opt)), delay_(delay_capacity(opt_.rate_hz)) {
  if (!sim_) throw std::invalid_argument("sim-bridge: no simulator");
  const int slots = opt_.messages == Messages::kHg ? kHgMotors : kGoMotors;
  map_.n = static_cast<int>(opt_.motors.size());
  if (map_.n < 1 || map_.n > kMaxJoints) throw std::invalid_argument("sim-bridge: motors: one slot per joint");
  for (int j = 0; j < map_.n; ++j) {
    if (opt_.motors[j] < 0 || opt_.motors[j] >= slots)
      throw std::invalid_argument("sim-bridge: motors[" + std::to_string(j) + "]: found " +
                                  std::to_string(opt_.motors[j]) + "; valid: 0 to " + std::to_string(slots - 1));
    map_.motor[j] = opt_.motors[j];
  }
  if (!(opt_.rate_hz > 0)) throw std::invalid_argument("sim-bridge: rate_hz must be > 0");
  if (!(opt_.sportmodestate_rate_hz > 0)) throw std::invalid_argument("sim-bridge: sportmodestate_rate_hz must be > 0");
  if (opt_.motion_service && opt_.motion_service_mode.empty())
    throw std::invalid_argument("sim-bridge: motion_service_mode: a mode name (\"normal\", \"ai\", ...) for the active service");
  current_.n = map_.n;  // zero gains: the robot hangs limp until commanded
  sim_->set_motor_thermal(opt_.motor_thermal);
  set_faults(opt_.faults);
}

void UnitreeSimBridge::set_faults(const HardwareFaults& faults) {
  check_faults(faults, map_.n);
  std::lock_guard<std::mutex> lock(step_mutex_);
  apply_faults(faults);
}

HardwareFaults UnitreeSimBridge::faults() const {
  std::lock_guard<std::mutex> lock(step_mutex_);
  return faults_;
}

void UnitreeSimBridge::apply_faults(const HardwareFaults& f) {
  const JointFault healthy;
  for (int j = 0; j < map_.n; ++j) {
    const JointFault& jf = f.joints.empty() ? healthy : f.joints[j];
    const JointFriction nominal = sim_->nominal_joint_friction(j);
    sim_->set_joint_friction(j, {nominal.damping_nm_s_rad * jf.friction_scale, nominal.frictionloss_nm * jf.friction_scale});
    sim_->set_effort_limit(j, sim_->nominal_effort_limit(j) * jf.torque_limit_scale);
    sim_->set_heat_scale(j, jf.heat_scale);
  }
  frame_.set(f, map_.n);
  frame_.state_to_motor(state_, reported_);  // what an idle republish sends from now on
  drop_probability_ = f.state_drop_probability;
  corrupt_probability_ = f.crc_corrupt_probability;
  dice_.reseed(f.seed);
  delay_depth_ = static_cast<size_t>(std::lround(f.command_latency_ms * 1e-3 * opt_.rate_hz));
  if (delay_depth_ + 1 > delay_.capacity()) delay_depth_ = delay_.capacity() - 1;  // not reached: bounded above
  const auto latency_ns = static_cast<int64_t>(std::llround(f.command_latency_ms * 1e6));
  if (!opt_.lockstep && latency_ns != latency_ns_.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> lock(delay_mutex_);
    delay_.clear();  // real time: the queue restarts with the new latency
  }
  latency_ns_.store(latency_ns, std::memory_order_release);
  faults_ = f;
}

UnitreeSimBridge::~UnitreeSimBridge() { stop(); }

void UnitreeSimBridge::start() {
  if (running_.exchange(true)) return;
  if (sim_->lifecycle_state() == DriverState::kInactive) sim_->activate();
  pp_ = std::make_unique<DdsParticipant>(opt_.domain_id, opt_.network_interface);
  const bool hg = opt_.messages == Messages::kHg;
  writer_ = std::make_unique<DdsWriter>(*pp_, hg ? &unitree_hg_msg_dds__LowState__desc : &unitree_go_msg_dds__LowState__desc,
                                        opt_.lowstate_topic);
  {
    std::lock_guard<std::mutex> lock(step_mutex_);
    sim_->read(state_);
    frame_.state_to_motor(state_, reported_);
  }
  if (opt_.motion_service) select_motion_service(opt_.motion_service_mode);
  reader_ = std::make_unique<DdsReader>(*pp_, hg ? &unitree_hg_msg_dds__LowCmd__desc : &unitree_go_msg_dds__LowCmd__desc,
                                        opt_.lowcmd_topic, hg ? sizeof(HgLowCmd) : sizeof(GoLowCmd),
                                        [this](const void* m) { on_command(m); }, opt_.lockstep);
  if (opt_.motion_switcher)
    motion_switcher_ = std::make_unique<RpcServer>(
      *pp_, kMotionSwitcherService, [this](int64_t api, const std::string& p) { return on_motion_switcher(api, p); });
  thread_ = std::thread([this] { run_realtime(); });
}

void UnitreeSimBridge::select_motion_service(const std::string& mode) {
  std::lock_guard<std::mutex> lock(service_mutex_);
  service_mode_ = mode;
  if (!sport_writer_ && pp_)
    sport_writer_ = std::make_unique<DdsWriter>(*pp_, &unitree_go_msg_dds__SportModeState__desc, opt_.sportmodestate_topic);
  service_active_.store(true, std::memory_order_release);
}

void UnitreeSimBridge::release_motion_service() {
  std::lock_guard<std::mutex> lock(service_mutex_);
  service_active_.store(false, std::memory_order_release);
  service_mode_.clear();
  sport_writer_.reset();  // deleted: readers of rt/sportmodestate see the publisher go
}

RpcAnswer UnitreeSimBridge::on_motion_switcher(int64_t api_id, const std::string& parameter) {
  namespace api = motion_switcher_api;
  RpcAnswer a;
  a.api_id = api_id;
  if (api_id == api::kCheckMode) {
    std::lock_guard<std::mutex> lock(service_mutex_);
    a.data = "{\"form\":\"0\",\"name\":\"" + json_escape(service_mode_) + "\"}";  // form 0: standard (not wheeled)
  } else if (api_id == api::kSelectMode) {
    const std::string mode = json_field(parameter, "name").value_or("");
    if (mode.empty()) a.code = api::kErrParameter;
    else select_motion_service(mode);
  } else if (api_id == api::kReleaseMode) {
    release_motion_service();
  } else if (api_id == api::kSetSilent) {
    const auto v = json_field(parameter, "silent");
    std::lock_guard<std::mutex> lock(service_mutex_);
    if (!v || (*v != "true" && *v != "false")) a.code = api::kErrParameter;
    else silent_ = *v == "true";
  } else if (api_id == api::kGetSilent) {
    std::lock_guard<std::mutex> lock(service_mutex_);
    a.data = std::string("{\"silent\":") + (silent_ ? "true" : "false") + "}";
  } else {
    a.code = kRpcErrServerApiNotImpl;
  }
  return a;
}

void UnitreeSimBridge::maybe_publish_sportmodestate() {
  if (!service_active_.load(std::memory_order_acquire)) return;
  const int64_t now = steady_ns();
  if (now - last_sport_ns_ < static_cast<int64_t>(1e9 / opt_.sportmodestate_rate_hz)) return;
  last_sport_ns_ = now;
  {
    std::lock_guard<std::mutex> lock(step_mutex_);
    encode_sportmodestate(state_, sport_);
  }
  std::lock_guard<std::mutex> lock(service_mutex_);
  if (!sport_writer_) return;  // released meanwhile
  sport_writer_->write(&sport_);
  sportmodestates_.fetch_add(1, std::memory_order_relaxed);
}

void UnitreeSimBridge::stop() {
  if (!running_.exchange(false)) return;
  if (thread_.joinable()) thread_.join();
  motion_switcher_.reset();
  {
    std::lock_guard<std::mutex> lock(service_mutex_);
    sport_writer_.reset();
  }
  reader_.reset();
  writer_.reset();
  pp_.reset();
}

void UnitreeSimBridge::on_command(const void* msg) {
  Command c{};
  const bool ok = decode_checked_lowcmd(opt_.messages, map_, msg, c);
  if (!ok) {
    crc_errors_.fetch_add(1, std::memory_order_relaxed);  // dropped, as the motor boards drop it
  } else if (service_active_.load(std::memory_order_acquire)) {
    // The motion service commands the motors: another controller's rt/lowcmd has no effect.
    ignored_commands_.fetch_add(1, std::memory_order_relaxed);
    return;
  } else {
    commands_.fetch_add(1, std::memory_order_relaxed);
  }
  last_command_ns_.store(steady_ns(), std::memory_order_relaxed);
  if (ok) {
    const int64_t now = steady_ns();
    std::lock_guard<std::mutex> lock(stream_mutex_);
    if (stream_last_ns_ != 0 && now - stream_last_ns_ > stream_max_gap_ns_) {
      stream_max_gap_ns_ = now - stream_last_ns_;
      stream_max_end_ns_ = now;
    }
    stream_last_ns_ = now;
    ++stream_samples_;
    last_valid_ = c;
  }
  if (opt_.lockstep) {
    std::lock_guard<std::mutex> lock(step_mutex_);
    // One control period per command received (a bad one keeps the last in force), through the
    // latency FIFO (depth 0: this command).
    delay_.push_lockstep(c, ok, delay_depth_, current_);
    step_and_publish();
  } else if (ok) {
    command_.write(c);
    if (latency_ns_.load(std::memory_order_acquire) > 0) {
      std::lock_guard<std::mutex> lock(delay_mutex_);
      delay_.push_timed(c, steady_ns());
    }
  }
}

void UnitreeSimBridge::publish_state(const State& s) {
  RemoteState r;
  remote_.load(r);
  if (opt_.messages == Messages::kHg) {
    encode_lowstate(map_, s, tick_ms(), static_cast<uint8_t>(opt_.mode_machine), r, hg_);
    writer_->write(&hg_);
  } else {
    encode_lowstate(map_, s, tick_ms(), r, go_);  // foot forces where the simulator has them
    writer_->write(&go_);
  }
}

void UnitreeSimBridge::step_and_publish() {
  frame_.command_to_physical(current_, physical_);
  sim_->write(physical_);
  sim_->read(state_);
  frame_.state_to_motor(state_, reported_);
  ++tick_;
  RemoteState r;
  remote_.load(r);
  // Two draws per state, whatever is on, so each fault's sequence depends on the seed alone.
  const double u_drop = dice_.uniform(), u_corrupt = dice_.uniform();
  int drop = drop_.load(std::memory_order_relaxed);
  bool dropped = u_drop < drop_probability_;
  if (drop > 0) {
    drop_.store(drop - 1, std::memory_order_relaxed);
    dropped = true;
  }
  if (dropped) {
    dropped_sent_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  bool corrupt = u_corrupt < corrupt_probability_;
  if (corrupt_.load(std::memory_order_relaxed) > 0) {
    corrupt_.fetch_sub(1, std::memory_order_relaxed);
    corrupt = true;
  }
  if (opt_.messages == Messages::kHg) {
    encode_lowstate(map_, reported_, tick_ms(), static_cast<uint8_t>(opt_.mode_machine), r, hg_);
    if (corrupt) hg_.crc ^= 0x1u;
    writer_->write(&hg_);
  } else {
    encode_lowstate(map_, reported_, tick_ms(), r, go_);  // foot forces where the simulator has them
    if (corrupt) go_.crc ^= 0x1u;
    writer_->write(&go_);
  }
  if (corrupt) corrupted_sent_.fetch_add(1, std::memory_order_relaxed);
  states_.fetch_add(1, std::memory_order_relaxed);
}

void UnitreeSimBridge::run_realtime() {
  const auto period = std::chrono::nanoseconds(static_cast<int64_t>(1e9 / opt_.rate_hz));
  auto next = std::chrono::steady_clock::now();
  while (running_.load(std::memory_order_acquire)) {
    if (opt_.lockstep) {
      // Lockstep: commands drive the steps. While none comes (a controller starting), repeat the
      // current state every 100 ms so a new driver sees the robot.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (steady_ns() - last_command_ns_.load(std::memory_order_relaxed) > 100'000'000) {
        std::lock_guard<std::mutex> lock(step_mutex_);
        publish_state(reported_);
        last_command_ns_.store(steady_ns(), std::memory_order_relaxed);
      }
      maybe_publish_sportmodestate();
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(step_mutex_);
      Command c;
      const int64_t latency = latency_ns_.load(std::memory_order_acquire);
      if (latency > 0) {
        // Commands take effect once older than the latency: the newest matured one.
        std::lock_guard<std::mutex> delay_lock(delay_mutex_);
        if (delay_.pop_matured(steady_ns() - latency, c)) current_ = c;
      } else if (command_.read(c)) {
        current_ = c;
      }
      step_and_publish();
    }
    maybe_publish_sportmodestate();
    next += period;
    std::this_thread::sleep_until(next);
  }
}

BridgeCounters UnitreeSimBridge::counters() const {
  BridgeCounters c;
  c.commands = commands_.load();
  c.crc_errors = crc_errors_.load();
  c.states = states_.load();
  c.corrupted_sent = corrupted_sent_.load();
  c.dropped_sent = dropped_sent_.load();
  c.ignored_commands = ignored_commands_.load();
  c.sportmodestates = sportmodestates_.load();
  c.rpc_requests = motion_switcher_ ? motion_switcher_->requests() : 0;
  c.motion_service_active = service_active_.load();
  {
    std::lock_guard<std::mutex> lock(service_mutex_);
    c.motion_service_mode = service_mode_;
  }
  return c;
}

CommandStream UnitreeSimBridge::command_stream() const {
  const int64_t now = steady_ns();
  std::lock_guard<std::mutex> lock(stream_mutex_);
  CommandStream c;
  c.samples = stream_samples_;
  c.max_gap_ms = stream_max_gap_ns_ * 1e-6;
  c.max_gap_end_ns = stream_max_end_ns_;
  c.since_reset_s = stream_reset_ns_ ? (now - stream_reset_ns_) * 1e-9 : 0.0;
  c.last_age_ms = stream_samples_ ? (now - stream_last_ns_) * 1e-6 : -1.0;
  return c;
}

void UnitreeSimBridge::reset_command_stream() {
  std::lock_guard<std::mutex> lock(stream_mutex_);
  // The newest sample's time stays: the first gap after a reset is measured from the last command
  // before it (a reset just before a kill still sees the whole gap).
  stream_reset_ns_ = steady_ns();
  stream_max_gap_ns_ = stream_max_end_ns_ = 0;
  stream_samples_ = 0;
}

Command UnitreeSimBridge::last_command() const {
  std::lock_guard<std::mutex> lock(stream_mutex_);
  return last_valid_;
}

void UnitreeSimBridge::set_remote(const RemoteState& r) { remote_.store(r); }

}  // namespace vertebra::unitree
