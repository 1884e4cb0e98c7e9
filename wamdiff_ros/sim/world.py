"""The embedded driving world: a highway-env scene driven with continuous controls, seen in REP-103.

``World(scenario, seed)`` builds the scenario's highway-env environment (its rewards and
observations, made for discrete RL actions, are bypassed: only its road, traffic and dynamics are
used), places the scripted event, plans the route, and steps at 10 Hz with ``(accel, steer)`` in
physical units. Everything is converted once, here and in :mod:`~wamdiff_ros.sim.roadnet`, to the
map frame: ``(x, -y)``, yaw ``-heading``. ``frame()`` returns the tick as a
:class:`~wamdiff_ros.types.LogFrame`; ``lanes`` is the whole road network as map-frame lanes.

The ego's base_link is :data:`REAR_AXLE_TO_CENTER` m behind highway-env's box centre (the house
default of :class:`~wamdiff_ros.types.SceneTruth`); its kinematic bicycle has its wheelbase
:data:`WHEELBASE` with the centre of gravity mid-way.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import numpy as np

from wamdiff_ros.geometry import to_local_points, wrap_angle
from wamdiff_ros.sim import language
from wamdiff_ros.sim.roadnet import LaneKey, crop_lanes, lanes_from_network, successor_keys, to_map_xy, to_map_yaw
from wamdiff_ros.sim.scenarios import Scenario
from wamdiff_ros.stamps import ns_to_seconds, seconds_to_ns
from wamdiff_ros.types import Agents, AgentType, EgoState, Lane, LogFrame

DT = 0.1
DT_NS = seconds_to_ns(DT)
"""World tick [s] (policy frequency 10 Hz)."""
SIM_FREQUENCY = 10
"""highway-env integration frequency [Hz] (one integration step per tick)."""
ACCEL_RANGE = (-6.0, 4.0)
"""Ego acceleration command range [m/s²], mapped onto highway-env's normalised [-1, 1]."""
STEER_RANGE = (-np.pi / 4, np.pi / 4)
"""Ego front-wheel steering range [rad] (positive: left, REP-103)."""
REAR_AXLE_TO_CENTER = 1.5
"""base_link (rear axle) to box centre [m], as SceneTruth assumes."""
WHEELBASE = 5.0
"""highway-env's bicycle: length 5 m, centre of gravity mid-way (lr = lf = 2.5 m)."""
EGO_SIZE = (5.0, 2.0)
CROP_RADIUS = 160.0
"""Radius of the lane window around the ego used for scenes and planning [m]."""
CUT_IN_MIN_GAP = 6.0
"""A scripted cut-in starts only while the cutting vehicle's rear is at least this far ahead of the ego's
front [m]; a cut-in vehicle that falls behind stays in its lane."""
OFFROAD_LIMIT_S = 2.0
"""An episode ends after the ego has been off every lane this long [s]."""


@dataclass
class Collision:
    """The ego's first collision.

    Attributes:
        time: when it happened [s].
        other_id: agent id of the other party (-1 if unknown).
        other_type: its :class:`AgentType`.
        kind: ``"rear"`` (hit from behind), ``"side"``, ``"front"`` (ego ran into it) or ``"stopped"``
            (ego standing still).
        at_fault: NAVSIM-style fault: not at fault when stopped, hit from behind, or hit from the side
            while keeping its own lane outside a junction.
    """

    time: float
    other_id: int
    other_type: int
    kind: str
    at_fault: bool


@dataclass
class StepInfo:
    """What one :meth:`World.step` did.

    Attributes:
        time: world time after the step [s].
        crashed: the ego has collided (this or an earlier step).
        collision: the first collision, if any.
        progress: metres driven along the route so far (best so far).
        completion: progress / route length, in [0, 1].
        done: the episode is over.
        reason: ``""`` while running, else ``"collision"``, ``"route_complete"``, ``"timeout"`` or ``"off_road"``.
    """

    time: float
    crashed: bool
    collision: Collision | None
    progress: float
    completion: float
    done: bool
    reason: str


def _quiet_env_class(env_id: str):
    """The highway-env class behind ``env_id``, with reward and info bypassed (they assume discrete actions)."""
    import gymnasium as gym
    import highway_env  # noqa: F401  (registers the environments)
    from gymnasium.envs.registration import load_env_creator

    base = load_env_creator(gym.spec(env_id).entry_point)
    return type(
        f"Quiet{base.__name__}",
        (base,),
        {"_info": lambda self, obs, action=None: {}, "_reward": lambda self, action: 0.0},
    )


_IDM_DEFAULTS: dict[str, float] = {}


def _restore_idm_defaults() -> None:
    """intersection-v0 edits IDMVehicle class attributes at reset; put them back so scenarios don't leak."""
    from highway_env.vehicle.behavior import IDMVehicle

    names = ("DISTANCE_WANTED", "COMFORT_ACC_MAX", "COMFORT_ACC_MIN", "TIME_WANTED")
    if not _IDM_DEFAULTS:
        _IDM_DEFAULTS.update({n: getattr(IDMVehicle, n) for n in names})
    for n, v in _IDM_DEFAULTS.items():
        setattr(IDMVehicle, n, v)


class World:
    """A scenario episode on highway-env, deterministic per ``(scenario, seed)``.

    Attributes after :meth:`reset`: ``lanes`` (map-frame road network), ``time`` [s] and ``time_ns``
    (the same clock in integer nanoseconds, which stamps states and frames), ``collision``,
    ``route_length`` [m], ``route_progress`` [m], ``command``, ``instruction``, ``done``, ``reason``.
    """

    def __init__(self, scenario: Scenario, seed: int):
        if not isinstance(scenario, Scenario):
            raise ValueError(f"World.scenario: expected a Scenario, got {type(scenario).__name__}")
        self.scenario = scenario
        self.seed = int(seed)
        self.episode = f"{scenario.name}-{self.seed}"
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        self._env = None
        self.lanes: list[Lane] = []
        self.lane_ids: dict[LaneKey, int] = {}
        self.reset()

    # ---- setup --------------------------------------------------------------------------------
    def _config(self) -> dict:
        cfg = dict(self.scenario.env_config)
        cfg.update(
            {
                "action": {
                    "type": "ContinuousAction",
                    "acceleration_range": list(ACCEL_RANGE),
                    "steering_range": [-STEER_RANGE[1], STEER_RANGE[1]],
                    "speed_range": [0.0, 40.0],
                },
                "observation": {"type": "Kinematics"},
                "policy_frequency": round(1 / DT),
                "simulation_frequency": SIM_FREQUENCY,
                "duration": self.scenario.duration + 10.0,
                "offroad_terminal": False,
            }
        )
        return cfg

    def reset(self) -> LogFrame:
        """(Re)build the episode from the seed and return the first frame."""
        _restore_idm_defaults()
        if self._env is None:
            self._env = _quiet_env_class(self.scenario.env_id)(config=self._config())
        self._env.reset(seed=self.seed)
        self._rng = np.random.default_rng([self.seed, 0x5EED])
        env = self._env
        self.time, self.time_ns = 0.0, 0
        self.collision: Collision | None = None
        self.done, self.reason = False, ""
        self._offroad = 0.0
        self._agent_ids: dict[int, int] = {}
        self._cut_in = None
        is_junction = (lambda k: k[0].startswith("ir")) if self.scenario.kind == "intersection" else (lambda k: False)
        self.network = lanes_from_network(env.road.network, in_junction=is_junction)
        self.lanes, self.lane_ids = self.network.lanes, self.network.ids
        self._lane_by_id = {lane.lane_id: lane for lane in self.lanes}
        self._plan_route()
        if self.scenario.event is not None:
            self._place_event()
        self._update_progress()
        return self.frame()

    @property
    def ego_vehicle(self):
        return self._env.vehicle

    def _plan_route(self) -> None:
        env, route = self._env, self.scenario.route
        net = env.road.network
        start = tuple(self.ego_vehicle.lane_index)
        self.target_lane: int | None = None
        if route.lane_change:
            sides = {"left": -1, "right": +1}
            n = len(net.graph[start[0]][start[1]])
            ok = [s for s, step in sides.items() if 0 <= start[2] + step < n]
            if not ok:
                raise ValueError(f"scenario {self.scenario.name}: the ego's road has one lane, no lane change possible")
            want = route.lane_change if route.lane_change in ok else None
            side = want or ok[int(self._rng.integers(len(ok)))]
            self.lane_change_side = side
            self.target_lane = start[2] + sides[side]
            start = (start[0], start[1], self.target_lane)
        else:
            self.lane_change_side = None
        nodes = [start[0], start[1]]
        if route.exits:
            exit_ = route.exits[self.seed % len(route.exits)]
            path = net.shortest_path(start[1], exit_)
            if not path:
                raise ValueError(f"scenario {self.scenario.name}: no road from {start[1]!r} to exit {exit_!r}")
            nodes += path[1:]
        keys = [start]
        for f, t in itertools.pairwise(nodes[1:]):
            keys.append(next(k for k in successor_keys(net, keys[-1]) if k[1] == t and k[0] == f))
        self.route_keys: list[LaneKey] = keys
        lengths = [net.get_lane(k).length for k in keys]
        self._route_cum = np.concatenate([[0.0], np.cumsum(lengths)])
        self._route_s0 = float(net.get_lane(keys[0]).local_coordinates(self.ego_vehicle.position)[0])
        total = self._route_cum[-1] - self._route_s0 - route.end_margin_m
        self.route_length = float(max(1.0, min(route.length_m, total)))
        self.route_progress = 0.0
        self.turn = language.turn_of(self._key_heading(keys[0], self._route_s0), self._key_heading(keys[-1], 0.0))
        if len(keys) == 1:
            self.turn = "straight"
        self._junction_end = self._route_cum[-1 if len(keys) == 1 else len(keys) - 1] - self._route_s0
        self.exit_number = sum(1 for n in nodes[2:-1] if len(net.graph.get(n, {})) >= 2) if route.exits else 0

    def _key_heading(self, key: LaneKey, s: float) -> float:
        return float(to_map_yaw(self._env.road.network.get_lane(key).heading_at(s)))

    def _place_event(self) -> None:
        from highway_env.vehicle.behavior import IDMVehicle
        from highway_env.vehicle.kinematics import Vehicle

        ev, env, rng = self.scenario.event, self._env, self._rng
        ego = self.ego_vehicle
        road = env.road
        key = tuple(ego.lane_index)
        lane = road.network.get_lane(key)
        s_ego = lane.local_coordinates(ego.position)[0]
        ahead = float(rng.uniform(*ev.ahead_m))
        s_ev = s_ego + ahead

        def clear(lane_numbers, s_from, s_to):
            keep = []
            for v in road.vehicles:
                if v is ego:
                    keep.append(v)
                    continue
                vk = tuple(v.lane_index)
                s_v = road.network.get_lane(vk).local_coordinates(v.position)[0]
                if vk[:2] == key[:2] and vk[2] in lane_numbers and s_from <= s_v <= s_to:
                    continue
                keep.append(v)
            road.vehicles = keep

        if ev.type == "stopped_vehicle":
            clear({key[2]}, s_ego + 3.0, s_ev + 25.0)
            v = Vehicle(road, lane.position(s_ev, 0.0), lane.heading_at(s_ev), 0.0)
            road.vehicles.append(v)
        else:
            n = len(road.network.graph[key[0]][key[1]])
            sides = [i for i in (key[2] - 1, key[2] + 1) if 0 <= i < n]
            side_lane = sides[int(rng.integers(len(sides)))]
            clear({key[2], side_lane}, s_ego + 3.0, s_ev + 40.0)
            clear({side_lane}, s_ev - 25.0, s_ev + 40.0)
            other = road.network.get_lane((key[0], key[1], side_lane))
            speed = max(5.0, ego.speed + float(rng.uniform(*ev.speed_delta)))
            v = IDMVehicle(
                road,
                other.position(s_ev, 0.0),
                other.heading_at(s_ev),
                speed,
                target_lane_index=(key[0], key[1], side_lane),
                target_speed=speed,
                enable_lane_change=False,
            )
            road.vehicles.append(v)
            self._cut_in = (v, float(rng.uniform(*ev.delay_s)), key)

    # ---- stepping ------------------------------------------------------------------------------
    def step(self, accel: float, steer: float) -> StepInfo:
        """Apply ``accel`` [m/s²] and front-wheel ``steer`` [rad, + left] for one tick :data:`DT`."""
        if not (np.isfinite(accel) and np.isfinite(steer)):
            raise ValueError(f"World.step: expected finite accel and steer, got ({accel}, {steer})")
        if self.done:
            raise RuntimeError(f"World.step: episode {self.episode} is over ({self.reason}); call reset()")
        env = self._env
        a = float(np.clip(accel, *ACCEL_RANGE))
        d = float(np.clip(steer, *STEER_RANGE))
        action = np.array(
            [
                np.interp(a, ACCEL_RANGE, (-1.0, 1.0)),
                np.interp(-d, (-STEER_RANGE[1], STEER_RANGE[1]), (-1.0, 1.0)),
            ]
        )
        if self._cut_in is not None:
            v, t_start, key = self._cut_in
            gap = float(np.dot(v.position - self.ego_vehicle.position, self.ego_vehicle.direction)) - EGO_SIZE[0]
            if self.time >= t_start and gap >= CUT_IN_MIN_GAP and v in env.road.vehicles:
                v.target_lane_index = key
                self._cut_in = None
        env.time += DT
        env._simulate(action)
        if self.scenario.kind == "intersection":
            env._clear_vehicles()
            per_second = float(env.config["spawn_probability"])
            env._spawn_vehicle(spawn_probability=1.0 - (1.0 - per_second) ** DT)
        self.time_ns += DT_NS
        self.time = ns_to_seconds(self.time_ns)
        if self.ego_vehicle.crashed and self.collision is None:
            self.collision = self._classify_collision()
        self._offroad = 0.0 if self.ego_vehicle.on_road else self._offroad + DT
        self._update_progress()
        if self.collision is not None:
            self.done, self.reason = True, "collision"
        elif self.route_progress >= self.route_length - 1e-6:
            self.done, self.reason = True, "route_complete"
        elif self._offroad >= OFFROAD_LIMIT_S:
            self.done, self.reason = True, "off_road"
        elif self.time >= self.scenario.duration - 1e-9:
            self.done, self.reason = True, "timeout"
        hit = self.collision is not None
        return StepInfo(self.time, hit, self.collision, self.route_progress, self.completion, self.done, self.reason)

    @property
    def crashed(self) -> bool:
        return self.collision is not None

    @property
    def completion(self) -> float:
        return float(np.clip(self.route_progress / self.route_length, 0.0, 1.0))

    def _route_index(self) -> int | None:
        key = tuple(self.ego_vehicle.lane_index)
        for k, rk in enumerate(self.route_keys):
            if rk[:2] == key[:2]:
                return k
        return None

    def _update_progress(self) -> None:
        k = self._route_index()
        if k is None:
            return
        key = tuple(self.ego_vehicle.lane_index)
        if self.target_lane is not None and k == 0 and key[2] != self.target_lane:
            return
        lane = self._env.road.network.get_lane(self.route_keys[k])
        s = self._route_cum[k] + lane.local_coordinates(self.ego_vehicle.position)[0] - self._route_s0
        self.route_progress = float(max(self.route_progress, min(s, self.route_length)))

    def _classify_collision(self) -> Collision:
        ego = self.ego_vehicle
        best, best_d = None, np.inf
        for o in [*self._env.road.vehicles, *self._env.road.objects]:
            if o is ego:
                continue
            dist = float(np.linalg.norm(o.position - ego.position))
            if (getattr(o, "crashed", False) or getattr(o, "hit", False)) and dist < best_d:
                best, best_d = o, dist
        if best is None:
            return Collision(self.time, -1, int(AgentType.VEHICLE), "front", True)
        other_type = self._agent_type(best)
        pose = self._ego_center_pose()
        rel = to_local_points(pose, to_map_xy(best.position))
        half_len = EGO_SIZE[0] / 2
        dyaw = abs(float(wrap_angle(to_map_yaw(best.heading) - pose[2])))
        lane_key = tuple(ego.lane_index)
        in_junction = self._lane_by_id[self.lane_ids[lane_key]].in_intersection
        lateral_offset = abs(ego.lane.local_coordinates(ego.position)[1])
        if ego.speed < 0.5:
            kind, at_fault = "stopped", False
        elif rel[0] < -half_len + 0.5 and dyaw < np.pi / 4:
            kind, at_fault = "rear", False
        elif abs(rel[1]) > 1.2 and abs(rel[0]) < half_len + 1.0:
            kind = "side"
            at_fault = bool(in_junction or lateral_offset > ego.lane.width_at(0) / 2 - EGO_SIZE[1] / 2 + 0.3)
        else:
            kind, at_fault = "front", True
        return Collision(self.time, self._agent_id(best), other_type, kind, at_fault)

    # ---- observation ---------------------------------------------------------------------------
    def _agent_id(self, obj) -> int:
        return self._agent_ids.setdefault(id(obj), len(self._agent_ids) + 1)

    @staticmethod
    def _agent_type(obj) -> int:
        from highway_env.vehicle.kinematics import Vehicle

        return int(AgentType.VEHICLE if isinstance(obj, Vehicle) else AgentType.STATIC)

    def _ego_center_pose(self) -> np.ndarray:
        ego = self.ego_vehicle
        xy = to_map_xy(ego.position)
        return np.array([xy[0], xy[1], float(to_map_yaw(ego.heading))])

    def ego_state(self) -> EgoState:
        """Ego state: base_link pose in the map frame; velocity, acceleration and yaw rate in base_link."""
        ego = self.ego_vehicle
        c = self._ego_center_pose()
        steer_map = -float(ego.action.get("steering", 0.0))
        beta = np.arctan(0.5 * np.tan(steer_map))
        v = float(ego.speed)
        yaw_rate = v * np.sin(beta) / (WHEELBASE / 2)
        pose = np.array([c[0] - REAR_AXLE_TO_CENTER * np.cos(c[2]), c[1] - REAR_AXLE_TO_CENTER * np.sin(c[2]), c[2]])
        vel = np.array([v * np.cos(beta), v * np.sin(beta) - REAR_AXLE_TO_CENTER * yaw_rate])
        acc = np.array([float(ego.action.get("acceleration", 0.0)), v * yaw_rate])
        return EgoState(pose=pose, velocity=vel, acceleration=acc, yaw_rate=yaw_rate, stamp_ns=self.time_ns)

    def agents(self) -> Agents:
        """Other traffic now (one time step), map frame: vehicles and static obstacles."""
        ego = self.ego_vehicle
        objs = [v for v in self._env.road.vehicles if v is not ego] + [
            o for o in self._env.road.objects if getattr(o, "collidable", True)
        ]
        if not objs:
            return Agents.empty(steps=1, dt=DT)
        ids = np.array([self._agent_id(o) for o in objs])
        types = np.array([self._agent_type(o) for o in objs])
        sizes = np.array([[o.LENGTH, o.WIDTH] for o in objs], np.float64)
        xy = to_map_xy(np.array([o.position for o in objs]))
        yaw = to_map_yaw(np.array([o.heading for o in objs], np.float64))
        vel = to_map_xy(np.array([o.velocity for o in objs]))
        poses = np.concatenate([xy, yaw[:, None]], axis=1)[:, None]
        return Agents(ids, types, sizes, poses, vel[:, None], np.ones((len(objs), 1), bool), dt=DT)

    def route_lane_ids(self) -> list[int]:
        """Map lane ids of the route from the ego's current road on (the ego's own lane where the route
        allows any lane of the road; the target lane until a requested lane change is done)."""
        net = self._env.road.network
        k = self._route_index()
        if k is None:
            return self.network.route_ids(self.route_keys)
        key = tuple(self.ego_vehicle.lane_index)
        if self.target_lane is not None and k == 0:
            key = (key[0], key[1], self.target_lane)
        keys = [key]
        for rk in self.route_keys[k + 1 :]:
            nxt = [s for s in successor_keys(net, keys[-1]) if s[:2] == rk[:2]]
            keys.append(nxt[0] if nxt else rk)
        return self.network.route_ids(keys)

    @property
    def command(self) -> str:
        if self.lane_change_side is not None and tuple(self.ego_vehicle.lane_index)[2] != self.target_lane:
            return f"lane_change_{self.lane_change_side}"
        if self.turn != "straight" and self.junction_ahead:
            return self.turn
        return "straight"

    @property
    def junction_ahead(self) -> bool:
        """The route still has its junction (intersection or roundabout) ahead or underway."""
        return len(self.route_keys) > 1 and self.route_progress < self._junction_end

    @property
    def instruction(self) -> str:
        return language.instruction(self.command, self.scenario.kind, self.junction_ahead, self.exit_number)

    def frame(self) -> LogFrame:
        """The current tick as a log frame (no futures)."""
        return LogFrame(
            stamp_ns=self.time_ns,
            episode=self.episode,
            ego=self.ego_state(),
            agents=self.agents(),
            route_lane_ids=self.route_lane_ids(),
            command=self.command,
            instruction=self.instruction,
            scenario=self.scenario.kind,
            traffic_lights={},
        )

    def lanes_near(self, pose: np.ndarray | None = None, radius: float = CROP_RADIUS, keep=()) -> list[Lane]:
        """The road network cropped to ``radius`` m around ``pose`` (default: the ego), keeping the
        route lanes (and ``keep``) whole where they would drop out."""
        pose = self.ego_state().pose if pose is None else pose
        return crop_lanes(self.lanes, pose[:2], radius, keep=[*self.route_lane_ids(), *keep])

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
