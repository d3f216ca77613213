"""rnnkit: recurrent neural networks, complete and fast, on PyTorch."""

# extension: the C++ loops, built on first use, and their buffer cache; models: reusable models
from rnnkit import extension, models
from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.layers import GRU, LSTM, RNN, Recurrent
from rnnkit.mingru import MinGRU, MinGRUCell, MinLSTM, MinLSTMCell

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
