"""Images that show where methods differ: amplified differences and SSIM maps, as uint8 HWC RGB arrays.

* A **difference image** is ``|image − reference|`` per RGB channel, multiplied by an amplification and clipped to
  255: black where the two agree, brighter where they differ. One comparison amplifies all its methods alike
  (:func:`amplification`), so their difference images can be compared with each other.
* An **SSIM map** shows the local SSIM (:func:`sr_app.metrics.ssim_map_y`) as grey, black for 0 or less and white for
  1; the border that scoring shaves off is painted ``UNSCORED``.

Pure functions (:func:`differences`, :func:`amplification`, :func:`amplify`, :func:`ssim_image`); the Compare tab
writes their images beside the comparison's (:mod:`sr_app.ui.saved`).
"""

from __future__ import annotations

import numpy as np

#: The amplifications a comparison may get: powers of two, so that the label's "×4" is exact.
AMPLIFICATIONS = (1, 2, 4, 8, 16, 32)
#: The percentile of the absolute differences that the amplification brings up to (at most) white.
PERCENTILE = 99
#: The colour of an SSIM map's border that scoring shaves off (not a grey, so it is not read as a score).
UNSCORED = (40, 70, 140)


def differences(images: dict[str, np.ndarray], reference: np.ndarray) -> dict[str, np.ndarray]:
    """``|image − reference|`` per channel for each uint8 HWC RGB image of the reference's shape, as uint8."""
    return {name: np.abs(image.astype(np.int16) - reference).astype(np.uint8) for name, image in images.items()}


def amplification(differences: dict[str, np.ndarray]) -> int:
    """The largest of ``AMPLIFICATIONS`` that keeps the ``PERCENTILE``-th percentile of every difference at or below
    255 (1 when even unamplified it is above)."""
    top = max((float(np.percentile(difference, PERCENTILE)) for difference in differences.values()), default=0.0)
    return max([factor for factor in AMPLIFICATIONS if top * factor <= 255], default=1)


def amplify(difference: np.ndarray, factor: int) -> np.ndarray:
    """A difference image: ``difference`` (uint8) multiplied by ``factor``, clipped to 255."""
    return np.minimum(difference.astype(np.uint16) * factor, 255).astype(np.uint8)


def ssim_image(local: np.ndarray, shave: int) -> np.ndarray:
    """The SSIM map ``local`` (of an image shaved by ``shave`` pixels per border) as grey uint8 RGB at the image's
    size: round(255 × SSIM), clipped to [0, 255]; the shaved border ``UNSCORED``."""
    height, width = local.shape
    image = np.empty((height + 2 * shave, width + 2 * shave, 3), dtype=np.uint8)
    image[:] = UNSCORED
    grey = np.rint(np.clip(local, 0, 1) * 255).astype(np.uint8)
    image[shave : shave + height, shave : shave + width] = grey[:, :, None]
    return image
