"""The recurrent-cell variants torch.nn lacks: their options, parameters, initialisation and masks.

Every variant is a keyword-only option on `rnnkit.RNN`, `LSTM`, `GRU` and their cells; this file
holds what the cells and the layers share. The equations live in the step functions of
`rnnkit.cells`; here are the pieces around them.

=================  =====================================================================  =====
option             what it does                                                           paper
=================  =====================================================================  =====
layer_norm         s = LN(W_ih x) g_ih + b_ih + LN(W_hh h) g_hh + b_hh; LSTM: h = o tanh(  [1]
                   LN(c) g_c + beta_c). LN over the whole gate vector (4h, 3h or h), as
                   in the paper; the existing biases are the shifts of the gate LNs.
peephole           LSTM: i, f read c_{t-1} and o reads c_t through diagonal weights       [2]
                   ``weight_ch`` = (w_ci, w_cf, w_co), each (h,).
forget_bias        LSTM: b_ih[f] = forget_bias, b_hh[f] = 0 at initialisation.            [3]
orthogonal         each gate block of W_hh initialised (semi-)orthogonal.                 [4]
learn_init         the initial state (h_0, and c_0 for LSTM) is a parameter, used when
                   ``hx`` is None: ``init_h`` (and ``init_c``).
recurrent_dropout  variational dropout on h_{t-1} where it enters W_hh: one mask per      [5]
                   sequence, drawn per forward call; the identity in eval mode.
weight_drop        DropConnect on W_hh (AWD-LSTM): one mask on the weights per forward    [6]
                   call; the identity in eval mode.
zoneout            h_t = d h_{t-1} + (1 - d) h~_t with d ~ Bernoulli(z) per unit and      [7]
                   step (LSTM: c too, ``zoneout=(z_c, z_h)`` for separate rates); in eval
                   mode d is its expectation z, as in the paper.
=================  =====================================================================  =====

[1] Ba, Kiros, Hinton 2016, "Layer Normalization", sec. 3.1 and eq. 20-22.
[2] Gers, Schmidhuber 2000, "Recurrent nets that time and count"; Gers et al. 2002.
[3] Gers, Schmidhuber, Cummins 2000; Jozefowicz, Zaremba, Sutskever 2015, sec. 2.2.
[4] Saxe, McClelland, Ganguli 2014, "Exact solutions to the nonlinear dynamics of learning".
[5] Gal, Ghahramani 2016, "A Theoretically Grounded Application of Dropout in RNNs", sec. 4.
[6] Merity, Keskar, Socher 2018, "Regularizing and Optimizing LSTM Language Models", sec. 4.1;
    Wan et al. 2013, "Regularization of Neural Networks using DropConnect".
[7] Krueger et al. 2017, "Zoneout: Regularizing RNNs by Randomly Preserving Hidden
    Activations", eq. 3-4.

Shapes: t time, b batch, h hidden features, p output features (proj_size or h).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

__all__ = ["Variants", "zoneout", "variational_mask", "zoneout_keep"]

LN_EPS = 1e-5  # the epsilon of every layer norm in rnnkit's cells

# the keyword-only options of the layers and cells, with their "off" defaults
KEYWORDS = {
    "layer_norm": False,
    "peephole": False,
    "forget_bias": None,
    "orthogonal": False,
    "learn_init": False,
    "recurrent_dropout": 0.0,
    "weight_drop": 0.0,
    "zoneout": 0.0,
}


@dataclass(frozen=True)
class Variants:
    """Validated variant options (one frozen record per cell or layer)."""

    layer_norm: bool = False
    peephole: bool = False
    forget_bias: float | None = None
    orthogonal: bool = False
    learn_init: bool = False
    recurrent_dropout: float = 0.0
    weight_drop: float = 0.0
    zoneout_c: float = 0.0  # LSTM only
    zoneout_h: float = 0.0

    @classmethod
    def from_keywords(cls, owner: str, mode: str, bias: bool, given: dict) -> Variants:
        """`build` from a layer's ``**variants`` keywords: defaults filled in, and a misspelled
        keyword is an error that lists the valid ones (no silent ``**kwargs`` sink)."""
        unknown = sorted(set(given) - set(KEYWORDS))
        if unknown:
            raise TypeError(
                f"{owner}: unexpected keyword argument {unknown[0]!r}; the variant options are "
                f"{', '.join(KEYWORDS)}"
            )
        return cls.build(owner, mode, bias, **{**KEYWORDS, **given})

    @classmethod
    def build(cls, owner: str, mode: str, bias: bool, **options) -> Variants:
        """Check the options for a cell or layer of ``mode`` ('LSTM', 'GRU', 'RNN_TANH', ...).

        ``owner`` names the class in the messages.
        """
        lstm = mode == "LSTM"
        for name in ("layer_norm", "peephole", "orthogonal", "learn_init"):
            if not isinstance(options[name], bool):
                raise TypeError(f"{owner}: {name} must be True or False, got {options[name]!r}")
        if options["peephole"] and not lstm:
            raise ValueError(
                f"{owner}: peephole=True needs an LSTM: peepholes connect the cell state c to "
                f"the gates, and {owner} has no cell state (hint: rnnkit.LSTM(..., peephole=True))"
            )
        fb = options["forget_bias"]
        if fb is not None:
            if not lstm:
                raise ValueError(
                    f"{owner}: forget_bias sets the initial bias of LSTM's forget gate; "
                    f"{owner} has no forget gate"
                )
            if not bias:
                raise ValueError(f"{owner}: forget_bias needs bias=True, got bias=False")
            if isinstance(fb, bool) or not isinstance(fb, int | float) or not math.isfinite(fb):
                raise TypeError(f"{owner}: forget_bias must be a finite number, got {fb!r}")
            fb = float(fb)
        for name in ("recurrent_dropout", "weight_drop"):
            options[name] = _rate(owner, name, options[name])
        z = options.pop("zoneout")
        if isinstance(z, tuple | list):
            if not lstm:
                raise ValueError(
                    f"{owner}: zoneout=(z_c, z_h) gives separate rates for the cell state c "
                    f"and the hidden state h of an LSTM; {owner} has no cell state, pass one "
                    f"rate (zoneout={z[-1] if len(z) else 0.1!r})"
                )
            if len(z) != 2:
                raise ValueError(f"{owner}: zoneout must be a rate or a pair (z_c, z_h), got {z!r}")
            zc, zh = (_rate(owner, "zoneout", r) for r in z)
        else:
            zh = _rate(owner, "zoneout", z)
            zc = zh if lstm else 0.0
        return cls(**{**options, "forget_bias": fb, "zoneout_c": zc, "zoneout_h": zh})

    def native_blockers(self, training: bool) -> list[str]:
        """The options on that change the function torch's fused kernel computes.

        weight_drop (different weights), learn_init (a different hx), forget_bias and
        orthogonal (initialisation only) keep the kernel usable.
        """
        out = [n for n in ("layer_norm", "peephole") if getattr(self, n)]
        if self.zoneout_c or self.zoneout_h:
            out.append("zoneout")
        if self.recurrent_dropout and training:
            out.append("recurrent_dropout")
        return out

    def on(self) -> dict:
        """The options that differ from their defaults (for ``extra_repr``)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != f.default
        }


def _rate(owner: str, name: str, p) -> float:
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p < 1.0:
        raise ValueError(f"{owner}: {name} must be a probability in [0, 1), got {p!r}")
    return float(p)


# ----------------------------------------------------------------------------- parameters


def add_parameters(
    module: nn.Module,
    v: Variants,
    sfx: str,
    gate_count: int,
    hidden: int,
    factory: dict,
) -> None:
    """Register the per-(layer, direction) parameters of the variants on ``module``.

    Names follow torch.nn's suffix style: ``ln_weight_ih{sfx}`` (gh,), ``ln_weight_hh{sfx}``
    (gh,), LSTM ``ln_weight_c{sfx}``, ``ln_bias_c{sfx}`` (h,), ``weight_ch{sfx}`` (3h,).
    """
    gh = gate_count * hidden
    if v.layer_norm:
        module.register_parameter("ln_weight_ih" + sfx, nn.Parameter(torch.ones(gh, **factory)))
        module.register_parameter("ln_weight_hh" + sfx, nn.Parameter(torch.ones(gh, **factory)))
        if gate_count == 4:
            for name, fill in (("ln_weight_c", 1.0), ("ln_bias_c", 0.0)):
                p = nn.Parameter(torch.full((hidden,), fill, **factory))
                module.register_parameter(name + sfx, p)
    if v.peephole:
        bound = 1.0 / math.sqrt(hidden)
        p = nn.Parameter(torch.empty(3 * hidden, **factory).uniform_(-bound, bound))
        module.register_parameter("weight_ch" + sfx, p)


def reset_parameters(module: nn.Module, v: Variants, sfxs: list[str], hidden: int) -> None:
    """Initialise what the variants own, after torch's U(-1/sqrt(h), 1/sqrt(h)) of everything:
    layer-norm gains 1 and shifts 0, peepholes U(-1/sqrt(h), 1/sqrt(h)) (kept from the uniform
    pass), orthogonal W_hh blocks, the forget bias, zero learned initial states."""
    with torch.no_grad():
        for sfx in sfxs:
            for name, fill in (
                ("ln_weight_ih", 1.0),
                ("ln_weight_hh", 1.0),
                ("ln_weight_c", 1.0),
                ("ln_bias_c", 0.0),
            ):
                p = getattr(module, name + sfx, None)
                if p is not None:
                    p.fill_(fill)
            w_hh = getattr(module, "weight_hh" + sfx)
            if v.orthogonal:
                for block in w_hh.split(hidden, dim=0):  # one (h, h or p) block per gate
                    nn.init.orthogonal_(block)
            if v.forget_bias is not None:
                getattr(module, "bias_ih" + sfx)[hidden : 2 * hidden] = v.forget_bias
                getattr(module, "bias_hh" + sfx)[hidden : 2 * hidden] = 0.0
        for name in ("init_h", "init_c"):
            p = getattr(module, name, None)
            if p is not None:
                p.zero_()


# ----------------------------------------------------------------------------- masks


def variational_mask(p: float, shape, like: Tensor) -> Tensor:
    """One dropout mask, already scaled: Bernoulli(1 - p) / (1 - p), shaped ``shape``."""
    return torch.bernoulli(like.new_full(shape, 1.0 - p)) / (1.0 - p)


FAST_MASK_NUMEL = 1 << 16  # masks from this size up are drawn by the compiled sampler (CPU)


def zoneout_keep(z: float, shape, like: Tensor, training: bool) -> Tensor | float:
    """Which units keep their previous value: a bool mask d ~ Bernoulli(z) of ``shape`` in
    training, the expectation ``z`` (a float) in eval mode.

    A layer's whole-sequence mask on CPU (at least FAST_MASK_NUMEL values) comes from
    rnnkit's compiled sampler (``csrc/bernoulli.cpp``: a counter-based generator seeded by
    one draw from torch's generator, about 6x faster than ``torch.rand`` here) when the
    library is available (its resolution is float32's, 2^-24, in float64 too); otherwise, and
    for smaller masks such as most cells' one-step ones, ``torch.rand(shape) < z``.
    Either way torch.manual_seed fixes the mask, and every path of a layer (loop, fused) draws
    it through this one function, so they see the same one."""
    if not training:
        return z
    numel = math.prod(shape)
    if like.device.type == "cpu" and numel >= FAST_MASK_NUMEL:
        from rnnkit import extension

        if extension.load():
            seed = int(torch.randint(-(2**63), 2**63 - 1, (), dtype=torch.int64))
            return torch.ops.rnnkit.bernoulli_mask(list(shape), float(z), seed)
    return torch.rand(shape, dtype=like.dtype, device=like.device) < z


def zoneout(new: Tensor, old: Tensor, keep: Tensor | float) -> Tensor:
    """h_t = d h_{t-1} + (1 - d) h~_t (Krueger et al. 2017, eq. 3-4).

    keep: a bool mask d (exact: where d, old; else new) or the float expectation z.
    """
    if isinstance(keep, Tensor) and keep.dtype == torch.bool:
        return torch.where(keep, old, new)
    return keep * old + (1 - keep) * new
