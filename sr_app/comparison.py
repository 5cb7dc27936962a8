"""A comparison: one image through the ×4 methods the user picks, timed, and scored when there is a ground truth.

Two modes:

* **Upscale**: the image is the low-resolution input; every method makes it ×4.
* **Ground truth**: the image is the original. It is cropped to a multiple of 4 and downscaled ×4 with the
  project's MATLAB bicubic (``sr_app.resize.make_lr``); every method upscales that, and PSNR/SSIM (BT.601 Y,
  4 px shaved) are measured against the original exactly as ``python -m train.evaluate`` measures them. The original
  is shown beside the methods.

Every method of the registry (:mod:`sr_app.methods`) and every model the user added (``app.py --model
label=path``) can be picked; the registry's default methods and the user's models are picked at first. With
self-ensemble, networks average their outputs over the 8 flips and rotations of the input (EDSR's "EDSR+", 8× the
time) and are named with a "+".

Each method's output also gets a difference image against a reference (the original, or in upscale mode bicubic,
computed for it when bicubic was not picked) and in ground-truth mode an SSIM map (:mod:`sr_app.difference`):
:func:`analyses`, computed from the outputs already made.

Pure functions on arrays: :func:`load_methods`, :func:`compare`, :func:`analyses`, :func:`crop_box`, :func:`draw_box`,
:func:`results_table`. The Compare tab (:mod:`sr_app.ui.compare`) keeps a comparison's images on disk and shows them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from sr_app.difference import amplification, amplify, differences, ssim_image
from sr_app.images import ImageError
from sr_app.methods import REGISTRY, Method, Settings
from sr_app.metrics import psnr_y, ssim_map_y
from sr_app.resize import imresize, magnify, make_lr
from sr_app.upscalers import SCALE, ModelUpscaler, Upscaler
from sr_app.weights import WeightsError

MODES = ("Upscale", "Ground truth")
UPSCALE, GROUND_TRUTH = MODES
#: Names of the two images that are not method outputs: the methods' input and, in ground-truth mode, the original.
INPUT, ORIGINAL = "input", "original"
#: The method that difference images subtract in upscale mode.
BICUBIC = "bicubic"
#: Display names of the images that are not method outputs.
TITLES = {INPUT: "Input", ORIGINAL: "Original"}
#: Smallest side of an original in ground-truth mode: cropped to a multiple of 4 and shaved by 4 px per border,
#: it must still hold SSIM's 11 px Gaussian window (20 - 2 × 4 = 12 ≥ 11).
MIN_GROUND_TRUTH_SIDE = 20
BOX_COLOUR = (255, 0, 80)

#: A region of the output images: top, left, height, width in output pixels, all multiples of ``SCALE``.
Box = tuple[int, int, int, int]
#: Called before each method runs with the fraction done (0 to 1) and what runs now, e.g. ``gr.Progress()``.
Report = Callable[[float, str], object]


def title(name: str) -> str:
    """The display name of a registry method or of ``INPUT``/``ORIGINAL``; a user's model is shown by its label."""
    return TITLES[name] if name in TITLES else REGISTRY[name].title if name in REGISTRY else name


@dataclass(frozen=True)
class LoadedMethod:
    """A method as the app sees it: loaded, or unavailable with the reason; picked at first or not."""

    name: str
    upscaler: Upscaler | None
    reason: str = ""
    picked: bool = False


def load_methods(methods: Sequence[Method] | None = None, settings: Settings | None = None) -> list[LoadedMethod]:
    """Each method loaded once; one that cannot be loaded (missing weights, an optional package not installed) is
    kept as unavailable with the reason. Registry defaults and users' models are picked at first."""
    loaded = []
    for method in REGISTRY.values() if methods is None else methods:
        picked = method.default or method.name not in REGISTRY
        try:
            loaded.append(LoadedMethod(method.name, method.load(settings or Settings()), picked=picked))
        except WeightsError as error:
            loaded.append(LoadedMethod(method.name, None, str(error)))
    return loaded


def panel_label(method: LoadedMethod) -> str:
    """'EDSR', or 'EDSR-SRGAN · unavailable' without weights."""
    return title(method.name) + (" · unavailable" if method.upscaler is None else "")


@dataclass(frozen=True)
class Comparison:
    """One image through the picked methods, in memory (the Compare tab keeps it on disk: :mod:`sr_app.ui.saved`).

    Attributes:
        lr: the methods' input, uint8 HWC RGB.
        hr: the original cropped to ``SCALE ×`` the input size (ground-truth mode), else ``None``.
        outputs: method name -> its uint8 HWC RGB output, ``SCALE ×`` the input size, in the order they ran.
        seconds: method name -> wall-clock time of its upscaler call, in seconds.
        devices: method name -> where it ran ("cpu", "cuda", ...).
        scores: method name -> (PSNR in dB, SSIM in [0, 1]) against ``hr``; empty in upscale mode.
        ssim_maps: method name -> its SSIM map against ``hr`` (:func:`sr_app.difference.ssim_image`); empty in upscale
            mode.
        ensembled: the methods that ran as self-ensembles.
        stem: the upload's file name without suffix, to name downloads.
    """

    lr: np.ndarray
    hr: np.ndarray | None
    outputs: dict[str, np.ndarray]
    seconds: dict[str, float]
    devices: dict[str, str] = field(default_factory=dict)
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)
    ssim_maps: dict[str, np.ndarray] = field(default_factory=dict)
    ensembled: frozenset[str] = frozenset()
    stem: str = "image"

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the outputs, in pixels."""
        return self.lr.shape[0] * SCALE, self.lr.shape[1] * SCALE

    @property
    def mode(self) -> str:
        return UPSCALE if self.hr is None else GROUND_TRUTH

    @property
    def names(self) -> list[str]:
        """Every image that can be viewed: the input, the outputs, and the original when there is one."""
        return [INPUT, *self.outputs, *([ORIGINAL] if self.hr is not None else [])]

    def title(self, name: str) -> str:
        """The display name of image ``name``; a method that ran as a self-ensemble gets a "+" (as EDSR+)."""
        return title(name) + ("+" if name in self.ensembled else "")

    def label(self, name: str) -> str:
        """'EDSR · 30.12 dB · cpu · 410 ms' (the score in ground-truth mode), 'Input', 'Original'."""
        if name not in self.outputs:
            return self.title(name)
        score = f"{self.scores[name][0]:.2f} dB · " if name in self.scores else ""
        return f"{self.title(name)} · {score}{self.devices.get(name, '?')} · {self.seconds[name] * 1000:.0f} ms"

    def view(self, name: str) -> np.ndarray:
        """Image ``name`` (one of :attr:`names`) at the output size; the input magnified by nearest neighbour."""
        if name == INPUT:
            return magnify(self.lr, SCALE)
        return self.hr if name == ORIGINAL else self.outputs[name]

    def reference(self) -> tuple[str, np.ndarray]:
        """What the difference images subtract: the original in ground-truth mode, else bicubic (its output, or made
        here when it was not picked); as (name, image at the output size)."""
        if self.hr is not None:
            return ORIGINAL, self.hr
        return BICUBIC, self.outputs[BICUBIC] if BICUBIC in self.outputs else imresize(self.lr, SCALE)


def compare(
    image: np.ndarray,
    mode: str,
    methods: list[LoadedMethod],
    stem: str = "image",
    self_ensemble: bool = False,
    report: Report | None = None,
) -> Comparison:
    """Run every available method on a uint8 HWC RGB image in ``mode`` (one of ``MODES``); networks
    (:class:`ModelUpscaler`) as self-ensembles when ``self_ensemble``; ``report`` hears of each method as it starts."""
    if mode == UPSCALE:
        lr, hr = image, None
    elif mode == GROUND_TRUTH:
        if min(image.shape[:2]) < MIN_GROUND_TRUTH_SIDE:
            raise ImageError(
                f"Ground truth mode needs an original of at least {MIN_GROUND_TRUTH_SIDE}×{MIN_GROUND_TRUTH_SIDE} "
                f"pixels to measure PSNR/SSIM; this one is {image.shape[1]}×{image.shape[0]}."
            )
        lr, hr = make_lr(image, SCALE)
    else:
        raise ValueError(f"Unknown mode {mode!r}; choose from {', '.join(MODES)}.")
    runs = [method for method in methods if method.upscaler is not None]
    outputs, seconds, devices, scores, ssim_maps, ensembled = {}, {}, {}, {}, {}, set()
    for i, method in enumerate(runs):
        upscaler = method.upscaler
        if self_ensemble and isinstance(upscaler, ModelUpscaler):
            upscaler = upscaler.with_self_ensemble()
            ensembled.add(method.name)
        if report is not None:
            report(i / len(runs), f"{title(method.name)} ({i + 1} of {len(runs)})")
        start = time.perf_counter()
        outputs[method.name] = upscaler(lr)
        seconds[method.name] = time.perf_counter() - start
        devices[method.name] = upscaler.device
        if hr is not None:
            sr = outputs[method.name]
            ssim, local = ssim_map_y(sr, hr, shave=SCALE)
            scores[method.name] = (psnr_y(sr, hr, shave=SCALE), ssim)
            ssim_maps[method.name] = ssim_image(local, shave=SCALE)
    return Comparison(lr, hr, outputs, seconds, devices, scores, ssim_maps, frozenset(ensembled), stem)


@dataclass(frozen=True)
class Analysis:
    """An image made from a comparison's outputs to show where they differ.

    Attributes:
        name: a unique name for its file, e.g. "edsr_minus_original", "edsr_ssim".
        label: its label in the viewer, e.g. "EDSR − Original ×4", "EDSR SSIM map".
        low, high: what its black and its white stand for, e.g. "0" and "≥ 64 of 255".
        note: what else its scale needs, e.g. "blue border: not scored".
        image: uint8 HWC RGB at the output size.
    """

    name: str
    label: str
    low: str
    high: str
    note: str
    image: np.ndarray


def analyses(comparison: Comparison) -> Iterator[Analysis]:
    """Every method's difference image against :meth:`Comparison.reference`, all amplified alike
    (:func:`sr_app.difference.amplification`; a method that is the reference has none), then in ground-truth mode
    every method's SSIM map; made one at a time as they are asked for."""
    reference, image = comparison.reference()
    outputs = {name: output for name, output in comparison.outputs.items() if name != reference}
    diffs = differences(outputs, image)
    factor = amplification(diffs)
    for name, diff in diffs.items():
        yield Analysis(
            f"{name}_minus_{reference}",
            f"{comparison.title(name)} − {title(reference)} ×{factor}",
            "0",
            f"≥ {-(-255 // factor)} of 255",
            f"|difference| per channel ×{factor}",
            amplify(diff, factor),
        )
    for name, ssim in comparison.ssim_maps.items():
        label = f"{comparison.title(name)} SSIM map"
        yield Analysis(f"{name}_ssim", label, "SSIM ≤ 0", "1", "blue border: not scored", ssim)


def crop_box(x: float, y: float, size: int, image_size: tuple[int, int]) -> Box:
    """The square of side ``size`` (output pixels) centred near (x, y), snapped to the ``SCALE`` grid so that it
    matches whole input pixels, and moved or shrunk to lie inside an image of ``image_size`` (height, width)."""
    height, width = image_size
    side = max(SCALE, min(int(size), height, width) // SCALE * SCALE)
    top = min(max(int(y) - side // 2, 0), height - side) // SCALE * SCALE
    left = min(max(int(x) - side // 2, 0), width - side) // SCALE * SCALE
    return top, left, side, side


def draw_box(image: np.ndarray, box: Box, scale: int = 1) -> np.ndarray:
    """A copy of a uint8 HWC RGB image with the outline of ``box`` (given in pixels × ``scale``) drawn on it."""
    top, left, height, width = (v // scale for v in box)
    line = max(1, min(image.shape[:2]) // 150)
    canvas = Image.fromarray(image)
    ImageDraw.Draw(canvas).rectangle(
        (left - line, top - line, left + width + line - 1, top + height + line - 1), outline=BOX_COLOUR, width=line
    )
    return np.asarray(canvas)


def results_table(comparison: Comparison) -> pd.DataFrame:
    """One row per method that ran: device, time, and in ground-truth mode PSNR (2 decimals) and SSIM (4)."""
    rows = []
    for name, seconds in comparison.seconds.items():
        row: dict[str, object] = {
            "Method": comparison.title(name),
            "Device": comparison.devices.get(name, "?"),
            "Time (ms)": round(seconds * 1000),
        }
        if comparison.hr is not None:
            psnr, ssim = comparison.scores[name]
            row |= {"PSNR (dB)": round(psnr, 2), "SSIM": round(ssim, 4)}
        rows.append(row)
    return pd.DataFrame(rows)
