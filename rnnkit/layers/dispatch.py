"""The one implementation decision of `RNN`, `LSTM` and `GRU`, with the text ``plan()`` shows.

A layer's forward runs one of three paths, which compute the same function:

    native   torch's fused kernel (cuDNN on a GPU, ATen / oneDNN on a CPU)
    fused    one product for the input projections of the whole sequence, then a custom
             autograd Function per (layer, direction) whose backward is hand-written BPTT
             (`rnnkit.fused`), with its time loops in C++ (`rnnkit.fused_cpu`) or Python
    loop     the readable time loop over `rnnkit.cells` steps, with autograd

``impl="auto"`` picks native whenever torch's kernel computes the requested function (no
variant changes it, see `Variants.native_blockers`), else fused; the loop runs when asked for
or when the per-step states are (``return_states=True``), since only it records them.

Where the fused path's time loops run is decided by `cpp_loops` alone, for these layers
(`rnnkit.fused.time_loops`) and for minGRU / minLSTM (`rnnkit.scan.LinearRecurrence`,
`rnnkit.mingru`): C++ for CPU tensors in float32 / float64 when the library is built
(`rnnkit.extension`), else Python.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from rnnkit import extension
from rnnkit.variants import Variants

__all__ = ["IMPLS", "Loops", "cpp_loops", "resolve"]

IMPLS = ("auto", "native", "fused", "loop")


def check_impl(name: str, impl: str) -> None:
    if impl not in IMPLS:
        raise ValueError(f"{name}: impl must be one of {IMPLS}, got {impl!r}")


def check_native(name: str, impl: str, variants: Variants) -> None:
    """impl='native' with a variant torch's kernel cannot compute (in training) is an error."""
    blockers = variants.native_blockers(training=True)
    if impl == "native" and blockers:
        raise ValueError(
            f"{name}: impl='native' cannot compute {', '.join(blockers)}: torch's fused "
            f"kernel has no such option (hint: impl='auto' picks the fastest path that does)"
        )


# ---------------------------------------------------------------------------- native | fused | loop


def resolve(layer: Any, input: Any, return_states: bool, lengths: bool = False) -> tuple[str, str]:
    """(path, plan text) for ``layer`` (an `RNN`, `LSTM` or `GRU`) on ``input`` (a Tensor, a
    PackedSequence, or None when not known yet; ``lengths``: a variable-length batch): path
    is "native", "fused" or "loop"; the text names it and says why not a faster one."""
    name, mode = type(layer).__name__, layer.mode.split("_")[0]
    if layer.impl == "native" and return_states:
        raise ValueError(
            f"{name}: return_states=True needs impl='loop' or 'auto': torch's fused kernel "
            "keeps only the final state"
        )
    if layer.impl == "loop":
        return "loop", (
            "loop: the readable time loop over rnnkit.cells steps, as requested (impl='loop')"
        )
    if return_states:
        return "loop", (
            "loop: the readable time loop over rnnkit.cells steps; per-step states were "
            "requested (return_states=True) and only the loop records them"
        )
    blockers = layer.variants.native_blockers(layer.training)
    if layer.impl == "fused" or blockers:
        if layer.impl == "fused":
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
            f"saved gates (rnnkit.fused), {_time_loops_text(layer, input)}; {why}"
        )
    device = "cpu" if input is None else _device_of(input).type
    variable = lengths or isinstance(input, PackedSequence)
    if layer.impl == "auto" and device == "cpu" and torch.is_grad_enabled():
        like = input.data if isinstance(input, PackedSequence) else input
        cpp = cpp_loops(like if isinstance(like, Tensor) else layer.weight_hh_l0).cpp
        why = None
        if cpp and variable:
            why = (
                "torch's CPU kernel over a variable-length (packed) batch computes the same "
                "function but its backward is far slower (benchmarks/bench_packed.py)"
            )
        elif cpp and layer.mode == "GRU" and layer.training:
            why = (
                "torch's CPU GRU computes the same function without a oneDNN primitive, and "
                "trains slower (benchmarks/bench_layers.py; in eval mode or under no_grad "
                "torch's kernel runs); for double backward use impl='native'"
            )
        if why:
            return "fused", (
                "fused: one matrix product for the input projections of the whole sequence, "
                "then a custom autograd Function whose backward is the hand-written BPTT over "
                f"saved gates (rnnkit.fused), {_time_loops_text(layer, input)}; {why}"
            )
    kernel = "cuDNN" if device == "cuda" else "ATen/oneDNN"
    why = "requested" if layer.impl == "native" else "it computes the requested function"
    extras = []
    if layer.variants.weight_drop and layer.training:
        extras.append("with DropConnect-masked W_hh (weight_drop)")
    if layer.variants.learn_init:
        extras.append("with the learned initial state as hx when hx is None (learn_init)")
    extra = "".join(f"; {e}" for e in extras)
    return "native", f"native: torch's fused {mode} kernel ({kernel} on {device}); {why}{extra}"


def _time_loops_text(layer: Any, input: Any) -> str:
    """Where the fused path's time loops run: C++ (rnnkit.fused_cpu) or Python, and why."""
    data = input.data if isinstance(input, PackedSequence) else input
    like = data if isinstance(data, Tensor) else layer.weight_hh_l0
    cpp, why = cpp_loops(like)
    if not cpp:
        return f"its time loops in Python ({why})"
    source = {"LSTM": "lstm", "GRU": "gru"}.get(layer.mode, "rnn")
    return f"its time loops in C++ (rnnkit/csrc/{source}.cpp, one matrix product per step)"


def _device_of(input: Any) -> torch.device:
    if isinstance(input, PackedSequence):
        return input.data.device
    return getattr(input, "device", torch.device("cpu"))  # bad input is reported later


# ------------------------------------------------------------------------------------- C++ | Python


class Loops(NamedTuple):
    """Where a fused path's time loops run: ``cpp`` True for C++ (``rnnkit/csrc/``), False for
    the Python loops; ``why`` says why not C++ ('' when C++)."""

    cpp: bool
    why: str


def cpp_loops(x: Tensor, *alike: Tensor, same_shape: bool = False) -> Loops:
    """Whether the C++ time loops apply to x and the tensors ``alike`` (its weights, or the
    other operand), and why not: x on the CPU in float32 / float64, each of ``alike`` of x's
    dtype (and with ``same_shape`` of x's shape: a C++ loop that reads its operands as arrays
    of one shape leaves broadcast ones to Python), and the library built
    (`rnnkit.extension.available`, which builds it the first time)."""
    if x.device.type != "cpu" or x.dtype not in extension.DTYPES:
        return Loops(
            False,
            f"the C++ loops take float32 / float64 on CPU, not "
            f"{str(x.dtype).removeprefix('torch.')} on {x.device.type}",
        )
    for other in alike:
        if other.dtype != x.dtype:
            return Loops(False, f"the C++ loops take one dtype, got {x.dtype} and {other.dtype}")
        if same_shape and other.shape != x.shape:
            return Loops(
                False,
                f"the C++ loop takes operands of one shape, got {tuple(x.shape)} and "
                f"{tuple(other.shape)}",
            )
    if not extension.available(x):
        why = extension.status() or "rnnkit.extension.available() says no"
        return Loops(False, f"C++ loops not used: {why}")
    return Loops(True, "")
