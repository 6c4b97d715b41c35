// FaultInjector: a Driver that wraps another and corrupts what it reports, on command, to test
// the safety supervisor (vertebra faults run). Every knob is an atomic: set from any thread while
// the loop runs; the tick reads them without locks.
//
//   drop_reads     read() returns kNoNewData and leaves the state untouched (state loss)
//   freeze         read() keeps returning the sample taken when freezing began, with the sequence
//                  and stamp still advancing (a stuck sensor pipeline)
//   nan_state      read() reports NaN for joint 0's position
//   read_stall_us  read() busy-waits this much of its thread's CPU time (loop overruns)
//   motor_temp     per-joint temperature override (NaN: the inner driver's value)
//   motor_error    per-joint error bits OR-ed into the report
//   battery_v      pack voltage override (NaN: the inner driver's value)
#pragma once

#include <atomic>
#include <cmath>
#include <memory>

#include "drivers/driver.hpp"

namespace vertebra {

class FaultInjector final : public Driver {
 public:
  explicit FaultInjector(std::shared_ptr<Driver> inner);
  Status read(State& out) override;
  Status write(const Command& cmd) override { return inner_->write(cmd); }
  int64_t now_ns() const override { return inner_->now_ns(); }
  bool simulated() const override { return inner_->simulated(); }
  std::string name() const override { return inner_->name() + "+faults"; }
  std::shared_ptr<Driver> inner() const { return inner_; }

  void set_drop_reads(bool v) { drop_.store(v); }
  // Lifecycle: the wrapper starts in the state of the driver it wraps; its transitions drive the
  // wrapped driver's.
  void set_freeze(bool v) { freeze_.store(v); }
  void set_nan_state(bool v) { nan_.store(v); }
  void set_read_stall_us(double us) { stall_us_.store(us); }
  void set_motor_temp(int joint, double c);    // NaN clears; throws on a bad joint index
  void set_motor_error(int joint, uint32_t bits);
  void set_battery_v(double v) { battery_.store(v); }
  void clear();                                // every knob back to pass-through

 protected:
  void on_configure(const DriverInit& init) override { inner_->configure(init); }
  void on_activate() override { inner_->activate(); }
  void on_deactivate() override { inner_->deactivate(); }
  void on_cleanup() override { inner_->cleanup(); }

 private:
  std::shared_ptr<Driver> inner_;
  std::atomic<bool> drop_{false}, freeze_{false}, nan_{false};
  std::atomic<double> stall_us_{0}, battery_{NAN};
  std::array<std::atomic<double>, kMaxJoints> temp_;
  std::array<std::atomic<uint32_t>, kMaxJoints> error_;
  bool frozen_valid_ = false;
  State frozen_{};
};

}  // namespace vertebra
