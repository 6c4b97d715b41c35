// Whole-body controller: construction (configuration time; may throw). See wbc_impl.hpp.
#include <algorithm>
#include "wbc/wbc_impl.hpp"

namespace vertebra {

using namespace wbc_detail;

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
  // One field per message: what was found and what is valid.
  auto positive = [](const char* field, double v) {
    if (!(v > 0) || !std::isfinite(v))
      throw std::invalid_argument(std::string("WBC: ") + field + ": found " + std::to_string(v) + "; valid: a finite number > 0");
  };
  positive("friction", cfg.friction);
  positive("control_rate_hz", cfg.control_rate_hz);
  positive("contact_ramp_s", cfg.contact_ramp_s);
  positive("limit_horizon_s", cfg.limit_horizon_s);
  positive("eps_abs", cfg.eps_abs);
  positive("max_position_error_m", cfg.max_position_error_m);
  positive("max_rotation_error_rad", cfg.max_rotation_error_rad);
  positive("reg_ddq", cfg.reg_ddq);
  positive("reg_force", cfg.reg_force);
  if (cfg.max_iter < 1)
    throw std::invalid_argument("WBC: max_iter: found " + std::to_string(cfg.max_iter) + "; valid: >= 1");
  if (cfg.tick_iteration_budget < 2)  // one outer iteration of one inner step, as ProxQP counts it
    throw std::invalid_argument("WBC: tick_iteration_budget: found " + std::to_string(cfg.tick_iteration_budget) +
                                "; valid: >= 2");
  if (cfg.inner_max_iter < 1)
    throw std::invalid_argument("WBC: inner_max_iter: found " + std::to_string(cfg.inner_max_iter) + "; valid: >= 1");
  if (cfg.warm_max_iter < 1)
    throw std::invalid_argument("WBC: warm_max_iter: found " + std::to_string(cfg.warm_max_iter) + "; valid: >= 1");
  if (cfg.max_consecutive_failures < 1)
    throw std::invalid_argument("WBC: max_consecutive_failures: found " + std::to_string(cfg.max_consecutive_failures) +
                                "; valid: >= 1");
  if (!(cfg.min_normal_force_n >= 0) || !std::isfinite(cfg.min_normal_force_n))
    throw std::invalid_argument("WBC: min_normal_force_n: found " + std::to_string(cfg.min_normal_force_n) +
                                "; valid: a finite number >= 0");
  if (!(cfg.max_normal_force_n > cfg.min_normal_force_n) || !std::isfinite(cfg.max_normal_force_n))
    throw std::invalid_argument("WBC: max_normal_force_n: found " + std::to_string(cfg.max_normal_force_n) +
                                "; valid: finite and > min_normal_force_n (" + std::to_string(cfg.min_normal_force_n) + ")");
  if (!(cfg.balance_guard_start_m > cfg.balance_guard_full_m))
    throw std::invalid_argument("WBC: balance_guard_start_m: found " + std::to_string(cfg.balance_guard_start_m) +
                                "; valid: > balance_guard_full_m (" + std::to_string(cfg.balance_guard_full_m) + ")");
  if (!std::isfinite(cfg.balance_guard_scale))
    throw std::invalid_argument("WBC: balance_guard_scale: found " + std::to_string(cfg.balance_guard_scale) +
                                "; valid: a finite number (<= 1 turns the guard off)");
  if (!(cfg.hand_posture_scale >= 0.0 && cfg.hand_posture_scale <= 1.0))
    throw std::invalid_argument("WBC: hand_posture_scale: found " + std::to_string(cfg.hand_posture_scale) +
                                "; valid: 0..1 (1: the arms' posture weight unchanged)");

  for (const auto& b : cfg.keep_out)
    for (int k = 0; k < 3; ++k)
      if (!std::isfinite(b.center[k]) || !(b.half[k] > 0) || !std::isfinite(b.half[k]))
        throw std::invalid_argument("WBC: keep_out: a box needs a finite centre and half sizes > 0; found half " +
                                    std::to_string(b.half[k]) + " on axis " + std::to_string(k));
  for (const auto& pt : cfg.keep_out_points)
    if (!(pt.radius_m >= 0) || !std::isfinite(pt.radius_m) || !std::isfinite(pt.offset[0]) ||
        !std::isfinite(pt.offset[1]) || !std::isfinite(pt.offset[2]))
      throw std::invalid_argument("WBC: keep_out_points: " + pt.frame + " needs a finite offset and a radius >= 0");
  const int nko = static_cast<int>(cfg.keep_out.size() * cfg.keep_out_points.size());
  if (nko > kMaxKeepOutRows)
    throw std::invalid_argument("WBC: keep_out: " + std::to_string(cfg.keep_out_points.size()) + " points x " +
                                std::to_string(cfg.keep_out.size()) + " boxes = " + std::to_string(nko) +
                                " rows; valid: at most " + std::to_string(kMaxKeepOutRows));
  if (nko > 0) {
    if (!(cfg.keep_out_margin_m >= 0) || !std::isfinite(cfg.keep_out_margin_m))
      throw std::invalid_argument("WBC: keep_out_margin_m: found " + std::to_string(cfg.keep_out_margin_m) +
                                  "; valid: a finite number >= 0");
    positive("keep_out_kp", cfg.keep_out_kp);
    positive("keep_out_kd", cfg.keep_out_kd);
    positive("keep_out_activation_m", cfg.keep_out_activation_m);
  }

  const int nv = robot.nv();
  const int n = nv + nc_ * m_;
  const int neq = 6 + nc_ * m_;
  const int nin = nj + nko + nc_ * (cfg.flat_feet ? 16 : 4);
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
  if (!cfg.hand_aim_frames.empty()) {
    if (cfg.hand_aim_frames.size() != cfg.hand_frames.size())
      throw std::invalid_argument("WBC: hand_aim_frames: one shoulder frame per hand (" + std::to_string(cfg.hand_frames.size()) +
                                  "), found " + std::to_string(cfg.hand_aim_frames.size()));
    for (size_t h = 0; h < cfg.hand_aim_frames.size(); ++h) {
      const auto fid = static_cast<pinocchio::FrameIndex>(robot.frame_id(cfg.hand_aim_frames[h]));
      const auto& chain = I.model.supports[I.model.frames[I.hand_fid[h]].parentJoint];
      const auto parent = I.model.frames[fid].parentJoint;
      if (fid == I.hand_fid[h] || parent == I.model.frames[I.hand_fid[h]].parentJoint ||
          std::find(chain.begin(), chain.end(), parent) == chain.end())
        throw std::invalid_argument("WBC: hand_aim_frames: " + cfg.hand_aim_frames[h] + " is not a link above " +
                                    cfg.hand_frames[h] + " on its arm (a shoulder: the aim is from there to the hand)");
      I.aim_fid.push_back(fid);
    }
  }
  // Each hand's arm: the joints supporting the hand frame that do not support the torso (or base).
  I.arm_hand.assign(nv - 6, -1);
  {
    const auto& trunk = I.model.supports[I.model.frames[I.has_torso ? I.torso_fid : I.base_fid].parentJoint];
    for (size_t h = 0; h < I.hand_fid.size(); ++h)
      for (auto j : I.model.supports[I.model.frames[I.hand_fid[h]].parentJoint]) {
        if (j == 0 || I.model.idx_vs[j] < 6 || std::find(trunk.begin(), trunk.end(), j) != trunk.end()) continue;
        for (int k = 0; k < I.model.nvs[j]; ++k) {
          int& a = I.arm_hand[I.model.idx_vs[j] + k - 6];
          a = (a == -1) ? static_cast<int>(h) : -2;  // a joint under both hands is neither's arm
        }
      }
    for (int& a : I.arm_hand)
      if (a == -2) a = -1;
  }
  I.nko = nko;
  for (const auto& pt : cfg.keep_out_points) {
    const auto parent = static_cast<pinocchio::FrameIndex>(robot.frame_id(pt.frame));
    const auto& pf = I.model.frames[parent];
    pinocchio::SE3 offset(Eigen::Matrix3d::Identity(), Eigen::Vector3d(pt.offset[0], pt.offset[1], pt.offset[2]));
    I.keep_out_fid.push_back(I.model.addFrame(pinocchio::Frame("wbc_keep_out_" + std::to_string(I.keep_out_fid.size()),
                                                               pf.parentJoint, parent, pf.placement * offset,
                                                               pinocchio::OP_FRAME)));
  }
  I.used_fid = I.contact_fid;
  for (auto f : I.keep_out_fid) I.used_fid.push_back(f);
  I.used_fid.push_back(I.base_fid);
  if (I.has_torso) I.used_fid.push_back(I.torso_fid);
  for (auto f : I.hand_fid) I.used_fid.push_back(f);
  for (auto f : I.aim_fid) I.used_fid.push_back(f);
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
    I.Cd = Eigen::MatrixXd::Zero(nj + nko, I.nd);  // the rows on joint accelerations: torques, keep-out
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

}  // namespace vertebra
