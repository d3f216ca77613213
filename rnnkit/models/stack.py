"""One factory for recurrent stacks: every task builds its RNN / LSTM / GRU layers here, from the
same config keys, so every variant and implementation is one ``model.key=value`` away.

    StackConfig (cell, hidden, layers, bidirectional, dropout, impl, and every variant option)
        -> recurrent_stack(input_size, config) -> rnnkit.RNN | LSTM | GRU

Only the options that differ from their defaults reach the layer, so a config that sets none
builds exactly the layer (and the same initial parameters) that ``rnnkit.LSTM(i, h, ...)`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from rnnkit.config import choice, positive
from rnnkit.errors import ConfigError
from rnnkit.layers import GRU, IMPLS, LSTM, RNN

CELLS: dict[str, type[nn.Module]] = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


@dataclass
class VariantConfig:
    """The variant options of `rnnkit.LSTM` / `GRU` / `RNN` (see `rnnkit.variants`)."""

    impl: str = "auto"  # auto | native | fused | loop (see rnnkit.LSTM)
    layer_norm: bool = False  # layer-normalised gates (Ba et al. 2016)
    peephole: bool = False  # lstm only: the cell state feeds the gates (Gers 2000)
    forget_bias: float = 0.0  # lstm only: initial forget-gate bias (0: torch's default init)
    orthogonal: bool = False  # orthogonal recurrent weights at initialisation
    learn_init: bool = False  # a trained initial state
    recurrent_dropout: float = 0.0  # one dropout mask per sequence on h_{t-1} (Gal 2016)
    weight_drop: float = 0.0  # DropConnect on the recurrent weights (AWD-LSTM)
    zoneout: float = 0.0  # keep each unit's previous value with this probability (Krueger 2017)

    def validate_variants(self, cell: str, prefix: str = "model.") -> None:
        choice(prefix + "impl", self.impl, IMPLS)
        for name in ("recurrent_dropout", "weight_drop", "zoneout"):
            rate = getattr(self, name)
            if not 0 <= rate < 1:
                raise ConfigError(f"config key '{prefix}{name}' must be in [0, 1), got {rate}")
        if cell != "lstm" and (self.peephole or self.forget_bias):
            which = "peephole" if self.peephole else "forget_bias"
            raise ConfigError(
                f"config key '{prefix}{which}' needs {prefix}cell=lstm, got {cell}",
                f"drop {prefix}{which}, or use {prefix}cell=lstm",
            )

    def layer_options(self) -> dict:
        """The keyword options for the layer: only those that are on."""
        out: dict = {"impl": self.impl}
        for name in ("layer_norm", "peephole", "orthogonal", "learn_init"):
            if getattr(self, name):
                out[name] = True
        for name in ("recurrent_dropout", "weight_drop", "zoneout"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.forget_bias:
            out["forget_bias"] = self.forget_bias
        return out


@dataclass
class StackConfig(VariantConfig):
    """A recurrent stack: its cell, size, depth and direction, then the variant options."""

    cell: str = "lstm"  # rnn | lstm | gru
    hidden: int = 128  # hidden units per layer and direction
    layers: int = 1  # stacked recurrent layers
    bidirectional: bool = False  # read the sequence both ways
    dropout: float = 0.0  # dropout between layers (and, in the models, before the read-out)

    def validate_stack(self, prefix: str = "model.") -> None:
        choice(prefix + "cell", self.cell, tuple(CELLS))
        positive(self, "hidden", "layers", prefix=prefix)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"config key '{prefix}dropout' must be in [0, 1), got {self.dropout}")
        self.validate_variants(self.cell, prefix)


def recurrent_stack(
    input_size: int,
    cell: str,
    hidden: int,
    layers: int = 1,
    *,
    bidirectional: bool = False,
    dropout: float = 0.0,
    batch_first: bool = True,
    variants: VariantConfig | None = None,
) -> nn.Module:
    """``layers`` stacked ``cell`` layers of ``hidden`` units: input (b, t, input_size) ->
    output (b, t, d*hidden) with batch_first, d = 2 if bidirectional. Dropout between layers
    only applies with more than one layer (as torch.nn warns otherwise)."""
    options = (variants or VariantConfig()).layer_options()
    return CELLS[cell](
        input_size,
        hidden,
        num_layers=layers,
        bidirectional=bidirectional,
        dropout=dropout if layers > 1 else 0.0,
        batch_first=batch_first,
        **options,
    )


def stack_from(input_size: int, c: StackConfig, batch_first: bool = True) -> nn.Module:
    """`recurrent_stack` from a `StackConfig`."""
    return recurrent_stack(
        input_size,
        c.cell,
        c.hidden,
        c.layers,
        bidirectional=c.bidirectional,
        dropout=c.dropout,
        batch_first=batch_first,
        variants=c,
    )
