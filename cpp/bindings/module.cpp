// vertebra._rt: Python bindings of the C++ real-time core, one file per area (expose_*.cpp).
// Every call that may wait or run ticks releases the GIL; values cross as numpy arrays/dicts.
#include "bindings/common.hpp"

namespace py = pybind11;
namespace vertebra::bindings { void expose_dds(py::module_& m); }  // expose_dds.cpp (DDS tools)
namespace vertebra::bindings { void expose_estimation(py::module_& m); }  // expose_estimation.cpp
namespace vertebra::bindings { void expose_guard(py::module_& m); }  // expose_guard.cpp (heartbeat, guard)
namespace vertebra::bindings { void expose_hil(py::module_& m); }  // expose_hil.cpp (the bench harness mode)
namespace vertebra::bindings { void expose_record(py::module_& m); }  // expose_record.cpp (the recorder's ring)
namespace vertebra::bindings { void expose_locomotion(py::module_& m); }  // expose_locomotion.cpp (the walking pattern)

PYBIND11_MODULE(_rt, m) {
  m.doc() = "Vertebra real-time core (C++): robot model, real-time loop, controller modes, drivers.";
  m.attr("MAX_JOINTS") = vertebra::kMaxJoints;
  vertebra::bindings::expose_core(m);
  vertebra::bindings::expose_safety(m);
  vertebra::bindings::expose_drivers(m);
  vertebra::bindings::expose_dds(m);
  vertebra::bindings::expose_estimation(m);
  vertebra::bindings::expose_loop(m);
  vertebra::bindings::expose_guard(m);  // after loop and drivers: adds to RtLoop and UnitreeSimBridge
  vertebra::bindings::expose_hil(m);
  vertebra::bindings::expose_record(m);  // after loop: adds to RtLoop
  vertebra::bindings::expose_policies(m);
  vertebra::bindings::expose_wbc(m);
  vertebra::bindings::expose_locomotion(m);
  vertebra::bindings::expose_testing(m);
}
