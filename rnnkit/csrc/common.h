// What rnnkit's C++ time loops share (lstm.cpp, gru.cpp, rnn.cpp): vectorized sigmoid and
// tanh, a row-parallel loop, layer norm forward and backward over one row, small helpers.
#pragma once

#include <ATen/ATen.h>
#include <ATen/EmptyTensor.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "pool.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RNNKIT_SLEEF 1
extern "C" {
__attribute__((target("avx2,fma"))) __m256 Sleef_expf8_u10avx2(__m256);
__attribute__((target("avx2,fma"))) __m256 Sleef_tanhf8_u10avx2(__m256);
__attribute__((target("avx512f"))) __m512 Sleef_expf16_u10avx512f(__m512);
__attribute__((target("avx512f"))) __m512 Sleef_tanhf16_u10avx512f(__m512);
}
#endif

namespace rnnkit_csrc {

using at::Tensor;

// x W^T for x (b, k) and W (n, k), both contiguous: the per-step product of the time loops.
// float32 goes through oneDNN (the op mkldnn::_linear_pointwise, which torch.compile emits for
// a linear layer on CPU), the library torch.nn.LSTM's CPU kernel runs on: on some CPUs (an AMD
// EPYC, measured) torch's BLAS runs these small products at half its speed. Exact float32
// either way (no reduced-precision mode); float64, batch 1, or a build without oneDNN, uses
// at::mm.
inline Tensor linear_nt(const Tensor& x, const Tensor& W) {
  static const std::optional<c10::OperatorHandle> op =
      c10::Dispatcher::singleton().findSchema({"mkldnn::_linear_pointwise", ""});
  // one row (batch 1) is a matrix-vector product, which MKL did faster (17.6 vs 23.9 us at
  // 256 x 1024, and about 5% over a whole layer)
  if (op.has_value() && x.size(0) >= 2 && x.scalar_type() == at::kFloat &&
      at::globalContext().userEnabledMkldnn()) {
    torch::jit::Stack stack{x, W, c10::IValue(), c10::IValue(std::string("none")),
                            c10::IValue(c10::List<std::optional<c10::Scalar>>()),
                            c10::IValue(std::string(""))};
    op->callBoxed(stack);
    return stack[0].toTensor();
  }
  return at::mm(x, W.t());
}

// sigma and tanh over n values. float32 uses SLEEF's vectorized expf / tanhf (1-ulp), the
// ones PyTorch's own CPU kernels use, exported by libtorch_cpu: AVX-512 or AVX2 as the CPU
// allows. Scalar std::exp / std::tanh per element (the rest: float64 for the tests, other
// CPUs) cost about ten times more, which made a first version of this file slower than the
// Python loop it replaces.
#ifdef RNNKIT_SLEEF
// 2: AVX-512, 1: AVX2 + FMA, 0: neither. RNNKIT_SIMD=avx2 or none lowers it (never above
// what the CPU has), so that the tests can run every path on one machine.
inline int simd_level() {
  static const int level = [] {
    int cpu = __builtin_cpu_supports("avx512f")                                ? 2
              : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1
                                                                                : 0;
    if (const char* want = std::getenv("RNNKIT_SIMD")) {
      if (std::strcmp(want, "avx2") == 0) cpu = std::min(cpu, 1);
      if (std::strcmp(want, "none") == 0) cpu = 0;
    }
    return cpu;
  }();
  return level;
}

// Whole registers first, then one masked at the end: masked loads ran 3x slower than plain
// ones on an AMD EPYC.
__attribute__((target("avx512f"))) inline void sigmoid512(const float* x, float* y, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m512 e = Sleef_expf16_u10avx512f(_mm512_sub_ps(zero, _mm512_loadu_ps(x + k)));
    _mm512_storeu_ps(y + k, _mm512_div_ps(one, _mm512_add_ps(one, e)));
  }
  for (; k < n; k += 16) {
    const __mmask16 m = n - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - k)) - 1);
    const __m512 e = Sleef_expf16_u10avx512f(_mm512_sub_ps(zero, _mm512_maskz_loadu_ps(m, x + k)));
    _mm512_mask_storeu_ps(y + k, m, _mm512_div_ps(one, _mm512_add_ps(one, e)));
  }
}
__attribute__((target("avx512f"))) inline void tanh512(const float* x, float* y, int64_t n) {
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) _mm512_storeu_ps(y + k, Sleef_tanhf16_u10avx512f(_mm512_loadu_ps(x + k)));
  for (; k < n; k += 16) {
    const __mmask16 m = n - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - k)) - 1);
    _mm512_mask_storeu_ps(y + k, m, Sleef_tanhf16_u10avx512f(_mm512_maskz_loadu_ps(m, x + k)));
  }
}
__attribute__((target("avx2,fma"))) inline int64_t sigmoid256(const float* x, float* y, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256 e = Sleef_expf8_u10avx2(_mm256_sub_ps(zero, _mm256_loadu_ps(x + k)));
    _mm256_storeu_ps(y + k, _mm256_div_ps(one, _mm256_add_ps(one, e)));
  }
  return k;  // the rest is done by the scalar loop
}
__attribute__((target("avx2,fma"))) inline int64_t tanh256(const float* x, float* y, int64_t n) {
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) _mm256_storeu_ps(y + k, Sleef_tanhf8_u10avx2(_mm256_loadu_ps(x + k)));
  return k;
}
// e^x in float32, within about 1.2 ulp of the exact value (NaN stays NaN; x is first clamped
// to [-104, 89], beyond which e^x is 0 or inf in float32), inlined: SLEEF's expf16 is a call
// into libtorch_cpu, around which the compiler spills every live vector register (all are
// caller-saved). Cephes' expf: x = n ln 2 + r with |r| <= ln 2 / 2 (ln 2 in two parts), e^r by
// its degree-7 polynomial, times 2^n (scalef).
__attribute__((target("avx512f"), always_inline)) inline __m512 exp512(__m512 x) {
  // max, then min, each returning its second operand when either is NaN
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

#endif

// dst[0, n) = src[0, n), by non-temporal stores where dst is 64-byte aligned and n a
// multiple of 16 (float32, AVX-512); else a plain copy. For large outputs not read again soon.
#ifdef RNNKIT_SLEEF
__attribute__((target("avx512f"))) inline void stream_copy512(const float* src, float* dst,
                                                               int64_t n) {
  for (int64_t k = 0; k < n; k += 16) _mm512_stream_ps(dst + k, _mm512_loadu_ps(src + k));
}
#endif
inline void stream_copy(const float* src, float* dst, int64_t n) {
#ifdef RNNKIT_SLEEF
  if (simd_level() == 2 && reinterpret_cast<uintptr_t>(dst) % 64 == 0 && n % 16 == 0)
    return stream_copy512(src, dst, n);
#endif
  std::copy_n(src, n, dst);
}

// Orders this thread's non-temporal stores (_mm512_stream_ps) before what follows, so that
// other threads see them once it has signalled that it is done.
inline void stream_fence() {
#ifdef RNNKIT_SLEEF
  _mm_sfence();
#endif
}

// y = sigma(x), y = tanh(x); y may be x
template <typename T>
inline void sigmoid(const T* x, T* y, int64_t n) {
  int64_t k = 0;
#ifdef RNNKIT_SLEEF
  if constexpr (std::is_same_v<T, float>) {
    if (simd_level() == 2) return sigmoid512(x, y, n);
    if (simd_level() == 1) k = sigmoid256(x, y, n);
  }
#endif
  for (; k < n; ++k) y[k] = T(1) / (T(1) + std::exp(-x[k]));
}
template <typename T>
inline void tanh_n(const T* x, T* y, int64_t n) {
  int64_t k = 0;
#ifdef RNNKIT_SLEEF
  if constexpr (std::is_same_v<T, float>) {
    if (simd_level() == 2) return tanh512(x, y, n);
    if (simd_level() == 1) k = tanh256(x, y, n);
  }
#endif
  for (; k < n; ++k) y[k] = std::tanh(x[k]);
}

template <typename T>
inline void add_mul(T* __restrict__ y, const T* __restrict__ w, const T* __restrict__ x, int64_t n) {
  for (int64_t k = 0; k < n; ++k) y[k] += w[k] * x[k];
}
// Row-parallel for one step's element-wise work: chunks of at least ~32k elements, so the
// small sizes (where threading costs more than it saves) stay on one thread.
template <typename F>
inline void rows(int64_t b, int64_t per_row, const F& f) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(per_row, 1));
  at::parallel_for(0, b, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) f(r);
  });
}

// Zoneout's h_t = d h_{t-1} + (1 - d) h~_t. A mask d of exactly 1 or 0 (training, and padding)
// selects, as torch.where does: a blend would turn a non-finite value that is not kept, such as
// the NaN of a padded step, into NaN (0 * NaN). Only the eval-mode rate blends.
template <typename T>
inline T keep_blend(T d, T old, T fresh) {
  const T blend = d * old + (1 - d) * fresh;
  return d == T(1) ? old : (d == T(0) ? fresh : blend);
}

// The gradient reaching h_{t-1}, in place over its n values: dh = keep dh + (da W_hh) m + dy,
// where dhw = da W_hh and keep (zoneout), m (recurrent dropout), dy (the output at t-1) may be
// null; `keep_given` false starts from dh as the caller left it (the GRU's direct terms).
template <typename T>
inline void recurrent_grad(T* dh, bool keep_given, const T* keep, const T* dhw, const T* m,
                           const T* dy, int64_t n) {
  if (keep_given) {
    if (keep) {
      for (int64_t q = 0; q < n; ++q) dh[q] *= keep[q];  // first: it reads dh_t
    } else {
      std::fill(dh, dh + n, T(0));
    }
  }
  if (m) {
    for (int64_t q = 0; q < n; ++q) dh[q] += dhw[q] * m[q];
  } else {
    for (int64_t q = 0; q < n; ++q) dh[q] += dhw[q];
  }
  if (dy)
    for (int64_t q = 0; q < n; ++q) dh[q] += dy[q];
}

// Sums in 16 independent lanes, so that the compiler vectorizes them (a single running sum
// is a chain of dependent additions).
template <typename T, typename F>
inline double lane_sum(int64_t n, const F& term) {
  T acc[16] = {};
  int64_t k = 0;
  for (; k + 16 <= n; k += 16)
    for (int l = 0; l < 16; ++l) acc[l] += term(k + l);
  double total = 0;
  for (; k < n; ++k) total += term(k);
  for (int l = 0; l < 16; ++l) total += acc[l];
  return total;
}

// x^ = (x - mean x) rstd over n values; returns rstd = 1 / sqrt(var x + eps).
template <typename T>
inline T normalize(const T* x, T* xhat, int64_t n, double eps) {
  const T mean = T(lane_sum<T>(n, [&](int64_t k) { return x[k]; }) / n);
  const double var = lane_sum<T>(n, [&](int64_t k) { return (x[k] - mean) * (x[k] - mean); }) / n;
  const T rstd = T(1.0 / std::sqrt(var + eps));
  for (int64_t k = 0; k < n; ++k) xhat[k] = (x[k] - mean) * rstd;
  return rstd;
}

// The gate layer norm of one row, in place: a^ = LN(a) into ahat, then s = base + a^ gain
// (base: the row's gx, or the GRU's b_hh, or null for 0). Returns rstd.
template <typename T>
inline T gate_norm(T* s, const T* base, const T* gain, T* ahat, int64_t n, double eps) {
  const T rstd = normalize(s, ahat, n, eps);
  for (int64_t k = 0; k < n; ++k) s[k] = (base ? base[k] : T(0)) + ahat[k] * gain[k];
  return rstd;
}

// da = rstd (dx - mean(dx) - x^ mean(dx x^)) with dx = dy * gain: the layer-norm backward.
template <typename T>
inline void normalize_backward(const T* dy, const T* gain, const T* xhat, T rstd, T* da,
                               int64_t n) {
  const T m1 = T(lane_sum<T>(n, [&](int64_t k) { return dy[k] * gain[k]; }) / n);
  const T m2 = T(lane_sum<T>(n, [&](int64_t k) { return dy[k] * gain[k] * xhat[k]; }) / n);
  for (int64_t k = 0; k < n; ++k) da[k] = rstd * (dy[k] * gain[k] - m1 - xhat[k] * m2);
}

template <typename T>
inline const T* ptr_or_null(const std::optional<Tensor>& t) {
  return t.has_value() && t->defined() ? t->const_data_ptr<T>() : nullptr;
}

inline Tensor empty0(const Tensor& like) { return at::empty({0}, like.options()); }

// A (t, b, .) buffer. Large ones come from rnnkit's cache of CPU buffers (pool.h), so that
// a forward or backward reuses the pages the last one wrote instead of faulting in new ones.
inline Tensor seq_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  const int64_t n = c10::multiply_integers(sizes) * int64_t(options.dtype().itemsize());
  if (n < int64_t(SeqPool::kMinBytes)) return at::empty(sizes, options);
  return Tensor(at::detail::empty_generic(sizes, &SeqPool::get(),
                                          c10::DispatchKeySet(c10::DispatchKey::CPU),
                                          options.dtype().toScalarType(), std::nullopt));
}

// A float32 scratch buffer of n values for one call, uninitialized; a large one from the cache
// (as seq_empty): a fresh megabyte per call would fault in its pages every time.
struct Scratch {
  Tensor t;
  explicit Scratch(int64_t n) : t(seq_empty({n}, at::TensorOptions().dtype(at::kFloat))) {}
  float* data() { return t.data_ptr<float>(); }
};

}  // namespace rnnkit_csrc
