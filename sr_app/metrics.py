"""PSNR and SSIM as published SR papers measure them.

Both are computed on the Y channel of ITU-R BT.601 YCbCr, with ``shave`` pixels removed from every border,
on 8-bit images. SSIM uses a Gaussian window (sigma 1.5) and population covariance, as MATLAB's ``ssim``; its
local map (:func:`ssim_map_y`) is the one whose mean, less ``SSIM_MARGIN`` pixels per border, is the SSIM.
The metric arithmetic itself is scikit-image's.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

#: BT.601 luma weights for R, G, B in [0, 1]; Y = 16 + weights . rgb, in [16, 235].
BT601_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])
#: scikit-image's settings for MATLAB's ``ssim``.
SSIM_SETTINGS = {"data_range": 255, "gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
#: Pixels per border of the (shaved) SSIM map that scikit-image leaves out of the mean: half its 11 px window.
SSIM_MARGIN = 5


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of a uint8 HWC RGB image, as float64 in [16, 235]."""
    return 16.0 + (rgb.astype(np.float64) / 255.0) @ BT601_Y_WEIGHTS


def shave_border(image: np.ndarray, shave: int) -> np.ndarray:
    """``image`` (HW or HWC) without ``shave`` pixels on every border."""
    return image[shave : image.shape[0] - shave, shave : image.shape[1] - shave]


def _y_pair(sr: np.ndarray, hr: np.ndarray, shave: int) -> tuple[np.ndarray, np.ndarray]:
    if sr.shape != hr.shape:
        raise ValueError(f"SR and HR images differ in shape: {sr.shape} vs {hr.shape}")
    if sr.dtype != np.uint8 or hr.dtype != np.uint8:
        raise TypeError("metrics take uint8 RGB images")
    return shave_border(rgb_to_y(sr), shave), shave_border(rgb_to_y(hr), shave)


def psnr_y(sr: np.ndarray, hr: np.ndarray, shave: int = 4) -> float:
    """PSNR in dB between two uint8 HWC RGB images, on Y, borders shaved."""
    sr_y, hr_y = _y_pair(sr, hr, shave)
    return float(peak_signal_noise_ratio(hr_y, sr_y, data_range=255))


def ssim_y(sr: np.ndarray, hr: np.ndarray, shave: int = 4) -> float:
    """SSIM between two uint8 HWC RGB images, on Y, borders shaved (MATLAB ``ssim`` settings)."""
    return ssim_map_y(sr, hr, shave)[0]


def ssim_map_y(sr: np.ndarray, hr: np.ndarray, shave: int = 4) -> tuple[float, np.ndarray]:
    """SSIM as :func:`ssim_y` gives it and its local map: float64, the shaved images' size, in [-1, 1]."""
    sr_y, hr_y = _y_pair(sr, hr, shave)
    score, local = structural_similarity(hr_y, sr_y, full=True, **SSIM_SETTINGS)
    return float(score), local
