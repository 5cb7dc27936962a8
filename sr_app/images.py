"""Reading images into uint8 HWC RGB arrays: trusted files from disk, and untrusted uploads."""

from __future__ import annotations

import io
import math
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from sr_app.errors import UserError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
#: Pillow format names :func:`decode_image` accepts, and the file suffixes that usually carry them.
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
UPLOAD_SUFFIXES = (*sorted(IMAGE_SUFFIXES), ".gif")
#: Default limit on the pixels (width × height) of an upload.
DEFAULT_MAX_PIXELS = 4_000_000


class ImageError(UserError, ValueError):
    """An image could not be read; the message says which and why."""


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image file of ours (training or benchmark data) as uint8 HWC RGB: :func:`decode_image` without a
    pixel limit, with errors that name the file."""
    try:
        return decode_image(path, max_pixels=None)
    except ImageError as error:
        raise ImageError(f"Cannot read image {path}: {error}") from error


def file_stem(path: str | Path) -> str:
    """``path``'s file name without suffix, safe in a file name: anything but letters, digits, '_' and '-' made '_',
    at most 60 characters (empty when the stem is)."""
    return re.sub(r"[^\w-]+", "_", Path(path).stem)[:60]


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Image folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def rgb_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 HWC RGB -> float32 [0, 1] CHW tensor."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)).div_(255)


def tensor_to_rgb(tensor: torch.Tensor) -> np.ndarray:
    """float [0, 1] CHW tensor (any dtype or device) -> uint8 HWC RGB, clamped and rounded."""
    rgb = tensor.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return rgb.permute(1, 2, 0).cpu().numpy()


def decode_image(source: bytes | str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an untrusted image file (its bytes or its path) into uint8 HWC RGB.

    Accepts PNG, JPEG, WebP, BMP, TIFF and GIF (the first frame of an animation), of any size from 1×1 up to
    ``max_pixels`` (width × height; ``None`` for no limit of ours). EXIF orientation is applied; transparency
    (alpha or a palette/colour key) is composited onto white; 16-bit grayscale is scaled to 8 bits as
    ``round(v / 257)`` (Pillow itself reduces 16-bit colour to its high byte); CMYK is converted by Pillow.

    The size is checked from the header, before any pixels are decoded. Anything else (empty, corrupt or
    truncated files, other formats, decompression bombs) raises :class:`ImageError` with a message meant
    for the person who uploaded the file.
    """
    data = _read_bytes(source)
    if not data:
        raise ImageError("The file is empty (0 bytes).")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS)
        except UnidentifiedImageError as error:
            raise ImageError(
                f"This file is not an image this app can read. Upload one of: {', '.join(UPLOAD_FORMATS)}."
            ) from error
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise ImageError(
                "The image declares an enormous size for its file size and was refused as a possible "
                f"decompression bomb ({error})."
            ) from error
        except Exception as error:  # Pillow's plugins raise many exception types on malformed headers.
            raise ImageError(f"The file is corrupt or truncated and cannot be decoded ({error}).") from error
    with image:
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            raise ImageError(
                f"The image is {width}×{height} = {width * height:,} pixels; this app accepts at most {max_pixels:,} "
                f"pixels (about {math.isqrt(max_pixels)}×{math.isqrt(max_pixels)}). Crop or downscale it first."
            )
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
        except Exception as error:  # as above, for malformed pixel data
            message = f"The {image.format} file is corrupt or truncated and cannot be decoded ({error})."
            raise ImageError(message) from error
    return _to_rgb(upright)


def encode_png(rgb: np.ndarray, compress_level: int = 1) -> bytes:
    """uint8 HWC RGB -> lossless PNG bytes. Level 1 (of 0-9) encodes about 3× faster than Pillow's default 6
    for files about 20% larger: the better trade for ×4 outputs that are shown once."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG", compress_level=compress_level)
    return buffer.getvalue()


def _read_bytes(source: bytes | str | Path) -> bytes:
    if isinstance(source, bytes):
        return source
    try:
        return Path(source).read_bytes()
    except OSError as error:
        raise ImageError(f"Cannot read the file {Path(source).name}: {error.strerror or error}.") from error


def _to_rgb(image: Image.Image) -> np.ndarray:
    """uint8 HWC RGB pixels of a decoded Pillow image of any mode but 32-bit float."""
    if image.mode.startswith("I"):  # 16-bit grayscale: "I;16", "I;16B", ...; "I" holds 16-bit values too
        values = np.clip(np.asarray(image, dtype=np.float64), 0, 65535)
        gray = np.round(values / 257).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "F":
        raise ImageError("32-bit floating-point images are not supported; save the image with 8 or 16 bits.")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))
