#include "core/modes.hpp"

#include <algorithm>

namespace vertebra {

const char* mode_name(ModeId m) {
  switch (m) {
    case ModeId::kZeroTorque: return "zero_torque";
    case ModeId::kDamping: return "damping";
    case ModeId::kHold: return "hold";
    case ModeId::kInterpolate: return "interpolate";
    case ModeId::kJointPD: return "joint_pd";
    case ModeId::kWbc: return "wbc";
    case ModeId::kSettle: return "settle";
  }
  return "unknown";
}

const char* status_name(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kNoNewData: return "no_new_data";
    case Status::kDriverError: return "driver_error";
    case Status::kNonFinite: return "non_finite";
    case Status::kInvalidRequest: return "invalid_request";
    case Status::kNotReady: return "not_ready";
    case Status::kSolverFailed: return "solver_failed";
  }
  return "unknown";
}

static void zero_command(int n, Command& out) {
  out.n = n;
  for (int i = 0; i < n; ++i) out.q[i] = out.dq[i] = out.kp[i] = out.kd[i] = out.tau_ff[i] = 0.0;
}

void entry_pose(const RobotParams& p, const State& s, const Command& last, JointArray& out) {
  const bool have_last = last.n == p.n;
  for (int i = 0; i < p.n; ++i) {
    double q;
    if (std::isfinite(s.q[i])) {
      // The position target that, with this mode's stiffness, asks the motor for the torque the
      // last command asked for (its spring term and feed-forward; damping aside). A plain PD command
      // with the same gains gives back its own target; a limp one gives the measured position; a
      // whole-body command (low stiffness + feed-forward) keeps its gravity support.
      const double tau = have_last && std::isfinite(last.q[i]) && std::isfinite(last.kp[i]) && std::isfinite(last.tau_ff[i])
                             ? last.kp[i] * (last.q[i] - s.q[i]) + last.tau_ff[i]
                             : 0.0;
      q = p.kp[i] > 0.0 ? s.q[i] + tau / p.kp[i] : s.q[i];
    } else {
      q = have_last && last.kp[i] > 0.0 ? last.q[i] : s.q[i];  // no measurement: the last stiff target (or NaN)
    }
    out[i] = q < p.q_lower[i] ? p.q_lower[i] : (q > p.q_upper[i] ? p.q_upper[i] : q);  // NaN passes through
  }
}

Status ZeroTorqueMode::update(const RobotParams& p, const State& s, const Targets&, double, Command& out) {
  zero_command(p.n, out);
  for (int i = 0; i < p.n; ++i) out.q[i] = std::isfinite(s.q[i]) ? s.q[i] : 0.0;  // informative: kp is 0
  return Status::kOk;
}

Status DampingMode::update(const RobotParams& p, const State& s, const Targets&, double, Command& out) {
  zero_command(p.n, out);
  for (int i = 0; i < p.n; ++i) {
    out.q[i] = std::isfinite(s.q[i]) ? s.q[i] : 0.0;  // informative: kp is 0
    out.kd[i] = p.kd_damping[i];
  }
  return Status::kOk;
}

Status HoldMode::enter(const RobotParams& p, const State& s, const Command& last, const Targets&, const ModeRequest&) {
  entry_pose(p, s, last, pose_);
  if (!all_finite(pose_, p.n)) return Status::kNonFinite;
  return Status::kOk;
}

Status HoldMode::update(const RobotParams& p, const State&, const Targets&, double, Command& out) {
  zero_command(p.n, out);
  for (int i = 0; i < p.n; ++i) {
    out.q[i] = pose_[i];
    out.kp[i] = p.kp[i];
    out.kd[i] = p.kd[i];
  }
  return Status::kOk;
}

Status InterpolateMode::enter(const RobotParams& p, const State& s, const Command& last, const Targets&, const ModeRequest& req) {
  if (req.n != p.n || !(req.duration_s > 0.0) || !std::isfinite(req.duration_s) || !all_finite(req.pose, p.n))
    return Status::kInvalidRequest;
  for (int i = 0; i < p.n; ++i)
    if (req.pose[i] < p.q_lower[i] || req.pose[i] > p.q_upper[i]) return Status::kInvalidRequest;
  entry_pose(p, s, last, start_);
  if (!all_finite(start_, p.n)) return Status::kNonFinite;
  goal_ = req.pose;
  duration_s_ = req.duration_s;
  elapsed_s_ = 0.0;
  return Status::kOk;
}

Status InterpolateMode::update(const RobotParams& p, const State&, const Targets&, double dt, Command& out) {
  elapsed_s_ += dt;
  const double tau = std::min(elapsed_s_ / duration_s_, 1.0);
  // Minimum-jerk profile s(τ) = 10τ³ - 15τ⁴ + 6τ⁵ and its time derivative.
  const double s = tau * tau * tau * (10.0 - 15.0 * tau + 6.0 * tau * tau);
  const double ds = tau < 1.0 ? 30.0 * tau * tau * (1.0 - tau) * (1.0 - tau) / duration_s_ : 0.0;
  zero_command(p.n, out);
  for (int i = 0; i < p.n; ++i) {
    const double d = goal_[i] - start_[i];
    out.q[i] = start_[i] + s * d;
    out.dq[i] = ds * d;
    out.kp[i] = p.kp[i];
    out.kd[i] = p.kd[i];
  }
  return Status::kOk;
}

Status JointPDMode::enter(const RobotParams& p, const State& s, const Command& last, const Targets& t, const ModeRequest& req) {
  entry_seq_ = t.seq;
  n_ = p.n;
  return fallback_.enter(p, s, last, t, req);
}

Status JointPDMode::update(const RobotParams& p, const State& s, const Targets& t, double dt, Command& out) {
  if (t.seq <= entry_seq_ || t.n != p.n) return fallback_.update(p, s, t, dt, out);
  out.n = p.n;
  for (int i = 0; i < p.n; ++i) {
    out.q[i] = t.q[i];
    out.dq[i] = t.dq[i];
    out.kp[i] = t.kp[i];
    out.kd[i] = t.kd[i];
    out.tau_ff[i] = t.tau_ff[i];
  }
  return Status::kOk;
}

}  // namespace vertebra
