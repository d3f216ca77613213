"""The forecaster (rnnkit.models.forecaster): scaling inverted exactly, the Gaussian and
Student-t heads recover the parameters of AR(1) data, the quantile head's pinball loss, and
reproducible sample paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.models.forecaster import Forecaster, ForecasterConfig, pinball_loss, scale_of, unscale


def test_scaling_is_inverted_exactly():
    y = torch.tensor([[3.0, 5.0, 4.0, 8.0], [7.0, 7.0, 7.0, 7.0]], dtype=torch.float64)
    loc, scale = scale_of(y)
    assert loc[:, 0].tolist() == [5.0, 7.0] and scale[1, 0] > 0  # a constant series divides
    torch.testing.assert_close(unscale((y - loc) / scale, loc, scale), y, rtol=0, atol=1e-12)


def ar1(n: int = 20000, phi: float = 0.8, sigma: float = 1.0, level: float = 50.0):
    rng = np.random.default_rng(0)
    z = np.zeros(n)
    for t in range(1, n):
        z[t] = phi * z[t - 1] + sigma * rng.standard_normal()
    return torch.tensor(z + level, dtype=torch.float32)


@pytest.mark.parametrize("likelihood", ["gaussian", "student_t"])
def test_likelihood_heads_recover_ar1_parameters(likelihood):
    torch.manual_seed(0)
    y, phi, sigma, w = ar1(), 0.8, 1.0, 45
    model = Forecaster(ForecasterConfig(hidden=16, layers=1, dropout=0.0, likelihood=likelihood),
                       (0.1, 0.5, 0.9), horizon=4)  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    ones = torch.ones(64, dtype=torch.long)
    for _ in range(300):
        win = torch.stack([y[e - w : e] for e in torch.randint(w, len(y), (64,))])
        loss = model.loss(win, torch.zeros_like(win), ones, observed=41, start=1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        win = torch.stack([y[e - w : e] for e in torch.randint(w, len(y), (512,))])
        loc, scale = scale_of(win)
        x = model.inputs((win - loc) / scale, torch.zeros_like(win), ones.repeat(8), scale.log(), 1)
        d = model.distribution(model.rnn(x)[0][:, -1])  # the prediction of the window's last value
        mu = (d.loc * scale[:, 0] + loc[:, 0]).numpy() - 50
        sd = d.stddev * scale[:, 0]
    slope, intercept = np.polyfit(win[:, -2].numpy() - 50, mu, 1)
    assert slope == pytest.approx(phi, abs=0.07) and abs(intercept) < 0.1
    assert sd.mean().item() == pytest.approx(sigma, abs=0.1)


def test_pinball_loss_is_the_quantile_loss():
    q = torch.tensor([[1.0, 2.0, 3.0]])
    levels = torch.tensor([0.1, 0.5, 0.9])
    y = torch.tensor([2.5])
    expected = np.mean([0.1 * 1.5, 0.5 * 0.5, (0.9 - 1) * (2.5 - 3.0)])
    assert pinball_loss(q, y, levels).item() == pytest.approx(expected)


@pytest.mark.parametrize("likelihood", ["gaussian", "student_t", "quantile"])
def test_forecasts_are_reproducible_ordered_and_in_data_units(likelihood):
    torch.manual_seed(1)
    levels = (0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975)
    cfg = ForecasterConfig(hidden=8, layers=1, dropout=0.0, likelihood=likelihood, samples=50)
    model = Forecaster(cfg, levels, horizon=6).eval()
    y = 1000 + torch.randn(3, 30)
    phase = torch.rand(3, 36)
    season = torch.tensor([12, 4, 1])
    a = model.forecast(y, phase, season, 6, start=12, seed=7)
    b = model.forecast(y, phase, season, 6, start=12, seed=7)
    key = "quantiles" if likelihood == "quantile" else "samples"
    assert torch.equal(a[key], b[key])
    out = a[key]
    assert out.shape == ((3, 6, 7) if likelihood == "quantile" else (50, 3, 6))
    assert (out - 1000).abs().max() < 100  # unscaled: around the series' level
    if likelihood == "quantile":
        assert (out.diff(dim=-1) >= 0).all()  # ordered quantiles
        with pytest.raises(ValueError, match="at most 6"):
            model.forecast(y, torch.rand(3, 37), season, 7, start=12)


def test_negative_binomial_head_recovers_the_mean_and_dispersion_of_counts():
    torch.manual_seed(2)
    mean, alpha, w = 20.0, 0.1, 30
    gamma = torch.distributions.Gamma(1 / alpha, 1 / (alpha * mean)).sample((40000,))
    y = torch.poisson(gamma)  # NB(mean 20, alpha 0.1): variance 20 + 0.1 * 400 = 60
    model = Forecaster(ForecasterConfig(hidden=8, layers=1, dropout=0.0, likelihood="negbin"),
                       (0.1, 0.5, 0.9), horizon=4)  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), 2e-2)
    ones = torch.ones(64, dtype=torch.long)
    for _ in range(200):
        win = torch.stack([y[e - w : e] for e in torch.randint(w, len(y), (64,))])
        loss = model.loss(win, torch.zeros_like(win), ones, observed=26, start=1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    win = torch.stack([y[e - w : e] for e in torch.randint(w, len(y), (32,))])
    paths = model.forecast(win, torch.zeros(32, w + 6), ones[:32], 6, start=1, seed=0)["samples"]
    assert torch.equal(paths, paths.round()) and paths.min() >= 0  # counts
    assert paths.mean().item() == pytest.approx(mean, rel=0.1)
    assert paths.var().item() == pytest.approx(mean + alpha * mean**2, rel=0.25)


def test_series_embeddings_join_every_step_and_a_new_series_gets_their_mean():
    torch.manual_seed(4)
    cfg = ForecasterConfig(hidden=8, layers=1, dropout=0.0, id_embed=3)
    model = Forecaster(cfg, (0.5,), horizon=2, series=4)
    z, phase = torch.randn(3, 10), torch.rand(3, 10)
    season, scale = torch.tensor([2, 2, 2]), torch.ones(3, 1)
    x = model.inputs(z, phase, season, scale.log(), 2, ids=torch.tensor([1, 3, -1]))
    assert x.shape == (3, 8, 5 + 3)
    torch.testing.assert_close(x[0, :, 5:], model.embed.weight[1].expand(8, 3))
    torch.testing.assert_close(x[2, :, 5:], model.embed.weight.mean(0).expand(8, 3))
    with pytest.raises(ValueError, match="pass ids"):
        model.inputs(z, phase, season, scale.log(), 2)
