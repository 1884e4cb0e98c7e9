"""CarlaSession against FakeCarlaWorld (the calls the bridge makes), the real "no server" path, and a live
check that runs only where a CARLA server answers."""

import math
import os
import socket
import time

import numpy as np
import pytest

carla = pytest.importorskip("carla")

from unit.helpers.fake_carla import REAR_AXLE_X, WHEELBASE, FakeCarlaClient, FakeCarlaWorld, FakeSensor, factory  # noqa: E402
from wamdiff_ros.carla import frames  # noqa: E402
from wamdiff_ros.carla.session import (  # noqa: E402
    CarlaConnectionError,
    CarlaSession,
    CarlaVersionError,
    SensorTimeout,
    SessionConfig,
    connect,
    version_number,
    weather_parameters,
)
from wamdiff_ros.rig import load_rig  # noqa: E402

RIG = load_rig("rigs/default.yaml")
SPAWN = carla.Transform(carla.Location(x=20.0, y=0.0, z=0.5), carla.Rotation(yaw=0.0))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_server_gives_a_clear_error_within_the_timeout():
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(CarlaConnectionError, match=rf"no CARLA server answered at 127\.0\.0\.1:{port} within 1 s"):
        connect(SessionConfig(host="127.0.0.1", port=port, timeout_s=1.0))
    assert time.monotonic() - t0 < 3.0


def test_version_mismatch_is_refused_unless_allowed():
    world = FakeCarlaWorld()
    with pytest.raises(CarlaVersionError, match=r"client 0\.9\.16 .* server 0\.9\.15 at localhost:2000"):
        connect(SessionConfig(), factory(FakeCarlaClient(world, server_version="0.9.15")))
    assert connect(SessionConfig(allow_version_mismatch=True), factory(FakeCarlaClient(world, server_version="0.9.15")))
    assert connect(SessionConfig(), factory(FakeCarlaClient(world, server_version="0.9.16-dirty")))
    assert version_number("0.9.15.2") == "0.9.15" and version_number("dev") == "dev"


def test_weather():
    assert weather_parameters("ClearNoon") == carla.WeatherParameters.ClearNoon
    w = weather_parameters({"cloudiness": 30, "sun_altitude_angle": 15.0})
    assert w.cloudiness == 30.0 and w.sun_altitude_angle == 15.0
    with pytest.raises(ValueError, match="preset"):
        weather_parameters("Sunny")
    with pytest.raises(ValueError, match="unknown field"):
        weather_parameters({"snow": 1.0})


def test_session_sets_up_ticks_and_restores():
    world = FakeCarlaWorld()
    client = FakeCarlaClient(world)
    with CarlaSession(SessionConfig(host="h", port=2010, timeout_s=3.0), factory(client)) as s:
        assert client.address == ("h", 2010) and client.timeout == 3.0
        s.load("", "WetNoon")
        assert world.settings.synchronous_mode and world.settings.fixed_delta_seconds == pytest.approx(0.05)
        assert world.weather == carla.WeatherParameters.WetNoon and client.loaded == []
        ego = s.spawn_ego("vehicle.lincoln.mkz_2020", SPAWN, RIG)
        vehicle = world.vehicle()
        assert vehicle.attributes["role_name"] == "hero"
        assert ego.base_in_actor == pytest.approx([REAR_AXLE_X, 0.0, 0.0], abs=1e-3)
        assert ego.wheelbase == pytest.approx(WHEELBASE, abs=1e-3) and ego.max_steer == pytest.approx(math.radians(70))
        sensors = [a for a in world.actors if isinstance(a, FakeSensor)]
        assert sorted(a.type_id for a in sensors) == sorted(
            ["sensor.camera.rgb"] * 3 + ["sensor.other.collision", "sensor.other.lane_invasion"]
        )
        cams = {name: sensor for name, sensor in ego.cameras.items()}
        for cam in RIG.cameras:
            a = cams[cam.name]
            assert a.parent is vehicle
            assert a.attributes == {"image_size_x": str(cam.width), "image_size_y": str(cam.height), "fov": "90.0"}
            expected = frames.camera_transform(cam, ego.base_in_actor)
            assert a.relative.location.distance(expected.location) < 1e-6
            assert a.relative.rotation.yaw == pytest.approx(expected.rotation.yaw)

        s.apply_control(carla.VehicleControl(throttle=1.0))
        world.pending_collisions = ["walker.pedestrian.0001"]
        world.pending_invasions = [[carla.LaneMarkingType.Solid]]
        tick = s.tick(stamp_ns=12_500_000_000, route_time=0.5)
        assert set(tick.images) == {"front", "front_left", "front_right"}
        img = tick.images["front"]
        assert img.shape == (128, 256, 3) and img.dtype == np.uint8
        assert tuple(img[0, 0]) == ((tick.frame * 7) % 256, 20, 10)  # BGRA -> RGB
        assert tick.ego.stamp_ns == 12_500_000_000 and tick.ego.speed > 0
        assert tick.ego.pose == pytest.approx([vehicle.x + REAR_AXLE_X, -vehicle.y, 0.0], abs=1e-6)
        assert tick.facts.collisions == [("walker.pedestrian.0001", 7)]
        assert tick.facts.lane_invasions == [["Solid"]] and tick.facts.time == 0.5
        assert not tick.facts.off_road and not tick.facts.in_junction
        assert s.tick(13_000_000_000, 1.0, want_images=False).images == {}
    assert world.alive_actors() == []
    assert all(a.stopped for a in sensors)
    assert not world.settings.synchronous_mode and not world.settings.fixed_delta_seconds  # variable step again


@pytest.mark.parametrize("fail", ["keyboard", "spawn"])
def test_actors_destroyed_and_settings_restored_on_error(fail):
    world = FakeCarlaWorld()
    expected = KeyboardInterrupt if fail == "keyboard" else RuntimeError
    with pytest.raises(expected), CarlaSession(SessionConfig(), factory(FakeCarlaClient(world))) as s:
        s.load()
        if fail == "spawn":
            world.fail_spawning = "sensor.other.lane_invasion"  # after the ego, cameras and collision sensor
        s.spawn_ego("vehicle.lincoln.mkz_2020", SPAWN, RIG)
        s.tick(0, 0.0)
        raise KeyboardInterrupt
    assert len(world.actors) == (6 if fail == "keyboard" else 5)
    assert world.alive_actors() == []
    assert not world.settings.synchronous_mode


def test_town_change_unknown_blueprint_and_sensor_timeout(monkeypatch):
    world = FakeCarlaWorld()
    client = FakeCarlaClient(world)
    with CarlaSession(SessionConfig(sensor_timeout_s=0.2), factory(client)) as s:
        s.load("Town05")
        assert client.loaded == ["Town05"] and s.town == "Town05"
        new_world = client.world
        assert new_world is not world and new_world.settings.synchronous_mode
        with pytest.raises(ValueError, match="vehicle.nope"):
            s.spawn_ego("vehicle.nope", SPAWN, RIG)
        s.spawn_ego("vehicle.lincoln.mkz_2020", SPAWN, RIG)
        monkeypatch.setattr(FakeSensor, "emit", lambda self, frame: None)
        t0 = time.monotonic()
        with pytest.raises(SensorTimeout, match="camera 'front' sent no image"):
            s.tick(0, 0.0)
        assert time.monotonic() - t0 < 1.0
    assert new_world.alive_actors() == [] and not new_world.settings.synchronous_mode


def _server() -> tuple[str, int] | None:
    host, port = os.environ.get("CARLA_HOST", "localhost"), int(os.environ.get("CARLA_PORT", "2000"))
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return host, port
    except OSError:
        return None


@pytest.mark.carla
def test_live_server_drives_a_few_ticks():
    server = _server()
    if server is None:
        pytest.skip("no CARLA server available on this machine")
    host, port = server
    with CarlaSession(SessionConfig(host=host, port=port, timeout_s=20.0)) as s:
        original = s.world.get_settings().synchronous_mode
        s.load("", "ClearNoon")
        ego = s.spawn_ego("vehicle.lincoln.mkz_2020", s.spawn_points()[0], RIG)
        start = s.tick(0, 0.0).ego.pose
        for k in range(40):
            s.apply_control(carla.VehicleControl(throttle=0.6))
            tick = s.tick(0.05 * (k + 1), 0.05 * (k + 1))
        assert tick.images["front"].shape == (RIG.cameras[0].height, RIG.cameras[0].width, 3)
        assert np.linalg.norm(tick.ego.pose[:2] - start[:2]) > 0.5 and 1.0 < ego.wheelbase < 5.0
        world = s.world
    assert world.get_settings().synchronous_mode == original
