"""Graph YAML: loading, argument substitution, --ros-args commands, and launch_ros descriptions built
from the same file (with stand-in launch modules where the real launch_ros is absent; where it is,
test/ros/test_ros2_launch.py runs every launch file under the real launch service instead)."""

import importlib.util
import runpy
import sys
import types
from pathlib import Path

import pytest

from wamdiff_ros.config import ConfigError
from wamdiff_ros.graphs import launch_description, load_graph, node_commands
from wamdiff_ros.launcher import parse_overrides

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = sorted(p.stem for p in (ROOT / "config" / "graphs").glob("*.yaml"))


def test_shipped_graphs_load_and_have_launch_files():
    assert {"planner", "sim_closed_loop", "carla_closed_loop"} <= set(GRAPHS)
    for name in GRAPHS:
        graph = load_graph(name)
        assert graph.nodes and graph.description
        assert (ROOT / "launch" / f"{name}.launch.py").is_file(), f"launch/{name}.launch.py missing"


def test_commands_substitute_arguments_and_carry_params_and_remaps():
    graph = load_graph("sim_closed_loop")
    cmds = dict((n.name, argv) for n, argv in node_commands(graph, {"episodes": "1", "model_path": "/m"}))
    planner = cmds["planner_node"]
    i = planner.index("--ros-args")
    assert planner[i + 1 : i + 3] == ["-r", "__node:=planner_node"]
    assert str(ROOT / "config" / "planner.param.yaml") in planner
    assert "model_path:=/m" in planner and "use_sim_time:=true" in planner
    assert "/planner_node/trajectory:=/planner/trajectory" in planner
    bridge = cmds["sim_bridge_node"]
    assert "episodes:=1" in bridge and "metrics_path:=''" in bridge  # empty string stays a string
    assert "scenarios:=[highway_sparse, merge, intersection_left]" in bridge
    assert [n.required for n in graph.nodes] == [False, True]


def test_carla_graph_commands():
    graph = load_graph("carla_closed_loop")
    cmds = dict((n.name, argv) for n, argv in node_commands(graph, {"port": "2002", "routes_path": "/r.xml"}))
    bridge = cmds["carla_bridge_node"]
    assert str(ROOT / "config" / "carla_bridge.param.yaml") in bridge
    assert "port:=2002" in bridge and "routes_path:=/r.xml" in bridge and "town:=''" in bridge
    assert "trajectory_topic:=/planner/trajectory" in bridge and "use_sim_time:=true" in bridge
    assert "/planner_node/trajectory:=/planner/trajectory" in cmds["planner_node"]
    assert [n.required for n in graph.nodes] == [False, True]


def test_graph_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="unknown argument"):
        node_commands(load_graph("planner"), {"nope": "1"})
    with pytest.raises(ConfigError, match="known graphs"):
        load_graph("no_such_graph")
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes:\n  - {name: a, executable: planner_node, parameters: {x: $(arg y)}}\n")
    with pytest.raises(ConfigError, match=r"\$\(arg y\) is not declared"):
        load_graph(bad)
    bad.write_text("nodes:\n  - {name: a, executable: planner_node, param_files: [missing.param.yaml]}\n")
    with pytest.raises(ConfigError, match="missing.param.yaml"):
        load_graph(bad)
    bad.write_text("nodes:\n  - {name: a, executable: planner_node, colour: red}\n")
    with pytest.raises(ConfigError, match="colour"):
        load_graph(bad)
    with pytest.raises(ValueError, match="name:=value"):
        parse_overrides(["episodes=3"])


class _Recorder:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


@pytest.fixture
def fake_launch(monkeypatch):
    """Stand-ins for launch / launch_ros that record what they were built with."""
    if importlib.util.find_spec("launch_ros") is not None:
        pytest.skip("the real launch_ros is installed: test/ros/test_ros2_launch.py runs the launch files under it")

    class LaunchConfiguration(_Recorder):
        def __repr__(self):
            return f"$(arg {self.args[0]})"

    mods = {
        "launch": types.ModuleType("launch"),
        "launch.actions": types.ModuleType("launch.actions"),
        "launch.substitutions": types.ModuleType("launch.substitutions"),
        "launch_ros": types.ModuleType("launch_ros"),
        "launch_ros.actions": types.ModuleType("launch_ros.actions"),
    }
    mods["launch"].LaunchDescription = type("LaunchDescription", (_Recorder,), {})
    mods["launch.actions"].DeclareLaunchArgument = type("DeclareLaunchArgument", (_Recorder,), {})
    mods["launch.actions"].Shutdown = type("Shutdown", (_Recorder,), {})
    mods["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    mods["launch_ros.actions"].Node = type("Node", (_Recorder,), {})
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return mods


@pytest.mark.parametrize("name", GRAPHS)
def test_launch_file_and_process_launcher_read_the_same_graph(fake_launch, name):
    ld = runpy.run_path(str(ROOT / "launch" / f"{name}.launch.py"))["generate_launch_description"]()
    actions = ld.args[0]
    declared = {a.args[0]: a.kwargs["default_value"] for a in actions if type(a).__name__ == "DeclareLaunchArgument"}
    graph = load_graph(name)
    assert declared == graph.arguments
    nodes = [a for a in actions if type(a).__name__ == "Node"]
    commands = node_commands(graph)
    assert [n.kwargs["name"] for n in nodes] == [node.name for node, _ in commands]
    for launch_node, (node, argv) in zip(nodes, commands):
        kw = launch_node.kwargs
        assert kw["executable"] == node.executable and kw["package"] == "wamdiff_ros"
        files = [p for p in kw["parameters"] if isinstance(p, str)]
        assert files == [argv[i + 1] for i, a in enumerate(argv) if a == "--params-file"]
        overrides = next((p for p in kw["parameters"] if isinstance(p, dict)), {})
        cli = [argv[i + 1].split(":=", 1)[0] for i, a in enumerate(argv) if a == "-p"]
        assert list(overrides) == cli
        cli_remaps = [argv[i + 1].split(":=", 1)[0] for i, a in enumerate(argv) if a == "-r"][1:]  # after __node
        assert [src for src, _ in kw["remappings"]] == cli_remaps
        assert ("on_exit" in kw) == node.required


def test_launch_description_uses_launch_configurations(fake_launch):
    ld = launch_description("sim_closed_loop")
    bridge = [a for a in ld.args[0] if type(a).__name__ == "Node"][1]
    params = next(p for p in bridge.kwargs["parameters"] if isinstance(p, dict))
    assert repr(params["episodes"]) == "$(arg episodes)"
    assert params["use_sim_time"] is True  # typed: launch_ros would take a plain "true" as a string
