#include "drivers/driver.hpp"

#include <stdexcept>

namespace vertebra {

const char* driver_state_name(DriverState s) {
  switch (s) {
    case DriverState::kUnconfigured: return "unconfigured";
    case DriverState::kInactive: return "inactive";
    case DriverState::kActive: return "active";
    case DriverState::kFinalized: return "finalized";
  }
  return "unknown";
}

void Driver::expect(DriverState want, const char* transition) const {
  const DriverState now = lifecycle_state();
  if (now != want)
    throw std::logic_error("driver '" + name() + "': " + transition + "() needs state " + driver_state_name(want) +
                           ", the driver is " + driver_state_name(now));
}

void Driver::configure(const DriverInit& init) {
  expect(DriverState::kUnconfigured, "configure");
  on_configure(init);  // throws: stays unconfigured
  state_.store(DriverState::kInactive, std::memory_order_release);
}

void Driver::activate() {
  expect(DriverState::kInactive, "activate");
  on_activate();  // throws: stays inactive
  state_.store(DriverState::kActive, std::memory_order_release);
}

void Driver::deactivate() {
  expect(DriverState::kActive, "deactivate");
  // Inactive first: a tick racing this call gets kNotReady instead of driving the motors on.
  state_.store(DriverState::kInactive, std::memory_order_release);
  on_deactivate();
}

void Driver::cleanup() {
  expect(DriverState::kInactive, "cleanup");
  on_cleanup();
  state_.store(DriverState::kUnconfigured, std::memory_order_release);
}

void Driver::shutdown() {
  if (lifecycle_state() == DriverState::kFinalized) return;
  if (lifecycle_state() == DriverState::kActive) deactivate();
  if (lifecycle_state() == DriverState::kInactive) cleanup();
  state_.store(DriverState::kFinalized, std::memory_order_release);
}

}  // namespace vertebra
