// Biped walking pattern: footsteps from a velocity command, the divergent component of motion
// (DCM) planned over them, swing-foot trajectories, and the DCM feedback law. The walking
// controller mode (issue 18) runs these on the tick and hands the whole-body QP its centre-of-mass,
// swing-foot and contact targets.
//
// Model: the linear inverted pendulum (LIPM) at constant height z_c, omega = sqrt(g / z_c):
//   c'' = omega^2 (c - p)      c: horizontal centre of mass, p: zero-moment point (ZMP)
// The DCM xi = c + c' / omega splits it into a stable and an unstable first-order system:
//   c' = omega (xi - c)        (stable: the CoM follows the DCM)
//   xi' = omega (xi - p)       (unstable: the ZMP pushes the DCM)
// (Takenaka et al. 2009; Englsberger, Ott, Albu-Schaeffer, "Three-dimensional bipedal walking
// control based on divergent component of motion", IEEE T-RO 2015.)
//
// Plan. The ZMP reference is piecewise linear in time: constant at the stance foot in single
// support, moving linearly to the next stance foot in double support, and to the middle of the
// feet after the last planned step (where the plan ends standing). On a linear segment
// p(t) = pa + s (t - t0), s = (pb - pa) / (t1 - t0), the DCM that stays bounded is
//   xi(t) = p(t) + s / omega + exp(omega (t - t1)) (xi(t1) - pb - s / omega),
// computed backwards from the plan's end, where xi = p (standing still). A plan of n steps
// truncates a longer walk; the error this makes at the plan's start decays as exp(-omega n T)
// (G1, z_c = 0.66 m, T = 0.85 s, three steps: 5e-5 of the last step's length).
//
// Footsteps: the unicycle model. A walking frame between the feet advances by the command held
// over each step; a foot lands beside it at half the step width. Sideways and turning steps open
// the foot on the side of the motion (that foot's step moves the frame twice as far, the other
// foot's step closes up), so the feet never cross and the inner foot never turns into the other.
// Every landing is clamped relative to the stance foot: length, width and turn.
//
// Swing: horizontal position and yaw follow a quintic minimum-jerk profile from lift-off to
// touch-down; height adds h * 64 tau^3 (1 - tau)^3 (apex h at mid-swing), so position, velocity
// and acceleration are continuous and zero in velocity and acceleration at both ends.
//
// Everything here is plain data with a fixed capacity, and every function after check() is [tick]:
// no allocation, no exceptions.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace vertebra::gait {

inline constexpr int kMaxSteps = 8;                   // planned footsteps
inline constexpr int kMaxSegments = 2 * kMaxSteps + 2;  // ZMP segments: start, SS + DS per step, stop
enum Foot : int32_t { kLeft = 0, kRight = 1 };

struct Vec2 {
  double x = 0, y = 0;
};
struct Pose2 {  // a foot or the walking frame on the ground: position (m, world) and yaw (rad)
  double x = 0, y = 0, yaw = 0;
};
struct Velocity2 {  // a velocity command in the walking frame: forward, left (m/s), yaw rate (rad/s)
  double vx = 0, vy = 0, wz = 0;
};

struct GaitParams {
  // G1 (docs/walking.md): at 0.7 s + 0.15 s it fell above 0.35 m/s; at 0.6 s + 0.1 s it walks 0.5 m/s
  double single_support_s = 0.6;
  double double_support_s = 0.1;
  double com_height_m = 0.66;   // z_c of the pendulum (above the soles)
  double gravity = 9.81;
  double step_width_m = 0.2;    // between the feet's centres, standing and walking straight
  double min_step_width_m = 0.16;  // the closest a foot lands beside the stance foot (laterally)
  double max_step_length_m = 0.4, max_step_back_m = 0.2;  // landing ahead of / behind the stance foot
  double max_step_out_m = 0.2;     // landing farther out than the step width (G1: 0.28 m out fell)
  double max_step_turn_rad = 0.75;  // yaw between the landing and the stance foot
  double swing_height_m = 0.06;
  double zmp_inset_m = 0.0;     // the ZMP reference this far inside the foot's centre (towards the other foot)
  // "" when the parameters make a gait, else what is wrong (configuration time).
  std::string check() const;
  double omega() const;
  double step_s() const { return single_support_s + double_support_s; }
};

struct Footstep {
  int32_t foot = kLeft;  // the swing foot
  Pose2 pose;            // where it lands
  double t_lift = 0, t_land = 0;  // s, from the plan's start
};

// Footsteps for a velocity command held over n steps (n <= kMaxSteps), the first by `first_swing`,
// from the feet where they are (feet[kLeft], feet[kRight]); the steps alternate feet. Each step's
// single support starts t_first + k T after the plan's start. Returns the number written.
int plan_footsteps(const GaitParams& g, const std::array<Pose2, 2>& feet, int32_t first_swing, const Velocity2& cmd,
                   int n, double t_first, Footstep* out);
// A landing of the `swing` foot clamped against the stance foot: length, width (never across) and turn.
Pose2 clamp_landing(const GaitParams& g, const Pose2& stance, int32_t swing, const Pose2& landing);
// The command the unicycle can follow at these limits (each axis clamped to what one step can do).
Velocity2 reachable(const GaitParams& g, const Velocity2& cmd);

// The ZMP and DCM reference of a footstep plan (header comment).
class DcmPlan {
 public:
  // The plan: from the ZMP at zmp_start, over t_first seconds (a double support: 0 when the plan
  // starts at a lift-off) to the first stance foot, then the n steps; it ends with a double support
  // to the middle of the last two feet, where the robot stands. feet: where they are at the start.
  // dcm_start (optional): where the DCM is now (a robot at rest: its CoM). The first segment's
  // starting ZMP is then chosen so that the plan's DCM starts there, instead of zmp_start: a plan
  // that starts where the robot is needs no correction by the feedback. With the robot at rest
  // between its feet that start is on the far side of the first stance foot (the ZMP moves out
  // first, to push the CoM towards it).
  void build(const GaitParams& g, const Vec2& zmp_start, double t_first, const std::array<Pose2, 2>& feet,
             const Footstep* steps, int n, const Vec2* dcm_start = nullptr);
  Vec2 zmp(double t) const;
  Vec2 dcm(double t) const;
  Vec2 dcm_rate(double t) const;  // omega (xi - p)
  double duration() const { return n_seg_ > 0 ? t1_[n_seg_ - 1] : 0.0; }
  int segments() const { return n_seg_; }
  double omega() const { return omega_; }
  Vec2 end() const { return n_seg_ > 0 ? pb_[n_seg_ - 1] : Vec2{}; }

 private:
  int find(double t) const;
  void add(double t0, double t1, const Vec2& a, const Vec2& b);
  double omega_ = 1.0;
  int n_seg_ = 0;
  std::array<double, kMaxSegments> t0_{}, t1_{};
  std::array<Vec2, kMaxSegments> pa_{}, pb_{}, xi1_{};  // segment ends: ZMP, and the DCM at t1
};

// The ZMP a foot stands on: its centre moved zmp_inset_m towards the other foot.
Vec2 stance_zmp(const GaitParams& g, const Pose2& foot, int32_t which);

struct SwingSample {
  std::array<double, 3> pos{}, vel{}, acc{};  // world, m, m/s, m/s^2
  double yaw = 0, yaw_rate = 0, yaw_acc = 0;
};
// The swing foot at t seconds into a swing of `duration` from (from, z_from) to (to, z_to), apex
// `height` above the straight line between them (header comment); before 0 / after duration: at the end.
SwingSample swing(const Pose2& from, double z_from, const Pose2& to, double z_to, double height, double duration,
                  double t);

// The DCM feedback law: the ZMP to command so that the DCM error decays at rate k (1/s):
//   xi' - xi_d' = -k (xi - xi_d)  with  xi' = omega (xi - r)  gives  r = p_d + (1 + k / omega) (xi - xi_d)
// (Englsberger et al. 2015, section IV).
Vec2 dcm_feedback(const Vec2& xi, const Vec2& xi_d, const Vec2& p_d, double omega, double k);

double wrap_angle(double a);  // into (-pi, pi]

}  // namespace vertebra::gait
