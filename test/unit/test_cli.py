import json
import subprocess
import sys

from wamdiff_ros import cli


def test_help_lists_doctor(capsys):
    try:
        cli.main(["--help"])
    except SystemExit as e:
        assert e.code == 0
    assert "doctor" in capsys.readouterr().out


def test_every_registered_command_module_exposes_the_interface():
    import importlib

    for module, _ in [*cli.COMMANDS.values(), *cli.BENCHES.values()]:
        m = importlib.import_module(module)
        assert callable(m.add_arguments) and callable(m.main), module


def test_doctor_json_reports_rclpy_and_fast_dds():
    out = subprocess.run(
        [sys.executable, "-m", "wamdiff_ros", "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    report = json.loads(out)
    assert report["ros"]["rclpy"], report["ros"]
    assert report["ros"]["rmw"] == "rmw_fastrtps_cpp"
    assert all(report["ros"]["messages"].values())
    assert report["torch"]["version"].startswith("2.13.0")
    assert "CPUExecutionProvider" in report["onnxruntime"]["providers"]
    assert report["tensorrt"]["available"] in (True, False)


def test_doctor_table_exits_zero():
    proc = subprocess.run([sys.executable, "-m", "wamdiff_ros", "doctor"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "RMW" in proc.stdout
