// Biped walking pattern (gait.hpp): unicycle footsteps, the DCM plan, swing trajectories.
#include "locomotion/gait.hpp"

#include <algorithm>
#include <cmath>

namespace vertebra::gait {

namespace {

double clamp(double v, double lo, double hi) { return std::min(std::max(v, lo), hi); }

// a composed with a displacement (dx, dy, dyaw) in a's frame
Pose2 compose(const Pose2& a, double dx, double dy, double dyaw) {
  const double c = std::cos(a.yaw), s = std::sin(a.yaw);
  return {a.x + c * dx - s * dy, a.y + s * dx + c * dy, wrap_angle(a.yaw + dyaw)};
}

// b in a's frame
Pose2 relative(const Pose2& a, const Pose2& b) {
  const double c = std::cos(a.yaw), s = std::sin(a.yaw), dx = b.x - a.x, dy = b.y - a.y;
  return {c * dx + s * dy, -s * dx + c * dy, wrap_angle(b.yaw - a.yaw)};
}

double side(int32_t foot) { return foot == kLeft ? 1.0 : -1.0; }  // +y of the walking frame: left

// quintic minimum-jerk s(tau) and its derivatives in tau
void min_jerk(double tau, double& s, double& ds, double& dds) {
  const double t2 = tau * tau, t3 = t2 * tau;
  s = t3 * (10.0 - 15.0 * tau + 6.0 * t2);
  ds = 30.0 * t2 * (1.0 - tau) * (1.0 - tau);
  dds = 60.0 * tau * (1.0 - tau) * (1.0 - 2.0 * tau);
}

}  // namespace

double wrap_angle(double a) {
  a = std::fmod(a + M_PI, 2.0 * M_PI);
  if (a <= 0.0) a += 2.0 * M_PI;
  return a - M_PI;
}

std::string GaitParams::check() const {
  const double v[] = {single_support_s, double_support_s, com_height_m, gravity, step_width_m, min_step_width_m,
                      max_step_length_m, max_step_back_m, max_step_out_m, max_step_turn_rad, swing_height_m, zmp_inset_m};
  for (double x : v)
    if (!std::isfinite(x)) return "every gait parameter must be a finite number";
  if (!(single_support_s >= 0.1)) return "single_support_s must be at least 0.1 s";
  if (!(double_support_s >= 0.02)) return "double_support_s must be at least 0.02 s (the ZMP moves between the feet in it)";
  if (!(com_height_m > 0.1)) return "com_height_m must be above 0.1 m";
  if (!(gravity > 0.0)) return "gravity must be positive";
  if (!(min_step_width_m > 0.0 && min_step_width_m <= step_width_m)) return "min_step_width_m must be in (0, step_width_m]";
  if (!(max_step_length_m >= 0.0 && max_step_back_m >= 0.0 && max_step_out_m >= 0.0 && max_step_turn_rad >= 0.0))
    return "step limits must not be negative";
  if (!(max_step_turn_rad < M_PI / 2)) return "max_step_turn_rad must be below pi/2";
  if (!(swing_height_m >= 0.0)) return "swing_height_m must not be negative";
  if (!(zmp_inset_m >= 0.0 && zmp_inset_m < 0.5 * min_step_width_m)) return "zmp_inset_m must be in [0, min_step_width_m / 2)";
  return "";
}

double GaitParams::omega() const { return std::sqrt(gravity / com_height_m); }

Velocity2 reachable(const GaitParams& g, const Velocity2& cmd) {
  const double T = g.step_s();
  Velocity2 r;
  r.vx = clamp(std::isfinite(cmd.vx) ? cmd.vx : 0.0, -g.max_step_back_m / T, g.max_step_length_m / T);
  // a sideways or turning step moves the frame twice the command's step (the other foot closes up)
  const double vy = g.max_step_out_m / (2.0 * T), wz = g.max_step_turn_rad / (2.0 * T);
  r.vy = clamp(std::isfinite(cmd.vy) ? cmd.vy : 0.0, -vy, vy);
  r.wz = clamp(std::isfinite(cmd.wz) ? cmd.wz : 0.0, -wz, wz);
  return r;
}

int plan_footsteps(const GaitParams& g, const std::array<Pose2, 2>& feet_in, int32_t first_swing,
                   const Velocity2& cmd_in, int n, double t_first, Footstep* out) {
  n = std::max(0, std::min(n, kMaxSteps));
  const Velocity2 cmd = reachable(g, cmd_in);
  const double T = g.step_s(), half = 0.5 * g.step_width_m;
  std::array<Pose2, 2> feet = feet_in;
  int32_t f = first_swing == kRight ? kRight : kLeft;
  for (int k = 0; k < n; ++k) {
    const double sg = side(f);
    const Pose2& stance = feet[1 - f];
    // the walking frame, from the stance foot; it advances by the command over one step
    const Pose2 frame = compose(stance, 0.0, sg * half, 0.0);
    const double dx = cmd.vx * T;
    const double dy = cmd.vy * sg > 0.0 ? 2.0 * cmd.vy * T : 0.0;   // the foot on the motion's side opens
    const double dyaw = cmd.wz * sg > 0.0 ? 2.0 * cmd.wz * T : 0.0;
    const Pose2 moved = compose(compose(frame, 0.0, 0.0, 0.5 * dyaw), dx, dy, 0.5 * dyaw);
    Footstep& s = out[k];
    s.foot = f;
    s.pose = clamp_landing(g, stance, f, compose(moved, 0.0, sg * half, 0.0));
    s.t_lift = t_first + k * T;
    s.t_land = s.t_lift + g.single_support_s;
    feet[f] = s.pose;
    f = 1 - f;
  }
  return n;
}

Pose2 clamp_landing(const GaitParams& g, const Pose2& stance, int32_t swing, const Pose2& landing) {
  const double sg = side(swing);
  Pose2 rel = relative(stance, landing);
  rel.x = clamp(rel.x, -g.max_step_back_m, g.max_step_length_m);
  rel.y = sg * clamp(sg * rel.y, g.min_step_width_m, g.step_width_m + g.max_step_out_m);
  rel.yaw = clamp(rel.yaw, -g.max_step_turn_rad, g.max_step_turn_rad);
  return compose(stance, rel.x, rel.y, rel.yaw);
}

Vec2 stance_zmp(const GaitParams& g, const Pose2& foot, int32_t which) {
  const Pose2 p = compose(foot, 0.0, -side(which) * g.zmp_inset_m, 0.0);
  return {p.x, p.y};
}

void DcmPlan::add(double t0, double t1, const Vec2& a, const Vec2& b) {
  if (n_seg_ >= kMaxSegments) return;
  t0_[n_seg_] = t0;
  t1_[n_seg_] = t1;
  pa_[n_seg_] = a;
  pb_[n_seg_] = b;
  ++n_seg_;
}

void DcmPlan::build(const GaitParams& g, const Vec2& zmp_start, double t_first, const std::array<Pose2, 2>& feet_in,
                    const Footstep* steps, int n, const Vec2* dcm_start) {
  omega_ = g.omega();
  n_seg_ = 0;
  n = std::max(0, std::min(n, kMaxSteps));
  std::array<Pose2, 2> feet = feet_in;
  const double ss = g.single_support_s, ds = g.double_support_s;
  double t = 0.0;
  auto middle = [&]() {
    const Vec2 l = stance_zmp(g, feet[kLeft], kLeft), r = stance_zmp(g, feet[kRight], kRight);
    return Vec2{0.5 * (l.x + r.x), 0.5 * (l.y + r.y)};
  };
  if (n == 0) {  // standing: to the middle of the feet
    add(0.0, std::max(t_first, ds), zmp_start, middle());
  } else {
    const int32_t first_stance = 1 - steps[0].foot;
    Vec2 z = stance_zmp(g, feet[first_stance], first_stance);
    if (t_first > 0.0) {
      add(0.0, t_first, zmp_start, z);
      t = t_first;
    }
    for (int k = 0; k < n; ++k) {
      add(t, t + ss, z, z);  // single support on the stance foot
      t += ss;
      feet[steps[k].foot] = steps[k].pose;
      // double support: to the foot that landed, or after the last step, to standing on both
      const Vec2 next = k + 1 < n ? stance_zmp(g, steps[k].pose, steps[k].foot) : middle();
      add(t, t + ds, z, next);
      t += ds;
      z = next;
    }
  }
  // backwards from the end, where the DCM rests on the ZMP
  Vec2 xi = pb_[n_seg_ - 1];
  for (int i = n_seg_ - 1; i >= 0; --i) {
    xi1_[i] = xi;
    const double dt = t1_[i] - t0_[i];
    const double sx = (pb_[i].x - pa_[i].x) / dt, sy = (pb_[i].y - pa_[i].y) / dt;
    const double e = std::exp(-omega_ * dt);
    xi = {pa_[i].x + sx / omega_ + e * (xi.x - pb_[i].x - sx / omega_),
          pa_[i].y + sy / omega_ + e * (xi.y - pb_[i].y - sy / omega_)};
  }
  if (dcm_start && (t_first > 0.0 || n == 0)) {
    // xi(0) = pa (1 - u + E u) + pb (u - E - E u) + E xi(t1), u = 1 / (omega dt), E = exp(-omega dt),
    // is linear in pa (its factor 1 - u (1 - E) is positive for every dt > 0): solve for xi(0) = dcm_start
    const double dt = t1_[0] - t0_[0], u = 1.0 / (omega_ * dt), E = std::exp(-omega_ * dt);
    const double ka = 1.0 - u + E * u, kb = u - E - E * u;
    pa_[0] = {(dcm_start->x - E * xi1_[0].x - kb * pb_[0].x) / ka, (dcm_start->y - E * xi1_[0].y - kb * pb_[0].y) / ka};
  }
}

int DcmPlan::find(double t) const {
  int i = 0;
  while (i + 1 < n_seg_ && t >= t1_[i]) ++i;
  return i;
}

Vec2 DcmPlan::zmp(double t) const {
  if (n_seg_ == 0) return {};
  const int i = find(t);
  const double dt = t1_[i] - t0_[i], u = clamp((t - t0_[i]) / dt, 0.0, 1.0);
  return {pa_[i].x + u * (pb_[i].x - pa_[i].x), pa_[i].y + u * (pb_[i].y - pa_[i].y)};
}

Vec2 DcmPlan::dcm(double t) const {
  if (n_seg_ == 0) return {};
  const int i = find(t);
  t = clamp(t, t0_[i], t1_[i]);
  const double dt = t1_[i] - t0_[i];
  const double sx = (pb_[i].x - pa_[i].x) / dt, sy = (pb_[i].y - pa_[i].y) / dt;
  const Vec2 p = zmp(t);
  const double e = std::exp(omega_ * (t - t1_[i]));
  return {p.x + sx / omega_ + e * (xi1_[i].x - pb_[i].x - sx / omega_),
          p.y + sy / omega_ + e * (xi1_[i].y - pb_[i].y - sy / omega_)};
}

Vec2 DcmPlan::dcm_rate(double t) const {
  const Vec2 xi = dcm(t), p = zmp(t);
  return {omega_ * (xi.x - p.x), omega_ * (xi.y - p.y)};
}

SwingSample swing(const Pose2& from, double z_from, const Pose2& to, double z_to, double height, double duration,
                  double t) {
  SwingSample out;
  const double D = duration > 1e-6 ? duration : 1e-6;
  const double tau = clamp(t / D, 0.0, 1.0);
  double s, ds, dds;
  min_jerk(tau, s, ds, dds);
  ds /= D;
  dds /= D * D;
  const double d[3] = {to.x - from.x, to.y - from.y, z_to - z_from};
  const double o[3] = {from.x, from.y, z_from};
  for (int k = 0; k < 3; ++k) {
    out.pos[k] = o[k] + s * d[k];
    out.vel[k] = ds * d[k];
    out.acc[k] = dds * d[k];
  }
  // the apex bump: 64 tau^3 (1 - tau)^3, 1 at mid-swing
  const double a = tau * (1.0 - tau);
  out.pos[2] += height * 64.0 * a * a * a;
  out.vel[2] += height * 192.0 * a * a * (1.0 - 2.0 * tau) / D;
  out.acc[2] += height * 384.0 * a * ((1.0 - 2.0 * tau) * (1.0 - 2.0 * tau) - a) / (D * D);
  const double dyaw = wrap_angle(to.yaw - from.yaw);
  out.yaw = wrap_angle(from.yaw + s * dyaw);
  out.yaw_rate = ds * dyaw;
  out.yaw_acc = dds * dyaw;
  return out;
}

Vec2 dcm_feedback(const Vec2& xi, const Vec2& xi_d, const Vec2& p_d, double omega, double k) {
  const double g = 1.0 + k / omega;
  return {p_d.x + g * (xi.x - xi_d.x), p_d.y + g * (xi.y - xi_d.y)};
}

}  // namespace vertebra::gait
