// Floating-base state estimator (the filter and its contract: estimator.hpp).
#include "estimation/estimator.hpp"

#include <pinocchio/algorithm/frames.hpp>
#include <pinocchio/algorithm/jacobian.hpp>
#include <pinocchio/algorithm/kinematics.hpp>
#include <pinocchio/algorithm/rnea.hpp>

#include <Eigen/Cholesky>
#include <Eigen/Geometry>
#include <Eigen/LU>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include "core/robot_model_impl.hpp"

namespace vertebra {

namespace {
constexpr int kMaxX = 6 + 3 * kMaxFeet;      // state
constexpr int kMaxZ = 7 * kMaxFeet + 3;      // measurements: per foot 3 + 3 + 1, no-contact velocity 3
// Fixed-capacity storage: Eigen keeps these on the stack (no heap on the tick).
using MatXX = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, 0, kMaxX, kMaxX>;
using MatZX = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, 0, kMaxZ, kMaxX>;
using MatXZ = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, 0, kMaxX, kMaxZ>;
using MatZZ = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, 0, kMaxZ, kMaxZ>;
using VecX = Eigen::Matrix<double, Eigen::Dynamic, 1, 0, kMaxX, 1>;
using VecZ = Eigen::Matrix<double, Eigen::Dynamic, 1, 0, kMaxZ, 1>;
using Mat6 = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, 0, 6, 6>;
using Vec6 = Eigen::Matrix<double, Eigen::Dynamic, 1, 0, 6, 1>;
using Clock = std::chrono::steady_clock;
constexpr double kHuge = 1e6;  // variance of a measurement that does not apply (m², m²/s²)
}  // namespace

struct StateEstimator::Impl {
  pinocchio::Model model;
  pinocchio::Data data;
  std::vector<int> m2q, m2v;
  pinocchio::FrameIndex imu_fid = 0;
  Eigen::Matrix3d R_bi = Eigen::Matrix3d::Identity();  // IMU frame in the base frame
  Eigen::Vector3d p_bi = Eigen::Vector3d::Zero();      // the IMU's position in the base frame
  Eigen::Vector3d w_prev = Eigen::Vector3d::Zero();    // the last tick's angular velocity (world)
  std::vector<pinocchio::FrameIndex> foot_fid;
  std::vector<std::vector<int>> leg_v, leg_motor;  // the leg's v columns and their motor indices
  Eigen::Vector3d sole{0, 0, 0};
  double foot_radius = 0;
  int wrench_dim = 6;  // 6: flat feet (a wrench), 3: point feet (a force)
  Eigen::VectorXd q, v;
  Eigen::MatrixXd J6;
  // Filter.
  int nx = 0, nz = 0;
  VecX x;
  MatXX P, F, Q, tmpXX;
  MatZX H, HP;
  MatXZ K;
  MatZZ S;
  VecZ z, r_diag;
  Eigen::LDLT<MatZZ> ldlt;
  std::array<bool, kMaxFeet> stance{};
};

StateEstimator::StateEstimator(const RobotModel& robot, const EstimatorConfig& cfg)
    : cfg_(cfg), impl_(std::make_unique<Impl>()) {
  Impl& I = *impl_;
  I.model = robot.impl().model;
  I.data = pinocchio::Data(I.model);
  I.m2q = robot.motor_to_q();
  I.m2v = robot.motor_to_v();
  nf_ = static_cast<int>(cfg.foot_frames.size());
  if (nf_ < 1 || nf_ > kMaxFeet)
    throw std::invalid_argument("StateEstimator: foot_frames: found " + std::to_string(nf_) + "; valid: 1 to " +
                                std::to_string(kMaxFeet) + " feet");
  if (cfg.sole_offset_m.size() != 3)
    throw std::invalid_argument("StateEstimator: sole_offset_m: found " + std::to_string(cfg.sole_offset_m.size()) +
                                " values; valid: 3 (x y z in the foot frame)");
  struct Positive { const char* name; double v; };
  const Positive checks[] = {{"accel_noise_m_s2", cfg.accel_noise_m_s2}, {"stance_foot_noise_m_s", cfg.stance_foot_noise_m_s},
                             {"swing_foot_noise_m_s", cfg.swing_foot_noise_m_s}, {"kin_position_noise_m", cfg.kin_position_noise_m},
                             {"kin_velocity_noise_m_s", cfg.kin_velocity_noise_m_s}, {"foot_height_noise_m", cfg.foot_height_noise_m},
                             {"no_contact_velocity_noise_m_s", cfg.no_contact_velocity_noise_m_s},
                             {"control_rate_hz", cfg.control_rate_hz}};
  for (const auto& c : checks)
    if (!(c.v > 0) || !std::isfinite(c.v))
      throw std::invalid_argument(std::string("StateEstimator: ") + c.name + ": found " + std::to_string(c.v) +
                                  "; valid: a finite number > 0");
  if (!(cfg.contact_off_n >= 0 && cfg.contact_on_n > cfg.contact_off_n) || !std::isfinite(cfg.contact_on_n))
    throw std::invalid_argument("StateEstimator: contact thresholds: found on " + std::to_string(cfg.contact_on_n) +
                                ", off " + std::to_string(cfg.contact_off_n) + "; valid: 0 <= off < on");
  if (!(cfg.foot_radius_m >= 0) || !std::isfinite(cfg.foot_radius_m))
    throw std::invalid_argument("StateEstimator: foot_radius_m: found " + std::to_string(cfg.foot_radius_m) +
                                "; valid: >= 0");
  I.sole = Eigen::Vector3d(cfg.sole_offset_m[0], cfg.sole_offset_m[1], cfg.sole_offset_m[2]);
  I.foot_radius = cfg.foot_radius_m;
  I.imu_fid = static_cast<pinocchio::FrameIndex>(robot.frame_id(cfg.imu_frame));  // throws listing frames
  std::vector<int> v2m(I.model.nv, -1);
  for (size_t j = 0; j < I.m2v.size(); ++j) v2m[I.m2v[j]] = static_cast<int>(j);
  for (const auto& name : cfg.foot_frames) {
    const auto fid = static_cast<pinocchio::FrameIndex>(robot.frame_id(name));
    I.foot_fid.push_back(fid);
    std::vector<int> cols, motors;
    // The actuated joints from the root to the foot (the floating base, joint 1, excluded).
    for (const auto jid : I.model.supports[I.model.frames[fid].parentJoint]) {
      if (jid <= 1) continue;
      const int iv = I.model.idx_vs[jid];
      for (int k = 0; k < I.model.nvs[jid]; ++k) {
        cols.push_back(iv + k);
        motors.push_back(v2m[iv + k]);
      }
    }
    if (cols.empty() || std::find(motors.begin(), motors.end(), -1) != motors.end())
      throw std::invalid_argument("StateEstimator: foot frame '" + name + "' is not at the end of an actuated leg");
    I.leg_v.push_back(cols);
    I.leg_motor.push_back(motors);
  }
  I.wrench_dim = cfg.flat_feet ? 6 : 3;
  I.q = pinocchio::neutral(I.model);
  I.v = Eigen::VectorXd::Zero(I.model.nv);
  I.J6 = Eigen::MatrixXd::Zero(6, I.model.nv);
  pinocchio::framesForwardKinematics(I.model, I.data, I.q);
  const pinocchio::SE3 oMb = I.data.oMi[1];
  I.R_bi = oMb.rotation().transpose() * I.data.oMf[I.imu_fid].rotation();
  I.p_bi = oMb.actInv(I.data.oMf[I.imu_fid]).translation();
  // The filter's constant structure.
  I.nx = 6 + 3 * nf_;
  I.nz = 7 * nf_ + 3;
  const int nx = I.nx, nz = I.nz;
  I.x = VecX::Zero(nx);
  I.P = MatXX::Zero(nx, nx);
  I.F = MatXX::Identity(nx, nx);
  I.Q = MatXX::Zero(nx, nx);
  I.tmpXX = MatXX::Zero(nx, nx);
  I.H = MatZX::Zero(nz, nx);
  I.HP = MatZX::Zero(nz, nx);
  I.K = MatXZ::Zero(nx, nz);
  I.S = MatZZ::Zero(nz, nz);
  I.z = VecZ::Zero(nz);
  I.r_diag = VecZ::Zero(nz);
  I.ldlt = Eigen::LDLT<MatZZ>(nz);
  const double dt = 1.0 / cfg.control_rate_hz;
  I.F.block<3, 3>(0, 3) = Eigen::Matrix3d::Identity() * dt;
  for (int i = 0; i < nf_; ++i) {
    const int c = 6 + 3 * i, r = 7 * i;
    I.H.block<3, 3>(r, 0) = -Eigen::Matrix3d::Identity();  // c_i - p
    I.H.block<3, 3>(r, c) = Eigen::Matrix3d::Identity();
    I.H.block<3, 3>(r + 3, 3) = Eigen::Matrix3d::Identity();  // v
    I.H(r + 6, c + 2) = 1.0;                                   // c_i,z
  }
  I.H.block<3, 3>(7 * nf_, 3) = Eigen::Matrix3d::Identity();  // v (no foot in contact)
}

StateEstimator::~StateEstimator() = default;

Status StateEstimator::update(const State& s, const ContactPlan& plan, Estimate& out) {
  const auto t0 = Clock::now();
  Impl& I = *impl_;
  out.valid = false;
  out.n_feet = nf_;
  Eigen::Quaterniond q_wi(s.imu_quat[0], s.imu_quat[1], s.imu_quat[2], s.imu_quat[3]);
  const double qn = q_wi.norm();
  if (!(qn > 0.5) || !std::isfinite(qn) || !all_finite(s.q, s.n) || !all_finite(s.dq, s.n) || !all_finite(s.tau, s.n))
    return Status::kNonFinite;
  for (int k = 0; k < 3; ++k)
    if (!std::isfinite(s.imu_gyro[k]) || !std::isfinite(s.imu_acc[k])) return Status::kNonFinite;
  q_wi.coeffs() /= qn;
  const Eigen::Matrix3d R_wi = q_wi.toRotationMatrix();
  const Eigen::Matrix3d R = R_wi * I.R_bi.transpose();  // base orientation in the world
  const Eigen::Quaterniond q_wb(R);
  const Eigen::Vector3d gyro(s.imu_gyro[0], s.imu_gyro[1], s.imu_gyro[2]);
  const Eigen::Vector3d w_b = I.R_bi * gyro;
  const Eigen::Vector3d acc(s.imu_acc[0], s.imu_acc[1], s.imu_acc[2]);
  // The accelerometer measures at the IMU, not at the base origin the filter tracks: take out the
  // lever arm r (G1: 9.5 cm from the pelvis origin), a_base = a_imu - dw/dt x r - w x (w x r), with
  // dw/dt from the gyro's change over the tick. Uncompensated, the G1's base rocking at each step put
  // 4-6 cm/s into the lateral velocity walking at 0.5 m/s, and it fell (docs/walking.md).
  const double dt_imu = 1.0 / cfg_.control_rate_hz;
  const Eigen::Vector3d w_w = R * w_b, r_w = R * I.p_bi;
  const Eigen::Vector3d wd_w = initialised_ ? Eigen::Vector3d((w_w - I.w_prev) / dt_imu) : Eigen::Vector3d::Zero();
  I.w_prev = w_w;
  const Eigen::Vector3d a_w = R_wi * acc + Eigen::Vector3d(0, 0, -9.81) - wd_w.cross(r_w) - w_w.cross(w_w.cross(r_w));

  // Kinematics at the base origin, world-aligned axes (base position and linear velocity zero).
  I.q.head<3>().setZero();
  I.q[3] = q_wb.x();
  I.q[4] = q_wb.y();
  I.q[5] = q_wb.z();
  I.q[6] = q_wb.w();
  I.v.head<3>().setZero();
  I.v.segment<3>(3) = w_b;
  for (int j = 0; j < s.n && j < static_cast<int>(I.m2q.size()); ++j) {
    I.q[I.m2q[j]] = s.q[j];
    I.v[I.m2v[j]] = s.dq[j];
  }
  const bool use_sensor = cfg_.contact_source == ContactSource::kFootForce && s.has_foot_force;
  if (!use_sensor) pinocchio::computeGeneralizedGravity(I.model, I.data, I.q);
  pinocchio::forwardKinematics(I.model, I.data, I.q, I.v);
  std::array<Eigen::Vector3d, kMaxFeet> r{}, vr{};
  bool planned_step = false;  // the contact plan has released a foot
  for (int i = 0; plan.valid && i < nf_; ++i) planned_step = planned_step || plan.weight[i] < 0.5;
  for (int i = 0; i < nf_; ++i) {
    const pinocchio::SE3& oMf = pinocchio::updateFramePlacement(I.model, I.data, I.foot_fid[i]);
    const pinocchio::Motion vf = pinocchio::getFrameVelocity(I.model, I.data, I.foot_fid[i], pinocchio::LOCAL_WORLD_ALIGNED);
    const Eigen::Vector3d off = oMf.rotation() * I.sole;
    r[i] = oMf.translation() + off - Eigen::Vector3d(0, 0, I.foot_radius);
    vr[i] = vf.linear() + vf.angular().cross(off);
    double fn = 0;
    if (use_sensor) {
      fn = s.foot_force[i];
    } else {
      I.J6.setZero();
      pinocchio::computeFrameJacobian(I.model, I.data, I.q, I.foot_fid[i], pinocchio::LOCAL_WORLD_ALIGNED, I.J6);
      const int m = I.wrench_dim, nl = static_cast<int>(I.leg_v[i].size());
      if (nl <= 6) {
        Mat6 A(m, nl);
        Vec6 b(nl);
        for (int c = 0; c < nl; ++c) {
          for (int k = 0; k < m; ++k) A(k, c) = I.J6(k, I.leg_v[i][c]);
          b[c] = I.data.g[I.leg_v[i][c]] - s.tau[I.leg_motor[i][c]];
        }
        // A^T f = b in the least-squares sense: (A A^T) f = A b.
        Mat6 AAt(m, m);
        AAt.noalias() = A * A.transpose();
        Vec6 Ab(m);
        Ab.noalias() = A * b;
        Eigen::PartialPivLU<Mat6> lu(AAt);
        Vec6 f(m);
        f = lu.solve(Ab);
        fn = std::isfinite(f[2]) ? f[2] : 0.0;
      }
    }
    out.normal_force[i] = fn;
    bool st = I.stance[i] ? fn > cfg_.contact_off_n : fn > cfg_.contact_on_n;
    if (plan.valid && plan.weight[i] < 0.5) st = false;
    // While the plan has released a foot (a step), a foot it holds at full weight carries the robot:
    // it is in stance whatever the force estimate says. The joint-torque estimate is static (no
    // M ddq): G1 walking at 0.5 m/s, it swung between -3900 N and +1300 N on the stance foot at
    // touch-downs and dipped below contact_off_n late in single support, and with no foot in
    // stance the base velocity erred by 6 cm/s (docs/walking.md). (MIT Cheetah's estimator takes
    // the gait's contact phase the same way.)
    if (plan.valid && planned_step && plan.weight[i] >= 0.99) st = true;
    I.stance[i] = st;
  }

  if (!initialised_) {
    double lowest = 0;
    for (int i = 0; i < nf_; ++i) lowest = i == 0 ? r[i].z() : std::min(lowest, r[i].z());
    I.x.setZero();
    I.x[0] = cfg_.initial_xy_m[0];
    I.x[1] = cfg_.initial_xy_m[1];
    I.x[2] = -lowest;
    for (int i = 0; i < nf_; ++i) I.x.segment<3>(6 + 3 * i) = I.x.head<3>() + r[i];
    I.P.setZero();
    I.P.diagonal().setConstant(1e-2);
    I.P(2, 2) = 0.1;
    initialised_ = true;
  } else {
    // Predict.
    const double dt = 1.0 / cfg_.control_rate_hz;
    I.x.head<3>() += I.x.segment<3>(3) * dt + a_w * (0.5 * dt * dt);
    I.x.segment<3>(3) += a_w * dt;
    I.Q.setZero();
    const double qa = cfg_.accel_noise_m_s2 * cfg_.accel_noise_m_s2;
    for (int k = 0; k < 3; ++k) {
      I.Q(k, k) = qa * dt * dt * dt * dt / 4;
      I.Q(3 + k, 3 + k) = qa * dt * dt;
      I.Q(k, 3 + k) = I.Q(3 + k, k) = qa * dt * dt * dt / 2;
    }
    for (int i = 0; i < nf_; ++i) {
      const double sf = I.stance[i] ? cfg_.stance_foot_noise_m_s : cfg_.swing_foot_noise_m_s;
      for (int k = 0; k < 3; ++k) I.Q(6 + 3 * i + k, 6 + 3 * i + k) = sf * sf * dt;
    }
    I.tmpXX.noalias() = I.F * I.P;
    I.P.noalias() = I.tmpXX * I.F.transpose();
    I.P += I.Q;

    // Measure.
    const double rp = cfg_.kin_position_noise_m * cfg_.kin_position_noise_m;
    const double rv = cfg_.kin_velocity_noise_m_s * cfg_.kin_velocity_noise_m_s;
    const double rh = cfg_.foot_height_noise_m * cfg_.foot_height_noise_m;
    int in_contact = 0;
    for (int i = 0; i < nf_; ++i) {
      const int row = 7 * i;
      I.z.segment<3>(row) = r[i];
      I.z.segment<3>(row + 3) = -vr[i];
      I.z[row + 6] = 0.0;
      const bool st = I.stance[i];
      in_contact += st;
      for (int k = 0; k < 3; ++k) {
        I.r_diag[row + k] = st ? rp : 1e-2;  // a swing foot's position still follows its leg
        I.r_diag[row + 3 + k] = st ? rv : kHuge;
      }
      I.r_diag[row + 6] = st ? rh : kHuge;
    }
    const int nc = 7 * nf_;
    I.z.segment<3>(nc).setZero();
    const double rnc = cfg_.no_contact_velocity_noise_m_s * cfg_.no_contact_velocity_noise_m_s;
    for (int k = 0; k < 3; ++k) I.r_diag[nc + k] = in_contact ? kHuge : rnc;
    // Innovation y = z - H x (into z), S = H P H' + R, K = P H' S^-1.
    I.z.noalias() -= I.H * I.x;
    I.HP.noalias() = I.H * I.P;
    I.S.noalias() = I.HP * I.H.transpose();
    I.S.diagonal() += I.r_diag;
    I.ldlt.compute(I.S);
    if (I.ldlt.info() != Eigen::Success) return Status::kNonFinite;
    // K' = S^-1 H P  (S and P symmetric).
    I.K.noalias() = I.ldlt.solve(I.HP).transpose();
    I.x.noalias() += I.K * I.z;
    I.tmpXX.noalias() = I.K * I.HP;
    I.P -= I.tmpXX;
    I.tmpXX = 0.5 * (I.P + I.P.transpose());
    I.P = I.tmpXX;
  }
  if (!I.x.allFinite()) {
    initialised_ = false;
    return Status::kNonFinite;
  }

  for (int k = 0; k < 3; ++k) {
    out.base_pos[k] = I.x[k];
    out.base_lin_vel[k] = I.x[3 + k];
    out.base_ang_vel[k] = w_b[k];
  }
  out.base_quat = {q_wb.w(), q_wb.x(), q_wb.y(), q_wb.z()};
  for (int i = 0; i < nf_; ++i) {
    out.contact[i] = I.stance[i];
    for (int k = 0; k < 3; ++k) out.foot_pos[i][k] = I.x[6 + 3 * i + k];
  }
  out.valid = true;
  ++out.updates;

  last_us_.store(std::chrono::duration<double, std::micro>(Clock::now() - t0).count(), std::memory_order_relaxed);
  return Status::kOk;
}

}  // namespace vertebra
