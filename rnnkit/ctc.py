"""Connectionist Temporal Classification (Graves et al. 2006): the loss, greedy and prefix beam
decoding, a character n-gram language model for shallow fusion, and error rates.

Shapes: b batch, t frames, C classes. Label 0 is the blank everywhere; symbols are 1..C-1.
``log_probs`` are batch-first (b, t, C) log-softmax outputs y^t_k = log p(k | x, frame t).

A path pi is one class per frame; B collapses repeats and then drops blanks
(B(1 1 0 1 2 2 0) = 1 1 2). The probability of a label sequence l sums over all its paths:

    p(l | x) = sum_{pi : B(pi) = l}  prod_t  y^t_{pi_t}          loss = -log p(l | x)

computed by the forward recursion over l' = (0 l_1 0 l_2 ... 0 l_U 0), |l'| = 2U + 1:

    alpha_1(1) = y^1_0,  alpha_1(2) = y^1_{l_1}
    alpha_t(s) = (alpha_{t-1}(s) + alpha_{t-1}(s-1) [+ alpha_{t-1}(s-2)]) y^t_{l'_s}

where the skip term s-2 is allowed only when l'_s is a symbol different from l'_{s-2}; then
p(l | x) = alpha_T(2U + 1) + alpha_T(2U). A repeated symbol needs a blank between its copies,
so l fits in no fewer than |l| + #{i : l_i = l_{i+1}} frames (``min_frames``).

Prefix beam search (Hannun et al. 2014) keeps, for each prefix l, the probability of all paths
of frames 1..t that collapse to l, split by their last class: p_b (a blank) and p_nb (a symbol).
With p(l) = p_b(l) + p_nb(l) and l + c the prefix extended by symbol c, at frame t:

    p_b(l)      += p(l) y^t_0                                   (a blank keeps l)
    p_nb(l)     += p_nb(l) y^t_{last(l)}                        (a repeat collapses into l)
    p_nb(l + c) += p(l) y^t_c          for c != last(l)
    p_nb(l + c) += p_b(l) y^t_c        for c == last(l)         (a repeat needs the blank)

all in log space, keeping the ``beam`` best prefixes per frame. A prefix is ranked by
log p(l) + w log p_lm(l) + bonus |l|; the LM term grows by w log p_lm(c | l) when c is appended
(shallow fusion), and w log p_lm(END | l) is added after the last frame. Because p_b and p_nb
sum over every path of a kept prefix, an unpruned search returns the exact log p(l | x).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.errors import ConfigError, DataError

BLANK = 0
NEG_INF = float("-inf")


def min_frames(labels: Sequence[int]) -> int:
    """The fewest frames that can emit ``labels``: one per label plus a blank between repeats."""
    repeats = sum(1 for a, b in zip(labels, labels[1:], strict=False) if a == b)
    return len(labels) + repeats


# ----------------------------------------------------------------------------------- validation
def _check_log_probs(log_probs: Tensor) -> tuple[int, int, int]:
    """Return (b, t, C) or raise: log_probs must be a floating (b, t, C) tensor with C >= 2."""
    if not isinstance(log_probs, Tensor) or log_probs.dim() != 3:
        shape = tuple(log_probs.shape) if isinstance(log_probs, Tensor) else type(log_probs)
        raise DataError(
            f"log_probs must be 3-D (batch, frames, classes), got {shape}",
            "pass the batch-first log_softmax output of the model; class 0 is the blank",
        )
    if not log_probs.is_floating_point():
        raise DataError(
            f"log_probs must be floating point, got {log_probs.dtype}",
            "apply log_softmax over the last dimension first",
        )
    b, t, c = log_probs.shape
    if c < 2:
        raise DataError(
            f"log_probs needs at least 2 classes (the blank and one symbol), got {c}",
            "the last dimension is the blank (0) plus every symbol",
        )
    return b, t, c


def _check_lengths(lengths: Tensor | Sequence[int], b: int, t: int, name: str) -> list[int]:
    """Return the lengths as ints, each in 1..t, or raise naming ``name``."""
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.numel() != b:
        raise DataError(
            f"{name} must have shape ({b},), one length per sequence, got {tuple(lengths.shape)}",
            "pass the number of valid frames of each sequence of the batch",
        )
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise DataError(
            f"{name} must be integers, got {lengths.dtype}", "use a long tensor or a list of ints"
        )
    values = [int(v) for v in lengths.tolist()]
    for i, n in enumerate(values):
        if not 1 <= n <= t:
            raise DataError(
                f"{name}[{i}] = {n} is outside 1..{t} (the number of frames of log_probs)",
                "every sequence needs at least one frame and no more than the padded length",
            )
    return values


def _check_targets(targets: Sequence[Sequence[int]], b: int, c: int) -> list[list[int]]:
    """Return the targets as lists of ints in 1..C-1, one per sequence, or raise."""
    if len(targets) != b:
        raise DataError(
            f"targets must hold one label list per sequence: expected {b}, got {len(targets)}",
            "pass a list of label lists, in the order of the batch",
        )
    out = []
    for i, labels in enumerate(targets):
        labels = [int(v) for v in labels]
        for j, v in enumerate(labels):
            if not 1 <= v < c:
                raise DataError(
                    f"targets[{i}][{j}] = {v} is outside 1..{c - 1} "
                    f"(label 0 is the blank, {c} classes)",
                    "shift the symbol ids so that 0 stays free for the blank, "
                    "or give the model one more output class",
                )
        out.append(labels)
    return out


# ----------------------------------------------------------------------------------------- loss
def ctc_loss(
    log_probs: Tensor,
    input_lengths: Tensor | Sequence[int],
    targets: Sequence[Sequence[int]],
    reduction: str = "mean",
) -> Tensor:
    """-log p(l | x) for each sequence, through ``torch.nn.functional.ctc_loss`` (blank = 0).

    ``reduction``: "mean" averages (loss / target length) over the batch (as torch does; an
    empty target counts as length 1), "sum" adds the losses, "none" returns them (b,).
    An empty target is allowed (loss = -sum_t log y^t_0); a sequence with fewer frames than its
    labels need raises a DataError instead of returning inf.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ConfigError(
            f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}",
            "'mean' divides each loss by its target length, as torch does",
        )
    b, t, c = _check_log_probs(log_probs)
    lengths = _check_lengths(input_lengths, b, t, "input_lengths")
    labels = _check_targets(targets, b, c)
    for i, (n, lab) in enumerate(zip(lengths, labels, strict=True)):
        need = min_frames(lab)
        if n < need:
            raise DataError(
                f"sample {i} has {n} frames but its {len(lab)} labels need {need} "
                f"(a blank between repeats); CTC cannot align it",
                "use shorter label sequences, less downsampling in time, or longer inputs",
            )
    device = log_probs.device
    flat = torch.tensor([v for lab in labels for v in lab], dtype=torch.long, device=device)
    return F.ctc_loss(
        log_probs.transpose(0, 1),  # (t, b, C)
        flat,  # (sum of target lengths,)
        torch.tensor(lengths, dtype=torch.long, device=device),  # (b,)
        torch.tensor([len(lab) for lab in labels], dtype=torch.long, device=device),  # (b,)
        blank=BLANK,
        reduction=reduction,
        zero_infinity=False,
    )


# ------------------------------------------------------------------------------------- decoding
def collapse(path: Sequence[int]) -> list[int]:
    """B(pi): merge repeated classes, then drop blanks."""
    out, prev = [], None
    for k in path:
        if k != prev and k != BLANK:
            out.append(int(k))
        prev = k
    return out


@torch.no_grad()
def greedy_decode(log_probs: Tensor, lengths: Tensor | Sequence[int]) -> list[list[int]]:
    """Best path decoding: the argmax class of each frame up to each length, collapsed."""
    b, t, _ = _check_log_probs(log_probs)
    lengths = _check_lengths(lengths, b, t, "lengths")
    best = log_probs.argmax(dim=-1).tolist()  # (b, t)
    return [collapse(best[i][:n]) for i, n in enumerate(lengths)]


def _logaddexp(a: float, b: float) -> float:
    """log(e^a + e^b) for Python floats, exact when either is -inf."""
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    hi, lo = (a, b) if a >= b else (b, a)
    return hi + math.log1p(math.exp(lo - hi))


class _Prefix:
    """One beam entry: log p_b, log p_nb, and the LM log probability of the prefix so far."""

    __slots__ = ("b", "nb", "lm")

    def __init__(self, lm: float):
        self.b, self.nb, self.lm = NEG_INF, NEG_INF, lm

    def total(self) -> float:
        return _logaddexp(self.b, self.nb)


@torch.no_grad()
def beam_decode(
    log_probs: Tensor,
    lengths: Tensor | Sequence[int],
    beam: int = 8,
    lm: CharNgramLM | None = None,
    lm_weight: float = 0.0,
    insertion_bonus: float = 0.0,
) -> list[list[tuple[list[int], float]]]:
    """CTC prefix beam search, one sequence at a time (see the module docstring).

    Returns, per sequence, up to ``beam`` (labels, score) pairs, best first, with
    score = log p_ctc(labels) + lm_weight * log p_lm(labels + END) + insertion_bonus * |labels|.
    ``beam_decode(...)[i][0][0]`` is the best label sequence of sequence i. Frames past each
    length are ignored.
    """
    b, t, c = _check_log_probs(log_probs)
    lengths = _check_lengths(lengths, b, t, "lengths")
    if beam < 1:
        raise ConfigError(f"beam must be >= 1, got {beam}", "1 keeps only the best prefix")
    if lm is None and lm_weight != 0:
        raise ConfigError(
            f"lm_weight = {lm_weight} but no language model was given",
            "pass lm=CharNgramLM.train(...) or set lm_weight to 0",
        )
    if lm is not None and lm.vocab_size != c:
        raise ConfigError(
            f"the language model has vocab_size {lm.vocab_size} but log_probs has {c} classes",
            "train the LM with vocab_size equal to the number of CTC classes (blank included)",
        )
    use_lm = lm is not None and lm_weight != 0
    frames = log_probs.double().tolist()  # (b, t, C) as Python floats
    return [
        _beam_one(frames[i][:n], beam, lm if use_lm else None, lm_weight, insertion_bonus)
        for i, n in enumerate(lengths)
    ]


def _beam_one(
    frames: list[list[float]],
    beam: int,
    lm: CharNgramLM | None,
    lm_weight: float,
    bonus: float,
) -> list[tuple[list[int], float]]:
    """Prefix beam search over one sequence's frames (t, C) of log probabilities."""

    def rank(prefix: tuple[int, ...], entry: _Prefix) -> float:
        return entry.total() + lm_weight * entry.lm + bonus * len(prefix)

    start = _Prefix(0.0)
    start.b = 0.0
    beams: dict[tuple[int, ...], _Prefix] = {(): start}
    for y in frames:
        nxt: dict[tuple[int, ...], _Prefix] = {}
        for prefix, old in beams.items():
            total = old.total()
            last = prefix[-1] if prefix else None
            same = nxt.setdefault(prefix, _Prefix(old.lm))
            same.b = _logaddexp(same.b, total + y[BLANK])
            for k in range(1, len(y)):
                if y[k] == NEG_INF:
                    continue
                if k == last:
                    same.nb = _logaddexp(same.nb, old.nb + y[k])
                    from_prefix = old.b
                else:
                    from_prefix = total
                if from_prefix == NEG_INF:
                    continue
                longer = prefix + (k,)
                grown = nxt.get(longer)
                if grown is None:  # the LM term of a prefix depends only on the prefix
                    step = lm.log_prob(prefix, k) if lm is not None else 0.0
                    grown = nxt[longer] = _Prefix(old.lm + step)
                grown.nb = _logaddexp(grown.nb, from_prefix + y[k])
        kept = sorted(nxt.items(), key=lambda kv: (-rank(*kv), kv[0]))[:beam]
        beams = {p: e for p, e in kept if e.total() > NEG_INF}
    final = []
    for prefix, e in beams.items():
        end = lm.log_prob(prefix, CharNgramLM.END) if lm is not None else 0.0
        final.append((list(prefix), rank(prefix, e) + lm_weight * end))
    final.sort(key=lambda h: (-h[1], h[0]))
    return final


# ------------------------------------------------------------------------------ language model
class CharNgramLM:
    """An n-gram model over label ids 1..C-1 and END, with interpolated Kneser-Ney smoothing.

    Each sequence is padded with order-1 BEGIN markers and closed by END. For an n-gram of order
    k with context h (the last k-1 symbols) and symbol w, among the V = C events (C-1 symbols
    and END):

        P_k(w | h) = (max(c_k(h, w) - D_k, 0) + D_k N1+(h .) P_{k-1}(w | h')) / sum_w c_k(h, w)

    with h' = h without its first symbol, P_0(w) = 1 / V (so unseen symbols stay possible), and
    P_k = P_{k-1} for a context never seen. At the highest order c_k is the raw count; below it,
    the continuation count N1+(. h w) (how many distinct symbols precede h w), except for
    n-grams that start with BEGIN, which nothing precedes and which keep their raw count.
    N1+(h .) is the number of distinct w seen after h, and D_k = n1 / (n1 + 2 n2) from the
    numbers of k-grams counted once and twice, clipped to [0.1, 0.9] (0.75 without singletons).
    """

    END = -1
    BEGIN = -2

    def __init__(
        self,
        vocab_size: int,
        order: int,
        counts: list[dict[tuple[int, ...], dict[int, int]]],
        discounts: list[float],
    ):
        self.vocab_size, self.order = vocab_size, order
        self.counts = counts  # per order k = 1..n: {context (k-1 ids): {symbol: count}}
        self.discounts = discounts  # per order k = 1..n
        self._totals = [
            {h: (sum(row.values()), len(row)) for h, row in table.items()} for table in counts
        ]
        self._cache: dict[tuple[tuple[int, ...], int], float] = {}

    # ------------------------------------------------------------------------------- training
    @classmethod
    def train(
        cls, sequences: Sequence[Sequence[int]], vocab_size: int, order: int = 3
    ) -> CharNgramLM:
        """Count the n-grams of ``sequences`` (lists of ids in 1..vocab_size-1)."""
        if order < 1:
            raise ConfigError(f"order must be >= 1, got {order}", "3 is a trigram model")
        if vocab_size < 2:
            raise ConfigError(
                f"vocab_size must be >= 2 (the blank and one symbol), got {vocab_size}",
                "use the number of CTC classes, blank included",
            )
        raw: list[dict[tuple[int, ...], int]] = [{} for _ in range(order)]  # per order k
        for i, seq in enumerate(sequences):
            seq = [int(v) for v in seq]
            bad = [v for v in seq if not 1 <= v < vocab_size]
            if bad:
                raise DataError(
                    f"sequence {i} holds symbol {bad[0]}, outside 1..{vocab_size - 1}",
                    "0 is the CTC blank and never a symbol; check vocab_size",
                )
            padded = [cls.BEGIN] * (order - 1) + seq + [cls.END]
            for k in range(1, order + 1):
                for j in range(len(padded) - k + 1):
                    gram = tuple(padded[j : j + k])
                    if gram[-1] != cls.BEGIN:
                        raw[k - 1][gram] = raw[k - 1].get(gram, 0) + 1
        counts: list[dict[tuple[int, ...], dict[int, int]]] = []
        discounts = []
        for k in range(1, order + 1):
            adjusted = cls._adjusted(raw, k, order)
            table: dict[tuple[int, ...], dict[int, int]] = {}
            for gram, n in adjusted.items():
                table.setdefault(gram[:-1], {})[gram[-1]] = n
            counts.append(table)
            discounts.append(cls._discount(adjusted.values()))
        return cls(vocab_size, order, counts, discounts)

    @classmethod
    def _adjusted(
        cls, raw: list[dict[tuple[int, ...], int]], k: int, order: int
    ) -> dict[tuple[int, ...], int]:
        """Kneser-Ney counts of the k-grams: raw at the top order or after BEGIN, else N1+(. g)."""
        if k == order:
            return dict(raw[k - 1])
        out = {g: n for g, n in raw[k - 1].items() if g[0] == cls.BEGIN}
        for longer in raw[k]:
            gram = longer[1:]
            if gram[0] != cls.BEGIN:
                out[gram] = out.get(gram, 0) + 1
        return out

    @staticmethod
    def _discount(values) -> float:
        values = list(values)
        n1, n2 = values.count(1), values.count(2)
        if n1 == 0:
            return 0.75
        return min(max(n1 / (n1 + 2 * n2), 0.1), 0.9)

    # -------------------------------------------------------------------------------- scoring
    def _context(self, context: Sequence[int]) -> tuple[int, ...]:
        """The last order-1 ids of ``context``, left-padded with BEGIN."""
        n = self.order - 1
        if n == 0:
            return ()
        tail = tuple(int(v) for v in context)[-n:]
        return (self.BEGIN,) * (n - len(tail)) + tail

    def _prob(self, k: int, h: tuple[int, ...], w: int) -> float:
        if k == 0:
            return 1.0 / self.vocab_size
        lower = self._prob(k - 1, h[1:], w)
        row = self.counts[k - 1].get(h)
        if not row:
            return lower
        total, types = self._totals[k - 1][h]
        d = self.discounts[k - 1]
        return (max(row.get(w, 0) - d, 0.0) + d * types * lower) / total

    def log_prob(self, context: Sequence[int], symbol: int) -> float:
        """Natural log P(symbol | the last order-1 ids of context); symbol may be END."""
        if symbol != self.END and not 1 <= symbol < self.vocab_size:
            raise DataError(
                f"symbol {symbol} is outside 1..{self.vocab_size - 1} and is not END (-1)",
                "0 is the CTC blank and never a symbol",
            )
        h = self._context(context)
        key = (h, symbol)
        if key not in self._cache:
            self._cache[key] = math.log(self._prob(self.order, h, symbol))
        return self._cache[key]

    def score(self, labels: Sequence[int]) -> float:
        """log P(labels, END): the whole sequence, including its end."""
        labels = [int(v) for v in labels]
        steps = labels + [self.END]
        return sum(self.log_prob(labels[:i], w) for i, w in enumerate(steps))

    def perplexity(self, sequences: Sequence[Sequence[int]]) -> float:
        """exp(-sum log P / number of predicted events), END included."""
        sequences = list(sequences)
        events = sum(len(s) + 1 for s in sequences)
        if events == 0:
            raise DataError("perplexity needs at least one sequence", "pass a non-empty list")
        return math.exp(-sum(self.score(s) for s in sequences) / events)

    # ---------------------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        """A JSON-safe dict: ints, floats and lists only."""
        return {
            "kind": "CharNgramLM",
            "smoothing": "interpolated Kneser-Ney",
            "vocab_size": self.vocab_size,
            "order": self.order,
            "discounts": list(self.discounts),
            "counts": [
                [
                    [list(h), w, n]
                    for h, row in sorted(table.items())
                    for w, n in sorted(row.items())
                ]
                for table in self.counts
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> CharNgramLM:
        """Rebuild the model written by ``to_dict``."""
        try:
            order, vocab_size = int(d["order"]), int(d["vocab_size"])
            discounts = [float(x) for x in d["discounts"]]
            counts: list[dict[tuple[int, ...], dict[int, int]]] = []
            for rows in d["counts"]:
                table: dict[tuple[int, ...], dict[int, int]] = {}
                for h, w, n in rows:
                    table.setdefault(tuple(int(v) for v in h), {})[int(w)] = int(n)
                counts.append(table)
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(
                f"not a CharNgramLM dict: {err!r}", "write it with CharNgramLM.to_dict()"
            ) from err
        if len(counts) != order or len(discounts) != order:
            raise DataError(
                f"a CharNgramLM of order {order} needs {order} count tables and discounts, "
                f"got {len(counts)} and {len(discounts)}",
                "write it with CharNgramLM.to_dict()",
            )
        return cls(vocab_size, order, counts, discounts)


# -------------------------------------------------------------------------------------- metrics
def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions from a to b."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict:
    """Corpus character and word error rates (jiwer), the share of exact matches, and n.

    cer = sum of character edit distances / sum of reference lengths; wer likewise over words.
    """
    import jiwer

    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise DataError(
            f"error_rates needs one hypothesis per reference: got {len(references)} references "
            f"and {len(hypotheses)} hypotheses",
            "decode every evaluation example exactly once, in order",
        )
    if not references:
        raise DataError(
            "error_rates needs at least one reference, got none",
            "check that the evaluation split is not empty",
        )
    return {
        "cer": float(jiwer.cer(references, hypotheses)),
        "wer": float(jiwer.wer(references, hypotheses)),
        "exact": sum(r == h for r, h in zip(references, hypotheses, strict=True)) / len(references),
        "n": len(references),
    }
