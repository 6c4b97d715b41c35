// vertebra._rt bindings: the biped walking pattern (cpp/locomotion/gait.hpp), for tests, tools and
// the Python reference of `vertebra bench`. Poses are (x, y, yaw) tuples, feet "left" / "right".
#include "bindings/common.hpp"

#include <stdexcept>
#include <tuple>

#include "locomotion/gait.hpp"
#include "locomotion/walk_mode.hpp"

namespace vertebra::bindings {

namespace {

using gait::Pose2;
using P3 = std::tuple<double, double, double>;

Pose2 pose(const P3& p) { return {std::get<0>(p), std::get<1>(p), std::get<2>(p)}; }
P3 tup(const Pose2& p) { return {p.x, p.y, p.yaw}; }

int32_t foot_by_name(const std::string& s) {
  if (s == "left") return gait::kLeft;
  if (s == "right") return gait::kRight;
  throw std::invalid_argument("a foot is 'left' or 'right', not '" + s + "'");
}
const char* foot_name(int32_t f) { return f == gait::kLeft ? "left" : "right"; }

void checked(const gait::GaitParams& g) {
  const std::string why = g.check();
  if (!why.empty()) throw std::invalid_argument("gait: " + why);
}

py::dict step_dict(const gait::Footstep& s) {
  py::dict d;
  d["foot"] = foot_name(s.foot);
  d["pose"] = tup(s.pose);
  d["t_lift"] = s.t_lift;
  d["t_land"] = s.t_land;
  return d;
}

gait::Footstep step_from(py::handle h) {
  py::dict d = py::reinterpret_borrow<py::dict>(h);
  gait::Footstep s;
  s.foot = foot_by_name(d["foot"].cast<std::string>());
  s.pose = pose(d["pose"].cast<P3>());
  s.t_lift = d["t_lift"].cast<double>();
  s.t_land = d["t_land"].cast<double>();
  return s;
}

py::tuple vec(const gait::Vec2& v) { return py::make_tuple(v.x, v.y); }

}  // namespace

void expose_walk(py::module_& m);

void expose_locomotion(py::module_& m) {
  py::class_<gait::GaitParams>(m, "GaitParams", "biped walking pattern parameters (cpp/locomotion/gait.hpp)")
      .def(py::init<>())
      .def_readwrite("single_support_s", &gait::GaitParams::single_support_s)
      .def_readwrite("double_support_s", &gait::GaitParams::double_support_s)
      .def_readwrite("com_height_m", &gait::GaitParams::com_height_m)
      .def_readwrite("gravity", &gait::GaitParams::gravity)
      .def_readwrite("step_width_m", &gait::GaitParams::step_width_m)
      .def_readwrite("min_step_width_m", &gait::GaitParams::min_step_width_m)
      .def_readwrite("max_step_length_m", &gait::GaitParams::max_step_length_m)
      .def_readwrite("max_step_back_m", &gait::GaitParams::max_step_back_m)
      .def_readwrite("max_step_out_m", &gait::GaitParams::max_step_out_m)
      .def_readwrite("max_step_turn_rad", &gait::GaitParams::max_step_turn_rad)
      .def_readwrite("swing_height_m", &gait::GaitParams::swing_height_m)
      .def_readwrite("zmp_inset_m", &gait::GaitParams::zmp_inset_m)
      .def("check", &gait::GaitParams::check, "'' when the parameters make a gait, else what is wrong")
      .def_property_readonly("omega", &gait::GaitParams::omega)
      .def_property_readonly("step_s", &gait::GaitParams::step_s);

  m.def("gait_reachable", [](const gait::GaitParams& g, const P3& cmd) {
        checked(g);
        const gait::Velocity2 r = gait::reachable(g, {std::get<0>(cmd), std::get<1>(cmd), std::get<2>(cmd)});
        return P3{r.vx, r.vy, r.wz};
      }, py::arg("params"), py::arg("cmd"), "the (vx, vy, wz) command the footstep planner can follow at these limits");

  m.def("gait_plan_footsteps", [](const gait::GaitParams& g, const P3& left, const P3& right, const std::string& first,
                                  const P3& cmd, int n, double t_first) {
        checked(g);
        if (n < 0 || n > gait::kMaxSteps) throw std::invalid_argument("n must be in [0, " + std::to_string(gait::kMaxSteps) + "]");
        std::array<gait::Footstep, gait::kMaxSteps> out{};
        const int k = gait::plan_footsteps(g, {pose(left), pose(right)}, foot_by_name(first),
                                           {std::get<0>(cmd), std::get<1>(cmd), std::get<2>(cmd)}, n, t_first, out.data());
        py::list steps;
        for (int i = 0; i < k; ++i) steps.append(step_dict(out[i]));
        return steps;
      }, py::arg("params"), py::arg("left"), py::arg("right"), py::arg("first"), py::arg("cmd"), py::arg("n"),
      py::arg("t_first") = 0.0,
      "footsteps [{foot, pose: (x, y, yaw), t_lift, t_land}] for a velocity command (vx, vy, wz) held over n steps");

  py::class_<gait::DcmPlan>(m, "DcmPlan", "the ZMP and DCM reference of a footstep plan (cpp/locomotion/gait.hpp)")
      .def(py::init([](const gait::GaitParams& g, const std::tuple<double, double>& zmp_start, double t_first,
                       const P3& left, const P3& right, const py::list& steps, py::object dcm_start) {
             checked(g);
             if (static_cast<int>(steps.size()) > gait::kMaxSteps)
               throw std::invalid_argument("at most " + std::to_string(gait::kMaxSteps) + " steps");
             std::array<gait::Footstep, gait::kMaxSteps> s{};
             int n = 0;
             for (py::handle h : steps) s[n++] = step_from(h);
             gait::DcmPlan p;
             gait::Vec2 xi0;
             const bool at = !dcm_start.is_none();
             if (at) {
               const auto d = dcm_start.cast<std::tuple<double, double>>();
               xi0 = {std::get<0>(d), std::get<1>(d)};
             }
             p.build(g, {std::get<0>(zmp_start), std::get<1>(zmp_start)}, t_first, {pose(left), pose(right)}, s.data(), n,
                     at ? &xi0 : nullptr);
             return p;
           }),
           py::arg("params"), py::arg("zmp_start"), py::arg("t_first"), py::arg("left"), py::arg("right"), py::arg("steps"),
           py::arg("dcm_start") = py::none(),
           "dcm_start (x, y): the first segment's ZMP start chosen so the plan's DCM starts there (a robot at rest)")
      .def("zmp", [](const gait::DcmPlan& p, double t) { return vec(p.zmp(t)); }, py::arg("t"))
      .def("dcm", [](const gait::DcmPlan& p, double t) { return vec(p.dcm(t)); }, py::arg("t"))
      .def("dcm_rate", [](const gait::DcmPlan& p, double t) { return vec(p.dcm_rate(t)); }, py::arg("t"))
      .def_property_readonly("duration", &gait::DcmPlan::duration)
      .def_property_readonly("segments", &gait::DcmPlan::segments)
      .def_property_readonly("omega", &gait::DcmPlan::omega)
      .def_property_readonly("end", [](const gait::DcmPlan& p) { return vec(p.end()); });

  m.def("gait_swing", [](const P3& from, double z_from, const P3& to, double z_to, double height, double duration, double t) {
        const gait::SwingSample s = gait::swing(pose(from), z_from, pose(to), z_to, height, duration, t);
        py::dict d;
        d["pos"] = s.pos;
        d["vel"] = s.vel;
        d["acc"] = s.acc;
        d["yaw"] = s.yaw;
        d["yaw_rate"] = s.yaw_rate;
        d["yaw_acc"] = s.yaw_acc;
        return d;
      }, py::arg("from_pose"), py::arg("z_from"), py::arg("to_pose"), py::arg("z_to"), py::arg("height"),
      py::arg("duration"), py::arg("t"), "the swing foot at t: {pos, vel, acc, yaw, yaw_rate, yaw_acc}");

  m.def("gait_dcm_feedback", [](const std::tuple<double, double>& xi, const std::tuple<double, double>& xi_d,
                                const std::tuple<double, double>& p_d, double omega, double k) {
        const auto v = [](const std::tuple<double, double>& t) { return gait::Vec2{std::get<0>(t), std::get<1>(t)}; };
        return vec(gait::dcm_feedback(v(xi), v(xi_d), v(p_d), omega, k));
      }, py::arg("xi"), py::arg("xi_d"), py::arg("p_d"), py::arg("omega"), py::arg("k"),
      "the ZMP to command so that the DCM error decays at rate k");
  expose_walk(m);
}

void expose_walk(py::module_& m) {
  py::class_<WalkConfig>(m, "WalkConfig", "the walking controller's settings (cpp/locomotion/walk_mode.hpp)")
      .def(py::init<>())
      .def_readwrite("gait", &WalkConfig::gait)
      .def_readwrite("left_foot", &WalkConfig::left_foot)
      .def_readwrite("right_foot", &WalkConfig::right_foot)
      .def_readwrite("dcm_gain", &WalkConfig::dcm_gain)
      .def_readwrite("start_s", &WalkConfig::start_s)
      .def_readwrite("preview_steps", &WalkConfig::preview_steps)
      .def_readwrite("max_lin_acc", &WalkConfig::max_lin_acc)
      .def_readwrite("max_yaw_acc", &WalkConfig::max_yaw_acc)
      .def_readwrite("zmp_margin_m", &WalkConfig::zmp_margin_m)
      .def_readwrite("com_weight_scale", &WalkConfig::com_weight_scale)
      .def_readwrite("step_adjust", &WalkConfig::step_adjust)
      .def_readwrite("adjust_deadband_m", &WalkConfig::adjust_deadband_m)
      .def_readwrite("adjust_max_m", &WalkConfig::adjust_max_m)
      .def_readwrite("adjust_freeze_s", &WalkConfig::adjust_freeze_s)
      .def_readwrite("step_in_place", &WalkConfig::step_in_place)
      .def_readwrite("max_command", &WalkConfig::max_command);
  py::class_<WalkMode, ControllerMode, std::shared_ptr<WalkMode>>(
      m, "WalkMode", "the walking controller mode: velocity command -> footsteps, DCM plan, swing feet, tracked by "
                     "the whole-body QP it wraps (cpp/locomotion/walk_mode.hpp)")
      .def(py::init<std::shared_ptr<WholeBodyController>, const WalkConfig&>(), py::arg("wbc"), py::arg("config"))
      .def("set_command", &WalkMode::set_command, py::arg("vx"), py::arg("vy"), py::arg("wz"),
           "the velocity command (m/s, m/s, rad/s, walking frame); False (refused, the command stays) when not "
           "finite or beyond config.max_command")
      .def("status", [](const WalkMode& w) {
        WalkStatus s;
        w.status(s);
        py::dict d;
        d["phase"] = s.phase == WalkPhase::kWalking ? "walking" : "standing";
        d["steps"] = s.steps;
        d["replans"] = s.replans;
        d["swing_foot"] = s.swing_foot < 0 ? py::object(py::none()) : py::object(py::str(foot_name(s.swing_foot)));
        d["command"] = s.command;
        d["applied"] = s.applied;
        d["dcm"] = s.dcm;
        d["dcm_ref"] = s.dcm_ref;
        d["zmp_ref"] = s.zmp_ref;
        d["zmp_cmd"] = s.zmp_cmd;
        d["dcm_err_m"] = s.dcm_err_m;
        d["adjusted_steps"] = s.adjusted_steps;
        d["refused_commands"] = s.refused_commands;
        d["adjust"] = s.adjust;
        d["plan_time_s"] = s.plan_time_s;
        return d;
      });
}

}  // namespace vertebra::bindings
