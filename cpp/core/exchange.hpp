// Lock-free exchange between the real-time thread and Python.
//
// SeqLock<T>   one writer, many readers. The writer never waits; a reader retries while a write
//              is in progress or happened during its copy. Used for C++ -> Python snapshots.
// TripleBuffer<T> one writer, one reader, neither ever waits and the reader always gets the most
//              recent complete value. Used for Python -> C++ targets and requests.
//
// Both hold T by value (T must be trivially copyable); no allocation after construction, no
// locks, safe to call with the GIL released. The tick only ever calls SeqLock::store and
// TripleBuffer::read, which are wait-free.
#pragma once

#include <atomic>
#include <cstring>
#include <type_traits>

namespace vertebra {

template <class T>
class SeqLock {
  static_assert(std::is_trivially_copyable_v<T>, "SeqLock needs a trivially copyable T");

 public:
  // Writer side (single writer). Wait-free.
  void store(const T& value) {
    const uint64_t s = seq_.load(std::memory_order_relaxed);
    seq_.store(s + 1, std::memory_order_relaxed);  // odd: write in progress
    std::atomic_thread_fence(std::memory_order_release);
    copy_bytes(&data_, &value);
    std::atomic_thread_fence(std::memory_order_release);
    seq_.store(s + 2, std::memory_order_release);
  }

  // Reader side. Returns the number of the version read (even, > 0 once written).
  uint64_t load(T& out) const {
    for (;;) {
      const uint64_t s0 = seq_.load(std::memory_order_acquire);
      if (s0 & 1u) continue;
      copy_bytes(&out, &data_);
      std::atomic_thread_fence(std::memory_order_acquire);
      const uint64_t s1 = seq_.load(std::memory_order_relaxed);
      if (s0 == s1) return s0;
    }
  }

  uint64_t version() const { return seq_.load(std::memory_order_acquire); }

 private:
  // Byte-wise copy through volatile-free memcpy; the fences above order it against seq_.
  static void copy_bytes(void* dst, const void* src) {
    std::memcpy(dst, src, sizeof(T));
  }
  alignas(64) std::atomic<uint64_t> seq_{0};
  alignas(64) T data_{};
};

template <class T>
class TripleBuffer {
  static_assert(std::is_trivially_copyable_v<T>, "TripleBuffer needs a trivially copyable T");

 public:
  // Writer: fills the back slot and swaps it with the middle one, flagging it fresh.
  void write(const T& value) {
    buf_[back_] = value;
    const uint8_t prev = middle_.exchange(static_cast<uint8_t>(back_ | kFresh), std::memory_order_acq_rel);
    back_ = prev & kIndexMask;
  }

  // Reader: if a fresh value is waiting, swap it in. Returns true when `out` changed.
  bool read(T& out) {
    if ((middle_.load(std::memory_order_acquire) & kFresh) == 0) return false;
    const uint8_t prev = middle_.exchange(front_, std::memory_order_acq_rel);
    front_ = prev & kIndexMask;
    out = buf_[front_];
    return true;
  }

 private:
  static constexpr uint8_t kFresh = 0x4;
  static constexpr uint8_t kIndexMask = 0x3;
  T buf_[3]{};
  alignas(64) std::atomic<uint8_t> middle_{1};
  alignas(64) uint8_t back_ = 0;   // owned by the writer
  alignas(64) uint8_t front_ = 2;  // owned by the reader
};

}  // namespace vertebra
