// The LSTM time loops of rnnkit's fused path, in C++ (CPU, float32 and float64).
//
// The same equations as rnnkit.fused.LSTMFunction (whose docstring derives them); here each
// step is one matrix product (linear_nt: oneDNN in float32) and one pass of plain C++
// over the step's elements, instead of a dozen separately dispatched PyTorch kernels. At small
// hidden sizes that dispatch, not arithmetic, is what a Python time loop spends its time on.
//
// Everything that is batched over time stays in Python (rnnkit/fused_cpu.py): the input
// projections before, the weight gradients after. These two functions do only what must be
// sequential.
//
// Notation, per step and batch row (gates in torch's order i, f, g, o; gx includes both
// biases):
//   a   = (h_{t-1} * m) W_hh^T                        m: recurrent-dropout mask or 1
//   s   = gx_t + a        (layer norm: gx_t + a^ g_hh, a^ = (a - mean a) rstd_a)
//   s_i += w_ci c_{t-1};  s_f += w_cf c_{t-1}          (peephole)
//   i, f, g = sigma(s_i), sigma(s_f), tanh(s_g)
//   c~  = f c_{t-1} + i g
//   s_o += w_co c~;  o = sigma(s_o)                    (peephole)
//   k   = tanh(c^),  c^ = c~  (layer norm: c^ = c~^ g_c + beta_c)
//   h~  = o k                 (projection: h~ = (o k) W_hr^T)
//   h_t = d_h h_{t-1} + (1 - d_h) h~;   c_t = d_c c_{t-1} + (1 - d_c) c~    (zoneout)
//
// Shapes: T time, b batch, H hidden, P output (proj_size or H), G = 4H.

#include "step.h"

namespace {

using namespace rnnkit_csrc;

template <typename T>  // c~ = f c + i g
void cell(const T* __restrict__ f, const T* __restrict__ c, const T* __restrict__ i,
          const T* __restrict__ g, T* __restrict__ ct, int64_t n) {
  for (int64_t k = 0; k < n; ++k) ct[k] = f[k] * c[k] + i[k] * g[k];
}

// ----------------------------------------------------------------------------- forward

template <typename T>
void forward_loop(const Tensor& gx, const Tensor& W_hh, const std::optional<Tensor>& W_hr,
                  const T* g_hh, const T* g_c, const T* b_c, const T* w_ch, const T* h_mask,
                  const T* keep_h, const T* keep_c, double eps, Tensor& A, Tensor& Hs,
                  Tensor& C, Tensor& K, Tensor& Ct, Tensor& Hin, Tensor& M, Tensor& Ahat,
                  Tensor& Rs, Tensor& Chat, Tensor& Rsc) {
  const int64_t T_ = gx.size(0), b = gx.size(1), G = gx.size(2), H = G / 4;
  const int64_t P = W_hh.size(1);
  const bool ln = g_hh != nullptr, proj = W_hr.has_value();
  const Tensor W = W_hh.contiguous();  // (4h, p): a = h W_hh^T (linear_nt)
  Tensor Htil = proj ? at::empty({b, P}, gx.options()) : Tensor();  // h~ before zoneout
  const Tensor W_hrT = proj ? W_hr->t().contiguous() : Tensor();
  // h * m at step j, the input of W_hh (recurrent dropout), row r
  auto masked_input = [&](int64_t j, int64_t r) {
    const T* h = Hs.const_data_ptr<T>() + (j * b + r) * P;
    T* hin = Hin.data_ptr<T>() + (j * b + r) * P;
    const T* m = h_mask + r * P;
    for (int64_t q = 0; q < P; ++q) hin[q] = h[q] * m[q];
  };
  // Step j of row r, from s = a = (h * m) W_hh^T (with_gx: s = gx + a already)
  auto row = [&](int64_t j, int64_t r, T* s, bool with_gx) {
    const T* gxr = gx.const_data_ptr<T>() + (j * b + r) * G;
    const T* h = Hs.const_data_ptr<T>() + j * b * P;  // h_{t-1}
    const T* cr = C.const_data_ptr<T>() + (j * b + r) * H;  // c_{t-1}
    T* hn = Hs.data_ptr<T>() + (j + 1) * b * P;
    T* cn = C.data_ptr<T>() + (j + 1) * b * H;
    T* ar = A.data_ptr<T>() + (j * b + r) * G;
    T* kr = K.data_ptr<T>() + (j * b + r) * H;
    T* ctr = Ct.data_ptr<T>() + (j * b + r) * H;  // = cn without zoneout
    const T* kh_j = keep_h ? keep_h + j * b * P : nullptr;
    const T* kc_j = keep_c ? keep_c + j * b * H : nullptr;
    if (ln) {  // s = gx + LN(a) g_hh
      T* ahat = Ahat.data_ptr<T>() + (j * b + r) * G;
      Rs.data_ptr<T>()[j * b + r] = gate_norm(s, gxr, g_hh, ahat, G, eps);
    } else if (!with_gx) {  // s = gx + a
      for (int64_t k = 0; k < G; ++k) s[k] += gxr[k];
    }
    // simple loops over u, each of which the compiler vectorizes
    if (w_ch) {
      add_mul(s, w_ch, cr, H);          // s_i += w_ci c_{t-1}
      add_mul(s + H, w_ch + H, cr, H);  // s_f += w_cf c_{t-1}
    }
    sigmoid(s, ar, 2 * H);                         // i, f
    tanh_n(s + 2 * H, ar + 2 * H, H);              // g
    cell(ar + H, cr, ar, ar + 2 * H, ctr, H);      // c~ = f c + i g
    if (w_ch) add_mul(s + 3 * H, w_ch + 2 * H, ctr, H);  // s_o += w_co c~
    sigmoid(s + 3 * H, ar + 3 * H, H);             // o
    const T* chat = ctr;
    if (g_c) {  // c^ = c~^ g_c + beta_c, written into k and then squashed in place
      T* chr = Chat.data_ptr<T>() + (j * b + r) * H;
      Rsc.data_ptr<T>()[j * b + r] = normalize(ctr, chr, H, eps);
      for (int64_t u = 0; u < H; ++u) kr[u] = chr[u] * g_c[u] + b_c[u];
      chat = kr;
    }
    T* mr = proj ? M.data_ptr<T>() + (j * b + r) * H : hn + r * P;  // o k, or W_hr's input
    tanh_n(chat, kr, H);
    for (int64_t u = 0; u < H; ++u) mr[u] = ar[3 * H + u] * kr[u];
    if (kc_j) {
      T* cnr = cn + r * H;
      for (int64_t u = 0; u < H; ++u) cnr[u] = keep_blend(kc_j[r * H + u], cr[u], ctr[u]);
    }
    if (kh_j && !proj) {
      T* hr = hn + r * P;
      const T* hp = h + r * P;
      for (int64_t u = 0; u < P; ++u) hr[u] = keep_blend(kh_j[r * P + u], hp[u], hr[u]);
    }
  };
  if constexpr (std::is_same_v<T, float>) {
    if (!proj && packed_steps()) {
      // phase 2j: S = gx_j + (h * m) W_hh^T by column panels; phase 2j + 1: the rows
      const Packed Wp = pack(W.const_data_ptr<float>(), G, P, P, 1);
      Tensor S = at::empty({b, G}, gx.options());
      float* s_ = S.data_ptr<float>();
      if (const int64_t bands = row_bands(b, G * P)) {  // each thread its rows, every step
        run_phases(1, bands, [&](int64_t) { return bands; }, [&](int64_t, int64_t q) {
          const auto [r0, r1] = split(b, bands, q);
          if (h_mask)
            for (int64_t r = r0; r < r1; ++r) masked_input(0, r);
          for (int64_t j = 0; j < T_; ++j) {
            const float* x =
                (h_mask ? Hin : Hs).template const_data_ptr<float>() + (j * b + r0) * P;
            const float* init = ln ? nullptr : gx.const_data_ptr<float>() + (j * b + r0) * G;
            gemm_panels(x, P, r1 - r0, Wp, 0, Wp.panels, s_ + r0 * G, G, init, G);
            for (int64_t r = r0; r < r1; ++r) {
              row(j, r, s_ + r * G, !ln);
              if (h_mask && j + 1 < T_) masked_input(j + 1, r);
            }
          }
        });
        return;
      }
      const int64_t nth = at::get_num_threads();
      const int64_t np = std::min<int64_t>(nth, Wp.panels), ne = std::min<int64_t>(nth, b);
      if (h_mask)
        for (int64_t r = 0; r < b; ++r) masked_input(0, r);
      run_phases(
          2 * T_, std::max(np, ne), [&](int64_t ph) { return ph % 2 ? ne : np; },
          [&](int64_t ph, int64_t q) {
            const int64_t j = ph / 2;
            if (ph % 2 == 0) {
              const float* x = (h_mask ? Hin : Hs).template const_data_ptr<float>() + j * b * P;
              const auto [p0, p1] = split(Wp.panels, np, q);
              const float* init = ln ? nullptr : gx.const_data_ptr<float>() + j * b * G;
              gemm_panels(x, P, b, Wp, p0, p1, s_, G, init, G);
              return;
            }
            const auto [r0, r1] = split(b, ne, q);
            for (int64_t r = r0; r < r1; ++r) {
              row(j, r, s_ + r * G, !ln);
              if (h_mask && j + 1 < T_) masked_input(j + 1, r);
            }
          });
      return;
    }
  }
  for (int64_t j = 0; j < T_; ++j) {
    const T* h = Hs.const_data_ptr<T>() + j * b * P;  // h_{t-1}
    T* hn = Hs.data_ptr<T>() + (j + 1) * b * P;
    Tensor hin = Hs[j];
    if (h_mask) {  // h * m, the input of W_hh
      for (int64_t r = 0; r < b; ++r) masked_input(j, r);
      hin = Hin[j];
    }
    Tensor S = linear_nt(hin, W);  // a = (h * m) W_hh^T, (b, 4h)
    T* s_ = S.data_ptr<T>();
    rows(b, 4 * G, [&](int64_t r) { row(j, r, s_ + r * G, false); });
    if (proj) {
      const T* kh_j = keep_h ? keep_h + j * b * P : nullptr;
      if (kh_j) {
        at::mm_out(Htil, M[j], W_hrT);
        const T* ht = Htil.const_data_ptr<T>();
        for (int64_t q = 0; q < b * P; ++q) hn[q] = keep_blend(kh_j[q], h[q], ht[q]);
      } else {
        Tensor hn_t = Hs[j + 1];
        at::mm_out(hn_t, M[j], W_hrT);
      }
    }
  }
}

// The forward time loop. Returns, in this order (an absent one is an empty tensor):
//   A (T, b, G) gates after their non-linearities, Hs (T+1, b, P) h_0..h_T,
//   C (T+1, b, H) c_0..c_T, K (T, b, H) tanh(c^), Ct (T, b, H) c~ (zoneout on c only),
//   Hin (T, b, P) h * m (recurrent dropout only), M (T, b, H) o k (projection only),
//   Ahat (T, b, G) and Rs (T, b) the gate layer norm's x^ and rstd, Chat (T, b, H) and
//   Rsc (T, b) the cell layer norm's.
std::vector<Tensor> lstm_forward(const Tensor& gx, const Tensor& h0, const Tensor& c0,
                                 const Tensor& W_hh, const std::optional<Tensor>& W_hr,
                                 const std::optional<Tensor>& g_hh,
                                 const std::optional<Tensor>& g_c,
                                 const std::optional<Tensor>& b_c,
                                 const std::optional<Tensor>& w_ch,
                                 const std::optional<Tensor>& h_mask,
                                 const std::optional<Tensor>& keep_h,
                                 const std::optional<Tensor>& keep_c, double eps) {
  TORCH_CHECK(gx.device().is_cpu() && gx.is_contiguous() && gx.dim() == 3,
              "rnnkit lstm_forward: gx must be a contiguous (t, b, 4h) CPU tensor");
  const int64_t T_ = gx.size(0), b = gx.size(1), G = gx.size(2), H = G / 4;
  const int64_t P = W_hh.size(1);
  const auto opt = gx.options();
  Tensor A = seq_empty({T_, b, G}, opt);
  Tensor Hs = seq_empty({T_ + 1, b, P}, opt);
  Tensor C = seq_empty({T_ + 1, b, H}, opt);
  Hs[0].copy_(h0);
  C[0].copy_(c0);
  Tensor K = seq_empty({T_, b, H}, opt);
  Tensor Ct = keep_c.has_value() ? seq_empty({T_, b, H}, opt) : C.narrow(0, 1, T_);
  Tensor Hin = h_mask.has_value() ? seq_empty({T_, b, P}, opt) : empty0(gx);
  Tensor M = W_hr.has_value() ? seq_empty({T_, b, H}, opt) : empty0(gx);
  const bool ln = g_hh.has_value(), lnc = g_c.has_value();
  Tensor Ahat = ln ? seq_empty({T_, b, G}, opt) : empty0(gx);
  Tensor Rs = ln ? seq_empty({T_, b}, opt) : empty0(gx);
  Tensor Chat = lnc ? seq_empty({T_, b, H}, opt) : empty0(gx);
  Tensor Rsc = lnc ? seq_empty({T_, b}, opt) : empty0(gx);
  AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "rnnkit_lstm_forward", [&] {
    forward_loop<scalar_t>(gx, W_hh, W_hr, ptr_or_null<scalar_t>(g_hh),
                           ptr_or_null<scalar_t>(g_c), ptr_or_null<scalar_t>(b_c),
                           ptr_or_null<scalar_t>(w_ch), ptr_or_null<scalar_t>(h_mask),
                           ptr_or_null<scalar_t>(keep_h), ptr_or_null<scalar_t>(keep_c), eps, A,
                           Hs, C, K, Ct, Hin, M, Ahat, Rs, Chat, Rsc);
  });
  if (!keep_c.has_value()) Ct = empty0(gx);  // it is C[1:]
  return {A, Hs, C, K, Ct, Hin, M, Ahat, Rs, Chat, Rsc};
}

// ----------------------------------------------------------------------------- backward
//
// Per step, from dh_t and dc_t (the derivation is in rnnkit.fused.LSTMFunction):
//   dh~ = (1 - d_h) dh_t;  dm = dh~ (projection: dh~ W_hr)
//   ds_o = dm k sigma'(o);  dc^ = dm o tanh'(k)
//   dc~ = (1 - d_c) dc_t + dc^ (cell layer norm: its backward) + ds_o w_co
//   ds_i = dc~ g sigma'(i);  ds_f = dc~ c_{t-1} sigma'(f);  ds_g = dc~ i tanh'(g)
//   dc_{t-1} = d_c dc_t + f dc~ + ds_i w_ci + ds_f w_cf
//   da = ds (gate layer norm: its backward);  dh_{t-1} = (da W_hh) m + d_h dh_t + dy_{t-1}

// One row's gate gradients, from dc_t (in dc, overwritten with dc_{t-1}) and dc^ (dch):
// ds_i, ds_f, ds_g written into ds (ds_o is already there). Templated on the options so that
// each version is one branch-free loop the compiler vectorizes.
template <typename T, bool PEEP, bool ZONE>
void gates_backward(const T* __restrict__ a, const T* __restrict__ cp, const T* __restrict__ dch,
                    const T* __restrict__ keep, const T* __restrict__ w, T* __restrict__ ds,
                    T* __restrict__ dc, int64_t H) {
  for (int64_t u = 0; u < H; ++u) {
    const T i = a[u], f = a[H + u], g = a[2 * H + u];
    const T d = ZONE ? keep[u] : T(0);
    T dct = (1 - d) * dc[u] + dch[u];
    if (PEEP) dct += ds[3 * H + u] * w[2 * H + u];
    const T dsi = dct * g * i * (1 - i), dsf = dct * cp[u] * f * (1 - f);
    ds[u] = dsi, ds[H + u] = dsf, ds[2 * H + u] = dct * i * (1 - g * g);
    T dcp = d * dc[u] + f * dct;
    if (PEEP) dcp += dsi * w[u] + dsf * w[H + u];
    dc[u] = dcp;  // dc_{t-1}
  }
}

template <typename T>
void backward_loop(const Tensor& dY, Tensor& dh, Tensor& dc, const Tensor& A, const Tensor& C,
                   const Tensor& K, const T* ct_, const Tensor& W_hh,
                   const std::optional<Tensor>& W_hr, const T* g_hh, const T* g_c,
                   const T* w_ch, const T* h_mask, const T* keep_h, const T* keep_c,
                   const T* ahat_, const T* rs_, const T* chat_, const T* rsc_, Tensor& DS,
                   Tensor& DA, Tensor& DHt, double* vector_grads) {
  const int64_t T_ = A.size(0), b = A.size(1), G = A.size(2), H = G / 4;
  const int64_t P = W_hh.size(1);
  const bool proj = W_hr.has_value(), ln = g_hh != nullptr;
  Tensor Dm = proj ? at::empty({b, H}, A.options()) : Tensor();  // dm, after W_hr
  Tensor Dht = at::empty({b, P}, A.options());                   // dh~
  std::vector<T> Dch(size_t(b) * H), tmp(size_t(b) * H);  // dc^, and dc~'s share of it
  T* dh_ = dh.data_ptr<T>();
  T* dc_ = dc.data_ptr<T>();
  // dy_t of row r; dY may have any (t, b) strides (a broadcast gradient is not copied)
  const T* dy_ = dY.const_data_ptr<T>();
  const int64_t st = dY.stride(0), sb = dY.stride(1);
  auto dy = [&](int64_t j, int64_t r) { return dy_ + j * st + r * sb; };
  // dh~ = (1 - d_h) dh_t of row r at step j (the projection's input; else dm itself)
  auto dh_tilde = [&](int64_t j, int64_t r) {
    const T* kh_j = keep_h ? keep_h + j * b * P : nullptr;
    T* dht = (proj ? DHt.data_ptr<T>() + j * b * P : Dht.data_ptr<T>()) + r * P;
    const T* dhr = dh_ + r * P;
    for (int64_t q = 0; q < P; ++q) dht[q] = kh_j ? (1 - kh_j[r * P + q]) * dhr[q] : dhr[q];
  };
  // row r of step j: ds (and da) from dm, dc_t; dc_t becomes dc_{t-1}
  auto row = [&](int64_t j, int64_t r, const T* dm) {
    const T* ar = A.const_data_ptr<T>() + (j * b + r) * G;
    const T* kr = K.const_data_ptr<T>() + (j * b + r) * H;
    const T* cpr = C.const_data_ptr<T>() + (j * b + r) * H;  // c_{t-1}
    const T* dmr = dm + r * H;
    T* dsr = DS.data_ptr<T>() + (j * b + r) * G;
    T* dcr = dc_ + r * H;
    T* dchr = Dch.data() + r * H;
    for (int64_t u = 0; u < H; ++u) {
      const T o = ar[3 * H + u], k = kr[u];
      dsr[3 * H + u] = dmr[u] * k * o * (1 - o);  // ds_o
      dchr[u] = dmr[u] * o * (1 - k * k);          // dc^
    }
    const T* dct = dchr;
    if (g_c) {  // dc^ -> dc~ through the cell layer norm, into the scratch row
      T* dcn = tmp.data() + r * H;
      normalize_backward(dchr, g_c, chat_ + (j * b + r) * H, rsc_[j * b + r], dcn, H);
      dct = dcn;
    }
    const T* kcr = keep_c ? keep_c + (j * b + r) * H : nullptr;
    if (w_ch && kcr) {
      gates_backward<T, true, true>(ar, cpr, dct, kcr, w_ch, dsr, dcr, H);
    } else if (w_ch) {
      gates_backward<T, true, false>(ar, cpr, dct, kcr, w_ch, dsr, dcr, H);
    } else if (kcr) {
      gates_backward<T, false, true>(ar, cpr, dct, kcr, w_ch, dsr, dcr, H);
    } else {
      gates_backward<T, false, false>(ar, cpr, dct, kcr, w_ch, dsr, dcr, H);
    }
    if (ln) {
      T* dar = DA.data_ptr<T>() + (j * b + r) * G;
      normalize_backward(dsr, g_hh, ahat_ + (j * b + r) * G, rs_[j * b + r], dar, G);
    }
  };
  // the vector parameters' gradients, summed over steps (over rows in order), for rows
  // [r0, r1) and the columns of piece q of nq: dg_hh = sum ds a^, dg_c = sum dc^ c~^,
  // db_c = sum dc^, dw_c(i,f,o) = sum ds_(i,f,o) c; into out (dg_hh G, dg_c H, db_c H,
  // dw_ch 3H, laid out one after another)
  auto sums = [&](int64_t j, int64_t r0, int64_t r1, int64_t q, int64_t nq, double* out) {
    const auto [k0, k1] = split(G, nq, q);
    const auto [u0, u1] = split(H, nq, q);
    double *dg_hh = out, *dg_c = out + G, *db_c = dg_c + H, *dw_ch = db_c + H;
    for (int64_t r = r0; r < r1; ++r) {
      const T* dsr = DS.const_data_ptr<T>() + (j * b + r) * G;
      if (ln) {
        const T* ahat = ahat_ + (j * b + r) * G;
        for (int64_t k = k0; k < k1; ++k) dg_hh[k] += dsr[k] * ahat[k];
      }
      if (g_c) {
        const T* dchr = Dch.data() + r * H;
        const T* chat = chat_ + (j * b + r) * H;
        for (int64_t u = u0; u < u1; ++u) dg_c[u] += dchr[u] * chat[u], db_c[u] += dchr[u];
      }
      if (w_ch) {
        const T* cpr = C.const_data_ptr<T>() + (j * b + r) * H;
        const T* ctr = ct_ + (j * b + r) * H;
        for (int64_t u = u0; u < u1; ++u) {
          dw_ch[u] += dsr[u] * cpr[u];
          dw_ch[H + u] += dsr[H + u] * cpr[u];
          dw_ch[2 * H + u] += dsr[3 * H + u] * ctr[u];
        }
      }
    }
  };
  if constexpr (std::is_same_v<T, float>) {
    if (!proj && packed_steps()) {
      // phase 2i (j = T - 1 - i): the rows, first finishing dh_t = (da W_hh) m + d_h dh + dy
      // for j < T - 1; phase 2i + 1: da_j W_hh by column panels, each piece with its share
      // of the vector parameters' sums.
      const Tensor Wc = W_hh.contiguous();  // packed as W_hh^T (p, 4h)
      const Packed Wp = pack(Wc.const_data_ptr<float>(), P, G, 1, P);
      if (const int64_t bands = row_bands(b, G * P)) {  // each thread its rows, every step
        Tensor DhW = at::empty({b, P}, A.options());
        float* dhw = DhW.data_ptr<float>();
        const int64_t nv = G + 5 * H;  // the vector gradients, summed per band, then in order
        std::vector<double> band_sums(size_t(bands) * nv, 0.0);
        run_phases(1, bands, [&](int64_t) { return bands; }, [&](int64_t, int64_t q) {
          const auto [r0, r1] = split(b, bands, q);
          for (int64_t j = T_ - 1; j >= 0; --j) {
            for (int64_t r = r0; r < r1; ++r) {
              if (j < T_ - 1) {  // dh_t = (da_{t+1} W_hh) m + d_h dh_{t+1} + dy_t
                const T* kh = keep_h ? keep_h + ((j + 1) * b + r) * P : nullptr;
                recurrent_grad(dh_ + r * P, true, kh, dhw + r * P,
                               h_mask ? h_mask + r * P : nullptr, dy(j, r), P);
              }
              dh_tilde(j, r);
              row(j, r, Dht.const_data_ptr<T>());
            }
            sums(j, r0, r1, 0, 1, band_sums.data() + q * nv);
            const float* da = (ln ? DA : DS).const_data_ptr<float>() + (j * b + r0) * G;
            gemm_panels(da, G, r1 - r0, Wp, 0, Wp.panels, dhw + r0 * P, P, nullptr, 0);
          }
          for (int64_t r = r0; r < r1; ++r)  // dh_0, with step 0's keep
            recurrent_grad<T>(dh_ + r * P, true, keep_h ? keep_h + r * P : nullptr, dhw + r * P,
                              h_mask ? h_mask + r * P : nullptr, nullptr, P);
        });
        for (int64_t q = 0; q < bands; ++q)
          for (int64_t v = 0; v < nv; ++v) vector_grads[v] += band_sums[q * nv + v];
        return;
      }
      const int64_t nth = at::get_num_threads();
      const int64_t np = std::min<int64_t>(nth, Wp.panels), ne = std::min<int64_t>(nth, b);
      Tensor DhW = at::empty({b, P}, A.options());
      float* dhw = DhW.data_ptr<float>();
      run_phases(
          2 * T_, std::max(np, ne), [&](int64_t ph) { return ph % 2 ? np : ne; },
          [&](int64_t ph, int64_t q) {
            const int64_t j = T_ - 1 - ph / 2;
            if (ph % 2 == 0) {  // rows
              const auto [r0, r1] = split(b, ne, q);
              for (int64_t r = r0; r < r1; ++r) {
                if (j < T_ - 1) {
                  const T* kh = keep_h ? keep_h + ((j + 1) * b + r) * P : nullptr;
                  recurrent_grad(dh_ + r * P, true, kh, dhw + r * P,
                                 h_mask ? h_mask + r * P : nullptr, dy(j, r), P);
                }
                dh_tilde(j, r);
                row(j, r, Dht.const_data_ptr<T>());
              }
              return;
            }
            sums(j, 0, b, q, np, vector_grads);
            const auto [p0, p1] = split(Wp.panels, np, q);
            const float* da = (ln ? DA : DS).const_data_ptr<float>() + j * b * G;
            gemm_panels(da, G, b, Wp, p0, p1, dhw, P, nullptr, 0);
          });
      const T* kh = keep_h ? keep_h : nullptr;  // step 0's
      recurrent_grad<T>(dh_, true, kh, dhw, h_mask, nullptr, b * P);
      return;
    }
  }
  const Tensor W_hhT = W_hh.t().contiguous();  // (p, 4h): da W_hh = linear_nt(da, W_hh^T)
  for (int64_t j = T_ - 1; j >= 0; --j) {
    const T* kh_j = keep_h ? keep_h + j * b * P : nullptr;
    for (int64_t r = 0; r < b; ++r) dh_tilde(j, r);
    const T* dm = proj ? DHt.const_data_ptr<T>() + j * b * P : Dht.const_data_ptr<T>();
    if (proj) {
      at::mm_out(Dm, DHt[j], *W_hr);
      dm = Dm.const_data_ptr<T>();
    }
    rows(b, 4 * G, [&](int64_t r) { row(j, r, dm); });
    sums(j, 0, b, 0, 1, vector_grads);
    // dh_{t-1} = (da W_hh) m + d_h dh_t + dy_{t-1}
    const Tensor DhW = linear_nt(ln ? DA[j] : DS[j], W_hhT);
    const T* dhw = DhW.const_data_ptr<T>();
    for (int64_t r = 0; r < b; ++r)
      recurrent_grad(dh_ + r * P, true, kh_j ? kh_j + r * P : nullptr, dhw + r * P,
                     h_mask ? h_mask + r * P : nullptr, j > 0 ? dy(j - 1, r) : nullptr, P);
  }
}

// The backward time loop. dY (T, b, P) is the gradient of the outputs (padding already
// masked; any (t, b) strides, unit stride over p), dh_T and dc_T of the final state. Returns
// DS (T, b, G) = dL/ds (the gradient of gx), DA (T, b, G) = dL/da before the gate layer norm
// (layer norm only), DHt (T, b, P) = dh~ (projection only), dh_0, dc_0, and the gradients of
// the vector parameters summed over all steps: dg_hh (G), dg_c (H), db_c (H), dw_ch (3H), each
// empty when absent.
std::vector<Tensor> lstm_backward(
    const Tensor& dY, const Tensor& dh_T, const Tensor& dc_T, const Tensor& A, const Tensor& C,
    const Tensor& K, const Tensor& Ct, const Tensor& W_hh, const std::optional<Tensor>& W_hr,
    const std::optional<Tensor>& g_hh, const std::optional<Tensor>& g_c,
    const std::optional<Tensor>& w_ch, const std::optional<Tensor>& h_mask,
    const std::optional<Tensor>& keep_h, const std::optional<Tensor>& keep_c,
    const std::optional<Tensor>& Ahat, const std::optional<Tensor>& Rs,
    const std::optional<Tensor>& Chat, const std::optional<Tensor>& Rsc) {
  TORCH_CHECK(dY.dim() == 3 && (dY.stride(2) == 1 || dY.numel() == 0) && A.is_contiguous(),
              "rnnkit lstm_backward: dY (t, b, p) with unit stride over p, A contiguous");
  const int64_t T_ = A.size(0), b = A.size(1), G = A.size(2), H = G / 4;
  const int64_t P = W_hh.size(1);
  const auto opt = A.options();
  Tensor DS = seq_empty({T_, b, G}, opt);
  Tensor DA = g_hh.has_value() ? seq_empty({T_, b, G}, opt) : empty0(A);
  Tensor DHt = W_hr.has_value() ? seq_empty({T_, b, P}, opt) : empty0(A);
  // the vector parameters' gradients, summed in double: dg_hh, dg_c, db_c, dw_ch
  Tensor sums = at::zeros({G + 5 * H}, opt.dtype(at::kDouble));
  Tensor dh = (dY[T_ - 1] + dh_T).contiguous();
  Tensor dc = dc_T.clone().contiguous();
  const Tensor ct = keep_c.has_value() ? Ct : C.narrow(0, 1, T_);  // c~
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "rnnkit_lstm_backward", [&] {
    backward_loop<scalar_t>(dY, dh, dc, A, C, K, ct.const_data_ptr<scalar_t>(), W_hh, W_hr,
                            ptr_or_null<scalar_t>(g_hh), ptr_or_null<scalar_t>(g_c),
                            ptr_or_null<scalar_t>(w_ch), ptr_or_null<scalar_t>(h_mask),
                            ptr_or_null<scalar_t>(keep_h), ptr_or_null<scalar_t>(keep_c),
                            ptr_or_null<scalar_t>(Ahat), ptr_or_null<scalar_t>(Rs),
                            ptr_or_null<scalar_t>(Chat), ptr_or_null<scalar_t>(Rsc), DS, DA, DHt,
                            sums.data_ptr<double>());
  });
  const Tensor s = sums.to(A.scalar_type());  // an absent one is empty
  auto part = [&](bool on, int64_t from, int64_t n) {
    return s.narrow(0, from, on ? n : 0).clone();
  };
  return {DS, DA, DHt, dh, dc, part(g_hh.has_value(), 0, G), part(g_c.has_value(), G, H),
          part(g_c.has_value(), G + H, H), part(w_ch.has_value(), G + 2 * H, 3 * H)};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def(
      "lstm_forward(Tensor gx, Tensor h0, Tensor c0, Tensor W_hh, Tensor? W_hr, Tensor? g_hh, "
      "Tensor? g_c, Tensor? b_c, Tensor? w_ch, Tensor? h_mask, Tensor? keep_h, Tensor? keep_c, "
      "float eps) -> Tensor[]");
  m.def(
      "lstm_backward(Tensor dY, Tensor dh_T, Tensor dc_T, Tensor A, Tensor C, Tensor K, "
      "Tensor Ct, Tensor W_hh, Tensor? W_hr, Tensor? g_hh, Tensor? g_c, Tensor? w_ch, "
      "Tensor? h_mask, Tensor? keep_h, Tensor? keep_c, Tensor? Ahat, Tensor? Rs, Tensor? Chat, "
      "Tensor? Rsc) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("lstm_forward", &lstm_forward);
  m.impl("lstm_backward", &lstm_backward);
}
