"""The Folder tab: a benchmark set the server lists, or several uploaded images, each as a ground truth through the
methods the user picks (:mod:`sr_app.folder`), with a progress bar; then a table per image × method with each
method's mean, its CSV, and the selected row's image in the viewer (:mod:`sr_app.ui.viewer`) beside the other
methods' outputs.

A session keeps its run as PNG files in a folder of ``OUTPUT_DIR`` (:func:`sr_app.ui.saved.new_folder`) and only the
:class:`FolderRun` handle in its state; the folder goes when the next run replaces it or the state expires.
"""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import gradio as gr
import pandas as pd
import torch

from sr_app.comparison import ORIGINAL, LoadedMethod, title
from sr_app.errors import UserError, user_error
from sr_app.folder import (
    MAX_UPLOADS,
    MAX_WORK,
    FolderRun,
    check_uploads,
    display_table,
    list_sets,
    run_folder,
    set_images,
    write_csv,
)
from sr_app.images import DEFAULT_MAX_PIXELS, UPLOAD_SUFFIXES
from sr_app.ui.compare import EXAMPLES_DIR, release_memory
from sr_app.ui.saved import KEEP_SECONDS, OUTPUT_DIR, new_folder
from sr_app.ui.viewer import View, empty_html, viewer_component, viewer_html

#: The choice of images that means the files uploaded below, beside the sets' names.
UPLOADS = "My files (upload below)"
#: The bundled example photos, always offered as a set.
EXAMPLES = "examples"
RUN_LABEL = "Downscale ×4, upscale and score every image"
EMPTY_VIEWER = "Run a folder, then select a row of the table: that image's outputs appear here."
TABLE_LABEL = "PSNR / SSIM per image (Y channel, 4 px shaved), each method's mean last"


def folder_sets(datasets: Path | None) -> dict[str, Path]:
    """The sets the tab offers: the bundled examples, then every set of ``datasets`` (:func:`list_sets`)."""
    return {EXAMPLES: EXAMPLES_DIR, **list_sets(datasets)}


def run_folder_tab(
    source: str,
    uploads: list[str] | None,
    picked: list[str] | None,
    previous: FolderRun | None = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's way of asking for a progress bar
    *,
    methods: list[LoadedMethod],
    sets: dict[str, Path],
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_work: int = MAX_WORK,
) -> tuple[pd.DataFrame, str, FolderRun]:
    """Run the set called ``source`` (one of ``sets``), or with ``UPLOADS`` the uploaded files, through the
    ``picked`` methods; the session's ``previous`` run is removed once this one is done.

    Returns, in the order of the tab's outputs: the table (:func:`display_table`), the CSV file and the run.
    """
    runs = [method for method in methods if method.name in (picked or [])]
    folder = new_folder()
    try:
        paths = check_uploads(uploads) if source == UPLOADS else set_images(sets, source)
        run = run_folder(paths, runs, folder, max_pixels, max_work, progress)
    except UserError as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise user_error(error) from error
    except (torch.OutOfMemoryError, MemoryError) as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise user_error("Out of memory while upscaling; try fewer or smaller images.") from error
    finally:
        release_memory()
    discard_run(previous)
    stem = "uploads" if source == UPLOADS else source
    return display_table(run.scores), str(write_csv(run.scores, folder / f"{stem}_scores.csv")), run


def show_row(run: FolderRun | None, row: list) -> str | None:
    """The viewer on the image of a table row (``[image, method title, …]``): its original and every method's
    output, the row's method in the main view; ``None`` for a mean row."""
    if run is None or row[0] not in run.sizes:
        return None
    image, method_title = row[0], row[1]
    scores = run.scores[run.scores["image"] == image].set_index("method")
    names = [ORIGINAL, *run.methods]
    views = [View(title(ORIGINAL), run.file(image, ORIGINAL))]
    views += [View(f"{title(name)} · {scores.at[name, 'psnr']:.2f} dB", run.file(image, name)) for name in run.methods]
    main = next((i for i, name in enumerate(names) if title(name) == method_title), 1)
    return viewer_html(views, run.sizes[image], main=main)


def select_row(run: FolderRun | None, event: gr.SelectData) -> str:
    """:func:`show_row` of the row the user selected; a mean row leaves the viewer as it is."""
    viewer = show_row(run, event.row_value)
    return gr.skip() if viewer is None else viewer


def discard_run(run: FolderRun | None) -> None:
    """Remove a run's folder (once the session no longer holds it)."""
    if run is not None:
        shutil.rmtree(run.folder, ignore_errors=True)


def build_folder_tab(
    methods: list[LoadedMethod],
    datasets: Path | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_work: int = MAX_WORK,
) -> None:
    """Lay out the Folder tab inside the current ``gr.Blocks`` (or ``gr.Tab``) and wire its events; the sets are the
    bundled examples and those of ``datasets`` (:func:`folder_sets`)."""
    gr.set_static_paths([OUTPUT_DIR])
    sets = folder_sets(datasets)
    available = [method for method in methods if method.upscaler is not None]
    gr.Markdown(
        "Score many images at once, as `python -m train.evaluate` does: each image is the original, downscaled ×4 "
        f"(MATLAB bicubic), upscaled by every method and scored against it. Pick a set or upload up to {MAX_UPLOADS} "
        "images."
    )
    with gr.Row():
        with gr.Column(scale=2):
            source = gr.Dropdown([*sets, UPLOADS], value=EXAMPLES, label="Images", elem_id="folder-source")
            uploads = gr.File(
                label=f"Your images (at most {MAX_UPLOADS})",
                file_count="multiple",
                file_types=list(UPLOAD_SUFFIXES),
                type="filepath",
            )
        with gr.Column(scale=1):
            picked = gr.CheckboxGroup(
                [(title(method.name), method.name) for method in available],
                value=[method.name for method in available if method.picked],
                label="Methods",
                elem_id="folder-methods",
            )
            run = gr.Button(RUN_LABEL, variant="primary")
    with gr.Column(visible=False) as results:
        table = gr.Dataframe(label=TABLE_LABEL, interactive=False, elem_id="folder-table")
        csv = gr.File(label="Scores (CSV)", interactive=False)
        viewer = viewer_component(empty_html(EMPTY_VIEWER), elem_id="folder-viewer")
    state = gr.State(time_to_live=KEEP_SECONDS, delete_callback=discard_run)

    uploads.upload(lambda: UPLOADS, None, source, api_visibility="private")
    ran = run.click(
        partial(run_folder_tab, methods=methods, sets=sets, max_pixels=max_pixels, max_work=max_work),
        inputs=[source, uploads, picked, state],
        outputs=[table, csv, state],
        api_name="run_folder",
        show_progress_on=table,
    )
    ran.success(
        lambda: (gr.Column(visible=True), empty_html(EMPTY_VIEWER)), None, [results, viewer], api_visibility="private"
    )
    table.select(select_row, state, viewer, api_visibility="private")
