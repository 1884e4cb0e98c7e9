"""A small synthetic driving log (straight two-lane road, ego and traffic at constant speed, smooth
images) for tests and storage benchmarks that must run without the simulator."""

from __future__ import annotations

import numpy as np

from wamdiff_ros.rig import Rig
from wamdiff_ros.stamps import seconds_to_ns
from wamdiff_ros.types import Agents, AgentType, EgoState, Lane, LogFrame, TrafficLight


def synthetic_lanes(length: float = 400.0) -> list[Lane]:
    """Two parallel 3.5 m lanes along +x (ids 1: right, 2: left), then a junction connector (id 3)."""
    xs = np.linspace(0.0, length, 41)
    right = Lane(1, np.stack([xs, np.zeros_like(xs)], 1), 3.5, successors=(3,), markings=("dashed", "solid"))
    left = Lane(2, np.stack([xs, np.full_like(xs, 3.5)], 1), 3.5, markings=("solid", "dashed"))
    junction = Lane(3, [[length, 0.0], [length + 20.0, 0.0]], 3.5, in_intersection=True, markings=("none", "none"))
    return [right, left, junction]


def synthetic_frames(episode: str, ticks: int, dt: float = 0.1, speed: float = 10.0) -> list[LogFrame]:
    """Ticks of one episode: ego on lane 1 at ``speed`` m/s, a car ahead on lane 2 and a parked car.

    The car ahead leaves the log half-way through (so agent futures have invalid tails), and the
    junction light turns from green to red at the same time.
    """
    frames = []
    for k in range(ticks):
        t = k * dt
        t_ns = k * seconds_to_ns(dt)
        ids, poses, vels = [10, 11], [[20.0 + 8.0 * t, 3.5, 0.0], [60.0, -3.0, 0.1]], [[8.0, 0.0], [0.0, 0.0]]
        if k >= ticks // 2:
            ids, poses, vels = ids[1:], poses[1:], vels[1:]
        n = len(ids)
        agents = Agents(
            ids=ids,
            types=[AgentType.VEHICLE, AgentType.STATIC][-n:],
            sizes=[[4.5, 1.9], [4.0, 1.8]][-n:],
            poses=np.array(poses).reshape(n, 1, 3),
            velocities=np.array(vels).reshape(n, 1, 2),
            valid=np.ones((n, 1), bool),
        )
        light = TrafficLight.GREEN if k < ticks // 2 else TrafficLight.RED
        frames.append(
            LogFrame(
                stamp_ns=t_ns,
                episode=episode,
                ego=EgoState([speed * t, 0.0, 0.0], [speed, 0.0], [0.0, 0.0], 0.0, t_ns),
                agents=agents,
                route_lane_ids=[1, 3],
                command="straight",
                instruction="Follow the road and stop at the junction.",
                scenario="highway",
                traffic_lights={3: int(light)},
            )
        )
    return frames


def synthetic_images(rig: Rig, k: int) -> dict[str, np.ndarray]:
    """Smooth RGB images (gradients shifted with ``k``), one per rig camera, at the rig's sizes."""
    out = {}
    for i, cam in enumerate(rig.cameras):
        yy, xx = np.mgrid[0 : cam.height, 0 : cam.width]
        r = (xx * 255 // max(cam.width - 1, 1) + 3 * k) % 256
        g = (yy * 255 // max(cam.height - 1, 1) + 40 * i) % 256
        b = np.full_like(xx, (17 * k + 60 * i) % 256)
        out[cam.name] = np.stack([r, g, b], -1).astype(np.uint8)
    return out
