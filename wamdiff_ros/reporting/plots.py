"""Matplotlib figures of evaluations (headless, written atomically as PNG).

- :func:`plot_bev`: one frame from above in the ego's base_link (x forward up the page, y left):
  lanes with their edges, agent boxes now, the ego box, the logged future, the planner's candidates
  and its plan.
- :func:`plot_metric_curves`: per-frame metrics over bag time.
- :func:`plot_rl_curves`: an RL run's rollout reward and validation PDMS over optimiser steps.
- :func:`plot_speed_profiles`: a closed-loop episode's speed and route progress over time, planner
  against expert.
"""

from __future__ import annotations

import os

import numpy as np

from wamdiff_ros.atomic import atomic_path
from wamdiff_ros.geometry import box_corners, relative, to_local_points
from wamdiff_ros.types import SceneTruth

BEV_RANGE = (-15.0, 60.0, -25.0, 25.0)
"""Shown area in base_link: x from, x to, y from, y to [m]; x grows to show the whole plan, log and candidates."""


def _figure(width: float, height: float, rows: int = 1):
    """pyplot on the headless backend, a figure and its axes (one, or ``rows`` sharing x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(rows, 1, figsize=(width, height), dpi=100, sharex=rows > 1)
    return plt, fig, ax


def _save(plt, fig, path: str | os.PathLike) -> None:
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def plot_bev(
    path: str | os.PathLike,
    scene: SceneTruth,
    plan: np.ndarray,
    candidates: np.ndarray | None = None,
    title: str = "",
) -> None:
    """Bird's-eye view of a frame: ``plan`` (T, 3) and ``candidates`` (K, T, 3) in base_link, against
    ``scene`` (lanes, agents at the frame, the logged future ``scene.human_trajectory``)."""
    plan = np.asarray(plan, np.float64)
    if plan.ndim != 2 or plan.shape[1] != 3:
        raise ValueError(f"plot_bev: plan: expected (T, 3) poses, got shape {plan.shape}")
    plt, fig, ax = _figure(5.0, 7.0)
    ego = scene.ego.pose

    def draw(xy, **kw):  # base_link (x fwd, y left) drawn with x up and y to the left
        xy = np.asarray(xy)
        ax.plot(-xy[..., 1], xy[..., 0], **kw)

    for lane in scene.lanes:
        center = to_local_points(ego, lane.centerline)
        draw(center, color="0.75", lw=0.8, ls="--", zorder=1)
        for edge in lane.boundaries:
            draw(to_local_points(ego, edge), color="0.45", lw=0.8, zorder=1)
    agents = scene.agents
    if len(agents):
        now = agents.valid[:, 0]
        boxes = box_corners(relative(ego, agents.poses[now, 0]), agents.sizes[now, 0], agents.sizes[now, 1])
        for corners in boxes:
            closed = np.vstack([corners, corners[:1]])
            ax.fill(-closed[:, 1], closed[:, 0], color="tab:orange", alpha=0.5, lw=0.8, ec="tab:orange", zorder=3)
    ego_box = box_corners(np.array([scene.rear_axle_to_center, 0.0, 0.0]), *scene.ego_size)
    closed = np.vstack([ego_box, ego_box[:1]])
    ax.fill(-closed[:, 1], closed[:, 0], color="tab:blue", alpha=0.6, zorder=4, label="ego")
    if candidates is not None and len(candidates):
        for k, cand in enumerate(np.asarray(candidates, np.float64)):
            start = np.vstack([[0.0, 0.0, 0.0], cand])
            draw(start[:, :2], color="tab:purple", lw=0.7, alpha=0.4, zorder=4, label="candidates" if k == 0 else None)
    log = np.vstack([[0.0, 0.0, 0.0], scene.human_trajectory])
    draw(log[:, :2], color="tab:green", lw=2.0, marker="o", ms=3, zorder=5, label="log")
    ours = np.vstack([[0.0, 0.0, 0.0], plan])
    draw(ours[:, :2], color="tab:red", lw=2.0, marker="o", ms=3, zorder=6, label="plan")
    x0, x1, y0, y1 = BEV_RANGE
    reach = [plan[:, 0], scene.human_trajectory[:, 0]]
    if candidates is not None and len(candidates):
        reach.append(np.asarray(candidates)[..., 0].ravel())
    x1 = max(x1, float(np.max(np.concatenate(reach))) + 10.0)
    ax.set_xlim(-y1, -y0)
    ax.set_ylim(x0, x1)
    ax.set_aspect("equal")
    ax.set_xlabel("-y (left) [m]")
    ax.set_ylabel("x (forward) [m]")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(alpha=0.2)
    _save(plt, fig, path)


def plot_metric_curves(
    path: str | os.PathLike, frames: list[dict], keys=("PDMS", "EPDMS", "ade", "latency_ms")
) -> None:
    """One panel per metric of ``keys`` over bag time (the per-frame rows of an evaluation); episodes
    are separate line segments."""
    if not frames:
        raise ValueError("plot_metric_curves: no frames")
    keys = [k for k in keys if k in frames[0]]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(keys), 1, figsize=(8.0, 1.8 * len(keys)), sharex=True, dpi=100, squeeze=False)
    stamps = np.array([f["stamp"] for f in frames])
    episodes = [f.get("episode", "") for f in frames]
    for ax, key in zip(axes[:, 0], keys):
        values = np.array([f[key] for f in frames], np.float64)
        for ep in dict.fromkeys(episodes):
            sel = np.array([e == ep for e in episodes])
            ax.plot(stamps[sel], values[sel], marker=".", ms=3, lw=1.0)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("bag time [s]")
    _save(plt, fig, path)


def plot_rl_curves(path: str | os.PathLike, steps: list[dict], validations: list[dict]) -> None:
    """Two panels over optimiser steps: the rollouts' mean and best-in-group reward (with a moving
    average), and validation PDMS / EPDMS with the starting model's PDMS as a dashed line."""
    if not steps and not validations:
        raise ValueError("plot_rl_curves: no steps and no validations")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8.0, 5.5), sharex=True, dpi=100)
    if steps:
        x = np.array([r["step"] + 1 for r in steps])
        for key, label in (("reward_mean", "mean reward"), ("reward_best_in_group", "best in group")):
            y = np.array([r[key] for r in steps], np.float64)
            top.plot(x, y, lw=0.6, alpha=0.4)
            w = max(1, min(len(y), len(y) // 20 or 1))
            smooth = np.convolve(y, np.ones(w) / w, mode="valid")
            top.plot(x[w - 1 :], smooth, lw=1.6, label=f"{label} (moving mean of {w})")
        top.legend(fontsize=8)
    top.set_ylabel("rollout reward")
    top.grid(alpha=0.3)
    val = [v for v in validations if "PDMS" in v]
    if val:
        x = [v["step"] for v in val]
        bottom.plot(x, [v["PDMS"] for v in val], marker="o", ms=3, label="PDMS")
        bottom.plot(x, [v["EPDMS"] for v in val], marker="s", ms=3, label="EPDMS")
        bottom.axhline(val[0]["PDMS"], ls="--", color="grey", lw=1.0, label="PDMS at start")
        bottom.legend(fontsize=8)
    bottom.set_ylabel("validation (fast path)")
    bottom.set_xlabel("optimiser step")
    bottom.grid(alpha=0.3)
    _save(plt, fig, path)


def plot_speed_profiles(path: str | os.PathLike, title: str, planner: dict, expert: dict | None = None) -> None:
    """A closed-loop episode over time: speed (top) and route progress (bottom) of the planner and, on
    the same episode, of the expert; the planner's slow-mode ticks and fallbacks are marked.

    ``planner`` and ``expert`` are per-tick traces (:class:`~wamdiff_ros.evaluation.closed_loop.Drive`'s
    ``trace``: ``t`` [s], ``speed`` [m/s], ``progress`` [m], and for the planner ``mode``)."""
    plt, fig, (speed, progress) = _figure(8.0, 5.0, rows=2)
    runs = [("planner", planner, "tab:blue")] + ([("expert", expert, "tab:gray")] if expert is not None else [])
    for name, trace, colour in runs:
        speed.plot(trace["t"], trace["speed"], color=colour, lw=1.2, label=name)
        progress.plot(trace["t"], trace["progress"], color=colour, lw=1.2, label=name)
    mode = np.asarray(planner.get("mode", []))
    t, v = np.asarray(planner["t"]), np.asarray(planner["speed"])
    for value, marker, colour in (("slow", "o", "tab:purple"), ("fallback", "x", "tab:red")):
        sel = mode == value
        if sel.any():
            speed.scatter(t[sel], v[sel], marker=marker, s=14, color=colour, label=f"planner {value}", zorder=3)
    speed.set_ylabel("speed [m/s]")
    progress.set_ylabel("route progress [m]")
    progress.set_xlabel("episode time [s]")
    for ax in (speed, progress):
        ax.grid(alpha=0.3)
    speed.legend(loc="best", fontsize=8)
    speed.set_title(title, fontsize=9)
    _save(plt, fig, path)
