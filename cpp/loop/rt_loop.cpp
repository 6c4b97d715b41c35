#include "loop/rt_loop.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace vertebra {

static int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

static int64_t thread_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Configuration checks that must pass before the supervisor (which sizes itself from them) is built.
static double checked_dt(const LoopConfig& cfg, const RobotParams& params) {
  if (!(cfg.rate_hz >= 1.0 && cfg.rate_hz <= 10000.0))
    throw std::invalid_argument("RtLoop: rate_hz must be in [1, 10000], found " + std::to_string(cfg.rate_hz));
  if (params.n <= 0 || params.n > kMaxJoints)
    throw std::invalid_argument("RtLoop: robot has " + std::to_string(params.n) + " joints; valid is 1.." +
                                std::to_string(kMaxJoints));
  if (cfg.spin_ns < 0 || cfg.spin_ns >= static_cast<int64_t>(1e9 / cfg.rate_hz))
    throw std::invalid_argument("RtLoop: spin_ns must be in [0, period), found " + std::to_string(cfg.spin_ns));
  for (int i = 0; i < params.n; ++i) {
    const std::string j = "RtLoop: joint " + std::to_string(i) + ": ";
    struct Named { const char* name; double value; bool non_negative; };
    const Named fields[] = {{"kp", params.kp[i], true}, {"kd", params.kd[i], true},
                            {"kd_damping", params.kd_damping[i], true}, {"kp_max", params.kp_max[i], true},
                            {"kd_max", params.kd_max[i], true}, {"q_lower", params.q_lower[i], false},
                            {"q_upper", params.q_upper[i], false}, {"dq_max", params.dq_max[i], true},
                            {"tau_max", params.tau_max[i], true}, {"default_pose", params.default_pose[i], false}};
    for (const Named& f : fields)
      if (!std::isfinite(f.value) || (f.non_negative && f.value < 0))
        throw std::invalid_argument(j + f.name + ": found " + std::to_string(f.value) + "; valid: a finite number" +
                                    (f.non_negative ? " >= 0" : ""));
    if (!(params.q_lower[i] <= params.q_upper[i]))
      throw std::invalid_argument(j + "q_lower (" + std::to_string(params.q_lower[i]) + ") must be <= q_upper (" +
                                  std::to_string(params.q_upper[i]) + ")");
  }
  return static_cast<int64_t>(1e9 / cfg.rate_hz) * 1e-9;
}

RtLoop::RtLoop(std::shared_ptr<Driver> driver, const RobotParams& params, const LoopConfig& cfg, const SafetyConfig& safety)
    : driver_(std::move(driver)), params_(params), cfg_(cfg), ring_(std::make_shared<EventRing>()),
      supervisor_(params, safety, checked_dt(cfg, params), ring_) {
  if (!driver_) throw std::invalid_argument("RtLoop: a driver is required");
  if (cfg.lockstep && !driver_->simulated())
    throw std::invalid_argument("RtLoop: lockstep needs a simulated driver; '" + driver_->name() +
                                "' runs on its own clock (use real time)");
  period_ns_ = static_cast<int64_t>(1e9 / cfg.rate_hz);
  dt_s_ = period_ns_ * 1e-9;
  cmd_.n = params.n;
  state_.n = params.n;
  snap_.state.n = params.n;
  snap_.command.n = params.n;
  snapshot_.store(snap_);
}

RtLoop::~RtLoop() { stop(); }

void RtLoop::check_driver_active(const char* what) const {
  if (!driver_->active())
    throw std::logic_error(std::string("RtLoop: ") + what + ": driver '" + driver_->name() + "' is " +
                           driver_state_name(driver_->lifecycle_state()) +
                           "; configure() and activate() it before the loop ticks (cpp/drivers/driver.hpp)");
}

void RtLoop::check_configurable(const char* what) const {
  if (running_.load() || ticks_.load() > 0)
    throw std::logic_error(std::string("RtLoop: ") + what + " is configuration: call it before the loop first ticks");
}

ModeId RtLoop::register_mode(const std::string& name, std::shared_ptr<ControllerMode> mode) {
  check_configurable("register_mode()");
  if (!mode) throw std::invalid_argument("RtLoop: register_mode('" + name + "'): a mode object is required, found none");
  for (const auto& r : registered_)
    if (r.first == name) {
      std::string have;
      for (const auto& x : registered_) have += (have.empty() ? "" : ", ") + x.first;
      throw std::invalid_argument("RtLoop: a mode named '" + name + "' is already registered on this loop; registered: " +
                                  have);
    }
  const ModeId id = mode_id_for_name(name);  // throws for a bad or built-in name
  supervisor_.register_mode(id, mode);
  registered_.emplace_back(name, std::move(mode));
  return id;
}

std::shared_ptr<ControllerMode> RtLoop::mode(const std::string& name) const {
  for (const auto& r : registered_)
    if (r.first == name) return r.second;
  return nullptr;
}

std::vector<std::string> RtLoop::mode_names() const {
  std::vector<std::string> v{"zero_torque", "damping", "hold", "interpolate", "joint_pd"};
  for (const auto& r : registered_) v.push_back(r.first);
  return v;
}

void RtLoop::set_estimator(std::shared_ptr<StateEstimator> est, bool always) {
  check_configurable("set_estimator()");
  estimator_ = std::move(est);
  estimate_always_ = always;
}

void RtLoop::set_heartbeat(std::shared_ptr<Heartbeat> hb) {
  check_configurable("set_heartbeat()");
  if (hb && cfg_.lockstep)
    throw std::invalid_argument("RtLoop: set_heartbeat(): a lockstep loop ticks only when asked, so its heartbeat "
                                "would stop between calls; valid: a real-time loop (lockstep: false), or no heartbeat");
  hb_ = std::move(hb);
}

void RtLoop::set_record_ring(std::shared_ptr<RecordRing> ring, int every_ticks) {
  check_configurable("set_record_ring()");
  if (every_ticks < 1)
    throw std::invalid_argument("RtLoop: set_record_ring(): every_ticks " + std::to_string(every_ticks) +
                                "; valid: >= 1 (1 records every tick)");
  rec_ = std::move(ring);
  rec_every_ = every_ticks;
}

static int64_t wall_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

template <size_t N>
static void put(float (&dst)[N], const JointArray& src, int n) {
  for (int i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
}

template <size_t N, class A>
static void put_all(float (&dst)[N], const A& src) {
  static_assert(N <= std::tuple_size_v<A>, "record field larger than its source");
  for (size_t i = 0; i < N; ++i) dst[i] = static_cast<float>(src[i]);
}

void RtLoop::record(uint64_t t, const State& seen) {
  const int64_t t0 = mono_ns();
  TickRecord* r = rec_->begin_push(t0);
  if (r) {
    const SupervisorStatus& ss = snap_.safety;
    const int n = state_.n;
    r->tick = t;
    r->mono_ns = t0;
    r->wall_ns = wall_ns();
    r->driver_ns = snap_.driver_time_ns;
    r->lateness_us = static_cast<float>(lateness_ns_ * 1e-3);
    r->compute_us = static_cast<float>(last_tick_ns_ * 1e-3);
    r->n = n;
    r->safety_mode = static_cast<int32_t>(ss.mode);
    r->controller = static_cast<int32_t>(ss.controller);
    uint32_t f = 0;
    if (ss.enabled) f |= kRecEnabled;
    if (state_.has_base_truth) f |= kRecBaseTruth;
    if (snap_.estimate_used) f |= kRecEstimateUsed;
    if (snap_.estimate.valid) f |= kRecEstimateValid;
    if (chunks_ && snap_.chunks.starved) f |= kRecChunksStarved;
    if (state_.has_motor_temp) f |= kRecMotorTemp;
    if (state_.has_foot_force) f |= kRecFootForce;
    if (state_.remote_estop) f |= kRecRemoteEstop;
    if (ss.stream_expected) f |= kRecStreamExpected;
    r->faults_active = ss.active;
    r->faults_latched = ss.latched;
    r->clamp_flags = ss.last_clamp_flags;
    r->read_status = static_cast<int32_t>(snap_.last_read);
    r->write_status = static_cast<int32_t>(snap_.last_write);
    r->stream_age_ms = static_cast<float>(ss.stream_age_ms);
    put(r->q, state_.q, n);
    put(r->dq, state_.dq, n);
    put(r->tau, state_.tau, n);
    put(r->temp_c, state_.motor_temp_c, n);
    put_all(r->imu_quat, state_.imu_quat);
    put_all(r->imu_gyro, state_.imu_gyro);
    put_all(r->imu_acc, state_.imu_acc);
    put_all(r->foot_force, state_.foot_force);
    r->battery_v = static_cast<float>(state_.battery_v);
    put_all(r->base_pos, seen.base_pos);
    put_all(r->base_quat, seen.base_quat);
    put_all(r->base_lin_vel, seen.base_lin_vel);
    put_all(r->base_ang_vel, seen.base_ang_vel);
    for (int k = 0; k < kMaxFeet; ++k) r->contact[k] = snap_.estimate.contact[k] ? 1 : 0;
    put(r->cmd_q, cmd_.q, n);
    put(r->cmd_dq, cmd_.dq, n);
    put(r->cmd_kp, cmd_.kp, n);
    put(r->cmd_kd, cmd_.kd, n);
    put(r->cmd_tau_ff, cmd_.tau_ff, n);
    r->chunk_seq = snap_.chunks.last_seq;
    r->chunk_starved_ticks = snap_.chunks.starved_ticks;
    r->chunk_blend = static_cast<float>(snap_.chunks.blend);
    const int adim = chunks_ && chunk_sampled_ ? chunks_->config().dim : 0;
    r->action_dim = adim;
    for (int k = 0; k < adim; ++k) r->action[k] = static_cast<float>(chunk_out_[k]);
    const ControllerMode* m = supervisor_.registered_mode(ss.controller);
    if (m && m->diagnostics(diag_)) {
      r->flags = f | kRecDiagnostics;
      put_all(r->com_err, diag_.com_err);
      r->base_pos_err = static_cast<float>(diag_.base_pos_err);
      r->base_rot_err = static_cast<float>(diag_.base_rot_err);
      r->torso_rot_err = static_cast<float>(diag_.torso_rot_err);
      put_all(r->hand_pos_err, diag_.hand_pos_err);
      put_all(r->hand_rot_err, diag_.hand_rot_err);
      for (int k = 0; k < kMaxFeet; ++k) {
        put_all(r->contact_wrench[k], diag_.contact_wrench[k]);
        r->contact_weight[k] = static_cast<float>(diag_.contact_weight[k]);
      }
      r->solve_us = static_cast<float>(diag_.solve_us);
      r->qp_iterations = diag_.qp_iterations;
      r->qp_status = diag_.qp_status;
    } else {  // a slot is reused: clear what a controller with diagnostics left there
      r->flags = f;
      for (float& x : r->com_err) x = 0;
      r->base_pos_err = r->base_rot_err = r->torso_rot_err = 0;
      for (float& x : r->hand_pos_err) x = 0;
      for (float& x : r->hand_rot_err) x = 0;
      for (auto& w : r->contact_wrench)
        for (float& x : w) x = 0;
      for (float& x : r->contact_weight) x = 0;
      r->solve_us = 0;
      r->qp_iterations = r->qp_status = 0;
    }
    rec_->commit_push();
  }
  record_cost_.record_ns(mono_ns() - t0);
}

void RtLoop::set_chunk_scheduler(std::shared_ptr<ChunkScheduler> s) {
  check_configurable("set_chunk_scheduler()");
  if (s && s->config().dim != params_.n)
    throw std::invalid_argument("RtLoop: the chunk scheduler produces " + std::to_string(s->config().dim) +
                                " values per target; joint targets for this robot need " + std::to_string(params_.n));
  chunks_ = std::move(s);
  chunk_sink_ = nullptr;
  chunk_mode_.reset();
}

void RtLoop::set_chunk_scheduler(std::shared_ptr<ChunkScheduler> s, const std::string& mode_name,
                                 const std::vector<std::string>& target_names) {
  check_configurable("set_chunk_scheduler()");
  if (!s) throw std::invalid_argument("RtLoop: set_chunk_scheduler(): a scheduler is required, found none");
  std::shared_ptr<ControllerMode> m = mode(mode_name);
  if (!m) {
    std::string have;
    for (const auto& r : registered_) have += (have.empty() ? "" : ", ") + r.first;
    throw std::invalid_argument("RtLoop: task-target chunks for mode '" + mode_name + "': no such mode is registered; "
                                "registered: " + (have.empty() ? std::string("none") : have));
  }
  TargetSink* sink = m->target_sink();
  if (!sink) throw std::invalid_argument("RtLoop: mode '" + mode_name + "' takes no streamed task targets");
  const int dim = s->config().dim;
  if (static_cast<int>(target_names.size()) != dim)
    throw std::invalid_argument("RtLoop: the chunk scheduler produces " + std::to_string(dim) + " values per action; " +
                                std::to_string(target_names.size()) + " target names were given (one per column)");
  const std::vector<std::string> valid = sink->target_names();
  std::array<int, kMaxActionDim> ch{};
  for (int k = 0; k < dim; ++k) {
    int found = -1;
    for (size_t c = 0; c < valid.size(); ++c)
      if (valid[c] == target_names[k]) found = static_cast<int>(c);
    if (found < 0) {
      std::string all;
      for (const auto& v : valid) all += (all.empty() ? "" : ", ") + v;
      throw std::invalid_argument("RtLoop: column " + std::to_string(k) + ": '" + target_names[k] +
                                  "' is not a target of mode '" + mode_name + "'; targets are: " + all);
    }
    for (int j = 0; j < k; ++j)
      if (ch[j] == found)
        throw std::invalid_argument("RtLoop: target '" + target_names[k] + "' is named by columns " + std::to_string(j) +
                                    " and " + std::to_string(k) + "; each target takes one column");
    ch[k] = found;
  }
  const std::string why = sink->check_channels(ch.data(), dim);
  if (!why.empty()) throw std::invalid_argument("RtLoop: mode '" + mode_name + "': " + why);
  chunks_ = std::move(s);
  chunk_channels_ = ch;
  chunk_sink_ = sink;
  chunk_mode_ = std::move(m);
}

uint64_t RtLoop::request_mode(const ModeRequest& req) {
  std::lock_guard<std::mutex> lock(writer_mutex_);
  ModeRequest r = req;
  r.seq = next_request_seq_++;
  requests_.write(r);
  return r.seq;
}

void RtLoop::set_targets(const Targets& t) {
  std::lock_guard<std::mutex> lock(writer_mutex_);
  targets_in_.write(t);
}

RtReport RtLoop::rt_report() const {
  std::lock_guard<std::mutex> lock(lifecycle_mutex_);
  return report_;
}

void RtLoop::reset_stats() {
  lateness_.reset();
  compute_.reset();
  record_cost_.reset();
  overruns_.store(0, std::memory_order_relaxed);
}

void RtLoop::tick() {
  // 1. read
  const Status rs = driver_->read(state_);
  snap_.last_read = rs;
  // The guard holds the robot (it took over from a runtime it thought dead: this one, frozen, or a
  // predecessor): another participant commands the motors, whatever DDS discovery shows (the
  // guard's writer is silent until it takes over, so the driver does not count it). Two atomic loads
  // in shared memory and a vDSO clock read.
  const bool guard_holds = hb_ && hb_->guard_holding(mono_ns());
  if (guard_holds) state_.lowcmd_conflict = true;
  const State* seen = &state_;
  if (estimator_) {
    // The active controller's contact plan (last tick's), then the estimate. A read without a new
    // sample keeps the last estimate (the monitors see the stale state as such).
    const ControllerMode* m = supervisor_.registered_mode(supervisor_.status().controller);
    plan_.valid = m && m->contact_plan(plan_.weight);
    if (rs == Status::kOk) snap_.last_estimate = estimator_->update(state_, plan_, snap_.estimate);
    snap_.estimate_used = estimate_always_ || !state_.has_base_truth;
    if (snap_.estimate_used) {
      ctl_state_ = state_;
      const Estimate& e = snap_.estimate;
      ctl_state_.has_base_truth = false;
      ctl_state_.base_estimated = e.valid;
      ctl_state_.base_pos = e.base_pos;
      ctl_state_.base_quat = e.base_quat;
      ctl_state_.base_lin_vel = e.base_lin_vel;
      ctl_state_.base_ang_vel = e.base_ang_vel;
      seen = &ctl_state_;
    }
  }

  // 2. operator/Python inputs (each consumed once); action chunks become joint targets
  targets_in_.read(targets_);
  if (chunks_) {
    const Status cs = chunks_->sample(driver_->now_ns(), chunk_out_.data());
    chunk_sampled_ = cs == Status::kOk;
    if (cs == Status::kOk && chunk_sink_) {
      chunk_sink_->stream(chunk_channels_.data(), chunk_out_.data(), chunks_->config().dim);
    } else if (cs == Status::kOk) {
      const int n = params_.n;
      targets_.n = n;
      targets_.seq = ++chunk_ticks_;
      for (int i = 0; i < n; ++i) {
        targets_.q[i] = chunk_out_[i];
        targets_.dq[i] = 0.0;
        targets_.kp[i] = params_.kp[i];
        targets_.kd[i] = params_.kd[i];
        targets_.tau_ff[i] = 0.0;
      }
    }
    snap_.chunks = chunks_->status();
  }
  inputs_.estop = estop_.exchange(false, std::memory_order_acq_rel);
  inputs_.reset = reset_faults_.exchange(false, std::memory_order_acq_rel);
  inputs_.stop = stop_.exchange(false, std::memory_order_acq_rel);
  inputs_.disable = disable_.exchange(false, std::memory_order_acq_rel);
  inputs_.enable = enable_.exchange(false, std::memory_order_acq_rel);
  inputs_.has_request = requests_.read(inputs_.request);

  // 3. safety + control + limiter
  const uint64_t t = ticks_.load(std::memory_order_relaxed) + 1;
  const int64_t now = driver_->now_ns();
  supervisor_.step(t, now, *seen, rs, last_write_, last_tick_ns_, period_ns_, targets_, inputs_, cmd_);

  // 4. write -- withheld while the guard holds: the guard alone commands the motors then (its
  // settle-then-cut poses must not be interleaved with this runtime's frames, damped or not). The
  // heartbeat still beats, so that the guard re-arms on this runtime after the acknowledgement.
  const Status ws = guard_holds ? Status::kOk : driver_->write(cmd_);
  snap_.last_write = ws;
  last_write_ = ws;
  if (hb_) {  // the guard's heartbeat: atomic stores into shared memory (no system call)
    const SafetyMode m = supervisor_.status().mode;
    hb_->beat(t, mono_ns(), static_cast<int32_t>(m),
              m == SafetyMode::kStandup || m == SafetyMode::kHold || m == SafetyMode::kActive, cmd_);
  }

  // 5. publish
  const SupervisorStatus& ss = supervisor_.status();
  snap_.tick = t;
  snap_.driver_time_ns = driver_->now_ns();
  snap_.state = state_;
  snap_.command = cmd_;
  snap_.safety = ss;
  if (ss.last_clamp_flags) ++snap_.clamp_ticks;
  snap_.targets_seq = targets_.seq;
  snap_.events_dropped = ring_->dropped();
  snapshot_.store(snap_);
  ticks_.store(t, std::memory_order_relaxed);

  // 6. record (after the publish: the snapshot's readers never wait for it)
  if (rec_ && t % static_cast<uint64_t>(rec_every_) == 0) record(t, *seen);
}

uint64_t RtLoop::run_ticks(uint64_t n) {
  if (!cfg_.lockstep) throw std::logic_error("RtLoop: run_ticks() is for lockstep loops; this one runs in real time");
  check_driver_active("run_ticks()");
  if (ticking_.exchange(true, std::memory_order_acq_rel))
    throw std::logic_error("RtLoop: run_ticks() is already running on another thread; ticks are never concurrent");
  // A lockstep tick's duration is the CPU time of this thread, not wall time: the loop has no
  // deadline to miss, and on a busy machine preemption would otherwise turn into overruns (and a
  // loop_overrun fault) that depend on what else runs. A tick that really computes (or busy-waits,
  // as the fault injector's read stall does) for longer than its period still counts as one.
  for (uint64_t i = 0; i < n; ++i) {
    const int64_t t0 = thread_cpu_ns();
    tick();
    last_tick_ns_ = thread_cpu_ns() - t0;
    compute_.record_ns(last_tick_ns_);
  }
  ticking_.store(false, std::memory_order_release);
  return n;
}

void RtLoop::start() {
  if (cfg_.lockstep) throw std::logic_error("RtLoop: start() is for real-time loops; lockstep uses run_ticks()");
  check_driver_active("start()");
  std::lock_guard<std::mutex> lock(lifecycle_mutex_);
  if (running_.load(std::memory_order_acquire)) return;
  if (hb_ && hb_->guard_holding(mono_ns())) {
    const HeartbeatView v = hb_->view();
    throw std::runtime_error("RtLoop: start(): the guard (vertebra guard, pid " + std::to_string(v.guard_pid) +
                             ", heartbeat " + hb_->path() + ") holds the robot since it took over from runtime pid " +
                             std::to_string(v.takeover_runtime_pid) + " (" + takeover_reason_name(v.takeover_reason) +
                             "); valid: start after an operator's `vertebra guard ack --config <deploy>`");
  }
  running_.store(true, std::memory_order_release);
  reported_.store(false);
  if (hb_) hb_->attach_runtime(period_ns_);  // this process is the heartbeat's runtime (armed at its first tick)
  thread_ = std::thread([this] { thread_main(); });
  // Wait until the thread reported what the OS granted.
  while (!reported_.load(std::memory_order_acquire)) std::this_thread::yield();
  report_ = pending_report_;
}

void RtLoop::stop() {
  std::lock_guard<std::mutex> lock(lifecycle_mutex_);
  running_.store(false, std::memory_order_release);
  const bool was_running = thread_.joinable();
  if (thread_.joinable()) thread_.join();
  if (was_running && hb_) hb_->detach_runtime();  // a clean stop, not a death: the guard stands down
  reported_.store(false);
}

void RtLoop::thread_main() {
  RtReport r;
  std::string notes;
  if (cfg_.lock_memory) {
    r.mlockall = mlockall(MCL_CURRENT | MCL_FUTURE) == 0;
    if (!r.mlockall) notes += std::string("mlockall: ") + std::strerror(errno) + "; ";
  }
  if (cfg_.realtime_priority) {
    sched_param sp{};
    sp.sched_priority = cfg_.fifo_priority;
    const int rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
    r.sched_fifo = rc == 0;
    if (rc != 0) notes += std::string("SCHED_FIFO: ") + std::strerror(rc) + "; ";
  }
  if (cfg_.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cfg_.cpu, &set);
    const int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    r.affinity = rc == 0;
    if (rc != 0) notes += "affinity to CPU " + std::to_string(cfg_.cpu) + ": " + std::strerror(rc) + "; ";
  }
  r.timer_slack = prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0) == 0;
  if (!r.timer_slack) notes += std::string("timer slack: ") + std::strerror(errno) + "; ";
  r.notes = notes;
  r.started = true;
  pending_report_ = r;  // start() copies it into report_ once reported_ is set
  reported_.store(true, std::memory_order_release);

  int64_t next = mono_ns() + period_ns_;
  while (running_.load(std::memory_order_acquire)) {
    const int64_t wake_at = next - cfg_.spin_ns;
    timespec ts{static_cast<time_t>(wake_at / 1'000'000'000), static_cast<long>(wake_at % 1'000'000'000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
    int64_t now = mono_ns();
    while (now < next) now = mono_ns();  // spin the remainder (only when spin_ns > 0)
    lateness_.record_ns(now - next);
    lateness_ns_ = now - next;
    tick();
    const int64_t end = mono_ns();
    compute_.record_ns(end - now);
    last_tick_ns_ = end - next;  // lateness + compute: over a period means the tick missed its slot
    next += period_ns_;
    if (end > next) {
      overruns_.fetch_add(1, std::memory_order_relaxed);
      // More than a whole period behind: drop the missed deadlines instead of bursting.
      if (end > next + period_ns_) next = end + period_ns_ - (end - next) % period_ns_;
    }
  }
}

}  // namespace vertebra
