"""The README's Python examples run as written, and its quick-start commands exist."""

import re
from pathlib import Path

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def test_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    snapshots = []
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
        snapshots.append(dict(namespace))
    # rnnkit.load: the run of the task example, in eval mode, the same text as the task's sample
    lm, run = namespace["lm"], namespace["run"]
    assert lm.calls == ("generate",) and not lm.module.training
    from rnnkit import tasks

    same = tasks.get("charlm").sample(run, "The ", length=40, temperature=0.8, seed=1)
    assert lm.generate("The ", length=40, temperature=0.8, seed=1) == same
    namespace = snapshots[0]
    # the first example's claims: padded steps are zero and loop equals native
    x, lengths = namespace["x"], namespace["lengths"]
    out, (h_n, c_n) = namespace["out"], (namespace["h_n"], namespace["c_n"])
    loop_out, (loop_h, loop_c) = namespace["loop"](x, lengths=lengths)
    for ours, theirs in ((loop_out, out), (loop_h, h_n), (loop_c, c_n)):
        assert (ours - theirs).abs().max() < 1e-5
    for b, n in enumerate(lengths.tolist()):
        assert out[b, n:].abs().sum() == 0
    assert namespace["lstm"].plan().startswith("native")


def test_quick_start_commands_are_make_targets():
    makefile = (Path(__file__).parents[1] / "Makefile").read_text(encoding="utf-8")
    for target in re.findall(r"^make (\w+)", README, flags=re.M):
        assert re.search(rf"^{target}:", makefile, flags=re.M), target
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci
