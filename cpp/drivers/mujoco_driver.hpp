// MujocoDriver: the simulated robot. Loads an MJCF built by vertebra.drivers.sim_model (robot
// from its URDF, free base, ground, motors, IMU sensors, cameras) and emulates the robot's motor
// boards at simulator rate: every physics step applies
//     tau = clamp(kp (q* - q) + kd (dq* - dq) + tau_ff, -effort, +effort)
// from the latest (optionally delayed) command. One write() advances sim_rate/control_rate steps.
//
// The IMU: orientation and angular rate are the latest physics step's; the specific force is the
// mean over the control period's physics steps. MEMS IMUs low-pass filter the accelerometer before
// they decimate to their output rate (Bosch BMI088 data sheet, BST-BMI088-DS001, accelerometer
// data processing; BMI160 data sheet §2.4.1: the output is the average of the samples taken in the
// output period). The motor boards hold each command for the period, so the base's acceleration
// jumps at every command and drifts within the period; a single step's sample of it is biased by
// that drift (the bench's friction identification read +50% on the G1's waist), a mean is not.
// Angular rate is a velocity: continuous at the command edges, so its latest sample is unbiased.
//
// Also here: optional sensor noise (the model is described at SimOptions' noise fields) and
// command latency (both off by default), joint friction and effort limits changeable while the
// simulation runs, an optional motor thermal model (MotorThermal), and a virtual hoist —
// an elastic rope from an overhead anchor to the base, plus the harness's restoring torque,
// both scaled by the rope's load so a slack rope exerts nothing — that Python can lower and
// release while the loop runs (atomics; safe from any thread).
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/exchange.hpp"
#include "drivers/driver.hpp"

struct mjModel_;
struct mjData_;

namespace vertebra {

struct SimOptions {
  std::string mjcf_path;
  double sim_rate_hz = 2000.0;
  // Initial base pose (world), quaternion w x y z.
  std::vector<double> base_pos{0, 0, 1};
  std::vector<double> base_quat{1, 0, 0, 0};
  std::vector<double> initial_joint_q;  // motor order; empty: zeros
  // The robot's feet (bodies, robot foot order, at most 4): read() reports each one's contact
  // normal force against the world in State.foot_force (what the Go2's foot sensors measure).
  std::vector<std::string> foot_bodies;
  // Sensor noise, applied by read() to what the robot's own sensors would report (every term 0 =
  // off, each one independent; the base ground truth fields of State stay exact):
  //   joint encoder   q  = resolution * round((q_true + noise_q_rad * n) / resolution)
  //                   (no rounding when noise_q_resolution_rad is 0)
  //   joint velocity  dq = dq_true + noise_dq_rad_s * n
  //   gyroscope       w  = w_true + b_gyro + noise_gyro_rad_s * n
  //   accelerometer   f  = f_true + b_acc + noise_acc_m_s2 * n
  //   orientation     quat = quat_true * quat(delta), a constant attitude error: the levelling
  //                   error a gravity-referenced attitude filter settles to when its accelerometer
  //                   reads b_acc too much (IMU upright: delta = (b_acc_y, -b_acc_x, 0) / g); yaw
  //                   and the filter's own jitter are left exact.
  // n: independent standard normal draws, one per sample and axis (white noise at the control
  // rate). b_gyro, b_acc: constant per run, each axis drawn once at configure time from a normal
  // of standard deviation noise_gyro_bias_rad_s / noise_acc_bias_m_s2. Everything comes from
  // noise_seed: two runs with the same options and seed read the same numbers bit for bit (the
  // biases from their own stream, so a bias does not change with which white terms are on).
  double noise_q_rad = 0;             // rad, white noise added before the encoder's rounding
  double noise_q_resolution_rad = 0;  // rad, one encoder count at the joint (output) side
  double noise_dq_rad_s = 0;          // rad/s, white velocity noise per sample
  double noise_gyro_rad_s = 0;        // rad/s, gyroscope white noise per sample
  double noise_gyro_bias_rad_s = 0;   // rad/s, std of the per-run gyroscope bias
  double noise_acc_m_s2 = 0;          // m/s², accelerometer white noise per sample
  double noise_acc_bias_m_s2 = 0;     // m/s², std of the per-run accelerometer bias
  uint64_t noise_seed = 1;
  double command_latency_s = 0;
  // Motor and power telemetry the simulator reports (no thermal or battery model: constant
  // healthy values; the fault injector overrides them). battery_v 0: not reported.
  double motor_temp_c = 35.0;
  double battery_v = 0.0;
  // Hoist (engaged at start when hoist_engaged).
  bool hoist_engaged = true;
  double hoist_anchor_z_m = 1.5;
  double hoist_stiffness_n_m = 4000;
  double hoist_damping_n_s_m = 400;
  double hoist_lateral_stiffness_n_m = 500;
  double hoist_rot_stiffness_nm_rad = 200;
  double hoist_rot_damping_nms_rad = 20;
};

// Viscous damping and dry friction of one joint (MuJoCo dof_damping, dof_frictionloss).
struct JointFriction {
  double damping_nm_s_rad = 0.0;
  double frictionloss_nm = 0.0;
};

// First-order motor thermal model, off while either coefficient is 0 (then every motor reports
// SimOptions::motor_temp_c, constant). On, each motor's temperature T follows, at every physics
// step, with tau the torque the motor applies (after saturation):
//     dT/dt = heat_scale * heating_c_per_nm2_s * tau^2 - (T - motor_temp_c) / time_constant_s
// so a constant torque settles at T = motor_temp_c + heat_scale * heating * time_constant * tau^2
// (heat_scale per joint, 1 by default: set_heat_scale). Turning it on starts every motor at
// motor_temp_c (forward Euler at the physics step; the step is far below any time constant).
struct MotorThermal {
  double heating_c_per_nm2_s = 0.0;  // °C/s per (N·m)^2 of motor torque
  double time_constant_s = 0.0;      // s, cooling towards motor_temp_c
  bool enabled() const { return heating_c_per_nm2_s > 0.0 && time_constant_s > 0.0; }
};

// Full MuJoCo configuration published after each write() (for cameras and the viewer).
struct SimPose {
  int32_t nq = 0;
  double time = 0;
  std::array<double, 256> qpos{};
  // The floating base's truth: position (world), quaternion w x y z, linear velocity (world),
  // angular velocity (base frame).
  std::array<double, 3> base_pos{}, base_lin_vel{}, base_ang_vel{};
  std::array<double, 4> base_quat{1, 0, 0, 0};
};

class MujocoDriver final : public Driver {
 public:
  explicit MujocoDriver(SimOptions opt);
  ~MujocoDriver() override;
  Status read(State& out) override;
  Status write(const Command& cmd) override;
  int64_t now_ns() const override;
  bool simulated() const override { return true; }
  std::string name() const override { return "mujoco"; }

  // Hoist control (any thread).
  void hoist_lower_to(double anchor_z_m, double speed_m_s);
  void hoist_release() { hoist_engaged_.store(false, std::memory_order_release); }
  bool hoist_engaged() const { return hoist_engaged_.load(std::memory_order_acquire); }
  double hoist_anchor_z() const { return hoist_z_.load(std::memory_order_relaxed); }
  double hoist_tension_n() const { return hoist_tension_.load(std::memory_order_relaxed); }

  // External push on the base's centre of mass (world frame, N) for duration_s of sim time.
  void push(double fx, double fy, double fz, double duration_s);
  bool pushing() const { return push_left_s_.load(std::memory_order_relaxed) > 0; }

  // Joint parameters while the simulation runs (any thread, after configure(); `joint` in motor
  // order). A setter stores the value (atomics) and write() applies it before its next physics
  // step; the getters answer the value last set, the nominal_* ones the model's as loaded (the
  // robot config's sim.joint_dynamics, and the actuator force range from the URDF's effort limit).
  // Configuration-time calls: a bad joint or value throws std::invalid_argument.
  void set_joint_friction(int joint, const JointFriction& f);  // both >= 0
  JointFriction joint_friction(int joint) const;
  JointFriction nominal_joint_friction(int joint) const;
  // The motor's torque saturation (the clamp of the board law), > 0 N·m.
  void set_effort_limit(int joint, double limit_nm);
  double effort_limit(int joint) const;
  double nominal_effort_limit(int joint) const;
  // The thermal model (MotorThermal; coefficients >= 0, both > 0 turn it on) and the per-joint
  // multiplier of its heating (>= 0).
  void set_motor_thermal(const MotorThermal& t);
  MotorThermal motor_thermal() const;
  void set_heat_scale(int joint, double scale);
  double heat_scale(int joint) const;

  void pose(SimPose& out) const { pose_.load(out); }
  // The per-run IMU biases drawn at configure time (zeros before, or with the bias terms off).
  const std::array<double, 3>& gyro_bias() const { return gyro_bias_; }
  const std::array<double, 3>& acc_bias() const { return acc_bias_; }
  double sim_timestep() const;
  double total_mass() const;
  int steps_per_tick() const { return steps_per_tick_; }

 protected:
  void on_configure(const DriverInit& init) override;
  void on_deactivate() override;  // the motors get a damping command (DriverInit::damping_kd)
  void on_cleanup() override;     // frees the model and data

 private:
  void init_impl(const DriverInit& init);
  JointArray damping_kd_{};
  void apply_motors(const Command& cmd);
  void apply_hoist();
  void draw_noise_biases();
  int checked_joint(int joint, const char* what) const;
  void apply_joint_params();        // on write(), when a setter ran: no allocation
  void heat_motors(double dt);      // per physics step, thermal model on
  void add_noise(State& out);  // per tick: no allocation, fixed-size engine

  SimOptions opt_;
  mjModel_* m_ = nullptr;
  mjData_* d_ = nullptr;
  int n_ = 0;
  int steps_per_tick_ = 1;
  int base_body_ = -1;
  int base_qadr_ = 0, base_dadr_ = 0;
  std::vector<int> qadr_, dadr_, act_;
  std::vector<double> effort_;
  // Joint parameters as set (any thread) and the model's as loaded; write() applies the set ones.
  std::vector<double> damping0_, frictionloss0_, effort0_;
  std::array<std::atomic<double>, kMaxJoints> damping_set_, frictionloss_set_, effort_set_, heat_scale_set_;
  std::atomic<double> heating_set_{0.0}, time_constant_set_{0.0};
  std::atomic<bool> params_dirty_{false};
  MotorThermal thermal_{};   // in force (the stepping thread)
  JointArray heat_scale_{};  // in force
  JointArray temp_c_{};      // motor temperatures, thermal model on
  int s_quat_ = -1, s_gyro_ = -1, s_acc_ = -1;
  // The accelerometer as an IMU reports it: the mean over the control period (see read()).
  std::array<double, 3> acc_period_{};
  bool acc_period_valid_ = false;
  std::vector<int> foot_body_;  // body id per foot
  uint64_t seq_ = 0;
  double mass_ = 0;

  // latency ring (sim steps), preallocated in init()
  std::vector<Command> ring_;
  size_t ring_head_ = 0;
  Command current_{};

  std::mt19937_64 rng_;  // white noise (fixed-size state; seeded with noise_seed)
  std::normal_distribution<double> normal_{0.0, 1.0};
  bool noise_on_ = false;
  bool attitude_error_on_ = false;
  std::array<double, 3> gyro_bias_{}, acc_bias_{};
  std::array<double, 4> attitude_error_{1, 0, 0, 0};  // w x y z, IMU frame

  std::atomic<bool> hoist_engaged_{true};
  std::atomic<double> hoist_z_{1.5}, hoist_target_z_{1.5}, hoist_speed_{0.0}, hoist_tension_{0.0};
  double hoist_x_ = 0, hoist_y_ = 0;
  std::atomic<double> push_x_{0}, push_y_{0}, push_z_{0}, push_left_s_{0};

  SeqLock<SimPose> pose_;
  SimPose pose_buf_{};
};

}  // namespace vertebra
