"""The sentiment task: pooling heads that ignore padding, lexicon features, occlusion, and the
CLI end to end (train -> classify -> evaluate -> report) on a tiny config."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.data.batching import pad
from rnnkit.models.sequence import POOLS, SequenceModel, SequenceModelConfig

try:
    from rnnkit.data.sentiment import archive_path

    archive_path()
    HAVE_DATA = True
except Exception as err:  # noqa: BLE001 - the reason is shown in the skip
    HAVE_DATA, WHY = False, str(err)

needs_data = pytest.mark.skipif(
    not HAVE_DATA, reason="the vaderSentiment archive is missing: run `make`"
)


@pytest.mark.parametrize("head", POOLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_pooled_heads_ignore_padding(head, bidirectional):
    torch.manual_seed(0)
    config = SequenceModelConfig(hidden=6, bidirectional=bidirectional, head=head)
    model = SequenceModel(11, 3, config, vocab=True, embed=5, padding_idx=0).eval()
    seqs = [[3, 4, 5, 6], [7, 8], [9]]
    x, lengths = pad(seqs, 0)
    wide, _ = pad(seqs, 0, length=9)  # five more steps of padding
    y, _ = model(x, lengths=lengths)
    y_wide, _ = model(wide, lengths=lengths)
    torch.testing.assert_close(y, y_wide, rtol=0, atol=1e-6)
    for i, s in enumerate(seqs):  # and each alone, with no padding at all
        alone, _ = model(torch.tensor([s]))
        torch.testing.assert_close(y[i : i + 1], alone, rtol=0, atol=1e-6)


def test_attention_weights_sum_to_one_over_the_real_steps():
    config = SequenceModelConfig(hidden=4, head="attention")
    model = SequenceModel(9, 2, config, vocab=True, embed=3, padding_idx=0).eval()
    x, lengths = pad([[1, 2, 3], [4]], 0)
    _, _, alpha = model(x, lengths=lengths, return_weights=True)
    torch.testing.assert_close(alpha.sum(1), torch.ones(2))
    assert alpha[1, 1:].abs().max() == 0


def test_max_pool_is_the_elementwise_max_of_the_states():
    config = SequenceModelConfig(hidden=4, head="max")
    model = SequenceModel(9, 2, config, vocab=True, embed=3, padding_idx=0).eval()
    ids = torch.tensor([[1, 5, 2]])
    h, _ = model.rnn(model.embed(ids))
    y, _ = model(ids)
    torch.testing.assert_close(y, model.head(h.amax(1)))


def test_token_features_are_appended_and_saved_with_the_weights():
    config = SequenceModelConfig(hidden=4, head="mean")
    model = SequenceModel(6, 2, config, vocab=True, embed=3, padding_idx=0, token_features=2)
    assert model.rnn.input_size == 5
    model.token_features.copy_(torch.arange(12.0).view(6, 2))
    assert "token_features" in model.state_dict()
    other = SequenceModel(6, 2, config, vocab=True, embed=3, padding_idx=0, token_features=2)
    other.load_state_dict(model.state_dict())
    ids = torch.tensor([[1, 2, 5]])
    torch.testing.assert_close(other.eval()(ids)[0], model.eval()(ids)[0])


# ----------------------------------------------------------------------------- the task


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    if not HAVE_DATA:
        pytest.skip(f"the vaderSentiment archive is missing ({WHY}): run `make`")
    out = tmp_path_factory.mktemp("sentiment") / "run"
    args = ["train", "sentiment", "model.hidden=16", "model.embed=16", "model.head=attention",
            "model.lexicon=true", "data.min_count=3", "train.steps=40", "train.eval_every=40",
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    return out


@needs_data
def test_a_run_reports_the_model_beside_both_baselines_on_the_same_split(run):
    metrics = json.loads((run / "metrics.json").read_text())
    for name in ("test", "tfidf_logreg_test", "bag_of_embeddings_test"):
        assert 0.4 < metrics[f"{name}_accuracy"] <= 1
        assert np.array(metrics[f"{name}_confusion"]).sum() == 1057  # the same 1,057 sentences
    assert metrics["bag_of_embeddings_contrast_accuracy"] == 0.5  # blind to order
    assert 0 <= metrics["contrast_accuracy"] <= 1


@needs_data
def test_classify_from_arguments_and_standard_input(run, capsys, monkeypatch):
    import io

    capsys.readouterr()
    assert main(["classify", str(run), "a gorgeous , witty film", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["label"] in ("positive", "negative") and 0 <= row["p_positive"] <= 1
    monkeypatch.setattr("sys.stdin", io.StringIO("dull and lifeless\n\nzzzqx qqqz\n"))
    assert main(["classify", str(run)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "100% unknown words" in lines[1]  # unknown words: no error


@needs_data
def test_explain_writes_occlusion_and_attention(run, tmp_path, capsys):
    html = tmp_path / "why.html"
    assert main(["classify", str(run), "not bad at all", "--explain", str(html)]) == 0
    page = html.read_text()
    assert page.count("<tr>") == 2 and "attention weights" in page and 'title="' in page


@needs_data
def test_occlusion_is_the_change_when_a_word_is_removed(run):
    from rnnkit.tasks import get
    from rnnkit.tasks.sentiment import predict
    from rnnkit.tasks.sentiment_inspect import occlusion

    loaded = get("sentiment").load(run)
    vocab = loaded.setup.vocab
    tokens, a, s = occlusion(loaded.model, vocab, "a dull , lifeless film", False)
    assert tokens == ["a", "dull", ",", "lifeless", "film"]
    _, without = predict(loaded.model, vocab, ["a , lifeless film"], False)
    assert a[1] == pytest.approx(s - without[0], abs=1e-6)


@needs_data
@pytest.mark.parametrize(
    "argv, message",
    [
        (["classify", "RUN", "   "], "text 1 is empty"),
        (["classify", "RUN", "..."], None),  # punctuation is a word: classified
    ],
)
def test_bad_texts_get_one_clear_message(run, capsys, argv, message):
    argv = [str(run) if a == "RUN" else a for a in argv]
    code = main(argv)
    err = capsys.readouterr().err
    if message is None:
        assert code == 0
    else:
        assert code == 2 and message in err and "Traceback" not in err


@needs_data
def test_classify_on_a_run_of_another_task_is_refused(tmp_path, capsys):
    out = tmp_path / "lm"
    assert main(["train", "charlm", "model.hidden=8", "model.layers=1", "train.steps=2",
                 "data.batch_size=2", "tbptt.k1=8", "--out", str(out), "--quiet"]) == 0  # fmt: skip
    assert main(["classify", str(out), "fine"]) == 2
    assert "does not apply to a 'charlm' run" in capsys.readouterr().err


@needs_data
def test_report_has_the_results_and_the_contrast_pairs(run, tmp_path):
    page = tmp_path / "r.html"
    assert main(["report", str(run), "--out", str(page)]) == 0
    text = page.read_text()
    assert "TF-IDF + logistic regression" in text and "Contrast pairs" in text
    assert "<span" in text and ">phone</span>" in text  # the pairs, coloured word by word


@needs_data
def test_character_input_reads_characters():
    from rnnkit.config import build
    from rnnkit.tasks import get

    task = get("sentiment")
    config = build(
        task.Config, overrides={"data.input": "char", "model.hidden": 8, "model.embed": 8}
    )
    setup = task.prepare(config)
    assert setup.vocab.kind == "char" and len(setup.vocab) < 200
    model, loop = task.build(config, setup)
    loss = loop.train_step(model, 0)
    assert loss.ndim == 0 and loss.item() == pytest.approx(np.log(2), abs=0.2)
    assert 0 <= loop.evaluate(model)["val_accuracy"] <= 1


@needs_data
def test_a_wide_and_deep_run_saves_its_bag_and_classifies_the_same_after_loading(tmp_path):
    from rnnkit.tasks import get

    out = tmp_path / "wide"
    args = ["train", "sentiment", "model.hidden=8", "model.embed=8", "model.ngrams=2",
            "model.ngram_buckets=512", "model.ngram_dropout=0.2", "data.min_count=3",
            "train.steps=20", "train.eval_every=20", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    task = get("sentiment")
    loaded = task.load(out)
    bag = loaded.model.wide
    assert bag.n == 2 and bag.V.weight.shape[0] == len(loaded.setup.vocab) + 512
    assert bag.V.weight.abs().sum() > 0  # trained away from its zero start
    texts = ["a fine , moving film", "dull and far too long"]
    first = task.classify(loaded, texts)
    again = task.classify(task.load(out), texts)
    assert [r["p_positive"] for r in first] == [r["p_positive"] for r in again]


def test_ngrams_need_word_input():
    from rnnkit.config import build
    from rnnkit.errors import ConfigError
    from rnnkit.tasks import get

    with pytest.raises(ConfigError, match="model.ngrams"):
        build(get("sentiment").Config, overrides={"data.input": "char", "model.ngrams": 2})


@needs_data
def test_the_exported_onnx_classifier_equals_the_model_on_a_padded_batch(run, tmp_path, capsys):
    """Bidirectional LSTM, attention pooling and lexicon features, through ONNX Runtime: the
    padded batch's scores equal the model's, each text's as if alone."""
    ort = pytest.importorskip("onnxruntime")
    from rnnkit import tasks
    from rnnkit.tasks.sentiment import encode

    out = tmp_path / "sentiment.onnx"
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert "max abs difference" in capsys.readouterr().out
    loaded = tasks.load(run)
    texts = ["a gripping , funny film", "dull", "not good at all , and far too long to sit"]
    x, lengths = pad(encode(loaded.setup.vocab, texts), loaded.setup.vocab.pad)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"ids": x.numpy(), "lengths": lengths.numpy()})[0]
    with torch.no_grad():
        expected = loaded.model(x, lengths=lengths)[0]
        alone = loaded.model(x[1:2, :1])[0]  # "dull", unpadded
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)
    np.testing.assert_allclose(got[1], alone[0].numpy(), atol=1e-4)
