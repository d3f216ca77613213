// Outer-product tiles for weight gradients dW = dy^T x (float32, AVX-512), shared by
// gemm_tn.cpp (the whole product) and scan.cpp (minGRU's backward, chunk by chunk).
//
// Both operands are read row k after row k (the outer-product form): 48 values of a row of
// dy are loaded as three registers, and 8 values x[k, c] each broadcast against them, into
// 8 x 48 accumulators that hold a tile of dW^T, added into dW transposed once per chunk. A
// chunk of x (up to kChunk rows) is first copied into tiles of 8 columns
// (xp[c / 8][k][c % 8]), so that the values a tile broadcasts lie together in L1 instead of
// i floats apart (i is often a power of two, which maps such a column onto a few of L1's sets).

#pragma once

#include "step.h"

namespace rnnkit_csrc {

constexpr int64_t kChunk = 256;  // rows of dy and x per pass

#ifdef RNNKIT_SLEEF
// out[r][16 m + l] = sum_k p[k][r] v[k][16 m + l] for r < R and the first `cols` of 48
// columns, over kn rows: p holds 8 values per row k (packed), v is read as it lies (rows ld
// apart). Both layouts below are this kernel: p = x's columns and v = dy's gives a tile of dW^T,
// p = dy's columns and v = x's one of dW. FULL: all 48 columns (plain loads and stores; masked
// loads ran 3x slower on an AMD EPYC). add: out += the tile, else out = the tile.
template <int R, bool FULL>
__attribute__((target("avx512f"))) void outer_tile(const float* p, const float* v, int64_t ld,
                                                   int64_t kn, float* out, int64_t ldo,
                                                   int64_t cols, bool add = false) {
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
      float* o = out + r * ldo + 16 * m;
      if (FULL) {
        _mm512_storeu_ps(o, add ? _mm512_add_ps(_mm512_loadu_ps(o), acc[r][m]) : acc[r][m]);
      } else {
        const __m512 a = acc[r][m];
        _mm512_mask_storeu_ps(
            o, mask[m], add ? _mm512_add_ps(_mm512_maskz_loadu_ps(mask[m], o), a) : a);
      }
    }
}


// dW[r0:r1] (g, i) (+)= dy^T x over one chunk of kn <= kChunk rows, on the calling thread, kept
// transposed: dWT (i, ldt) holds dW[r, c] at dWT[c * ldt + r - r0], so that each tile of dW^T
// the kernel makes is added with whole-register loads and stores (added into dW's rows one value
// at a time, 48 rows apart, it took a third of the product's time); `band_into` writes dW from it
// once at the end. first: dWT = the chunk's sum, else +=. dy's rows ldy apart (dW's row r is dy's
// column r), x's row k at xrow(k). xp: scratch of ((i + 7) / 8) * kChunk * 8 floats.
template <typename XRow>
__attribute__((target("avx512f"))) void weight_grad_chunk(const float* dy, int64_t ldy,
                                                          int64_t r0, int64_t r1,
                                                          const XRow& xrow, int64_t kn,
                                                          int64_t i, float* dWT, int64_t ldt,
                                                          bool first, float* xp) {
  TORCH_CHECK(kn <= kChunk, "rnnkit weight_grad_chunk: at most ", kChunk, " rows, got ", kn);
  const int64_t ctiles = (i + 7) / 8;
  for (int64_t k = 0; k < kn; ++k) {  // xp[c / 8][k][c % 8] = x[k, c]
    const float* xr = xrow(k);
    for (int64_t t = 0; t < ctiles; ++t) {
      float* d = xp + (t * kChunk + k) * 8;
      const int64_t m = std::min<int64_t>(8, i - 8 * t);
      for (int64_t c = 0; c < m; ++c) d[c] = xr[8 * t + c];
    }
  }
  for (int64_t r = r0; r < r1; r += 48) {  // a band of 48 rows of dW
    const int64_t lanes = std::min<int64_t>(48, r1 - r);
    const float* dk = dy + r;
    for (int64_t t = 0; t < ctiles; ++t) {
      const float* xt = xp + t * kChunk * 8;
      const int64_t R = std::min<int64_t>(8, i - 8 * t);
      float* ot = dWT + 8 * t * ldt + (r - r0);  // dW^T[8 t + c][r + l]
      switch (R) {
#define RNNKIT_TN(RR)                                                    \
  case RR:                                                               \
    if (lanes == 48)                                                     \
      outer_tile<RR, true>(xt, dk, ldy, kn, ot, ldt, lanes, !first);     \
    else                                                                 \
      outer_tile<RR, false>(xt, dk, ldy, kn, ot, ldt, lanes, !first);    \
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
    }
  }
}

// dW[r0:r1] (g, i) from weight_grad_chunk's transposed dWT (i, ldt), in blocks of 16 x 16.
inline void band_into(const float* dWT, int64_t ldt, int64_t r0, int64_t r1, int64_t i,
                      float* dW) {
  for (int64_t rb = r0; rb < r1; rb += 16)
    for (int64_t cb = 0; cb < i; cb += 16)
      for (int64_t r = rb; r < std::min(r1, rb + 16); ++r)
        for (int64_t c = cb; c < std::min(i, cb + 16); ++c)
          dW[r * i + c] = dWT[c * ldt + r - r0];
}
#endif

}  // namespace rnnkit_csrc
