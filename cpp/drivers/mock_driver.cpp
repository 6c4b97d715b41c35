#include "drivers/mock_driver.hpp"

#include <limits>
#include <stdexcept>

namespace vertebra {

void MockDriver::on_configure(const DriverInit& init) {
  if (init.joint_names.empty() || static_cast<int>(init.joint_names.size()) > kMaxJoints)
    throw std::invalid_argument("MockDriver: expected 1.." + std::to_string(kMaxJoints) + " joints, found " +
                                std::to_string(init.joint_names.size()));
  if (!(init.control_rate_hz > 0)) throw std::invalid_argument("MockDriver: control_rate_hz must be > 0");
  n_ = static_cast<int>(init.joint_names.size());
  period_ns_ = static_cast<int64_t>(1e9 / init.control_rate_hz);
  if (!init.damping_kd.empty() && static_cast<int>(init.damping_kd.size()) != n_)
    throw std::invalid_argument("MockDriver: damping_kd needs " + std::to_string(n_) + " values, found " +
                                std::to_string(init.damping_kd.size()));
  for (size_t i = 0; i < init.damping_kd.size(); ++i) damping_kd_[i] = init.damping_kd[i];
}

void MockDriver::on_deactivate() {
  Command c;
  c.n = n_;
  for (int i = 0; i < n_; ++i) {
    c.q[i] = q_[i];
    c.kd[i] = damping_kd_[i];
  }
  last_ = c;
}

Status MockDriver::read(State& out) {
  if (n_ == 0 || lifecycle_state() == DriverState::kUnconfigured) return Status::kNotReady;
  if (fail_reads_) return Status::kDriverError;
  out.n = n_;
  out.seq = ++seq_;
  out.stamp_ns = t_ns_;
  for (int i = 0; i < n_; ++i) {
    out.q[i] = nan_state_ ? std::numeric_limits<double>::quiet_NaN() : q_[i];
    out.dq[i] = dq_[i];
    out.tau[i] = tau_[i];
    out.motor_error[i] = 0;  // healthy motors; no temperature or battery telemetry
  }
  out.has_motor_temp = false;
  out.has_battery = false;
  out.imu_quat = {1, 0, 0, 0};
  out.imu_gyro = {0, 0, 0};
  out.imu_acc = {0, 0, 9.81};
  out.has_base_truth = false;
  return Status::kOk;
}

Status MockDriver::write(const Command& cmd) {
  if (!active()) return Status::kNotReady;
  last_ = cmd;
  ++writes_;
  const double dt = period_ns_ * 1e-9;
  for (int i = 0; i < n_; ++i) {
    const double tau = cmd.kp[i] * (cmd.q[i] - q_[i]) + cmd.kd[i] * (cmd.dq[i] - dq_[i]) + cmd.tau_ff[i];
    tau_[i] = tau;
    const double acc = (tau - opt_.joint_friction * dq_[i] - opt_.gravity_torque) / opt_.joint_inertia;
    dq_[i] += acc * dt;
    q_[i] += dq_[i] * dt;
  }
  t_ns_ += period_ns_;
  return Status::kOk;
}

}  // namespace vertebra
