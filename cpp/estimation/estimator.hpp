// Floating-base state estimator: what a real robot has instead of the simulator's base truth.
//
// A linear Kalman filter over the base position p and velocity v (world) and the positions of
// the feet' contact points c_i (world): the structure of MIT's Cheetah software
// (PositionVelocityEstimator; Bledt et al., "MIT Cheetah 3", IROS 2018) and legged_control
// (LinearKalmanFilter). Orientation and angular rate are the IMU's, moved to the base frame
// through the model's fixed IMU mounting.
//
//   state       x = [p (3), v (3), c_1 (3), ..., c_nf (3)]              (nf feet: 2 G1, 4 Go2)
//   prediction  p += v dt + a dt^2/2,  v += a dt,  c_i constant          a = R_imu f_imu + g
//   measurement per foot: c_i - p = R r_i(q)        (leg kinematics, world-aligned)
//                         v     = -(R (J_i dq) + w x r_i)   (a stance foot does not move)
//                         c_i,z = 0                (a stance foot is on the ground plane)
//   A swing foot's rows get a huge variance (its position follows the leg, nothing else moves);
//   with no foot in contact at all (hoisted, tipped over) a weak zero-velocity measurement keeps
//   the velocity from drifting on accelerometer noise.
//
// Contact: a foot is in stance when its estimated normal force passes a threshold (hysteresis):
//   foot_force:   the robot's foot sensors (Go2 LowState_.foot_force; the simulator's contact force)
//   joint_torque: a static ground-reaction estimate from the leg's joint torques,
//                 J_leg^T f = g_leg(q) - tau_leg  (the leg rows of M ddq + h = tau + J^T f at rest;
//                 the G1's lowstate has no foot force)
// and, where the active controller publishes a contact plan (the whole-body controller's
// contact ramp), a foot the plan has released is in swing whatever its force.
//
// Model vs Data: sized in the constructor (configuration time, may throw with expected/found).
// update() is [tick]: no allocation (fixed-capacity Eigen storage), no exceptions, no I/O.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/robot_model.hpp"
#include "core/types.hpp"

namespace vertebra {

enum class ContactSource : int32_t { kJointTorque = 0, kFootForce = 1 };

struct EstimatorConfig {
  std::string imu_frame;                       // the model frame the IMU is mounted on
  std::vector<std::string> foot_frames;        // robot foot order
  std::vector<double> sole_offset_m{0, 0, 0};  // contact point in each foot frame
  double foot_radius_m = 0.0;                  // point feet: the ground is this far below the point (world z)
  bool flat_feet = true;                       // true: a 6-D wrench per foot (G1); false: a force (Go2)
  ContactSource contact_source = ContactSource::kJointTorque;
  double contact_on_n = 40.0, contact_off_n = 20.0;  // stance above on, swing below off (N or sensor units)
  // Standard deviations.
  double accel_noise_m_s2 = 0.5;        // process: IMU acceleration
  double stance_foot_noise_m_s = 0.002; // process: a stance foot's slip (per sqrt s)
  double swing_foot_noise_m_s = 10.0;   // process: a swing foot moves freely
  double kin_position_noise_m = 0.003;  // measurement: leg kinematics
  double kin_velocity_noise_m_s = 0.08;
  double foot_height_noise_m = 0.003;
  double no_contact_velocity_noise_m_s = 0.1;
  double control_rate_hz = 500.0;
  // World frame origin: the base's horizontal position when the estimator starts (the robot's
  // start position; 0, 0 on a real robot). Height comes from the legs.
  std::array<double, 2> initial_xy_m{0, 0};
};

struct Estimate {
  bool valid = false;
  uint64_t updates = 0;
  std::array<double, 3> base_pos{};             // m, world
  std::array<double, 4> base_quat{1, 0, 0, 0};  // w x y z
  std::array<double, 3> base_lin_vel{};         // m/s, world
  std::array<double, 3> base_ang_vel{};         // rad/s, base frame
  int32_t n_feet = 0;
  std::array<bool, kMaxFeet> contact{};
  std::array<double, kMaxFeet> normal_force{};  // the contact source's value (N or sensor units)
  std::array<std::array<double, 3>, kMaxFeet> foot_pos{};  // m, world (contact point)
};

// The contact plan of the active controller (ControllerMode::contact_plan), per foot: 0..1.
struct ContactPlan {
  bool valid = false;
  std::array<double, kMaxFeet> weight{};
};

class StateEstimator {
 public:
  StateEstimator(const RobotModel& robot, const EstimatorConfig& cfg);
  ~StateEstimator();
  StateEstimator(const StateEstimator&) = delete;
  StateEstimator& operator=(const StateEstimator&) = delete;

  // [tick] One step on a new driver state; the first call (and the first after reset())
  // initialises the filter. Returns kNonFinite (and leaves the estimate invalid) on bad input.
  Status update(const State& s, const ContactPlan& plan, Estimate& out);
  // [tick] Restart from the next state (a new run, a robot put down somewhere else).
  void reset() { initialised_ = false; }
  const EstimatorConfig& config() const { return cfg_; }
  int n_feet() const { return nf_; }
  // Cost of the last update (µs), for `vertebra bench wbc`.
  double last_update_us() const { return last_us_.load(std::memory_order_relaxed); }

  struct Impl;

 private:
  EstimatorConfig cfg_;
  int nf_ = 0;
  bool initialised_ = false;
  std::unique_ptr<Impl> impl_;
  std::atomic<double> last_us_{0};
};

}  // namespace vertebra
