"""See inside a recurrent network: gradient flow, unit activations, and the run report.

    rnnkit.viz.gradients     ||dL/dh_t|| per step and layer, from the layers' own loop;
                             vanishing / exploding statistics
    rnnkit.viz.activations   each unit's activation over a text as coloured HTML; units that track
                             quotes, position in line or bracket depth; gate saturation
    rnnkit.viz.attention     attention maps; exact match against source length
    rnnkit.viz.memory        the NTM's sequence figure; error by length; |dL/dx_t| by step
    rnnkit.viz.curves        a held-out metric of several runs side by side (`rnnkit plot curves`)
    rnnkit.viz.report        `write_report(run_dir)`: one self-contained HTML page for a run

The tasks gather what to draw from their runs (`rnnkit.tasks.charlm_inspect`,
`rnnkit.tasks.algorithmic_inspect`) and declare the commands that draw it.

The submodules are imported on use (``import rnnkit.viz.report``), so ``import rnnkit.viz`` stays
light. Figures are drawn on ``matplotlib.figure.Figure`` directly, never through pyplot, so no
GUI backend is ever chosen and nothing depends on a display.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

__all__ = ["figure", "png_bytes", "save_png"]


def figure(width: float = 6.4, height: float = 4.0) -> Figure:
    """A new figure (inches), independent of pyplot's global state."""
    return Figure(figsize=(width, height), layout="constrained")


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_png(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write the figure to ``path`` as PNG and return the path."""
    path = Path(path)
    path.write_bytes(png_bytes(fig, dpi))
    return path
