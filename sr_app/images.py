"""Reading images from disk into uint8 HWC RGB arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


class ImageError(ValueError):
    """An image could not be read; the message says which and why."""


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 HWC RGB (grayscale and palette images are converted, EXIF honoured)."""
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise ImageError(f"Cannot read image {path}: {error}") from error


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Image folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def rgb_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 HWC RGB -> float32 [0, 1] CHW tensor."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255)


def tensor_to_rgb(tensor: torch.Tensor) -> np.ndarray:
    """float [0, 1] CHW tensor (any dtype or device) -> uint8 HWC RGB, clamped and rounded."""
    rgb = tensor.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return rgb.permute(1, 2, 0).cpu().numpy()
