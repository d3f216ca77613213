// A layer norm over the last axis of a whole sequence (CPU), forward and backward, for the
// input projections of the fused path's layer-norm layers: LN(x W_ih^T) g_ih + b_ih.
//
//   forward:   x^ = (x - mu) rstd,  rstd = 1 / sqrt(var x + eps),  y = x^ g + b
//   backward:  a = dy g;  dx = rstd (a - mean(a) - x^ mean(a x^)),
//              dg = sum_rows dy x^,  db = sum_rows dy
//
// torch's own kernels compute the same; what differs is where y and dx live. Both are as
// large as the sequence's gates (8 MB for a (256 x 16, 512) float32 batch), and torch gets
// them from the system allocator, which on this project's machine handed back fresh pages
// most steps: about 830 page faults per training step of a small layer-norm LSTM, 2 ms of its
// 16. Here they come from rnnkit's buffer cache (pool.h), like the time loops' buffers.
//
// Rows are split over the threads; in the backward each thread keeps its own dg and db sums
// (double), added at the end. Shapes: x, dy (n, g) contiguous; mu, rstd (n); gain, bias (g)
// or absent.

#include "common.h"

namespace {

using namespace rnnkit_csrc;

std::vector<Tensor> layer_norm_forward(const Tensor& x, const std::optional<Tensor>& gain,
                                       const std::optional<Tensor>& bias, double eps) {
  TORCH_CHECK(x.dim() == 2, "rnnkit layer_norm_forward: x must be (n, g)");
  const Tensor xc = x.contiguous();
  const int64_t n = x.size(0), G = x.size(1);
  Tensor y = seq_empty({n, G}, x.options());
  Tensor mu = at::empty({n}, x.options()), rstd = at::empty({n}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_layer_norm_forward", [&] {
    using T = scalar_t;
    const T* g = ptr_or_null<T>(gain);
    const T* b = ptr_or_null<T>(bias);
    at::parallel_for(0, n, std::max<int64_t>(1, 16384 / std::max<int64_t>(G, 1)),
                     [&](int64_t r0, int64_t r1) {
                       for (int64_t r = r0; r < r1; ++r) {
                         const T* xr = xc.const_data_ptr<T>() + r * G;
                         T* yr = y.data_ptr<T>() + r * G;
                         const T m = T(lane_sum<T>(G, [&](int64_t k) { return xr[k]; }) / G);
                         const double var =
                             lane_sum<T>(G, [&](int64_t k) { return (xr[k] - m) * (xr[k] - m); }) /
                             G;
                         const T s = T(1.0 / std::sqrt(var + eps));
                         for (int64_t k = 0; k < G; ++k) {
                           const T v = (xr[k] - m) * s;
                           yr[k] = (g ? v * g[k] : v) + (b ? b[k] : T(0));
                         }
                         mu.data_ptr<T>()[r] = m;
                         rstd.data_ptr<T>()[r] = s;
                       }
                     });
  });
  return {y, mu, rstd};
}

template <typename T>
void backward_rows(const T* dy, const T* x, const T* mu, const T* rs, const T* gain, T* dx,
                   double* dg, double* db, int64_t r0, int64_t r1, int64_t G,
                   std::vector<T>& xhat) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* dyr = dy + r * G;
    const T* xr = x + r * G;
    const T m = mu[r], s = rs[r];
    for (int64_t k = 0; k < G; ++k) xhat[k] = (xr[k] - m) * s;
    T* dxr = dx + r * G;
    const T* xh = xhat.data();
    if (gain) {
      const T m1 = T(lane_sum<T>(G, [&](int64_t k) { return dyr[k] * gain[k]; }) / G);
      const T m2 = T(lane_sum<T>(G, [&](int64_t k) { return dyr[k] * gain[k] * xh[k]; }) / G);
      for (int64_t k = 0; k < G; ++k) dxr[k] = s * (dyr[k] * gain[k] - m1 - xh[k] * m2);
      if (dg)
        for (int64_t k = 0; k < G; ++k) dg[k] += double(dyr[k] * xh[k]);
    } else {
      const T m1 = T(lane_sum<T>(G, [&](int64_t k) { return dyr[k]; }) / G);
      const T m2 = T(lane_sum<T>(G, [&](int64_t k) { return dyr[k] * xh[k]; }) / G);
      for (int64_t k = 0; k < G; ++k) dxr[k] = s * (dyr[k] - m1 - xh[k] * m2);
    }
    if (db)
      for (int64_t k = 0; k < G; ++k) db[k] += double(dyr[k]);
  }
}

// Returns dx (n, g), dg (g; empty unless with_gain), db (g; empty unless with_bias).
std::vector<Tensor> layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& mu,
                                        const Tensor& rstd, const std::optional<Tensor>& gain,
                                        bool with_gain, bool with_bias) {
  TORCH_CHECK(x.dim() == 2 && dy.sizes() == x.sizes() && mu.numel() == x.size(0) &&
                  rstd.numel() == x.size(0),
              "rnnkit layer_norm_backward: dy and x (n, g), mu and rstd with n values");
  const Tensor d = dy.contiguous(), xc = x.contiguous(), m = mu.contiguous(),
               s = rstd.contiguous();
  const int64_t n = x.size(0), G = x.size(1);
  Tensor dx = seq_empty({n, G}, x.options());
  const bool has_gain = gain.has_value() && gain->defined();
  with_gain = with_gain && has_gain;
  const Tensor g = has_gain ? gain->contiguous() : Tensor();
  const int64_t nth = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n));
  const auto sums = x.options().dtype(at::kDouble);
  Tensor dg_parts = at::zeros({nth, with_gain ? G : 0}, sums);
  Tensor db_parts = at::zeros({nth, with_bias ? G : 0}, sums);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_layer_norm_backward", [&] {
    // one block of rows per part (with its own partial sums), whichever thread runs it
    at::parallel_for(0, nth, 1, [&](int64_t p0, int64_t p1) {
      std::vector<scalar_t> xhat(G);
      for (int64_t p = p0; p < p1; ++p) {
        backward_rows<scalar_t>(
            d.const_data_ptr<scalar_t>(), xc.const_data_ptr<scalar_t>(),
            m.const_data_ptr<scalar_t>(), s.const_data_ptr<scalar_t>(),
            has_gain ? g.const_data_ptr<scalar_t>() : nullptr, dx.data_ptr<scalar_t>(),
            with_gain ? dg_parts.data_ptr<double>() + p * G : nullptr,
            with_bias ? db_parts.data_ptr<double>() + p * G : nullptr, n * p / nth,
            n * (p + 1) / nth, G, xhat);
      }
    });
  });
  return {dx, dg_parts.sum(0).to(x.scalar_type()), db_parts.sum(0).to(x.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("layer_norm_forward(Tensor x, Tensor? gain, Tensor? bias, float eps) -> Tensor[]");
  m.def(
      "layer_norm_backward(Tensor dy, Tensor x, Tensor mu, Tensor rstd, Tensor? gain, "
      "bool with_gain, bool with_bias) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("layer_norm_forward", &layer_norm_forward);
  m.impl("layer_norm_backward", &layer_norm_backward);
}
