// vertebra._rt bindings: the bench-rig harness's controller mode (hil/bench_mode.hpp). Programs go
// in as numpy arrays; a finished program's trace comes back as a dict of numpy arrays.
#include "bindings/common.hpp"

#include "hil/bench_mode.hpp"

namespace vertebra::bindings {

namespace {

const char* bench_state_name(BenchState s) {
  switch (s) {
    case BenchState::kIdle: return "idle";
    case BenchState::kLoaded: return "loaded";
    case BenchState::kArmed: return "armed";
    case BenchState::kPlaying: return "playing";
    case BenchState::kDone: return "done";
  }
  return "unknown";
}

template <typename T>
py::array_t<T> rows(const std::vector<T>& v, int ticks, int width) {
  py::array_t<T> a(width > 0 ? std::vector<py::ssize_t>{ticks, width} : std::vector<py::ssize_t>{ticks});
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

}  // namespace

void expose_hil(py::module_& m) {
  py::class_<BenchMode, ControllerMode, std::shared_ptr<BenchMode>>(m, "BenchMode",
      "the bench harness's mode (cpp/hil/bench_mode.hpp): holds the entry pose, plays one joint's per-tick program "
      "and records the state each tick")
      .def(py::init<int, const std::vector<double>&, const std::vector<double>&, int>(), py::arg("n"),
           py::arg("hold_kp"), py::arg("hold_kd"), py::arg("capacity_ticks"))
      .def("load", [](BenchMode& b, int joint, double kp, double kd, std::vector<double> q, std::vector<double> dq,
                      std::vector<double> tau_ff) {
        BenchProgram p;
        p.joint = joint;
        p.kp = kp;
        p.kd = kd;
        p.q = std::move(q);
        p.dq = std::move(dq);
        p.tau_ff = std::move(tau_ff);
        b.load(p);
      }, py::arg("joint"), py::arg("kp"), py::arg("kd"), py::arg("q"), py::arg("dq"), py::arg("tau_ff"),
         "a program for one joint (per tick: position target, velocity target, feed-forward torque); not while one plays")
      .def("start", &BenchMode::start, "play the loaded program from the next tick (the mode must be active)")
      .def("abort", &BenchMode::abort, "stop the program at the next tick; the joint holds its last target")
      .def_property_readonly("state", [](const BenchMode& b) { return std::string(bench_state_name(b.state())); })
      .def_property_readonly("progress", &BenchMode::progress)
      .def_property_readonly("capacity_ticks", &BenchMode::capacity_ticks)
      .def_property_readonly("hold_pose", [](const BenchMode& b) { return b.hold_pose(); })
      .def("trace", [](const BenchMode& b) {
        const BenchTrace t = b.trace();
        py::dict d;
        d["n"] = t.n;
        d["ticks"] = t.ticks;
        d["joint"] = t.joint;
        d["aborted"] = t.aborted;
        d["stamp_ns"] = rows(t.stamp_ns, t.ticks, 0);
        d["seq"] = rows(t.seq, t.ticks, 0);
        d["q"] = rows(t.q, t.ticks, t.n);
        d["dq"] = rows(t.dq, t.ticks, t.n);
        d["tau"] = rows(t.tau, t.ticks, t.n);
        d["temp_c"] = rows(t.temp_c, t.ticks, t.n);
        d["gyro"] = rows(t.gyro, t.ticks, 3);
        d["acc"] = rows(t.acc, t.ticks, 3);
        d["quat"] = rows(t.quat, t.ticks, 4);
        d["cmd_q"] = rows(t.cmd_q, t.ticks, 0);
        d["cmd_dq"] = rows(t.cmd_dq, t.ticks, 0);
        d["cmd_tau_ff"] = rows(t.cmd_tau_ff, t.ticks, 0);
        return d;
      }, "the finished program's samples: stamp_ns, seq, q/dq/tau/temp_c [ticks, n], gyro/acc [ticks, 3], "
         "quat [ticks, 4], cmd_q/cmd_dq/cmd_tau_ff [ticks]");
}

}  // namespace vertebra::bindings
