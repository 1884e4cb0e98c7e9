"""Routes: YAML and leaderboard XML files, tracing on a (fake) CARLA map, route -> command and instruction."""

import math

import numpy as np
import pytest

carla = pytest.importorskip("carla")

from unit.helpers.fake_carla import FakeMap  # noqa: E402
from wamdiff_ros.carla.routes import (  # noqa: E402
    DenseRoute,
    RouteError,
    RouteSpec,
    generate_route,
    load_routes,
    parse_leaderboard_xml,
    parse_routes_yaml,
    select_routes,
    trace_route,
)
from wamdiff_ros.config import ConfigError  # noqa: E402

LB2 = """<routes>
   <route id="0" town="Town12">
      <weathers>
         <weather route_percentage="100" cloudiness="80.0" sun_altitude_angle="15.0"/>
         <weather route_percentage="0" cloudiness="5.0" precipitation="0.0" sun_altitude_angle="90.0"
            fog_density="2.0"/>
      </weathers>
      <waypoints>
         <position x="983.5" y="5382.2" z="371"/>
         <position x="824.2" y="5575.3" z="371"/>
      </waypoints>
      <scenarios/>
   </route>
   <route id="7" town="Town13">
      <waypoints><position x="1.0" y="-2.0" z="0.5"/><position x="3.0" y="4.0"/></waypoints>
   </route>
</routes>"""

LB1 = """<routes>
   <route id="3" town="Town01" weather="WetNoon">
      <waypoint pitch="0.0" roll="0.0" x="338.7" y="226.75" yaw="270.0" z="0.0"/>
      <waypoint pitch="0.0" roll="0.0" x="321.98" y="55.18" yaw="180.0" z="0.0"/>
   </route>
</routes>"""


def test_leaderboard_2_xml():
    a, b = parse_leaderboard_xml(LB2, "lb2.xml")
    assert (a.name, a.town, b.name, b.town) == ("route_0", "Town12", "route_7", "Town13")
    np.testing.assert_allclose(a.keypoints, [[983.5, -5382.2, 371.0], [824.2, -5575.3, 371.0]])  # y mirrored
    assert a.weather == {"cloudiness": 5.0, "precipitation": 0.0, "sun_altitude_angle": 90.0, "fog_density": 2.0}
    assert b.weather is None and b.keypoints[1].tolist() == [3.0, -4.0, 0.0]


def test_leaderboard_1_xml_and_weather_attribute():
    (r,) = parse_leaderboard_xml(LB1)
    assert r.town == "Town01" and r.weather == "WetNoon"
    np.testing.assert_allclose(r.keypoints[:, :2], [[338.7, -226.75], [321.98, -55.18]])


@pytest.mark.parametrize(
    "text, message",
    [
        ("<route/>", "<routes> root"),
        ("<routes><route id='1'/></routes>", "no waypoints"),
        ("<routes><route id='1'><waypoint x='a' y='1'/></route></routes>", "numeric"),
        ("<routes>", "not valid XML"),
        ("<routes></routes>", "no <route>"),
    ],
)
def test_xml_errors_name_the_problem(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_leaderboard_xml(text)


def test_yaml_routes_frames_and_errors():
    data = {"frame": "map", "routes": [{"name": "r", "town": "Town10HD_Opt", "waypoints": [[1, 2], [3, 4, 5]]}]}
    (r,) = parse_routes_yaml(data)
    assert r.keypoints.tolist() == [[1, 2, 0], [3, 4, 5]] and r.town == "Town10HD_Opt"
    (c,) = parse_routes_yaml({**data, "frame": "carla"})
    assert c.keypoints[:, 1].tolist() == [-2, -4]
    with pytest.raises(ConfigError, match="frame"):
        parse_routes_yaml({**data, "frame": "utm"})
    with pytest.raises(ConfigError, match=r"waypoints\[0\]"):
        parse_routes_yaml({"routes": [{"waypoints": [[1]]}]})
    with pytest.raises(ConfigError, match="unique"):
        parse_routes_yaml({"routes": [{"name": "a", "waypoints": [[0, 0]]}, {"name": "a", "waypoints": [[0, 0]]}]})


def test_shipped_route_file_and_selection(tmp_path):
    routes = load_routes("carla/routes/town12_junctions.yaml")
    assert [r.name for r in routes] == ["town12_junctions"] and routes[0].town == "Town12"
    assert routes[0].keypoints[0].tolist() == [824.2, -5575.3, 371.0]
    xml = tmp_path / "r.xml"
    xml.write_text(LB2)
    both = load_routes(xml)
    assert [r.name for r in select_routes(both, " route_7 ,route_0")] == ["route_7", "route_0"]
    assert select_routes(both, "") == both
    with pytest.raises(ConfigError, match="route_9"):
        select_routes(both, "route_9")
    with pytest.raises(ConfigError, match="expected a .yaml"):
        (tmp_path / "r.json").write_text("{}")
        load_routes(tmp_path / "r.json")


def turn_route(turn_deg: float, lane_change_at: float | None = None) -> DenseRoute:
    """50 m straight along +x, a 10-point junction turning by ``turn_deg``, then 50 m straight."""
    pts, yaw, junction = [], [], []
    for x in np.arange(0.0, 50.0, 2.0):
        pts.append([x, 0.0, 0.0]), yaw.append(0.0), junction.append(False)
    heading, xy = 0.0, np.array([50.0, 0.0])
    for k in range(10):
        heading = math.radians(turn_deg) * (k + 1) / 10
        xy = xy + 2.0 * np.array([math.cos(heading), math.sin(heading)])
        pts.append([*xy, 0.0]), yaw.append(heading), junction.append(True)
    for _ in range(25):
        xy = xy + 2.0 * np.array([math.cos(heading), math.sin(heading)])
        pts.append([*xy, 0.0]), yaw.append(heading), junction.append(False)
    change = np.zeros(len(pts), np.int8)
    if lane_change_at is not None:
        change[int(lane_change_at // 2)] = 1
    return DenseRoute(np.array(pts), np.array(yaw), np.array(junction), change, name="t")


@pytest.mark.parametrize(
    "turn, command, text",
    [
        (90.0, "left", "Turn left at the intersection ahead."),
        (-90.0, "right", "Turn right at the intersection ahead."),
        (10.0, "straight", "Go straight through the intersection ahead."),
    ],
)
def test_junction_commands(turn, command, text):
    route = turn_route(turn)
    assert route.junction_runs()[0][2] == command
    assert route.command_at(0.0, junction_lookahead=30.0) == ("straight", "Follow the road.")
    assert route.command_at(25.0, junction_lookahead=30.0) == (command, text)
    assert route.command_at(60.0, junction_lookahead=30.0)[0] == command  # inside the junction
    assert route.command_at(route.length - 5.0, junction_lookahead=30.0)[0] == "straight"  # after it


def test_lane_change_command_comes_first_when_nearer():
    route = turn_route(90.0, lane_change_at=20.0)
    assert route.command_at(10.0, 30.0, 20.0) == ("lane_change_left", "Change to the left lane.")
    assert route.command_at(30.0, 30.0, 20.0)[0] == "left"  # passed the lane change: the junction is next
    bad = np.zeros((1, 3))
    with pytest.raises(ValueError, match="N>=2"):
        DenseRoute(bad, [0.0], [False], [0])


def test_trace_route_on_a_fake_map_changes_lanes_and_marks_the_junction():
    fmap = FakeMap(length=400.0, junction=(150.0, 170.0))
    # from the left lane at x=10 to the right lane (CARLA y=+3.5 -> map y=-3.5) beyond the junction
    spec = RouteSpec("r", np.array([[10.0, 0.0, 0.0], [100.0, -3.5, 0.0], [220.0, -3.5, 0.0]]))
    route = trace_route(fmap, spec, step=2.0)
    assert np.all(np.diff(route.points[:, 0]) > 0)
    assert route.points[0, :2] == pytest.approx([10.0, 0.0]) and route.points[-1, :2] == pytest.approx(
        [220, -3.5], abs=2
    )
    assert (route.lane_change == -1).sum() == 1 and (route.lane_change == 1).sum() == 0
    changes_at = route.s[np.flatnonzero(route.lane_change)[0]]
    assert route.command_at(changes_at - 10.0)[0] == "lane_change_right"
    (first, _end, turn) = route.junction_runs()[0]
    assert turn == "straight" and route.points[first, 0] == pytest.approx(150.0, abs=2.0)
    assert route.command_at(route.s[first] - 20.0) == ("straight", "Go straight through the intersection ahead.")


def test_trace_route_fails_clearly_and_generates():
    fmap = FakeMap(length=100.0)
    with pytest.raises(RouteError, match="no lane-level route"):
        trace_route(fmap, RouteSpec("back", np.array([[80.0, 0.0, 0.0], [10.0, 0.0, 0.0]])))  # against the lanes
    start = fmap.get_waypoint(carla.Location(x=5.0, y=0.0))
    route = generate_route(fmap, start, 50.0, np.random.default_rng(0), step=2.0)
    assert route.length == pytest.approx(50.0) and not route.lane_change.any()
