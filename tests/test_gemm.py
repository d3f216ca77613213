"""rnnkit.gemm: the fused path's products through oneDNN equal torch's (F.linear and its
autograd) in float32, for the small and the large shapes whose weight gradient takes either
route; where oneDNN does not apply (float64) it is F.linear itself."""

import pytest
import torch
import torch.nn.functional as F

from rnnkit import extension, gemm


@pytest.mark.parametrize("n,i,g", [(40, 7, 12), (300, 64, 512), (64, 512, 600)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_and_its_gradients_equal_torchs(n, i, g, bias):
    if not gemm.available(torch.zeros(1), torch.zeros(1)):
        pytest.skip("this torch build has no oneDNN linear")
    torch.manual_seed(0)
    x = torch.randn(2, n // 2, i, requires_grad=True)  # (..., i): leading dims kept
    W = (torch.randn(g, i) / i**0.5).requires_grad_(True)
    b = torch.randn(g, requires_grad=True) if bias else None
    dy = torch.randn(2, n // 2, g)
    params = [x, W] + ([b] if bias else [])
    y = gemm.linear(x, W, b)
    got = torch.autograd.grad(y, params, dy)
    ref = F.linear(x, W, b)
    want = torch.autograd.grad(ref, params, dy)
    torch.testing.assert_close(y, ref, atol=1e-4, rtol=1e-4)
    for a, e in zip(got, want, strict=True):
        torch.testing.assert_close(a, e, atol=1e-3, rtol=1e-4)
    # the route taken: oneDNN's Function under the reshape back to (..., g)
    assert type(y.grad_fn.next_functions[0][0]).__name__ == "_LinearBackward"


def test_float64_is_f_linear():
    x, W = torch.randn(5, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    assert not gemm.available(x, W)
    torch.testing.assert_close(gemm.linear(x, W), F.linear(x, W), rtol=0, atol=0)
    dy = torch.randn(5, 4, dtype=torch.float64)
    torch.testing.assert_close(gemm.weight_grad(dy, x), dy.t() @ x, rtol=0, atol=0)


def test_mm_is_a_times_b():
    torch.manual_seed(1)
    a, b = torch.randn(300, 512), torch.randn(512, 64)
    torch.testing.assert_close(gemm.mm(a, b), a @ b, atol=1e-3, rtol=1e-4)


def test_an_empty_batch_and_a_second_derivative():
    """An empty batch is F.linear's (oneDNN refuses empty products); differentiating the
    backward again is refused, never a silent zero."""
    x = torch.randn(0, 512, requires_grad=True)
    W = torch.randn(600, 512, requires_grad=True)
    gemm.linear(x, W).sum().backward()
    assert W.grad.abs().sum() == 0 and x.grad.shape == (0, 512)
    torch.testing.assert_close(gemm.weight_grad(torch.randn(0, 600), torch.randn(0, 512)),
                               torch.zeros(600, 512))  # fmt: skip
    if gemm.available(x, W):
        x2 = torch.randn(4, 512, requires_grad=True)
        (g,) = torch.autograd.grad(gemm.linear(x2, W).square().sum(), x2, create_graph=True)
        with pytest.raises(RuntimeError, match="twice"):
            g.sum().backward()


@pytest.mark.parametrize(
    ("n", "g", "i"),
    [
        (1, 1, 1),
        (7, 5, 3),
        (200, 100, 130),
        (256, 96, 48),
        (300, 37, 50),
        (513, 96, 16),
        (1000, 100, 77),
        (600, 512, 129),
    ],
)
def test_rnnkits_weight_gradient_kernel_equals_a_float64_product(n, g, i, monkeypatch):
    """The compiled weight-gradient kernel (AVX-512) against dy^T x in float64. Up to 256 rows
    it writes tiles of dW in place (bands of 8 rows, columns in 48s, with short tails: n = 7,
    200, 256); above, tiles of dW^T added in per chunk of 256 rows (bands of 48 rows with a
    masked tail: g = 37, 100; column tiles of 8 with a short one: i = 77, 129; a partial last
    chunk). Also what gemm.weight_grad returns with the kernel and with RNNKIT_OWN_GEMM=0
    (MKL / oneDNN)."""
    if not extension.load():
        pytest.skip(f"the compiled library is not available: {extension.status()}")
    g_ = torch.Generator().manual_seed(n + g + i)
    dy, x = torch.randn(n, g, generator=g_), torch.randn(n, i, generator=g_)
    want = (dy.double().t() @ x.double()).float()
    tol = {"atol": 2e-5 * n**0.5, "rtol": 1e-5}
    for flag in ("1", "0"):
        monkeypatch.setenv("RNNKIT_OWN_GEMM", flag)
        got = gemm.weight_grad(dy, x)
        assert got.shape == (g, i) and got.is_contiguous()
        torch.testing.assert_close(got, want, **tol)
    torch.testing.assert_close(torch.ops.rnnkit.weight_grad(dy, x), want, **tol)
    # a transposed (non-contiguous) operand is read correctly too
    torch.testing.assert_close(
        torch.ops.rnnkit.weight_grad(dy.t().contiguous().t(), x), want, **tol
    )
