"""A trained run for runtimes without rnnkit: ONNX (checked in ONNX Runtime) or torch.export.

    rnnkit export RUN --format onnx [--out FILE]      model.onnx beside the run by default
    rnnkit export RUN --format torch                  a torch.export program (torch.export.save)
                                                      of one step: stream a sequence through it

A task describes its graph with `Task.export_graph(loaded) -> Graph`: a module whose inputs and
outputs are plain tensors, the recurrent state among them so that a caller can stream a
sequence a piece (or a step) at a time, and which axes are dynamic. The language models' graph:

    ids (b, t) int64, h0 (l, b, h) [, c0 (l, b, h)]  ->  logits (b, t, v), h_n [, c_n]

rnnkit's layers compute torch.nn's function with torch.nn's parameters, so the graph runs the
trained weights in torch.nn.LSTM / GRU / RNN, which ONNX has operators for (a dynamic time axis
included). A layer with a variant that changes the function at inference (layer norm, peephole,
...) has no such operator; its export is refused with a message, not written wrong.

Before a file is written, it is run on random inputs (batch 1 and others, a length never seen
at export) and compared with PyTorch; the largest difference is printed, and a file that
disagrees beyond the tolerance is not written.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from rnnkit.errors import RnnkitError

FORMATS = ("onnx", "torch")
CHECK_SHAPES = ((1, 1), (1, 9), (3, 5), (2, 23))  # (batch, time) compared after export


class ExportError(RnnkitError):
    """The model cannot be exported, or the exported file disagrees with PyTorch."""


@dataclass
class Graph:
    """What to export: ``module(*inputs) -> outputs``, plain tensors only.

    make_inputs(b, t, generator) -> the inputs for batch b and length t; names of the inputs
    and outputs; dynamic: {input or output name: {axis: name}}.
    """

    module: nn.Module
    make_inputs: object
    input_names: list[str]
    output_names: list[str]
    dynamic: dict[str, dict[int, str]] = field(default_factory=dict)


def torch_recurrent(layer: nn.Module) -> nn.Module:
    """A torch.nn.LSTM / GRU / RNN with ``layer``'s hyper-parameters and trained weights (an
    rnnkit layer is a subclass of the torch.nn one); ExportError when one of its variants
    changes the function at inference, since torch.nn cannot compute it."""
    base = next(c for c in (nn.LSTM, nn.GRU, nn.RNN) if isinstance(layer, c))
    variants = getattr(layer, "variants", None)
    blockers = variants.native_blockers(training=False) if variants is not None else []
    if blockers:
        raise ExportError(
            f"the {type(layer).__name__} uses {', '.join(blockers)}, which torch.nn's layers "
            "and ONNX's recurrent operators do not compute",
            "export supports the plain cells for now; train without the variant to export",
        )
    options = {
        "input_size": layer.input_size,
        "hidden_size": layer.hidden_size,
        "num_layers": layer.num_layers,
        "bias": layer.bias,
        "batch_first": layer.batch_first,
        "bidirectional": layer.bidirectional,
    }
    if base is nn.RNN:
        options["nonlinearity"] = layer.nonlinearity
    if base is nn.LSTM and layer.proj_size:
        options["proj_size"] = layer.proj_size
    plain = base(**options)
    own = dict(layer.named_parameters())
    plain.load_state_dict({name: own[name].detach() for name, _ in plain.named_parameters()})
    return plain.eval()


def export(graph: Graph, fmt: str, out: str | Path, tolerance: float = 1e-4) -> float:
    """Write ``graph`` as ``fmt`` to ``out`` after checking it; returns the largest absolute
    difference from PyTorch over `CHECK_SHAPES`."""
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if not out.parent.is_dir():
        raise ExportError(f"cannot write {out}: {out.parent} is not a directory")
    module = graph.module.eval()
    # torch.export unrolls torch.nn's recurrent layers over time, so its program is one step
    # long (the batch stays dynamic); ONNX has recurrent operators with a dynamic time axis
    steps = fmt == "torch"
    example = graph.make_inputs(2, 1 if steps else 8, torch.Generator().manual_seed(0))
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=f".tmp{out.suffix}")
    os.close(fd)
    try:
        if fmt == "onnx":
            run = _onnx(module, example, graph, tmp)
        else:
            run = _torch_export(module, example, graph, tmp)
        worst = _compare(module, run, graph, steps)
        if not worst <= tolerance:
            raise ExportError(
                f"the exported model differs from PyTorch by up to {worst:.3g} (tolerance "
                f"{tolerance:g}); nothing was written",
                "this is a bug in the export of this model; please report it",
            )
        os.replace(tmp, out)
        return worst
    finally:
        Path(tmp).unlink(missing_ok=True)


def _onnx(module, example, graph: Graph, path: str):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's notes on RNN batch sizes
        torch.onnx.export(
            module,
            tuple(example),
            path,
            input_names=graph.input_names,
            output_names=graph.output_names,
            dynamic_axes=graph.dynamic,
            opset_version=17,
            dynamo=False,
        )
    try:
        import onnxruntime
    except ImportError:
        raise ExportError(
            "onnxruntime is needed to check the exported file", "pip install onnxruntime"
        ) from None
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])

    def run(inputs):
        feed = {n: x.numpy() for n, x in zip(graph.input_names, inputs, strict=True)}
        return [torch.from_numpy(y) for y in session.run(graph.output_names, feed)]

    return run


def _torch_export(module, example, graph: Graph, path: str):
    dims = {}
    shapes = []
    for name in graph.input_names:
        axes = graph.dynamic.get(name, {})
        spec = {}
        for axis, label in axes.items():
            if label == "time":
                continue  # one step (see `export`)
            dims.setdefault(label, torch.export.Dim(label, min=1, max=4096))
            spec[axis] = dims[label]
        shapes.append(spec or None)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.nn's RNNs re-assign _flat_weights when traced
        program = torch.export.export(module, tuple(example), dynamic_shapes=tuple(shapes))
    torch.export.save(program, path)
    compiled = program.module()

    def run(inputs):
        with torch.no_grad():
            out = compiled(*inputs)
        return list(out) if isinstance(out, tuple | list) else [out]

    return run


@torch.no_grad()
def _compare(module, run, graph: Graph, steps: bool = False) -> float:
    worst = 0.0
    for b, t in CHECK_SHAPES:
        t = 1 if steps else t
        inputs = graph.make_inputs(b, t, torch.Generator().manual_seed(b * 100 + t))
        expected = module(*inputs)
        expected = list(expected) if isinstance(expected, tuple | list) else [expected]
        got = run(inputs)
        for e, g in zip(expected, got, strict=True):
            if e.shape != g.shape:
                raise ExportError(
                    f"the exported model gives shape {tuple(g.shape)} where PyTorch gives "
                    f"{tuple(e.shape)} (batch {b}, length {t}); nothing was written"
                )
            worst = max(worst, (e.float() - g.float()).abs().max().item())
    return worst


# ----------------------------------------------------------------------------- language models
class LanguageModelGraph(nn.Module):
    """A `rnnkit.models.LanguageModel` with torch.nn's recurrent layer and the state explicit:
    ids (b, t), h0 (l, b, h) [, c0] -> logits (b, t, v), h_n [, c_n]."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.embed, self.rnn = lm.embed, torch_recurrent(lm.rnn)
        self.lstm = isinstance(self.rnn, nn.LSTM)
        self.head = getattr(lm, "head", None)  # None: tied, W = E with its own bias
        self.bias = getattr(lm, "bias", None)

    def forward(self, ids: Tensor, h0: Tensor, c0: Tensor | None = None):
        state = (h0, c0) if self.lstm else h0
        h, state = self.rnn(self.embed(ids), state)
        if self.head is not None:
            logits = self.head(h)
        else:
            logits = nn.functional.linear(h, self.embed.weight, self.bias)
        return (logits, *state) if self.lstm else (logits, state)


def language_model_graph(lm: nn.Module, vocab_size: int) -> Graph:
    module = LanguageModelGraph(lm).eval()
    rnn = module.rnn
    lstm = module.lstm

    def make_inputs(b: int, t: int, g: torch.Generator):
        ids = torch.randint(0, vocab_size, (b, t), generator=g)
        shape = (rnn.num_layers, b, rnn.hidden_size)
        states = [torch.randn(shape, generator=g) * 0.5 for _ in range(2 if lstm else 1)]
        return [ids, *states]

    states_in, states_out = (["h0", "c0"], ["h_n", "c_n"]) if lstm else (["h0"], ["h_n"])
    dynamic = {"ids": {0: "batch", 1: "time"}, "logits": {0: "batch", 1: "time"}}
    dynamic |= {name: {1: "batch"} for name in states_in + states_out}
    return Graph(module, make_inputs, ["ids", *states_in], ["logits", *states_out], dynamic)
