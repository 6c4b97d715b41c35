// Safety vocabulary and configuration: the supervisor's modes, the faults its monitors raise, the
// responses a fault can be given, the thresholds (configs/safety/<robot>.yaml, validated in
// vertebra.safety.config before they reach C++), and the command limiter.
//
// Contract
//  - SafetyConfig is plain data filled at configuration time. A threshold of 0 disables the
//    monitor it belongs to (documented per field); the C++ default-constructed config only keeps
//    the monitors that need no threshold (driver errors, non-finite values, controller failure,
//    the event log's writes), so a loop built without a safety config behaves as before the
//    supervisor existed.
//  - CommandLimiter::apply() is [tick]: no allocation, no exceptions; it is a pure function of its
//    inputs (tested property-based from Python).
#pragma once

#include <array>
#include <cstdint>

#include "core/modes.hpp"
#include "core/types.hpp"

namespace vertebra {

// The supervisor's modes (DESIGN.md "Safety model"). Each runs one controller mode.
enum class SafetyMode : int32_t {
  kPassive = 0,   // zero torque
  kDamp = 1,      // damping
  kStandup = 2,   // interpolate to a pose (arming: the only way to gain stiffness)
  kHold = 3,      // hold the pose
  kActive = 4,    // a policy drives (joint-target PD or whole-body QP)
  kStopping = 5,  // settle-then-cut: controlled crouch/sit through keyframes, then damping
  kFault = 6,     // latched until an operator reset; damping (or zero torque for a "cut" response)
  kEstop = 7,     // operator emergency stop; latched until an operator reset
};
inline constexpr int kNumSafetyModes = 8;
const char* safety_mode_name(SafetyMode m);

// Faults the monitors raise. Each has a configured Response.
enum class FaultId : int32_t {
  kDriverRead = 0,
  kDriverWrite,
  kStateLoss,         // no new state for state_timeout_ms
  kStateFrozen,       // new samples whose values never change for frozen_ms
  kNonFiniteState,
  kNonFiniteCommand,  // NaN/Inf in the command a mode produced (e.g. a policy's target)
  kTilt,              // roll/pitch beyond tilt_warn_deg
  kFall,              // roll/pitch beyond fall_tilt_deg, base below fall_height_m, or spin beyond fall_rate
  kJointSoftLimit,    // a measured position beyond the soft limits
  kJointHardLimit,    // a measured position beyond the hard limits (plus a tolerance)
  kJointVelocity,
  kTorque,
  kTempWarn,
  kTempDerate,
  kTempStop,
  kMotorError,
  kBatteryLow,
  kBatteryCritical,
  kStarvationHold,    // the policy stream stopped for starvation_hold_ms
  kStarvationStop,    // ... and for starvation_stop_ms
  kController,        // the active controller failed (whole-body QP failed N ticks in a row)
  kLoopOverrun,       // overrun_max overruns within overrun_window_ticks
  kEventLogWrite,     // the event log's writer cannot write (disk full, I/O errors, file gone): not a stop,
                      // but the run is no longer recorded (read from the ring's health flag: no I/O on the tick)
  kLowcmdConflict,    // another participant commands the robot's motors while this driver does (a second
                      // rt/lowcmd writer, Unitree's motion service back): State::lowcmd_conflict, from the driver
  kCount,
};
inline constexpr int kNumFaults = static_cast<int>(FaultId::kCount);
const char* fault_name(FaultId f);
inline constexpr uint64_t fault_bit(FaultId f) { return uint64_t{1} << static_cast<int>(f); }

// What a fault makes the supervisor do, in increasing severity. A fault never lowers the severity
// of what is already happening (a stop in progress is not restarted; damping is never re-armed).
enum class Response : int32_t {
  kWarn = 0,    // log only
  kDerate = 1,  // scale the joint's torque and stiffness limits by derate_scale while it lasts
  kHold = 2,    // ACTIVE -> HOLD (the policy is dropped, the robot keeps its pose)
  kStop = 3,    // settle-then-cut, then FAULT (latched)
  kDamp = 4,    // category 1: damping now, FAULT (latched)
  kCut = 5,     // category 0: zero torque now, FAULT (latched)
};
const char* response_name(Response r);

inline constexpr int kMaxSettleKeyframes = 4;

struct SafetyConfig {
  // --- state freshness
  double state_timeout_ms = 0;   // state loss: no new sample for longer than this (0: off)
  double frozen_ms = 0;          // frozen: samples advance but q, dq and gyro stay bit-identical (0: off)
  // --- attitude (armed modes only: STANDUP/HOLD/ACTIVE)
  double tilt_warn_deg = 0;      // 0: off
  double fall_tilt_deg = 0;      // 0: off
  double fall_height_m = 0;      // base below this (drivers that know the base height), 0: off
  double fall_rate_rad_s = 0;    // |base angular rate| above this, 0: off
  // --- joints
  double soft_limit_margin_rad = 0;  // soft limits = hard limits shrunk by this (limiter + monitor)
  double hard_limit_tolerance_rad = 0.05;  // measured beyond hard limits by more than this: fault
  bool joint_limit_monitor = false;
  double velocity_fault_scale = 0;   // |dq| > scale * dq_max (0: off)
  double torque_fault_scale = 0;     // |tau measured| > scale * tau_max (0: off)
  // --- motors and power
  double temp_warn_c = 0, temp_derate_c = 0, temp_stop_c = 0;  // 0: off (each level)
  double temp_hysteresis_c = 5;      // a level clears this far below its threshold
  double derate_scale = 0.5;         // kDerate: tau and kp limits of the hot joint x this
  bool motor_error_monitor = false;
  double battery_warn_v = 0, battery_stop_v = 0;  // 0: off
  double battery_hysteresis_v = 0.5;
  // --- policy stream (only for ACTIVE entered with a stream request)
  double starvation_hold_ms = 0, starvation_stop_ms = 0;  // 0: off
  // --- loop
  int overrun_window_ticks = 0;      // 0: off; at most 1024
  int overrun_max = 0;               // fault at this many overruns inside the window
  // --- event log (written off the tick by an EventLog; cpp/safety/events.hpp)
  bool event_log_monitor = true;     // event_log_write while the log's writer fails (needs no threshold)
  uint64_t event_log_rotate_bytes = uint64_t{64} << 20;  // rotate the log file before it passes this (>= 4096)
  int event_log_keep_files = 5;      // rotated files kept: <path>.1 (newest) .. <path>.<keep> (1..99)
  // --- limiter
  double rate_limit_scale = 0;       // |q target step| <= scale * dq_max * dt when stiff (0: off)
  // --- responses (indexed by FaultId)
  std::array<Response, kNumFaults> response{};
  // --- stops
  bool estop_cut = false;            // operator e-stop: category 0 (true) or 1 (damping)
  int n_settle = 0;                  // settle keyframes (0: a stop goes straight to damping)
  std::array<JointArray, kMaxSettleKeyframes> settle_pose{};
  std::array<double, kMaxSettleKeyframes> settle_duration_s{};
  double settle_hold_s = 0.5;        // hold the last keyframe this long before cutting to damping
  // Clamp events: a burst ends after this many ticks without a clamp.
  int clamp_quiet_ticks = 250;

  // Responses default to the safe table in safety.cpp, which declares one for every fault (fail
  // closed: a fault added without a declared response throws std::logic_error here, at start-up,
  // rather than defaulting to warn).
  SafetyConfig();
};

// Counters of every limiter intervention since start (per kind).
struct LimiterCounts {
  uint64_t nonfinite = 0, position = 0, rate = 0, velocity = 0, kp = 0, kd = 0, torque = 0;
  uint64_t total() const { return nonfinite + position + rate + velocity + kp + kd + torque; }
};

// Bits of CommandLimiter::apply()'s result.
enum LimiterFlags : uint32_t {
  kClampNonFinite = 1u << 0,
  kClampPosition = 1u << 1,
  kClampRate = 1u << 2,
  kClampVelocity = 1u << 3,
  kClampKp = 1u << 4,
  kClampKd = 1u << 5,
  kClampTorque = 1u << 6,
};

// The last gate before the driver. For every joint:
//   - non-finite fields are replaced in the same tick: q by the previous command's q (else the
//     measured q, else the middle of the soft range), dq and tau_ff by 0, kp/kd by the previous
//     command's (already limited) gains, else 0 / kd_damping;
//   - kp in [0, kp_max·d], kd in [0, kd_max], tau_ff within ±tau_max·d (d = derate_scale on a
//     derated joint, else 1). The clamp is on the feed-forward term: the spring term is bounded by
//     kp_max and the soft limits, and the motor board clamps the total to its effort limit;
//   - with kp > 0: the step from the reference is at most rate_limit_scale·dq_max·dt. The reference
//     is the previous command's q when it was stiff, else the measured q; on a mode's first tick
//     it is the target that reproduces the previous command's torque with this command's kp and
//     tau_ff, q_meas + (kp_prev (q_prev - q_meas) + tau_prev - tau_ff) / kp (so entering HOLD from
//     a whole-body command does not drop its gravity support). With no finite reference, kp is set
//     to 0 for that joint;
//   - q inside the soft limits; dq within ±dq_max.
class CommandLimiter {
 public:
  CommandLimiter(const RobotParams& p, const SafetyConfig& c, double dt_s);
  // mode_entry: the first tick of a new controller mode (see the rate limit's reference above).
  uint32_t apply(const State& s, const Command& prev, Command& cmd, uint64_t derated_mask, LimiterCounts& counts,
                 bool mode_entry = false) const;
  double soft_lower(int i) const { return lo_[i]; }
  double soft_upper(int i) const { return hi_[i]; }
  double max_step(int i) const { return step_[i]; }

 private:
  RobotParams p_;
  double derate_ = 1.0;
  JointArray lo_{}, hi_{}, step_{};
};

}  // namespace vertebra
