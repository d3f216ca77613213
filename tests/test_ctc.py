"""rnnkit.ctc against independent references: a NumPy forward algorithm, brute force over every
path, exhaustive search over every label sequence, and hand-computed edit distances."""

import itertools
import json
import math
import random

import numpy as np
import pytest
import torch

from rnnkit.ctc import (
    CharNgramLM,
    beam_decode,
    ctc_loss,
    edit_distance,
    error_rates,
    greedy_decode,
    min_frames,
)
from rnnkit.errors import ConfigError, DataError

# ----------------------------------------------------------------------- independent references


def np_logsumexp(xs) -> float:
    xs = np.asarray(xs, dtype=np.float64)
    m = xs.max()
    return float(m) if m == -np.inf else float(m + np.log(np.exp(xs - m).sum()))


def np_ctc_nll(lp: np.ndarray, labels: list[int]) -> float:
    """-log p(labels | x) by the alpha recursion over (0 l1 0 l2 ... 0), lp (t, C) float64."""
    ext = [0]
    for v in labels:
        ext += [v, 0]
    t, s = lp.shape[0], len(ext)
    alpha = np.full((t, s), -np.inf)
    alpha[0, 0] = lp[0, 0]
    if s > 1:
        alpha[0, 1] = lp[0, ext[1]]
    for i in range(1, t):
        for j in range(s):
            terms = [alpha[i - 1, j]]
            if j >= 1:
                terms.append(alpha[i - 1, j - 1])
            if j >= 2 and ext[j] != 0 and ext[j] != ext[j - 2]:
                terms.append(alpha[i - 1, j - 2])
            alpha[i, j] = np_logsumexp(terms) + lp[i, ext[j]]
    ends = [alpha[t - 1, s - 1]] + ([alpha[t - 1, s - 2]] if s > 1 else [])
    return -np_logsumexp(ends)


def squash(path) -> tuple[int, ...]:
    out = []
    for i, k in enumerate(path):
        if k != 0 and (i == 0 or path[i - 1] != k):
            out.append(k)
    return tuple(out)


def brute_force(lp: np.ndarray) -> dict[tuple[int, ...], float]:
    """log p(l | x) for every l reachable, by summing over all C^t paths, lp (t, C)."""
    t, c = lp.shape
    terms: dict[tuple[int, ...], list[float]] = {}
    for path in itertools.product(range(c), repeat=t):
        terms.setdefault(squash(path), []).append(sum(lp[i, k] for i, k in enumerate(path)))
    return {l: np_logsumexp(v) for l, v in terms.items()}


def random_log_probs(b, t, c, seed, scale=2.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(b, t, c, generator=g, dtype=dtype)).log_softmax(-1)


# ------------------------------------------------------------------------------------------ loss


def test_min_frames():
    assert min_frames([]) == 0
    assert min_frames([1, 2, 3]) == 3
    assert min_frames([1, 1]) == 3
    assert min_frames([1, 2, 2, 2, 3, 3]) == 9


CASES = [  # (t, C, labels)
    (3, 3, [1, 1]),  # a repeat: exactly min_frames
    (4, 3, []),  # empty target
    (5, 4, [1, 2, 1]),
    (5, 3, [2, 2, 2]),  # exactly min_frames with two blanks forced
    (7, 5, [1, 3, 3, 4]),
    (6, 4, [3]),
    (2, 3, [1, 2]),
]


def test_loss_matches_numpy_forward_algorithm():
    t_max = max(t for t, _, _ in CASES)
    for c in {c for _, c, _ in CASES}:
        group = [(t, lab) for t, cc, lab in CASES if cc == c]
        lp = random_log_probs(len(group), t_max, c, seed=c)
        lengths = [t for t, _ in group]
        targets = [lab for _, lab in group]
        got = ctc_loss(lp, lengths, targets, reduction="none")
        want = [np_ctc_nll(lp[i, :t].numpy(), lab) for i, (t, lab) in enumerate(group)]
        assert got.shape == (len(group),)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(ctc_loss(lp, lengths, targets, "sum").item(), sum(want))
        per_label = [w / max(len(lab), 1) for w, lab in zip(want, targets, strict=True)]
        np.testing.assert_allclose(ctc_loss(lp, lengths, targets).item(), np.mean(per_label))


def test_empty_target_is_minus_sum_log_blank():
    lp = random_log_probs(1, 6, 4, seed=5)
    loss = ctc_loss(lp, [6], [[]], reduction="none")
    assert torch.allclose(loss, -lp[0, :, 0].sum(0, keepdim=True))


def test_loss_matches_brute_force_over_paths():
    for t, c, seed in [(3, 3, 0), (4, 3, 1), (5, 3, 2), (4, 4, 3)]:
        lp = random_log_probs(1, t, c, seed=seed)
        exact = brute_force(lp[0].numpy())
        labels = sorted(exact)
        assert all(min_frames(l) <= t for l in labels)
        batch = lp.expand(len(labels), t, c)
        got = ctc_loss(batch, [t] * len(labels), [list(l) for l in labels], reduction="none")
        np.testing.assert_allclose(got.numpy(), [-exact[l] for l in labels], atol=1e-10)
        # the probabilities of every label sequence sum to one
        assert math.isclose(sum(math.exp(v) for v in exact.values()), 1.0, rel_tol=1e-12)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)

    def f(x):
        return ctc_loss(x.log_softmax(-1), [5, 4], [[1, 1], [2, 3]], reduction="sum")

    assert torch.autograd.gradcheck(f, (logits,), eps=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------- lengths


def test_padding_with_junk_changes_nothing():
    c = 4
    lengths = [5, 3, 4]
    targets = [[1, 2], [3], [2, 2]]
    lp = random_log_probs(3, 5, c, seed=11)
    for i, n in enumerate(lengths):
        lp[i, n:] = 0.0  # tidy padding
    g = torch.Generator().manual_seed(12)
    junk = lp.new_empty(3, 9, c).uniform_(-30, 30, generator=g)  # not even log probs
    padded = torch.cat([lp, junk], dim=1)
    for i, n in enumerate(lengths):
        padded[i, n:5] = junk[i, : 5 - n]
    assert torch.equal(
        ctc_loss(lp, lengths, targets, "none"), ctc_loss(padded, lengths, targets, "none")
    )
    assert greedy_decode(lp, lengths) == greedy_decode(padded, lengths)
    beams = beam_decode(lp, lengths, beam=4)
    assert beams == beam_decode(padded, lengths, beam=4)
    for i, n in enumerate(lengths):  # and each equals the sequence decoded alone, unpadded
        alone = lp[i : i + 1, :n]
        assert beam_decode(alone, [n], beam=4)[0] == beams[i]
        assert ctc_loss(alone, [n], [targets[i]], "none").item() == pytest.approx(
            ctc_loss(lp, lengths, targets, "none")[i].item(), abs=1e-12
        )


# ------------------------------------------------------------------------------------ decoding


def one_hot_frames(path, c, peak=6.0):
    x = torch.zeros(1, len(path), c, dtype=torch.float64)
    x[0, torch.arange(len(path)), torch.tensor(path)] = peak
    return x.log_softmax(-1)


def test_greedy_decode_hand_written():
    lp = one_hot_frames([1, 1, 0, 1, 2, 2, 0, 0, 3], 4)
    assert greedy_decode(lp, [9]) == [[1, 1, 2, 3]]
    assert greedy_decode(lp, [5]) == [[1, 1, 2]]
    assert greedy_decode(one_hot_frames([0, 0, 0], 3), [3]) == [[]]
    batch = torch.cat([lp, one_hot_frames([2, 0, 2, 2, 3, 3, 3, 0, 1], 4)])
    assert greedy_decode(batch, torch.tensor([9, 9])) == [[1, 1, 2, 3], [2, 2, 3, 1]]


@pytest.mark.parametrize("t,c,seed", [(3, 3, 0), (4, 3, 1), (5, 3, 2), (4, 4, 3), (5, 4, 4)])
def test_prefix_beam_search_equals_exhaustive_search(t, c, seed):
    lp = random_log_probs(1, t, c, seed=seed, scale=1.5)
    exact = brute_force(lp[0].numpy())
    full = beam_decode(lp, [t], beam=c**t)[0]
    # unpruned: every reachable label sequence, each with its exact total probability
    assert sorted(tuple(l) for l, _ in full) == sorted(exact)
    for labels, score in full:
        assert score == pytest.approx(exact[tuple(labels)], abs=1e-9)
    best = max(exact, key=exact.get)
    assert tuple(full[0][0]) == best
    assert [s for _, s in full] == sorted((s for _, s in full), reverse=True)
    # pruned: a prefix's score sums only the paths that survived, never more than the truth
    for beam in (1, 2, 3):
        hyps = beam_decode(lp, [t], beam=beam)[0]
        assert 1 <= len(hyps) <= beam
        for labels, score in hyps:
            assert score <= exact[tuple(labels)] + 1e-9


def test_beam_beats_greedy_when_paths_merge():
    # best path is the blank (0.4 + 0.4 per frame), but "1" collects more paths in total
    p = torch.tensor([[0.4, 0.35, 0.25], [0.4, 0.35, 0.25]], dtype=torch.float64)
    lp = p.log()[None]
    assert greedy_decode(lp, [2]) == [[]]
    exact = brute_force(lp[0].numpy())
    best = max(exact, key=exact.get)
    assert best == (1,)
    assert beam_decode(lp, [2], beam=9)[0][0][0] == [1]


def train_small_lm(order=3):
    seqs = [[1, 2, 3], [1, 2, 3, 1, 2], [2, 3], [3, 1, 2, 3], [1, 2]]
    return CharNgramLM.train(seqs, vocab_size=4, order=order)


@pytest.mark.parametrize(
    "seed,weight,bonus", [(0, 0.7, 0.3), (1, 1.5, -0.5), (2, 0.4, 1.0), (3, 2.0, 0.0)]
)
def test_shallow_fusion_equals_exhaustive_search(seed, weight, bonus):
    t, c = 4, 4
    lm = train_small_lm()
    lp = random_log_probs(1, t, c, seed=seed, scale=1.0)
    exact = brute_force(lp[0].numpy())
    fused = {l: v + weight * lm.score(l) + bonus * len(l) for l, v in exact.items()}
    hyps = beam_decode(lp, [t], beam=c**t, lm=lm, lm_weight=weight, insertion_bonus=bonus)[0]
    assert tuple(hyps[0][0]) == max(fused, key=fused.get)
    assert len(hyps) == len(fused)
    for labels, score in hyps:
        assert score == pytest.approx(fused[tuple(labels)], abs=1e-9)


# -------------------------------------------------------------------------------- language model


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_lm_sums_to_one_in_every_context(order):
    rng = random.Random(order)
    seqs = [[rng.randint(1, 5) for _ in range(rng.randint(0, 8))] for _ in range(40)]
    lm = CharNgramLM.train(seqs, vocab_size=7, order=order)  # symbol 6 never seen
    events = list(range(1, 7)) + [CharNgramLM.END]
    for context in [(), (1,), (2, 3), (5, 5, 5), (6,), (6, 6), (1, 6, 2), (4, 1, 2, 3, 4)]:
        total = sum(math.exp(lm.log_prob(context, w)) for w in events)
        assert total == pytest.approx(1.0, abs=1e-12)
        assert all(math.isfinite(lm.log_prob(context, w)) for w in events)


def test_lm_prefers_the_seen_continuation():
    lm = CharNgramLM.train([[1, 2, 3, 4]] * 20 + [[4, 3]], vocab_size=6, order=3)
    events = list(range(1, 6)) + [CharNgramLM.END]

    def best(context):
        return max(events, key=lambda w: lm.log_prob(context, w))

    assert best(()) == 1
    assert best((1,)) == 2
    assert best((1, 2)) == 3
    assert best((9, 9, 1, 2, 3)) == 4  # only the last order-1 ids count
    assert best((3, 4)) == CharNgramLM.END
    assert lm.score([1, 2, 3, 4]) > lm.score([1, 2, 4, 3])
    assert lm.score([1, 2, 3, 4]) == pytest.approx(
        sum(lm.log_prob([1, 2, 3, 4][:i], w) for i, w in enumerate([1, 2, 3, 4, -1]))
    )


def test_lm_round_trip_through_json():
    lm = train_small_lm()
    back = CharNgramLM.from_dict(json.loads(json.dumps(lm.to_dict())))
    assert back.order == lm.order and back.vocab_size == lm.vocab_size
    for context in [(), (1,), (2, 3), (3, 3), (1, 2, 3)]:
        for w in [1, 2, 3, CharNgramLM.END]:
            assert back.log_prob(context, w) == lm.log_prob(context, w)
    with pytest.raises(DataError, match="not a CharNgramLM dict"):
        CharNgramLM.from_dict({"order": 3})


def test_lm_perplexity():
    lm = train_small_lm()
    seen = lm.perplexity([[1, 2, 3], [2, 3]])
    unseen = lm.perplexity([[3, 3, 3, 1, 1]])
    assert 1.0 < seen < unseen < math.inf
    assert lm.perplexity([[]]) == pytest.approx(math.exp(-lm.log_prob((), CharNgramLM.END)))


def test_lm_rejects_bad_symbols():
    with pytest.raises(DataError, match="sequence 1 holds symbol 0"):
        CharNgramLM.train([[1, 2], [0, 1]], vocab_size=4)
    with pytest.raises(DataError, match="symbol 4 is outside 1..3"):
        train_small_lm().log_prob((1,), 4)


# ------------------------------------------------------------------------------------- metrics


def test_edit_distance_hand_computed():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_distance("abc", "") == 3
    assert edit_distance("flaw", "lawn") == 2
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    assert edit_distance(["the", "cat", "sat"], ["the", "cat", "sit", "on"]) == 2


def test_error_rates_hand_computed():
    r = error_rates(["the cat sat"], ["the cat sit on"])
    assert r["wer"] == pytest.approx(2 / 3)
    assert r["cer"] == pytest.approx(4 / 11)  # a -> i, then " on" inserted
    assert r["exact"] == 0.0 and r["n"] == 1
    r = error_rates(["abc", "de"], ["abc", "df"])
    assert r == pytest.approx({"cer": 1 / 5, "wer": 1 / 2, "exact": 0.5, "n": 2})


def test_jiwer_agrees_with_edit_distance():
    rng = random.Random(0)

    def sentence():
        return " ".join(
            "".join(rng.choice("abc") for _ in range(rng.randint(1, 3)))
            for _ in range(rng.randint(1, 4))
        )

    refs = [sentence() for _ in range(30)]
    hyps = [sentence() if rng.random() < 0.8 else r for r in refs]
    r = error_rates(refs, hyps)
    chars = sum(edit_distance(a, b) for a, b in zip(refs, hyps, strict=True))
    words = sum(edit_distance(a.split(), b.split()) for a, b in zip(refs, hyps, strict=True))
    assert r["cer"] == pytest.approx(chars / sum(len(a) for a in refs))
    assert r["wer"] == pytest.approx(words / sum(len(a.split()) for a in refs))
    assert r["exact"] == pytest.approx(sum(a == b for a, b in zip(refs, hyps, strict=True)) / 30)


def test_error_rates_bad_input():
    with pytest.raises(DataError, match="one hypothesis per reference"):
        error_rates(["a", "b"], ["a"])
    with pytest.raises(DataError, match="at least one reference"):
        error_rates([], [])


# ----------------------------------------------------------------------------------- bad input


def test_too_short_sequence_is_a_data_error_not_inf():
    lp = random_log_probs(4, 6, 4, seed=0)
    targets = [[1], [2, 3], [], [1, 1, 2, 2]]
    with pytest.raises(DataError, match=r"sample 3 has 5 frames but its 4 labels need 6") as err:
        ctc_loss(lp, [6, 6, 6, 5], targets)
    assert "blank between repeats" in str(err.value)
    assert err.value.hint and "downsampling" in err.value.hint
    # with one more frame it aligns, and the loss is finite
    assert torch.isfinite(ctc_loss(lp, [6, 6, 6, 6], targets, "none")).all()


def test_label_out_of_range():
    lp = random_log_probs(2, 5, 4, seed=0)
    with pytest.raises(DataError, match=r"targets\[1\]\[0\] = 4 is outside 1..3 .*blank"):
        ctc_loss(lp, [5, 5], [[1], [4, 1]])
    with pytest.raises(DataError, match=r"targets\[0\]\[1\] = 0 is outside 1..3"):
        ctc_loss(lp, [5, 5], [[1, 0], [2]])
    with pytest.raises(DataError, match="one label list per sequence"):
        ctc_loss(lp, [5, 5], [[1]])


def test_bad_shapes_and_lengths():
    lp = random_log_probs(2, 5, 4, seed=0)
    with pytest.raises(DataError, match=r"input_lengths must have shape \(2,\)"):
        ctc_loss(lp, torch.tensor([[5, 5]]), [[1], [2]])
    with pytest.raises(DataError, match=r"input_lengths must have shape \(2,\)"):
        ctc_loss(lp, [5], [[1], [2]])
    with pytest.raises(DataError, match=r"input_lengths\[1\] = 0 is outside 1..5"):
        ctc_loss(lp, [5, 0], [[1], []])
    with pytest.raises(DataError, match=r"input_lengths\[0\] = 6 is outside 1..5"):
        ctc_loss(lp, [6, 5], [[1], [2]])
    with pytest.raises(DataError, match="log_probs must be 3-D"):
        ctc_loss(lp[0], [5], [[1]])
    with pytest.raises(DataError, match=r"lengths must have shape \(2,\)"):
        greedy_decode(lp, [5, 5, 5])
    with pytest.raises(DataError, match=r"lengths\[0\] = 7 is outside"):
        beam_decode(lp, [7, 5])
    with pytest.raises(ConfigError, match="reduction must be"):
        ctc_loss(lp, [5, 5], [[1], [2]], reduction="avg")
    with pytest.raises(ConfigError, match="no language model"):
        beam_decode(lp, [5, 5], lm_weight=0.5)
    with pytest.raises(ConfigError, match="vocab_size 6"):
        beam_decode(lp, [5, 5], lm=CharNgramLM.train([[1]], vocab_size=6), lm_weight=0.5)
