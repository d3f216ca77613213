"""The time loop and the input/output layout every layer shares.

`unroll` runs ``state = step(x_t, state)`` over a sequence (forwards or backwards, with a
padding mask), `probed` adds a probe to each step's output (to read dL/dh_t), `run_stack`
stacks it over layers and directions, `to_time_major` and `from_time_major` turn the caller's
layout (batch_first, unbatched, PackedSequence, ``lengths=``) into the loop's time-major one
and back, and `_Direction` is what one (layer, direction) pair of `RNN`, `LSTM` or `GRU` needs
for a pass.

Shapes: t time, b batch, i input features, h hidden features, p output features (proj_size
or h), d directions (1 or 2), l layers. Inside the loop everything is time-major: x (t, b, i).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from rnnkit.variants import zoneout

__all__ = ["State", "unroll", "probed", "run_stack", "to_time_major", "from_time_major"]

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


def probed(step: Callable[[Any, State], State]) -> Callable[[tuple, State], State]:
    """``step`` with a probe: the step's last input, a slice p_t (b, h) of a probe (t, b, h)
    that `unroll` slices like the others, is added to the new output h_t. With p = 0 no value
    changes and dL/dp_t = dL/dh_t, the total derivative through time (``forward_probed``)."""

    def step_probed(inp: tuple, state: State) -> State:
        new = step(inp[:-1], state)
        if isinstance(new, tuple | list):
            return (new[0] + inp[-1], *new[1:])  # e.g. LSTM: (h_t + p_t, c_t)
        return new + inp[-1]

    return step_probed


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


# ----------------------------------------------------------------------------- one direction


@dataclass
class _Direction:
    """Everything one (layer, direction) pair needs for a forward pass, masks drawn.

    gx (t, b, gh): the input projections of the whole sequence. keep_h (t, b, p), keep_c
    (t, b, h): zoneout masks (bool) in training, the rate (float) in eval mode, else None.
    h_mask (b, p): the recurrent-dropout mask of this sequence. weight_hh: after weight drop.
    bias_hh: None on the fused path for LSTM and RNN, whose b_hh is folded into gx.
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
