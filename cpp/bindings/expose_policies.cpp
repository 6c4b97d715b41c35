// vertebra._rt bindings: the action-chunk scheduler and its attachment to a loop.
#include "bindings/common.hpp"

#include "core/chunk_scheduler.hpp"
#include "loop/rt_loop.hpp"

namespace vertebra::bindings {

void expose_policies(py::module_& m) {
  py::class_<ChunkScheduler, std::shared_ptr<ChunkScheduler>>(m, "ChunkScheduler",
      "time-stamped action chunks -> one target per tick (cpp/core/chunk_scheduler.hpp)")
      .def(py::init([](int dim, const std::string& mode, double prefix_s, double blend_s, double ensemble_decay) {
        ChunkSchedulerConfig c;
        c.dim = dim;
        if (mode == "keep_prefix") c.mode = MergeMode::kKeepPrefix;
        else if (mode == "ensemble") c.mode = MergeMode::kTemporalEnsemble;
        else throw std::invalid_argument("ChunkScheduler: unknown mode '" + mode + "'; modes are: keep_prefix, ensemble");
        c.prefix_s = prefix_s;
        c.blend_s = blend_s;
        c.ensemble_decay = ensemble_decay;
        return std::make_shared<ChunkScheduler>(c);
      }), py::arg("dim"), py::arg("mode") = "keep_prefix", py::arg("prefix_s") = 0.0, py::arg("blend_s") = 0.1,
          py::arg("ensemble_decay") = 0.1)
      .def("push", [](ChunkScheduler& cs, int64_t t0_ns, int64_t dt_ns,
                      py::array_t<double, py::array::c_style | py::array::forcecast> a) {
        if (a.ndim() != 2) throw std::invalid_argument("push: actions must be a [steps, dim] array");
        const int steps = static_cast<int>(a.shape(0)), dim = static_cast<int>(a.shape(1));
        if (dim != cs.config().dim)
          throw std::invalid_argument("push: chunk has " + std::to_string(dim) + " values per action, the scheduler takes " +
                                      std::to_string(cs.config().dim) + " values per action");
        if (steps < 1 || steps > kMaxChunkSteps)
          throw std::invalid_argument("push: a chunk has 1.." + std::to_string(kMaxChunkSteps) + " actions, found " +
                                      std::to_string(steps));
        if (dt_ns <= 0) throw std::invalid_argument("push: dt_ns must be > 0");
        auto c = std::make_unique<ActionChunk>();
        c->t0_ns = t0_ns;
        c->dt_ns = dt_ns;
        c->steps = steps;
        c->dim = dim;
        std::copy(a.data(), a.data() + steps * dim, c->a.begin());
        py::gil_scoped_release release;
        return cs.push(*c);
      }, py::arg("t0_ns"), py::arg("dt_ns"), py::arg("actions"),
         "queue a chunk: actions[k] is for time t0_ns + k*dt_ns (driver clock); returns its seq")
      .def("sample", [](ChunkScheduler& cs, int64_t now_ns) {
        std::vector<double> out(cs.config().dim, NAN);
        const Status st = cs.sample(now_ns, out.data());
        return py::make_tuple(status_name(st), arr(out.data(), cs.config().dim));
      }, py::arg("now_ns"), "tests only (the loop samples it when attached): (status, target)")
      .def("reset", &ChunkScheduler::reset)
      .def("status", [](const ChunkScheduler& cs) { return chunk_status_dict(cs.status()); });

  m.def("set_chunk_scheduler", [](RtLoop& l, std::shared_ptr<ChunkScheduler> s, const std::string& mode,
                                   const std::vector<std::string>& target_names) {
    if (mode == "joints") {
      if (!target_names.empty())
        throw std::invalid_argument("set_chunk_scheduler: joint-target chunks are in motor order; target_names is for a "
                                    "mode's task targets");
      l.set_chunk_scheduler(std::move(s));
    } else {
      l.set_chunk_scheduler(std::move(s), mode, target_names);
    }
  }, py::arg("loop"), py::arg("scheduler"), py::arg("mode") = "joints", py::arg("target_names") = std::vector<std::string>{},
     "configuration time: attach an action-chunk scheduler. mode='joints': chunks are joint targets (motor order). "
     "Else the name of a registered mode with a target sink (e.g. 'wbc'): target_names[k] names the task target column k "
     "drives (a policy's action names), resolved by name now; an unknown name is refused listing the valid ones");
}

}  // namespace vertebra::bindings
