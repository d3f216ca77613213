// The GRU time loops of rnnkit's fused path, in C++ (CPU, float32 and float64).
//
// The same equations as rnnkit.fused.GRUFunction (whose docstring derives them), one matrix
// product and one pass over the step's elements per step; see lstm.cpp for why.
//
// Notation, per step and batch row (gates in torch's order r, z, n; gx = W_ih x_t + b_ih):
//   q   = (h_{t-1} * m) W_hh^T + b_hh     (layer norm: q = a^ g_hh + b_hh, a = (h * m) W_hh^T)
//   r, z = sigma(gx_r + q_r), sigma(gx_z + q_z)
//   n   = tanh(gx_n + r q_n)
//   h~  = (1 - z) n + z h_{t-1}
//   h_t = d h_{t-1} + (1 - d) h~                                                   (zoneout)
//
// Shapes: T time, b batch, H hidden, G = 3H.

#include "step.h"

namespace {

using namespace rnnkit_csrc;

template <typename T>
void forward_loop(const Tensor& gx, const Tensor& W_hh, const std::optional<Tensor>& b_hh,
                  const T* g_hh, const T* b_hh_, const T* h_mask, const T* keep_h, double eps,
                  Tensor& A, Tensor& Qn, Tensor& Hs, Tensor& Hin, Tensor& Ahat, Tensor& Rs) {
  const int64_t T_ = gx.size(0), b = gx.size(1), G = gx.size(2), H = G / 3;
  const bool ln = g_hh != nullptr;
  const Tensor W = W_hh.contiguous();  // (3h, h): a = h W_hh^T (linear_nt)
  // h * m at step j, the input of W_hh (recurrent dropout), row r
  auto masked_input = [&](int64_t j, int64_t r) {
    const T* h = Hs.const_data_ptr<T>() + (j * b + r) * H;
    T* hin = Hin.data_ptr<T>() + (j * b + r) * H;
    const T* m = h_mask + r * H;
    for (int64_t u = 0; u < H; ++u) hin[u] = h[u] * m[u];
  };
  // step j of row r, from q = a = (h * m) W_hh^T
  auto row = [&](int64_t j, int64_t r, T* q) {
    const T* x = gx.const_data_ptr<T>() + (j * b + r) * G;
    if (ln) {  // q = a^ g_hh + b_hh
      T* ahat = Ahat.data_ptr<T>() + (j * b + r) * G;
      Rs.data_ptr<T>()[j * b + r] = gate_norm(q, b_hh_, g_hh, ahat, G, eps);
    } else if (b_hh_) {  // q = b_hh + a
      for (int64_t k = 0; k < G; ++k) q[k] += b_hh_[k];
    }
    T* a = A.data_ptr<T>() + (j * b + r) * G;
    T* qn = Qn.data_ptr<T>() + (j * b + r) * H;
    for (int64_t k = 0; k < 2 * H; ++k) a[k] = x[k] + q[k];  // s_r, s_z
    sigmoid(a, a, 2 * H);                                     // r, z
    for (int64_t u = 0; u < H; ++u) {
      qn[u] = q[2 * H + u];
      a[2 * H + u] = x[2 * H + u] + a[u] * qn[u];  // s_n = gx_n + r q_n
    }
    tanh_n(a + 2 * H, a + 2 * H, H);  // n
    const T* hp = Hs.const_data_ptr<T>() + (j * b + r) * H;
    T* hr = Hs.data_ptr<T>() + ((j + 1) * b + r) * H;
    for (int64_t u = 0; u < H; ++u) {
      const T n = a[2 * H + u], z = a[H + u];
      hr[u] = n + z * (hp[u] - n);  // h~ = (1 - z) n + z h
    }
    if (keep_h) {
      const T* d = keep_h + (j * b + r) * H;
      for (int64_t u = 0; u < H; ++u) hr[u] = keep_blend(d[u], hp[u], hr[u]);
    }
  };
  if constexpr (std::is_same_v<T, float>) {
    const int64_t bands = packed_steps() ? row_bands(b, G * H) : 0;
    if (bands) {  // each thread its batch rows, every step (step.h)
      const Packed Wp = pack(W.const_data_ptr<float>(), G, H, H, 1);
      Tensor S = at::empty({b, G}, gx.options());
      float* s_ = S.data_ptr<float>();
      run_phases(1, bands, [&](int64_t) { return bands; }, [&](int64_t, int64_t q) {
        const auto [r0, r1] = split(b, bands, q);
        for (int64_t j = 0; j < T_; ++j) {
          if (h_mask)
            for (int64_t r = r0; r < r1; ++r) masked_input(j, r);
          const float* x = (h_mask ? Hin : Hs).template const_data_ptr<float>() + (j * b + r0) * H;
          gemm_panels(x, H, r1 - r0, Wp, 0, Wp.panels, s_ + r0 * G, G, nullptr, 0);
          for (int64_t r = r0; r < r1; ++r) row(j, r, s_ + r * G);
        }
      });
      return;
    }
  }
  for (int64_t j = 0; j < T_; ++j) {
    Tensor hin = Hs[j];
    if (h_mask) {
      for (int64_t r = 0; r < b; ++r) masked_input(j, r);
      hin = Hin[j];
    }
    Tensor Q = linear_nt(hin, W);  // a = (h * m) W_hh^T, (b, 3h)
    T* q_ = Q.data_ptr<T>();
    rows(b, 4 * G, [&](int64_t r) { row(j, r, q_ + r * G); });
  }
}

// Returns A (T, b, 3H) = r, z, n; Qn (T, b, H) = q_n; Hs (T+1, b, H) = h_0..h_T; Hin (T, b, H)
// = h * m (recurrent dropout only); Ahat (T, b, 3H), Rs (T, b): the layer norm's x^, rstd.
std::vector<Tensor> gru_forward(const Tensor& gx, const Tensor& h0, const Tensor& W_hh,
                                const std::optional<Tensor>& b_hh,
                                const std::optional<Tensor>& g_hh,
                                const std::optional<Tensor>& h_mask,
                                const std::optional<Tensor>& keep_h, double eps) {
  TORCH_CHECK(gx.device().is_cpu() && gx.is_contiguous() && gx.dim() == 3,
              "rnnkit gru_forward: gx must be a contiguous (t, b, 3h) CPU tensor");
  const int64_t T_ = gx.size(0), b = gx.size(1), G = gx.size(2), H = G / 3;
  const auto opt = gx.options();
  const bool ln = g_hh.has_value();
  Tensor A = seq_empty({T_, b, G}, opt);
  Tensor Qn = seq_empty({T_, b, H}, opt);
  Tensor Hs = seq_empty({T_ + 1, b, H}, opt);
  Hs[0].copy_(h0);
  Tensor Hin = h_mask.has_value() ? seq_empty({T_, b, H}, opt) : empty0(gx);
  Tensor Ahat = ln ? seq_empty({T_, b, G}, opt) : empty0(gx);
  Tensor Rs = ln ? seq_empty({T_, b}, opt) : empty0(gx);
  AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "rnnkit_gru_forward", [&] {
    forward_loop<scalar_t>(gx, W_hh, b_hh, ptr_or_null<scalar_t>(g_hh),
                           ptr_or_null<scalar_t>(b_hh), ptr_or_null<scalar_t>(h_mask),
                           ptr_or_null<scalar_t>(keep_h), eps, A, Qn, Hs, Hin, Ahat, Rs);
  });
  return {A, Qn, Hs, Hin, Ahat, Rs};
}

// Per step, from dh_t:
//   dh~ = (1 - d) dh_t;  ds_n = (1 - z) dh~ tanh'(n);  dq_n = r ds_n
//   ds_r = q_n ds_n sigma'(r);  ds_z = (h_{t-1} - n) dh~ sigma'(z);  dq_rz = ds_rz
//   da = dq (layer norm: its backward);  dh_{t-1} = (da W_hh) m + z dh~ + d dh_t + dy_{t-1}
template <typename T>
void backward_loop(const Tensor& dY, Tensor& dh, const Tensor& A, const Tensor& Qn,
                   const Tensor& Hs, const Tensor& W_hh, const T* g_hh, const T* h_mask,
                   const T* keep_h, const T* ahat_, const T* rs_, Tensor& DGX, Tensor& DQ,
                   Tensor& DA, double* db_hh, double* dg_hh) {
  const int64_t T_ = A.size(0), b = A.size(1), G = A.size(2), H = G / 3;
  const bool ln = g_hh != nullptr;
  std::vector<T> rest(size_t(b) * H);  // z dh~ + d dh_t: what reaches h_{t-1} directly
  T* dh_ = dh.data_ptr<T>();
  const T* dy = dY.const_data_ptr<T>();
  // row r of step j: dgx, dq (and da) from dh_t, and what reaches h_{t-1} directly
  auto row = [&](int64_t j, int64_t r) {
    const T* kh = keep_h ? keep_h + (j * b + r) * H : nullptr;
    const T* a = A.const_data_ptr<T>() + (j * b + r) * G;
    const T* qn = Qn.const_data_ptr<T>() + (j * b + r) * H;
    const T* hp = Hs.const_data_ptr<T>() + (j * b + r) * H;
    const T* dhr = dh_ + r * H;
    T* dgx = DGX.data_ptr<T>() + (j * b + r) * G;
    T* dq = DQ.data_ptr<T>() + (j * b + r) * G;
    T* rr = rest.data() + r * H;
    for (int64_t u = 0; u < H; ++u) {
      const T rg = a[u], z = a[H + u], n = a[2 * H + u];
      const T d = kh ? kh[u] : T(0);
      const T dht = (1 - d) * dhr[u];
      const T dsn = (1 - z) * dht * (1 - n * n);
      const T dsr = dsn * qn[u] * rg * (1 - rg);
      const T dsz = dht * (hp[u] - n) * z * (1 - z);
      dgx[u] = dq[u] = dsr;
      dgx[H + u] = dq[H + u] = dsz;
      dgx[2 * H + u] = dsn;
      dq[2 * H + u] = dsn * rg;
      rr[u] = z * dht + d * dhr[u];
    }
    if (ln) {
      normalize_backward(dq, g_hh, ahat_ + (j * b + r) * G, rs_[j * b + r],
                         DA.data_ptr<T>() + (j * b + r) * G, G);
    }
  };
  // db_hh = sum dq, dg_hh = sum dq a^ over rows [r0, r1) of step j, into out (G, then G)
  auto sums = [&](int64_t j, int64_t r0, int64_t r1, double* db, double* dg) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* dq = DQ.const_data_ptr<T>() + (j * b + r) * G;
      if (db)
        for (int64_t k = 0; k < G; ++k) db[k] += dq[k];
      if (ln) {
        const T* ahat = ahat_ + (j * b + r) * G;
        for (int64_t k = 0; k < G; ++k) dg[k] += dq[k] * ahat[k];
      }
    }
  };
  // dh_{t-1} of row r = z dh~ + d dh_t + (dq W_hh) m + dy_{t-1}
  auto carry = [&](int64_t j, int64_t r, const T* dhw) {
    T* dhr = dh_ + r * H;
    std::copy_n(rest.data() + r * H, H, dhr);
    recurrent_grad(dhr, false, static_cast<const T*>(nullptr), dhw,
                   h_mask ? h_mask + r * H : nullptr,
                   j > 0 ? dy + ((j - 1) * b + r) * H : nullptr, H);
  };
  if constexpr (std::is_same_v<T, float>) {
    const int64_t bands = packed_steps() ? row_bands(b, G * H) : 0;
    if (bands) {  // each thread its batch rows, every step (step.h)
      const Tensor Wc = W_hh.contiguous();  // packed as W_hh^T (h, 3h)
      const Packed Wp = pack(Wc.const_data_ptr<float>(), H, G, 1, H);
      Tensor DhW = at::empty({b, H}, A.options());
      float* dhw = DhW.data_ptr<float>();
      std::vector<double> band_sums(size_t(bands) * 2 * G, 0.0);  // then added in band order
      run_phases(1, bands, [&](int64_t) { return bands; }, [&](int64_t, int64_t q) {
        const auto [r0, r1] = split(b, bands, q);
        double* db = band_sums.data() + q * 2 * G;
        for (int64_t j = T_ - 1; j >= 0; --j) {
          for (int64_t r = r0; r < r1; ++r) row(j, r);
          sums(j, r0, r1, db_hh ? db : nullptr, db + G);
          const float* d = (ln ? DA : DQ).const_data_ptr<float>() + (j * b + r0) * G;
          gemm_panels(d, G, r1 - r0, Wp, 0, Wp.panels, dhw + r0 * H, H, nullptr, 0);
          for (int64_t r = r0; r < r1; ++r) carry(j, r, dhw + r * H);
        }
      });
      for (int64_t q = 0; q < bands; ++q)
        for (int64_t k = 0; k < G; ++k) {
          if (db_hh) db_hh[k] += band_sums[q * 2 * G + k];
          if (ln) dg_hh[k] += band_sums[q * 2 * G + G + k];
        }
      return;
    }
  }
  const Tensor W_hhT = W_hh.t().contiguous();  // (h, 3h): dq W_hh = linear_nt(dq, W_hh^T)
  for (int64_t j = T_ - 1; j >= 0; --j) {
    rows(b, 4 * G, [&](int64_t r) { row(j, r); });
    sums(j, 0, b, db_hh, dg_hh);
    const Tensor DhW = linear_nt(ln ? DA[j] : DQ[j], W_hhT);  // dq W_hh
    const T* dhw = DhW.const_data_ptr<T>();
    for (int64_t r = 0; r < b; ++r) carry(j, r, dhw + r * H);
  }
}

// dY (T, b, H) with padding masked, dh_T. Returns DGX (T, b, 3H) = dL/dgx, DW (T, b, 3H) = the
// factor of dW_hh = DW^T (h * m) (dq, or da with layer norm), dh_0, and db_hh, dg_hh summed
// over all steps (empty when absent).
std::vector<Tensor> gru_backward(const Tensor& dY, const Tensor& dh_T, const Tensor& A,
                                 const Tensor& Qn, const Tensor& Hs, const Tensor& W_hh,
                                 bool has_bias, const std::optional<Tensor>& g_hh,
                                 const std::optional<Tensor>& h_mask,
                                 const std::optional<Tensor>& keep_h,
                                 const std::optional<Tensor>& Ahat,
                                 const std::optional<Tensor>& Rs) {
  TORCH_CHECK(dY.is_contiguous() && A.is_contiguous(), "rnnkit gru_backward: contiguous input");
  const int64_t T_ = A.size(0), b = A.size(1), G = A.size(2);
  const auto opt = A.options();
  const bool ln = g_hh.has_value();
  Tensor DGX = seq_empty({T_, b, G}, opt);
  Tensor DQ = seq_empty({T_, b, G}, opt);
  Tensor DA = ln ? seq_empty({T_, b, G}, opt) : DQ;
  const auto sums = opt.dtype(at::kDouble);
  Tensor db_hh = at::zeros({has_bias ? G : 0}, sums);
  Tensor dg_hh = at::zeros({ln ? G : 0}, sums);
  Tensor dh = (dY[T_ - 1] + dh_T).contiguous();
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "rnnkit_gru_backward", [&] {
    backward_loop<scalar_t>(dY, dh, A, Qn, Hs, W_hh, ptr_or_null<scalar_t>(g_hh),
                            ptr_or_null<scalar_t>(h_mask), ptr_or_null<scalar_t>(keep_h),
                            ptr_or_null<scalar_t>(Ahat), ptr_or_null<scalar_t>(Rs), DGX, DQ, DA,
                            has_bias ? db_hh.data_ptr<double>() : nullptr,
                            dg_hh.data_ptr<double>());
  });
  auto to = [&](const Tensor& t) { return t.to(A.scalar_type()); };
  return {DGX, DA, dh, to(db_hh), to(dg_hh)};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def(
      "gru_forward(Tensor gx, Tensor h0, Tensor W_hh, Tensor? b_hh, Tensor? g_hh, "
      "Tensor? h_mask, Tensor? keep_h, float eps) -> Tensor[]");
  m.def(
      "gru_backward(Tensor dY, Tensor dh_T, Tensor A, Tensor Qn, Tensor Hs, Tensor W_hh, "
      "bool has_bias, Tensor? g_hh, Tensor? h_mask, Tensor? keep_h, Tensor? Ahat, Tensor? Rs) "
      "-> Tensor[]");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("gru_forward", &gru_forward);
  m.impl("gru_backward", &gru_backward);
}
