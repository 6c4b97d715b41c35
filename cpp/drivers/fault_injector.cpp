#include "drivers/fault_injector.hpp"

#include <time.h>

#include <stdexcept>
#include <string>

namespace vertebra {

FaultInjector::FaultInjector(std::shared_ptr<Driver> inner) : inner_(std::move(inner)) {
  if (!inner_) throw std::invalid_argument("FaultInjector: a driver to wrap is required");
  adopt_state(inner_->lifecycle_state());
  clear();
}

void FaultInjector::clear() {
  drop_.store(false);
  freeze_.store(false);
  nan_.store(false);
  stall_us_.store(0);
  battery_.store(NAN);
  for (auto& t : temp_) t.store(NAN);
  for (auto& e : error_) e.store(0);
}

void FaultInjector::set_motor_temp(int joint, double c) {
  if (joint < 0 || joint >= kMaxJoints) throw std::out_of_range("FaultInjector: joint " + std::to_string(joint) + " out of range");
  temp_[joint].store(c);
}

void FaultInjector::set_motor_error(int joint, uint32_t bits) {
  if (joint < 0 || joint >= kMaxJoints) throw std::out_of_range("FaultInjector: joint " + std::to_string(joint) + " out of range");
  error_[joint].store(bits);
}

static int64_t thread_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

Status FaultInjector::read(State& out) {
  const double stall = stall_us_.load(std::memory_order_relaxed);
  if (stall > 0) {
    // Spin on this thread's CPU time: the stall is compute the tick really does, so it is an
    // overrun in real time (wall >= CPU time) and in lockstep (which measures CPU time), however
    // busy the machine is.
    const int64_t until = thread_cpu_ns() + static_cast<int64_t>(stall * 1e3);
    while (thread_cpu_ns() < until) {
    }
  }
  if (drop_.load(std::memory_order_relaxed)) {
    State scratch = out;  // the inner driver still runs (a simulator keeps its bookkeeping)
    inner_->read(scratch);
    return Status::kNoNewData;
  }
  const Status st = inner_->read(out);
  if (st != Status::kOk) return st;
  if (freeze_.load(std::memory_order_relaxed)) {
    if (!frozen_valid_) {
      frozen_ = out;
      frozen_valid_ = true;
    }
    const uint64_t seq = out.seq;
    const int64_t stamp = out.stamp_ns;
    out = frozen_;
    out.seq = seq;
    out.stamp_ns = stamp;
  } else {
    frozen_valid_ = false;
  }
  if (nan_.load(std::memory_order_relaxed)) out.q[0] = NAN;
  for (int i = 0; i < out.n; ++i) {
    const double t = temp_[i].load(std::memory_order_relaxed);
    if (!std::isnan(t)) {
      out.motor_temp_c[i] = t;
      out.has_motor_temp = true;
    }
    out.motor_error[i] |= error_[i].load(std::memory_order_relaxed);
  }
  const double b = battery_.load(std::memory_order_relaxed);
  if (!std::isnan(b)) {
    out.battery_v = b;
    out.has_battery = true;
  }
  return Status::kOk;
}

}  // namespace vertebra
