// The walking controller mode ("walk"): a velocity command (vx, vy, yaw rate) becomes footsteps, a
// DCM plan and swing-foot trajectories (gait.hpp), which the whole-body QP tracks every tick: the
// centre of mass by the DCM feedback law's acceleration, the swing foot's SE3 trajectory, the base
// and torso heading, the contacts switched by the controller's force ramp. The hands and the
// posture stay the whole-body controller's (published from Python as for "wbc").
//
// Phases: standing (both feet down, the centre of mass held where it was on entry) -> a non-zero
// command starts walking (a weight shift of start_s onto the first stance foot, then the steps;
// the footsteps are re-planned at every lift-off from where the feet are and the command then) ->
// a zero command brings the swing foot beside the stance foot and ends standing on both (or, with
// step_in_place, keeps stepping on the spot).
//
// Timing of a step: the swing foot's contact is released at lift-off; the controller ramps its force
// out over its contact_ramp_s, then the foot follows the swing trajectory for the rest of single
// support, and its contact is switched on at touch-down (the force ramps in over double support).
//
// The command is rate-limited (max_lin_acc, max_yaw_acc) and clamped to what the step limits can
// follow (gait::reachable). The commanded ZMP is kept margin inside the support polygon (the stance
// sole in single support, the box around both soles in double support).
//
// enter()/update() are [tick]; set_command() is any thread (never blocks the tick).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/exchange.hpp"
#include "core/modes.hpp"
#include "locomotion/gait.hpp"
#include "wbc/wbc.hpp"

namespace vertebra {

struct WalkConfig {
  gait::GaitParams gait;
  int32_t left_foot = 0, right_foot = 1;  // contact indices in the controller's foot order
  double dcm_gain = 3.0;       // 1/s: the rate the DCM error decays at (gait::dcm_feedback)
  double start_s = 0.4;        // the first weight shift onto the stance foot
  int32_t preview_steps = 3;   // footsteps planned ahead (2..gait::kMaxSteps)
  double max_lin_acc = 0.5, max_yaw_acc = 1.0;  // the command's rate limits: m/s^2, rad/s^2
  double zmp_margin_m = 0.01;  // the commanded ZMP this far inside the support polygon
  double com_weight_scale = 30.0;  // the whole-body controller's horizontal CoM weight times this (WbcTargets;
                                   // G1 at 0.5 m/s: x10 fell, the DCM 4 cm behind the plan, the ZMP at the heel)
  // Step adjustment: while a foot swings and the feedback's ZMP is beyond the stance sole (a push),
  // the DCM will end (r_want - r)(exp(omega t_left) - 1) beyond the plan at touch-down; past the
  // deadband the landing, and every step after it, move by that (at most adjust_max_m in all, within
  // the step limits) and the DCM plan is made again from them. Frozen for the swing's last
  // adjust_freeze_s (Capture-point stepping: Pratt et al. 2006; Englsberger et al. 2015).
  // On by default. G1 on the state estimator (docs/walking.md): with it, 120 s of random commands
  // with no fall (without it a fall at about 95 s), and a 30 N, 0.1 s push at 45 deg caught while walking
  // at 0.3 m/s (without it a fall). (It once moved feet by 5-15 cm walking straight on the estimator:
  // that was the estimator's uncompensated IMU lever arm, since fixed.)
  bool step_adjust = true;
  double adjust_deadband_m = 0.01, adjust_max_m = 0.2, adjust_freeze_s = 0.1;
  bool step_in_place = false;  // a zero command: keep stepping (true) or stand (false)
  // The commands accepted, |vx|, |vy| (m/s), |wz| (rad/s): the safety config's base_velocity bounds.
  // set_command() refuses one beyond them; a streamed one beyond them stops the walk (WalkMode).
  std::array<double, 3> max_command{kUnbounded, kUnbounded, kUnbounded};
  static constexpr double kUnbounded = 1e300;
  // "" when usable with a controller of n_feet flat feet, else what is wrong (configuration time).
  std::string check(int n_feet, bool flat_feet) const;
};

enum class WalkPhase : int32_t { kStanding = 0, kWalking = 1 };

struct WalkStatus {
  WalkPhase phase = WalkPhase::kStanding;
  uint64_t steps = 0;           // touch-downs since the mode was made
  uint64_t replans = 0;
  int32_t swing_foot = -1;      // 0 left, 1 right, -1 none
  std::array<double, 3> command{}, applied{};  // as set, and after the rate limits and step limits
  std::array<double, 2> dcm{}, dcm_ref{}, zmp_ref{}, zmp_cmd{};  // world, m
  double dcm_err_m = 0;
  uint64_t adjusted_steps = 0;  // steps whose landing the step adjustment moved
  uint64_t refused_commands = 0;  // streamed commands beyond max_command (each stopped the walk)
  std::array<double, 2> adjust{};  // the current step's adjustment, m
  double plan_time_s = 0;       // into the current plan
};

// Its target sink (streamed task targets, a policy's chunks): base_velocity.vx, .vy, .wz (the
// command, all three together), then the whole-body controller's hand targets under their names (the
// walk owns the centre of mass). A streamed command that is not finite or beyond max_command is
// refused: the command becomes zero (the robot stops walking) and refused_commands counts it.
class WalkMode final : public ControllerMode, public TargetSink, private WbcPlanner {
 public:
  // Configuration time; throws std::invalid_argument on a config the controller cannot walk with.
  WalkMode(std::shared_ptr<WholeBodyController> wbc, const WalkConfig& cfg);

  Status enter(const RobotParams& p, const State& s, const Command& last, const Targets& t,
               const ModeRequest& req) override;
  Status update(const RobotParams& p, const State& s, const Targets& t, double dt, Command& out) override;
  uint64_t input_seq(const Targets& t) const override { return wbc_->input_seq(t) + command_seq_.load(std::memory_order_acquire) + streamed_; }
  bool contact_plan(std::array<double, kMaxFeet>& weight) const override { return wbc_->contact_plan(weight); }
  bool diagnostics(ControllerDiagnostics& out) const override { return wbc_->diagnostics(out); }
  TargetSink* target_sink() override { return this; }
  std::vector<std::string> target_names() const override;
  std::string check_channels(const int* channels, int n) const override;
  void stream(const int* channels, const double* values, int n) override;  // [tick]

  // Any thread: the velocity command in the walking frame (m/s, m/s, rad/s); non-finite or beyond
  // max_command: refused (false), the command it had stays.
  bool set_command(double vx, double vy, double wz);
  bool within_bounds(double vx, double vy, double wz) const;
  void status(WalkStatus& out) const { status_.load(out); }
  const WalkConfig& config() const { return cfg_; }
  WholeBodyController& wbc() { return *wbc_; }

 private:
  bool plan(const WbcKinematics& k, double dt, WbcTargets& out) override;
  // A new plan of n steps from now, the first by `first`, from the feet where they are.
  void start_plan(const std::array<gait::Pose2, 2>& feet, int32_t first, int n, double t_first, const gait::Vec2& zmp_start);
  // Step adjustment (WalkConfig::step_adjust) of the swinging step 0: r_want the feedback's ZMP, r the one
  // the support allows.
  void adjust_steps(const gait::Vec2& r_want, const gait::Vec2& r, double omega, const gait::Pose2& stance);
  // The steps a stop needs: 0 when the feet already stand side by side, else 1 (the swing foot beside the stance foot).
  int stop_steps(const std::array<gait::Pose2, 2>& feet, int32_t swing) const;
  gait::Vec2 clamp_to_support(const gait::Vec2& r, const std::array<gait::Pose2, 2>& feet, int32_t swing) const;

  std::shared_ptr<WholeBodyController> wbc_;
  WalkConfig cfg_;
  gait::GaitParams g_;  // cfg_.gait with the pendulum height measured on entry
  TripleBuffer<std::array<double, 3>> command_in_;
  std::mutex command_mutex_;
  std::atomic<uint64_t> command_seq_{0};
  SeqLock<WalkStatus> status_;
  // tick-owned
  WalkStatus st_{};
  uint64_t streamed_ = 0;  // streamed commands taken (input_seq)
  std::array<double, 3> command_{}, applied_{};
  bool fresh_ = true;  // the first tick after enter(): capture the heights and the standing CoM
  double com_z_ = 0, base_z_ = 0, ground_z_ = 0;
  gait::Vec2 stand_com_{}, dcm_now_{};
  double t_ = 0;
  int n_steps_ = 0;
  std::array<gait::Footstep, gait::kMaxSteps> steps_{}, nominal_{};  // as adjusted / as planned
  std::array<gait::Pose2, 2> plan_feet_{};  // the feet the plan was made from
  double plan_t_first_ = 0;
  gait::Vec2 plan_zmp_start_{}, plan_dcm_start_{};
  bool plan_from_dcm_ = false;
  gait::Vec2 adjusted_{};  // the current adjustment
  gait::DcmPlan dcm_;
  bool swinging_ = false;
  gait::Pose2 lift_pose_{};
  double lift_z_ = 0;
};

}  // namespace vertebra
