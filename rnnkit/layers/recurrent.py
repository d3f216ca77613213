"""`Recurrent`: any cell (``cell(x_t, state) -> state``) unrolled over time, stacked,
bidirectional, over variable lengths, with the machinery of `rnnkit.layers.unroll`.

Shapes: t time, b batch, i input features, h hidden features, d directions (1 or 2), l layers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from torch import Tensor, nn

from rnnkit.layers.unroll import State, _mask, from_time_major, run_stack, to_time_major

__all__ = ["Recurrent"]


class Recurrent(nn.Module):
    """Unroll any cell over time, stacked and bidirectional, over variable lengths.

    A cell is a module with ``cell(x_t, state) -> state`` for x_t (b, i), where the state is a
    Tensor (b, h) or a tuple whose first element is the output (b, h), as with torch.nn's and
    rnnkit's cells. The initial state is ``cell.initial_state(b, device=, dtype=)`` when the
    cell has it, else zeros shaped like torch.nn's cells.

    Args:
        cell: a cell module for a single layer and direction (a fresh copy, re-initialised,
            runs backwards when bidirectional), or a factory ``make_cell(input_size)`` that
            builds one cell per layer and direction.
        num_layers: stacked layers; layer k > 0 reads the outputs of layer k - 1.
        input_size: the features of x; needed only with a factory.
        bidirectional, batch_first, dropout: as in torch.nn.LSTM.

    Inputs: input (t, b, i) or (b, t, i) with batch_first, or a PackedSequence; ``hx`` a list
    with one state per (layer, direction), or None; keyword ``lengths`` (b,).
    Outputs: output (t, b, d*h) and the list of final states.

    Example::

        layer = rnnkit.Recurrent(lambda i: torch.nn.GRUCell(i, 32), num_layers=2, input_size=8)
        output, states = layer(torch.randn(20, 4, 8))
    """

    def __init__(
        self,
        cell: nn.Module | Callable[[int], nn.Module],
        num_layers: int = 1,
        *,
        input_size: int | None = None,
        bidirectional: bool = False,
        batch_first: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.num_layers, self.bidirectional = num_layers, bidirectional
        self.batch_first, self.dropout = batch_first, float(dropout)
        self.num_directions = 2 if bidirectional else 1
        if isinstance(cell, nn.Module):
            if num_layers != 1:
                raise ValueError(
                    "Recurrent: num_layers > 1 needs a factory make_cell(input_size), because "
                    "deeper layers read 2*hidden features when bidirectional, else hidden; "
                    "got a single cell module (hint: Recurrent(lambda i: LSTMCell(i, 64), "
                    "num_layers=2, input_size=32))"
                )
            cells = [cell]
            if bidirectional:
                reverse = copy.deepcopy(cell)
                if hasattr(reverse, "reset_parameters"):
                    reverse.reset_parameters()
                cells.append(reverse)
            self.input_size = getattr(cell, "input_size", input_size)
        else:
            if input_size is None:
                raise ValueError("Recurrent: with a cell factory, pass input_size=")
            cells, size = [], input_size
            for _ in range(num_layers):
                layer = [cell(size) for _ in range(self.num_directions)]
                cells += layer
                size = self.num_directions * _output_size(layer[0])
            self.input_size = input_size
        self.cells = nn.ModuleList(cells)

    def _direction(self, k, x):
        return x, self.cells[k]

    def forward(self, input, hx: list | None = None, *, lengths=None):
        x, lengths, layout = to_time_major(
            "Recurrent", input, self.input_size, self.batch_first, lengths
        )
        b = x.size(1)
        for cell in self.cells:
            if hasattr(cell, "reset_masks"):
                cell.reset_masks()  # a new sequence: fresh dropout masks (rnnkit.variants)
        if hx is None:
            hx = [_zero_state(cell, b, x) for cell in self.cells]
        elif len(hx) != len(self.cells):
            raise ValueError(
                f"Recurrent: hx must hold one state per layer and direction. "
                f"Expected {len(self.cells)}, got {len(hx)}"
            )
        out, finals = run_stack(
            x,
            list(hx),
            _mask(lengths, x.size(0), x.device),
            self._direction,
            self.num_layers,
            self.num_directions,
            self.dropout,
            self.training,
        )
        return from_time_major(out, layout), finals


def _output_size(cell: nn.Module) -> int:
    size = getattr(cell, "output_size", None) or getattr(cell, "hidden_size", None)
    if size is None:
        raise ValueError(
            f"Recurrent: cannot tell the output size of {type(cell).__name__}; "
            "give the cell an `output_size` or `hidden_size` attribute"
        )
    return size


def _zero_state(cell: nn.Module, b: int, x: Tensor) -> State:
    if hasattr(cell, "initial_state"):
        return cell.initial_state(b, device=x.device, dtype=x.dtype)
    z = x.new_zeros(b, _output_size(cell))
    return (z, z.clone()) if isinstance(cell, nn.LSTMCell) else z
