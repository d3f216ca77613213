"""rnnkit export: the ONNX file, run in ONNX Runtime, equals the trained rnnkit model on random
batches and lengths (batch 1 and a length never seen at export included); a file that would
disagree, or a model ONNX cannot express, is refused and nothing is written."""

import numpy as np
import pytest
import torch
from helpers import train_run

import rnnkit
from rnnkit import tasks
from rnnkit.cli import main

ort = pytest.importorskip("onnxruntime")


def _lm(tmp_path, corpus, **model):
    values = {"data.path": str(corpus), "model.embed": 8, "model.hidden": 16, "model.layers": 2}
    values |= {"tbptt.k1": 16, "data.batch_size": 4, "train.steps": 4, "train.eval_every": 2}
    values |= {f"model.{k}": v for k, v in model.items()}
    return train_run("charlm", tmp_path / "_".join(f"{k}{v}" for k, v in model.items()), **values)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    f = tmp_path_factory.mktemp("export") / "fox.txt"
    f.write_text("the quick brown fox jumps over the lazy dog. " * 30, encoding="utf-8")
    return f


@pytest.mark.parametrize("cell,tie", [("lstm", False), ("gru", True), ("rnn", False)])
def test_onnx_equals_the_rnnkit_model_streamed(tmp_path, corpus, capsys, cell, tie):
    extra = {"cell": cell} | ({"tie": True, "embed": 16} if tie else {})
    run = _lm(tmp_path, corpus, **extra)
    assert main(["export", str(run)]) == 0
    assert "max abs difference" in capsys.readouterr().out
    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    model = tasks.load(run).model
    g = torch.Generator().manual_seed(1)
    for b, t in ((1, 1), (1, 40), (5, 3)):  # 40: longer than any length checked at export
        ids = torch.randint(0, model.embed.num_embeddings, (b, t), generator=g)
        with torch.no_grad():
            logits, state = model(ids)  # rnnkit's own layer, from a zero state
        h = np.zeros((2, b, 16), dtype=np.float32)
        feed = {"ids": ids.numpy(), "h0": h} | ({"c0": h} if cell == "lstm" else {})
        got = session.run(None, feed)
        np.testing.assert_allclose(got[0], logits.numpy(), atol=1e-4)
        final = state[0] if cell == "lstm" else state
        np.testing.assert_allclose(got[1], final.numpy(), atol=1e-5)
        # streaming: the second half from the state after the first equals one pass
        half = t // 2
        if half:
            first = session.run(None, {**feed, "ids": ids[:, :half].numpy()})
            rest = {"ids": ids[:, half:].numpy(), "h0": first[1]}
            rest |= {"c0": first[2]} if cell == "lstm" else {}
            np.testing.assert_allclose(
                session.run(None, rest)[0], logits[:, half:].numpy(), atol=1e-4
            )


def test_torch_export_is_one_step_with_a_dynamic_batch(tmp_path, corpus, capsys):
    run = _lm(tmp_path, corpus)
    assert main(["export", str(run), "--format", "torch"]) == 0
    program = torch.export.load(str(run / "model.pt2")).module()
    model = tasks.load(run).model
    ids = torch.randint(0, model.embed.num_embeddings, (3, 6))
    with torch.no_grad():
        expected, _ = model(ids)
        h = c = torch.zeros(2, 3, 16)
        for t in range(6):
            logits, h, c = program(ids[:, t : t + 1], h, c)
            torch.testing.assert_close(logits, expected[:, t : t + 1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", [{"layer_norm": True}, {"peephole": True, "zoneout": 0.2}])
def test_a_variant_exports_as_one_step_of_its_equations(tmp_path, corpus, capsys, variant):
    """ONNX has no operator for layer norm, peephole or zoneout: the graph is one step of the
    layer's own equations, and streaming a sequence through it in ONNX Runtime equals the
    trained model's forward over the whole sequence."""
    run = _lm(tmp_path, corpus, **variant)
    assert main(["export", str(run)]) == 0
    assert "max abs difference" in capsys.readouterr().out
    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.shape for i in session.get_inputs()][0] == ["batch", 1]  # one step, any batch
    model = tasks.load(run).model
    ids = torch.randint(0, model.embed.num_embeddings, (3, 30), generator=torch.Generator())
    with torch.no_grad():
        logits, (h_n, c_n) = model(ids)
    h = c = np.zeros((2, 3, 16), dtype=np.float32)
    for t in range(30):
        out, h, c = session.run(None, {"ids": ids[:, t : t + 1].numpy(), "h0": h, "c0": c})
        np.testing.assert_allclose(out, logits[:, t : t + 1].numpy(), atol=1e-4)
    np.testing.assert_allclose(h, h_n.numpy(), atol=1e-4)  # after 30 steps in float32
    np.testing.assert_allclose(c, c_n.numpy(), atol=1e-4)


def test_a_file_that_disagrees_is_not_written(tmp_path, corpus, capsys):
    run = _lm(tmp_path, corpus, cell="gru")
    assert main(["export", str(run), "--tolerance", "0", "--out", str(tmp_path / "m.onnx")]) == 2
    assert "differs from PyTorch by up to" in capsys.readouterr().err
    assert not list(tmp_path.glob("*m.onnx*"))  # neither the file nor its temporary


def test_every_task_exports():
    """Each task describes its graph (the default of `Task.export_graph` says it has none)."""
    from rnnkit.tasks.base import Task

    ours = [type(tasks.get(n)) for n in tasks.names()]  # not the toy tasks other tests add
    ours = [t for t in ours if t.__module__.startswith("rnnkit.")]
    assert len(ours) >= 15
    missing = [t.name for t in ours if t.export_graph is Task.export_graph]
    assert missing == []


def test_torch_export_of_a_padded_batch_graph_is_refused_by_name(tmp_path, capsys):
    values = {"model.cell": "lstm", "model.hidden": 8, "data.seq_len": 10, "train.steps": 2}
    values |= {"eval.batches": 1, "eval.batch_size": 4, "train.eval_every": 2}
    run = train_run("adding", tmp_path / "run", **values)
    assert main(["export", str(run), "--format", "torch"]) == 2
    err = capsys.readouterr().err
    assert "torch.export could not trace this model" in err and "use --format onnx" in err
    assert not list(run.glob("model.pt2*")) and not list(run.glob(".model*"))
    assert main(["export", str(run)]) == 0  # ONNX takes it


@pytest.mark.parametrize("make", [
    lambda: rnnkit.MinGRU(5, 7, num_layers=2, batch_first=True, impl="scan"),
    lambda: rnnkit.MinLSTM(5, 7, impl="fused"),
    lambda: rnnkit.LSTM(5, 7, num_layers=2, batch_first=True, proj_size=3),
    lambda: rnnkit.GRU(5, 7, batch_first=True, layer_norm=True),
])  # fmt: skip
@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_a_bare_layer_exports_and_streams_as_its_forward(tmp_path, make):
    """`rnnkit.export.layer_graph`: minGRU / minLSTM (whose scan and fused kernels ONNX cannot
    trace), an LSTM with projections (no ONNX operator) and a layer-norm GRU export as one
    step of their step equations; streamed in ONNX Runtime over 30 steps from a given state,
    they equal the layer's own forward over the whole sequence."""
    from rnnkit.export import export, layer_graph

    torch.manual_seed(0)
    layer = make().eval()
    assert export(layer_graph(layer), "onnx", tmp_path / "l.onnx") < 1e-4
    session = ort.InferenceSession(str(tmp_path / "l.onnx"))
    x = torch.randn(3, 30, 5)
    out = getattr(layer, "proj_size", 0) or 7
    h0 = torch.randn(layer.num_layers, 3, out)
    c0 = torch.randn(layer.num_layers, 3, 7)
    lstm = isinstance(layer, torch.nn.LSTM)
    with torch.no_grad():
        seq = x if layer.batch_first else x.transpose(0, 1)
        y, state = layer(seq, (h0, c0) if lstm else h0)
        y = y if layer.batch_first else y.transpose(0, 1)
    feed = {"h0": h0.numpy()} | ({"c0": c0.numpy()} if lstm else {})
    for t in range(30):
        got = session.run(None, {"x": x[:, t : t + 1].numpy(), **feed})
        np.testing.assert_allclose(got[0][:, 0], y[:, t].numpy(), atol=1e-5)
        feed = {"h0": got[1]} | ({"c0": got[2]} if lstm else {})
    final = state[0] if lstm else state
    np.testing.assert_allclose(feed["h0"], final.numpy(), atol=1e-5)


def test_a_bidirectional_layer_is_not_streamed_by_torch_export(tmp_path):
    from rnnkit.export import ExportError, export, layer_graph

    graph = layer_graph(rnnkit.GRU(5, 7, bidirectional=True, batch_first=True))
    with pytest.raises(ExportError, match="reads each sequence whole"):
        export(graph, "torch", tmp_path / "l.pt2")
    assert not list(tmp_path.iterdir())
    assert export(graph, "onnx", tmp_path / "l.onnx") < 1e-4  # ONNX reads it whole
    with pytest.raises(ExportError, match="bidirectional MinGRU cannot be streamed"):
        layer_graph(rnnkit.MinGRU(5, 7, bidirectional=True))
