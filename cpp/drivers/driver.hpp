// Driver: the one interface between the real-time loop and a robot's bus or a simulator.
//
// Lifecycle (the model is ros2_control's hardware component lifecycle,
// hardware_interface/system_interface.hpp; the transitions are configuration time, called from
// Python or a service thread, never from the tick):
//
//            configure()            activate()
//   UNCONFIGURED ──────▶ INACTIVE ──────────▶ ACTIVE
//        ▲  ◀──────────     │  ◀────────────   │
//        │    cleanup()     │    deactivate()  │
//        └─ a failed configure() stays UNCONFIGURED; a failed activate() stays INACTIVE
//   shutdown(): from any state, deactivates (when ACTIVE) and cleans up, then FINALIZED (terminal).
//
//   UNCONFIGURED  constructed with its options; nothing opened.
//   INACTIVE      on_configure() ran: models loaded, devices/sockets opened, buffers allocated,
//                 joints mapped. read() may report state (a bus may already see the robot), but
//                 write() sends nothing: the motors are not under this driver's command.
//   ACTIVE        on_activate() ran: a real bus has switched its motors into the command mode the
//                 loop drives (for Unitree boards: the low-level servo mode), a simulator is ready
//                 to step. read()/write() run on the tick.
//   on_deactivate() hands the robot back damped: every motor gets a damping command (kp = 0,
//                 kd = DriverInit::damping_kd, or zero torque without them) before the motors leave
//                 the command mode, so a legged robot folds slowly rather than dropping.
//
// Contract
//  - configure()/activate()/deactivate()/cleanup()/shutdown() may allocate, open devices, load
//    models and throw std::invalid_argument / std::runtime_error with a message naming what was
//    expected. A transition from the wrong state throws std::logic_error naming both states.
//  - read(), write() and now_ns() are called on the tick: no allocation, no exceptions, no blocking
//    I/O beyond the bus transfer itself. They return a Status the loop records; outside ACTIVE they
//    return kNotReady (write() never moves a motor then).
//  - Joint arrays are in motor-index order, length DriverInit::joint_names.size().
//  - read() writes every State field it reports, every time: the loop reuses one State, so a field
//    left alone keeps its previous value (a telemetry field a driver does not have: has_* = false).
//  - A simulated driver advances its world by one control period inside write(); that is what
//    makes lockstep (the loop stepping the simulator as fast as it can) and real time (the loop
//    sleeping to absolute deadlines between writes) one code path.
// New drivers are registered by name on their Python config class (vertebra.drivers.registry;
// docs/extending.md has a worked example).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "core/types.hpp"

namespace vertebra {

struct DriverInit {
  std::vector<std::string> joint_names;  // motor order
  double control_rate_hz = 500.0;
  std::vector<double> damping_kd;        // motor order, N·m·s/rad: the hand-back on deactivate (empty: zero torque)
};

enum class DriverState : int32_t { kUnconfigured = 0, kInactive = 1, kActive = 2, kFinalized = 3 };
const char* driver_state_name(DriverState s);

class Driver {
 public:
  virtual ~Driver() = default;

  // Lifecycle transitions (configuration time; see the header comment).
  void configure(const DriverInit& init);
  void activate();
  void deactivate();
  void cleanup();
  void shutdown();
  DriverState lifecycle_state() const { return state_.load(std::memory_order_acquire); }
  // [tick] true in ACTIVE.
  bool active() const { return lifecycle_state() == DriverState::kActive; }

  virtual Status read(State& out) = 0;
  virtual Status write(const Command& cmd) = 0;
  virtual int64_t now_ns() const = 0;
  // True when the driver owns its own clock (simulator, mock): lockstep is allowed.
  virtual bool simulated() const = 0;
  virtual std::string name() const = 0;

 protected:
  // The transitions' work. on_configure() is required; the others default to nothing
  // (on_deactivate() of a driver that commands motors must hand them back damped).
  virtual void on_configure(const DriverInit& init) = 0;
  virtual void on_activate() {}
  virtual void on_deactivate() {}
  virtual void on_cleanup() {}
  // A wrapper (FaultInjector) starts in the state of the driver it wraps.
  void adopt_state(DriverState s) { state_.store(s, std::memory_order_release); }

 private:
  void expect(DriverState want, const char* transition) const;
  std::atomic<DriverState> state_{DriverState::kUnconfigured};
};

}  // namespace vertebra
