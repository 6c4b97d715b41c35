#include "core/robot_model.hpp"
#include "core/robot_model_impl.hpp"

#include <pinocchio/algorithm/center-of-mass.hpp>
#include <pinocchio/algorithm/frames.hpp>
#include <pinocchio/algorithm/joint-configuration.hpp>
#include <pinocchio/algorithm/kinematics.hpp>
#include <pinocchio/algorithm/rnea.hpp>
#include <pinocchio/multibody/data.hpp>
#include <pinocchio/multibody/model.hpp>
#include <pinocchio/parsers/urdf.hpp>

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace vertebra {


static std::string join(const std::vector<std::string>& v) {
  std::ostringstream o;
  for (size_t i = 0; i < v.size(); ++i) o << (i ? ", " : "") << v[i];
  return o.str();
}

RobotModel::RobotModel(const std::string& urdf_path, const std::vector<std::string>& motor_joint_names)
    : impl_(std::make_unique<Impl>()), names_(motor_joint_names) {
  if (!std::ifstream(urdf_path).good())
    throw std::invalid_argument("RobotModel: URDF file '" + urdf_path + "' cannot be read");
  pinocchio::urdf::buildModel(urdf_path, pinocchio::JointModelFreeFlyer(), impl_->model);
  impl_->data = pinocchio::Data(impl_->model);
  const auto& m = impl_->model;

  std::vector<std::string> actuated = model_joint_names();
  for (const auto& name : motor_joint_names) {
    if (!m.existJointName(name))
      throw std::invalid_argument("RobotModel: joint '" + name + "' is not in " + urdf_path +
                                  "; its joints are: " + join(actuated));
    const auto jid = m.getJointId(name);
    if (m.joints[jid].nq() != 1 || m.joints[jid].nv() != 1)
      throw std::invalid_argument("RobotModel: joint '" + name + "' is not a 1-DoF joint");
    motor_to_q_.push_back(m.joints[jid].idx_q());
    motor_to_v_.push_back(m.joints[jid].idx_v());
  }
  if (motor_joint_names.size() != actuated.size()) {
    std::vector<std::string> missing;
    for (const auto& a : actuated) {
      bool found = false;
      for (const auto& n : motor_joint_names) found |= (n == a);
      if (!found) missing.push_back(a);
    }
    throw std::invalid_argument("RobotModel: " + std::to_string(motor_joint_names.size()) +
                                " joints given but " + urdf_path + " has " + std::to_string(actuated.size()) +
                                " actuated joints; missing: " + join(missing));
  }
  for (int i = 0; i < n_joints(); ++i) {
    limits_.lower.push_back(m.lowerPositionLimit[motor_to_q_[i]]);
    limits_.upper.push_back(m.upperPositionLimit[motor_to_q_[i]]);
    limits_.velocity.push_back(m.velocityLimit[motor_to_v_[i]]);
    limits_.effort.push_back(m.effortLimit[motor_to_v_[i]]);
  }
}

RobotModel::~RobotModel() = default;

int RobotModel::nq() const { return impl_->model.nq; }
int RobotModel::nv() const { return impl_->model.nv; }
double RobotModel::total_mass() const { return pinocchio::computeTotalMass(impl_->model); }

std::vector<std::string> RobotModel::model_joint_names() const {
  std::vector<std::string> out;
  const auto& m = impl_->model;
  for (pinocchio::JointIndex j = 1; j < static_cast<pinocchio::JointIndex>(m.njoints); ++j)
    if (m.joints[j].nv() == 1) out.push_back(m.names[j]);
  return out;
}

std::vector<std::string> RobotModel::frame_names() const {
  std::vector<std::string> out;
  for (const auto& f : impl_->model.frames) out.push_back(f.name);
  return out;
}

int RobotModel::frame_id(const std::string& name) const {
  const auto& m = impl_->model;
  if (!m.existFrame(name))
    throw std::invalid_argument("RobotModel: unknown frame '" + name + "'; frames are: " + join(frame_names()));
  return static_cast<int>(m.getFrameId(name));
}

Eigen::VectorXd RobotModel::full_configuration(const Eigen::Vector3d& base_pos, const Eigen::Vector4d& qwxyz,
                                               const Eigen::VectorXd& joint_q) const {
  if (joint_q.size() != n_joints())
    throw std::invalid_argument("RobotModel: expected " + std::to_string(n_joints()) + " joint values, found " +
                                std::to_string(joint_q.size()));
  Eigen::VectorXd q = pinocchio::neutral(impl_->model);
  q.head<3>() = base_pos;
  q[3] = qwxyz[1];
  q[4] = qwxyz[2];
  q[5] = qwxyz[3];
  q[6] = qwxyz[0];
  for (int i = 0; i < n_joints(); ++i) q[motor_to_q_[i]] = joint_q[i];
  return q;
}

void RobotModel::forward_kinematics(const Eigen::VectorXd& q_full) {
  pinocchio::framesForwardKinematics(impl_->model, impl_->data, q_full);
}

Eigen::Vector3d RobotModel::frame_translation(int fid) const { return impl_->data.oMf[fid].translation(); }
Eigen::Matrix3d RobotModel::frame_rotation(int fid) const { return impl_->data.oMf[fid].rotation(); }

Eigen::Vector3d RobotModel::center_of_mass(const Eigen::VectorXd& q_full) {
  return pinocchio::centerOfMass(impl_->model, impl_->data, q_full);
}

Eigen::VectorXd RobotModel::gravity_torques(const Eigen::VectorXd& q_full) {
  const Eigen::VectorXd& g = pinocchio::computeGeneralizedGravity(impl_->model, impl_->data, q_full);
  Eigen::VectorXd out(n_joints());
  for (int i = 0; i < n_joints(); ++i) out[i] = g[motor_to_v_[i]];
  return out;
}

double RobotModel::standing_base_height(const Eigen::VectorXd& joint_q, const std::vector<std::string>& foot_frames,
                                        double sole_offset_m) {
  if (foot_frames.empty()) throw std::invalid_argument("RobotModel: standing_base_height needs at least one foot frame");
  std::vector<int> ids;
  for (const auto& f : foot_frames) ids.push_back(frame_id(f));
  forward_kinematics(full_configuration(Eigen::Vector3d::Zero(), Eigen::Vector4d(1, 0, 0, 0), joint_q));
  double lowest = 1e9;
  for (int id : ids) lowest = std::min(lowest, frame_translation(id).z());
  return -lowest + sole_offset_m;
}

}  // namespace vertebra
