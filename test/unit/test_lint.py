"""The tree is ruff-clean (lint and format), and the core never imports rclpy or message packages."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed (make setup installs it)")
@pytest.mark.parametrize("args", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff(args):
    proc = subprocess.run([RUFF, *args, "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


ROS_IMPORT = re.compile(
    r"^\s*(import|from)\s+(rclpy|sensor_msgs|nav_msgs|std_msgs|geometry_msgs|visualization_msgs|diagnostic_msgs"
    r"|rosgraph_msgs|lifecycle_msgs|rcl_interfaces|builtin_interfaces)\b",
    re.M,
)


def test_core_never_imports_ros():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "wamdiff_ros").rglob("*.py")
        if "ros" not in p.relative_to(ROOT / "wamdiff_ros").parts[:1] and ROS_IMPORT.search(p.read_text())
    ]
    assert not offenders, f"rclpy/message imports outside wamdiff_ros/ros/: {offenders}"
