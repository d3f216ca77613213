"""Command line: parse and dispatch only. The generic commands are here; every other command
(`rnnkit sample`, `rnnkit translate`, `rnnkit inspect gradients`, ...) is declared by a task
(`rnnkit.tasks.base.Command`) and runs the task's own method.

rnnkit tasks
rnnkit train TASK [--config FILE] [--out DIR] [key=value ...]
rnnkit resume RUN
rnnkit evaluate RUN [--json] [--last] [key=value ...]   evaluation settings only
rnnkit report RUN [--out FILE]
rnnkit export RUN [--format onnx|torch] [--out FILE]
rnnkit serve RUN [--port 8000]
rnnkit plot curves RUN [RUN ...] --metric M --out PNG
rnnkit COMMAND [RUN] ...            a task's command
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

from rnnkit import tasks
from rnnkit.config import build, leaf_keys, parse_overrides
from rnnkit.errors import Note, RnnkitError
from rnnkit.run import RunDir

GROUPS = {"inspect": "look inside a trained run: see its sub-commands"}


def _task_commands() -> dict[str, tuple[tasks.Task, tasks.Command]]:
    """Every task command by name, with the first task that declares it and the union of the
    arguments of every task that declares it (`rnnkit sample` takes --prime for a language
    model and --complete for an image model); `_run_task_command` refuses an option that the
    run's own task does not declare."""
    found: dict[str, tuple[tasks.Task, tasks.Command]] = {}
    for task in tasks.all_tasks():
        for command in task.commands:
            if command.name not in found:
                found[command.name] = (task, command)
                continue
            owner, first = found[command.name]
            have = {a.flags[0] for a in first.args}
            more = tuple(a for a in command.args if a.flags[0] not in have)
            found[command.name] = (owner, replace(first, args=first.args + more))
    return found


def _dest(a) -> str:
    if "dest" in a.options:
        return a.options["dest"]
    long = [f for f in a.flags if f.startswith("--")]
    return (long[0] if long else a.flags[0]).lstrip("-").replace("-", "_")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rnnkit", description="Recurrent neural networks: train, evaluate and sample."
    )
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("tasks", help="list the tasks, their config keys and commands")

    t = sub.add_parser("train", help="train a task into a run directory")
    t.add_argument("task", help="task name (see `rnnkit tasks`)")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    t.add_argument("--config", help="YAML file of config values (overridden by key=value)")
    t.add_argument("--out", help="run directory to create (default runs/TASK-TIMESTAMP)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    changed = "read the data files named in the run's config even if they are not the ones "
    changed += "it was trained on"
    r = sub.add_parser("resume", help="continue an interrupted run from its last checkpoint")
    r.add_argument("run", help="run directory")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--allow-changed-data", action="store_true", help=changed)

    last = "use the parameters of the last step, not the best by the validation metric"
    e = sub.add_parser("evaluate", help="evaluate a run on its held-out data")
    e.add_argument("run", help="run directory")
    e.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="evaluation settings for this evaluation only (e.g. eval.lengths=40,80 "
        "decode.beam=5 data.batch_size=32)",
    )
    e.add_argument("--json", action="store_true", help="print metrics as JSON")
    e.add_argument("--last", action="store_true", help=last)
    e.add_argument("--allow-changed-data", action="store_true", help=changed)

    rep = sub.add_parser("report", help="write one self-contained HTML page about a run")
    rep.add_argument("run", help="run directory")
    rep.add_argument("--out", help="HTML file (default RUN/report.html)")
    rep.add_argument("--allow-changed-data", action="store_true", help=changed)
    rep.add_argument("--last", action="store_true", help=last)

    x = sub.add_parser("export", help="write a run's model as ONNX or a torch.export program")
    x.add_argument("run", help="run directory")
    x.add_argument("--format", choices=("onnx", "torch"), default="onnx", help="default onnx")
    x.add_argument(
        "--out",
        help="the file (default RUN/model.onnx or RUN/model.pt2); a model of several parts "
        "writes one file per part beside it: model.encoder.onnx, model.decoder.onnx",
    )
    x.add_argument("--tolerance", type=float, default=1e-4, help="largest difference allowed")
    x.add_argument("--last", action="store_true", help=last)

    sv = sub.add_parser("serve", help="a local web page (and JSON API) to play with a run")
    sv.add_argument("run", help="run directory")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    sv.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    sv.add_argument("--last", action="store_true", help=last)

    plot = sub.add_parser("plot", help="pictures of runs: see its sub-commands")
    groups = {"plot": plot.add_subparsers(dest="what", required=True)}
    curves = groups["plot"].add_parser("curves", help="a held-out metric of runs side by side")
    curves.add_argument("runs", nargs="+", help="run directories")
    curves.add_argument("--out", required=True, help="PNG file to write")
    curves.add_argument("--metric", required=True, help="a metric the runs logged, e.g. val_bpc")
    curves.add_argument("--log", action="store_true", help="logarithmic y axis")
    curves.add_argument("--labels", help="comma-separated legend labels, one per run")
    for name, (_, command) in _task_commands().items():
        words = name.split()
        parent = sub
        if len(words) == 2:  # "inspect gradients": a sub-command of a group
            if words[0] not in groups:
                g = sub.add_parser(words[0], help=GROUPS.get(words[0], "see its sub-commands"))
                groups[words[0]] = g.add_subparsers(dest="what", required=True)
            parent = groups[words[0]]
        c = parent.add_parser(words[-1], help=command.help)
        c.set_defaults(task_command=name)
        if command.needs_run:
            c.add_argument("run", help=command.run_help)
            c.add_argument("--last", action="store_true", help=last)
        for a in command.args:
            c.add_argument(*a.flags, **a.options)
    return p


def _run_task_command(name: str, args) -> int:
    owner, declared = _task_commands()[name]
    task = tasks.of_run(args.run) if declared.needs_run else owner
    command = task.command(name)  # an error naming the run's task when it has no such command
    own = {a.flags[0] for a in command.args}
    for a in declared.args:
        given = getattr(args, _dest(a), None)
        if a.flags[0] not in own and given is not None and given != a.options.get("default"):
            options = ", ".join(b.flags[0] for b in command.args) or "none"
            raise RnnkitError(
                f"`rnnkit {name} {a.flags[0]}` does not apply to a {task.name!r} run",
                f"its options: {options}",
            )
    with tasks.using_weights("last" if getattr(args, "last", False) else "best"):
        return int(getattr(task, command.method)(args) or 0)


def _show_note(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings of `rnnkit.errors.Note` as one line for the user; others as Python shows them."""
    if issubclass(category, Note):
        print(f"rnnkit: note: {message}", file=sys.stderr)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("always", Note)  # said every time, whatever the filters say
        warnings.showwarning = _show_note
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        takes = ("train", "evaluate")
        if extra and (args.command not in takes or any(a.startswith("-") for a in extra)):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as stop:  # --help (0), or a malformed option: usage and the message (2)
        return stop.code if isinstance(stop.code, int) else 2
    if extra:  # key=value overrides given after an option such as --out
        args.overrides += extra
    try:
        if args.command == "tasks":
            for task in tasks.all_tasks():
                print(f"{task.name}: {task.description}")
                print(f"  keys: {', '.join(leaf_keys(task.Config))}")
                if task.commands:
                    print(f"  commands: {', '.join(c.name for c in task.commands)}")
        elif args.command == "train":
            task = tasks.get(args.task)
            config = build(task.Config, args.config, parse_overrides(args.overrides))
            out = args.out or f"runs/{args.task}-{time.strftime('%Y%m%d-%H%M%S')}"
            metrics = task.train(config, out, progress=not args.quiet)
            return _finished(metrics, out)
        elif args.command == "resume":
            RunDir.open(args.run, need=())  # a missing config.json first
            task = tasks.of_run(args.run)
            metrics = task.resume(args.run, not args.quiet, args.allow_changed_data)
            return _finished(metrics, args.run)
        elif args.command == "evaluate":
            RunDir.open(args.run, need=())
            task = tasks.of_run(args.run)
            metrics = task.evaluate(
                args.run,
                allow_changed_data=args.allow_changed_data,
                overrides=parse_overrides(args.overrides),
                weights="last" if args.last else "best",
            )
            print(json.dumps(metrics) if args.json else "\n".join(map(_line, metrics.items())))
        elif args.command == "report":
            from rnnkit.viz.report import write_report

            with tasks.using_weights("last" if args.last else "best"):
                path = write_report(args.run, args.out, allow_changed_data=args.allow_changed_data)
            print(f"wrote {path}")
        elif args.command == "export":
            from rnnkit.export import export

            RunDir.open(args.run, need=())
            task = tasks.of_run(args.run)
            loaded = task.load(args.run, weights="last" if args.last else "best")
            graphs = task.export_graph(loaded)
            suffix = ".onnx" if args.format == "onnx" else ".pt2"
            out = Path(args.out or loaded.run.inside("model" + suffix))
            if not isinstance(graphs, dict):  # one graph, or named parts: model.encoder.onnx
                graphs = {"": graphs}
            for part, graph in graphs.items():
                path = out.with_name(f"{out.stem}.{part}{out.suffix}") if part else out
                worst = export(graph, args.format, path, args.tolerance)
                print(f"wrote {path}: checked against PyTorch, max abs difference {worst:.3g}")
        elif args.command == "serve":
            from rnnkit.serve import serve

            RunDir.open(args.run, need=())
            serve(args.run, args.host, args.port, args.device, "last" if args.last else "best")
        elif args.command == "plot" and args.what == "curves":
            from rnnkit.viz import save_png
            from rnnkit.viz.curves import legend_labels, metric_curves_figure

            labels = legend_labels(args.runs, args.labels)
            fig = metric_curves_figure(args.runs, args.metric, args.log, labels)
            print(f"wrote {save_png(fig, args.out)}")
        else:
            return _run_task_command(args.task_command, args)
    except RnnkitError as err:
        print(f"rnnkit: error: {err.message}", file=sys.stderr)
        if err.hint:
            print(f"hint: {err.hint}", file=sys.stderr)
        return 2
    except OSError as err:  # an output path in a missing or unwritable place, say
        where = f": {err.filename}" if err.filename else ""
        print(f"rnnkit: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside training
        print("\nrnnkit: interrupted", file=sys.stderr)
        return 130
    return 0


def _line(item) -> str:
    key, value = item
    return f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}"


def _finished(metrics: dict, run) -> int:
    """The end of train / resume: 130 and how to go on when interrupted, else 0."""
    if int(os.environ.get("RANK", "0")) != 0:  # one report under torchrun
        return 130 if metrics.get("interrupted") else 0
    if metrics.get("interrupted"):
        print(f"interrupted: checkpoint saved; continue with `rnnkit resume {run}`")
        return 130
    print(f"run saved in {run}")
    print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
