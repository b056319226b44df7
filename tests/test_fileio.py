"""Atomic outputs (qdff.fileio): finished files only, with the permissions open() would give."""

import os
import stat

import pytest

from qdff.fileio import atomic_open, write_json


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_get_the_mode_of_the_umask_not_mkstemps_0600(tmp_path, umask, mode):
    """A report or metrics file in a group-shared project directory must be readable by the
    group when the umask says so (mkstemp alone makes every output 0600)."""
    old = os.umask(umask)
    try:
        write_json(tmp_path / "metrics.json", {"a": 1})
        with atomic_open(tmp_path / "report.html") as fh:
            fh.write("<html></html>")
    finally:
        os.umask(old)
    for name in ("metrics.json", "report.html"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_a_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path):
    (tmp_path / "out.txt").write_text("finished before")
    with pytest.raises(RuntimeError):
        with atomic_open(tmp_path / "out.txt") as fh:
            fh.write("half")
            raise RuntimeError("killed")
    assert (tmp_path / "out.txt").read_text() == "finished before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no temporary left


def test_a_start_frame_keeps_its_fingerprint_and_a_moved_atom_or_a_setting_changes_it(tmp_path):
    """Resuming decides on these hashes: the start frame read again from its file is the same
    frame (else every resume would start afresh); a moved atom or a changed setting is not."""
    from ase.build import molecule
    from ase.io import read, write

    from qdff.fingerprints import frame_sha256, settings_sha256

    write(tmp_path / "start.extxyz", molecule("H2O", vacuum=5.0))
    a, b = read(tmp_path / "start.extxyz"), read(tmp_path / "start.extxyz")
    settings = {"temperature": 300.0, "seed": 1}
    assert frame_sha256(b) == frame_sha256(a)
    assert settings_sha256(settings, b) == settings_sha256(settings, a)
    assert settings_sha256(settings | {"seed": 2}, a) != settings_sha256(settings, a)
    b.positions[0, 0] += 1e-4
    assert frame_sha256(b) != frame_sha256(a)
    assert settings_sha256(settings, b) != settings_sha256(settings, a)
