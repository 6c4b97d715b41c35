// Shared by the bindings files (one expose_*.cpp per area, as pinocchio's
// bindings/python/algorithm/expose-*.cpp): conversions between C++ values and Python objects.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "core/chunk_scheduler.hpp"
#include "core/types.hpp"
#include "estimation/estimator.hpp"
#include "loop/loop_stats.hpp"
#include "safety/safety.hpp"

namespace vertebra::bindings {

namespace py = pybind11;

py::array_t<double> arr(const double* p, int n);
JointArray to_joint_array(const std::vector<double>& v, const char* what);
py::dict state_dict(const State& s);
py::dict command_dict(const Command& c);
py::dict histogram_dict(const LatencyHistogram& h);
py::list fault_names(uint64_t mask);
FaultId fault_by_name(const std::string& name);
Response response_by_name(const std::string& name);
py::dict limiter_counts_dict(const LimiterCounts& c);
py::dict chunk_status_dict(const SchedulerStatus& s);
py::dict estimate_dict(const Estimate& e);
Command command_from_dict(int n, py::dict d);
State state_from_dict(int n, py::dict state);

// A mode given from Python as a _rt.Mode or its name (built-in or registered); throws listing the names.
ModeId mode_from_py(py::handle mode);

#if VERTEBRA_WITH_DDS
}  // namespace vertebra::bindings
namespace vertebra::unitree { struct RemoteState; }
namespace vertebra::bindings {
py::dict remote_dict(const unitree::RemoteState& r);  // the wireless remote (expose_drivers.cpp)
#endif

// One function per area; module.cpp calls them in dependency order.
void expose_core(py::module_& m);
void expose_safety(py::module_& m);
void expose_drivers(py::module_& m);
void expose_loop(py::module_& m);
void expose_policies(py::module_& m);
void expose_wbc(py::module_& m);
void expose_testing(py::module_& m);

}  // namespace vertebra::bindings
