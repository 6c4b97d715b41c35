// Supervisor: the safety layer of the tick. Every tick it
//     takes the operator's inputs (e-stop, reset, enable, stop, mode requests)
//     -> runs the monitors on the state -> applies each new fault's configured response
//     -> runs the controller mode its safety mode owns -> limits the command (CommandLimiter)
// and reports every mode change, fault, operator action and clamp burst to the event ring.
//
// Mode table (requests from Python are checked against it; anything else is refused with
// kInvalidRequest, a gate that is not met with kNotReady):
//
//   from \ to   PASSIVE  DAMP  STANDUP  HOLD  ACTIVE
//   PASSIVE        .      ok     g1      -      -
//   DAMP           ok     .      g1      -      -
//   STANDUP        -      ok     g1      g2     -
//   HOLD           -      ok     g1      ok     g3
//   ACTIVE         -      ok     -       ok     -
//   STOPPING       -      ok     -       -      -
//   FAULT, ESTOP   (nothing: an operator reset first; it returns to DAMP)
//
//   g1 (arming): the operator has enabled, a fresh state has arrived, no fault with a response of
//      hold or worse is active and nothing is latched.
//   g2: the STANDUP interpolation has finished ("the pose has been interpolated").
//   g3: g1 and the pose has been interpolated since the robot was last disarmed.
// STOPPING is entered by request_stop(), by disabling while armed, or by a fault whose response is
// stop; it ends in DAMP (operator stop) or FAULT (fault). A DAMP request during a stop caused by a
// fault goes to FAULT (the latch is kept). ESTOP is entered from anywhere, in the same tick the
// request is seen; every other operator input of that tick is ignored. Entering FAULT or ESTOP
// withdraws the operator's enable. A reset is refused while a latched fault's cause is still active:
// the monitor of a latched fault keeps watching in every mode until a reset clears it.
// "The pose has been interpolated" means the STANDUP profile finished and the limited command is
// within 0.02 rad of its goal on every joint.
//
// [tick]: step() allocates nothing and throws nothing. Everything else is configuration time.
#pragma once

#include <memory>

#include "core/modes.hpp"
#include "safety/events.hpp"
#include "safety/safety.hpp"

namespace vertebra {

// Settle-then-cut: minimum-jerk moves through the configured keyframes from the entry pose, then
// holds the last one; done() once the hold time has passed (the supervisor then cuts to damping).
class SettleMode final : public ControllerMode {
 public:
  explicit SettleMode(const SafetyConfig* cfg) : ControllerMode(ModeId::kSettle), cfg_(cfg) {}
  Status enter(const RobotParams& p, const State& s, const Command& last, const Targets& t, const ModeRequest& req) override;
  Status update(const RobotParams& p, const State& s, const Targets& t, double dt, Command& out) override;
  double progress() const override;
  bool done() const { return elapsed_s_ >= total_s_; }

 private:
  const SafetyConfig* cfg_;
  JointArray start_{};
  double elapsed_s_ = 0, total_s_ = 0;
};

// Why a mode request was refused (SupervisorStatus::request_reason), named in the snapshot so an
// operator sees which gate failed ("not_ready: operator enable missing").
enum class RequestRefusal : int32_t {
  kNone = 0,
  kTransition,           // the mode table has no such transition from the current mode
  kUnknownMode,          // no mode is registered under the requested id
  kOperatorEnable,       // arming: the operator has not enabled
  kNoFreshState,         // arming: no fresh, finite state (lost, frozen, read errors)
  kFaultActive,          // arming: a fault with a response of hold or worse is active
  kFaultLatched,         // arming: a latched fault awaits an operator reset
  kPoseNotInterpolated,  // the STANDUP pose has not been reached (HOLD / ACTIVE)
  kModeRefused,          // the mode's enter() refused the request's parameters
};
const char* request_refusal_text(RequestRefusal r);

struct OperatorInputs {
  bool estop = false;
  bool reset = false;
  bool stop = false;
  bool disable = false;  // applied before enable when both arrive in one tick
  bool enable = false;
  bool has_request = false;
  ModeRequest request{};
};

struct SupervisorStatus {
  SafetyMode mode = SafetyMode::kPassive;
  ModeId controller = ModeId::kZeroTorque;
  double progress = 1.0;
  uint64_t mode_tick = 0;         // tick of the last mode change
  uint64_t latched = 0;           // fault bits latched (response stop or worse) until a reset
  uint64_t active = 0;            // fault conditions present this tick
  std::array<uint64_t, kNumFaults> raised_tick{};  // last tick each fault was raised (0: never)
  bool enabled = false;
  bool pose_interpolated = false;
  uint64_t io_errors = 0;          // the event log's failed writes (its ring's log_io_errors())
  bool stream_expected = false;
  double stream_age_ms = 0;
  uint64_t derated = 0;           // joints whose limits are derated (bit per motor index)
  bool cut = false;               // FAULT/ESTOP send zero torque (category 0) rather than damping
  LimiterCounts clamps{};
  uint32_t last_clamp_flags = 0;
  uint64_t request_seq = 0;
  Status request_status = Status::kOk;
  RequestRefusal request_reason = RequestRefusal::kNone;
  uint64_t requests_rejected = 0;
  uint64_t resets_refused = 0;
};

class Supervisor {
 public:
  Supervisor(const RobotParams& p, const SafetyConfig& cfg, double dt_s, std::shared_ptr<EventRing> ring);
  // Configuration time: the controller ACTIVE runs when a request names `id` (a registered id).
  void register_mode(ModeId id, std::shared_ptr<ControllerMode> m);
  ControllerMode* registered_mode(ModeId id) const;
  const SafetyConfig& config() const { return cfg_; }
  const CommandLimiter& limiter() const { return limiter_; }

  // One tick. `write_status` is the previous tick's write; `last_tick_ns` the previous tick's
  // compute time (loop-overrun monitor). Fills `cmd` with the limited command to write.
  void step(uint64_t tick, int64_t driver_ns, const State& s, Status read_status, Status write_status,
            int64_t last_tick_ns, int64_t period_ns, const Targets& t, const OperatorInputs& in, Command& cmd);
  const SupervisorStatus& status() const { return st_; }

 private:
  static bool armed(SafetyMode m) { return m == SafetyMode::kStandup || m == SafetyMode::kHold || m == SafetyMode::kActive; }
  ControllerMode* controller_for(SafetyMode m);
  SafetyMode target_of(ModeId m) const;
  void go(SafetyMode to, ModeCause cause, int fault);
  void begin_stop(ModeCause cause, int fault);
  void raise(FaultId f, int joint, double value, uint64_t& cond);
  bool watching(uint64_t fault_bits) const { return (st_.latched & fault_bits) != 0; }
  void apply_response(FaultId f);
  void handle_request(const ModeRequest& r, const Targets& t);
  void handle_reset();
  void monitors(const State& s, Status read_status, Status write_status, int64_t last_tick_ns, int64_t period_ns,
                const Targets& t, uint64_t& cond);
  void note_sample(const State& s, Status read_status);
  void emit(Event e);
  uint64_t severe_mask() const;

  RobotParams p_;        // the robot's, with q_lower/q_upper narrowed to the soft limits: the modes
                         // (entry poses, interpolation goals) work inside what the limiter allows
  SafetyConfig cfg_;
  JointArray hard_lower_{}, hard_upper_{};
  double dt_;
  std::shared_ptr<EventRing> ring_;
  CommandLimiter limiter_;

  ZeroTorqueMode zero_;
  DampingMode damping_;
  HoldMode hold_;
  InterpolateMode standup_;
  JointPDMode joint_pd_;
  SettleMode settle_;
  std::array<std::shared_ptr<ControllerMode>, kMaxModeIds> registered_{};  // by id (registered names only)
  ControllerMode* active_ctrl_ = &zero_;  // the controller ACTIVE runs
  ControllerMode* last_ctrl_ = nullptr;   // the controller of the previous tick (mode entry)

  SupervisorStatus st_{};
  const State* s_ = nullptr;  // this tick's inputs (valid inside step())
  const Targets* t_ = nullptr;
  uint64_t tick_ = 0;
  int64_t driver_ns_ = 0;
  Command prev_{};            // the last command written (limited)
  bool stop_fault_ = false;   // the stop in progress was caused by a fault (ends in FAULT)

  // monitor state
  bool have_state_ = false;
  uint64_t last_seq_ = 0, last_fresh_tick_ = 0;
  JointArray prev_q_{}, prev_dq_{};
  std::array<double, 3> prev_gyro_{};
  int64_t frozen_samples_ = 0;
  std::array<uint8_t, kMaxJoints> temp_levels_{};  // bit k: level k (warn, derate, stop) is on
  uint8_t battery_levels_ = 0;                     // bit 0: low, bit 1: critical
  uint64_t derate_now_ = 0;                        // joints derated by this tick's faults
  uint64_t stream_seq_ = 0, last_stream_tick_ = 0;
  std::array<uint8_t, 1024> overrun_ring_{};
  int overrun_count_ = 0;
  uint64_t overrun_pos_ = 0;
  // clamp bursts
  bool in_burst_ = false;
  uint64_t burst_start_tick_ = 0, last_clamp_tick_ = 0, burst_clamps_ = 0;
  uint32_t burst_flags_ = 0;
};

}  // namespace vertebra
