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
// Rows are split over the threads; in the backward each thread keeps its own dg and db sums,
// added at the end. Shapes: x, dy (n, g) contiguous; mu, rstd (n); gain, bias (g)
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
  const std::optional<Tensor> gc = gain.has_value() && gain->defined()
                                       ? std::optional<Tensor>(gain->contiguous())
                                       : std::nullopt;
  const std::optional<Tensor> bc = bias.has_value() && bias->defined()
                                       ? std::optional<Tensor>(bias->contiguous())
                                       : std::nullopt;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_layer_norm_forward", [&] {
    using T = scalar_t;
    const T* g = ptr_or_null<T>(gc);
    const T* b = ptr_or_null<T>(bc);
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

// Per row: the two means, then dx with dg and db summed on the way (in T over the thread's
// rows; the parts are added in double at the end). Templated on what is there, so that each
// version is a branch-free loop the compiler vectorizes.
template <typename T, bool GAIN, bool DG, bool DB>
void backward_rows(const T* __restrict__ dy, const T* __restrict__ x, const T* mu, const T* rs,
                   const T* __restrict__ gain, T* __restrict__ dx, T* __restrict__ dg,
                   T* __restrict__ db, int64_t r0, int64_t r1, int64_t G) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* dyr = dy + r * G;
    const T* xr = x + r * G;
    const T m = mu[r], s = rs[r];
    T* dxr = dx + r * G;
    const T m1 = T(lane_sum<T>(G, [&](int64_t k) { return GAIN ? dyr[k] * gain[k] : dyr[k]; }) / G);
    const T m2 = T(lane_sum<T>(G, [&](int64_t k) {
                     return (GAIN ? dyr[k] * gain[k] : dyr[k]) * ((xr[k] - m) * s);
                   }) / G);
    for (int64_t k = 0; k < G; ++k) {
      const T xh = (xr[k] - m) * s;
      dxr[k] = s * ((GAIN ? dyr[k] * gain[k] : dyr[k]) - m1 - xh * m2);
      if constexpr (DG) dg[k] += dyr[k] * xh;
      if constexpr (DB) db[k] += dyr[k];
    }
  }
}

template <typename T>
void backward_part(const T* dy, const T* x, const T* mu, const T* rs, const T* gain, T* dx,
                   T* dg, T* db, int64_t r0, int64_t r1, int64_t G) {
  if (gain && dg && db) return backward_rows<T, true, true, true>(dy, x, mu, rs, gain, dx, dg, db, r0, r1, G);
  if (gain && dg) return backward_rows<T, true, true, false>(dy, x, mu, rs, gain, dx, dg, db, r0, r1, G);
  if (gain && db) return backward_rows<T, true, false, true>(dy, x, mu, rs, gain, dx, dg, db, r0, r1, G);
  if (gain) return backward_rows<T, true, false, false>(dy, x, mu, rs, gain, dx, dg, db, r0, r1, G);
  if (db) return backward_rows<T, false, false, true>(dy, x, mu, rs, gain, dx, dg, db, r0, r1, G);
  backward_rows<T, false, false, false>(dy, x, mu, rs, gain, dx, dg, db, r0, r1, G);
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
  // per part, partial sums over its rows in x's dtype; parts added in double
  Tensor dg_parts = at::zeros({nth, with_gain ? G : 0}, x.options());
  Tensor db_parts = at::zeros({nth, with_bias ? G : 0}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_layer_norm_backward", [&] {
    // one block of rows per part (with its own partial sums), whichever thread runs it
    at::parallel_for(0, nth, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        backward_part<scalar_t>(
            d.const_data_ptr<scalar_t>(), xc.const_data_ptr<scalar_t>(),
            m.const_data_ptr<scalar_t>(), s.const_data_ptr<scalar_t>(),
            has_gain ? g.const_data_ptr<scalar_t>() : nullptr, dx.data_ptr<scalar_t>(),
            with_gain ? dg_parts.data_ptr<scalar_t>() + p * G : nullptr,
            with_bias ? db_parts.data_ptr<scalar_t>() + p * G : nullptr, n * p / nth,
            n * (p + 1) / nth, G);
      }
    });
  });
  const auto dbl = [&](const Tensor& t) { return t.to(at::kDouble).sum(0).to(x.scalar_type()); };
  return {dx, dbl(dg_parts), dbl(db_parts)};
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
