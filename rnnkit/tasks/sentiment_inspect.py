"""What the sentiment task measures and shows beyond training: the model beside its baselines
on the same split and on the contrast pairs, and per-word attributions.

Occlusion (every model): the part of the prediction a word carries,

    a_i = s(w_1..w_n) - s(w_1..w_{i-1}, w_{i+1}..w_n)

with s = p(positive | x) for polarity, the predicted rating for regression; a_i > 0: the word
pushes towards positive. With an attention head, the weights alpha_t are shown too (where the
model looked, not what it concluded).
"""

from __future__ import annotations

import html

import numpy as np
import torch

from rnnkit.data.batching import pad
from rnnkit.tasks.sentiment import LABELS, encode, predict, score_of

TFIDF, BAG = "tfidf_logreg", "bag_of_embeddings"


def compare(model, setup, config) -> dict:
    """Test metrics of the model, TF-IDF + logistic regression and a bag of the model's own
    word embeddings + logistic regression, all fitted on the same training split; and the
    accuracy of each on the contrast pairs (polarity only)."""
    from rnnkit.data.contrast import contrast_set
    from rnnkit.tasks import sentiment_eval as ev

    regression = config.data.target == "rating"
    vocab, train, test = setup.vocab, setup.splits["train"], setup.splits["test"]
    split = vocab.split if hasattr(vocab, "split") else None
    pred, _ = predict(model, vocab, test.texts, regression)
    metrics = ev.regression_metrics if regression else ev.classification_metrics
    out = {"test": metrics(test.y, pred)}
    evaluated = {"test": test.texts}
    c_texts, c_labels = contrast_set()
    if not regression:
        evaluated["contrast"] = list(c_texts)
        c_pred, _ = predict(model, vocab, list(c_texts), regression)
        out["contrast"] = {"accuracy": float((c_pred == np.asarray(c_labels)).mean())}
    valid = setup.splits["valid"]
    base = ev.tfidf_logreg(
        train.texts, train.y, evaluated, tokenizer=split, valid=(valid.texts, valid.y),
        regression=regression,
    )  # fmt: skip
    weight = model.embed.weight.detach().cpu().numpy()  # the model's own word vectors
    bag = ev.bag_of_embeddings(
        train.ids, train.y, {k: encode(vocab, v) for k, v in evaluated.items()}, weight,
        valid=(valid.ids, valid.y), regression=regression,
    )  # fmt: skip
    for name, preds in ((TFIDF, base), (BAG, bag)):
        out[f"{name}_test"] = metrics(test.y, preds["test"])
        if "contrast" in preds:
            out[f"{name}_contrast"] = {
                "accuracy": float((np.asarray(preds["contrast"]) == np.asarray(c_labels)).mean())
            }
    return flatten(out)


def flatten(nested: dict) -> dict:
    """{"test": {"accuracy": .8}} -> {"test_accuracy": .8} (tables stay whole)."""
    flat = {}
    for key, value in nested.items():
        for name, v in value.items():
            flat[f"{key}_{name}"] = v
    return flat


@torch.no_grad()
def occlusion(model, vocab, text: str, regression: bool) -> tuple[list[str], np.ndarray, float]:
    """(tokens, a (n,), s): each token's occlusion attribution and the full prediction s."""
    model.eval()
    ids = encode(vocab, [text])[0]
    tokens = vocab.pieces(ids) if not hasattr(vocab, "split") else vocab.split(text)
    variants = [ids] + [ids[:i] + ids[i + 1 :] for i in range(len(ids))]
    variants = [v or [vocab.unk] for v in variants]  # a one-word text: against <unk>
    x, lengths = pad(variants, vocab.pad)
    y, _ = model(x.to(next(model.parameters()).device), lengths=lengths)
    s = score_of(y, regression)
    s = s.float().cpu().numpy()
    return tokens, s[0] - s[1:], float(s[0])


@torch.no_grad()
def attention_weights(model, vocab, text: str) -> np.ndarray | None:
    """alpha (n,) of an attention head, else None."""
    if model.config.head != "attention":
        return None
    model.eval()
    ids = torch.tensor([encode(vocab, [text])[0]])
    _, _, alpha = model(ids.to(next(model.parameters()).device), return_weights=True)
    return alpha[0].float().cpu().numpy()


def _spans(tokens, values, scale: float, positive=(0, 140, 60), negative=(200, 40, 40)) -> str:
    out = []
    for token, v in zip(tokens, values, strict=True):
        r, g, b = positive if v >= 0 else negative
        alpha = min(1.0, abs(v) / scale) if scale > 0 else 0.0
        out.append(
            f'<span style="background: rgba({r},{g},{b},{alpha:.2f}); padding: 1px 2px" '
            f'title="{v:+.3f}">{html.escape(token)}</span>'
        )
    return " ".join(out)


def attributions_html(loaded, texts: list[str]) -> str:
    """A self-contained HTML page: each text with its words coloured by occlusion (green:
    towards positive, red: towards negative), and the attention weights when the model has
    them."""
    return (
        "<!doctype html><meta charset='utf-8'><title>rnnkit attributions</title>"
        "<body style='font-family: sans-serif; max-width: 60em'>"
        + attributions_table(loaded, texts)
        + "</body>"
    )


def attributions_table(loaded, texts: list[str]) -> str:
    model, vocab = loaded.model, loaded.setup.vocab
    regression = loaded.config.data.target == "rating"
    rows = []
    for text in texts:
        tokens, a, s = occlusion(model, vocab, text, regression)
        what = f"rating {s:+.2f}" if regression else f"{LABELS[int(s > 0.5)]} ({s:.2f})"
        cells = (
            f"<td>{html.escape(what)}</td><td>{_spans(tokens, a, max(np.abs(a).max(), 0.05))}</td>"
        )
        alpha = attention_weights(model, vocab, text)
        if alpha is not None:
            cells += f"<td>{_spans(tokens, alpha, float(alpha.max()), (40, 80, 200))}</td>"
        rows.append(f"<tr>{cells}</tr>")
    head = "<th>prediction</th><th>occlusion: green towards positive, red towards negative</th>"
    if model.config.head == "attention":
        head += "<th>attention weights</th>"
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def grid_html(header: list[str], rows: list[list]) -> str:
    """A table with a header row; numbers to 4 digits, None as a dash."""

    def cell(v) -> str:
        return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def report_sections(task, loaded):
    """The report: results beside the baselines, the contrast pairs, and attributions."""
    from rnnkit.data.contrast import CONTRAST_PAIRS

    def results() -> str:
        loaded.check_inputs()
        m = task.score(loaded)
        names = (("test", "recurrent model"), (f"{TFIDF}_test", "TF-IDF + logistic regression"))
        names += ((f"{BAG}_test", "bag of embeddings + logistic regression"),)
        metrics = [k[5:] for k in m if k.startswith("test_") and not k.endswith("confusion")]
        rows = [
            [label]
            + [m.get(f"{name}_{k}") for k in metrics]
            + [m.get(f"{name.replace('test', 'contrast')}_accuracy")]
            for name, label in names
        ]
        return grid_html(["model", *metrics, "contrast pairs accuracy"], rows)

    def contrast() -> str:
        if loaded.config.data.target == "rating":
            return "<p>contrast pairs are scored for data.target=polarity</p>"
        texts = [t for pair in CONTRAST_PAIRS for t in pair]
        return attributions_table(loaded, texts)

    return [
        ("Test results beside the baselines", results),
        ("Contrast pairs: same words, opposite polarity", contrast),
    ]
