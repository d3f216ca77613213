import pytest
import torch

from rnnkit.decoding import sample_logits
from rnnkit.errors import ConfigError


def test_greedy_and_top1_are_argmax():
    logits = torch.randn(6, 11)
    assert torch.equal(sample_logits(logits, temperature=0), logits.argmax(-1))
    g = torch.Generator().manual_seed(3)
    assert torch.equal(sample_logits(logits, 1.0, top_k=1, generator=g), logits.argmax(-1))


def test_top_k_support_and_frequencies():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).expand(20000, 4)
    g = torch.Generator().manual_seed(0)
    ids = sample_logits(logits, temperature=1.0, top_k=2, generator=g)
    assert set(ids.tolist()) == {0, 1}
    # renormalised over the top 2: p0 = e^2 / (e^2 + e^1)
    p0 = torch.softmax(torch.tensor([2.0, 1.0]), 0)[0].item()
    assert abs((ids == 0).float().mean().item() - p0) < 0.015


def test_temperature_sharpens():
    logits = torch.tensor([[1.0, 0.0]]).expand(20000, 2)
    g = torch.Generator().manual_seed(0)
    hot = (sample_logits(logits, 2.0, generator=g) == 0).float().mean().item()
    cold = (sample_logits(logits, 0.5, generator=g) == 0).float().mean().item()
    assert abs(hot - torch.sigmoid(torch.tensor(0.5)).item()) < 0.015
    assert abs(cold - torch.sigmoid(torch.tensor(2.0)).item()) < 0.015


def test_bad_arguments():
    with pytest.raises(ConfigError, match="temperature must be >= 0"):
        sample_logits(torch.zeros(1, 3), temperature=-1)
    with pytest.raises(ConfigError, match="top_k must be >= 0"):
        sample_logits(torch.zeros(1, 3), top_k=-2)
