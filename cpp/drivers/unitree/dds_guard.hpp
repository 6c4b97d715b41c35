// DdsGuard: the last line when the runtime itself dies (`vertebra guard`, its own process and
// systemd unit). It watches the heartbeat the runtime's real-time thread writes every tick
// (safety/heartbeat.hpp) and the runtime's process, and when either stops it takes over the
// robot's command channel: damping LowCmd_ frames on rt/lowcmd (kp 0, kd = the robot's
// kd_damping, every mapped motor enabled, mode_machine echoed, valid CRC; unitree_codec.hpp) at
// rate_hz, until an operator acknowledges.
//
// States (written to the segment's guard side):
//   watching  no runtime, or a runtime it follows. It arms on a runtime once it has seen that
//             runtime's heartbeat fresh (younger than timeout_ms): a runtime that attached but never
//             ticked, or one whose hold was acknowledged while it stayed frozen, is not taken over.
//   holding   took over: publishing, first the settle-then-cut poses when the last heartbeat showed
//             the robot standing (STANDUP/HOLD/ACTIVE) and `settle` is set (SettleMode: the safety
//             config's keyframes by minimum jerk from the entry pose of the runtime's last command,
//             with the robot's PD gains), then damping. Until an acknowledgement (ack_requested >
//             ack_done): then it stops publishing (the writer stays), answers (ack_done) and goes
//             back to watching.
//   off       stopped (stop(), or the guard process gone: see guard_pid / guard_beat_ns).
// A takeover is either
//   process_exit       the runtime's process is ending: as soon as its heartbeat is one period
//                      late, the guard reads /proc/<pid>/stat (through a descriptor kept open) for
//                      PF_EXITING, which the kernel sets at the very start of do_exit(); and a pidfd
//                      (pidfd_open(2), polled with ppoll(2)) for the process gone. The pidfd alone
//                      is late: it polls readable only once the process's memory is torn down,
//                      which for an mlockall'ed runtime takes 5-20+ ms after a SIGKILL (measured),
//                      longer than the heartbeat timeout itself. Or
//   heartbeat_timeout  the heartbeat is older than timeout_ms while the process lives (a frozen
//                      runtime) and its last beat showed the robot standing (STANDUP, HOLD, ACTIVE);
//                      for a runtime that holds nothing up (PASSIVE, DAMP, FAULT, ...) the timeout is
//                      idle_timeout_ms (default 10 x timeout_ms, at least 250 ms): a stall there
//                      endangers nothing, and a hiccup of a busy machine is not a takeover (a death
//                      is seen at once by its process either way). When it runs again, its loop reads guard_state holding from the
//                      segment on its first tick: lowcmd_conflict (damping, latched) and its driver
//                      writes withheld while the guard holds (rt_loop.cpp), so the guard alone
//                      commands the motors.
//
// The rt/lowcmd writer is created with the guard (constructor), not at takeover, so the robot's
// reader has discovered it (SEDP) long before a takeover and takes its first frame at once. Its
// QoS user_data is kGuardUserDataPrefix + the heartbeat's name ("vertebra-guard/1 vertebra-g1";
// dds_qset_userdata). It publishes nothing while watching. The runtime's driver
// (unitree_dds_driver.hpp) finds it among the matched rt/lowcmd publications by that user_data
// (dds_get_matched_publications, dds_get_matched_publication_data, dds_qget_userdata; on Cyclone's
// listener thread, the tick reads an atomic) and does not count it as a second controller. What the
// writer's existence used to say, "the guard holds", the segment says instead: activate() opens the
// heartbeat the user_data names and refuses while its guard holds; RtLoop::start() refuses too; and
// the loop's tick reads guard_state (Heartbeat::guard_holding, two atomic loads) as lowcmd_conflict
// and withholds its writes. Measured (`vertebra bench guard`, SIGKILLs of a standing G1 on the sim
// bridge, 2-core machine, 25 kills, docs/safety.md): the guard's first write comes 2.8 ms (p50;
// max 3.1) after the runtime's last; at the robot, the gap across the kill is p50 2.9 ms, max 5.8 ms,
// with no discovery tail; the largest gap over a whole hold is p50 4.9 ms, max 11.5 ms. Before
// (writer at takeover): robot gap p50 5.1 ms, max 59.8 ms.
//
// Threads: the guard thread (SCHED_FIFO when permitted) watches at watch_hz and publishes at
// rate_hz; Cyclone's receive thread decodes rt/lowstate into a seqlock. Configuration (the
// constructor) throws with what was expected, found and valid.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/exchange.hpp"
#include "drivers/unitree/dds.hpp"
#include "drivers/unitree/unitree_codec.hpp"
#include "safety/heartbeat.hpp"
#include "safety/safety.hpp"
#include "safety/supervisor.hpp"  // SettleMode

namespace vertebra::unitree {

struct GuardOptions {
  Messages messages = Messages::kHg;
  int domain_id = 0;
  std::string network_interface;
  std::string lowcmd_topic = "rt/lowcmd";
  std::string lowstate_topic = "rt/lowstate";
  std::vector<int> motors;         // the motor slot of each joint (the robot config's motor column)
  int mode_pr = 0;                 // G1 ankle mode
  std::string heartbeat;           // the segment's name (/dev/shm/<name>)
  double timeout_ms = 20.0;        // a heartbeat older than this (the process alive) is a frozen runtime
  double idle_timeout_ms = 0.0;    // the same for a runtime not standing (0: max(10 x timeout_ms, 250 ms))
  double rate_hz = 500.0;          // damping command rate while holding
  bool settle = true;              // settle-then-cut first when the runtime was standing
  double watch_hz = 2000.0;        // heartbeat checks per second while watching (>= 1000)
  bool realtime_priority = true;   // SCHED_FIFO for the guard thread
  int fifo_priority = 90;          // above the runtime loop's default 80
};

struct GuardStatus {
  GuardState state = GuardState::kOff;
  bool armed = false;
  int runtime_pid = 0;              // the runtime followed now (0: none)
  bool pidfd = false;               // followed with a pidfd (else kill(pid, 0) polling)
  std::string phase;                // while holding: "settle" or "damping"
  uint64_t takeovers = 0, releases = 0;
  uint64_t commands = 0, settle_commands = 0, write_errors = 0;
  uint64_t states = 0, crc_errors = 0;
  int64_t writer_create_ns = 0;     // creating the rt/lowcmd writer took this long (at construction)
  int matched_readers_at_first_write = -1;
  int matched_readers = -1;         // the writer's matched readers now (-1: no writer)
  bool sched_fifo = false;
  std::string notes;                // what the OS did not grant
};

class DdsGuard {
 public:
  // `params`: the robot's (kp, kd, kd_damping, limits; motor order). `safety`: its settle keyframes.
  DdsGuard(GuardOptions opt, const RobotParams& params, const SafetyConfig& safety);
  ~DdsGuard();
  DdsGuard(const DdsGuard&) = delete;
  DdsGuard& operator=(const DdsGuard&) = delete;
  void start();
  void stop();  // stops publishing and marks the segment off (the writer goes with the destructor)
  bool running() const { return running_.load(std::memory_order_acquire); }
  GuardStatus status() const;
  const GuardOptions& options() const { return opt_; }
  std::shared_ptr<Heartbeat> heartbeat() const { return hb_; }

 private:
  struct Sample {
    State state;
    uint8_t mode_machine = 0;
  };
  void on_state(const void* msg);
  void thread_main();
  void follow(int pid, uint64_t start_time, uint64_t epoch);
  void forget();
  bool runtime_exited();
  bool runtime_exiting();  // /proc/<pid>/stat: PF_EXITING or a zombie (re-read through an open fd)
  void take_over(TakeoverReason why, const HeartbeatView& v, int64_t now);
  void publish_one();
  void release(int64_t now);
  void answer_acks(int64_t now);
  void publish_status();

  GuardOptions opt_;
  RobotParams params_;
  SafetyConfig safety_;
  MotorMap map_;
  std::shared_ptr<Heartbeat> hb_;
  std::unique_ptr<DdsParticipant> pp_;
  std::unique_ptr<DdsReader> reader_;
  std::unique_ptr<DdsWriter> writer_;  // rt/lowcmd, user_data kGuardUserDataPrefix + heartbeat name
  SeqLock<Sample> latest_;
  std::atomic<uint64_t> states_{0}, crc_errors_{0};

  // Guard-thread state.
  int pid_ = 0, pidfd_ = -1, stat_fd_ = -1;
  uint64_t start_time_ = 0, epoch_ = 0;
  bool following_ = false, armed_ = false, holding_ = false, settling_ = false;
  std::unique_ptr<SettleMode> settle_;
  DampingMode damping_;
  Sample sample_{};
  Command cmd_{};
  HgLowCmd hg_{};
  GoLowCmd go_{};
  int64_t period_ns_ = 2'000'000, watch_ns_ = 500'000, timeout_ns_ = 20'000'000, idle_timeout_ns_ = 250'000'000;
  int64_t next_publish_ns_ = 0;
  bool first_write_pending_ = false;

  mutable std::mutex status_mutex_;  // the published status (never taken while publishing a frame)
  GuardStatus status_;
  std::atomic<bool> running_{false};
  std::atomic<bool> reported_{false};
  std::thread thread_;
};

}  // namespace vertebra::unitree
