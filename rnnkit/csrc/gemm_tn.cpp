// A weight gradient dW = dy^T x in one pass over both operands (float32, AVX-512 CPUs).
//
//   dy (n, g), x (n, i) -> dW (g, i),   dW[r, c] = sum_k dy[k, r] x[k, c]
//
// With the outer-product tiles of outer.h: up to 256 rows, tiles of dW in place; above that,
// n walked in chunks of 256 rows, each thread owning a band of dW's rows.
//
// torch.mm sends this product to MKL, which on an AMD EPYC ran a small layer's shapes (n =
// 4096, g = 512, i = 64 or 128) at 150-180 GFLOP/s, this kernel at 260-330; reading the two
// transposed operands made oneDNN's linear no faster there (rnnkit/gemm.py).

#include "outer.h"

namespace {

using namespace rnnkit_csrc;

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
    Scratch xp(ctiles * kChunk * 8);
    Scratch dWT(i * (r1 - r0));  // this band of dW, transposed
    for (int64_t k0 = 0; k0 < n; k0 += kChunk)
      weight_grad_chunk(dy_ + k0 * g, g, r0, r1, [&](int64_t k) { return x_ + (k0 + k) * i; },
                        std::min(n - k0, kChunk), i, dWT.data(), r1 - r0, k0 == 0, xp.data());
    band_into(dWT.data(), r1 - r0, r0, r1, i, o);
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
