// Internal to the whole-body controller (cpp/wbc/wbc*.cpp): its workspace (Model vs Data: sized
// in the constructor, reused every tick) and the passes the tick is built from, one file each:
//   wbc_dynamics.cpp     state loading, kinematics, joint-space inertia, non-linear effects
//   wbc_tasks.cpp        targets, task rows (CoM, SE3, posture), the balance guard
//   wbc_elimination.cpp  exact elimination of the contact rows before ProxQP
//   wbc_setup.cpp        construction: model, frames, problem sizes, solvers (configuration time)
//   wbc.cpp              the target sink, enter()/update() orchestration and the solve
// Every function here is [tick]: no allocation, no exceptions.
#pragma once

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
namespace wbc_detail {
constexpr double kFree = DenseQp::kFree;
using Clock = std::chrono::steady_clock;
inline double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}
inline Eigen::Quaterniond quat_wxyz(const std::array<double, 4>& a) {
  Eigen::Quaterniond q(a[0], a[1], a[2], a[3]);
  const double n = q.norm();
  if (!(n > 1e-9) || !std::isfinite(n)) return Eigen::Quaterniond::Identity();
  q.coeffs() /= n;
  return q;
}
// Rotation with the same heading (yaw) as R and no roll/pitch.
inline Eigen::Matrix3d level(const Eigen::Matrix3d& R) {
  const double yaw = std::atan2(R(1, 0), R(0, 0));
  return Eigen::AngleAxisd(yaw, Eigen::Vector3d::UnitZ()).toRotationMatrix();
}

template <size_t N>
inline bool finite(const std::array<double, N>& a) {
  for (double v : a)
    if (!std::isfinite(v)) return false;
  return true;
}
}  // namespace wbc_detail

struct WholeBodyController::Impl {
  pinocchio::Model model;
  pinocchio::Data data;
  int nv = 0, nj = 0, n = 0, neq = 0, nin = 0;
  int nr = 0, neq_r = 0;  // what ProxQP sees: the base accelerations are eliminated (header)
  std::vector<int> m2q, m2v;  // motor index -> model q/v index
  std::vector<pinocchio::FrameIndex> contact_fid, hand_fid;
  std::vector<pinocchio::FrameIndex> keep_out_fid;  // per keep-out point: an added frame at its offset
  int nko = 0;  // keep-out rows (points x boxes), right after the joint-torque rows
  std::vector<pinocchio::FrameIndex> used_fid;  // the frames whose placements the tick reads
  pinocchio::FrameIndex base_fid = 0, torso_fid = 0;
  bool has_torso = false;
  std::vector<int> arm_hand;  // per y (joint velocity) index: the hand whose arm it is, or -1
  std::vector<pinocchio::FrameIndex> aim_fid;  // per hand: its shoulder (WbcConfig::hand_aim_frames)
  std::array<Eigen::Vector3d, kMaxHands> aim_dir{};  // the arm's direction hand_rot_ref applies at
  std::array<bool, kMaxHands> aim_reset{};           // aim_dir to be taken from the target this tick
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
  Eigen::Vector3d com_vel_ref = Eigen::Vector3d::Zero(), com_acc_ref = Eigen::Vector3d::Zero();  // feed-forward
  double com_weight_scale = 1.0;
  Eigen::Vector3d base_pos_ref = Eigen::Vector3d::Zero();
  Eigen::Matrix3d base_rot_ref = Eigen::Matrix3d::Identity(), torso_rot_ref = Eigen::Matrix3d::Identity();
  std::array<Eigen::Vector3d, kMaxHands> hand_pos_ref{};
  std::array<Eigen::Matrix3d, kMaxHands> hand_rot_ref{};
  std::array<Eigen::Matrix3d, kMaxHands> hand_rot_cmd{};  // this tick's: hand_rot_ref turned to aim
  std::array<bool, kMaxHands> hand_active{};
  std::array<Eigen::Vector3d, kMaxContacts> foot_pos_ref{};
  std::array<Eigen::Matrix3d, kMaxContacts> foot_rot_ref{};
  std::array<std::array<double, 6>, kMaxContacts> foot_vel_ref{}, foot_acc_ref{};  // feed-forward (swing)
  WbcTargets planned{};  // the planner's targets of this tick (WbcPlanner)
  WbcKinematics kin{};
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

namespace wbc_detail {
using Impl = WholeBodyController::Impl;
// wbc_dynamics.cpp
bool load_state(WholeBodyController::Impl& I, const State& s);
void nonlinear_effects(WholeBodyController::Impl& I);
void joint_space_inertia(WholeBodyController::Impl& I);
void kinematics(WholeBodyController::Impl& I);
// wbc_tasks.cpp
void merge_targets(WholeBodyController::Impl& I, const WbcTargets& t, int nc, int nh);
// A planner's targets: centre of mass, base, torso, contacts and feet; not the hands or the posture.
void merge_planned(WholeBodyController::Impl& I, const WbcTargets& t, int nc);
void fill_kinematics(WholeBodyController::Impl& I, int nc);
Eigen::Matrix3d rotation_between(const Eigen::Vector3d& a, const Eigen::Vector3d& b);
void aim_hands(WholeBodyController::Impl& I);
void add_task(WholeBodyController::Impl& I, const Eigen::Ref<const Eigen::MatrixXd>& J, const double* drift,
                     const double* aref, const double* w);
void se3_task(WholeBodyController::Impl& I, pinocchio::FrameIndex fid, const Eigen::Vector3d& p_ref,
                     const Eigen::Matrix3d& R_ref, const WbcGains& g, bool with_position, double* pos_err,
                     double* rot_err, double max_pos, double max_rot, const double* vel_ff = nullptr,
                     const double* acc_ff = nullptr);
double balance_guard(const WholeBodyController::Impl& I, const WbcConfig& cfg, int nc);
void keep_out_rows(WholeBodyController::Impl& I, const WbcConfig& cfg);
// wbc_elimination.cpp
void relax_joint_bounds_eliminated(WholeBodyController::Impl& I, int nj);
void y_cost(WholeBodyController::Impl& I);
bool eliminate_contacts(WholeBodyController::Impl& I, int nj);
}  // namespace wbc_detail

}  // namespace vertebra
