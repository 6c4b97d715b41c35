// MockDriver: an ideal joint-level robot for tests and benchmarks that need no physics.
// Each joint is a unit inertia driven by the motor-board law with a configurable viscous
// friction, integrated (semi-implicit Euler) once per write(). The base stays at the origin.
// It can be told to fail reads/writes or to report NaN to exercise the loop's fault paths.
#pragma once

#include "drivers/driver.hpp"

namespace vertebra {

struct MockDriverOptions {
  double joint_inertia = 0.05;   // kg·m²
  double joint_friction = 0.1;   // N·m·s/rad
  double gravity_torque = 0.0;   // constant load on every joint, N·m (sags a limp joint)
};

class MockDriver final : public Driver {
 public:
  explicit MockDriver(MockDriverOptions opt = {}) : opt_(opt) {}
  Status read(State& out) override;
  Status write(const Command& cmd) override;
  int64_t now_ns() const override { return t_ns_; }
  bool simulated() const override { return true; }
  std::string name() const override { return "mock"; }

  // Test hooks (configuration/test time only).
  void set_joint_positions(const JointArray& q) { q_ = q; }
  void set_fail_reads(bool v) { fail_reads_ = v; }
  void set_nan_state(bool v) { nan_state_ = v; }
  const Command& last_command() const { return last_; }
  uint64_t writes() const { return writes_; }

 protected:
  void on_configure(const DriverInit& init) override;
  void on_deactivate() override;  // the last command becomes damping (kp = 0, kd = damping_kd)

 private:
  MockDriverOptions opt_;
  JointArray damping_kd_{};
  int n_ = 0;
  int64_t period_ns_ = 2'000'000;
  int64_t t_ns_ = 0;
  uint64_t seq_ = 0, writes_ = 0;
  JointArray q_{}, dq_{}, tau_{};
  Command last_{};
  bool fail_reads_ = false, nan_state_ = false;
};

}  // namespace vertebra
