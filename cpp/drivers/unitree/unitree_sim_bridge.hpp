// `vertebra sim-bridge`: Vertebra's MuJoCo robot exposed over DDS as the real Unitree robot is:
// it publishes rt/lowstate (valid CRC) and takes rt/lowcmd, verifying its CRC and dropping a bad
// frame as the robot does (the previous command stays in force). The MuJoCo driver applies the
// motor-board law tau = tau_ff + kp (q* - q) + kd (dq* - dq) at every physics step, clamped to the
// effort limits; motor mode 0 and the Go2's PosStopF/VelStopF are honoured (decode_lowcmd).
// Real time: one control period per rate tick, with the newest command. Lockstep: one control
// period per command received, so tests over real DDS are deterministic on a loaded machine.
//
// Unitree's built-in motion service (motion_service): a real robot boots with its sport service
// commanding the motors, and a low-level controller must release it first. The bridge emulates
// what a controller sees of it: the motion_switcher RPC (rt/api/motion_switcher/request|response:
// CheckMode names the mode, SelectMode starts it, ReleaseMode stops it, Set/GetSilent keep a flag;
// motion_switcher.hpp), rt/sportmodestate published at sportmodestate_rate_hz while it is active
// (its writer deleted on release, so a watcher's discovery sees the publisher go), and every
// rt/lowcmd ignored while it is active (counted; in lockstep an ignored command steps nothing).
// It does not emulate the service's locomotion: the motors keep the command in force (limp at
// start). The bridge answers motion_switcher (unless motion_switcher is false) whether or not the
// service starts active.
//
// Hardware faults (bridge_faults.hpp: a reversed or offset motor, friction, a weak motor, motor
// heating, lost and corrupted states, command latency), all off by default: BridgeOptions::faults
// at construction, set_faults() while the bridge runs (taken under the stepping lock, so a change
// falls between two control periods). The simulator runs in the physical frame; commands are
// converted from the motor frame before it applies them and its state to the motor frame before
// it goes out (MotorFrame). Friction and effort limits are set on the simulator relative to its
// nominal values (MujocoDriver::nominal_joint_friction, nominal_effort_limit), so a healthy joint
// restores them. The random bus faults draw two numbers per state stepped, from `seed` (restarted
// by every set_faults), so a lockstep run is reproducible bit for bit; the idle republishing of
// lockstep (no command for 100 ms) is wall-clock driven and stays fault-free. Command latency in
// lockstep: a FIFO of round(command_latency_ms * rate_hz / 1000) received frames; in real time:
// commands applied once older than the latency (CommandDelay, sized at construction for
// kMaxCommandLatencyMs). The counters dropped_sent / corrupted_sent count random and counted
// (drop_states / corrupt_states) faults alike.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/exchange.hpp"
#include "drivers/mujoco_driver.hpp"
#include "drivers/unitree/bridge_faults.hpp"
#include "drivers/unitree/dds.hpp"
#include "drivers/unitree/motion_switcher.hpp"
#include "drivers/unitree/unitree_codec.hpp"

namespace vertebra::unitree {

struct BridgeOptions {
  Messages messages = Messages::kHg;
  int domain_id = 0;
  std::string network_interface;
  std::string lowcmd_topic = "rt/lowcmd";
  std::string lowstate_topic = "rt/lowstate";
  std::vector<int> motors;      // motor slot per joint of the simulated robot
  bool lockstep = false;
  double rate_hz = 500.0;       // real time: states per second
  int mode_machine = 0;         // G1: reported in LowState_ (the robot's model id)
  // The emulated built-in motion service starts active (the robot as it boots). Off: released.
  bool motion_service = false;
  std::string motion_service_mode = "normal";  // what CheckMode names while it is active
  std::string sportmodestate_topic = "rt/sportmodestate";
  double sportmodestate_rate_hz = 50.0;        // while the service is active
  bool motion_switcher = true;  // answer motion_switcher; false: no such service (an older robot or bridge)
  HardwareFaults faults;        // emulated hardware faults (none by default); set_faults() changes them
  MotorThermal motor_thermal;   // the motors' thermal model (off by default: constant temperature)
};

struct BridgeCounters {
  uint64_t commands = 0, crc_errors = 0, states = 0, corrupted_sent = 0, dropped_sent = 0;
  uint64_t ignored_commands = 0;  // valid rt/lowcmd received while the motion service was active
  uint64_t sportmodestates = 0, rpc_requests = 0;
  bool motion_service_active = false;
  std::string motion_service_mode;  // "" when released
};

// The command stream as the robot received it (valid rt/lowcmd frames, from every writer), since
// the last reset_command_stream(): what a takeover looks like from the motors' side. The first gap
// after a reset is measured from the newest command before it.
struct CommandStream {
  uint64_t samples = 0;           // valid commands received
  double max_gap_ms = 0;          // the largest gap between two consecutive ones
  int64_t max_gap_end_ns = 0;     // steady_ns() of the command that ended it
  double since_reset_s = 0;
  double last_age_ms = -1;        // since the newest one (-1: none since the reset)
};

class UnitreeSimBridge {
 public:
  // `sim`: a configured MujocoDriver; the bridge activates it.
  UnitreeSimBridge(std::shared_ptr<MujocoDriver> sim, BridgeOptions opt);
  ~UnitreeSimBridge();
  void start();
  void stop();
  BridgeCounters counters() const;
  void set_remote(const RemoteState& r);
  // Fault injection: the next n states go out with a wrong CRC / are not sent at all.
  void corrupt_states(int n) { corrupt_.store(n, std::memory_order_relaxed); }
  void drop_states(int n) { drop_.store(n, std::memory_order_relaxed); }
  // The emulated hardware faults (bridge_faults.hpp), any thread, before or after start(): checked
  // (std::invalid_argument naming the field), then in force from the next control period. The
  // random generator restarts from faults.seed.
  void set_faults(const HardwareFaults& faults);
  HardwareFaults faults() const;
  // The emulated motion service, as motion_switcher SelectMode / ReleaseMode set it (after start()).
  void select_motion_service(const std::string& mode);
  void release_motion_service();
  bool motion_service_active() const { return service_active_.load(std::memory_order_acquire); }
  // The received command stream (largest gap between consecutive valid commands), and the newest
  // valid command as decoded (per joint q, dq, kp, kd, tau_ff), for measurements and tests.
  CommandStream command_stream() const;
  void reset_command_stream();
  Command last_command() const;

 private:
  RpcAnswer on_motion_switcher(int64_t api_id, const std::string& parameter);
  void maybe_publish_sportmodestate();
  void on_command(const void* msg);
  void apply_faults(const HardwareFaults& f);  // step_mutex_ held
  void step_and_publish();                     // step_mutex_ held
  void publish_state(const State& s);
  void run_realtime();
  // LowState_.tick: the robot's milliseconds (the simulated time, as the boards count it).
  uint32_t tick_ms() const { return static_cast<uint32_t>(state_.stamp_ns / 1'000'000); }
  std::shared_ptr<MujocoDriver> sim_;
  BridgeOptions opt_;
  MotorMap map_;
  std::unique_ptr<DdsParticipant> pp_;
  std::unique_ptr<DdsWriter> writer_;
  std::unique_ptr<DdsReader> reader_;
  std::unique_ptr<RpcServer> motion_switcher_;
  mutable std::mutex service_mutex_;  // the service's state and its rt/sportmodestate writer
  std::unique_ptr<DdsWriter> sport_writer_;  // exists while the service is active
  std::string service_mode_;
  bool silent_ = false;
  GoSportModeState sport_{};
  int64_t last_sport_ns_ = 0;
  std::atomic<bool> service_active_{false};
  mutable std::mutex step_mutex_;    // the stepping threads (lockstep reader, real-time loop), the
                                     // idle republisher and set_faults
  TripleBuffer<Command> command_;    // newest valid command (real time)
  Command current_{};                // the command in force, motor frame (step_mutex_)
  Command physical_{};               // the command in force as the simulator applies it
  SeqLock<RemoteState> remote_;
  State state_{};                    // the simulator's (physical) state
  State reported_{};                 // state_ in the motor frame: what goes out
  // Hardware faults in force (step_mutex_).
  HardwareFaults faults_;
  MotorFrame frame_;
  BusFaultDice dice_;
  double drop_probability_ = 0, corrupt_probability_ = 0;
  size_t delay_depth_ = 0;                 // lockstep: FIFO depth
  std::atomic<int64_t> latency_ns_{0};     // real time
  std::mutex delay_mutex_;                 // real time: delay_ (receive thread and stepping loop)
  CommandDelay delay_;
  HgLowState hg_{};
  GoLowState go_{};
  uint32_t tick_ = 0;
  std::atomic<int> corrupt_{0}, drop_{0};
  std::atomic<uint64_t> commands_{0}, crc_errors_{0}, states_{0}, corrupted_sent_{0}, dropped_sent_{0};
  std::atomic<uint64_t> ignored_commands_{0}, sportmodestates_{0};
  std::atomic<int64_t> last_command_ns_{0};
  mutable std::mutex stream_mutex_;  // the stream statistics (the receive thread and the caller)
  int64_t stream_reset_ns_ = 0, stream_last_ns_ = 0, stream_max_gap_ns_ = 0, stream_max_end_ns_ = 0;
  uint64_t stream_samples_ = 0;
  Command last_valid_{};
  std::atomic<bool> running_{false};
  std::thread thread_;
};

}  // namespace vertebra::unitree
