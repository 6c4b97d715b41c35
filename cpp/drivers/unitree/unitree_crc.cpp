#include "drivers/unitree/unitree_crc.hpp"

#include <array>

namespace vertebra::unitree {

namespace {
constexpr uint32_t kPolynomial = 0x04C11DB7u;

// MSB-first table: the CRC register after shifting one byte b (as the top byte) through it.
constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t r = b << 24;
    for (int i = 0; i < 8; ++i) r = (r & 0x80000000u) ? (r << 1) ^ kPolynomial : (r << 1);
    t[b] = r;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kTable = make_table();
}  // namespace

uint32_t crc32_words(const uint32_t* words, size_t n_words) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n_words; ++i) {
    const uint32_t w = words[i];
    for (int shift = 24; shift >= 0; shift -= 8)  // the word's bytes, most significant first
      crc = (crc << 8) ^ kTable[((crc >> 24) ^ (w >> shift)) & 0xFFu];
  }
  return crc;
}

}  // namespace vertebra::unitree
