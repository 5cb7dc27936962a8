"""MATLAB-compatible bicubic ``imresize``.

Reproduces MATLAB's ``imresize(img, scale, 'bicubic')``: the Keys cubic kernel (a = -0.5), widened when
downscaling so that it antialiases, and symmetric (mirror) padding at the borders. This is the degradation
every published ×4 benchmark uses, so the project makes its LR images, and its "bicubic" method, with it.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import sparse

KERNEL_WIDTH = 4.0


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5, as MATLAB uses."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=64)
def resize_matrix(in_length: int, out_length: int, scale: float) -> sparse.csr_array:
    """The sparse (out_length, in_length) float64 matrix that resizes one axis, borders mirrored."""
    antialias = scale < 1
    width = KERNEL_WIDTH / scale if antialias else KERNEL_WIDTH
    # Output pixel centres mapped into input coordinates (1-based, as in MATLAB).
    u = np.arange(1, out_length + 1) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    distance = u[:, None] - indices
    weights = scale * cubic(scale * distance) if antialias else cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    # Mirror out-of-range taps back into the image: ... 2 1 | 1 2 ... n | n n-1 ...
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    columns = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    # Taps that mirror onto the same pixel are summed when the sparse matrix is built.
    rows = np.repeat(np.arange(out_length), taps)
    return sparse.csr_array((weights.ravel(), (rows, columns.ravel())), shape=(out_length, in_length))


def imresize(image: np.ndarray, scale: float) -> np.ndarray:
    """Resize an HWC or HW image by ``scale`` like MATLAB's bicubic ``imresize``.

    The output size is ``ceil(scale * size)`` per axis. A uint8 image gives a uint8 image (rounded and
    clipped, as MATLAB does); a float image gives float64 without clipping. Channels are resized one at a
    time, so memory beyond the output stays at a few float64 planes of the output size.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    height, width = image.shape[:2]
    out_height, out_width = math.ceil(height * scale), math.ceil(width * scale)
    rows = resize_matrix(height, out_height, scale)
    cols = resize_matrix(width, out_width, scale)
    planes = image.reshape(height, width, -1)
    integer = image.dtype == np.uint8
    out = np.empty((out_height, out_width, planes.shape[2]), dtype=np.uint8 if integer else np.float64)
    for channel in range(planes.shape[2]):
        resized = rows @ planes[:, :, channel].astype(np.float64) @ cols.T
        out[:, :, channel] = np.clip(np.rint(resized), 0, 255) if integer else resized
    return out.reshape(out_height, out_width, *image.shape[2:])


def make_lr(hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop a uint8 HR image to a multiple of ``scale`` and bicubic-downscale it: (LR, cropped HR)."""
    height, width = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
    hr = hr[:height, :width]
    return imresize(hr, 1 / scale), hr


def magnify(image: np.ndarray, factor: int) -> np.ndarray:
    """Enlarge an HWC image ``factor`` times by nearest neighbour (each pixel becomes a factor × factor block)."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
