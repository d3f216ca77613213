"""PixelRNN models: causality of every kind and layer (by gradients, every output position),
skewing, the likelihood, sampling against the parallel forward, completion, learning, config."""

import math

import pytest
import torch
import torch.nn.functional as F

from rnnkit.errors import ConfigError
from rnnkit.models.pixelrnn import (
    KINDS,
    DiagonalBiLSTM,
    MaskedConv2d,
    PixelConfig,
    PixelRNN,
    RowLSTM,
    bits_per_dim,
    skew,
    unskew,
)

H = W = 8
P = H * W


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: intra-op threads only add overhead (and stall on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(kind: str, levels: int = 17, layers: int = 2) -> PixelRNN:
    return PixelRNN(PixelConfig(kind=kind, hidden=8, layers=layers), levels, H, W).double().eval()


def dependence(f, x: torch.Tensor) -> torch.Tensor:
    """(P, P) bool: [i, j] is True where output position i (raster order, summed over its
    channels) has a nonzero gradient with respect to input position j (summed over channels).

    f maps (b, C, H, W) -> (b, C', H, W) with the images of a batch independent, so one backward
    over P copies of x, copy i selecting output position i, gives every row at once."""
    xs = x.expand(P, *x.shape[1:]).clone().requires_grad_()
    out = f(xs)
    i = torch.arange(P)
    picked = out[i, :, i // W, i % W].sum()
    (g,) = torch.autograd.grad(picked, xs, allow_unused=True, materialize_grads=True)
    return (g != 0).reshape(P, -1, P).any(dim=1)


PAST = torch.ones(P, P, dtype=torch.bool).tril(-1)  # [i, j]: j strictly before i in raster order
PAST_AND_SELF = torch.ones(P, P, dtype=torch.bool).tril()


def assert_causal(dep: torch.Tensor, allowed: torch.Tensor) -> None:
    bad = (dep & ~allowed).nonzero()
    assert len(bad) == 0, [(i // W, i % W, j // W, j % W) for i, j in bad[:5].tolist()]


def test_masked_conv_a_and_b():
    x = torch.rand(1, 2, H, W, dtype=torch.float64)
    for mask, allowed in (("A", PAST), ("B", PAST_AND_SELF)):
        conv = MaskedConv2d(2, 3, 5, mask).double()
        dep = dependence(conv, x)
        assert_causal(dep, allowed)
        # within reach (2 rows up, 2 columns either side in rows above, 2 left in the row)
        r, c = torch.arange(P) // W, torch.arange(P) % W
        dr, dc = r[:, None] - r[None, :], c[:, None] - c[None, :]
        reach = ((dr >= 1) & (dr <= 2) & (dc.abs() <= 2)) | ((dr == 0) & (dc >= 0) & (dc <= 2))
        assert torch.equal(dep, reach & allowed)
    with pytest.raises(ValueError):
        MaskedConv2d(1, 1, 4, "A")
    with pytest.raises(ValueError):
        MaskedConv2d(1, 1, 3, "C")


def test_masked_conv_rectangular_row_mask():
    conv = MaskedConv2d(1, 1, (1, 3), "B")
    assert conv.mask.tolist() == [[1.0, 1.0, 0.0]]
    assert MaskedConv2d(1, 1, 1, "B").mask.tolist() == [[1.0]]
    assert MaskedConv2d(1, 1, 1, "A").mask.tolist() == [[0.0]]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_causal(kind):
    """Logits at (r, c) never depend on pixel (r, c) or a later one, and (but for the first
    pixel, and the context-free baseline) do depend on some earlier one."""
    model = tiny(kind)
    x = torch.rand(1, H, W, dtype=torch.float64)
    dep = dependence(lambda xs: model.logits_from_float(xs[:, 0]), x[:, None])
    assert_causal(dep, PAST)
    if kind == "independent":
        assert not dep.any()
    else:
        assert dep[1:].any(dim=1).all()
    if kind == "lstm":  # a sequence model over the raster order sees the whole past
        assert torch.equal(dep, PAST)


def test_diagonal_bilstm_model_receptive_field():
    """The Diagonal BiLSTM model sees all of the past but for one pixel: (r-1, W-1) is in no
    feature of row r-1 after the mask-A 7x7 layer (it would have to lie to its right), and
    reaches row r only at columns >= W-4, the 7x7 kernel's reach."""
    dep = dependence(
        lambda xs: tiny("diagonal_bilstm").logits_from_float(xs[:, 0]),
        torch.rand(1, 1, H, W, dtype=torch.float64),
    )
    expected = PAST.clone()
    for r in range(1, H):
        for c in range(W - 4):
            expected[r * W + c, (r - 1) * W + W - 1] = False
    assert torch.equal(dep, expected)


def test_skew_round_trip_and_layout():
    x = torch.randn(2, 3, 4, 5)
    s = skew(x)
    assert s.shape == (2, 3, 4, 5 + 4 - 1)
    for r in range(4):
        assert torch.equal(s[:, :, r, r : r + 5], x[:, :, r])
        assert not s[:, :, r, :r].any() and not s[:, :, r, r + 5 :].any()
    assert torch.equal(unskew(s, 5), x)
    square = torch.randn(1, 1, H, W)
    assert skew(square).shape[-1] == 2 * W - 1
    assert torch.equal(unskew(skew(square), W), square)


def test_diagonal_bilstm_layer_sees_exactly_the_past_and_itself():
    layer = DiagonalBiLSTM(3, 4).double()
    dep = dependence(layer, torch.rand(1, 3, H, W, dtype=torch.float64))
    assert torch.equal(dep, PAST_AND_SELF)


def test_row_lstm_layer_is_causal_with_mask_b():
    layer = RowLSTM(3, 4, kernel=3).double()
    dep = dependence(layer, torch.rand(1, 3, H, W, dtype=torch.float64))
    assert_causal(dep, PAST_AND_SELF)
    assert dep.diagonal().all()  # mask B: the input at (r, c) itself
    # the triangle above: row r-d reaches right up to column c+d (the state kernel's reach)
    i = 3 * W + 2  # (3, 2)
    assert dep[i, 2 * W + 3] and not dep[i, 2 * W + 4]  # row 2: up to c+1
    assert dep[i, 0 * W + 5] and not dep[i, 0 * W + 6]  # row 0: up to c+3


@pytest.mark.parametrize("kind", KINDS)
def test_nll_is_the_sum_of_pixel_cross_entropies(kind):
    model = tiny(kind)
    with torch.no_grad():  # the independent baseline starts uniform: make it not
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randint(0, 17, (3, H, W))
    nll = model.nll(x)
    assert nll.shape == (3,)
    logits = model(x)
    assert logits.shape == (3, 17, H, W) and logits.dtype == torch.float64
    by_pixel = sum(
        F.cross_entropy(logits[:, :, r, c], x[:, r, c], reduction="none")
        for r in range(H)
        for c in range(W)
    )
    torch.testing.assert_close(nll, by_pixel, rtol=1e-12, atol=1e-10)
    p = torch.softmax(logits, dim=1).gather(1, x[:, None]).squeeze(1)  # (b, H, W)
    by_hand = -torch.log(p.flatten(1).prod(dim=1))
    torch.testing.assert_close(nll, by_hand, rtol=1e-10, atol=1e-10)


def test_bits_per_dim():
    assert bits_per_dim(P * math.log(2), P) == pytest.approx(1.0)
    torch.testing.assert_close(
        bits_per_dim(torch.tensor([P * math.log(17)]), P), torch.tensor([math.log2(17)])
    )


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_draws_from_the_parallel_distributions(kind):
    model = tiny(kind, levels=5)
    g = torch.Generator().manual_seed(1)
    x, probs = model.sample(3, generator=g, return_probs=True)
    assert x.shape == (3, H, W) and x.dtype == torch.long
    assert x.min() >= 0 and x.max() < 5
    assert probs.shape == (3, 5, H, W)
    torch.testing.assert_close(probs, torch.softmax(model(x), dim=1), rtol=0, atol=1e-6)
    again = model.sample(3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again, x)


def test_temperature_sharpens_and_eval_mode_is_restored():
    model = PixelRNN(PixelConfig(hidden=8, layers=1, dropout=0.2), 3, H, W).double()
    assert model.training
    x, probs = model.sample(2, torch.Generator().manual_seed(0), 0.5, return_probs=True)
    assert model.training
    model.eval()
    torch.testing.assert_close(probs, torch.softmax(model(x) / 0.5, dim=1), rtol=0, atol=1e-6)
    with pytest.raises(ValueError):
        model.sample(1, temperature=0.0)


def test_completion_keeps_the_given_rows():
    model = tiny("row_lstm", levels=17)
    given = torch.randint(0, 17, (4, H, W))
    x, probs = model.sample(
        4, torch.Generator().manual_seed(0), given=given, given_rows=4, return_probs=True
    )
    assert torch.equal(x[:, :4], given[:, :4])
    assert not torch.equal(x[:, 4:], given[:, 4:])
    torch.testing.assert_close(probs, torch.softmax(model(x), dim=1), rtol=0, atol=1e-6)
    assert torch.equal(model.sample(4, given=given, given_rows=H), given)
    with pytest.raises(ValueError):
        model.sample(4, given_rows=2)
    with pytest.raises(ValueError):
        model.sample(3, given=given, given_rows=2)


def stripes(n: int = 16, seed: int = 0) -> torch.Tensor:
    """n binary images of vertical stripes: a random first row, repeated down the image."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (n, 1, W), generator=g).expand(n, H, W).clone()


def fit(model: PixelRNN, x: torch.Tensor, steps: int) -> tuple[float, float]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = model.nll(x).mean().item()
    for _ in range(steps):
        loss = model.nll(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return start, model.nll(x).mean().item()


def test_row_lstm_learns_stripes():
    """Given the pixel above, stripes cost only their first row (<= 8 ln 2 = 5.5 nats); the
    context-free baseline cannot go far below 64 ln 2 = 44 nats."""
    torch.manual_seed(0)
    x = stripes()
    model = PixelRNN(PixelConfig(kind="row_lstm", hidden=8, layers=1), 2, H, W)
    start, end = fit(model, x, 120)
    assert start > 40 and end < 8, (start, end)
    baseline = PixelRNN(PixelConfig(kind="independent"), 2, H, W)
    _, base_end = fit(baseline, x, 120)
    assert base_end > 35, base_end


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("kind", "gru"),
        ("hidden", 0),
        ("layers", -1),
        ("kernel", 0),
        ("kernel", 4),
        ("dropout", 1.0),
        ("dropout", -0.1),
    ],
)
def test_bad_config_names_the_key(key, value):
    config = PixelConfig(**{key: value})
    with pytest.raises(ConfigError, match=f"model.{key}"):
        config.validate_pixel()
    with pytest.raises(ConfigError, match=f"model.{key}"):
        PixelRNN(config, 2, H, W)


def test_bad_sizes():
    with pytest.raises(ValueError):
        PixelRNN(PixelConfig(), 1, H, W)
    with pytest.raises(ValueError):
        tiny("row_lstm")(torch.zeros(1, H, W + 1, dtype=torch.long))
