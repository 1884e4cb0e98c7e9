"""colcon builds the package into a fresh workspace and installs what `ros2 run`/`ros2 launch` need."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_colcon_build_install_tree(colcon_install):
    """The session's colcon build (test/conftest.py: colcon_install) installed everything."""
    prefix = colcon_install
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
