"""Pictures of sequence-to-sequence runs: the attention map of one translation, and exact
match against source length for several runs (what attention buys on long inputs)."""

from __future__ import annotations

from torch import Tensor

from rnnkit.viz import figure, save_png

__all__ = ["plot_attention", "plot_length_study"]


def plot_attention(attention: Tensor, src_tokens: list[str], tgt_tokens: list[str], path):
    """Save an attention heat map (output tokens down, input tokens across) as PNG."""
    fig = figure(0.35 * len(src_tokens) + 2, 0.35 * len(tgt_tokens) + 1.5)
    ax = fig.subplots()
    ax.imshow(attention.numpy(), cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(src_tokens)), src_tokens, rotation=90)
    ax.set_yticks(range(len(tgt_tokens)), tgt_tokens)
    ax.set_xlabel("input")
    ax.set_ylabel("output")
    return save_png(fig, path)


def plot_length_study(tables: dict[str, dict[int, tuple[int, int]]], trained_up_to: int, path):
    """Exact match against source length for each labelled run; the untrained lengths shaded."""
    fig = figure(7, 4)
    ax = fig.subplots()
    for label, table in tables.items():
        lengths = list(table)
        ax.plot(lengths, [c / t for c, t in table.values()], marker="o", label=label)
    ax.axvspan(
        trained_up_to + 0.5,
        max(max(t) for t in tables.values()) + 0.5,
        color="0.9",
        label="longer than any training source",
    )
    ax.set_xlabel("source length (tokens)")
    ax.set_ylabel("exact match")
    ax.set_ylim(0, 1.02)
    ax.legend()
    return save_png(fig, path)
