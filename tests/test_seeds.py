"""training.seeds: N models per trained backend, identical but for their seed (issue 32).

Model 0 stays results/<name>/models/<backend>/; models 1..N-1 are rules train_model_replica and
evaluate_model_replica; collect_metrics adds the spread of every held-out error; the report
prints mean ± std (N models)."""

import json
import math
import os
import subprocess

import pytest
import yaml
from conftest import BIN, ROOT

from qdff import config
from qdff.active_learning import loop
from qdff.report import render
from qdff.steps import evaluate, train
from qdff.training import with_seed
from qdff.validation import metrics


def test_seeds_key_default_and_bounds():
    cfg = config.validate({"name": "x", "structure": {}})
    assert cfg["training"]["seeds"] == 1
    assert config.validate({"name": "x", "structure": {}, "training": {"seeds": 3}})["training"]["seeds"] == 3
    with pytest.raises(config.ConfigError, match="training.seeds"):
        config.validate({"name": "x", "structure": {}, "training": {"seeds": 0}})
    # how many models are trained is no rerun trigger of model 0: the gate param leaves it out
    assert "seeds" not in config.training_gate(cfg)
    assert config.training_gate(cfg) == {k: v for k, v in cfg["training"].items() if k != "seeds"}
    assert train.train_params(cfg, "deepmd")["gate"] == config.training_gate(cfg)


def test_one_seed_rule_for_replicas_and_committee_members():
    cfg = config.validate({"name": "x", "structure": {}, "backends": {"deepmd": {"seed": 7}}})
    block = config.hyperparameters(cfg["backends"]["deepmd"])
    assert with_seed(block, 0) == block and with_seed(block, 2)["seed"] == 2007
    assert block["seed"] == 7  # the block itself is left alone
    assert with_seed({}, 1) == {"seed": 1001}
    for k in range(3):
        assert loop.member_params(cfg, k)["seed"] == with_seed(block, k)["seed"] == 7 + 1000 * k


def test_train_model_replica_trains_with_the_seed_of_model_k(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(train, "train_on_split", lambda backend, params, *a, **kw: seen.append((backend, params)))
    kw = dict(threads=2, gate={}, workdir=tmp_path, split_dir=tmp_path, model_dir=tmp_path)
    hp = {"steps": 10, "seed": 5}
    train.train_model("deepmd", backend_config=hp, **kw)
    train.train_model("deepmd", backend_config=hp, replica=2, **kw)
    assert seen == [
        ("deepmd", {"steps": 10, "seed": 5, "threads": 2}),
        ("deepmd", {"steps": 10, "seed": 2005, "threads": 2}),
    ]
    # a zero-shot baseline is not trained: no replicas
    with pytest.raises(ValueError, match="no replicas"):
        train.train_model("sevennet0", backend_config={}, replica=1, **kw)


def _row(backend, f, e, **extra):
    return {
        "backend": backend,
        "n_frames": 40,
        "force_rmse_meV_per_A": f,
        "energy_rmse_meV_per_atom": e,
        "force_rmse_meV_per_A_Cd": f + 1,
        "baseline_zero_force_rmse_meV_per_A": 900.0,
        "inference_s_per_atom_step": 1e-5,
        "model_size_MB": 1.0,
        **extra,
    }


def test_seed_spread_mean_std_min_max_n_of_hand_made_metrics():
    rows = [_row("deepmd", 100.0, 2.0), _row("sevennet0", 300.0, 9.0)]
    replicas = [_row("deepmd", 110.0, 4.0), _row("deepmd", 120.0, float("nan"))]
    out = metrics.seed_spread(rows, replicas)
    assert out is rows
    d, base = rows
    assert d["n_models"] == 3 and "n_models" not in base and not any(metrics.is_spread_key(k) for k in base)
    # model 0's own values stay
    assert d["force_rmse_meV_per_A"] == 100.0 and d["energy_rmse_meV_per_atom"] == 2.0
    assert d["force_rmse_meV_per_A_mean"] == pytest.approx(110.0)
    assert d["force_rmse_meV_per_A_std"] == pytest.approx(10.0)  # sample standard deviation (ddof 1)
    assert (d["force_rmse_meV_per_A_min"], d["force_rmse_meV_per_A_max"], d["force_rmse_meV_per_A_n"]) == (100, 120, 3)
    assert d["force_rmse_meV_per_A_Cd_mean"] == pytest.approx(111.0)
    # a non-finite value is left out and counted out
    assert d["energy_rmse_meV_per_atom_mean"] == pytest.approx(3.0)
    assert d["energy_rmse_meV_per_atom_std"] == pytest.approx(math.sqrt(2.0))
    assert d["energy_rmse_meV_per_atom_n"] == 2
    # only the errors: not the data's baselines, the frame count, speed or size
    for key in ("baseline_zero_force_rmse_meV_per_A", "n_frames", "inference_s_per_atom_step", "model_size_MB"):
        assert f"{key}_mean" not in d
    # no replicas (training.seeds 1): nothing added
    one = [_row("deepmd", 100.0, 2.0)]
    assert metrics.seed_spread(one, []) == [_row("deepmd", 100.0, 2.0)]


def test_collect_metrics_writes_the_spread_to_json_and_csv(tmp_path):
    files = []
    for i, row in enumerate([_row("deepmd", 100.0, 2.0), _row("deepmd", 110.0, 4.0), _row("deepmd", 120.0, 6.0)]):
        files.append(tmp_path / f"m{i}.json")
        files[-1].write_text(json.dumps(row))
    rows = evaluate.collect_metrics(files[:1], tmp_path / "out.json", tmp_path / "out.csv", replica_files=files[1:])
    assert rows[0]["force_rmse_meV_per_A_mean"] == pytest.approx(110.0)
    assert json.loads((tmp_path / "out.json").read_text())[0]["energy_rmse_meV_per_atom_std"] == pytest.approx(2.0)
    header = (tmp_path / "out.csv").read_text().splitlines()[0].split(",")
    assert {"force_rmse_meV_per_A_mean", "force_rmse_meV_per_A_std", "force_rmse_meV_per_A_n", "n_models"} <= set(
        header
    )


def test_report_prints_mean_and_std_of_n_models():
    rows = metrics.seed_spread(
        [_row("deepmd", 100.0, 2.0), _row("sevennet0", 300.0, 9.0)],
        [_row("deepmd", 110.0, 4.0), _row("deepmd", 120.0, 6.0)],
    )
    d, base = rows
    assert render._spread_cell(d, "force_rmse_meV_per_A", "{:.1f}") == "110.0 ± 10.0 (3 models)"
    assert render._spread_cell(d, "energy_rmse_meV_per_atom", "{:.2f}") == "4.00 ± 2.00 (3 models)"
    # one model: its value as before
    assert render._spread_cell(base, "force_rmse_meV_per_A", "{:.1f}") == "300.0"
    assert render._spread_cell(d, "model_size_MB", "{:.2f}") == "1.00"
    # the breakdown by element gets no columns for the statistics
    columns, table = render.breakdown_table(rows)
    assert columns == ["force RMSE [meV/Å]", "Cd"]
    assert table[1] == ["deepmd (3 models)", "111.0 ± 10.0"] and table[2] == ["sevennet0", "301.0"]
    notes = render.metric_notes(rows)
    assert any("deepmd (3 models): mean ± sample standard deviation" in n for n in notes)
    assert not any("models)" in n for n in render.metric_notes([_row("deepmd", 100.0, 2.0)]))


def _dry_run(tmp_path, cfg, *targets, check=True):
    f = tmp_path / "seeds.yaml"
    f.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path)]
        + ["--configfile", str(f), "--cores", "2", "-n", *targets],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_seeds_3_adds_two_replica_trainings_per_trained_backend_and_none_for_baselines(tmp_path):
    cfg = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    cfg["backends"]["schnetpack"] = {"enabled": True}
    cfg["baselines"] = ["sevennet0"]
    cfg["training"] = {"seeds": 3}
    out = _dry_run(tmp_path, cfg).stdout
    stats = out[out.index("Job stats:") :]
    counts = {
        rule: int(n)
        for rule, n in (line.split()[:2] for line in stats.splitlines() if len(line.split()) == 2)
        if n.isdigit()
    }
    assert counts["train_model"] == 2 and counts["prepare_baseline"] == 1
    assert counts["train_model_replica"] == 4 and counts["evaluate_model_replica"] == 4
    assert counts["evaluate_model"] == 3
    outputs = {line.split("output: ")[1] for line in out.splitlines() if line.strip().startswith("output: ")}
    replicas = {o for o in outputs if "/models/" in o and "/replicas/" in o}
    assert replicas == {
        f"results/tiny/models/{b}/replicas/{k}/model.json" for b in ("deepmd", "schnetpack") for k in (1, 2)
    }
    assert not any("sevennet0/replicas" in o for o in outputs)
    # model 0 stays where ML-MD, vibrations and active learning read it
    assert "results/tiny/models/deepmd/model.json" in outputs
    # collect_metrics reads every replica's metrics
    collect = out[out.index("rule collect_metrics:") :].split("\n", 2)[1]
    assert all(
        f"results/tiny/evaluation/{b}/replicas/{k}/metrics.json" in collect
        for b in ("deepmd", "schnetpack")
        for k in (1, 2)
    )
    # a baseline's replica cannot be asked for
    proc = _dry_run(tmp_path, cfg, "results/tiny/models/sevennet0/replicas/1/model.json", check=False)
    assert proc.returncode != 0 and "MissingRuleException" in proc.stdout + proc.stderr


def test_default_one_seed_adds_no_replica_job(tmp_path):
    cfg = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    out = _dry_run(tmp_path, cfg, "--quiet", "rules").stdout
    assert "replica" not in out and "train_model" in out


def test_with_active_learning_the_replicas_are_the_final_committee_members(tmp_path):
    """The committee's members already are models of the same training set with the seeds of
    training.seeds (qdff.training.with_seed): exported, not trained again on the common split."""
    cfg = yaml.safe_load((ROOT / "tests/configs/tiny-al.yaml").read_text())
    cfg["training"] = {"seeds": 2}
    out = _dry_run(tmp_path, cfg).stdout
    assert "rule train_model_replica:" not in out
    export = out[out.index("rule export_active_learning_replica:") :].split("\n\n")[0]
    assert "output: results/tiny/models/deepmd/replicas/1/model.json" in export
    assert "rule evaluate_model_replica:" in out
    cfg["training"] = {"seeds": 3}  # more models than committee members
    with pytest.raises(config.ConfigError, match="training.seeds: 3 models of deepmd .* committee's 2 members"):
        config.validate(cfg)
