// BenchMode: the controller mode of `vertebra hil run` (the bench-rig harness, tools/hil/). It holds
// every joint at the pose it entered with and plays a *program* on top: per tick, a position target,
// a velocity target and a feed-forward torque for one joint (a chirp, a step, a triangle sweep, a
// torque doublet: whatever the harness computed), with that joint's own gains. Every tick it plays
// it also records a *trace* sample: the state it was given (q, dq, tau of every joint, the IMU, motor
// temperatures) and what it commanded for the program's joint. The harness reads the trace after the
// program ended and identifies the motor from it, off the tick.
//
// Why a mode and not targets streamed from Python: the program's samples must reach the motors at
// tick rate, exactly (a chirp's phase, a step's edge), and the trace must be the state the tick saw;
// Python is never on the tick path (DESIGN.md). Programs and traces live in buffers allocated once,
// at construction (capacity_ticks samples).
//
// Lifecycle of a program (one at a time; any thread may call the non-tick functions):
//   load()  -- while no program plays (state kIdle or kDone): copies the program in, state kLoaded;
//              throws std::invalid_argument on a bad program (sizes, a joint out of range, non-finite
//              values, more samples than the capacity) or std::logic_error while one plays.
//   start() -- kLoaded -> kArmed; the next update() while the mode is active plays sample 0.
//   update() [tick] plays sample k, records trace sample k; after the last sample: kDone, and the
//              program's joint holds the last sample's position target from then on (a program
//              should end where the hold pose is).
//   trace() -- after kDone: copies of the recorded samples (the harness's numpy arrays).
//   abort() -- any state: the program stops at the next tick; the joint holds where the last
//              played sample's target was (state kDone, `aborted` set).
// Entering the mode (the supervisor's request, in ACTIVE) captures the hold pose (entry_pose(): no
// jump from the previous command) and aborts any program left armed by an earlier entry: a program
// plays only after a start() made while this entry is active.
// [tick] enter() and update(): no allocation, no exceptions, no I/O.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "core/exchange.hpp"
#include "core/modes.hpp"

namespace vertebra {

enum class BenchState : int32_t { kIdle = 0, kLoaded = 1, kArmed = 2, kPlaying = 3, kDone = 4 };

// One program: `ticks` samples for joint `joint` (robot motor order), with gains kp, kd for it.
struct BenchProgram {
  int32_t joint = -1;
  double kp = 0, kd = 0;
  std::vector<double> q, dq, tau_ff;  // one value per tick (equal lengths)
};

// The recorded samples of a program, tick by tick (row-major [ticks][n] for the per-joint fields).
struct BenchTrace {
  int32_t n = 0, ticks = 0, joint = -1;
  bool aborted = false;
  std::vector<int64_t> stamp_ns;      // the state's stamp (driver clock)
  std::vector<uint64_t> seq;          // the state's sample counter (a repeat: no new sample that tick)
  std::vector<double> q, dq, tau, temp_c;  // [ticks][n]
  std::vector<double> gyro, acc;      // [ticks][3]
  std::vector<double> quat;           // [ticks][4] (w, x, y, z)
  std::vector<double> cmd_q, cmd_dq, cmd_tau_ff;  // [ticks]: the program joint's command
};

class BenchMode final : public ControllerMode {
 public:
  // hold_kp/hold_kd: the gains every joint is held with (robot motor order, n values; the
  // program's joint uses the program's). capacity_ticks: the longest program.
  BenchMode(int n, const std::vector<double>& hold_kp, const std::vector<double>& hold_kd, int capacity_ticks);

  Status enter(const RobotParams& p, const State& s, const Command& last, const Targets& t, const ModeRequest& req) override;
  Status update(const RobotParams& p, const State& s, const Targets& t, double dt, Command& out) override;
  double progress() const override;

  void load(const BenchProgram& prog);
  void start();
  void abort() { abort_.store(true, std::memory_order_release); }
  BenchState state() const { return state_.load(std::memory_order_acquire); }
  BenchTrace trace() const;
  int capacity_ticks() const { return capacity_; }
  // The pose held (captured on the last entry, and a finished program's last target; motor order).
  // Any thread: the tick publishes it through a seqlock.
  std::vector<double> hold_pose() const;

 private:
  int n_, capacity_;
  JointArray hold_kp_{}, hold_kd_{}, pose_{};
  // program (written by load() while idle/done, read by the tick while armed/playing)
  int32_t joint_ = -1, ticks_ = 0;
  double kp_ = 0, kd_ = 0;
  std::vector<double> q_, dq_, tau_;
  // trace (written by the tick while playing, read by trace() once done)
  std::vector<int64_t> stamp_;
  std::vector<uint64_t> seq_;
  std::vector<double> tq_, tdq_, ttau_, ttemp_, tgyro_, tacc_, tquat_;
  int32_t k_ = 0;
  bool aborted_ = false;
  double last_q_ = 0;
  std::atomic<BenchState> state_{BenchState::kIdle};
  std::atomic<bool> abort_{false};
  std::atomic<int32_t> played_{0};
  SeqLock<JointArray> published_pose_;  // pose_ as the tick last set it (hold_pose())
};

}  // namespace vertebra
