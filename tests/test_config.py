import pytest

from rnnkit.config import build, parse_overrides
from rnnkit.errors import ConfigError
from rnnkit.tasks.charlm import CharLMConfig


def test_precedence_defaults_file_command_line(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  hidden: 64\n  cell: gru\ntrain:\n  lr: 0.01\n")
    c = build(CharLMConfig, f, parse_overrides(["train.lr=3e-3", "model.dropout=0.2"]))
    assert (c.model.hidden, c.train.lr, c.model.cell, c.model.dropout) == (64, 3e-3, "gru", 0.2)
    assert c.model.layers == CharLMConfig().model.layers and c.train.steps == 2000


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match="unknown config key 'model.hiden'") as err:
        build(CharLMConfig, overrides={"model.hiden": "3"})
    assert "model.hidden" in err.value.hint and "train.lr" not in err.value.hint
    with pytest.raises(ConfigError, match="unknown config key 'hidden'") as err:
        build(CharLMConfig, overrides={"hidden": "3"})  # a leaf without its section
    assert "model.hidden" in err.value.hint and "train.lr" in err.value.hint


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("model.hidden", "big", "'model.hidden' expects int, got 'big'"),
        ("model.hidden", "2.5", "'model.hidden' expects int"),
        ("train.lr", "fast", "'train.lr' expects float"),
        ("model.cell", "transformer", "'model.cell' must be one of rnn, lstm, gru"),
        ("model.hidden", "0", "'model.hidden' must be > 0"),
        ("model.dropout", "1.5", "'model.dropout' must be in"),
        ("train.schedule", "linear", "'train.schedule' must be one of constant, cosine"),
        ("train.precision", "fp8", "'train.precision' must be one of"),
        ("tbptt.k1", "0", "'tbptt.k1' must be > 0"),
    ],
)
def test_bad_values(key, value, match):
    with pytest.raises(ConfigError, match=match):
        build(CharLMConfig, overrides={key: value})


def test_bad_override_syntax_and_file(tmp_path):
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["steps"])
    with pytest.raises(ConfigError, match="not found"):
        build(CharLMConfig, tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("train:\n  stpes: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'train.stpes' \(.*bad.yaml\)"):
        build(CharLMConfig, tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        build(CharLMConfig, tmp_path / "list.yaml")


def test_a_section_keeps_its_parents_defaults():
    from rnnkit.tasks.seq2seq import NumbersConfig

    c = build(NumbersConfig, overrides={"train.lr": "0.01"})
    assert c.train.steps == 3000 and c.train.eval_every == 500  # Seq2SeqConfig's own defaults
    assert c.data.source == "numbers" and c.data.tgt_tokenizer == "word"
    assert c.train.lr == 0.01


def test_every_preset_loads_and_names_every_key():
    from pathlib import Path

    import yaml

    from rnnkit import tasks
    from rnnkit.config import _flatten, leaf_keys

    presets = sorted(Path(__file__).parents[1].glob("configs/*.yaml"))
    assert presets
    for preset in presets:
        task = tasks.get(preset.stem)
        build(task.Config, preset)
        keys = set(_flatten(yaml.safe_load(preset.read_text())))
        assert keys == set(leaf_keys(task.Config)), preset.name
