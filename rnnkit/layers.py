"""Layers: a cell unrolled over time, stacked, in one or two directions, over variable lengths.

`RNN`, `LSTM` and `GRU` keep torch.nn's whole contract (they subclass the torch.nn layers, so
parameter names, gate order, `state_dict`, `flatten_parameters` and cuDNN weight sharing are
torch's own) and add:

* ``impl="auto" | "native" | "fused" | "loop"`` (keyword-only): ``native`` runs torch's fused
  kernel, ``fused`` the custom autograd Functions of `rnnkit.fused` (hand-written BPTT),
  ``loop`` the readable time loop below over `rnnkit.cells` steps; ``auto`` picks native
  whenever native computes the requested function, else fused. ``layer.plan()`` says which and
  why.
* the variants of `rnnkit.variants` as keyword-only options (``layer_norm=True``,
  ``zoneout=0.1``, ...), composable with num_layers, bidirectional, lengths and proj_size.
* ``forward(input, hx=None, *, lengths=None, return_states=False)``: ``lengths`` (b,) is a
  simpler alternative to a ``PackedSequence``; padded output positions are zero and the final
  state is taken at each sequence's last valid step, exactly as with packing.
  ``return_states=True`` adds every step's h (and c), and gate values, for analysis.

`Recurrent(cell, ...)` runs any cell (``cell(x_t, state) -> state``) through the same stacking,
bidirectional and lengths machinery.

Shapes: t time, b batch, i input features, h hidden features, d directions (1 or 2), l layers.
Inside the loop everything is time-major: x (t, b, i).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.cells import gru_step, input_projection, lstm_step, rnn_step
from rnnkit.variants import (
    Variants,
    add_parameters,
    variational_mask,
    zoneout,
    zoneout_keep,
)
from rnnkit.variants import reset_parameters as reset_variant_parameters

__all__ = ["RNN", "LSTM", "GRU", "Recurrent", "unroll"]

IMPLS = ("auto", "native", "fused", "loop")

State = Any  # a Tensor (b, h), or a tuple of them, e.g. LSTM's (h, c)


# ----------------------------------------------------------------------------- the time loop


def _tree_map(fn: Callable, *states):
    if isinstance(states[0], tuple | list):
        return tuple(fn(*parts) for parts in zip(*states, strict=True))
    return fn(*states)


def _output_of(state: State) -> Tensor:
    return state[0] if isinstance(state, tuple | list) else state


def unroll(
    step: Callable[[Any, State], State],
    inputs: Tensor | tuple[Tensor, ...],
    state: State,
    mask: Tensor | None = None,
    reverse: bool = False,
) -> tuple[Tensor, State]:
    """Run ``state = step(inputs[t], state)`` for t = 0..T-1 (or T-1..0 when ``reverse``).

    inputs: (t, b, ...), or a tuple of such tensors (the step then gets the tuple of their t-th
    slices). mask: (t, b) bool, False on padding: there the state is carried unchanged and the
    output is zero, so a reverse pass starts at each sequence's last step.
    Returns outputs (t, b, h), the first tensor of each step's state, and the final state.
    """
    # unbind once: one backward node for all steps (indexing inputs[t] would give each step a
    # backward that writes a full-size zero gradient, quadratic in T)
    if isinstance(inputs, tuple):
        per_step = list(zip(*(i.unbind(0) for i in inputs), strict=True))
    else:
        per_step = inputs.unbind(0)
    T = len(per_step)
    outputs: list[Tensor] = [None] * T  # type: ignore[list-item]
    masks = mask.unsqueeze(-1).unbind(0) if mask is not None else None  # (b, 1) per step
    for t in range(T - 1, -1, -1) if reverse else range(T):
        new = step(per_step[t], state)
        if masks is not None:
            m = masks[t]
            new = _tree_map(lambda n, s, m=m: torch.where(m, n, s), new, state)
            outputs[t] = _output_of(new) * m
        else:
            outputs[t] = _output_of(new)
        state = new
    return torch.stack(outputs), state


def run_stack(
    x: Tensor,
    states: list[State],
    mask: Tensor | None,
    direction: Callable[[int, Tensor], tuple[Any, Callable]],
    num_layers: int,
    num_directions: int,
    dropout: float,
    training: bool,
    *,
    run: Callable = unroll,
    record: list | None = None,
) -> tuple[Tensor, list[State]]:
    """Stack layers and directions. ``direction(k, x)`` returns (inputs, step) for the k-th
    (layer, direction) pair, k = layer * num_directions + d; d = 1 runs backwards in time, and
    ``run(step, inputs, state, mask, reverse)`` (by default `unroll`) runs it.

    x: (t, b, i); states[k]: the initial state of pair k. Returns (t, b, d*h) and final states;
    ``record``, when given, receives each pair's output (t, b, h).
    """
    finals: list[State] = []
    for layer in range(num_layers):
        outs = []
        for d in range(num_directions):
            k = layer * num_directions + d
            inputs, step = direction(k, x)
            out, final = run(step, inputs, states[k], mask, reverse=d == 1)
            outs.append(out)
            finals.append(final)
        if record is not None:
            record += outs
        x = torch.cat(outs, dim=-1) if num_directions == 2 else outs[0]  # (t, b, d*h)
        if dropout > 0 and training and layer < num_layers - 1:
            x = F.dropout(x, dropout, training=True)
    return x, finals


# ----------------------------------------------------------------------------- input and output


@dataclass
class _Layout:
    """How the caller laid out the sequence, to give the output back the same way."""

    batched: bool
    batch_first: bool
    packed: PackedSequence | None = None


def _check_lengths(name: str, lengths: Any, batch: int, steps: int) -> Tensor:
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.numel() != batch:
        raise ValueError(
            f"{name}: lengths must be a 1D tensor with one length per sequence. "
            f"Expected shape ({batch},), got {tuple(lengths.shape)}"
        )
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise ValueError(f"{name}: lengths must hold integers, got dtype {lengths.dtype}")
    lengths = lengths.to("cpu", torch.int64)
    if batch and (lengths.min() < 1 or lengths.max() > steps):
        raise ValueError(
            f"{name}: every length must be between 1 and the sequence length {steps}, "
            f"got lengths from {int(lengths.min())} to {int(lengths.max())}"
        )
    return lengths


def to_time_major(
    name: str, input: Any, input_size: int, batch_first: bool, lengths: Any = None
) -> tuple[Tensor, Tensor | None, _Layout]:
    """Validate ``input`` and return x (t, b, i), lengths (b,) on the CPU or None, and layout."""
    if isinstance(input, PackedSequence):
        if lengths is not None:
            raise ValueError(f"{name}: pass either a PackedSequence or lengths=, not both")
        x, lengths = pad_packed_sequence(input)  # (t, b, i) in the caller's batch order
        _check_features(name, x, input_size)
        return x, lengths, _Layout(True, batch_first, packed=input)
    if not isinstance(input, Tensor):
        raise TypeError(
            f"{name}: input must be a Tensor or a PackedSequence, got {type(input).__name__}"
        )
    if input.dim() not in (2, 3):
        raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.dim()}D instead")
    _check_features(name, input, input_size)
    batched = input.dim() == 3
    if not batched:
        if lengths is not None:
            raise ValueError(f"{name}: lengths= needs batched 3D input, got unbatched 2D input")
        x = input.unsqueeze(1)
    else:
        x = input.transpose(0, 1) if batch_first else input
    if x.size(0) == 0:
        dim = 1 if batched and batch_first else 0
        raise ValueError(
            f"{name}: Expected sequence length to be larger than 0, got input of shape "
            f"{tuple(input.shape)} (time is dimension {dim}"
            + (", batch_first=True)" if batched and batch_first else ")")
        )
    if lengths is not None:
        lengths = _check_lengths(name, lengths, x.size(1), x.size(0))
    return x, lengths, _Layout(batched, batch_first)


def _check_features(name: str, x: Tensor, input_size: int) -> None:
    if x.size(-1) != input_size:
        raise ValueError(
            f"{name}: input.size(-1) must be equal to input_size. "
            f"Expected {input_size}, got {x.size(-1)}"
        )


def from_time_major(out: Tensor, layout: _Layout):
    """The inverse of `to_time_major` for an output (t, b, h)."""
    if layout.packed is not None:
        p = layout.packed
        if p.sorted_indices is not None:
            out = out.index_select(1, p.sorted_indices)  # pack in the input's sorted order
        data = torch.cat([out[t, :n] for t, n in enumerate(p.batch_sizes.tolist())])
        return PackedSequence(data, p.batch_sizes, p.sorted_indices, p.unsorted_indices)
    if not layout.batched:
        return out.squeeze(1)
    return out.transpose(0, 1) if layout.batch_first else out


def _check_state(name: str, what: str, h: Any, expected: tuple[int, ...]) -> None:
    if not isinstance(h, Tensor):
        raise TypeError(f"{name}: {what} must be a Tensor, got {type(h).__name__}")
    if tuple(h.shape) != expected:
        raise ValueError(
            f"{name}: Expected {what} size {expected}, got {tuple(h.shape)} "
            "(hint: (num_layers * num_directions, batch, hidden); no batch for unbatched input)"
        )


def _state_shape(dl: int, b: int, h: int, batched: bool) -> tuple[int, ...]:
    return (dl, b, h) if batched else (dl, h)


def _mask(lengths: Tensor | None, steps: int, device) -> Tensor | None:
    if lengths is None:
        return None
    return torch.arange(steps, device=device).unsqueeze(1) < lengths.to(device).unsqueeze(0)


# ----------------------------------------------------------------------------- RNN, LSTM, GRU


@dataclass
class _Direction:
    """Everything one (layer, direction) pair needs for a forward pass, masks drawn.

    gx (t, b, gh): the input projections of the whole sequence. keep_h (t, b, p), keep_c
    (t, b, h): zoneout masks (bool) in training, the rate (float) in eval mode, else None.
    h_mask (b, p): the recurrent-dropout mask of this sequence. weight_hh: after weight drop.
    """

    gx: Tensor
    weight_hh: Tensor
    bias_hh: Tensor | None
    weight_hr: Tensor | None = None
    ln_weight_hh: Tensor | None = None
    ln_weight_c: Tensor | None = None
    ln_bias_c: Tensor | None = None
    weight_ch: Tensor | None = None
    h_mask: Tensor | None = None
    keep_h: Tensor | float | None = None
    keep_c: Tensor | float | None = None


def _keeper(keep, seq: list) -> Callable:
    """How a step finds its zoneout mask: a per-step slice of an extra input, a rate, or None."""
    if isinstance(keep, Tensor):
        seq.append(keep)
        i = len(seq) - 1
        return lambda inp: inp[i]
    return lambda inp: keep


def _zone(new: Tensor, old: Tensor, keep) -> Tensor:
    return new if keep is None else zoneout(new, old, keep)


class _FusedOrLoop:
    """Mixin for the torch.nn layers: variants, impl dispatch, ``lengths=``, and the loop."""

    impl: str
    variants: Variants
    gate_count: int

    def _set_options(self, impl: str, mode: str, bias: bool, variants: dict) -> None:
        name = type(self).__name__
        if impl not in IMPLS:
            raise ValueError(f"{name}: impl must be one of {IMPLS}, got {impl!r}")
        self.impl = impl
        self.variants = Variants.from_keywords(name, mode, bias, variants)
        blockers = self.variants.native_blockers(training=True)
        if impl == "native" and blockers:
            raise ValueError(
                f"{name}: impl='native' cannot compute {', '.join(blockers)}: torch's fused "
                f"kernel has no such option (hint: impl='auto' picks the fastest path that does)"
            )

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

    def plan(self, input: Tensor | None = None, *, return_states: bool = False) -> str:
        """Which implementation `forward` runs, and why (not a faster one)."""
        return self._resolve(input, return_states)[1]

    def _resolve(self, input, return_states: bool) -> tuple[str, str]:
        name, mode = type(self).__name__, self.mode.split("_")[0]
        if self.impl == "native" and return_states:
            raise ValueError(
                f"{name}: return_states=True needs impl='loop' or 'auto': torch's fused kernel "
                "keeps only the final state"
            )
        if self.impl == "loop":
            return "loop", (
                "loop: the readable time loop over rnnkit.cells steps, as requested (impl='loop')"
            )
        if return_states:
            return "loop", (
                "loop: the readable time loop over rnnkit.cells steps; per-step states were "
                "requested (return_states=True) and only the loop records them"
            )
        blockers = self.variants.native_blockers(self.training)
        if self.impl == "fused" or blockers:
            if self.impl == "fused":
                why = "requested (impl='fused')"
            else:
                verb = "changes" if len(blockers) == 1 else "change"
                why = (
                    f"native not possible because {', '.join(blockers)} {verb} the function "
                    "torch's kernel computes"
                )
            return "fused", (
                "fused: one matrix product for the input projections of the whole sequence, "
                "then a custom autograd Function whose backward is the hand-written BPTT over "
                f"saved gates (rnnkit.fused), {self._time_loops(input)}; {why}"
            )
        device = "cpu" if input is None else _device_of(input).type
        kernel = "cuDNN" if device == "cuda" else "ATen/oneDNN"
        why = "requested" if self.impl == "native" else "it computes the requested function"
        extras = []
        if self.variants.weight_drop and self.training:
            extras.append("with DropConnect-masked W_hh (weight_drop)")
        if self.variants.learn_init:
            extras.append("with the learned initial state as hx when hx is None (learn_init)")
        extra = "".join(f"; {e}" for e in extras)
        return "native", f"native: torch's fused {mode} kernel ({kernel} on {device}); {why}{extra}"

    def _time_loops(self, input) -> str:
        """Where the fused path's time loops run: C++ (rnnkit.fused_cpu) or Python, and why."""
        from rnnkit import extension

        data = input.data if isinstance(input, PackedSequence) else input
        like = data if isinstance(data, Tensor) else self.weight_hh_l0
        if like.device.type != "cpu" or like.dtype not in extension.DTYPES:
            return (
                f"its time loops in Python (the C++ loops take float32 / float64 on CPU, not "
                f"{str(like.dtype).removeprefix('torch.')} on {like.device.type})"
            )
        if not extension.load():
            return f"its time loops in Python (C++ loops not used: {extension.status()})"
        source = {"LSTM": "lstm", "GRU": "gru"}.get(self.mode, "rnn")
        return f"its time loops in C++ (rnnkit/csrc/{source}.cpp, one matrix product per step)"

    def forward(self, input, hx=None, *, lengths=None, return_states: bool = False):
        """See the class docstring. With ``return_states=True`` also returns a dict of the
        per-step states of every layer and direction, each (d*l, t, b, .) time-major, zero on
        padding: ``h`` (outputs), LSTM ``c``, and ``gates`` after their non-linearities."""
        path, _ = self._resolve(input, return_states)
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
        vector addition instead of a pass over gx), where it only shifts s (LSTM, RNN)."""
        p, v, train = self._params(k), self.variants, self.training
        T, b = x.size(0), x.size(1)
        out = self.proj_size or self.hidden_size
        bias_ih, bias_hh = p["bias_ih"], p["bias_hh"]
        if fold_bias_hh and self.mode != "GRU" and bias_hh is not None:
            bias_ih, bias_hh = bias_hh if bias_ih is None else bias_ih + bias_hh, None
        gx = input_projection(x, p["weight_ih"], bias_ih, p["ln_weight_ih"])  # (t, b, gh)
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

    def _loop_forward(self, input, hx, lengths, return_states=False):
        x, layout, states, mask = self._begin(input, hx, lengths)
        records: list[list] = [[] for _ in range(len(states))]
        outputs: list[Tensor] = []

        def direction(k, x):
            return self._direction(k, x, records[k] if return_states else None)

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


def _device_of(input) -> torch.device:
    if isinstance(input, PackedSequence):
        return input.data.device
    return getattr(input, "device", torch.device("cpu"))  # bad input is reported later


_VARIANT_ARGS = """
    Variants (keyword-only, composable with num_layers, bidirectional, lengths / packing{proj};
    equations and papers in `rnnkit.variants`): layer_norm, {lstm_only}orthogonal, learn_init,
    recurrent_dropout, weight_drop, zoneout{zoneout_pair}. ``impl`` picks native whenever
    the variants on leave torch's kernel's function unchanged, else the fused BPTT path;
    ``plan()`` says which and why. ``forward(..., return_states=True)`` adds the per-step states.
"""


class RNN(_FusedOrLoop, nn.RNN):
    r"""Multi-layer Elman RNN with tanh or ReLU: torch.nn.RNN's contract plus ``impl``, ``lengths``.

    .. math:: h_t = \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

    Args: input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True,
    batch_first=False, dropout=0.0, bidirectional=False; keyword-only ``impl='auto'``.

    Inputs: input (t, b, i), (b, t, i) with batch_first, (t, i) unbatched, or a PackedSequence;
    hx (d*l, b, h). Outputs: output (t, b, d*h), h_n (d*l, b, h).

    Example::

        rnn = rnnkit.RNN(10, 20, num_layers=2)
        output, h_n = rnn(torch.randn(5, 3, 10))
    """

    gate_count = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        impl: str = "auto",
        **variants,
    ):
        self._set_options(impl, "RNN_" + str(nonlinearity).upper(), bias, variants)
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            nonlinearity=nonlinearity,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            device=device,
            dtype=dtype,
        )
        self._add_variant_parameters(device, dtype)

    def _direction(self, k, x, record=None):
        p = self._prepare(k, x)
        seq = [p.gx]
        keep_h = _keeper(p.keep_h, seq)

        def step(inp, h):
            h_next = rnn_step(
                inp[0],
                h,
                p.weight_hh,
                p.bias_hh,
                self.nonlinearity,
                ln_weight_hh=p.ln_weight_hh,
                h_mask=p.h_mask,
            )
            h_new = _zone(h_next, h, keep_h(inp))
            if record is not None:
                record.append((h_next,))  # the gate of a vanilla RNN is its candidate state
            return h_new

        return tuple(seq), step


class GRU(_FusedOrLoop, nn.GRU):
    r"""Multi-layer GRU: torch.nn.GRU's contract plus ``impl`` and ``lengths``.

    .. math::
        r_t = \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t = \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t = \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    Shapes as `RNN`.
    """

    gate_count = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        impl: str = "auto",
        **variants,
    ):
        self._set_options(impl, "GRU", bias, variants)
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            device=device,
            dtype=dtype,
        )
        self._add_variant_parameters(device, dtype)

    def _direction(self, k, x, record=None):
        p = self._prepare(k, x)
        seq = [p.gx]
        keep_h = _keeper(p.keep_h, seq)

        def step(inp, h):
            h_next, gates = gru_step(
                inp[0],
                h,
                p.weight_hh,
                p.bias_hh,
                ln_weight_hh=p.ln_weight_hh,
                h_mask=p.h_mask,
                return_gates=True,
            )
            if record is not None:
                record.append((gates,))
            return _zone(h_next, h, keep_h(inp))

        return tuple(seq), step


class LSTM(_FusedOrLoop, nn.LSTM):
    r"""Multi-layer LSTM: torch.nn.LSTM's contract (``proj_size`` included) plus ``impl``,
    ``lengths``.

    .. math::
        i_t = \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t = \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t = \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t = \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t = f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t = o_t \odot \tanh(c_t)   \quad (h_t = W_{hr} (o_t \odot \tanh(c_t)) \text{ with proj})

    Inputs: input as `RNN`; hx a tuple (h_0 (d*l, b, p or h), c_0 (d*l, b, h)).
    Outputs: output (t, b, d*(p or h)), (h_n, c_n).

    Example, a layer-normalized LSTM with zoneout, on its fast path::

        lstm = rnnkit.LSTM(10, 20, layer_norm=True, zoneout=0.1, forget_bias=1.0)
        output, (h_n, c_n) = lstm(torch.randn(5, 3, 10))
        lstm.plan()   # 'fused: ... native not possible because layer_norm, zoneout change ...'
    """

    gate_count = 4

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        impl: str = "auto",
        **variants,
    ):
        self._set_options(impl, "LSTM", bias, variants)
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            proj_size=proj_size,
            device=device,
            dtype=dtype,
        )
        self._add_variant_parameters(device, dtype)

    def _check_hx(self, hx, b, batched):
        name, dl = type(self).__name__, self.num_layers * self.num_directions
        if not (isinstance(hx, tuple | list) and len(hx) == 2):
            raise ValueError(f"{name}: hx must be a tuple (h_0, c_0) of two tensors")
        out_size = self.proj_size or self.hidden_size
        _check_state(name, "hidden h_0", hx[0], _state_shape(dl, b, out_size, batched))
        _check_state(name, "cell c_0", hx[1], _state_shape(dl, b, self.hidden_size, batched))

    def _initial_states(self, hx, b, dl, batched, x):
        out_size = self.proj_size or self.hidden_size
        if hx is None:
            if self.variants.learn_init:
                h0, c0 = self._learned_hx(b, True)
            else:
                h0, c0 = x.new_zeros(dl, b, out_size), x.new_zeros(dl, b, self.hidden_size)
        else:
            self._check_hx(hx, b, batched)
            h0, c0 = hx
            if not batched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        return list(zip(h0.unbind(0), c0.unbind(0), strict=True))

    def _direction(self, k, x, record=None):
        p = self._prepare(k, x)
        seq = [p.gx]
        keep_h, keep_c = _keeper(p.keep_h, seq), _keeper(p.keep_c, seq)

        def step(inp, state):
            h, c = state
            h_next, c_next, gates = lstm_step(
                inp[0],
                h,
                c,
                p.weight_hh,
                p.bias_hh,
                p.weight_hr,
                ln_weight_hh=p.ln_weight_hh,
                ln_weight_c=p.ln_weight_c,
                ln_bias_c=p.ln_bias_c,
                weight_ch=p.weight_ch,
                h_mask=p.h_mask,
                return_gates=True,
            )
            h_next, c_next = _zone(h_next, h, keep_h(inp)), _zone(c_next, c, keep_c(inp))
            if record is not None:
                record.append((c_next, gates))
            return h_next, c_next

        return tuple(seq), step

    def _stack_final(self, finals, batched):
        h_n = torch.stack([h for h, _ in finals])  # (d*l, b, p or h)
        c_n = torch.stack([c for _, c in finals])  # (d*l, b, h)
        return (h_n, c_n) if batched else (h_n.squeeze(1), c_n.squeeze(1))


for _cls, _lstm in ((RNN, False), (GRU, False), (LSTM, True)):
    _cls.__doc__ += _VARIANT_ARGS.format(
        proj=" and proj_size" if _lstm else "",
        lstm_only="peephole, forget_bias, " if _lstm else "",
        zoneout_pair=" (a rate, or (z_c, z_h))" if _lstm else "",
    )


# ----------------------------------------------------------------------------- any cell


class Recurrent(nn.Module):
    """Unroll any cell over time, stacked and bidirectional, over variable lengths.

    A cell is a module with ``cell(x_t, state) -> state`` for x_t (b, i), where the state is a
    Tensor (b, h) or a tuple whose first element is the output (b, h), as with torch.nn's and
    rnnkit's cells. The initial state is ``cell.initial_state(b, device=, dtype=)`` when the
    cell has it, else zeros shaped like torch.nn's cells.

    Args:
        cell: a cell module for a single layer and direction (a fresh copy, re-initialised,
            runs backwards when bidirectional), or a factory ``make_cell(input_size)`` that
            builds one cell per layer and direction.
        num_layers: stacked layers; layer k > 0 reads the outputs of layer k - 1.
        input_size: the features of x; needed only with a factory.
        bidirectional, batch_first, dropout: as in torch.nn.LSTM.

    Inputs: input (t, b, i) or (b, t, i) with batch_first, or a PackedSequence; ``hx`` a list
    with one state per (layer, direction), or None; keyword ``lengths`` (b,).
    Outputs: output (t, b, d*h) and the list of final states.

    Example::

        layer = rnnkit.Recurrent(lambda i: torch.nn.GRUCell(i, 32), num_layers=2, input_size=8)
        output, states = layer(torch.randn(20, 4, 8))
    """

    def __init__(
        self,
        cell: nn.Module | Callable[[int], nn.Module],
        num_layers: int = 1,
        *,
        input_size: int | None = None,
        bidirectional: bool = False,
        batch_first: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.num_layers, self.bidirectional = num_layers, bidirectional
        self.batch_first, self.dropout = batch_first, float(dropout)
        self.num_directions = 2 if bidirectional else 1
        if isinstance(cell, nn.Module):
            if num_layers != 1:
                raise ValueError(
                    "Recurrent: num_layers > 1 needs a factory make_cell(input_size), because "
                    "deeper layers read 2*hidden features when bidirectional, else hidden; "
                    "got a single cell module (hint: Recurrent(lambda i: LSTMCell(i, 64), "
                    "num_layers=2, input_size=32))"
                )
            cells = [cell]
            if bidirectional:
                reverse = copy.deepcopy(cell)
                if hasattr(reverse, "reset_parameters"):
                    reverse.reset_parameters()
                cells.append(reverse)
            self.input_size = getattr(cell, "input_size", input_size)
        else:
            if input_size is None:
                raise ValueError("Recurrent: with a cell factory, pass input_size=")
            cells, size = [], input_size
            for _ in range(num_layers):
                layer = [cell(size) for _ in range(self.num_directions)]
                cells += layer
                size = self.num_directions * _output_size(layer[0])
            self.input_size = input_size
        self.cells = nn.ModuleList(cells)

    def _direction(self, k, x):
        return x, self.cells[k]

    def forward(self, input, hx: list | None = None, *, lengths=None):
        x, lengths, layout = to_time_major(
            "Recurrent", input, self.input_size, self.batch_first, lengths
        )
        b = x.size(1)
        for cell in self.cells:
            if hasattr(cell, "reset_masks"):
                cell.reset_masks()  # a new sequence: fresh dropout masks (rnnkit.variants)
        if hx is None:
            hx = [_zero_state(cell, b, x) for cell in self.cells]
        elif len(hx) != len(self.cells):
            raise ValueError(
                f"Recurrent: hx must hold one state per layer and direction. "
                f"Expected {len(self.cells)}, got {len(hx)}"
            )
        out, finals = run_stack(
            x,
            list(hx),
            _mask(lengths, x.size(0), x.device),
            self._direction,
            self.num_layers,
            self.num_directions,
            self.dropout,
            self.training,
        )
        return from_time_major(out, layout), finals


def _output_size(cell: nn.Module) -> int:
    size = getattr(cell, "output_size", None) or getattr(cell, "hidden_size", None)
    if size is None:
        raise ValueError(
            f"Recurrent: cannot tell the output size of {type(cell).__name__}; "
            "give the cell an `output_size` or `hidden_size` attribute"
        )
    return size


def _zero_state(cell: nn.Module, b: int, x: Tensor) -> State:
    if hasattr(cell, "initial_state"):
        return cell.initial_state(b, device=x.device, dtype=x.dtype)
    z = x.new_zeros(b, _output_size(cell))
    return (z, z.clone()) if isinstance(cell, nn.LSTMCell) else z
