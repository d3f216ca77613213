"""The NTM module: shapes, state, gradients, and that it overfits a tiny copy batch quickly."""

import time

import pytest
import torch
import torch.nn.functional as F

from rnnkit.errors import ConfigError
from rnnkit.models.ntm import NTM


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: intra-op threads only add overhead (and stall on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_copy_batch(b=4, length=3, bits=4, seed=0):
    """Inputs: `length` random vectors, then a delimiter; targets: the vectors afterwards."""
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(0, 2, (b, length, bits), generator=g).float()
    t = 2 * length + 1
    x = torch.zeros(b, t, bits + 1)
    x[:, :length, :bits] = seq
    x[:, length, bits] = 1.0
    y = torch.zeros(b, t, bits)
    y[:, length + 1 :] = seq
    mask = torch.zeros(b, t, dtype=torch.bool)
    mask[:, length + 1 :] = True
    return x, y, mask


@pytest.mark.parametrize("controller", ["lstm", "ff"])
@pytest.mark.parametrize("memory_init", ["constant", "learned", "random"])
def test_shapes_and_state(controller, memory_init):
    ntm = NTM(
        5,
        3,
        hidden=8,
        locations=10,
        word=4,
        read_heads=2,
        write_heads=1,
        controller=controller,
        memory_init=memory_init,
    )
    x = torch.randn(2, 7, 5)
    y, state = ntm(x)
    assert y.shape == (2, 7, 3)
    _, memory, w_read, w_write, reads = state
    assert memory.shape == (2, 10, 4) and w_read.shape == (2, 2, 10)
    assert w_write.shape == (2, 1, 10) and reads.shape == (2, 2, 4)
    y.sum().backward()
    assert all(p.grad is not None for p in ntm.parameters())


def test_state_carries_over():
    ntm = NTM(3, 2, hidden=6, locations=8, word=3, memory_init="learned")
    x = torch.randn(2, 6, 3)
    whole, _ = ntm(x)
    first, state = ntm(x[:, :4])
    second, _ = ntm(x[:, 4:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)


def test_batch_elements_are_independent():
    ntm = NTM(3, 2, hidden=6, locations=8, word=3)
    x = torch.randn(3, 5, 3)
    y, _ = ntm(x)
    y1, _ = ntm(x[1:2])
    torch.testing.assert_close(y[1:2], y1)


def test_trace_matches_forward():
    ntm = NTM(3, 2, hidden=6, locations=8, word=3, read_heads=2, write_heads=2)
    x = torch.randn(2, 5, 3)
    y, _ = ntm(x)
    trace = ntm.trace(x)
    torch.testing.assert_close(trace["y"], y.detach())
    assert trace["w_read"].shape == (2, 5, 2, 8) and trace["w_write"].shape == (2, 5, 2, 8)
    torch.testing.assert_close(trace["w_write"].sum(-1), torch.ones(2, 5, 2))


def test_bad_input_and_controller():
    ntm = NTM(3, 2, hidden=6, locations=8, word=3)
    with pytest.raises(
        ConfigError, match=r"expected input of shape \(batch, time, 3\), got \(2, 5, 4\)"
    ):
        ntm(torch.randn(2, 5, 4))
    with pytest.raises(ConfigError, match="lstm, ff; got 'gru'"):
        NTM(3, 2, controller="gru")


def test_overfits_a_tiny_copy_batch_within_seconds():
    torch.manual_seed(0)
    x, y, mask = tiny_copy_batch()
    ntm = NTM(5, 4, hidden=32, locations=16, word=8)
    opt = torch.optim.Adam(ntm.parameters(), lr=1e-2)
    start = time.perf_counter()
    for _ in range(300):
        logits, _ = ntm(x)
        loss = F.binary_cross_entropy_with_logits(logits[mask], y[mask])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.01:
            break
    assert loss.item() < 0.01, loss.item()
    assert ((logits[mask] > 0).float() == y[mask]).all()
    assert time.perf_counter() - start < 60  # about 2 s on an idle core
