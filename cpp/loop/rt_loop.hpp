// RtLoop: the real-time control loop. One tick is
//     driver.read -> estimate -> take Python's request/targets -> mode.update -> limiter -> driver.write
//     -> publish snapshot -> statistics
// and nothing else; Python is never on this path (it talks through the lock-free buffers of
// exchange.hpp, with the GIL released by the bindings).
//
// Clock modes (one code path):
//  - real time: a dedicated thread sleeps to absolute deadlines (clock_nanosleep TIMER_ABSTIME on
//    CLOCK_MONOTONIC). It asks for SCHED_FIFO, mlockall, CPU affinity and a 1 ns timer slack and
//    reports which of these the OS granted (rt_report()).
//  - lockstep: run_ticks(n) runs n ticks back to back on the calling thread; a simulated driver
//    advances its world one control period per write, so results are deterministic.
//
// Safety: every decision (mode table, monitors, fault responses, the command limiter, events) is
// the Supervisor's (cpp/safety/supervisor.hpp); the loop feeds it the state, the operator's
// inputs and its own timing, and writes the command it returns.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/chunk_scheduler.hpp"
#include "core/exchange.hpp"
#include "loop/loop_stats.hpp"
#include "loop/record_ring.hpp"
#include "core/modes.hpp"
#include "drivers/driver.hpp"
#include "estimation/estimator.hpp"
#include "safety/heartbeat.hpp"
#include "safety/supervisor.hpp"

namespace vertebra {

struct LoopConfig {
  double rate_hz = 500.0;
  bool lockstep = false;
  bool realtime_priority = true;  // try SCHED_FIFO
  int fifo_priority = 80;
  int cpu = -1;                   // pin the loop thread to this CPU (-1: leave it)
  bool lock_memory = true;        // try mlockall
  // Wake this early and spin to the deadline: trades ~5% of a core at 500 Hz (100 µs of each
  // 2 ms period) for wake-ups within a few µs instead of the kernel timer's tens of µs.
  int64_t spin_ns = 100'000;
};

// What the OS granted when the real-time thread started.
struct RtReport {
  bool started = false;
  bool sched_fifo = false;
  bool mlockall = false;
  bool affinity = false;
  bool timer_slack = false;
  std::string notes;  // why something was not granted
};

// Published every tick; readable from any thread.
struct Snapshot {
  uint64_t tick = 0;
  int64_t driver_time_ns = 0;
  State state{};
  Command command{};
  SupervisorStatus safety{};               // safety mode, controller, faults, clamps, requests
  uint64_t targets_seq = 0;                 // last targets the loop took
  SchedulerStatus chunks{};                 // when a chunk scheduler is attached
  uint64_t clamp_ticks = 0;                 // ticks in which the limiter changed anything
  Status last_read = Status::kOk, last_write = Status::kOk;
  uint64_t events_dropped = 0;
  // The state estimator's output (when the loop runs one) and whether the controller and the
  // monitors used it in place of the driver's base (`state` keeps what the driver read).
  Estimate estimate{};
  bool estimate_used = false;
  Status last_estimate = Status::kOk;
};

class RtLoop {
 public:
  RtLoop(std::shared_ptr<Driver> driver, const RobotParams& params, const LoopConfig& cfg,
         const SafetyConfig& safety = SafetyConfig());
  ~RtLoop();
  RtLoop(const RtLoop&) = delete;
  RtLoop& operator=(const RtLoop&) = delete;

  // Real-time mode.
  void start();
  void stop();
  bool running() const { return running_.load(std::memory_order_acquire); }
  RtReport rt_report() const;

  // Lockstep mode: run n ticks now on the calling thread. Returns ticks run.
  uint64_t run_ticks(uint64_t n);

  // From Python (any thread). Writers are serialised by a mutex the tick never takes.
  // request_mode returns the sequence number assigned (answered in the snapshot). Requests are
  // latest-wins: one superseded before a tick took it is never answered.
  uint64_t request_mode(const ModeRequest& req);
  void set_targets(const Targets& t);
  // Operator inputs (any thread), each taken by the next tick and never lost to a later request.
  void reset_faults() { reset_faults_.store(true, std::memory_order_release); }
  void estop() { estop_.store(true, std::memory_order_release); }
  void request_stop() { stop_.store(true, std::memory_order_release); }
  void set_enabled(bool on) { (on ? enable_ : disable_).store(true, std::memory_order_release); }
  std::shared_ptr<EventRing> event_ring() const { return ring_; }
  const SafetyConfig& safety_config() const { return supervisor_.config(); }
  const CommandLimiter& limiter() const { return supervisor_.limiter(); }
  void snapshot(Snapshot& out) const { snapshot_.load(out); }

  const LatencyHistogram& lateness() const { return lateness_; }
  const LatencyHistogram& compute() const { return compute_; }
  uint64_t overruns() const { return overruns_.load(std::memory_order_relaxed); }
  uint64_t ticks() const { return ticks_.load(std::memory_order_relaxed); }
  double rate_hz() const { return cfg_.rate_hz; }
  void reset_stats();
  const RobotParams& params() const { return params_; }
  // Configuration time (before the loop first ticks; throws after): register a controller mode
  // under `name`, requestable like the built-in ones (ModeRequest::mode = the returned id) and run
  // in ACTIVE. One class and one registration add a controller (a locomotion mode, a test's mode).
  // A name already registered on this loop is refused, naming the registered ones.
  ModeId register_mode(const std::string& name, std::shared_ptr<ControllerMode> mode);
  // The mode registered under `name` on this loop, or nullptr.
  std::shared_ptr<ControllerMode> mode(const std::string& name) const;
  std::vector<std::string> mode_names() const;  // built-in and registered on this loop
  // Configuration time: action chunks.
  //  - joint targets: each tick the scheduler's sample for now becomes the joint targets (default
  //    kp/kd), whose `seq` advances on every tick the scheduler had a target, so the supervisor's
  //    starvation monitor sees the time since the chunks ran out. The scheduler's dim must be n.
  //  - task targets: the sample is streamed to the target sink of the registered mode `mode_name`;
  //    `target_names[k]` names the sink channel column k drives (a policy's action names, in its
  //    column order). Every name must be one of the sink's (unknown ones are refused, listing the
  //    valid ones), none twice, one per column.
  void set_chunk_scheduler(std::shared_ptr<ChunkScheduler> s);
  void set_chunk_scheduler(std::shared_ptr<ChunkScheduler> s, const std::string& mode_name,
                           const std::vector<std::string>& target_names);
  std::shared_ptr<ChunkScheduler> chunk_scheduler() const { return chunks_; }
  // Configuration time: run `est` on every tick after the read. The controller and the safety
  // monitors then see its base estimate whenever the driver has no base truth (a real robot), and
  // always when `always` is set (a simulator run "as on hardware": truth is kept for reports only).
  void set_estimator(std::shared_ptr<StateEstimator> est, bool always);
  std::shared_ptr<StateEstimator> estimator() const { return estimator_; }
  const LoopConfig& config() const { return cfg_; }
  // Configuration time, real time only: after each tick's driver write, write the guard's heartbeat
  // (safety/heartbeat.hpp: tick, write time, safety mode, standing, the command; a few atomic
  // stores). start() attaches this process as the segment's runtime, stop() detaches it (a clean
  // close: the guard does not take over). A lockstep loop is refused: it ticks only when asked, so
  // its heartbeat would stop between calls. nullptr removes it.
  // The guard's side of the segment is read too, every tick (Heartbeat::guard_holding: two atomic
  // loads): while the guard holds the robot, the tick reports State::lowcmd_conflict (the
  // supervisor's latched, damped fault; arming and reset refused while it lasts) and withholds its
  // driver write (the guard alone commands the motors); start() throws while it holds.
  void set_heartbeat(std::shared_ptr<Heartbeat> hb);
  std::shared_ptr<Heartbeat> heartbeat() const { return hb_; }
  // Configuration time: the recorder (loop/record_ring.hpp). After each tick's publish, every
  // `every_ticks`-th tick fills one TickRecord in place in `ring` (the state the driver read, the
  // base the controller saw, the command written, the safety status, the chunk scheduler's and the
  // active controller's diagnostics, the loop's timing): ~2 KB of stores and two clock reads, never
  // a wait (a full ring loses the record and says so in the next). record_cost() times that step.
  // nullptr removes it.
  void set_record_ring(std::shared_ptr<RecordRing> ring, int every_ticks = 1);
  std::shared_ptr<RecordRing> record_ring() const { return rec_; }
  const LatencyHistogram& record_cost() const { return record_cost_; }

 private:
  void tick();
  void thread_main();
  void record(uint64_t t, const State& seen);  // [tick]

  std::shared_ptr<Driver> driver_;
  RobotParams params_;
  LoopConfig cfg_;
  int64_t period_ns_;
  double dt_s_;

  // Tick-owned state.
  State state_{};
  Command cmd_{};
  Targets targets_{};
  OperatorInputs inputs_{};
  void check_configurable(const char* what) const;
  void check_driver_active(const char* what) const;
  std::shared_ptr<ChunkScheduler> chunks_;
  std::shared_ptr<StateEstimator> estimator_;
  std::shared_ptr<Heartbeat> hb_;
  std::shared_ptr<RecordRing> rec_;
  int rec_every_ = 1;
  int64_t lateness_ns_ = 0;  // this tick's wake-up lateness (real time; 0 in lockstep)
  ControllerDiagnostics diag_{};
  bool estimate_always_ = false;
  State ctl_state_{};      // what the controller and monitors see (the estimate's base, when used)
  ContactPlan plan_{};
  TargetSink* chunk_sink_ = nullptr;            // task targets: where the samples go (else joints)
  std::shared_ptr<ControllerMode> chunk_mode_;  // keeps the sink's mode alive
  std::array<int, kMaxActionDim> chunk_channels_{};
  std::vector<std::pair<std::string, std::shared_ptr<ControllerMode>>> registered_;
  std::array<double, kMaxActionDim> chunk_out_{};
  bool chunk_sampled_ = false;  // this tick's chunk sample is valid (the recorder's policy action)
  uint64_t chunk_ticks_ = 0;
  std::shared_ptr<EventRing> ring_;
  Supervisor supervisor_;
  int64_t last_tick_ns_ = 0;
  Status last_write_ = Status::kOk;
  Snapshot snap_{};

  // Exchange.
  TripleBuffer<ModeRequest> requests_;
  TripleBuffer<Targets> targets_in_;
  SeqLock<Snapshot> snapshot_;
  std::mutex writer_mutex_;        // serialises Python-side writers (never taken on the tick)
  uint64_t next_request_seq_ = 1;  // guarded by writer_mutex_
  std::atomic<bool> ticking_{false};  // lockstep: refuses concurrent run_ticks()
  std::atomic<bool> reset_faults_{false}, estop_{false}, stop_{false};
  std::atomic<bool> enable_{false}, disable_{false};  // separate latches: a disable is never lost

  // Statistics.
  LatencyHistogram lateness_, compute_, record_cost_;
  std::atomic<uint64_t> overruns_{0}, ticks_{0};

  // Thread.
  mutable std::mutex lifecycle_mutex_;  // start/stop/rt_report (never taken on the tick)
  std::atomic<bool> running_{false};
  std::thread thread_;
  RtReport report_, pending_report_;
  std::atomic<bool> reported_{false};
};

}  // namespace vertebra
