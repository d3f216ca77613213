"""The captioning model: attention over the image grid, the doubly stochastic penalty, and
decoding through the translation machinery (beam 1 = greedy, beam = exhaustive search)."""

import itertools

import pytest
import torch

from rnnkit import decoding
from rnnkit.errors import ConfigError
from rnnkit.models.captioner import Captioner, CaptionModelConfig, ConvEncoder, doubly_stochastic


def small(**kw) -> CaptionModelConfig:
    options = dict(embed=8, hidden=16, channels=8, blocks=2, dropout=0.0) | kw
    return CaptionModelConfig(**options)


def test_encoder_grid_and_coordinates():
    enc = ConvEncoder(3, 8, 2, coords=True)
    a, summary, mask = enc(torch.rand(2, 3, 32, 20))
    assert enc.grid(32, 20) == (8, 5)
    assert a.shape == (2, 40, 10) and summary.shape == (2, 10) and mask.all()
    # the last two features are the cell's (x, y): cell i = row * W' + col
    xy = a[0, :, -2:].view(8, 5, 2)
    assert torch.allclose(xy[0, :, 0], torch.linspace(-1, 1, 5))
    assert torch.allclose(xy[:, 0, 1], torch.linspace(-1, 1, 8))
    assert torch.allclose(summary, a.mean(1))


@pytest.mark.parametrize("kind", ["bahdanau", "general", "concat"])
def test_attention_sums_to_one_over_the_grid(kind):
    torch.manual_seed(0)
    model = Captioner(3, 12, small(attention=kind)).eval()
    x = torch.rand(3, 3, 16, 16)
    logits, alpha = model.unroll(x, None, torch.randint(4, 12, (3, 5)))
    assert logits.shape == (3, 5, 12) and alpha.shape == (3, 5, 16)  # 4 x 4 grid
    assert torch.allclose(alpha.sum(-1), torch.ones(3, 5), atol=1e-6)
    assert (alpha >= 0).all()


def test_gate_scales_the_context():
    torch.manual_seed(0)
    model = Captioner(3, 12, small()).eval()
    memory, state = model.encode(torch.rand(2, 3, 16, 16), None)
    query = torch.randn(2, 16)
    z, alpha = model.attend(query, memory)
    plain = torch.bmm(alpha.unsqueeze(1), memory.states).squeeze(1)
    beta = torch.sigmoid(model.f_beta(query))
    assert torch.allclose(z, beta * plain, atol=1e-6)


def test_doubly_stochastic_by_hand():
    alpha = torch.tensor([[[0.5, 0.5], [1.0, 0.0], [0.2, 0.8]]])  # (1, T=3, L=2)
    steps = torch.tensor([[True, True, False]])  # the last step is padding
    # sums over real steps: cell 0: 1.5, cell 1: 0.5 -> ((1-1.5)^2 + (1-0.5)^2) / 2 = 0.25
    assert doubly_stochastic(alpha, steps).item() == pytest.approx(0.25)


def test_beam_one_is_greedy_and_beam_finds_the_best_caption():
    torch.manual_seed(1)
    vocab = 6  # PAD BOS EOS UNK + two words
    model = Captioner(1, vocab, small()).eval()
    x = torch.rand(2, 1, 16, 16)
    lengths = torch.ones(2, dtype=torch.long)
    tokens, _ = decoding.greedy(model, x, lengths, 4)
    beam1 = decoding.beam_search(model, x, lengths, 4, beam=1)
    for row, hyps in zip(tokens.tolist(), beam1, strict=True):
        seq = row[: row.index(2) + 1] if 2 in row else row
        assert hyps[0][0] == seq
    # a beam as wide as every hypothesis is exhaustive search: compare with brute force
    with torch.no_grad():
        memory, state = model.encode(x[:1], lengths[:1])
        best, best_score = None, -float("inf")
        for length in range(1, 5):
            for words in itertools.product(range(vocab), repeat=length):
                if length < 4 and words[-1] != 2 or 2 in words[:-1]:
                    continue
                score, st, y = 0.0, state, torch.tensor([1])
                for w in words:
                    logits, st, _ = model.decode_step(y, st, memory)
                    score += torch.log_softmax(logits, -1)[0, w].item()
                    y = torch.tensor([w])
                if score > best_score:
                    best, best_score = list(words), score
    wide = decoding.beam_search(model, x[:1], lengths[:1], 4, beam=vocab**3)
    assert wide[0][0][0] == best
    assert wide[0][0][1] == pytest.approx(best_score, abs=1e-5)


def test_bad_config():
    with pytest.raises(ConfigError, match="model.attention=none"):
        small(attention="none").validate_captioner()
    with pytest.raises(ConfigError, match="dot"):
        small(attention="dot").validate_captioner()
    with pytest.raises(ConfigError, match="doubly_stochastic"):
        small(doubly_stochastic=-1).validate_captioner()
