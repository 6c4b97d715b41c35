// The recorder's tick side: one fixed-size TickRecord per recorded tick, pushed by the real-time
// thread into a lock-free single-producer single-consumer ring that a writer thread (Python,
// runtime/recorder.py, never on the tick) drains into MCAP files.
//
// Contract
//  - RecordRing::begin_push()/commit_push() are [tick]: the producer fills the next free slot in
//    place (no copy of a finished record), wait-free, no allocation, no system call. When the ring
//    is full the record is not written and is counted as lost: the ring never blocks the tick.
//  - Loss is visible in the data (PX4's logger writes dropout records the same way): the next
//    record that fits carries `lost_before` (how many records were lost just before it) and
//    `lost_since_ns` (the monotonic time of the first of them), so a reader knows where the gap
//    is and how long it lasted. lost() counts every loss since construction.
//  - pop() is the single consumer's (one writer thread). pop_into() copies up to `max` records into
//    a caller's buffer (the bindings release the GIL around it).
//  - Joint arrays are float32 (a sensor's resolution is far coarser), in motor order, with `n` of
//    the kMaxJoints used; times are int64 nanoseconds. The layout is plain data, written to the
//    recording as bytes with its field table (runtime/recorder.py describes it from the bindings'
//    field list, tick_record_fields()), so a reader needs no Vertebra code to decode it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/chunk_scheduler.hpp"
#include "core/modes.hpp"
#include "core/types.hpp"

namespace vertebra {

struct TickRecord {
  // timing
  uint64_t tick = 0;
  int64_t mono_ns = 0;       // CLOCK_MONOTONIC when recorded
  int64_t wall_ns = 0;       // CLOCK_REALTIME when recorded
  int64_t driver_ns = 0;     // the driver's clock (simulation time in a simulator)
  uint64_t lost_before = 0;  // records lost to a full ring just before this one
  int64_t lost_since_ns = 0; // monotonic time of the first of them (0: none)
  float lateness_us = 0;     // real time: how late this tick woke (0 in lockstep)
  float compute_us = 0;      // the previous tick's duration
  // safety
  int32_t n = 0;
  int32_t safety_mode = 0;   // SafetyMode
  int32_t controller = 0;    // ModeId
  uint32_t flags = 0;        // TickRecordFlags
  uint64_t faults_active = 0, faults_latched = 0;  // FaultId bits
  uint32_t clamp_flags = 0;  // LimiterFlags of this tick
  int32_t read_status = 0, write_status = 0;  // Status
  float stream_age_ms = 0;   // the policy stream's age (starvation monitor)
  // state (the driver's)
  float q[kMaxJoints] = {}, dq[kMaxJoints] = {}, tau[kMaxJoints] = {}, temp_c[kMaxJoints] = {};
  float imu_quat[4] = {1, 0, 0, 0}, imu_gyro[3] = {}, imu_acc[3] = {};
  float foot_force[kMaxFeet] = {};
  float battery_v = 0;
  // the base as the controller saw it (the estimate when used, else the driver's truth, else zeros)
  float base_pos[3] = {}, base_quat[4] = {1, 0, 0, 0}, base_lin_vel[3] = {}, base_ang_vel[3] = {};
  uint8_t contact[kMaxFeet] = {};  // the estimator's contact decision per foot
  // the command written to the motors (after the limiter)
  float cmd_q[kMaxJoints] = {}, cmd_dq[kMaxJoints] = {}, cmd_kp[kMaxJoints] = {}, cmd_kd[kMaxJoints] = {},
        cmd_tau_ff[kMaxJoints] = {};
  // action chunks (when a scheduler is attached): the policy's action this tick (the scheduler's
  // sample, `action_dim` values in the policy's column order; 0 when no chunk covered the tick)
  uint64_t chunk_seq = 0, chunk_starved_ticks = 0;
  float chunk_blend = 1;
  int32_t action_dim = 0;
  float action[kMaxActionDim] = {};
  // the active controller's diagnostics (ControllerDiagnostics, when it has them)
  float com_err[3] = {};
  float base_pos_err = 0, base_rot_err = 0, torso_rot_err = 0;
  float hand_pos_err[kMaxDiagHands] = {}, hand_rot_err[kMaxDiagHands] = {};
  float contact_wrench[kMaxFeet][6] = {};
  float contact_weight[kMaxFeet] = {};
  float solve_us = 0;
  int32_t qp_iterations = 0, qp_status = 0;
};

enum TickRecordFlags : uint32_t {
  kRecEnabled = 1u << 0,         // motors enabled
  kRecBaseTruth = 1u << 1,       // the driver reported base truth (a simulator)
  kRecEstimateUsed = 1u << 2,    // the controller saw the estimator's base
  kRecEstimateValid = 1u << 3,
  kRecChunksStarved = 1u << 4,   // no chunk covers now
  kRecDiagnostics = 1u << 5,     // the controller filled its diagnostics
  kRecMotorTemp = 1u << 6,       // temp_c is meaningful
  kRecFootForce = 1u << 7,       // foot_force is meaningful
  kRecRemoteEstop = 1u << 8,     // the robot's own e-stop input
  kRecStreamExpected = 1u << 9,  // ACTIVE with a policy stream expected
};

class RecordRing {
 public:
  // capacity: records, rounded up to a power of two (>= 2). Configuration time (allocates).
  explicit RecordRing(size_t capacity);
  RecordRing(const RecordRing&) = delete;
  RecordRing& operator=(const RecordRing&) = delete;

  // [tick] The slot to fill, or nullptr when the ring is full (the record is counted lost).
  TickRecord* begin_push(int64_t mono_ns);
  // [tick] Publish the slot begin_push() returned.
  void commit_push();

  bool pop(TickRecord& out);                  // consumer only
  size_t pop_into(TickRecord* out, size_t max);  // consumer only: up to max records, oldest first

  size_t capacity() const { return mask_ + 1; }
  size_t size() const;                        // records waiting (any thread; approximate)
  uint64_t pushed() const { return pushed_.load(std::memory_order_relaxed); }
  uint64_t lost() const { return lost_.load(std::memory_order_relaxed); }
  // The ring has one consumer: a writer claims it for its lifetime (a second claim fails).
  bool claim() { return !claimed_.exchange(true); }
  void release() { claimed_.store(false); }

 private:
  std::vector<TickRecord> buf_;
  size_t mask_;
  alignas(64) std::atomic<uint64_t> head_{0};  // next slot the producer writes
  alignas(64) std::atomic<uint64_t> tail_{0};  // next slot the consumer reads
  alignas(64) std::atomic<uint64_t> pushed_{0}, lost_{0};
  uint64_t pending_lost_ = 0;   // producer-owned: losses not yet reported in a record
  int64_t pending_since_ns_ = 0;
  std::atomic<bool> claimed_{false};
};

// The record's fields for a reader: (name, numpy type code, shape, byte offset), in
// layout order; sizeof(TickRecord) is the stride. Configuration time.
struct RecordField {
  std::string name;
  std::string dtype;          // "<u8", "<i8", "<f4", "<i4", "<u4", "|u1"
  std::vector<size_t> shape;  // {} for a scalar
  size_t offset;
};
std::vector<RecordField> tick_record_fields();

}  // namespace vertebra
