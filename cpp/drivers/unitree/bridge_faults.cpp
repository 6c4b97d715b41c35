#include "drivers/unitree/bridge_faults.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace vertebra::unitree {

namespace {
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

void check_range(const std::string& name, double v, double lo, double hi) {
  if (!std::isfinite(v) || v < lo || v > hi)
    throw std::invalid_argument("sim-bridge faults: " + name + ": found " + num(v) + "; valid: " + num(lo) + " to " +
                                num(hi));
}
}  // namespace

void check_faults(const HardwareFaults& f, int joints) {
  if (!f.joints.empty() && static_cast<int>(f.joints.size()) != joints)
    throw std::invalid_argument("sim-bridge faults: joints: found " + std::to_string(f.joints.size()) +
                                " entries; valid: none, or one per joint (" + std::to_string(joints) + ")");
  for (size_t j = 0; j < f.joints.size(); ++j) {
    const JointFault& jf = f.joints[j];
    const std::string at = "joints[" + std::to_string(j) + "].";
    if (jf.sign != 1 && jf.sign != -1)
      throw std::invalid_argument("sim-bridge faults: " + at + "sign: found " + std::to_string(jf.sign) +
                                  "; valid: 1 or -1 (wired reversed)");
    check_range(at + "offset_rad", jf.offset_rad, -kMaxFaultOffsetRad, kMaxFaultOffsetRad);
    check_range(at + "friction_scale", jf.friction_scale, kMinFrictionScale, kMaxFrictionScale);
    check_range(at + "torque_limit_scale", jf.torque_limit_scale, kMinTorqueLimitScale, 1.0);
    check_range(at + "heat_scale", jf.heat_scale, 0.0, kMaxHeatScale);
  }
  check_range("state_drop_probability", f.state_drop_probability, 0.0, kMaxFaultProbability);
  check_range("crc_corrupt_probability", f.crc_corrupt_probability, 0.0, kMaxFaultProbability);
  check_range("command_latency_ms", f.command_latency_ms, 0.0, kMaxCommandLatencyMs);
}

void MotorFrame::set(const HardwareFaults& f, int joints) {
  n = joints;
  sign.fill(1.0);
  offset.fill(0.0);
  for (size_t j = 0; j < f.joints.size() && j < static_cast<size_t>(kMaxJoints); ++j) {
    sign[j] = f.joints[j].sign < 0 ? -1.0 : 1.0;
    offset[j] = f.joints[j].offset_rad;
  }
}

void MotorFrame::command_to_physical(const Command& motor, Command& physical) const {
  physical = motor;
  for (int j = 0; j < motor.n && j < n; ++j) {
    physical.q[j] = sign[j] * (motor.q[j] - offset[j]);
    physical.dq[j] = sign[j] * motor.dq[j];
    physical.tau_ff[j] = sign[j] * motor.tau_ff[j];
  }
}

void MotorFrame::state_to_motor(const State& physical, State& motor) const {
  motor = physical;
  for (int j = 0; j < physical.n && j < n; ++j) {
    motor.q[j] = sign[j] * physical.q[j] + offset[j];
    motor.dq[j] = sign[j] * physical.dq[j];
    motor.tau[j] = sign[j] * physical.tau[j];
  }
}

CommandDelay::CommandDelay(size_t capacity) : ring_(capacity < 2 ? 2 : capacity) {}

CommandDelay::Entry& CommandDelay::push_slot() {
  if (count_ == ring_.size()) {  // full: the oldest goes
    head_ = (head_ + 1) % ring_.size();
    --count_;
    ++overflows_;
  }
  Entry& e = ring_[(head_ + count_) % ring_.size()];
  ++count_;
  return e;
}

void CommandDelay::push_lockstep(const Command& c, bool valid, size_t depth, Command& in_force) {
  Entry& e = push_slot();
  e.t_ns = 0;
  e.valid = valid;
  if (valid) e.c = c;
  while (count_ > depth) {
    const Entry& out = ring_[head_];
    if (out.valid) in_force = out.c;
    head_ = (head_ + 1) % ring_.size();
    --count_;
  }
}

void CommandDelay::push_timed(const Command& c, int64_t t_ns) {
  Entry& e = push_slot();
  e.t_ns = t_ns;
  e.valid = true;
  e.c = c;
}

bool CommandDelay::pop_matured(int64_t cutoff_ns, Command& out) {
  bool any = false;
  while (count_ > 0 && ring_[head_].t_ns <= cutoff_ns) {
    if (ring_[head_].valid) {
      out = ring_[head_].c;
      any = true;
    }
    head_ = (head_ + 1) % ring_.size();
    --count_;
  }
  return any;
}

}  // namespace vertebra::unitree
