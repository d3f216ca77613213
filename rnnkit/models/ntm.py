"""The Neural Turing Machine: a controller network coupled to an n x m memory by read and write
heads (Graves, Wayne and Danihelka 2014). Shape legend: b batch, t time, i input, o output,
c controller size, n locations, m word size, R read heads, W write heads.

One step, from the state (controller state, M_{t-1}, w^r_{t-1}, w^w_{t-1}, r_{t-1}):

    h_t            = controller([x_t; r_{t-1}], h_{t-1})      LSTM cell, or tanh(Linear) (ff)
    w^w_t          = address(M_{t-1}, h_t, w^w_{t-1})         content, gate, shift, sharpen
    M_t            = M_{t-1} prod [1 - w^w_t e_t^T] + sum w^w_t a_t^T
    w^r_t          = address(M_t, h_t, w^r_{t-1})
    r_t            = w^r_t M_t                                (R, m)
    y_t            = W_y [h_t; r_t] + b_y                     logits (or values), (o,)

The heads are batched: all R + W heads come from one linear map and are addressed together
(`rnnkit.memory`). The loop over time is plain Python, so it runs the same on CPU and GPU.

Example::

    ntm = NTM(input_size=10, output_size=8, hidden=100, locations=128, word=20)
    y, state = ntm(torch.randn(4, 30, 10))        # (4, 30, 8)
    trace = ntm.trace(torch.randn(1, 30, 10))     # read / write weightings per step, for plots
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.errors import ConfigError
from rnnkit.memory import Heads, MemoryInit

CONTROLLERS = ("lstm", "ff")


class NTM(nn.Module):
    """Neural Turing Machine over batch-first sequences.

    Args:
        input_size, output_size: features of x_t and of y_t.
        hidden: controller size c. controller: "lstm" (default) or "ff" (feed-forward).
        locations, word: the memory's n x m. read_heads, write_heads: R and W.
        shift_range: r, the largest shift of a head per step (2 r + 1 offsets).
        memory_init: "constant" | "learned" | "random" (see `rnnkit.memory.MemoryInit`).
        output_clip: c > 0 clamps the heads' parameters before their activations to [-c, c]
            (Collier and Beel 2018 clip the controller outputs to [-20, 20]), bounding the key
            strength and the sharpening so that addressing cannot run away; 0: no bound.

    Inputs: x (b, t, i), state (or None for the initial state).
    Outputs: y (b, t, o) and the final state
    (controller state, memory (b, n, m), w_read (b, R, n), w_write (b, W, n), reads (b, R, m)).
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden: int = 100,
        locations: int = 128,
        word: int = 20,
        read_heads: int = 1,
        write_heads: int = 1,
        shift_range: int = 1,
        controller: str = "lstm",
        memory_init: str = "constant",
        output_clip: float = 0.0,
    ):
        super().__init__()
        if controller not in CONTROLLERS:
            raise ConfigError(
                f"NTM: controller must be one of {', '.join(CONTROLLERS)}; got {controller!r}"
            )
        for name, value in (("input_size", input_size), ("output_size", output_size)):
            if value < 1:
                raise ConfigError(f"NTM: {name} must be >= 1, got {value}")
        self.input_size, self.output_size = input_size, output_size
        self.kind, self.hidden = controller, hidden
        self.read_heads, self.write_heads = read_heads, write_heads
        self.locations, self.word = locations, word
        inputs = input_size + read_heads * word  # [x_t; r_{t-1}]
        if controller == "lstm":
            # torch's fused cell: the same gates as rnnkit.LSTMCell, one kernel per step
            self.controller = nn.LSTMCell(inputs, hidden)
        else:
            self.controller = nn.Linear(inputs, hidden)
        self.heads = Heads(hidden, word, read_heads, write_heads, shift_range, output_clip)
        self.init = MemoryInit(locations, word, memory_init)
        self.out = nn.Linear(hidden + read_heads * word, output_size)

    def initial_state(self, batch: int, device) -> tuple:
        memory = self.init(batch, device)  # (b, n, m)
        w_read = self.init.weighting(batch, self.read_heads, device)  # (b, R, n)
        w_write = self.init.weighting(batch, self.write_heads, device)  # (b, W, n)
        reads = torch.zeros(batch, self.read_heads, self.word, device=device)  # (b, R, m)
        ctrl = None
        if self.kind == "lstm":
            zeros = torch.zeros(batch, self.hidden, device=device)
            ctrl = (zeros, zeros)
        return ctrl, memory, w_read, w_write, reads

    def step(self, x_t: Tensor, state: tuple) -> tuple[Tensor, tuple]:
        """One time step: x_t (b, i) -> y_t (b, o) and the next state."""
        ctrl, memory, w_read, w_write, reads = state
        inp = torch.cat([x_t, reads.flatten(1)], dim=-1)  # (b, i + R m)
        if self.kind == "lstm":
            ctrl = self.controller(inp, ctrl)
            h = ctrl[0]
        else:
            h = torch.tanh(self.controller(inp))  # (b, c)
        reads, memory, w_read, w_write = self.heads(h, memory, w_read, w_write)
        y = self.out(torch.cat([h, reads.flatten(1)], dim=-1))  # (b, c + R m) -> (b, o)
        return y, (ctrl, memory, w_read, w_write, reads)

    def _check(self, x: Tensor) -> None:
        if x.dim() != 3 or x.size(-1) != self.input_size:
            raise ConfigError(
                f"NTM: expected input of shape (batch, time, {self.input_size}), "
                f"got {tuple(x.shape)}"
            )

    def forward(self, x: Tensor, state: tuple | None = None) -> tuple[Tensor, tuple]:
        self._check(x)
        if state is None:
            state = self.initial_state(x.size(0), x.device)
        ys = []
        for t in range(x.size(1)):
            y, state = self.step(x[:, t], state)
            ys.append(y)
        return torch.stack(ys, dim=1), state  # (b, t, o)

    @torch.no_grad()
    def trace(self, x: Tensor) -> dict[str, Tensor]:
        """Run x (b, t, i) and keep every step's weightings and vectors, for pictures:
        y (b, t, o), w_read (b, t, R, n), w_write (b, t, W, n), reads (b, t, R, m)."""
        self._check(x)
        state = self.initial_state(x.size(0), x.device)
        keep: dict[str, list] = {"y": [], "w_read": [], "w_write": [], "reads": []}
        for t in range(x.size(1)):
            y, state = self.step(x[:, t], state)
            _, _, w_read, w_write, reads = state
            for name, value in zip(keep, (y, w_read, w_write, reads), strict=True):
                keep[name].append(value)
        out = {name: torch.stack(values, dim=1) for name, values in keep.items()}
        out["memory"] = state[1]  # (b, n, m), the memory after the last step
        return out
