#include "wbc/wbc.hpp"

#include <algorithm>

#include <pinocchio/algorithm/center-of-mass.hpp>
#include <pinocchio/algorithm/model.hpp>
#include <pinocchio/algorithm/frames.hpp>
#include <pinocchio/algorithm/jacobian.hpp>
#include <pinocchio/algorithm/kinematics.hpp>
#include <pinocchio/spatial/explog.hpp>

#include <chrono>
#include <cmath>
#include <Eigen/Cholesky>
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
  int nr = 0, neq_r = 0;  // what ProxQP sees: the base accelerations are eliminated (header)
  std::vector<int> m2q, m2v;  // motor index -> model q/v index
  std::vector<pinocchio::FrameIndex> contact_fid, hand_fid;
  std::vector<pinocchio::FrameIndex> used_fid;  // the frames whose placements the tick reads
  pinocchio::FrameIndex base_fid = 0, torso_fid = 0;
  bool has_torso = false;
  Eigen::VectorXd tau_max_v;  // per model v index (joints only meaningful)

  // per-tick workspace; the QP's matrices live in the solver (filled in place)
  Eigen::VectorXd q, v, a0;
  DenseQp qp;
  DenseQp::RowMat &H, &A, &C;
  Eigen::VectorXd &g, &b, &l, &u, &lbox, &ubox;
  Eigen::MatrixXd Jc, J6;
  // All weighted task rows stacked (cost = || Jw ddq - e ||^2), then mapped through the base
  // elimination (Jr = Jw T, er = e - Jw t0) and one symmetric rank update of H.
  Eigen::MatrixXd Jw, Jr;
  Eigen::VectorXd e, er;
  int task_rows = 0;
  // Base elimination: ddq_base = Tb y + t0b, y = [ddq_joints ; f].
  Eigen::LLT<Eigen::Matrix<double, 6, 6>> Mbb_llt;
  Eigen::Matrix<double, 6, Eigen::Dynamic> Tb;  // fixed 6 rows: the products with it unroll
  Eigen::Matrix<double, 6, 6> Mbb_inv;
  Eigen::Matrix<double, 6, 1> t0b;
  // Contact elimination (header): y = [ddq_j ; f] splits into nd dependent components (each
  // active contact's leg joints, each released contact's force) and nf free ones w.
  // y_dep = k0 - K w.  The y problem's cost is kept as rows (Jr, er) plus a diagonal (dy, cy).
  bool can_eliminate = false;
  std::vector<std::vector<int>> chain_y;  // per contact: its leg joints' y indices
  std::vector<int> dep, free_;            // y indices (sizes nd, nf)
  std::vector<char> is_dep;
  int nd = 0, nf = 0;
  uint32_t w_key = ~0u;  // contact pattern of the last w solve (a new one starts the solver cold)
  DenseQp::RowMat aug;  // [Ad | Af | b], reduced in place to [I | K | k0]
  Eigen::MatrixXd K, Jrf, Jrd, Cd, Jw_w;
  Eigen::VectorXd k0;
  Eigen::VectorXd ew, dy, cy, y;
  std::unique_ptr<DenseQp> qpw;
  // Non-linear effects from the kinematics pass: subtree forces (world frame) per joint.
  pinocchio::container::aligned_vector<pinocchio::Force> of;
  Eigen::VectorXd nle;
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
      : qp(n_ - 6, neq_ - 6, nin_, c.qp_backend, c.eps_abs, c.max_iter),
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
      !(cfg.balance_guard_start_m > cfg.balance_guard_full_m) || !std::isfinite(cfg.balance_guard_scale) ||
      !(cfg.max_rotation_error_rad > 0) || !(cfg.reg_ddq > 0) || !(cfg.reg_force > 0))
    throw std::invalid_argument("WBC: friction, control_rate_hz, contact_ramp_s, limit_horizon_s, eps_abs, max_iter "
                                "the task error limits and the regularisation weights must be > 0, 0 <= min_normal_force_n < "
                                "max_normal_force_n, and balance_guard_start_m > balance_guard_full_m with a finite "
                                "balance_guard_scale");

  const int nv = robot.nv();
  const int n = nv + nc_ * m_;
  const int neq = 6 + nc_ * m_;
  const int nin = nj + nc_ * (cfg.flat_feet ? 16 : 4);
  impl_ = std::make_unique<Impl>(n, neq, nin, cfg);
  Impl& I = *impl_;
  I.model = robot.impl().model;
  for (const auto& j : I.model.joints)
    if (j.shortname().find("Mimic") != std::string::npos)
      throw std::invalid_argument("WBC: mimic joints are not supported (the inertia and non-linear-effect passes "
                                  "assume independent joints)");
  I.nv = nv;
  I.nj = nj;
  I.n = n;
  I.neq = neq;
  I.nin = nin;
  I.nr = n - 6;
  I.neq_r = neq - 6;
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
  I.used_fid = I.contact_fid;
  I.used_fid.push_back(I.base_fid);
  if (I.has_torso) I.used_fid.push_back(I.torso_fid);
  for (auto f : I.hand_fid) I.used_fid.push_back(f);
  I.data = pinocchio::Data(I.model);
  I.weight_n = pinocchio::computeTotalMass(I.model) * 9.81;

  I.q = Eigen::VectorXd::Zero(I.model.nq);
  I.v = Eigen::VectorXd::Zero(nv);
  I.a0 = Eigen::VectorXd::Zero(nv);
  I.Jc = Eigen::MatrixXd::Zero(nc_ * m_, nv);
  I.J6 = Eigen::MatrixXd::Zero(6, nv);
  // rows: CoM 3 + base 6 + torso 6 + hands 6 each + swing feet 6 each (+ 6: base regularisation)
  const int max_rows = 3 + 6 + 6 + 6 * kMaxHands + 6 * kMaxContacts + 6;
  I.Jw = Eigen::MatrixXd::Zero(max_rows, nv);
  I.Jr = Eigen::MatrixXd::Zero(max_rows, I.nr);
  I.e = Eigen::VectorXd::Zero(max_rows);
  I.er = Eigen::VectorXd::Zero(max_rows);
  I.Tb = Eigen::Matrix<double, 6, Eigen::Dynamic>::Zero(6, I.nr);
  I.t0b.setZero();
  I.of.assign(I.model.njoints, pinocchio::Force::Zero());
  I.dy = Eigen::VectorXd::Zero(I.nr);
  I.cy = Eigen::VectorXd::Zero(I.nr);
  I.y = Eigen::VectorXd::Zero(I.nr);
  // Contact elimination needs each contact's chain to carry exactly as many joint DoF as the
  // contact constrains (G1 legs: 6 per flat foot; Go2 legs: 3 per point foot), chains disjoint.
  I.can_eliminate = cfg.eliminate_contacts;
  I.is_dep.assign(I.nr, 0);
  for (int c = 0; c < nc_ && I.can_eliminate; ++c) {
    std::vector<int> ch;
    for (auto j : I.model.supports[I.model.frames[I.contact_fid[c]].parentJoint]) {
      const int iv = I.model.idx_vs[j], nvj = I.model.nvs[j];
      if (j == 0 || iv < 6) continue;  // universe, free flyer
      for (int k = 0; k < nvj; ++k) ch.push_back(iv + k - 6);
    }
    for (int yi : ch) {
      if (I.is_dep[yi]) I.can_eliminate = false;
      I.is_dep[yi] = 1;
    }
    if (static_cast<int>(ch.size()) != m_) I.can_eliminate = false;
    I.chain_y.push_back(ch);
  }
  I.nd = nc_ * m_;
  I.nf = I.nr - I.nd;
  if (I.can_eliminate) {
    I.dep.assign(I.nd, 0);
    I.free_.assign(I.nf, 0);
    I.aug = DenseQp::RowMat::Zero(I.nd, I.nr + 1);
    I.k0 = Eigen::VectorXd::Zero(I.nd);
    I.K = Eigen::MatrixXd::Zero(I.nd, I.nf);
    I.Jrf = Eigen::MatrixXd::Zero(max_rows, I.nf);
    I.Jrd = Eigen::MatrixXd::Zero(max_rows, I.nd);
    I.Cd = Eigen::MatrixXd::Zero(nj, I.nd);
    I.Jw_w = Eigen::MatrixXd::Zero(max_rows + I.nd, I.nf);
    I.ew = Eigen::VectorXd::Zero(max_rows + I.nd);
    // ProxQP's automatic choice for this shape is the primal LDLT backend, which is slower here and
    // allocates in its refactorisation: the primal-dual one unless configured otherwise.
    I.qpw = std::make_unique<DenseQp>(I.nf, 0, nin + I.nd, cfg.qp_backend == 0 ? 1 : cfg.qp_backend, cfg.eps_abs,
                                      cfg.max_iter);
  }
  I.nle = Eigen::VectorXd::Zero(nv);
  I.drift_c = Eigen::VectorXd::Zero(nc_ * m_);
  I.ddq = Eigen::VectorXd::Zero(nv);
  I.f = Eigen::VectorXd::Zero(nc_ * m_);
  I.tau = Eigen::VectorXd::Zero(nv);
}

WholeBodyController::~WholeBodyController() = default;

int WholeBodyController::n_variables() const { return impl_->n; }
int WholeBodyController::n_eq() const { return impl_->neq; }
int WholeBodyController::n_in() const { return impl_->nin; }
int WholeBodyController::solver_variables() const { return impl_->can_eliminate ? impl_->nf : impl_->nr; }
int WholeBodyController::solver_inequalities() const {
  return impl_->can_eliminate ? impl_->nin + impl_->nd : impl_->nin;
}
Eigen::VectorXd WholeBodyController::last_ddq() const { return impl_->ddq; }
void WholeBodyController::copy_last_ddq(double* out) const {
  Eigen::Map<Eigen::VectorXd>(out, impl_->nv) = impl_->ddq;
}
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

// Non-linear effects h(q, v) (Coriolis, centrifugal, gravity) from the velocities and bias
// accelerations the kinematics pass already computed: the backward half of RNEA with zero joint
// acceleration (Featherstone, Rigid Body Dynamics Algorithms, 2008, table 5.1). Each body's force
// f_i = Y_i (a_i - g_i) + v_i x* Y_i v_i is summed over its subtree in the world frame and
// projected on the joint's world-frame Jacobian columns. Same result as pinocchio's
// nonLinearEffects without its second forward pass (tests/wbc compare the two).
static void nonlinear_effects(WholeBodyController::Impl& I) {
  const auto& m = I.model;
  const auto& d = I.data;
  const int nj = static_cast<int>(m.njoints);
  for (int i = 1; i < nj; ++i) {
    const auto& Y = m.inertias[i];
    const pinocchio::Motion a_gf = d.a[i] - d.oMi[i].actInv(m.gravity);
    I.of[i] = d.oMi[i].act(Y * a_gf + d.v[i].cross(Y * d.v[i]));
  }
  for (int i = nj - 1; i > 1; --i) {
    const auto parent = m.parents[i];
    if (parent > 0) I.of[parent] += I.of[i];
  }
  for (int i = 1; i < nj; ++i) {
    const int iv = m.idx_vs[i], nvi = m.nvs[i];
    const auto F = I.of[i].toVector();
    for (int k = iv; k < iv + nvi; ++k) I.nle[k] = d.J.col(k).dot(F);
  }
}

// Joint-space inertia matrix: the backward half of the composite-rigid-body algorithm in the world
// frame (Featherstone 2008, ch. 6; pinocchio's crba with Convention::WORLD), on the placements
// and world Jacobian columns the kinematics pass already computed, so without crba's own forward
// pass. Fills the upper triangle of data.M (plus the rotor armature), data.Ag (the world-frame
// momentum map, whose linear rows are m Jcom) and data.oYcrb (oYcrb[0]: the whole robot).
static void joint_space_inertia(WholeBodyController::Impl& I) {
  const auto& m = I.model;
  auto& d = I.data;
  const int nj = static_cast<int>(m.njoints);
  d.oYcrb[0].setZero();
  for (int i = 1; i < nj; ++i) d.oYcrb[i] = d.oMi[i].act(m.inertias[i]);
  for (int i = nj - 1; i > 0; --i) {
    const int iv = m.idx_vs[i], nvi = m.nvs[i], nsub = d.nvSubtree[i];
    for (int k = iv; k < iv + nvi; ++k)
      d.Ag.col(k) = (d.oYcrb[i] * pinocchio::Motion(d.J.col(k))).toVector();
    d.M.block(iv, iv, nvi, nsub).noalias() = d.J.middleCols(iv, nvi).transpose() * d.Ag.middleCols(iv, nsub);
    d.oYcrb[m.parents[i]] += d.oYcrb[i];
  }
  d.M.diagonal() += m.armature;
}

static void kinematics(WholeBodyController::Impl& I) {
  auto& m = I.model;
  auto& d = I.data;
  pinocchio::forwardKinematics(m, d, I.q, I.v, I.a0);  // a = drift (zero joint acceleration)
  pinocchio::computeJointJacobians(m, d);
  for (auto f : I.used_fid) pinocchio::updateFramePlacement(m, d, f);
  joint_space_inertia(I);
  d.M.triangularView<Eigen::StrictlyLower>() = d.M.transpose().triangularView<Eigen::StrictlyLower>();
  nonlinear_effects(I);
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
    I.Jw.row(I.task_rows) = sw * J.row(r);
    I.e[I.task_rows++] = sw * (aref[r] - drift[r]);
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

// Balance guard. The cost is weighted, with no strict priority: a task that cannot be met (a hand
// pulled towards a target out of reach) trades centre-of-mass error for its own, and enough of
// that walks the capture point out of the support area and tips the robot. So the horizontal
// centre-of-mass weight grows as the capture point xi = c + dc/omega (omega = sqrt(g / height))
// nears the edge of the support area (the bounding box of the active soles' corners, or of the
// point feet): x1 from balance_guard_start_m inside the edge, to x balance_guard_scale at
// balance_guard_full_m and beyond, quadratic in between. Inside that band nothing changes.
static double balance_guard(const WholeBodyController::Impl& I, const WbcConfig& cfg, int nc) {
  if (!(cfg.balance_guard_scale > 1.0)) return 1.0;
  const auto& d = I.data;
  double lo[2] = {kFree, kFree}, hi[2] = {-kFree, -kFree}, ground = 0.0;
  const double X = cfg.flat_feet ? cfg.sole_half_length_m : 0.0, Y = cfg.flat_feet ? cfg.sole_half_width_m : 0.0;
  int on = 0;
  for (int c = 0; c < nc; ++c) {
    if (!I.contact_on[c]) continue;
    const auto& oMc = d.oMf[I.contact_fid[c]];
    ground += oMc.translation()[2];
    ++on;
    for (double sx : {-X, X})
      for (double sy : {-Y, Y}) {
        const Eigen::Vector3d corner = oMc.translation() + oMc.rotation() * Eigen::Vector3d(sx, sy, 0.0);
        for (int k = 0; k < 2; ++k) {
          lo[k] = std::min(lo[k], corner[k]);
          hi[k] = std::max(hi[k], corner[k]);
        }
      }
  }
  if (on == 0) return 1.0;
  const double height = std::max(0.1, d.com[0][2] - ground / on);
  const double omega = std::sqrt(9.81 / height);
  const double span = cfg.balance_guard_start_m - cfg.balance_guard_full_m;
  double s = 0.0;
  for (int k = 0; k < 2; ++k) {
    const double xi = d.com[0][k] + d.vcom[0][k] / omega;
    const double inside = std::min(xi - lo[k], hi[k] - xi);  // negative: outside
    s = std::max(s, std::clamp((cfg.balance_guard_start_m - inside) / span, 0.0, 1.0));
  }
  return 1.0 + (cfg.balance_guard_scale - 1.0) * s * s;
}

// The eliminated problem without the joint-limit acceleration bounds: the free joints' boxes and
// the dependent joints' bound rows (see the solve in update()).
static void relax_joint_bounds_eliminated(WholeBodyController::Impl& I, int nj) {
  DenseQp& q = *I.qpw;
  for (int j = 0; j < I.nf; ++j)
    if (I.free_[j] < nj) {
      q.lbox()[j] = -kFree;
      q.ubox()[j] = kFree;
    }
  for (int j = 0; j < I.nd; ++j)
    if (I.dep[j] < nj) {
      q.l()[I.nin + j] = -kFree;
      q.u()[I.nin + j] = kFree;
    }
}

// The y problem's cost into its QP: H = Jr' Jr + diag(dy), g = -Jr' er + cy.
static void y_cost(WholeBodyController::Impl& I) {
  auto Jr = I.Jr.topRows(I.task_rows);
  I.H.setZero();
  I.H.selfadjointView<Eigen::Lower>().rankUpdate(Jr.transpose());
  I.H.triangularView<Eigen::StrictlyUpper>() = I.H.transpose();
  I.H.diagonal() += I.dy;
  I.g = I.cy;
  I.g.noalias() -= Jr.transpose() * I.er.head(I.task_rows);
}

// Contact elimination. The contact rows  A y = b  are solved for the dependent components:
// y_dep = Ad^-1 (b - Af w) = k0 - K w. For an active contact these are its leg joints (the leg
// Jacobian and the base coupling make Ad, m x m per contact); for a released one, its force
// (f = 0). The QP given to ProxQP then has nf variables and no equalities; the dependent
// components' bounds become inequality rows. Returns false (the y problem is solved instead)
// when Ad is ill-conditioned, e.g. a knee near full extension.
static bool eliminate_contacts(WholeBodyController::Impl& I, int nj) {
  const int nd = I.nd, nf = I.nf, nin = I.nin, m = nd / static_cast<int>(I.contact_fid.size());
  uint32_t key = 0;
  {  // partition of y
    int k = 0;
    for (size_t c = 0; c < I.contact_fid.size(); ++c) {
      const bool on = I.contact_on[c];
      key |= (on ? 1u : 0u) << c;
      for (int j = 0; j < m; ++j) I.dep[k++] = on ? I.chain_y[c][j] : nj + static_cast<int>(c) * m + j;
    }
    std::fill(I.is_dep.begin(), I.is_dep.end(), 0);
    for (int i : I.dep) I.is_dep[i] = 1;
    int f = 0;
    for (int i = 0; i < I.nr; ++i)
      if (!I.is_dep[i]) I.free_[f++] = i;
  }
  // Gauss-Jordan with partial pivoting on [Ad | Af | b] (nd x (nr + 1), row-major: the row
  // operations are contiguous). A pivot below kMinPivot times the largest one means Ad is
  // ill-conditioned: give up (the caller solves the y problem instead).
  constexpr double kMinPivot = 1e-4;
  auto& G = I.aug;
  for (int r = 0; r < nd; ++r) {
    for (int j = 0; j < nd; ++j) G(r, j) = I.A(r, I.dep[j]);
    for (int j = 0; j < nf; ++j) G(r, nd + j) = I.A(r, I.free_[j]);
    G(r, nd + nf) = I.b[r];
  }
  double max_pivot = 0.0;
  const int width = nd + nf + 1;
  for (int k = 0; k < nd; ++k) {
    int p = k;
    for (int r = k + 1; r < nd; ++r)
      if (std::abs(G(r, k)) > std::abs(G(p, k))) p = r;
    const double piv = G(p, k);
    max_pivot = std::max(max_pivot, std::abs(piv));
    if (!(std::abs(piv) > kMinPivot * max_pivot) || !std::isfinite(piv)) {
      I.w_key = ~0u;  // the next eliminated solve starts cold
      return false;
    }
    if (p != k) G.row(p).swap(G.row(k));
    // Plain loops over contiguous rows (the compiler vectorises them): Eigen's per-call
    // overhead on these short dynamic rows was most of the cost.
    double* rk = &G(k, 0);
    const double inv = 1.0 / piv;
    for (int c = k; c < width; ++c) rk[c] *= inv;
    for (int r = 0; r < nd; ++r) {
      if (r == k) continue;
      double* rr = &G(r, 0);
      const double f = rr[k];
      if (f == 0.0) continue;
      for (int c = k; c < width; ++c) rr[c] -= f * rk[c];
    }
  }
  I.K = G.block(0, nd, nd, nf);
  I.k0 = G.col(nd + nf);

  // Cost rows: [Jr_free - Jr_dep K] w - (er - Jr_dep k0); then one row per dependent component
  // for its diagonal term 1/2 d (y_i - t_i)^2, t_i = -c_i / d.
  const int rows = I.task_rows;
  for (int j = 0; j < nf; ++j) I.Jrf.col(j).head(rows) = I.Jr.col(I.free_[j]).head(rows);
  for (int j = 0; j < nd; ++j) I.Jrd.col(j).head(rows) = I.Jr.col(I.dep[j]).head(rows);
  auto Jw = I.Jw_w.topRows(rows + nd);
  auto ew = I.ew.head(rows + nd);
  Jw.topRows(rows) = I.Jrf.topRows(rows);
  Jw.topRows(rows).noalias() -= I.Jrd.topRows(rows) * I.K;
  ew.head(rows) = I.er.head(rows);
  ew.head(rows).noalias() -= I.Jrd.topRows(rows) * I.k0;
  for (int j = 0; j < nd; ++j) {
    const double dj = I.dy[I.dep[j]];
    if (!(dj > 0.0)) {  // no diagonal term (a zero weight in the config): an empty row
      Jw.row(rows + j).setZero();
      ew[rows + j] = 0.0;
      continue;
    }
    const double sd = std::sqrt(dj);
    Jw.row(rows + j) = -sd * I.K.row(j);
    ew[rows + j] = sd * (-I.cy[I.dep[j]] / dj - I.k0[j]);
  }
  DenseQp& q = *I.qpw;
  q.H().noalias() = Jw.transpose() * Jw;
  for (int j = 0; j < nf; ++j) {
    q.H()(j, j) += I.dy[I.free_[j]];
    q.g()[j] = I.cy[I.free_[j]];
  }
  q.g().noalias() -= Jw.transpose() * ew;

  // Inequalities: the y rows on the free components, torque rows corrected for the dependent
  // ones (the cone rows never hold a dependent component: those are legs, or released forces
  // whose cone rows are idle); then the dependent components' bounds.
  auto& C = q.C();
  for (int r = 0; r < nin; ++r)
    for (int j = 0; j < nf; ++j) C(r, j) = I.C(r, I.free_[j]);
  for (int r = 0; r < nj; ++r)
    for (int j = 0; j < nd; ++j) I.Cd(r, j) = I.C(r, I.dep[j]);
  C.topRows(nj).noalias() -= I.Cd * I.K;
  q.l().head(nin) = I.l;
  q.u().head(nin) = I.u;
  q.l().head(nj).noalias() -= I.Cd * I.k0;
  q.u().head(nj).noalias() -= I.Cd * I.k0;
  for (int j = 0; j < nd; ++j) {
    C.row(nin + j) = -I.K.row(j);
    q.l()[nin + j] = I.lbox[I.dep[j]] - I.k0[j];
    q.u()[nin + j] = I.ubox[I.dep[j]] - I.k0[j];
  }
  for (int j = 0; j < nf; ++j) {
    q.lbox()[j] = I.lbox[I.free_[j]];
    q.ubox()[j] = I.ubox[I.free_[j]];
  }
  if (key != I.w_key) {
    q.start_cold();  // the variables changed meaning: no warm start from the last solution
    I.w_key = key;
  }
  return true;
}

// A tick without a solution: hold the previous command; max_consecutive_failures in a row is a fault.
Status WholeBodyController::fail_tick(Command& out) {
  Impl& I = *impl_;
  ++I.st.solves;
  ++I.st.failures;
  ++I.st.consecutive_failures;
  out = I.last_cmd;
  status_.store(I.st);
  return I.st.consecutive_failures >= cfg_.max_consecutive_failures ? Status::kSolverFailed : Status::kOk;
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

  // Base elimination (exact): the floating-base rows  M_bb ddq_b + M_bj ddq_j + h_b = Jc_b' f
  // give ddq_b = Tb y + t0b for y = [ddq_j ; f], with M_bb (the robot's 6x6 composite inertia at
  // the base) symmetric positive definite. ProxQP solves for y (6 fewer variables and equality
  // rows); the base rows then hold to machine precision rather than to the solver's tolerance.
  const int nr = I.nr;
  I.Mbb_llt.compute(d.M.topLeftCorner<6, 6>());
  if (I.Mbb_llt.info() != Eigen::Success) return fail_tick(out);  // not positive definite: bad state
  I.Mbb_inv = I.Mbb_llt.solve(Eigen::Matrix<double, 6, 6>::Identity());
  I.Tb.leftCols(nj).noalias() = -I.Mbb_inv * d.M.topRows<6>().rightCols(nj);
  I.Tb.rightCols(nfv).noalias() = I.Mbb_inv * I.Jc.leftCols<6>().transpose();
  I.t0b = -I.nle.head<6>();
  I.Mbb_llt.solveInPlace(I.t0b);

  // Equalities: contacts (rows of A are y's coefficients: joints in model order, then forces).
  I.A.setZero();
  for (int c = 0; c < nc_; ++c) {
    const int r = c * m_;
    if (I.contact_on[c]) {  // Jc_b ddq_b + Jc_j ddq_j = -drift
      auto Jcb = I.Jc.block(r, 0, m_, 6);
      I.A.middleRows(r, m_).noalias() = I.Jc.middleRows(r, m_).leftCols<6>() * I.Tb;
      I.A.block(r, 0, m_, nj) += I.Jc.block(r, 6, m_, nj);
      I.b.segment(r, m_) = -I.drift_c.segment(r, m_);
      I.b.segment(r, m_).noalias() -= Jcb * I.t0b;
    } else {
      I.A.block(r, nj + r, m_, m_).setIdentity();
      I.b.segment(r, m_).setZero();
    }
  }

  // Inequalities: joint torques  tau_j = M_jb ddq_b + M_jj ddq_j + h_j - Jc_j' f  (model order),
  // then contact cones (on the forces only).
  I.C.topRows(nj).noalias() = d.M.middleRows(6, nj).leftCols<6>() * I.Tb;
  I.C.topLeftCorner(nj, nj) += d.M.bottomRightCorner(nj, nj);
  I.C.block(0, nj, nj, nfv) -= I.Jc.rightCols(nj).transpose();
  I.l.head(nj).noalias() = d.M.block(6, 0, nj, 6) * I.t0b;  // the torque of y = 0, minus h_j
  for (int j = 0; j < nj; ++j) {
    const double h0 = I.l[j] + I.nle[6 + j];
    I.l[j] = -I.tau_max_v[6 + j] - h0;
    I.u[j] = I.tau_max_v[6 + j] - h0;
  }
  I.C.bottomRows(I.nin - nj).setZero();
  const double mu = cfg_.friction, X = cfg_.sole_half_length_m, Y = cfg_.sole_half_width_m;
  int row = nj;
  for (int c = 0; c < nc_; ++c) {
    const int fo = nj + c * m_;  // fx fy fz [tx ty tz]
    const int rows = cfg_.flat_feet ? 16 : 4;
    if (!I.contact_on[c]) {  // released: f = 0 by equality, the cone rows are idle
      for (int k = 0; k < rows; ++k) {
        I.l[row + k] = -kFree;
        I.u[row + k] = kFree;
      }
      row += rows;
      continue;
    }
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
    row += rows;
  }

  // Bounds: joint accelerations from position/velocity limits; normal forces with the ramp.
  const double T = cfg_.limit_horizon_s;
  for (int i = 0; i < nj; ++i) {
    const int yi = I.m2v[i] - 6;
    const double qi = s.q[i], vq = s.dq[i];
    double hi = std::min((p.dq_max[i] - vq) / T, 2.0 * (p.q_upper[i] - qi - vq * T) / (T * T));
    double lo = std::max((-p.dq_max[i] - vq) / T, 2.0 * (p.q_lower[i] - qi - vq * T) / (T * T));
    if (lo > hi) lo = hi = 0.5 * (lo + hi);
    I.lbox[yi] = lo;
    I.ubox[yi] = hi;
  }
  I.lbox.tail(nfv).setConstant(-kFree);
  I.ubox.tail(nfv).setConstant(kFree);
  for (int c = 0; c < nc_; ++c) {
    const int fz = nj + c * m_ + 2;
    if (I.contact_on[c]) {
      const double w = I.contact_w[c];
      // Full contact: [f_min, f_max]. Ramping: the bound scales the force the contact carried
      // when its release began (or the weight, on touch-down), so the load moves over gradually.
      I.ubox[fz] = w >= 1.0 ? cfg_.max_normal_force_n : std::max(w * I.ramp_ref[c], w * cfg_.min_normal_force_n);
      I.lbox[fz] = std::min(w * cfg_.min_normal_force_n, I.ubox[fz]);
    }
  }

  // Cost: task rows (in ddq), then mapped onto y.
  I.task_rows = 0;
  {  // centre of mass
    const Eigen::Vector3d e = I.com_ref - d.com[0];
    double aref[3], dr[3];
    for (int k = 0; k < 3; ++k) {
      aref[k] = cfg_.com.kp * e[k] - cfg_.com.kd * d.vcom[0][k];
      dr[k] = d.acom[0][k];
    }
    double w[3] = {cfg_.com.weight[0], cfg_.com.weight[1], cfg_.com.weight[2]};
    const double guard = balance_guard(I, cfg_, nc_);
    w[0] *= guard;
    w[1] *= guard;
    I.st.balance_guard = guard;
    add_task(I, d.Jcom, dr, aref, w);
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
  {
    // || Jw ddq - e ||^2 with ddq_b = Tb y + t0b:  Jr = Jw_b Tb + [Jw_j 0],  er = e - Jw_b t0b.
    const int k = I.task_rows;
    auto Jr = I.Jr.topRows(k + 6);
    auto er = I.er.head(k + 6);
    Jr.topRows(k).noalias() = I.Jw.topRows(k).leftCols<6>() * I.Tb;
    Jr.topLeftCorner(k, nj) += I.Jw.block(0, 6, k, nj);
    er.head(k) = I.e.head(k);
    er.head(k).noalias() -= I.Jw.topLeftCorner(k, 6) * I.t0b;
    // The regularisation of the base accelerations, reg || Tb y + t0b ||^2, as 6 more rows.
    const double sr = std::sqrt(cfg_.reg_ddq);
    Jr.bottomRows(6) = sr * I.Tb;
    er.tail(6) = -sr * I.t0b;
    I.task_rows = k + 6;
  }
  // Diagonal terms of the y cost, 1/2 dy y^2 + cy y: regularisation and joint posture.
  I.dy.head(nj).setConstant(cfg_.reg_ddq);
  I.dy.tail(nfv).setConstant(cfg_.reg_force);
  I.cy.setZero();
  for (int i = 0; i < nj; ++i) {
    const int yi = I.m2v[i] - 6;
    const double w = cfg_.posture.weight[0];
    const double aref = cfg_.posture.kp * (I.posture[i] - s.q[i]) - cfg_.posture.kd * s.dq[i];
    I.dy[yi] += w;
    I.cy[yi] -= w * aref;
  }
  const bool eliminated = I.can_eliminate && eliminate_contacts(I, nj);
  if (!eliminated) y_cost(I);
  I.st.last_model_us = us_since(t0);

  // Solve.
  const auto t1 = Clock::now();
  for (int c = 0; c < nc_; ++c) I.st.contact_weight[c] = I.contact_on[c] ? I.contact_w[c] : 0.0;
  DenseQp::Result res;
  // At most two solves per tick on either path. The first is warm-started. If it fails, the second
  // starts cold and drops the joint-limit acceleration bounds. Those bounds are what can make the
  // problem infeasible: near a limit, a joint too fast to stop in time contradicts the torque
  // limits. The limiter still clamps positions, and the bounds are rebuilt every tick. Starting
  // cold also covers a warm start that misled the solver after a target step.
  DenseQp& qp = eliminated ? *I.qpw : I.qp;
  res = qp.solve();
  if (!res.solved) {
    if (eliminated)
      relax_joint_bounds_eliminated(I, nj);
    else {
      I.lbox.head(nj).setConstant(-kFree);
      I.ubox.head(nj).setConstant(kFree);
    }
    qp.start_cold();
    ++I.st.cold_restarts;
    res = qp.solve();
    if (res.solved) ++I.st.relaxed_solves;
  }
  if (res.solved && eliminated) {
    ++I.st.eliminated_solves;
    const auto& w = I.qpw->x();
    for (int j = 0; j < I.nf; ++j) I.y[I.free_[j]] = w[j];
    I.k0.noalias() -= I.K * w;  // k0 is rebuilt every tick
    for (int j = 0; j < I.nd; ++j) I.y[I.dep[j]] = I.k0[j];
  } else if (res.solved) {
    I.y = I.qp.x();
  } else if (eliminated) {
    I.w_key = ~0u;  // the next eliminated solve starts cold
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
  if (!ok) return fail_tick(out);
  ++I.st.solves;
  I.st.consecutive_failures = 0;
  I.solved_since_entry = true;
  I.ddq.tail(nj) = I.y.head(nj);
  I.ddq.head<6>() = I.t0b;
  I.ddq.head<6>().noalias() += I.Tb * I.y;
  I.f = I.y.tail(nfv);
  I.tau.noalias() = d.M * I.ddq;
  I.tau += I.nle;
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
