#include "hil/bench_mode.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace vertebra {

BenchMode::BenchMode(int n, const std::vector<double>& hold_kp, const std::vector<double>& hold_kd, int capacity_ticks)
    : n_(n), capacity_(capacity_ticks) {
  if (n < 1 || n > kMaxJoints)
    throw std::invalid_argument("BenchMode: n: found " + std::to_string(n) + "; valid: 1 to " + std::to_string(kMaxJoints));
  if (static_cast<int>(hold_kp.size()) != n || static_cast<int>(hold_kd.size()) != n)
    throw std::invalid_argument("BenchMode: hold_kp and hold_kd need " + std::to_string(n) + " values each, found " +
                                std::to_string(hold_kp.size()) + " and " + std::to_string(hold_kd.size()));
  if (capacity_ticks < 1 || capacity_ticks > 2'000'000)
    throw std::invalid_argument("BenchMode: capacity_ticks: found " + std::to_string(capacity_ticks) + "; valid: 1 to 2000000");
  for (int i = 0; i < n; ++i) {
    if (!(std::isfinite(hold_kp[i]) && hold_kp[i] >= 0 && std::isfinite(hold_kd[i]) && hold_kd[i] >= 0))
      throw std::invalid_argument("BenchMode: hold gains of joint " + std::to_string(i) + " must be finite and >= 0");
    hold_kp_[i] = hold_kp[i];
    hold_kd_[i] = hold_kd[i];
  }
  const size_t c = static_cast<size_t>(capacity_ticks);
  q_.resize(c);
  dq_.resize(c);
  tau_.resize(c);
  stamp_.resize(c);
  seq_.resize(c);
  tq_.resize(c * n);
  tdq_.resize(c * n);
  ttau_.resize(c * n);
  ttemp_.resize(c * n);
  tgyro_.resize(c * 3);
  tacc_.resize(c * 3);
  tquat_.resize(c * 4);
}

void BenchMode::load(const BenchProgram& prog) {
  const BenchState st = state_.load(std::memory_order_acquire);
  if (st == BenchState::kArmed || st == BenchState::kPlaying)
    throw std::logic_error("BenchMode: a program is playing; wait for it to finish (state done) or abort() it");
  if (prog.joint < 0 || prog.joint >= n_)
    throw std::invalid_argument("BenchMode: program joint: found " + std::to_string(prog.joint) + "; valid: 0 to " +
                                std::to_string(n_ - 1));
  const size_t m = prog.q.size();
  if (m < 1 || prog.dq.size() != m || prog.tau_ff.size() != m)
    throw std::invalid_argument("BenchMode: a program needs q, dq and tau_ff of one equal, non-zero length; found " +
                                std::to_string(prog.q.size()) + ", " + std::to_string(prog.dq.size()) + ", " +
                                std::to_string(prog.tau_ff.size()));
  if (m > static_cast<size_t>(capacity_))
    throw std::invalid_argument("BenchMode: program of " + std::to_string(m) + " ticks; capacity " + std::to_string(capacity_));
  if (!(std::isfinite(prog.kp) && prog.kp >= 0 && std::isfinite(prog.kd) && prog.kd >= 0))
    throw std::invalid_argument("BenchMode: program gains must be finite and >= 0");
  for (size_t k = 0; k < m; ++k)
    if (!std::isfinite(prog.q[k]) || !std::isfinite(prog.dq[k]) || !std::isfinite(prog.tau_ff[k]))
      throw std::invalid_argument("BenchMode: program sample " + std::to_string(k) + " is not finite");
  std::copy(prog.q.begin(), prog.q.end(), q_.begin());
  std::copy(prog.dq.begin(), prog.dq.end(), dq_.begin());
  std::copy(prog.tau_ff.begin(), prog.tau_ff.end(), tau_.begin());
  joint_ = prog.joint;
  ticks_ = static_cast<int32_t>(m);
  kp_ = prog.kp;
  kd_ = prog.kd;
  played_.store(0, std::memory_order_relaxed);
  abort_.store(false, std::memory_order_relaxed);
  state_.store(BenchState::kLoaded, std::memory_order_release);
}

void BenchMode::start() {
  BenchState expected = BenchState::kLoaded;
  if (!state_.compare_exchange_strong(expected, BenchState::kArmed, std::memory_order_acq_rel))
    throw std::logic_error("BenchMode: start() needs a loaded program (load() first; one program plays once)");
}

Status BenchMode::enter(const RobotParams& p, const State& s, const Command& last, const Targets&, const ModeRequest&) {
  if (p.n != n_ || s.n != n_) return Status::kInvalidRequest;
  entry_pose(p, s, last, pose_);
  published_pose_.store(pose_);
  const BenchState st = state_.load(std::memory_order_acquire);
  if (st == BenchState::kArmed || st == BenchState::kPlaying) {  // armed under an earlier entry: not played
    aborted_ = true;
    state_.store(BenchState::kDone, std::memory_order_release);
  }
  return Status::kOk;
}

Status BenchMode::update(const RobotParams& p, const State& s, const Targets&, double, Command& out) {
  out.n = n_;
  for (int i = 0; i < n_; ++i) {
    out.q[i] = pose_[i];
    out.dq[i] = 0.0;
    out.kp[i] = hold_kp_[i];
    out.kd[i] = hold_kd_[i];
    out.tau_ff[i] = 0.0;
  }
  BenchState st = state_.load(std::memory_order_acquire);
  if (st == BenchState::kArmed) {
    k_ = 0;
    aborted_ = false;
    st = BenchState::kPlaying;
    state_.store(st, std::memory_order_release);
  }
  if (st == BenchState::kPlaying && abort_.load(std::memory_order_acquire)) {
    aborted_ = true;
    pose_[joint_] = k_ > 0 ? q_[k_ - 1] : pose_[joint_];
    published_pose_.store(pose_);
    state_.store(BenchState::kDone, std::memory_order_release);
    return Status::kOk;
  }
  if (st != BenchState::kPlaying) return Status::kOk;
  const int j = joint_, k = k_;
  out.q[j] = q_[k];
  out.dq[j] = dq_[k];
  out.kp[j] = kp_;
  out.kd[j] = kd_;
  out.tau_ff[j] = tau_[k];
  stamp_[k] = s.stamp_ns;
  seq_[k] = s.seq;
  const size_t row = static_cast<size_t>(k) * n_;
  for (int i = 0; i < n_; ++i) {
    tq_[row + i] = s.q[i];
    tdq_[row + i] = s.dq[i];
    ttau_[row + i] = s.tau[i];
    ttemp_[row + i] = s.has_motor_temp ? s.motor_temp_c[i] : NAN;
  }
  for (int a = 0; a < 3; ++a) {
    tgyro_[k * 3 + a] = s.imu_gyro[a];
    tacc_[k * 3 + a] = s.imu_acc[a];
  }
  for (int a = 0; a < 4; ++a) tquat_[k * 4 + a] = s.imu_quat[a];
  k_ = k + 1;
  played_.store(k_, std::memory_order_relaxed);
  if (k_ >= ticks_) {
    pose_[j] = q_[ticks_ - 1];  // the joint holds the program's last target from now on
    published_pose_.store(pose_);
    state_.store(BenchState::kDone, std::memory_order_release);
  }
  (void)p;
  return Status::kOk;
}

double BenchMode::progress() const {
  const BenchState st = state_.load(std::memory_order_acquire);
  if (st == BenchState::kDone || st == BenchState::kIdle) return 1.0;
  return ticks_ > 0 ? static_cast<double>(played_.load(std::memory_order_relaxed)) / ticks_ : 0.0;
}

BenchTrace BenchMode::trace() const {
  if (state_.load(std::memory_order_acquire) != BenchState::kDone)
    throw std::logic_error("BenchMode: trace() needs a finished program (state done)");
  BenchTrace t;
  t.n = n_;
  t.ticks = k_;
  t.joint = joint_;
  t.aborted = aborted_;
  const size_t m = static_cast<size_t>(k_), mn = m * n_;
  t.stamp_ns.assign(stamp_.begin(), stamp_.begin() + m);
  t.seq.assign(seq_.begin(), seq_.begin() + m);
  t.q.assign(tq_.begin(), tq_.begin() + mn);
  t.dq.assign(tdq_.begin(), tdq_.begin() + mn);
  t.tau.assign(ttau_.begin(), ttau_.begin() + mn);
  t.temp_c.assign(ttemp_.begin(), ttemp_.begin() + mn);
  t.gyro.assign(tgyro_.begin(), tgyro_.begin() + m * 3);
  t.acc.assign(tacc_.begin(), tacc_.begin() + m * 3);
  t.quat.assign(tquat_.begin(), tquat_.begin() + m * 4);
  t.cmd_q.assign(q_.begin(), q_.begin() + m);
  t.cmd_dq.assign(dq_.begin(), dq_.begin() + m);
  t.cmd_tau_ff.assign(tau_.begin(), tau_.begin() + m);
  return t;
}

std::vector<double> BenchMode::hold_pose() const {
  JointArray p{};
  published_pose_.load(p);
  return std::vector<double>(p.begin(), p.begin() + n_);
}

}  // namespace vertebra
