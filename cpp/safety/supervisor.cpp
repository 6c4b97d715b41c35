#include "safety/supervisor.hpp"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace vertebra {

// ---------------------------------------------------------------------------------------------
// SettleMode

Status SettleMode::enter(const RobotParams& p, const State& s, const Command& last, const Targets&, const ModeRequest&) {
  entry_pose(p, s, last, start_);
  elapsed_s_ = 0;
  total_s_ = cfg_->settle_hold_s;
  for (int k = 0; k < cfg_->n_settle; ++k) total_s_ += cfg_->settle_duration_s[k];
  return all_finite(start_, p.n) ? Status::kOk : Status::kNonFinite;
}

double SettleMode::progress() const { return total_s_ > 0 ? std::min(1.0, elapsed_s_ / total_s_) : 1.0; }

Status SettleMode::update(const RobotParams& p, const State&, const Targets&, double dt, Command& out) {
  elapsed_s_ += dt;
  // Which keyframe segment, and how far along it (minimum jerk, like InterpolateMode).
  double t = elapsed_s_;
  const JointArray* from = &start_;
  const JointArray* to = &start_;
  double s = 1.0, ds = 0.0, d_s = 1.0;
  for (int k = 0; k < cfg_->n_settle; ++k) {
    to = &cfg_->settle_pose[k];
    d_s = cfg_->settle_duration_s[k];
    if (t < d_s) {
      const double u = t / d_s;
      s = u * u * u * (10.0 - 15.0 * u + 6.0 * u * u);
      ds = 30.0 * u * u * (1.0 - u) * (1.0 - u) / d_s;
      break;
    }
    t -= d_s;
    from = to;
    s = 1.0;
    ds = 0.0;
  }
  out.n = p.n;
  for (int i = 0; i < p.n; ++i) {
    const double d = (*to)[i] - (*from)[i];
    out.q[i] = (*from)[i] + s * d;
    out.dq[i] = ds * d;
    out.kp[i] = p.kp[i];
    out.kd[i] = p.kd[i];
    out.tau_ff[i] = 0.0;
  }
  return Status::kOk;
}

// ---------------------------------------------------------------------------------------------
// Supervisor: construction, events, mode changes, fault responses and the tick (step()).
// Operator requests and resets: supervisor_requests.cpp; the monitors: supervisor_monitors.cpp.

static int64_t clock_ns(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

Supervisor::Supervisor(const RobotParams& p, const SafetyConfig& cfg, double dt_s, std::shared_ptr<EventRing> ring)
    : p_(p), cfg_(cfg), dt_(dt_s), ring_(std::move(ring)), limiter_(p, cfg, dt_s), settle_(&cfg_) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("SafetyConfig: " + what); };
  if (cfg.n_settle < 0 || cfg.n_settle > kMaxSettleKeyframes)
    fail("n_settle must be in [0, " + std::to_string(kMaxSettleKeyframes) + "], found " + std::to_string(cfg.n_settle));
  for (int k = 0; k < cfg.n_settle; ++k) {
    if (!(cfg.settle_duration_s[k] > 0) || !std::isfinite(cfg.settle_duration_s[k]))
      fail("settle keyframe " + std::to_string(k) + ": duration must be > 0 s");
    for (int i = 0; i < p.n; ++i) {
      const double q = cfg.settle_pose[k][i];
      if (!std::isfinite(q) || q < p.q_lower[i] || q > p.q_upper[i])
        fail("settle keyframe " + std::to_string(k) + ", joint " + std::to_string(i) + ": " + std::to_string(q) +
             " rad is outside the joint's limits [" + std::to_string(p.q_lower[i]) + ", " + std::to_string(p.q_upper[i]) + "]");
    }
  }
  if (!(cfg.settle_hold_s >= 0)) fail("settle_hold_s must be >= 0");
  if (!(cfg.derate_scale > 0 && cfg.derate_scale <= 1)) fail("derate_scale must be in (0, 1]");
  if (cfg.overrun_window_ticks < 0 || cfg.overrun_window_ticks > static_cast<int>(overrun_ring_.size()))
    fail("overrun_window_ticks must be in [0, " + std::to_string(overrun_ring_.size()) + "]");
  if (cfg.clamp_quiet_ticks < 1) fail("clamp_quiet_ticks must be >= 1");
  if (cfg.overrun_max < 0 || (cfg.overrun_window_ticks > 0 && cfg.overrun_max > cfg.overrun_window_ticks))
    fail("overrun_max must be in [0, overrun_window_ticks]");
  if (cfg.event_log_rotate_bytes < 4096)
    fail("event_log_rotate_bytes must be >= 4096, found " + std::to_string(cfg.event_log_rotate_bytes));
  if (cfg.event_log_keep_files < 1 || cfg.event_log_keep_files > 99)
    fail("event_log_keep_files must be in [1, 99], found " + std::to_string(cfg.event_log_keep_files));
  if (ring_) ring_->set_log_rotation(cfg.event_log_rotate_bytes, cfg.event_log_keep_files);  // read by its EventLog
  for (int f = 0; f < kNumFaults; ++f)
    if (static_cast<int>(cfg.response[f]) < 0 || static_cast<int>(cfg.response[f]) > static_cast<int>(Response::kCut))
      fail(std::string("unknown response for fault ") + fault_name(static_cast<FaultId>(f)));
  hard_lower_ = p.q_lower;
  hard_upper_ = p.q_upper;
  for (int i = 0; i < p.n; ++i) {
    p_.q_lower[i] = limiter_.soft_lower(i);
    p_.q_upper[i] = limiter_.soft_upper(i);
  }
  prev_.n = p.n;
}

void Supervisor::emit(Event e) {
  if (!ring_) return;
  e.tick = tick_;
  e.driver_ns = driver_ns_;
  e.mono_ns = clock_ns(CLOCK_MONOTONIC);
  e.wall_ns = clock_ns(CLOCK_REALTIME);
  ring_->push(e);
}

ControllerMode* Supervisor::controller_for(SafetyMode m) {
  switch (m) {
    case SafetyMode::kPassive: return &zero_;
    case SafetyMode::kDamp: return &damping_;
    case SafetyMode::kStandup: return &standup_;
    case SafetyMode::kHold: return &hold_;
    case SafetyMode::kActive: return active_ctrl_;
    case SafetyMode::kStopping: return &settle_;
    case SafetyMode::kFault: return st_.cut ? static_cast<ControllerMode*>(&zero_) : &damping_;
    case SafetyMode::kEstop: return (st_.cut || cfg_.estop_cut) ? static_cast<ControllerMode*>(&zero_) : &damping_;
  }
  return &damping_;
}

void Supervisor::go(SafetyMode to, ModeCause cause, int fault) {
  Event e;
  e.kind = EventKind::kModeChange;
  e.from = static_cast<int32_t>(st_.mode);
  e.to = static_cast<int32_t>(to);
  e.code = static_cast<int32_t>(cause);
  e.fault = fault;
  if (st_.mode == SafetyMode::kStopping && to != SafetyMode::kStopping) stop_fault_ = false;
  if (to == SafetyMode::kFault || to == SafetyMode::kEstop) st_.enabled = false;  // re-enable after a reset
  st_.mode = to;
  st_.mode_tick = tick_;
  if (!armed(to)) st_.pose_interpolated = false;
  if (to != SafetyMode::kActive && to != SafetyMode::kHold) st_.stream_expected = false;
  emit(e);
}

void Supervisor::begin_stop(ModeCause cause, int fault) {
  if (fault >= 0) stop_fault_ = true;
  if (st_.mode == SafetyMode::kStopping) return;  // a stop in progress is never restarted
  const SafetyMode after = stop_fault_ ? SafetyMode::kFault : SafetyMode::kDamp;
  ModeRequest none;
  if (cfg_.n_settle > 0 && settle_.enter(p_, *s_, prev_, *t_, none) == Status::kOk) {
    go(SafetyMode::kStopping, cause, fault);
  } else {
    go(after, cause, fault);  // nothing to settle to (or no finite pose to start from): damping now
  }
}

uint64_t Supervisor::severe_mask() const {
  uint64_t m = 0;
  for (int f = 0; f < kNumFaults; ++f)
    if (cfg_.response[f] >= Response::kHold) m |= uint64_t{1} << f;
  return m;
}

void Supervisor::apply_response(FaultId f) {
  const Response r = cfg_.response[static_cast<int>(f)];
  const int fi = static_cast<int>(f);
  if (r >= Response::kStop) st_.latched |= fault_bit(f);
  switch (r) {
    case Response::kWarn:
    case Response::kDerate:  // applied by raise() for as long as the condition lasts
      break;
    case Response::kHold:
      if (st_.mode == SafetyMode::kActive) {
        ModeRequest none;
        if (hold_.enter(p_, *s_, prev_, *t_, none) == Status::kOk) go(SafetyMode::kHold, ModeCause::kFault, fi);
        else begin_stop(ModeCause::kFault, fi);
        st_.stream_expected = st_.stream_expected && f == FaultId::kStarvationHold;  // keep watching the stream
      }
      break;
    case Response::kStop:
      if (armed(st_.mode) || st_.mode == SafetyMode::kStopping) begin_stop(ModeCause::kFault, fi);
      else if (st_.mode == SafetyMode::kPassive || st_.mode == SafetyMode::kDamp) go(SafetyMode::kFault, ModeCause::kFault, fi);
      break;
    case Response::kDamp:
      if (st_.mode != SafetyMode::kFault && st_.mode != SafetyMode::kEstop) go(SafetyMode::kFault, ModeCause::kFault, fi);
      break;
    case Response::kCut:
      st_.cut = true;
      if (st_.mode != SafetyMode::kFault && st_.mode != SafetyMode::kEstop) go(SafetyMode::kFault, ModeCause::kFault, fi);
      break;
  }
}

void Supervisor::raise(FaultId f, int joint, double value, uint64_t& cond) {
  const uint64_t b = fault_bit(f);
  cond |= b;
  if (cfg_.response[static_cast<int>(f)] == Response::kDerate)  // while it lasts: the joint, or all of them
    derate_now_ |= joint >= 0 ? uint64_t{1} << joint : ~uint64_t{0};
  if (st_.active & b) return;  // still the same occurrence
  st_.active |= b;             // edges within one tick count once
  st_.raised_tick[static_cast<int>(f)] = tick_;
  Event e;
  e.kind = EventKind::kFault;
  e.fault = static_cast<int32_t>(f);
  e.joint = joint;
  e.value = value;
  e.response = static_cast<int32_t>(cfg_.response[static_cast<int>(f)]);
  e.from = static_cast<int32_t>(st_.mode);
  emit(e);
  apply_response(f);
}

void Supervisor::step(uint64_t tick, int64_t driver_ns, const State& s, Status read_status, Status write_status,
                      int64_t last_tick_ns, int64_t period_ns, const Targets& t, const OperatorInputs& in, Command& cmd) {
  tick_ = tick;
  driver_ns_ = driver_ns;
  s_ = &s;
  t_ = &t;
  note_sample(s, read_status);

  // 1. operator (the robot's remote e-stop combination counts as the operator's e-stop)
  const bool estop = in.estop || s.remote_estop;
  // (a combination held on the remote is one event, on entry, not one per tick)
  if (in.estop || (s.remote_estop && st_.mode != SafetyMode::kEstop)) {
    Event e;
    e.kind = EventKind::kOperator;
    e.code = static_cast<int32_t>(OperatorAction::kEstop);
    e.from = static_cast<int32_t>(st_.mode);
    emit(e);
    if (st_.mode != SafetyMode::kEstop) go(SafetyMode::kEstop, ModeCause::kEstop, -1);
  }
  // An e-stop takes the whole tick: a reset, enable or request that arrived with it is ignored (the
  // operator repeats it on a later tick), so nothing can cancel the stop before it was written.
  if (!estop) {
    auto op = [this](OperatorAction a) {
      Event e;
      e.kind = EventKind::kOperator;
      e.code = static_cast<int32_t>(a);
      e.from = static_cast<int32_t>(st_.mode);
      emit(e);
    };
    if (in.disable) {
      op(OperatorAction::kDisable);
      st_.enabled = false;
      if (armed(st_.mode)) begin_stop(ModeCause::kOperatorStop, -1);
    }
    if (in.enable) {
      op(OperatorAction::kEnable);
      st_.enabled = true;
    }
    if (in.reset) handle_reset();
    if (in.stop) {
      op(OperatorAction::kStop);
      if (armed(st_.mode)) begin_stop(ModeCause::kOperatorStop, -1);
    }
    if (in.has_request) handle_request(in.request, t);
  }

  // 2. monitors (raising a fault applies its response at once)
  uint64_t cond = 0;
  derate_now_ = 0;
  monitors(s, read_status, write_status, last_tick_ns, period_ns, t, cond);
  st_.derated = derate_now_ & (p_.n >= 64 ? ~uint64_t{0} : (uint64_t{1} << p_.n) - 1);

  // 3. control
  ControllerMode* ctrl = controller_for(st_.mode);
  if (ctrl->update(p_, s, t, dt_, cmd) != Status::kOk) {
    raise(FaultId::kController, -1, 0, cond);
    ctrl = controller_for(st_.mode);
    if (ctrl == active_ctrl_ && st_.mode == SafetyMode::kActive) {
      // The response left the failing controller in charge (configured as warn): hold instead.
      ModeRequest none;
      if (hold_.enter(p_, s, prev_, t, none) == Status::kOk) {
        go(SafetyMode::kHold, ModeCause::kFault, static_cast<int>(FaultId::kController));
      } else {
        begin_stop(ModeCause::kFault, static_cast<int>(FaultId::kController));
      }
      ctrl = controller_for(st_.mode);
    }
    ctrl->update(p_, s, t, dt_, cmd);
  }
  if (st_.mode == SafetyMode::kStopping && settle_.done()) {
    go(stop_fault_ ? SafetyMode::kFault : SafetyMode::kDamp, ModeCause::kStopDone, -1);
    stop_fault_ = false;
  }

  // 4. limiter (non-finite values are replaced in this same tick; the policy is dropped next tick)
  ControllerMode* const now_ctrl = controller_for(st_.mode);
  const bool entry = now_ctrl != last_ctrl_;
  last_ctrl_ = now_ctrl;
  uint32_t flags = limiter_.apply(s, prev_, cmd, st_.derated, st_.clamps, entry);
  if (flags & kClampNonFinite) {
    const SafetyMode before = st_.mode;
    raise(FaultId::kNonFiniteCommand, -1, 0, cond);
    if (st_.mode != before && st_.mode != SafetyMode::kHold) {
      // The configured response stops the robot: this tick already writes the stop's command.
      last_ctrl_ = controller_for(st_.mode);
      last_ctrl_->update(p_, s, t, dt_, cmd);
      flags |= limiter_.apply(s, prev_, cmd, st_.derated, st_.clamps, true);
    }
  }
  st_.last_clamp_flags = flags;
  if (st_.mode == SafetyMode::kStandup && standup_.progress() >= 1.0) {
    bool reached = true;
    for (int i = 0; i < p_.n && reached; ++i) reached = std::abs(cmd.q[i] - standup_.goal()[i]) <= 0.02;
    st_.pose_interpolated = reached;
  }
  if (flags) {
    if (!in_burst_) {
      in_burst_ = true;
      burst_start_tick_ = tick;
      burst_clamps_ = 0;
      burst_flags_ = 0;
      Event e;
      e.kind = EventKind::kClampBurst;
      e.code = 0;
      e.mask = flags;
      emit(e);
    }
    burst_flags_ |= flags;
    ++burst_clamps_;
    last_clamp_tick_ = tick;
  } else if (in_burst_ && tick - last_clamp_tick_ >= static_cast<uint64_t>(cfg_.clamp_quiet_ticks)) {
    in_burst_ = false;
    Event e;
    e.kind = EventKind::kClampBurst;
    e.code = 1;
    e.mask = burst_flags_;
    e.value = static_cast<double>(burst_clamps_);
    e.value2 = static_cast<double>(last_clamp_tick_ - burst_start_tick_ + 1);
    emit(e);
  }
  prev_ = cmd;

  // 5. faults whose condition went away
  const uint64_t cleared = st_.active & ~cond;
  for (int f = 0; f < kNumFaults; ++f)
    if (cleared & (uint64_t{1} << f)) {
      Event e;
      e.kind = EventKind::kFaultCleared;
      e.fault = f;
      emit(e);
    }
  st_.active = cond;
  st_.controller = controller_for(st_.mode)->id();
  st_.progress = controller_for(st_.mode)->progress();
  s_ = nullptr;
  t_ = nullptr;
}

}  // namespace vertebra
