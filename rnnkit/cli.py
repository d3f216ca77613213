"""Command line: parse and dispatch only; every action is a function in rnnkit.tasks.

rnnkit tasks
rnnkit train charlm [--config FILE] [--out DIR] [key=value ...]
rnnkit evaluate RUN [--json]
rnnkit sample RUN [--prime TEXT] [--length N] [--temperature T] [--top-k K] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from rnnkit import tasks
from rnnkit.config import build, leaf_keys, parse_overrides
from rnnkit.errors import RnnkitError
from rnnkit.run import RunDir


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rnnkit", description="Recurrent neural networks: train, evaluate and sample."
    )
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("tasks", help="list the tasks and their config keys")

    t = sub.add_parser("train", help="train a task into a run directory")
    t.add_argument("task", help="task name (see `rnnkit tasks`)")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    t.add_argument("--config", help="YAML file of config values (overridden by key=value)")
    t.add_argument("--out", help="run directory to create (default runs/TASK-TIMESTAMP)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    r = sub.add_parser("resume", help="continue an interrupted run from its last checkpoint")
    r.add_argument("run", help="run directory")
    r.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("evaluate", help="evaluate a run on its validation split")
    e.add_argument("run", help="run directory")
    e.add_argument("--json", action="store_true", help="print metrics as JSON")

    s = sub.add_parser("sample", help="generate text from a trained language model")
    s.add_argument("run", help="run directory")
    s.add_argument("--prime", help="text to start from (default: a newline)")
    s.add_argument("--length", type=int, default=500, help="characters to generate")
    s.add_argument("--temperature", type=float, default=1.0, help="0 is greedy; <1 is safer")
    s.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest (0: all)")
    s.add_argument("--seed", type=int, default=0, help="random seed (same seed, same text)")
    ins = sub.add_parser("inspect", help="look inside: gradient flow through time")
    what = ins.add_subparsers(dest="what", required=True)
    g = what.add_parser("gradients", help="||dL/dh_t|| per step and layer for a charlm run")
    g.add_argument("run", help="run directory")
    g.add_argument("--out", help="output directory (default RUN/inspect)")
    g.add_argument("--batch", type=int, default=16, help="validation windows to average over")
    c = what.add_parser("compare", help="train RNN, LSTM and GRU briefly and plot their flow")
    c.add_argument("out", help="new output directory")
    c.add_argument("--steps", type=int, default=200, help="training steps per cell")
    c.add_argument("--data", default="pydoc", help="corpus (default: the built-in one)")

    rep = sub.add_parser("report", help="write one self-contained HTML page about a run")
    rep.add_argument("run", help="run directory")
    rep.add_argument("--out", help="HTML file (default RUN/report.html)")

    tr = sub.add_parser("translate", help="translate text with a sequence-to-sequence run")
    tr.add_argument("run", help="run directory of a dates, numbers or translate task")
    tr.add_argument("text", nargs="?", help="the input (default: each line of standard input)")
    tr.add_argument("--beam", type=int, help="beam size (default: the run's decode.beam)")
    tr.add_argument("--n-best", type=int, default=1, help="print this many hypotheses")
    tr.add_argument("--attention", metavar="PNG", help="save the attention map of the best")
    return p


def _task_of(run: str):
    return tasks.get(RunDir.open(run, need=()).task)


def _translate(args) -> int:
    """One input from the command line, or each line of standard input; a bad line gets its
    message and the others go on."""
    from rnnkit.tasks import translate as seq2seq

    loaded = seq2seq.load(args.run)
    lines = [args.text] if args.text is not None else sys.stdin.read().splitlines()
    status = 0
    for line in lines:
        try:
            hyps, attention, labels = seq2seq.translate(
                args.run, line, args.beam, args.n_best, loaded
            )
        except RnnkitError as err:
            print(
                f"rnnkit: error: {err.message}" + (f" ({err.hint})" if err.hint else ""),
                file=sys.stderr,
            )
            status = 2
            continue
        for text, score in hyps:
            print(text if args.n_best == 1 else f"{score:.3f}\t{text}")
        if args.attention and attention is not None:
            seq2seq.plot_attention(attention, *labels, args.attention)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and (args.command != "train" or any(a.startswith("-") for a in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:  # key=value overrides given after an option such as --out
        args.overrides += extra
    try:
        if args.command == "tasks":
            for name, task in tasks.REGISTRY.items():
                print(f"{name}: {task.DESCRIPTION}\n  keys: {', '.join(leaf_keys(task.Config))}")
        elif args.command == "train":
            task = tasks.get(args.task)
            config = build(task.Config, args.config, parse_overrides(args.overrides))
            out = args.out or f"runs/{args.task}-{time.strftime('%Y%m%d-%H%M%S')}"
            metrics = task.train(config, out, progress=not args.quiet)
            if int(os.environ.get("RANK", "0")) == 0:  # one report under torchrun
                print(f"run saved in {out}")
                print(json.dumps(metrics))
        elif args.command == "resume":
            metrics = _task_of(args.run).resume(args.run, progress=not args.quiet)
            print(json.dumps(metrics))
        elif args.command == "evaluate":
            metrics = _task_of(args.run).evaluate(args.run)
            print(
                json.dumps(metrics)
                if args.json
                else "\n".join(f"{k}: {v:.4f}" for k, v in metrics.items())
            )
        elif args.command == "sample":
            task = _task_of(args.run)
            if not hasattr(task, "sample"):
                raise RnnkitError(f"task {task.NAME!r} does not generate text")
            print(
                task.sample(
                    args.run, args.prime, args.length, args.temperature, args.top_k, args.seed
                )
            )
        elif args.command == "inspect":
            if args.what == "gradients":
                from rnnkit.viz.gradients import inspect_run

                result = inspect_run(args.run, args.out, batch=args.batch)
            else:
                from rnnkit.viz.compare import compare_cells

                result = compare_cells(args.out, steps=args.steps, data=args.data, progress=True)
            print(f"wrote {result['png']} and {result['json']}")
        elif args.command == "report":
            from rnnkit.viz.report import write_report

            print(f"wrote {write_report(args.run, args.out)}")
        elif args.command == "translate":
            return _translate(args)
    except RnnkitError as err:
        print(f"rnnkit: error: {err.message}", file=sys.stderr)
        if err.hint:
            print(f"hint: {err.hint}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
