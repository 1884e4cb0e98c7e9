"""``wamdiff doctor``: what this machine offers the package (ROS 2, torch, GPU, backends, simulators).

Always exits 0: it reports, it does not judge. ``--json`` prints the same facts for machines.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from importlib import metadata


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _torch() -> dict:
    try:
        import torch
    except Exception as e:
        return {"available": False, "error": f"{type(e).__name__}: {e}"}
    info = {"available": True, "version": torch.__version__, "cuda": torch.cuda.is_available(), "threads": None}
    info["threads"] = torch.get_num_threads()
    info["device"] = "cuda" if info["cuda"] else "cpu"
    if info["cuda"]:
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda_version"] = torch.version.cuda
    return info


def _onnxruntime() -> dict:
    try:
        import onnxruntime as ort
    except Exception as e:
        return {"available": False, "error": f"{type(e).__name__}: {e}"}
    return {"available": True, "version": ort.__version__, "providers": ort.get_available_providers()}


def _tensorrt() -> dict:
    try:
        import tensorrt as trt
    except Exception as e:
        return {"available": False, "error": f"{type(e).__name__}: {e}"}
    return {"available": True, "version": trt.__version__}


def _gpu() -> dict:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return {"available": False, "reason": "nvidia-smi not found"}
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError) as e:
        return {"available": False, "reason": f"nvidia-smi failed: {e}"}
    return {"available": bool(out), "devices": [line.strip() for line in out.splitlines() if line.strip()]}


def _highway_env() -> dict:
    v = _version("highway-env")
    return {"available": v is not None, "version": v, "gymnasium": _version("gymnasium")}


def _carla() -> dict:
    v = _version("carla")
    if v is None:
        return {"available": False}
    try:
        import carla  # noqa: F401
    except Exception as e:
        return {"available": False, "version": v, "error": f"{type(e).__name__}: {e}"}
    return {"available": True, "version": v, "note": "client only; a CARLA server is needed for closed loop"}


def collect() -> dict:
    from wamdiff_ros.ros.environment import ros_report

    return {
        "ros": ros_report(),
        "torch": _torch(),
        "onnxruntime": _onnxruntime(),
        "tensorrt": _tensorrt(),
        "gpu": _gpu(),
        "highway_env": _highway_env(),
        "carla": _carla(),
        "rosbags": {"available": _version("rosbags") is not None, "version": _version("rosbags")},
    }


def _rows(r: dict) -> list[tuple[str, bool, str]]:
    ros = r["ros"]
    msgs = ros["messages"]
    missing = [k for k, ok in msgs.items() if not ok]
    t, o, g = r["torch"], r["onnxruntime"], r["gpu"]
    return [
        (
            "rclpy",
            ros["rclpy"] is not None,
            f"{ros['rclpy']} ({ros.get('rclpy_error', 'ok')})"
            if ros["rclpy"] is None
            else f"{ros['rclpy']}, lifecycle {'yes' if ros.get('lifecycle') else 'no'}",
        ),
        ("RMW", ros["rmw"] is not None, ros["rmw"] or "-"),
        ("ROS distro", ros["distro"] is not None, ros["distro"] or "unknown"),
        ("message packages", not missing, "all" if not missing else f"missing: {', '.join(missing)}"),
        ("torch", t["available"], f"{t.get('version')} on {t.get('device')}" if t["available"] else t["error"]),
        ("onnxruntime", o["available"], ", ".join(o["providers"]) if o["available"] else o["error"]),
        ("tensorrt", r["tensorrt"]["available"], r["tensorrt"].get("version") or "not importable"),
        ("GPU", g["available"], "; ".join(g.get("devices", [])) or g.get("reason", "-")),
        ("highway-env", r["highway_env"]["available"], str(r["highway_env"]["version"])),
        ("carla client", r["carla"]["available"], str(r["carla"].get("version"))),
        ("rosbags", r["rosbags"]["available"], str(r["rosbags"]["version"])),
    ]


def main(args: argparse.Namespace) -> int:
    report = collect()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="wamdiff doctor")
    table.add_column("component")
    table.add_column("ok")
    table.add_column("details")
    for name, ok, details in _rows(report):
        table.add_row(name, "[green]yes[/]" if ok else "[yellow]no[/]", details)
    Console().print(table)
    return 0
