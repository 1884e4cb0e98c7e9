"""Training samples from driving bags: images, ego state and history, command, instruction, the
logged future, the scoring scene and driving-language pairs.

Every tick whose episode continues for the trajectory horizon becomes a sample. Ground truth comes
from ``/wamdiff/truth`` and ``/wamdiff/map``; the scoring scene (and with it the future) is built by
:func:`wamdiff_ros.scenes.scene_at`, the same code that scores closed-loop runs, on the road cropped
around the ego exactly as the live world hands it to drivers (``crop_lanes`` with ``CROP_RADIUS``,
route lanes kept).

Cache: decoding JPEG and deriving the targets dominate reading a bag, so the first time a bag is
used its images are decoded once into uint8 ``.npy`` files (memory-mapped afterwards) with a
``has_images.npy`` mask, and per trajectory spec the futures (N, T, 3) and language texts are stored
as JSON, in ``cache_dir/<sha256 of the bag's storage files>-v<CACHE_VERSION>[-<rig sizes>]/`` (the sizes
when images are resized to a rig other than the recorded one; target files are also keyed by the spec
and a hash of the code deriving them). Nothing is pickled: the ground truth is re-read from the bag (a
fraction of a second), and every cache file loads without executing code. Every file is built under a
temporary name and renamed when complete, so an interrupted build is never used. Later epochs, and
later runs on the same bag content, read the memory maps and never decode again.

Cameras recorded at another resolution with the rig's fields of view (``Rig.view_mismatch``) are
resized to the rig's sizes with :func:`wamdiff_ros.data.images.fit_to_camera`, as the planner node does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from wamdiff_ros.atomic import atomic_path
from wamdiff_ros.data.bag import BagReader, DrivingLog
from wamdiff_ros.data.images import fit_to_camera
from wamdiff_ros.data.ros_types import decode_image_msg
from wamdiff_ros.geometry import relative, resample
from wamdiff_ros.rig import Rig
from wamdiff_ros.scenes import future_available, scene_at
from wamdiff_ros.stamps import NS_PER_S, past_frame_index
from wamdiff_ros.types import EgoState, Lane, LogFrame, Observation, SceneTruth, TrajectorySpec

CACHE_VERSION = 3
"""Bumped whenever the cache layout or the meaning of its contents changes."""

HAS_IMAGES = "has_images.npy"
"""(N,) bool: frame k has every rig camera's image."""


def default_cache_dir() -> Path:
    """``$WAMDIFF_CACHE/datasets``, else ``~/.cache/wamdiff_ros/datasets``."""
    root = os.environ.get("WAMDIFF_CACHE") or Path.home() / ".cache" / "wamdiff_ros"
    return Path(root) / "datasets"


@dataclass
class Sample:
    """One training sample (a tick of a bag).

    Attributes:
        images: camera name -> H×W×3 uint8 RGB, in the rig's order.
        ego: ego state at the tick (map frame; stamp in bag time).
        ego_history: (H, 3) past base_link poses relative to the current one, oldest first, every
            ``spec.dt`` s (before the episode start: the episode's first pose).
        past_images: the same cameras ``past_frame_s`` earlier, picked in the sample's episode by
            :func:`~wamdiff_ros.stamps.past_frame_index`; None when the dataset was made without a past
            frame.
        command: one of :data:`wamdiff_ros.types.COMMANDS`.
        instruction: navigation instruction text.
        future: (T, 3) logged ego poses in base_link at ``spec.times`` (the imitation target).
        scene: ground truth for scoring a plan at this tick (None when the dataset was made with
            ``scenes=False``: building it interpolates every agent's future, ~10 ms).
        language: ``{"vqa": [(question, answer), ...], "reasoning": str}`` about this tick
            (:mod:`wamdiff_ros.sim.language`; reasoning is empty for plain cruising).
        stamp_ns: bag time of the tick [ns].
        episode, scenario: identify the episode and its scenario type.
        source: ``(bag index, frame index)`` within the dataset.
    """

    images: dict[str, np.ndarray]
    ego: EgoState
    ego_history: np.ndarray
    command: str
    instruction: str
    future: np.ndarray
    scene: SceneTruth | None
    language: dict = field(default_factory=dict)
    stamp_ns: int = 0
    episode: str = ""
    scenario: str = ""
    source: tuple[int, int] = (0, 0)
    past_images: dict[str, np.ndarray] | None = None

    def observation(self) -> Observation:
        """The planner input this sample holds (what a node would assemble at the tick)."""
        return Observation(
            images=self.images,
            ego=self.ego,
            stamp_ns=self.stamp_ns,
            command=self.command,
            instruction=self.instruction,
            ego_history=self.ego_history,
            past_images=self.past_images,
        )


class _BagData:
    """One bag's ground truth, episode bookkeeping and images (cached memory maps or encoded messages)."""

    def __init__(self, reader: BagReader, fit: _CameraFit, cache_dir: Path | None):
        self.path = reader.path
        self.cameras = cameras = fit.rig.names
        self.fit = fit
        self.cache = None
        self._maps: dict[str, np.ndarray] = {}
        self._encoded: dict[str, list] = {}
        if cache_dir is None:
            self.log = reader.read_log()
            self._encoded, self.has_images = _collect_messages(reader, self.log, cameras)
        else:
            self.cache = Path(cache_dir) / f"{_content_hash(reader.storage_files)}-v{CACHE_VERSION}{fit.cache_suffix}"
            if not self.cache.is_dir():
                _build_cache(reader, fit, self.cache)
            self.log = reader.read_log()
            self.has_images = np.load(self.cache / HAS_IMAGES, allow_pickle=False)
            if self.has_images.shape != (len(self.log.frames),):
                raise ValueError(f"dataset cache {self.cache}: {HAS_IMAGES} does not match {self.path}; delete it")
        self.episode_start = _episode_starts(self.log.frames)
        self._targets: dict[int, tuple[np.ndarray, dict]] = {}

    def lanes_near(self, k: int) -> list[Lane]:
        """The road around the ego at frame ``k``, cropped as the live world crops it for drivers."""
        from wamdiff_ros.sim.roadnet import crop_lanes
        from wamdiff_ros.sim.world import CROP_RADIUS

        f = self.log.frames[k]
        return crop_lanes(self.log.lanes_at(k), f.ego.pose[:2], CROP_RADIUS, keep=f.route_lane_ids)

    def scene(self, k: int, spec: TrajectorySpec) -> SceneTruth:
        return scene_at(self.log.frames, self.lanes_near(k), k, spec)

    def target(self, k: int, spec: TrajectorySpec) -> tuple[np.ndarray, dict]:
        """``(future (T, 3), language)`` of frame ``k`` (from the cache when it has them)."""
        if k not in self._targets:
            scene = self.scene(k, spec)
            future = scene.human_trajectory
            self._targets[k] = (future, _language(self.log.frames[k], scene.lanes, future))
        return self._targets[k]

    def load_targets(self, frames: list[int], spec: TrajectorySpec) -> None:
        """Fill the targets of ``frames`` from (or, first, into) the cache's file for ``spec``."""
        if self.cache is None:
            return
        path = self.cache / f"targets_{spec.num_poses}x{spec.dt:g}s_{_targets_code_hash()}.json"
        if path.is_file():
            self._targets.update(_targets_from_json(json.loads(path.read_text())))
        missing = [k for k in frames if k not in self._targets]
        if missing:
            for k in missing:
                self.target(k, spec)
            with atomic_path(path) as tmp:
                Path(tmp).write_text(json.dumps(_targets_to_json(self._targets)))

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def images(self, k: int) -> dict[str, np.ndarray]:
        if self.cache is None:
            return {c: self.fit(c, self._encoded[c][k]) for c in self.cameras}
        if not self._maps:
            self._maps = {c: np.load(self.cache / f"images_{c}.npy", mmap_mode="r") for c in self.cameras}
        return {c: np.array(self._maps[c][k]) for c in self.cameras}


@dataclass(frozen=True)
class DatasetSource:
    """The arguments of a :class:`DrivingDataset` (picklable, hashable): a fan-out task carries this and
    its worker opens the same samples with :meth:`open`, since a dataset, or even one scoring scene
    (its road and agents), pickles to megabytes."""

    bags: tuple[str, ...]
    spec: TrajectorySpec
    history: int
    rig: Rig | None
    remaps: tuple[tuple[str, str], ...]
    cache_dir: str | None
    scenes: bool
    past_frame_s: float = 0.0

    def open(self) -> DrivingDataset:
        """The dataset, opened once per process (the last two sources opened are kept)."""
        return _open_source(self)


@lru_cache(maxsize=2)
def _open_source(source: DatasetSource) -> DrivingDataset:
    return DrivingDataset(
        list(source.bags), source.spec, source.history, source.cache_dir, source.rig, source.scenes,
        dict(source.remaps), source.past_frame_s,
    )  # fmt: skip


class DrivingDataset:
    """Samples from one or more driving bags (see the module docstring).

    Args:
        bags: bag directories or ``.mcap`` files (or names given to ``wamdiff collect --out``).
        spec: trajectory grid of the future (and of the history's spacing).
        history: number of past poses in ``ego_history``.
        cache_dir: where decoded images are cached; None decodes on every access (no disk use).
        rig: cameras to load, checked against each bag's recording; None: the first bag's rig.
        scenes: put the scoring scene in each sample (None there otherwise; :meth:`scene` still works).
        remaps: bag topic -> the name it is read as (``--remap FROM:=TO``, :mod:`wamdiff_ros.data.remap`).
        past_frame_s: also load the cameras this long before each sample (``Sample.past_images``; 0: no).
    """

    def __init__(
        self,
        bags: list[str | os.PathLike],
        spec: TrajectorySpec | None = None,
        history: int = 4,
        cache_dir: str | os.PathLike | None = default_cache_dir(),  # noqa: B008
        rig: Rig | None = None,
        scenes: bool = True,
        remaps: dict[str, str] | None = None,
        past_frame_s: float = 0.0,
    ):
        if isinstance(bags, str | os.PathLike):
            bags = [bags]
        if not bags:
            raise ValueError("DrivingDataset.bags: expected at least one bag")
        if history < 0:
            raise ValueError(f"DrivingDataset.history: expected >= 0 poses, got {history}")
        self.spec = spec or TrajectorySpec()
        self.source = DatasetSource(
            tuple(str(b) for b in bags),
            self.spec,
            int(history),
            rig,
            tuple(sorted((remaps or {}).items())),
            None if cache_dir is None else str(cache_dir),
            bool(scenes),
            float(past_frame_s),
        )
        """The arguments as given: what a worker process needs to open the same samples."""
        self.history = int(history)
        self.rig = rig
        self.scenes = bool(scenes)
        self.past_frame_s = float(past_frame_s)
        self.bags: list[_BagData] = []
        for path in bags:
            with BagReader(path, remaps) as reader:
                bag_rig = reader.rig(self.rig)
                if self.rig is None:
                    self.rig = bag_rig
                reason = self.rig.view_mismatch(bag_rig)
                if reason:
                    raise ValueError(f"{path}: recorded rig does not match the dataset's rig: {reason}")
                cache = None if cache_dir is None else Path(cache_dir)
                self.bags.append(_BagData(reader, _CameraFit(self.rig, bag_rig), cache))
        self.index: list[tuple[int, int]] = []
        self.skipped = 0
        for b, bag in enumerate(self.bags):
            frames = bag.log.frames
            for k in range(len(frames)):
                if not future_available(frames, k, self.spec):
                    continue
                if not bag.has_images[k]:
                    self.skipped += 1
                    continue
                self.index.append((b, k))
            bag.load_targets([k for bb, k in self.index if bb == b], self.spec)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Sample:
        b, k = self._locate(i)
        bag = self.bags[b]
        frame = bag.log.frames[k]
        future, language = bag.target(k, self.spec)
        return Sample(
            images=bag.images(k),
            ego=frame.ego,
            ego_history=self._history(bag, k),
            command=frame.command,
            instruction=frame.instruction,
            future=future.copy(),
            scene=bag.scene(k, self.spec) if self.scenes else None,
            language=language,
            stamp_ns=frame.stamp_ns,
            episode=frame.episode,
            scenario=frame.scenario,
            source=(b, k),
            past_images=self._past_images(bag, k),
        )

    def scene(self, i: int) -> SceneTruth:
        """The scoring scene of sample ``i`` (no image access)."""
        b, k = self._locate(i)
        return self.bags[b].scene(k, self.spec)

    def observation(self, i: int) -> Observation:
        """The planner input of sample ``i``, for evaluating planners on logged frames."""
        b, k = self._locate(i)
        bag = self.bags[b]
        frame = bag.log.frames[k]
        return Observation(
            images=bag.images(k),
            ego=frame.ego,
            stamp_ns=frame.stamp_ns,
            command=frame.command,
            instruction=frame.instruction,
            ego_history=self._history(bag, k),
            past_images=self._past_images(bag, k),
        )

    def _locate(self, i: int) -> tuple[int, int]:
        if not -len(self.index) <= i < len(self.index):
            raise IndexError(f"DrivingDataset: index {i} out of range for {len(self.index)} samples")
        return self.index[i]

    def _past_images(self, bag: _BagData, k: int) -> dict[str, np.ndarray] | None:
        if not self.past_frame_s:
            return None
        start = bag.episode_start[k]
        stamps = [f.stamp_ns for f in bag.log.frames[start : k + 1]]
        j = start + past_frame_index(stamps, self.past_frame_s, bag.has_images[start : k + 1])
        return bag.images(j)

    def _history(self, bag: _BagData, k: int) -> np.ndarray:
        if self.history == 0:
            return np.zeros((0, 3))
        frames = bag.log.frames[bag.episode_start[k] : k + 1]
        now = frames[-1]
        times = -self.spec.dt * np.arange(self.history, 0, -1)
        if len(frames) < 2:
            return np.zeros((self.history, 3))
        stamps = np.array([f.stamp_ns - now.stamp_ns for f in frames]) / NS_PER_S
        poses = np.stack([f.ego.pose for f in frames])
        return relative(now.ego.pose, resample(poses, stamps, times))


def _language(frame: LogFrame, lanes: list, future: np.ndarray) -> dict:
    """VQA pairs and reasoning about the tick; the action they name is the logged future's."""
    from wamdiff_ros.sim.language import reasoning, vqa

    return {"vqa": vqa(frame, lanes, future), "reasoning": reasoning(frame, lanes, future)}


@lru_cache(maxsize=1)
def _targets_code_hash() -> str:
    """Hash of the code that derives futures and language, so cached targets follow code changes."""
    import wamdiff_ros.scenes
    import wamdiff_ros.sim.language
    import wamdiff_ros.sim.roadnet

    h = hashlib.sha256()
    for mod in (wamdiff_ros.scenes, wamdiff_ros.sim.language, wamdiff_ros.sim.roadnet):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()[:12]


def _targets_to_json(targets: dict[int, tuple[np.ndarray, dict]]) -> dict:
    """Frame -> (future, language) as JSON (floats round-trip exactly; VQA pairs become lists)."""
    return {str(k): {"future": future.tolist(), "language": lang} for k, (future, lang) in targets.items()}


def _targets_from_json(doc: dict) -> dict[int, tuple[np.ndarray, dict]]:
    out = {}
    for k, entry in doc.items():
        lang = dict(entry["language"])
        lang["vqa"] = [tuple(pair) for pair in lang.get("vqa", [])]
        out[int(k)] = (np.asarray(entry["future"], np.float64).reshape(-1, 3), lang)
    return out


def _episode_starts(frames: list[LogFrame]) -> np.ndarray:
    starts = np.zeros(len(frames), np.int64)
    for k in range(1, len(frames)):
        starts[k] = starts[k - 1] if frames[k].episode == frames[k - 1].episode else k
    return starts


def _frame_slots(log: DrivingLog) -> dict[int, int]:
    return {f.stamp_ns: k for k, f in enumerate(log.frames)}


def _collect_messages(reader: BagReader, log: DrivingLog, cameras: list[str]) -> tuple[dict, np.ndarray]:
    slots = _frame_slots(log)
    encoded = {c: [None] * len(log.frames) for c in cameras}
    for cam, stamp_ns, msg in reader.image_messages(cameras):
        k = slots.get(stamp_ns)
        if k is not None:
            encoded[cam][k] = msg
    has = np.array([all(encoded[c][k] is not None for c in cameras) for k in range(len(log.frames))], bool)
    return encoded, has


@dataclass(frozen=True)
class _CameraFit:
    """Decodes a bag's image messages, recorded by ``recorded``'s cameras, into ``rig``'s images."""

    rig: Rig
    recorded: Rig

    def __call__(self, camera: str, msg) -> np.ndarray:
        src = self.recorded.camera(camera)
        try:
            return fit_to_camera(decode_image_msg(msg, (src.width, src.height)), self.rig.camera(camera), src.focal)
        except ValueError as e:
            raise ValueError(f"camera {camera}: {e}") from e

    @property
    def cache_suffix(self) -> str:
        """Distinguishes a cache of resized images from one at the recorded sizes."""
        if all((a.width, a.height) == (b.width, b.height) for a, b in zip(self.rig.cameras, self.recorded.cameras)):
            return ""
        return "-" + "_".join(f"{c.width}x{c.height}" for c in self.rig.cameras)


def _build_cache(reader: BagReader, fit: _CameraFit, target: Path) -> None:
    """Decode every image of the bag once into ``target`` (built in a temporary sibling, then renamed)."""
    log = reader.read_log()
    slots = _frame_slots(log)
    cameras = fit.rig.names
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        n = len(log.frames)
        maps = {
            c.name: np.lib.format.open_memmap(
                tmp / f"images_{c.name}.npy", mode="w+", dtype=np.uint8, shape=(n, c.height, c.width, 3)
            )
            for c in fit.rig.cameras
        }
        seen = {c: np.zeros(n, bool) for c in cameras}
        for cam, stamp_ns, msg in reader.image_messages(cameras):
            k = slots.get(stamp_ns)
            if k is not None:
                maps[cam][k] = fit(cam, msg)
                seen[cam][k] = True
        for m in maps.values():
            m.flush()
        del maps
        np.save(tmp / HAS_IMAGES, np.logical_and.reduce([seen[c] for c in cameras]))
        for p in tmp.iterdir():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
        try:
            os.replace(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _content_hash(files: list[Path]) -> str:
    h = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()[:32]
