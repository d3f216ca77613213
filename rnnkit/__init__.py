"""rnnkit: recurrent neural networks, complete and fast, on PyTorch."""

from rnnkit import extension  # the C++ loops: built on first use; its buffer cache
from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.layers import GRU, LSTM, RNN, Recurrent
from rnnkit.mingru import MinGRU, MinGRUCell, MinLSTM, MinLSTMCell

from rnnkit import models  # noqa: E402  reusable models on the layers above (rnnkit.models)

__version__ = "0.1.0"

__all__ = [
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "RNN",
    "LSTM",
    "GRU",
    "Recurrent",
    "MinGRU",
    "MinLSTM",
    "MinGRUCell",
    "MinLSTMCell",
    "extension",
    "models",
    "__version__",
]
