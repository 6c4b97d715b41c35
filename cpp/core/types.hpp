// Vertebra core value types shared by every part of the real-time path.
//
// Everything here is plain data with a fixed capacity (kMaxJoints) so that a State, a Command or
// a Targets value can be copied on the tick without touching the heap. The number of joints in
// use is carried alongside (`n`), joints are in the robot's motor-index order (the order of
// `joints:` in configs/robots/<robot>.yaml), never in the kinematic model's order.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace vertebra {

inline constexpr int kMaxJoints = 48;
inline constexpr int kMaxFeet = 4;
using JointArray = std::array<double, kMaxJoints>;

// Result of anything called on the tick. Configuration-time code throws instead.
enum class Status : int32_t {
  kOk = 0,
  kNoNewData = 1,       // a read found nothing newer than last time (not an error by itself)
  kDriverError = 2,     // the bus/simulator refused or failed
  kNonFinite = 3,       // a NaN/Inf was found where a number was needed
  kInvalidRequest = 4,  // a request from Python failed validation
  kNotReady = 5,        // called before init()/enter()
  kSolverFailed = 6,    // an optimisation failed too many times in a row
};

const char* status_name(Status s);

// What the driver reports each tick. Joint fields are in motor order.
struct State {
  int32_t n = 0;                 // joints in use
  uint64_t seq = 0;              // driver's sample counter: advances when the sample is new
  int64_t stamp_ns = 0;          // driver clock (sim time for the simulator)
  JointArray q{};                // rad
  JointArray dq{};               // rad/s
  JointArray tau{};              // N·m, measured/estimated joint torque
  std::array<double, 4> imu_quat{1, 0, 0, 0};  // w, x, y, z: IMU orientation in world
  std::array<double, 3> imu_gyro{};            // rad/s, IMU frame
  std::array<double, 3> imu_acc{};             // m/s², IMU frame (specific force)
  // Ground truth of the floating base where the driver knows it (simulator); zeros otherwise.
  bool has_base_truth = false;
  std::array<double, 3> base_pos{};            // m, world
  std::array<double, 4> base_quat{1, 0, 0, 0}; // w, x, y, z
  std::array<double, 3> base_lin_vel{};        // m/s, world
  std::array<double, 3> base_ang_vel{};        // rad/s, base frame
  // The base fields above hold the state estimator's estimate, not truth (the loop sets this in
  // the state its controller and monitors see when it runs an estimator; drivers never do).
  bool base_estimated = false;
  // Motor health where the bus reports it (Unitree LowState MotorState.temperature / motorstate,
  // BmsState / power_v); the has_* flags say whether the fields are meaningful.
  bool has_motor_temp = false;
  JointArray motor_temp_c{};                   // °C (winding/board, as the motor reports it)
  std::array<uint32_t, kMaxJoints> motor_error{};  // driver-specific error bits; 0 = healthy
  bool has_battery = false;
  double battery_v = 0.0;                      // V, pack voltage
  // The robot's own e-stop input (the Unitree wireless remote's configured button combination):
  // the supervisor e-stops in the tick it sees it, as for the operator's e-stop.
  bool remote_estop = false;
  // Foot contact forces where the robot measures them (Go2 LowState_.foot_force, the simulator's
  // contact normal force per foot), in the robot's foot order.
  bool has_foot_force = false;
  std::array<double, 4> foot_force{};          // N (simulator) or the sensor's raw units (Go2)
  // Another participant publishes the robot's command topic while this driver commands it (DDS
  // drivers): the supervisor raises lowcmd_conflict.
  bool lowcmd_conflict = false;
};

// Motor-board command per joint: tau = kp (q - q_meas) + kd (dq - dq_meas) + tau_ff.
struct Command {
  int32_t n = 0;
  JointArray q{};
  JointArray dq{};
  JointArray kp{};
  JointArray kd{};
  JointArray tau_ff{};
};

// Joint-space targets written by Python for the joint-target PD mode.
struct Targets {
  int32_t n = 0;
  uint64_t seq = 0;  // 0 = never written
  JointArray q{};
  JointArray dq{};
  JointArray kp{};
  JointArray kd{};
  JointArray tau_ff{};
};

inline bool all_finite(const JointArray& a, int n) {
  for (int i = 0; i < n; ++i)
    if (!std::isfinite(a[i])) return false;
  return true;
}

}  // namespace vertebra
