"""Probabilistic forecasting with a recurrent network: DeepAR's autoregressive likelihood model
(Salinas et al. 2020) and MQ-RNN's direct quantile head with forking sequences (Wen et al. 2017).

A window of one series is P + C + H values: P of lag history, C of context, H to forecast. With
loc and scale from the observed part (per-series scaling; `unscale` inverts it exactly):

    z_t = (y_t - loc) / scale                                               (b, W)
    x_s = [z_{s-1}; z_{s-m}; sin 2 pi phi_s; cos 2 pi phi_s; log scale / 10]        (b, T, 5)
          step s's inputs, s = P .. W-1; m the series' season, phi_s its phase (month / 12);
          with id_embed, [x_s; e_i], a learned vector of series i (static features); with
          covariates, also their standardised values at step s (known in advance)
    h_s = RNN(x_P .. x_s)                                                  (b, T, hidden)
    "gaussian":  z_s ~ N(mu_s, sigma_s),  mu_s = w . h_s,  sigma_s = softplus(v . h_s) + 1e-3
    "student_t": z_s ~ t(nu_s, mu_s, sigma_s),  nu_s = 2 + softplus(u . h_s)
    "negbin":    counts, with loc = 0 and scale = 1 + mean of the observed values (DeepAR's):
                 y_s ~ NB(mean m_s, shape alpha_s),  m_s = scale softplus(w . h_s),
                 alpha_s = softplus(v . h_s) / sqrt(scale);  Var y = m + alpha m^2
        loss: - mean_s log p(z_s | h_s) over every step (teacher forcing: z_{s-1} is observed)
        forecast: run the context, then draw z_s, feed it back as z_{s-1} (and later as z_{s-m}):
        S sample paths -> y = loc + scale z; the point forecast is the paths' median. With
        mc_dropout, the read-out's dropout stays on while sampling, so the paths also spread
        over the model's own uncertainty (Gal and Ghahramani 2016; Zhu and Laptev 2017)
    "quantile":  q_s = (H, Q) quantiles of z_s .. z_{s+H-1} at once from h_s (a fork at every
        context step), kept ordered by q_{., j+1} = q_{., j} + softplus(.);
        loss: the pinball loss over the forks, horizons and quantile levels
        forecast: the fork at the last context step
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.models.stack import StackConfig, stack_from

LIKELIHOODS = ("gaussian", "student_t", "negbin", "quantile")
FEATURES = 5  # z_{s-1}, z_{s-m}, sin, cos, log scale


@dataclass
class ForecasterConfig(StackConfig):
    cell: str = "lstm"
    hidden: int = 40
    layers: int = 2
    dropout: float = 0.1
    likelihood: str = "gaussian"  # gaussian | student_t | negbin (counts) | quantile
    samples: int = 200  # sample paths per forecast (gaussian, student_t)
    mc_dropout: bool = False  # keep the read-out dropout on while sampling (model uncertainty)
    id_embed: int = 0  # k > 0: a learned k-vector per series joins every step's inputs


def scale_of(y: Tensor) -> tuple[Tensor, Tensor]:
    """y (b, n) observed values -> loc, scale (b, 1): their mean and standard deviation, the
    scale kept above 1e-3 |loc| (and 1e-8) so a constant series still divides."""
    loc = y.mean(1, keepdim=True)
    spread = y.std(1, keepdim=True, unbiased=False)
    return loc, torch.maximum(spread, 1e-3 * loc.abs() + 1e-8)


def unscale(z: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    """The inverse of z = (y - loc) / scale."""
    return z * scale + loc


class Forecaster(nn.Module):
    """Windows (b, P + C + H) -> a training loss; histories -> forecasts (see the module doc)."""

    def __init__(
        self,
        config: ForecasterConfig,
        quantiles: tuple[float, ...],
        horizon: int,
        series: int = 1,
        covariates: int = 0,
    ):
        super().__init__()
        self.config, self.horizon = config, horizon
        self.register_buffer("levels", torch.tensor(quantiles, dtype=torch.float32))
        self.rnn = stack_from(FEATURES + config.id_embed + covariates, config)
        if covariates:  # known-future covariates, standardised by the training data's statistics
            self.register_buffer("cov_loc", torch.zeros(covariates))
            self.register_buffer("cov_scale", torch.ones(covariates))
        if config.id_embed:  # static features: e_i for series i, the mean of them for a new one
            self.embed = nn.Embedding(series, config.id_embed)
        self.drop = nn.Dropout(config.dropout)
        outputs = {"gaussian": 2, "student_t": 3, "negbin": 2, "quantile": horizon * len(quantiles)}
        self.out = nn.Linear(config.hidden, outputs[config.likelihood])

    # ------------------------------------------------------------------------- pieces
    def scaling(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """loc, scale (b, 1) of observed values y (b, n): their mean and standard deviation, or
        for counts (negbin) 0 and 1 + their mean, so that z = y / scale stays a count's ratio."""
        if self.config.likelihood == "negbin":
            return torch.zeros_like(y[:, :1]), 1 + y.mean(1, keepdim=True)
        return scale_of(y)

    def inputs(self, z, phase, season, log_scale, start: int, ids=None, cov=None):
        """z (b, W) scaled values, phase (b, W), season (b,) -> inputs x_s (b, W - start, 5)
        for s = start .. W-1. z_{s-m} reads z_{s-1} where s - m falls before the window. With
        id_embed, each series' vector e_i (ids (b,), -1 for an unknown series) is appended; with
        covariates, their standardised values at step s (cov (b, W, k), known in advance)."""
        w = z.shape[1]
        s = torch.arange(start, w, device=z.device)
        lag = (s[None, :] - season[:, None]).clamp(min=0)  # (b, T)
        if hasattr(self, "embed") and ids is None:
            raise ValueError("this model has series embeddings (model.id_embed): pass ids")
        if hasattr(self, "cov_loc"):
            if cov is None or cov.shape[1] < w:
                raise ValueError(f"this model reads {len(self.cov_loc)} covariates at each step")
            cov = cov[:, start:w]
        z_prev, z_lag = z[:, start - 1 : w - 1], torch.gather(z, 1, lag)
        return self.step_features(z_prev, z_lag, phase[:, start:], log_scale, ids, cov)

    def step_features(self, z_prev, z_lag, phase, log_scale, ids=None, cov=None) -> Tensor:
        """The inputs x_s (b, T, F) from their parts: z_{s-1}, z_{s-m} and phi_s (b, T),
        log scale (b, 1), [ids (b,),] [covariates at s (b, T, k), in data units]."""
        b, t = z_prev.shape
        angle = 2 * math.pi * phase
        x = torch.stack(
            [z_prev, z_lag, torch.sin(angle), torch.cos(angle), log_scale.expand(b, t) / 10],
            dim=-1,
        )
        if hasattr(self, "embed"):
            e = self.embed(ids.clamp(min=0))  # (b, k)
            e = torch.where((ids < 0)[:, None], self.embed.weight.mean(0), e)
            x = torch.cat([x, e[:, None].expand(b, t, -1)], dim=-1)
        if hasattr(self, "cov_loc"):
            x = torch.cat([x, (cov - self.cov_loc) / self.cov_scale], dim=-1)
        return x

    def distribution(self, h: Tensor, loc: Tensor | float = 0.0, scale: Tensor | float = 1.0):
        """h (..., hidden) -> the predictive distribution of y = loc + scale z (gaussian,
        student_t, negbin); with the default loc and scale, of z itself."""
        if self.config.likelihood == "negbin":
            mean, alpha = self.predictive(h, loc, scale)
            return torch.distributions.NegativeBinomial(
                1 / alpha, mean * alpha / (1 + mean * alpha)
            )
        if self.config.likelihood == "student_t":
            mu, sigma, nu = self.predictive(h, loc, scale)
            return torch.distributions.StudentT(nu, mu, sigma)
        return torch.distributions.Normal(*self.predictive(h, loc, scale))

    def predictive(self, h: Tensor, loc=0.0, scale=1.0) -> tuple[Tensor, ...]:
        """The parameters of `distribution`, each (...): mu, sigma (gaussian); mu, sigma, nu
        (student_t); the mean m and shape alpha (negbin)."""
        o = self.out(self.drop(h))
        if self.config.likelihood == "negbin":
            mean = scale * F.softplus(o[..., 0]) + 1e-6
            return mean, F.softplus(o[..., 1]) / scale**0.5 + 1e-6
        mu, sigma = loc + scale * o[..., 0], scale * (F.softplus(o[..., 1]) + 1e-3)
        if self.config.likelihood == "student_t":
            return mu, sigma, 2 + F.softplus(o[..., 2])
        return mu, sigma

    def quantile_paths(self, h: Tensor) -> Tensor:
        """h (..., hidden) -> ordered quantiles (..., H, Q) of the next H scaled values."""
        o = self.out(self.drop(h)).unflatten(-1, (self.horizon, len(self.levels)))
        steps = torch.cat([o[..., :1], F.softplus(o[..., 1:])], dim=-1)
        return steps.cumsum(-1)

    # ------------------------------------------------------------------------- training
    def loss(self, y, phase, season, observed: int, start: int, ids=None, cov=None) -> Tensor:
        """y (b, W) windows in data units, phase (b, W), season (b,); loc / scale from the first
        ``observed`` values; steps start .. W-1 are modelled. -> the mean loss."""
        loc, scale = self.scaling(y[:, :observed])
        z = (y - loc) / scale
        x = self.inputs(z, phase, season, scale.log(), start, ids, cov)
        h, _ = self.rnn(x)  # (b, T, hidden)
        if self.config.likelihood == "negbin":  # in counts: the NB needs them
            return -self.distribution(h, loc, scale).log_prob(y[:, start:]).mean()
        if self.config.likelihood != "quantile":
            return -self.distribution(h).log_prob(z[:, start:]).mean()
        forks = z.shape[1] - start - self.horizon + 1  # the steps whose H targets all exist
        q = self.quantile_paths(h[:, :forks])  # (b, forks, H, Q)
        targets = z[:, start:].unfold(1, self.horizon, 1)[:, :forks]  # (b, forks, H)
        return pinball_loss(q, targets, self.levels)

    # ------------------------------------------------------------------------- forecasting
    @torch.no_grad()
    def forecast(
        self,
        y: Tensor,
        phase: Tensor,
        season: Tensor,
        horizon: int,
        *,
        start: int,
        seed: int | None = None,
        ids: Tensor | None = None,
        cov: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """y (b, n) histories (the last n values, n > start), phase (b, n + horizon), season (b,)
        -> {"samples": (S, b, horizon)} (gaussian, student_t) or {"quantiles": (b, horizon, Q)},
        in data units. ``seed`` makes the sample paths reproducible without touching the global
        random state."""
        loc, scale = self.scaling(y)
        z = (y - loc) / scale
        b, n = z.shape
        log_scale = scale.log()
        if self.config.likelihood == "quantile":
            if horizon > self.horizon:
                raise ValueError(f"a quantile model forecasts at most {self.horizon} steps")
            zz = torch.cat([z, z.new_zeros(b, 1)], 1)  # step n's input needs z_{n-1} only
            x = self.inputs(zz, phase[:, : n + 1], season, log_scale, start, ids, cov)
            h, _ = self.rnn(x)
            q = self.quantile_paths(h[:, -1])[:, :horizon]  # (b, horizon, Q)
            return {"quantiles": unscale(q, loc[..., None], scale[..., None])}
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.drop.train(self.config.mc_dropout)  # a fresh mask per path and step
            try:
                paths = self._paths(z, phase, season, horizon, start, loc, scale, ids, cov)
                return {"samples": paths}
            finally:
                self.drop.train(self.training)

    def _paths(self, z, phase, season, horizon: int, start: int, loc, scale, ids, cov) -> Tensor:
        """S autoregressive sample paths (S, b, horizon) in data units."""
        b, n = z.shape
        log_scale = scale.log()
        s = self.config.samples
        rep = lambda t: t.repeat_interleave(s, 0) if t.dim() else t  # noqa: E731
        path = rep(torch.cat([z, z.new_zeros(b, horizon)], 1))  # (S*b, n + horizon)
        phase, season, log_scale = rep(phase), rep(season), rep(log_scale)
        ids = None if ids is None else rep(ids)
        cov = None if cov is None else rep(cov)
        h, state = self.rnn(
            self.inputs(path[:, : n + 1], phase[:, : n + 1], season, log_scale, start, ids, cov)
        )
        h = h[:, -1]
        counts = self.config.likelihood == "negbin"
        scale_s = rep(scale)[:, 0]  # (S*b,)  (loc is 0 for counts)
        drawn = []  # counts exactly as drawn
        for k in range(horizon):
            if counts:  # drawn as counts, fed back as z = y / scale
                drawn.append(self.distribution(h, 0.0, scale_s).sample())
                path[:, n + k] = drawn[-1] / scale_s
            else:
                path[:, n + k] = self.distribution(h).sample()
            if k + 1 == horizon:
                break
            step = n + k + 1
            x = self.inputs(
                path[:, : step + 1], phase[:, : step + 1], season, log_scale, step, ids, cov
            )
            h, state = self.rnn(x, state)
            h = h[:, -1]
        if counts:
            return torch.stack(drawn, 1).view(b, s, horizon).transpose(0, 1)
        z_future = path[:, n:].view(b, s, horizon).transpose(0, 1)  # (S, b, horizon)
        return unscale(z_future, loc, scale)


def pinball_loss(q: Tensor, y: Tensor, levels: Tensor) -> Tensor:
    """q (..., Q) predicted quantiles at ``levels`` (Q,), y (...) -> the mean pinball loss
    max(tau (y - q), (tau - 1)(y - q))."""
    diff = y[..., None] - q
    return torch.maximum(levels * diff, (levels - 1) * diff).mean()
