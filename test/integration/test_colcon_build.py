"""colcon builds the package into a fresh workspace and installs what `ros2 run`/`ros2 launch` need."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLCON = shutil.which("colcon", path=str(Path(sys.executable).parent)) or shutil.which("colcon")


@pytest.mark.skipif(COLCON is None, reason="colcon is not installed (make setup installs it)")
def test_colcon_build_install_tree(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "wamdiff_ros").symlink_to(ROOT)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [
            COLCON,
            "build",
            "--base-paths",
            "src",
            "--build-base",
            "build",
            "--install-base",
            "install",
            "--event-handlers",
            "console_direct-",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    prefix = tmp_path / "install" / "wamdiff_ros"
    share = prefix / "share" / "wamdiff_ros"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "wamdiff_ros").is_file()
    assert (share / "package.xml").is_file()
    for folder in ("launch", "config", "models"):
        for f in (ROOT / folder).rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts:
                assert (share / f.relative_to(ROOT)).is_file(), f"{f.relative_to(ROOT)} not installed"
    assert (share / "config" / "planner.param.yaml").is_file()
    exe = prefix / "lib" / "wamdiff_ros" / "wamdiff"
    assert exe.is_file() and os.access(exe, os.X_OK), "executables must go to lib/wamdiff_ros for ros2 run"
    site = next((prefix / "lib").glob("python3*/site-packages"))
    assert (site / "wamdiff_ros" / "cli.py").is_file()
