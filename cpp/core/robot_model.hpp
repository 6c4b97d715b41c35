// RobotModel: the robot's kinematics and dynamics (pinocchio, free-floating base) plus the map
// between the robot's motor indices and the model's configuration/velocity indices.
//
// Model vs Data: the pinocchio Model is immutable after construction; one Data workspace is
// preallocated here. Functions marked [tick] do no allocation and no I/O; everything else is
// configuration time and throws std::invalid_argument with expected/found/valid values.
//
// Conventions: joint vectors passed in or out are in motor order (length n_joints()). The full
// configuration is pinocchio's: [base xyz, base quaternion x y z w, joints in model order].
#pragma once

#include <Eigen/Core>
#include <memory>
#include <string>
#include <vector>

namespace vertebra {

struct JointLimits {
  std::vector<double> lower, upper, velocity, effort;  // motor order
};

class RobotModel {
 public:
  RobotModel(const std::string& urdf_path, const std::vector<std::string>& motor_joint_names);
  ~RobotModel();
  RobotModel(const RobotModel&) = delete;
  RobotModel& operator=(const RobotModel&) = delete;

  int n_joints() const { return static_cast<int>(motor_to_q_.size()); }
  int nq() const;
  int nv() const;
  double total_mass() const;
  const std::vector<std::string>& joint_names() const { return names_; }
  const JointLimits& limits() const { return limits_; }
  std::vector<std::string> model_joint_names() const;  // actuated joints, model order
  std::vector<std::string> frame_names() const;

  int frame_id(const std::string& name) const;  // throws listing valid frames

  // Full configuration from a base pose (xyz; quaternion w x y z) and motor-order joints.
  Eigen::VectorXd full_configuration(const Eigen::Vector3d& base_pos, const Eigen::Vector4d& base_quat_wxyz,
                                     const Eigen::VectorXd& joint_q) const;

  // [tick] forward kinematics into the internal Data; then frame_translation() reads from it.
  void forward_kinematics(const Eigen::VectorXd& q_full);
  Eigen::Vector3d frame_translation(int frame_id) const;
  Eigen::Matrix3d frame_rotation(int frame_id) const;
  // [tick] centre of mass of the configuration given (world frame).
  Eigen::Vector3d center_of_mass(const Eigen::VectorXd& q_full);
  // [tick] generalized gravity torques of the actuated joints, motor order.
  Eigen::VectorXd gravity_torques(const Eigen::VectorXd& q_full);

  // Height of the base above flat ground when the robot stands level on `foot_frames` with the
  // given joints: the lowest foot frame is put `sole_offset_m` above the ground.
  double standing_base_height(const Eigen::VectorXd& joint_q, const std::vector<std::string>& foot_frames,
                              double sole_offset_m);

 public:
  struct Impl;  // pinocchio Model + Data: core/robot_model_impl.hpp (for C++ that needs pinocchio)
  const Impl& impl() const { return *impl_; }
  const std::vector<int>& motor_to_q() const { return motor_to_q_; }
  const std::vector<int>& motor_to_v() const { return motor_to_v_; }

 private:
  std::unique_ptr<Impl> impl_;
  std::vector<std::string> names_;
  std::vector<int> motor_to_q_, motor_to_v_;
  JointLimits limits_;
};

}  // namespace vertebra
