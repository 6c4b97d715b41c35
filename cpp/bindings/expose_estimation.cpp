// vertebra._rt bindings: the floating-base state estimator (cpp/estimation/estimator.hpp).
#include "bindings/common.hpp"

#include "core/robot_model.hpp"
#include "estimation/estimator.hpp"

namespace vertebra::bindings {

void expose_estimation(py::module_& m) {
  py::enum_<ContactSource>(m, "ContactSource")
      .value("joint_torque", ContactSource::kJointTorque)
      .value("foot_force", ContactSource::kFootForce);

  py::class_<EstimatorConfig>(m, "EstimatorConfig", "state estimator settings (cpp/estimation/estimator.hpp)")
      .def(py::init<>())
      .def_readwrite("imu_frame", &EstimatorConfig::imu_frame)
      .def_readwrite("foot_frames", &EstimatorConfig::foot_frames)
      .def_readwrite("sole_offset_m", &EstimatorConfig::sole_offset_m)
      .def_readwrite("foot_radius_m", &EstimatorConfig::foot_radius_m)
      .def_readwrite("flat_feet", &EstimatorConfig::flat_feet)
      .def_readwrite("contact_source", &EstimatorConfig::contact_source)
      .def_readwrite("contact_on_n", &EstimatorConfig::contact_on_n)
      .def_readwrite("contact_off_n", &EstimatorConfig::contact_off_n)
      .def_readwrite("accel_noise_m_s2", &EstimatorConfig::accel_noise_m_s2)
      .def_readwrite("stance_foot_noise_m_s", &EstimatorConfig::stance_foot_noise_m_s)
      .def_readwrite("swing_foot_noise_m_s", &EstimatorConfig::swing_foot_noise_m_s)
      .def_readwrite("kin_position_noise_m", &EstimatorConfig::kin_position_noise_m)
      .def_readwrite("kin_velocity_noise_m_s", &EstimatorConfig::kin_velocity_noise_m_s)
      .def_readwrite("foot_height_noise_m", &EstimatorConfig::foot_height_noise_m)
      .def_readwrite("no_contact_velocity_noise_m_s", &EstimatorConfig::no_contact_velocity_noise_m_s)
      .def_readwrite("control_rate_hz", &EstimatorConfig::control_rate_hz)
      .def_readwrite("initial_xy_m", &EstimatorConfig::initial_xy_m);

  py::class_<StateEstimator, std::shared_ptr<StateEstimator>>(m, "StateEstimator",
      "floating-base Kalman filter: base position/velocity and feet from IMU + leg kinematics")
      .def(py::init([](const RobotModel& robot, const EstimatorConfig& cfg) {
        return std::make_shared<StateEstimator>(robot, cfg);
      }), py::arg("robot"), py::arg("config"), py::keep_alive<1, 2>())
      .def("update", [](StateEstimator& e, py::dict state, py::object plan) {
        const int n = static_cast<int>(py::len(state["q"]));
        State s = state_from_dict(n, state);
        ContactPlan p;
        if (!plan.is_none()) {
          const auto w = plan.cast<std::vector<double>>();
          if (static_cast<int>(w.size()) != e.n_feet())
            throw std::invalid_argument("update: plan needs one weight per foot (" + std::to_string(e.n_feet()) + ")");
          p.valid = true;
          for (size_t i = 0; i < w.size(); ++i) p.weight[i] = w[i];
        }
        Estimate out;
        const Status st = e.update(s, p, out);
        py::dict d = estimate_dict(out);
        d["status"] = status_name(st);
        return d;
      }, py::arg("state"), py::arg("plan") = py::none(),
         "one filter step on a state dict (q, dq, tau, imu_*, foot_force); plan: contact weights per foot")
      .def("reset", &StateEstimator::reset)
      .def_property_readonly("n_feet", &StateEstimator::n_feet)
      .def_property_readonly("last_update_us", &StateEstimator::last_update_us);
}

}  // namespace vertebra::bindings
