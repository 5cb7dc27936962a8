"""A comparison as a Compare-tab session keeps it: its full-size images as PNG files in a folder of its own.

Memory stays bounded however many people use the tab: a comparison's images are written once (:func:`save`) and a
session keeps only a :class:`Saved` handle (paths, labels, table); crops are cut from the files when asked for. The
difference images and SSIM maps (:func:`sr_app.comparison.analyses`) are made and written once, with the images. The
folder is removed when the session's next comparison replaces it or its state is deleted (:func:`discard`: an hour
after the comparison, or after the page is closed), and otherwise (a restart) once it is ``KEEP_SECONDS`` old.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from sr_app.comparison import INPUT, ORIGINAL, UPSCALE, Box, Comparison, analyses, results_table
from sr_app.images import encode_png
from sr_app.ui.viewer import Scale, View
from sr_app.upscalers import SCALE

#: Where full-size PNGs are written, a folder per comparison; the viewer and the downloads serve them from here as
#: static files, so a folder is kept as long as a page may still show it (the comparison's lifetime in the session).
OUTPUT_DIR = Path(tempfile.gettempdir()) / "sr_lab_compare"
#: How long a session keeps its comparison, and the age at which any folder left in ``OUTPUT_DIR`` is removed.
KEEP_SECONDS = 3600


@dataclass(frozen=True)
class Saved:
    """A comparison as a session keeps it: its images as PNG files in a folder of its own, and what is said of them.

    Attributes:
        folder: the comparison's folder in ``OUTPUT_DIR``.
        files: image name -> its PNG file at the output size, ``<stem>_<name>.png``, in the order of the views
            (the input magnified ×4 by nearest neighbour, the outputs, the original in ground-truth mode).
        analyses: the views of the difference images and SSIM maps (``<stem>_<analysis name>.png``), shown after the
            images; not downloads, not in figures.
        labels: image name -> its label in the viewer (:meth:`Comparison.label`).
        titles: image name -> its caption on crops (:meth:`Comparison.title`).
        scores: method name -> (PSNR in dB, SSIM) in ground-truth mode (:attr:`Comparison.scores`); empty otherwise.
        table: the results table (:func:`results_table`).
        stem: the upload's file name without suffix.
        mode: one of ``MODES``.
        size: (height, width) of every file, in pixels.
    """

    folder: Path
    files: dict[str, Path]
    analyses: list[View]
    labels: dict[str, str]
    titles: dict[str, str]
    scores: dict[str, tuple[float, float]]
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
        """The viewer's images, in order: the comparison's, then the analyses."""
        return [View(self.labels[name], path) for name, path in self.files.items()] + self.analyses

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
    ``OUTPUT_DIR`` (:func:`new_folder`), named ``<stem>_<name>.png`` for downloads, and its analyses beside them."""
    folder = new_folder()
    files = {}
    for name in comparison.names:
        files[name] = folder / f"{comparison.stem}_{name}.png"
        files[name].write_bytes(encode_png(comparison.view(name)))
    views = []
    for analysis in analyses(comparison):
        path = folder / f"{comparison.stem}_{analysis.name}.png"
        path.write_bytes(encode_png(analysis.image))
        views.append(View(analysis.label, path, Scale(analysis.low, analysis.high, analysis.note)))
    return Saved(
        folder,
        files,
        views,
        {name: comparison.label(name) for name in files},
        {name: comparison.title(name) for name in files},
        dict(comparison.scores),
        results_table(comparison),
        comparison.stem,
        comparison.mode,
        comparison.size,
    )


def new_folder() -> Path:
    """A new, empty folder in ``OUTPUT_DIR`` for one session's images; folders older than ``KEEP_SECONDS`` are
    removed here."""
    OUTPUT_DIR.mkdir(exist_ok=True)
    for folder in OUTPUT_DIR.iterdir():
        if time.time() - folder.stat().st_mtime > KEEP_SECONDS:
            shutil.rmtree(folder, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=OUTPUT_DIR))


def discard(saved: Saved | None) -> None:
    """Remove a comparison's folder (once the session no longer holds it)."""
    if saved is not None:
        shutil.rmtree(saved.folder, ignore_errors=True)
