// Proves the tick path allocation-free: global operator new/delete are replaced by counting
// versions; the whole-body controller's update() and the loop's tick (mock driver, joint PD)
// run thousands of times on a moving state after warm-up, and any allocation fails the test.
//
// usage: vertebra_alloc_selftest URDF --joints a,b,.. --feet l,r --base B [--torso T] [--hands l,r] [--aim sl,sr]
//                                 [--point] [--sole x,y,z] [--pose q0,q1,..] [--height H] [--imu FRAME]
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "estimation/estimator.hpp"
#include "hil/bench_mode.hpp"
#include "locomotion/walk_mode.hpp"
#include "loop/rt_loop.hpp"
#include "drivers/fault_injector.hpp"
#include "drivers/mock_driver.hpp"
#include "wbc/wbc.hpp"

static std::atomic<long> g_allocs{0};
static std::atomic<bool> g_counting{false};

// Count at the malloc level (Eigen and C code allocate with malloc, C++ with operator new, which
// calls malloc): the executable's definitions interpose glibc's for the whole process.
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
static bool g_trap = false;  // VERTEBRA_ALLOC_TRAP=1: stop at the first counted allocation (debugging)
static inline void count() {
  if (!g_counting.load(std::memory_order_relaxed)) return;
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (g_trap) __builtin_trap();
}
void* malloc(std::size_t n) { count(); return __libc_malloc(n); }
void* calloc(std::size_t a, std::size_t b) { count(); return __libc_calloc(a, b); }
void* realloc(void* p, std::size_t n) { count(); return __libc_realloc(p, n); }
void free(void* p) { __libc_free(p); }
void* memalign(std::size_t a, std::size_t n) { count(); return __libc_memalign(a, n); }
void* aligned_alloc(std::size_t a, std::size_t n) { count(); return __libc_memalign(a, n); }
int posix_memalign(void** out, std::size_t a, std::size_t n) {
  count();
  *out = __libc_memalign(a, n);
  return *out ? 0 : 12;
}
}

using namespace vertebra;

static std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}
static std::vector<double> splitd(const std::string& s) {
  std::vector<double> out;
  for (const auto& x : split(s)) out.push_back(std::stod(x));
  return out;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s URDF --joints ... --feet ... --base ...\n", argv[0]);
    return 2;
  }
  std::string urdf = argv[1], base, torso, imu;
  std::vector<std::string> joints, feet, hands, aim;
  std::vector<double> sole{0, 0, 0}, pose;
  bool flat = true;
  double height = 0.8;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() { return std::string(i + 1 < argc ? argv[++i] : ""); };
    if (a == "--joints") joints = split(next());
    else if (a == "--feet") feet = split(next());
    else if (a == "--hands") hands = split(next());
    else if (a == "--aim") aim = split(next());
    else if (a == "--base") base = next();
    else if (a == "--torso") torso = next();
    else if (a == "--point") flat = false;
    else if (a == "--sole") sole = splitd(next());
    else if (a == "--pose") pose = splitd(next());
    else if (a == "--height") height = std::stod(next());
    else if (a == "--imu") imu = next();
  }
  RobotModel robot(urdf, joints);
  const int n = robot.n_joints();
  if (pose.empty()) pose.assign(n, 0.0);
  WbcConfig cfg;
  cfg.flat_feet = flat;
  cfg.foot_frames = feet;
  cfg.sole_offset_m = sole;
  cfg.base_frame = base;
  cfg.torso_frame = torso;
  cfg.hand_frames = hands;
  cfg.hand_aim_frames = aim;      // hands aimed from their shoulders (the robot config's wbc.hand_aim)
  cfg.hand_posture_scale = 0.05;  // and the arms' posture weight scaled while their hands have targets
  cfg.com = {60, 15, {100, 100, 100, 0, 0, 0}};
  cfg.base = {60, 15, {0, 0, 100, 50, 50, 20}};
  cfg.torso = {60, 15, {0, 0, 0, 20, 20, 10}};
  cfg.hands = {150, 25, {100, 100, 100, 20, 20, 20}};
  cfg.swing_foot = {200, 28, {500, 500, 500, 100, 100, 100}};
  cfg.posture = {40, 12, {1, 0, 0, 0, 0, 0}};
  cfg.armature.assign(n, 0.01);
  cfg.out_kp.assign(n, 10.0);
  cfg.out_kd.assign(n, 1.0);
  // Keep-out rows on every tick: the hands kept above the floor, always active (the activation
  // distance exceeds their height), so the rows' tick path is counted too.
  cfg.keep_out = {KeepOutBox{{0.0, 0.0, -0.5}, {5.0, 5.0, 0.5}}};
  for (const auto& h : hands) cfg.keep_out_points.push_back(KeepOutPoint{h, {0.0, 0.0, 0.0}, 0.03});
  cfg.keep_out_activation_m = 5.0;
  WholeBodyController wbc(robot, cfg);
  WbcConfig cfg_eq = cfg;
  cfg_eq.eliminate_contacts = false;  // the fallback path: contact rows as equalities
  WholeBodyController wbc_eq(robot, cfg_eq);

  RobotParams p;
  p.n = n;
  for (int i = 0; i < n; ++i) {
    p.kp[i] = 100;
    p.kd[i] = 2;
    p.kd_damping[i] = 2;
    p.kp_max[i] = 150;
    p.kd_max[i] = 3;
    p.q_lower[i] = robot.limits().lower[i];
    p.q_upper[i] = robot.limits().upper[i];
    p.dq_max[i] = robot.limits().velocity[i];
    p.tau_max[i] = robot.limits().effort[i];
    p.default_pose[i] = pose[i];
  }
  State s;
  s.n = n;
  s.has_base_truth = true;
  s.base_pos = {0, 0, height};
  for (int i = 0; i < n; ++i) s.q[i] = pose[i];
  Command last{}, out{};
  last.n = n;
  Targets none{};
  ModeRequest req{};
  if (wbc.enter(p, s, last, none, req) != Status::kOk || wbc_eq.enter(p, s, last, none, req) != Status::kOk) {
    std::fprintf(stderr, "enter failed\n");
    return 1;
  }
  // A moving trajectory, hand targets switched on half way (the targets path is exercised too).
  auto run = [&](int ticks, long& bad, WholeBodyController& wbc) {
    for (int k = 0; k < ticks; ++k) {
      const double t = k * 0.002;
      for (int i = 0; i < n; ++i) {
        s.q[i] = pose[i] + 0.05 * std::sin(2.0 * t + i);
        s.dq[i] = 0.1 * std::cos(2.0 * t + i);
      }
      s.base_ang_vel = {0.05 * std::sin(t), 0.05 * std::cos(t), 0.0};
      if (wbc.update(p, s, none, 0.002, out) != Status::kOk) ++bad;
    }
  };
  // The counter must see allocations, or a zero below proves nothing.
  g_allocs = 0;
  g_counting = true;
  {
    std::vector<double>* v = new std::vector<double>(16);
    Eigen::VectorXd e(32);
    e.setZero();
    delete v;
  }
  g_counting = false;
  if (g_allocs.load() < 3) {
    std::fprintf(stderr, "allocation counter is not live (saw %ld)\n", g_allocs.load());
    return 3;
  }
  long bad = 0;
  run(50, bad, wbc);  // warm-up
  run(50, bad, wbc_eq);
  g_trap = std::getenv("VERTEBRA_ALLOC_TRAP") != nullptr;
  WbcTargets tg;
  tg.seq = 100;
  tg.com_set = true;
  tg.com = {0.01, 0.02, height - 0.1};
  tg.hand_set = {true, true};
  tg.hand_position_only = {true, true};  // the orientations stay the entry's, turned with the arms (aim)
  tg.hand_pos = {{{0.25, 0.2, height + 0.1}, {0.25, -0.2, height + 0.1}}};
  g_allocs = 0;
  g_counting = true;
  run(1000, bad, wbc);
  wbc.publish_targets(tg);
  run(1000, bad, wbc);
  // A foot released and put down again: its force ramps out, the eliminated components switch
  // (the solver restarts cold), then back.
  tg.seq = 101;
  tg.contact_active[static_cast<size_t>(cfg.foot_frames.size()) - 1] = false;
  wbc.publish_targets(tg);
  run(200, bad, wbc);
  tg.seq = 102;
  tg.contact_active[static_cast<size_t>(cfg.foot_frames.size()) - 1] = true;
  wbc.publish_targets(tg);
  run(200, bad, wbc);
  wbc_eq.publish_targets(tg);
  run(500, bad, wbc_eq);
  ControllerDiagnostics diag;        // the recorder's read of the controller, on the tick
  const bool has_diag = wbc.diagnostics(diag);
  g_counting = false;
  if (!has_diag) {
    std::fprintf(stderr, "the whole-body controller reported no diagnostics\n");
    return 5;
  }
  WbcStatus wst;
  wbc.status(wst);
  if (wst.eliminated_solves < 2000) {
    std::fprintf(stderr, "the fast path did not run (%llu eliminated solves)\n",
                 static_cast<unsigned long long>(wst.eliminated_solves));
    return 5;
  }
  const long wbc_allocs = g_allocs.load();

  // The walk mode (bipeds): entered standing, a command that starts walking (planning, lift-offs,
  // swings, touch-downs, re-plans at every lift-off), then a zero command (the stop to standing).
  // The state does not follow the robot (no simulator here), so only the code path is real.
  long walk_allocs = -1, walk_bad = 0;
  WalkStatus walk_st{};
  if (flat && feet.size() == 2) {
    for (int i = 0; i < n; ++i) {
      s.q[i] = pose[i];
      s.dq[i] = 0.0;
    }
    s.base_ang_vel = {0.0, 0.0, 0.0};
    auto wbc_w = std::make_shared<WholeBodyController>(robot, cfg);
    WalkConfig wc;
    wc.step_adjust = true;  // its path counted too
    WalkMode walk(wbc_w, wc);
    if (walk.enter(p, s, last, none, req) != Status::kOk) {
      std::fprintf(stderr, "walk enter failed\n");
      return 1;
    }
    auto run_walk = [&](int ticks) {
      for (int k = 0; k < ticks; ++k)
        if (walk.update(p, s, none, 0.002, out) != Status::kOk) ++walk_bad;
    };
    run_walk(20);  // warm-up
    g_allocs = 0;
    g_counting = true;
    walk.set_command(0.3, 0.0, 0.1);
    run_walk(3000);
    walk.set_command(0.0, 0.0, 0.0);
    run_walk(3000);
    g_counting = false;
    walk_allocs = g_allocs.load();
    walk.status(walk_st);
    if (walk_st.steps < 3 || walk_st.replans < 3) {
      std::fprintf(stderr, "the walk mode did not step (%llu steps, %llu re-plans)\n",
                   static_cast<unsigned long long>(walk_st.steps), static_cast<unsigned long long>(walk_st.replans));
      return 5;
    }
  }

  // The state estimator: both contact sources, with and without a controller's contact plan.
  long est_allocs = 0, est_bad = 0;
  if (!imu.empty()) {
    EstimatorConfig ec;
    ec.imu_frame = imu;
    ec.foot_frames = feet;
    ec.sole_offset_m = sole;
    ec.flat_feet = flat;
    StateEstimator est(robot, ec);
    EstimatorConfig ec2 = ec;
    ec2.contact_source = ContactSource::kFootForce;
    StateEstimator est2(robot, ec2);
    Estimate e{};
    ContactPlan plan{};
    auto run_est = [&](int ticks) {
      for (int k = 0; k < ticks; ++k) {
        const double t = k * 0.002;
        for (int i = 0; i < n; ++i) {
          s.q[i] = pose[i] + 0.05 * std::sin(2.0 * t + i);
          s.dq[i] = 0.1 * std::cos(2.0 * t + i);
          s.tau[i] = 5.0 * std::sin(t + i);
        }
        s.imu_acc = {0.1 * std::sin(t), 0.0, 9.81};
        s.imu_gyro = {0.05 * std::sin(t), 0.05 * std::cos(t), 0.0};
        s.has_foot_force = true;
        s.foot_force = {100.0 * (k % 200 < 100), 80.0, 60.0, 40.0};
        plan.valid = k % 300 < 150;
        plan.weight = {1.0, k % 100 < 50 ? 1.0 : 0.0, 1.0, 1.0};
        if (est.update(s, plan, e) != Status::kOk) ++est_bad;
        if (est2.update(s, plan, e) != Status::kOk) ++est_bad;
      }
    };
    run_est(20);  // warm-up
    g_allocs = 0;
    g_counting = true;
    run_est(1000);
    g_counting = false;
    est_allocs = g_allocs.load();
  }

  // The loop tick itself, through the supervisor's paths: arming, a policy stream, a NaN target
  // (limiter + HOLD), monitors firing (state loss, temperature, motor error), settle-then-cut,
  // e-stop, refused and accepted resets. Mock driver behind a fault injector.
  auto mock = std::make_shared<MockDriver>();
  auto drv = std::make_shared<FaultInjector>(mock);
  DriverInit di;
  di.joint_names = joints;
  drv->configure(di);
  drv->activate();
  LoopConfig lc;
  lc.lockstep = true;
  SafetyConfig sc;
  sc.state_timeout_ms = 20;
  sc.frozen_ms = 0;  // the mock robot at rest really is bit-identical from tick to tick
  sc.temp_warn_c = 60;
  sc.temp_derate_c = 70;
  sc.temp_stop_c = 80;
  sc.motor_error_monitor = true;
  sc.starvation_hold_ms = 40;
  sc.starvation_stop_ms = 200;
  sc.overrun_window_ticks = 100;
  sc.overrun_max = 50;
  sc.rate_limit_scale = 1.0;
  sc.soft_limit_margin_rad = 0.01;
  sc.n_settle = 1;
  sc.settle_pose[0] = p.default_pose;
  sc.settle_duration_s[0] = 0.2;
  sc.settle_hold_s = 0.1;
  RtLoop loop(drv, p, lc, sc);
  // The bench harness's mode (cpp/hil/bench_mode.hpp), registered before the first tick: a program
  // plays and its trace records inside the counted section.
  auto bench = std::make_shared<BenchMode>(n, std::vector<double>(p.kp.begin(), p.kp.begin() + n),
                                           std::vector<double>(p.kd.begin(), p.kd.begin() + n), 200);
  const ModeId bench_id = loop.register_mode("bench", bench);
  // The recorder's ring, small and never drained in the counted section: records fill it, then the
  // tick loses them (counted, never waiting); both paths run inside the count.
  auto records = std::make_shared<RecordRing>(64);
  loop.set_record_ring(records, 1);
  BenchProgram prog;
  prog.joint = 0;
  prog.kp = p.kp[0];
  prog.kd = p.kd[0];
  for (int k = 0; k < 100; ++k) {
    prog.q.push_back(p.default_pose[0] + 0.01 * std::sin(0.1 * k));
    prog.dq.push_back(0.0);
    prog.tau_ff.push_back(k % 20 < 2 ? 0.5 : 0.0);
  }
  auto ring = loop.event_ring();
  Event ev;
  auto drain = [&ring, &ev] { while (ring->pop(ev)) {} };
  auto request = [&loop](ModeId m, double dur = 0, const JointArray* pose = nullptr, bool stream = false) {
    ModeRequest r;
    r.mode = m;
    r.duration_s = dur;
    r.stream = stream;
    if (pose) { r.pose = *pose; r.n = loop.params().n; }
    loop.request_mode(r);
  };
  Targets t;
  t.n = n;
  for (int i = 0; i < n; ++i) { t.q[i] = p.default_pose[i]; t.kp[i] = p.kp[i]; t.kd[i] = p.kd[i]; }
  uint64_t seq = 1;
  auto stream = [&](int ticks) {
    for (int k = 0; k < ticks; ++k) {
      if (k % 10 == 0) { t.seq = ++seq; loop.set_targets(t); }
      loop.run_ticks(1);
    }
  };
  loop.run_ticks(5);
  drain();
  g_allocs = 0;
  g_counting = true;
  loop.set_enabled(true);
  loop.run_ticks(1);
  request(ModeId::kInterpolate, 0.1, &p.default_pose);
  loop.run_ticks(60);
  request(ModeId::kHold);
  loop.run_ticks(2);
  request(bench_id);                 // ACTIVE under the bench mode: one program, traced tick by tick
  loop.run_ticks(2);
  bench->load(prog);
  bench->start();
  loop.run_ticks(110);
  const bool bench_played = bench->state() == BenchState::kDone;
  request(ModeId::kHold);
  loop.run_ticks(2);
  request(ModeId::kJointPD, 0, nullptr, true);
  stream(200);
  t.q[0] = NAN;                      // NaN target: replaced, policy dropped to HOLD
  stream(20);
  t.q[0] = p.default_pose[0];
  request(ModeId::kJointPD, 0, nullptr, true);
  stream(50);
  loop.run_ticks(150);               // starvation: hold, then stop (settle), then FAULT
  loop.reset_faults();
  loop.run_ticks(5);
  drv->set_motor_temp(1, 75.0);      // derate
  loop.run_ticks(20);
  drv->set_motor_temp(1, 85.0);      // stop while in DAMP: FAULT
  loop.run_ticks(20);
  loop.reset_faults();               // refused: still hot
  loop.run_ticks(5);
  drv->set_motor_temp(1, 30.0);     // cooled down (a vanished reading would keep the levels)
  loop.run_ticks(1);                 // a reset is judged on the last tick's monitors
  loop.reset_faults();
  loop.run_ticks(5);
  drv->set_drop_reads(true);         // state loss
  loop.run_ticks(30);
  drv->set_drop_reads(false);
  loop.run_ticks(1);
  loop.reset_faults();
  loop.run_ticks(5);
  drv->set_motor_error(2, 1);
  loop.run_ticks(5);
  drv->set_motor_error(2, 0);
  loop.run_ticks(1);
  loop.estop();
  loop.run_ticks(5);
  loop.reset_faults();
  loop.run_ticks(5);
  loop.set_enabled(true);
  request(ModeId::kInterpolate, 0.1, &p.default_pose);
  loop.run_ticks(60);
  request(ModeId::kHold);
  loop.run_ticks(2);
  loop.request_stop();               // operator settle-then-cut
  loop.run_ticks(200);
  g_counting = false;
  const long loop_allocs = g_allocs.load();
  Snapshot snap;
  loop.snapshot(snap);
  long events = 0;
  while (ring->pop(ev)) ++events;
  if (records->pushed() < 60 || records->lost() < 100) {
    std::fprintf(stderr, "the recorder's ring did not fill and overflow (%llu pushed, %llu lost)\n",
                 static_cast<unsigned long long>(records->pushed()), static_cast<unsigned long long>(records->lost()));
    return 4;
  }
  if (!bench_played) {
    std::fprintf(stderr, "the bench mode's program did not play to its end (state %d)\n", static_cast<int>(bench->state()));
    return 4;
  }
  if (events < 20 || snap.safety.mode != SafetyMode::kDamp) {
    std::fprintf(stderr, "the supervisor scenario did not run as scripted (%ld events, mode %s)\n", events,
                 safety_mode_name(snap.safety.mode));
    return 4;
  }
  std::printf("{\"wbc_updates\": 2900, \"wbc_keep_out_rows\": %d, \"wbc_allocations\": %ld, \"failed_updates\": %ld, "
              "\"loop_allocations\": %ld, \"loop_events\": %ld, \"estimator_updates\": %d, "
              "\"estimator_allocations\": %ld, \"estimator_failed_updates\": %ld, \"walk_allocations\": %ld, "
              "\"walk_failed_updates\": %ld, \"walk_steps\": %llu, \"walk_replans\": %llu, \"walk_phase\": %d}\n",
              wst.keep_out_active, wbc_allocs, bad, loop_allocs, events, imu.empty() ? 0 : 2000, est_allocs, est_bad,
              walk_allocs, walk_bad, static_cast<unsigned long long>(walk_st.steps),
              static_cast<unsigned long long>(walk_st.replans), static_cast<int>(walk_st.phase));
  return (wbc_allocs == 0 && loop_allocs == 0 && bad == 0 && est_allocs == 0 && est_bad == 0 && walk_allocs <= 0 &&
          walk_bad == 0) ? 0 : 1;
}
