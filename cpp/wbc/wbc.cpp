#include "wbc/wbc.hpp"

#include <pinocchio/algorithm/center-of-mass.hpp>
#include <pinocchio/algorithm/model.hpp>
#include <pinocchio/algorithm/crba.hpp>
#include <pinocchio/algorithm/frames.hpp>
#include <pinocchio/algorithm/jacobian.hpp>
#include <pinocchio/algorithm/kinematics.hpp>
#include <pinocchio/algorithm/rnea.hpp>
#include <pinocchio/spatial/explog.hpp>

#include <chrono>
#include <cmath>
#include <stdexcept>

#include "core/robot_model_impl.hpp"
#include "wbc/qp_solver.hpp"

namespace vertebra {

namespace {
constexpr double kFree = DenseQp::kFree;
using Clock = std::chrono::steady_clock;
inline double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}
Eigen::Quaterniond quat_wxyz(const std::array<double, 4>& a) {
  Eigen::Quaterniond q(a[0], a[1], a[2], a[3]);
  const double n = q.norm();
  if (!(n > 1e-9) || !std::isfinite(n)) return Eigen::Quaterniond::Identity();
  q.coeffs() /= n;
  return q;
}
// Rotation with the same heading (yaw) as R and no roll/pitch.
Eigen::Matrix3d level(const Eigen::Matrix3d& R) {
  const double yaw = std::atan2(R(1, 0), R(0, 0));
  return Eigen::AngleAxisd(yaw, Eigen::Vector3d::UnitZ()).toRotationMatrix();
}
}  // namespace

struct WholeBodyController::Impl {
  pinocchio::Model model;
  pinocchio::Data data;
  int nv = 0, nj = 0, n = 0, neq = 0, nin = 0;
  std::vector<int> m2q, m2v;  // motor index -> model q/v index
  std::vector<pinocchio::FrameIndex> contact_fid, hand_fid;
  pinocchio::FrameIndex base_fid = 0, torso_fid = 0;
  bool has_torso = false;
  Eigen::VectorXd tau_max_v;  // per model v index (joints only meaningful)

  // per-tick workspace; the QP's matrices live in the solver (filled in place)
  Eigen::VectorXd q, v, a0;
  DenseQp qp;
  DenseQp::RowMat &H, &A, &C;
  Eigen::VectorXd &g, &b, &l, &u, &lbox, &ubox;
  Eigen::MatrixXd Jc, J6;
  Eigen::MatrixXd Jw;  // all weighted task rows stacked, then one symmetric rank update of H
  int task_rows = 0;
  Eigen::VectorXd drift_c;
  Eigen::VectorXd ddq, f, tau;

  // references (active targets)
  Eigen::Vector3d com_ref = Eigen::Vector3d::Zero();
  Eigen::Vector3d base_pos_ref = Eigen::Vector3d::Zero();
  Eigen::Matrix3d base_rot_ref = Eigen::Matrix3d::Identity(), torso_rot_ref = Eigen::Matrix3d::Identity();
  std::array<Eigen::Vector3d, kMaxHands> hand_pos_ref{};
  std::array<Eigen::Matrix3d, kMaxHands> hand_rot_ref{};
  std::array<bool, kMaxHands> hand_active{};
  std::array<Eigen::Vector3d, kMaxContacts> foot_pos_ref{};
  std::array<Eigen::Matrix3d, kMaxContacts> foot_rot_ref{};
  std::array<bool, kMaxContacts> contact_target{}, contact_on{};
  std::array<double, kMaxContacts> contact_w{};
  std::array<double, kMaxContacts> ramp_ref{};  // normal force the ramp scales: at release / the weight
  double weight_n = 0;
  bool solved_since_entry = false;
  JointArray posture{};
  WbcTargets latest{};
  uint64_t entry_seq = 0;
  Command last_cmd{};
  WbcStatus st{};

  Impl(int n_, int neq_, int nin_, const WbcConfig& c)
      : qp(n_, neq_, nin_, c.qp_backend, c.eps_abs, c.max_iter),
        H(qp.H()), A(qp.A()), C(qp.C()), g(qp.g()), b(qp.b()), l(qp.l()), u(qp.u()), lbox(qp.lbox()),
        ubox(qp.ubox()) {}
};

WholeBodyController::WholeBodyController(const RobotModel& robot, const WbcConfig& cfg) : cfg_(cfg) {
  const int nj = robot.n_joints();
  nc_ = static_cast<int>(cfg.foot_frames.size());
  m_ = cfg.flat_feet ? 6 : 3;
  if (nc_ < 1 || nc_ > kMaxContacts)
    throw std::invalid_argument("WBC: 1.." + std::to_string(kMaxContacts) + " foot frames expected, found " +
                                std::to_string(nc_));
  if (static_cast<int>(cfg.hand_frames.size()) > kMaxHands)
    throw std::invalid_argument("WBC: at most 2 hand frames");
  auto check_len = [nj](const std::vector<double>& v, const char* what) {
    if (static_cast<int>(v.size()) != nj)
      throw std::invalid_argument(std::string("WBC: ") + what + " needs " + std::to_string(nj) + " values, found " +
                                  std::to_string(v.size()));
  };
  check_len(cfg.armature, "armature");
  check_len(cfg.out_kp, "out_kp");
  check_len(cfg.out_kd, "out_kd");
  if (cfg.sole_offset_m.size() != 3) throw std::invalid_argument("WBC: sole_offset_m needs 3 values");
  if (!(cfg.friction > 0) || !(cfg.control_rate_hz > 0) || !(cfg.contact_ramp_s > 0) ||
      !(cfg.max_normal_force_n > cfg.min_normal_force_n) || cfg.min_normal_force_n < 0 ||
      !(cfg.limit_horizon_s > 0) || !(cfg.eps_abs > 0) || cfg.max_iter < 1 || !(cfg.max_position_error_m > 0) ||
      !(cfg.max_rotation_error_rad > 0))
    throw std::invalid_argument("WBC: friction, control_rate_hz, contact_ramp_s, limit_horizon_s, eps_abs, max_iter "
                                "and the task error limits must be > 0, and 0 <= min_normal_force_n < "
                                "max_normal_force_n");

  const int nv = robot.nv();
  const int n = nv + nc_ * m_;
  const int neq = 6 + nc_ * m_;
  const int nin = nj + nc_ * (cfg.flat_feet ? 16 : 4);
  impl_ = std::make_unique<Impl>(n, neq, nin, cfg);
  Impl& I = *impl_;
  I.model = robot.impl().model;
  I.nv = nv;
  I.nj = nj;
  I.n = n;
  I.neq = neq;
  I.nin = nin;
  I.m2q = robot.motor_to_q();
  I.m2v = robot.motor_to_v();
  I.tau_max_v = Eigen::VectorXd::Constant(nv, kFree);
  for (int i = 0; i < nj; ++i) {
    I.model.armature[I.m2v[i]] = cfg.armature[i];
    I.tau_max_v[I.m2v[i]] = robot.limits().effort[i];
  }
  // Contact frames: the sole point (flat) or foot centre (point) on each foot.
  for (int c = 0; c < nc_; ++c) {
    const auto parent = static_cast<pinocchio::FrameIndex>(robot.frame_id(cfg.foot_frames[c]));
    const auto& pf = I.model.frames[parent];
    pinocchio::SE3 offset(Eigen::Matrix3d::Identity(),
                          Eigen::Vector3d(cfg.sole_offset_m[0], cfg.sole_offset_m[1], cfg.sole_offset_m[2]));
    I.contact_fid.push_back(I.model.addFrame(pinocchio::Frame("wbc_contact_" + cfg.foot_frames[c], pf.parentJoint,
                                                              parent, pf.placement * offset, pinocchio::OP_FRAME)));
  }
  I.base_fid = static_cast<pinocchio::FrameIndex>(robot.frame_id(cfg.base_frame));
  if (!cfg.torso_frame.empty()) {
    I.torso_fid = static_cast<pinocchio::FrameIndex>(robot.frame_id(cfg.torso_frame));
    I.has_torso = true;
  }
  for (const auto& h : cfg.hand_frames) I.hand_fid.push_back(static_cast<pinocchio::FrameIndex>(robot.frame_id(h)));
  I.data = pinocchio::Data(I.model);
  I.weight_n = pinocchio::computeTotalMass(I.model) * 9.81;

  I.q = Eigen::VectorXd::Zero(I.model.nq);
  I.v = Eigen::VectorXd::Zero(nv);
  I.a0 = Eigen::VectorXd::Zero(nv);
  I.Jc = Eigen::MatrixXd::Zero(nc_ * m_, nv);
  I.J6 = Eigen::MatrixXd::Zero(6, nv);
  // rows: CoM 3 + base 6 + torso 6 + hands 6 each + swing feet 6 each
  I.Jw = Eigen::MatrixXd::Zero(3 + 6 + 6 + 6 * kMaxHands + 6 * kMaxContacts, nv);
  I.drift_c = Eigen::VectorXd::Zero(nc_ * m_);
  I.ddq = Eigen::VectorXd::Zero(nv);
  I.f = Eigen::VectorXd::Zero(nc_ * m_);
  I.tau = Eigen::VectorXd::Zero(nv);
}

WholeBodyController::~WholeBodyController() = default;

int WholeBodyController::n_variables() const { return impl_->n; }
int WholeBodyController::n_eq() const { return impl_->neq; }
int WholeBodyController::n_in() const { return impl_->nin; }
Eigen::VectorXd WholeBodyController::last_ddq() const { return impl_->ddq; }
Eigen::VectorXd WholeBodyController::last_forces() const { return impl_->f; }
Eigen::VectorXd WholeBodyController::last_tau() const {
  Eigen::VectorXd out(impl_->nj);
  for (int i = 0; i < impl_->nj; ++i) out[i] = impl_->tau[impl_->m2v[i]];
  return out;
}

void WholeBodyController::publish_targets(const WbcTargets& t) {
  std::lock_guard<std::mutex> lock(publish_mutex_);
  targets_in_.write(t);
  published_.fetch_add(1, std::memory_order_acq_rel);
}

void WholeBodyController::stream_targets(const double* v, int n) {
  Impl& I = *impl_;
  const int nh = static_cast<int>(I.hand_fid.size());
  for (int h = 0; h < nh && 3 * h + 2 < n; ++h) {
    const double* p = v + 3 * h;
    if (!(std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]))) continue;
    I.hand_active[h] = true;
    I.hand_pos_ref[h] = Eigen::Vector3d(p[0], p[1], p[2]);
  }
  ++streamed_;
}

// Fill q, v (pinocchio conventions) from a driver state. Returns false without a base estimate.
static bool load_state(WholeBodyController::Impl& I, const State& s) {
  if (!s.has_base_truth) return false;
  for (int k = 0; k < 3; ++k) I.q[k] = s.base_pos[k];
  const Eigen::Quaterniond qb = quat_wxyz(s.base_quat);
  I.q[3] = qb.x();
  I.q[4] = qb.y();
  I.q[5] = qb.z();
  I.q[6] = qb.w();
  const Eigen::Matrix3d R = qb.toRotationMatrix();
  const Eigen::Vector3d vw(s.base_lin_vel[0], s.base_lin_vel[1], s.base_lin_vel[2]);
  I.v.head<3>().noalias() = R.transpose() * vw;  // free-flyer velocity is in the base frame
  for (int k = 0; k < 3; ++k) I.v[3 + k] = s.base_ang_vel[k];
  for (int i = 0; i < I.nj; ++i) {
    I.q[I.m2q[i]] = s.q[i];
    I.v[I.m2v[i]] = s.dq[i];
  }
  return I.q.allFinite() && I.v.allFinite();
}

static void kinematics(WholeBodyController::Impl& I) {
  auto& m = I.model;
  auto& d = I.data;
  pinocchio::forwardKinematics(m, d, I.q, I.v, I.a0);  // a = drift (zero joint acceleration)
  pinocchio::computeJointJacobians(m, d);
  pinocchio::updateFramePlacements(m, d);
  pinocchio::crba(m, d, I.q, pinocchio::Convention::WORLD);
  d.M.triangularView<Eigen::StrictlyLower>() = d.M.transpose().triangularView<Eigen::StrictlyLower>();
  pinocchio::nonLinearEffects(m, d, I.q, I.v);
  pinocchio::centerOfMass(m, d, pinocchio::ACCELERATION, false);
  pinocchio::getJacobianComFromCrba(m, d);
}

Status WholeBodyController::enter(const RobotParams& p, const State& s, const Command& last, const Targets&,
                                  const ModeRequest&) {
  Impl& I = *impl_;
  if (p.n != I.nj || !load_state(I, s)) return Status::kInvalidRequest;  // needs a floating-base state
  kinematics(I);
  I.com_ref = I.data.com[0];
  const auto& oMb = I.data.oMf[I.base_fid];
  I.base_pos_ref = oMb.translation();
  I.base_rot_ref = level(oMb.rotation());
  if (I.has_torso) I.torso_rot_ref = level(I.data.oMf[I.torso_fid].rotation());
  for (size_t h = 0; h < I.hand_fid.size(); ++h) {
    I.hand_active[h] = false;
    I.hand_pos_ref[h] = I.data.oMf[I.hand_fid[h]].translation();
    I.hand_rot_ref[h] = I.data.oMf[I.hand_fid[h]].rotation();
  }
  I.f.setZero();
  I.solved_since_entry = false;
  for (int c = 0; c < nc_; ++c) {
    I.contact_target[c] = I.contact_on[c] = true;
    I.contact_w[c] = 1.0;
    I.ramp_ref[c] = I.weight_n / nc_;
    I.foot_pos_ref[c] = I.data.oMf[I.contact_fid[c]].translation();
    I.foot_rot_ref[c] = I.data.oMf[I.contact_fid[c]].rotation();
  }
  I.posture = p.default_pose;
  targets_in_.read(I.latest);
  I.entry_seq = I.latest.seq;  // targets published before this switch are stale
  I.last_cmd = last;
  I.st.consecutive_failures = 0;
  return Status::kOk;
}

template <size_t N>
static bool finite(const std::array<double, N>& a) {
  for (double v : a)
    if (!std::isfinite(v)) return false;
  return true;
}

// Fields that are set and finite replace the references; a non-finite field is ignored (the
// previous reference stays), so a bad target can never reach the solver.
static void merge_targets(WholeBodyController::Impl& I, const WbcTargets& t, int nc, int nh) {
  if (t.com_set && finite(t.com)) I.com_ref = Eigen::Vector3d(t.com[0], t.com[1], t.com[2]);
  if (t.base_set && finite(t.base_pos) && finite(t.base_quat)) {
    I.base_pos_ref = Eigen::Vector3d(t.base_pos[0], t.base_pos[1], t.base_pos[2]);
    I.base_rot_ref = quat_wxyz(t.base_quat).toRotationMatrix();
  }
  if (t.torso_set && finite(t.torso_quat)) I.torso_rot_ref = quat_wxyz(t.torso_quat).toRotationMatrix();
  for (int h = 0; h < nh; ++h) {
    const bool ok = finite(t.hand_pos[h]) && finite(t.hand_quat[h]);
    if (!t.hand_set[h]) I.hand_active[h] = false;
    if (t.hand_set[h] && ok) {
      I.hand_active[h] = true;
      I.hand_pos_ref[h] = Eigen::Vector3d(t.hand_pos[h][0], t.hand_pos[h][1], t.hand_pos[h][2]);
      I.hand_rot_ref[h] = quat_wxyz(t.hand_quat[h]).toRotationMatrix();
    }
  }
  for (int c = 0; c < nc; ++c) {
    I.contact_target[c] = t.contact_active[c];
    if (t.foot_set[c] && finite(t.foot_pos[c]) && finite(t.foot_quat[c])) {
      I.foot_pos_ref[c] = Eigen::Vector3d(t.foot_pos[c][0], t.foot_pos[c][1], t.foot_pos[c][2]);
      I.foot_rot_ref[c] = quat_wxyz(t.foot_quat[c]).toRotationMatrix();
    }
  }
  for (int j = 0; j < I.nj; ++j)
    if (t.posture_set[j] && std::isfinite(t.posture[j])) I.posture[j] = t.posture[j];
}

// Adds w-weighted || J ddq + drift - aref ||^2 for a k-row task (k <= 6).
static void add_task(WholeBodyController::Impl& I, const Eigen::Ref<const Eigen::MatrixXd>& J, const double* drift,
                     const double* aref, const double* w) {
  const int k = static_cast<int>(J.rows());
  for (int r = 0; r < k; ++r) {
    if (!(w[r] > 0.0)) continue;  // a zero-weight axis adds nothing
    const double sw = std::sqrt(w[r]);
    I.Jw.row(I.task_rows++) = sw * J.row(r);
    I.g.head(I.nv).noalias() -= (w[r] * (aref[r] - drift[r])) * J.row(r).transpose();
  }
}

// SE3 (or orientation-only) tracking task on frame fid, LOCAL_WORLD_ALIGNED.
static void se3_task(WholeBodyController::Impl& I, pinocchio::FrameIndex fid, const Eigen::Vector3d& p_ref,
                     const Eigen::Matrix3d& R_ref, const WbcGains& g, bool with_position, double* pos_err,
                     double* rot_err, double max_pos, double max_rot) {
  auto& d = I.data;
  I.J6.setZero();
  pinocchio::getFrameJacobian(I.model, d, fid, pinocchio::LOCAL_WORLD_ALIGNED, I.J6);
  const pinocchio::Motion drift = pinocchio::getFrameClassicalAcceleration(I.model, d, fid, pinocchio::LOCAL_WORLD_ALIGNED);
  const pinocchio::Motion vel = pinocchio::getFrameVelocity(I.model, d, fid, pinocchio::LOCAL_WORLD_ALIGNED);
  const auto& oMf = d.oMf[fid];
  const Eigen::Vector3d ep = p_ref - oMf.translation();
  const Eigen::Vector3d er = pinocchio::log3(R_ref * oMf.rotation().transpose());  // world frame
  const double np_ = ep.norm(), nr = er.norm();
  const double sp = np_ > max_pos ? max_pos / np_ : 1.0, sr = nr > max_rot ? max_rot / nr : 1.0;
  double aref[6], dr[6], w[6];
  for (int k = 0; k < 3; ++k) {
    aref[k] = g.kp * sp * ep[k] - g.kd * vel.linear()[k];
    aref[3 + k] = g.kp * sr * er[k] - g.kd * vel.angular()[k];
    dr[k] = drift.linear()[k];
    dr[3 + k] = drift.angular()[k];
    w[k] = with_position ? g.weight[k] : 0.0;
    w[3 + k] = g.weight[3 + k];
  }
  add_task(I, I.J6, dr, aref, w);
  if (pos_err) *pos_err = with_position ? ep.norm() : 0.0;
  if (rot_err) *rot_err = er.norm();
}

Status WholeBodyController::update(const RobotParams& p, const State& s, const Targets&, double dt, Command& out) {
  Impl& I = *impl_;
  const auto t0 = Clock::now();
  if (!load_state(I, s)) return Status::kNonFinite;
  if (targets_in_.read(I.latest) && I.latest.seq > I.entry_seq) merge_targets(I, I.latest, nc_, static_cast<int>(I.hand_fid.size()));
  kinematics(I);
  auto& d = I.data;
  const int nv = I.nv, nj = I.nj, nfv = nc_ * m_;

  // Contact schedule: ramp weights; a contact is constrained while its target is on or its
  // force is still ramping down; a released foot becomes a swing-foot task.
  for (int c = 0; c < nc_; ++c) {
    const double step = dt / cfg_.contact_ramp_s;
    if (I.contact_target[c]) {
      if (!I.contact_on[c]) {  // touch-down: constrain now, ramp the force in up to the weight
        I.contact_on[c] = true;
        I.contact_w[c] = 0.0;
        I.ramp_ref[c] = I.weight_n;
      }
      I.contact_w[c] = std::min(1.0, I.contact_w[c] + step);
    } else if (I.contact_on[c]) {
      if (I.contact_w[c] >= 1.0)  // release starts here, from the force this contact carries now
        I.ramp_ref[c] = I.solved_since_entry ? std::max(I.f[c * m_ + 2], 0.0) : I.weight_n / nc_;
      I.contact_w[c] = std::max(0.0, I.contact_w[c] - step);
      if (I.contact_w[c] <= 0.0) {
        I.contact_on[c] = false;
        // The foot now follows its swing target: the one published (possibly together with the
        // release), else it holds where it is.
        if (!(I.latest.seq > I.entry_seq && I.latest.foot_set[c])) {
          I.foot_pos_ref[c] = d.oMf[I.contact_fid[c]].translation();
          I.foot_rot_ref[c] = d.oMf[I.contact_fid[c]].rotation();
        }
      }
    }
  }

  // Contact Jacobians and drifts.
  const auto rf = cfg_.flat_feet ? pinocchio::LOCAL : pinocchio::LOCAL_WORLD_ALIGNED;
  for (int c = 0; c < nc_; ++c) {
    I.J6.setZero();
    pinocchio::getFrameJacobian(I.model, d, I.contact_fid[c], rf, I.J6);
    if (cfg_.flat_feet) {
      I.Jc.middleRows(c * 6, 6) = I.J6;
      I.drift_c.segment<6>(c * 6) = pinocchio::getFrameAcceleration(I.model, d, I.contact_fid[c], rf).toVector();
    } else {
      I.Jc.middleRows(c * 3, 3) = I.J6.topRows<3>();
      I.drift_c.segment<3>(c * 3) = pinocchio::getFrameClassicalAcceleration(I.model, d, I.contact_fid[c], rf).linear();
    }
  }

  // Equalities.
  I.A.setZero();
  I.A.topLeftCorner(6, nv) = d.M.topRows(6);
  I.A.block(0, nv, 6, nfv).noalias() = -I.Jc.leftCols(6).transpose();
  I.b.head(6) = -d.nle.head(6);
  for (int c = 0; c < nc_; ++c) {
    const int r = 6 + c * m_;
    if (I.contact_on[c]) {
      I.A.block(r, 0, m_, nv) = I.Jc.middleRows(c * m_, m_);
      I.b.segment(r, m_) = -I.drift_c.segment(c * m_, m_);
    } else {
      I.A.block(r, nv + c * m_, m_, m_).setIdentity();
      I.b.segment(r, m_).setZero();
    }
  }

  // Inequalities: joint torques (model order rows 6..nv), then contact cones.
  I.C.setZero();
  I.C.topLeftCorner(nj, nv) = d.M.bottomRows(nj);
  I.C.block(0, nv, nj, nfv).noalias() = -I.Jc.rightCols(nj).transpose();
  for (int j = 0; j < nj; ++j) {
    I.l[j] = -I.tau_max_v[6 + j] - d.nle[6 + j];
    I.u[j] = I.tau_max_v[6 + j] - d.nle[6 + j];
  }
  const double mu = cfg_.friction, X = cfg_.sole_half_length_m, Y = cfg_.sole_half_width_m;
  int row = nj;
  for (int c = 0; c < nc_; ++c) {
    const int fo = nv + c * m_;  // fx fy fz [tx ty tz]
    const int rows = cfg_.flat_feet ? 16 : 4;
    for (int k = 0; k < rows; ++k) {
      I.l[row + k] = -kFree;
      I.u[row + k] = 0.0;
    }
    // friction: ±fx - mu fz <= 0, ±fy - mu fz <= 0
    I.C(row, fo) = 1; I.C(row, fo + 2) = -mu;
    I.C(row + 1, fo) = -1; I.C(row + 1, fo + 2) = -mu;
    I.C(row + 2, fo + 1) = 1; I.C(row + 2, fo + 2) = -mu;
    I.C(row + 3, fo + 1) = -1; I.C(row + 3, fo + 2) = -mu;
    if (cfg_.flat_feet) {
      // centre of pressure: ±tx - Y fz <= 0, ±ty - X fz <= 0
      I.C(row + 4, fo + 3) = 1; I.C(row + 4, fo + 2) = -Y;
      I.C(row + 5, fo + 3) = -1; I.C(row + 5, fo + 2) = -Y;
      I.C(row + 6, fo + 4) = 1; I.C(row + 6, fo + 2) = -X;
      I.C(row + 7, fo + 4) = -1; I.C(row + 7, fo + 2) = -X;
      // yaw (Caron et al. 2015): tz + |Y fx + mu tx| + |X fy + mu ty| <= mu (X+Y) fz
      //                         -tz + |Y fx - mu tx| + |X fy - mu ty| <= mu (X+Y) fz
      int k = 8;
      for (int sz : {1, -1})
        for (int s1 : {1, -1})
          for (int s2 : {1, -1}) {
            const int r = row + k++;
            I.C(r, fo + 5) = sz;
            I.C(r, fo + 0) = s1 * Y;
            I.C(r, fo + 3) = s1 * sz * mu;
            I.C(r, fo + 1) = s2 * X;
            I.C(r, fo + 4) = s2 * sz * mu;
            I.C(r, fo + 2) = -mu * (X + Y);
          }
    }
    if (!I.contact_on[c])  // released: f = 0 by equality, the cone rows are idle
      for (int k = 0; k < rows; ++k) {
        I.C.row(row + k).setZero();
        I.l[row + k] = -kFree;
        I.u[row + k] = kFree;
      }
    row += rows;
  }

  // Bounds: joint accelerations from position/velocity limits; normal forces with the ramp.
  const double T = cfg_.limit_horizon_s;
  I.lbox.head(6).setConstant(-kFree);
  I.ubox.head(6).setConstant(kFree);
  for (int i = 0; i < nj; ++i) {
    const int vi = I.m2v[i];
    const double qi = s.q[i], vq = s.dq[i];
    double hi = std::min((p.dq_max[i] - vq) / T, 2.0 * (p.q_upper[i] - qi - vq * T) / (T * T));
    double lo = std::max((-p.dq_max[i] - vq) / T, 2.0 * (p.q_lower[i] - qi - vq * T) / (T * T));
    if (lo > hi) lo = hi = 0.5 * (lo + hi);
    I.lbox[vi] = lo;
    I.ubox[vi] = hi;
  }
  I.lbox.tail(nfv).setConstant(-kFree);
  I.ubox.tail(nfv).setConstant(kFree);
  for (int c = 0; c < nc_; ++c) {
    const int fz = nv + c * m_ + 2;
    if (I.contact_on[c]) {
      const double w = I.contact_w[c];
      // Full contact: [f_min, f_max]. Ramping: the bound scales the force the contact carried
      // when its release began (or the weight, on touch-down), so the load moves over gradually.
      I.ubox[fz] = w >= 1.0 ? cfg_.max_normal_force_n : std::max(w * I.ramp_ref[c], w * cfg_.min_normal_force_n);
      I.lbox[fz] = std::min(w * cfg_.min_normal_force_n, I.ubox[fz]);
    }
  }

  // Cost.
  I.H.setZero();
  I.g.setZero();
  I.task_rows = 0;
  I.H.diagonal().head(nv).setConstant(cfg_.reg_ddq);
  I.H.diagonal().tail(nfv).setConstant(cfg_.reg_force);
  {  // centre of mass
    const Eigen::Vector3d e = I.com_ref - d.com[0];
    double aref[3], dr[3];
    for (int k = 0; k < 3; ++k) {
      aref[k] = cfg_.com.kp * e[k] - cfg_.com.kd * d.vcom[0][k];
      dr[k] = d.acom[0][k];
    }
    add_task(I, d.Jcom, dr, aref, cfg_.com.weight.data());
    I.st.com_err = {e[0], e[1], e[2]};
    I.st.com = {d.com[0][0], d.com[0][1], d.com[0][2]};
  }
  se3_task(I, I.base_fid, I.base_pos_ref, I.base_rot_ref, cfg_.base, true, &I.st.base_pos_err, &I.st.base_rot_err, kFree, kFree);
  if (I.has_torso) se3_task(I, I.torso_fid, Eigen::Vector3d::Zero(), I.torso_rot_ref, cfg_.torso, false, nullptr, &I.st.torso_rot_err, kFree, kFree);
  for (size_t h = 0; h < I.hand_fid.size(); ++h) {
    I.st.hand_active[h] = I.hand_active[h] ? 1.0 : 0.0;
    if (I.hand_active[h])
      se3_task(I, I.hand_fid[h], I.hand_pos_ref[h], I.hand_rot_ref[h], cfg_.hands, true, &I.st.hand_pos_err[h],
               &I.st.hand_rot_err[h], cfg_.max_position_error_m, cfg_.max_rotation_error_rad);
  }
  for (int c = 0; c < nc_; ++c)
    if (!I.contact_on[c])
      se3_task(I, I.contact_fid[c], I.foot_pos_ref[c], I.foot_rot_ref[c], cfg_.swing_foot, true, nullptr, nullptr,
               cfg_.max_position_error_m, cfg_.max_rotation_error_rad);
  {  // H += Jw' Jw over all task rows at once (lower half, then mirrored)
    auto Hq = I.H.topLeftCorner(nv, nv);
    Hq.selfadjointView<Eigen::Lower>().rankUpdate(I.Jw.topRows(I.task_rows).transpose());
    Hq.triangularView<Eigen::StrictlyUpper>() = Hq.transpose();
  }
  for (int i = 0; i < nj; ++i) {  // posture, directly on the diagonal
    const int vi = I.m2v[i];
    const double w = cfg_.posture.weight[0];
    const double aref = cfg_.posture.kp * (I.posture[i] - s.q[i]) - cfg_.posture.kd * s.dq[i];
    I.H(vi, vi) += w;
    I.g[vi] -= w * aref;
  }
  I.st.last_model_us = us_since(t0);

  // Solve.
  const auto t1 = Clock::now();
  for (int c = 0; c < nc_; ++c) I.st.contact_weight[c] = I.contact_on[c] ? I.contact_w[c] : 0.0;
  bool cold = false;
  DenseQp::Result res = I.qp.solve(cold, true);
  if (cold) ++I.st.cold_restarts;
  if (!res.solved) {
    // Joint-limit acceleration bounds can contradict the torque limits near a limit (a joint
    // too fast to stop in time): drop them for this tick (one more solve, no cold retry: at most
    // three solves per tick); the limiter still clamps positions. Bounds are rebuilt every tick.
    I.lbox.segment(6, nj).setConstant(-kFree);
    I.ubox.segment(6, nj).setConstant(kFree);
    res = I.qp.solve(cold, false);
    if (res.solved) ++I.st.relaxed_solves;
  }
  I.st.last_solve_us = us_since(t1);
  I.st.last_iterations = res.iterations;
  I.st.last_qp_status = res.status;
  I.st.last_dual_residual = res.dual_residual;
  I.st.max_constraint_violation = res.primal_residual;
  bool ok = res.solved;
  if (inject_failures_ > 0) {
    --inject_failures_;
    ok = false;
  }
  ++I.st.solves;
  if (!ok) {
    ++I.st.failures;
    ++I.st.consecutive_failures;
    out = I.last_cmd;  // hold the previous command
    status_.store(I.st);
    return I.st.consecutive_failures >= cfg_.max_consecutive_failures ? Status::kSolverFailed : Status::kOk;
  }
  I.st.consecutive_failures = 0;
  I.solved_since_entry = true;
  I.ddq = I.qp.x().head(nv);
  I.f = I.qp.x().tail(nfv);
  I.tau.noalias() = d.M * I.ddq;
  I.tau += d.nle;
  I.tau.noalias() -= I.Jc.transpose() * I.f;
  for (int c = 0; c < nc_; ++c)
    for (int k = 0; k < 6; ++k) I.st.contact_wrench[c][k] = k < m_ ? I.f[c * m_ + k] : 0.0;

  // Motor-board command (see the header for the blend).
  out.n = nj;
  for (int i = 0; i < nj; ++i) {
    const int vi = I.m2v[i];
    const double acc = I.ddq[vi];
    out.q[i] = s.q[i] + s.dq[i] * dt + 0.5 * acc * dt * dt;
    out.dq[i] = s.dq[i] + acc * dt;
    out.kp[i] = cfg_.out_kp[i];
    out.kd[i] = cfg_.out_kd[i];
    out.tau_ff[i] = I.tau[vi];
  }
  I.last_cmd = out;
  status_.store(I.st);
  return Status::kOk;
}

Status WholeBodyController::step(const RobotParams& p, const State& s, Command& out) {
  Targets none{};
  return update(p, s, none, 1.0 / cfg_.control_rate_hz, out);
}

}  // namespace vertebra
