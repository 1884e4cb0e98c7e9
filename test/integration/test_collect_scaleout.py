"""`wamdiff collect --workers 2` on Ray: the bag is byte-identical to `--workers 1`, also when a worker
process is killed mid-episode (its task re-runs); Ctrl-C on the driver leaves no partial bag."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from wamdiff_ros.cli import main
from wamdiff_ros.paths import config_path

pytestmark = pytest.mark.slow


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (Ray's raylet and its workers are children of the driver)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        kids = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += kids
        frontier = kids
    return found


def running_task(root: int, name: str) -> int | None:
    """A worker process below ``root`` whose title shows it executing the Ray task ``name``."""
    for pid in descendants(root):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.strip() == f"ray::{name}":
            return pid
    return None


@pytest.fixture(scope="module")
def short_scenario(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scaleout")
    short = yaml.safe_load(config_path("scenarios", "highway_sparse.yaml").read_text())
    short["duration"] = 3.0
    path = tmp / "short_highway.yaml"
    path.write_text(yaml.safe_dump(short))
    return path


def collect_argv(scenario, out, workers: int, episodes: int = 3) -> list[str]:
    argv = ["collect", "--split", "val", "--episodes", str(episodes), "--out", str(out), "--seed", "1"]
    return [*argv, "--scenarios", str(scenario), "--workers", str(workers)]


@pytest.fixture(scope="module")
def reference(short_scenario, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run.mcap"
    assert main(collect_argv(short_scenario, out, workers=1)) == 0
    return out.with_suffix("")


def test_killed_worker_gives_the_same_bag(short_scenario, reference, tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    killed: list[int] = []
    done = threading.Event()

    def kill_one_worker() -> None:
        seen = None
        while not done.is_set() and not killed:
            pid = running_task(os.getpid(), "record_episode")
            if pid is not None and seen is None:
                seen = time.monotonic()
            if pid is not None and time.monotonic() - seen > 1.0:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.1)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    try:
        assert main(collect_argv(short_scenario, tmp_path / "run.mcap", workers=2)) == 0
    finally:
        done.set()
        killer.join(5)
    assert killed, "no Ray worker was seen running record_episode, so none was killed"
    for name in ("run.mcap", "metadata.yaml"):
        assert (tmp_path / "run" / name).read_bytes() == (reference / name).read_bytes(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_ctrl_c_leaves_no_partial_bag(short_scenario, tmp_path):
    """40 episodes, so that a loaded machine cannot finish the run before the signal lands."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), SDL_VIDEODRIVER="dummy")
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wamdiff_ros.cli", *collect_argv(short_scenario, out_dir / "run.mcap", 2, episodes=40)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while running_task(proc.pid, "record_episode") is None:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no episode started within 120 s"
            time.sleep(0.2)
        assert any(p.name.startswith(".run.partial-") for p in out_dir.iterdir())
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert "interrupted" in output
    assert list(out_dir.iterdir()) == []
