// minGRU / minLSTM's fused path in C++ (CPU, float32 and float64): the linear recurrence,
// and the whole layer direction with its gates.
//
// The linear recurrence (rnnkit.scan.LinearRecurrence):
//
//   forward:   h_t = a_t h_{t-1} + b_t
//   backward:  lam_t = dh_t + a_{t+1} lam_{t+1}      (then db_t = lam_t, da_t = lam_t h_{t-1})
//
// rnnkit.scan.LinearRecurrence runs these as one multiply-add per step in Python, which at
// T = 2048 is 2048 dispatched kernels each way; here each step is a plain loop over b * h
// values. Shapes: T time, n = b * h values per step.

#include "outer.h"

namespace {

using namespace rnnkit_csrc;

// a, b (T, ...), h0 (...): returns Hs (T+1, ...) = h_0..h_T.
Tensor linear_recurrence_forward(const Tensor& a, const Tensor& b, const Tensor& h0) {
  TORCH_CHECK(a.device().is_cpu() && a.is_contiguous() && b.is_contiguous() &&
                  a.sizes() == b.sizes(),
              "rnnkit linear_recurrence_forward: a, b must be contiguous CPU tensors of one shape");
  const int64_t T_ = a.size(0), n = a.numel() / std::max<int64_t>(T_, 1);
  std::vector<int64_t> shape(a.sizes().begin(), a.sizes().end());
  shape[0] = T_ + 1;
  Tensor Hs = at::empty(shape, a.options());
  Hs[0].copy_(h0);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "rnnkit_linear_recurrence_forward", [&] {
    const scalar_t* a_ = a.const_data_ptr<scalar_t>();
    const scalar_t* b_ = b.const_data_ptr<scalar_t>();
    scalar_t* h = Hs.data_ptr<scalar_t>();
    for (int64_t t = 0; t < T_; ++t) {
      const scalar_t* at_ = a_ + t * n;
      const scalar_t* bt = b_ + t * n;
      const scalar_t* hp = h + t * n;
      scalar_t* hn = h + (t + 1) * n;
      for (int64_t k = 0; k < n; ++k) hn[k] = at_[k] * hp[k] + bt[k];
    }
  });
  return Hs;
}

// dh (T, ...) the gradient of h_1..h_T, a (T, ...): returns lam (T, ...).
Tensor linear_recurrence_backward(const Tensor& dh, const Tensor& a) {
  TORCH_CHECK(dh.is_contiguous() && a.is_contiguous() && dh.sizes() == a.sizes(),
              "rnnkit linear_recurrence_backward: dh, a must be contiguous, of one shape");
  const int64_t T_ = a.size(0), n = a.numel() / std::max<int64_t>(T_, 1);
  Tensor lam = at::empty_like(dh);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "rnnkit_linear_recurrence_backward", [&] {
    const scalar_t* a_ = a.const_data_ptr<scalar_t>();
    const scalar_t* d = dh.const_data_ptr<scalar_t>();
    scalar_t* l = lam.data_ptr<scalar_t>();
    if (T_ > 0) std::copy(d + (T_ - 1) * n, d + T_ * n, l + (T_ - 1) * n);
    for (int64_t t = T_ - 2; t >= 0; --t) {
      const scalar_t* an = a_ + (t + 1) * n;
      const scalar_t* ln = l + (t + 1) * n;
      const scalar_t* dt = d + t * n;
      scalar_t* lt = l + t * n;
      for (int64_t k = 0; k < n; ++k) lt[k] = dt[k] + an[k] * ln[k];
    }
  });
  return lam;
}

// ----------------------------------------------------------------------------- minGRU, minLSTM
//
// The whole fused layer direction in one pass, gates included (Feng et al. 2024, sec. 3):
//   minGRU:  z = sigma(k_z), a = 1 - z, b = z g(k_h)
//   minLSTM: f = sigma(k_f), i = sigma(k_i), a = f / (f + i), b = i / (f + i) g(k_h)
//   h_t = a_t h_{t-1} + b_t;  on padding (valid = 0) a = 1, b = 0: the state is carried
// with g(x) = x + 1/2 for x >= 0, sigma(x) otherwise. Backward, with c_t = dL/dh_t in total
// (dy_t + a_{t+1} c_{t+1}):
//   minGRU:  dk_z = c (g - h_{t-1}) z (1 - z),  dk_h = c z g'(k_h)
//   minLSTM: with s = f + i, da = c h_{t-1}, dbb = c g:
//            dk_f = (i / s^2)(da - dbb) f (1 - f),  dk_i = (f / s^2)(dbb - da) i (1 - i),
//            dk_h = c (i / s) g'(k_h)
// Every (batch row, unit) is an independent recurrence, so the threads split the batch rows
// and each runs all T steps of its rows. The backward recomputes the gates from gx, except
// after the forward's row bands (AVX-512), which save in gx's place what the backward needs
// of the gates (min_row_forward512). gx (T, b, 2H or 3H), the gate blocks in that order.

// One step of one row, as branch-free loops over u that the compiler vectorizes: the gates
// (s1 = z or f, s2 = i), gh = g(k_h) and dg = g'(k_h), in scratch rows.
template <typename T, bool LSTM>
void min_gates(const T* __restrict__ gx, T* __restrict__ s1, T* __restrict__ s2,
               T* __restrict__ gh, T* __restrict__ dg, int64_t H) {
  sigmoid(gx, s1, H);                // z, or f
  if (LSTM) sigmoid(gx + H, s2, H);  // i
  const T* kh = gx + (LSTM ? 2 : 1) * H;
  sigmoid(kh, gh, H);  // sigma(k_h), then g and g' from it, each a loop without branches
  if (dg) {
    for (int64_t u = 0; u < H; ++u) {
      const T slope = gh[u] * (1 - gh[u]);  // computed either way, so the select is branch-free
      dg[u] = kh[u] > 0 ? T(1) : slope;  // at 0, sigma's side, as relu(x) + sigma(min(x, 0))
    }
  }
  for (int64_t u = 0; u < H; ++u) gh[u] = kh[u] >= 0 ? kh[u] + T(0.5) : gh[u];
}

template <typename T, bool LSTM>
void min_step(const T* __restrict__ s1, const T* __restrict__ s2, const T* __restrict__ gh,
              const T* __restrict__ hp, T* __restrict__ hn, int64_t H) {
  for (int64_t u = 0; u < H; ++u) {
    if (LSTM) {
      const T inv = 1 / (s1[u] + s2[u]);
      hn[u] = s1[u] * inv * hp[u] + s2[u] * inv * gh[u];  // f' h + i' g
    } else {
      hn[u] = (1 - s1[u]) * hp[u] + s1[u] * gh[u];  // (1 - z) h + z g
    }
  }
}

// dx (the row's dk blocks) and the new carry a_t c_t, from c_t = dy + carry.
template <typename T, bool LSTM>
void min_step_backward(const T* __restrict__ s1, const T* __restrict__ s2,
                       const T* __restrict__ gh, const T* __restrict__ dg,
                       const T* __restrict__ hp, const T* __restrict__ dy, T* __restrict__ carry,
                       T* __restrict__ dx, int64_t H) {
  for (int64_t u = 0; u < H; ++u) {
    const T c = dy[u] + carry[u];
    if (LSTM) {
      const T f = s1[u], i = s2[u], inv = 1 / (f + i), inv2 = inv * inv;
      const T da = c * hp[u], dbb = c * gh[u];
      dx[u] = i * inv2 * (da - dbb) * f * (1 - f);
      dx[H + u] = f * inv2 * (dbb - da) * i * (1 - i);
      dx[2 * H + u] = c * i * inv * dg[u];
      carry[u] = f * inv * c;
    } else {
      const T z = s1[u];
      dx[u] = c * (gh[u] - hp[u]) * z * (1 - z);
      dx[H + u] = c * z * dg[u];
      carry[u] = (1 - z) * c;
    }
  }
}

// One (step, row) of the layer, generic: k = gx + bias into scratch, then the loops above.
// Writes h_t to hn and to the output row y; the backward adds dk into the row's bias sums.
template <typename T, bool LSTM>
struct MinRow {
  std::vector<T> kb, s1, s2, gh, dg;
  explicit MinRow(int64_t H) : kb((LSTM ? 3 : 2) * H), s1(H), s2(H), gh(H), dg(H) {}

  const T* biased(const T* k, const T* bias, int64_t G) {
    if (!bias) return k;
    for (int64_t q = 0; q < G; ++q) kb[q] = k[q] + bias[q];
    return kb.data();
  }
  void forward(const T* k, const T* bias, const T* hp, T* hn, T* y, int64_t H) {
    min_gates<T, LSTM>(biased(k, bias, (LSTM ? 3 : 2) * H), s1.data(), s2.data(), gh.data(),
                       nullptr, H);
    min_step<T, LSTM>(s1.data(), s2.data(), gh.data(), hp, hn, H);
    std::copy(hn, hn + H, y);
  }
  void backward(const T* k, const T* bias, const T* hp, const T* dy, T* carry, T* dx, T* dbias,
                int64_t H) {
    const int64_t G = (LSTM ? 3 : 2) * H;
    min_gates<T, LSTM>(biased(k, bias, G), s1.data(), s2.data(), gh.data(), dg.data(), H);
    min_step_backward<T, LSTM>(s1.data(), s2.data(), gh.data(), dg.data(), hp, dy, carry, dx, H);
    if (dbias)
      for (int64_t q = 0; q < G; ++q) dbias[q] += dx[q];
  }
};

#ifdef RNNKIT_SLEEF
// Lanes u..u+15 of a row of H, masked at its end; k + bias as the gates read them.
#define RNNKIT_AVX512 __attribute__((target("avx512f"), always_inline)) inline
struct Lanes512 {  // masked only at a row's end: masked loads ran 3x slower on an AMD EPYC
  __mmask16 m;
  RNNKIT_AVX512 __m512 load(const float* p, int64_t u) const {
    return m == 0xFFFF ? _mm512_loadu_ps(p + u) : _mm512_maskz_loadu_ps(m, p + u);
  }
  RNNKIT_AVX512 __m512 load_k(const float* k, const float* bias, int64_t u) const {
    return bias ? _mm512_add_ps(load(k, u), load(bias, u)) : load(k, u);
  }
  RNNKIT_AVX512 void store(float* p, int64_t u, __m512 v) const {
    if (m == 0xFFFF) {
      _mm512_storeu_ps(p + u, v);
    } else {
      _mm512_mask_storeu_ps(p + u, m, v);
    }
  }
  // a store that bypasses the cache (p + u 64-byte aligned, all lanes), for rows that are
  // not read again soon: it writes the line without first reading it in
  RNNKIT_AVX512 void put(float* p, int64_t u, __m512 v, bool stream) const {
    if (stream && m == 0xFFFF) {
      _mm512_stream_ps(p + u, v);
    } else {
      store(p, u, v);
    }
  }
};
inline __mmask16 lanes(int64_t H, int64_t u) {
  return H - u >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (H - u)) - 1);
}

// One (step, row) in float32 with AVX-512, every value kept in registers from gx to h_t (the
// generic loops above pass each through five scratch rows, which made them about twice as
// slow), the same equations written with one reciprocal per gate pair: with e_q = exp(-k_q),
//   sigma(k) = 1 / (1 + e),  1 - sigma(k) = e sigma(k)
//   minLSTM: f' = f / (f + i) = (1 + e_i) / D,  i' = (1 + e_f) / D,  D = 2 + e_f + e_i
//            df'/dk_f = (e_f / D) f',  di'/dk_i = (e_i / D) i'  (and di' = -df')
//   minGRU:  z = (1 + e_h) / P,  sigma(k_h) = (1 + e_z) / P,  P = (1 + e_z)(1 + e_h)
// f' and i' are ratios, exact however saturated both gates are: every e and D are scaled by
// e^-s, s = max(0, -k_f, -k_i), so that each term is at most 1 and D e^-s at least 1. For
// minGRU and g's sigmoid, -k is capped at 40 (60) so that P cannot overflow: below the cap
// sigma(k) < 5e-18, and the capped value differs from it by less than that. The reciprocal
// is rcp14 and a Newton step (within 2 ulp), the exp rnnkit's inlined exp512 (common.h): with
// SLEEF's, a call, minGRU's forward took 7.5 ms at (T, b, i, h) = (2048, 8, 128, 256), with
// exp512 6.6 (one process, alternated); the divisions this form saves made no measurable
// difference.
RNNKIT_AVX512 __m512 exp_neg16(__m512 k, float cap) {
  return exp512(_mm512_min_ps(_mm512_set1_ps(cap), _mm512_sub_ps(_mm512_setzero_ps(), k)));
}
RNNKIT_AVX512 __m512 rcp16(__m512 x) {  // 1 / x for finite x >= 1
  const __m512 r = _mm512_rcp14_ps(x);
  return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(x, r, _mm512_set1_ps(1.0f)), r);
}
struct MinGates512 {  // one (step, row)'s 16 lanes of gates
  __m512 s1, a, g, dg;  // z or f' (s1), a = 1 - z or f', g(k_h), g'(k_h)
  __m512 s2, ef, ei, inv;  // minLSTM: i', e_f / D, e_i / D, 1 / D
  __mmask16 gt;            // k_h > 0, where g' = 1
};
template <bool LSTM, bool GRAD>
RNNKIT_AVX512 MinGates512 min_gates512(const Lanes512& L, const float* k, const float* bias,
                                       int64_t H, int64_t u) {
  const __m512 one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
  const int64_t oh = (LSTM ? 2 : 1) * H;  // k_h's block
  const __m512 kh = L.load_k(k + oh, bias ? bias + oh : nullptr, u);
  MinGates512 q;
  __m512 sh;
  if (LSTM) {
    const __m512 zero = _mm512_setzero_ps();
    const __m512 nf = _mm512_sub_ps(zero, L.load_k(k, bias, u));  // -k_f
    const __m512 ni = _mm512_sub_ps(zero, L.load_k(k + H, bias ? bias + H : nullptr, u));
    const __m512 s = _mm512_max_ps(zero, _mm512_max_ps(nf, ni));
    const __m512 e0 = exp512(_mm512_sub_ps(zero, s));  // e^-s, then e_f e^-s and e_i e^-s
    const __m512 ef = exp512(_mm512_sub_ps(nf, s)), ei = exp512(_mm512_sub_ps(ni, s));
    const __m512 inv = rcp16(_mm512_fmadd_ps(_mm512_add_ps(one, one), e0, _mm512_add_ps(ef, ei)));
    q.s1 = _mm512_mul_ps(_mm512_add_ps(e0, ei), inv);  // f'
    q.s2 = _mm512_mul_ps(_mm512_add_ps(e0, ef), inv);  // i'
    q.a = q.s1;
    q.ef = _mm512_mul_ps(ef, inv);
    q.ei = _mm512_mul_ps(ei, inv);
    q.inv = _mm512_mul_ps(e0, inv);
    sh = rcp16(_mm512_add_ps(one, exp_neg16(kh, 60.0f)));
  } else {
    const __m512 ez = exp_neg16(L.load_k(k, bias, u), 40.0f);
    const __m512 eh = exp_neg16(kh, 40.0f);
    const __m512 pz = _mm512_add_ps(one, ez), ph = _mm512_add_ps(one, eh);
    const __m512 r = rcp16(_mm512_mul_ps(pz, ph));
    q.s1 = _mm512_mul_ps(ph, r);  // z
    q.a = _mm512_mul_ps(ez, q.s1);  // 1 - z
    sh = _mm512_mul_ps(pz, r);
  }
  const __mmask16 pos = _mm512_cmp_ps_mask(kh, _mm512_setzero_ps(), _CMP_GE_OQ);
  q.g = _mm512_mask_blend_ps(pos, sh, _mm512_add_ps(kh, half));
  q.gt = _mm512_cmp_ps_mask(kh, _mm512_setzero_ps(), _CMP_GT_OQ);
  if (GRAD)  // g'(k_h): 1 above 0, sigma's slope at and below (as the generic loop)
    q.dg = _mm512_mask_blend_ps(q.gt, _mm512_mul_ps(sh, _mm512_sub_ps(one, sh)), one);
  return q;
}

// With `save` (the forward's bands, min_rnn_forward), what the backward needs is written
// there, so that the backward computes no exp (min_row_backward_saved512):
//   minGRU:  (z, +-g),  minLSTM: (f', 1 / D, +-g)
// with g's sign flipped where k_h > 0 (g > 0 everywhere, so the sign tells g' = 1 from
// sigma's slope g (1 - g)). With `stream` (H a multiple of 16, y and save 64-byte aligned),
// y and the saved row are written with non-temporal stores; the caller fences.
template <bool LSTM>
__attribute__((target("avx512f"))) void min_row_forward512(const float* k, const float* bias,
                                                             const float* hp, float* hn,
                                                             float* y, int64_t H, float* save,
                                                             bool stream) {
  for (int64_t u = 0; u < H; u += 16) {
    const Lanes512 L{lanes(H, u)};
    const MinGates512 q = min_gates512<LSTM, false>(L, k, bias, H, u);
    const __m512 p = L.load(hp, u);
    // a h + b:  f' h + i' g,  or (1 - z) h + z g
    const __m512 h = _mm512_fmadd_ps(q.a, p, _mm512_mul_ps(LSTM ? q.s2 : q.s1, q.g));
    L.store(hn, u, h);  // read back at the next step
    L.put(y, u, h, stream);
    if (save) {
      L.put(save, u, q.s1, stream);
      if (LSTM) L.put(save + H, u, q.inv, stream);
      const __m512 signed_g = _mm512_mask_sub_ps(q.g, q.gt, _mm512_setzero_ps(), q.g);
      L.put(save + (LSTM ? 2 : 1) * H, u, signed_g, stream);
    }
  }
}

// dx (the row's dk blocks, also added to dbias) and the new carry a c, c = dy + carry:
//   c (h_{t-1} - g) = w;  minGRU:  dk_z = -w z (1 - z),  dk_h = c z g'
//   minLSTM:  dk_f = w (e_f / D) f',  dk_i = -w (e_i / D) i',  dk_h = c i' g'
template <bool LSTM>
RNNKIT_AVX512 void min_row_grads512(const Lanes512& L, const MinGates512& q, const float* hp,
                                    const float* dy, float* carry, float* dx, float* dbias,
                                    int64_t H, int64_t u) {
  const __m512 p = L.load(hp, u);
  const __m512 c = _mm512_add_ps(L.load(dy, u), L.load(carry, u));
  const __m512 w = _mm512_mul_ps(c, _mm512_sub_ps(p, q.g));
  __m512 d0, d1, d2 = _mm512_setzero_ps();
  if (LSTM) {
    d0 = _mm512_mul_ps(w, _mm512_mul_ps(q.ef, q.s1));
    d1 = _mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(w, _mm512_mul_ps(q.ei, q.s2)));
    d2 = _mm512_mul_ps(_mm512_mul_ps(c, q.s2), q.dg);
  } else {
    d0 = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), w), q.s1), q.a);
    d1 = _mm512_mul_ps(_mm512_mul_ps(c, q.s1), q.dg);
  }
  L.store(carry, u, _mm512_mul_ps(q.a, c));
  L.store(dx, u, d0);
  L.store(dx + H, u, d1);
  if (LSTM) L.store(dx + 2 * H, u, d2);
  if (dbias) {
    L.store(dbias, u, _mm512_add_ps(L.load(dbias, u), d0));
    L.store(dbias + H, u, _mm512_add_ps(L.load(dbias + H, u), d1));
    if (LSTM) L.store(dbias + 2 * H, u, _mm512_add_ps(L.load(dbias + 2 * H, u), d2));
  }
}

// The backward from gx (the gates recomputed).
template <bool LSTM>
__attribute__((target("avx512f"))) void min_row_backward512(const float* k, const float* bias,
                                                              const float* hp, const float* dy,
                                                              float* carry, float* dx,
                                                              float* dbias, int64_t H) {
  for (int64_t u = 0; u < H; u += 16) {
    const Lanes512 L{lanes(H, u)};
    const MinGates512 q = min_gates512<LSTM, true>(L, k, bias, H, u);
    min_row_grads512<LSTM>(L, q, hp, dy, carry, dx, dbias, H, u);
  }
}

// The backward from what min_row_forward512 saved (no exp): with i' = 1 - f',
// e_f / D = i' - 1 / D and e_i / D = f' - 1 / D.
template <bool LSTM>
__attribute__((target("avx512f"))) void min_row_backward_saved512(const float* s,
                                                                    const float* hp,
                                                                    const float* dy,
                                                                    float* carry, float* dx,
                                                                    float* dbias, int64_t H) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t u = 0; u < H; u += 16) {
    const Lanes512 L{lanes(H, u)};
    MinGates512 q;
    q.s1 = L.load(s, u);
    const __m512 sg = L.load(s + (LSTM ? 2 : 1) * H, u);  // +-g
    q.g = _mm512_abs_ps(sg);
    const __mmask16 gt = _mm512_cmp_ps_mask(sg, _mm512_setzero_ps(), _CMP_LT_OQ);
    q.dg = _mm512_mask_blend_ps(gt, _mm512_mul_ps(q.g, _mm512_sub_ps(one, q.g)), one);
    if (LSTM) {
      const __m512 inv = L.load(s + H, u);
      q.s2 = _mm512_sub_ps(one, q.s1);
      q.a = q.s1;
      q.ef = _mm512_sub_ps(q.s2, inv);
      q.ei = _mm512_sub_ps(q.s1, inv);
    } else {
      q.a = _mm512_sub_ps(one, q.s1);
    }
    min_row_grads512<LSTM>(L, q, hp, dy, carry, dx, dbias, H, u);
  }
}
#endif

// save, stream: see min_row_forward512 (float32 on AVX-512 only)
template <typename T, bool LSTM>
void min_row_forward(MinRow<T, LSTM>& row, const T* k, const T* bias, const T* hp, T* hn, T* y,
                     int64_t H, T* save, bool stream) {
#ifdef RNNKIT_SLEEF
  if constexpr (std::is_same_v<T, float>) {
    if (simd_level() == 2) return min_row_forward512<LSTM>(k, bias, hp, hn, y, H, save, stream);
  }
#endif
  TORCH_CHECK(!save, "rnnkit min_rnn_forward: saved gates need AVX-512");
  row.forward(k, bias, hp, hn, y, H);
}

template <typename T, bool LSTM>
void min_row_backward(MinRow<T, LSTM>& row, const T* k, const T* bias, const T* hp,
                      const T* dy, T* carry, T* dx, T* dbias, int64_t H) {
#ifdef RNNKIT_SLEEF
  if constexpr (std::is_same_v<T, float>) {
    if (simd_level() == 2) return min_row_backward512<LSTM>(k, bias, hp, dy, carry, dx, dbias, H);
  }
#endif
  row.backward(k, bias, hp, dy, carry, dx, dbias, H);
}

inline int64_t row_grain(int64_t T_, int64_t H) {  // rows per thread: at least ~64k elements
  return std::max<int64_t>(1, 65536 / std::max<int64_t>(T_ * H, 1));
}

// Steps [t0, t1) of rows [r0, r1); step t of row r reads its gx row at k(t, r) and writes
// its saved gates at save(t, r) unless that is null (min_row_forward512).
template <typename T, bool LSTM, typename K, typename S>
void min_forward_rows(MinRow<T, LSTM>& row, const K& k, const S& save, bool stream,
                      const T* bias, const T* ok, T* h, T* y, int64_t t0, int64_t t1, int64_t b,
                      int64_t H, int64_t r0, int64_t r1) {
  for (int64_t t = t0; t < t1; ++t) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* hp = h + (t * b + r) * H;
      T* hn = h + ((t + 1) * b + r) * H;
      T* yr = y + (t * b + r) * H;
      if (ok && ok[t * b + r] == 0) {  // padding: the state is carried, the output is 0
        std::copy(hp, hp + H, hn);
        std::fill(yr, yr + H, T(0));
        continue;
      }
      min_row_forward<T, LSTM>(row, k(t, r), bias, hp, hn, yr, H, save(t, r), stream);
    }
  }
}

template <typename T, bool LSTM>
void min_backward_rows(const T* k, const T* bias, const T* ok, const T* h, const T* dy,
                       int64_t st, int64_t sb, const T* dhT, T* dx, T* dh0, T* dbias_rows,
                       int64_t T_, int64_t b, int64_t H, int64_t r0, int64_t r1) {
  const int64_t G = (LSTM ? 3 : 2) * H;
  MinRow<T, LSTM> row(H);
  std::copy(dhT + r0 * H, dhT + r1 * H, dh0 + r0 * H);  // the carry a_{t+1} c_{t+1}, in place
  // each row's bias gradient summed over up to 64 steps, then those sums added: a sum in two
  // levels instead of one of T terms (5e-7 -> 8e-8 relative at T = 2048 in float32)
  std::vector<T> part(dbias_rows ? (r1 - r0) * G : 0);
  for (int64_t t = T_ - 1; t >= 0; --t) {
    for (int64_t r = r0; r < r1; ++r) {
      T* dxr = dx + (t * b + r) * G;
      if (ok && ok[t * b + r] == 0) {  // a = 1, b = 0 and Y = 0: the carry passes through
        std::fill(dxr, dxr + G, T(0));
        continue;
      }
      min_row_backward<T, LSTM>(row, k + (t * b + r) * G, bias, h + (t * b + r) * H,
                                dy + t * st + r * sb, dh0 + r * H, dxr,
                                dbias_rows ? part.data() + (r - r0) * G : nullptr, H);
    }
    if (dbias_rows && ((T_ - t) % 64 == 0 || t == 0)) {
      for (int64_t q = 0; q < (r1 - r0) * G; ++q) dbias_rows[r0 * G + q] += part[q];
      std::fill(part.begin(), part.end(), T(0));
    }
  }
}

// Whether minGRU / minLSTM's products are fused into its passes (min_rnn_forward's chunked
// projection, min_rnn_backward_products): float32 on an AVX-512 CPU (not
// RNNKIT_OWN_GEMM=0), W of at most kSmallW values, at least one batch row per thread (with
// fewer, min_rnn_backward and the library's products keep every thread busy).
bool min_rnn_products_apply(const Tensor& x, const Tensor& W) {
  return x.scalar_type() == at::kFloat && W.scalar_type() == at::kFloat && x.dim() == 3 &&
         x.stride(2) == 1 && x.device().is_cpu() && W.numel() <= kSmallW && packed_steps() &&
         x.size(0) > 0 &&
         x.size(1) >= at::get_num_threads();
}

// x (T, b, I), W (G, I), bias (G) or none, h0 (b, H), valid (T, b) or none. Returns
//   Y (T, b, H): h_1..h_T, zero on padding (the layer's output),
//   h_T (b, H): the state after the last step (padding carries it),
//   gx = x W^T and Hs (T+1, b, H) = h_0..h_T, saved for the backward,
//   bands (a 0-dim int64): 0 when gx is (T, b, G); else the number of bands of batch rows
//   gx is laid out in, (T b, G), bias added (see below), which only
//   min_rnn_backward_products reads.
// The projection is computed here so that gx, like Hs and Y, comes from rnnkit's buffer cache;
// the bias is added as the gates read gx, which saves a pass over it.
std::vector<Tensor> min_rnn_forward(const Tensor& x, const Tensor& W,
                                    const std::optional<Tensor>& bias, const Tensor& h0,
                                    const std::optional<Tensor>& valid, bool lstm) {
  TORCH_CHECK(x.device().is_cpu() && x.is_contiguous() && x.dim() == 3,
              "rnnkit min_rnn_forward: x must be a contiguous (t, b, i) CPU tensor");
  const int64_t T_ = x.size(0), b = x.size(1), I = x.size(2), G = W.size(0), H = h0.size(-1);
  const auto same = [&](const Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == x.scalar_type();
  };
  TORCH_CHECK(same(W) && same(h0) && h0.is_contiguous(),
              "rnnkit min_rnn_forward: W and h0 must be CPU tensors of x's dtype");
  TORCH_CHECK(W.dim() == 2 && G == (lstm ? 3 : 2) * H && W.size(1) == I,
              "rnnkit min_rnn_forward: W must be (", lstm ? 3 : 2, " h, i) = (",
              (lstm ? 3 : 2) * H, ", ", I, "), got ", W.sizes());
  TORCH_CHECK(h0.sizes() == at::IntArrayRef({b, H}), "rnnkit min_rnn_forward: h0 must be (b, h)");
  TORCH_CHECK(!bias.has_value() || !bias->defined() ||
                  (same(*bias) && bias->dim() == 1 && bias->size(0) == G),
              "rnnkit min_rnn_forward: bias must be (", G, ",) of x's dtype");
  TORCH_CHECK(!valid.has_value() || valid->sizes() == at::IntArrayRef({T_, b}),
              "rnnkit min_rnn_forward: valid must be (t, b)");
  Tensor gx = seq_empty({T_, b, G}, x.options());
  Tensor Hs = seq_empty({T_ + 1, b, H}, x.options());
  Tensor Y = seq_empty({T_, b, H}, x.options());
  Hs[0].copy_(h0);
  const Tensor v = valid.has_value() ? valid->to(x.scalar_type()).contiguous() : Tensor();
  const Tensor bv = bias.has_value() && bias->defined() ? bias->contiguous() : Tensor();
  if (min_rnn_products_apply(x, W)) {
    // Each thread a band of batch rows, time in chunks of about 128 (step, row) pairs of its
    // band: the chunk's projection (rnnkit's packed kernel, step.h, the bias added) goes into
    // the thread's scratch, and the rows pass reads it from cache, instead of a
    // whole-sequence gx written out and read back. What the backward needs of the gates is
    // saved in "gx" band by band, band q's pairs as a (T, rows of q, G) block, written (like
    // the output) with non-temporal stores: 0.2-0.3 ms less of minGRU's 6.4 at (T, b, i, h) =
    // (2048, 8, 128, 256) than the projection written to gx and overwritten there.
    const Tensor Wc = W.contiguous();
    const Packed Wp = pack(Wc.const_data_ptr<float>(), G, I, I, 1);
    const int64_t bands = std::min<int64_t>(at::get_num_threads(), b);
    const float* x_ = x.const_data_ptr<float>();
    const float* bp = bv.defined() ? bv.const_data_ptr<float>() : nullptr;
    const float* ok = v.defined() ? v.const_data_ptr<float>() : nullptr;
    float* h = Hs.data_ptr<float>();
    float* y = Y.data_ptr<float>();
    const auto aligned = [](const float* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; };
    const bool stream = H % 16 == 0 && aligned(y) && aligned(gx.data_ptr<float>());
    auto band = [&](auto lstm_tag, int64_t q) {
      constexpr bool L = decltype(lstm_tag)::value;
      const auto [r0, r1] = split(b, bands, q);
      const int64_t nr = r1 - r0, steps = std::max<int64_t>(1, 128 / nr);
      float* saved = gx.data_ptr<float>() + T_ * r0 * G;  // the band's block
      MinRow<float, L> row(H);
      Scratch xs(steps * nr * I);  // the chunk's rows of x, gathered
      Scratch ks(steps * nr * G);  // its projection
      for (int64_t t0 = 0; t0 < T_; t0 += steps) {
        const int64_t t1 = std::min(T_, t0 + steps);
        for (int64_t t = t0; t < t1; ++t)
          std::copy_n(x_ + (t * b + r0) * I, nr * I, xs.data() + (t - t0) * nr * I);
        gemm_panels(xs.data(), I, (t1 - t0) * nr, Wp, 0, Wp.panels, ks.data(), G, bp, 0);
        min_forward_rows<float, L>(
            row, [&](int64_t t, int64_t r) { return ks.data() + ((t - t0) * nr + r - r0) * G; },
            [&](int64_t t, int64_t r) { return saved + (t * nr + r - r0) * G; }, stream, nullptr,
            ok, h, y, t0, t1, b, H, r0, r1);
      }
      stream_fence();
    };
    run_phases(1, bands, [&](int64_t) { return bands; }, [&](int64_t, int64_t q) {
      if (lstm) {
        band(std::true_type{}, q);
      } else {
        band(std::false_type{}, q);
      }
    });
    return {Y, Hs[T_].clone(), gx.view({T_ * b, G}), Hs, at::scalar_tensor(bands, at::kLong)};
  }
  if (x.scalar_type() == at::kFloat && packed_steps() && G * I <= kSmallW && T_ * b > 0) {
    // rnnkit's packed kernel (step.h): 1.8x MKL's torch.mm here on an AMD EPYC
    const Tensor Wc = W.contiguous();
    linear_rows(x.const_data_ptr<float>(), T_ * b, pack(Wc.const_data_ptr<float>(), G, I, I, 1),
                nullptr, gx.data_ptr<float>());
  } else {
    Tensor gx2 = gx.view({T_ * b, G});
    at::mm_out(gx2, x.view({T_ * b, I}), W.t());
  }
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_min_rnn_forward", [&] {
    using T = scalar_t;
    const T* k = gx.const_data_ptr<T>();
    const T* bp = bv.defined() ? bv.const_data_ptr<T>() : nullptr;
    const T* ok = v.defined() ? v.const_data_ptr<T>() : nullptr;
    T* h = Hs.data_ptr<T>();
    T* y = Y.data_ptr<T>();
    auto kp = [&](int64_t t, int64_t r) { return k + (t * b + r) * G; };
    auto no_save = [](int64_t, int64_t) -> T* { return nullptr; };
    at::parallel_for(0, b, row_grain(T_, H), [&](int64_t r0, int64_t r1) {
      if (lstm) {
        MinRow<T, true> row(H);
        min_forward_rows<T, true>(row, kp, no_save, false, bp, ok, h, y, 0, T_, b, H, r0, r1);
      } else {
        MinRow<T, false> row(H);
        min_forward_rows<T, false>(row, kp, no_save, false, bp, ok, h, y, 0, T_, b, H, r0, r1);
      }
    });
  });
  Tensor hT = Hs[T_].clone();  // not a view of the saved Hs
  return {Y, hT, gx, Hs, at::scalar_tensor(0, at::kLong)};
}

// The argument checks of the two backward passes below.
// gx is (T, b, G), or (T b, G) in `bands` bands (> 0; min_rnn_forward's products path).
void check_backward(const Tensor& dY, const Tensor& dhT, const Tensor& gx, const Tensor& Hs,
                    const std::optional<Tensor>& bias, const std::optional<Tensor>& valid,
                    bool lstm, int64_t bands = 0) {
  TORCH_CHECK(gx.dim() == (bands > 0 ? 2 : 3) && Hs.dim() == 3 && gx.is_contiguous() &&
                  Hs.is_contiguous() && Hs.size(0) > 0,
              "rnnkit min_rnn_backward: gx and Hs must be contiguous (t, b, .) tensors, or gx "
              "(t b, .) with bands > 0");
  const int64_t T_ = Hs.size(0) - 1, b = Hs.size(1), G = gx.size(-1), H = Hs.size(-1);
  const bool gx_shape = bands > 0 ? gx.size(0) == T_ * b && bands <= std::max<int64_t>(b, 1)
                                   : gx.size(0) == T_ && gx.size(1) == b;
  TORCH_CHECK(G == (lstm ? 3 : 2) * H && gx_shape,
              "rnnkit min_rnn_backward: gx (t, b, ", lstm ? 3 : 2, " h) and Hs (t + 1, b, h) "
              "do not match");
  TORCH_CHECK(dY.sizes() == at::IntArrayRef({T_, b, H}) && dhT.sizes() == at::IntArrayRef({b, H}),
              "rnnkit min_rnn_backward: dY must be (t, b, h) and dhT (b, h)");
  // dY may be any (t, b) view: a batch-first output's gradient, or a broadcast one (stride 0);
  // over units it is read as contiguous (a single unit, or none, has any stride)
  TORCH_CHECK(dY.stride(2) == 1 || H <= 1 || dY.numel() == 0,
              "rnnkit min_rnn_backward: dY must have unit stride over units");
  TORCH_CHECK(dhT.is_contiguous() && dY.scalar_type() == gx.scalar_type() &&
                  dhT.scalar_type() == gx.scalar_type() && Hs.scalar_type() == gx.scalar_type(),
              "rnnkit min_rnn_backward: dY, dhT, Hs must be of gx's dtype, dhT contiguous");
  TORCH_CHECK(!bias.has_value() || !bias->defined() ||
                  (bias->scalar_type() == gx.scalar_type() && bias->numel() == G),
              "rnnkit min_rnn_backward: bias must be (", G, ",) of gx's dtype");
  TORCH_CHECK(!valid.has_value() || valid->sizes() == at::IntArrayRef({T_, b}),
              "rnnkit min_rnn_backward: valid must be (t, b)");
}

// dY (T, b, H) the gradient of Y (any strides over t and b), dh_T (b, H) that of h_T; bias
// as in the forward (only whether it is there, and its values, matter). Returns dgx
// (T, b, G), the gradient of gx (the caller takes it through the projection), dh_0 (b, H)
// and dbias (G, empty without).
std::vector<Tensor> min_rnn_backward(const Tensor& dY, const Tensor& dhT, const Tensor& gx,
                                     const Tensor& Hs, const std::optional<Tensor>& bias,
                                     const std::optional<Tensor>& valid, bool lstm) {
  check_backward(dY, dhT, gx, Hs, bias, valid, lstm);
  const int64_t T_ = gx.size(0), b = gx.size(1), G = gx.size(2), H = Hs.size(-1);
  const int64_t st = dY.stride(0), sb = dY.stride(1);
  Tensor dgx = seq_empty(gx.sizes(), gx.options());
  Tensor dh0 = at::empty({b, H}, gx.options());
  const Tensor v = valid.has_value() ? valid->to(gx.scalar_type()).contiguous() : Tensor();
  const Tensor bv = bias.has_value() && bias->defined() ? bias->contiguous() : Tensor();
  // each row's bias gradient, summed over its steps; then over rows, in order (deterministic)
  Tensor db_rows = bv.defined() ? at::zeros({b, G}, gx.options()) : Tensor();
  AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "rnnkit_min_rnn_backward", [&] {
    using T = scalar_t;
    const T* k = gx.const_data_ptr<T>();
    const T* bp = bv.defined() ? bv.const_data_ptr<T>() : nullptr;
    const T* dy = dY.const_data_ptr<T>();
    const T* h = Hs.const_data_ptr<T>();
    const T* d_T = dhT.const_data_ptr<T>();
    const T* ok = v.defined() ? v.const_data_ptr<T>() : nullptr;
    T* dx = dgx.data_ptr<T>();
    T* d0 = dh0.data_ptr<T>();
    T* dbr = db_rows.defined() ? db_rows.data_ptr<T>() : nullptr;
    at::parallel_for(0, b, row_grain(T_, H), [&](int64_t r0, int64_t r1) {
      if (lstm) {
        min_backward_rows<T, true>(k, bp, ok, h, dy, st, sb, d_T, dx, d0, dbr, T_, b, H, r0,
                                   r1);
      } else {
        min_backward_rows<T, false>(k, bp, ok, h, dy, st, sb, d_T, dx, d0, dbr, T_, b, H, r0,
                                    r1);
      }
    });
  });
  Tensor db = bv.defined() ? db_rows.sum(0, false, at::kDouble).to(gx.scalar_type()) : empty0(gx);
  return {dgx, dh0, db};
}

// The backward with the input projection's products fused in (float32, rnnkit's own
// kernels, W of at most kSmallW values, at least one batch row per thread): x (T, b, I; any
// (t, b) strides) and W (G, I) as in the forward; the other arguments as min_rnn_backward's.
// gx_bands is what min_rnn_forward returned with gx. Returns dx (T, b, I; empty without
// need_x), dW (G, I; empty without need_W), dh_0 (b, H) and dbias (G, empty without).
//
// min_rnn_backward writes dgx (T, b, G) for dx = dgx W and dW = dgx^T x to read back twice:
// at (T, b, h) = (2048, 8, 256), 96 of the 200 MB the backward moves. Here each thread owns a
// band of batch rows and walks time backwards in chunks of about 128 (step, row) pairs of its
// band: the rows pass writes a chunk's dgx into the thread's scratch, and dx for those pairs
// (packed W^T, step.h) and the thread's share of dW (outer.h) read it back while it is in the
// core's cache. The shares are added in band order at the end.
std::vector<Tensor> min_rnn_backward_products(const Tensor& dY, const Tensor& dhT,
                                              const Tensor& gx, const Tensor& Hs,
                                              const std::optional<Tensor>& bias,
                                              const std::optional<Tensor>& valid, bool lstm,
                                              const Tensor& x, const Tensor& W, bool need_x,
                                              bool need_W, int64_t gx_bands) {
  check_backward(dY, dhT, gx, Hs, bias, valid, lstm, gx_bands);
  const int64_t T_ = Hs.size(0) - 1, b = Hs.size(1), G = gx.size(-1), H = Hs.size(-1);
  const int64_t I = x.size(-1);
  // gx as the forward laid it out: in its bands (the thread count may have changed since),
  // or (T, b, G), split here as the threads allow
  const int64_t bands = gx_bands > 0 ? gx_bands : std::min<int64_t>(at::get_num_threads(), b);
  // the forward's products path ran on this CPU, so its kernels apply whatever
  // RNNKIT_OWN_GEMM now says
  const bool kernels = gx_bands > 0 ? packed_kernel_cpu() : packed_steps();
  TORCH_CHECK(gx.scalar_type() == at::kFloat && x.scalar_type() == at::kFloat &&
                  W.scalar_type() == at::kFloat && x.stride(2) == 1 &&
                  x.sizes() == at::IntArrayRef({T_, b, I}) &&
                  W.sizes() == at::IntArrayRef({G, I}) && G * I <= kSmallW && kernels &&
                  T_ > 0 && b > 0,
              "rnnkit min_rnn_backward_products: float32 x (t, b, i) with unit stride over i "
              "and a small W (g, i) on an AVX-512 CPU (see min_rnn_products_apply)");
#ifdef RNNKIT_SLEEF
  const int64_t st = dY.stride(0), sb = dY.stride(1);
  Tensor dx = need_x ? seq_empty({T_, b, I}, x.options()) : empty0(x);
  Tensor dWs = need_W ? at::empty({bands, G, I}, x.options()) : empty0(x);  // band shares
  Tensor dh0 = at::empty({b, H}, gx.options());
  const Tensor v = valid.has_value() ? valid->to(gx.scalar_type()).contiguous() : Tensor();
  const Tensor bv = bias.has_value() && bias->defined() ? bias->contiguous() : Tensor();
  Tensor db_rows = bv.defined() ? at::zeros({b, G}, gx.options()) : Tensor();
  const Tensor Wc = W.contiguous();
  const Packed WT = pack(Wc.const_data_ptr<float>(), I, G, 1, I);  // dx = dgx W
  const float* k = gx.const_data_ptr<float>();
  const float* bp = bv.defined() ? bv.const_data_ptr<float>() : nullptr;
  const float* dy = dY.const_data_ptr<float>();
  const float* h = Hs.const_data_ptr<float>();
  const float* ok = v.defined() ? v.const_data_ptr<float>() : nullptr;
  const float* x_ = x.const_data_ptr<float>();  // x[t, r] at x_ + t * sxt + r * sxb
  const int64_t sxt = x.stride(0), sxb = x.stride(1);
  float* dx_ = need_x ? dx.data_ptr<float>() : nullptr;
  float* d0 = dh0.data_ptr<float>();
  float* dbr = db_rows.defined() ? db_rows.data_ptr<float>() : nullptr;
  std::copy(dhT.const_data_ptr<float>(), dhT.const_data_ptr<float>() + b * H, d0);  // carries
  auto band = [&](auto lstm_tag, int64_t q) {
    constexpr bool L = decltype(lstm_tag)::value;
    const auto [r0, r1] = split(b, bands, q);
    const int64_t nr = r1 - r0, steps = std::max<int64_t>(1, 128 / nr);  // per chunk
    MinRow<float, L> row(H);
    Scratch dg(steps * nr * G);  // the chunk's dgx, pair (t - t0, r - r0)
    Scratch xp((I + 7) / 8 * kChunk * 8);
    Scratch dWT(need_W ? I * G : 0);  // the band's share of dW, transposed (outer.h)
    Scratch dxs(dx_ ? steps * nr * I : 0);  // the chunk's dx, pair by pair
    // pair (t, r)'s gx: in the band's (T, nr, G) block, or at (t, r) of (T, b, G)
    const float* kq = gx_bands > 0 ? k + T_ * r0 * G : k + r0 * G;
    const int64_t kt = gx_bands > 0 ? nr * G : b * G;
    // each row's bias gradient, summed over the chunk's steps, then over chunks: a float32
    // sum in two levels instead of one of T terms (as min_backward_rows)
    std::vector<float> dbc(dbr ? nr * G : 0);  // (not a Scratch: those share an alignment)
    for (int64_t t1 = T_; t1 > 0; t1 -= steps) {
      const int64_t t0 = std::max<int64_t>(0, t1 - steps);
      if (dbr) std::fill_n(dbc.data(), nr * G, 0.0f);
      for (int64_t t = t1 - 1; t >= t0; --t)
        for (int64_t r = r0; r < r1; ++r) {
          float* dgr = dg.data() + ((t - t0) * nr + r - r0) * G;
          if (ok && ok[t * b + r] == 0) {  // a = 1, b = 0 and Y = 0: the carry passes through
            std::fill(dgr, dgr + G, 0.0f);
            continue;
          }
          const float* kr = kq + t * kt + (r - r0) * G;
          const float* hp = h + (t * b + r) * H;
          const float* dyr = dy + t * st + r * sb;
          float* dbias = dbr ? dbc.data() + (r - r0) * G : nullptr;
          if (gx_bands > 0) {  // the forward saved its gates (min_row_forward512)
            min_row_backward_saved512<L>(kr, hp, dyr, d0 + r * H, dgr, dbias, H);
          } else {
            min_row_backward<float, L>(row, kr, bp, hp, dyr, d0 + r * H, dgr, dbias, H);
          }
        }
      if (dbr)
        for (int64_t q = 0; q < nr * G; ++q) dbr[r0 * G + q] += dbc[q];
      if (dx_) {  // one product over the chunk's pairs (full tiles of 8), then into place
        // (non-temporal stores: 0.2-0.3 ms less of minGRU's 13.4 at (2048, 8, 128, 256))
        gemm_panels(dg.data(), G, (t1 - t0) * nr, WT, 0, WT.panels, dxs.data(), I, nullptr, 0);
        for (int64_t t = t0; t < t1; ++t)
          stream_copy(dxs.data() + (t - t0) * nr * I, dx_ + (t * b + r0) * I, nr * I);
      }
      const int64_t pairs = need_W ? (t1 - t0) * nr : 0;  // more than kChunk only when nr is
      for (int64_t k0 = 0; k0 < pairs; k0 += kChunk)
        weight_grad_chunk(
            dg.data() + k0 * G, G, 0, G,
            [&](int64_t kk) {
              kk += k0;
              return x_ + (t0 + kk / nr) * sxt + (r0 + kk % nr) * sxb;
            },
            std::min(kChunk, pairs - k0), I, dWT.data(), G, t1 == T_ && k0 == 0, xp.data());
    }
    if (need_W) band_into(dWT.data(), G, 0, G, I, dWs.data_ptr<float>() + q * G * I);
    stream_fence();
  };
  run_phases(1, bands, [&](int64_t) { return bands; }, [&](int64_t, int64_t q) {
    if (lstm) {
      band(std::true_type{}, q);
    } else {
      band(std::false_type{}, q);
    }
  });
  Tensor dW = !need_W ? empty0(x) : bands == 1 ? dWs[0] : dWs.sum(0);
  Tensor db = bv.defined() ? db_rows.sum(0, false, at::kDouble).to(gx.scalar_type()) : empty0(gx);
  return {dx, dW, dh0, db};
#else
  TORCH_CHECK(false, "rnnkit min_rnn_backward_products: needs an x86-64 build");
#endif
}

// The buffer cache (pool.h): {bytes cached, bytes held by live tensors}, and emptying it.
std::vector<int64_t> cache_info() {
  const auto s = SeqPool::get().stats();
  return {s.first, s.second};
}
void empty_cache() { SeqPool::get().empty(); }

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def(
      "min_rnn_forward(Tensor x, Tensor W, Tensor? bias, Tensor h0, Tensor? valid, bool lstm) "
      "-> Tensor[]");
  m.def(
      "min_rnn_backward(Tensor dY, Tensor dhT, Tensor gx, Tensor Hs, Tensor? bias, Tensor? valid, "
      "bool lstm) -> Tensor[]");
  m.def(
      "min_rnn_backward_products(Tensor dY, Tensor dhT, Tensor gx, Tensor Hs, Tensor? bias, "
      "Tensor? valid, bool lstm, Tensor x, Tensor W, bool need_x, bool need_W, int gx_bands) "
      "-> Tensor[]");
  m.def("min_rnn_products_apply(Tensor x, Tensor W) -> bool");
  m.def("cache_info() -> int[]", &cache_info);  // no tensor arguments: one kernel for all
  m.def("empty_cache() -> ()", &empty_cache);
  m.def("linear_recurrence_forward(Tensor a, Tensor b, Tensor h0) -> Tensor");
  m.def("linear_recurrence_backward(Tensor dh, Tensor a) -> Tensor");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("linear_recurrence_forward", &linear_recurrence_forward);
  m.impl("linear_recurrence_backward", &linear_recurrence_backward);
  m.impl("min_rnn_forward", &min_rnn_forward);
  m.impl("min_rnn_backward", &min_rnn_backward);
  m.impl("min_rnn_backward_products", &min_rnn_backward_products);
  m.impl("min_rnn_products_apply", &min_rnn_products_apply);
}
