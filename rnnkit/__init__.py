"""rnnkit: recurrent neural networks, complete and fast, on PyTorch."""

from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.layers import GRU, LSTM, RNN, Recurrent

__version__ = "0.1.0"

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU", "Recurrent", "__version__"]
