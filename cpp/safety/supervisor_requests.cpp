// Supervisor: operator mode requests against the mode table and its arming gates, and resets
// (cpp/safety/supervisor.hpp has the table). [tick]: called from step().
#include "safety/supervisor.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace vertebra {

void Supervisor::handle_reset() {
  Event e;
  e.kind = EventKind::kOperator;
  e.from = static_cast<int32_t>(st_.mode);
  const uint64_t still = st_.latched & st_.active;
  if ((st_.mode != SafetyMode::kFault && st_.mode != SafetyMode::kEstop) || still != 0) {
    e.code = static_cast<int32_t>(OperatorAction::kResetRefused);
    e.mask = still;
    ++st_.resets_refused;
    emit(e);
    return;
  }
  e.code = static_cast<int32_t>(OperatorAction::kReset);
  e.mask = st_.latched;
  emit(e);
  st_.latched = 0;
  st_.cut = false;
  stop_fault_ = false;
  go(SafetyMode::kDamp, ModeCause::kReset, -1);  // a reset never re-arms stiffness by itself
}

const char* request_refusal_text(RequestRefusal r) {
  switch (r) {
    case RequestRefusal::kNone: return "";
    case RequestRefusal::kTransition: return "no such transition from the current mode";
    case RequestRefusal::kUnknownMode: return "no mode is registered under that id";
    case RequestRefusal::kOperatorEnable: return "operator enable missing";
    case RequestRefusal::kNoFreshState: return "no fresh state from the driver";
    case RequestRefusal::kFaultActive: return "a fault with a response of hold or worse is active";
    case RequestRefusal::kFaultLatched: return "a latched fault needs an operator reset";
    case RequestRefusal::kPoseNotInterpolated: return "the standup pose has not been reached";
    case RequestRefusal::kModeRefused: return "the mode refused the request's parameters";
  }
  return "";
}

void Supervisor::register_mode(ModeId id, std::shared_ptr<ControllerMode> m) {
  const int k = static_cast<int>(id);
  if (k < kFirstRegisteredMode || k >= kMaxModeIds || !m)
    throw std::invalid_argument("Supervisor::register_mode: a registered mode id (" + std::to_string(kFirstRegisteredMode) +
                                ".." + std::to_string(kMaxModeIds - 1) + ") and a mode are required");
  m->set_registered_id(id);
  registered_[k] = std::move(m);
}

ControllerMode* Supervisor::registered_mode(ModeId id) const {
  const int k = static_cast<int>(id);
  return k >= kFirstRegisteredMode && k < kMaxModeIds ? registered_[k].get() : nullptr;
}

SafetyMode Supervisor::target_of(ModeId m) const {
  switch (m) {
    case ModeId::kZeroTorque: return SafetyMode::kPassive;
    case ModeId::kDamping: return SafetyMode::kDamp;
    case ModeId::kInterpolate: return SafetyMode::kStandup;
    case ModeId::kHold: return SafetyMode::kHold;
    case ModeId::kJointPD: return SafetyMode::kActive;
    case ModeId::kSettle: break;
  }
  if (registered_mode(m)) return SafetyMode::kActive;  // every registered controller runs in ACTIVE
  return SafetyMode::kFault;  // not requestable
}

void Supervisor::handle_request(const ModeRequest& r, const Targets& t) {
  const SafetyMode from = st_.mode;
  const SafetyMode to = target_of(r.mode);
  Status st = Status::kOk;
  RequestRefusal why = RequestRefusal::kNone;
  ControllerMode* ctrl = nullptr;
  const bool fresh = have_state_ && (st_.active & (fault_bit(FaultId::kStateLoss) | fault_bit(FaultId::kStateFrozen) |
                                                     fault_bit(FaultId::kDriverRead) | fault_bit(FaultId::kNonFiniteState))) == 0;
  // The arming gate, first failing condition named.
  RequestRefusal arming = RequestRefusal::kNone;
  if (!st_.enabled) arming = RequestRefusal::kOperatorEnable;
  else if (!fresh) arming = RequestRefusal::kNoFreshState;
  else if (st_.latched != 0) arming = RequestRefusal::kFaultLatched;
  else if ((st_.active & severe_mask()) != 0) arming = RequestRefusal::kFaultActive;
  const bool arming_ok = arming == RequestRefusal::kNone;
  auto refuse = [&](Status code, RequestRefusal reason) {
    st = code;
    why = reason;
  };
  using M = SafetyMode;
  switch (to) {
    case M::kPassive:
      if (!(from == M::kPassive || from == M::kDamp)) refuse(Status::kInvalidRequest, RequestRefusal::kTransition);
      ctrl = &zero_;
      break;
    case M::kDamp:
      if (from == M::kFault || from == M::kEstop) refuse(Status::kInvalidRequest, RequestRefusal::kTransition);
      ctrl = &damping_;
      break;
    case M::kStandup:
      if (!(from == M::kPassive || from == M::kDamp || from == M::kStandup || from == M::kHold))
        refuse(Status::kInvalidRequest, RequestRefusal::kTransition);
      else if (!arming_ok) refuse(Status::kNotReady, arming);
      ctrl = &standup_;
      break;
    case M::kHold:
      if (from == M::kStandup) {
        if (!st_.pose_interpolated) refuse(Status::kNotReady, RequestRefusal::kPoseNotInterpolated);
      } else if (!(from == M::kHold || from == M::kActive)) {
        refuse(Status::kInvalidRequest, RequestRefusal::kTransition);
      }
      ctrl = &hold_;
      break;
    case M::kActive:
      ctrl = r.mode == ModeId::kJointPD ? static_cast<ControllerMode*>(&joint_pd_) : registered_mode(r.mode);
      if (from != M::kHold) refuse(Status::kInvalidRequest, RequestRefusal::kTransition);
      else if (!arming_ok) refuse(Status::kNotReady, arming);
      else if (!st_.pose_interpolated) refuse(Status::kNotReady, RequestRefusal::kPoseNotInterpolated);
      break;
    default:
      refuse(Status::kInvalidRequest, registered_mode(r.mode) || static_cast<int>(r.mode) == static_cast<int>(ModeId::kSettle)
                                          ? RequestRefusal::kTransition : RequestRefusal::kUnknownMode);
  }
  if (st == Status::kOk) {
    st = ctrl->enter(p_, *s_, prev_, t, r);
    if (st != Status::kOk) why = RequestRefusal::kModeRefused;
  }
  if (st == Status::kOk) st = ctrl->enter(p_, *s_, prev_, t, r);
  Event e;
  e.kind = EventKind::kOperator;
  e.from = static_cast<int32_t>(from);
  e.to = static_cast<int32_t>(to);
  e.joint = static_cast<int32_t>(r.mode);
  e.status = static_cast<int32_t>(st);
  e.code = static_cast<int32_t>(st == Status::kOk ? OperatorAction::kRequestAccepted : OperatorAction::kRequestRefused);
  emit(e);
  st_.request_seq = r.seq;
  st_.request_status = st;
  st_.request_reason = why;
  if (st != Status::kOk) {
    ++st_.requests_rejected;
    return;
  }
  const bool keep_interpolated = st_.pose_interpolated && (to == M::kHold || to == M::kActive);
  if (to == M::kActive) active_ctrl_ = ctrl;
  if (to == M::kDamp && from == M::kStopping && stop_fault_) {
    go(M::kFault, ModeCause::kRequest, -1);  // cutting a fault's stop short keeps its latch
    return;
  }
  go(to, ModeCause::kRequest, -1);
  st_.pose_interpolated = keep_interpolated;
  if (to == M::kActive && r.stream) {
    st_.stream_expected = true;
    stream_seq_ = ctrl->input_seq(t);
    last_stream_tick_ = tick_;
  } else {
    st_.stream_expected = false;
  }
}

}  // namespace vertebra
