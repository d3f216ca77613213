"""Layers: a cell unrolled over time, stacked, in one or two directions, over variable lengths.

`RNN`, `LSTM` and `GRU` keep torch.nn's whole contract and add ``impl``, ``lengths=``,
``return_states=`` and the variants of `rnnkit.variants`; `Recurrent(cell, ...)` runs any
cell (``cell(x_t, state) -> state``) through the same stacking, bidirectional and lengths
machinery. One concept per file:

    unroll.py     the time loop (`unroll`, `run_stack`) and the input/output layout
                  (`to_time_major`, `from_time_major`, lengths, state checks, masks)
    dispatch.py   the implementation decision, native | fused | loop, and for fused whether
                  its time loops run in C++ or Python, with the text ``plan()`` shows
    base.py       what RNN, LSTM and GRU share: variants, ``lengths=``, each path's forward
    rnn.py        RNN, GRU and LSTM: their constructors and per-step closures
    recurrent.py  Recurrent, any cell

Shapes: t time, b batch, i input features, h hidden features, d directions (1 or 2), l layers.
Inside the loop everything is time-major: x (t, b, i).
"""

from rnnkit.layers.dispatch import IMPLS
from rnnkit.layers.recurrent import Recurrent
from rnnkit.layers.rnn import GRU, LSTM, RNN
from rnnkit.layers.unroll import State, from_time_major, run_stack, to_time_major, unroll

__all__ = [
    "RNN",
    "LSTM",
    "GRU",
    "Recurrent",
    "IMPLS",
    "State",
    "unroll",
    "run_stack",
    "to_time_major",
    "from_time_major",
]
