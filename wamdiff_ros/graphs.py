"""Node graphs (``config/graphs/<name>.yaml``): one description read by two launchers.

``launch/<name>.launch.py`` turns a graph into launch_ros actions on a real ROS 2 install
(:func:`launch_description`); ``wamdiff launch <name>`` starts the same graph as processes with
``--ros-args`` where launch_ros is not installable (:func:`node_commands`, :mod:`wamdiff_ros.launcher`).

Graph file::

    description: one line
    arguments:                    # launch arguments and their defaults (strings, as on a command line)
      model_path: wamdiff_small
    nodes:
      - name: planner_node        # node name (__node remap)
        package: wamdiff_ros
        executable: planner_node  # console script / ros2 run executable
        param_files: [planner.param.yaml]         # relative to config/ (or absolute)
        parameters: {model_path: $(arg model_path)}  # -p overrides after the files, YAML-typed
        remappings: {/planner_node/trajectory: /planner/trajectory}
        required: false           # true: when it exits, the whole graph stops

``$(arg NAME)`` in parameter and remapping values is replaced by the argument's value.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from wamdiff_ros.config import ConfigError, load_yaml
from wamdiff_ros.paths import config_path

ARG = re.compile(r"\$\(arg ([A-Za-z_][A-Za-z0-9_]*)\)")
_EMPTY = "''"
"""``-p name:=`` with nothing after it is not a string parameter; an empty YAML string is."""
_NODE_KEYS = {"name", "package", "executable", "param_files", "parameters", "remappings", "required"}


@dataclass
class GraphNode:
    """One node of a graph, with ``$(arg …)`` still unresolved in ``parameters`` and ``remappings``."""

    name: str
    executable: str
    package: str = "wamdiff_ros"
    param_files: list[str] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)
    remappings: dict[str, str] = field(default_factory=dict)
    required: bool = False


@dataclass
class Graph:
    name: str
    description: str
    arguments: dict[str, str]
    nodes: list[GraphNode]

    def resolve_arguments(self, overrides: dict[str, str] | None = None) -> dict[str, str]:
        """The arguments with ``overrides`` applied; ConfigError on an unknown argument."""
        overrides = overrides or {}
        unknown = sorted(set(overrides) - set(self.arguments))
        if unknown:
            raise ConfigError(f"graph {self.name!r}: unknown argument(s) {unknown} (known: {sorted(self.arguments)})")
        return {**self.arguments, **{k: str(v) for k, v in overrides.items()}}


def graph_path(name: str | os.PathLike) -> Path:
    """``config/graphs/<name>.yaml``, or ``name`` itself if it is a file."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    q = config_path("graphs", f"{name}.yaml")
    if not q.is_file():
        known = sorted(x.stem for x in config_path("graphs").glob("*.yaml"))
        raise ConfigError(f"graph {name!r}: no {q} (known graphs: {', '.join(known)})")
    return q


def load_graph(name: str | os.PathLike) -> Graph:
    """Read and check a graph file (by name or path)."""
    path = graph_path(name)
    data = load_yaml(path)
    where = str(path)
    args = data.get("arguments") or {}
    if not isinstance(args, dict):
        raise ConfigError(f"{where}: 'arguments' must be a mapping of name -> default")
    nodes_raw = data.get("nodes")
    if not isinstance(nodes_raw, list) or not nodes_raw:
        raise ConfigError(f"{where}: 'nodes' must be a non-empty list")
    nodes = []
    for i, raw in enumerate(nodes_raw):
        if not isinstance(raw, dict) or not {"name", "executable"} <= set(raw):
            raise ConfigError(f"{where}: nodes[{i}] needs 'name' and 'executable'")
        extra = set(raw) - _NODE_KEYS
        if extra:
            raise ConfigError(f"{where}: nodes[{i}] ({raw['name']}): unknown key(s) {sorted(extra)}")
        node = GraphNode(
            name=str(raw["name"]),
            executable=str(raw["executable"]),
            package=str(raw.get("package", "wamdiff_ros")),
            param_files=[str(f) for f in raw.get("param_files") or []],
            parameters={str(k): _text(v) for k, v in (raw.get("parameters") or {}).items()},
            remappings={str(k): str(v) for k, v in (raw.get("remappings") or {}).items()},
            required=bool(raw.get("required", False)),
        )
        for text in [*node.parameters.values(), *node.remappings.values()]:
            for arg in ARG.findall(text):
                if arg not in args:
                    raise ConfigError(f"{where}: node {node.name}: $(arg {arg}) is not declared under 'arguments'")
        for f in node.param_files:
            param_file(f)
        nodes.append(node)
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: node names must be unique, got {names}")
    return Graph(path.stem, str(data.get("description", "")), {str(k): _text(v) for k, v in args.items()}, nodes)


def param_file(name: str) -> Path:
    """A param file given in a graph: absolute, or relative to ``config/``."""
    p = Path(name)
    q = p if p.is_absolute() else config_path(name)
    if not q.is_file():
        raise ConfigError(f"param file {name!r}: no {q}")
    return q


def substitute(text: str, arguments: dict[str, str]) -> str:
    return ARG.sub(lambda m: arguments[m.group(1)], text)


def executable_command(executable: str) -> list[str]:
    """How to start a node's executable here: the console script beside this Python or beside the running
    ``wamdiff`` (``lib/wamdiff_ros`` of an install), or on PATH; else ``python -m wamdiff_ros.ros.<executable>``."""
    candidates = [
        Path(sys.executable).parent / executable,
        Path(sys.argv[0]).resolve().parent / executable,  # beside `wamdiff` (lib/wamdiff_ros in a colcon install)
        Path(sys.prefix) / "lib" / "wamdiff_ros" / executable,
    ]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return [str(c)]
    found = shutil.which(executable)
    if found:
        return [found]
    return [sys.executable, "-m", f"wamdiff_ros.ros.{executable}"]


def node_commands(graph: Graph, overrides: dict[str, str] | None = None) -> list[tuple[GraphNode, list[str]]]:
    """``(node, argv)`` per node: the executable with ``--ros-args``: node name, param files, ``-p`` and
    ``-r`` rules, arguments substituted."""
    arguments = graph.resolve_arguments(overrides)
    out = []
    for node in graph.nodes:
        argv = [*executable_command(node.executable), "--ros-args", "-r", f"__node:={node.name}"]
        for f in node.param_files:
            argv += ["--params-file", str(param_file(f))]
        for key, value in node.parameters.items():
            argv += ["-p", f"{key}:={substitute(value, arguments) or _EMPTY}"]
        for src, dst in node.remappings.items():
            argv += ["-r", f"{src}:={substitute(dst, arguments)}"]
        out.append((node, argv))
    return out


def launch_description(name: str):
    """A launch_ros LaunchDescription of graph ``name`` (for ``launch/<name>.launch.py`` on real ROS 2).

    Arguments become DeclareLaunchArgument; ``$(arg x)`` becomes LaunchConfiguration('x') (launch_ros
    parses parameter substitutions as YAML, as ``-p`` does); a value without one is given typed, parsed
    as YAML here (launch_ros takes a plain string as a string parameter); a required node shuts the
    launch down.
    """
    from launch.actions import DeclareLaunchArgument, Shutdown
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription

    graph = load_graph(name)

    def value(text: str):
        return subst(text) if ARG.search(text) else yaml.safe_load(text or _EMPTY)

    def subst(text: str):
        parts, pos = [], 0
        for m in ARG.finditer(text):
            if m.start() > pos:
                parts.append(text[pos : m.start()])
            parts.append(LaunchConfiguration(m.group(1)))
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:])
        return parts[0] if len(parts) == 1 else parts

    actions = [DeclareLaunchArgument(k, default_value=v) for k, v in graph.arguments.items()]
    for node in graph.nodes:
        params = [str(param_file(f)) for f in node.param_files]
        if node.parameters:
            params.append({k: value(v) for k, v in node.parameters.items()})
        kwargs = {"on_exit": Shutdown()} if node.required else {}
        actions.append(
            Node(
                package=node.package,
                executable=node.executable,
                name=node.name,
                output="screen",
                parameters=params,
                remappings=[(src, subst(dst)) for src, dst in node.remappings.items()],
                **kwargs,
            )
        )
    return LaunchDescription(actions)


def _text(value) -> str:
    """A YAML scalar or list as the text ``-p name:=text`` takes (lists in YAML flow style)."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
