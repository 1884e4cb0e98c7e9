"""Ray task fan-out: in-process for one worker (no Ray), ordered results, retries after a worker dies."""

import subprocess
import sys

import _fanout_tasks as tasks
import pytest

from wamdiff_ros.cli import build_parser
from wamdiff_ros.distributed.fanout import Workers, map_ordered, workers_from_args


def test_workers_from_args_and_environment(monkeypatch):
    parser = build_parser()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    args = parser.parse_args(["collect", "--split", "val", "--episodes", "1", "--out", "x", "--workers", "3"])
    assert workers_from_args(args) == Workers(3, None)
    args = parser.parse_args(["collect", "--split", "val", "--episodes", "1", "--out", "x"])
    assert workers_from_args(args).count >= 1 and workers_from_args(args).address is None
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert workers_from_args(args).address == "10.0.0.1:6379"
    args = parser.parse_args(["collect", "--split", "val", "--episodes", "1", "--out", "x", "--address", "h:1"])
    assert workers_from_args(args).address == "h:1"
    with pytest.raises(ValueError, match="--workers: expected >= 1, got 0"):
        Workers(0)
    assert Workers(4).at_most(1).in_process and Workers(4).at_most(3) == Workers(3)
    assert Workers(4, "h:1").at_most(1) == Workers(4, "h:1")


def test_one_worker_runs_in_process_in_order_without_ray():
    assert Workers(1).in_process and not Workers(1, "h:1").in_process and not Workers(2).in_process
    items = [(i, 0.0) for i in range(5)]
    assert list(map_ordered(tasks.square_slowly, items, Workers(1), progress=False)) == [(i, i * i) for i in range(5)]
    code = (
        "import sys; from wamdiff_ros.distributed.fanout import Workers, map_ordered; "
        "assert list(map_ordered(abs, [-3, 1, -2], Workers(1), progress=False)) == [3, 1, 2]; "
        "assert 'ray' not in sys.modules, 'ray was imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_task_errors_reach_the_caller_in_process(tmp_path):
    with pytest.raises(ValueError, match="item 2 is bad"):
        list(map_ordered(tasks.fail_on_two, [(i, str(tmp_path / "tries")) for i in range(4)], Workers(1)))


@pytest.fixture(scope="module")
def ray_by_value():
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(tasks)
    yield
    ray.cloudpickle.unregister_pickle_by_value(tasks)


@pytest.mark.slow
def test_ray_results_in_item_order_and_a_killed_worker_retried(ray_by_value, tmp_path):
    """Later items finish first, yet come back in order; a worker that dies mid-task has its task re-run
    and the results equal the in-process run's."""
    import ray

    items = [(i, 0.6 - 0.1 * i) for i in range(6)]
    expected = list(map_ordered(tasks.square_slowly, items, Workers(1), progress=False))
    assert list(map_ordered(tasks.square_slowly, items, Workers(2), progress=False, window=6)) == expected
    assert not ray.is_initialized()  # the local Ray is stopped again

    marker = tmp_path / "died"
    dying = [(i, str(marker)) for i in range(4)]
    got = list(map_ordered(tasks.square_or_die_once, dying, Workers(2), progress=False))
    assert marker.exists(), "the task never killed its worker"
    assert got == [(i, i * i) for i in range(4)]


@pytest.mark.slow
def test_ray_task_errors_are_not_retried_and_reach_the_caller(ray_by_value, tmp_path):
    tries = tmp_path / "tries"
    with pytest.raises(ValueError, match="item 2 is bad"):
        list(map_ordered(tasks.fail_on_two, [(i, str(tries)) for i in range(4)], Workers(2), progress=False))
    assert tries.read_text() == "try\n"
