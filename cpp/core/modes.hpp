// Controller modes: what the loop runs each tick to turn the state (and, for some modes,
// Python's targets) into a motor-board command.
//
// Contract
//  - enter() is called on the tick when the mode becomes active; it captures what it needs from
//    the state, the last command sent and the targets last received (so that a switch never
//    jumps and never acts on stale targets) and validates the request's parameters, returning
//    kInvalidRequest to refuse the switch.
//  - update() is called every tick while active. Both are [tick]: no allocation, no exceptions,
//    no I/O; they return a Status.
//  - Every mode fills all n joints of the command; the loop's limiter clamps afterwards.
#pragma once

#include <cstdint>
#include <string>

#include "core/types.hpp"

namespace vertebra {

enum class ModeId : int32_t {
  kZeroTorque = 0,   // kp = kd = tau = 0: the robot is limp
  kDamping = 1,      // kp = 0, kd = damping gain: joints resist motion, nothing holds pose
  kHold = 2,         // PD on the pose captured on entry (last stiff command, else measured)
  kInterpolate = 3,  // minimum-jerk move from the entry pose to a requested pose over T seconds
  kJointPD = 4,      // PD on joint targets written from Python (RL policies)
  kWbc = 5,          // whole-body inverse-dynamics QP (cpp/wbc/wbc.hpp)
  kSettle = 6,       // settle-then-cut keyframes (cpp/safety/supervisor.hpp); never requested directly
};
inline constexpr int kNumModes = 7;
const char* mode_name(ModeId m);

// Per-robot constants the modes and the limiter need, in motor order (from the robot YAML).
struct RobotParams {
  int32_t n = 0;
  JointArray kp{}, kd{};         // default stiffness/damping (N·m/rad, N·m·s/rad)
  JointArray kd_damping{};       // damping-mode gains
  JointArray kp_max{}, kd_max{}; // nothing upstream may exceed these
  JointArray q_lower{}, q_upper{}, dq_max{}, tau_max{};
  JointArray default_pose{};
};

struct ModeRequest {
  uint64_t seq = 0;
  ModeId mode = ModeId::kZeroTorque;
  double duration_s = 0.0;  // kInterpolate
  int32_t n = 0;            // kInterpolate: joints in `pose`
  JointArray pose{};        // kInterpolate goal
  bool stream = false;      // ACTIVE: a policy stream is expected (the starvation monitor watches it)
};

class ControllerMode {
 public:
  virtual ~ControllerMode() = default;
  virtual ModeId id() const = 0;
  virtual Status enter(const RobotParams& p, const State& s, const Command& last, const Targets& t, const ModeRequest& req) = 0;
  virtual Status update(const RobotParams& p, const State& s, const Targets& t, double dt, Command& out) = 0;
  // 0..1 for modes that move somewhere (interpolate); 1 for the others.
  virtual double progress() const { return 1.0; }
  // A counter that advances whenever new input for this mode arrives (the policy stream the
  // starvation monitor watches): joint targets' seq by default.
  virtual uint64_t input_seq(const Targets& t) const { return t.seq; }
  // [tick] Task-space targets streamed by the loop (an action-chunk scheduler), called on the tick
  // thread before update(). Modes without task-space targets ignore them.
  virtual void stream_targets(const double* values, int n) { (void)values; (void)n; }
};

class ZeroTorqueMode final : public ControllerMode {
 public:
  ModeId id() const override { return ModeId::kZeroTorque; }
  Status enter(const RobotParams&, const State&, const Command&, const Targets&, const ModeRequest&) override { return Status::kOk; }
  Status update(const RobotParams& p, const State& s, const Targets& t, double dt, Command& out) override;
};

class DampingMode final : public ControllerMode {
 public:
  ModeId id() const override { return ModeId::kDamping; }
  Status enter(const RobotParams&, const State&, const Command&, const Targets&, const ModeRequest&) override { return Status::kOk; }
  Status update(const RobotParams& p, const State& s, const Targets& t, double dt, Command& out) override;
};

class HoldMode final : public ControllerMode {
 public:
  ModeId id() const override { return ModeId::kHold; }
  Status enter(const RobotParams& p, const State& s, const Command& last, const Targets& t, const ModeRequest& req) override;
  Status update(const RobotParams& p, const State& s, const Targets& t, double dt, Command& out) override;
  const JointArray& pose() const { return pose_; }

 private:
  JointArray pose_{};
};

class InterpolateMode final : public ControllerMode {
 public:
  ModeId id() const override { return ModeId::kInterpolate; }
  Status enter(const RobotParams& p, const State& s, const Command& last, const Targets& t, const ModeRequest& req) override;
  Status update(const RobotParams& p, const State& s, const Targets& t, double dt, Command& out) override;
  double progress() const override { return duration_s_ > 0 ? (elapsed_s_ >= duration_s_ ? 1.0 : elapsed_s_ / duration_s_) : 1.0; }
  const JointArray& goal() const { return goal_; }

 private:
  JointArray start_{}, goal_{};
  double duration_s_ = 0, elapsed_s_ = 0;
};

class JointPDMode final : public ControllerMode {
 public:
  ModeId id() const override { return ModeId::kJointPD; }
  Status enter(const RobotParams& p, const State& s, const Command& last, const Targets& t, const ModeRequest& req) override;
  Status update(const RobotParams& p, const State& s, const Targets& t, double dt, Command& out) override;
  // Only targets this mode would act on count as the policy stream (not wrong-sized ones).
  uint64_t input_seq(const Targets& t) const override { return t.n == n_ ? t.seq : 0; }

 private:
  int32_t n_ = 0;
  HoldMode fallback_;         // holds the entry pose until targets newer than the switch arrive
  uint64_t entry_seq_ = 0;    // targets seen at entry are stale: they belong to an earlier session
};

// Where a mode starts from so a switch never jumps in torque: the position target that, with the
// mode's stiffness p.kp, reproduces the last command's spring torque plus feed-forward
// (q + (kp_last (q_last - q) + tau_ff_last) / kp), clamped into the limits (a limp joint can hang
// slightly past its limit). For a stiff PD command with the same gains that is its own target;
// for a limp one the measured position. Without a finite measurement: the last stiff target.
void entry_pose(const RobotParams& p, const State& s, const Command& last, JointArray& out);

}  // namespace vertebra
