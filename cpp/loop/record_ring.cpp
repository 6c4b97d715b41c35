#include "loop/record_ring.hpp"

#include <stdexcept>

namespace vertebra {

static_assert(std::is_trivially_copyable_v<TickRecord>, "TickRecord is copied as bytes");

RecordRing::RecordRing(size_t capacity) {
  if (capacity < 2 || capacity > (size_t{1} << 20))
    throw std::invalid_argument("RecordRing: capacity " + std::to_string(capacity) +
                                " records; valid: 2 .. 1048576 (it is rounded up to a power of two)");
  size_t c = 2;
  while (c < capacity) c <<= 1;
  buf_.resize(c);
  mask_ = c - 1;
}

TickRecord* RecordRing::begin_push(int64_t mono_ns) {
  const uint64_t h = head_.load(std::memory_order_relaxed);
  if (h - tail_.load(std::memory_order_acquire) > mask_) {  // full: lose this one, report it later
    if (pending_lost_ == 0) pending_since_ns_ = mono_ns;
    ++pending_lost_;
    lost_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  TickRecord* r = &buf_[h & mask_];
  r->lost_before = pending_lost_;
  r->lost_since_ns = pending_lost_ ? pending_since_ns_ : 0;
  pending_lost_ = 0;
  pending_since_ns_ = 0;
  return r;
}

void RecordRing::commit_push() {
  head_.store(head_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  pushed_.fetch_add(1, std::memory_order_relaxed);
}

bool RecordRing::pop(TickRecord& out) { return pop_into(&out, 1) == 1; }

size_t RecordRing::pop_into(TickRecord* out, size_t max) {
  const uint64_t t = tail_.load(std::memory_order_relaxed);
  const uint64_t h = head_.load(std::memory_order_acquire);
  size_t k = 0;
  for (; k < max && t + k < h; ++k) out[k] = buf_[(t + k) & mask_];
  tail_.store(t + k, std::memory_order_release);
  return k;
}

size_t RecordRing::size() const {
  return static_cast<size_t>(head_.load(std::memory_order_acquire) - tail_.load(std::memory_order_acquire));
}

namespace {

template <class T>
const char* dtype_of() {
  if constexpr (std::is_same_v<T, uint64_t>) return "<u8";
  else if constexpr (std::is_same_v<T, int64_t>) return "<i8";
  else if constexpr (std::is_same_v<T, float>) return "<f4";
  else if constexpr (std::is_same_v<T, int32_t>) return "<i4";
  else if constexpr (std::is_same_v<T, uint32_t>) return "<u4";
  else {
    static_assert(std::is_same_v<T, uint8_t>, "a TickRecord field type the table does not know");
    return "|u1";
  }
}

template <class T>
void add(std::vector<RecordField>& out, const char* name, const T& field, const TickRecord& base,
         std::vector<size_t> shape = {}) {
  using E = std::remove_cv_t<std::remove_all_extents_t<T>>;
  const size_t off = static_cast<size_t>(reinterpret_cast<const char*>(&field) - reinterpret_cast<const char*>(&base));
  out.push_back({name, dtype_of<E>(), std::move(shape), off});
}

}  // namespace

std::vector<RecordField> tick_record_fields() {
  const TickRecord r{};
  std::vector<RecordField> f;
  const size_t J = kMaxJoints, F = kMaxFeet, H = kMaxDiagHands;
#define VERTEBRA_FIELD(name, ...) add(f, #name, r.name, r, ##__VA_ARGS__)
  VERTEBRA_FIELD(tick); VERTEBRA_FIELD(mono_ns); VERTEBRA_FIELD(wall_ns); VERTEBRA_FIELD(driver_ns);
  VERTEBRA_FIELD(lost_before); VERTEBRA_FIELD(lost_since_ns); VERTEBRA_FIELD(lateness_us); VERTEBRA_FIELD(compute_us);
  VERTEBRA_FIELD(n); VERTEBRA_FIELD(safety_mode); VERTEBRA_FIELD(controller); VERTEBRA_FIELD(flags);
  VERTEBRA_FIELD(faults_active); VERTEBRA_FIELD(faults_latched); VERTEBRA_FIELD(clamp_flags);
  VERTEBRA_FIELD(read_status); VERTEBRA_FIELD(write_status); VERTEBRA_FIELD(stream_age_ms);
  VERTEBRA_FIELD(q, {J}); VERTEBRA_FIELD(dq, {J}); VERTEBRA_FIELD(tau, {J}); VERTEBRA_FIELD(temp_c, {J});
  VERTEBRA_FIELD(imu_quat, {4}); VERTEBRA_FIELD(imu_gyro, {3}); VERTEBRA_FIELD(imu_acc, {3});
  VERTEBRA_FIELD(foot_force, {F}); VERTEBRA_FIELD(battery_v);
  VERTEBRA_FIELD(base_pos, {3}); VERTEBRA_FIELD(base_quat, {4}); VERTEBRA_FIELD(base_lin_vel, {3});
  VERTEBRA_FIELD(base_ang_vel, {3}); VERTEBRA_FIELD(contact, {F});
  VERTEBRA_FIELD(cmd_q, {J}); VERTEBRA_FIELD(cmd_dq, {J}); VERTEBRA_FIELD(cmd_kp, {J}); VERTEBRA_FIELD(cmd_kd, {J});
  VERTEBRA_FIELD(cmd_tau_ff, {J});
  VERTEBRA_FIELD(chunk_seq); VERTEBRA_FIELD(chunk_starved_ticks); VERTEBRA_FIELD(chunk_blend);
  VERTEBRA_FIELD(action_dim); VERTEBRA_FIELD(action, {static_cast<size_t>(kMaxActionDim)});
  VERTEBRA_FIELD(com_err, {3}); VERTEBRA_FIELD(base_pos_err); VERTEBRA_FIELD(base_rot_err); VERTEBRA_FIELD(torso_rot_err);
  VERTEBRA_FIELD(hand_pos_err, {H}); VERTEBRA_FIELD(hand_rot_err, {H});
  VERTEBRA_FIELD(contact_wrench, {F, 6}); VERTEBRA_FIELD(contact_weight, {F});
  VERTEBRA_FIELD(solve_us); VERTEBRA_FIELD(qp_iterations); VERTEBRA_FIELD(qp_status);
#undef VERTEBRA_FIELD
  return f;
}

}  // namespace vertebra
