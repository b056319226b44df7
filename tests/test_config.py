import copy
from pathlib import Path

import pytest
import yaml

from qdff import config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "config").glob("*.yaml")) + sorted((ROOT / "tests/configs").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_config_is_valid(path):
    cfg = config.load(path)
    assert cfg["name"]
    assert config.enabled_backends(cfg)


def test_defaults_are_filled():
    cfg = config.validate({"name": "x", "structure": {}})
    assert cfg["cp2k"]["preset"] == "xtb"
    assert cfg["aimd"]["temperatures"] == [300]
    assert cfg["backends"]["deepmd"]["enabled"] is True
    assert cfg["selection"]["test_fraction"] == 0.2


def _err(cfg):
    with pytest.raises(config.ConfigError) as exc:
        config.validate(cfg)
    return str(exc.value)


def test_misspelt_key_names_its_path_and_suggests():
    msg = _err({"name": "x", "structure": {}, "aimd": {"temperture": [300]}})
    assert "aimd.temperture" in msg
    assert "did you mean 'temperatures'" in msg


def test_unknown_top_level_key():
    msg = _err({"name": "x", "structure": {}, "selectoin": {}})
    assert "selectoin" in msg and "selection" in msg


def test_wrong_type_names_path():
    msg = _err({"name": "x", "structure": {}, "aimd": {"steps": "many"}})
    assert "aimd.steps" in msg


def test_out_of_range_value():
    msg = _err({"name": "x", "structure": {}, "aimd": {"temperatures": [-5]}})
    assert "aimd.temperatures[0]" in msg


def test_enum_lists_allowed_values():
    msg = _err({"name": "x", "structure": {}, "cp2k": {"preset": "b3lyp"}})
    assert "cp2k.preset" in msg and "xtb, pbe-fast, pbe" in msg


def test_file_source_needs_file():
    msg = _err({"name": "x", "structure": {"source": "file"}})
    assert "structure.file" in msg


def test_every_schema_key_is_documented():
    rows = config.describe()
    assert len(rows) > 40
    undocumented = [key for key, _, desc in rows if not desc]
    assert not undocumented, undocumented


def test_load_names_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump({"name": "x", "structure": {"n_pairs": 0}}))
    with pytest.raises(config.ConfigError, match="bad.yaml.*structure.n_pairs"):
        config.load(p)


def test_validate_does_not_accept_disabled_everything():
    off = {"enabled": False}
    cfg = {
        "name": "x",
        "structure": {},
        "backends": {b: dict(off) for b in ("deepmd", "schnetpack", "nequip", "allegro")},
    }
    assert "no backend" in _err(copy.deepcopy(cfg))
    # one backend left on is enough
    cfg["backends"]["allegro"]["enabled"] = True
    assert config.enabled_backends(config.validate(copy.deepcopy(cfg))) == ["allegro"]


def test_all_four_backends_are_enabled_by_default():
    cfg = config.validate({"name": "x", "structure": {}})
    assert config.enabled_backends(cfg) == ["deepmd", "schnetpack", "nequip", "allegro"]


def test_docs_config_table_is_the_generated_one():
    """docs/configuration.md's table is `qdff config-docs`: a key added to the schema must reach it."""
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    rows = [f"| `{key}` | {f'`{default}`' if default else ''} | {desc} |" for key, default, desc in config.describe()]
    missing = [r.split(" | ")[0] for r in rows if r not in docs]
    assert not missing, f"regenerate docs/configuration.md's table with `qdff config-docs`: {missing[:5]}"


def test_hyperparameters_are_the_backend_block_without_its_resource_keys():
    cfg = config.validate({"name": "x", "structure": {}})
    for name, block in cfg["backends"].items():
        hp = config.hyperparameters(block)
        assert list(hp) == [k for k in block if k not in ("threads", "mem_mb", "runtime_min")], name
        assert all(hp[k] is block[k] for k in hp)
    block = {"enabled": True, "threads": 4, "lr": 1e-3, "mem_mb": 8000, "runtime_min": 60}
    assert config.hyperparameters(block) == {"enabled": True, "lr": 1e-3}
    assert block["threads"] == 4  # the block itself is left alone
    assert config.RESOURCE_KEYS == ("threads", "mem_mb", "runtime_min")


def test_a_gap_below_the_floor_is_refused_naming_the_key_and_the_reason():
    msg = _err({"name": "x", "structure": {}, "selection": {"gap_fs": 20}})
    assert msg.startswith("config error at selection.gap_fs: selection.gap_fs 20 fs is shorter than 150 fs")
    assert "132 fs at 300 K" in msg and "allow_short_gap" in msg
    # the floor itself is accepted
    assert config.validate({"name": "x", "structure": {}, "selection": {"gap_fs": 150}})["selection"]["gap_fs"] == 150


def test_allow_short_gap_accepts_a_short_gap_with_a_warning(caplog):
    cfg = {"name": "x", "structure": {}, "selection": {"gap_fs": 20, "allow_short_gap": True}}
    with caplog.at_level("WARNING", logger="qdff.config"):
        assert config.validate(cfg)["selection"]["gap_fs"] == 20
    assert "selection.gap_fs 20 fs is shorter than 150 fs" in caplog.text and "allow_short_gap is true" in caplog.text
    assert config.validate({"name": "x", "structure": {}})["selection"]["allow_short_gap"] is False
