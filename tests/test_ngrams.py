"""The wide half of a wide-and-deep classifier: the hashed bag of n-grams (rnnkit.models.ngrams),
checked against n-grams enumerated by hand, and joined to a pooled SequenceModel."""

from __future__ import annotations

import pytest
import torch

from rnnkit.data.batching import pad
from rnnkit.models.ngrams import PRIME, NgramBag, ngram_ids
from rnnkit.models.sequence import SequenceModel, SequenceModelConfig


def by_hand(seq: list[int], n: int, vocab: int, buckets: int) -> list[int]:
    """The rows of V of every 1..n-gram of one unpadded sentence, enumerated directly."""
    rows = list(seq)
    for k in range(2, n + 1):
        for t in range(len(seq) - k + 1):
            h = seq[t]
            for w in seq[t + 1 : t + k]:
                h = (h * PRIME + w) % buckets
            rows.append(vocab + h)
    return rows


def test_ngram_rows_of_a_hand_worked_sentence():
    ids = torch.tensor([[5, 6, 7, 0]])  # three words and one pad
    rows, real = ngram_ids(ids, torch.tensor([3]), n=2, vocab=10, buckets=100)
    h56, h67 = (5 * PRIME + 6) % 100, (6 * PRIME + 7) % 100
    assert rows[real].tolist() == [5, 6, 7, 10 + h56, 10 + h67]
    assert real.tolist() == [[True, True, True, False, True, True, False]]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_bag_is_the_sum_of_its_ngram_rows_and_ignores_padding(n):
    torch.manual_seed(0)
    vocab, buckets = 12, 37
    bag = NgramBag(vocab, 3, n, buckets).eval()
    torch.nn.init.normal_(bag.V.weight)
    seqs = [[3, 4, 5, 6, 3], [7, 8], [9], [1, 2, 3]]
    x, lengths = pad(seqs, 0)
    wide, _ = pad(seqs, 0, length=11)
    y = bag(x, lengths)
    torch.testing.assert_close(bag(wide, lengths), y)  # extra padding changes nothing
    for i, s in enumerate(seqs):
        expected = bag.V.weight[by_hand(s, n, vocab, buckets)].sum(0)
        torch.testing.assert_close(y[i], expected)


def test_unigrams_alone_cannot_see_word_order_and_bigrams_can():
    torch.manual_seed(1)
    x = torch.tensor([[1, 2, 3, 4], [4, 3, 2, 1]])
    lengths = torch.tensor([4, 4])
    for n, same in ((1, True), (2, False)):
        bag = NgramBag(5, 2, n, 1 << 10)
        torch.nn.init.normal_(bag.V.weight)
        y = bag.eval()(x, lengths)
        assert torch.allclose(y[0], y[1]) == same


def test_ngram_dropout_only_in_training_and_unbiased_on_average():
    torch.manual_seed(2)
    bag = NgramBag(6, 1, 2, 64, drop=0.5)
    torch.nn.init.normal_(bag.V.weight)
    x, lengths = torch.tensor([[1, 2, 3, 4, 5]]), torch.tensor([5])
    exact = bag.eval()(x, lengths)
    assert torch.equal(bag(x, lengths), exact)
    bag.train()
    draws = torch.stack([bag(x, lengths) for _ in range(4000)])
    assert not torch.equal(draws[0], draws[1])
    torch.testing.assert_close(draws.mean(0), exact, atol=0.15, rtol=0)


def test_a_pooled_model_adds_the_bag_to_its_read_out_and_it_trains():
    torch.manual_seed(3)
    config = SequenceModelConfig(hidden=4, head="max")
    model = SequenceModel(
        9, 2, config, vocab=True, embed=3, padding_idx=0, wide=NgramBag(9, 2, 2, 50)
    )
    torch.nn.init.normal_(model.wide.V.weight)
    x, lengths = pad([[1, 2, 3], [4, 5]], 0)
    y, _ = model.eval()(x, lengths=lengths)
    deep = model.head(model.pool(model.rnn(model.embed(x), lengths=lengths)[0], lengths)[0])
    torch.testing.assert_close(y, deep + model.wide(x, lengths))
    y.sum().backward()
    assert model.wide.V.weight.grad.abs().sum() > 0


def test_a_wide_part_needs_a_pooled_head():
    from rnnkit.errors import ConfigError

    with pytest.raises(ConfigError, match="pooled head"):
        SequenceModel(9, 2, SequenceModelConfig(hidden=4), vocab=True, embed=3, wide=NgramBag(9, 2))
