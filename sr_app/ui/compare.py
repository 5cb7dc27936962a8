"""The Compare tab: one image through the ×4 methods the user picks (:mod:`sr_app.comparison`: "Upscale" or
"Ground truth" mode, optionally as self-ensembles), in a viewer that pans and zooms them together.

The event handlers (:func:`upscale`, :func:`show_comparison`, :func:`share_comparison`, :func:`open_shared`,
:func:`export_figure` (:mod:`sr_app.figure` of the viewer's box), and for API users :func:`compare_crops` and
:func:`compare_pair`) turn the comparison's results into component values and
user errors into ``gr.Error``, and :func:`build_compare_tab` lays the tab out and wires them. A session keeps its
comparison as PNG files (:mod:`sr_app.ui.saved`) and every image leaves the server as lossless PNG; the viewer is
:mod:`sr_app.ui.viewer`, shared comparisons are :mod:`sr_app.ui.share`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import sys
from functools import partial
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import torch

from sr_app.comparison import GROUND_TRUTH, MODES, UPSCALE, Box, LoadedMethod, compare, crop_box, draw_box, title
from sr_app.errors import user_error
from sr_app.figure import Panel, compose_figure, write_figure
from sr_app.images import DEFAULT_MAX_PIXELS, UPLOAD_SUFFIXES, ImageError, decode_image, file_stem
from sr_app.resize import magnify
from sr_app.ui.saved import KEEP_SECONDS, OUTPUT_DIR, Saved, discard, save
from sr_app.ui.share import DEFAULT_QUOTA, SHARE_PARAM, Quota, ShareError, load_shared, save_shared, shared_dir
from sr_app.ui.viewer import empty_html, viewer_component, viewer_html
from sr_app.upscalers import SCALE

#: The run button's text in each mode.
RUN_LABELS = {UPSCALE: "Upscale ×4", GROUND_TRUTH: "Downscale ×4, upscale and score"}
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
DEFAULT_CROP, DEFAULT_ZOOM = 64, 4
#: Limits of ``/compare_crops`` and ``/export_figure``: the crop's side in output pixels, the zoom, and the side of a
#: magnified crop.
MAX_CROP, MAX_ZOOM, MAX_MAGNIFIED = 512, 16, 2048
NO_COMPARISON = "Upscale an image first (upload one or pick an example, then press Upscale)."
EXPIRED = "This comparison's images were removed after an hour; upscale the image again."
EMPTY_VIEWER = "Upload an image or pick an example, pick methods and press the button: the results appear here."
SELF_ENSEMBLE_LABEL = "Self-ensemble (networks ×8 slower)"
#: Browser script turning a share id into the link to send: this page's address with ``?compare=<id>``.
LINK_JS = f"(id) => new URL('?{SHARE_PARAM}=' + id, location.href).href"
#: Browser script putting the viewer's current box (which ``viewer.js`` keeps on its ``.srv`` element) into the x, y,
#: crop_size and zoom inputs of ``/export_figure``: the largest square the main view shows, magnified as on screen
#: (rounded), within the limits above; unchanged inputs (the centre box) without a viewer.
VIEWER_BOX_JS = f"""(...inputs) => {{
  const box = document.querySelector('#viewer .srv')?.dataset;
  if (!box?.side) return inputs;
  const side = Math.max({SCALE}, Math.min({MAX_CROP}, Math.round(Number(box.side))));
  const zoom = Math.min({MAX_ZOOM}, Math.floor({MAX_MAGNIFIED} / side), Math.round(Number(box.magnification)));
  return [Number(box.cx), Number(box.cy), side, Math.max(1, zoom)];
}}"""

#: Browser script bringing the viewer into view after a run, unless it is all on screen already (on a phone the
#: controls come first, far above it); smoothly, unless the user asks for reduced motion.
SHOW_VIEWER_JS = """() => {
  const viewer = document.querySelector('#viewer');
  const box = viewer?.getBoundingClientRect();
  if (!box || (box.top >= 0 && box.bottom <= innerHeight)) return;
  const still = matchMedia('(prefers-reduced-motion: reduce)').matches;
  viewer.scrollIntoView({block: 'start', behavior: still ? 'instant' : 'smooth'});
}"""

#: The C library, to hand freed memory back to the system (glibc on Linux; ``None`` elsewhere).
LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform == "linux" else None


def release_memory() -> None:
    """Hand the memory a job freed back to the system. glibc keeps freed blocks up to its mmap threshold (which grows
    to 32 MB: tiles, PNG buffers) for reuse, so without this the server's RSS would stay at its busiest moment."""
    if LIBC is not None and hasattr(LIBC, "malloc_trim"):  # glibc; musl has none
        LIBC.malloc_trim(0)


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
    stem = file_stem(file) or "image"
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


def show_comparison(saved: Saved) -> tuple[str, gr.Column, gr.Button, gr.Textbox, gr.File]:
    """After a run: the viewer on the comparison (the first method in the main view), the results shown, the Share
    button offered again, the previous link and figure cleared."""
    viewer = viewer_html(saved.views(), saved.size, main=1)
    cleared = gr.Textbox(value="", visible=False), gr.File(value=None, visible=False)
    return viewer, gr.Column(visible=True), gr.Button(visible=True), *cleared


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

    Returns updates for the note, the controls, the viewer, the results, the table, the downloads and the row of the
    Share and Export figure buttons.
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
        gr.Row(visible=False),
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
    box = requested_box(x, y, crop_size, zoom, saved)
    try:
        crops = [(magnify(saved.region(name, box), int(zoom)), saved.titles[name]) for name in saved.names]
        overview, scale = saved.overview()
    except FileNotFoundError as error:
        raise user_error(EXPIRED) from error
    finally:
        release_memory()  # of the decoded images
    return draw_box(overview, box, scale), crops


def export_figure(x: float | None, y: float | None, crop_size: float, zoom: float, saved: Saved | None) -> list[str]:
    """The figure of a comparison (:func:`sr_app.figure.compose_figure`): the overview of :func:`compare_crops` with
    the box, and the box of every image magnified ``zoom`` times, titled, with PSNR/SSIM in ground-truth mode; as
    ``<stem>_figure.png`` and ``<stem>_figure.pdf`` in the comparison's folder. The inputs and their limits are those
    of :func:`compare_crops`."""
    box = requested_box(x, y, crop_size, zoom, saved)
    try:
        overview, scale = saved.overview()
        panels = [Panel(saved.region(name, box), saved.titles[name], saved.scores.get(name)) for name in saved.names]
        figure = compose_figure(overview, scale, box, panels, int(zoom))
        files = write_figure(figure.image, saved.folder, saved.stem)
    except FileNotFoundError as error:
        raise user_error(EXPIRED) from error
    finally:
        release_memory()  # of the decoded images and the figure
    return [str(path) for path in files]


def requested_box(x: float | None, y: float | None, crop_size: float, zoom: float, saved: Saved | None) -> Box:
    """The box of :func:`crop_box` around (``x``, ``y``) (the image's centre where they are ``None``) that an API user
    asks of the session's comparison ``saved``; a user error when there is none or the crop size or zoom lies
    outside the limits."""
    if saved is None:
        raise user_error(NO_COMPARISON)
    if not all(math.isfinite(value) for value in (x, y) if value is not None):
        raise user_error(f"x and y must be finite numbers (output pixels); got x {x} and y {y}.")
    if not (SCALE <= crop_size <= MAX_CROP and 1 <= zoom <= MAX_ZOOM and crop_size * zoom <= MAX_MAGNIFIED):
        raise user_error(
            f"crop_size must be {SCALE} to {MAX_CROP} output pixels and zoom 1 to {MAX_ZOOM}, with crop_size × zoom at "
            f"most {MAX_MAGNIFIED} (the side of a magnified crop); got crop_size {crop_size:g} and zoom {zoom:g}."
        )
    height, width = saved.size
    return crop_box(width / 2 if x is None else x, height / 2 if y is None else y, int(crop_size), saved.size)


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
            with gr.Column(scale=2):
                upload = gr.File(label="Image", file_types=list(UPLOAD_SUFFIXES), type="filepath")
                examples = sorted(EXAMPLES_DIR.glob("*.png"))
                gr.Examples([[str(p)] for p in examples], inputs=[upload], example_labels=[p.stem for p in examples])
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

    viewer = viewer_component(empty_html(EMPTY_VIEWER))
    with gr.Column(visible=False) as results:
        table = gr.Dataframe(label="Time and scores", interactive=False, elem_id="results-table")
        files = gr.File(label="Downloads (lossless PNG)", file_count="multiple", interactive=False)
        with gr.Row() as actions:
            share = gr.Button("Share", visible=data_dir is not None, scale=0, min_width=120)
            export = gr.Button("Export figure", scale=0, min_width=170)
            link = gr.Textbox(
                label="Link to this comparison (read-only; kept until deleted)",
                visible=False,
                buttons=["copy"],
                elem_id="share-link",
            )
        figure = gr.File(
            label="Figure of the viewer's box (PNG, PDF)",
            file_count="multiple",
            interactive=False,
            visible=False,
            elem_id="figure",
        )
    state = gr.State(time_to_live=KEEP_SECONDS, delete_callback=discard)
    # Inputs of /compare_crops and /export_figure (the Export figure button fills them from the viewer) and outputs
    # of the API-only endpoints /compare_crops and /compare_pair; never shown.
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
    shown = ran.success(show_comparison, state, [viewer, results, share, link, figure], api_visibility="private")
    shown.then(None, js=SHOW_VIEWER_JS, api_visibility="private")
    # The error is the toast; the viewer keeps what it showed, without an error badge.
    ran.failure(lambda: gr.skip(), None, viewer, show_progress="hidden", api_visibility="private")
    if data_dir is not None:
        sharing = partial(share_comparison, data_dir=data_dir, quota=share_quota)
        shared = share.click(sharing, state, [link, share], api_name="share")
        shared.success(None, link, link, js=LINK_JS)

        def from_address(request: gr.Request) -> tuple:
            return open_shared(request.query_params.get(SHARE_PARAM, ""), data_dir)

        gr.on(
            triggers=None, fn=from_address, inputs=None,
            outputs=[note, controls, viewer, results, table, files, actions], api_visibility="private",
        )  # fmt: skip
    gr.on([], compare_crops, inputs=[x, y, crop_size, zoom, state], outputs=[overview, crops], api_name="compare_crops")
    gr.on([], compare_pair, inputs=[left, right, state], outputs=pair, api_name="compare_pair")
    box = [x, y, crop_size, zoom]
    exported = export.click(None, box, box, js=VIEWER_BOX_JS, api_visibility="private")
    exported = exported.then(export_figure, [*box, state], figure, api_name="export_figure")
    exported.success(lambda: gr.File(visible=True), None, figure, api_visibility="private")
