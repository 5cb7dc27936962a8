"""Scoring an upscaler on benchmark images, image by image, as published SR papers do.

A benchmark set is a folder with ``HR/`` and optionally the published ``LR_x4/`` (:func:`load_benchmark`). A benchmark
image is its name, LR and HR; the upscaler's output of the LR is scored against the HR with
:data:`METRICS` (PSNR and SSIM on the BT.601 Y channel, ``SCALE`` pixels shaved: :mod:`sr_app.metrics`) and any
further metric the caller adds. ``python -m train.evaluate`` and the training loop's validation both score here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from sr_app.images import ImageError, list_images, load_rgb
from sr_app.metrics import psnr_y, ssim_y
from sr_app.resize import make_lr
from sr_app.upscalers import SCALE

#: A score of an SR output against its HR, both uint8 HWC RGB of one size.
Metric = Callable[[np.ndarray, np.ndarray], float]
#: The published scores: PSNR in dB and SSIM in [0, 1], on Y with ``SCALE`` pixels shaved from every border.
METRICS: dict[str, Metric] = {"psnr": partial(psnr_y, shave=SCALE), "ssim": partial(ssim_y, shave=SCALE)}


@dataclass(frozen=True)
class BenchmarkImage:
    """One image of a benchmark set (:func:`load_benchmark` reads them)."""

    name: str  # the file name without its extension
    lr: np.ndarray  # uint8 HWC RGB
    hr: np.ndarray  # uint8 HWC RGB, exactly scale × the LR size


def benchmark_image(name: str, hr: np.ndarray, lr_path: Path | None = None, scale: int = SCALE) -> BenchmarkImage:
    """Benchmark image ``name`` of original ``hr``: with the published LR file ``lr_path`` when given (HR cropped to
    the top-left ``scale`` × LR region, as the published LR files were made from it), else with LR made by the
    project's MATLAB bicubic (:func:`sr_app.resize.make_lr`)."""
    if lr_path is None:
        lr, hr = make_lr(hr, scale)
        return BenchmarkImage(name, lr, hr)
    lr = load_rgb(lr_path)
    cropped = hr[: lr.shape[0] * scale, : lr.shape[1] * scale]
    if cropped.shape[:2] != (lr.shape[0] * scale, lr.shape[1] * scale):
        raise ImageError(f"{name}: HR {hr.shape[:2]} is smaller than {scale} × LR {lr.shape[:2]}")
    return BenchmarkImage(name, lr, cropped)


def published_lr(hr_path: Path, scale: int = SCALE) -> Path | None:
    """The published LR file of the benchmark image ``hr_path`` (``<set>/HR/<name>``): ``<set>/LR_x<scale>/<name>``
    when the set has that folder (which must then hold it), else ``None``."""
    lr_folder = hr_path.parent.parent / f"LR_x{scale}"
    return lr_folder / hr_path.name if hr_path.parent.name == "HR" and lr_folder.is_dir() else None


def load_benchmark(folder: str | Path, scale: int = SCALE) -> list[BenchmarkImage]:
    """The images of benchmark set ``folder``: ``folder/HR``, with the published ``folder/LR_x<scale>`` where it has
    them (:func:`benchmark_image`)."""
    hr_paths = list_images(Path(folder) / "HR")
    if not hr_paths:
        raise FileNotFoundError(f"No images found in {Path(folder) / 'HR'}")
    return [benchmark_image(path.stem, load_rgb(path), published_lr(path, scale), scale) for path in hr_paths]


def score_outputs(
    outputs: Iterable[tuple[BenchmarkImage, np.ndarray]], metrics: Mapping[str, Metric] = METRICS
) -> pd.DataFrame:
    """Every metric of each (image, uint8 HWC RGB SR output of its LR) against the image's HR: a frame with
    columns ``image`` and the metrics' names, one row per image."""
    rows = []
    for image, sr in outputs:
        rows.append({"image": image.name} | {name: metric(sr, image.hr) for name, metric in metrics.items()})
    return pd.DataFrame(rows, columns=["image", *metrics])


def score_images(
    upscale: Callable[[np.ndarray], np.ndarray],
    images: Sequence[BenchmarkImage],
    save_dir: Path | None = None,
    metrics: Mapping[str, Metric] = METRICS,
) -> pd.DataFrame:
    """:func:`score_outputs` of ``upscale`` on each image's LR; each output is saved as ``save_dir/<image>.png``
    when ``save_dir`` is given."""
    return score_outputs(_upscaled(upscale, images, save_dir), metrics)


def _upscaled(
    upscale: Callable[[np.ndarray], np.ndarray], images: Sequence[BenchmarkImage], save_dir: Path | None
) -> Iterator[tuple[BenchmarkImage, np.ndarray]]:
    """(image, SR output of its LR), one at a time, each saved first when ``save_dir`` is given."""
    for image in images:
        sr = upscale(image.lr)
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(sr).save(save_dir / f"{image.name}.png")
        yield image, sr
