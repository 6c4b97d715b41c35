#include "drivers/unitree/dds_bench.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <time.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "drivers/unitree/unitree_crc.hpp"

namespace vertebra::unitree {

namespace {
int64_t clock_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void count(Status st, ExchangeTimes& out) {
  if (st == Status::kNoNewData)
    ++out.stale;
  else if (st != Status::kOk)
    ++out.errors;
}

void check_args(const Driver& driver, int n, int warmup, const char* what) {
  if (n < 1 || warmup < 0)
    throw std::invalid_argument(std::string(what) + ": iterations " + std::to_string(n) + ", warmup " +
                                std::to_string(warmup) + "; valid: iterations >= 1, warmup >= 0");
  if (driver.lifecycle_state() != DriverState::kActive)
    throw std::invalid_argument(std::string(what) + ": the driver is " + driver_state_name(driver.lifecycle_state()) +
                                "; valid: active (configure and activate it first)");
}

void reserve(ExchangeTimes& out, int n) {
  for (auto* v : {&out.ns, &out.read_ns, &out.write_ns}) v->reserve(static_cast<size_t>(n));
}

void record(ExchangeTimes& out, int64_t read_ns, int64_t write_ns, int64_t total_ns) {
  out.read_ns.push_back(read_ns);
  out.write_ns.push_back(write_ns);
  out.ns.push_back(total_ns);
}

void tick_loop(Driver& driver, const Command& cmd, int ticks, int64_t period_ns, int warmup, ExchangeTimes& out);

void add_ns(timespec& t, int64_t ns) {
  t.tv_nsec += ns;
  while (t.tv_nsec >= 1'000'000'000) {
    t.tv_nsec -= 1'000'000'000;
    ++t.tv_sec;
  }
}
}  // namespace

ExchangeTimes time_round_trips(Driver& driver, const Command& cmd, int iterations, int warmup) {
  check_args(driver, iterations, warmup, "time_round_trips");
  ExchangeTimes out;
  reserve(out, iterations);
  State s{};
  for (int k = 0; k < warmup; ++k) {
    driver.write(cmd);
    driver.read(s);
  }
  for (int k = 0; k < iterations; ++k) {
    const int64_t t0 = clock_ns();
    const Status w = driver.write(cmd);
    const int64_t t1 = clock_ns();
    const Status r = driver.read(s);
    const int64_t t2 = clock_ns();
    record(out, t2 - t1, t1 - t0, t2 - t0);
    if (w != Status::kOk) ++out.errors;
    count(r, out);
  }
  return out;
}

ExchangeTimes time_tick_cost(Driver& driver, const Command& cmd, int ticks, int64_t period_ns, int warmup,
                             int fifo_priority) {
  check_args(driver, ticks, warmup, "time_tick_cost");
  if (period_ns < 100'000)
    throw std::invalid_argument("time_tick_cost: period " + std::to_string(period_ns) + " ns; valid: >= 100000 (10 kHz)");
  if (fifo_priority < 0 || fifo_priority > 99)
    throw std::invalid_argument("time_tick_cost: fifo_priority " + std::to_string(fifo_priority) +
                                "; valid: 1 to 99, or 0 (no SCHED_FIFO)");
  ExchangeTimes out;
  reserve(out, ticks);
  std::thread timing([&] {
    if (fifo_priority > 0) {
      sched_param sp{};
      sp.sched_priority = fifo_priority;
      out.sched_fifo = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
    }
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    tick_loop(driver, cmd, ticks, period_ns, warmup, out);
  });
  timing.join();
  return out;
}

namespace {
void tick_loop(Driver& driver, const Command& cmd, int ticks, int64_t period_ns, int warmup, ExchangeTimes& out) {
  State s{};
  timespec next{};
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (int k = 0; k < warmup + ticks; ++k) {
    add_ns(next, period_ns);
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
    const int64_t t0 = clock_ns();
    const Status r = driver.read(s);
    const int64_t t1 = clock_ns();
    const Status w = driver.write(cmd);
    const int64_t t2 = clock_ns();
    if (k < warmup) continue;
    record(out, t1 - t0, t2 - t1, t2 - t0);
    count(r, out);
    if (w != Status::kOk) ++out.errors;
  }
}
}  // namespace

LowCmdEcho::LowCmdEcho(Messages messages, int domain_id, const std::string& network_interface,
                       const std::vector<int>& motors, int mode_machine)
    : messages_(messages), mode_machine_(static_cast<uint8_t>(mode_machine)) {
  const int slots = messages == Messages::kHg ? kHgMotors : kGoMotors;
  if (motors.empty() || motors.size() > static_cast<size_t>(kMaxJoints))
    throw std::invalid_argument("echo: motors: found " + std::to_string(motors.size()) + "; valid: 1 to " +
                                std::to_string(kMaxJoints) + " motor slots");
  map_.n = static_cast<int>(motors.size());
  for (int j = 0; j < map_.n; ++j) {
    if (motors[j] < 0 || motors[j] >= slots)
      throw std::invalid_argument("echo: motors[" + std::to_string(j) + "]: found " + std::to_string(motors[j]) +
                                  "; valid: 0 to " + std::to_string(slots - 1));
    map_.motor[j] = motors[j];
  }
  state_.n = map_.n;
  state_.imu_quat = {1.0, 0.0, 0.0, 0.0};
  const bool hg = messages == Messages::kHg;
  pp_ = std::make_unique<DdsParticipant>(domain_id, network_interface);
  writer_ = std::make_unique<DdsWriter>(*pp_, hg ? &unitree_hg_msg_dds__LowState__desc : &unitree_go_msg_dds__LowState__desc,
                                        "rt/lowstate");
  // Reliable, as the lockstep bridge's: the driver's writer and the SDK's default writer are reliable.
  reader_ = std::make_unique<DdsReader>(*pp_, hg ? &unitree_hg_msg_dds__LowCmd__desc : &unitree_go_msg_dds__LowCmd__desc,
                                        "rt/lowcmd", hg ? sizeof(HgLowCmd) : sizeof(GoLowCmd),
                                        [this](const void* m) { on_command(m); }, true);
  idle_ = std::thread([this] {
    while (running_.load(std::memory_order_acquire)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (steady_ns() - last_command_ns_.load(std::memory_order_relaxed) > 100'000'000) {
        std::lock_guard<std::mutex> lock(mutex_);
        publish_locked();
      }
    }
  });
}

LowCmdEcho::~LowCmdEcho() { stop(); }

void LowCmdEcho::stop() {
  if (!running_.exchange(false)) return;
  if (idle_.joinable()) idle_.join();
  reader_.reset();
  writer_.reset();
  pp_.reset();
}

void LowCmdEcho::on_command(const void* msg) {
  Command c{};
  const bool ok = decode_checked_lowcmd(messages_, map_, msg, c);
  last_command_ns_.store(steady_ns(), std::memory_order_relaxed);
  if (!ok) {
    crc_errors_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  commands_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mutex_);
  for (int j = 0; j < map_.n; ++j) state_.q[j] = c.q[j];
  tick_ms_ += 2;
  publish_locked();
}

void LowCmdEcho::publish_locked() {
  if (!writer_) return;
  const RemoteState remote{};
  if (messages_ == Messages::kHg) {
    encode_lowstate(map_, state_, tick_ms_, mode_machine_, remote, hg_);
    writer_->write(&hg_);
  } else {
    encode_lowstate(map_, state_, tick_ms_, std::array<double, 4>{}, remote, go_);
    writer_->write(&go_);
  }
  states_.fetch_add(1, std::memory_order_relaxed);
}

EchoCounters LowCmdEcho::counters() const {
  EchoCounters c;
  c.commands = commands_.load();
  c.crc_errors = crc_errors_.load();
  c.states = states_.load();
  return c;
}

}  // namespace vertebra::unitree
