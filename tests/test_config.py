import pytest

from rnnkit.config import build, parse_overrides
from rnnkit.errors import ConfigError
from rnnkit.tasks.charlm import CharLMConfig


def test_precedence_defaults_file_command_line(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("hidden: 64\nlr: 0.01\ncell: gru\n")
    c = build(CharLMConfig, f, parse_overrides(["lr=3e-3", "dropout=0.2"]))
    assert (c.hidden, c.lr, c.cell, c.dropout) == (64, 3e-3, "gru", 0.2)
    assert c.layers == CharLMConfig().layers


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match="unknown config key 'hiden'") as err:
        build(CharLMConfig, overrides={"hiden": "3"})
    assert "hidden" in err.value.hint and "seq_len" in err.value.hint


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("hidden", "big", "'hidden' expects int, got 'big'"),
        ("hidden", "2.5", "'hidden' expects int"),
        ("lr", "fast", "'lr' expects float"),
        ("cell", "transformer", "'cell' must be one of rnn, lstm, gru"),
        ("hidden", "0", "'hidden' must be > 0"),
        ("dropout", "1.5", "'dropout' must be in"),
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
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        build(CharLMConfig, tmp_path / "list.yaml")
