#include "drivers/unitree/unitree_codec.hpp"

#include <algorithm>
#include <cstring>

#include "drivers/unitree/unitree_crc.hpp"

namespace vertebra::unitree {

namespace {
float f32(double v) { return static_cast<float>(v); }

template <class Imu>
void decode_imu(const Imu& imu, State& s) {
  for (int i = 0; i < 4; ++i) s.imu_quat[i] = imu.quaternion[i];  // w x y z, as Vertebra
  for (int i = 0; i < 3; ++i) {
    s.imu_gyro[i] = imu.gyroscope[i];
    s.imu_acc[i] = imu.accelerometer[i];
  }
}
}  // namespace

RemoteState decode_remote(const uint8_t* w) {
  RemoteState r;
  std::memcpy(&r.buttons, w + 2, 2);
  std::memcpy(&r.lx, w + 4, 4);
  std::memcpy(&r.rx, w + 8, 4);
  std::memcpy(&r.ry, w + 12, 4);
  std::memcpy(&r.l2, w + 16, 4);
  std::memcpy(&r.ly, w + 20, 4);
  return r;
}

void encode_remote(const RemoteState& r, uint8_t* w) {
  std::memset(w, 0, 40);
  std::memcpy(w + 2, &r.buttons, 2);
  std::memcpy(w + 4, &r.lx, 4);
  std::memcpy(w + 8, &r.rx, 4);
  std::memcpy(w + 12, &r.ry, 4);
  std::memcpy(w + 16, &r.l2, 4);
  std::memcpy(w + 20, &r.ly, 4);
}

void encode_lowcmd(const MotorMap& map, const Command& cmd, uint8_t mode_pr, uint8_t mode_machine, HgLowCmd& out) {
  std::memset(&out, 0, sizeof(out));  // padding included: the CRC covers it
  out.mode_pr = mode_pr;
  out.mode_machine = mode_machine;
  const int n = std::min(map.n, cmd.n);
  for (int j = 0; j < n; ++j) {
    const int m = map.motor[j];
    if (m < 0 || m >= kHgMotors) continue;
    auto& mc = out.motor_cmd[m];
    mc.mode = 1;
    mc.q = f32(cmd.q[j]);
    mc.dq = f32(cmd.dq[j]);
    mc.tau = f32(cmd.tau_ff[j]);
    mc.kp = f32(cmd.kp[j]);
    mc.kd = f32(cmd.kd[j]);
  }
  seal(out);
}

void encode_lowcmd(const MotorMap& map, const Command& cmd, GoLowCmd& out) {
  std::memset(&out, 0, sizeof(out));
  out.head[0] = 0xFE;
  out.head[1] = 0xEF;
  out.level_flag = 0xFF;
  const int n = std::min(map.n, cmd.n);
  for (int j = 0; j < n; ++j) {
    const int m = map.motor[j];
    if (m < 0 || m >= kGoMotors) continue;
    auto& mc = out.motor_cmd[m];
    mc.mode = 0x01;
    mc.q = f32(cmd.q[j]);
    mc.dq = f32(cmd.dq[j]);
    mc.tau = f32(cmd.tau_ff[j]);
    mc.kp = f32(cmd.kp[j]);
    mc.kd = f32(cmd.kd[j]);
  }
  seal(out);
}

void decode_lowstate(const MotorMap& map, const HgLowState& in, State& s) {
  s.n = map.n;
  for (int j = 0; j < map.n; ++j) {
    const int m = map.motor[j];
    const bool ok = m >= 0 && m < kHgMotors;
    const auto& ms = in.motor_state[ok ? m : 0];
    s.q[j] = ok ? ms.q : 0.0;
    s.dq[j] = ok ? ms.dq : 0.0;
    s.tau[j] = ok ? ms.tau_est : 0.0;
    // The hotter of the two sensors (surface, winding).
    s.motor_temp_c[j] = ok ? std::max(ms.temperature[0], ms.temperature[1]) : 0.0;
    s.motor_error[j] = ok ? ms.motorstate : 0u;
  }
  s.has_motor_temp = true;
  decode_imu(in.imu_state, s);
  s.has_battery = false;  // the G1's battery is on its own topic (BmsState_), not in LowState_
  s.has_base_truth = false;
}

void decode_lowstate(const MotorMap& map, const GoLowState& in, State& s, std::array<double, 4>& foot_force_n) {
  s.n = map.n;
  for (int j = 0; j < map.n; ++j) {
    const int m = map.motor[j];
    const bool ok = m >= 0 && m < kGoMotors;
    const auto& ms = in.motor_state[ok ? m : 0];
    s.q[j] = ok ? ms.q : 0.0;
    s.dq[j] = ok ? ms.dq : 0.0;
    s.tau[j] = ok ? ms.tau_est : 0.0;
    s.motor_temp_c[j] = ok ? ms.temperature : 0.0;
    s.motor_error[j] = 0u;  // the Go2's MotorState_ carries no error word
  }
  s.has_motor_temp = true;
  decode_imu(in.imu_state, s);
  s.has_battery = true;
  s.battery_v = in.power_v;
  s.has_base_truth = false;
  for (int i = 0; i < 4; ++i) foot_force_n[i] = in.foot_force[i];
}

}  // namespace vertebra::unitree
