"""Camera rigs: which cameras a model sees, their image size, field of view and mounting pose.

A rig file (``config/rigs/*.yaml``) is the single source of truth shared by the renderer, the
models (which record the rig they were trained with), the planner node (which checks incoming
camera_info against it) and the CARLA bridge (which spawns matching sensors).

Mounting poses are in base_link (REP-103: x forward, y left, z up); ``rpy`` is roll, pitch, yaw in
radians applied as R = Rz(yaw)·Ry(pitch)·Rx(roll), so positive pitch tilts the camera down.
The optical frame follows REP-103's camera convention: z forward, x right, y down.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from wamdiff_ros.config import ConfigError, load_yaml

FOCAL_TOLERANCE = 0.02
"""A camera's focal length, scaled to the rig's image width, may differ from the rig's by this fraction."""

ASPECT_TOLERANCE = 0.01
"""A camera's aspect ratio (width / height) may differ from the rig's by this fraction."""

CAMERA_PREFIX = "/cameras"
"""Default prefix of camera topics: ``<prefix>/<camera>/image[/compressed]`` and ``<prefix>/<camera>/camera_info``."""

OPTICAL_FROM_BODY = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
"""Rotation taking camera-body axes (x fwd, y left, z up) to optical axes (z fwd, x right, y down)."""


def default_image_topic(camera: str, compressed: bool = True, prefix: str = CAMERA_PREFIX) -> str:
    """``<prefix>/<camera>/image`` (sensor_msgs/Image), or with ``/compressed`` (CompressedImage)."""
    raw = f"{prefix.rstrip('/')}/{camera}/image"
    return f"{raw}/compressed" if compressed else raw


def default_camera_info_topic(camera: str, prefix: str = CAMERA_PREFIX) -> str:
    return f"{prefix.rstrip('/')}/{camera}/camera_info"


@dataclass(frozen=True)
class CameraSpec:
    """One pinhole camera.

    Attributes:
        name: topic-safe name (``front``, ``front_left`` …).
        width, height: image size [px].
        fov_deg: horizontal field of view [deg]; square pixels, principal point at the centre.
        position: (x, y, z) of the optical centre in base_link [m].
        rpy: (roll, pitch, yaw) of the camera body in base_link [rad].
        image_topic: the raw image topic (its CompressedImage on ``<image_topic>/compressed``, as
            image_transport names it); "" for ``<prefix>/<name>/image`` (prefix ``/cameras`` by default).
        camera_info_topic: the camera_info topic; "" for ``<prefix>/<name>/camera_info``.
    """

    name: str
    width: int
    height: int
    fov_deg: float
    position: tuple[float, float, float]
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    image_topic: str = ""
    camera_info_topic: str = ""

    def __post_init__(self):
        where = f"camera {self.name!r}"
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ConfigError(f"{where}: name must be non-empty [A-Za-z0-9_]")
        if not (16 <= int(self.width) <= 4096 and 16 <= int(self.height) <= 4096):
            raise ConfigError(f"{where}: width/height must be in [16, 4096] px, got {self.width}×{self.height}")
        if not 10.0 <= float(self.fov_deg) <= 170.0:
            raise ConfigError(f"{where}: fov_deg must be in [10, 170], got {self.fov_deg}")
        if len(self.position) != 3 or len(self.rpy) != 3:
            raise ConfigError(f"{where}: position and rpy must have 3 values each")
        for key in ("image_topic", "camera_info_topic"):
            topic = getattr(self, key)
            if topic and (not topic.startswith("/") or any(c.isspace() for c in topic)):
                raise ConfigError(f"{where}: {key} must be an absolute topic name without spaces, got {topic!r}")

    def images_on(self, compressed: bool, prefix: str = CAMERA_PREFIX) -> str:
        """The topic its images arrive on: raw (sensor_msgs/Image) or compressed (CompressedImage)."""
        if self.image_topic:
            return f"{self.image_topic}/compressed" if compressed else self.image_topic
        return default_image_topic(self.name, compressed, prefix)

    def camera_info_on(self, prefix: str = CAMERA_PREFIX) -> str:
        """The topic its camera_info arrives on."""
        return self.camera_info_topic or default_camera_info_topic(self.name, prefix)

    @property
    def focal(self) -> float:
        """Focal length [px] from the horizontal field of view."""
        return 0.5 * self.width / np.tan(np.radians(self.fov_deg) / 2)

    @property
    def K(self) -> np.ndarray:
        """3×3 intrinsic matrix (as in sensor_msgs/CameraInfo.k)."""
        f = self.focal
        return np.array([[f, 0.0, (self.width - 1) / 2], [0.0, f, (self.height - 1) / 2], [0.0, 0.0, 1.0]])

    @property
    def rotation(self) -> np.ndarray:
        """3×3 rotation of the camera body in base_link."""
        r, p, y = self.rpy
        rx = np.array([[1, 0, 0], [0, np.cos(r), -np.sin(r)], [0, np.sin(r), np.cos(r)]])
        ry = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
        rz = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
        return rz @ ry @ rx

    def base_link_to_optical(self, points: np.ndarray) -> np.ndarray:
        """Points (..., 3) in base_link -> optical frame (z forward, x right, y down)."""
        body = (np.asarray(points, np.float64) - np.asarray(self.position)) @ self.rotation
        return body @ OPTICAL_FROM_BODY.T

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project base_link points (..., 3) to pixels (..., 2); also returns depth (...) [m] (<= 0: behind)."""
        cam = self.base_link_to_optical(points)
        z = cam[..., 2]
        safe = np.where(z > 1e-6, z, 1e-6)
        uv = (cam[..., :2] / safe[..., None]) * self.focal + np.array([(self.width - 1) / 2, (self.height - 1) / 2])
        return uv, z

    def view_problem(self, width: int, height: int, fx: float | None) -> str | None:
        """Why an image of ``width``×``height`` px with focal length ``fx`` [px] does not show this camera's
        view once scaled to its size (None if it does). ``fx`` None: only the aspect ratio is checked.

        The aspect ratio must match within :data:`ASPECT_TOLERANCE` and the focal length, scaled by
        ``self.width / width``, within :data:`FOCAL_TOLERANCE` (the same horizontal field of view).
        """
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            return f"expected a positive image size, got {width}×{height} px"
        aspect, rig_aspect = width / height, self.width / self.height
        if abs(aspect - rig_aspect) > ASPECT_TOLERANCE * rig_aspect:
            return (
                f"aspect ratio differs: {width}×{height} px ({aspect:.3f}), "
                f"the rig's {self.width}×{self.height} px ({rig_aspect:.3f})"
            )
        if fx is None:
            return None
        scaled = float(fx) * self.width / width
        if not (math.isfinite(scaled) and abs(scaled - self.focal) <= FOCAL_TOLERANCE * self.focal):
            fov = math.degrees(2 * math.atan(0.5 * width / fx)) if math.isfinite(fx) and fx > 0 else float("nan")
            return (
                f"field of view differs: {fov:.1f}° (focal length {float(fx):.1f} px at {width} px wide), "
                f"the rig's {self.fov_deg:.1f}° ({self.focal:.1f} px at {self.width} px wide)"
            )
        return None

    def to_dict(self) -> dict:
        out = {
            "name": self.name,
            "width": int(self.width),
            "height": int(self.height),
            "fov_deg": float(self.fov_deg),
            "position": [float(v) for v in self.position],
            "rpy": [float(v) for v in self.rpy],
        }
        out.update({k: getattr(self, k) for k in ("image_topic", "camera_info_topic") if getattr(self, k)})
        return out


@dataclass(frozen=True)
class Rig:
    """An ordered set of cameras; the order is the order models see them in."""

    name: str
    cameras: tuple[CameraSpec, ...]

    def __post_init__(self):
        if not self.cameras:
            raise ConfigError(f"rig {self.name!r}: needs at least one camera")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ConfigError(f"rig {self.name!r}: camera names must be unique, got {names}")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def camera(self, name: str) -> CameraSpec:
        for c in self.cameras:
            if c.name == name:
                return c
        raise KeyError(f"rig {self.name!r} has no camera {name!r} (has {self.names})")

    def to_dict(self) -> dict:
        return {"name": self.name, "cameras": [c.to_dict() for c in self.cameras]}

    @classmethod
    def from_dict(cls, d: dict, source: str = "<rig>") -> Rig:
        try:
            cams = tuple(
                CameraSpec(
                    name=str(c["name"]),
                    width=int(c["width"]),
                    height=int(c["height"]),
                    fov_deg=float(c["fov_deg"]),
                    position=tuple(float(v) for v in c["position"]),
                    rpy=tuple(float(v) for v in c.get("rpy", (0.0, 0.0, 0.0))),
                    image_topic=str(c.get("image_topic", "")),
                    camera_info_topic=str(c.get("camera_info_topic", "")),
                )
                for c in d["cameras"]
            )
            return cls(name=str(d.get("name", "rig")), cameras=cams)
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, ConfigError):
                raise ConfigError(f"{source}: {e}") from e
            raise ConfigError(
                f"{source}: expected 'cameras' as a list of {{name, width, height, fov_deg, position, rpy"
                f"[, image_topic, camera_info_topic]}}: {e!r}"
            ) from e

    def view_mismatch(self, other: Rig) -> str | None:
        """Why ``other``'s cameras do not show this rig's views once their images are scaled to this rig's
        sizes (see :meth:`CameraSpec.view_problem`), or None if they do: a recording at another resolution
        with the same fields of view."""
        if self.names != other.names:
            return f"camera names/order differ: expected {self.names}, got {other.names}"
        for a, b in zip(self.cameras, other.cameras):
            problem = a.view_problem(b.width, b.height, b.focal)
            if problem:
                return f"camera {a.name!r}: {problem}"
        return None

    def mismatch(self, other: Rig) -> str | None:
        """Why ``other`` is not this rig (a human-readable reason), or None if they match."""
        if self.names != other.names:
            return f"camera names/order differ: expected {self.names}, got {other.names}"
        for a, b in zip(self.cameras, other.cameras):
            if (a.width, a.height) != (b.width, b.height):
                return f"camera {a.name!r}: expected {a.width}×{a.height} px, got {b.width}×{b.height}"
            if abs(a.fov_deg - b.fov_deg) > 0.5:
                return f"camera {a.name!r}: expected fov {a.fov_deg}°, got {b.fov_deg}°"
        return None


def load_rig(path: str | os.PathLike = "rigs/default.yaml") -> Rig:
    """Load a rig file (a path, or relative to ``config/``)."""
    return Rig.from_dict(load_yaml(path), str(path))
