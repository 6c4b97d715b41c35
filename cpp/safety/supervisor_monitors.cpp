// Supervisor: the monitors run every tick (freshness, attitude, joints, motors, power, policy
// stream, controller, loop timing, event log health, command-bus conflicts) and the sample
// bookkeeping they read. [tick]: called from step().
#include "safety/supervisor.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace vertebra {

void Supervisor::monitors(const State& s, Status read_status, Status write_status, int64_t last_tick_ns,
                          int64_t period_ns, const Targets& t, uint64_t& cond) {
  const int n = p_.n;
  const bool armed_now = armed(st_.mode);
  // driver
  if (read_status == Status::kDriverError || read_status == Status::kNotReady)
    raise(FaultId::kDriverRead, -1, static_cast<double>(read_status), cond);
  if (write_status == Status::kDriverError || write_status == Status::kNotReady)
    raise(FaultId::kDriverWrite, -1, static_cast<double>(write_status), cond);
  // another participant commands the motors (the driver watches its bus's discovery); every mode,
  // so it latches before arming and a reset is refused while it lasts
  if (s.lowcmd_conflict) raise(FaultId::kLowcmdConflict, -1, 1.0, cond);
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
  // when armed (a settle lowers it on purpose) and, in STANDUP, once the stand-up pose is reached (a
  // stand-up rises from wherever the robot was: a crouch on the floor is below the fall height; tilt
  // and rotation rate are watched all along). A robot hanging limp may be anywhere.
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
    else if (armed_now && !(st_.mode == SafetyMode::kStandup && !st_.pose_interpolated) && cfg_.fall_height_m > 0 &&
             (s.has_base_truth || s.base_estimated) && s.base_pos[2] < cfg_.fall_height_m)
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
  // event log: its writer (off the tick) reports failed writes through the ring; two relaxed
  // atomic loads here, no I/O. The value is the number of failed writes so far.
  if (ring_) {
    st_.io_errors = ring_->log_io_errors();
    if (cfg_.event_log_monitor && ring_->log_failing())
      raise(FaultId::kEventLogWrite, -1, static_cast<double>(st_.io_errors), cond);
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

}  // namespace vertebra
