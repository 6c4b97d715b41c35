// Hardware faults the DDS sim bridge emulates (unitree_sim_bridge.hpp), so that a bench test can
// be shown faulty hardware and must find it. Every fault is off by default (a default-constructed
// HardwareFaults is a healthy robot).
//
// Per joint (JointFault, joint index in the robot's joint order):
//   sign, offset_rad  The motor frame. A motor wired reversed (sign -1) or with an encoder offset o
//                     reports, for the physical joint angle theta, velocity dtheta and torque tau:
//                         q_m = s theta + o,   dq_m = s dtheta,   tau_m = s tau
//                     and a command (q*, dq*, tau_ff in the motor frame, kp, kd) reaches the joint as
//                         theta* = s (q* - o),   dtheta* = s dq*,   tau_ff_phys = s tau_ff
//                     (MotorFrame). The PD loop stays stable and the reported q tracks the command:
//                     only the kinematics (IMU, gravity, contacts) reveal the fault.
//   friction_scale    multiplies the joint's viscous damping and dry friction (MuJoCo dof_damping,
//                     dof_frictionloss) relative to the robot config's sim.joint_dynamics values.
//   torque_limit_scale the motor saturates at this fraction of its effort limit (the reported tau
//                     is the saturated one).
//   heat_scale        multiplies the heating of the motor thermal model (MotorThermal in
//                     mujoco_driver.hpp; BridgeOptions::motor_thermal). Without that model the
//                     temperature is constant and heat_scale has no effect.
// Bus (whole bridge):
//   state_drop_probability   each rt/lowstate sample is not sent with this probability.
//   crc_corrupt_probability  each rt/lowstate sample goes out with a wrong CRC with this probability.
//   command_latency_ms       received rt/lowcmd take effect this much later (CommandDelay).
//   seed                     the generator behind both probabilities: a lockstep run is reproducible
//                            bit for bit (the bridge draws two numbers per state stepped, always).
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "core/types.hpp"

namespace vertebra::unitree {

// Bounds checked by check_faults() (and by the Python config, drivers/bridge_faults.py).
inline constexpr double kMaxFaultOffsetRad = 0.5;
inline constexpr double kMinFrictionScale = 0.1, kMaxFrictionScale = 20.0;
inline constexpr double kMinTorqueLimitScale = 0.05;
inline constexpr double kMaxHeatScale = 20.0;
inline constexpr double kMaxFaultProbability = 0.5;
inline constexpr double kMaxCommandLatencyMs = 200.0;

struct JointFault {
  int sign = 1;                     // +1, or -1: the motor wired reversed
  double offset_rad = 0.0;          // encoder offset o, |o| <= kMaxFaultOffsetRad
  double friction_scale = 1.0;      // x damping and frictionloss, kMinFrictionScale..kMaxFrictionScale
  double torque_limit_scale = 1.0;  // kMinTorqueLimitScale..1: fraction of the effort limit
  double heat_scale = 1.0;          // 0..kMaxHeatScale: x the thermal model's heating
  bool healthy() const {
    return sign == 1 && offset_rad == 0.0 && friction_scale == 1.0 && torque_limit_scale == 1.0 && heat_scale == 1.0;
  }
};

struct HardwareFaults {
  std::vector<JointFault> joints;       // empty: no joint faults; else one per joint (robot order)
  double state_drop_probability = 0.0;  // 0..kMaxFaultProbability
  double crc_corrupt_probability = 0.0; // 0..kMaxFaultProbability
  double command_latency_ms = 0.0;      // 0..kMaxCommandLatencyMs
  uint64_t seed = 1;
};

// Configuration time: throws std::invalid_argument naming the field, what was found and what is
// valid (`joints`: the robot's joint count; joints.size() must be 0 or that).
void check_faults(const HardwareFaults& f, int joints);

// The sign/offset transform of every joint in fixed-size form (the stepping path: no allocation).
struct MotorFrame {
  int n = 0;
  JointArray sign{}, offset{};
  MotorFrame() { sign.fill(1.0); }
  void set(const HardwareFaults& f, int joints);
  // A command in the motor frame (as received) -> what the physical joint gets. Gains unchanged.
  void command_to_physical(const Command& motor, Command& physical) const;
  // The physical joint state -> what the motor reports (q, dq, tau; everything else copied).
  void state_to_motor(const State& physical, State& motor) const;
};

// The bus generator: two uniform draws in [0, 1) per state stepped, from a 64-bit Mersenne Twister
// (the conversion is written out, so the numbers do not depend on the standard library).
class BusFaultDice {
 public:
  void reseed(uint64_t seed) { rng_.seed(seed); }
  double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

 private:
  std::mt19937_64 rng_{1};
};

// Received commands taking effect later. Storage is allocated once, at construction; push/pop
// never allocate. Not thread-safe: the bridge guards it.
//   Lockstep (one control period per command received): a FIFO `depth` commands deep, depth =
//   round(latency_ms * rate_hz / 1000): the command applied at a step is the one received `depth`
//   commands earlier; before the FIFO has filled, the command in force stays. A frame that failed
//   its CRC takes its place in the FIFO and changes nothing when it comes out (the boards drop it
//   then), so the delay stays exactly `depth` periods.
//   Real time: commands stamped on receipt, applied once older than the latency. A full queue
//   drops its oldest entry (newer commands supersede it anyway), counted in overflows().
class CommandDelay {
 public:
  explicit CommandDelay(size_t capacity);
  size_t capacity() const { return ring_.size(); }
  size_t size() const { return count_; }
  uint64_t overflows() const { return overflows_; }
  void clear() { head_ = count_ = 0; }
  // Lockstep: queue the received frame, then let every entry beyond `depth` out, oldest first,
  // valid ones replacing `in_force`. depth must be < capacity().
  void push_lockstep(const Command& c, bool valid, size_t depth, Command& in_force);
  // Real time: queue a valid command received at t_ns (steady clock).
  void push_timed(const Command& c, int64_t t_ns);
  // Real time: remove every entry received at or before cutoff_ns; the newest of them goes to
  // `out`. False (out untouched): none had matured.
  bool pop_matured(int64_t cutoff_ns, Command& out);

 private:
  struct Entry {
    int64_t t_ns = 0;
    bool valid = false;
    Command c{};
  };
  Entry& push_slot();
  std::vector<Entry> ring_;
  size_t head_ = 0, count_ = 0;  // head_: the oldest entry
  uint64_t overflows_ = 0;
};

}  // namespace vertebra::unitree
