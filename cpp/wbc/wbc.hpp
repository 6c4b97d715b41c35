// Whole-body controller: task-space inverse dynamics as one quadratic program per tick (the
// formulation of TSID: Del Prete et al., "Implementing torque control with high-ratio gear boxes
// and without joint-torque sensors", 2016), solved with ProxQP dense (proxsuite).
//
// Decision variables  x = [ddq (nv) ; f (nc * m)]   m = 6 (flat feet: wrench in the sole frame)
//                                                    m = 3 (point feet: force, world axes)
// Equalities   floating-base rows of  M ddq + h = S' tau + Jc' f          (6)
//              active contact i:  Jc_i ddq + dJc_i dq = 0                 (m each)
//              inactive contact i:  f_i = 0                               (m each)
// Inequalities joint torques  -tau_max <= M_j ddq + h_j - Jc_j' f <= tau_max   (nj)
//              flat foot: linearised friction (4), centre of pressure inside the sole (4),
//              yaw torque (8, the contact wrench cone of Caron, Pham, Nakamura, ICRA 2015)
//              point foot: friction pyramid (4)
//              keep-out (one per protected point and box, after the torques):
//                n' (J_p ddq + dJ_p dq) >= -kp d - kd d'
//              with d the point's clearance from the box's face it is farthest out of (less its
//              radius and the margin), n that face's normal: a second-order barrier (d'' + kd d' +
//              kp d >= 0 keeps d >= 0), idle beyond keep_out_activation_m
// Bounds       ddq_j from joint position (horizon) and velocity limits; f_z in
//              [w f_min, w f_max] where w in [0, 1] ramps a contact in or out.
// Cost         sum_k w_k || J_k ddq + drift_k - a_ref_k ||^2 + regularisation, with PD references
//              a_ref = a* + kp e + kd de for: centre of mass, base (SE3, per-axis weights), torso
//              orientation, hands (SE3), swing feet (SE3), joint posture (per-joint targets).
//
// What ProxQP solves: the same problem, with the equalities eliminated exactly first (same optimum,
// and the equalities hold to machine precision rather than to the solver's tolerance).
//   1. Floating-base rows: ddq_b = Tb y + t0b with y = [ddq_j ; f]; M_bb (the 6x6 composite
//      inertia at the base) is symmetric positive definite.
//   2. Contact rows  A y = b: y splits into nd = nc*m dependent components (the leg joints of each
//      active contact: a G1 leg has 6 DoF per 6-D foot, a Go2 leg 3 per point foot; the force of
//      each released contact) and nf free ones w; Gauss-Jordan on [Ad | Af | b] gives
//      y_dep = k0 - K w. The dependent components' bounds become inequality rows.
//   G1: 29 variables, no equalities, 73 inequalities + 29 bounds (instead of 47, 18, 61 + 47).
//   When Ad is ill-conditioned (a pivot below 1e-4 of the largest seen), the tick solves step 1's
//   problem with the contact rows as equalities instead. In practice that needs a G1 knee within
//   about 1e-3 rad of straight; the two agree there too (tests/wbc).
//   Either path makes at most two solves per tick: warm-started, then (on a failure) cold and
//   without the joint-limit acceleration bounds.
//
// Output (the motor-board command; the blend): tau_ff is the QP's joint torque; q and dq are the
// state integrated one tick with the QP's accelerations (q + dq dt + ddq dt^2/2, dq + ddq dt)
// with low gains kp/kd from the robot YAML, so the board's PD only adds the tick's planned motion
// and damping between ticks; the torque does the work.
//
// Model vs Data: everything is sized in the constructor (configuration time, may throw).
// enter()/update() are [tick]: no allocation, no exceptions, no I/O (tests/wbc count allocations).
// A failed solve holds the previous command and is counted; max_consecutive_failures in a row
// make update() return an error, which the loop latches as a controller fault.
#pragma once

#include <atomic>

#include <Eigen/Core>
#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/exchange.hpp"
#include "core/modes.hpp"
#include "core/robot_model.hpp"

namespace vertebra {

inline constexpr int kMaxContacts = kMaxFeet;
inline constexpr int kMaxHands = 2;

struct WbcGains {
  double kp = 0, kd = 0;
  std::array<double, 6> weight{};  // per axis: linear xyz, angular xyz (3-D tasks use the first 3)
};

// A world-fixed, axis-aligned box the protected points stay out of (a tabletop down to the floor,
// a shelf, a fixture), and a protected point: a frame's origin moved by `offset` (frame axes), with
// a radius (the link's extent around it).
struct KeepOutBox {
  std::array<double, 3> center{}, half{};
};
struct KeepOutPoint {
  std::string frame;
  std::array<double, 3> offset{};
  double radius_m = 0.0;
};
inline constexpr int kMaxKeepOutRows = 64;  // points x boxes

struct WbcConfig {
  // Contacts (feet), in the robot's foot order.
  bool flat_feet = true;
  std::vector<std::string> foot_frames;
  std::vector<double> sole_offset_m{0, 0, 0};  // contact point in the foot frame
  double friction = 0.7;
  double sole_half_length_m = 0.08, sole_half_width_m = 0.03;  // flat feet
  double min_normal_force_n = 5.0, max_normal_force_n = 1500.0;
  double contact_ramp_s = 0.1;
  // Tasks.
  std::string base_frame, torso_frame;  // torso_frame empty: no torso task
  std::vector<std::string> hand_frames;
  WbcGains com, base, torso, hands, swing_foot, posture;
  // While a hand's target is set, the posture weight of its arm's joints (the hand frame's chain
  // below the torso frame, or the base frame without one) is scaled by this. The posture task's
  // joint damping (kd dq per joint, in rad/s^2) otherwise outweighs a hand task in m/s^2: a G1
  // hand lifted from its hanging pose crawled up at 6 cm/s with weight 1 (1: unchanged).
  double hand_posture_scale = 1.0;
  // Hands that aim (empty: off; else one frame per hand, its shoulder): a hand's orientation
  // reference is held relative to the arm's direction, the shoulder frame to the hand's target. It
  // applies at the direction it was set at (enter(): the hand where it is; a target's orientation:
  // its position); a target at another direction (a position-only target, a streamed chunk) gets it
  // turned by the smallest rotation between the two directions. A hand held fingers-down beside the
  // body then points them forward when raised in front, instead of driving the wrist to its limits.
  std::vector<std::string> hand_aim_frames;
  double reg_ddq = 1e-6, reg_force = 1e-5;
  // The PD references of pose tasks see at most this error: a far target is approached at a
  // bounded acceleration instead of a jerk that tips the robot.
  double max_position_error_m = 0.05, max_rotation_error_rad = 0.3;
  // Balance guard (wbc.cpp, balance_guard): the horizontal centre-of-mass weight grows from x1 at
  // start_m inside the support area's edge (capture point) to x scale at full_m; scale <= 1: off.
  double balance_guard_start_m = 0.04, balance_guard_full_m = 0.015, balance_guard_scale = 10.0;
  // Joint-limit acceleration bounds look this far ahead.
  double limit_horizon_s = 0.05;
  // Keep-out volumes (header comment): every point stays keep_out_margin_m clear of every box.
  std::vector<KeepOutBox> keep_out;
  std::vector<KeepOutPoint> keep_out_points;
  double keep_out_margin_m = 0.02;
  double keep_out_kp = 400.0, keep_out_kd = 40.0;  // the barrier's gains (critically damped: kd = 2 sqrt(kp))
  double keep_out_activation_m = 0.15;             // a pair's row is idle while its clearance is larger
  // Model and output.
  std::vector<double> armature;        // motor order (reflected rotor inertia)
  std::vector<double> out_kp, out_kd;  // motor order
  double control_rate_hz = 500.0;
  int max_consecutive_failures = 10;
  double eps_abs = 1e-6;  // absolute tolerance (N, N·m, rad/s²)
  // Outer iterations of the cold retry (the tick's budget caps it further). A feasible tick needs
  // 1-2 inner iterations (tens on aggressive random states, tests/wbc).
  int max_iter = 50;
  // The tick's solver budget, a hard cap on ProxQP's inner iterations (the unit of its work, as it
  // counts them) over every solve of the tick together: tick_iterations <= the budget. The warm
  // solve gets half of it, over at most warm_max_iter outer iterations; the cold retry (run only
  // when at least 5 are left) gets the rest, over outer iterations of up to inner_max_iter + 1
  // inner ones each (solve_cap in qp_solver.hpp). A tick that ends without a solution this way
  // holds the previous command and is counted (WbcStatus::budget_exhausted) like any failed solve
  // (max_consecutive_failures in a row latch a fault). What a tick that spends its whole budget
  // costs in time: `vertebra bench wbc` (worst_tick).
  int tick_iteration_budget = 150;
  int inner_max_iter = 10;  // ProxQP's max_iter_in: inner iterations of one outer iteration
  int warm_max_iter = 10;  // outer iterations of the warm solve (max_iter: of the cold retry)
  // ProxQP dense backend: 0 automatic, 1 primal-dual LDLT (full KKT), 2 primal LDLT (n x n system;
  // cheaper when constraints outnumber variables, as here).
  int qp_backend = 0;
  // Eliminate the contact rows before the solver (exact; see the header comment). Off: every
  // tick solves the problem with the contact rows as equalities (the fallback path).
  bool eliminate_contacts = true;
};

// Targets written from Python (whole value, latest wins). A field is used when its *_set flag is
// true; otherwise the controller keeps what it captured on entry.
struct WbcTargets {
  uint64_t seq = 0;
  bool com_set = false;
  std::array<double, 3> com{};
  // Feed-forward with the centre-of-mass target (a trajectory: its velocity and acceleration, world;
  // zeros: a set point): a_ref = com_acc + kp (com - c) + kd (com_vel - c').
  std::array<double, 3> com_vel{}, com_acc{};
  // The horizontal centre-of-mass weight times this (> 0; else 1). A walking pattern's CoM
  // acceleration is the balance: at the configured weight the posture task's pull on the legs held
  // it back by 0.4 m/s^2 (a G1 shifting onto one foot fell towards the other).
  double com_weight_scale = 1.0;
  bool base_set = false;
  std::array<double, 3> base_pos{};
  std::array<double, 4> base_quat{1, 0, 0, 0};  // w x y z
  bool torso_set = false;
  std::array<double, 4> torso_quat{1, 0, 0, 0};
  std::array<bool, kMaxHands> hand_set{};
  std::array<std::array<double, 3>, kMaxHands> hand_pos{};
  std::array<std::array<double, 4>, kMaxHands> hand_quat{};
  std::array<bool, kMaxHands> hand_position_only{};  // hand_quat ignored: the orientation reference stays
  std::array<bool, kMaxContacts> contact_active{true, true, true, true};
  std::array<bool, kMaxContacts> foot_set{};
  std::array<std::array<double, 3>, kMaxContacts> foot_pos{};
  std::array<std::array<double, 4>, kMaxContacts> foot_quat{};
  // Feed-forward with a swing foot's target: linear then angular velocity and acceleration (world).
  std::array<std::array<double, 6>, kMaxContacts> foot_vel{}, foot_acc{};
  std::array<bool, kMaxJoints> posture_set{};
  JointArray posture{};
};

// Published after every update.
struct WbcStatus {
  uint64_t solves = 0, failures = 0, cold_restarts = 0, relaxed_solves = 0;
  uint64_t eliminated_solves = 0;  // solved with the contact rows eliminated (the fast path)
  int32_t consecutive_failures = 0;
  int32_t last_iterations = 0;        // of the tick's last solve
  int32_t tick_iterations = 0;        // every solve of the last tick together (<= tick_iteration_budget)
  int32_t tick_outer_iterations = 0;  // ProxQP outer iterations of the last tick's solves
  int32_t max_tick_iterations = 0;    // the most of any tick since the controller was made
  uint64_t budget_exhausted = 0;      // ticks whose last solve ran out of its share of the budget unsolved
  int32_t last_qp_status = 0;  // proxsuite QPSolverOutput
  double last_dual_residual = 0;
  double last_solve_us = 0, last_model_us = 0;
  std::array<double, 3> com{}, com_err{};
  double balance_guard = 1.0;  // the factor on the horizontal centre-of-mass weight this tick
  double base_pos_err = 0, base_rot_err = 0, torso_rot_err = 0;
  std::array<double, kMaxHands> hand_pos_err{}, hand_rot_err{};
  std::array<double, kMaxHands> hand_active{};
  std::array<std::array<double, 6>, kMaxContacts> contact_wrench{};  // sole frame (flat) / world (point)
  std::array<double, kMaxContacts> contact_weight{};
  double max_constraint_violation = 0;
  // Keep-out: the smallest clearance (m, beyond the radius, before the margin; negative: inside a
  // box) of any protected point this tick, and how many pairs' rows were active.
  double keep_out_clearance_m = 0;
  int32_t keep_out_active = 0;
};

// Where the robot is this tick, as the controller's kinematics pass saw it (world frame): what a
// planner run inside the tick (WbcPlanner) plans from.
struct WbcKinematics {
  std::array<double, 3> com{}, com_vel{};
  int32_t n_feet = 0;
  std::array<std::array<double, 3>, kMaxContacts> foot_pos{};  // the contact frames' origins
  std::array<double, kMaxContacts> foot_yaw{};                 // their heading (rad)
  std::array<double, 3> base_pos{};
};

// A pattern generator run inside the controller's tick (a walking controller): after the state's
// kinematics and before the tasks, it reads where the robot is and sets this tick's centre of mass,
// base and torso orientation, contacts and swing feet (the hands and the posture stay the ones
// published from Python). [tick]: no allocation, no exceptions; false fails the tick.
class WbcPlanner {
 public:
  virtual ~WbcPlanner() = default;
  virtual bool plan(const WbcKinematics& k, double dt, WbcTargets& out) = 0;
};

// Registered as the controller mode "wbc" (runtime: vertebra.runtime.wbc). Its target sink
// (streamed task targets, by name): com.x, com.y, com.z (world, m), then <hand frame>.x/.y/.z per
// hand in config order (world, m). A streamed position replaces that task's position target (a
// hand's orientation target is kept); a stream must carry all three axes of each target it names.
class WholeBodyController final : public ControllerMode, public TargetSink {
 public:
  WholeBodyController(const RobotModel& robot, const WbcConfig& cfg);
  ~WholeBodyController() override;

  Status enter(const RobotParams& p, const State& s, const Command& last, const Targets& t,
               const ModeRequest& req) override;
  Status update(const RobotParams& p, const State& s, const Targets& t, double dt, Command& out) override;

  // Python side (any thread; never blocks the tick).
  void publish_targets(const WbcTargets& t);
  // [tick] update() with a planner run inside the tick (WbcPlanner; nullptr: none): what a mode that
  // wraps this controller (the walking controller) calls from its own update().
  Status tick(const RobotParams& p, const State& s, double dt, Command& out, WbcPlanner* planner);
  uint64_t input_seq(const Targets&) const override {
    return published_.load(std::memory_order_acquire) + streamed_;
  }
  TargetSink* target_sink() override { return this; }
  bool contact_plan(std::array<double, kMaxFeet>& weight) const override;
  std::vector<std::string> target_names() const override;
  std::string check_channels(const int* channels, int n) const override;
  // [tick] One streamed sample (see the class comment); a target with a non-finite axis is ignored.
  void stream(const int* channels, const double* values, int n) override;
  void status(WbcStatus& out) const { status_.load(out); }
  bool diagnostics(ControllerDiagnostics& out) const override;  // [tick] the last update's

  // Configuration-time/test access.
  int n_variables() const;
  int n_eq() const;
  int n_in() const;
  // What ProxQP solves on the fast path (base and contact rows eliminated; header comment).
  int solver_variables() const;
  int solver_inequalities() const;
  int n_contacts() const { return nc_; }
  int contact_dim() const { return m_; }
  const WbcConfig& config() const { return cfg_; }
  // The last QP solution: accelerations (model order, nv), contact forces, joint torques (motor order).
  Eigen::VectorXd last_ddq() const;
  void copy_last_ddq(double* out) const;  // nv values, no allocation
  Eigen::VectorXd last_forces() const;
  Eigen::VectorXd last_tau() const;
  // Force the next n solves to fail (tests of the failure path).
  void inject_failures(int n) { inject_failures_ = n; }
  // Worst-case benchmarks and tests: an unreachable solver tolerance (0), so that every tick spends
  // its whole iteration budget (and fails, holding the previous command); off restores eps_abs.
  void spend_whole_budget(bool on);
  // Run update() on a state without a loop (benchmarks/tests); returns the status of update().
  Status step(const RobotParams& p, const State& s, Command& out);

  struct Impl;

 private:
  Status fail_tick(Command& out);
  WbcConfig cfg_;
  int nc_ = 0, m_ = 6;
  std::unique_ptr<Impl> impl_;
  TripleBuffer<WbcTargets> targets_in_;
  SeqLock<WbcStatus> status_;
  std::mutex publish_mutex_;
  int inject_failures_ = 0;
  std::atomic<uint64_t> published_{0};
  uint64_t streamed_ = 0;  // tick-owned
};

}  // namespace vertebra
