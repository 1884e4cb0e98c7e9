"""Expert driver in the PDM-Closed style: the demonstrator of the embedded world and a baseline.

Each tick it builds candidate centre lines (the ego's lane, the lanes beside it going the same way,
the route lane when a lane change is requested; every line follows the route through junctions),
blends each from the ego's current lateral offset so a lane change is a smooth S rather than a jump,
turns them into IDM proposals at several target-speed fractions with the scorer's
:func:`~wamdiff_ros.scoring.idm_proposals` (plus hard-braking ones), scores all of them with the
scorer's :func:`~wamdiff_ros.scoring.score` (PDMS) against other agents predicted at constant
velocity, plus one constant-speed hypothesis per lane-graph path a vehicle could take (boxes
inflated by a safety margin), and picks the best after small preferences: the route lane, the lane
it is already heading for (hysteresis), and fewer lane changes. The chosen plan is tracked by
:class:`~wamdiff_ros.control.tracker.Tracker`.

Junctions (highway-env's are unsignalised and its traffic does not yield to the ego): a virtual
yield line at the junction entry gives proposals that stop before it; a proposal may enter only with
a clean time-to-collision and must not end stopped inside the junction.

Speed limits fed to the proposals are capped by lane curvature (``sqrt(a_lat / κ)``), since
highway-env's roundabout lanes carry a 20 m/s limit on a 20–24 m radius.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from wamdiff_ros.geometry import arc_length, curvature, interpolate_polyline, project_to_polyline, wrap_angle
from wamdiff_ros.sim.roadnet import LaneMap, crop_lanes
from wamdiff_ros.types import (
    Agents,
    AgentType,
    Lane,
    LogFrame,
    PlanResult,
    SceneTruth,
    TrafficLight,
    Trajectory,
    TrajectorySpec,
)

PREDICTION_DT = 0.1
"""Step of the constant-velocity agent prediction [s] (the scorer's 10 Hz)."""


@dataclass(frozen=True)
class ExpertParams:
    """Attributes:
    speed_fractions: IDM target speeds as fractions of the (curvature-capped) speed limit.
    brake_decel: deceleration of the extra hard-braking proposals [m/s²] (PDM-Closed's IDM brakes at 3).
    lookahead: length of each candidate centre line ahead of the ego [m].
    lateral_accel: comfortable lateral acceleration for the curvature speed cap [m/s²].
    blend_time: a lane change spreads over this many seconds of travel (at least ``blend_min`` m).
    agent_margin: (length, width) added to other agents' boxes when scoring [m].
    agent_range: agents farther than this from the ego are ignored [m].
    line_spacing: candidate centre lines are resampled to this point spacing [m].
    scene_radius: lanes farther than this are left out of the scoring scene [m].
    lane_spacing: point spacing of the scoring scene's lanes [m].
    route_bonus: added to the score of candidates on the route lane (requested lane changes) [-].
    keep_bonus: added to the candidate that continues the previous choice [-].
    change_cost: subtracted from candidates that leave the ego's lane without the route asking [-].
    min_progress_gain: a discretionary lane change also needs this much more proposal progress [m].
    yield_fractions: speed fractions of the proposals that stop at a junction's entry (a virtual yield line).
    junction_min_speed: proposals ending inside a junction the ego has not entered must still be moving
        at least this fast [m/s] (no stopping in the box).
    """

    speed_fractions: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0)
    brake_decel: float = 5.0
    lookahead: float = 140.0
    lateral_accel: float = 2.5
    blend_time: float = 2.8
    blend_min: float = 20.0
    agent_margin: tuple[float, float] = (1.0, 0.3)
    agent_range: float = 100.0
    line_spacing: float = 2.0
    scene_radius: float = 130.0
    lane_spacing: float = 3.0
    route_bonus: float = 0.15
    keep_bonus: float = 0.04
    change_cost: float = 0.06
    min_progress_gain: float = 8.0
    yield_fractions: tuple[float, ...] = (0.5, 1.0)
    junction_min_speed: float = 3.0


@dataclass
class Candidate:
    """A centre line the expert considers: its lanes, map-frame polyline (N, 2) and label."""

    lanes: list[int]
    line: np.ndarray
    label: str
    on_route: bool = False
    speed_limit: float = 30.0
    junction: tuple[float, float] | None = None
    """Arc-length span ``(enter, leave)`` of the first junction ahead along ``line`` [m] (None: none)."""
    entry_lanes: tuple[int, ...] = ()
    """Junction lanes of the chain the ego is not on yet: a virtual yield line sits at their start."""


def resample_line(line: np.ndarray, spacing: float) -> np.ndarray:
    """A polyline (N, 2) resampled at about ``spacing`` m, keeping both ends."""
    cum = arc_length(line)
    n = max(2, int(np.ceil(cum[-1] / spacing)) + 1)
    return interpolate_polyline(line, np.linspace(0.0, cum[-1], n))[:, :2]


def blend_line(line: np.ndarray, pose: np.ndarray, distance: float) -> np.ndarray:
    """``line`` (N, 2) bent so it starts at ``pose`` (rear axle) with the pose's heading and merges into
    the line ``distance`` m later: a cubic Hermite lateral offset (value and slope matched at the ego,
    both zero at the end), so successive replans continue one manoeuvre instead of restarting it."""
    s, d, h = project_to_polyline(pose[:2], line)
    cum = arc_length(line)
    tang = np.gradient(line, axis=0)
    tang /= np.maximum(np.linalg.norm(tang, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-tang[:, 1], tang[:, 0]], axis=1)
    slope = float(np.tan(np.clip(wrap_angle(pose[2] - h), -0.5, 0.5)))
    t = np.clip((cum - float(s)) / max(distance, 1e-3), 0.0, 1.0)
    offset = float(d) * (2 * t**3 - 3 * t**2 + 1) + slope * distance * (t**3 - 2 * t**2 + t)
    offset[cum < s] = float(d)
    return line + offset[:, None] * normal


def curvature_speed_cap(line: np.ndarray, start_s: float, horizon: float, lateral_accel: float) -> float:
    """Highest speed [m/s] keeping lateral acceleration below ``lateral_accel`` on the stretch
    ``[start_s, start_s + horizon]`` of a polyline."""
    cum = arc_length(line)
    sel = (cum >= start_s - 2.0) & (cum <= start_s + horizon)
    if sel.sum() < 5:
        return np.inf
    pts = line[sel]
    heading = np.unwrap(np.arctan2(*np.diff(pts, axis=0).T[::-1]))
    poses = np.concatenate([pts[:-1], heading[:, None]], axis=1)
    step = np.maximum(np.diff(cum[sel]), 1e-3).mean()
    kappa = np.abs(curvature(poses, step))
    k = float(np.convolve(kappa, np.ones(5) / 5, mode="same").max()) if len(kappa) >= 5 else float(kappa.max())
    return float(np.sqrt(lateral_accel / k)) if k > 1e-4 else np.inf


HYPOTHESIS_ID_STRIDE = 1_000_000
"""Extra prediction hypotheses of agent ``i`` get ids ``i + k·stride`` (k = 1, 2, …)."""


def predict_agents(
    agents: Agents, horizon: float, margin: tuple[float, float], lane_map: LaneMap | None = None
) -> Agents:
    """Agents (now: index 0) rolled out at constant velocity for ``horizon`` s, boxes grown by ``margin``.

    With a ``lane_map``, every moving vehicle found on a lane also gets one hypothesis per path it could
    take along the lane graph at constant speed (where that path departs from the constant-velocity
    one by more than a metre): at a junction the expert yields to all of a vehicle's possible turns.
    """
    steps = round(horizon / PREDICTION_DT) + 1
    t = PREDICTION_DT * np.arange(steps)
    now = agents.poses[:, 0]
    vel = agents.velocities[:, 0]
    poses = np.repeat(now[:, None], steps, axis=1)
    poses[:, :, :2] += vel[:, None] * t[None, :, None]
    rows = [
        (agents.ids, agents.types, agents.sizes, poses, np.repeat(vel[:, None], steps, axis=1), agents.valid[:, :1])
    ]
    if lane_map is not None:
        for a in range(len(agents)):
            speed = float(np.linalg.norm(vel[a]))
            if speed < 0.5 or agents.types[a] != AgentType.VEHICLE:
                continue
            loc = lane_map.locate(now[a], max_offset=2.5, max_heading=np.pi / 4)
            if loc is None:
                continue
            lane_id, s, _ = loc
            k = 0
            for chain in lane_map.branches(lane_id, s, speed * horizon + 5.0, limit=4):
                line = lane_map.polyline(chain, s, back=2.0)
                s0 = float(project_to_polyline(now[a, :2], line)[0])
                path = interpolate_polyline(line, s0 + speed * t)
                if np.linalg.norm(path[-1, :2] - poses[a, -1, :2]) < 1.0:
                    continue
                k += 1
                v = speed * np.stack([np.cos(path[:, 2]), np.sin(path[:, 2])], axis=1)
                rows.append(
                    (
                        agents.ids[a : a + 1] + k * HYPOTHESIS_ID_STRIDE,
                        agents.types[a : a + 1],
                        agents.sizes[a : a + 1],
                        path[None],
                        v[None],
                        agents.valid[a : a + 1, :1],
                    )
                )
    ids, types, sizes, p, v, valid = (np.concatenate(x) for x in zip(*rows))
    return Agents(
        ids,
        types,
        sizes + np.asarray(margin, np.float64),
        p,
        v,
        np.repeat(valid, steps, axis=1),
        dt=PREDICTION_DT,
    )


class Expert:
    """PDM-Closed-style rule-based planner over ground truth (frame + lanes); see the module docstring."""

    name = "expert"

    def __init__(self, params: ExpertParams | None = None, spec: TrajectorySpec | None = None, scorer_config=None):
        from wamdiff_ros.scoring import ScorerConfig

        self.params = params or ExpertParams()
        self.spec = spec or TrajectorySpec()
        self.scorer_config = scorer_config or ScorerConfig(
            human_filter=False, use_reference=False, ep_normalization="batch", raster_resolution=0.25
        )
        self.reset()

    def reset(self) -> None:
        self._previous_lanes: list[int] = []
        self._previous_plan: np.ndarray | None = None

    # ---- candidates ----------------------------------------------------------------------------
    def candidates(self, frame: LogFrame, lanes: list[Lane]) -> list[Candidate]:
        """Candidate centre lines for this frame (possibly empty when the ego is on no lane)."""
        p = self.params
        lm = LaneMap(lanes)
        pose = frame.ego.pose
        route = [i for i in frame.route_lane_ids if i in lm]
        loc = lm.locate(pose) or lm.locate(pose, max_offset=8.0, max_heading=np.pi / 2)
        if loc is None:
            return []
        own = loc[0]
        starts: list[tuple[int, str]] = [(own, "keep")]
        for side, label in ((1, "left"), (-1, "right")):
            j = lm.side_lane(own, pose[:2], side)
            if j is not None:
                starts.append((j, label))
        if route and route[0] != own and all(route[0] != j for j, _ in starts):
            starts.append((route[0], "route"))
        out = []
        for lane_id, label in starts:
            s, d, _ = lm.project(lane_id, pose[:2])
            chain = lm.follow(lane_id, s, p.lookahead, prefer=route)
            line = resample_line(lm.polyline(chain, s, back=10.0), p.line_spacing)
            w = float(np.median(lm.lanes[lane_id].width))
            blend = p.blend_time * max(frame.ego.speed, 0.0) * min(1.0, abs(d) / w)
            line = blend_line(line, pose, max(p.blend_min, blend))
            s_line = float(project_to_polyline(pose[:2], line)[0])
            limit = min(lm.lanes[j].speed_limit for j in chain[:2])
            cap = curvature_speed_cap(line, s_line, max(40.0, 4.0 * frame.ego.speed), p.lateral_accel)
            on_route = bool(route) and (lane_id in route or bool(set(chain) & set(route[:1])))
            junction, entry = self._junction(lm, chain, line)
            out.append(Candidate(chain, line, label, on_route, float(min(limit, cap)), junction, entry))
        return out

    @staticmethod
    def _junction(lm: LaneMap, chain: list[int], line: np.ndarray) -> tuple[tuple[float, float] | None, tuple]:
        """Span of the first run of junction lanes along ``line`` and the entry lanes ahead of the ego."""
        flags = [lm.lanes[j].in_intersection for j in chain]
        if not any(flags):
            return None, ()
        a = flags.index(True)
        b = a
        while b + 1 < len(chain) and flags[b + 1]:
            b += 1
        enter = float(project_to_polyline(lm.lanes[chain[a]].centerline[0], line)[0])
        leave = float(project_to_polyline(lm.lanes[chain[b]].centerline[-1], line)[0])
        return (enter, leave), (tuple(chain[a : b + 1]) if a > 0 else ())

    def scene(self, frame: LogFrame, lanes: list[Lane]) -> SceneTruth:
        """The scoring scene of a live frame: agents predicted at constant velocity, no human log, lanes
        within ``scene_radius`` resampled every ``lane_spacing`` m (the drivable-area raster is built from
        them each tick), no previous plan (EC plays no part in the choice)."""
        p = self.params
        keep = set(frame.route_lane_ids)
        lanes = [
            Lane(
                lane.lane_id,
                resample_line(lane.centerline, p.lane_spacing),
                float(np.median(lane.width)),
                lane.successors,
                lane.in_intersection,
                lane.speed_limit,
                lane.markings,
            )
            for lane in crop_lanes(lanes, frame.ego.pose[:2], p.scene_radius, keep=keep)
        ]
        ag = frame.agents
        near = np.linalg.norm(ag.poses[:, 0, :2] - frame.ego.pose[:2], axis=1) <= p.agent_range
        ag = Agents(
            ag.ids[near], ag.types[near], ag.sizes[near], ag.poses[near], ag.velocities[near], ag.valid[near], ag.dt
        )
        agents = predict_agents(ag, self.spec.horizon, p.agent_margin, LaneMap(lanes))
        return SceneTruth(
            ego=frame.ego,
            lanes=lanes,
            route_lane_ids=[i for i in frame.route_lane_ids if any(lane.lane_id == i for lane in lanes)],
            agents=agents,
            human_trajectory=np.zeros((self.spec.num_poses, 3)),
            spec=self.spec,
            scenario=frame.scenario,
        )

    # ---- planning ------------------------------------------------------------------------------
    def plan(self, frame: LogFrame, lanes: list[Lane], images=None) -> PlanResult:
        """Best proposal for ``frame``; falls back to a straight comfortable stop when no lane is found."""
        from wamdiff_ros.scoring import idm_proposals, score

        t0 = time.perf_counter()
        p = self.params
        cands = self.candidates(frame, lanes)
        if not cands:
            return self._fallback(frame, t0)
        scene = self.scene(frame, lanes)
        lines = [c.line for c in cands]
        limits = [c.speed_limit for c in cands]
        props = idm_proposals(scene, lines, p.speed_fractions, speed_limits=limits)
        hard = idm_proposals(scene, lines, (0.0,), speed_limits=limits, decel_max=p.brake_decel)
        trajs = [props, hard]
        owner = [np.repeat(np.arange(len(cands)), len(p.speed_fractions)), np.arange(len(cands))]
        yielding = [i for i, c in enumerate(cands) if c.entry_lanes]
        if yielding:
            steps = round(self.spec.horizon / PREDICTION_DT) + 1
            lights = {j: np.full(steps, int(TrafficLight.RED)) for i in yielding for j in cands[i].entry_lanes[:1]}
            scene.traffic_lights = lights
            trajs.append(
                idm_proposals(
                    scene, [lines[i] for i in yielding], p.yield_fractions, speed_limits=[limits[i] for i in yielding]
                )
            )
            scene.traffic_lights = {}
            owner.append(np.repeat(np.array(yielding), len(p.yield_fractions)))
        trajs = np.concatenate(trajs)
        owner = np.concatenate(owner)
        t1 = time.perf_counter()
        res = score(trajs, scene, self.scorer_config)
        t2 = time.perf_counter()

        value = np.array(res.pdms, np.float64).copy()
        wants_change = frame.command.startswith("lane_change")
        keep = next((i for i, c in enumerate(cands) if c.label == "keep"), 0)
        safe = (np.asarray(res.nc) * np.asarray(res.dac)) > 0
        best_keep_progress = float(np.max(np.where((owner == keep) & safe, res.progress, 0.0)))
        for i, c in enumerate(cands):
            sel = owner == i
            if c.on_route and (wants_change or c.label == "route"):
                value[sel] += p.route_bonus
            if self._previous_lanes and set(c.lanes) & set(self._previous_lanes[:2]):
                value[sel] += p.keep_bonus
            if c.label != "keep" and not (c.on_route and wants_change):
                value[sel] -= p.change_cost
                value[sel & (res.progress < best_keep_progress + p.min_progress_gain)] -= 1.0
        stops, enters = self._junction_checks(trajs, owner, cands, frame)
        value[stops | (enters & (np.asarray(res.ttc) < 1.0))] -= 1.0
        value += 0.1 * np.clip(np.asarray(res.collision_time, np.float64), 0.0, self.spec.horizon) / self.spec.horizon
        best = int(np.argmax(value))
        chosen = cands[owner[best]]
        self._previous_lanes = chosen.lanes
        self._previous_plan = trajs[best]
        traj = Trajectory(trajs[best], self.spec, "base_link", frame.stamp_ns)
        order = np.argsort(-value)[:16]
        return PlanResult(
            trajectory=traj,
            candidates=trajs[order],
            candidate_scores=value[order],
            mode="fast",
            timings_ms={
                "propose": 1e3 * (t1 - t0),
                "score": 1e3 * (t2 - t1),
                "total": 1e3 * (time.perf_counter() - t0),
            },
            info={"lane": chosen.label, "lanes": chosen.lanes[:3], "score": res.row(best)},
        )

    def _junction_checks(self, trajs: np.ndarray, owner: np.ndarray, cands: list[Candidate], frame: LogFrame):
        """Two (P,) masks over proposals toward a junction the ego has not entered yet: ``stops`` where it
        would end slowly with the ego box inside (don't enter a junction you cannot clear) and ``enters``
        where it reaches into the junction at all (entering also needs a clean time-to-collision)."""
        from wamdiff_ros.geometry import compose

        out = np.zeros(len(trajs), bool)
        enters = np.zeros(len(trajs), bool)
        end_speed = np.linalg.norm(trajs[:, -1, :2] - trajs[:, -2, :2], axis=1) / self.spec.dt
        ends = compose(frame.ego.pose, trajs[:, -1])
        rear, front = 1.0, 4.0
        for i, c in enumerate(cands):
            if c.junction is None or not c.entry_lanes:
                continue
            sel = np.flatnonzero(owner == i)
            s_end = project_to_polyline(ends[sel, :2], c.line)[0]
            inside = (s_end + front > c.junction[0] + 0.5) & (s_end - rear < c.junction[1])
            out[sel] = inside & (end_speed[sel] < self.params.junction_min_speed)
            enters[sel] = s_end + front > c.junction[0] + 0.5
        return out, enters

    def _fallback(self, frame: LogFrame, t0: float) -> PlanResult:
        v = max(frame.ego.speed, 0.0)
        t = self.spec.times
        decel = 3.0
        s = np.where(t < v / decel, v * t - 0.5 * decel * t**2, v * v / (2 * decel))
        poses = np.stack([s, np.zeros_like(s), np.zeros_like(s)], axis=1)
        self._previous_plan = poses
        return PlanResult(
            trajectory=Trajectory(poses, self.spec, "base_link", frame.stamp_ns),
            mode="fallback",
            timings_ms={"total": 1e3 * (time.perf_counter() - t0)},
            info={"lane": "none"},
        )
