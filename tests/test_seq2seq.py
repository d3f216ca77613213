"""Attention, the encoder-decoder, and decoding, against hand computations and exhaustive search."""

import itertools
import math

import pytest
import torch

from rnnkit import decoding
from rnnkit.attention import Attention
from rnnkit.models.seq2seq import BOS, EOS, PAD, Seq2Seq, Seq2SeqModelConfig

ATTENTIONS = ["bahdanau", "dot", "general", "concat"]


def _memory(b=3, S=6, k=8):
    memory = torch.randn(b, S, k, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4])[:b]
    mask = torch.arange(S)[None] < lengths[:, None]
    return memory, mask


@pytest.mark.parametrize("kind", ATTENTIONS)
def test_attention_equals_its_equation_sums_to_one_and_ignores_padding(kind):
    memory, mask = _memory()
    att = Attention(kind, 8, 8, units=5).double()
    s = torch.randn(3, 8, dtype=torch.float64)
    c, a = att(s, memory, mask)
    # the score written out for each position, straight from the papers' equations
    if kind == "dot":
        e = torch.einsum("bq,bsq->bs", s, memory)
    elif kind == "general":
        e = torch.einsum("bq,qk,bsk->bs", s, att.W_a.weight, memory)
    else:  # bahdanau and concat: v^T tanh(W_q s + W_k h_j + b)
        pre = (s @ att.W_q.weight.T)[:, None] + memory @ att.W_k.weight.T + att.W_k.bias
        e = torch.tanh(pre) @ att.v.weight[0]
    e = e.masked_fill(~mask, -math.inf)
    want_a = torch.exp(e - e.max(-1, keepdim=True).values)
    want_a = want_a / want_a.sum(-1, keepdim=True)
    torch.testing.assert_close(a, want_a)
    torch.testing.assert_close(c, torch.einsum("bs,bsk->bk", want_a, memory))
    torch.testing.assert_close(a.sum(-1), torch.ones(3, dtype=torch.float64))
    assert (a[~mask] == 0).all()
    # padding content is ignored entirely
    noisy = memory.clone()
    noisy[~mask] = 1e3
    c2, a2 = att(s, noisy, mask)
    torch.testing.assert_close(c2, c)
    torch.testing.assert_close(a2, a)


def test_dot_attention_needs_equal_sizes():
    with pytest.raises(ValueError, match="dot scores need query and key of one size"):
        Attention("dot", 8, 16)
    with pytest.raises(ValueError, match="kind must be one of"):
        Attention("multiplicative", 8, 8)


def _model(attention="general", cell="lstm", vocab=(7, 6), **kw):
    torch.manual_seed(0)
    config = Seq2SeqModelConfig(
        cell=cell, embed=6, hidden=8, attention=attention, dropout=0.0, **kw
    )
    return Seq2Seq(*vocab, config).double().eval()


def _batch(b=3, S=5, T=4, vocab=7):
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([5, 2, 4])[:b]
    src = torch.randint(4, vocab, (b, S), generator=g)
    src[torch.arange(S)[None] >= lengths[:, None]] = PAD
    tgt = torch.randint(4, 6, (b, T), generator=g)
    tgt[:, 0] = BOS
    return src, lengths, tgt


@pytest.mark.parametrize("attention", ["none", *ATTENTIONS[:1], "general", "concat"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_outputs_do_not_change_with_extra_padding(attention, cell):
    bidirectional = attention != "dot"
    model = _model(attention, cell, bidirectional=bidirectional)
    src, lengths, tgt = _batch()
    padded = torch.cat([src, torch.full((3, 7), PAD)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(src, lengths, tgt), model(padded, lengths, tgt))


def test_each_example_is_independent_of_its_batch():
    model = _model("bahdanau")
    src, lengths, tgt = _batch()
    with torch.no_grad():
        whole = model(src, lengths, tgt)
        alone = model(src[1:2, :2], lengths[1:2], tgt[1:2])
    torch.testing.assert_close(whole[1:2], alone)


def test_scheduled_sampling_extremes():
    model = _model("general")
    src, lengths, tgt = _batch()
    with torch.no_grad():
        forced = model(src, lengths, tgt, teacher_forcing=1.0)
        own = model(src, lengths, tgt, teacher_forcing=0.0)
        greedy, _ = decoding.greedy(model, src, lengths, max_len=tgt.size(1))
    # teacher_forcing=0 feeds back the model's own argmax: the greedy path
    assert torch.equal(own.argmax(-1)[:, : greedy.size(1)], greedy[:, : own.size(1)])
    assert torch.equal(forced[:, 0], own[:, 0])  # the first step reads BOS either way
    assert not torch.allclose(forced, own)


def test_beam_of_one_is_greedy():
    model = _model("concat")
    src, lengths, _ = _batch()
    greedy, _ = decoding.greedy(model, src, lengths, max_len=6)
    beams = decoding.beam_search(model, src, lengths, max_len=6, beam=1)
    for i, hyps in enumerate(beams):
        seq = greedy[i].tolist()
        seq = seq[: seq.index(EOS) + 1] if EOS in seq else seq
        assert hyps[0][0] == seq


def _exhaustive(model, src, lengths, max_len, alpha):
    """Score every output sequence: ends at its first EOS, or at max_len."""
    vocab = model.out.out_features
    best = []
    for i in range(src.size(0)):
        memory, state = model.encode(src[i : i + 1], lengths[i : i + 1])
        scored = []
        for n in range(1, max_len + 1):
            for seq in itertools.product(range(vocab), repeat=n):
                if EOS in seq[:-1] or (n < max_len and seq[-1] != EOS):
                    continue
                y, st, logp = torch.tensor([BOS]), state, 0.0
                for tok in seq:
                    logits, st, _ = model.decode_step(y, st, memory)
                    logp += torch.log_softmax(logits, -1)[0, tok].item()
                    y = torch.tensor([tok])
                scored.append((list(seq), logp / decoding.length_penalty(n, alpha)))
        best.append(sorted(scored, key=lambda h: -h[1]))
    return best


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_search_equals_exhaustive_search(alpha):
    model = _model("bahdanau", vocab=(7, 5))  # 5 targets: pad, bos, eos and two tokens
    src, lengths, _ = _batch(b=2)
    with torch.no_grad():
        want = _exhaustive(model, src, lengths, max_len=4, alpha=alpha)
        got = decoding.beam_search(model, src, lengths, 4, beam=5**4, alpha=alpha, n_best=3)
    for w, g in zip(want, got, strict=True):
        assert [seq for seq, _ in g] == [seq for seq, _ in w[:3]]
        for (_, s1), (_, s2) in zip(g, w[:3], strict=True):
            assert s1 == pytest.approx(s2, abs=1e-9)


def test_beam_search_arguments():
    from rnnkit.errors import ConfigError

    model = _model()
    src, lengths, _ = _batch()
    with pytest.raises(ConfigError, match="n_best <= beam"):
        decoding.beam_search(model, src, lengths, 4, beam=2, n_best=3)


STEPS = 250


def test_a_tiny_reverse_task_learns_within_seconds():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    config = Seq2SeqModelConfig(cell="gru", embed=16, hidden=32, attention="general", dropout=0.0)
    model = Seq2Seq(8, 8, config)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    def batch(n):
        lengths = torch.randint(2, 6, (n,), generator=g)
        src = torch.randint(4, 8, (n, 5), generator=g)
        src[torch.arange(5)[None] >= lengths[:, None]] = PAD
        tgt = torch.full((n, 7), PAD)
        tgt[:, 0] = BOS
        for i, n_i in enumerate(lengths.tolist()):
            tgt[i, 1 : n_i + 1] = src[i, :n_i].flip(0)
            tgt[i, n_i + 1] = EOS
        return src, lengths, tgt

    for _ in range(STEPS):
        src, lengths, tgt = batch(32)
        logits = model(src, lengths, tgt[:, :-1])
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD
        )
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # lr 0.01 spikes without it
        opt.step()
    src, lengths, tgt = batch(200)
    out, _ = decoding.greedy(model, src, lengths, max_len=6)
    correct = 0
    for i, n_i in enumerate(lengths.tolist()):
        correct += out[i, : n_i + 1].tolist() == tgt[i, 1 : n_i + 2].tolist()
    assert correct / 200 > 0.9
