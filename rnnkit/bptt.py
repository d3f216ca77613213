"""What the hand-written BPTT of `rnnkit.fused` (Python loops) and `rnnkit.fused_cpu` (C++
loops) share, kept apart so that each imports it and neither imports the other's internals.

Their backward passes are written out, not recorded by autograd, so they are differentiable
once. Inside ``backward`` grad mode is on exactly when the caller asked for a graph of the
gradient (``create_graph=True``, double backward): that is refused loudly rather than
answered with a silently wrong second derivative.
"""

from __future__ import annotations

import torch

__all__ = ["first_order_only"]


def first_order_only() -> None:
    """Raise if the backward being run is itself being differentiated (create_graph=True)."""
    if torch.is_grad_enabled():
        raise RuntimeError(
            "rnnkit's fused path has a hand-written backward that cannot be differentiated "
            "again (create_graph=True, double backward); for gradients of gradients build the "
            "layer with impl='native' (torch's kernel; impl='auto' picks the fused path for a "
            "GRU or a variable-length batch when training on the CPU) or impl='loop' (with "
            "the variants)"
        )
