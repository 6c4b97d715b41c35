// vertebra._rt bindings: controller mode names, the robot model, per-robot parameters.
#include "bindings/common.hpp"

#include <pybind11/eigen.h>
#include "core/modes.hpp"
#include "core/robot_model.hpp"

namespace vertebra::bindings {

void expose_core(py::module_& m) {
  py::enum_<ModeId>(m, "Mode")
      .value("ZERO_TORQUE", ModeId::kZeroTorque)
      .value("DAMPING", ModeId::kDamping)
      .value("HOLD", ModeId::kHold)
      .value("INTERPOLATE", ModeId::kInterpolate)
      .value("JOINT_PD", ModeId::kJointPD)
      .value("SETTLE", ModeId::kSettle);
  m.def("mode_name", [](py::handle mode) { return std::string(mode_name(mode_from_py(mode))); }, py::arg("mode"),
        "the name of a mode (a _rt.Mode or an id of a registered name)");
  m.def("known_modes", &known_mode_names, "built-in mode names and every name registered in this process");
  // The base class of every controller mode, and two built-in ones that can be registered under a
  // name of their own (tests, docs/extending.md): a loop's register_mode() takes any of them.
  py::class_<ControllerMode, std::shared_ptr<ControllerMode>>(m, "ControllerMode",
      "a controller mode (cpp/core/modes.hpp); register one on a loop with RtLoop.register_mode(name, mode)")
      .def_property_readonly("id", [](const ControllerMode& c) { return static_cast<int>(c.id()); })
      .def_property_readonly("target_names", [](ControllerMode& c) {
        TargetSink* s = c.target_sink();
        return s ? s->target_names() : std::vector<std::string>{};
      }, "the named task targets the mode takes from an action-chunk stream (empty: none)");
  py::class_<HoldMode, ControllerMode, std::shared_ptr<HoldMode>>(m, "HoldMode", "PD on the pose captured on entry")
      .def(py::init<>());
  py::class_<JointPDMode, ControllerMode, std::shared_ptr<JointPDMode>>(m, "JointPDMode", "PD on streamed joint targets")
      .def(py::init<>());

  py::class_<RobotModel, std::shared_ptr<RobotModel>>(m, "RobotModel", "pinocchio model with a free-floating base; joints in motor order")
      .def(py::init<const std::string&, const std::vector<std::string>&>(), py::arg("urdf_path"), py::arg("joint_names"))
      .def_property_readonly("n_joints", &RobotModel::n_joints)
      .def_property_readonly("nq", &RobotModel::nq)
      .def_property_readonly("nv", &RobotModel::nv)
      .def_property_readonly("total_mass", &RobotModel::total_mass)
      .def_property_readonly("joint_names", &RobotModel::joint_names)
      .def_property_readonly("model_joint_names", &RobotModel::model_joint_names)
      .def_property_readonly("frame_names", &RobotModel::frame_names)
      .def_property_readonly("limits", [](const RobotModel& r) {
        py::dict d;
        d["lower"] = r.limits().lower;
        d["upper"] = r.limits().upper;
        d["velocity"] = r.limits().velocity;
        d["effort"] = r.limits().effort;
        return d;
      })
      .def("frame_id", &RobotModel::frame_id)
      .def("full_configuration", &RobotModel::full_configuration, py::arg("base_pos"), py::arg("base_quat_wxyz"), py::arg("joint_q"))
      .def("frame_translation", [](RobotModel& r, const Eigen::VectorXd& q, const std::string& frame) {
        const int id = r.frame_id(frame);
        r.forward_kinematics(q);
        return Eigen::Vector3d(r.frame_translation(id));
      })
      .def("frame_rotation", [](RobotModel& r, const Eigen::VectorXd& q, const std::string& frame) {
        const int id = r.frame_id(frame);
        r.forward_kinematics(q);
        return Eigen::Matrix3d(r.frame_rotation(id));
      }, "3x3 rotation of a frame in world at the full configuration q")
      .def("center_of_mass", &RobotModel::center_of_mass)
      .def("gravity_torques", &RobotModel::gravity_torques)
      .def("standing_base_height", &RobotModel::standing_base_height, py::arg("joint_q"), py::arg("foot_frames"), py::arg("sole_offset_m"));

  py::class_<RobotParams>(m, "RobotParams", "per-robot constants of the modes and the limiter (motor order)")
      .def(py::init([](const std::vector<double>& kp, const std::vector<double>& kd, const std::vector<double>& kd_damping,
                       const std::vector<double>& kp_max, const std::vector<double>& kd_max, const std::vector<double>& q_lower,
                       const std::vector<double>& q_upper, const std::vector<double>& dq_max, const std::vector<double>& tau_max,
                       const std::vector<double>& default_pose) {
             const size_t n = kp.size();
             for (const auto* v : {&kd, &kd_damping, &kp_max, &kd_max, &q_lower, &q_upper, &dq_max, &tau_max, &default_pose})
               if (v->size() != n) throw std::invalid_argument("RobotParams: every array needs " + std::to_string(n) + " values");
             RobotParams p;
             p.n = static_cast<int32_t>(n);
             p.kp = to_joint_array(kp, "kp");
             p.kd = to_joint_array(kd, "kd");
             p.kd_damping = to_joint_array(kd_damping, "kd_damping");
             p.kp_max = to_joint_array(kp_max, "kp_max");
             p.kd_max = to_joint_array(kd_max, "kd_max");
             p.q_lower = to_joint_array(q_lower, "q_lower");
             p.q_upper = to_joint_array(q_upper, "q_upper");
             p.dq_max = to_joint_array(dq_max, "dq_max");
             p.tau_max = to_joint_array(tau_max, "tau_max");
             p.default_pose = to_joint_array(default_pose, "default_pose");
             return p;
           }),
           py::arg("kp"), py::arg("kd"), py::arg("kd_damping"), py::arg("kp_max"), py::arg("kd_max"), py::arg("q_lower"),
           py::arg("q_upper"), py::arg("dq_max"), py::arg("tau_max"), py::arg("default_pose"))
      .def_readonly("n", &RobotParams::n);
}

}  // namespace vertebra::bindings
