#include "wbc/wbc_impl.hpp"

namespace vertebra {

using namespace wbc_detail;

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

// Sink channels: 0..2 the centre of mass, then 3 per hand. Group g = channel / 3 (0: com, 1 + h: hand h).
std::vector<std::string> WholeBodyController::target_names() const {
  std::vector<std::string> v;
  for (const char* a : {"x", "y", "z"}) v.push_back(std::string("com.") + a);
  for (const auto& h : cfg_.hand_frames)
    for (const char* a : {"x", "y", "z"}) v.push_back(h + "." + a);
  return v;
}

std::string WholeBodyController::check_channels(const int* ch, int n) const {
  const std::vector<std::string> names = target_names();
  const int groups = static_cast<int>(names.size()) / 3;
  for (int g = 0; g < groups; ++g) {
    int axes = 0;
    for (int k = 0; k < n; ++k) axes += ch[k] / 3 == g;
    if (axes != 0 && axes != 3) {
      const std::string target = names[3 * g].substr(0, names[3 * g].size() - 2);
      return "target '" + target + "' needs all of .x, .y and .z in the stream, found " + std::to_string(axes) + " of them";
    }
  }
  return "";
}

void WholeBodyController::stream(const int* ch, const double* v, int n) {
  Impl& I = *impl_;
  const int nh = static_cast<int>(I.hand_fid.size());
  std::array<std::array<double, 3>, 1 + kMaxHands> p{};
  std::array<int, 1 + kMaxHands> seen{};
  for (int k = 0; k < n; ++k) {
    const int g = ch[k] / 3, a = ch[k] % 3;
    if (g < 0 || g > nh) continue;
    p[g][a] = v[k];
    seen[g] |= 1 << a;
  }
  auto ok = [&](int g) { return seen[g] == 7 && std::isfinite(p[g][0]) && std::isfinite(p[g][1]) && std::isfinite(p[g][2]); };
  if (ok(0)) {  // a streamed position is a set point
    I.com_ref = Eigen::Vector3d(p[0][0], p[0][1], p[0][2]);
    I.com_vel_ref.setZero();
    I.com_acc_ref.setZero();
  }
  for (int h = 0; h < nh; ++h) {
    if (!ok(1 + h)) continue;
    I.hand_active[h] = true;
    I.hand_pos_ref[h] = Eigen::Vector3d(p[1 + h][0], p[1 + h][1], p[1 + h][2]);
  }
  ++streamed_;
}

bool WholeBodyController::contact_plan(std::array<double, kMaxFeet>& weight) const {
  const Impl& I = *impl_;
  for (int c = 0; c < nc_; ++c) weight[c] = I.st.contact_weight[c];
  return nc_ > 0 && I.st.solves > 0;
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
    I.aim_reset[h] = true;
  }
  // the orientation applies where the hand is, its aim direction taken now (a position-only target
  // published before the first update is turned from here, not from its own direction)
  aim_hands(I);
  I.f.setZero();
  I.solved_since_entry = false;
  for (int c = 0; c < nc_; ++c) {
    I.contact_target[c] = I.contact_on[c] = true;
    I.contact_w[c] = 1.0;
    I.ramp_ref[c] = I.weight_n / nc_;
    I.foot_pos_ref[c] = I.data.oMf[I.contact_fid[c]].translation();
    I.foot_rot_ref[c] = I.data.oMf[I.contact_fid[c]].rotation();
    I.foot_vel_ref[c] = {};
    I.foot_acc_ref[c] = {};
  }
  I.com_vel_ref.setZero();
  I.com_acc_ref.setZero();
  I.com_weight_scale = 1.0;
  I.planned = WbcTargets{};
  I.posture = p.default_pose;
  targets_in_.read(I.latest);
  I.entry_seq = I.latest.seq;  // targets published before this switch are stale
  I.last_cmd = last;
  I.st.consecutive_failures = 0;
  return Status::kOk;
}

// A tick without a solution: hold the previous command; max_consecutive_failures in a row is a fault.
void WholeBodyController::spend_whole_budget(bool on) {
  const double eps = on ? 0.0 : cfg_.eps_abs;
  impl_->qp.set_eps_abs(eps);
  if (impl_->qpw) impl_->qpw->set_eps_abs(eps);
}

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
  return tick(p, s, dt, out, nullptr);
}

Status WholeBodyController::tick(const RobotParams& p, const State& s, double dt, Command& out, WbcPlanner* planner) {
  Impl& I = *impl_;
  const auto t0 = Clock::now();
  if (!load_state(I, s)) return Status::kNonFinite;
  if (targets_in_.read(I.latest) && I.latest.seq > I.entry_seq) merge_targets(I, I.latest, nc_, static_cast<int>(I.hand_fid.size()));
  kinematics(I);
  if (planner) {  // a pattern generator's targets for this tick (WbcPlanner), from where the robot is
    fill_kinematics(I, nc_);
    if (!planner->plan(I.kin, dt, I.planned)) return fail_tick(out);
    merge_planned(I, I.planned, nc_);
  }
  aim_hands(I);
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
        const bool targeted = (planner && I.planned.foot_set[c]) || (I.latest.seq > I.entry_seq && I.latest.foot_set[c]);
        if (!targeted) {
          I.foot_pos_ref[c] = d.oMf[I.contact_fid[c]].translation();
          I.foot_rot_ref[c] = d.oMf[I.contact_fid[c]].rotation();
          I.foot_vel_ref[c] = {};
          I.foot_acc_ref[c] = {};
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
  keep_out_rows(I, cfg_);  // rows nj .. nj + nko
  int row = nj + I.nko;
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
      aref[k] = I.com_acc_ref[k] + cfg_.com.kp * e[k] + cfg_.com.kd * (I.com_vel_ref[k] - d.vcom[0][k]);
      dr[k] = d.acom[0][k];
    }
    double w[3] = {cfg_.com.weight[0], cfg_.com.weight[1], cfg_.com.weight[2]};
    const double guard = balance_guard(I, cfg_, nc_);
    w[0] *= guard * I.com_weight_scale;
    w[1] *= guard * I.com_weight_scale;
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
      se3_task(I, I.hand_fid[h], I.hand_pos_ref[h], I.hand_rot_cmd[h], cfg_.hands, true, &I.st.hand_pos_err[h],
               &I.st.hand_rot_err[h], cfg_.max_position_error_m, cfg_.max_rotation_error_rad);
  }
  for (int c = 0; c < nc_; ++c)
    if (!I.contact_on[c])
      se3_task(I, I.contact_fid[c], I.foot_pos_ref[c], I.foot_rot_ref[c], cfg_.swing_foot, true, nullptr, nullptr,
               cfg_.max_position_error_m, cfg_.max_rotation_error_rad, I.foot_vel_ref[c].data(), I.foot_acc_ref[c].data());
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
    const int arm = I.arm_hand[yi];
    const double w = cfg_.posture.weight[0] * (arm >= 0 && I.hand_active[arm] ? cfg_.hand_posture_scale : 1.0);
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
  // Both solves share the tick's iteration budget (tick_iteration_budget), a hard cap on ProxQP's
  // inner iterations (the unit of its work, as it counts them) over the whole tick. ProxQP stops
  // only on its outer loop, each outer iteration running at most max_iter_in + 1 inner ones, so a
  // solve given `outer` outer iterations of at most `inner` + 1 inner ones stays within their
  // product (solve_cap).
  DenseQp& qp = eliminated ? *I.qpw : I.qp;
  const int budget = cfg_.tick_iteration_budget;
  // The warm solve: half the budget, over at most warm_max_iter outer iterations (a feasible tick
  // needs one or two, of a few inner iterations each; an infeasible one would otherwise run all
  // max_iter of them). The other half is kept for the retry.
  SolveCap cap = solve_cap(budget - budget / 2, std::min(cfg_.warm_max_iter, cfg_.max_iter), cfg_.inner_max_iter);
  res = qp.solve(cap.outer, cap.inner);
  int used = res.iterations, outer = res.outer_iterations;
  // The cold retry runs only when the warm solve left at least kMinRetryIterations of the budget.
  constexpr int kMinRetryIterations = 5;
  const bool retry = !res.solved && budget - used >= kMinRetryIterations;
  if (retry) {
    if (eliminated)
      relax_joint_bounds_eliminated(I, nj);
    else {
      I.lbox.head(nj).setConstant(-kFree);
      I.ubox.head(nj).setConstant(kFree);
    }
    qp.start_cold();
    ++I.st.cold_restarts;
    // The cold retry: the rest of the budget, in outer iterations of up to inner_max_iter inner
    // ones (a cold start needs several inner iterations in its first outer ones).
    const int left = budget - used;
    cap = solve_cap(left, std::clamp(left / (cfg_.inner_max_iter + 1), 1, cfg_.max_iter), cfg_.inner_max_iter);
    res = qp.solve(cap.outer, cap.inner);
    used += res.iterations;
    outer += res.outer_iterations;
    if (res.solved) ++I.st.relaxed_solves;
  }
  I.st.tick_iterations = used;
  I.st.tick_outer_iterations = outer;
  I.st.max_tick_iterations = std::max(I.st.max_tick_iterations, used);
  if (!res.solved && res.capped) ++I.st.budget_exhausted;
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

bool WholeBodyController::diagnostics(ControllerDiagnostics& out) const {
  // The tick's own copy of what status_ publishes (impl_->st is written by update() on this thread).
  const WbcStatus& st = impl_->st;
  static_assert(kMaxDiagHands >= kMaxHands, "ControllerDiagnostics holds every hand");
  static_assert(kMaxFeet >= kMaxContacts, "ControllerDiagnostics holds every contact");
  out.com_err = st.com_err;
  out.base_pos_err = st.base_pos_err;
  out.base_rot_err = st.base_rot_err;
  out.torso_rot_err = st.torso_rot_err;
  for (int h = 0; h < kMaxHands; ++h) {
    out.hand_pos_err[h] = st.hand_pos_err[h];
    out.hand_rot_err[h] = st.hand_rot_err[h];
  }
  for (int c = 0; c < kMaxContacts; ++c) {
    out.contact_wrench[c] = st.contact_wrench[c];
    out.contact_weight[c] = st.contact_weight[c];
  }
  out.solve_us = st.last_solve_us;
  out.qp_iterations = st.tick_iterations;
  out.qp_status = st.last_qp_status;
  return true;
}

}  // namespace vertebra
