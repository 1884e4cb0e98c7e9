"""Open-loop planning metrics against the logged ego future: L2 at 1/2/3 s, ADE, FDE and box collision rate.

Two conventions are in use in the literature and both are returned: UniAD reports the value *at* each
horizon (``l2_1s``, ``col_1s``); VAD / ST-P3 report the mean over all poses *up to* it (``l2_avg_1s``,
``col_avg_1s``). Collisions are the ego box (placed at each planned pose, no tracking) overlapping an
agent's box at the same time.
"""

from __future__ import annotations

import numpy as np

from wamdiff_ros.geometry import compose
from wamdiff_ros.scoring import metrics as M
from wamdiff_ros.scoring.collision import obb_overlap
from wamdiff_ros.scoring.pdms import as_trajectories
from wamdiff_ros.types import SceneTruth


def open_loop_metrics(trajectories, scene: SceneTruth, horizons=M.OPEN_LOOP_HORIZONS) -> dict[str, np.ndarray]:
    """Open-loop metrics of candidates (G, T, 3) or (T, 3) (numpy or torch) against ``scene.human_trajectory``.

    Returns (G,) arrays: ``ade``, ``fde`` [m], and per horizon ``h`` that lies on the trajectory grid:
    ``l2_{h}s``, ``l2_avg_{h}s`` [m], ``col_{h}s``, ``col_avg_{h}s`` (collision indicator / rate).
    """
    traj = as_trajectories(trajectories, scene)
    gt = scene.human_trajectory
    times = scene.spec.times
    err = np.linalg.norm(traj[..., :2] - gt[None, :, :2], axis=-1)

    poses = compose(scene.ego.pose, traj)
    rac = scene.rear_axle_to_center
    center = poses[..., :2] + rac * np.stack([np.cos(poses[..., 2]), np.sin(poses[..., 2])], -1)
    ag = scene.agents
    col = np.zeros(err.shape, bool)
    if len(ag) and ag.num_steps:
        j = np.round(times / ag.dt).astype(int)
        ok = j < ag.num_steps
        jc = np.clip(j, 0, ag.num_steps - 1)
        a_pose = ag.poses[:, jc]
        valid = ag.valid[:, jc] & ok[None]
        hit = obb_overlap(
            center[:, :, None],
            poses[:, :, None, 2],
            scene.ego_size[0] / 2,
            scene.ego_size[1] / 2,
            np.moveaxis(a_pose[..., :2], 0, 1)[None],
            a_pose[..., 2].T[None],
            ag.sizes[:, 0] / 2,
            ag.sizes[:, 1] / 2,
        )
        col = (hit & valid.T[None]).any(-1)

    out = {"ade": err.mean(1), "fde": err[:, -1]}
    for h in horizons:
        at = np.flatnonzero(np.isclose(times, h))
        if not len(at):
            continue
        k = int(at[0])
        name = f"{h:g}s"
        out[f"l2_{name}"] = err[:, k]
        out[f"l2_avg_{name}"] = err[:, : k + 1].mean(1)
        out[f"col_{name}"] = col[:, k].astype(np.float64)
        out[f"col_avg_{name}"] = col[:, : k + 1].mean(1)
    return out
