"""Making a study's stimuli: the versions of its images, one per condition, as PNGs that only their pixels tell apart.

Every image of a study is ground truth: it is cropped to a multiple of 4 (and, with a :class:`Crop`, to one
fixed-size region) and downscaled ×4 with the project's MATLAB bicubic (:func:`sr_app.resize.make_lr`), and each
condition's ×4 result is stored once as a metadata-free PNG named by a random token. A condition is a computed method
(:func:`study_methods`), a method folder of precomputed outputs (:mod:`sr_app.outputs`), the original (the hidden
reference) or nearest-neighbour ×4 (the low anchor); :class:`Conditions` makes every condition's version of an image.
All versions of one image have the size of its cropped original, and their files the same bytes count and chunk
layout: PNGs are stored uncompressed (:func:`png_bytes`), so nothing in a file's structure depends on its pixels.
Raters also see two calibration examples (:func:`calibration_examples`), and ACR studies may
hold gold items, versions of an image outside the study (:func:`gold_truth`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

from sr_app.images import load_rgb
from sr_app.methods import Method, MethodError, parse_methods
from sr_app.resize import magnify, make_lr
from sr_app.upscalers import SCALE, Upscaler
from survey.db import NEAREST, REFERENCE
from survey.errors import SurveyError

#: The images whose versions are the gold items and the training round when none is given: scikit-image's coffee cup
#: and astronaut (neither the calibration cat nor each other).
DEFAULT_GOLD_IMAGE, DEFAULT_TRAINING_IMAGE = "coffee", "astronaut"
#: Names of a study's gold, training and trapping images: a file stem cannot contain "/", so they never clash with
#: one of the study's images.
GOLD_PREFIX, TRAINING_PREFIX, TRAP_PREFIX = "gold/", "training/", "trap/"
#: The output files of a study's precomputed conditions, by condition and image stem (:mod:`sr_app.outputs`).
Precomputed = dict[str, dict[str, Path]]


@dataclass(frozen=True)
class Crop:
    """A fixed-size region cut from the centre of every image of a study, ``width`` × ``height`` pixels (multiples
    of 4), so that a study can be designed to fit a screen one image pixel to one screen pixel."""

    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % SCALE or self.height % SCALE:
            raise SurveyError(f"A crop must be positive multiples of {SCALE} wide and high; got {self}.")

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"

    @classmethod
    def parse(cls, text: str) -> Crop:
        """``"WxH"`` (e.g. ``"360x480"``) as a crop."""
        match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
        if match is None:
            raise SurveyError(f"A crop is written WIDTHxHEIGHT in pixels, e.g. 360x480; got {text!r}.")
        return cls(int(match[1]), int(match[2]))

    def cut(self, rgb: np.ndarray, name: str) -> np.ndarray:
        """The centre region of uint8 HWC ``rgb`` (first cut to a multiple of 4, as :func:`sr_app.resize.make_lr`
        does); its offsets are multiples of 4, so that the same cut of a ×4 output matches the cut of its input.
        ``name`` (the image's) goes into the error when the image is smaller than the crop."""
        height, width = (rgb.shape[0] // SCALE) * SCALE, (rgb.shape[1] // SCALE) * SCALE
        if height < self.height or width < self.width:
            raise SurveyError(f"{name} is {width}×{height} (cut to a multiple of 4), smaller than the crop {self}.")
        top = (height - self.height) // 2 // SCALE * SCALE
        left = (width - self.width) // 2 // SCALE * SCALE
        return rgb[top : top + self.height, left : left + self.width]


def png_bytes(rgb: np.ndarray) -> bytes:
    """uint8 HWC RGB as a lossless PNG that carries no metadata (only IHDR, IDAT and IEND chunks) and whose length and
    chunk layout depend only on the width and height, never on the pixels.

    The image data is deflated at zlib level 0 ("stored" blocks: the filtered rows as they are, 3·W·H + H bytes plus
    a few bytes per 64 KiB block), so how well a version would compress (smooth bicubic better than a sharp network)
    shows nowhere in the file. Pillow still picks each row's filter from its pixels, but a filter byte takes one byte
    whatever its value, and the rows are plain to anyone who decodes the file anyway.
    """
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


def study_methods(methods: Sequence[str]) -> list[Method]:
    """The methods a study's ``--methods`` names (registry names or ``label=path`` user models), each once; none
    for an empty list."""
    if not methods:
        return []
    try:
        resolved = parse_methods(",".join(methods))
    except MethodError as error:
        raise SurveyError(f"{error}.") from error
    clashes = [method.name for method in resolved if method.name in (REFERENCE, NEAREST)]
    if clashes:
        raise SurveyError(f"{', '.join(clashes)} is the name of a built-in condition; pick another label.")
    return resolved


def ground_truth(path: Path, crop: Crop | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR cropped to a multiple of 4, and to ``crop`` if given) of a study image, both uint8 HWC RGB; it must be
    at least 4×4 pixels."""
    hr = load_rgb(path)
    if min(hr.shape[:2]) < SCALE:
        raise SurveyError(f"{path.name} is {hr.shape[1]}×{hr.shape[0]}; images must be at least 4×4 pixels.")
    return make_lr(crop.cut(hr, path.name) if crop else hr, SCALE)


def fixed_versions(lr: np.ndarray, hr: np.ndarray) -> dict[str, np.ndarray]:
    """The versions of the built-in conditions of an image with ground truth (``lr``, ``hr``): the original
    (:data:`~survey.db.REFERENCE`) and nearest-neighbour ×4 (:data:`~survey.db.NEAREST`)."""
    return {REFERENCE: hr, NEAREST: magnify(lr, SCALE)}


@dataclass(frozen=True)
class Conditions:
    """A study's conditions in order, and what makes each one's version of an image."""

    #: Condition names: the computed methods, then the output folders, then the reference and the anchor if asked.
    names: list[str]
    #: The computed methods' upscalers, by condition.
    upscalers: dict[str, Upscaler]
    #: The output files of the precomputed conditions.
    precomputed: Precomputed

    def versions(self, path: Path, crop: Crop | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(HR, every condition's version by name) of study image ``path``, cut to ``crop`` if given; precomputed
        outputs are cut at the same place."""
        lr, hr = ground_truth(path, crop)
        fixed = fixed_versions(lr, hr)
        rgbs = {}
        for condition in self.names:
            if condition in self.upscalers:
                rgbs[condition] = self.upscalers[condition](lr)
            elif condition in self.precomputed:
                rgb = load_rgb(self.precomputed[condition][path.stem])
                rgbs[condition] = crop.cut(rgb, self.precomputed[condition][path.stem].name) if crop else rgb
            else:
                rgbs[condition] = fixed[condition]
        return hr, rgbs


def calibration_examples(calibration: str | Path | None, crop: Crop | None) -> tuple[np.ndarray, np.ndarray]:
    """The examples of the top and bottom of the scale shown to raters: the original and nearest-neighbour ×4 of
    ``calibration`` (default scikit-image's cat photo), cut to ``crop`` if given."""
    calibration_rgb = load_rgb(calibration) if calibration else skdata.chelsea()
    if crop:
        calibration_rgb = crop.cut(calibration_rgb, Path(calibration).name if calibration else "The calibration")
    calibration_lr, calibration_hr = make_lr(calibration_rgb, SCALE)
    return calibration_hr, magnify(calibration_lr, SCALE)


def outside_truth(
    image: str | Path | None, default: str, prefix: str, first_image: Path, crop: Crop | None
) -> tuple[str, tuple[np.ndarray, np.ndarray]]:
    """(Name, (LR, HR)) of an image outside the study whose versions are gold or training items: ``image``, else
    scikit-image's photo ``default``, cut to the size of the study's first image (cut to ``crop`` if given) where it
    is larger; the name starts with ``prefix`` (:data:`GOLD_PREFIX`, :data:`TRAINING_PREFIX`)."""
    name = Path(image).stem if image else default
    rgb = load_rgb(image) if image else getattr(skdata, default)()
    height, width = ground_truth(first_image, crop)[1].shape[:2]
    size = Crop(min(width, rgb.shape[1] // SCALE * SCALE), min(height, rgb.shape[0] // SCALE * SCALE))
    return prefix + name, make_lr(size.cut(rgb, name), SCALE)
