// One time step's matrix product with the weights packed once, and a step's work shared by
// torch's threads (lstm.cpp's float32 loops on AVX-512 CPUs).
//
// At small batch and hidden sizes (16 x 128, or batch 1) a library call per step costs more
// than its arithmetic: oneDNN's linear took about 21 us for (16 x 128)(128 x 512), which this
// CPU's cores do in about 10 us, and each call lays out the weights again. torch.nn.LSTM's
// kernel (oneDNN's RNN primitive) keeps its weights in the layout its kernel reads for the
// whole sequence; libtorch exports neither that primitive nor oneDNN's API, so rnnkit does the
// same here:
//
//   pack(W):        W (n, k) into panels of 16 of its rows, Wp[p][kk][l] = W[16p + l][kk],
//                   once per forward or backward;
//   gemm_panels:    out[r, c] = x[r] . W[c] (+ init[r, c]) for the columns of panels
//                   [p0, p1): register tiles of up to 8 rows x 48 columns (24 accumulators,
//                   one AVX-512 register each), a weight row loaded once per tile and a
//                   value of x broadcast against it;
//   run_phases:     a step is phases (the product, split by columns; the element-wise pass,
//                   split by rows), each split in pieces that the threads share.
//
// Float32 only; float64 and CPUs without AVX-512 keep the per-step library call.
#pragma once

#include <atomic>
#include <exception>
#include <thread>

#include "common.h"

namespace rnnkit_csrc {

// W packed as panels of 16 rows (see the file's comment); data is 64-byte aligned.
struct Packed {
  Tensor data;  // (panels, k, 16) float32
  int64_t n = 0, k = 0, panels = 0;
  const float* panel(int64_t p) const { return data.const_data_ptr<float>() + p * k * 16; }
};

// W[i][j] at W[i * si + j * sj], i < n output rows, j < k: si = k, sj = 1 for a contiguous
// (n, k) W; si = 1, sj = n for the transpose of a contiguous (k, n) matrix.
inline Packed pack(const float* W, int64_t n, int64_t k, int64_t si, int64_t sj) {
  Packed p;
  p.n = n, p.k = k, p.panels = (n + 15) / 16;
  // from rnnkit's buffer cache (pool.h) when large: a fresh 1-4 MB block each pass cost more
  // in page faults than the copy itself
  p.data = seq_empty({p.panels, k, 16}, at::TensorOptions().dtype(at::kFloat));
  float* d = p.data.data_ptr<float>();
  at::parallel_for(0, p.panels, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t m = std::min<int64_t>(16, n - 16 * q);  // rows of W in this panel
      const float* w = W + 16 * q * si;
      float* o = d + q * k * 16;
      for (int64_t j = 0; j < k; ++j, o += 16) {  // written in order; read 16 rows at once
        for (int64_t l = 0; l < m; ++l) o[l] = w[l * si + j * sj];
        for (int64_t l = m; l < 16; ++l) o[l] = 0.0f;
      }
    }
  });
  return p;
}

#ifdef RNNKIT_SLEEF
// R rows x NB panels: out[r, 16 (p0 + m) + l] = sum_kk x[r, kk] Wp[p0 + m][kk][l] (+ init),
// for the `cols` valid columns from 16 p0.
template <int R, int NB>
__attribute__((target("avx512f"))) inline void tile(const float* x, int64_t ldx,
                                                    const Packed& W, int64_t p0, float* out,
                                                    int64_t ldo, const float* init,
                                                    int64_t ldi, int64_t cols) {
  const int64_t k = W.k;
  const float* w0 = W.panel(p0);
  __m512 acc[R][NB];
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < NB; ++m) acc[r][m] = _mm512_setzero_ps();
  for (int64_t kk = 0; kk < k; ++kk) {
    __m512 w[NB];
    for (int m = 0; m < NB; ++m) w[m] = _mm512_load_ps(w0 + (m * k + kk) * 16);
    for (int r = 0; r < R; ++r) {
      const __m512 xb = _mm512_set1_ps(x[r * ldx + kk]);
      for (int m = 0; m < NB; ++m) acc[r][m] = _mm512_fmadd_ps(xb, w[m], acc[r][m]);
    }
  }
  for (int m = 0; m < NB; ++m) {
    const int64_t left = cols - 16 * m;
    const __mmask16 mask = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
    for (int r = 0; r < R; ++r) {  // masked only at the end (masked loads are slow)
      __m512 v = acc[r][m];
      if (left >= 16) {
        if (init) v = _mm512_add_ps(v, _mm512_loadu_ps(init + r * ldi + 16 * m));
        _mm512_storeu_ps(out + r * ldo + 16 * m, v);
      } else {
        if (init) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, init + r * ldi + 16 * m));
        _mm512_mask_storeu_ps(out + r * ldo + 16 * m, mask, v);
      }
    }
  }
}

// the tile for R rows and nb <= 8 panels (R nb <= 24: the accumulators stay in registers)
template <int R>
inline void tile_nb(int nb, const float* x, int64_t ldx, const Packed& W, int64_t p0,
                    float* out, int64_t ldo, const float* init, int64_t ldi, int64_t cols) {
  switch (nb) {
#define RNNKIT_TILE(NB)                                                     \
  case NB:                                                                  \
    if constexpr (R * NB <= 24) tile<R, NB>(x, ldx, W, p0, out, ldo, init, ldi, cols); \
    return;
    RNNKIT_TILE(1)
    RNNKIT_TILE(2)
    RNNKIT_TILE(3)
    RNNKIT_TILE(4)
    RNNKIT_TILE(5)
    RNNKIT_TILE(6)
    RNNKIT_TILE(7)
    RNNKIT_TILE(8)
#undef RNNKIT_TILE
  }
}
#endif

// Panels per register tile for a product of `rows` rows: 8 x 3, 2 x 6 or 1 x 8, enough
// independent accumulators to keep the multiply-add units busy.
inline int panels_per_tile(int64_t rows) { return rows >= 3 ? 3 : (rows == 2 ? 6 : 8); }

// out[r, c] = x[r, :] . W[c, :] (+ init[r, c]) for r < rows and the columns of panels
// [p0, p1), x (rows, W.k) with row stride ldx. Panel groups outer, rows inner, so that a
// group's weights are read from L1 by every row tile after the first.
inline void gemm_panels(const float* x, int64_t ldx, int64_t rows, const Packed& W, int64_t p0,
                        int64_t p1, float* out, int64_t ldo, const float* init, int64_t ldi) {
#ifdef RNNKIT_SLEEF
  const int per = panels_per_tile(rows);
  for (int64_t p = p0; p < p1; p += per) {
    const int nb = int(std::min<int64_t>(per, p1 - p));
    const int64_t cols = std::min<int64_t>(16 * nb, W.n - 16 * p);
    for (int64_t r = 0; r < rows; r += 8) {
      const int R = int(std::min<int64_t>(8, rows - r));
      const float* xr = x + r * ldx;
      float* o = out + r * ldo + 16 * p;
      const float* in = init ? init + r * ldi + 16 * p : nullptr;
      switch (R) {
#define RNNKIT_ROWS(RR) \
  case RR:              \
    tile_nb<RR>(nb, xr, ldx, W, p, o, ldo, in, ldi, cols); \
    break;
        RNNKIT_ROWS(1)
        RNNKIT_ROWS(2)
        RNNKIT_ROWS(3)
        RNNKIT_ROWS(4)
        RNNKIT_ROWS(5)
        RNNKIT_ROWS(6)
        RNNKIT_ROWS(7)
        RNNKIT_ROWS(8)
#undef RNNKIT_ROWS
      }
    }
  }
#else
  TORCH_CHECK(false, "rnnkit: gemm_panels needs an x86-64 build");
#endif
}

// y (n, W.n) = x (n, W.k) W^T (+ bias broadcast over rows), the threads over bands of rows:
// a whole sequence's input projection with a weight small enough to stay in L2.
inline void linear_rows(const float* x, int64_t n, const Packed& W, const float* bias, float* y) {
  const int64_t k = W.k, g = W.n;
  at::parallel_for(0, (n + 7) / 8, 8, [&](int64_t t0, int64_t t1) {
    const int64_t r0 = 8 * t0, r1 = std::min(n, 8 * t1);
    for (int64_t r = r0; r < r1; r += 64)  // 64 rows x all panels: x's rows stay in L1
      gemm_panels(x + r * k, k, std::min<int64_t>(64, r1 - r), W, 0, W.panels, y + r * g, g,
                  bias, 0);
  });
}

// Weights up to this many values (512 KB in float32) count as small: they stay in a core's L2.
constexpr int64_t kSmallW = 1 << 17;

// How many bands of batch rows the threads split a packed time loop into, each band running
// the whole sequence on its own rows; 0: split each step instead (run_phases by column
// panels, then by rows). A recurrence never mixes batch rows, so a thread that owns rows
// needs nothing from the others and the steps need no synchronization. Each thread then
// reads the whole packed weight every step: worth it when that weight about fits its core's L2
// (at most kBandW values, 1 MB) and every band keeps at least 4 rows. On this project's 2-core
// machine, at (T, b, h) = (256, 16, 128), that took the layer-norm LSTM from 1.36-1.40x to
// 1.12-1.31x torch.nn.LSTM's time (A/B runs, one process each), the other variants by up to
// 0.2x; at b = 8 it helped the layer norm and left the others within the noise. A 2-layer GRU
// of 256 (W_hh 768 x 256, the char-LM preset's) trained 1.23x faster with the limit at 1 MB than
// at 512 KB; an LSTM of that size ran the same either way, and larger limits gained nothing.
constexpr int64_t kBandW = 1 << 18;
inline int64_t row_bands(int64_t b, int64_t weight_values) {
  const int64_t bands = std::min<int64_t>(at::get_num_threads(), b / 4);
  return bands >= 2 && weight_values <= kBandW && !at::in_parallel_region() ? bands : 0;
}

// Whether this CPU runs rnnkit's own products: AVX-512 (and RNNKIT_SIMD not lower).
inline bool packed_kernel_cpu() {
#ifdef RNNKIT_SLEEF
  return simd_level() == 2;
#else
  return false;
#endif
}
// Whether float32 uses rnnkit's own products (pack / gemm_panels / run_phases here, the
// weight gradient of gemm_tn.cpp): an AVX-512 CPU, unless RNNKIT_OWN_GEMM=0 (the tests run
// both ways and compare).
inline bool packed_steps() {
  const char* want = std::getenv("RNNKIT_OWN_GEMM");
  if (want && std::strcmp(want, "0") == 0) return false;
  return packed_kernel_cpu();
}

inline void spin_pause() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

// Runs phases 0 .. phases-1 in order; phase ph is pieces(ph) <= max_pieces pieces, each run
// once as f(ph, q). Torch's threads share them: each first takes the pieces q = w, w + n, ...
// (its index w of n threads: the same columns of the weights step after step, which stay in
// its core's cache), then any piece no thread has taken. A thread starts a phase once every
// piece of the earlier phases is done, and a thread only ever waits on pieces another thread
// has taken and is running: so this ends with any number of threads, including when torch runs
// the parallel loop on one (nested in another parallel region, or one thread set). A piece that
// throws still counts as done, the threads stop taking pieces, and the first exception is
// rethrown here once every thread has stopped.
template <typename Pieces, typename F>
void run_phases(int64_t phases, int64_t max_pieces, const Pieces& pieces, const F& f) {
  const int64_t n = std::min<int64_t>(at::get_num_threads(), max_pieces);
  if (n <= 1 || at::in_parallel_region()) {
    for (int64_t ph = 0; ph < phases; ++ph)
      for (int64_t q = 0, e = pieces(ph); q < e; ++q) f(ph, q);
    return;
  }
  std::vector<std::atomic<int64_t>> claimed(max_pieces);
  for (auto& c : claimed) c.store(-1, std::memory_order_relaxed);
  std::atomic<int64_t> done{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;  // the first piece's exception, written once under `failed`
  auto take = [&](int64_t q, int64_t ph) {  // claim piece q of phase ph
    int64_t seen = claimed[q].load(std::memory_order_relaxed);
    while (seen < ph)
      if (claimed[q].compare_exchange_weak(seen, ph, std::memory_order_acq_rel)) return true;
    return false;
  };
  auto worker = [&](int64_t w) {
    int64_t before = 0;  // pieces in the phases before ph
    for (int64_t ph = 0; ph < phases; ++ph) {
      const int64_t e = pieces(ph);
      for (int64_t spins = 0; done.load(std::memory_order_acquire) < before; ++spins) {
        if (failed.load(std::memory_order_acquire)) return;
        spin_pause();
        if (spins > 4096) std::this_thread::yield();
      }
      auto run = [&](int64_t q) {
        if (failed.load(std::memory_order_acquire) || !take(q, ph)) return;
        try {
          f(ph, q);
        } catch (...) {
          if (!failed.exchange(true, std::memory_order_acq_rel)) error = std::current_exception();
        }
        done.fetch_add(1, std::memory_order_release);
      };
      for (int64_t q = w; q < e; q += n) run(q);
      for (int64_t q = 0; q < e; ++q) run(q);
      before += e;
    }
  };
  at::parallel_for(0, n, 1, [&](int64_t w0, int64_t w1) {
    for (int64_t w = w0; w < w1; ++w) worker(w);
  });
  if (error) std::rethrow_exception(error);
}

// [lo, hi) of piece q when m items are split into `parts` nearly equal pieces
inline std::pair<int64_t, int64_t> split(int64_t m, int64_t parts, int64_t q) {
  return {m * q / parts, m * (q + 1) / parts};
}

}  // namespace rnnkit_csrc
