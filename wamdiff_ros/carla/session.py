"""The CARLA side of the bridge: one client session on a CARLA server.

:class:`CarlaSession` connects (a clear error naming ``host:port`` when no server answers within the
timeout, and on a client/server version mismatch), loads the town, sets the weather, switches the
world to synchronous mode with ``fixed_delta_seconds``, spawns the ego with the rig's cameras
(``sensor.camera.rgb``, size, FOV and mount from :mod:`wamdiff_ros.carla.frames`) plus collision and
lane-invasion sensors, and ticks. It is a context manager: on exit, on Ctrl-C and on any error it
stops and destroys every actor it spawned and re-applies the world settings it found, so a server is
never left in synchronous mode waiting for a tick that will not come.

All CARLA calls go through the client object ``client_factory(host, port)`` returns (``carla.Client``
by default), so a test double of the client/world exercises the same calls.
"""

from __future__ import annotations

import logging
import math
import queue
import re
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from wamdiff_ros.carla import frames
from wamdiff_ros.carla.frames import _carla
from wamdiff_ros.carla.metrics import TickFacts
from wamdiff_ros.data.images import decode_raw
from wamdiff_ros.rig import Rig
from wamdiff_ros.types import EgoState

log = logging.getLogger(__name__)

CAMERA_BLUEPRINT = "sensor.camera.rgb"
COLLISION_BLUEPRINT = "sensor.other.collision"
LANE_INVASION_BLUEPRINT = "sensor.other.lane_invasion"


class CarlaConnectionError(RuntimeError):
    """No CARLA server answered."""


class CarlaVersionError(RuntimeError):
    """The ``carla`` client package and the server differ in version."""


class SensorTimeout(RuntimeError):
    """A sensor sent nothing for the frame just ticked."""


@dataclass(frozen=True)
class SessionConfig:
    """Attributes:
    host, port: the CARLA server's RPC endpoint.
    timeout_s: client timeout for every call, the first included [s].
    fixed_delta_seconds: simulated time per tick in synchronous mode [s].
    sensor_timeout_s: wall time to wait for a camera image of a ticked frame [s].
    allow_version_mismatch: connect even if client and server versions differ.
    spawn_z_offset: height above the road the ego is spawned at [m].
    """

    host: str = "localhost"
    port: int = 2000
    timeout_s: float = 10.0
    fixed_delta_seconds: float = 0.05
    sensor_timeout_s: float = 2.0
    allow_version_mismatch: bool = False
    spawn_z_offset: float = 0.5

    def __post_init__(self):
        if not (0 < self.fixed_delta_seconds <= 0.5):
            raise ValueError(f"fixed_delta_seconds: expected (0, 0.5] s, got {self.fixed_delta_seconds}")
        if not (self.timeout_s > 0 and self.sensor_timeout_s > 0):
            raise ValueError("timeout_s and sensor_timeout_s: expected > 0 s")
        if not 1 <= int(self.port) <= 65535:
            raise ValueError(f"port: expected 1..65535, got {self.port}")


def version_number(version: str) -> str:
    """``X.Y.Z`` at the start of a CARLA version string (``0.9.16-dirty`` -> ``0.9.16``), else the string."""
    m = re.match(r"\s*(\d+\.\d+\.\d+)", str(version))
    return m.group(1) if m else str(version).strip()


def connect(config: SessionConfig, client_factory=None):
    """A client connected to ``host:port`` whose server answered within ``timeout_s`` and matches its version."""
    factory = client_factory or _carla().Client
    where = f"{config.host}:{config.port}"
    client = factory(config.host, int(config.port))
    client.set_timeout(float(config.timeout_s))
    try:
        server = client.get_server_version()
    except RuntimeError as e:
        raise CarlaConnectionError(
            f"no CARLA server answered at {where} within {config.timeout_s:g} s (start one, e.g. "
            f"'./CarlaUE4.sh -RenderOffScreen -carla-rpc-port={config.port}', or set host/port): {e}"
        ) from e
    client_version = client.get_client_version()
    if version_number(client_version) != version_number(server) and not config.allow_version_mismatch:
        raise CarlaVersionError(
            f"CARLA client {client_version} (python package 'carla') does not match the server {server} at {where}: "
            f"install carla=={version_number(server)} or set allow_version_mismatch"
        )
    return client


def weather_parameters(weather):
    """A ``carla.WeatherParameters`` from a preset name (``ClearNoon`` …) or a mapping of its fields."""
    carla = _carla()
    if isinstance(weather, carla.WeatherParameters):
        return weather
    fields = sorted(n for n in dir(carla.WeatherParameters()) if not n.startswith("_") and n[0].islower())
    if isinstance(weather, str):
        preset = getattr(carla.WeatherParameters, weather, None)
        if not isinstance(preset, carla.WeatherParameters):
            presets = sorted(n for n in dir(carla.WeatherParameters) if n[0].isupper())
            raise ValueError(
                f"weather: expected a carla.WeatherParameters preset ({', '.join(presets)}), got {weather!r}"
            )
        return preset
    if isinstance(weather, dict):
        unknown = sorted(set(weather) - set(fields))
        if unknown:
            raise ValueError(f"weather: unknown field(s) {unknown} (known: {fields})")
        return carla.WeatherParameters(**{k: float(v) for k, v in weather.items()})
    raise ValueError(f"weather: expected a preset name or a mapping of {fields}, got {weather!r}")


def bgra_to_rgb(image) -> np.ndarray:
    """A ``carla.Image`` (BGRA, 8 bit) -> H×W×3 uint8 RGB."""
    return decode_raw(np.frombuffer(image.raw_data, np.uint8), image.width, image.height, "bgra8")


@dataclass
class EgoVehicle:
    """The spawned ego.

    Attributes:
        actor: the ``carla.Vehicle``.
        base_in_actor: (3,) base_link (rear-axle centre, on the ground) in the actor frame, ROS axes [m].
        wheelbase: front to rear axle [m].
        max_steer: the front wheels' largest steering angle [rad].
        cameras: camera name -> its ``carla.Sensor``.
    """

    actor: object
    base_in_actor: np.ndarray
    wheelbase: float
    max_steer: float
    cameras: dict = field(default_factory=dict)


@dataclass
class Tick:
    """One ticked frame: ``frame`` id, camera name -> RGB image (empty when not requested), the ego's
    state (base_link in the map frame) and the facts the metrics need."""

    frame: int
    images: dict[str, np.ndarray]
    ego: EgoState
    facts: TickFacts


def axle_geometry(vehicle) -> tuple[np.ndarray, float, float]:
    """``(base_in_actor, wheelbase, max_steer)`` from the vehicle's wheels (valid after its first tick).

    CARLA reports wheel positions in world coordinates [cm]; wheels are front-left, front-right,
    rear-left, rear-right. Falls back to the bounding box (axles at ±30 % of its length) when the
    wheels give no plausible wheelbase.
    """
    physics = vehicle.get_physics_control()
    wheels = list(physics.wheels)
    inv = np.array(vehicle.get_transform().get_inverse_matrix(), np.float64)
    max_steer = math.radians(max((w.max_steer_angle for w in wheels[:2]), default=70.0))
    local = []
    for w in wheels:
        p = w.position
        q = inv @ np.array([p.x / 100.0, p.y / 100.0, p.z / 100.0, 1.0])
        local.append(frames.vector_to_ros(*q[:3]))
    if len(local) == 4:
        front, rear = (local[0] + local[1]) / 2, (local[2] + local[3]) / 2
        wheelbase = float(front[0] - rear[0])
        if 1.0 < wheelbase < 10.0:
            return np.array([rear[0], rear[1], 0.0]), wheelbase, max_steer
    extent = vehicle.bounding_box.extent
    wheelbase = 1.2 * float(extent.x)
    log.warning("ego wheels give no plausible wheelbase; using the bounding box (wheelbase %.2f m)", wheelbase)
    return np.array([-wheelbase / 2, 0.0, 0.0]), wheelbase, max_steer


class CarlaSession:
    """See the module docstring. ``with CarlaSession(config) as s: s.load(town, weather); s.spawn_ego(...)``."""

    def __init__(self, config: SessionConfig | None = None, client_factory=None):
        self.config = config or SessionConfig()
        self._factory = client_factory
        self.client = None
        self.world = None
        self.map = None
        self.ego: EgoVehicle | None = None
        self._original_settings = None
        self._actors: list = []
        self._camera_queues: dict[str, queue.Queue] = {}
        self._events_lock = threading.Lock()
        self._collisions: list[tuple[int, str, int]] = []
        self._invasions: list[tuple[int, list[str]]] = []
        self.server_version = ""

    # ---- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> CarlaSession:
        try:
            self.connect()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def connect(self) -> None:
        self.client = connect(self.config, self._factory)
        self.server_version = self.client.get_server_version()
        self.world = self.client.get_world()
        self._original_settings = self.world.get_settings()
        self.map = self.world.get_map()

    def close(self) -> None:
        """Destroy every actor spawned here and restore the world settings found at connect (idempotent)."""
        try:
            self.release_actors()
        finally:
            if self.world is not None and self._original_settings is not None:
                try:
                    self.world.apply_settings(self._original_settings)
                except Exception as e:  # the server may be gone; nothing else to restore then
                    log.warning("could not restore the CARLA world settings: %s", e)
                self._original_settings = None

    def release_actors(self) -> None:
        """Stop and destroy the actors spawned here, sensors first; every one is tried even if one fails."""
        actors, self._actors = self._actors, []
        for actor in reversed(actors):
            try:
                if hasattr(actor, "listen"):
                    actor.stop()
            except Exception as e:
                log.warning("could not stop sensor %s: %s", getattr(actor, "id", "?"), e)
            try:
                actor.destroy()
            except Exception as e:
                log.warning("could not destroy actor %s: %s", getattr(actor, "id", "?"), e)
        self.ego = None
        self._camera_queues = {}
        with self._events_lock:
            self._collisions.clear()
            self._invasions.clear()

    # ---- world ----------------------------------------------------------------------------------

    @property
    def town(self) -> str:
        return str(self.map.name).rsplit("/", 1)[-1] if self.map is not None else ""

    def load(self, town: str = "", weather=None) -> None:
        """Load ``town`` unless it is loaded already ("" keeps the current one), set ``weather`` (None keeps
        it) and enter synchronous mode."""
        if town and town != self.town:
            self.world.apply_settings(self._original_settings)
            self.world = self.client.load_world(town)
            self.map = self.world.get_map()
        if weather is not None:
            self.world.set_weather(weather_parameters(weather))
        settings = self.world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = float(self.config.fixed_delta_seconds)
        self.world.apply_settings(settings)
        self.world.tick(float(self.config.timeout_s))

    def spawn_points(self) -> list:
        return list(self.map.get_spawn_points())

    def spawn_ego(self, blueprint: str, transform, rig: Rig, role_name: str = "hero") -> EgoVehicle:
        """Spawn the ego at ``transform`` (a ``carla.Transform``), then its cameras, collision and
        lane-invasion sensors. Every actor is registered for :meth:`release_actors` as soon as it exists."""
        carla = _carla()
        library = self.world.get_blueprint_library()
        bp = self._blueprint(library, blueprint)
        if bp.has_attribute("role_name"):
            bp.set_attribute("role_name", role_name)
        vehicle = self.world.try_spawn_actor(bp, transform)
        if vehicle is None:
            loc = transform.location
            raise RuntimeError(
                f"could not spawn {blueprint} at CARLA ({loc.x:.1f}, {loc.y:.1f}, {loc.z:.1f}): the place is occupied "
                "or off the map"
            )
        self._actors.append(vehicle)
        self.world.tick(float(self.config.timeout_s))
        base_in_actor, wheelbase, max_steer = axle_geometry(vehicle)
        ego = EgoVehicle(vehicle, base_in_actor, wheelbase, max_steer)
        self.ego = ego
        for cam in rig.cameras:
            cbp = self._blueprint(library, CAMERA_BLUEPRINT)
            cbp.set_attribute("image_size_x", str(int(cam.width)))
            cbp.set_attribute("image_size_y", str(int(cam.height)))
            cbp.set_attribute("fov", str(float(cam.fov_deg)))
            sensor = self.world.spawn_actor(cbp, frames.camera_transform(cam, base_in_actor), attach_to=vehicle)
            self._actors.append(sensor)
            q: queue.Queue = queue.Queue()
            self._camera_queues[cam.name] = q
            sensor.listen(q.put)
            ego.cameras[cam.name] = sensor
        collision = self.world.spawn_actor(
            self._blueprint(library, COLLISION_BLUEPRINT), carla.Transform(), attach_to=vehicle
        )
        self._actors.append(collision)
        collision.listen(self._on_collision)
        invasion = self.world.spawn_actor(
            self._blueprint(library, LANE_INVASION_BLUEPRINT), carla.Transform(), attach_to=vehicle
        )
        self._actors.append(invasion)
        invasion.listen(self._on_lane_invasion)
        return ego

    @staticmethod
    def _blueprint(library, name: str):
        try:
            return library.find(name)
        except (IndexError, RuntimeError, KeyError) as e:
            raise ValueError(f"blueprint {name!r}: not in the server's blueprint library ({e})") from e

    def _on_collision(self, event) -> None:
        with self._events_lock:
            self._collisions.append((int(event.frame), str(event.other_actor.type_id), int(event.other_actor.id)))

    def _on_lane_invasion(self, event) -> None:
        with self._events_lock:
            self._invasions.append((int(event.frame), [str(m.type) for m in event.crossed_lane_markings]))

    def apply_control(self, control) -> None:
        self.ego.actor.apply_control(control)

    # ---- ticking --------------------------------------------------------------------------------

    def tick(self, stamp_ns: int, route_time: float, want_images: bool = True) -> Tick:
        """Advance the world one step; the frame's images (when wanted), ego state and metric facts.

        ``stamp_ns`` stamps the ego state (the bridge's clock [ns]); ``route_time`` is the time since the
        route started [s], for the metrics.
        """
        if self.ego is None:
            raise RuntimeError("CarlaSession.tick: spawn the ego first")
        frame = int(self.world.tick(float(self.config.timeout_s)))
        images = {}
        for name, q in self._camera_queues.items():
            image = self._image_for(name, q, frame)
            if want_images:
                images[name] = bgra_to_rgb(image)
        with self._events_lock:
            collisions = [(t, i) for f, t, i in self._collisions if f <= frame]
            invasions = [m for f, m in self._invasions if f <= frame]
            self._collisions = [c for c in self._collisions if c[0] > frame]
            self._invasions = [v for v in self._invasions if v[0] > frame]
        ego = self.ego_state(stamp_ns)
        return Tick(frame, images, ego, self._facts(ego, route_time, collisions, invasions))

    def _image_for(self, name: str, q: queue.Queue, frame: int):
        deadline = time.monotonic() + self.config.sensor_timeout_s
        while True:
            left = deadline - time.monotonic()
            try:
                image = q.get(timeout=max(left, 0.0))
            except queue.Empty:
                raise SensorTimeout(
                    f"camera {name!r} sent no image for frame {frame} within {self.config.sensor_timeout_s:g} s"
                ) from None
            if int(image.frame) >= frame:
                return image

    def ego_state(self, stamp_ns: int) -> EgoState:
        """base_link's state in the map frame (REP-103)."""
        actor = self.ego.actor
        tf = actor.get_transform()
        actor_yaw = float(frames.transform_to_pose2d(tf)[2])
        velocity, yaw_rate = frames.base_link_velocity(
            actor.get_velocity(), actor.get_angular_velocity(), actor_yaw, self.ego.base_in_actor
        )
        return EgoState(
            pose=frames.base_link_pose(tf, self.ego.base_in_actor),
            velocity=velocity,
            acceleration=frames.vector_in_base_link(actor.get_acceleration(), actor_yaw),
            yaw_rate=yaw_rate,
            stamp_ns=stamp_ns,
        )

    def _facts(self, ego: EgoState, route_time: float, collisions, invasions) -> TickFacts:
        carla = _carla()
        actor = self.ego.actor
        location = actor.get_transform().location
        on_lane = self.map.get_waypoint(location, False, carla.LaneType.Driving)
        nearest = self.map.get_waypoint(location, True, carla.LaneType.Driving)
        red = None
        if actor.is_at_traffic_light() and actor.get_traffic_light_state() == carla.TrafficLightState.Red:
            light = actor.get_traffic_light()
            red = int(light.id) if light is not None else -1
        return TickFacts(
            time=route_time,
            pose=ego.pose,
            speed=float(np.hypot(*ego.velocity)),
            off_road=on_lane is None,
            in_junction=bool(nearest is not None and nearest.is_junction),
            red_light=red,
            collisions=collisions,
            lane_invasions=invasions,
        )
