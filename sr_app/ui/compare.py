"""The Compare tab: one image through the ×4 methods the user picks, side by side, with synchronised zoomed crops.

Two modes:

* **Upscale**: the image is the low-resolution input; every method makes it ×4.
* **Ground truth**: the image is the original. It is cropped to a multiple of 4 and downscaled ×4 with the
  project's MATLAB bicubic (``sr_app.resize.make_lr``); every method upscales that, and PSNR/SSIM (BT.601 Y,
  4 px shaved) are measured against the original exactly as ``python -m train.evaluate`` measures them.

Every method of the registry (:mod:`sr_app.methods`) and every model the user added (``app.py --model
label=path``) has a panel; the registry's default methods and the user's models are picked at first.

The pure functions (:func:`load_methods`, :func:`compare`, :func:`crop_box`, :func:`draw_box`)
do the work; the event handlers (:func:`upscale`, :func:`compare_crops`, :func:`compare_pair` and the click
handlers) turn their results into component values and user errors into ``gr.Error``, and
:func:`build_compare_tab` lays the tab out and wires them. Every image leaves the server as lossless PNG.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw

from sr_app.images import DEFAULT_MAX_PIXELS, UPLOAD_SUFFIXES, ImageError, decode_image, encode_png
from sr_app.methods import REGISTRY, Method, Settings
from sr_app.metrics import psnr_y, ssim_y
from sr_app.resize import magnify, make_lr
from sr_app.upscalers import SCALE, Upscaler
from sr_app.weights import WeightsError

MODES = ("Upscale", "Ground truth")
UPSCALE, GROUND_TRUTH = MODES
#: Names of the two images that are not method outputs: the methods' input and, in ground-truth mode, the original.
INPUT, ORIGINAL = "input", "original"
#: Display names of the images that are not method outputs.
TITLES = {INPUT: "Input", ORIGINAL: "Original"}
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
#: Smallest side of an original in ground-truth mode: cropped to a multiple of 4 and shaved by 4 px per border,
#: it must still hold SSIM's 11 px Gaussian window (20 - 2 × 4 = 12 ≥ 11).
MIN_GROUND_TRUTH_SIDE = 20
DEFAULT_CROP, DEFAULT_ZOOM = 64, 4
BOX_COLOUR = (255, 0, 80)
PANEL_HEIGHT = 320
#: Crops per row: the input and the three default methods (more wrap to the next row).
CROP_COLUMNS = 4
NO_COMPARISON = "Upscale an image first (upload one or pick an example, then press Upscale)."
#: Where full-size outputs are written as PNG for Gradio to serve; it copies them into its cache at once, so a
#: folder older than ``KEEP_SECONDS`` is no longer needed.
OUTPUT_DIR = Path(tempfile.gettempdir()) / "sr_lab_compare"
KEEP_SECONDS = 600
#: Page CSS for the tab (pass it to ``launch(css=...)``): browsers smooth images they enlarge, which would blur the
#: nearest-neighbour crops.
CSS = "#crops img { image-rendering: pixelated; }"

#: A region of the output images: top, left, height, width in output pixels, all multiples of ``SCALE``.
Box = tuple[int, int, int, int]


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


@dataclass(frozen=True)
class Comparison:
    """One image through every available method.

    Attributes:
        lr: the methods' input, uint8 HWC RGB.
        hr: the original cropped to ``SCALE ×`` the input size (ground-truth mode), else ``None``.
        outputs: method name -> its uint8 HWC RGB output, ``SCALE ×`` the input size.
        seconds: method name -> wall-clock time of its upscaler call, in seconds.
        scores: method name -> (PSNR in dB, SSIM in [0, 1]) against ``hr``; empty in upscale mode.
        stem: the upload's file name without suffix, to name downloads.
        files: image name -> a PNG file of its full-size view, filled by :func:`png_file`.
    """

    lr: np.ndarray
    hr: np.ndarray | None
    outputs: dict[str, np.ndarray]
    seconds: dict[str, float]
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)
    stem: str = "image"
    files: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the outputs, in pixels."""
        return self.lr.shape[0] * SCALE, self.lr.shape[1] * SCALE

    @property
    def names(self) -> list[str]:
        """Every image that can be viewed: the input, the outputs, and the original when there is one."""
        return [INPUT, *self.outputs, *([ORIGINAL] if self.hr is not None else [])]

    @property
    def overview(self) -> np.ndarray:
        """The image the user gave: the original in ground-truth mode, else the input."""
        return self.lr if self.hr is None else self.hr

    @property
    def overview_scale(self) -> int:
        """Output pixels per overview pixel."""
        return SCALE if self.hr is None else 1

    def view(self, name: str, box: Box | None = None) -> np.ndarray:
        """Image ``name`` at the output size (the input magnified by nearest neighbour), or its ``box`` region."""
        top, left, height, width = box or (0, 0, *self.size)
        if name == INPUT:
            s = SCALE
            return magnify(self.lr[top // s : (top + height) // s, left // s : (left + width) // s], s)
        if name == ORIGINAL and self.hr is None:
            raise ValueError("“Original” exists only in Ground truth mode.")
        if name not in self.names:
            raise ValueError(f"No image called {name!r}; choose from {', '.join(self.names)}.")
        image = self.hr if name == ORIGINAL else self.outputs[name]
        return image[top : top + height, left : left + width]


def compare(image: np.ndarray, mode: str, methods: list[LoadedMethod], stem: str = "image") -> Comparison:
    """Run every available method on a uint8 HWC RGB image in ``mode`` (one of ``MODES``)."""
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
    outputs, seconds, scores = {}, {}, {}
    for method in methods:
        if method.upscaler is None:
            continue
        start = time.perf_counter()
        outputs[method.name] = method.upscaler(lr)
        seconds[method.name] = time.perf_counter() - start
        if hr is not None:
            sr = outputs[method.name]
            scores[method.name] = (psnr_y(sr, hr, shave=SCALE), ssim_y(sr, hr, shave=SCALE))
    return Comparison(lr, hr, outputs, seconds, scores, stem)


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


def panel_label(method: LoadedMethod, comparison: Comparison | None = None) -> str:
    """'EDSR · cpu · 410 ms' after a run, 'EDSR' before, 'EDSR-SRGAN · unavailable' without weights."""
    if method.upscaler is None:
        return f"{title(method.name)} · unavailable"
    if comparison is None or method.name not in comparison.seconds:
        return title(method.name)
    return f"{title(method.name)} · {method.upscaler.device} · {comparison.seconds[method.name] * 1000:.0f} ms"


def results_table(comparison: Comparison, methods: list[LoadedMethod]) -> pd.DataFrame:
    """One row per method that ran: device, time, and in ground-truth mode PSNR (2 decimals) and SSIM (4)."""
    rows = []
    for method in methods:
        if method.name not in comparison.outputs:
            continue
        row: dict[str, object] = {
            "Method": title(method.name),
            "Device": method.upscaler.device,
            "Time (ms)": round(comparison.seconds[method.name] * 1000),
        }
        if comparison.hr is not None:
            psnr, ssim = comparison.scores[method.name]
            row |= {"PSNR (dB)": round(psnr, 2), "SSIM": round(ssim, 4)}
        rows.append(row)
    return pd.DataFrame(rows)


def default_pair(ran: list[str]) -> tuple[str, str]:
    """The before/after pair to show first: the first method that ran (bicubic) against the last one, or
    against the input when only one ran."""
    return ran[0], ran[-1] if len(ran) > 1 else INPUT


# ---- event handlers -------------------------------------------------------------------------------------------


def user_error(message: str) -> gr.Error:
    """An error shown to the user as is; the server log is spared its traceback."""
    return gr.Error(message, print_exception=False)


def png_file(comparison: Comparison, name: str) -> str:
    """The path of a PNG file holding ``comparison.view(name)``, named ``<stem>_<name>.png`` for downloads.

    Each image is encoded once per comparison (fast compression, see :func:`encode_png`); Gradio copies the
    file into its cache when it is returned, and folders older than ``KEEP_SECONDS`` are removed here.
    """
    path = comparison.files.get(name)
    if path is None or not Path(path).is_file():
        OUTPUT_DIR.mkdir(exist_ok=True)
        for folder in OUTPUT_DIR.iterdir():
            if time.time() - folder.stat().st_mtime > KEEP_SECONDS:
                shutil.rmtree(folder, ignore_errors=True)
        path = str(Path(tempfile.mkdtemp(dir=OUTPUT_DIR)) / f"{comparison.stem}_{name}.png")
        Path(path).write_bytes(encode_png(comparison.view(name)))
        comparison.files[name] = path
    return path


def upscale(
    file: str | None,
    mode: str,
    crop_size: float,
    zoom: float,
    picked: list[str] | None = None,
    *,
    methods: list[LoadedMethod],
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> tuple:
    """Decode an upload and run the ``picked`` methods on it (``None``: those picked at first).

    Returns, in the order of the tab's outputs: the overview with the crop box, one PNG file per method of
    ``methods`` (``None`` when not picked or unavailable), the results table, the zoomed crops, the crop centre x
    and y (output pixels) and the :class:`Comparison` for the state.
    """
    if file is None:
        raise user_error("Upload an image or pick an example first.")
    picked = [m.name for m in methods if m.picked] if picked is None else picked
    unknown = [name for name in picked if name not in {m.name for m in methods if m.upscaler is not None}]
    if unknown or not picked:
        choices = ", ".join(m.name for m in methods if m.upscaler is not None)
        raise user_error(f"Pick at least one of the available methods ({choices}); {unknown or 'none'} cannot run.")
    stem = re.sub(r"[^\w-]+", "_", Path(file).stem)[:60] or "image"
    try:
        runs = [method for method in methods if method.name in picked]
        comparison = compare(decode_image(file, max_pixels), mode, runs, stem)
    except ImageError as error:
        raise user_error(str(error)) from error
    except (torch.OutOfMemoryError, MemoryError) as error:
        raise user_error("Out of memory while upscaling; try a smaller image.") from error
    height, width = comparison.size
    x, y = width // 2, height // 2
    overview, crops = compare_crops(x, y, crop_size, zoom, comparison)
    panels = [png_file(comparison, method.name) if method.name in comparison.outputs else None for method in methods]
    return overview, *panels, results_table(comparison, methods), crops, x, y, comparison


def relabel_panels(comparison: Comparison | None, methods: list[LoadedMethod]) -> list[dict]:
    """Updates for the method panels: name, device and time of the last run; only the methods that ran shown."""
    return [
        gr.update(
            label=panel_label(method, comparison), visible=comparison is None or method.name in comparison.outputs
        )
        for method in methods
    ]


def compare_crops(
    x: float, y: float, crop_size: float, zoom: float, comparison: Comparison | None
) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """The overview with the crop box drawn, and the same region of every image magnified ``zoom`` times.

    ``x``, ``y`` and ``crop_size`` are in output pixels; the crops are (image, caption) pairs in the order of
    :attr:`Comparison.names`.
    """
    if comparison is None:
        raise user_error(NO_COMPARISON)
    box = crop_box(x, y, int(crop_size), comparison.size)
    crops = [(magnify(comparison.view(name, box), int(zoom)), title(name)) for name in comparison.names]
    return draw_box(comparison.overview, box, comparison.overview_scale), crops


def compare_pair(left: str, right: str, comparison: Comparison | None) -> tuple[str, str]:
    """PNG files of two images at the output size, for the before/after slider."""
    if comparison is None:
        raise user_error(NO_COMPARISON)
    try:
        return png_file(comparison, left), png_file(comparison, right)
    except ValueError as error:
        raise user_error(str(error)) from error


def show_pair(left: str, right: str, comparison: Comparison) -> tuple[tuple[str, str], str, str]:
    """The slider after a new run: the chosen pair, each replaced by its default when this run lacks it
    (the original in upscale mode, an unavailable method); returns the pair and the two names."""
    default_left, default_right = default_pair(list(comparison.outputs))
    left = left if left in comparison.names else default_left
    right = right if right in comparison.names else default_right
    return compare_pair(left, right, comparison), left, right


def centre_from_overview(comparison: Comparison | None, evt: gr.SelectData) -> tuple[int, int]:
    """The crop centre, in output pixels, for a click on the overview."""
    if comparison is None:
        raise user_error(NO_COMPARISON)
    x, y = evt.index
    return x * comparison.overview_scale, y * comparison.overview_scale


def centre_from_output(evt: gr.SelectData) -> tuple[int, int]:
    """The crop centre, in output pixels, for a click on a method's output."""
    x, y = evt.index
    return x, y


# ---- layout ---------------------------------------------------------------------------------------------------


def build_compare_tab(methods: list[LoadedMethod], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
    """Lay out the Compare tab inside the current ``gr.Blocks`` (or ``gr.Tab``) and wire its events."""
    gr.Markdown(
        "Upload an image or pick an example. **Upscale** treats it as the low-resolution input; **Ground truth** "
        "treats it as the original, downscales it ×4 (MATLAB bicubic) and scores every method against it. "
        "Click any image to zoom into the same region of all of them."
    )
    available = [method for method in methods if method.upscaler is not None]
    with gr.Row():
        upload = gr.File(label="Image", file_types=list(UPLOAD_SUFFIXES), type="filepath", scale=2)
        with gr.Column(scale=1):
            mode = gr.Radio(list(MODES), value=UPSCALE, label="Mode")
            picked = gr.CheckboxGroup(
                [(title(method.name), method.name) for method in available],
                value=[method.name for method in available if method.picked],
                label="Methods",
                elem_id="methods",
            )
            run = gr.Button("Upscale ×4", variant="primary")
    unavailable = [f"- **{title(m.name)}**: {m.reason}" for m in methods if m.upscaler is None]
    if unavailable:
        with gr.Accordion(f"Unavailable methods ({len(unavailable)})", open=False):
            gr.Markdown("\n".join(unavailable))
    examples = sorted(EXAMPLES_DIR.glob("*.png"))
    gr.Examples([[str(path)] for path in examples], inputs=[upload], example_labels=[p.stem for p in examples])

    with gr.Row(equal_height=True):
        overview = gr.Image(
            label="Input · click to zoom",
            format="png",
            interactive=False,
            height=PANEL_HEIGHT,
            scale=1,
            elem_id="overview",
        )
        panels = []
        for method in methods:
            panels.append(
                gr.Image(
                    label=panel_label(method),
                    format="png",
                    interactive=False,
                    height=PANEL_HEIGHT,
                    buttons=["download", "fullscreen"],
                    elem_id=f"panel-{method.name}",
                    visible=method.picked and method.upscaler is not None,
                    scale=1,
                )
            )
    table = gr.Dataframe(label="Time and scores")

    gr.Markdown("### Zoomed crops")
    with gr.Row():
        crop_size = gr.Slider(8, 256, value=DEFAULT_CROP, step=SCALE, label="Crop size (output pixels)")
        zoom = gr.Slider(1, 8, value=DEFAULT_ZOOM, step=1, label="Magnification (nearest neighbour)")
        x = gr.Number(label="Centre x (output pixels)", precision=0)
        y = gr.Number(label="Centre y (output pixels)", precision=0)
    crops = gr.Gallery(
        label="Crops", format="png", columns=CROP_COLUMNS, object_fit="contain", height="auto", elem_id="crops"
    )

    gr.Markdown("### Before / after")
    ran = [method.name for method in available]
    choices = [(title(name), name) for name in (INPUT, *ran, ORIGINAL)]
    with gr.Row():
        left = gr.Dropdown(choices, value=default_pair(ran)[0], label="Left")
        right = gr.Dropdown(choices, value=default_pair(ran)[1], label="Right")
    slider = gr.ImageSlider(label="Drag to compare", format="png", max_height=800)
    state = gr.State(time_to_live=3600)

    ran_all = run.click(
        partial(upscale, methods=methods, max_pixels=max_pixels),
        inputs=[upload, mode, crop_size, zoom, picked],
        outputs=[overview, *panels, table, crops, x, y, state],
        api_name="upscale",
    )
    ran_all.success(partial(relabel_panels, methods=methods), inputs=state, outputs=panels, api_name=False)
    ran_all.success(show_pair, inputs=[left, right, state], outputs=[slider, left, right], api_name=False)
    crop_inputs, crop_outputs = [x, y, crop_size, zoom, state], [overview, crops]
    gr.on(
        [crop_size.release, zoom.release, x.submit, y.submit],
        compare_crops,
        inputs=crop_inputs,
        outputs=crop_outputs,
        api_name="compare_crops",
    )
    overview.select(centre_from_overview, [state], [x, y], api_name=False).success(
        compare_crops, crop_inputs, crop_outputs, api_name=False
    )
    for panel in panels:
        panel.select(centre_from_output, None, [x, y], api_name=False).success(
            compare_crops, crop_inputs, crop_outputs, api_name=False
        )
    gr.on([left.input, right.input], compare_pair, inputs=[left, right, state], outputs=slider, api_name="compare_pair")
