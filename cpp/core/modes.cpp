#include "core/modes.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <stdexcept>

namespace vertebra {

namespace {
// Registered names, indexed by id - kFirstRegisteredMode. Append-only: an entry is written fully
// before `count` is released, so readers (mode_name(), any thread) never see a partial name.
struct NameTable {
  std::mutex mutex;  // writers only
  std::atomic<int> count{0};
  std::array<std::array<char, 32>, kMaxModeIds - kFirstRegisteredMode> names{};
};
NameTable& names() {
  static NameTable t;
  return t;
}
const char* builtin_name(ModeId m) {
  switch (m) {
    case ModeId::kZeroTorque: return "zero_torque";
    case ModeId::kDamping: return "damping";
    case ModeId::kHold: return "hold";
    case ModeId::kInterpolate: return "interpolate";
    case ModeId::kJointPD: return "joint_pd";
    case ModeId::kSettle: return "settle";
  }
  return nullptr;
}
constexpr ModeId kBuiltins[] = {ModeId::kZeroTorque, ModeId::kDamping, ModeId::kHold, ModeId::kInterpolate,
                                ModeId::kJointPD, ModeId::kSettle};
}  // namespace

const char* mode_name(ModeId m) {
  if (const char* b = builtin_name(m)) return b;
  const int k = static_cast<int>(m) - kFirstRegisteredMode;
  NameTable& t = names();
  if (k >= 0 && k < t.count.load(std::memory_order_acquire)) return t.names[k].data();
  return "unknown";
}

bool find_mode(const std::string& name, ModeId& out) {
  for (ModeId b : kBuiltins)
    if (name == builtin_name(b)) {
      out = b;
      return true;
    }
  NameTable& t = names();
  const int n = t.count.load(std::memory_order_acquire);
  for (int k = 0; k < n; ++k)
    if (name == t.names[k].data()) {
      out = static_cast<ModeId>(kFirstRegisteredMode + k);
      return true;
    }
  return false;
}

std::string known_mode_names() {
  std::string all;
  for (ModeId b : kBuiltins) all += (all.empty() ? "" : ", ") + std::string(builtin_name(b));
  NameTable& t = names();
  const int n = t.count.load(std::memory_order_acquire);
  for (int k = 0; k < n; ++k) all += ", " + std::string(t.names[k].data());
  return all;
}

ModeId mode_id_for_name(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 31 && name[0] >= 'a' && name[0] <= 'z';
  for (char c : name) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  if (!ok)
    throw std::invalid_argument("mode name '" + name + "': expected a lower-case identifier ([a-z][a-z0-9_]*, at most 31 "
                                "characters)");
  for (ModeId b : kBuiltins)
    if (name == builtin_name(b))
      throw std::invalid_argument("mode name '" + name + "' is a built-in mode; built-in modes are: zero_torque, damping, "
                                  "hold, interpolate, joint_pd, settle");
  NameTable& t = names();
  std::lock_guard<std::mutex> lock(t.mutex);
  const int n = t.count.load(std::memory_order_relaxed);
  for (int k = 0; k < n; ++k)
    if (name == t.names[k].data()) return static_cast<ModeId>(kFirstRegisteredMode + k);
  if (n >= static_cast<int>(t.names.size()))
    throw std::invalid_argument("mode name '" + name + "': the process already has " + std::to_string(n) +
                                " registered mode names (the most there can be); names are: " + known_mode_names());
  std::copy(name.begin(), name.end(), t.names[n].begin());
  t.names[n][name.size()] = '\0';
  t.count.store(n + 1, std::memory_order_release);
  return static_cast<ModeId>(kFirstRegisteredMode + n);
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
