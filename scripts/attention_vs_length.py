"""Exact match by source length for runs with and without attention, as a table and a plot.

python scripts/attention_vs_length.py runs/num-attn runs/num-none --out docs/attention_length.png
"""

import argparse
import json

from rnnkit import tasks
from rnnkit.run import RunDir
from rnnkit.viz.attention import plot_length_study

p = argparse.ArgumentParser()
p.add_argument("runs", nargs="+", help="run directories (their model.attention labels them)")
p.add_argument("--out", required=True, help="PNG to write; a JSON table is written beside it")
args = p.parse_args()

tables, trained = {}, 0
for run in args.runs:
    run_dir = RunDir.open(run)
    config = run_dir.read_json("config.json")
    table = tasks.get(run_dir.task).accuracy_by_length(run)
    tables[f"attention={config['model']['attention']}"] = table
    trained = config["data"]["max_len"]
plot_length_study(tables, trained, args.out)
with open(args.out.rsplit(".", 1)[0] + ".json", "w") as f:
    json.dump({k: {str(n): v for n, v in t.items()} for k, t in tables.items()}, f, indent=1)
lengths = sorted({n for t in tables.values() for n in t})
print("| source tokens | " + " | ".join(tables) + " |")
print("| --- |" + " --- |" * len(tables))
for n in lengths:
    cells = [f"{t[n][0] / t[n][1]:.3f} ({t[n][1]})" if n in t else "" for t in tables.values()]
    print(f"| {n}{' (unseen)' if n > trained else ''} | " + " | ".join(cells) + " |")
