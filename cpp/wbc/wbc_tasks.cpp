// Whole-body controller: targets, task rows and the balance guard (wbc_impl.hpp).
#include "wbc/wbc_impl.hpp"

namespace vertebra::wbc_detail {

// Fields that are set and finite replace the references; a non-finite field is ignored (the
// previous reference stays), so a bad target can never reach the solver.
namespace {
// The centre of mass, base, torso, contacts and feet of a target (merge_targets, merge_planned).
void merge_body(WholeBodyController::Impl& I, const WbcTargets& t, int nc) {
  if (t.com_set && finite(t.com)) {
    I.com_ref = Eigen::Vector3d(t.com[0], t.com[1], t.com[2]);
    const bool ff = finite(t.com_vel) && finite(t.com_acc);  // a bad feed-forward: a set point
    I.com_vel_ref = ff ? Eigen::Vector3d(t.com_vel[0], t.com_vel[1], t.com_vel[2]) : Eigen::Vector3d::Zero();
    I.com_acc_ref = ff ? Eigen::Vector3d(t.com_acc[0], t.com_acc[1], t.com_acc[2]) : Eigen::Vector3d::Zero();
    I.com_weight_scale = std::isfinite(t.com_weight_scale) && t.com_weight_scale > 0.0 ? t.com_weight_scale : 1.0;
  }
  if (t.base_set && finite(t.base_pos) && finite(t.base_quat)) {
    I.base_pos_ref = Eigen::Vector3d(t.base_pos[0], t.base_pos[1], t.base_pos[2]);
    I.base_rot_ref = quat_wxyz(t.base_quat).toRotationMatrix();
  }
  if (t.torso_set && finite(t.torso_quat)) I.torso_rot_ref = quat_wxyz(t.torso_quat).toRotationMatrix();
  for (int c = 0; c < nc; ++c) {
    I.contact_target[c] = t.contact_active[c];
    if (t.foot_set[c] && finite(t.foot_pos[c]) && finite(t.foot_quat[c])) {
      I.foot_pos_ref[c] = Eigen::Vector3d(t.foot_pos[c][0], t.foot_pos[c][1], t.foot_pos[c][2]);
      I.foot_rot_ref[c] = quat_wxyz(t.foot_quat[c]).toRotationMatrix();
      const bool ff = finite(t.foot_vel[c]) && finite(t.foot_acc[c]);
      I.foot_vel_ref[c] = ff ? t.foot_vel[c] : std::array<double, 6>{};
      I.foot_acc_ref[c] = ff ? t.foot_acc[c] : std::array<double, 6>{};
    }
  }
}
}  // namespace

void merge_planned(WholeBodyController::Impl& I, const WbcTargets& t, int nc) { merge_body(I, t, nc); }

void fill_kinematics(WholeBodyController::Impl& I, int nc) {
  const auto& d = I.data;
  WbcKinematics& k = I.kin;
  for (int i = 0; i < 3; ++i) {
    k.com[i] = d.com[0][i];
    k.com_vel[i] = d.vcom[0][i];
  }
  k.n_feet = nc;
  for (int c = 0; c < nc; ++c) {
    const auto& M = d.oMf[I.contact_fid[c]];
    for (int i = 0; i < 3; ++i) k.foot_pos[c][i] = M.translation()[i];
    k.foot_yaw[c] = std::atan2(M.rotation()(1, 0), M.rotation()(0, 0));
  }
  for (int i = 0; i < 3; ++i) k.base_pos[i] = d.oMf[I.base_fid].translation()[i];

}

void merge_targets(WholeBodyController::Impl& I, const WbcTargets& t, int nc, int nh) {
  merge_body(I, t, nc);
  for (int h = 0; h < nh; ++h) {
    const bool ok = finite(t.hand_pos[h]) && (t.hand_position_only[h] || finite(t.hand_quat[h]));
    if (!t.hand_set[h]) I.hand_active[h] = false;
    if (t.hand_set[h] && ok) {
      I.hand_active[h] = true;
      I.hand_pos_ref[h] = Eigen::Vector3d(t.hand_pos[h][0], t.hand_pos[h][1], t.hand_pos[h][2]);
      if (!t.hand_position_only[h]) {
        I.hand_rot_ref[h] = quat_wxyz(t.hand_quat[h]).toRotationMatrix();
        I.aim_reset[h] = true;  // the orientation applies at this target's direction
      }
    }
  }
  for (int j = 0; j < I.nj; ++j)
    if (t.posture_set[j] && std::isfinite(t.posture[j])) I.posture[j] = t.posture[j];
}

// The smallest rotation taking unit vector a to unit vector b (a about-face turns about an axis
// normal to a, in the plane of a and the world's y axis where it can).
Eigen::Matrix3d rotation_between(const Eigen::Vector3d& a, const Eigen::Vector3d& b) {
  Eigen::Vector3d axis = a.cross(b);
  const double s = axis.norm(), c = a.dot(b);
  if (s < 1e-9) {
    if (c > 0.0) return Eigen::Matrix3d::Identity();
    axis = a.cross(Eigen::Vector3d::UnitY());
    if (axis.norm() < 1e-6) axis = a.cross(Eigen::Vector3d::UnitX());
    return Eigen::AngleAxisd(M_PI, axis.normalized()).toRotationMatrix();
  }
  return Eigen::AngleAxisd(std::atan2(s, c), axis / s).toRotationMatrix();
}

// Each hand's orientation for this tick (WbcConfig::hand_aim_frames): its reference, turned from the
// arm's direction it applies at to the arm's direction to the target now.
void aim_hands(WholeBodyController::Impl& I) {
  for (size_t h = 0; h < I.hand_fid.size(); ++h) {
    I.hand_rot_cmd[h] = I.hand_rot_ref[h];
    if (I.aim_fid.empty()) continue;
    const Eigen::Vector3d d = I.hand_pos_ref[h] - I.data.oMf[I.aim_fid[h]].translation();
    if (d.norm() < 1e-3) continue;  // a target at the shoulder has no direction: the reference as it is
    if (I.aim_reset[h]) {
      I.aim_dir[h] = d.normalized();
      I.aim_reset[h] = false;
    }
    I.hand_rot_cmd[h] = rotation_between(I.aim_dir[h], d.normalized()) * I.hand_rot_ref[h];
  }
}

// Adds w-weighted || J ddq + drift - aref ||^2 for a k-row task (k <= 6).
void add_task(WholeBodyController::Impl& I, const Eigen::Ref<const Eigen::MatrixXd>& J, const double* drift,
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
void se3_task(WholeBodyController::Impl& I, pinocchio::FrameIndex fid, const Eigen::Vector3d& p_ref,
                     const Eigen::Matrix3d& R_ref, const WbcGains& g, bool with_position, double* pos_err,
                     double* rot_err, double max_pos, double max_rot, const double* vel_ff,
                     const double* acc_ff) {
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
    // with a trajectory's feed-forward: a* + kp e + kd (v* - v)
    const double vl = vel_ff ? vel_ff[k] : 0.0, va = vel_ff ? vel_ff[3 + k] : 0.0;
    aref[k] = (acc_ff ? acc_ff[k] : 0.0) + g.kp * sp * ep[k] + g.kd * (vl - vel.linear()[k]);
    aref[3 + k] = (acc_ff ? acc_ff[3 + k] : 0.0) + g.kp * sr * er[k] + g.kd * (va - vel.angular()[k]);
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
double balance_guard(const WholeBodyController::Impl& I, const WbcConfig& cfg, int nc) {
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

}  // namespace vertebra::wbc_detail

namespace vertebra::wbc_detail {

// Keep-out rows (header comment), rows nj .. nj + nko of C, on y = [ddq_j ; f] (ddq_b = Tb y + t0b).
// Per point and box: the face the point is farthest out of (the largest of |r_k| - half_k over the
// axes, r the point in box coordinates; inside the box that is the nearest face, so the barrier
// pushes it out the short way), its outward normal n, and the clearance d beyond radius + margin.
// The point's acceleration along n is n' (J ddq + drift); the row asks it to be at least
// -kp d - kd d', which keeps d >= 0 once it is (and brings it back when it is not).
void keep_out_rows(WholeBodyController::Impl& I, const WbcConfig& cfg) {
  auto& d = I.data;
  const int nj = I.nj;
  double clearance = kFree;
  int active = 0;
  int row = nj;
  for (size_t p = 0; p < I.keep_out_fid.size(); ++p) {
    const auto fid = I.keep_out_fid[p];
    const Eigen::Vector3d pos = d.oMf[fid].translation();
    bool have_jacobian = false;
    for (const auto& box : cfg.keep_out) {
      const int r = row++;
      I.l[r] = -kFree;
      I.u[r] = kFree;
      int axis = 0;
      double excess = -kFree, side = 1.0;
      for (int k = 0; k < 3; ++k) {
        const double rk = pos[k] - box.center[k];
        const double e = std::abs(rk) - box.half[k];
        if (e > excess) {
          excess = e;
          axis = k;
          side = rk >= 0 ? 1.0 : -1.0;
        }
      }
      const double clear = excess - cfg.keep_out_points[p].radius_m;
      clearance = std::min(clearance, clear);
      const double dist = clear - cfg.keep_out_margin_m;
      if (dist > cfg.keep_out_activation_m) continue;
      if (!have_jacobian) {
        I.J6.setZero();
        pinocchio::getFrameJacobian(I.model, d, fid, pinocchio::LOCAL_WORLD_ALIGNED, I.J6);
        have_jacobian = true;
      }
      const pinocchio::Motion acc = pinocchio::getFrameClassicalAcceleration(I.model, d, fid, pinocchio::LOCAL_WORLD_ALIGNED);
      const pinocchio::Motion vel = pinocchio::getFrameVelocity(I.model, d, fid, pinocchio::LOCAL_WORLD_ALIGNED);
      // n' J ddq with n = side e_axis: the Jacobian's row `axis`, signed; in y through the base elimination
      const auto Jn = I.J6.row(axis);
      I.C.row(r).noalias() = side * Jn.leftCols<6>() * I.Tb;
      I.C.row(r).head(nj) += side * Jn.tail(nj);
      const double drift = side * (acc.linear()[axis] + Jn.leftCols<6>().dot(I.t0b));
      const double ddist = side * vel.linear()[axis];
      I.l[r] = -cfg.keep_out_kp * dist - cfg.keep_out_kd * ddist - drift;
      ++active;
    }
  }
  I.st.keep_out_clearance_m = I.keep_out_fid.empty() || cfg.keep_out.empty() ? 0.0 : clearance;
  I.st.keep_out_active = active;
}

}  // namespace vertebra::wbc_detail
