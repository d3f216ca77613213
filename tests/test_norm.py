"""rnnkit.norm.layer_norm (the fused path's whole-sequence layer norm, compiled) equals
F.layer_norm: values and every gradient in float32 and float64, with and without a gain and a
bias, and passes gradcheck in float64."""

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from rnnkit import extension
from rnnkit.norm import layer_norm


@pytest.fixture(autouse=True)
def _library():
    if not extension.load():
        pytest.skip(f"the compiled library is not available: {extension.status()}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("affine", ["both", "gain", "none"])
@pytest.mark.parametrize("shape", [(256, 16, 512), (7, 3, 37), (1, 5)])
def test_layer_norm_equals_torchs(dtype, affine, shape):
    g = torch.Generator().manual_seed(0)
    x = (3 * torch.randn(*shape, generator=g, dtype=dtype) + 1).requires_grad_(True)
    G = shape[-1]
    w = torch.randn(G, generator=g, dtype=dtype).requires_grad_(True) if affine != "none" else None
    b = torch.randn(G, generator=g, dtype=dtype).requires_grad_(True) if affine == "both" else None
    dy = torch.randn(*shape, generator=g, dtype=dtype)
    params = [t for t in (x, w, b) if t is not None]
    results = []
    for fn in (layer_norm, lambda x, w, b, eps: F.layer_norm(x, (G,), w, b, eps)):
        y = fn(x, w, b, 1e-5)
        results.append((y, *torch.autograd.grad(y, params, dy)))
    n = x.numel() // G
    tol = {"atol": 1e-5 * n**0.5, "rtol": 1e-4} if dtype == torch.float32 else {}
    for a, e in zip(*results, strict=True):
        torch.testing.assert_close(a, e, **tol)


def test_layer_norm_gradcheck():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, 9, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(9, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(9, generator=g, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda x, w, b: layer_norm(x, w, b, 1e-5), (x, w, b))


def test_a_second_derivative_is_refused():
    x = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    (dx,) = torch.autograd.grad(layer_norm(x, None, None, 1e-5).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|twice|double"):
        dx.sum().backward()


def test_strided_gain_and_bias_and_a_bias_alone():
    """A gain and a bias that are strided views, and a bias without a gain, as F.layer_norm."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(50, 24, generator=g)
    w, b = torch.randn(48, generator=g)[::2], torch.randn(72, generator=g)[::3]
    torch.testing.assert_close(layer_norm(x, w, b, 1e-5), F.layer_norm(x, (24,), w, b, 1e-5))
    torch.testing.assert_close(layer_norm(x, None, b, 1e-5), F.layer_norm(x, (24,), None, b, 1e-5))
