"""The models wing: the stack factory passes every option, and the sequence heads read the
right steps (checked against the stack's own output, sequence by sequence)."""

import pytest
import torch

import rnnkit
from rnnkit.errors import ConfigError
from rnnkit.models import (
    LanguageModelConfig,
    SequenceModel,
    SequenceModelConfig,
    StackConfig,
    stack_from,
)


def test_a_default_stack_is_the_plain_layer_with_the_same_weights():
    torch.manual_seed(0)
    ours = stack_from(8, StackConfig(cell="gru", hidden=16, layers=2))
    torch.manual_seed(0)
    plain = rnnkit.GRU(8, 16, num_layers=2, batch_first=True)
    assert all(
        torch.equal(a, b) for a, b in zip(ours.parameters(), plain.parameters(), strict=True)
    )
    assert ours.plan() == plain.plan()


def test_variant_options_reach_the_layer():
    c = StackConfig(cell="lstm", hidden=8, layer_norm=True, zoneout=0.1, forget_bias=1.0)
    layer = stack_from(4, c)
    assert layer.plan().startswith("fused") and "layer_norm=True" in repr(layer)
    assert torch.all(layer.bias_ih_l0[8:16] == 1.0)  # b_f = forget_bias
    with pytest.raises(ConfigError, match="model.peephole' needs model.cell=lstm"):
        StackConfig(cell="gru", peephole=True).validate_stack()
    with pytest.raises(ConfigError, match="bidirectional"):
        LanguageModelConfig(bidirectional=True).validate_model()


@pytest.mark.parametrize("bidirectional", [False, True])
def test_last_and_mean_heads_read_the_real_steps(bidirectional):
    torch.manual_seed(1)
    config = SequenceModelConfig(cell="lstm", hidden=6, bidirectional=bidirectional, head="last")
    model = SequenceModel(10, 3, config, vocab=True, embed=5, padding_idx=0)
    x = torch.randint(1, 10, (4, 7))
    lengths = torch.tensor([7, 3, 1, 5])
    y, _ = model(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):  # each sequence alone, unpadded
        h, _ = model.rnn(model.embed(x[b : b + 1, :n]))  # (1, n, d*6)
        last = h[0, -1] if not bidirectional else torch.cat([h[0, -1, :6], h[0, 0, 6:]])
        torch.testing.assert_close(y[b], model.head(last))
    z, _ = model(x, lengths=lengths)
    model.config.head = "mean"
    m, _ = model(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        h, _ = model.rnn(model.embed(x[b : b + 1, :n]))
        torch.testing.assert_close(m[b], model.head(h[0].mean(0)))
    assert torch.equal(z, y)
