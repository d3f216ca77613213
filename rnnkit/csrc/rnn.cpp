// The Elman RNN time loops of rnnkit's fused path, in C++ (CPU, float32 and float64).
//
// The same equations as rnnkit.fused.RNNFunction, one matrix product and one pass over the
// step's elements per step; see lstm.cpp for why.
//
// Notation, per step and batch row (gx holds b_ih + b_hh):
//   s   = gx_t + (h_{t-1} * m) W_hh^T     (layer norm: gx_t + a^ g_hh, a = (h * m) W_hh^T)
//   h~  = tanh(s)  or  relu(s)
//   h_t = d h_{t-1} + (1 - d) h~                                                   (zoneout)
//
// Shapes: T time, b batch, H hidden.

#include "common.h"

namespace {

using namespace rnnkit_csrc;

template <typename T>
void forward_loop(const Tensor& gx, const Tensor& W_hh, const T* g_hh, const T* h_mask,
                  const T* keep_h, bool relu, double eps, Tensor& Hs, Tensor& Ht, Tensor& Hin,
                  Tensor& Ahat, Tensor& Rs) {
  const int64_t T_ = gx.size(0), b = gx.size(1), H = gx.size(2);
  const bool ln = g_hh != nullptr;
  const Tensor W = W_hh.contiguous();  // (h, h): a = h W_hh^T (linear_nt)
  for (int64_t j = 0; j < T_; ++j) {
    const T* gx_j = gx.const_data_ptr<T>() + j * b * H;
    const T* h = Hs.const_data_ptr<T>() + j * b * H;
    T* hn = Hs.data_ptr<T>() + (j + 1) * b * H;
    T* ht = keep_h ? Ht.data_ptr<T>() + j * b * H : hn;  // h~
    Tensor hin = Hs[j];
    if (h_mask) {
      T* hin_ = Hin.data_ptr<T>() + j * b * H;
      for (int64_t k = 0; k < b * H; ++k) hin_[k] = h[k] * h_mask[k];
      hin = Hin[j];
    }
    Tensor S = linear_nt(hin, W);  // a = (h * m) W_hh^T, (b, h)
    T* s_ = S.data_ptr<T>();
    const T* kh_j = keep_h ? keep_h + j * b * H : nullptr;
    rows(b, 4 * H, [&](int64_t r) {
      T* s = s_ + r * H;
      const T* gxr = gx_j + r * H;
      if (ln) {  // s = gx + LN(a) g_hh
        T* ahat = Ahat.data_ptr<T>() + (j * b + r) * H;
        Rs.data_ptr<T>()[j * b + r] = gate_norm(s, gxr, g_hh, ahat, H, eps);
      } else {  // s = gx + a
        for (int64_t k = 0; k < H; ++k) s[k] += gxr[k];
      }
      T* htr = ht + r * H;
      if (relu) {
        for (int64_t k = 0; k < H; ++k) htr[k] = s[k] > 0 ? s[k] : T(0);
      } else {
        tanh_n(s, htr, H);
      }
      if (kh_j) {
        const T* d = kh_j + r * H;
        const T* hp = h + r * H;
        T* hr = hn + r * H;
        for (int64_t k = 0; k < H; ++k) hr[k] = keep_blend(d[k], hp[k], htr[k]);
      }
    });
  }
}

// Returns Hs (T+1, b, H) = h_0..h_T; Ht (T, b, H) = h~ (zoneout only, else it is Hs[1:]);
// Hin (T, b, H) = h * m (recurrent dropout only); Ahat (T, b, H), Rs (T, b) for layer norm.
std::vector<Tensor> rnn_forward(const Tensor& gx, const Tensor& h0, const Tensor& W_hh,
                                const std::optional<Tensor>& g_hh,
                                const std::optional<Tensor>& h_mask,
                                const std::optional<Tensor>& keep_h, bool relu, double eps) {
  TORCH_CHECK(gx.device().is_cpu() && gx.is_contiguous() && gx.dim() == 3,
              "rnnkit rnn_forward: gx must be a contiguous (t, b, h) CPU tensor");
  const int64_t T_ = gx.size(0), b = gx.size(1), H = gx.size(2);
  const auto opt = gx.options();
  const bool ln = g_hh.has_value();
  Tensor Hs = seq_empty({T_ + 1, b, H}, opt);
  Hs[0].copy_(h0);
  Tensor Ht = keep_h.has_value() ? seq_empty({T_, b, H}, opt) : empty0(gx);
  Tensor Hin = h_mask.has_value() ? seq_empty({T_, b, H}, opt) : empty0(gx);
  Tensor Ahat = ln ? seq_empty({T_, b, H}, opt) : empty0(gx);
  Tensor Rs = ln ? seq_empty({T_, b}, opt) : empty0(gx);
  AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "rnnkit_rnn_forward", [&] {
    forward_loop<scalar_t>(gx, W_hh, ptr_or_null<scalar_t>(g_hh), ptr_or_null<scalar_t>(h_mask),
                           ptr_or_null<scalar_t>(keep_h), relu, eps, Hs, Ht, Hin, Ahat, Rs);
  });
  return {Hs, Ht, Hin, Ahat, Rs};
}

// Per step, from dh_t: ds = (1 - d) dh_t act'(h~); da = ds (layer norm: its backward);
// dh_{t-1} = (da W_hh) m + d dh_t + dy_{t-1}.
template <typename T>
void backward_loop(const Tensor& dY, Tensor& dh, const T* ht_, const Tensor& W_hh,
                   const T* g_hh, const T* h_mask, const T* keep_h, bool relu, const T* ahat_,
                   const T* rs_, Tensor& DS, Tensor& DA, double* dg_hh) {
  const int64_t T_ = DS.size(0), b = DS.size(1), H = DS.size(2);
  const bool ln = g_hh != nullptr;
  const Tensor W_hhT = W_hh.t().contiguous();  // (h, h): ds W_hh = linear_nt(ds, W_hh^T)
  T* dh_ = dh.data_ptr<T>();
  const T* dy = dY.const_data_ptr<T>();
  for (int64_t j = T_ - 1; j >= 0; --j) {
    const T* kh_j = keep_h ? keep_h + j * b * H : nullptr;
    rows(b, 4 * H, [&](int64_t r) {
      const T* ht = ht_ + (j * b + r) * H;
      const T* dhr = dh_ + r * H;
      T* ds = DS.data_ptr<T>() + (j * b + r) * H;
      for (int64_t k = 0; k < H; ++k) {
        const T d = kh_j ? kh_j[r * H + k] : T(0);
        const T slope = relu ? T(ht[k] > 0) : 1 - ht[k] * ht[k];
        ds[k] = (1 - d) * dhr[k] * slope;
      }
      if (ln) {
        normalize_backward(ds, g_hh, ahat_ + (j * b + r) * H, rs_[j * b + r],
                           DA.data_ptr<T>() + (j * b + r) * H, H);
      }
    });
    if (ln) {
      const T* ds = DS.const_data_ptr<T>() + j * b * H;
      const T* ahat = ahat_ + j * b * H;
      for (int64_t r = 0; r < b; ++r)
        for (int64_t k = 0; k < H; ++k) dg_hh[k] += ds[r * H + k] * ahat[r * H + k];
    }
    const Tensor DhW = linear_nt(ln ? DA[j] : DS[j], W_hhT);  // ds W_hh
    const T* dhw = DhW.const_data_ptr<T>();
    const T* dy_p = j > 0 ? dy + (j - 1) * b * H : nullptr;
    recurrent_grad(dh_, true, kh_j, dhw, h_mask, dy_p, b * H);
  }
}

// dY (T, b, H) with padding masked, dh_T, Ht = h~. Returns DS (T, b, H) = dL/dgx, DW = the
// factor of dW_hh (ds, or da with layer norm), dh_0, dg_hh summed over steps (or empty).
std::vector<Tensor> rnn_backward(const Tensor& dY, const Tensor& dh_T, const Tensor& Ht,
                                 const Tensor& W_hh, const std::optional<Tensor>& g_hh,
                                 const std::optional<Tensor>& h_mask,
                                 const std::optional<Tensor>& keep_h, bool relu,
                                 const std::optional<Tensor>& Ahat,
                                 const std::optional<Tensor>& Rs) {
  TORCH_CHECK(dY.is_contiguous() && Ht.is_contiguous(), "rnnkit rnn_backward: contiguous input");
  const int64_t T_ = Ht.size(0), b = Ht.size(1), H = Ht.size(2);
  const auto opt = Ht.options();
  const bool ln = g_hh.has_value();
  Tensor DS = seq_empty({T_, b, H}, opt);
  Tensor DA = ln ? seq_empty({T_, b, H}, opt) : DS;
  Tensor dg_hh = at::zeros({ln ? H : 0}, opt.dtype(at::kDouble));
  Tensor dh = (dY[T_ - 1] + dh_T).contiguous();
  AT_DISPATCH_FLOATING_TYPES(Ht.scalar_type(), "rnnkit_rnn_backward", [&] {
    backward_loop<scalar_t>(dY, dh, Ht.const_data_ptr<scalar_t>(), W_hh,
                            ptr_or_null<scalar_t>(g_hh), ptr_or_null<scalar_t>(h_mask),
                            ptr_or_null<scalar_t>(keep_h), relu, ptr_or_null<scalar_t>(Ahat),
                            ptr_or_null<scalar_t>(Rs), DS, DA, dg_hh.data_ptr<double>());
  });
  return {DS, DA, dh, dg_hh.to(Ht.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def(
      "rnn_forward(Tensor gx, Tensor h0, Tensor W_hh, Tensor? g_hh, Tensor? h_mask, "
      "Tensor? keep_h, bool relu, float eps) -> Tensor[]");
  m.def(
      "rnn_backward(Tensor dY, Tensor dh_T, Tensor Ht, Tensor W_hh, Tensor? g_hh, "
      "Tensor? h_mask, Tensor? keep_h, bool relu, Tensor? Ahat, Tensor? Rs) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("rnn_forward", &rnn_forward);
  m.impl("rnn_backward", &rnn_backward);
}
