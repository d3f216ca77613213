"""How far to trust a sequence-to-sequence output: its confidence, calibrated on validation.

The confidence of an output Y (|Y| tokens, EOS included) for the input X is the geometric mean
of its tokens' probabilities, the length-normalised log-probability mapped back to (0, 1]:

    confidence(Y | X) = exp( (1 / |Y|) sum_t log p(y_t | y_<t, X) )

Beam search scores a hypothesis log p(Y | X) / lp(|Y|) (GNMT's length penalty), so the
log-probability is recovered exactly as score * lp(|Y|).

Calibration (Guo et al. 2017, reliability diagrams): decode the validation inputs, bin the
outputs by confidence, and record the accuracy in each bin. The warning threshold is the
confidence below which only ``quantile`` (1%) of the validation outputs that were right fall:
an output under it is unlike the outputs the model got right, and `translate` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import Tensor

from rnnkit.decoding import length_penalty

CALIBRATION = "calibration.json"  # written into the run at the end of training


def confidence(score: float, length: int, alpha: float) -> float:
    """exp(log p(Y | X) / |Y|) from a beam-search ``score`` = log p / lp(|Y|, alpha)."""
    return math.exp(score * length_penalty(length, alpha) / length)


@dataclass
class Translation:
    """One decoded input: the best output and what to make of it.

    text: the best output. confidence: its confidence (module docstring). low_confidence:
    below the run's threshold (False when the run has no calibration.json). problem: what the
    task's check found wrong with it ("2020-02-31 is not a valid date"), or None.
    n_best: [(text, beam score, confidence)], best first. attention: (T, S) attention of the
    best (output tokens incl. EOS x input tokens) when asked for; labels: their token labels.
    """

    text: str
    confidence: float
    low_confidence: bool = False
    problem: str | None = None
    n_best: list[tuple[str, float, float]] = field(default_factory=list)
    attention: Tensor | None = None
    labels: tuple[list[str], list[str]] = ([], [])


def calibrate(confidences: list[float], correct: list[bool], quantile=0.01, bins=10) -> dict:
    """Accuracy by confidence over equal-width bins of [0, 1], the expected calibration error
    (ECE, the bins' |accuracy - mean confidence| weighted by size), and the threshold: the
    ``quantile`` of the confidences of the correct outputs (0 when none is correct)."""
    if len(confidences) != len(correct) or not confidences:
        raise ValueError("calibrate needs one correctness flag per confidence, and some")
    table, ece, n = [], 0.0, len(confidences)
    for k in range(bins):
        lo, hi = k / bins, (k + 1) / bins
        inside = [
            (c, ok)
            for c, ok in zip(confidences, correct, strict=True)
            if lo <= c < hi or (k == bins - 1 and c == 1.0)
        ]
        if not inside:
            continue
        accuracy = sum(ok for _, ok in inside) / len(inside)
        mean = sum(c for c, _ in inside) / len(inside)
        ece += len(inside) / n * abs(accuracy - mean)
        table.append({"lo": lo, "hi": hi, "n": len(inside), "accuracy": accuracy, "mean": mean})
    right = sorted(c for c, ok in zip(confidences, correct, strict=True) if ok)
    threshold = right[int(quantile * len(right))] if right else 0.0
    below = [ok for c, ok in zip(confidences, correct, strict=True) if c < threshold]
    return {
        "threshold": threshold,
        "quantile": quantile,
        "n": n,
        "accuracy": sum(correct) / n,
        "ece": ece,
        "accuracy_below": sum(below) / len(below) if below else None,
        "share_below": len(below) / n,
        "bins": table,
    }


def calibration_figure(cal: dict, title: str = ""):
    """The reliability diagram: accuracy against mean confidence per bin (the diagonal is
    perfect calibration), bin sizes beneath, and the warning threshold."""
    from rnnkit.viz import figure

    fig = figure(9, 3.6)
    ax, counts = fig.subplots(1, 2)
    mids = [(b["lo"] + b["hi"]) / 2 for b in cal["bins"]]
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="perfectly calibrated")
    ax.plot([b["mean"] for b in cal["bins"]], [b["accuracy"] for b in cal["bins"]], "o-",
            label="validation")  # fmt: skip
    ax.axvline(cal["threshold"], color="C3", ls="--", label=f"warn below {cal['threshold']:.3f}")
    ax.set(xlabel="confidence", ylabel="accuracy (exact match)", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title(title or f"calibration on {cal['n']} validation inputs (ECE {cal['ece']:.3f})")
    ax.legend(loc="upper left", fontsize=8)
    counts.bar(mids, [b["n"] for b in cal["bins"]], width=0.09)
    counts.set(xlabel="confidence", ylabel="outputs", yscale="log", xlim=(0, 1))
    counts.set_title("outputs per bin")
    return fig
