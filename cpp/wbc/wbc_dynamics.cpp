// Whole-body controller: state loading and the dynamics passes (wbc_impl.hpp).
#include "wbc/wbc_impl.hpp"

namespace vertebra::wbc_detail {

// Fill q, v (pinocchio conventions) from a driver state. Returns false without a base estimate.
bool load_state(WholeBodyController::Impl& I, const State& s) {
  if (!s.has_base_truth && !s.base_estimated) return false;
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
void nonlinear_effects(WholeBodyController::Impl& I) {
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
void joint_space_inertia(WholeBodyController::Impl& I) {
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

void kinematics(WholeBodyController::Impl& I) {
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

}  // namespace vertebra::wbc_detail
