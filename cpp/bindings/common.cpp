#include "bindings/common.hpp"

#include <stdexcept>

#include "core/modes.hpp"

namespace vertebra::bindings {

JointArray to_joint_array(const std::vector<double>& v, const char* what) {
  if (v.size() > static_cast<size_t>(kMaxJoints))
    throw std::invalid_argument(std::string(what) + ": at most " + std::to_string(kMaxJoints) + " values, found " +
                                std::to_string(v.size()));
  JointArray a{};
  for (size_t i = 0; i < v.size(); ++i) a[i] = v[i];
  return a;
}

py::array_t<double> arr(const double* p, int n) { return py::array_t<double>(n, p); }

py::dict state_dict(const State& s) {
  py::dict d;
  d["seq"] = s.seq;
  d["stamp_ns"] = s.stamp_ns;
  d["q"] = arr(s.q.data(), s.n);
  d["dq"] = arr(s.dq.data(), s.n);
  d["tau"] = arr(s.tau.data(), s.n);
  d["imu_quat"] = arr(s.imu_quat.data(), 4);
  d["imu_gyro"] = arr(s.imu_gyro.data(), 3);
  d["imu_acc"] = arr(s.imu_acc.data(), 3);
  d["has_base_truth"] = s.has_base_truth;
  d["base_pos"] = arr(s.base_pos.data(), 3);
  d["base_quat"] = arr(s.base_quat.data(), 4);
  d["base_lin_vel"] = arr(s.base_lin_vel.data(), 3);
  d["base_ang_vel"] = arr(s.base_ang_vel.data(), 3);
  d["has_motor_temp"] = s.has_motor_temp;
  d["motor_temp_c"] = arr(s.motor_temp_c.data(), s.n);
  std::vector<uint32_t> err(s.motor_error.begin(), s.motor_error.begin() + s.n);
  d["motor_error"] = err;
  d["has_battery"] = s.has_battery;
  d["battery_v"] = s.battery_v;
  d["base_estimated"] = s.base_estimated;
  d["has_foot_force"] = s.has_foot_force;
  d["foot_force"] = arr(s.foot_force.data(), 4);
  d["lowcmd_conflict"] = s.lowcmd_conflict;
  d["remote_estop"] = s.remote_estop;
  return d;
}

py::dict command_dict(const Command& c) {
  py::dict d;
  d["q"] = arr(c.q.data(), c.n);
  d["dq"] = arr(c.dq.data(), c.n);
  d["kp"] = arr(c.kp.data(), c.n);
  d["kd"] = arr(c.kd.data(), c.n);
  d["tau_ff"] = arr(c.tau_ff.data(), c.n);
  return d;
}

py::dict histogram_dict(const LatencyHistogram& h) {
  py::dict d;
  d["count"] = h.count();
  d["p50"] = h.percentile_us(0.50);
  d["p99"] = h.percentile_us(0.99);
  d["p999"] = h.percentile_us(0.999);
  d["max"] = h.max_us();
  d["mean"] = h.mean_us();
  return d;
}

py::list fault_names(uint64_t mask) {
  py::list l;
  for (int f = 0; f < kNumFaults; ++f)
    if (mask & (uint64_t{1} << f)) l.append(fault_name(static_cast<FaultId>(f)));
  return l;
}

FaultId fault_by_name(const std::string& name) {
  std::string all;
  for (int f = 0; f < kNumFaults; ++f) {
    if (name == fault_name(static_cast<FaultId>(f))) return static_cast<FaultId>(f);
    all += (f ? ", " : "") + std::string(fault_name(static_cast<FaultId>(f)));
  }
  throw std::invalid_argument("unknown fault '" + name + "'; faults are: " + all);
}

Response response_by_name(const std::string& name) {
  for (int r = 0; r <= static_cast<int>(Response::kCut); ++r)
    if (name == response_name(static_cast<Response>(r))) return static_cast<Response>(r);
  throw std::invalid_argument("unknown response '" + name + "'; responses are: warn, derate, hold, stop, damp, cut");
}

py::dict limiter_counts_dict(const LimiterCounts& c) {
  py::dict d;
  d["non_finite"] = c.nonfinite;
  d["position"] = c.position;
  d["rate"] = c.rate;
  d["velocity"] = c.velocity;
  d["kp"] = c.kp;
  d["kd"] = c.kd;
  d["torque"] = c.torque;
  return d;
}

py::dict chunk_status_dict(const SchedulerStatus& s) {
  py::dict d;
  d["chunks_received"] = s.chunks_received;
  d["chunks_dropped"] = s.chunks_dropped;
  d["chunks_rejected"] = s.chunks_rejected;
  d["last_seq"] = s.last_seq;
  d["starved_ticks"] = s.starved_ticks;
  d["starved"] = s.starved;
  d["has_output"] = s.has_output;
  d["blend"] = s.blend;
  return d;
}

Command command_from_dict(int n, py::dict d) {
  Command c;
  c.n = n;
  for (const char* k : {"q", "dq", "kp", "kd", "tau_ff"}) {
    auto v = py::cast<std::vector<double>>(d[k]);
    if (v.size() != static_cast<size_t>(n))
      throw std::invalid_argument(std::string("command field '") + k + "' needs " + std::to_string(n) + " values");
    JointArray& a = std::string(k) == "q" ? c.q : std::string(k) == "dq" ? c.dq : std::string(k) == "kp" ? c.kp
                  : std::string(k) == "kd" ? c.kd : c.tau_ff;
    for (int i = 0; i < n; ++i) a[i] = v[i];
  }
  return c;
}

State state_from_dict(int n, py::dict state) {
  State s;
  s.n = n;
  auto fill = [](py::handle h, double* out, size_t len) {
    auto a = py::cast<std::vector<double>>(h);
    if (a.size() != len) throw std::invalid_argument("state field has the wrong length");
    for (size_t i = 0; i < len; ++i) out[i] = a[i];
  };
  fill(state["q"], s.q.data(), n);
  fill(state["dq"], s.dq.data(), n);
  fill(state["base_pos"], s.base_pos.data(), 3);
  fill(state["base_quat"], s.base_quat.data(), 4);
  fill(state["base_lin_vel"], s.base_lin_vel.data(), 3);
  fill(state["base_ang_vel"], s.base_ang_vel.data(), 3);
  // The sensors, where given (the state estimator reads them).
  if (state.contains("tau")) fill(state["tau"], s.tau.data(), n);
  if (state.contains("imu_quat")) fill(state["imu_quat"], s.imu_quat.data(), 4);
  if (state.contains("imu_gyro")) fill(state["imu_gyro"], s.imu_gyro.data(), 3);
  if (state.contains("imu_acc")) fill(state["imu_acc"], s.imu_acc.data(), 3);
  if (state.contains("foot_force")) {
    fill(state["foot_force"], s.foot_force.data(), 4);
    s.has_foot_force = true;
  }
  s.has_base_truth = true;
  return s;
}

ModeId mode_from_py(py::handle mode) {
  if (py::isinstance<py::str>(mode)) {
    const std::string name = mode.cast<std::string>();
    ModeId id;
    if (!find_mode(name, id))
      throw std::invalid_argument("unknown mode '" + name + "'; modes are: " + known_mode_names());
    return id;
  }
  if (py::isinstance<py::int_>(mode) && !py::isinstance<py::bool_>(mode)) {  // an id, as recordings store it
    const int k = mode.cast<int>();
    if (k < 0 || k >= kMaxModeIds)
      throw std::invalid_argument("mode id " + std::to_string(k) + " out of range; valid: 0 .. " + std::to_string(kMaxModeIds - 1));
    return static_cast<ModeId>(k);
  }
  return mode.cast<ModeId>();
}

py::dict estimate_dict(const Estimate& e) {
  py::dict d;
  d["valid"] = e.valid;
  d["updates"] = e.updates;
  d["base_pos"] = arr(e.base_pos.data(), 3);
  d["base_quat"] = arr(e.base_quat.data(), 4);
  d["base_lin_vel"] = arr(e.base_lin_vel.data(), 3);
  d["base_ang_vel"] = arr(e.base_ang_vel.data(), 3);
  std::vector<bool> contact(e.contact.begin(), e.contact.begin() + e.n_feet);
  d["contact"] = contact;
  d["normal_force"] = arr(e.normal_force.data(), e.n_feet);
  py::list feet;
  for (int i = 0; i < e.n_feet; ++i) feet.append(arr(e.foot_pos[i].data(), 3));
  d["foot_pos"] = feet;
  return d;
}

}  // namespace vertebra::bindings
