// A weight gradient dW = dy^T x in one pass over both operands (float32, AVX-512 CPUs).
//
//   dy (n, g), x (n, i) -> dW (g, i),   dW[r, c] = sum_k dy[k, r] x[k, c]
//
// Both operands are read row k after row k (the outer-product form): 48 values of a row of
// dy are loaded as three registers, and 8 values x[k, c] each broadcast against them, into
// 8 x 48 accumulators that hold a tile of dW^T, added into dW transposed once per chunk. n is
// walked in chunks of 256 rows; a chunk of x is first copied into tiles of 8 columns
// (xp[c / 8][k][c % 8]), so that the values a tile broadcasts lie together in L1 instead of
// i floats apart (i is often a power of two, which maps such a column onto a few of L1's
// sets). Each thread owns a band of dW's rows.
//
// torch.mm sends this product to MKL, which on an AMD EPYC ran a small layer's shapes (n =
// 4096, g = 512, i = 64 or 128) at 150-180 GFLOP/s, this kernel at 260-330; reading the two
// transposed operands made oneDNN's linear no faster there (rnnkit/gemm.py).

#include "step.h"

namespace {

using namespace rnnkit_csrc;

constexpr int64_t kChunk = 256;  // rows of dy and x per pass

#ifdef RNNKIT_SLEEF
// out[r][16 m + l] = sum_k p[k][r] v[k][16 m + l] for r < R and the first `cols` of 48
// columns, over kn rows: p holds 8 values per row k (packed), v is read as it lies (rows ld
// apart). Both layouts below are this kernel: p = x's columns and v = dy's gives a tile of dW^T,
// p = dy's columns and v = x's one of dW. FULL: all 48 columns (plain loads and stores; masked
// loads ran 3x slower on an AMD EPYC).
template <int R, bool FULL>
__attribute__((target("avx512f"))) void outer_tile(const float* p, const float* v, int64_t ld,
                                                   int64_t kn, float* out, int64_t ldo,
                                                   int64_t cols) {
  constexpr int NB = 3;
  __mmask16 mask[NB];
  for (int m = 0; m < NB; ++m) {
    const int64_t left = cols - 16 * m;
    mask[m] = left >= 16 ? __mmask16(0xFFFF) : (left > 0 ? __mmask16((1u << left) - 1) : 0);
  }
  __m512 acc[R][NB];
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < NB; ++m) acc[r][m] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kn; ++k) {
    __m512 w[NB];
    for (int m = 0; m < NB; ++m)
      w[m] = FULL ? _mm512_loadu_ps(v + k * ld + 16 * m)
                  : _mm512_maskz_loadu_ps(mask[m], v + k * ld + 16 * m);
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(p[k * 8 + r]);
      for (int m = 0; m < NB; ++m) acc[r][m] = _mm512_fmadd_ps(a, w[m], acc[r][m]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < NB; ++m) {
      if (FULL) {
        _mm512_storeu_ps(out + r * ldo + 16 * m, acc[r][m]);
      } else {
        _mm512_mask_storeu_ps(out + r * ldo + 16 * m, mask[m], acc[r][m]);
      }
    }
}
#endif

Tensor weight_grad_tn(const Tensor& dy, const Tensor& x) {
  TORCH_CHECK(dy.dim() == 2 && x.dim() == 2 && dy.size(0) == x.size(0),
              "rnnkit weight_grad: dy (n, g) and x (n, i) with the same n");
  const bool ours = dy.scalar_type() == at::kFloat && x.scalar_type() == at::kFloat &&
                    dy.device().is_cpu() && x.device().is_cpu() && packed_steps();
  if (!ours || dy.size(0) == 0) return dy.t().mm(x);
  const Tensor a = dy.contiguous(), b = x.contiguous();
  const int64_t n = a.size(0), g = a.size(1), i = b.size(1);
  Tensor out = seq_empty({g, i}, a.options());  // a large one from the cache: no page faults
#ifdef RNNKIT_SLEEF
  const float* dy_ = a.const_data_ptr<float>();
  const float* x_ = b.const_data_ptr<float>();
  float* o = out.data_ptr<float>();
  if (n <= kChunk) {  // one chunk: tiles of dW in place, threads over bands of 8 rows
    at::parallel_for(0, (g + 7) / 8, 1, [&](int64_t t0, int64_t t1) {
      std::vector<float> dyp(size_t(n) * 8, 0.0f);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t r0 = 8 * t, R = std::min<int64_t>(8, g - r0);
        for (int64_t k = 0; k < n; ++k)
          for (int64_t r = 0; r < R; ++r) dyp[k * 8 + r] = dy_[k * g + r0 + r];
        for (int64_t c0 = 0; c0 < i; c0 += 48) {
          const int64_t cols = std::min<int64_t>(48, i - c0);
          float* ot = o + r0 * i + c0;
          switch (R) {
#define RNNKIT_NT(RR)                                                 \
  case RR:                                                            \
    if (cols == 48)                                                   \
      outer_tile<RR, true>(dyp.data(), x_ + c0, i, n, ot, i, cols);   \
    else                                                              \
      outer_tile<RR, false>(dyp.data(), x_ + c0, i, n, ot, i, cols);  \
    break;
            RNNKIT_NT(1)
            RNNKIT_NT(2)
            RNNKIT_NT(3)
            RNNKIT_NT(4)
            RNNKIT_NT(5)
            RNNKIT_NT(6)
            RNNKIT_NT(7)
            RNNKIT_NT(8)
#undef RNNKIT_NT
          }
        }
      }
    });
    return out;
  }
  const int64_t bands = (g + 47) / 48, ctiles = (i + 7) / 8;
  at::parallel_for(0, bands, 1, [&](int64_t b0, int64_t b1) {
    const int64_t r0 = 48 * b0, r1 = std::min(g, 48 * b1);
    std::vector<float> xp(size_t(ctiles) * kChunk * 8, 0.0f);
    alignas(64) float buf[8 * 48];
    for (int64_t k0 = 0; k0 < n; k0 += kChunk) {
      const int64_t kn = std::min(n - k0, kChunk);
      for (int64_t k = 0; k < kn; ++k) {  // xp[c / 8][k][c % 8] = x[k0 + k, c]
        const float* xr = x_ + (k0 + k) * i;
        for (int64_t t = 0; t < ctiles; ++t) {
          float* d = xp.data() + (t * kChunk + k) * 8;
          const int64_t m = std::min<int64_t>(8, i - 8 * t);
          for (int64_t c = 0; c < m; ++c) d[c] = xr[8 * t + c];
        }
      }
      for (int64_t r = r0; r < r1; r += 48) {  // a band of 48 rows of dW
        const int64_t lanes = std::min<int64_t>(48, r1 - r);
        const float* dk = dy_ + k0 * g + r;
        for (int64_t t = 0; t < ctiles; ++t) {
          const float* xt = xp.data() + t * kChunk * 8;
          const int64_t R = std::min<int64_t>(8, i - 8 * t);
          switch (R) {
#define RNNKIT_TN(RR)                                       \
  case RR:                                                  \
    if (lanes == 48)                                        \
      outer_tile<RR, true>(xt, dk, g, kn, buf, 48, lanes);  \
    else                                                    \
      outer_tile<RR, false>(xt, dk, g, kn, buf, 48, lanes); \
    break;
            RNNKIT_TN(1)
            RNNKIT_TN(2)
            RNNKIT_TN(3)
            RNNKIT_TN(4)
            RNNKIT_TN(5)
            RNNKIT_TN(6)
            RNNKIT_TN(7)
            RNNKIT_TN(8)
#undef RNNKIT_TN
          }
          // dW[r + l, 8 t + c] (+)= buf[c][l]: the tile transposed into place
          float* ot = o + r * i + 8 * t;
          for (int64_t l = 0; l < lanes; ++l)
            for (int64_t c = 0; c < R; ++c)
              ot[l * i + c] = (k0 == 0 ? 0.0f : ot[l * i + c]) + buf[c * 48 + l];
        }
      }
    }
  });
#endif
  return out;
}

}  // namespace

// y = x W^T + b for x (n, k), W (g, k), b (g) or absent: the input projections of a small
// layer (W of at most kSmallW values) with rnnkit's packed-panel kernel, y from the buffer
// cache. oneDNN's linear computes the same at about the same speed, but its output is a fresh
// allocation, whose page faults (2048 for a (4096, 512) float32 y) could cost about as much
// as the product on this project's machine.
Tensor linear_small(const Tensor& x, const Tensor& W, const std::optional<Tensor>& b) {
  TORCH_CHECK(x.dim() == 2 && W.dim() == 2 && x.size(1) == W.size(1),
              "rnnkit linear: x (n, k) and W (g, k)");
  const int64_t n = x.size(0), k = x.size(1), g = W.size(0);
  const bool ours = x.scalar_type() == at::kFloat && W.scalar_type() == at::kFloat &&
                    packed_steps() && g * k <= kSmallW && n > 0;
  if (!ours) return b.has_value() && b->defined() ? at::addmm(*b, x, W.t()) : at::mm(x, W.t());
  const Tensor xc = x.contiguous(), Wc = W.contiguous();
  const Tensor bias = b.has_value() && b->defined() ? b->contiguous() : Tensor();
  Tensor y = seq_empty({n, g}, x.options());
  linear_rows(xc.const_data_ptr<float>(), n, pack(Wc.const_data_ptr<float>(), g, k, k, 1),
              bias.defined() ? bias.const_data_ptr<float>() : nullptr, y.data_ptr<float>());
  return y;
}

bool uses_packed_steps() { return packed_steps(); }

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("weight_grad(Tensor dy, Tensor x) -> Tensor");
  m.def("packed_steps() -> bool", &uses_packed_steps);
  m.def("linear(Tensor x, Tensor W, Tensor? b) -> Tensor");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("weight_grad", &weight_grad_tn);
  m.impl("linear", &linear_small);
}
