"""Atomic writes: the target appears whole or not at all, and with the permissions open() would give."""

import os
import stat

import pytest

from wamdiff_ros.atomic import FILE_MODE, atomic_path, atomic_write_json


def test_failed_write_leaves_the_previous_file(tmp_path):
    target = tmp_path / "log.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer crashed")
    assert target.read_text().strip().startswith("{") and '"a": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["log.json"]


def test_files_get_the_umask_mode_even_from_private_writers(tmp_path):
    """A writer that creates 0600 files (as safetensors does) still yields a file others can read."""
    target = tmp_path / "model.bin"
    with atomic_path(target) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"weights")
        os.close(fd)
    assert stat.S_IMODE(target.stat().st_mode) == FILE_MODE
