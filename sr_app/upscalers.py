"""Upscalers: callables from a uint8 HWC RGB image to its ×4 uint8 HWC RGB result.

:class:`BicubicUpscaler` is MATLAB's bicubic ``imresize``; :class:`ModelUpscaler` runs any network on the best
available device (CUDA, then Apple MPS, then CPU), in tiles with overlapping borders when an image is large, so
memory stays bounded by the tile size and the output image, and pads inputs to the sizes a network requires. Which
methods exist and how their upscalers are built is :mod:`sr_app.methods`' registry.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

import numpy as np
import torch
from spandrel import SizeRequirements
from torch import nn
from torch.nn import functional as F

from sr_app.images import rgb_to_tensor, tensor_to_rgb
from sr_app.resize import imresize

SCALE = 4
#: LR tile side and the overlap added on every side of a tile. EDSR-baseline's receptive field is 37 px
#: wide at LR, so a 24 px overlap leaves tile seams below one grey level.
DEFAULT_TILE = 256
DEFAULT_TILE_PAD = 24


class Upscaler(Protocol):
    name: str
    device: str

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """×4 upscale a uint8 HWC RGB image to a uint8 HWC RGB image."""
        ...


def default_device() -> torch.device:
    """CUDA if present, then Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class BicubicUpscaler:
    """MATLAB-compatible bicubic interpolation."""

    name = "bicubic"
    device = "cpu"

    def __init__(self, scale: int = SCALE) -> None:
        self.scale = scale

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return imresize(rgb, self.scale)


class ModelUpscaler:
    """Runs a super-resolution network on 8-bit images, whole or in overlapping tiles.

    Args:
        name: method name shown to users.
        model: network mapping float [0, 1] NCHW to float NCHW ×``scale``.
        scale: the network's upscaling factor.
        device: where to run; ``None`` picks :func:`default_device`.
        bf16: run under bfloat16 autocast.
        tile: LR tile side in pixels; ``None`` processes the whole image at once.
        tile_pad: overlap added on each side of a tile, discarded from the output.
        size_requirements: input sizes the network accepts (e.g. a multiple of a window size); each input is
            padded on its bottom and right edges (mirrored where possible) to fit, and the output cropped back.
    """

    def __init__(
        self,
        name: str,
        model: nn.Module,
        scale: int = SCALE,
        device: torch.device | str | None = None,
        bf16: bool = False,
        tile: int | None = DEFAULT_TILE,
        tile_pad: int = DEFAULT_TILE_PAD,
        size_requirements: SizeRequirements | None = None,
    ) -> None:
        self.name = name
        self.scale = scale
        self.torch_device = torch.device(device) if device is not None else default_device()
        self.device = self.torch_device.type
        self.model = model.to(self.torch_device).eval()
        self.bf16 = bf16
        self.tile = tile
        self.tile_pad = tile_pad
        self.size_requirements = size_requirements or SizeRequirements()

    @torch.inference_mode()
    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        if self.tile is None or max(height, width) <= self.tile:
            return tensor_to_rgb(self._forward(rgb))
        out = np.empty((height * self.scale, width * self.scale, 3), dtype=np.uint8)
        s, pad = self.scale, self.tile_pad
        for top in range(0, height, self.tile):
            for left in range(0, width, self.tile):
                bottom, right = min(top + self.tile, height), min(left + self.tile, width)
                y0, x0 = max(top - pad, 0), max(left - pad, 0)
                y1, x1 = min(bottom + pad, height), min(right + pad, width)
                sr = self._forward(rgb[y0:y1, x0:x1])
                keep = sr[:, (top - y0) * s : (bottom - y0) * s, (left - x0) * s : (right - x0) * s]
                out[top * s : bottom * s, left * s : right * s] = tensor_to_rgb(keep)
        return out

    def _forward(self, rgb: np.ndarray) -> torch.Tensor:
        """float CHW output of the network for a uint8 HWC input."""
        height, width = rgb.shape[:2]
        x = rgb_to_tensor(rgb).unsqueeze(0).to(self.torch_device)
        pad_width, pad_height = self.size_requirements.get_padding(width, height)
        if pad_width or pad_height:
            mirror = pad_width < width and pad_height < height
            x = F.pad(x, (0, pad_width, 0, pad_height), mode="reflect" if mirror else "replicate")
        autocast = (
            torch.autocast(self.torch_device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        )
        with autocast:
            return self.model(x)[0, :, : height * self.scale, : width * self.scale].float()
