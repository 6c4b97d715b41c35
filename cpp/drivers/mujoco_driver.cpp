#include "drivers/mujoco_driver.hpp"

#include <mujoco/mujoco.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace vertebra {

MujocoDriver::MujocoDriver(SimOptions opt) : opt_(std::move(opt)), rng_(opt_.noise_seed) {}

MujocoDriver::~MujocoDriver() {
  if (d_) mj_deleteData(d_);
  if (m_) mj_deleteModel(m_);
}

static int sensor_or_throw(const mjModel* m, const char* name, const std::string& path) {
  const int id = mj_name2id(m, mjOBJ_SENSOR, name);
  if (id < 0)
    throw std::invalid_argument(std::string("MujocoDriver: sensor '") + name + "' missing in " + path +
                                " (build the MJCF with vertebra.drivers.sim_model)");
  return m->sensor_adr[id];
}

void MujocoDriver::on_deactivate() {
  // Hand back damped: every entry of the latency ring (what the boards will see next) becomes a
  // damping command at the current position, so nothing stiff is left queued.
  Command c;
  c.n = n_;
  for (int i = 0; i < n_; ++i) {
    c.q[i] = d_ ? d_->qpos[qadr_[i]] : 0.0;
    c.kd[i] = damping_kd_[i];
  }
  for (auto& r : ring_) r = c;
  current_ = c;
}

void MujocoDriver::on_cleanup() {
  if (d_) mj_deleteData(d_);
  if (m_) mj_deleteModel(m_);
  d_ = nullptr;
  m_ = nullptr;
  qadr_.clear();
  dadr_.clear();
  act_.clear();
  effort_.clear();
  damping0_.clear();
  frictionloss0_.clear();
  effort0_.clear();
  ring_.clear();
}

void MujocoDriver::on_configure(const DriverInit& init) {
  if (m_ || d_) throw std::logic_error("MujocoDriver: already configured; make a new driver instead");
  if (!init.damping_kd.empty() && init.damping_kd.size() != init.joint_names.size())
    throw std::invalid_argument("MujocoDriver: damping_kd needs " + std::to_string(init.joint_names.size()) +
                                " values, found " + std::to_string(init.damping_kd.size()));
  for (size_t i = 0; i < init.damping_kd.size() && i < static_cast<size_t>(kMaxJoints); ++i)
    damping_kd_[i] = init.damping_kd[i];
  try {
    init_impl(init);
  } catch (...) {
    // Leave the driver unusable but safe: read()/write() answer kNotReady.
    if (d_) mj_deleteData(d_);
    if (m_) mj_deleteModel(m_);
    d_ = nullptr;
    m_ = nullptr;
    throw;
  }
}

void MujocoDriver::init_impl(const DriverInit& init) {
  char err[1024] = {0};
  m_ = mj_loadXML(opt_.mjcf_path.c_str(), nullptr, err, sizeof(err));
  if (!m_) throw std::invalid_argument("MujocoDriver: cannot load MJCF '" + opt_.mjcf_path + "': " + err);
  if (!(opt_.sim_rate_hz > 0) || !(init.control_rate_hz > 0))
    throw std::invalid_argument("MujocoDriver: sim_rate_hz and control_rate_hz must be > 0");
  const double ratio = opt_.sim_rate_hz / init.control_rate_hz;
  steps_per_tick_ = static_cast<int>(std::lround(ratio));
  if (steps_per_tick_ < 1 || std::abs(ratio - steps_per_tick_) > 1e-9)
    throw std::invalid_argument("MujocoDriver: sim_rate_hz (" + std::to_string(opt_.sim_rate_hz) +
                                ") must be an integer multiple of control_rate_hz (" +
                                std::to_string(init.control_rate_hz) + ")");
  m_->opt.timestep = 1.0 / opt_.sim_rate_hz;
  // A diverging simulation must surface as a driver error, not silently restart at t = 0.
  m_->opt.disableflags |= mjDSBL_AUTORESET;
  d_ = mj_makeData(m_);

  // The floating base: the (single) free joint.
  for (int j = 0; j < m_->njnt; ++j)
    if (m_->jnt_type[j] == mjJNT_FREE) {
      base_body_ = m_->jnt_bodyid[j];
      base_qadr_ = m_->jnt_qposadr[j];
      base_dadr_ = m_->jnt_dofadr[j];
    }
  if (base_body_ < 0) throw std::invalid_argument("MujocoDriver: " + opt_.mjcf_path + " has no free joint for the base");

  n_ = static_cast<int>(init.joint_names.size());
  if (n_ <= 0 || n_ > kMaxJoints) throw std::invalid_argument("MujocoDriver: bad joint count");
  std::string valid;
  for (int j = 0; j < m_->njnt; ++j)
    if (m_->jnt_type[j] == mjJNT_HINGE) valid += std::string(valid.empty() ? "" : ", ") + mj_id2name(m_, mjOBJ_JOINT, j);
  for (const auto& name : init.joint_names) {
    const int j = mj_name2id(m_, mjOBJ_JOINT, name.c_str());
    if (j < 0) throw std::invalid_argument("MujocoDriver: joint '" + name + "' not in the MJCF; its joints are: " + valid);
    qadr_.push_back(m_->jnt_qposadr[j]);
    dadr_.push_back(m_->jnt_dofadr[j]);
    // effort limit from the joint's actuator force range (set by the builder from the URDF)
    double eff = 1e9;
    if (m_->jnt_actfrclimited[j]) eff = std::max(std::abs(m_->jnt_actfrcrange[2 * j]), std::abs(m_->jnt_actfrcrange[2 * j + 1]));
    effort_.push_back(eff);
  }
  // The joint parameters as loaded: what the setters start from and the nominal_* getters answer.
  for (int i = 0; i < n_; ++i) {
    damping0_.push_back(m_->dof_damping[dadr_[i]]);
    frictionloss0_.push_back(m_->dof_frictionloss[dadr_[i]]);
    effort0_.push_back(effort_[i]);
    damping_set_[i].store(damping0_[i]);
    frictionloss_set_[i].store(frictionloss0_[i]);
    effort_set_[i].store(effort_[i]);
    heat_scale_set_[i].store(1.0);
    heat_scale_[i] = 1.0;
    temp_c_[i] = opt_.motor_temp_c;
  }
  if (opt_.foot_bodies.size() > 4)
    throw std::invalid_argument("MujocoDriver: foot_bodies: found " + std::to_string(opt_.foot_bodies.size()) +
                                "; valid: at most 4");
  for (const auto& name : opt_.foot_bodies) {
    const int b = mj_name2id(m_, mjOBJ_BODY, name.c_str());
    if (b < 0) throw std::invalid_argument("MujocoDriver: foot body '" + name + "' is not a body of " + opt_.mjcf_path);
    foot_body_.push_back(b);
  }
  s_quat_ = sensor_or_throw(m_, "imu_quat", opt_.mjcf_path);
  s_gyro_ = sensor_or_throw(m_, "imu_gyro", opt_.mjcf_path);
  s_acc_ = sensor_or_throw(m_, "imu_acc", opt_.mjcf_path);
  if (m_->nq > static_cast<int>(pose_buf_.qpos.size()))
    throw std::invalid_argument("MujocoDriver: model has nq=" + std::to_string(m_->nq) + " > 256");

  mass_ = 0;
  for (int b = 1; b < m_->nbody; ++b) mass_ += m_->body_mass[b];

  // Initial state.
  if (opt_.base_pos.size() != 3 || opt_.base_quat.size() != 4)
    throw std::invalid_argument("MujocoDriver: base_pos needs 3 values and base_quat 4");
  for (int i = 0; i < 3; ++i) d_->qpos[base_qadr_ + i] = opt_.base_pos[i];
  for (int i = 0; i < 4; ++i) d_->qpos[base_qadr_ + 3 + i] = opt_.base_quat[i];
  if (!opt_.initial_joint_q.empty()) {
    if (static_cast<int>(opt_.initial_joint_q.size()) != n_)
      throw std::invalid_argument("MujocoDriver: initial_joint_q has " + std::to_string(opt_.initial_joint_q.size()) +
                                  " values; the robot has " + std::to_string(n_) + " joints");
    for (int i = 0; i < n_; ++i) d_->qpos[qadr_[i]] = opt_.initial_joint_q[i];
  }
  mj_forward(m_, d_);
  acc_period_valid_ = false;  // no period stepped yet: read() gives the initial state's sample
  hoist_x_ = d_->xipos[3 * base_body_];
  hoist_y_ = d_->xipos[3 * base_body_ + 1];
  hoist_z_.store(opt_.hoist_anchor_z_m);
  hoist_target_z_.store(opt_.hoist_anchor_z_m);
  hoist_engaged_.store(opt_.hoist_engaged);

  draw_noise_biases();

  if (opt_.command_latency_s < 0) throw std::invalid_argument("MujocoDriver: command_latency_s must be >= 0");
  const size_t delay_steps = static_cast<size_t>(std::lround(opt_.command_latency_s * opt_.sim_rate_hz));
  ring_.assign(delay_steps + 1, Command{});
  for (auto& c : ring_) c.n = n_;
  current_.n = n_;
  pose_buf_.nq = m_->nq;
}

// Configuration time: check the noise options, draw the per-run IMU biases and derive the
// attitude error they cause (the model is written down at SimOptions' noise fields).
void MujocoDriver::draw_noise_biases() {
  const struct {
    const char* name;
    double value;
  } terms[] = {{"noise_q_rad", opt_.noise_q_rad},
               {"noise_q_resolution_rad", opt_.noise_q_resolution_rad},
               {"noise_dq_rad_s", opt_.noise_dq_rad_s},
               {"noise_gyro_rad_s", opt_.noise_gyro_rad_s},
               {"noise_gyro_bias_rad_s", opt_.noise_gyro_bias_rad_s},
               {"noise_acc_m_s2", opt_.noise_acc_m_s2},
               {"noise_acc_bias_m_s2", opt_.noise_acc_bias_m_s2}};
  noise_on_ = false;
  for (const auto& t : terms) {
    if (!std::isfinite(t.value) || t.value < 0)
      throw std::invalid_argument(std::string("MujocoDriver: ") + t.name + " must be a finite number >= 0 (0: off), found " +
                                  std::to_string(t.value));
    noise_on_ = noise_on_ || t.value > 0;
  }
  // The biases come from their own engine, so that a seed's biases stay the same whichever
  // white-noise terms are on, and drawing them does not shift the white-noise sequence.
  std::mt19937_64 bias_rng(opt_.noise_seed ^ 0x9E3779B97F4A7C15ull);
  std::normal_distribution<double> unit(0.0, 1.0);
  for (int i = 0; i < 3; ++i) gyro_bias_[i] = opt_.noise_gyro_bias_rad_s * unit(bias_rng);
  for (int i = 0; i < 3; ++i) acc_bias_[i] = opt_.noise_acc_bias_m_s2 * unit(bias_rng);
  // Levelling error: a filter that aligns the IMU's z axis with the measured specific force
  // settles, with the IMU upright, where the true force seen through the error rotation matches
  // the biased reading: to first order f - delta x f = f + b with f = (0, 0, g), hence
  // delta = (b_y / g, -b_x / g, 0) in the IMU frame (rotation vector).
  attitude_error_ = {1, 0, 0, 0};
  attitude_error_on_ = false;
  const double g = std::sqrt(m_->opt.gravity[0] * m_->opt.gravity[0] + m_->opt.gravity[1] * m_->opt.gravity[1] +
                             m_->opt.gravity[2] * m_->opt.gravity[2]);
  if (g > 0) {
    const double dx = acc_bias_[1] / g, dy = -acc_bias_[0] / g;
    const double angle = std::hypot(dx, dy);
    if (angle > 0) {
      const double s = std::sin(0.5 * angle) / angle;
      attitude_error_ = {std::cos(0.5 * angle), s * dx, s * dy, 0.0};
      attitude_error_on_ = true;
    }
  }
}

// Per tick (from read()): no allocation, no I/O; draws only for the terms that are on.
void MujocoDriver::add_noise(State& out) {
  const double res = opt_.noise_q_resolution_rad;
  for (int i = 0; i < n_; ++i) {
    double q = out.q[i];
    if (opt_.noise_q_rad > 0) q += opt_.noise_q_rad * normal_(rng_);
    if (res > 0) q = res * std::round(q / res);
    out.q[i] = q;
    if (opt_.noise_dq_rad_s > 0) out.dq[i] += opt_.noise_dq_rad_s * normal_(rng_);
  }
  for (int i = 0; i < 3; ++i) {
    out.imu_gyro[i] += gyro_bias_[i];
    if (opt_.noise_gyro_rad_s > 0) out.imu_gyro[i] += opt_.noise_gyro_rad_s * normal_(rng_);
    out.imu_acc[i] += acc_bias_[i];
    if (opt_.noise_acc_m_s2 > 0) out.imu_acc[i] += opt_.noise_acc_m_s2 * normal_(rng_);
  }
  if (attitude_error_on_) {
    const auto a = out.imu_quat;
    const auto& b = attitude_error_;
    out.imu_quat[0] = a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3];
    out.imu_quat[1] = a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2];
    out.imu_quat[2] = a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1];
    out.imu_quat[3] = a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0];
  }
}

int64_t MujocoDriver::now_ns() const { return d_ ? static_cast<int64_t>(std::llround(d_->time * 1e9)) : 0; }
double MujocoDriver::sim_timestep() const { return m_ ? m_->opt.timestep : 0.0; }
double MujocoDriver::total_mass() const { return mass_; }

void MujocoDriver::push(double fx, double fy, double fz, double duration_s) {
  if (!std::isfinite(fx) || !std::isfinite(fy) || !std::isfinite(fz) || !std::isfinite(duration_s) || duration_s < 0)
    throw std::invalid_argument("MujocoDriver: push needs a finite force and a duration >= 0");
  push_left_s_.store(0.0);
  push_x_.store(fx);
  push_y_.store(fy);
  push_z_.store(fz);
  push_left_s_.store(duration_s);
}

void MujocoDriver::hoist_lower_to(double anchor_z_m, double speed_m_s) {
  if (!std::isfinite(anchor_z_m) || !std::isfinite(speed_m_s) || speed_m_s < 0)
    throw std::invalid_argument("MujocoDriver: hoist_lower_to needs a finite anchor height and a speed >= 0");
  hoist_target_z_.store(anchor_z_m, std::memory_order_relaxed);
  hoist_speed_.store(std::max(0.0, speed_m_s), std::memory_order_relaxed);
}

Status MujocoDriver::read(State& out) {
  if (!d_) return Status::kNotReady;
  out.n = n_;
  out.seq = ++seq_;
  out.stamp_ns = now_ns();
  for (int i = 0; i < n_; ++i) {
    out.q[i] = d_->qpos[qadr_[i]];
    out.dq[i] = d_->qvel[dadr_[i]];
    out.tau[i] = d_->qfrc_applied[dadr_[i]];
  }
  for (int i = 0; i < 4; ++i) out.imu_quat[i] = d_->sensordata[s_quat_ + i];
  for (int i = 0; i < 3; ++i) {
    out.imu_gyro[i] = d_->sensordata[s_gyro_ + i];
    out.imu_acc[i] = acc_period_valid_ ? acc_period_[i] : d_->sensordata[s_acc_ + i];
  }
  if (noise_on_) add_noise(out);
  out.has_base_truth = true;
  for (int i = 0; i < 3; ++i) {
    out.base_pos[i] = d_->qpos[base_qadr_ + i];
    out.base_lin_vel[i] = d_->qvel[base_dadr_ + i];
    out.base_ang_vel[i] = d_->qvel[base_dadr_ + 3 + i];
  }
  for (int i = 0; i < 4; ++i) out.base_quat[i] = d_->qpos[base_qadr_ + 3 + i];
  out.has_motor_temp = true;
  const bool thermal = thermal_.enabled();
  for (int i = 0; i < n_; ++i) {
    out.motor_temp_c[i] = thermal ? temp_c_[i] : opt_.motor_temp_c;
    out.motor_error[i] = 0;
  }
  out.has_battery = opt_.battery_v > 0;
  out.battery_v = opt_.battery_v;
  // Foot forces: the normal force of every contact between a foot (its body or a body fixed
  // directly below it) and the world.
  out.has_foot_force = !foot_body_.empty();
  out.foot_force = {0, 0, 0, 0};
  for (int c = 0; c < d_->ncon; ++c) {
    const mjContact& con = d_->contact[c];
    const int b1 = m_->geom_bodyid[con.geom[0]], b2 = m_->geom_bodyid[con.geom[1]];
    const int robot_body = b1 == 0 ? b2 : (b2 == 0 ? b1 : -1);
    if (robot_body < 0) continue;
    for (size_t f = 0; f < foot_body_.size(); ++f)
      if (robot_body == foot_body_[f] || m_->body_parentid[robot_body] == foot_body_[f]) {
        mjtNum force[6];
        mj_contactForce(m_, d_, c, force);
        out.foot_force[f] += force[0];
      }
  }
  return Status::kOk;
}

void MujocoDriver::apply_motors(const Command& c) {
  for (int i = 0; i < n_; ++i) {
    const double q = d_->qpos[qadr_[i]], dq = d_->qvel[dadr_[i]];
    double tau = c.kp[i] * (c.q[i] - q) + c.kd[i] * (c.dq[i] - dq) + c.tau_ff[i];
    if (!std::isfinite(tau)) tau = 0.0;  // a motor board ignores a garbage frame
    d_->qfrc_applied[dadr_[i]] = std::clamp(tau, -effort_[i], effort_[i]);
  }
}

void MujocoDriver::apply_hoist() {
  double* f = d_->xfrc_applied + 6 * base_body_;
  for (int i = 0; i < 6; ++i) f[i] = 0.0;
  const double left = push_left_s_.load(std::memory_order_relaxed);
  if (left > 0) {
    f[0] = push_x_.load(std::memory_order_relaxed);
    f[1] = push_y_.load(std::memory_order_relaxed);
    f[2] = push_z_.load(std::memory_order_relaxed);
    push_left_s_.store(left - m_->opt.timestep, std::memory_order_relaxed);
  }
  if (!hoist_engaged_.load(std::memory_order_relaxed)) {
    hoist_tension_.store(0.0, std::memory_order_relaxed);
    return;
  }
  // Move the anchor toward its target at the commanded speed.
  double z = hoist_z_.load(std::memory_order_relaxed);
  const double target = hoist_target_z_.load(std::memory_order_relaxed);
  const double step = hoist_speed_.load(std::memory_order_relaxed) * m_->opt.timestep;
  z = (std::abs(target - z) <= step) ? target : z + (target > z ? step : -step);
  hoist_z_.store(z, std::memory_order_relaxed);

  const double* p = d_->xipos + 3 * base_body_;  // the rope pulls at the base's centre of mass
  const double* R = d_->xmat + 9 * base_body_;
  // Free joint velocity: linear of the body origin (world frame), then angular (body frame).
  const double* w_local = d_->qvel + base_dadr_ + 3;
  double w_world[3], v[3];
  for (int r = 0; r < 3; ++r) w_world[r] = R[3 * r] * w_local[0] + R[3 * r + 1] * w_local[1] + R[3 * r + 2] * w_local[2];
  const double* o = d_->xpos + 3 * base_body_;
  const double rc[3] = {p[0] - o[0], p[1] - o[1], p[2] - o[2]};
  const double* v0 = d_->qvel + base_dadr_;
  v[0] = v0[0] + w_world[1] * rc[2] - w_world[2] * rc[1];  // velocity of the centre of mass
  v[1] = v0[1] + w_world[2] * rc[0] - w_world[0] * rc[2];
  v[2] = v0[2] + w_world[0] * rc[1] - w_world[1] * rc[0];
  const double stretch = z - p[2];
  double tension = 0.0;
  if (stretch > 0) tension = std::max(0.0, opt_.hoist_stiffness_n_m * stretch - opt_.hoist_damping_n_s_m * v[2]);
  hoist_tension_.store(tension, std::memory_order_relaxed);
  if (tension <= 0.0) return;
  const double load = std::min(1.0, tension / (mass_ * 9.81));
  f[2] += tension;
  f[0] += load * (opt_.hoist_lateral_stiffness_n_m * (hoist_x_ - p[0]) - opt_.hoist_damping_n_s_m * 0.25 * v[0]);
  f[1] += load * (opt_.hoist_lateral_stiffness_n_m * (hoist_y_ - p[1]) - opt_.hoist_damping_n_s_m * 0.25 * v[1]);
  // Harness: restoring torque toward upright (roll/pitch only) + angular damping, world frame.
  const double zx = R[2], zy = R[5];  // body z-axis in world = third column of R
  // axis of the rotation taking body z to world z is (body_z x world_z) = (zy, -zx, 0)
  f[3] = load * (opt_.hoist_rot_stiffness_nm_rad * zy - opt_.hoist_rot_damping_nms_rad * w_world[0]);
  f[4] = load * (-opt_.hoist_rot_stiffness_nm_rad * zx - opt_.hoist_rot_damping_nms_rad * w_world[1]);
  f[5] = load * (-opt_.hoist_rot_damping_nms_rad * w_world[2]);
}

int MujocoDriver::checked_joint(int joint, const char* what) const {
  if (!m_) throw std::logic_error(std::string("MujocoDriver: ") + what + ": configure() the driver first");
  if (joint < 0 || joint >= n_)
    throw std::invalid_argument(std::string("MujocoDriver: ") + what + ": joint " + std::to_string(joint) +
                                "; valid: 0 to " + std::to_string(n_ - 1));
  return joint;
}

void MujocoDriver::set_joint_friction(int joint, const JointFriction& f) {
  const int j = checked_joint(joint, "set_joint_friction");
  if (!std::isfinite(f.damping_nm_s_rad) || f.damping_nm_s_rad < 0 || !std::isfinite(f.frictionloss_nm) ||
      f.frictionloss_nm < 0)
    throw std::invalid_argument("MujocoDriver: set_joint_friction: found damping " + std::to_string(f.damping_nm_s_rad) +
                                " N·m·s/rad, frictionloss " + std::to_string(f.frictionloss_nm) +
                                " N·m; valid: finite numbers >= 0");
  damping_set_[j].store(f.damping_nm_s_rad, std::memory_order_relaxed);
  frictionloss_set_[j].store(f.frictionloss_nm, std::memory_order_relaxed);
  params_dirty_.store(true, std::memory_order_release);
}

JointFriction MujocoDriver::joint_friction(int joint) const {
  const int j = checked_joint(joint, "joint_friction");
  return {damping_set_[j].load(std::memory_order_relaxed), frictionloss_set_[j].load(std::memory_order_relaxed)};
}

JointFriction MujocoDriver::nominal_joint_friction(int joint) const {
  const int j = checked_joint(joint, "nominal_joint_friction");
  return {damping0_[j], frictionloss0_[j]};
}

void MujocoDriver::set_effort_limit(int joint, double limit_nm) {
  const int j = checked_joint(joint, "set_effort_limit");
  if (!std::isfinite(limit_nm) || !(limit_nm > 0))
    throw std::invalid_argument("MujocoDriver: set_effort_limit: found " + std::to_string(limit_nm) +
                                " N·m; valid: a finite number > 0");
  effort_set_[j].store(limit_nm, std::memory_order_relaxed);
  params_dirty_.store(true, std::memory_order_release);
}

double MujocoDriver::effort_limit(int joint) const {
  return effort_set_[checked_joint(joint, "effort_limit")].load(std::memory_order_relaxed);
}

double MujocoDriver::nominal_effort_limit(int joint) const { return effort0_[checked_joint(joint, "nominal_effort_limit")]; }

void MujocoDriver::set_motor_thermal(const MotorThermal& t) {
  if (!std::isfinite(t.heating_c_per_nm2_s) || t.heating_c_per_nm2_s < 0 || !std::isfinite(t.time_constant_s) ||
      t.time_constant_s < 0)
    throw std::invalid_argument("MujocoDriver: set_motor_thermal: found heating " + std::to_string(t.heating_c_per_nm2_s) +
                                " °C/s/(N·m)², time constant " + std::to_string(t.time_constant_s) +
                                " s; valid: finite numbers >= 0 (both > 0: on)");
  heating_set_.store(t.heating_c_per_nm2_s, std::memory_order_relaxed);
  time_constant_set_.store(t.time_constant_s, std::memory_order_relaxed);
  params_dirty_.store(true, std::memory_order_release);
}

MotorThermal MujocoDriver::motor_thermal() const {
  return {heating_set_.load(std::memory_order_relaxed), time_constant_set_.load(std::memory_order_relaxed)};
}

void MujocoDriver::set_heat_scale(int joint, double scale) {
  const int j = checked_joint(joint, "set_heat_scale");
  if (!std::isfinite(scale) || scale < 0)
    throw std::invalid_argument("MujocoDriver: set_heat_scale: found " + std::to_string(scale) +
                                "; valid: a finite number >= 0");
  heat_scale_set_[j].store(scale, std::memory_order_relaxed);
  params_dirty_.store(true, std::memory_order_release);
}

double MujocoDriver::heat_scale(int joint) const {
  return heat_scale_set_[checked_joint(joint, "heat_scale")].load(std::memory_order_relaxed);
}

void MujocoDriver::apply_joint_params() {
  for (int i = 0; i < n_; ++i) {
    m_->dof_damping[dadr_[i]] = damping_set_[i].load(std::memory_order_relaxed);
    m_->dof_frictionloss[dadr_[i]] = frictionloss_set_[i].load(std::memory_order_relaxed);
    effort_[i] = effort_set_[i].load(std::memory_order_relaxed);
    heat_scale_[i] = heat_scale_set_[i].load(std::memory_order_relaxed);
  }
  const bool was_on = thermal_.enabled();
  thermal_ = {heating_set_.load(std::memory_order_relaxed), time_constant_set_.load(std::memory_order_relaxed)};
  if (thermal_.enabled() != was_on)
    for (int i = 0; i < n_; ++i) temp_c_[i] = opt_.motor_temp_c;  // switched: start from ambient
}

void MujocoDriver::heat_motors(double dt) {
  const double ambient = opt_.motor_temp_c, k = thermal_.heating_c_per_nm2_s, tc = thermal_.time_constant_s;
  for (int i = 0; i < n_; ++i) {
    const double tau = d_->qfrc_applied[dadr_[i]];
    temp_c_[i] += dt * (heat_scale_[i] * k * tau * tau - (temp_c_[i] - ambient) / tc);
  }
}

Status MujocoDriver::write(const Command& cmd) {
  if (!d_ || !active()) return Status::kNotReady;
  if (params_dirty_.exchange(false, std::memory_order_acq_rel)) apply_joint_params();
  const bool thermal = thermal_.enabled();
  acc_period_ = {0.0, 0.0, 0.0};
  for (int s = 0; s < steps_per_tick_; ++s) {
    // Latency: the board sees the command written `delay` physics steps ago.
    ring_[ring_head_] = cmd;
    ring_head_ = (ring_head_ + 1) % ring_.size();
    const Command& seen = ring_[ring_head_];  // oldest entry (== cmd when there is no delay)
    apply_motors(seen);
    if (thermal) heat_motors(m_->opt.timestep);
    apply_hoist();
    mj_step(m_, d_);
    // the step's sensors are of the state it started from, under this step's forces
    for (int i = 0; i < 3; ++i) acc_period_[i] += d_->sensordata[s_acc_ + i] / steps_per_tick_;
  }
  acc_period_valid_ = true;
  if (d_->warning[mjWARN_BADQACC].number > 0 || d_->warning[mjWARN_BADQVEL].number > 0 ||
      d_->warning[mjWARN_BADQPOS].number > 0 || !std::isfinite(d_->time) || !std::isfinite(d_->qpos[base_qadr_ + 2]))
    return Status::kDriverError;
  pose_buf_.time = d_->time;
  for (int i = 0; i < m_->nq; ++i) pose_buf_.qpos[i] = d_->qpos[i];
  for (int i = 0; i < 3; ++i) {
    pose_buf_.base_pos[i] = d_->qpos[base_qadr_ + i];
    pose_buf_.base_lin_vel[i] = d_->qvel[base_dadr_ + i];
    pose_buf_.base_ang_vel[i] = d_->qvel[base_dadr_ + 3 + i];
  }
  for (int i = 0; i < 4; ++i) pose_buf_.base_quat[i] = d_->qpos[base_qadr_ + 3 + i];
  pose_.store(pose_buf_);
  return Status::kOk;
}

}  // namespace vertebra
