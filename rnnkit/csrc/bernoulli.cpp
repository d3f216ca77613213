// Zoneout's keep masks, d ~ Bernoulli(p), drawn fast (CPU).
//
// torch.rand fills a CPU tensor one Mersenne-Twister draw at a time on one thread: about
// 2.3 ns a value here, 1.2 ms for each of a small LSTM's two (256, 16, 128) masks, 9% of its
// whole forward and backward. This draws from a counter-based generator instead, so that
// every value is computed independently (vectorized, over all threads):
//
//   u_k = top 24 bits of splitmix64(seed + (k + 1) * 0x9E3779B97F4A7C15) / 2^24
//   d_k = u_k < p
//
// splitmix64 (Steele, Lea and Flood 2014) is the finalizer Java's SplittableRandom and
// xoshiro's seeding use; u_k has torch.rand's float32 resolution (2^-24). The seed is drawn
// from torch's generator by the caller, so torch.manual_seed and saved RNG states fix the
// masks as they fix torch.rand's.

#include "common.h"

namespace {

inline uint64_t splitmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// d[k] for k in [k0, k1); threshold = p 2^24, so u < p <=> top24 < threshold (exactly, as
// both sides are compared as integers scaled by 2^24; p 2^24 is rounded up to keep u < p)
inline void draw(uint8_t* d, int64_t k0, int64_t k1, uint64_t seed, uint64_t threshold) {
  for (int64_t k = k0; k < k1; ++k) {
    const uint64_t z = splitmix64(seed + uint64_t(k + 1) * 0x9E3779B97F4A7C15ULL);
    d[k] = (z >> 40) < threshold;
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f,avx512dq"))) void draw512(uint8_t* d, int64_t k0, int64_t k1,
                                                          uint64_t seed, uint64_t threshold) {
  draw(d, k0, k1, seed, threshold);  // the same loop, vectorized with 64-bit multiplies
}
#endif

at::Tensor bernoulli_mask(at::IntArrayRef shape, double p, int64_t seed) {
  TORCH_CHECK(p >= 0 && p <= 1, "rnnkit bernoulli_mask: p must be in [0, 1], got ", p);
  at::Tensor d = at::empty(shape, at::TensorOptions().dtype(at::kBool));
  const int64_t n = d.numel();
  uint8_t* out = reinterpret_cast<uint8_t*>(d.data_ptr<bool>());
  // the smallest integer t with u < p <=> top24 < t: t = ceil(p 2^24)
  const uint64_t threshold = uint64_t(std::ceil(p * double(1 << 24)));
  const uint64_t s = uint64_t(seed);
#if defined(__x86_64__) && defined(__GNUC__)
  const bool wide = __builtin_cpu_supports("avx512dq");
#else
  const bool wide = false;
#endif
  at::parallel_for(0, n, 1 << 16, [&](int64_t k0, int64_t k1) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (wide) return draw512(out, k0, k1, s, threshold);
#endif
    draw(out, k0, k1, s, threshold);
  });
  return d;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("bernoulli_mask(int[] shape, float p, int seed) -> Tensor", &bernoulli_mask);
}
