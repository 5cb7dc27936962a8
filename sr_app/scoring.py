"""Scoring an upscaler on benchmark images, image by image, as published SR papers do.

A benchmark image is its name, LR and HR; the upscaler's output of the LR is scored against the HR with
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

from sr_app.metrics import psnr_y, ssim_y
from sr_app.upscalers import SCALE

#: A score of an SR output against its HR, both uint8 HWC RGB of one size.
Metric = Callable[[np.ndarray, np.ndarray], float]
#: The published scores: PSNR in dB and SSIM in [0, 1], on Y with ``SCALE`` pixels shaved from every border.
METRICS: dict[str, Metric] = {"psnr": partial(psnr_y, shave=SCALE), "ssim": partial(ssim_y, shave=SCALE)}


@dataclass(frozen=True)
class BenchmarkImage:
    """One image of a benchmark set (``train.data.load_benchmark`` reads them)."""

    name: str  # the file name without its extension
    lr: np.ndarray  # uint8 HWC RGB
    hr: np.ndarray  # uint8 HWC RGB, exactly scale × the LR size


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
