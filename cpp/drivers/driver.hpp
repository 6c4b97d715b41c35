// Driver: the one interface between the real-time loop and a robot's bus or a simulator.
//
// Contract
//  - init() is configuration time: it may allocate, open devices, load models and throw
//    std::invalid_argument / std::runtime_error with a message naming what was expected.
//  - read(), write() and now_ns() are called on the tick: no allocation, no exceptions, no
//    blocking I/O beyond the bus transfer itself. They return a Status the loop records.
//  - Joint arrays are in motor-index order, length init.n_joints.
//  - read() writes every State field it reports, every time: the loop reuses one State, so a field
//    left alone keeps its previous value (a telemetry field a driver does not have: has_* = false).
//  - A simulated driver advances its world by one control period inside write(); that is what
//    makes lockstep (the loop stepping the simulator as fast as it can) and real time (the loop
//    sleeping to absolute deadlines between writes) one code path.
// New drivers are registered by name on their Python config class (vertebra.drivers).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/types.hpp"

namespace vertebra {

struct DriverInit {
  std::vector<std::string> joint_names;  // motor order
  double control_rate_hz = 500.0;
};

class Driver {
 public:
  virtual ~Driver() = default;
  virtual void init(const DriverInit& init) = 0;
  virtual Status read(State& out) = 0;
  virtual Status write(const Command& cmd) = 0;
  virtual int64_t now_ns() const = 0;
  // True when the driver owns its own clock (simulator, mock): lockstep is allowed.
  virtual bool simulated() const = 0;
  virtual std::string name() const = 0;
};

}  // namespace vertebra
