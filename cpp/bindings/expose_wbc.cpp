// vertebra._rt bindings: the whole-body controller (registered as the controller mode "wbc").
#include "bindings/common.hpp"

#include <pybind11/eigen.h>
#include "loop/rt_loop.hpp"
#include "wbc/wbc.hpp"

namespace vertebra::bindings {

void expose_wbc(py::module_& m) {
  py::class_<WbcGains>(m, "WbcGains")
      .def(py::init<>())
      .def_readwrite("kp", &WbcGains::kp)
      .def_readwrite("kd", &WbcGains::kd)
      .def_readwrite("weight", &WbcGains::weight);
  py::class_<KeepOutBox>(m, "KeepOutBox", "a world-fixed, axis-aligned box protected points stay out of (m)")
      .def(py::init<>())
      .def(py::init([](const std::array<double, 3>& center, const std::array<double, 3>& half) {
             KeepOutBox b;
             b.center = center;
             b.half = half;
             return b;
           }),
           py::arg("center"), py::arg("half"))
      .def_readwrite("center", &KeepOutBox::center)
      .def_readwrite("half", &KeepOutBox::half);
  py::class_<KeepOutPoint>(m, "KeepOutPoint", "a protected point: a frame's origin moved by offset (frame axes, m), "
                                               "with a radius (m)")
      .def(py::init<>())
      .def(py::init([](const std::string& frame, const std::array<double, 3>& offset, double radius_m) {
             KeepOutPoint p;
             p.frame = frame;
             p.offset = offset;
             p.radius_m = radius_m;
             return p;
           }),
           py::arg("frame"), py::arg("offset"), py::arg("radius_m"))
      .def_readwrite("frame", &KeepOutPoint::frame)
      .def_readwrite("offset", &KeepOutPoint::offset)
      .def_readwrite("radius_m", &KeepOutPoint::radius_m);
  py::class_<WbcConfig>(m, "WbcConfig", "whole-body controller settings (cpp/wbc/wbc.hpp)")
      .def(py::init<>())
      .def_readwrite("flat_feet", &WbcConfig::flat_feet)
      .def_readwrite("keep_out", &WbcConfig::keep_out)
      .def_readwrite("keep_out_points", &WbcConfig::keep_out_points)
      .def_readwrite("keep_out_margin_m", &WbcConfig::keep_out_margin_m)
      .def_readwrite("keep_out_kp", &WbcConfig::keep_out_kp)
      .def_readwrite("keep_out_kd", &WbcConfig::keep_out_kd)
      .def_readwrite("keep_out_activation_m", &WbcConfig::keep_out_activation_m)
      .def_readwrite("foot_frames", &WbcConfig::foot_frames)
      .def_readwrite("sole_offset_m", &WbcConfig::sole_offset_m)
      .def_readwrite("friction", &WbcConfig::friction)
      .def_readwrite("sole_half_length_m", &WbcConfig::sole_half_length_m)
      .def_readwrite("sole_half_width_m", &WbcConfig::sole_half_width_m)
      .def_readwrite("min_normal_force_n", &WbcConfig::min_normal_force_n)
      .def_readwrite("max_normal_force_n", &WbcConfig::max_normal_force_n)
      .def_readwrite("contact_ramp_s", &WbcConfig::contact_ramp_s)
      .def_readwrite("base_frame", &WbcConfig::base_frame)
      .def_readwrite("torso_frame", &WbcConfig::torso_frame)
      .def_readwrite("hand_frames", &WbcConfig::hand_frames)
      .def_readwrite("com", &WbcConfig::com)
      .def_readwrite("base", &WbcConfig::base)
      .def_readwrite("torso", &WbcConfig::torso)
      .def_readwrite("hands", &WbcConfig::hands)
      .def_readwrite("swing_foot", &WbcConfig::swing_foot)
      .def_readwrite("posture", &WbcConfig::posture)
      .def_readwrite("reg_ddq", &WbcConfig::reg_ddq)
      .def_readwrite("reg_force", &WbcConfig::reg_force)
      .def_readwrite("limit_horizon_s", &WbcConfig::limit_horizon_s)
      .def_readwrite("hand_posture_scale", &WbcConfig::hand_posture_scale)
      .def_readwrite("hand_aim_frames", &WbcConfig::hand_aim_frames)
      .def_readwrite("max_position_error_m", &WbcConfig::max_position_error_m)
      .def_readwrite("balance_guard_start_m", &WbcConfig::balance_guard_start_m)
      .def_readwrite("balance_guard_full_m", &WbcConfig::balance_guard_full_m)
      .def_readwrite("balance_guard_scale", &WbcConfig::balance_guard_scale)
      .def_readwrite("max_rotation_error_rad", &WbcConfig::max_rotation_error_rad)
      .def_readwrite("armature", &WbcConfig::armature)
      .def_readwrite("out_kp", &WbcConfig::out_kp)
      .def_readwrite("out_kd", &WbcConfig::out_kd)
      .def_readwrite("control_rate_hz", &WbcConfig::control_rate_hz)
      .def_readwrite("max_consecutive_failures", &WbcConfig::max_consecutive_failures)
      .def_readwrite("eps_abs", &WbcConfig::eps_abs)
      .def_readwrite("max_iter", &WbcConfig::max_iter)
      .def_readwrite("tick_iteration_budget", &WbcConfig::tick_iteration_budget)
      .def_readwrite("warm_max_iter", &WbcConfig::warm_max_iter)
      .def_readwrite("inner_max_iter", &WbcConfig::inner_max_iter)
      .def_readwrite("qp_backend", &WbcConfig::qp_backend)
      .def_readwrite("eliminate_contacts", &WbcConfig::eliminate_contacts);
  py::class_<WbcTargets>(m, "WbcTargets", "whole-body targets; a field counts when its *_set flag is true")
      .def(py::init<>())
      .def(py::init<const WbcTargets&>(), "a copy")
      .def_readwrite("seq", &WbcTargets::seq)
      .def_readwrite("com_set", &WbcTargets::com_set)
      .def_readwrite("com", &WbcTargets::com)
      .def_readwrite("com_vel", &WbcTargets::com_vel)
      .def_readwrite("com_acc", &WbcTargets::com_acc)
      .def_readwrite("com_weight_scale", &WbcTargets::com_weight_scale)
      .def_readwrite("base_set", &WbcTargets::base_set)
      .def_readwrite("base_pos", &WbcTargets::base_pos)
      .def_readwrite("base_quat", &WbcTargets::base_quat)
      .def_readwrite("torso_set", &WbcTargets::torso_set)
      .def_readwrite("torso_quat", &WbcTargets::torso_quat)
      .def_readwrite("hand_set", &WbcTargets::hand_set)
      .def_readwrite("hand_pos", &WbcTargets::hand_pos)
      .def_readwrite("hand_quat", &WbcTargets::hand_quat)
      .def_readwrite("hand_position_only", &WbcTargets::hand_position_only)
      .def_readwrite("contact_active", &WbcTargets::contact_active)
      .def_readwrite("foot_set", &WbcTargets::foot_set)
      .def_readwrite("foot_pos", &WbcTargets::foot_pos)
      .def_readwrite("foot_quat", &WbcTargets::foot_quat)
      .def_readwrite("foot_vel", &WbcTargets::foot_vel)
      .def_readwrite("foot_acc", &WbcTargets::foot_acc)
      .def_readwrite("posture_set", &WbcTargets::posture_set)
      .def_readwrite("posture", &WbcTargets::posture);
  py::class_<WholeBodyController, ControllerMode, std::shared_ptr<WholeBodyController>>(
      m, "WholeBodyController", "task-space inverse-dynamics QP (cpp/wbc/wbc.hpp)")
      .def(py::init<const RobotModel&, const WbcConfig&>(), py::arg("robot"), py::arg("config"))
      .def_property_readonly("n_variables", &WholeBodyController::n_variables)
      .def_property_readonly("n_eq", &WholeBodyController::n_eq)
      .def_property_readonly("n_in", &WholeBodyController::n_in)
      .def_property_readonly("solver_variables", &WholeBodyController::solver_variables)
      .def_property_readonly("solver_inequalities", &WholeBodyController::solver_inequalities)
      .def_property_readonly("n_contacts", &WholeBodyController::n_contacts)
      .def_property_readonly("contact_dim", &WholeBodyController::contact_dim)
      .def("publish_targets", &WholeBodyController::publish_targets, py::arg("targets"),
           py::call_guard<py::gil_scoped_release>())
      .def("inject_failures", &WholeBodyController::inject_failures, py::arg("n"))
      .def("spend_whole_budget", &WholeBodyController::spend_whole_budget, py::arg("on"),
           "benchmarks/tests: an unreachable solver tolerance, so every tick spends its whole iteration budget")
      .def("last_ddq", &WholeBodyController::last_ddq)
      .def("last_forces", &WholeBodyController::last_forces)
      .def("last_tau", &WholeBodyController::last_tau)
      .def("status", [](const WholeBodyController& w) {
        WbcStatus s;
        w.status(s);
        py::dict d;
        d["solves"] = s.solves;
        d["failures"] = s.failures;
        d["cold_restarts"] = s.cold_restarts;
        d["relaxed_solves"] = s.relaxed_solves;
        d["eliminated_solves"] = s.eliminated_solves;
        d["consecutive_failures"] = s.consecutive_failures;
        d["iterations"] = s.last_iterations;
        d["tick_iterations"] = s.tick_iterations;
        d["max_tick_iterations"] = s.max_tick_iterations;
        d["tick_outer_iterations"] = s.tick_outer_iterations;
        d["budget_exhausted"] = s.budget_exhausted;
        d["solve_us"] = s.last_solve_us;
        d["model_us"] = s.last_model_us;
        d["com"] = arr(s.com.data(), 3);
        d["com_err"] = arr(s.com_err.data(), 3);
        d["balance_guard"] = s.balance_guard;
        d["base_pos_err"] = s.base_pos_err;
        d["base_rot_err"] = s.base_rot_err;
        d["torso_rot_err"] = s.torso_rot_err;
        d["hand_pos_err"] = arr(s.hand_pos_err.data(), kMaxHands);
        d["hand_rot_err"] = arr(s.hand_rot_err.data(), kMaxHands);
        d["hand_active"] = arr(s.hand_active.data(), kMaxHands);
        py::list wr;
        for (int c = 0; c < w.n_contacts(); ++c) wr.append(arr(s.contact_wrench[c].data(), 6));
        d["contact_wrench"] = wr;
        d["contact_weight"] = arr(s.contact_weight.data(), w.n_contacts());
        d["primal_residual"] = s.max_constraint_violation;
        d["keep_out_clearance_m"] = s.keep_out_clearance_m;
        d["keep_out_active"] = s.keep_out_active;
        d["dual_residual"] = s.last_dual_residual;
        d["qp_status"] = s.last_qp_status;
        return d;
      })
      .def("step", [](WholeBodyController& w, const RobotParams& p, py::dict state) {
        const State s = state_from_dict(p.n, state);
        Command c;
        Status st;
        {
          py::gil_scoped_release release;
          Command last;
          last.n = p.n;
          Targets none;
          ModeRequest req;
          st = w.enter(p, s, last, none, req);
          if (st == Status::kOk) st = w.step(p, s, c);
        }
        py::dict out = command_dict(c);
        out["status"] = status_name(st);
        return out;
      }, "enter + one update on a state dict (tests); the loop calls the C++ directly")
      .def("enter", [](WholeBodyController& w, const RobotParams& p, py::dict state) {
        const State s = state_from_dict(p.n, state);
        Command last;
        last.n = p.n;
        Targets none;
        ModeRequest req;
        return std::string(status_name(w.enter(p, s, last, none, req)));
      })
      .def("tick", [](WholeBodyController& w, const RobotParams& p, py::dict state) {
        const State s = state_from_dict(p.n, state);
        Command c;
        Status st;
        {
          py::gil_scoped_release release;
          st = w.step(p, s, c);
        }
        return std::string(status_name(st));
      }, "one update() on a state dict (benchmarks: timing is read from status())")
      .def("replay", [](WholeBodyController& w, const RobotParams& p, py::list states, py::list targets) {
        // The production path: updates back to back in C++, as the real-time loop calls them, with no
        // Python between ticks. targets[k] (a WbcTargets or None) is published before tick k.
        const size_t n = py::len(states);
        if (py::len(targets) != n) throw std::invalid_argument("replay: one targets entry (or None) per state");
        std::vector<State> ss;
        std::vector<WbcTargets> ts;
        std::vector<int> t_at;
        ss.reserve(n);
        for (size_t k = 0; k < n; ++k) {
          ss.push_back(state_from_dict(p.n, states[k].cast<py::dict>()));
          if (!targets[k].is_none()) {
            ts.push_back(targets[k].cast<WbcTargets>());
            t_at.push_back(static_cast<int>(k));
          }
        }
        const int nv = static_cast<int>(w.last_ddq().size());
        py::array_t<double> model_us(n), solve_us(n), ddq({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(nv)});
        py::array_t<int> iterations(n);
        auto mu = model_us.mutable_unchecked<1>();
        auto su = solve_us.mutable_unchecked<1>();
        auto it = iterations.mutable_unchecked<1>();
        auto dd = ddq.mutable_unchecked<2>();
        int failures = 0;
        {
          py::gil_scoped_release release;
          size_t next = 0;
          Command c;
          WbcStatus st;
          for (size_t k = 0; k < n; ++k) {
            if (next < ts.size() && t_at[next] == static_cast<int>(k)) w.publish_targets(ts[next++]);
            if (w.step(p, ss[k], c) != Status::kOk) ++failures;
            w.status(st);
            mu(k) = st.last_model_us;
            su(k) = st.last_solve_us;
            it(k) = st.tick_iterations;
            w.copy_last_ddq(&dd(k, 0));
          }
        }
        py::dict out;
        out["model_us"] = model_us;
        out["solve_us"] = solve_us;
        out["iterations"] = iterations;
        out["ddq"] = ddq;
        out["failures"] = failures;
        return out;
      }, py::arg("params"), py::arg("states"), py::arg("targets"),
      "update() on each state back to back in C++ (the real-time path); per-tick model/solve times, "
      "iterations and accelerations");
}

}  // namespace vertebra::bindings
