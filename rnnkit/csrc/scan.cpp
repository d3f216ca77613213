// The linear recurrence of minGRU / minLSTM's fused path, in C++ (CPU, float32 and float64):
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

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("linear_recurrence_forward(Tensor a, Tensor b, Tensor h0) -> Tensor");
  m.def("linear_recurrence_backward(Tensor dh, Tensor a) -> Tensor");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("linear_recurrence_forward", &linear_recurrence_forward);
  m.impl("linear_recurrence_backward", &linear_recurrence_backward);
}
