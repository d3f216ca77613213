"""Neural Turing Machine memory and heads (Graves, Wayne and Danihelka 2014, section 3).

Shape legend: b batch, h heads, n memory locations, m word size, k = 2 r + 1 shift offsets.

A head turns a controller output into a weighting w_t over the n locations (section 3.3):

    w^c_t(i) = exp(beta_t K(k_t, M_t(i))) / sum_j exp(beta_t K(k_t, M_t(j)))    content  (5)
    K(u, v)  = u . v / (|u| |v|)                                                cosine   (6)
    w^g_t    = g_t w^c_t + (1 - g_t) w_{t-1}                                    interpolate (7)
    w~_t(i)  = sum_j w^g_t(j) s_t(i - j)     (indices modulo n)                 shift    (8)
    w_t(i)   = w~_t(i)^gamma_t / sum_j w~_t(j)^gamma_t                          sharpen  (9)

and reads or writes memory with it (sections 3.1, 3.2):

    r_t = sum_i w_t(i) M_t(i)                                                   read     (2)
    M~_t(i) = M_{t-1}(i) [1 - w_t(i) e_t]                                       erase    (3)
    M_t(i)  = M~_t(i) + w_t(i) a_t                                              add      (4)

Every function here is pure and batched over b and h; `Heads` holds the one linear map from the
controller output to every head's parameters, and `MemoryInit` the memory's first value.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.errors import ConfigError

EPS = 1e-8  # keeps the cosine and the sharpening finite when a vector or a weight is zero


# ----------------------------------------------------------------------------- addressing
def cosine_similarity(key: Tensor, memory: Tensor) -> Tensor:
    """K(k, M(i)) = k . M(i) / (|k| |M(i)|): key (b, h, m), memory (b, n, m) -> (b, h, n)."""
    dot = key @ memory.transpose(1, 2)  # (b, h, m) @ (b, m, n) -> (b, h, n)
    norms = key.norm(dim=-1, keepdim=True) * memory.norm(dim=-1).unsqueeze(1)  # (b, h, n)
    return dot / (norms + EPS)


def content_weights(memory: Tensor, key: Tensor, beta: Tensor) -> Tensor:
    """w^c(i) = softmax_i(beta K(k, M(i))): memory (b, n, m), key (b, h, m), beta (b, h)."""
    return torch.softmax(beta.unsqueeze(-1) * cosine_similarity(key, memory), dim=-1)


def interpolate(w_c: Tensor, w_prev: Tensor, g: Tensor) -> Tensor:
    """w^g = g w^c + (1 - g) w_prev: weightings (b, h, n), gate g (b, h) in [0, 1]."""
    g = g.unsqueeze(-1)  # (b, h, 1)
    return g * w_c + (1 - g) * w_prev


def shift(w_g: Tensor, s: Tensor) -> Tensor:
    """w~(i) = sum_j w^g(j) s(i - j), indices modulo n: a circular convolution.

    w_g (b, h, n); s (b, h, k), a distribution over the offsets -r..r (k = 2 r + 1), so s[..., r]
    is "stay", s[..., r + 1] "move one location forward". Written as a sum of rolled copies:
    w~ = sum_o s(o) roll(w^g, o).
    """
    k = s.size(-1)
    r = k // 2
    rolled = torch.stack([torch.roll(w_g, o, dims=-1) for o in range(-r, r + 1)], dim=-1)
    return (rolled * s.unsqueeze(-2)).sum(-1)  # (b, h, n, k) * (b, h, 1, k) -> (b, h, n)


def sharpen(w_s: Tensor, gamma: Tensor) -> Tensor:
    """w(i) = w~(i)^gamma / sum_j w~(j)^gamma: w_s (b, h, n), gamma (b, h) >= 1."""
    w = (w_s + EPS) ** gamma.unsqueeze(-1)
    return w / w.sum(-1, keepdim=True)


def address(
    memory: Tensor,
    w_prev: Tensor,
    key: Tensor,
    beta: Tensor,
    g: Tensor,
    s: Tensor,
    gamma: Tensor,
) -> Tensor:
    """The whole pipeline (5)-(9): content, interpolate, shift, sharpen -> w (b, h, n)."""
    w_c = content_weights(memory, key, beta)
    return sharpen(shift(interpolate(w_c, w_prev, g), s), gamma)


# ----------------------------------------------------------------------------- read / write
def read(memory: Tensor, w: Tensor) -> Tensor:
    """r = sum_i w(i) M(i): memory (b, n, m), w (b, h, n) -> one vector per head (b, h, m)."""
    return w @ memory


def write(memory: Tensor, w: Tensor, erase: Tensor, add: Tensor) -> Tensor:
    """M = M_prev prod_h [1 - w_h e_h^T] + sum_h w_h a_h^T.

    memory (b, n, m); w (b, h, n); erase e (b, h, m) in [0, 1]; add a (b, h, m). With several
    write heads every erase is applied before any add (the paper: erasures commute).
    """
    keep = 1 - w.unsqueeze(-1) * erase.unsqueeze(-2)  # (b, h, n, 1) * (b, h, 1, m) -> (b, h, n, m)
    return memory * keep.prod(dim=1) + w.transpose(1, 2) @ add  # (b, n, h) @ (b, h, m)


# ----------------------------------------------------------------------------- heads
class Heads(nn.Module):
    """Read and write heads: one linear map from the controller output to their parameters.

    Per head: key k (m, as is), key strength beta = softplus(.) >= 0, gate g = sigmoid(.),
    shift s = softmax over 2 r + 1 offsets, sharpening gamma = 1 + softplus(.) >= 1; write heads
    also emit an erase vector e = sigmoid(.) and an add vector a = tanh(.). With ``clip`` > 0
    every pre-activation is first clamped to [-clip, clip].

    ``forward(h, memory, w_read, w_write) -> (reads (b, R, m), memory, w_read, w_write)``: the
    write heads address M_{t-1} and write; the read heads then address and read the new M_t.
    """

    def __init__(
        self, controller_size: int, word: int, read_heads=1, write_heads=1, shift_range=1, clip=0.0
    ):
        super().__init__()
        if read_heads < 1 or write_heads < 0 or shift_range < 0 or clip < 0:
            raise ConfigError(
                "Heads: expected read_heads >= 1, write_heads >= 0, shift_range >= 0, clip >= 0, "
                f"got {read_heads}, {write_heads}, {shift_range}, {clip}"
            )
        self.clip = clip  # > 0: the projection's outputs are clamped to [-clip, clip]
        self.word, self.read_heads, self.write_heads = word, read_heads, write_heads
        self.shifts = 2 * shift_range + 1
        self.address_size = word + 3 + self.shifts  # k, beta, g, s, gamma
        heads = read_heads + write_heads
        out = heads * self.address_size + write_heads * 2 * word  # + e, a per write head
        self.proj = nn.Linear(controller_size, out)

    def split(self, h: Tensor) -> tuple[dict, dict]:
        """Controller output h (b, c) -> addressing parameters of the read and the write heads,
        and the write heads' erase and add vectors, each batched over heads."""
        b, m, nh = h.size(0), self.word, self.read_heads + self.write_heads
        out = self.proj(h)  # (b, heads * (m + 3 + k) + W * 2m)
        if self.clip:
            out = out.clamp(-self.clip, self.clip)
        addr = out[:, : nh * self.address_size].view(b, nh, self.address_size)
        k, beta, g, s, gamma = addr.split([m, 1, 1, self.shifts, 1], dim=-1)
        params = {
            "key": k,
            "beta": F.softplus(beta.squeeze(-1)),
            "g": torch.sigmoid(g.squeeze(-1)),
            "s": torch.softmax(s, dim=-1),
            "gamma": 1 + F.softplus(gamma.squeeze(-1)),
        }
        ea = out[:, nh * self.address_size :].view(b, self.write_heads, 2, m)
        reads = {name: p[:, : self.read_heads] for name, p in params.items()}
        writes = {name: p[:, self.read_heads :] for name, p in params.items()}
        writes["erase"], writes["add"] = torch.sigmoid(ea[:, :, 0]), torch.tanh(ea[:, :, 1])
        return reads, writes

    def forward(self, h: Tensor, memory: Tensor, w_read: Tensor, w_write: Tensor):
        reads, writes = self.split(h)
        erase, add = writes.pop("erase"), writes.pop("add")
        if self.write_heads:
            w_write = address(memory, w_write, **writes)  # (b, W, n)
            memory = write(memory, w_write, erase, add)
        w_read = address(memory, w_read, **reads)  # (b, R, n)
        return read(memory, w_read), memory, w_read, w_write


# ----------------------------------------------------------------------------- initial value
MEMORY_INITS = ("constant", "learned", "random")


class MemoryInit(nn.Module):
    """The memory's value before the first step, and the heads' first weightings.

    constant  every entry 1e-6 (Collier and Beel 2018: converges fastest)
    learned   a trained (n, m) parameter, shared by every sequence
    random    drawn per sequence from N(0, 0.5^2) (the generator keeps it reproducible)
    The first weightings put all weight on location 0, and the first reads are zero.
    """

    def __init__(self, locations: int, word: int, kind: str = "constant"):
        super().__init__()
        if kind not in MEMORY_INITS:
            raise ConfigError(
                f"MemoryInit: kind must be one of {', '.join(MEMORY_INITS)}; got {kind!r}"
            )
        self.locations, self.word, self.kind = locations, word, kind
        if kind == "learned":
            self.value = nn.Parameter(torch.empty(locations, word).uniform_(-0.1, 0.1))

    def forward(self, batch: int, device, generator: torch.Generator | None = None) -> Tensor:
        n, m = self.locations, self.word
        if self.kind == "constant":
            return torch.full((batch, n, m), 1e-6, device=device)
        if self.kind == "learned":
            return self.value.expand(batch, n, m)
        noise = torch.randn(batch, n, m, generator=generator, device=device)
        return 0.5 * noise

    def weighting(self, batch: int, heads: int, device) -> Tensor:
        w = torch.zeros(batch, heads, self.locations, device=device)
        w[..., 0] = 1.0
        return w  # (b, h, n)
