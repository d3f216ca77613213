"""Argument checks shared by the cells and layers: torch.nn's messages, at rnnkit's boundary,
so that every path (native, fused, loop, minGRU's scan) rejects a mistake the same way instead
of failing deep inside a matrix product."""

from __future__ import annotations

from torch import Tensor

__all__ = ["check_dtype"]


def check_dtype(owner: str, tensor, weight: Tensor, what: str = "input") -> None:
    """Raise ValueError unless ``tensor`` (a Tensor, or a tuple of them such as LSTM's (h, c))
    has the floating dtype of ``weight``; the message says what to convert."""
    if isinstance(tensor, tuple | list):
        for t in tensor:
            check_dtype(owner, t, weight, what)
        return
    if not isinstance(tensor, Tensor) or tensor.dtype == weight.dtype:
        return
    if not tensor.is_floating_point():
        raise ValueError(
            f"{owner}: {what} must be floating point like the weights ({weight.dtype}), got "
            f"{tensor.dtype}. Convert it: {what}.to({weight.dtype})"
        )
    raise ValueError(
        f"{owner}: {what} dtype ({tensor.dtype}) does not match weight dtype ({weight.dtype}). "
        f"Convert {what}: {what}.to({weight.dtype}), or convert the model: "
        f"model.to({tensor.dtype})"
    )
