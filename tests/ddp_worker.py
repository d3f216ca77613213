"""Run under `torchrun --nproc_per_node 2`: train the character model with uneven shards
(3 streams over 2 processes), then write each rank's parameters for the test to compare."""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from rnnkit import tasks
from rnnkit.config import build, to_dict
from rnnkit.run import RunDir
from rnnkit.tasks.charlm import CharLMConfig
from rnnkit.training import Trainer, distributed

out, corpus = Path(sys.argv[1]), sys.argv[2]
config = build(
    CharLMConfig,
    overrides={
        "data.path": corpus,
        "data.batch_size": 3,
        "data.val_fraction": 0.1,
        "model.hidden": 16,
        "model.layers": 1,
        "model.embed": 8,
        "tbptt.k1": 8,
        "train.steps": 6,
        "train.eval_every": 3,
        "train.checkpoint_every": 3,
        "train.device": "cpu",
    },
)
rank, world = distributed()
charlm = tasks.get("charlm")
model, loop = charlm.build(config, rank=rank, world=world)
assert loop.tbptt.x.size(0) == (2 if rank == 0 else 1)  # uneven shards: 2 streams and 1
run = RunDir.create(out / "run", charlm.name, to_dict(config)) if rank == 0 else None
torch.distributed.barrier()
Trainer(model, loop, config.train, run or RunDir(out / "run"), progress=False).fit()
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / f"rank{rank}.st")
torch.distributed.destroy_process_group()
