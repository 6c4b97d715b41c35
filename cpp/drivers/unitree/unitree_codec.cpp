#include "drivers/unitree/unitree_codec.hpp"

#include <algorithm>
#include <cmath>
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

namespace {
// Each mapped joint's command into its motor slot, the motor enabled (mode 1 on both robots:
// G1 enable, Go2 servo/FOC); the message was zeroed, so unmapped slots stay disabled.
template <int Slots, class MotorCmd>
void fill_motors(const MotorMap& map, const Command& cmd, MotorCmd (&motors)[Slots]) {
  const int n = std::min(map.n, cmd.n);
  for (int j = 0; j < n; ++j) {
    const int m = map.motor[j];
    if (m < 0 || m >= Slots) continue;
    auto& mc = motors[m];
    mc.mode = 1;
    mc.q = f32(cmd.q[j]);
    mc.dq = f32(cmd.dq[j]);
    mc.tau = f32(cmd.tau_ff[j]);
    mc.kp = f32(cmd.kp[j]);
    mc.kd = f32(cmd.kd[j]);
  }
}
}  // namespace

void encode_lowcmd(const MotorMap& map, const Command& cmd, uint8_t mode_pr, uint8_t mode_machine, HgLowCmd& out) {
  std::memset(&out, 0, sizeof(out));  // padding included: the CRC covers it
  out.mode_pr = mode_pr;
  out.mode_machine = mode_machine;
  fill_motors(map, cmd, out.motor_cmd);
  seal(out);
}

void encode_lowcmd(const MotorMap& map, const Command& cmd, GoLowCmd& out) {
  std::memset(&out, 0, sizeof(out));
  out.head[0] = 0xFE;
  out.head[1] = 0xEF;
  out.level_flag = 0xFF;
  fill_motors(map, cmd, out.motor_cmd);
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
  s.has_foot_force = false;  // the G1 has no foot sensors in LowState_
  s.foot_force = {};
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
  // The Go2's four foot sensors (LowState_.foot_force, int16, the sensor's raw units), in the
  // message's foot order.
  s.has_foot_force = true;
  for (int i = 0; i < 4; ++i) s.foot_force[i] = foot_force_n[i] = in.foot_force[i];
}

void decode_lowstate(const MotorMap& map, const GoLowState& in, State& s) {
  std::array<double, 4> ff{};
  decode_lowstate(map, in, s, ff);
}

namespace {
template <class MotorCmd>
void motor_to_command(const MotorCmd& mc, bool go, int j, Command& out) {
  out.q[j] = out.dq[j] = out.kp[j] = out.kd[j] = out.tau_ff[j] = 0.0;
  if (mc.mode == 0) return;  // disabled: the board applies nothing
  out.q[j] = mc.q;
  out.dq[j] = mc.dq;
  out.kp[j] = mc.kp;
  out.kd[j] = mc.kd;
  out.tau_ff[j] = mc.tau;
  if (go && std::abs(mc.q) >= 0.99f * kGoPosStop) out.kp[j] = out.q[j] = 0.0;
  if (go && std::abs(mc.dq) >= 0.99f * kGoVelStop) out.kd[j] = out.dq[j] = 0.0;
}

template <class Imu>
void encode_imu(const State& s, Imu& imu) {
  for (int i = 0; i < 4; ++i) imu.quaternion[i] = f32(s.imu_quat[i]);
  for (int i = 0; i < 3; ++i) {
    imu.gyroscope[i] = f32(s.imu_gyro[i]);
    imu.accelerometer[i] = f32(s.imu_acc[i]);
  }
  const double w = s.imu_quat[0], x = s.imu_quat[1], y = s.imu_quat[2], z = s.imu_quat[3];
  imu.rpy[0] = f32(std::atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y)));
  imu.rpy[1] = f32(std::asin(std::clamp(2 * (w * y - z * x), -1.0, 1.0)));
  imu.rpy[2] = f32(std::atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)));
}
}  // namespace

void decode_lowcmd(const MotorMap& map, const HgLowCmd& in, Command& out) {
  out.n = map.n;
  for (int j = 0; j < map.n; ++j) motor_to_command(in.motor_cmd[map.motor[j]], false, j, out);
}

void decode_lowcmd(const MotorMap& map, const GoLowCmd& in, Command& out) {
  out.n = map.n;
  for (int j = 0; j < map.n; ++j) motor_to_command(in.motor_cmd[map.motor[j]], true, j, out);
}

void encode_lowstate(const MotorMap& map, const State& s, uint32_t tick, uint8_t mode_machine, const RemoteState& remote,
                     HgLowState& out) {
  std::memset(&out, 0, sizeof(out));
  out.mode_machine = mode_machine;
  out.tick = tick;
  encode_imu(s, out.imu_state);
  for (int j = 0; j < map.n; ++j) {
    auto& ms = out.motor_state[map.motor[j]];
    ms.mode = 1;
    ms.q = f32(s.q[j]);
    ms.dq = f32(s.dq[j]);
    ms.tau_est = f32(s.tau[j]);
    const auto t = static_cast<int16_t>(s.has_motor_temp ? s.motor_temp_c[j] : 0.0);
    ms.temperature[0] = ms.temperature[1] = t;
    ms.motorstate = s.motor_error[j];
  }
  encode_remote(remote, out.wireless_remote);
  seal(out);
}

void encode_lowstate(const MotorMap& map, const State& s, uint32_t tick, const std::array<double, 4>& foot_force_n,
                     const RemoteState& remote, GoLowState& out) {
  std::memset(&out, 0, sizeof(out));
  out.head[0] = 0xFE;
  out.head[1] = 0xEF;
  out.level_flag = 0xFF;
  out.tick = tick;
  encode_imu(s, out.imu_state);
  for (int j = 0; j < map.n; ++j) {
    auto& ms = out.motor_state[map.motor[j]];
    ms.mode = 1;
    ms.q = ms.q_raw = f32(s.q[j]);
    ms.dq = ms.dq_raw = f32(s.dq[j]);
    ms.tau_est = f32(s.tau[j]);
    ms.temperature = static_cast<uint8_t>(std::clamp(s.has_motor_temp ? s.motor_temp_c[j] : 0.0, 0.0, 255.0));
  }
  for (int i = 0; i < 4; ++i) out.foot_force[i] = out.foot_force_est[i] = foot_force_int16(foot_force_n[i]);
  out.power_v = f32(s.has_battery ? s.battery_v : 0.0);
  encode_remote(remote, out.wireless_remote);
  seal(out);
}

void encode_lowstate(const MotorMap& map, const State& s, uint32_t tick, const RemoteState& remote, GoLowState& out) {
  static const std::array<double, 4> none{};
  encode_lowstate(map, s, tick, s.has_foot_force ? s.foot_force : none, remote, out);
}

void encode_sportmodestate(const State& s, GoSportModeState& out) {
  std::memset(&out, 0, sizeof(out));
  const int64_t ns = s.stamp_ns < 0 ? 0 : s.stamp_ns;
  out.stamp.sec = static_cast<int32_t>(ns / 1'000'000'000);
  out.stamp.nanosec = static_cast<uint32_t>(ns % 1'000'000'000);
  encode_imu(s, out.imu_state);
  if (s.has_base_truth) {
    for (int i = 0; i < 3; ++i) {
      out.position[i] = f32(s.base_pos[i]);
      out.velocity[i] = f32(s.base_lin_vel[i]);
    }
    out.body_height = f32(s.base_pos[2]);
    out.yaw_speed = f32(s.base_ang_vel[2]);
  }
  if (s.has_foot_force)
    for (int i = 0; i < 4; ++i) out.foot_force[i] = foot_force_int16(s.foot_force[i]);
}

int16_t foot_force_int16(double v) {
  if (!std::isfinite(v)) return v > 0 ? INT16_MAX : (v < 0 ? INT16_MIN : 0);  // NaN: 0
  return static_cast<int16_t>(std::lround(std::clamp(v, static_cast<double>(INT16_MIN), static_cast<double>(INT16_MAX))));
}

bool decode_checked_lowcmd(Messages messages, const MotorMap& map, const void* msg, Command& out) {
  if (messages == Messages::kHg) {
    const auto& m = *static_cast<const HgLowCmd*>(msg);
    if (!crc_ok(m)) return false;
    decode_lowcmd(map, m, out);
  } else {
    const auto& m = *static_cast<const GoLowCmd*>(msg);
    if (!crc_ok(m)) return false;
    decode_lowcmd(map, m, out);
  }
  return true;
}

}  // namespace vertebra::unitree
