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
// Supervisor

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

void Supervisor::handle_reset() {
  Event e;
  e.kind = EventKind::kOperator;
  e.from = static_cast<int32_t>(st_.mode);
  const uint64_t still = st_.latched & st_.active;
  if ((st_.mode != SafetyMode::kFault && st_.mode != SafetyMode::kEstop) || still != 0) {
    e.code = static_cast<int32_t>(OperatorAction::kResetRefused);
    e.mask = still;
    ++st_.resets_refused;
    emit(e);
    return;
  }
  e.code = static_cast<int32_t>(OperatorAction::kReset);
  e.mask = st_.latched;
  emit(e);
  st_.latched = 0;
  st_.cut = false;
  stop_fault_ = false;
  go(SafetyMode::kDamp, ModeCause::kReset, -1);  // a reset never re-arms stiffness by itself
}

const char* request_refusal_text(RequestRefusal r) {
  switch (r) {
    case RequestRefusal::kNone: return "";
    case RequestRefusal::kTransition: return "no such transition from the current mode";
    case RequestRefusal::kUnknownMode: return "no mode is registered under that id";
    case RequestRefusal::kOperatorEnable: return "operator enable missing";
    case RequestRefusal::kNoFreshState: return "no fresh state from the driver";
    case RequestRefusal::kFaultActive: return "a fault with a response of hold or worse is active";
    case RequestRefusal::kFaultLatched: return "a latched fault needs an operator reset";
    case RequestRefusal::kPoseNotInterpolated: return "the standup pose has not been reached";
    case RequestRefusal::kModeRefused: return "the mode refused the request's parameters";
  }
  return "";
}

void Supervisor::register_mode(ModeId id, std::shared_ptr<ControllerMode> m) {
  const int k = static_cast<int>(id);
  if (k < kFirstRegisteredMode || k >= kMaxModeIds || !m)
    throw std::invalid_argument("Supervisor::register_mode: a registered mode id (" + std::to_string(kFirstRegisteredMode) +
                                ".." + std::to_string(kMaxModeIds - 1) + ") and a mode are required");
  m->set_registered_id(id);
  registered_[k] = std::move(m);
}

ControllerMode* Supervisor::registered_mode(ModeId id) const {
  const int k = static_cast<int>(id);
  return k >= kFirstRegisteredMode && k < kMaxModeIds ? registered_[k].get() : nullptr;
}

SafetyMode Supervisor::target_of(ModeId m) const {
  switch (m) {
    case ModeId::kZeroTorque: return SafetyMode::kPassive;
    case ModeId::kDamping: return SafetyMode::kDamp;
    case ModeId::kInterpolate: return SafetyMode::kStandup;
    case ModeId::kHold: return SafetyMode::kHold;
    case ModeId::kJointPD: return SafetyMode::kActive;
    case ModeId::kSettle: break;
  }
  if (registered_mode(m)) return SafetyMode::kActive;  // every registered controller runs in ACTIVE
  return SafetyMode::kFault;  // not requestable
}

void Supervisor::handle_request(const ModeRequest& r, const Targets& t) {
  const SafetyMode from = st_.mode;
  const SafetyMode to = target_of(r.mode);
  Status st = Status::kOk;
  RequestRefusal why = RequestRefusal::kNone;
  ControllerMode* ctrl = nullptr;
  const bool fresh = have_state_ && (st_.active & (fault_bit(FaultId::kStateLoss) | fault_bit(FaultId::kStateFrozen) |
                                                     fault_bit(FaultId::kDriverRead) | fault_bit(FaultId::kNonFiniteState))) == 0;
  // The arming gate, first failing condition named.
  RequestRefusal arming = RequestRefusal::kNone;
  if (!st_.enabled) arming = RequestRefusal::kOperatorEnable;
  else if (!fresh) arming = RequestRefusal::kNoFreshState;
  else if (st_.latched != 0) arming = RequestRefusal::kFaultLatched;
  else if ((st_.active & severe_mask()) != 0) arming = RequestRefusal::kFaultActive;
  const bool arming_ok = arming == RequestRefusal::kNone;
  auto refuse = [&](Status code, RequestRefusal reason) {
    st = code;
    why = reason;
  };
  using M = SafetyMode;
  switch (to) {
    case M::kPassive:
      if (!(from == M::kPassive || from == M::kDamp)) refuse(Status::kInvalidRequest, RequestRefusal::kTransition);
      ctrl = &zero_;
      break;
    case M::kDamp:
      if (from == M::kFault || from == M::kEstop) refuse(Status::kInvalidRequest, RequestRefusal::kTransition);
      ctrl = &damping_;
      break;
    case M::kStandup:
      if (!(from == M::kPassive || from == M::kDamp || from == M::kStandup || from == M::kHold))
        refuse(Status::kInvalidRequest, RequestRefusal::kTransition);
      else if (!arming_ok) refuse(Status::kNotReady, arming);
      ctrl = &standup_;
      break;
    case M::kHold:
      if (from == M::kStandup) {
        if (!st_.pose_interpolated) refuse(Status::kNotReady, RequestRefusal::kPoseNotInterpolated);
      } else if (!(from == M::kHold || from == M::kActive)) {
        refuse(Status::kInvalidRequest, RequestRefusal::kTransition);
      }
      ctrl = &hold_;
      break;
    case M::kActive:
      ctrl = r.mode == ModeId::kJointPD ? static_cast<ControllerMode*>(&joint_pd_) : registered_mode(r.mode);
      if (from != M::kHold) refuse(Status::kInvalidRequest, RequestRefusal::kTransition);
      else if (!arming_ok) refuse(Status::kNotReady, arming);
      else if (!st_.pose_interpolated) refuse(Status::kNotReady, RequestRefusal::kPoseNotInterpolated);
      break;
    default:
      refuse(Status::kInvalidRequest, registered_mode(r.mode) || static_cast<int>(r.mode) == static_cast<int>(ModeId::kSettle)
                                          ? RequestRefusal::kTransition : RequestRefusal::kUnknownMode);
  }
  if (st == Status::kOk) {
    st = ctrl->enter(p_, *s_, prev_, t, r);
    if (st != Status::kOk) why = RequestRefusal::kModeRefused;
  }
  if (st == Status::kOk) st = ctrl->enter(p_, *s_, prev_, t, r);
  Event e;
  e.kind = EventKind::kOperator;
  e.from = static_cast<int32_t>(from);
  e.to = static_cast<int32_t>(to);
  e.joint = static_cast<int32_t>(r.mode);
  e.status = static_cast<int32_t>(st);
  e.code = static_cast<int32_t>(st == Status::kOk ? OperatorAction::kRequestAccepted : OperatorAction::kRequestRefused);
  emit(e);
  st_.request_seq = r.seq;
  st_.request_status = st;
  st_.request_reason = why;
  if (st != Status::kOk) {
    ++st_.requests_rejected;
    return;
  }
  const bool keep_interpolated = st_.pose_interpolated && (to == M::kHold || to == M::kActive);
  if (to == M::kActive) active_ctrl_ = ctrl;
  if (to == M::kDamp && from == M::kStopping && stop_fault_) {
    go(M::kFault, ModeCause::kRequest, -1);  // cutting a fault's stop short keeps its latch
    return;
  }
  go(to, ModeCause::kRequest, -1);
  st_.pose_interpolated = keep_interpolated;
  if (to == M::kActive && r.stream) {
    st_.stream_expected = true;
    stream_seq_ = ctrl->input_seq(t);
    last_stream_tick_ = tick_;
  } else {
    st_.stream_expected = false;
  }
}

void Supervisor::monitors(const State& s, Status read_status, Status write_status, int64_t last_tick_ns,
                          int64_t period_ns, const Targets& t, uint64_t& cond) {
  const int n = p_.n;
  const bool armed_now = armed(st_.mode);
  // driver
  if (read_status == Status::kDriverError || read_status == Status::kNotReady)
    raise(FaultId::kDriverRead, -1, static_cast<double>(read_status), cond);
  if (write_status == Status::kDriverError || write_status == Status::kNotReady)
    raise(FaultId::kDriverWrite, -1, static_cast<double>(write_status), cond);
  // freshness (bookkeeping in note_sample(), before this tick's requests)
  const double age_ms = static_cast<double>(tick_ - last_fresh_tick_) * dt_ * 1e3;
  if (cfg_.state_timeout_ms > 0 && age_ms > cfg_.state_timeout_ms) raise(FaultId::kStateLoss, -1, age_ms, cond);
  if (cfg_.frozen_ms > 0 && frozen_samples_ * dt_ * 1e3 >= cfg_.frozen_ms)
    raise(FaultId::kStateFrozen, -1, frozen_samples_ * dt_ * 1e3, cond);
  // non-finite state
  for (int i = 0; i < n; ++i)
    if (!std::isfinite(s.q[i]) || !std::isfinite(s.dq[i]) || !std::isfinite(s.tau[i])) {
      raise(FaultId::kNonFiniteState, i, 0, cond);
      break;
    }
  for (double v : s.imu_quat) if (!std::isfinite(v)) raise(FaultId::kNonFiniteState, -1, 0, cond);
  for (double v : s.imu_gyro) if (!std::isfinite(v)) raise(FaultId::kNonFiniteState, -1, 0, cond);

  // attitude: armed modes, and STOPPING (a settle that tips over escalates); the base height only
  // when armed (a settle lowers it on purpose). A robot hanging limp may be anywhere.
  const bool stopping = st_.mode == SafetyMode::kStopping;
  const uint64_t attitude_bits = fault_bit(FaultId::kTilt) | fault_bit(FaultId::kFall);
  const uint64_t joint_bits = fault_bit(FaultId::kJointSoftLimit) | fault_bit(FaultId::kJointHardLimit) |
                              fault_bit(FaultId::kJointVelocity) | fault_bit(FaultId::kTorque);
  if ((armed_now || stopping || watching(attitude_bits)) && have_state_) {
    const auto& qt = s.imu_quat;
    const double czz = 1.0 - 2.0 * (qt[1] * qt[1] + qt[2] * qt[2]);
    const double tilt_deg = std::acos(std::clamp(czz, -1.0, 1.0)) * 180.0 / M_PI;
    if (cfg_.tilt_warn_deg > 0 && tilt_deg > cfg_.tilt_warn_deg) raise(FaultId::kTilt, -1, tilt_deg, cond);
    const double rate = std::sqrt(s.imu_gyro[0] * s.imu_gyro[0] + s.imu_gyro[1] * s.imu_gyro[1] + s.imu_gyro[2] * s.imu_gyro[2]);
    if (cfg_.fall_tilt_deg > 0 && tilt_deg > cfg_.fall_tilt_deg) raise(FaultId::kFall, -1, tilt_deg, cond);
    else if (cfg_.fall_rate_rad_s > 0 && rate > cfg_.fall_rate_rad_s) raise(FaultId::kFall, -1, rate, cond);
    else if (armed_now && cfg_.fall_height_m > 0 && s.has_base_truth && s.base_pos[2] < cfg_.fall_height_m)
      raise(FaultId::kFall, -1, s.base_pos[2], cond);
  }
  // joints: armed modes and STOPPING (and while one of their faults is latched)
  if ((armed_now || stopping || watching(joint_bits)) && have_state_) {
    for (int i = 0; i < n; ++i) {
      const double q = s.q[i];
      if (cfg_.joint_limit_monitor) {
        if (q < hard_lower_[i] - cfg_.hard_limit_tolerance_rad || q > hard_upper_[i] + cfg_.hard_limit_tolerance_rad)
          raise(FaultId::kJointHardLimit, i, q, cond);
        else if (q < limiter_.soft_lower(i) || q > limiter_.soft_upper(i))
          raise(FaultId::kJointSoftLimit, i, q, cond);
      }
      if (cfg_.velocity_fault_scale > 0 && std::abs(s.dq[i]) > cfg_.velocity_fault_scale * p_.dq_max[i])
        raise(FaultId::kJointVelocity, i, s.dq[i], cond);
      if (cfg_.torque_fault_scale > 0 && std::abs(s.tau[i]) > cfg_.torque_fault_scale * p_.tau_max[i])
        raise(FaultId::kTorque, i, s.tau[i], cond);
    }
  }
  // motors: each temperature level (warn, derate, stop) on its own threshold (0: off) with its own
  // hysteresis; the levels stay as they were while the telemetry is missing. Non-finite telemetry
  // is a non-finite state.
  {
    const double thr[3] = {cfg_.temp_warn_c, cfg_.temp_derate_c, cfg_.temp_stop_c};
    const FaultId ids[3] = {FaultId::kTempWarn, FaultId::kTempDerate, FaultId::kTempStop};
    for (int k = 0; k < 3; ++k) {
      int joint = -1;
      double worst = -INFINITY;
      for (int i = 0; i < n; ++i) {
        const uint8_t bit = static_cast<uint8_t>(1u << k);
        if (s.has_motor_temp) {
          const double T = s.motor_temp_c[i];
          if (!std::isfinite(T)) {
            raise(FaultId::kNonFiniteState, i, T, cond);
            continue;
          }
          const bool on = (temp_levels_[i] & bit) ? T >= thr[k] - cfg_.temp_hysteresis_c : T >= thr[k];
          temp_levels_[i] = thr[k] > 0 && on ? (temp_levels_[i] | bit) : (temp_levels_[i] & ~bit);
        }
        if ((temp_levels_[i] & bit) && (joint < 0 || s.motor_temp_c[i] > worst)) {
          joint = i;
          worst = s.motor_temp_c[i];
        }
      }
      if (joint >= 0) raise(ids[k], joint, worst, cond);
    }
  }
  if (cfg_.motor_error_monitor)
    for (int i = 0; i < n; ++i)
      if (s.motor_error[i] != 0) {
        raise(FaultId::kMotorError, i, static_cast<double>(s.motor_error[i]), cond);
        break;
      }
  {
    const double thr[2] = {cfg_.battery_warn_v, cfg_.battery_stop_v};
    const FaultId ids[2] = {FaultId::kBatteryLow, FaultId::kBatteryCritical};
    const double v = s.battery_v;
    if (s.has_battery && !std::isfinite(v)) raise(FaultId::kNonFiniteState, -1, v, cond);
    for (int k = 0; k < 2; ++k) {
      const uint8_t bit = static_cast<uint8_t>(1u << k);
      if (s.has_battery && std::isfinite(v)) {
        const bool on = (battery_levels_ & bit) ? v <= thr[k] + cfg_.battery_hysteresis_v : v <= thr[k];
        battery_levels_ = thr[k] > 0 && on ? (battery_levels_ | bit) : (battery_levels_ & ~bit);
      }
      if (battery_levels_ & bit) raise(ids[k], -1, v, cond);
    }
  }
  // policy stream
  st_.stream_age_ms = 0;
  if (st_.stream_expected) {
    const uint64_t seq = active_ctrl_->input_seq(t);
    if (seq != stream_seq_) {
      stream_seq_ = seq;
      last_stream_tick_ = tick_;
    }
    st_.stream_age_ms = static_cast<double>(tick_ - last_stream_tick_) * dt_ * 1e3;
    if (cfg_.starvation_hold_ms > 0 && st_.stream_age_ms > cfg_.starvation_hold_ms)
      raise(FaultId::kStarvationHold, -1, st_.stream_age_ms, cond);
    if (cfg_.starvation_stop_ms > 0 && st_.stream_age_ms > cfg_.starvation_stop_ms)
      raise(FaultId::kStarvationStop, -1, st_.stream_age_ms, cond);
  }
  // loop overruns over a sliding window
  if (cfg_.overrun_window_ticks > 0) {
    const size_t w = static_cast<size_t>(cfg_.overrun_window_ticks);
    const uint8_t over = last_tick_ns > period_ns ? 1 : 0;
    const size_t k = overrun_pos_ % w;
    overrun_count_ += over - overrun_ring_[k];
    overrun_ring_[k] = over;
    ++overrun_pos_;
    if (cfg_.overrun_max > 0 && overrun_count_ >= cfg_.overrun_max)
      raise(FaultId::kLoopOverrun, -1, static_cast<double>(overrun_count_), cond);
  }
}

void Supervisor::note_sample(const State& s, Status read_status) {
  const int n = p_.n;
  if (read_status != Status::kOk || s.seq == last_seq_) return;
  const bool same = have_state_ && std::memcmp(s.q.data(), prev_q_.data(), sizeof(double) * n) == 0 &&
                    std::memcmp(s.dq.data(), prev_dq_.data(), sizeof(double) * n) == 0 &&
                    std::memcmp(s.imu_gyro.data(), prev_gyro_.data(), sizeof prev_gyro_) == 0;
  frozen_samples_ = same ? frozen_samples_ + 1 : 0;
  prev_q_ = s.q;
  prev_dq_ = s.dq;
  prev_gyro_ = s.imu_gyro;
  last_seq_ = s.seq;
  last_fresh_tick_ = tick_;
  have_state_ = true;
}

void Supervisor::step(uint64_t tick, int64_t driver_ns, const State& s, Status read_status, Status write_status,
                      int64_t last_tick_ns, int64_t period_ns, const Targets& t, const OperatorInputs& in, Command& cmd) {
  tick_ = tick;
  driver_ns_ = driver_ns;
  s_ = &s;
  t_ = &t;
  note_sample(s, read_status);

  // 1. operator
  if (in.estop) {
    Event e;
    e.kind = EventKind::kOperator;
    e.code = static_cast<int32_t>(OperatorAction::kEstop);
    e.from = static_cast<int32_t>(st_.mode);
    emit(e);
    if (st_.mode != SafetyMode::kEstop) go(SafetyMode::kEstop, ModeCause::kEstop, -1);
  }
  // An e-stop takes the whole tick: a reset, enable or request that arrived with it is ignored (the
  // operator repeats it on a later tick), so nothing can cancel the stop before it was written.
  if (!in.estop) {
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
