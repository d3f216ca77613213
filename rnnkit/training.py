"""One readable training loop: forward, loss, backward, clip, step, evaluate, log, save.

The task supplies ``train_step(step) -> loss`` (which owns its batches and any state carried
across them, as truncated BPTT needs) and ``evaluate() -> metrics``; the loop knows nothing
else about the task.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from rnnkit.errors import RnnkitError
from rnnkit.run import RunDir


def fit(
    model: torch.nn.Module,
    train_step: Callable[[int], torch.Tensor],
    evaluate: Callable[[], dict],
    optimizer: torch.optim.Optimizer,
    *,
    steps: int,
    clip: float = 0.0,
    eval_every: int = 0,
    run: RunDir | None = None,
    progress: bool = True,
    units_per_step: int = 1,
    unit: str = "tok",
    max_bad_steps: int = 10,
) -> dict:
    """Train for ``steps`` optimizer steps and return the last evaluation's metrics.

    Each step: loss = train_step(step); backpropagate; clip the gradient norm to ``clip``
    (0: no clipping, the norm is still measured); optimizer step. A non-finite loss or gradient
    skips the step; ``max_bad_steps`` of them in a row stop the run. Every ``eval_every`` steps
    and at the end: evaluate, log, and save the model into ``run``. Ctrl-C saves and returns.
    """
    metrics: dict = {}
    bad_in_row, start = 0, time.perf_counter()
    bar = tqdm(range(steps), disable=not progress, unit="step", mininterval=1.0, dynamic_ncols=True)
    model.train()
    try:
        for step in bar:
            loss = train_step(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(
                model.parameters(), clip if clip > 0 else math.inf
            )
            if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
                bad_in_row += 1
                if bad_in_row >= max_bad_steps:
                    raise RnnkitError(
                        f"training diverged: {bad_in_row} steps in a row had a non-finite loss "
                        f"or gradient (last at step {step + 1})",
                        "lower lr, or set clip (e.g. clip=1.0)",
                    )
                continue
            bad_in_row = 0
            optimizer.step()

            done = step + 1
            rate = done * units_per_step / (time.perf_counter() - start)
            bar.set_postfix(loss=f"{loss.item():.3f}", rate=f"{rate:,.0f} {unit}/s", refresh=False)
            record = {"step": done, "loss": loss.item(), "grad_norm": grad_norm.item()}
            if (eval_every and done % eval_every == 0) or done == steps:
                metrics = {"step": done, **evaluate(), "seconds": time.perf_counter() - start}
                model.train()
                record.update(metrics)
                text = "  ".join(
                    f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in metrics.items()
                )
                bar.write(f"eval  {text}")
                if run is not None:
                    run.save_model(model)
            if run is not None:
                run.log(record)
    except KeyboardInterrupt:
        bar.write("interrupted: saving the model and stopping")
        if run is not None:
            run.save_model(model)
        metrics = {**metrics, "interrupted": True}
    finally:
        bar.close()
    if run is not None:
        run.write_json("metrics.json", metrics)
    return metrics
