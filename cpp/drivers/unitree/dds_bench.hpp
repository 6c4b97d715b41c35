// `vertebra bench dds`: a driver's exchange with its robot timed inside C++, so that no Python is in
// the timed path (runtime/benchmarks/dds.py runs it against the sim bridge in another process).
// Any Driver works; the benchmark uses UnitreeDdsDriver. The driver must be active.
// Benchmark tools, not tick code: they allocate the result before timing, then only read the clock
// (std::chrono::steady_clock) around driver calls.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/types.hpp"
#include "drivers/driver.hpp"
#include "drivers/unitree/dds.hpp"
#include "drivers/unitree/unitree_codec.hpp"

namespace vertebra::unitree {

struct ExchangeTimes {
  std::vector<int64_t> ns;  // one duration per timed iteration, nanoseconds
  // The same iterations split: the read() and the write() alone (their sum is ns, to the clock's cost).
  std::vector<int64_t> read_ns, write_ns;
  uint64_t stale = 0;       // reads that found nothing newer (Status::kNoNewData)
  uint64_t errors = 0;      // reads or writes that returned any other non-OK status
  bool sched_fifo = false;  // time_tick_cost: the timing thread ran under SCHED_FIFO
};

// Lockstep round trips: per iteration write(cmd), then read() (a lockstep UnitreeDdsDriver waits
// there for the state the bridge publishes in answer to that command; the answer's CRC is checked
// and decoded on the driver's DDS thread, inside the timed span). `warmup` iterations run first,
// untimed. `iterations` >= 1.
ExchangeTimes time_round_trips(Driver& driver, const Command& cmd, int iterations, int warmup);

// Real-time tick cost: per tick, read() + write(cmd) timed together (the driver's share of a
// real-time tick: a non-blocking read of the newest state, one command published), ticks paced at
// `period_ns` on absolute deadlines (clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME) as the loop
// paces them, on a thread of its own set up as the loop's real-time thread is (cpp/loop/rt_loop.cpp:
// SCHED_FIFO at `fifo_priority` where the OS permits it, 0: not asked; a 1 ns timer slack).
// `warmup` ticks first, untimed.
ExchangeTimes time_tick_cost(Driver& driver, const Command& cmd, int ticks, int64_t period_ns, int warmup,
                             int fifo_priority);

// A robot that only answers, for the benchmark's second baseline: each LowCmd_ received with a
// valid CRC is answered at once, on the reader's thread, by one LowState_ (sealed) that reports the
// commanded q as the joints' q; no simulation, so the round trip is the DDS exchange and the two
// ends' code alone. A command with a bad CRC is dropped and counted (no answer). Until commands
// come (a driver configuring), it publishes its state every 50 ms.
struct EchoCounters {
  uint64_t commands = 0, crc_errors = 0, states = 0;
};

class LowCmdEcho {
 public:
  LowCmdEcho(Messages messages, int domain_id, const std::string& network_interface, const std::vector<int>& motors,
             int mode_machine);
  ~LowCmdEcho();
  LowCmdEcho(const LowCmdEcho&) = delete;
  LowCmdEcho& operator=(const LowCmdEcho&) = delete;
  void stop();
  EchoCounters counters() const;

 private:
  void on_command(const void* msg);
  void publish_locked();  // mutex_ held
  Messages messages_;
  MotorMap map_;
  uint8_t mode_machine_;
  std::unique_ptr<DdsParticipant> pp_;
  std::unique_ptr<DdsWriter> writer_;
  std::unique_ptr<DdsReader> reader_;
  std::mutex mutex_;  // the reader's thread and the idle publisher
  State state_{};
  HgLowState hg_{};
  GoLowState go_{};
  uint32_t tick_ms_ = 0;
  std::atomic<uint64_t> commands_{0}, crc_errors_{0}, states_{0};
  std::atomic<int64_t> last_command_ns_{0};
  std::atomic<bool> running_{true};
  std::thread idle_;
};

}  // namespace vertebra::unitree
