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

#include "common.h"

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
// and each runs all T steps of its rows; the gates are recomputed in the backward from gx
// rather than stored. gx (T, b, 2H or 3H), the gate blocks in that order.

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

inline int64_t row_grain(int64_t T_, int64_t H) {  // rows per thread: at least ~64k elements
  return std::max<int64_t>(1, 65536 / std::max<int64_t>(T_ * H, 1));
}

// gx (T, b, G), h0 (b, H), valid (T, b) or none: returns Hs (T+1, b, H) = h_0..h_T.
Tensor min_rnn_forward(const Tensor& gx, const Tensor& h0, const std::optional<Tensor>& valid,
                       bool lstm) {
  TORCH_CHECK(gx.device().is_cpu() && gx.is_contiguous() && gx.dim() == 3,
              "rnnkit min_rnn_forward: gx must be a contiguous (t, b, g) CPU tensor");
  const int64_t T_ = gx.size(0), b = gx.size(1), G = gx.size(2), H = h0.size(-1);
  TORCH_CHECK(G == (lstm ? 3 : 2) * H, "rnnkit min_rnn_forward: gx has the wrong width");
  Tensor Hs = seq_empty({T_ + 1, b, H}, gx.options());
  Hs[0].copy_(h0);
  const Tensor v = valid.has_value() ? valid->to(gx.scalar_type()).contiguous() : Tensor();
  AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "rnnkit_min_rnn_forward", [&] {
    using T = scalar_t;
    const T* x = gx.const_data_ptr<T>();
    const T* ok = v.defined() ? v.const_data_ptr<T>() : nullptr;
    T* h = Hs.data_ptr<T>();
    at::parallel_for(0, b, row_grain(T_, H), [&](int64_t r0, int64_t r1) {
      std::vector<T> s1(H), s2(H), gh(H);
      for (int64_t t = 0; t < T_; ++t) {
        for (int64_t r = r0; r < r1; ++r) {
          const T* hp = h + (t * b + r) * H;
          T* hn = h + ((t + 1) * b + r) * H;
          if (ok && ok[t * b + r] == 0) {
            std::copy(hp, hp + H, hn);
            continue;
          }
          const T* xr = x + (t * b + r) * G;
          if (lstm) {
            min_gates<T, true>(xr, s1.data(), s2.data(), gh.data(), nullptr, H);
            min_step<T, true>(s1.data(), s2.data(), gh.data(), hp, hn, H);
          } else {
            min_gates<T, false>(xr, s1.data(), s2.data(), gh.data(), nullptr, H);
            min_step<T, false>(s1.data(), s2.data(), gh.data(), hp, hn, H);
          }
        }
      }
    });
  });
  return Hs;
}

// dY (T, b, H) the gradient of h_1..h_T: returns dgx (T, b, G) and dh_0 (b, H).
std::vector<Tensor> min_rnn_backward(const Tensor& dY, const Tensor& gx, const Tensor& Hs,
                                     const std::optional<Tensor>& valid, bool lstm) {
  TORCH_CHECK(dY.is_contiguous() && gx.is_contiguous() && Hs.is_contiguous(),
              "rnnkit min_rnn_backward: contiguous input");
  const int64_t T_ = gx.size(0), b = gx.size(1), G = gx.size(2), H = Hs.size(-1);
  Tensor dgx = seq_empty(gx.sizes(), gx.options());
  Tensor dh0 = at::empty({b, H}, gx.options());
  const Tensor v = valid.has_value() ? valid->to(gx.scalar_type()).contiguous() : Tensor();
  AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "rnnkit_min_rnn_backward", [&] {
    using T = scalar_t;
    const T* x = gx.const_data_ptr<T>();
    const T* dy = dY.const_data_ptr<T>();
    const T* h = Hs.const_data_ptr<T>();
    const T* ok = v.defined() ? v.const_data_ptr<T>() : nullptr;
    T* dx = dgx.data_ptr<T>();
    at::parallel_for(0, b, row_grain(T_, H), [&](int64_t r0, int64_t r1) {
      std::vector<T> s1(H), s2(H), gh(H), dg(H);
      std::vector<T> carry(size_t(r1 - r0) * H, T(0));  // a_{t+1} c_{t+1}
      for (int64_t t = T_ - 1; t >= 0; --t) {
        for (int64_t r = r0; r < r1; ++r) {
          T* cr = carry.data() + (r - r0) * H;
          const T* dyr = dy + (t * b + r) * H;
          T* dxr = dx + (t * b + r) * G;
          if (ok && ok[t * b + r] == 0) {  // a = 1, b = 0: c passes through, no gate gradient
            for (int64_t u = 0; u < H; ++u) cr[u] += dyr[u];
            std::fill(dxr, dxr + G, T(0));
            continue;
          }
          const T* xr = x + (t * b + r) * G;
          const T* hp = h + (t * b + r) * H;  // h_{t-1}
          if (lstm) {
            min_gates<T, true>(xr, s1.data(), s2.data(), gh.data(), dg.data(), H);
            min_step_backward<T, true>(s1.data(), s2.data(), gh.data(), dg.data(), hp, dyr, cr,
                                       dxr, H);
          } else {
            min_gates<T, false>(xr, s1.data(), s2.data(), gh.data(), dg.data(), H);
            min_step_backward<T, false>(s1.data(), s2.data(), gh.data(), dg.data(), hp, dyr, cr,
                                        dxr, H);
          }
        }
      }
      for (int64_t r = r0; r < r1; ++r)
        std::copy(carry.data() + (r - r0) * H, carry.data() + (r - r0 + 1) * H,
                  dh0.data_ptr<T>() + r * H);
    });
  });
  return {dgx, dh0};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("min_rnn_forward(Tensor gx, Tensor h0, Tensor? valid, bool lstm) -> Tensor");
  m.def(
      "min_rnn_backward(Tensor dY, Tensor gx, Tensor Hs, Tensor? valid, bool lstm) -> Tensor[]");
  m.def("linear_recurrence_forward(Tensor a, Tensor b, Tensor h0) -> Tensor");
  m.def("linear_recurrence_backward(Tensor dh, Tensor a) -> Tensor");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("linear_recurrence_forward", &linear_recurrence_forward);
  m.impl("linear_recurrence_backward", &linear_recurrence_backward);
  m.impl("min_rnn_forward", &min_rnn_forward);
  m.impl("min_rnn_backward", &min_rnn_backward);
}
