#include "safety/safety.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace vertebra {

const char* safety_mode_name(SafetyMode m) {
  switch (m) {
    case SafetyMode::kPassive: return "PASSIVE";
    case SafetyMode::kDamp: return "DAMP";
    case SafetyMode::kStandup: return "STANDUP";
    case SafetyMode::kHold: return "HOLD";
    case SafetyMode::kActive: return "ACTIVE";
    case SafetyMode::kStopping: return "STOPPING";
    case SafetyMode::kFault: return "FAULT";
    case SafetyMode::kEstop: return "ESTOP";
  }
  return "UNKNOWN";
}

const char* fault_name(FaultId f) {
  switch (f) {
    case FaultId::kDriverRead: return "driver_read";
    case FaultId::kDriverWrite: return "driver_write";
    case FaultId::kStateLoss: return "state_loss";
    case FaultId::kStateFrozen: return "state_frozen";
    case FaultId::kNonFiniteState: return "non_finite_state";
    case FaultId::kNonFiniteCommand: return "non_finite_command";
    case FaultId::kTilt: return "tilt";
    case FaultId::kFall: return "fall";
    case FaultId::kJointSoftLimit: return "joint_soft_limit";
    case FaultId::kJointHardLimit: return "joint_hard_limit";
    case FaultId::kJointVelocity: return "joint_velocity";
    case FaultId::kTorque: return "torque";
    case FaultId::kTempWarn: return "temperature_warn";
    case FaultId::kTempDerate: return "temperature_derate";
    case FaultId::kTempStop: return "temperature_stop";
    case FaultId::kMotorError: return "motor_error";
    case FaultId::kBatteryLow: return "battery_low";
    case FaultId::kBatteryCritical: return "battery_critical";
    case FaultId::kStarvationHold: return "starvation_hold";
    case FaultId::kStarvationStop: return "starvation_stop";
    case FaultId::kController: return "controller";
    case FaultId::kLoopOverrun: return "loop_overrun";
    case FaultId::kEventLogWrite: return "event_log_write";
    case FaultId::kLowcmdConflict: return "lowcmd_conflict";
    case FaultId::kCount: break;
  }
  return "unknown";
}

const char* response_name(Response r) {
  switch (r) {
    case Response::kWarn: return "warn";
    case Response::kDerate: return "derate";
    case Response::kHold: return "hold";
    case Response::kStop: return "stop";
    case Response::kDamp: return "damp";
    case Response::kCut: return "cut";
  }
  return "unknown";
}

SafetyConfig::SafetyConfig() {
  // Every response starts undeclared; the table below must declare each one (checked at the end).
  constexpr auto kUndeclared = static_cast<Response>(-1);
  response.fill(kUndeclared);
  // Safe defaults: anything that means the controller no longer knows or controls the robot stops
  // it with settle-then-cut (which runs open loop on the motor boards' PD, so it works without
  // state); a fall is past settling: damping; a bad policy output only drops the policy.
  auto set = [this](FaultId f, Response r) { response[static_cast<int>(f)] = r; };
  set(FaultId::kDriverRead, Response::kStop);
  set(FaultId::kDriverWrite, Response::kDamp);
  set(FaultId::kStateLoss, Response::kStop);
  set(FaultId::kStateFrozen, Response::kStop);
  set(FaultId::kNonFiniteState, Response::kStop);
  set(FaultId::kNonFiniteCommand, Response::kHold);
  set(FaultId::kTilt, Response::kWarn);
  set(FaultId::kFall, Response::kDamp);
  set(FaultId::kJointSoftLimit, Response::kWarn);
  set(FaultId::kJointHardLimit, Response::kStop);
  set(FaultId::kJointVelocity, Response::kStop);
  set(FaultId::kTorque, Response::kStop);
  set(FaultId::kTempWarn, Response::kWarn);
  set(FaultId::kTempDerate, Response::kDerate);
  set(FaultId::kTempStop, Response::kStop);
  set(FaultId::kMotorError, Response::kStop);
  set(FaultId::kBatteryLow, Response::kWarn);
  set(FaultId::kBatteryCritical, Response::kStop);
  set(FaultId::kStarvationHold, Response::kHold);
  set(FaultId::kStarvationStop, Response::kStop);
  set(FaultId::kController, Response::kStop);
  set(FaultId::kLoopOverrun, Response::kStop);
  set(FaultId::kEventLogWrite, Response::kWarn);  // the robot is fine; the record of it is not
  // Someone else commands the motors: our commands and theirs fight, and a settle cannot be trusted
  // to happen (its commands may not be the ones applied). Damping now, as for a write failure.
  set(FaultId::kLowcmdConflict, Response::kDamp);
  for (int f = 0; f < kNumFaults; ++f)
    if (response[f] == kUndeclared)
      throw std::logic_error(std::string("SafetyConfig: fault ") + fault_name(static_cast<FaultId>(f)) +
                             " has no declared default response (cpp/safety/safety.cpp)");
}

CommandLimiter::CommandLimiter(const RobotParams& p, const SafetyConfig& c, double dt_s) : p_(p) {
  derate_ = c.derate_scale;
  for (int i = 0; i < p.n; ++i) {
    double lo = p.q_lower[i] + c.soft_limit_margin_rad, hi = p.q_upper[i] - c.soft_limit_margin_rad;
    if (lo > hi) lo = hi = 0.5 * (p.q_lower[i] + p.q_upper[i]);  // a margin wider than the range
    lo_[i] = lo;
    hi_[i] = hi;
    step_[i] = c.rate_limit_scale > 0 ? c.rate_limit_scale * p.dq_max[i] * dt_s : INFINITY;
  }
}

uint32_t CommandLimiter::apply(const State& s, const Command& prev, Command& c, uint64_t derated_mask,
                               LimiterCounts& counts, bool mode_entry) const {
  uint32_t flags = 0;
  const int n = p_.n;
  c.n = n;
  for (int i = 0; i < n; ++i) {
    const bool prev_ok = prev.n == n;
    // 1. non-finite -> safe value, same tick
    bool bad = false;
    if (!std::isfinite(c.q[i])) {
      bad = true;
      if (prev_ok && std::isfinite(prev.q[i])) c.q[i] = prev.q[i];
      else if (std::isfinite(s.q[i])) c.q[i] = s.q[i];
      else c.q[i] = 0.5 * (lo_[i] + hi_[i]);
    }
    if (!std::isfinite(c.dq[i])) { bad = true; c.dq[i] = 0.0; }
    if (!std::isfinite(c.kp[i])) { bad = true; c.kp[i] = prev_ok && std::isfinite(prev.kp[i]) ? prev.kp[i] : 0.0; }
    if (!std::isfinite(c.kd[i])) { bad = true; c.kd[i] = prev_ok && std::isfinite(prev.kd[i]) ? prev.kd[i] : p_.kd_damping[i]; }
    if (!std::isfinite(c.tau_ff[i])) { bad = true; c.tau_ff[i] = 0.0; }
    if (bad) { flags |= kClampNonFinite; ++counts.nonfinite; }

    const double d = (derated_mask >> i) & 1u ? derate_ : 1.0;
    // 2. gains and feed-forward torque
    const double kp_max = p_.kp_max[i] * d;
    if (c.kp[i] < 0.0 || c.kp[i] > kp_max) { c.kp[i] = std::clamp(c.kp[i], 0.0, kp_max); flags |= kClampKp; ++counts.kp; }
    if (c.kd[i] < 0.0 || c.kd[i] > p_.kd_max[i]) { c.kd[i] = std::clamp(c.kd[i], 0.0, p_.kd_max[i]); flags |= kClampKd; ++counts.kd; }
    const double tmax = p_.tau_max[i] * d;
    if (c.tau_ff[i] < -tmax || c.tau_ff[i] > tmax) {
      c.tau_ff[i] = std::clamp(c.tau_ff[i], -tmax, tmax);
      flags |= kClampTorque;
      ++counts.torque;
    }
    // 3. position: rate limit (only meaningful with stiffness), then soft limits. The reference is
    //    the previous stiff target (else the measured position). On the tick a new mode takes over
    //    it is the target that reproduces the previous command's torque with this command's kp and
    //    tau_ff, so a switch between gain sets or feed-forward levels is not a position step. With
    //    no finite reference at all, stiffness is withheld for this joint this tick.
    if (c.kp[i] > 0.0) {
      double ref = NAN;
      const bool prev_stiff = prev_ok && prev.kp[i] > 0.0 && std::isfinite(prev.q[i]);
      if (mode_entry && std::isfinite(s.q[i])) {
        const double prev_tau = prev_ok && std::isfinite(prev.q[i])
                                    ? prev.kp[i] * (prev.q[i] - s.q[i]) + prev.tau_ff[i]
                                    : 0.0;
        ref = s.q[i] + (prev_tau - c.tau_ff[i]) / c.kp[i];
      } else if (prev_stiff) {
        ref = prev.q[i];
      } else {
        ref = s.q[i];
      }
      if (!std::isfinite(ref)) {
        c.kp[i] = 0.0;
        flags |= kClampKp;
        ++counts.kp;
      } else if (std::isfinite(step_[i])) {
        const double lo = ref - step_[i], hi = ref + step_[i];
        if (c.q[i] < lo || c.q[i] > hi) { c.q[i] = std::clamp(c.q[i], lo, hi); flags |= kClampRate; ++counts.rate; }
      }
    }
    if (c.kp[i] > 0.0) {
      if (c.q[i] < lo_[i] || c.q[i] > hi_[i]) { c.q[i] = std::clamp(c.q[i], lo_[i], hi_[i]); flags |= kClampPosition; ++counts.position; }
    } else {
      c.q[i] = std::clamp(c.q[i], lo_[i], hi_[i]);  // informative without stiffness: not counted
    }
    // 4. velocity
    if (c.dq[i] < -p_.dq_max[i] || c.dq[i] > p_.dq_max[i]) {
      c.dq[i] = std::clamp(c.dq[i], -p_.dq_max[i], p_.dq_max[i]);
      flags |= kClampVelocity;
      ++counts.velocity;
    }
  }
  return flags;
}

}  // namespace vertebra
