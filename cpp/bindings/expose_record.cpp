// vertebra._rt bindings: the recorder's tick side (loop/record_ring.hpp). The writer thread
// (runtime/recorder.py) drains the ring into a numpy buffer with the GIL released.
#include "bindings/common.hpp"

#include "loop/record_ring.hpp"
#include "loop/rt_loop.hpp"

namespace vertebra::bindings {

void expose_record(py::module_& m) {
  m.attr("TICK_RECORD_BYTES") = sizeof(TickRecord);
  py::dict flags;  // TickRecordFlags by name (runtime/record_schema.py mirrors them; a test compares)
  flags["enabled"] = static_cast<uint32_t>(kRecEnabled);
  flags["base_truth"] = static_cast<uint32_t>(kRecBaseTruth);
  flags["estimate_used"] = static_cast<uint32_t>(kRecEstimateUsed);
  flags["estimate_valid"] = static_cast<uint32_t>(kRecEstimateValid);
  flags["chunks_starved"] = static_cast<uint32_t>(kRecChunksStarved);
  flags["diagnostics"] = static_cast<uint32_t>(kRecDiagnostics);
  flags["motor_temp"] = static_cast<uint32_t>(kRecMotorTemp);
  flags["foot_force"] = static_cast<uint32_t>(kRecFootForce);
  flags["remote_estop"] = static_cast<uint32_t>(kRecRemoteEstop);
  flags["stream_expected"] = static_cast<uint32_t>(kRecStreamExpected);
  m.attr("TICK_RECORD_FLAGS") = flags;
  m.def("tick_record_fields", [] {
    py::list out;
    for (const RecordField& f : tick_record_fields())
      out.append(py::make_tuple(f.name, f.dtype, py::tuple(py::cast(f.shape)), f.offset));
    return out;
  }, "the TickRecord layout: (name, numpy dtype, shape, byte offset) per field, in order; the stride is "
     "TICK_RECORD_BYTES");

  py::class_<RecordRing, std::shared_ptr<RecordRing>>(m, "RecordRing",
      "the recorder's lock-free ring (cpp/loop/record_ring.hpp): the tick fills one record per recorded tick; one "
      "consumer drains it")
      .def(py::init<size_t>(), py::arg("capacity"), "capacity in records (rounded up to a power of two)")
      .def_property_readonly("capacity", &RecordRing::capacity)
      .def_property_readonly("size", &RecordRing::size, "records waiting")
      .def_property_readonly("pushed", &RecordRing::pushed, "records the tick wrote")
      .def_property_readonly("lost", &RecordRing::lost, "records lost to a full ring (each gap is reported in the next record)")
      .def("claim", &RecordRing::claim, "become the ring's one consumer (False: another holds it)")
      .def("release", &RecordRing::release)
      .def("pop_into", [](RecordRing& r, py::buffer buf) {
        py::buffer_info info = buf.request(true);
        const size_t bytes = static_cast<size_t>(info.size * info.itemsize);
        if (bytes % sizeof(TickRecord) != 0 || (info.ndim > 1 && !(info.strides.back() == info.itemsize)))
          throw std::invalid_argument("RecordRing.pop_into: a writable contiguous buffer of a whole number of records (" +
                                      std::to_string(sizeof(TickRecord)) + " bytes each) expected; found " +
                                      std::to_string(bytes) + " bytes");
        auto* out = static_cast<TickRecord*>(info.ptr);
        const size_t max = bytes / sizeof(TickRecord);
        py::gil_scoped_release release;
        return r.pop_into(out, max);
      }, py::arg("buffer"), "copy up to len(buffer) records into it (oldest first); returns how many");

  auto loop = py::reinterpret_borrow<py::class_<RtLoop, std::shared_ptr<RtLoop>>>(m.attr("RtLoop"));
  loop.def("set_record_ring", &RtLoop::set_record_ring, py::arg("ring"), py::arg("every_ticks") = 1,
           "configuration time: record every `every_ticks`-th tick into `ring` (None removes it)")
      .def_property_readonly("record_ring", &RtLoop::record_ring)
      .def("record_cost", [](const RtLoop& l) { return histogram_dict(l.record_cost()); },
           "what filling each tick's record cost the tick (µs histogram)");
}

}  // namespace vertebra::bindings
