"""Episode video: marker/path decoding (duck-typed messages), the BEV's geometry and colours, frames, GIF."""

from __future__ import annotations

import math
from types import SimpleNamespace as NS

import numpy as np
import pytest

from wamdiff_ros.geometry import compose
from wamdiff_ros.reporting.episode_video import (
    COLORS,
    MARKER_CUBE,
    MARKER_LINE_STRIP,
    BevScene,
    BevView,
    TickView,
    candidate_polylines,
    marker_boxes,
    marker_polylines,
    message_key,
    path_poses,
    render_bev,
    render_tick,
    write_gif,
)


def _quat(yaw):
    return NS(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))


def _marker(ns, mtype, points=(), pose=(0.0, 0.0, 0.0), scale=(0.1, 0.1, 0.1), stamp=(5, 100_000_000)):
    return NS(
        header=NS(stamp=NS(sec=stamp[0], nanosec=stamp[1])),
        ns=ns,
        type=mtype,
        points=[NS(x=x, y=y, z=0.0) for x, y in points],
        pose=NS(position=NS(x=pose[0], y=pose[1], z=0.0), orientation=_quat(pose[2])),
        scale=NS(x=scale[0], y=scale[1], z=scale[2]),
    )


def test_marker_decoding_applies_marker_poses_and_picks_namespaces():
    msg = NS(
        markers=[
            _marker("", 3),  # DELETEALL-like entry without points
            _marker("lanes", MARKER_LINE_STRIP, [(0, 0), (10, 0)]),
            _marker("lanes", MARKER_LINE_STRIP, [(0, 0), (10, 0)], pose=(5.0, 1.0, math.pi / 2)),
            _marker("other", MARKER_LINE_STRIP, [(1, 1), (2, 2)]),
            _marker("boxes", MARKER_CUBE, pose=(3.0, 4.0, 0.5), scale=(4.5, 1.9, 1.6)),
        ]
    )
    lines = marker_polylines(msg, "lanes")
    assert len(lines) == 2
    np.testing.assert_allclose(lines[0], [[0, 0], [10, 0]])
    np.testing.assert_allclose(lines[1], [[5, 1], [5, 11]], atol=1e-9)
    np.testing.assert_allclose(marker_boxes(msg, "boxes"), [[3.0, 4.0, 0.5, 4.5, 1.9]], atol=1e-12)
    assert marker_boxes(msg, "lanes").shape == (0, 5)
    assert message_key(msg) == 5100


def test_candidates_best_is_the_widest_and_path_poses_read_yaw():
    msg = NS(
        markers=[
            _marker("candidates", MARKER_LINE_STRIP, [(0, 0), (1, 0)], scale=(0.1, 0, 0)),
            _marker("candidates", MARKER_LINE_STRIP, [(0, 0), (1, 1)], scale=(0.3, 0, 0)),
        ]
    )
    lines, best = candidate_polylines(msg)
    assert len(lines) == 2 and best == 1
    assert candidate_polylines(NS(markers=[]))[1] == -1
    path = NS(poses=[NS(pose=NS(position=NS(x=float(k), y=0.5, z=0.0), orientation=_quat(0.2))) for k in range(3)])
    np.testing.assert_allclose(path_poses(path), [[0, 0.5, 0.2], [1, 0.5, 0.2], [2, 0.5, 0.2]], atol=1e-12)


def test_view_puts_forward_right_and_left_up():
    view = BevView(width=600, height=300, px_per_m=5.0, behind_m=20.0)
    np.testing.assert_array_equal(view.to_px(np.array([0.0, 0.0])), [100, 150])
    np.testing.assert_array_equal(view.to_px(np.array([[10.0, 0.0], [0.0, 4.0]])), [[150, 150], [100, 130]])


def _color_at(img, view, local_xy):
    u, v = view.to_px(np.asarray(local_xy, np.float64))
    return tuple(int(c) for c in img[v, u])


def _near(color, expected, tol=24):
    """Thin anti-aliased lines blend with the background by a few levels."""
    return all(abs(a - b) <= tol for a, b in zip(color, expected))


def test_bev_draws_scene_in_the_ego_frame():
    view = BevView(width=600, height=300, px_per_m=5.0, behind_m=20.0)
    ego = np.array([100.0, 50.0, math.pi / 2])  # heading north in the map: the view must rotate it

    def world(points):
        pts = np.asarray(points, np.float64)
        return compose(ego, np.column_stack([pts, np.zeros(len(pts))]))[:, :2]

    agent = np.concatenate([compose(ego, np.array([40.0, 12.0, 0.0])), [4.5, 2.0]])
    scene = BevScene(
        ego_pose=ego,
        edges=[world([[-10, -8], [80, -8]])],
        boxes=agent[None],
        ego_box=np.concatenate([compose(ego, np.array([1.5, 0.0, 0.0])), [5.0, 2.0]]),
        plan=compose(ego, np.array([[k * 5.0, 0.0, 0.0] for k in range(1, 9)])),
        candidates=[world([[0, 0], [40, -20]]), world([[0, 0], [40, 20]])],
        best=1,
    )
    img = render_bev(scene, view, "caption")
    assert img.shape == (300, 600, 3) and img.dtype == np.uint8
    assert _color_at(img, view, [20.0, 0.0]) == COLORS["plan"]
    assert _color_at(img, view, [40.0, 12.0]) == COLORS["agent"]
    assert _color_at(img, view, [-0.5, 0.4]) == COLORS["ego"]
    assert _near(_color_at(img, view, [30.0, -8.0]), COLORS["edge"])
    assert _near(_color_at(img, view, [20.0, 10.0]), COLORS["best"])
    assert _near(_color_at(img, view, [20.0, -10.0]), COLORS["candidate"])
    assert _near(_color_at(img, view, [20.0, 5.0]), COLORS["background"])


def test_frame_stacks_cameras_left_to_right_above_the_bev():
    view = BevView(width=300, height=100)
    images = {name: np.full((50, 100, 3), value, np.uint8) for name, value in (("a", 40), ("b", 120), ("c", 200))}
    tick = TickView(0.0, images, BevScene(ego_pose=np.zeros(3)))
    frame = render_tick(tick, ["c", "a", "b"], view)
    assert frame.shape == (150, 300, 3)
    assert tuple(frame[40, 50]) == (200, 200, 200)
    assert tuple(frame[40, 150]) == (40, 40, 40)
    assert tuple(frame[40, 250]) == (120, 120, 120)


def test_gif_holds_every_frame(tmp_path):
    import imageio.v3 as iio

    frames = [np.full((20, 30, 3), 60 * k, np.uint8) for k in range(4)]
    path = write_gif(tmp_path / "a.gif", frames, fps=10)
    back = iio.imread(path, index=None)
    assert back.shape[:3] == (4, 20, 30)
    assert [int(f[..., 0].mean()) for f in back] == [0, 60, 120, 180]
    with pytest.raises(ValueError, match="frames"):
        write_gif(tmp_path / "b.gif", [])
    assert not (tmp_path / "b.gif").exists()


def test_gif_over_the_size_limit_keeps_every_other_frame(tmp_path, monkeypatch):
    from wamdiff_ros.reporting import episode_video as ev

    rng = np.random.default_rng(0)
    ticks = [TickView(0.1 * k, {}, BevScene(ego_pose=np.zeros(3))) for k in range(8)]
    noise = [rng.integers(0, 255, (40, 60, 3), dtype=np.uint8) for _ in ticks]  # incompressible frames
    monkeypatch.setattr(ev, "load_ticks", lambda *a, **k: ticks)
    monkeypatch.setattr(ev, "render_tick", lambda tick, cameras, view: noise[round(tick.stamp * 10)])
    full, fps = ev.episode_gif("bag", tmp_path / "full.gif", ["c"], 0.0, 1.0, max_bytes=None)
    assert (full, fps) == (8, 10.0)
    limit = (tmp_path / "full.gif").stat().st_size * 0.6
    frames, fps = ev.episode_gif("bag", tmp_path / "small.gif", ["c"], 0.0, 1.0, max_bytes=limit)
    assert (frames, fps) == (4, 5.0)
    assert (tmp_path / "small.gif").stat().st_size <= limit
