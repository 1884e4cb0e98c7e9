"""Renderer geometry, occlusion, lane paint, horizon and determinism on a straight 3-lane road."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from wamdiff_ros.geometry import compose, to_global_points
from wamdiff_ros.rig import Rig, load_rig
from wamdiff_ros.sim.renderer import Renderer
from wamdiff_ros.sim.road_raster import RoadStyle
from wamdiff_ros.types import Agents, AgentType, Lane

EGO = np.array([120.0, -40.0, 0.7])
"""A non-trivial map pose, so the map <-> base_link transforms are exercised."""
LANE_W = 3.7
ROAD_START = -200.0
"""Road start in the ego frame: dashes are phased from here (3 m paint, 9 m gap)."""


def road(ego: np.ndarray = EGO) -> list[Lane]:
    """Three lanes along the ego's heading, the ego in the middle one; outer edges solid, inner dashed."""
    x = np.arange(ROAD_START, 800.0 + 1e-9, 5.0)
    lanes = []
    for i, y in enumerate((-LANE_W, 0.0, LANE_W)):
        markings = ("solid" if i == 2 else "dashed", "solid" if i == 0 else "dashed")
        centre = to_global_points(ego, np.stack([x, np.full_like(x, y)], 1))
        lanes.append(Lane(lane_id=i, centerline=centre, width=LANE_W, markings=markings))
    return lanes


def agents(*boxes: tuple) -> Agents:
    """Agents at one time step from ``(x, y, yaw, length, width[, type[, id]])`` in the ego frame.

    Ids default to the position in the list; colours hash the id, so pass one where a box must keep its
    colour across calls.
    """
    if not boxes:
        return Agents.empty()
    local = np.array([b[:3] for b in boxes], np.float64)
    n = len(boxes)
    return Agents(
        ids=[b[6] if len(b) > 6 else i + 1 for i, b in enumerate(boxes)],
        types=[b[5] if len(b) > 5 else AgentType.VEHICLE for b in boxes],
        sizes=[b[3:5] for b in boxes],
        poses=compose(EGO, local)[:, None],
        velocities=np.zeros((n, 1, 2)),
        valid=np.ones((n, 1), bool),
    )


def pixel(image: np.ndarray, u: float, v: float) -> np.ndarray:
    """The pixel nearest to image point ``(u, v)``, as float RGB."""
    return image[round(float(v)), round(float(u))]


@pytest.fixture(scope="module")
def rig() -> Rig:
    return load_rig("rigs/default.yaml")


@pytest.fixture(scope="module")
def renderer(rig) -> Renderer:
    return Renderer(rig, road())


@pytest.fixture(scope="module")
def empty(renderer) -> dict[str, np.ndarray]:
    return renderer.render(EGO, Agents.empty())


def test_images_match_rig(renderer, rig, empty):
    assert list(empty) == rig.names
    for cam in rig.cameras:
        img = empty[cam.name]
        assert img.shape == (cam.height, cam.width, 3) and img.dtype == np.uint8


def test_box_straight_ahead_covers_front_centre_only(renderer, rig, empty):
    images = renderer.render(EGO, agents((20.0, 0.0, 0.0, 4.5, 1.9)))
    front = rig.camera("front")
    (u_mid, _), depth = front.project(np.array([17.75, 0.0, 0.75]))
    assert depth > 0 and abs(u_mid - (front.width - 1) / 2) < 0.5
    (_, v_top), _ = front.project(np.array([17.75, 0.0, 1.5]))
    (_, v_bottom), _ = front.project(np.array([17.75, 0.0, 0.0]))
    rows = slice(int(np.ceil(v_top)) + 1, int(np.floor(v_bottom)))
    centre = [front.width // 2 - 1, front.width // 2]
    changed = np.abs(images["front"].astype(int) - empty["front"].astype(int)).sum(-1)
    assert rows.stop - rows.start >= 5
    assert (changed[rows, centre] > 30).all(), "the box must cover the front camera's centre columns"
    assert changed[:, : front.width // 4].max() == 0 and changed[:, -front.width // 4 :].max() == 0
    for side in ("front_left", "front_right"):
        assert np.array_equal(images[side], empty[side]), f"{side} must not see a box straight ahead"


def test_box_behind_ego_appears_in_no_image(renderer, empty):
    images = renderer.render(EGO, agents((-20.0, 0.0, 0.0, 4.5, 1.9)))
    for name, img in images.items():
        assert np.array_equal(img, empty[name]), name


def test_invalid_and_distant_agents_are_not_drawn(renderer, empty):
    a = agents((20.0, 0.0, 0.0, 4.5, 1.9), (150.0, 0.0, 0.0, 4.5, 1.9))
    a.valid[0, 0] = False
    for name, img in renderer.render(EGO, a).items():
        assert np.array_equal(img, empty[name]), name


def test_near_box_hides_far_box(renderer, empty):
    truck = (16.0, 0.0, 0.0, 12.0, 2.5, AgentType.VEHICLE, 9)
    car = (40.0, 0.0, 0.0, 4.5, 1.9, AgentType.VEHICLE, 7)
    far_alone = renderer.render(EGO, agents(car))["front"]
    assert not np.array_equal(far_alone, empty["front"]), "the far car is visible on its own"
    near_only = renderer.render(EGO, agents(truck))["front"]
    both = renderer.render(EGO, agents(car, truck))["front"]
    both_reversed = renderer.render(EGO, agents(truck, car))["front"]
    assert np.array_equal(both, near_only)
    assert np.array_equal(both_reversed, near_only)


def test_long_truck_alongside_hides_car_beyond_it(renderer, rig):
    """Painter's order by footprint distance: the truck's centre is farther than the car's, yet it is in front."""
    truck = (8.0, LANE_W, 0.0, 12.0, 2.5, AgentType.VEHICLE, 9)
    car = (3.0, 2 * LANE_W, 0.0, 4.5, 1.9, AgentType.VEHICLE, 7)
    cam = rig.camera("front_left")
    (u, v), depth = cam.project(np.array([5.0, 2 * LANE_W - 0.95, 0.75]))
    assert depth > 0 and 0 <= u < cam.width and 0 <= v < cam.height
    truck_only = renderer.render(EGO, agents(truck))["front_left"]
    car_only = renderer.render(EGO, agents(car))["front_left"]
    assert not np.array_equal(pixel(truck_only, u, v), pixel(car_only, u, v))
    for order in ((truck, car), (car, truck)):
        both = renderer.render(EGO, agents(*order))["front_left"]
        assert np.array_equal(pixel(both, u, v), pixel(truck_only, u, v))


def test_box_looks_the_same_turned_around(renderer, rig):
    """Only faces toward the camera are drawn, shaded by their world normal, so a box's look does not
    depend on which end is its front."""
    for x, y in ((20.0, 0.0), (8.0, LANE_W), (9.0, -LANE_W)):
        ahead = renderer.render(EGO, agents((x, y, 0.0, 4.5, 1.9, AgentType.VEHICLE, 5)))
        back = renderer.render(EGO, agents((x, y, np.pi, 4.5, 1.9, AgentType.VEHICLE, 5)))
        for name in rig.names:
            assert np.abs(ahead[name].astype(int) - back[name].astype(int)).max() <= 2, (x, y, name)


@pytest.mark.parametrize("y", [LANE_W * 1.5, -LANE_W * 1.5])
def test_solid_edge_line_is_painted_where_projected(renderer, rig, empty, y):
    front = rig.camera("front")
    paint, asphalt = np.array(RoadStyle().paint), np.array(RoadStyle().asphalt)
    for x in (8.0, 12.0):
        (u, v), depth = front.project(np.array([x, y, 0.0]))
        assert depth > 0 and 0 <= u < front.width and 0 <= v < front.height
        px = pixel(empty["front"], u, v)
        assert np.linalg.norm(px - paint) < np.linalg.norm(px - asphalt), (x, y, px)
        inner = y - np.sign(y) * 0.8
        (u2, v2), _ = front.project(np.array([x, inner, 0.0]))
        px2 = pixel(empty["front"], u2, v2)
        assert np.linalg.norm(px2 - asphalt) < 25, (x, inner, px2)


def test_dashed_line_paint_and_gaps_follow_arc_length(renderer, rig, empty):
    front = rig.camera("front")
    paint, asphalt = np.array(RoadStyle().paint), np.array(RoadStyle().asphalt)
    period = RoadStyle().dash_length + RoadStyle().dash_gap
    y = LANE_W / 2
    for phase, want_paint in ((1.5, True), (7.5, False)):
        x = ROAD_START + period * np.ceil((6.0 - ROAD_START) / period) + phase
        (u, v), _ = front.project(np.array([x, y, 0.0]))
        px = pixel(empty["front"], u, v)
        is_paint = np.linalg.norm(px - paint) < np.linalg.norm(px - asphalt)
        assert is_paint == want_paint, (x, px)


@pytest.mark.parametrize("pitch", [-0.05, 0.05, 0.15])
def test_horizon_row_follows_camera_pitch(pitch):
    base = load_rig("rigs/default.yaml")
    rig = Rig("pitched", tuple(dataclasses.replace(c, rpy=(0.0, pitch, c.rpy[2])) for c in base.cameras))
    images = Renderer(rig, road()).render(EGO, Agents.empty())
    for cam in rig.cameras:
        horizon = (cam.height - 1) / 2 - cam.focal * np.tan(pitch)
        blue = images[cam.name][..., 2].astype(int) - images[cam.name][..., 0].astype(int)
        above, below = int(np.floor(horizon)) - 1, int(np.ceil(horizon)) + 2
        assert (blue[:above] > 30).all(), f"{cam.name}: sky above row {horizon:.1f}"
        assert (blue[below:] < 30).all(), f"{cam.name}: ground below row {horizon:.1f}"


def test_render_is_deterministic_and_history_free(rig):
    a = agents((20.0, 0.0, 0.0, 4.5, 1.9), (35.0, LANE_W, 0.1, 12.0, 2.5), (6.0, -LANE_W, 0.0, 0.6, 0.6, 1))
    first = Renderer(rig, road())
    one = first.render(EGO, a)
    first.render(compose(EGO, np.array([250.0, 0.0, 0.0])), a)
    again = first.render(EGO, a)
    fresh = Renderer(rig, road()).render(EGO, a)
    for name in rig.names:
        assert np.array_equal(one[name], again[name]) and np.array_equal(one[name], fresh[name]), name


def test_boxes_through_the_near_plane_are_clipped(renderer, empty):
    alongside = agents((-4.0, -LANE_W, 0.0, 12.0, 2.5))
    images = renderer.render(EGO, alongside)
    assert not np.array_equal(images["front_right"], empty["front_right"])
    assert np.array_equal(images["front_left"], empty["front_left"])
    overlapping = renderer.render(EGO, agents((1.5, 0.0, 0.0, 4.5, 1.9)))
    assert all(img.dtype == np.uint8 for img in overlapping.values())


def test_set_lanes_changes_the_ground(rig, empty):
    r = Renderer(rig, road())
    r.set_lanes([])
    bare = r.render(EGO, Agents.empty())["front"]
    assert not np.array_equal(bare, empty["front"])
    r.set_lanes(road())
    assert np.array_equal(r.render(EGO, Agents.empty())["front"], empty["front"])


def test_camera_looking_at_the_sky_renders_sky_only():
    up = Rig("up", (dataclasses.replace(load_rig("rigs/default.yaml").cameras[0], fov_deg=40.0, rpy=(0.0, -0.6, 0.0)),))
    img = Renderer(up, road()).render(EGO, agents((20.0, 0.0, 0.0, 4.5, 1.9)))["front"]
    assert (img[..., 2].astype(int) - img[..., 0] > 30).all()


def test_bad_inputs_raise(renderer):
    with pytest.raises(ValueError, match="ego_pose"):
        renderer.render(np.zeros(2), Agents.empty())
    with pytest.raises(ValueError, match="ego_pose"):
        renderer.render(np.array([0.0, np.nan, 0.0]), Agents.empty())
    with pytest.raises(ValueError, match="t_index"):
        renderer.render(EGO, Agents.empty(steps=2), t_index=2)
    with pytest.raises(ValueError, match="agents"):
        renderer.render(EGO, None)
    with pytest.raises(ValueError, match="rig"):
        Renderer("rigs/default.yaml", [])
    low = Rig("low", (dataclasses.replace(load_rig("rigs/default.yaml").cameras[0], position=(1.0, 0.0, 0.0)),))
    with pytest.raises(ValueError, match="above the ground"):
        Renderer(low, [])
    with pytest.raises(KeyError, match="rear"):
        renderer.render_camera("rear", EGO, Agents.empty())
