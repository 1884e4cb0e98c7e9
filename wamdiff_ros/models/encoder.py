"""Shared scene encoder: per-camera CNN tokens with camera and position embeddings, plus an ego token.

Every camera goes through the same small strided CNN (a 4×4/4 stem, then 3×3/2 stages) giving
(H/32)×(W/32) tokens of width ``d_model`` (4×8 for 256×128 images); a learned camera embedding
(one per rig camera, in rig order) and a learned grid-position embedding are added. The ego token
embeds :func:`ego_features`.

With ``EncoderConfig.past_frame_s`` > 0 each camera's image from that long ago is stacked with its
current one as three more stem channels (early fusion: the stem sees what moved, at the cost of one
more image read per camera). The images input then holds the current camera set, then the past one.
:func:`widen_stems` lets a single-frame checkpoint initialise a two-frame model (``wamdiff train
--init`` with ``--model``): the past frame's stem weights start at zero, so the two-frame model starts
out computing exactly what the single-frame one did.

Pixels enter as raw 0…255 values: an affine pixel normalisation would pass through the unpadded stem
convolution as a per-channel affine map that the stem's BatchNorm absorbs, so it is folded away (the
stem's initial weights are scaled by 1/127.5 instead), saving two full-image passes per frame.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from wamdiff_ros.models.config import EncoderConfig
from wamdiff_ros.rig import Rig
from wamdiff_ros.types import EgoState, Observation

EGO_SCALES = np.array([10.0, 10.0, 3.0, 3.0, 0.5, 10.0])
"""Divisors of ``EgoState.as_vector()`` (vx, vy [m/s], ax, ay [m/s²], yaw rate [rad/s], speed [m/s])."""
HISTORY_SCALES = np.array([20.0, 5.0, 0.5])
"""Divisors of past poses (x, y [m], yaw [rad]) relative to the current base_link."""


def ego_feature_dim(history: int) -> int:
    return len(EGO_SCALES) + 4 * history


def ego_features(ego: EgoState, ego_history: np.ndarray, history: int) -> np.ndarray:
    """(6 + 4·history,) float32 network input: scaled ego state, then the newest ``history`` past
    poses (oldest first, zero-padded at the front when fewer exist), each ``(x, y, yaw, valid)``."""
    hist = np.asarray(ego_history, np.float64).reshape(-1, 3)[-history:] if history else np.zeros((0, 3))
    if not (ego.is_finite() and np.isfinite(hist).all()):
        raise ValueError("ego_features: ego state and ego_history must be finite")
    out = np.zeros((history, 4))
    if len(hist):
        out[history - len(hist) :, :3] = hist / HISTORY_SCALES
        out[history - len(hist) :, 3] = 1.0
    return np.concatenate([ego.as_vector() / EGO_SCALES, out.reshape(-1)]).astype(np.float32)


def _check_images(rig: Rig, images: dict | None, field: str) -> None:
    names = rig.names
    if images is None or set(images) != set(names):
        got = None if images is None else sorted(images)
        raise ValueError(f"Observation.{field}: expected cameras {names} (the model's rig), got {got}")
    for cam in rig.cameras:
        shape = images[cam.name].shape
        if shape != (cam.height, cam.width, 3):
            raise ValueError(
                f"Observation.{field}[{cam.name!r}]: expected {cam.height}×{cam.width}×3 (rig), got {shape}"
            )


def image_stack(names: list[str], images: dict, past_images: dict | None, frames: int) -> np.ndarray:
    """(frames·C, H, W, 3) uint8: the cameras ``names`` now, then (``frames`` == 2) ``past_images``."""
    sets = [images, past_images][:frames]
    return np.stack([s[n] for s in sets for n in names])


def scene_inputs(rig: Rig, obs: Observation, enc: EncoderConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs of an encoder configured by ``enc`` for one observation: images uint8
    (1, frames·C, H, W, 3) in the rig's camera order (the current set, then ``obs.past_images``) and ego
    features (1, F); ValueError naming the camera when the images do not fit ``rig``."""
    _check_images(rig, obs.images, "images")
    if enc.frames == 2:
        _check_images(rig, obs.past_images, "past_images")
    images = torch.from_numpy(image_stack(rig.names, obs.images, obs.past_images, enc.frames))[None]
    return images, torch.from_numpy(ego_features(obs.ego, obs.ego_history, enc.history))[None]


def example_images(rig: Rig, enc: EncoderConfig, batch: int = 1) -> torch.Tensor:
    """Zero uint8 images of the encoder's input shape (batch, frames·C, H, W, 3), for graph export."""
    cam = rig.cameras[0]
    return torch.zeros(batch, len(rig.cameras) * enc.frames, cam.height, cam.width, 3, dtype=torch.uint8)


def batch_images(samples: list, names: list[str], frames: int) -> torch.Tensor:
    """(B, frames·C, H, W, 3) uint8 images of training samples (``Sample.images`` / ``past_images``)."""
    return torch.from_numpy(np.stack([image_stack(names, s.images, s.past_images, frames) for s in samples]))


def _conv(cin: int, cout: int, k: int, s: int, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, padding=(k - 1) // 2 if s < k else 0, bias=False)]
    layers.append(nn.BatchNorm2d(cout))
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


class SceneEncoder(nn.Module):
    """``(images uint8 (B, frames·C, H, W, 3), ego (B, F)) -> tokens (B, C·h·w + 1, d_model)``.

    Family-agnostic: any planner builds it from a rig, an :class:`EncoderConfig` and its width.
    """

    def __init__(self, rig: Rig, enc: EncoderConfig, d_model: int):
        super().__init__()
        d = d_model
        cams = rig.cameras
        if len({(c.width, c.height) for c in cams}) != 1:
            raise ValueError(f"SceneEncoder: all rig cameras must share one image size, got rig {rig.name!r}")
        if cams[0].width % enc.stride or cams[0].height % enc.stride:
            raise ValueError(
                f"SceneEncoder: image size {cams[0].width}×{cams[0].height} px must be a multiple of the "
                f"encoder stride {enc.stride}"
            )
        self.num_cameras = len(cams)
        self.frames = enc.frames
        self.grid = (cams[0].height // enc.stride, cams[0].width // enc.stride)
        layers = _conv(3 * self.frames, enc.stem_channels, 4, 4)
        c = enc.stem_channels
        for cout in enc.channels:
            layers += _conv(c, cout, 3, 2)
            c = cout
        layers += _conv(c, d, 3, 2, relu=False)
        self.cnn = nn.Sequential(*layers)
        with torch.no_grad():
            self.cnn[0].weight.mul_(1.0 / 127.5)
        self.camera_emb = nn.Parameter(torch.randn(self.num_cameras, 1, d) * 0.02)
        self.pos_emb = nn.Parameter(torch.randn(1, self.grid[0] * self.grid[1], d) * 0.02)
        fdim = ego_feature_dim(enc.history)
        self.ego_mlp = nn.Sequential(nn.Linear(fdim, d), nn.GELU(), nn.Linear(d, d))

    @property
    def num_images(self) -> int:
        """Images per sample in the ``images`` input: cameras × frames."""
        return self.num_cameras * self.frames

    def forward(self, images: torch.Tensor, ego: torch.Tensor) -> torch.Tensor:
        b, n, h, w, _ = images.shape
        c = n // self.frames
        if self.frames == 1:
            x = images.reshape(b * c, h, w, 3).permute(0, 3, 1, 2)
        else:
            x = images.reshape(b, 2, c, h, w, 3).permute(0, 2, 1, 5, 3, 4).reshape(b * c, 6, h, w)
        f = self.cnn(x.float())
        tokens = f.flatten(2).transpose(1, 2).reshape(b, c, -1, f.shape[1])
        tokens = tokens + self.camera_emb.unsqueeze(0) + self.pos_emb.unsqueeze(0)
        return torch.cat([tokens.reshape(b, -1, f.shape[1]), self.ego_mlp(ego).unsqueeze(1)], dim=1)


def widen_stems(tensors: dict, module: nn.Module) -> dict:
    """``tensors`` (a state dict) with every single-frame encoder stem widened to ``module``'s two-frame
    stem by zero weights for the past frame; other tensors unchanged."""
    own = module.state_dict()
    out = dict(tensors)
    for key, w in tensors.items():
        mine = own.get(key)
        if key.endswith("cnn.0.weight") and mine is not None and w.shape[1] == 3 and mine.shape[1] == 6:
            out[key] = torch.cat([w, torch.zeros_like(w)], dim=1)
    return out
