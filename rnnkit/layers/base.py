"""What `RNN`, `LSTM` and `GRU` share: variants, ``lengths=``, and running each of the paths.

`_FusedOrLoop` is a mixin for the torch.nn layers (``class LSTM(_FusedOrLoop, nn.LSTM)``):
torch keeps its parameters and kernel, and this adds

* the variants of `rnnkit.variants` (their parameters, registered after torch's own);
* ``forward(input, hx=None, *, lengths=None, return_states=False)`` over the path that
  `rnnkit.layers.dispatch.resolve` picks: native (torch's kernel, with packing for
  ``lengths=`` and weight drop swapped into its flat weights), loop (`run_stack` over the
  step closures of each class's ``_direction``), or fused (`rnnkit.fused.run_direction`);
* `forward_probed`, the loop with a probe added to every step's h_t: with a zero probe,
  dL/dprobe is dL/dh_t of every layer, direction and step (`rnnkit.viz.gradients`);
* `_prepare`, which draws one (layer, direction)'s masks in a fixed order (weight drop,
  recurrent dropout, zoneout c, zoneout h), so the loop and the fused path see the same random
  numbers.

Shapes: t time, b batch, i input features, h hidden features, p output features (proj_size
or h), d directions (1 or 2), l layers; gh gates * h.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit import gemm
from rnnkit.cells import input_projection
from rnnkit.checks import check_dtype
from rnnkit.layers.dispatch import check_impl, check_native, resolve
from rnnkit.layers.unroll import (
    _check_features,
    _check_state,
    _Direction,
    _mask,
    _state_shape,
    from_time_major,
    probed,
    run_stack,
    to_time_major,
)
from rnnkit.norm import layer_norm
from rnnkit.variants import Variants, add_parameters, variational_mask, zoneout_keep
from rnnkit.variants import reset_parameters as reset_variant_parameters


class _FusedOrLoop:
    """Mixin for the torch.nn layers: variants, impl dispatch, ``lengths=``, and the loop."""

    impl: str
    variants: Variants
    gate_count: int

    def _set_options(self, impl: str, mode: str, bias: bool, variants: dict) -> None:
        name = type(self).__name__
        check_impl(name, impl)
        self.impl = impl
        self.variants = Variants.from_keywords(name, mode, bias, variants)
        check_native(name, impl, self.variants)

    def _add_variant_parameters(self, device, dtype) -> None:
        """Register the variants' parameters (after torch.nn has made its own)."""
        kw, v = {"device": device, "dtype": dtype}, self.variants
        for sfx in self._suffixes():
            add_parameters(self, v, sfx, self.gate_count, self.hidden_size, kw)
        if v.learn_init:
            dl, out = self.num_layers * self.num_directions, self.proj_size or self.hidden_size
            self.init_h = nn.Parameter(torch.zeros(dl, out, **kw))  # (d*l, p or h)
            if self.mode == "LSTM":
                self.init_c = nn.Parameter(torch.zeros(dl, self.hidden_size, **kw))  # (d*l, h)

    def _suffixes(self) -> list[str]:
        return [
            f"_l{layer}" + ("_reverse" if d else "")
            for layer in range(self.num_layers)
            for d in range(self.num_directions)
        ]

    def reset_parameters(self) -> None:
        """torch.nn's U(-1/sqrt(h), 1/sqrt(h)), then what the variants ask for."""
        super().reset_parameters()
        v = getattr(self, "variants", None)
        if v is not None:
            reset_variant_parameters(self, v, self._suffixes(), self.hidden_size)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        s += "".join(f", {k}={v!r}" for k, v in self.variants.on().items())
        return s + ("" if self.impl == "auto" else f", impl={self.impl!r}")

    # ------------------------------------------------------------------------- dispatch

    def plan(
        self, input: Tensor | None = None, *, return_states: bool = False, lengths=None
    ) -> str:
        """Which implementation `forward` runs, and why (not a faster one)."""
        return self._resolve(input, return_states, lengths is not None)[1]

    def _resolve(self, input, return_states: bool, lengths: bool = False) -> tuple[str, str]:
        return resolve(self, input, return_states, lengths)

    def forward(self, input, hx=None, *, lengths=None, return_states: bool = False):
        """See the class docstring. With ``return_states=True`` also returns a dict of the
        per-step states of every layer and direction, each (d*l, t, b, .) time-major, zero on
        padding: ``h`` (outputs), LSTM ``c``, and ``gates`` after their non-linearities."""
        path, _ = self._resolve(input, return_states, lengths is not None)
        if path != "native":  # torch's kernel has its own message
            name, weight = type(self).__name__, self.weight_ih_l0
            data = input.data if isinstance(input, PackedSequence) else input
            check_dtype(name, data, weight)
            check_dtype(name, hx, weight, "hx")
        if path == "loop":
            return self._loop_forward(input, hx, lengths, return_states)
        if path == "fused":
            return self._fused_forward(input, hx, lengths)
        return self._native_forward(input, hx, lengths)

    # ------------------------------------------------------------------------- native

    def _native_forward(self, input, hx, lengths):
        name = type(self).__name__
        if isinstance(input, PackedSequence) and lengths is None:
            _check_features(name, input.data, self.input_size)
            b, batched = int(input.batch_sizes[0]), True
        else:
            # validate here, so that native and loop reject bad input with the same message
            x, lengths, layout = to_time_major(
                name, input, self.input_size, self.batch_first, lengths
            )
            b, batched = x.size(1), layout.batched
        if hx is not None:
            self._check_hx(hx, b, batched)
        elif self.variants.learn_init:
            hx = self._learned_hx(b, batched)
        with self._dropped_weights():
            if lengths is None:
                return super().forward(input, hx)
            # lengths= on the fused kernel: pack, run, unpack to zero-padded output
            packed = pack_padded_sequence(input, lengths, self.batch_first, enforce_sorted=False)
            out, state = super().forward(packed, hx)
        out, _ = pad_packed_sequence(out, self.batch_first, total_length=x.size(0))
        return out, state

    @contextlib.contextmanager
    def _dropped_weights(self):
        """Weight drop on the fused kernel: swap torch's flat weight list for one with masked
        W_hh for the duration of the call (the parameters themselves are untouched)."""
        if not (self.variants.weight_drop and self.training):
            yield
            return
        saved = self._flat_weights
        self._flat_weights = [
            self._drop_weight(w) if n.startswith("weight_hh") else w
            for n, w in zip(self._flat_weights_names, saved, strict=True)
        ]
        try:
            yield
        finally:
            self._flat_weights = saved

    def _drop_weight(self, weight_hh: Tensor) -> Tensor:
        if not (self.variants.weight_drop and self.training):
            return weight_hh
        return weight_hh * variational_mask(self.variants.weight_drop, weight_hh.shape, weight_hh)

    def _learned_hx(self, b: int, batched: bool):
        """init_h (d*l, p) -> (d*l, b, p), and init_c the same for LSTM."""
        parts = [self.init_h] + ([self.init_c] if self.mode == "LSTM" else [])
        if batched:
            parts = [p.unsqueeze(1).expand(-1, b, -1).contiguous() for p in parts]
        return tuple(parts) if self.mode == "LSTM" else parts[0]

    # ------------------------------------------------------------------------- loop and fused

    def _params(self, k: int) -> dict[str, Tensor | None]:
        """Layer-direction k's parameters by torch.nn's names: weight_ih_l{k}{_reverse}, ..."""
        sfx = self._suffixes()[k]
        names = (
            "weight_ih",
            "weight_hh",
            "bias_ih",
            "bias_hh",
            "weight_hr",
            "ln_weight_ih",
            "ln_weight_hh",
            "ln_weight_c",
            "ln_bias_c",
            "weight_ch",
        )
        return {n: getattr(self, n + sfx, None) for n in names}

    def _prepare(self, k: int, x: Tensor, fold_bias_hh: bool = False) -> _Direction:
        """Input projections of the whole sequence and this sequence's masks, drawn in a fixed
        order (weight drop, recurrent dropout, zoneout c, zoneout h) so that every path sees
        the same random numbers. ``fold_bias_hh``: add b_hh to the projections' bias (one
        vector addition instead of a pass over gx), where it only shifts s (LSTM, RNN); the
        fused path always folds it, so its LSTM and RNN get ``bias_hh=None``."""
        p, v, train = self._params(k), self.variants, self.training
        T, b = x.size(0), x.size(1)
        out = self.proj_size or self.hidden_size
        bias_ih, bias_hh = p["bias_ih"], p["bias_hh"]
        if fold_bias_hh and self.mode != "GRU" and bias_hh is not None:
            bias_ih, bias_hh = bias_hh if bias_ih is None else bias_ih + bias_hh, None
        # the fused path's whole-sequence product through oneDNN where it applies (rnnkit.gemm),
        # its layer norm with the large buffers from rnnkit's cache (rnnkit.norm); gx (t, b, gh)
        linear = gemm.linear if fold_bias_hh else F.linear
        norm = layer_norm if fold_bias_hh else None
        gx = input_projection(x, p["weight_ih"], bias_ih, p["ln_weight_ih"], linear, norm)
        weight_hh = self._drop_weight(p["weight_hh"])
        h_mask = None
        if v.recurrent_dropout and train:
            h_mask = variational_mask(v.recurrent_dropout, (b, out), x)  # (b, p)
        keep_c = keep_h = None
        if v.zoneout_c and self.mode == "LSTM":
            keep_c = zoneout_keep(v.zoneout_c, (T, b, self.hidden_size), x, train)
        if v.zoneout_h:
            keep_h = zoneout_keep(v.zoneout_h, (T, b, out), x, train)
        return _Direction(
            gx,
            weight_hh,
            bias_hh,
            p["weight_hr"],
            p["ln_weight_hh"],
            p["ln_weight_c"],
            p["ln_bias_c"],
            p["weight_ch"],
            h_mask,
            keep_h,
            keep_c,
        )

    def _begin(self, input, hx, lengths):
        name = type(self).__name__
        x, lengths, layout = to_time_major(name, input, self.input_size, self.batch_first, lengths)
        b, dl = x.size(1), self.num_layers * self.num_directions
        states = self._initial_states(hx, b, dl, layout.batched, x)
        return x, layout, states, _mask(lengths, x.size(0), x.device)

    def forward_probed(self, input, probe: Tensor, hx=None, *, lengths=None):
        """The loop path with ``probe`` added to every step's h_t; returns what
        ``forward(..., return_states=True)`` returns.

        probe (d*l, t, b, p), laid out as the returned ``h`` (time-major; no b for unbatched
        input): probe[k, t] is added to layer-direction k's h_t right after its step, before
        the next step and the layer above read it. A zero probe changes no value, and autograd
        then gives dL/dprobe[k, t] = dL/dh_t, the total derivative through time and the layers
        above (how `rnnkit.viz.gradients` measures gradient flow). Runs the loop whatever
        ``impl`` says, since only the loop has per-step states to probe.
        """
        return self._loop_forward(input, hx, lengths, True, probe)

    def _loop_forward(self, input, hx, lengths, return_states=False, probe=None):
        x, layout, states, mask = self._begin(input, hx, lengths)
        records: list[list] = [[] for _ in range(len(states))]
        outputs: list[Tensor] = []
        if probe is not None:
            self._check_probe(probe, x, layout.batched)
            probe = probe if layout.batched else probe.unsqueeze(2)  # (d*l, t, b, p)

        def direction(k, x):
            inputs, step = self._direction(k, x, records[k] if return_states else None)
            if probe is None:
                return inputs, step
            return inputs + (probe[k],), probed(step)  # unroll slices probe[k] (t, b, p)

        out, finals = run_stack(
            x,
            states,
            mask,
            direction,
            self.num_layers,
            self.num_directions,
            self.dropout,
            self.training,
            record=outputs,
        )
        final = self._stack_final(finals, layout.batched)
        out = from_time_major(out, layout)
        if not return_states:
            return out, final
        return out, final, self._per_step(outputs, records, mask, layout.batched)

    def _check_probe(self, probe, x, batched):
        dl, out = len(self._suffixes()), self.proj_size or self.hidden_size
        expected = (dl, x.size(0), x.size(1), out) if batched else (dl, x.size(0), out)
        if not isinstance(probe, Tensor) or tuple(probe.shape) != expected:
            got = tuple(probe.shape) if isinstance(probe, Tensor) else type(probe).__name__
            raise ValueError(
                f"{type(self).__name__}: Expected probe size (d*l, t, b, p) = {expected} "
                "(no b for unbatched input), "
                f"got {got}"
            )

    def _per_step(self, outputs, records, mask, batched) -> dict[str, Tensor]:
        """Stack what the steps recorded into (d*l, t, b, .), in time order, zero on padding."""
        steps = {"h": torch.stack(outputs)}
        names = ("c", "gates") if self.mode == "LSTM" else ("gates",)
        for j, name in enumerate(names):
            per_k = []
            for k, rec in enumerate(records):
                seq = [r[j] for r in rec]
                if k % self.num_directions == 1:
                    seq.reverse()  # the reverse direction recorded T-1 first
                per_k.append(torch.stack(seq))
            steps[name] = torch.stack(per_k)
        for name, value in steps.items():
            if mask is not None:
                value = value * mask.unsqueeze(-1)
            steps[name] = value if batched else value.squeeze(2)
        return steps

    def _fused_forward(self, input, hx, lengths):
        from rnnkit.fused import run_direction  # the fast path, loaded when first used

        x, layout, states, mask = self._begin(input, hx, lengths)

        def run(step, prep, state, mask, reverse):
            return run_direction(self.mode, prep, state, mask, reverse)

        out, finals = run_stack(
            x,
            states,
            mask,
            lambda k, x: (self._prepare(k, x, fold_bias_hh=True), None),
            self.num_layers,
            self.num_directions,
            self.dropout,
            self.training,
            run=run,
        )
        return from_time_major(out, layout), self._stack_final(finals, layout.batched)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    # One state tensor per (layer, direction), as RNN and GRU have; LSTM overrides all three.
    def _check_hx(self, hx, b, batched):
        dl = self.num_layers * self.num_directions
        _check_state(type(self).__name__, "hx", hx, _state_shape(dl, b, self.hidden_size, batched))

    def _initial_states(self, hx, b, dl, batched, x):
        if hx is None:
            if self.variants.learn_init:
                return list(self._learned_hx(b, True).unbind(0))
            hx = x.new_zeros(dl, b, self.hidden_size)
        else:
            self._check_hx(hx, b, batched)
            hx = hx if batched else hx.unsqueeze(1)
        return list(hx.unbind(0))

    def _stack_final(self, finals, batched):
        h_n = torch.stack(finals)  # (d*l, b, h)
        return h_n if batched else h_n.squeeze(1)
