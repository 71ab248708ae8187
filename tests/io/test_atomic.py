# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
from __future__ import annotations

import errno
import os
import stat

import pytest

from monai_mine.io.atomic import atomic_folder, atomic_output, atomic_write_text
from monai_mine.io.lock import lock_path


def test_replaces_the_target_only_on_success_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out" / "table.csv"
    atomic_write_text(target, "first")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_output(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("killed while writing")
    assert target.read_text() == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.csv"]


def test_keeps_the_double_suffix_of_nifti_files(tmp_path):
    with atomic_output(tmp_path / "image.nii.gz") as temporary:
        assert temporary.name.endswith(".nii.gz") and temporary.parent == tmp_path
        temporary.write_bytes(b"x")


def test_written_files_get_the_usual_permissions_not_mkstemp_private_ones(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    path = atomic_write_text(tmp_path / "report.json", "{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask != 0o600


def test_disk_full_keeps_the_previous_file_and_names_the_target(tmp_path):
    target = atomic_write_text(tmp_path / "metrics.json", "old")
    with pytest.raises(OSError, match=r"could not write .*metrics.json.*No space") as caught:
        with atomic_output(target):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert caught.value.errno == errno.ENOSPC
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_one_writer_per_output_folder_and_a_dead_writer_lock_is_taken_over(tmp_path):
    out = tmp_path / "out"
    lock_path(out).write_text("999999999\n")  # left by a killed run: no process holds its flock
    with atomic_folder(out) as staging:
        assert lock_path(out).read_text() == f"{os.getpid()}\n"
        with pytest.raises(OSError, match=rf"output \S*out is being written by another run \(process {os.getpid()}"):
            with atomic_folder(out, overwrite=True):
                pass
        (staging / "result.txt").write_text("whole")
    assert (out / "result.txt").read_text() == "whole" and not lock_path(out).exists()


def test_killed_runs_hidden_folders_are_removed_by_the_next_run(tmp_path):
    out = tmp_path / "out"
    for name in (".out.partial-abc", ".out.earlier-def", ".other.partial-ghi"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "half.nii.gz").write_bytes(b"half")
    with atomic_folder(out) as staging:
        (staging / "result.txt").write_text("whole")
    assert sorted(path.name for path in tmp_path.iterdir()) == [".other.partial-ghi", "out"]
