"""Scenario definitions of the embedded world: one YAML file per scenario type in ``config/scenarios/``.

A scenario names a highway-env environment, overrides of its configuration, the episode duration,
the route (an exit node of highway-env's road graph and how much of it to drive, or a lane change),
an optional scripted event (stopped vehicle ahead, cut-in) and disjoint seed ranges, one per split:
``train`` / ``val`` / ``test`` for the recorded bags (training, model selection, open-loop test) and
``closedloop`` for ``wamdiff closedloop``, fresh episodes that no bag holds. Everything random in an
episode derives from ``(scenario, seed)``.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

from wamdiff_ros.config import ConfigError, load_yaml
from wamdiff_ros.paths import config_path

SPLITS: tuple[str, ...] = ("train", "val", "test", "closedloop")
BAG_SPLITS: tuple[str, ...] = ("train", "val", "test")
"""The splits bags are recorded from (``wamdiff collect``); ``closedloop`` seeds stay out of every bag."""
DEMO_SCENARIOS: tuple[str, ...] = (
    "highway_dense",
    "cut_in",
    "stopped_vehicle",
    "merge",
    "intersection_left",
    "roundabout",
)
"""The demo's six scenario types (every kind but lane change), the default of ``wamdiff demo`` and ``closedloop``."""
KINDS: tuple[str, ...] = (
    "highway",
    "merge",
    "roundabout",
    "intersection",
    "stopped_vehicle",
    "cut_in",
    "lane_change",
)
ENV_IDS: tuple[str, ...] = ("highway-fast-v0", "highway-v0", "merge-v0", "roundabout-v0", "intersection-v0")
EVENTS: tuple[str, ...] = ("stopped_vehicle", "cut_in")


@dataclass(frozen=True)
class Route:
    """Where the ego must go.

    Attributes:
        exits: candidate end nodes of the route in highway-env's road graph, one drawn per seed
            (empty: stay on the start road).
        length_m: longest route to drive from the start [m] (the route ends earlier at its exit).
        end_margin_m: the route stops this far before the end of the graph path [m].
        lane_change: ``"left"``, ``"right"`` or ``"any"`` (an adjacent lane chosen per seed), or ``None``.
    """

    exits: tuple[str, ...] = ()
    length_m: float = 500.0
    end_margin_m: float = 0.0
    lane_change: str | None = None


@dataclass(frozen=True)
class Event:
    """A scripted traffic event placed after reset, deterministically from the seed.

    Attributes:
        type: ``"stopped_vehicle"`` (a vehicle standing in the ego lane ahead) or ``"cut_in"`` (a
            vehicle in an adjacent lane that changes into the ego lane just ahead).
        ahead_m: (min, max) distance ahead of the ego at which the vehicle is placed [m].
        delay_s: (min, max) time after reset at which a cut-in starts [s].
        speed_delta: (min, max) cut-in vehicle speed minus ego speed [m/s].
    """

    type: str
    ahead_m: tuple[float, float] = (60.0, 100.0)
    delay_s: tuple[float, float] = (1.0, 3.0)
    speed_delta: tuple[float, float] = (-3.0, 0.0)


@dataclass(frozen=True)
class Scenario:
    """One scenario type.

    Attributes:
        name: file stem (``highway_dense`` …), used in reports.
        kind: scenario type written into logs and scenes (``SceneTruth.scenario``), one of :data:`KINDS`.
        env_id: highway-env environment id.
        env_config: overrides of the environment's default configuration.
        duration: episode time limit [s].
        density: traffic density label (``sparse`` / ``medium`` / ``dense``), for reports.
        route: the route.
        event: scripted event, or ``None``.
        seeds: split -> ``(first, end)`` half-open seed range; ranges are disjoint.
        description: one line for humans.
    """

    name: str
    kind: str
    env_id: str
    env_config: dict = field(default_factory=dict)
    duration: float = 30.0
    density: str = "medium"
    route: Route = field(default_factory=Route)
    event: Event | None = None
    seeds: dict[str, tuple[int, int]] = field(default_factory=dict)
    description: str = ""

    def seed_list(self, split: str, limit: int | None = None) -> list[int]:
        """Seeds of ``split`` in order, at most ``limit`` of them."""
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        a, b = self.seeds[split]
        n = b - a if limit is None else min(b - a, int(limit))
        return list(range(a, a + n))

    def with_duration_cap(self, seconds: float) -> Scenario:
        """This scenario with its episodes cut at ``seconds`` of sim time (``<= 0``: unchanged)."""
        if seconds <= 0:
            return self
        return dataclasses.replace(self, duration=min(self.duration, float(seconds)))

    def split_of(self, seed: int) -> str:
        """The split a seed belongs to; ValueError if it is in none."""
        for split, (a, b) in self.seeds.items():
            if a <= seed < b:
                return split
        raise ValueError(f"scenario {self.name!r}: seed {seed} is in no split {self.seeds}")


def _pair(value, where: str) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        return float(value), float(value)
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and float(value[0]) <= float(value[1])):
        raise ConfigError(f"{where}: expected a number or [min, max] with min <= max, got {value!r}")
    return float(value[0]), float(value[1])


def _seeds(raw, where: str) -> dict[str, tuple[int, int]]:
    if not isinstance(raw, dict) or set(raw) != set(SPLITS):
        raise ConfigError(f"{where}.seeds: expected a mapping with exactly {SPLITS}, got {raw!r}")
    out = {}
    for split in SPLITS:
        r = raw[split]
        if not (isinstance(r, (list, tuple)) and len(r) == 2 and all(isinstance(v, int) for v in r) and r[0] < r[1]):
            raise ConfigError(f"{where}.seeds.{split}: expected [first, end) integers with first < end, got {r!r}")
        out[split] = (int(r[0]), int(r[1]))
    ordered = sorted(out.items(), key=lambda kv: kv[1][0])
    for (s1, (_, b1)), (s2, (a2, _)) in itertools.pairwise(ordered):
        if a2 < b1:
            raise ConfigError(f"{where}.seeds: splits {s1!r} {out[s1]} and {s2!r} {out[s2]} overlap")
    return out


def scenario_from_dict(data: dict, name: str, source: str = "<scenario>") -> Scenario:
    """Build and validate a :class:`Scenario`; ConfigError names the file and key on bad input."""
    where = f"{source}"
    known = {"kind", "env_id", "env_config", "duration", "density", "route", "event", "seeds", "description"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)} (expected some of {sorted(known)})")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind: expected one of {KINDS}, got {kind!r}")
    env_id = data.get("env_id")
    if env_id not in ENV_IDS:
        raise ConfigError(f"{where}.env_id: expected one of {ENV_IDS}, got {env_id!r}")
    env_config = data.get("env_config") or {}
    if not isinstance(env_config, dict):
        raise ConfigError(f"{where}.env_config: expected a mapping, got {type(env_config).__name__}")
    duration = float(data.get("duration", 30.0))
    if not 1.0 <= duration <= 600.0:
        raise ConfigError(f"{where}.duration: expected seconds in [1, 600], got {duration}")
    r = data.get("route") or {}
    if not isinstance(r, dict) or set(r) - {"exit", "length_m", "end_margin_m", "lane_change"}:
        raise ConfigError(f"{where}.route: expected a mapping of exit/length_m/end_margin_m/lane_change, got {r!r}")
    if r.get("lane_change") not in (None, "left", "right", "any"):
        raise ConfigError(f"{where}.route.lane_change: expected left/right/any, got {r.get('lane_change')!r}")
    exits = r.get("exit") or ()
    exits = (exits,) if isinstance(exits, str) else tuple(exits)
    if not all(isinstance(x, str) and x for x in exits):
        raise ConfigError(f"{where}.route.exit: expected a node name or a list of node names, got {r.get('exit')!r}")
    route = Route(
        exits=exits,
        length_m=float(r.get("length_m", 500.0)),
        end_margin_m=float(r.get("end_margin_m", 0.0)),
        lane_change=r.get("lane_change"),
    )
    if route.length_m <= 0 or route.end_margin_m < 0:
        raise ConfigError(f"{where}.route: expected length_m > 0 and end_margin_m >= 0, got {r!r}")
    event = None
    e = data.get("event")
    if e is not None:
        if not isinstance(e, dict) or e.get("type") not in EVENTS:
            raise ConfigError(f"{where}.event.type: expected one of {EVENTS}, got {e!r}")
        event = Event(
            type=e["type"],
            ahead_m=_pair(e.get("ahead_m", (60.0, 100.0)), f"{where}.event.ahead_m"),
            delay_s=_pair(e.get("delay_s", (1.0, 3.0)), f"{where}.event.delay_s"),
            speed_delta=_pair(e.get("speed_delta", (-3.0, 0.0)), f"{where}.event.speed_delta"),
        )
    return Scenario(
        name=name,
        kind=kind,
        env_id=env_id,
        env_config=dict(env_config),
        duration=duration,
        density=str(data.get("density", "medium")),
        route=route,
        event=event,
        seeds=_seeds(data.get("seeds"), where),
        description=str(data.get("description", "")),
    )


def scenario_dir() -> Path:
    return config_path("scenarios")


def scenario_names() -> list[str]:
    """Names of the scenario files shipped in ``config/scenarios/``, sorted."""
    return sorted(p.stem for p in scenario_dir().glob("*.yaml"))


def load_scenario(name_or_path: str | os.PathLike) -> Scenario:
    """Load a scenario by name (``highway_dense``) or by path to a YAML file."""
    p = Path(name_or_path)
    if not p.suffix:
        p = scenario_dir() / f"{p}.yaml"
        if not p.is_file():
            raise FileNotFoundError(f"scenario {name_or_path!r}: no {p} (known: {', '.join(scenario_names())})")
    return scenario_from_dict(load_yaml(p), p.stem, str(p))


def load_scenarios(names: list[str] | None = None) -> list[Scenario]:
    """All shipped scenarios (or the named ones), in name order."""
    return [load_scenario(n) for n in (names or scenario_names())]
