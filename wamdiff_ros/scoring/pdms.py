"""NAVSIM PDMS / EPDMS for a batch of candidate trajectories against one scene.

Pipeline (NAVSIM's pseudo-simulation): candidates (base_link, on ``scene.spec``'s grid) are anchored at
the ego pose, resampled to 10 Hz with the current pose prepended, tracked by the LQR controller on the
kinematic bicycle, and the simulated boxes are scored against non-reactive agents (their logged future)
and the rasterised map. Everything per candidate is array maths over the batch axis; per-scene work
(map raster, agents on the 10 Hz grid, PDM-Closed reference, human trajectory) is cached on the scene.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from wamdiff_ros.control.bicycle import StateIndex, make_states, steer_from_yaw_rate
from wamdiff_ros.control.lqr import fit_speed_curvature, matmul_rows, track, track_with_heading
from wamdiff_ros.geometry import (
    box_corner_xy,
    compose,
    interpolation_matrix,
    prepend_origin,
    resample,
    wrap_angle,
    wrap_near,
)
from wamdiff_ros.scoring import metrics as M
from wamdiff_ros.scoring.allocator import keep_heap
from wamdiff_ros.scoring.collision import (
    AgentTrack,
    EgoTrack,
    current_contacts,
    no_at_fault_collision,
    time_to_collision,
)
from wamdiff_ros.scoring.comfort import comfort, extended_comfort
from wamdiff_ros.scoring.config import ScorerConfig
from wamdiff_ros.scoring.drivable import MapRaster, build_raster
from wamdiff_ros.scoring.map_flags import box_map_flags
from wamdiff_ros.scoring.reference import PDM_LATERAL_OFFSETS, idm_proposals, offset_polyline, route_centerline
from wamdiff_ros.scoring.result import ScoreResult
from wamdiff_ros.scoring.route_distance import RouteDistance, build_route_distance
from wamdiff_ros.scoring.route_station import route_station
from wamdiff_ros.types import SceneTruth, TrafficLight

_CACHE_ATTR = "_wamdiff_scoring_prep"
_FILTERED = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc")


@dataclass
class ScenePrep:
    """Per-scene data reused across calls (cached on the scene object, keyed by a content hash)."""

    raster: MapRaster
    route: np.ndarray
    route_distance: RouteDistance
    agents: AgentTrack
    red_bits: np.ndarray
    steps: int
    initial: np.ndarray
    reference: dict | None = None
    human: dict | None = None
    extra: dict = field(default_factory=dict)


def _fingerprint(scene: SceneTruth, config: ScorerConfig) -> tuple:
    crc = 0
    for lane in scene.lanes:
        crc = zlib.crc32(lane.centerline.tobytes(), crc)
        crc = zlib.crc32(lane.width.tobytes(), crc)
        crc = zlib.crc32(repr((lane.lane_id, lane.successors, lane.in_intersection, lane.speed_limit)).encode(), crc)
    ag = scene.agents
    for arr in (ag.ids, ag.types, ag.sizes, ag.poses, ag.velocities, ag.valid):
        crc = zlib.crc32(np.ascontiguousarray(arr).tobytes(), crc)
    for k in sorted(scene.traffic_lights):
        crc = zlib.crc32(repr(k).encode() + np.asarray(scene.traffic_lights[k]).tobytes(), crc)
    e = scene.ego
    for arr in (e.pose, e.velocity, e.acceleration, np.array([e.yaw_rate, ag.dt]), scene.human_trajectory):
        crc = zlib.crc32(np.ascontiguousarray(arr).tobytes(), crc)
    return (crc, tuple(scene.route_lane_ids), scene.spec, scene.ego_size, scene.rear_axle_to_center, config)


def scene_key(scene: SceneTruth, config: ScorerConfig | None = None) -> str:
    """A hex key of everything in ``scene`` and ``config`` that scores depend on (labels cached per scene
    are filed under it)."""
    import hashlib

    return hashlib.sha256(repr(_fingerprint(scene, config or ScorerConfig())).encode()).hexdigest()[:32]


def prepare(scene: SceneTruth, config: ScorerConfig | None = None) -> ScenePrep:
    """Per-scene preparation, computed once and cached on ``scene`` (recomputed if its content changes)."""
    config = config or ScorerConfig()
    key = _fingerprint(scene, config)
    cached = scene.__dict__.get(_CACHE_ATTR)
    if cached is not None and cached[0] == key:
        return cached[1]
    spec = scene.spec
    steps = round(spec.horizon / M.SIM_DT) + 1
    fastest = max([scene.ego.speed, *(lane.speed_limit for lane in scene.lanes)])
    radius = config.raster_margin + spec.horizon * fastest + scene.ego_size[0]
    raster = build_raster(scene.lanes, scene.ego.pose[:2], radius, config.raster_resolution, config.junction_widening)

    ag = scene.agents
    j = np.round(np.arange(steps) * M.SIM_DT / ag.dt).astype(int)
    in_range = j < ag.num_steps
    jc = np.clip(j, 0, max(ag.num_steps - 1, 0))
    if len(ag) and ag.num_steps:
        poses = ag.poses[:, jc]
        vel = ag.velocities[:, jc]
        valid = ag.valid[:, jc] & in_range[None]
    else:
        poses, vel, valid = np.zeros((0, steps, 3)), np.zeros((0, steps, 2)), np.zeros((0, steps), bool)
    agents = AgentTrack(
        center=poses[..., :2],
        yaw=poses[..., 2],
        speed=np.hypot(vel[..., 0], vel[..., 1]),
        valid=valid,
        half_length=ag.sizes[:, 0] / 2,
        half_width=ag.sizes[:, 1] / 2,
        types=ag.types,
    )
    red_bits = np.zeros((steps, raster.words), np.uint64)
    for lane_id, light in scene.traffic_lights.items():
        if lane_id not in raster.lane_ids:
            continue
        light_states = np.asarray(light)
        jl = np.clip(j, 0, len(light_states) - 1)
        red = (light_states[jl] == TrafficLight.RED) & (j < len(light_states))
        red_bits[red] |= raster.lane_mask([raster.lane_ids.index(lane_id)])

    e = scene.ego
    initial = make_states(
        e.pose, speed=e.speed, accel=e.acceleration[0], steer=steer_from_yaw_rate(e.speed, e.yaw_rate, config.bicycle)
    )[None]
    initial[0, StateIndex.YAW_RATE] = e.yaw_rate
    route = route_centerline(scene)
    route_distance = build_route_distance(route, raster.origin, raster.upper, M.LK_DEVIATION)
    prep = ScenePrep(raster, route, route_distance, agents, red_bits, steps, initial[0])
    scene.__dict__[_CACHE_ATTR] = (key, prep)
    return prep


def as_trajectories(trajectories, scene: SceneTruth) -> np.ndarray:
    """Validate candidates (numpy or torch, (G, T, 3) or (T, 3)) and return a float64 (G, T, 3) array."""
    if hasattr(trajectories, "detach"):
        trajectories = trajectories.detach().cpu().numpy()
    arr = np.asarray(trajectories, np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    t = scene.spec.num_poses
    if arr.ndim != 3 or arr.shape[1:] != (t, 3) or not len(arr):
        raise ValueError(f"trajectories: expected shape (G >= 1, {t}, 3) or ({t}, 3) for {scene.spec}, got {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=(1, 2)))
    if len(bad):
        raise ValueError(f"trajectories: candidates {bad[:10].tolist()} contain non-finite values")
    return arr


@lru_cache(maxsize=16)
def _to_sim_grid(spec, steps: int) -> np.ndarray:
    """(steps, T + 1) weights from the ego pose now and the candidate grid of ``spec`` to the 10 Hz grid."""
    return interpolation_matrix(np.concatenate([[0.0], spec.times]), M.SIM_DT * np.arange(steps))


def simulate(
    trajectories: np.ndarray, scene: SceneTruth, config: ScorerConfig, prep: ScenePrep
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Track base_link candidates (G, T, 3) from the scene's ego state: map-frame states (G, N, 9) at 10 Hz,
    and the cos and sin (G, N) of their headings.

    The candidates go to the 10 Hz grid as :func:`~wamdiff_ros.geometry.resample` would take them (yaw
    unwrapped, linear, yaw wrapped), as one matrix product per pose component."""
    poses = compose(scene.ego.pose, trajectories)
    full = np.empty((3, len(poses), poses.shape[1] + 1))
    full[:, :, 0] = np.asarray(scene.ego.pose, np.float64)[:, None]
    full[0, :, 1:], full[1, :, 1:] = poses[..., 0], poses[..., 1]
    full[2, :, 1:] = poses[..., 2]
    full[2] = np.unwrap(full[2], axis=-1)
    ref = matmul_rows(full, _to_sim_grid(scene.spec, prep.steps).T)
    wrap_angle(ref[2], out=ref[2])
    states, cos_yaw, sin_yaw = track_with_heading(
        np.moveaxis(ref, 0, -1), prep.initial, M.SIM_DT, config.lqr, config.bicycle
    )
    return states, (cos_yaw, sin_yaw)


def _lane_keeping(exceed: np.ndarray, skip: np.ndarray) -> np.ndarray:
    need = int(np.ceil(M.LK_WINDOW / M.SIM_DT - 1e-9))
    run = np.zeros(exceed.shape[0], np.int64)
    ok = np.ones(exceed.shape[0], bool)
    for t in range(exceed.shape[1]):
        run = np.where(skip[:, t], run, np.where(exceed[:, t], run + 1, 0))
        ok &= run < need
    return ok.astype(np.float64)


def evaluate(
    states: np.ndarray,
    scene: SceneTruth,
    config: ScorerConfig,
    prep: ScenePrep,
    heading: tuple[np.ndarray, np.ndarray],
) -> dict[str, np.ndarray]:
    """Every sub-metric except the normalised EP and EC, for simulated states (G, N, 9) and the cos and
    sin (G, N) of their yaw (:func:`simulate` returns both)."""
    raster = prep.raster
    length, width = scene.ego_size
    rac = scene.rear_axle_to_center
    yaw = states[..., StateIndex.YAW]
    center_xy = states[..., StateIndex.X] + rac * heading[0], states[..., StateIndex.Y] + rac * heading[1]
    center = np.stack(center_xy, -1)
    corners = box_corner_xy(center, *heading, length, width)
    rear_xy = states[..., StateIndex.X], states[..., StateIndex.Y]
    flags = box_map_flags(raster, corners, center_xy, rear_xy, prep.red_bits)
    offroad = flags.offroad

    seg = raster.segment_at(*center_xy)
    has = seg >= 0
    sc = np.where(has, seg, 0)
    ang = np.abs(wrap_near(raster.seg_heading[sc] - yaw)) if len(raster.seg_heading) else np.zeros_like(yaw)
    oncoming = has & (ang > np.deg2rad(M.ONCOMING_ANGLE_DEG))
    off_route = prep.route_distance.exceeds(*center_xy)

    step = np.zeros(yaw.shape)
    dx, dy = (np.diff(c, axis=1) for c in center_xy)
    step[:, 1:] = np.sqrt(dx * dx + dy * dy)
    step[~oncoming] = 0.0
    win = round(M.DDC_HORIZON / M.SIM_DT) + 1
    cs = np.cumsum(step, axis=1)
    window = cs.copy()
    window[:, win:] -= cs[:, :-win]
    oncoming_max = window.max(1)
    ddc = np.where(oncoming_max < M.DDC_COMPLIANCE, 1.0, np.where(oncoming_max < M.DDC_VIOLATION, 0.5, 0.0))

    speed = np.abs(states[..., StateIndex.V])
    ego = EgoTrack(
        states[..., :3],
        center,
        speed,
        length / 2,
        width / 2,
        flags.multi_lane | offroad,
        flags.rear_in_intersection,
        *heading,
    )
    now = current_contacts(ego, prep.agents)
    nc, t_nc = no_at_fault_collision(ego, prep.agents, now)
    ttc, t_ttc = time_to_collision(ego, prep.agents, now=now)

    s_start = route_station(center[:1, 0], prep.route)
    s_end = route_station(center[:, -1], prep.route)
    progress = np.maximum(s_end - s_start, 0.0)
    hc, c = comfort(states, M.SIM_DT, rac, config.physical_lateral_accel)
    return {
        "nc": nc,
        "dac": (~offroad.any(1)).astype(np.float64),
        "ddc": ddc,
        "tlc": (~flags.red_light).astype(np.float64),
        "ttc": ttc,
        "lk": _lane_keeping(off_route, flags.center_in_intersection),
        "hc": hc.astype(np.float64),
        "c": c.astype(np.float64),
        "progress": progress,
        "oncoming_progress": oncoming_max,
        "collision_time": t_nc * M.SIM_DT,
        "ttc_time": t_ttc * M.SIM_DT,
    }


def _best_masked(masked: np.ndarray, best_other: float | np.ndarray, batch: bool) -> np.ndarray:
    best = np.maximum(masked.max(initial=0.0), best_other) if batch else np.maximum(masked, best_other)
    return np.broadcast_to(best, masked.shape)


def normalise_progress(
    progress: np.ndarray, multiplicative: np.ndarray, best_other: float | np.ndarray, batch: bool
) -> np.ndarray:
    """NAVSIM v1.1 EP (PDMS): masked progress over the best masked progress; 1 (0 if masked out) when the
    best ≤ 5 m.

    ``best_other`` is the reference's masked progress (0 for none); with ``batch`` the whole batch's best
    also enters the denominator, else each candidate is paired with the reference alone.
    """
    masked = progress * multiplicative
    best = _best_masked(masked, best_other, batch)
    return np.where(best > M.EP_MIN_PROGRESS, masked / np.where(best > 0, best, 1.0), (multiplicative != 0) * 1.0)


def normalise_progress_v2(
    progress: np.ndarray, multiplicative: np.ndarray, best_other: float | np.ndarray, batch: bool
) -> np.ndarray:
    """NAVSIM v2 EP (EPDMS): *raw* progress over the best masked progress, clipped to [0, 1]; 1 for every
    candidate when the best ≤ 5 m. Arguments as :func:`normalise_progress`."""
    best = _best_masked(progress * multiplicative, best_other, batch)
    ratio = np.clip(progress / np.where(best > 0, best, 1.0), 0.0, 1.0)
    return np.where(best > M.EP_MIN_PROGRESS, ratio, 1.0)


def _pdms(m: dict[str, np.ndarray], ep: np.ndarray) -> np.ndarray:
    return m["nc"] * m["dac"] * (M.W_TTC * m["ttc"] + M.W_EP * ep + M.W_C * m["c"]) / (M.W_TTC + M.W_EP + M.W_C)


def _reference(scene: SceneTruth, config: ScorerConfig, prep: ScenePrep) -> dict:
    if prep.reference is None:
        lines = [offset_polyline(prep.route, o) for o in PDM_LATERAL_OFFSETS]
        props = idm_proposals(scene, lines)
        states, heading = simulate(props, scene, config, prep)
        m = evaluate(states, scene, config, prep, heading)
        multi1 = m["nc"] * m["dac"]
        pdms = _pdms(m, normalise_progress(m["progress"], multi1, 0.0, batch=True))
        b = int(np.argmax(pdms))
        multi2 = multi1 * m["ddc"] * m["tlc"]
        prep.reference = {
            "trajectory": props[b],
            "masked_v1": float(m["progress"][b] * multi1[b]),
            "masked_v2": float(m["progress"][b] * multi2[b]),
        }
    return prep.reference


def pdm_closed_reference(scene: SceneTruth, config: ScorerConfig | None = None) -> np.ndarray:
    """(T, 3) base_link: the best PDM-Closed-style proposal (route centre line offset by −1/0/+1 m × five
    IDM speed fractions) by PDMS with EP normalised over the proposals. Cached per scene."""
    config = config or ScorerConfig()
    return _reference(scene, config, prepare(scene, config))["trajectory"].copy()


def _human(scene: SceneTruth, config: ScorerConfig, prep: ScenePrep) -> dict[str, float]:
    if prep.human is None:
        states, heading = simulate(scene.human_trajectory[None], scene, config, prep)
        m = evaluate(states, scene, config, prep, heading)
        multi2 = m["nc"] * m["dac"] * m["ddc"] * m["tlc"]
        m["ep"] = normalise_progress_v2(m["progress"], multi2, 0.0, batch=True)
        prep.human = {k: float(m[k][0]) for k in _FILTERED}
    return prep.human


def _extended_comfort(states: np.ndarray, scene: SceneTruth, config: ScorerConfig) -> np.ndarray:
    ones = np.ones(len(states))
    gap = scene.previous_plan_offset
    if scene.previous_plan is None or not 0 < gap < M.EC_MAX_GAP:
        return ones
    prev = scene.previous_plan
    if prev.shape != (scene.spec.num_poses, 3):
        raise ValueError(f"SceneTruth.previous_plan: expected shape ({scene.spec.num_poses}, 3), got {prev.shape}")
    k = round(gap / M.SIM_DT)
    if k < 1:
        return ones
    times = np.concatenate([[0.0], scene.spec.times])
    ref = resample(prepend_origin(prev), times, M.SIM_DT * np.arange(states.shape[1]))[None]
    v, kappa = fit_speed_curvature(ref, M.SIM_DT)
    steer = np.arctan(kappa[0, 0] * config.bicycle.wheelbase)
    init = make_states(
        np.zeros(3), speed=v[0, 0], steer=np.clip(steer, -config.bicycle.max_steer, config.bicycle.max_steer)
    )
    prev_states = track(ref, init, M.SIM_DT, config.lqr, config.bicycle)[0]
    return extended_comfort(states, prev_states, k, M.SIM_DT, config.physical_lateral_accel)


def score(trajectories, scene: SceneTruth, config: ScorerConfig | None = None) -> ScoreResult:
    """Score candidates (G, T, 3) or (T, 3) (numpy or torch; base_link relative to ``scene.ego.pose`` on
    ``scene.spec``'s grid) with NAVSIM's sub-metrics, PDMS and EPDMS. Returns numpy arrays of shape (G,).

    EP pairs each candidate with the PDM-Closed reference (see :class:`ScorerConfig`). EC compares each
    candidate's simulation with that of ``scene.previous_plan`` (1 when there is none). With
    ``config.human_filter`` the human trajectory is simulated and scored once per scene (cached), and
    every EPDMS sub-metric the human fails (= 0) counts as 1 for the candidates (NAVSIM v2's filter).
    """
    keep_heap()
    config = config or ScorerConfig()
    traj = as_trajectories(trajectories, scene)
    prep = prepare(scene, config)
    states, heading = simulate(traj, scene, config, prep)
    m = evaluate(states, scene, config, prep, heading)
    multi1 = m["nc"] * m["dac"]
    multi2 = multi1 * m["ddc"] * m["tlc"]
    batch = config.ep_normalization == "batch"
    if config.use_reference:
        ref = _reference(scene, config, prep)
        ref1, ref2, ref_prog = ref["masked_v1"], ref["masked_v2"], ref["masked_v2"]
    else:
        ref1 = ref2 = 0.0
        ref_prog = float("nan")
    ep_pdms = normalise_progress(m["progress"], multi1, ref1, batch)
    ep = normalise_progress_v2(m["progress"], multi2, ref2, batch)
    ec = _extended_comfort(states, scene, config)
    m["ep"] = ep

    human: dict[str, float] = {}
    filtered = {k: m[k] for k in _FILTERED}
    if config.human_filter:
        human = _human(scene, config, prep)
        filtered = {k: np.where(human[k] == 0.0, 1.0, m[k]) for k in _FILTERED}
    f = filtered
    weighted = (M.W_EP * f["ep"] + M.W_TTC * f["ttc"] + M.W_LK * f["lk"] + M.W_HC * f["hc"] + M.W_EC * ec) / (
        M.W_EP + M.W_TTC + M.W_LK + M.W_HC + M.W_EC
    )
    epdms = f["nc"] * f["dac"] * f["ddc"] * f["tlc"] * weighted
    return ScoreResult(
        nc=m["nc"],
        dac=m["dac"],
        ddc=m["ddc"],
        tlc=m["tlc"],
        ep=ep,
        ttc=m["ttc"],
        lk=m["lk"],
        hc=m["hc"],
        ec=ec,
        c=m["c"],
        pdms=_pdms(m, ep_pdms),
        epdms=epdms,
        progress=m["progress"],
        ep_pdms=ep_pdms,
        oncoming_progress=m["oncoming_progress"],
        collision_time=m["collision_time"],
        ttc_time=m["ttc_time"],
        reference_progress=ref_prog,
        human=dict(human),
        filtered=dict(filtered),
        states=states if config.keep_states else None,
    )
