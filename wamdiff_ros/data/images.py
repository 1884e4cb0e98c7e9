"""Image encoding and decoding for ROS image messages, with numpy and OpenCV (no cv_bridge).

Everything in the package handles images as ``H×W×3`` ``uint8`` RGB. These helpers convert to and
from what travels on ``sensor_msgs/Image`` (raw, with an ``encoding``) and
``sensor_msgs/CompressedImage`` (JPEG or PNG bytes), validating sizes and encodings so a malformed
message fails with an error naming what was expected instead of reaching a model.
"""

from __future__ import annotations

import cv2
import numpy as np

from wamdiff_ros.rig import CameraSpec

RAW_ENCODINGS: dict[str, int] = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
"""Raw ``sensor_msgs/Image`` encodings that can be decoded, with their channel counts (8 bit each)."""

COMPRESSED_FORMATS: tuple[str, ...] = ("jpeg", "png")

_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)
"""OpenCV >= 4.11 decodes JPEG straight to RGB (mono JPEG too), without a BGR image to convert; older
OpenCV (a system python3-opencv) takes the BGR path."""

_MAGIC = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}


def check_rgb(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``image`` if it is an H×W×3 uint8 array, else raise ValueError naming ``name``."""
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        got = (getattr(image, "shape", type(image).__name__), getattr(image, "dtype", None))
        raise ValueError(f"{name}: expected an H×W×3 uint8 RGB array, got shape/dtype {got}")
    return image


def encode_compressed(image: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """Encode an RGB image as JPEG (``quality`` 1..100) or PNG bytes."""
    check_rgb(image)
    if fmt not in COMPRESSED_FORMATS:
        raise ValueError(f"encode_compressed: format must be one of {COMPRESSED_FORMATS}, got {fmt!r}")
    if fmt == "jpeg":
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"encode_compressed: JPEG quality must be in [1, 100], got {quality}")
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    else:
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", image[..., ::-1], params)
    if not ok:
        raise ValueError(f"encode_compressed: OpenCV failed to encode a {image.shape} image as {fmt}")
    return buf.tobytes()


def compressed_format_string(fmt: str) -> str:
    """The ``CompressedImage.format`` field image_transport writes for an rgb8 source."""
    if fmt not in COMPRESSED_FORMATS:
        raise ValueError(f"compressed format must be one of {COMPRESSED_FORMATS}, got {fmt!r}")
    return f"rgb8; {fmt} compressed bgr8"


def sniff_format(data: bytes | np.ndarray) -> str | None:
    """``"jpeg"`` or ``"png"`` from the leading magic bytes, or None if neither."""
    head = bytes(np.asarray(data, dtype=np.uint8)[:8]) if isinstance(data, np.ndarray) else bytes(data[:8])
    for fmt, magic in _MAGIC.items():
        if head.startswith(magic):
            return fmt
    return None


def decode_compressed(
    data: bytes | np.ndarray, fmt: str = "", expected_size: tuple[int, int] | None = None
) -> np.ndarray:
    """Decode ``CompressedImage`` bytes to an H×W×3 uint8 RGB image.

    Args:
        data: the message's ``data`` (bytes or a uint8 array).
        fmt: the message's ``format`` field (e.g. ``"jpeg"``, ``"rgb8; jpeg compressed bgr8"``); when it
            names jpeg or png, the bytes must match. Empty: detected from the bytes.
        expected_size: ``(width, height)`` the image must have, or None to accept any.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray | memoryview) else data
    buf = np.asarray(buf, dtype=np.uint8).reshape(-1)
    actual = sniff_format(buf)
    if actual is None:
        raise ValueError(f"CompressedImage: data ({buf.size} bytes) is neither JPEG nor PNG (format field {fmt!r})")
    declared = [f for f in COMPRESSED_FORMATS if f in fmt.lower() or (f == "jpeg" and "jpg" in fmt.lower())]
    if declared and actual not in declared:
        raise ValueError(f"CompressedImage: format field {fmt!r} says {declared[0]}, but the data is {actual}")
    if actual == "jpeg" and _IMREAD_RGB is not None:
        rgb = cv2.imdecode(buf, _IMREAD_RGB)
        if rgb is None:
            raise ValueError(f"CompressedImage: OpenCV could not decode {buf.size} bytes of jpeg")
    else:
        image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f"CompressedImage: OpenCV could not decode {buf.size} bytes of {actual}")
        if image.dtype != np.uint8:
            raise ValueError(f"CompressedImage: expected 8-bit {actual}, got {image.dtype}")
        rgb = _to_rgb(image, {1: "mono8", 3: "bgr8", 4: "bgra8"}[1 if image.ndim == 2 else image.shape[2]])
    _check_size(rgb, expected_size, "CompressedImage")
    return rgb


def decode_raw(
    data: bytes | np.ndarray,
    width: int,
    height: int,
    encoding: str,
    step: int | None = None,
    expected_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Decode a raw ``sensor_msgs/Image`` (``rgb8``/``bgr8``/``rgba8``/``bgra8``/``mono8``) to RGB.

    ``step`` is the row length in bytes (may include padding); None means ``width × channels``.
    """
    if encoding not in RAW_ENCODINGS:
        raise ValueError(f"Image.encoding: expected one of {tuple(RAW_ENCODINGS)}, got {encoding!r}")
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        raise ValueError(f"Image: expected positive width and height, got {width}×{height}")
    channels = RAW_ENCODINGS[encoding]
    row = width * channels
    step = row if step is None else int(step)
    if step < row:
        raise ValueError(f"Image.step: expected >= {row} bytes for {width} px of {encoding}, got {step}")
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray | memoryview) else data
    buf = np.asarray(buf, dtype=np.uint8).reshape(-1)
    if buf.size != step * height:
        raise ValueError(
            f"Image.data: expected {step * height} bytes ({height} rows × step {step}) for a {width}×{height} "
            f"{encoding} image, got {buf.size}"
        )
    image = buf.reshape(height, step)[:, :row].reshape(height, width, channels)
    rgb = _to_rgb(image if channels > 1 else image[..., 0], encoding)
    _check_size(rgb, expected_size, "Image")
    return rgb


def encode_raw(image: np.ndarray, encoding: str = "rgb8") -> tuple[bytes, int, int, int]:
    """RGB image -> ``(data, width, height, step)`` for a raw ``sensor_msgs/Image`` in ``encoding``."""
    check_rgb(image)
    if encoding not in RAW_ENCODINGS:
        raise ValueError(f"encode_raw: encoding must be one of {tuple(RAW_ENCODINGS)}, got {encoding!r}")
    conv = {
        "rgb8": None,
        "bgr8": cv2.COLOR_RGB2BGR,
        "rgba8": cv2.COLOR_RGB2RGBA,
        "bgra8": cv2.COLOR_RGB2BGRA,
        "mono8": cv2.COLOR_RGB2GRAY,
    }[encoding]
    out = np.ascontiguousarray(image if conv is None else cv2.cvtColor(image, conv))
    h, w = image.shape[:2]
    return out.tobytes(), w, h, w * RAW_ENCODINGS[encoding]


def fit_to_camera(image: np.ndarray, camera: CameraSpec, fx: float | None) -> np.ndarray:
    """``image`` at ``camera``'s size: as it is when it already has that size, else resized (``INTER_AREA``
    when shrinking) if its focal length ``fx`` [px] shows the camera's view after scaling.

    The one way the planner node, replay and datasets take cameras recorded at another resolution
    (real cameras are 1920×1080 or larger). ValueError naming the sizes and why otherwise: another
    aspect ratio or field of view, or no intrinsics (``fx`` None) to tell.
    """
    h, w = image.shape[:2]
    if (w, h) == (camera.width, camera.height):
        return image
    problem = camera.view_problem(w, h, fx)
    if problem is None and fx is None:
        problem = "no camera_info gives its field of view"
    if problem:
        raise ValueError(f"expected {camera.width}×{camera.height} px (rig), got {w}×{h}; {problem}")
    shrink = w > camera.width
    return cv2.resize(
        image, (camera.width, camera.height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )


def _to_rgb(image: np.ndarray, encoding: str) -> np.ndarray:
    conv = {
        "rgb8": None,
        "bgr8": cv2.COLOR_BGR2RGB,
        "rgba8": cv2.COLOR_RGBA2RGB,
        "bgra8": cv2.COLOR_BGRA2RGB,
        "mono8": cv2.COLOR_GRAY2RGB,
    }[encoding]
    return np.ascontiguousarray(image if conv is None else cv2.cvtColor(np.ascontiguousarray(image), conv))


def _check_size(image: np.ndarray, expected_size: tuple[int, int] | None, what: str) -> None:
    if expected_size is not None and (image.shape[1], image.shape[0]) != tuple(expected_size):
        w, h = expected_size
        raise ValueError(f"{what}: expected a {w}×{h} image, got {image.shape[1]}×{image.shape[0]}")
