"""NTM addressing and memory access: hand-worked cases, and read/write against plain loops."""

import math

import pytest
import torch

from rnnkit.errors import ConfigError
from rnnkit.memory import (
    Heads,
    MemoryInit,
    address,
    content_weights,
    interpolate,
    read,
    sharpen,
    shift,
    write,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: intra-op threads only add overhead (and stall on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


S2 = 1 / math.sqrt(2)
MEM = t([1.0, 0.0], [0.0, 1.0], [1.0, 1.0])  # three locations, word size 2


def _softmax(*z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


# (case, key, beta, expected w^c): cosines of key [1, 0] against MEM are 1, 0, 1/sqrt(2)
CONTENT = [
    ("beta 0 is uniform", [1.0, 0.0], 0.0, [1 / 3, 1 / 3, 1 / 3]),
    ("beta 1", [1.0, 0.0], 1.0, _softmax(1.0, 0.0, S2)),
    ("scale of the key is ignored", [5.0, 0.0], 1.0, _softmax(1.0, 0.0, S2)),
    ("beta 50 picks the exact match", [0.0, 2.0], 50.0, _softmax(0.0, 50.0, 50 * S2)),
    ("opposite key", [-1.0, 0.0], 2.0, _softmax(-2.0, 0.0, -2 * S2)),
]


@pytest.mark.parametrize("case,key,beta,expected", CONTENT, ids=[c[0] for c in CONTENT])
def test_content_weights(case, key, beta, expected):
    w = content_weights(MEM[None], t(key)[None], torch.tensor([[beta]], dtype=torch.float64))
    assert w.shape == (1, 1, 3)
    torch.testing.assert_close(w[0, 0], torch.tensor(expected, dtype=torch.float64))


INTERPOLATE = [
    ("g 1 keeps the content weights", 1.0, [0.0, 1.0, 0.0, 0.0]),
    ("g 0 keeps the previous weights", 0.0, [1.0, 0.0, 0.0, 0.0]),
    ("g 0.25", 0.25, [0.75, 0.25, 0.0, 0.0]),
]


@pytest.mark.parametrize("case,g,expected", INTERPOLATE, ids=[c[0] for c in INTERPOLATE])
def test_interpolate(case, g, expected):
    w_c, w_prev = t([[0.0, 1.0, 0.0, 0.0]]), t([[1.0, 0.0, 0.0, 0.0]])
    out = interpolate(w_c, w_prev, torch.tensor([[g]], dtype=torch.float64))
    torch.testing.assert_close(out[0, 0], torch.tensor(expected, dtype=torch.float64))


# offsets -1, 0, +1
SHIFT = [
    ("stay", [1, 0, 0, 0], [0, 1, 0], [1, 0, 0, 0]),
    ("forward one", [1, 0, 0, 0], [0, 0, 1], [0, 1, 0, 0]),
    ("back one wraps around", [1, 0, 0, 0], [1, 0, 0], [0, 0, 0, 1]),
    ("forward from the end wraps", [0, 0, 0, 1], [0, 0, 1], [1, 0, 0, 0]),
    ("half back, half forward", [1, 0, 0, 0], [0.5, 0, 0.5], [0, 0.5, 0, 0.5]),
    ("spread weighting", [0.5, 0.5, 0, 0], [0.2, 0.5, 0.3], [0.35, 0.4, 0.15, 0.1]),
]


@pytest.mark.parametrize("case,w,s,expected", SHIFT, ids=[c[0] for c in SHIFT])
def test_shift(case, w, s, expected):
    out = shift(t([w]), t([s]))
    torch.testing.assert_close(out[0, 0], torch.tensor(expected, dtype=torch.float64))


def test_shift_range_two():
    s = torch.zeros(1, 1, 5, dtype=torch.float64)
    s[..., 4] = 1.0  # offset +2
    out = shift(t([[1.0, 0, 0, 0, 0]]), s)
    torch.testing.assert_close(out[0, 0], torch.tensor([0, 0, 1.0, 0, 0], dtype=torch.float64))


SHARPEN = [
    ("gamma 1 changes nothing", [0.5, 0.25, 0.25], 1.0, [0.5, 0.25, 0.25]),
    ("gamma 2", [0.5, 0.25, 0.25], 2.0, [2 / 3, 1 / 6, 1 / 6]),
    ("uniform stays uniform", [0.25] * 4, 7.0, [0.25] * 4),
    ("gamma 30 is nearly one-hot", [0.4, 0.3, 0.3], 30.0, [1.0, 0.0, 0.0]),
]


@pytest.mark.parametrize("case,w,gamma,expected", SHARPEN, ids=[c[0] for c in SHARPEN])
def test_sharpen(case, w, gamma, expected):
    out = sharpen(t([w]), torch.tensor([[gamma]], dtype=torch.float64))
    torch.testing.assert_close(
        out[0, 0], torch.tensor(expected, dtype=torch.float64), atol=1e-3, rtol=0
    )


def test_address_pipeline_moves_focus_forward():
    """g = 0, shift +1, sharp: the classic 'next location' iteration of the copy task."""
    memory = torch.randn(1, 5, 3, dtype=torch.float64)
    w = torch.zeros(1, 2, 5, dtype=torch.float64)
    w[0, 0, 1] = w[0, 1, 4] = 1.0
    s = t([0.0, 0.0, 1.0], [0.0, 0.0, 1.0])[None]
    out = address(
        memory,
        w,
        key=torch.randn(1, 2, 3, dtype=torch.float64),
        beta=torch.ones(1, 2, dtype=torch.float64),
        g=torch.zeros(1, 2, dtype=torch.float64),
        s=s,
        gamma=torch.ones(1, 2, dtype=torch.float64),
    )
    assert out[0, 0].argmax() == 2 and out[0, 1].argmax() == 0
    torch.testing.assert_close(out.sum(-1), torch.ones(1, 2, dtype=torch.float64))


def test_read_and_write_equal_plain_loops():
    b, h, n, m = 3, 2, 6, 4
    memory = torch.randn(b, n, m, dtype=torch.float64)
    w = torch.softmax(torch.randn(b, h, n, dtype=torch.float64), -1)
    erase = torch.rand(b, h, m, dtype=torch.float64)
    add = torch.randn(b, h, m, dtype=torch.float64)

    r_ref = torch.zeros(b, h, m, dtype=torch.float64)
    m_ref = memory.clone()
    for bi in range(b):
        for hi in range(h):
            for i in range(n):
                r_ref[bi, hi] += w[bi, hi, i] * memory[bi, i]
        for i in range(n):
            for hi in range(h):  # every erase first
                m_ref[bi, i] = m_ref[bi, i] * (1 - w[bi, hi, i] * erase[bi, hi])
        for i in range(n):
            for hi in range(h):
                m_ref[bi, i] = m_ref[bi, i] + w[bi, hi, i] * add[bi, hi]

    torch.testing.assert_close(read(memory, w), r_ref)
    torch.testing.assert_close(write(memory, w, erase, add), m_ref)


def test_full_erase_then_add_replaces_a_location():
    memory = torch.randn(1, 4, 3)
    w = torch.tensor([[[0.0, 0.0, 1.0, 0.0]]])
    new = write(memory, w, torch.ones(1, 1, 3), torch.tensor([[[1.0, -1.0, 0.5]]]))
    torch.testing.assert_close(new[0, 2], torch.tensor([1.0, -1.0, 0.5]))
    torch.testing.assert_close(new[0, [0, 1, 3]], memory[0, [0, 1, 3]])


def test_heads_shapes_and_ranges():
    heads = Heads(controller_size=7, word=5, read_heads=2, write_heads=3, shift_range=1)
    reads, writes = heads.split(torch.randn(4, 7))
    assert reads["key"].shape == (4, 2, 5) and writes["key"].shape == (4, 3, 5)
    assert writes["s"].shape == (4, 3, 3) and writes["erase"].shape == (4, 3, 5)
    assert (reads["gamma"] >= 1).all() and (writes["beta"] >= 0).all()
    assert ((writes["erase"] >= 0) & (writes["erase"] <= 1)).all()
    init = MemoryInit(8, 5)
    memory = init(4, "cpu")
    r, memory, w_r, w_w = heads(
        torch.randn(4, 7), memory, init.weighting(4, 2, "cpu"), init.weighting(4, 3, "cpu")
    )
    assert r.shape == (4, 2, 5) and memory.shape == (4, 8, 5)
    torch.testing.assert_close(w_r.sum(-1), torch.ones(4, 2))
    torch.testing.assert_close(w_w.sum(-1), torch.ones(4, 3))


@pytest.mark.parametrize("kind", ["constant", "learned", "random"])
def test_memory_init(kind):
    init = MemoryInit(6, 3, kind)
    m = init(2, "cpu")
    assert m.shape == (2, 6, 3)
    assert (kind == "learned") == bool(list(init.parameters()))
    if kind == "constant":
        assert torch.all(m == 1e-6)


def test_memory_init_rejects_unknown_kind():
    with pytest.raises(ConfigError, match="constant, learned, random; got 'zeros'"):
        MemoryInit(4, 4, "zeros")
