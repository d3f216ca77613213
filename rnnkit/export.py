"""A trained run for runtimes without rnnkit: ONNX (checked in ONNX Runtime) or torch.export.

    rnnkit export RUN --format onnx [--out FILE]      model.onnx beside the run by default
    rnnkit export RUN --format torch                  a torch.export program (torch.export.save)
                                                      of one step: stream a sequence through it

A task describes its graph with `Task.export_graph(loaded) -> Graph` (or named parts, each
written as model.PART.onnx): a module whose inputs and outputs are plain tensors, the recurrent
state among them so that a caller can stream a sequence a piece (or a step) at a time, and
which axes are dynamic. The graphs:

    language models     ids (b, t) int64, h0 (l, b, h) [, c0]  ->  logits (b, t, v), h_n [, c_n]
    classifiers         ids (b, t) int64, lengths (b,) int64  ->  scores (b, o)
    recognisers         features (b, T, f), lengths (b,)  ->  log_probs (b, T', C), frames (b,)
    sequence-to-seq.    encoder: src (b, S) int64, lengths (b,)  ->  states, mask [, keys], h0
                        [, c0] [, feed0];  decoder (one step): y_prev (b,), h [, c] [, feed],
                        states, mask [, keys]  ->  logits (b, v), h_next [, c_next]
                        [, feed_next] [, attention (b, S)]
    captioners          the same two, the encoder reading images (b, C, H, W)
    memory tasks        the NTM: init: x (b, 1, i) -> its first state; step: x (b, t, i),
                        the state -> y (b, t, o), the next state. LSTM / GRU stacks: x, lengths
    video               frames (b, t, C, H, W), h0 [, c0] -> logits (b, t, K) [, single-frame
                        baseline's], h_n [, c_n]: a live stream, a frame at a time
    forecasters         z_prev, z_lag, phase (b, t), scale (b, 1) [, ids] [, covariates],
                        h0 [, c0] -> the next value's distribution (b, t, P) or quantiles
                        (b, t, H, Q), h_n [, c_n]; drawing sample paths is the caller's
    PixelRNN            image (b, H, W) int64 -> logits (b, K, H, W); drawing is the caller's
    word2vec            ids (b, t) -> vectors (b, t, d)

Padded batches are read packed (torch.nn.utils.rnn.pack_padded_sequence, ONNX's sequence_lens),
so padding reaches neither direction of a bidirectional layer.

rnnkit's layers compute torch.nn's function with torch.nn's parameters, so the graph runs the
trained weights in torch.nn.LSTM / GRU / RNN, which ONNX has operators for (a dynamic time axis
included). A layer with a variant that changes the function at inference (layer norm, peephole,
zoneout) has no such operator: its graph is one step of the layer's own step equations
(`rnnkit.cells`, impl="loop"), ids (b, 1), and a caller streams a sequence through it, the
state fed back (``Graph.steps``).

Before a file is written, it is run on random inputs (batch 1 and others, a length never seen
at export; a one-step graph is streamed over the length) and compared with PyTorch's forward
over the whole sequence; the largest difference is printed, and a file that disagrees beyond
the tolerance is not written.
"""

from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from rnnkit.errors import RnnkitError
from rnnkit.models.seq2seq import DecoderState, Memory

FORMATS = ("onnx", "torch")
CHECK_SHAPES = ((1, 1), (1, 9), (3, 5), (2, 23))  # (batch, time) compared after export


class ExportError(RnnkitError):
    """The model cannot be exported, or the exported file disagrees with PyTorch."""


@dataclass
class Graph:
    """What to export: ``module(*inputs) -> outputs``, plain tensors only.

    make_inputs(b, t, generator) -> the inputs for batch b and length t; names of the inputs
    and outputs; dynamic: {input or output name: {axis: name}}, the axis named "time" being a
    sequence's; state: (input, output) names of the recurrent state, which a caller feeds back
    to stream a sequence; steps: the graph is exported one step long (time fixed at 1);
    streamable: False where a sequence must be read whole (no one-step program).
    """

    module: nn.Module
    make_inputs: object
    input_names: list[str]
    output_names: list[str]
    dynamic: dict[str, dict[int, str]] = field(default_factory=dict)
    state: list[tuple[str, str]] = field(default_factory=list)
    steps: bool = False
    streamable: bool = True  # False: it reads a sequence whole (a bidirectional layer)


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
            "a language model exports it one step at a time; for this model train without "
            "the variant, or use rnnkit.load(RUN) in Python",
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


def graph_layer(layer: nn.Module) -> tuple[nn.Module, bool]:
    """The recurrent layer a graph runs, and whether the graph must be one step long:
    torch.nn's layer with the trained weights (`torch_recurrent`), or, where a variant changes
    the function at inference (layer norm, peephole, zoneout), a copy of rnnkit's own layer on
    its step equations (impl="loop"), which a caller streams a step at a time; so is an LSTM
    with projections (proj_size), which ONNX's LSTM operator does not have."""
    variants = getattr(layer, "variants", None)  # None: a torch.nn layer
    blockers = variants.native_blockers(training=False) if variants is not None else []
    if not blockers and not getattr(layer, "proj_size", 0):
        return torch_recurrent(layer), False
    if variants is None:  # a torch.nn layer: itself (ONNX refuses an LSTM with projections)
        return torch_recurrent(layer), False
    own = copy.deepcopy(layer).eval()
    own.impl = "loop"
    return own, True


def random_state(rnn: nn.Module, b: int, g: torch.Generator) -> list[Tensor]:
    """A random recurrent state for ``rnn`` at batch b, as the checks feed it: h0 (d*l, b, p)
    [, c0 (d*l, b, h) for an LSTM], p = proj_size or the hidden size."""
    layers = rnn.num_layers * (2 if rnn.bidirectional else 1)
    h0 = torch.randn(layers, b, getattr(rnn, "proj_size", 0) or rnn.hidden_size, generator=g)
    if not isinstance(rnn, nn.LSTM):
        return [h0 * 0.5]
    return [h0 * 0.5, torch.randn(layers, b, rnn.hidden_size, generator=g) * 0.5]


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
    steps = fmt == "torch" or graph.steps
    timed = any(_time_axis(graph, n) is not None for n in graph.input_names)
    if steps and not graph.streamable and timed:
        why = (
            "torch.export's program is one step long"
            if fmt == "torch" and not graph.steps
            else "its layer exports as one step of its equations (a variant or projections)"
        )
        raise ExportError(
            f"this model reads each sequence whole (a bidirectional layer), and {why}; nothing "
            "was written",
            "use --format onnx"
            if not graph.steps
            else "export a unidirectional layer, or one without the variant",
        )
    example = graph.make_inputs(2, 1 if steps else 8, torch.Generator().manual_seed(0))
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=f".tmp{out.suffix}")
    os.close(fd)
    try:
        try:
            if fmt == "onnx":
                run = _onnx(module, example, graph, tmp, steps)
            else:
                run = _torch_export(module, example, graph, tmp)
        except ExportError:
            raise
        except Exception as err:  # noqa: BLE001 - the exporter's own failure, named for the user
            first = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
            hint = (
                "use --format onnx (torch.export cannot trace packed, padded batches)"
                if fmt == "torch"
                else "this is a bug in the export of this model; please report it"
            )
            raise ExportError(
                f"{'torch.export' if fmt == 'torch' else 'the ONNX exporter'} could not trace "
                f"this model ({type(err).__name__}: {first}); nothing was written",
                hint,
            ) from err
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


def _onnx(module, example, graph: Graph, path: str, steps: bool):
    import warnings

    dynamic = graph.dynamic
    if steps:  # the time loop was traced one step long: its time axis is fixed at 1
        dynamic = {
            name: {a: label for a, label in axes.items() if label != "time"}
            for name, axes in dynamic.items()
        }

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's notes on RNN batch sizes
        torch.onnx.export(
            module,
            tuple(example),
            path,
            input_names=graph.input_names,
            output_names=graph.output_names,
            dynamic_axes=dynamic,
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
    shapes = _as_signature(module, shapes)
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


def _as_signature(module: nn.Module, shapes: list) -> tuple:
    """torch.export's dynamic shapes follow forward's signature: the inputs that fill a
    ``*tensors`` parameter are given as one tuple."""
    import inspect

    params = list(inspect.signature(module.forward).parameters.values())
    named = [p for p in params if p.kind != p.VAR_POSITIONAL]
    if len(named) == len(params):
        return tuple(shapes)
    return (*shapes[: len(named)], tuple(shapes[len(named) :]))


@torch.no_grad()
def _compare(module, run, graph: Graph, steps: bool = False) -> float:
    """The largest absolute difference between PyTorch's ``module`` over whole sequences and
    the exported ``run`` (fed the same sequences whole, or a step at a time with its state fed
    back when ``steps``), over `CHECK_SHAPES`."""
    # a graph without a time axis (a decoder step, a whole image) is one run at any length
    steps = steps and any(_time_axis(graph, name) is not None for name in graph.input_names)
    worst = 0.0
    for b, t in CHECK_SHAPES:
        inputs = graph.make_inputs(b, t, torch.Generator().manual_seed(b * 100 + t))
        expected = module(*inputs)
        expected = list(expected) if isinstance(expected, tuple | list) else [expected]
        got = _streamed(run, graph, inputs, t) if steps else run(inputs)
        for e, g in zip(expected, got, strict=True):
            if e.shape != g.shape:
                raise ExportError(
                    f"the exported model gives shape {tuple(g.shape)} where PyTorch gives "
                    f"{tuple(e.shape)} (batch {b}, length {t}); nothing was written"
                )
            worst = max(worst, (e.float() - g.float()).abs().max().item())
    return worst


def _time_axis(graph: Graph, name: str) -> int | None:
    return next((a for a, label in graph.dynamic.get(name, {}).items() if label == "time"), None)


def _streamed(run, graph: Graph, inputs: list[Tensor], t: int) -> list[Tensor]:
    """``run`` a step at a time over length ``t``: each input with a time axis sliced to one
    step, the state outputs fed back as the state inputs; outputs with a time axis are joined
    along it, the others (the final state) are the last step's."""
    names = graph.input_names
    feed = dict(zip(names, inputs, strict=True))
    back = {out: inp for inp, out in graph.state}
    pieces: list[list[Tensor]] = []
    for j in range(t):
        step = []
        for name in names:
            axis = _time_axis(graph, name)
            step.append(feed[name] if axis is None else feed[name].narrow(axis, j, 1))
        out = run(step)
        for name, value in zip(graph.output_names, out, strict=True):
            if name in back:
                feed[back[name]] = value
        pieces.append(out)
    joined = []
    for k, name in enumerate(graph.output_names):
        axis = _time_axis(graph, name)
        joined.append(pieces[-1][k] if axis is None else torch.cat([p[k] for p in pieces], axis))
    return joined


# ----------------------------------------------------------------------------- language models
class LanguageModelGraph(nn.Module):
    """A `rnnkit.models.LanguageModel` with the state explicit: ids (b, t), h0 (l, b, h)
    [, c0] -> logits (b, t, v), h_n [, c_n]. Its recurrent layer is torch.nn's with the
    trained weights, or, with ``steps``, rnnkit's own on its step equations (impl="loop")."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.embed = lm.embed
        self.rnn, self.steps = graph_layer(lm.rnn)
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
    """The language model's graph: torch.nn's layer over a dynamic time axis, or one step of
    rnnkit's step equations where a variant changes the function (see the module's doc)."""
    module = LanguageModelGraph(lm).eval()
    rnn = module.rnn
    lstm = module.lstm

    def make_inputs(b: int, t: int, g: torch.Generator):
        ids = torch.randint(0, vocab_size, (b, t), generator=g)
        return [ids, *random_state(rnn, b, g)]

    states_in, states_out = (["h0", "c0"], ["h_n", "c_n"]) if lstm else (["h0"], ["h_n"])
    dynamic = {"ids": {0: "batch", 1: "time"}, "logits": {0: "batch", 1: "time"}}
    dynamic |= {name: {1: "batch"} for name in states_in + states_out}
    return Graph(
        module,
        make_inputs,
        ["ids", *states_in],
        ["logits", *states_out],
        dynamic,
        state=list(zip(states_in, states_out, strict=True)),
        steps=module.steps,
    )


# ----------------------------------------------------------------------------- a bare layer
class LayerGraph(nn.Module):
    """An rnnkit layer (`rnnkit.LSTM` / `GRU` / `RNN`, with its variants, or `rnnkit.MinGRU` /
    `MinLSTM`) with its state explicit, batch first: x (b, t, i), h0 (d*l, b, h) [, c0]
    -> y (b, t, d*h), h_n [, c_n]. minGRU / minLSTM have no ONNX operator and their scan and
    fused kernels do not trace: the graph is one step of their step equations (`step`)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        from rnnkit.mingru import _MinLayer

        self.min = isinstance(layer, _MinLayer)
        if self.min:
            if layer.bidirectional:
                raise ExportError(
                    f"a bidirectional {type(layer).__name__} cannot be streamed a step at a "
                    "time (its reverse direction reads the future)",
                    "export a unidirectional layer",
                )
            self.rnn, self.steps = copy.deepcopy(layer).eval(), True
        else:
            self.rnn, self.steps = graph_layer(layer)
        self.time_major = not layer.batch_first
        self.lstm = isinstance(self.rnn, nn.LSTM)

    def forward(self, x: Tensor, h0: Tensor, c0: Tensor | None = None):
        if self.min:  # traced one step long; eager (PyTorch's side of the check) any length
            h_n, ys = h0, []
            for j in range(x.size(1)):
                y, h_n = self.rnn.step(x[:, j], h_n)
                ys.append(y)
            return torch.stack(ys, dim=1), h_n
        x = x.transpose(0, 1) if self.time_major else x
        y, state = self.rnn(x, (h0, c0) if self.lstm else h0)
        y = y.transpose(0, 1) if self.time_major else y
        return (y, *state) if self.lstm else (y, state)


def layer_graph(layer: nn.Module) -> Graph:
    """The graph of a bare recurrent layer, for a model of one's own, e.g.
    ``export(layer_graph(rnnkit.MinGRU(16, 64)), "onnx", "mingru.onnx")``."""
    module = LayerGraph(layer).eval()

    def make_inputs(b: int, t: int, g: torch.Generator):
        return [torch.randn(b, t, layer.input_size, generator=g), *random_state(layer, b, g)]

    states_in, states_out = (["h0", "c0"], ["h_n", "c_n"]) if module.lstm else (["h0"], ["h_n"])
    dynamic = {"x": {0: "batch", 1: "time"}, "y": {0: "batch", 1: "time"}}
    dynamic |= {name: {1: "batch"} for name in states_in + states_out}
    return Graph(
        module,
        make_inputs,
        ["x", *states_in],
        ["y", *states_out],
        dynamic,
        state=list(zip(states_in, states_out, strict=True)),
        steps=module.steps,
        streamable=not layer.bidirectional,
    )


# ----------------------------------------------------------------------------- padded batches
class SequenceModelGraph(nn.Module):
    """A `rnnkit.models.SequenceModel` over a padded batch, torch.nn's layer reading it packed
    (so padding never reaches either direction): x (b, t) ids or (b, t, i) features, lengths
    (b,) int64 -> y (b, t', o) per step or (b, o) per sequence, t' = the longest length."""

    def __init__(self, model: nn.Module):
        super().__init__()
        if hasattr(model, "wide"):
            raise ExportError(
                "the model has a wide part (model.ngrams > 0): its hashed n-grams are counted "
                "in Python, which an exported graph cannot run",
                "train with model.ngrams=0 to export, or use rnnkit.load(RUN) in Python",
            )
        self.model, self.rnn = model, torch_recurrent(model.rnn)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        m = self.model
        if hasattr(m, "embed"):
            ids = x
            x = m.embed(ids)  # (b, t, e)
            if hasattr(m, "token_features"):
                x = torch.cat([x, m.token_features[ids]], dim=-1)  # (b, t, e + k)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        h, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True)  # (b, t', d*h)
        if m.config.head == "step":
            return m.head(h)
        pooled, _ = m.pool(h, lengths)
        return m.head(pooled)


def padded_lengths(b: int, t: int, g: torch.Generator) -> Tensor:
    """Random lengths in [1, t] for a batch of b, the first sequence t long (so that the
    output's time axis is t, as PyTorch's)."""
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    lengths[0] = t
    return lengths


def sequence_model_graph(model: nn.Module, vocab_size: int = 0, features: int = 0) -> Graph:
    """The graph of a classifier or tagger: token ids (``vocab_size``) or ``features`` per
    step, with lengths -> scores."""
    module = SequenceModelGraph(model).eval()
    step = model.config.head == "step"

    def make_inputs(b: int, t: int, g: torch.Generator):
        if vocab_size:
            x = torch.randint(1, vocab_size, (b, t), generator=g)
        else:
            x = torch.randn(b, t, features, generator=g)
        return [x, padded_lengths(b, t, g)]

    name = "ids" if vocab_size else "features"
    dynamic = {name: {0: "batch", 1: "time"}, "lengths": {0: "batch"}}
    dynamic["scores"] = {0: "batch", 1: "time"} if step else {0: "batch"}
    return Graph(module, make_inputs, [name, "lengths"], ["scores"], dynamic)


class RecognizerGraph(nn.Module):
    """A `rnnkit.models.Recognizer`: frames (b, T, f), lengths (b,) -> CTC log-probabilities
    (b, T', C) and the frames each sequence has after the front end (b,)."""

    def __init__(self, recognizer: nn.Module):
        super().__init__()
        self.frontend = getattr(recognizer, "frontend", None)
        self.body = SequenceModelGraph(recognizer.body)

    def forward(self, x: Tensor, lengths: Tensor):
        if self.frontend is not None:
            x = self.frontend(x, lengths)
            lengths = self.frontend.output_lengths(lengths).clamp(min=1, max=x.shape[1])
        return torch.log_softmax(self.body(x, lengths), dim=-1), lengths


def recognizer_graph(recognizer: nn.Module, features: int) -> Graph:
    module = RecognizerGraph(recognizer).eval()

    def make_inputs(b: int, t: int, g: torch.Generator):
        return [torch.randn(b, t, features, generator=g), padded_lengths(b, t, g)]

    dynamic = {"features": {0: "batch", 1: "time"}, "lengths": {0: "batch"}}
    dynamic |= {"log_probs": {0: "batch", 1: "frames"}, "frames": {0: "batch"}}
    return Graph(module, make_inputs, ["features", "lengths"], ["log_probs", "frames"], dynamic)


# ----------------------------------------------------------------------------- encoder-decoder
class EncoderGraph(nn.Module):
    """A `rnnkit.models.Seq2Seq`'s encoder: src (b, S) ids, lengths (b,) -> the memory
    (states (b, S', k), mask (b, S') bool, keys (b, S', k) where attention projects them) and
    the decoder's first state: h0 (l, b, h) [, c0] [, feed (b, h)], S' the longest length."""

    def __init__(self, model: nn.Module):
        super().__init__()
        enc = model.encoder
        if not hasattr(enc, "rnn"):
            raise ExportError(
                f"this model's encoder is a {type(enc).__name__}, not a recurrent encoder",
                "export supports the recurrent encoder-decoder",
            )
        self.model, self.rnn = model, torch_recurrent(enc.rnn)

    def forward(self, src: Tensor, lengths: Tensor):
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        m, c = self.model, self.model.config
        x = m.encoder.embed(src)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, final = self.rnn(packed)
        states, _ = pad_packed_sequence(out, batch_first=True)  # (b, S', d*h)
        h_n = final[0] if isinstance(final, tuple) else final  # (layers*d, b, h)
        d = 2 if c.bidirectional else 1
        top = h_n.view(c.encoder_layers, d, -1, c.hidden)[-1]  # the last layer: (d, b, h)
        summary = torch.cat(list(top), dim=-1)  # [h_fwd_S; h_bwd_1]
        mask = torch.arange(states.size(1)) < lengths[:, None]  # (b, S')
        s0 = torch.tanh(m.bridge(summary)).view(-1, c.decoder_layers, c.hidden).transpose(0, 1)
        keys = m.attention.project(states) if c.attention != "none" else None
        rnn = (s0, torch.zeros_like(s0)) if c.cell == "lstm" else s0
        return _memory_and_state(m, Memory(states, mask, keys), DecoderState(rnn, None))


class ImageEncoderGraph(nn.Module):
    """A `rnnkit.models.Captioner`'s encoder: images (b, C, H, W) -> the memory over the L
    grid cells (states (b, L, k), mask (b, L), keys) and the decoder's first state, as
    `EncoderGraph` gives them."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: Tensor):
        return _memory_and_state(self.model, *self.model.encode(image, None))


def _memory_and_state(model: nn.Module, memory, state) -> tuple[Tensor, ...]:
    """The encoder graphs' outputs: states, mask [, keys], h0 [, c0] [, feed0]."""
    out = [memory.states, memory.mask] + ([memory.keys] if memory.keys is not None else [])
    out += list(state.rnn) if isinstance(state.rnn, tuple) else [state.rnn]
    if model.feed_size:
        out.append(memory.states.new_zeros(memory.states.size(0), model.feed_size))
    return tuple(out)


class DecoderStepGraph(nn.Module):
    """One decoding step of a `rnnkit.models.Seq2Seq`: y_prev (b,), the state h [, c]
    [, feed], the memory -> logits (b, v), the next state [, attention weights (b, S)]."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.rnn = model, torch_recurrent(model.decoder)
        c = model.config
        self.attention, self.lstm = c.attention != "none", c.cell == "lstm"
        self.feed = bool(model.feed_size)

    def forward(self, y_prev: Tensor, *tensors: Tensor):
        rest = list(tensors)
        rnn = (rest.pop(0), rest.pop(0)) if self.lstm else rest.pop(0)
        feed = rest.pop(0) if self.feed else y_prev.new_zeros(y_prev.size(0), 0).float()
        states, mask = rest.pop(0), rest.pop(0)
        keys = rest.pop(0) if self.attention else None
        logits, state, a = self.model.decode_step(  # its own code, torch.nn's layer
            y_prev, DecoderState(rnn, feed), Memory(states, mask, keys), decoder=self.rnn
        )
        out = [logits, *(state.rnn if self.lstm else (state.rnn,))]
        if self.feed:
            out.append(state.feed)
        if self.attention:
            out.append(a)
        return tuple(out)


def seq2seq_graphs(
    model: nn.Module, src_vocab: int, tgt_vocab: int, image: tuple[int, ...] | None = None
) -> dict[str, Graph]:
    """{"encoder": ..., "decoder": ...}: run the encoder once, then the decoder step by step,
    feeding back its state (and the previous token: greedy, or a beam search's choice). With
    ``image`` (C, H, W), the encoder reads images (a captioner) instead of source ids."""
    c = model.config
    encoder = (ImageEncoderGraph(model) if image else EncoderGraph(model)).eval()
    decoder = DecoderStepGraph(model).eval()
    state_names = ["h", "c"] if c.cell == "lstm" else ["h"]
    if model.feed_size:
        state_names.append("feed")
    memory_names = ["states", "mask"] + (["keys"] if c.attention != "none" else [])

    def encoder_inputs(b: int, t: int, g: torch.Generator):
        if image:
            return [torch.rand((b, *image), generator=g)]
        return [torch.randint(4, src_vocab, (b, t), generator=g), padded_lengths(b, t, g)]

    def decoder_inputs(b: int, t: int, g: torch.Generator):
        with torch.no_grad():
            memory_and_state = encoder(*encoder_inputs(b, t, g))
        k = len(memory_names)
        memory, state = list(memory_and_state[:k]), list(memory_and_state[k:])
        state = [s + 0.1 * torch.randn(s.shape, generator=g) for s in state]  # not only s0
        y_prev = torch.randint(1, tgt_vocab, (b,), generator=g)
        return [y_prev, *state, *memory]

    encoder_in = ["image"] if image else ["src", "lengths"]
    encoder_out = memory_names + [f"{n}0" for n in state_names]
    if image:
        dynamic = {"image": {0: "batch"}}
    else:
        dynamic = {"src": {0: "batch", 1: "source"}, "lengths": {0: "batch"}}
    dynamic |= {n: {0: "batch", 1: "source"} for n in memory_names}
    dynamic |= {f"{n}0": ({1: "batch"} if n in ("h", "c") else {0: "batch"}) for n in state_names}
    decoder_out = ["logits"] + [f"{n}_next" for n in state_names]
    decoder_out += ["attention"] if c.attention != "none" else []
    step_dynamic = {"y_prev": {0: "batch"}, "logits": {0: "batch"}}
    step_dynamic |= {n: {0: "batch", 1: "source"} for n in memory_names}
    step_dynamic |= {"attention": {0: "batch", 1: "source"}} if c.attention != "none" else {}
    for n in state_names:
        axes = {1: "batch"} if n in ("h", "c") else {0: "batch"}
        step_dynamic |= {n: axes, f"{n}_next": axes}
    return {
        "encoder": Graph(encoder, encoder_inputs, encoder_in, encoder_out, dynamic),
        "decoder": Graph(
            decoder,
            decoder_inputs,
            ["y_prev", *state_names, *memory_names],
            decoder_out,
            step_dynamic,
            state=[(n, f"{n}_next") for n in state_names],
        ),
    }


# ----------------------------------------------------------------------------- the NTM
class NTMInitGraph(nn.Module):
    """The NTM's first state for a batch: x (b, 1, i) (read for its batch size only) -> [h0,
    c0 (b, c) for an LSTM controller,] memory (b, n, m), w_read (b, R, n), w_write (b, W, n),
    reads (b, R, m)."""

    def __init__(self, ntm: nn.Module):
        super().__init__()
        self.ntm = ntm

    def forward(self, x: Tensor):
        ctrl, *rest = self.ntm.initial_state(x.size(0), x.device)
        return (*(ctrl or ()), *rest)


class NTMStepGraph(nn.Module):
    """NTM steps with the whole state explicit: x (b, t, i), [h, c,] memory, w_read, w_write,
    reads -> y (b, t, o) (before the task's sigmoid or softmax) and the next state."""

    def __init__(self, ntm: nn.Module):
        super().__init__()
        self.ntm, self.lstm = ntm, ntm.kind == "lstm"

    def forward(self, x: Tensor, *state: Tensor):
        ctrl, rest = ((state[0], state[1]), state[2:]) if self.lstm else (None, state)
        y, (ctrl, *rest) = self.ntm(x, (ctrl, *rest))
        return (y, *(ctrl or ()), *rest)


def ntm_graphs(ntm: nn.Module) -> dict[str, Graph]:
    """{"init": the first state, "step": one step of the equations, state in and out}: the
    NTM's time loop is the caller's, as for any one-step graph."""
    if ntm.init.kind == "random":
        raise ExportError(
            "this NTM draws its initial memory at random for each sequence "
            "(model.memory_init=random), which an exported graph would not reproduce",
            "train with model.memory_init=constant or learned to export",
        )
    names = (["h", "c"] if ntm.kind == "lstm" else []) + ["memory", "w_read", "w_write", "reads"]
    init = NTMInitGraph(ntm).eval()
    step = NTMStepGraph(ntm).eval()
    i = ntm.input_size

    def init_inputs(b: int, t: int, g: torch.Generator):
        return [torch.rand(b, 1, i, generator=g)]

    def step_inputs(b: int, t: int, g: torch.Generator):
        x = torch.rand(b, t, i, generator=g).round()  # bits, as the tasks read
        with torch.no_grad():
            state = init(x[:, :1])
        state = [s + 0.05 * torch.rand(s.shape, generator=g) for s in state]  # not only s0
        return [x, *state]

    batch = {n: {0: "batch"} for n in names}
    return {
        "init": Graph(init, init_inputs, ["x"], [f"{n}0" for n in names],
                      {"x": {0: "batch"}} | {f"{n}0": {0: "batch"} for n in names}),
        "step": Graph(
            step,
            step_inputs,
            ["x", *names],
            ["y", *(f"{n}_next" for n in names)],
            {"x": {0: "batch", 1: "time"}, "y": {0: "batch", 1: "time"}}
            | batch
            | {f"{n}_next": {0: "batch"} for n in names},
            state=[(n, f"{n}_next") for n in names],
            steps=True,
        ),
    }  # fmt: skip


# ----------------------------------------------------------------------------- video
class VideoGraph(nn.Module):
    """A `rnnkit.models.VideoLabeller` on a live stream: frames (b, t, C, H, W), h0 (l, b, h)
    [, c0] -> logits (b, t, K) of the recurrent model [, of the single-frame baseline], h_n
    [, c_n]; feed a clip whole, or a frame at a time with the state fed back."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.rnn, self.steps = graph_layer(model.rnn)
        self.lstm = isinstance(self.rnn, nn.LSTM)

    def forward(self, frames: Tensor, h0: Tensor, c0: Tensor | None = None):
        m = self.model
        h, state = self.rnn(m.frames(m.encoder, frames), (h0, c0) if self.lstm else h0)
        out = [m.head(h)]  # (b, t, K)
        if m.config.baseline:
            out.append(m.single_head(m.frames(m.single_encoder, frames)))
        return (*out, *state) if self.lstm else (*out, state)


def video_graph(model: nn.Module, shape: tuple[int, int, int]) -> Graph:
    """The labeller's graph for frames of ``shape`` (C, H, W)."""
    module = VideoGraph(model).eval()
    rnn, lstm = module.rnn, module.lstm

    def make_inputs(b: int, t: int, g: torch.Generator):
        return [torch.rand((b, t, *shape), generator=g), *random_state(rnn, b, g)]

    states_in, states_out = (["h0", "c0"], ["h_n", "c_n"]) if lstm else (["h0"], ["h_n"])
    outputs = ["logits"] + (["single_logits"] if model.config.baseline else [])
    dynamic = {name: {0: "batch", 1: "time"} for name in ["frames", *outputs]}
    dynamic |= {name: {1: "batch"} for name in states_in + states_out}
    return Graph(
        module,
        make_inputs,
        ["frames", *states_in],
        outputs + states_out,
        dynamic,
        state=list(zip(states_in, states_out, strict=True)),
        steps=module.steps,
    )


# ----------------------------------------------------------------------------- forecasting
class ForecasterGraph(nn.Module):
    """A `rnnkit.models.Forecaster` with its step inputs' parts and its state explicit:

        z_prev, z_lag, phase (b, t), scale (b, 1) [, ids (b,)] [, covariates (b, t, k)],
        h0 (l, b, h) [, c0]  ->  params (b, t, P) or quantiles (b, t, H, Q), h_n [, c_n]

    z = (y - loc) / scale are the scaled values (loc and scale from the observed history, as
    `Forecaster.scaling` computes them); params are mu, sigma (gaussian) or mu, sigma, nu
    (student_t) of the next z, or the mean and shape alpha of the next count (negbin); the
    quantiles are the next H values' (in z). A caller runs the history, then draws a value,
    feeds it back as the next z_prev (and later as z_lag), and repeats: one sample path."""

    def __init__(self, model: nn.Module):
        super().__init__()
        if model.config.mc_dropout:
            raise ExportError(
                "this forecaster samples with its dropout on (model.mc_dropout), which an "
                "exported graph (evaluation mode, no dropout) would not reproduce",
                "use rnnkit.load(RUN) in Python, or train with model.mc_dropout=false to export",
            )
        self.model = model
        self.rnn, self.steps = graph_layer(model.rnn)
        self.lstm = isinstance(self.rnn, nn.LSTM)
        self.ids, self.covariates = hasattr(model, "embed"), hasattr(model, "cov_loc")

    def forward(self, z_prev: Tensor, z_lag: Tensor, phase: Tensor, scale: Tensor, *rest):
        m, rest = self.model, list(rest)
        ids = rest.pop(0) if self.ids else None
        cov = rest.pop(0) if self.covariates else None
        x = m.step_features(z_prev, z_lag, phase, scale.log(), ids, cov)  # (b, t, F)
        h, state = self.rnn(x, tuple(rest) if self.lstm else rest[0])
        if m.config.likelihood == "quantile":
            out = m.quantile_paths(h)  # (b, t, H, Q)
        elif m.config.likelihood == "negbin":
            out = torch.stack(m.predictive(h, 0.0, scale), dim=-1)  # counts: (b, t, 2)
        else:
            out = torch.stack(m.predictive(h), dim=-1)  # in z: (b, t, 2 or 3)
        return (out, *state) if self.lstm else (out, state)


def forecaster_graph(model: nn.Module) -> Graph:
    module = ForecasterGraph(model).eval()
    rnn, lstm = module.rnn, module.lstm
    names = ["z_prev", "z_lag", "phase", "scale"]
    names += (["ids"] if module.ids else []) + (["covariates"] if module.covariates else [])

    def make_inputs(b: int, t: int, g: torch.Generator):
        inputs = [torch.randn(b, t, generator=g), torch.randn(b, t, generator=g)]
        inputs += [torch.rand(b, t, generator=g), torch.rand(b, 1, generator=g) * 4 + 0.5]
        if module.ids:  # -1: a series not seen in training
            inputs.append(torch.randint(-1, model.embed.num_embeddings, (b,), generator=g))
        if module.covariates:
            k = len(model.cov_loc)
            inputs.append(model.cov_loc + model.cov_scale * torch.randn(b, t, k, generator=g))
        return inputs + random_state(rnn, b, g)

    states_in, states_out = (["h0", "c0"], ["h_n", "c_n"]) if lstm else (["h0"], ["h_n"])
    output = "quantiles" if model.config.likelihood == "quantile" else "params"
    dynamic = {n: {0: "batch", 1: "time"} for n in ("z_prev", "z_lag", "phase", "covariates")}
    dynamic |= {"scale": {0: "batch"}, "ids": {0: "batch"}, output: {0: "batch", 1: "time"}}
    dynamic |= {name: {1: "batch"} for name in states_in + states_out}
    dynamic = {k: v for k, v in dynamic.items() if k in names + [output] + states_in + states_out}
    return Graph(
        module,
        make_inputs,
        names + states_in,
        [output, *states_out],
        dynamic,
        state=list(zip(states_in, states_out, strict=True)),
        steps=module.steps,
    )


# ----------------------------------------------------------------------------- whole images
def pixel_graph(model: nn.Module) -> Graph:
    """A `rnnkit.models.PixelRNN`: images (b, H, W) int64 levels -> logits (b, K, H, W) of
    every pixel given the pixels before it in raster order. Drawing an image is the caller's:
    one run per pixel, as `PixelRNN.sample` does (H and W are the trained ones)."""

    def make_inputs(b: int, t: int, g: torch.Generator):
        return [torch.randint(0, model.levels, (b, model.height, model.width), generator=g)]

    dynamic = {"image": {0: "batch"}, "logits": {0: "batch"}}
    return Graph(model.eval(), make_inputs, ["image"], ["logits"], dynamic)


def embedding_graph(embed: nn.Embedding) -> Graph:
    """Word vectors: ids (b, t) int64 -> vectors (b, t, d), the trained table's rows."""

    def make_inputs(b: int, t: int, g: torch.Generator):
        return [torch.randint(0, embed.num_embeddings, (b, t), generator=g)]

    dynamic = {"ids": {0: "batch", 1: "time"}, "vectors": {0: "batch", 1: "time"}}
    return Graph(embed.eval(), make_inputs, ["ids"], ["vectors"], dynamic)
