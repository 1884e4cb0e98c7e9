"""FakeCarlaWorld: a small in-test double of the CARLA client, world, map and actors.

It implements only the calls the bridge makes (``wamdiff_ros.carla.session`` and ``routes``) and uses
the real ``carla`` package's value types (Transform, Location, Rotation, Vector3D, WorldSettings,
WeatherParameters, VehicleControl, LaneType …), so it checks that the bridge builds and reads them
correctly. The world is a straight two-lane road along CARLA's +x axis (lane -1 at y = 0, lane -2 at
y = +3.5, i.e. on the right, both driven towards +x) with a junction stretch; the ego follows a
kinematic bicycle driven by the VehicleControl it receives; cameras deliver BGRA images on every tick.
Everything it spawns is recorded, so tests can check what was destroyed and which settings were left.
"""

from __future__ import annotations

import itertools
import math

import carla
import numpy as np

LANES = {-1: 0.0, -2: 3.5}
"""lane_id -> CARLA y of the lane centre [m]."""
LANE_WIDTH = 3.5
WHEELBASE = 2.8
REAR_AXLE_X = -1.4
"""Rear axle in the actor frame (x forward) [m]."""
MAX_STEER_DEG = 70.0
ACCEL, DECEL = 3.0, 8.0


class FakeWaypoint:
    def __init__(self, fmap: FakeMap, lane_id: int, s: float):
        self._map = fmap
        self.lane_id = lane_id
        self.s = float(s)
        self.road_id = 1
        self.section_id = 0
        self.lane_type = carla.LaneType.Driving
        self.lane_width = LANE_WIDTH
        self.is_junction = fmap.junction[0] <= self.s <= fmap.junction[1]
        self.lane_change = carla.LaneChange.NONE if self.is_junction else carla.LaneChange.Both

    @property
    def transform(self) -> carla.Transform:
        return carla.Transform(carla.Location(x=self.s, y=LANES[self.lane_id], z=0.0), carla.Rotation(yaw=0.0))

    def next(self, distance: float) -> list[FakeWaypoint]:
        s = self.s + distance
        return [FakeWaypoint(self._map, self.lane_id, s)] if s <= self._map.length else []

    def get_left_lane(self):
        return FakeWaypoint(self._map, self.lane_id + 1, self.s) if self.lane_id + 1 in LANES else None

    def get_right_lane(self):
        return FakeWaypoint(self._map, self.lane_id - 1, self.s) if self.lane_id - 1 in LANES else None


class FakeMap:
    def __init__(self, name: str = "Carla/Maps/FakeTown", length: float = 400.0, junction=(150.0, 170.0)):
        self.name = name
        self.length = length
        self.junction = junction

    def get_waypoint(self, location, project_to_road=True, lane_type=carla.LaneType.Driving):
        lane = min(LANES, key=lambda k: abs(location.y - LANES[k]))
        on_road = 0.0 <= location.x <= self.length and abs(location.y - LANES[lane]) <= LANE_WIDTH / 2
        if not (project_to_road or on_road):
            return None
        return FakeWaypoint(self, lane, min(max(location.x, 0.0), self.length))

    def get_spawn_points(self) -> list[carla.Transform]:
        return [carla.Transform(carla.Location(x=10.0, y=0.0, z=0.5), carla.Rotation(yaw=0.0))]


class FakeBlueprint:
    def __init__(self, blueprint_id: str):
        self.id = blueprint_id
        self.attributes: dict[str, str] = {}

    def has_attribute(self, name: str) -> bool:
        return name in ("role_name", "image_size_x", "image_size_y", "fov")

    def set_attribute(self, name: str, value: str) -> None:
        if not self.has_attribute(name):
            raise IndexError(f"fake blueprint {self.id}: no attribute {name}")
        if not isinstance(value, str):
            raise TypeError(f"fake blueprint {self.id}: attribute values are strings, got {value!r}")
        self.attributes[name] = value


class FakeLibrary:
    KNOWN = ("vehicle.lincoln.mkz_2020", "sensor.camera.rgb", "sensor.other.collision", "sensor.other.lane_invasion")

    def find(self, blueprint_id: str) -> FakeBlueprint:
        if blueprint_id not in self.KNOWN:
            raise IndexError(f"blueprint '{blueprint_id}' not found")
        return FakeBlueprint(blueprint_id)


class FakeActor:
    _ids = itertools.count(100)

    def __init__(self, world: FakeCarlaWorld, blueprint: FakeBlueprint, transform: carla.Transform, parent=None):
        self.world = world
        self.id = next(self._ids)
        self.type_id = blueprint.id
        self.attributes = dict(blueprint.attributes)
        self.relative = transform
        self.parent = parent
        self.alive = True

    def destroy(self) -> bool:
        if not self.alive:
            raise RuntimeError(f"fake actor {self.id} destroyed twice")
        self.alive = False
        return True


class FakeVehicle(FakeActor):
    def __init__(self, world, blueprint, transform):
        super().__init__(world, blueprint, transform)
        self.x, self.y, self.yaw_deg = transform.location.x, transform.location.y, transform.rotation.yaw
        self.speed = 0.0
        self.yaw_rate_deg = 0.0
        self.accel = 0.0
        self.control = carla.VehicleControl()
        self.controls: list[carla.VehicleControl] = []
        self.bounding_box = carla.BoundingBox(carla.Location(0, 0, 0.7), carla.Vector3D(2.4, 1.0, 0.7))

    def get_transform(self) -> carla.Transform:
        return carla.Transform(carla.Location(x=self.x, y=self.y, z=0.0), carla.Rotation(yaw=self.yaw_deg))

    def get_velocity(self) -> carla.Vector3D:
        h = math.radians(self.yaw_deg)
        return carla.Vector3D(self.speed * math.cos(h), self.speed * math.sin(h), 0.0)

    def get_angular_velocity(self) -> carla.Vector3D:
        return carla.Vector3D(0.0, 0.0, self.yaw_rate_deg)

    def get_acceleration(self) -> carla.Vector3D:
        h = math.radians(self.yaw_deg)
        return carla.Vector3D(self.accel * math.cos(h), self.accel * math.sin(h), 0.0)

    def apply_control(self, control: carla.VehicleControl) -> None:
        if not isinstance(control, carla.VehicleControl):
            raise TypeError(f"fake vehicle: expected carla.VehicleControl, got {type(control).__name__}")
        self.control = control
        self.controls.append(control)

    def get_physics_control(self):
        wheels = []
        tf = self.get_transform()
        for x, y in (
            (REAR_AXLE_X + WHEELBASE, -0.8),
            (REAR_AXLE_X + WHEELBASE, 0.8),
            (REAR_AXLE_X, -0.8),
            (REAR_AXLE_X, 0.8),
        ):
            p = tf.transform(carla.Location(x=x, y=y, z=0.35))
            wheels.append(
                carla.WheelPhysicsControl(
                    max_steer_angle=MAX_STEER_DEG if x > 0 else 0.0,
                    position=carla.Vector3D(p.x * 100, p.y * 100, p.z * 100),
                )
            )
        physics = carla.VehiclePhysicsControl()
        physics.wheels = wheels
        return physics

    def is_at_traffic_light(self) -> bool:
        return (
            self.world.red_light_id is not None
            and self.world.map.junction[0] - 15 <= self.x <= self.world.map.junction[1]
        )

    def get_traffic_light_state(self):
        return carla.TrafficLightState.Red if self.is_at_traffic_light() else carla.TrafficLightState.Green

    def get_traffic_light(self):
        return type("Light", (), {"id": self.world.red_light_id})() if self.is_at_traffic_light() else None

    def step(self, dt: float) -> None:
        c = self.control
        self.accel = ACCEL * c.throttle - DECEL * c.brake
        if self.speed <= 0 and self.accel < 0:
            self.accel = 0.0
        delta = math.radians(MAX_STEER_DEG) * c.steer
        self.yaw_rate_deg = math.degrees(self.speed / WHEELBASE * math.tan(delta))
        h = math.radians(self.yaw_deg)
        # the rear axle follows the heading; the actor origin sits ahead of it
        self.x += self.speed * math.cos(h) * dt
        self.y += self.speed * math.sin(h) * dt
        self.yaw_deg += self.yaw_rate_deg * dt
        self.speed = max(self.speed + self.accel * dt, 0.0)


class FakeImage:
    def __init__(self, frame: int, width: int, height: int):
        self.frame = frame
        self.width, self.height = width, height
        bgra = np.zeros((height, width, 4), np.uint8)
        bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3] = 10, 20, (frame * 7) % 256, 255
        self.raw_data = bgra.tobytes()


class FakeSensor(FakeActor):
    def __init__(self, world, blueprint, transform, parent):
        super().__init__(world, blueprint, transform, parent)
        self.callback = None
        self.stopped = False

    def listen(self, callback) -> None:
        self.callback = callback

    def stop(self) -> None:
        self.stopped = True
        self.callback = None

    def emit(self, frame: int) -> None:
        if self.callback is None or not self.type_id.startswith("sensor.camera"):
            return
        self.callback(FakeImage(frame, int(self.attributes["image_size_x"]), int(self.attributes["image_size_y"])))


class FakeCarlaWorld:
    """The world: settings, weather, map, blueprint library, actors and a synchronous tick."""

    def __init__(
        self, fmap: FakeMap | None = None, settings: carla.WorldSettings | None = None, ego_speed: float = 0.0
    ):
        self.map = fmap or FakeMap()
        self.ego_speed = ego_speed
        base = settings or carla.WorldSettings(synchronous_mode=False, fixed_delta_seconds=0.0)
        self._settings = _copy_settings(base)
        self.weather = carla.WeatherParameters.Default
        self.actors: list[FakeActor] = []
        self.frame = 0
        self.ticks = 0
        self.red_light_id: int | None = None
        self.fail_spawning: str | None = None
        self.pending_collisions: list[str] = []
        self.pending_invasions: list[list] = []

    # settings
    def get_settings(self) -> carla.WorldSettings:
        return _copy_settings(self._settings)

    def apply_settings(self, settings: carla.WorldSettings) -> int:
        self._settings = _copy_settings(settings)
        return self.frame

    @property
    def settings(self) -> carla.WorldSettings:
        return self._settings

    def set_weather(self, weather: carla.WeatherParameters) -> None:
        if not isinstance(weather, carla.WeatherParameters):
            raise TypeError("fake world: set_weather takes carla.WeatherParameters")
        self.weather = weather

    def get_map(self) -> FakeMap:
        return self.map

    def get_blueprint_library(self) -> FakeLibrary:
        return FakeLibrary()

    # actors
    def try_spawn_actor(self, blueprint: FakeBlueprint, transform: carla.Transform, attach_to=None):
        if any(isinstance(a, FakeVehicle) and a.alive and abs(a.x - transform.location.x) < 2 for a in self.actors):
            return None
        return self.spawn_actor(blueprint, transform, attach_to)

    def spawn_actor(self, blueprint: FakeBlueprint, transform: carla.Transform, attach_to=None):
        if not isinstance(transform, carla.Transform):
            raise TypeError("fake world: spawn_actor takes a carla.Transform")
        if self.fail_spawning and blueprint.id == self.fail_spawning:
            raise RuntimeError(f"fake world: spawning {blueprint.id} failed")
        if blueprint.id.startswith("vehicle."):
            actor = FakeVehicle(self, blueprint, transform)
            actor.speed = self.ego_speed
        else:
            if attach_to is None:
                raise RuntimeError("fake world: sensors must be attached")
            actor = FakeSensor(self, blueprint, transform, attach_to)
        self.actors.append(actor)
        return actor

    def alive_actors(self) -> list[FakeActor]:
        return [a for a in self.actors if a.alive]

    def vehicle(self) -> FakeVehicle:
        return next(a for a in self.actors if isinstance(a, FakeVehicle))

    # time
    def tick(self, seconds: float = 10.0) -> int:
        if not self._settings.synchronous_mode:
            raise RuntimeError("fake world: tick() outside synchronous mode")
        dt = self._settings.fixed_delta_seconds
        self.frame += 1
        self.ticks += 1
        for a in self.alive_actors():
            if isinstance(a, FakeVehicle):
                a.step(dt)
        for a in self.alive_actors():
            if isinstance(a, FakeSensor):
                a.emit(self.frame)
                if a.callback is not None and a.type_id == "sensor.other.collision":
                    for type_id in self.pending_collisions:
                        other = type("Other", (), {"type_id": type_id, "id": 7})()
                        a.callback(type("Event", (), {"frame": self.frame, "other_actor": other})())
                if a.callback is not None and a.type_id == "sensor.other.lane_invasion":
                    for marks in self.pending_invasions:
                        crossed = [type("Marking", (), {"type": m})() for m in marks]
                        a.callback(type("Event", (), {"frame": self.frame, "crossed_lane_markings": crossed})())
        self.pending_collisions, self.pending_invasions = [], []
        return self.frame


class FakeCarlaClient:
    """``carla.Client`` stand-in: records calls; ``load_world`` swaps in a fresh FakeCarlaWorld."""

    def __init__(self, world: FakeCarlaWorld, server_version: str = "0.9.16", client_version: str = "0.9.16"):
        self.world = world
        self.server_version = server_version
        self.client_version = client_version
        self.timeout = None
        self.loaded: list[str] = []

    def set_timeout(self, seconds: float) -> None:
        self.timeout = seconds

    def get_server_version(self) -> str:
        return self.server_version

    def get_client_version(self) -> str:
        return self.client_version

    def get_world(self) -> FakeCarlaWorld:
        return self.world

    def load_world(self, town: str) -> FakeCarlaWorld:
        self.loaded.append(town)
        self.world = FakeCarlaWorld(FakeMap(name=f"Carla/Maps/{town}"), settings=self.world.get_settings())
        return self.world


def factory(client: FakeCarlaClient):
    """A ``client_factory(host, port)`` returning ``client`` and recording the address."""

    def make(host: str, port: int) -> FakeCarlaClient:
        client.address = (host, port)
        return client

    return make


def _copy_settings(s: carla.WorldSettings) -> carla.WorldSettings:
    return carla.WorldSettings(
        synchronous_mode=s.synchronous_mode,
        no_rendering_mode=s.no_rendering_mode,
        fixed_delta_seconds=s.fixed_delta_seconds or 0.0,
    )
