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

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/types.hpp"

namespace vertebra {

enum class ModeId : int32_t {
  kZeroTorque = 0,   // kp = kd = tau = 0: the robot is limp
  kDamping = 1,      // kp = 0, kd = damping gain: joints resist motion, nothing holds pose
  kHold = 2,         // PD on the pose captured on entry (last stiff command, else measured)
  kInterpolate = 3,  // minimum-jerk move from the entry pose to a requested pose over T seconds
  kJointPD = 4,      // PD on joint targets written from Python (RL policies)
  kSettle = 6,       // settle-then-cut keyframes (cpp/safety/supervisor.hpp); never requested directly
  // Ids from kFirstRegistered on belong to modes registered by name (see "Mode names" below).
};
inline constexpr int kFirstRegisteredMode = 8;
inline constexpr int kMaxModeIds = 32;  // built-in ids and registered names together

// Mode names. Built-in modes have fixed names (zero_torque, damping, hold, interpolate, joint_pd,
// settle). Any other controller mode (the whole-body QP "wbc", a locomotion controller, a test's
// mode) is registered by name at configuration time: the name gets a process-wide id, the same id
// every time that name is registered again (by another loop), so ids, names and event logs agree
// across every loop of the process. Names are lower-case identifiers ([a-z][a-z0-9_]*, <= 31 chars).
//   mode_id_for_name(): configuration time (takes a mutex, may throw std::invalid_argument).
//   mode_name(): any thread, also the tick (a lock-free read of an append-only table).
ModeId mode_id_for_name(const std::string& name);
bool find_mode(const std::string& name, ModeId& out);  // built-in or registered name; no throw
const char* mode_name(ModeId m);
std::string known_mode_names();  // "zero_torque, damping, ..., wbc" (for error messages)
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

// Task-space targets a mode accepts from an action-chunk stream, as named scalar channels (for the
// whole-body controller: "com.x", "left_rubber_hand.y", ...). The loop resolves a policy's action
// names to channel indices once, when a chunk scheduler is attached (configuration time), so a
// chunk's columns are matched to targets by name, never by position.
class TargetSink {
 public:
  virtual ~TargetSink() = default;
  // Configuration time: every channel, in channel-index order.
  virtual std::vector<std::string> target_names() const = 0;
  // Configuration time: "" when a stream of these channels (indices into target_names(), in column
  // order) is acceptable, else why not (e.g. a position target needs all of x, y and z).
  virtual std::string check_channels(const int* channels, int n) const { (void)channels; (void)n; return ""; }
  // [tick] One sample: values[k] is for channel channels[k]. Non-finite values are ignored.
  virtual void stream(const int* channels, const double* values, int n) = 0;
};

// What a controller reports about its last update for the recorder (TickRecord): task errors,
// contact wrenches, solver effort. Modes without a task-space view have none.
inline constexpr int kMaxDiagHands = 2;
struct ControllerDiagnostics {
  std::array<double, 3> com_err{};                // m, world: centre-of-mass target minus actual
  double base_pos_err = 0, base_rot_err = 0, torso_rot_err = 0;  // m, rad
  std::array<double, kMaxDiagHands> hand_pos_err{}, hand_rot_err{};  // m, rad
  std::array<std::array<double, 6>, kMaxFeet> contact_wrench{};  // per foot: force N, torque N·m
  std::array<double, kMaxFeet> contact_weight{};  // the contact ramp, 0..1
  double solve_us = 0;
  int32_t qp_iterations = 0, qp_status = 0;
};

class ControllerMode {
 public:
  virtual ~ControllerMode() = default;
  // Built-in modes start with their fixed id; a mode registered under a name (RtLoop::register_mode)
  // answers to that name's id from then on (a HoldMode registered as "stand_still" is "stand_still").
  ModeId id() const { return id_; }
  virtual Status enter(const RobotParams& p, const State& s, const Command& last, const Targets& t, const ModeRequest& req) = 0;
  virtual Status update(const RobotParams& p, const State& s, const Targets& t, double dt, Command& out) = 0;
  // 0..1 for modes that move somewhere (interpolate); 1 for the others.
  virtual double progress() const { return 1.0; }
  // A counter that advances whenever new input for this mode arrives (the policy stream the
  // starvation monitor watches): joint targets' seq by default.
  virtual uint64_t input_seq(const Targets& t) const { return t.seq; }
  // The mode's task-target sink, or nullptr when it takes no streamed task targets.
  virtual TargetSink* target_sink() { return nullptr; }
  // [tick] The feet this mode plans to stand on (0..1 per foot, robot foot order: the whole-body
  // controller's contact ramp), read by the state estimator. false: the mode has no plan.
  virtual bool contact_plan(std::array<double, kMaxFeet>& weight) const { return false; }
  // [tick] The last update's diagnostics (the recorder's); false: this mode has none.
  virtual bool diagnostics(ControllerDiagnostics& out) const { (void)out; return false; }
  // Configuration time (the loop's register_mode()).
  void set_registered_id(ModeId id) { id_ = id; }

 protected:
  explicit ControllerMode(ModeId builtin = ModeId::kZeroTorque) : id_(builtin) {}

 private:
  ModeId id_;
};

class ZeroTorqueMode final : public ControllerMode {
 public:
  ZeroTorqueMode() : ControllerMode(ModeId::kZeroTorque) {}
  Status enter(const RobotParams&, const State&, const Command&, const Targets&, const ModeRequest&) override { return Status::kOk; }
  Status update(const RobotParams& p, const State& s, const Targets& t, double dt, Command& out) override;
};

class DampingMode final : public ControllerMode {
 public:
  DampingMode() : ControllerMode(ModeId::kDamping) {}
  Status enter(const RobotParams&, const State&, const Command&, const Targets&, const ModeRequest&) override { return Status::kOk; }
  Status update(const RobotParams& p, const State& s, const Targets& t, double dt, Command& out) override;
};

class HoldMode final : public ControllerMode {
 public:
  HoldMode() : ControllerMode(ModeId::kHold) {}
  Status enter(const RobotParams& p, const State& s, const Command& last, const Targets& t, const ModeRequest& req) override;
  Status update(const RobotParams& p, const State& s, const Targets& t, double dt, Command& out) override;
  const JointArray& pose() const { return pose_; }

 private:
  JointArray pose_{};
};

class InterpolateMode final : public ControllerMode {
 public:
  InterpolateMode() : ControllerMode(ModeId::kInterpolate) {}
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
  JointPDMode() : ControllerMode(ModeId::kJointPD) {}
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
