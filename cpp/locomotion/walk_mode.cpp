// The walking controller mode (walk_mode.hpp).
#include "locomotion/walk_mode.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/chunk_scheduler.hpp"

namespace vertebra {

using gait::Pose2;
using gait::Vec2;

namespace {

constexpr double kStill = 1e-3;  // a command axis below this is zero

std::array<double, 4> yaw_quat(double yaw) { return {std::cos(0.5 * yaw), 0.0, 0.0, std::sin(0.5 * yaw)}; }
double clampd(double v, double lo, double hi) { return std::min(std::max(v, lo), hi); }
double approach(double v, double target, double max_step) { return v + clampd(target - v, -max_step, max_step); }
double mean_yaw(double a, double b) { return gait::wrap_angle(a + 0.5 * gait::wrap_angle(b - a)); }
bool finite3(double a, double b, double c) { return std::isfinite(a) && std::isfinite(b) && std::isfinite(c); }

}  // namespace

std::string WalkConfig::check(int n_feet, bool flat_feet) const {
  const std::string g = gait.check();
  if (!g.empty()) return "gait: " + g;
  if (!flat_feet || n_feet != 2) return "walking needs a biped: two flat feet in the whole-body controller";
  if (left_foot == right_foot || left_foot < 0 || right_foot < 0 || left_foot >= n_feet || right_foot >= n_feet)
    return "left_foot and right_foot must be the controller's two different feet";
  if (!(std::isfinite(dcm_gain) && dcm_gain > 0.0)) return "dcm_gain must be a positive number (1/s)";
  if (!(std::isfinite(start_s) && start_s >= gait.double_support_s)) return "start_s must be at least double_support_s";
  if (preview_steps < 2 || preview_steps > gait::kMaxSteps)
    return "preview_steps must be in [2, " + std::to_string(gait::kMaxSteps) + "]";
  if (!(std::isfinite(max_lin_acc) && max_lin_acc > 0.0 && std::isfinite(max_yaw_acc) && max_yaw_acc > 0.0))
    return "max_lin_acc and max_yaw_acc must be positive";
  if (!(std::isfinite(zmp_margin_m) && zmp_margin_m >= 0.0)) return "zmp_margin_m must not be negative";
  for (double m : max_command)
    if (!(m > 0.0) || std::isnan(m)) return "max_command must be positive (m/s, m/s, rad/s)";
  if (!(std::isfinite(com_weight_scale) && com_weight_scale > 0.0)) return "com_weight_scale must be positive";
  if (!(std::isfinite(adjust_deadband_m) && adjust_deadband_m >= 0.0 && std::isfinite(adjust_max_m) && adjust_max_m >= 0.0 &&
        std::isfinite(adjust_freeze_s) && adjust_freeze_s >= 0.0))
    return "adjust_deadband_m, adjust_max_m and adjust_freeze_s must not be negative";
  return "";
}

WalkMode::WalkMode(std::shared_ptr<WholeBodyController> wbc, const WalkConfig& cfg)
    : wbc_(std::move(wbc)), cfg_(cfg), g_(cfg.gait) {
  if (!wbc_) throw std::invalid_argument("walk: needs a whole-body controller");
  const WbcConfig& w = wbc_->config();
  std::string why = cfg_.check(wbc_->n_contacts(), w.flat_feet);
  if (why.empty() && !(cfg_.zmp_margin_m < std::min(w.sole_half_length_m, w.sole_half_width_m)))
    why = "zmp_margin_m must be less than the sole's half width";
  if (why.empty() && !(cfg_.gait.single_support_s >= w.contact_ramp_s + 0.1))
    why = "single_support_s must be at least the contact ramp (contact_ramp_s) + 0.1 s: the swing starts when the force is out";
  if (!why.empty()) throw std::invalid_argument("walk: " + why);
}

bool WalkMode::within_bounds(double vx, double vy, double wz) const {
  return finite3(vx, vy, wz) && std::abs(vx) <= cfg_.max_command[0] && std::abs(vy) <= cfg_.max_command[1] &&
         std::abs(wz) <= cfg_.max_command[2];
}

std::vector<std::string> WalkMode::target_names() const {
  std::vector<std::string> v = wbc_->target_names();  // com.x/y/z, then the hands' x/y/z
  v[0] = "base_velocity.vx";  // the walk owns the centre of mass: its channels are the command's
  v[1] = "base_velocity.vy";
  v[2] = "base_velocity.wz";
  return v;
}

std::string WalkMode::check_channels(const int* ch, int n) const {
  int base = 0;
  for (int k = 0; k < n; ++k) base += ch[k] < 3;
  if (base != 0 && base != 3)
    return "the base velocity needs all of base_velocity.vx, .vy and .wz in the stream, found " + std::to_string(base) +
           " of them";
  return wbc_->check_channels(ch, n);  // the hands' (the command's channels stand where the CoM's are)
}

void WalkMode::stream(const int* ch, const double* v, int n) {
  std::array<double, 3> c{};
  bool seen = false;
  for (int k = 0; k < n; ++k)
    if (ch[k] >= 0 && ch[k] < 3) {
      c[ch[k]] = v[k];
      seen = true;
    }
  if (seen) {
    if (within_bounds(c[0], c[1], c[2])) {
      command_ = c;
    } else {  // fail closed: a policy beyond the bounds stops the walk
      command_ = {};
      ++st_.refused_commands;
    }
    ++streamed_;
  }
  // the hands' channels to the whole-body controller (never the command's: they are its CoM channels)
  std::array<int, kMaxActionDim> hc{};
  std::array<double, kMaxActionDim> hv{};
  int m = 0;
  for (int k = 0; k < n && m < kMaxActionDim; ++k)
    if (ch[k] >= 3) {
      hc[m] = ch[k];
      hv[m++] = v[k];
    }
  if (m > 0) wbc_->stream(hc.data(), hv.data(), m);
}

bool WalkMode::set_command(double vx, double vy, double wz) {
  if (!within_bounds(vx, vy, wz)) return false;
  std::lock_guard<std::mutex> lock(command_mutex_);  // one writer at a time into the triple buffer
  command_in_.write({vx, vy, wz});
  command_seq_.fetch_add(1, std::memory_order_acq_rel);
  return true;
}

Status WalkMode::enter(const RobotParams& p, const State& s, const Command& last, const Targets& t, const ModeRequest& req) {
  const Status r = wbc_->enter(p, s, last, t, req);
  if (r != Status::kOk) return r;
  // a command set before this entry is stale (an earlier session's): only a new one moves the robot
  std::array<double, 3> stale;
  command_in_.read(stale);
  command_ = applied_ = {};
  fresh_ = true;
  swinging_ = false;
  n_steps_ = 0;
  t_ = 0.0;
  st_.phase = WalkPhase::kStanding;
  st_.swing_foot = -1;
  return Status::kOk;
}

Status WalkMode::update(const RobotParams& p, const State& s, const Targets&, double dt, Command& out) {
  const Status r = wbc_->tick(p, s, dt, out, this);
  status_.store(st_);
  return r;
}

int WalkMode::stop_steps(const std::array<Pose2, 2>& feet, int32_t swing) const {
  const Pose2& a = feet[1 - swing];
  const Pose2& b = feet[swing];
  const double c = std::cos(a.yaw), s = std::sin(a.yaw), dx = b.x - a.x, dy = b.y - a.y;
  const double x = c * dx + s * dy, y = -s * dx + c * dy, yaw = gait::wrap_angle(b.yaw - a.yaw);
  const double side = swing == gait::kLeft ? 1.0 : -1.0;
  const bool beside = std::abs(x) < 0.03 && std::abs(side * y - g_.step_width_m) < 0.03 && std::abs(yaw) < 0.05;
  return beside ? 0 : 1;
}

void WalkMode::start_plan(const std::array<Pose2, 2>& feet, int32_t first, int n, double t_first, const Vec2& zmp_start) {
  n_steps_ = gait::plan_footsteps(g_, feet, first, {applied_[0], applied_[1], applied_[2]}, n, t_first, steps_.data());
  nominal_ = steps_;
  plan_feet_ = feet;
  plan_t_first_ = t_first;
  plan_zmp_start_ = zmp_start;
  plan_dcm_start_ = dcm_now_;
  plan_from_dcm_ = t_first > 0.0 || n_steps_ == 0;
  adjusted_ = {};
  dcm_.build(g_, zmp_start, t_first, feet, steps_.data(), n_steps_, plan_from_dcm_ ? &plan_dcm_start_ : nullptr);
  t_ = 0.0;
  ++st_.replans;
}

void WalkMode::adjust_steps(const Vec2& r_want, const Vec2& r, double omega, const Pose2& stance) {
  const gait::Footstep& s0 = nominal_[0];
  const double left = s0.t_land - t_;
  if (left < cfg_.adjust_freeze_s) return;  // too late in the swing: the landing stays
  // What the sole cannot give: the feedback wants the ZMP at r_want, the support holds it at r. Held
  // so until touch-down, the DCM ends (r_want - r)(exp(omega left) - 1) beyond where the feedback
  // would have taken it (0 while the ZMP is inside the sole: then nothing moves).
  const double g = std::exp(omega * left) - 1.0;
  const Vec2 more{(r_want.x - r.x) * g, (r_want.y - r.y) * g};
  if (std::hypot(more.x, more.y) < cfg_.adjust_deadband_m) return;
  Vec2 off{adjusted_.x + more.x, adjusted_.y + more.y};
  const double m = std::hypot(off.x, off.y);
  if (m > cfg_.adjust_max_m) off = {off.x * cfg_.adjust_max_m / m, off.y * cfg_.adjust_max_m / m};
  Pose2 land = s0.pose;
  land.x += off.x;
  land.y += off.y;
  land = gait::clamp_landing(g_, stance, s0.foot, land);
  const Vec2 d{land.x - s0.pose.x, land.y - s0.pose.y};
  if (std::hypot(d.x - adjusted_.x, d.y - adjusted_.y) < 1e-3) return;  // at the limits already
  adjusted_ = d;
  for (int k = 0; k < n_steps_; ++k) {  // the landing and every step after it move together
    steps_[k] = nominal_[k];
    steps_[k].pose.x += d.x;
    steps_[k].pose.y += d.y;
  }
  dcm_.build(g_, plan_zmp_start_, plan_t_first_, plan_feet_, steps_.data(), n_steps_,
             plan_from_dcm_ ? &plan_dcm_start_ : nullptr);
}

Vec2 WalkMode::clamp_to_support(const Vec2& r, const std::array<Pose2, 2>& feet, int32_t swing) const {
  const WbcConfig& w = wbc_->config();
  const double hl = w.sole_half_length_m - cfg_.zmp_margin_m, hw = w.sole_half_width_m - cfg_.zmp_margin_m;
  if (swing >= 0) {  // single support: inside the stance sole, in its frame
    const Pose2& f = feet[1 - swing];
    const double c = std::cos(f.yaw), s = std::sin(f.yaw), dx = r.x - f.x, dy = r.y - f.y;
    const double x = clampd(c * dx + s * dy, -hl, hl), y = clampd(-s * dx + c * dy, -hw, hw);
    return {f.x + c * x - s * y, f.y + s * x + c * y};
  }
  double lo[2] = {1e9, 1e9}, hi[2] = {-1e9, -1e9};  // double support: the box around both soles
  for (const Pose2& f : feet) {
    const double c = std::cos(f.yaw), s = std::sin(f.yaw);
    for (double sx : {-hl, hl})
      for (double sy : {-hw, hw}) {
        const double px = f.x + c * sx - s * sy, py = f.y + s * sx + c * sy;
        lo[0] = std::min(lo[0], px);
        hi[0] = std::max(hi[0], px);
        lo[1] = std::min(lo[1], py);
        hi[1] = std::max(hi[1], py);
      }
  }
  return {clampd(r.x, lo[0], hi[0]), clampd(r.y, lo[1], hi[1])};
}

bool WalkMode::plan(const WbcKinematics& k, double dt, WbcTargets& t) {
  const int L = cfg_.left_foot, R = cfg_.right_foot;
  const int idx[2] = {L, R};
  std::array<double, 3> cmd;
  if (command_in_.read(cmd)) command_ = cmd;
  const std::array<Pose2, 2> feet = {Pose2{k.foot_pos[L][0], k.foot_pos[L][1], k.foot_yaw[L]},
                                     Pose2{k.foot_pos[R][0], k.foot_pos[R][1], k.foot_yaw[R]}};
  if (fresh_) {  // the first tick: the heights and the standing centre of mass, from where the robot is
    fresh_ = false;
    ground_z_ = 0.5 * (k.foot_pos[L][2] + k.foot_pos[R][2]);
    com_z_ = k.com[2];
    base_z_ = k.base_pos[2];
    g_.com_height_m = std::max(0.2, com_z_ - ground_z_);
    stand_com_ = {k.com[0], k.com[1]};
  }
  const double w = g_.omega();
  // the command: clamped to what the steps can follow, rate-limited
  const gait::Velocity2 want = gait::reachable(g_, {command_[0], command_[1], command_[2]});
  applied_[0] = approach(applied_[0], want.vx, cfg_.max_lin_acc * dt);
  applied_[1] = approach(applied_[1], want.vy, cfg_.max_lin_acc * dt);
  applied_[2] = approach(applied_[2], want.wz, cfg_.max_yaw_acc * dt);
  const bool still = std::abs(want.vx) < kStill && std::abs(want.vy) < kStill && std::abs(want.wz) < kStill &&
                     std::abs(applied_[0]) < kStill && std::abs(applied_[1]) < kStill && std::abs(applied_[2]) < kStill;
  const bool stop = still && !cfg_.step_in_place;

  t.com_set = t.base_set = t.torso_set = true;
  t.com_vel = t.com_acc = {};
  t.com_weight_scale = cfg_.com_weight_scale;
  for (int c = 0; c < kMaxContacts; ++c) {
    t.contact_active[c] = true;
    t.foot_set[c] = false;
  }
  const Vec2 c{k.com[0], k.com[1]}, v{k.com_vel[0], k.com_vel[1]};
  const Vec2 xi{c.x + v.x / w, c.y + v.y / w};
  dcm_now_ = xi;  // a plan with a weight shift first starts its DCM here (DcmPlan::build)

  if (st_.phase == WalkPhase::kStanding && !stop) {
    // the first swing foot: the one on the side of the motion (sideways, else turning), else the left
    int32_t first = gait::kLeft;
    if (want.vy < -kStill || (std::abs(want.vy) < kStill && want.wz < -kStill)) first = gait::kRight;
    start_plan(feet, first, cfg_.preview_steps, cfg_.start_s, c);
    st_.phase = WalkPhase::kWalking;
  } else if (st_.phase == WalkPhase::kWalking) {
    t_ += dt;
    if (n_steps_ >= 2 && t_ >= steps_[1].t_lift) {  // the next lift-off: re-plan from here, with the command now
      const double over = t_ - steps_[1].t_lift;
      const int32_t next = steps_[1].foot;
      const Vec2 z = dcm_.zmp(t_);
      if (stop) {  // one step beside the stance foot, or (side by side already) a weight shift to both
        const int n = stop_steps(feet, next);
        start_plan(feet, next, n, n > 0 ? 0.0 : cfg_.start_s, z);
      } else
        start_plan(feet, next, cfg_.preview_steps, 0.0, z);
      if (n_steps_ > 0) t_ = over;  // a stop with the feet side by side starts its weight shift now
    } else if (n_steps_ <= 1 && t_ >= dcm_.duration()) {  // a stop is done: standing on both feet
      st_.phase = WalkPhase::kStanding;
      stand_com_ = dcm_.end();
      n_steps_ = 0;
    }
  }

  double yaw = mean_yaw(feet[0].yaw, feet[1].yaw);
  if (st_.phase == WalkPhase::kStanding) {
    t.com = {stand_com_.x, stand_com_.y, com_z_};
    st_.dcm_ref = {stand_com_.x, stand_com_.y};
    st_.zmp_ref = st_.zmp_cmd = st_.dcm_ref;
    st_.swing_foot = -1;
    swinging_ = false;
  } else {
    int32_t swing = -1;
    if (n_steps_ >= 1 && t_ >= steps_[0].t_lift && t_ < steps_[0].t_land) {
      swing = steps_[0].foot;
      if (cfg_.step_adjust) {
        const Vec2 want = gait::dcm_feedback(xi, dcm_.dcm(t_), dcm_.zmp(t_), w, cfg_.dcm_gain);
        const double before = std::hypot(adjusted_.x, adjusted_.y);
        adjust_steps(want, clamp_to_support(want, feet, swing), w, feet[1 - swing]);
        if (before == 0.0 && std::hypot(adjusted_.x, adjusted_.y) > 0.0) ++st_.adjusted_steps;
      }
    }
    if (n_steps_ >= 1) {
      const gait::Footstep& s0 = steps_[0];
      if (t_ >= s0.t_lift && t_ < s0.t_land) {
        if (!swinging_) {  // lift-off: the swing starts from where the foot is
          swinging_ = true;
          lift_pose_ = feet[s0.foot];
          lift_z_ = k.foot_pos[idx[s0.foot]][2];
        }
        const double ramp = wbc_->config().contact_ramp_s;
        const gait::SwingSample sw = gait::swing(lift_pose_, lift_z_, s0.pose, ground_z_, g_.swing_height_m,
                                                 g_.single_support_s - ramp, t_ - s0.t_lift - ramp);
        const int fc = idx[s0.foot];
        t.contact_active[fc] = false;
        t.foot_set[fc] = true;
        t.foot_pos[fc] = sw.pos;
        t.foot_quat[fc] = yaw_quat(sw.yaw);
        t.foot_vel[fc] = {sw.vel[0], sw.vel[1], sw.vel[2], 0.0, 0.0, sw.yaw_rate};
        t.foot_acc[fc] = {sw.acc[0], sw.acc[1], sw.acc[2], 0.0, 0.0, sw.yaw_acc};
        yaw = mean_yaw(feet[1 - s0.foot].yaw, sw.yaw);
      } else if (swinging_ && t_ >= s0.t_land) {  // touch-down
        swinging_ = false;
        ++st_.steps;
      }
    }
    const Vec2 xi_d = dcm_.dcm(t_), p_d = dcm_.zmp(t_);
    const Vec2 r = clamp_to_support(gait::dcm_feedback(xi, xi_d, p_d, w, cfg_.dcm_gain), feet, swing);
    // the pendulum's acceleration about the commanded ZMP: the centre of mass task's whole reference
    // horizontally (its target and velocity are where it is), its height held
    t.com = {c.x, c.y, com_z_};
    t.com_vel = {v.x, v.y, 0.0};
    t.com_acc = {w * w * (c.x - r.x), w * w * (c.y - r.y), 0.0};
    st_.dcm_ref = {xi_d.x, xi_d.y};
    st_.zmp_ref = {p_d.x, p_d.y};
    st_.zmp_cmd = {r.x, r.y};
    st_.swing_foot = swing;
    st_.adjust = {adjusted_.x, adjusted_.y};
  }
  t.base_pos = {k.base_pos[0], k.base_pos[1], base_z_};
  t.base_quat = t.torso_quat = yaw_quat(yaw);
  st_.command = command_;
  st_.applied = applied_;
  st_.dcm = {xi.x, xi.y};
  st_.dcm_err_m = std::hypot(xi.x - st_.dcm_ref[0], xi.y - st_.dcm_ref[1]);
  st_.plan_time_s = t_;
  return true;
}

}  // namespace vertebra
