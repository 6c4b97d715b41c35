// The pinocchio side of RobotModel, for C++ code that needs the model itself (the whole-body
// controller). Kept out of robot_model.hpp so that most of the core compiles without pinocchio.
#pragma once

#include <pinocchio/multibody/data.hpp>
#include <pinocchio/multibody/model.hpp>

#include "core/robot_model.hpp"

namespace vertebra {

struct RobotModel::Impl {
  pinocchio::Model model;
  pinocchio::Data data;
};

}  // namespace vertebra
