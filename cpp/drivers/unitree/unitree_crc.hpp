// The CRC Unitree's motor boards check on every LowCmd_/LowState_ (facts: unitree_sdk2
// example/*/crc32_core, unitree_sdk2_python utils/crc.py; the padding rule: unitree_sdk2 PR #31,
// rl_sar #147). CRC-32 with polynomial 0x04C11DB7, initial value 0xFFFFFFFF, no reflection and no
// final XOR, fed the message's 32-bit words (the in-memory struct read as little-endian uint32)
// most significant bit first, every word but the trailing `crc`. That is CRC-32/MPEG-2 over the
// words written big-endian. The struct's padding bytes are part of the words: they must be zero,
// or the robot computes another CRC and silently drops the frame. [tick]: no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace vertebra::unitree {

// The CRC of `n_words` 32-bit words at `words` (host order; x86-64 and ARM64 are little-endian).
uint32_t crc32_words(const uint32_t* words, size_t n_words);

// The CRC of a whole message: every word before its trailing crc member.
template <class Msg>
uint32_t message_crc(const Msg& m) {
  static_assert(sizeof(Msg) % 4 == 0 && offsetof(Msg, crc) == sizeof(Msg) - 4,
                "a Unitree message ends in its 32-bit crc");
  uint32_t words[sizeof(Msg) / 4];
  std::memcpy(words, &m, sizeof(Msg));
  return crc32_words(words, sizeof(Msg) / 4 - 1);
}

template <class Msg>
void seal(Msg& m) {
  m.crc = message_crc(m);
}

template <class Msg>
bool crc_ok(const Msg& m) {
  return m.crc == message_crc(m);
}

}  // namespace vertebra::unitree
