"""Frames whose SCF did not converge: flagged from CP2K's log on conversion, dropped before the
split, counted in the report. Fast: a real 6-step CP2K run kept in tests/data."""

import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from ase.io import read  # noqa: E402

from qdff import config  # noqa: E402
from qdff.cp2k import output as cp2k_output  # noqa: E402
from qdff.data import dataset  # noqa: E402
from qdff.report import render as report  # noqa: E402
from qdff.selection import frames as selection  # noqa: E402
from qdff.steps import select  # noqa: E402

RUN = Path(__file__).resolve().parent / "data/cp2k_md_scf"  # step 3's SCF did not converge (see its README)


def _converted(tmp_path):
    out = tmp_path / "frames.extxyz"
    summary = cp2k_output.convert_runs([RUN], out, runs=["300K"], temperatures=[300.0])
    return out, summary[0]


def test_unconverged_step_is_flagged_in_the_data_set(tmp_path):
    out, summary = _converted(tmp_path)
    frames = read(out, ":")
    assert [a.info["step"] for a in frames] == list(range(7))
    flags = {a.info["step"]: a.info["scf_converged"] for a in frames}
    assert flags == {0: True, 1: True, 2: True, 3: False, 4: True, 5: True, 6: True}
    assert summary["scf_not_converged_frames"] == 1 and summary["scf_unknown_frames"] == 0
    # the flag survives the data set's own reader
    assert [a.info["step"] for a in dataset.drop_unconverged_scf(dataset.read_frames(out))[0]] == [0, 1, 2, 4, 5, 6]


def test_without_a_log_frames_are_left_unflagged_and_kept(tmp_path, caplog):
    run = tmp_path / "run"
    run.mkdir()
    for f in ("md-pos-1.xyz", "md-frc-1.xyz", "md.inp"):
        shutil.copy(RUN / f, run / f)
    summary = cp2k_output.convert_runs([run], tmp_path / "x.extxyz")[0]
    frames = dataset.read_frames(tmp_path / "x.extxyz")
    assert summary["scf_unknown_frames"] == 7 and not any("scf_converged" in a.info for a in frames)
    assert len(dataset.drop_unconverged_scf(frames)[0]) == 7
    assert "no CP2K log found" in caplog.text


def test_resumed_log_keeps_the_last_record_of_each_step(tmp_path):
    """CP2K appends a resumed run to its log and re-evaluates the restart step (MD_INI),
    whose frame the earlier invocation wrote: that re-evaluation must not replace its record."""
    fail = " *** WARNING in qs_scf.F:601 :: SCF run NOT converged ***\n"
    ok = "  outer SCF loop converged in   1 iterations or    6 steps\n"
    step = " MD| Step number                                                               {}\n"
    start = "  **** **** ******  **  PROGRAM STARTED AT               2026-12-02 04:26:30.367\n"
    init = " MD_INI| MD initialization\n"
    text = (
        start
        + ok
        + init
        + ok
        + step.format(1)
        + ok
        + step.format(2)
        + ok
        + step.format(3)
        # resumed from the restart file of step 2: step 2 re-evaluated (fails), step 3 again (fails)
        + start
        + fail
        + init
        + fail
        + step.format(3)
        + ok
        + step.format(4)
    )
    (tmp_path / "md.log").write_text(text)
    assert cp2k_output.scf_convergence(tmp_path / "md.log") == {0: True, 1: True, 2: True, 3: False, 4: True}
    # a fresh run stopped after its initial evaluation
    (tmp_path / "md.log").write_text(start + fail + init)
    assert cp2k_output.scf_convergence(tmp_path / "md.log") == {0: False}


def _cfg(drop: bool) -> dict:
    cfg = config.validate(
        {
            "name": "scf",
            "structure": {},
            "selection": {"method": "random", "n_train": 2, "n_valid": 1, "dedupe_tolerance": 0},
        }
    )
    sel = cfg["selection"]
    sel["drop_unconverged_scf"] = drop
    # blocks small enough for 7 frames of 1 fs
    sel.update(test_fraction=0.3, valid_fraction=0.3, gap_fs=0.0)
    return cfg


def _split_seeing(monkeypatch):
    """Record the steps of the frames that reach the split."""
    seen, split = [], selection.split_and_select

    def recording(frames, *args, **kwargs):
        seen.extend(int(a.info["step"]) for a in frames)
        return split(frames, *args, **kwargs)

    monkeypatch.setattr(selection, "split_and_select", recording)
    return seen


def test_unconverged_frame_is_dropped_before_the_split_and_reported(tmp_path, monkeypatch):
    data, _ = _converted(tmp_path)
    seen = _split_seeing(monkeypatch)
    summary = select.select_frames(data, tmp_path / "split", **select.select_params(_cfg(True)))
    assert seen == [0, 1, 2, 4, 5, 6]
    assert summary["scf_not_converged"] == summary["scf_not_converged_dropped"] == 1
    assert summary["n_frames"] == 6
    written = [a.info["step"] for p in ("train", "valid", "test") for a in read(tmp_path / f"split/{p}.extxyz", ":")]
    assert written and 3 not in written

    html = _render(tmp_path, summary)
    assert "frames whose SCF did not converge</td><td>1 dropped before the split" in html


def test_drop_unconverged_scf_false_keeps_the_frame(tmp_path, monkeypatch):
    data, _ = _converted(tmp_path)
    seen = _split_seeing(monkeypatch)
    summary = select.select_frames(data, tmp_path / "split", **select.select_params(_cfg(False)))
    assert seen == list(range(7))
    assert summary["scf_not_converged"] == 1 and summary["scf_not_converged_dropped"] == 0
    assert "1 kept (selection.drop_unconverged_scf is false)" in _render(tmp_path, summary)


def _render(tmp_path, selection_summary) -> str:
    fig = plt.figure(figsize=(1, 1))
    fig.savefig(tmp_path / "aimd.png")
    plt.close(fig)
    out = tmp_path / "report.html"
    report.render_report(
        config.validate({"name": "scf", "structure": {}}),
        aimd_plot=tmp_path / "aimd.png",
        aimd_summaries=[],
        selection=selection_summary,
        metrics=[],
        parity_plots={},
        models={},
        out_path=out,
    )
    return out.read_text()


def test_frames_without_the_flag_are_kept():
    from ase import Atoms

    a, b = Atoms("H"), Atoms("H")
    b.info["scf_converged"] = False
    kept, dropped = dataset.drop_unconverged_scf([a, b])
    assert kept == [a] and dropped == 1
