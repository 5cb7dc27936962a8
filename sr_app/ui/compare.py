"""The Compare tab: one image through the ×4 methods the user picks, in a viewer that pans and zooms them together.

Two modes:

* **Upscale**: the image is the low-resolution input; every method makes it ×4.
* **Ground truth**: the image is the original. It is cropped to a multiple of 4 and downscaled ×4 with the
  project's MATLAB bicubic (``sr_app.resize.make_lr``); every method upscales that, and PSNR/SSIM (BT.601 Y,
  4 px shaved) are measured against the original exactly as ``python -m train.evaluate`` measures them. The original
  is shown beside the methods.

Every method of the registry (:mod:`sr_app.methods`) and every model the user added (``app.py --model
label=path``) can be picked; the registry's default methods and the user's models are picked at first. With
"Self-ensemble" ticked, networks average their outputs over the 8 flips and rotations of the input (EDSR's "EDSR+",
8× the time) and are named with a "+".

The pure functions (:func:`load_methods`, :func:`compare`, :func:`crop_box`, :func:`draw_box`,
:func:`results_table`) do the work; the event handlers (:func:`upscale`, :func:`show_comparison`,
:func:`share_comparison`, :func:`open_shared`, and for API users :func:`compare_crops` and :func:`compare_pair`) turn
their results into component values and user errors into ``gr.Error``, and :func:`build_compare_tab` lays the tab out
and wires them. Every image leaves the server as lossless PNG; the viewer is :mod:`sr_app.ui.viewer`, shared
comparisons are :mod:`sr_app.ui.share`.

Memory stays bounded however many people use the tab: a comparison's full-size images are written once as PNG files
into a folder of its own (:func:`save`) and a session keeps only a :class:`Saved` handle (paths, labels, table);
crops are cut from the files when asked for. The folder is removed when the session's next comparison replaces it,
when the session's state is deleted (an hour after the comparison, or after the page is closed), and otherwise (a
restart) once it is ``KEEP_SECONDS`` old.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw

from sr_app.errors import user_error
from sr_app.images import DEFAULT_MAX_PIXELS, UPLOAD_SUFFIXES, ImageError, decode_image, encode_png
from sr_app.methods import REGISTRY, Method, Settings
from sr_app.metrics import psnr_y, ssim_y
from sr_app.resize import magnify, make_lr
from sr_app.ui.share import DEFAULT_QUOTA, SHARE_PARAM, Quota, ShareError, load_shared, save_shared, shared_dir
from sr_app.ui.viewer import View, empty_html, viewer_component, viewer_html
from sr_app.upscalers import SCALE, ModelUpscaler, Upscaler
from sr_app.weights import WeightsError

MODES = ("Upscale", "Ground truth")
UPSCALE, GROUND_TRUTH = MODES
#: The run button's text in each mode.
RUN_LABELS = {UPSCALE: "Upscale ×4", GROUND_TRUTH: "Downscale ×4, upscale and score"}
#: Names of the two images that are not method outputs: the methods' input and, in ground-truth mode, the original.
INPUT, ORIGINAL = "input", "original"
#: Display names of the images that are not method outputs.
TITLES = {INPUT: "Input", ORIGINAL: "Original"}
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
#: Smallest side of an original in ground-truth mode: cropped to a multiple of 4 and shaved by 4 px per border,
#: it must still hold SSIM's 11 px Gaussian window (20 - 2 × 4 = 12 ≥ 11).
MIN_GROUND_TRUTH_SIDE = 20
DEFAULT_CROP, DEFAULT_ZOOM = 64, 4
#: Limits of ``/compare_crops``: the crop's side in output pixels, the zoom, and the side of a magnified crop.
MAX_CROP, MAX_ZOOM, MAX_MAGNIFIED = 512, 16, 2048
BOX_COLOUR = (255, 0, 80)
NO_COMPARISON = "Upscale an image first (upload one or pick an example, then press Upscale)."
EXPIRED = "This comparison's images were removed after an hour; upscale the image again."
EMPTY_VIEWER = "Upload an image or pick an example, pick methods and press the button: the results appear here."
SELF_ENSEMBLE_LABEL = "Self-ensemble (networks ×8 slower)"
#: Where full-size PNGs are written, a folder per comparison; the viewer and the downloads serve them from here as
#: static files, so a folder is kept as long as a page may still show it (the comparison's lifetime in the session).
OUTPUT_DIR = Path(tempfile.gettempdir()) / "sr_lab_compare"
#: How long a session keeps its comparison, and the age at which any folder left in ``OUTPUT_DIR`` is removed.
KEEP_SECONDS = 3600
#: Browser script turning a share id into the link to send: this page's address with ``?compare=<id>``.
LINK_JS = f"(id) => new URL('?{SHARE_PARAM}=' + id, location.href).href"

#: The C library, to hand freed memory back to the system (glibc on Linux; ``None`` elsewhere).
LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform == "linux" else None

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
    """One image through the picked methods, in memory (see :class:`Saved` for what a session keeps of it).

    Attributes:
        lr: the methods' input, uint8 HWC RGB.
        hr: the original cropped to ``SCALE ×`` the input size (ground-truth mode), else ``None``.
        outputs: method name -> its uint8 HWC RGB output, ``SCALE ×`` the input size, in the order they ran.
        seconds: method name -> wall-clock time of its upscaler call, in seconds.
        devices: method name -> where it ran ("cpu", "cuda", ...).
        scores: method name -> (PSNR in dB, SSIM in [0, 1]) against ``hr``; empty in upscale mode.
        ensembled: the methods that ran as self-ensembles.
        stem: the upload's file name without suffix, to name downloads.
    """

    lr: np.ndarray
    hr: np.ndarray | None
    outputs: dict[str, np.ndarray]
    seconds: dict[str, float]
    devices: dict[str, str] = field(default_factory=dict)
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)
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


@dataclass(frozen=True)
class Saved:
    """A comparison as a session keeps it: its images as PNG files in a folder of its own, and what is said of them.

    Attributes:
        folder: the comparison's folder in ``OUTPUT_DIR``.
        files: image name -> its PNG file at the output size, ``<stem>_<name>.png``, in the order of the views
            (the input magnified ×4 by nearest neighbour, the outputs, the original in ground-truth mode).
        labels: image name -> its label in the viewer (:meth:`Comparison.label`).
        titles: image name -> its caption on crops (:meth:`Comparison.title`).
        table: the results table (:func:`results_table`).
        stem: the upload's file name without suffix.
        mode: one of ``MODES``.
        size: (height, width) of every file, in pixels.
    """

    folder: Path
    files: dict[str, Path]
    labels: dict[str, str]
    titles: dict[str, str]
    table: pd.DataFrame
    stem: str
    mode: str
    size: tuple[int, int]

    @property
    def names(self) -> list[str]:
        return list(self.files)

    def file(self, name: str) -> Path:
        """The PNG file of image ``name``; ``ValueError`` saying what to choose for any other name."""
        if name == ORIGINAL and self.mode == UPSCALE:
            raise ValueError("“Original” exists only in Ground truth mode.")
        if name not in self.files:
            raise ValueError(f"No image called {name!r}; choose from {', '.join(self.names)}.")
        return self.files[name]

    def views(self) -> list[View]:
        """The viewer's images, in order."""
        return [View(self.labels[name], path) for name, path in self.files.items()]

    def region(self, name: str, box: Box) -> np.ndarray:
        """The ``box`` region of image ``name``, read from its file (uint8 HWC RGB)."""
        top, left, height, width = box
        with Image.open(self.files[name]) as image:
            return np.asarray(image.crop((left, top, left + width, top + height)))

    def overview(self) -> tuple[np.ndarray, int]:
        """The image the user gave (the original in ground-truth mode, else the input) and how many output pixels
        one of its pixels spans."""
        scale = SCALE if self.mode == UPSCALE else 1
        with Image.open(self.files[INPUT if self.mode == UPSCALE else ORIGINAL]) as image:
            return np.asarray(image.reduce(scale) if scale > 1 else image), scale


def save(comparison: Comparison) -> Saved:
    """Write every image of ``comparison`` as a PNG (fast compression, see :func:`encode_png`) into a new folder of
    ``OUTPUT_DIR``, named ``<stem>_<name>.png`` for downloads; folders older than ``KEEP_SECONDS`` are removed here."""
    OUTPUT_DIR.mkdir(exist_ok=True)
    for folder in OUTPUT_DIR.iterdir():
        if time.time() - folder.stat().st_mtime > KEEP_SECONDS:
            shutil.rmtree(folder, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(dir=OUTPUT_DIR))
    files = {}
    for name in comparison.names:
        files[name] = folder / f"{comparison.stem}_{name}.png"
        files[name].write_bytes(encode_png(comparison.view(name)))
    return Saved(
        folder,
        files,
        {name: comparison.label(name) for name in files},
        {name: comparison.title(name) for name in files},
        results_table(comparison),
        comparison.stem,
        comparison.mode,
        comparison.size,
    )


def release_memory() -> None:
    """Hand the memory a job freed back to the system. glibc keeps freed blocks up to its mmap threshold (which grows
    to 32 MB: tiles, PNG buffers) for reuse, so without this the server's RSS would stay at its busiest moment."""
    if LIBC is not None and hasattr(LIBC, "malloc_trim"):  # glibc; musl has none
        LIBC.malloc_trim(0)


def discard(saved: Saved | None) -> None:
    """Remove a comparison's folder (once the session no longer holds it)."""
    if saved is not None:
        shutil.rmtree(saved.folder, ignore_errors=True)


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
    outputs, seconds, devices, scores, ensembled = {}, {}, {}, {}, set()
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
            scores[method.name] = (psnr_y(sr, hr, shave=SCALE), ssim_y(sr, hr, shave=SCALE))
    return Comparison(lr, hr, outputs, seconds, devices, scores, frozenset(ensembled), stem)


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


# ---- event handlers -------------------------------------------------------------------------------------------


def run_label(mode: str) -> gr.Button:
    """The run button for ``mode``: it says what will happen."""
    return gr.Button(RUN_LABELS[mode])


def upscale(
    file: str | None,
    mode: str,
    picked: list[str] | None = None,
    self_ensemble: bool = False,
    previous: Saved | None = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's way of asking for a progress bar
    *,
    methods: list[LoadedMethod],
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> tuple[list[str], pd.DataFrame, Saved]:
    """Decode an upload and run the ``picked`` methods on it (``None``: those picked at first), networks as
    self-ensembles when ``self_ensemble``; the session's ``previous`` comparison is removed once this one is saved.

    Returns, in the order of the tab's outputs: the PNG files of the input (magnified ×4), every output and in
    ground-truth mode the original, named ``<upload stem>_<name>.png``; the results table; the :class:`Saved`
    comparison.
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
        saved = save(compare(decode_image(file, max_pixels), mode, runs, stem, self_ensemble, progress))
    except ImageError as error:
        raise user_error(str(error)) from error
    except (torch.OutOfMemoryError, MemoryError) as error:
        raise user_error("Out of memory while upscaling; try a smaller image.") from error
    discard(previous)
    release_memory()
    return [str(path) for path in saved.files.values()], saved.table, saved


def show_comparison(saved: Saved) -> tuple[str, gr.Column, gr.Button, gr.Textbox]:
    """After a run: the viewer on the comparison (the first method in the main view), the results shown, the Share
    button offered again and the previous link cleared."""
    viewer = viewer_html(saved.views(), saved.size, main=1)
    return viewer, gr.Column(visible=True), gr.Button(visible=True), gr.Textbox(value="", visible=False)


def share_comparison(
    saved: Saved | None, *, data_dir: Path, quota: Quota = DEFAULT_QUOTA
) -> tuple[gr.Textbox, gr.Button]:
    """Store the session's comparison in ``data_dir`` (once, under the id of its content) within ``quota``; returns
    the id (turned into the link in the browser) and hides the Share button until the next run."""
    if saved is None:
        raise user_error(NO_COMPARISON)
    try:
        share_id = save_shared(data_dir, saved.views(), saved.table, saved.stem, saved.mode, saved.size, quota)
    except ShareError as error:
        raise user_error(str(error)) from error
    except FileNotFoundError as error:
        raise user_error(EXPIRED) from error
    except OSError as error:
        raise user_error(f"Could not store the comparison in {data_dir}: {error}") from error
    return gr.Textbox(value=share_id, visible=True), gr.Button(visible=False)


def open_shared(share_id: str, data_dir: Path | None) -> tuple:
    """On page load: with ``?compare=<id>``, the stored comparison read-only (controls hidden, a note on top);
    without, nothing changes.

    Returns updates for the note, the controls, the viewer, the results, the table, the downloads and the Share
    button.
    """
    if not share_id or data_dir is None:
        return (gr.skip(),) * 7
    try:
        shared = load_shared(data_dir, share_id)
    except ShareError as error:
        return gr.Markdown(f"**{error}**", visible=True), *(gr.skip(),) * 6
    height, width = shared.size
    note = (
        f"**Shared comparison** of *{shared.stem}* ({shared.mode}, {width}×{height} output pixels), "
        f"{shared.created:%Y-%m-%d %H:%M} UTC; read-only. [Compare your own images](./)"
    )
    return (
        gr.Markdown(note, visible=True),
        gr.Column(visible=False),
        viewer_html(shared.views, shared.size, main=1),
        gr.Column(visible=True),
        shared.table,
        [str(view.path) for view in shared.views],
        gr.Button(visible=False),
    )


def compare_crops(
    x: float, y: float, crop_size: float, zoom: float, saved: Saved | None
) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """For API users: the overview with the crop box drawn, and the same region of every image magnified ``zoom``
    times by nearest neighbour.

    ``x``, ``y`` and ``crop_size`` (up to ``MAX_CROP``) are in output pixels, ``zoom`` is 1 to ``MAX_ZOOM``, and a
    magnified crop may be at most ``MAX_MAGNIFIED`` pixels wide; the crops are (image, caption) pairs in the order
    of the views.
    """
    if saved is None:
        raise user_error(NO_COMPARISON)
    if not (SCALE <= crop_size <= MAX_CROP and 1 <= zoom <= MAX_ZOOM and crop_size * zoom <= MAX_MAGNIFIED):
        raise user_error(
            f"crop_size must be {SCALE} to {MAX_CROP} output pixels and zoom 1 to {MAX_ZOOM}, with crop_size × zoom at "
            f"most {MAX_MAGNIFIED} (the side of a magnified crop); got crop_size {crop_size:g} and zoom {zoom:g}."
        )
    box = crop_box(x, y, int(crop_size), saved.size)
    try:
        crops = [(magnify(saved.region(name, box), int(zoom)), saved.titles[name]) for name in saved.names]
        overview, scale = saved.overview()
    except FileNotFoundError as error:
        raise user_error(EXPIRED) from error
    finally:
        release_memory()  # of the decoded images
    return draw_box(overview, box, scale), crops


def compare_pair(left: str, right: str, saved: Saved | None) -> tuple[str, str]:
    """For API users: PNG files of two images at the output size (``input``, a method name, ``original``)."""
    if saved is None:
        raise user_error(NO_COMPARISON)
    try:
        return str(saved.file(left)), str(saved.file(right))
    except ValueError as error:
        raise user_error(str(error)) from error


# ---- layout ---------------------------------------------------------------------------------------------------


def build_compare_tab(
    methods: list[LoadedMethod],
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    data_dir: Path | None = None,
    share_quota: Quota = DEFAULT_QUOTA,
) -> None:
    """Lay out the Compare tab inside the current ``gr.Blocks`` (or ``gr.Tab``) and wire its events.

    Comparisons are shared into ``data_dir`` (``None``: no Share button) within ``share_quota`` and reopened from
    ``/?compare=<id>``.
    """
    gr.set_static_paths([OUTPUT_DIR, *([shared_dir(data_dir)] if data_dir is not None else [])])
    note = gr.Markdown(visible=False)
    with gr.Column() as controls:
        gr.Markdown(
            "Upload an image or pick an example. **Upscale** treats it as the low-resolution input; **Ground truth** "
            "treats it as the original, downscales it ×4 (MATLAB bicubic) and scores every method against it."
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
                ensemble = gr.Checkbox(
                    label=SELF_ENSEMBLE_LABEL,
                    info="Networks average their outputs over 8 flips and rotations (EDSR's “EDSR+”).",
                )
                run = gr.Button(RUN_LABELS[UPSCALE], variant="primary")
        unavailable = [f"- **{title(m.name)}**: {m.reason}" for m in methods if m.upscaler is None]
        if unavailable:
            with gr.Accordion(f"Unavailable methods ({len(unavailable)})", open=False):
                gr.Markdown("\n".join(unavailable))
        examples = sorted(EXAMPLES_DIR.glob("*.png"))
        gr.Examples([[str(path)] for path in examples], inputs=[upload], example_labels=[p.stem for p in examples])

    viewer = viewer_component(empty_html(EMPTY_VIEWER))
    with gr.Column(visible=False) as results:
        table = gr.Dataframe(label="Time and scores", interactive=False, elem_id="results-table")
        files = gr.File(label="Downloads (lossless PNG)", file_count="multiple", interactive=False)
        with gr.Row():
            share = gr.Button("Share", visible=data_dir is not None, scale=0, min_width=120)
            link = gr.Textbox(
                label="Link to this comparison (read-only; kept until deleted)",
                visible=False,
                buttons=["copy"],
                elem_id="share-link",
            )
    state = gr.State(time_to_live=KEEP_SECONDS, delete_callback=discard)
    # Inputs and outputs of the API-only endpoints /compare_crops and /compare_pair; never shown.
    x, y = gr.Number(label="x", visible=False), gr.Number(label="y", visible=False)
    crop_size = gr.Number(DEFAULT_CROP, label="crop_size", visible=False)
    zoom = gr.Number(DEFAULT_ZOOM, label="zoom", visible=False)
    overview = gr.Image(label="overview", format="png", visible=False)
    crops = gr.Gallery(label="crops", format="png", visible=False)
    left, right = gr.Textbox(label="left", visible=False), gr.Textbox(label="right", visible=False)
    pair = gr.ImageSlider(label="pair", format="png", visible=False)

    mode.change(run_label, mode, run, api_visibility="private")
    ran = run.click(
        partial(upscale, methods=methods, max_pixels=max_pixels),
        inputs=[upload, mode, picked, ensemble, state],
        outputs=[files, table, state],
        api_name="upscale",
        show_progress_on=viewer,
    )
    ran.success(show_comparison, state, [viewer, results, share, link], api_visibility="private")
    # The error is the toast; the viewer keeps what it showed, without an error badge.
    ran.failure(lambda: gr.skip(), None, viewer, show_progress="hidden", api_visibility="private")
    if data_dir is not None:
        sharing = partial(share_comparison, data_dir=data_dir, quota=share_quota)
        shared = share.click(sharing, state, [link, share], api_name="share")
        shared.success(None, link, link, js=LINK_JS)

        def from_address(request: gr.Request) -> tuple:
            return open_shared(request.query_params.get(SHARE_PARAM, ""), data_dir)

        gr.on(
            triggers=None, fn=from_address, inputs=None, outputs=[note, controls, viewer, results, table, files, share],
            api_visibility="private",
        )  # fmt: skip
    gr.on([], compare_crops, inputs=[x, y, crop_size, zoom, state], outputs=[overview, crops], api_name="compare_crops")
    gr.on([], compare_pair, inputs=[left, right, state], outputs=pair, api_name="compare_pair")
