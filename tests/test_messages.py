"""Every path rejects a wrong dtype at rnnkit's boundary with one message that says what to
convert (the fused variants and minGRU used to fail inside a matrix product)."""

import pytest
import torch

import rnnkit

F64 = torch.float64
LAYERS = {
    "LSTM fused (layer_norm)": lambda: rnnkit.LSTM(4, 8, layer_norm=True),
    "GRU fused (zoneout)": lambda: rnnkit.GRU(4, 8, zoneout=0.1),
    "RNN loop": lambda: rnnkit.RNN(4, 8, impl="loop"),
    "MinGRU": lambda: rnnkit.MinGRU(4, 8),
    "MinLSTM": lambda: rnnkit.MinLSTM(4, 8),
}
CELLS = {
    "LSTMCell": lambda: rnnkit.LSTMCell(4, 8, layer_norm=True),
    "GRUCell": lambda: rnnkit.GRUCell(4, 8),
    "MinGRUCell": lambda: rnnkit.MinGRUCell(4, 8),
}


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS)
def test_layers_name_the_dtype_to_convert(make):
    layer = make()
    name = type(layer).__name__
    with pytest.raises(ValueError, match=rf"^{name}: input dtype \(torch.float64\) does not match"):
        layer(torch.randn(5, 3, 4, dtype=F64))
    with pytest.raises(ValueError, match=rf"^{name}: input must be floating point"):
        layer(torch.ones(5, 3, 4, dtype=torch.long))
    hx = torch.zeros(1, 3, 8, dtype=F64)
    with pytest.raises(ValueError, match=r"hx dtype \(torch.float64\).*hx.to\(torch.float32\)"):
        layer(torch.randn(5, 3, 4), (hx, hx) if name == "LSTM" else hx)
    out = layer.double()(torch.randn(5, 3, 4, dtype=F64))[0]  # converted: it runs
    assert out.dtype == F64


@pytest.mark.parametrize("make", CELLS.values(), ids=CELLS)
def test_cells_name_the_dtype_to_convert(make):
    cell = make()
    with pytest.raises(ValueError, match=r"input dtype \(torch.float64\) does not match weight"):
        cell(torch.randn(3, 4, dtype=F64))
    assert cell.double()(torch.randn(3, 4, dtype=F64))[0].dtype == F64
