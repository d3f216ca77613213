"""rnnkit: recurrent neural networks, complete and fast, on PyTorch."""

# extension: the C++ loops, built on first use, and their buffer cache; models: reusable models
from rnnkit import extension, models
from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.layers import GRU, LSTM, RNN, Recurrent
from rnnkit.mingru import MinGRU, MinGRUCell, MinLSTM, MinLSTMCell

__version__ = "0.1.0"


def load(run, device: str = "cpu", weights: str = "best"):
    """A trained run for inference: ``rnnkit.load("runs/demo").generate("The ")``; see
    `rnnkit.api.Model` (its ``.module`` is the torch.nn.Module)."""
    from rnnkit.api import load as _load

    return _load(run, device, weights)


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
    "load",
    "__version__",
]
