// The Unitree G1 / Go2 over DDS (rt/lowcmd, rt/lowstate): the driver a real robot runs with, and
// the one that talks to `vertebra sim-bridge`.
//
// Reading: Cyclone's receive thread takes every rt/lowstate sample, checks its CRC (a bad one is
// counted and dropped, so persistent corruption becomes state loss in the supervisor) and stores
// the decoded State in a seqlock; read() on the tick copies the newest one (no blocking), or, in
// lockstep (the bridge advances one control period per command), waits for the answer to the last
// write (a 100 µs poll, then a condition variable).
// Writing: write() builds a fresh zeroed LowCmd_ (G1: mode_machine echoed from the last state) and
// seals its CRC on the tick. In real time a publisher thread sends it (dds_write: serialisation and
// the UDP send stay off the tick, which only hands the frame over, newest wins, without a system
// call: the publisher wakes shortly before each write is due and watches for it); in lockstep the
// tick sends it itself (the loop waits for the answer anyway).
// Lifecycle: configure() joins the DDS domain (network configuration generated from the
// interface) and waits for the robot's state; deactivate() hands the motors back damped (kd only)
// before it returns. activate() takes the motors only when nobody else commands them:
//  1. Unitree's built-in motion service: it asks the motion_switcher service (CheckMode, RPC over
//     DDS, motion_switcher.hpp) and watches rt/sportmodestate (published while that service runs).
//     An active service, or a publisher of rt/sportmodestate, refuses activation with how to
//     release it, unless release_motion_service is set: then activate() sends ReleaseMode and waits
//     until CheckMode names no mode and rt/sportmodestate has no publisher. No answer within
//     motion_service_timeout_s means no service (a robot or bridge without one): counted, not an error.
//  2. Another rt/lowcmd writer (a second controller): refused. The guard's writer (`vertebra
//     guard`, dds_guard.hpp) is not another controller: it exists from the guard's start, silent
//     while it watches, and carries QoS user_data "vertebra-guard/1 <heartbeat name>"
//     (kGuardUserDataPrefix). It is not counted; instead activate() opens that heartbeat segment and
//     refuses while the guard holds the robot (state holding, guard process alive and beating).
// While active, read() sets State::lowcmd_conflict when another participant writes rt/lowcmd or
// publishes rt/sportmodestate (the motion service back): DDS discovery, read from an atomic the
// subscription-matched listener keeps (no lock, no blocking; the listener recounts from the
// matched publications' user_data, on Cyclone's thread); the supervisor raises lowcmd_conflict.
// The guard's writer never counts here: a guard holding the robot is the loop's business, which
// reads it from the heartbeat segment every tick (RtLoop: lowcmd_conflict, and no write).
// counters().lowcmd_writers counts the other writers, the guard's not included.
// Go2 foot forces (LowState_.foot_force) arrive in State::foot_force (has_foot_force); the G1 has none.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>


#include "core/exchange.hpp"
#include "drivers/driver.hpp"
#include "drivers/unitree/dds.hpp"
#include "drivers/unitree/motion_switcher.hpp"
#include "drivers/unitree/unitree_codec.hpp"

namespace vertebra::unitree {

struct UnitreeDdsOptions {
  Messages messages = Messages::kHg;  // kHg: G1 (unitree_hg), kGo: Go2 (unitree_go)
  int domain_id = 0;
  std::string network_interface;      // "" : Cyclone chooses; "lo": one machine
  std::string lowcmd_topic = "rt/lowcmd";
  std::string lowstate_topic = "rt/lowstate";
  std::vector<int> motors;            // the motor slot of each joint, in joint order
  int mode_pr = 0;                    // G1 ankle mode (0 PR)
  // The wireless-remote buttons that together are an e-stop, a mask of the bitfield in
  // wireless_remote bytes 2-3 (unitree_sdk2 example unitree_joystick.h, xKeySwitchUnion: R1 bit 0,
  // L1 1, start 2, select 3, R2 4, L2 5, F1 6, F2 7, A 8, B 9, X 10, Y 11, up 12, right 13,
  // down 14, left 15). Default L2 + B (0x0220), the combination Unitree's own software uses for
  // damping. 0: no remote e-stop.
  int estop_buttons = 0x0220;
  bool lockstep = false;              // read() waits for the state that answers the last command
  double state_timeout_s = 2.0;       // configure() waits this long for the first state
  double lockstep_timeout_s = 1.0;
  std::string sportmodestate_topic = "rt/sportmodestate";
  // activate(): how long to wait for motion_switcher's CheckMode answer (no answer: no service).
  double motion_service_timeout_s = 0.5;
  // An explicit operator choice, off by default: activate() releases Unitree's built-in motion
  // service itself (ReleaseMode) instead of refusing. The robot stops standing or walking and its
  // motors go limp or damped, so it must be in its hoist or lying down.
  bool release_motion_service = false;
  double release_timeout_s = 5.0;     // how long the release may take to show (CheckMode, discovery)
};

struct DdsCounters {
  uint64_t states = 0, crc_errors = 0, commands = 0, write_errors = 0, lockstep_timeouts = 0;
  int lowcmd_writers = 0;          // other participants publishing rt/lowcmd now (a guard's writer not counted)
  int sportmodestate_writers = 0;  // publishers of rt/sportmodestate now (the motion service)
  uint64_t sportmodestates = 0;    // rt/sportmodestate samples seen
  // motion_switcher, as the last activate() found it: answered (false: no service answered
  // CheckMode within motion_service_timeout_s), the mode it named ("" released), and whether
  // Vertebra released it (release_motion_service).
  bool motion_service_answered = false;
  std::string motion_service_mode;
  bool motion_service_released = false;
  uint64_t rpc_requests = 0;       // motion_switcher requests sent (resends included)
  bool lowcmd_conflict = false;    // what read() reports now
};

class UnitreeDdsDriver final : public Driver {
 public:
  explicit UnitreeDdsDriver(UnitreeDdsOptions opt);
  ~UnitreeDdsDriver() override;
  Status read(State& out) override;
  Status write(const Command& cmd) override;
  int64_t now_ns() const override;
  bool simulated() const override { return opt_.lockstep; }  // lockstep only against the bridge
  std::string name() const override { return "unitree_dds"; }
  DdsCounters counters() const;
  RemoteState remote() const;
  // The foot forces of the newest state read on the tick (Go2; zeros on a G1). Tests and tools.
  const std::array<double, 4>& foot_force() const { return foot_force_; }

 protected:
  void on_configure(const DriverInit& init) override;
  void on_activate() override;
  void on_deactivate() override;
  void on_cleanup() override;

 private:
  struct Sample {
    State state;
    RemoteState remote;
    std::array<double, 4> foot_force{};
    uint8_t mode_machine = 0;
  };
  void on_state(const void* msg);
  void publish(const Command& cmd);
  void check_motion_service();
  void check_guard(const std::string& heartbeat);  // activate(): throws while that guard holds
  bool lowcmd_conflict_now() const;
  UnitreeDdsOptions opt_;
  MotorMap map_;
  std::vector<double> damping_kd_;
  std::unique_ptr<DdsParticipant> pp_;
  std::unique_ptr<DdsWriter> writer_;
  std::unique_ptr<DdsReader> reader_, cmd_watch_, sport_watch_;
  std::unique_ptr<RpcClient> motion_switcher_;
  SeqLock<Sample> latest_;
  std::atomic<uint64_t> states_{0}, crc_errors_{0}, commands_{0}, write_errors_{0}, lockstep_timeouts_{0};
  std::atomic<uint64_t> sportmodestates_{0};
  bool service_answered_ = false, service_released_ = false;  // configuration time (activate)
  std::string service_mode_;
  std::atomic<int64_t> stamp_ns_{0};
  std::mutex answer_mutex_;               // lockstep only: read() waits for the answer to its write
  std::condition_variable answer_cv_;
  uint64_t last_seen_ = 0, written_at_ = 0;  // tick-owned: the state version read / current when last written
  Sample tick_sample_{};                       // tick-owned scratch (no allocation)
  std::array<double, 4> foot_force_{};
  // The tick never touches the network: write() seals the frame and hands it to a publisher thread
  // (newest wins) that calls dds_write (Cyclone's serialisation and the UDP send).
  struct Frame {
    HgLowCmd hg;
    GoLowCmd go;
  };
  void start_publisher();
  void stop_publisher();
  void publish_frame(const Frame& f);
  Frame frame_{};                 // tick-owned scratch
  TripleBuffer<Frame> outbox_;
  std::atomic<int64_t> last_write_ns_{0};  // steady_ns() of the tick's last hand-over
  int64_t period_ns_ = 2'000'000;           // the control period (configure)
  std::atomic<bool> publishing_{false};
  std::thread publisher_;
};

}  // namespace vertebra::unitree
