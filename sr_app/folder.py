"""Folder mode: every image of a folder as a ground truth through the picked ×4 methods, scored as
``python -m train.evaluate`` scores a benchmark set.

The folder is one of the benchmark sets the server lists (:func:`list_sets`: each subfolder of a datasets folder, or
its ``HR/`` subfolder; a client picks one by name, never by path) or a user's uploaded files (at most
``MAX_UPLOADS``). Each image is made a benchmark image as ``train.evaluate`` makes it
(:func:`sr_app.scoring.benchmark_image`): with the set's published LR file where it ships them (``LR_x4/``), else
cropped to a multiple of 4 and downscaled ×4 with the MATLAB bicubic (as in the Compare tab's Ground-truth mode);
every method upscales that, and its output is scored against the original by :func:`sr_app.scoring.score_images`, the
function ``train.evaluate`` scores with (PSNR/SSIM on Y, 4 px shaved).

One request's work is bounded: pixels of the originals × methods at most ``MAX_WORK``, checked from the image headers
before anything runs. Pure functions: :func:`list_sets`, :func:`set_images`, :func:`check_uploads`,
:func:`run_folder`, :func:`with_means`, :func:`display_table`, :func:`write_csv`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from sr_app import csv_files
from sr_app.comparison import MIN_GROUND_TRUTH_SIDE, ORIGINAL, LoadedMethod, Report, title
from sr_app.errors import UserError
from sr_app.images import decode_image, encode_png, file_stem, list_images
from sr_app.scoring import METRICS, benchmark_image, published_lr, score_images

#: Most files one upload may hold.
MAX_UPLOADS = 20
#: Most work of one request: pixels of the originals × methods (Set14 through six methods is about 19 million).
MAX_WORK = 40_000_000
#: The ``image`` of a method's mean row, in the table and the CSV.
MEAN = "(mean)"
#: Columns of the scores and of the CSV: one row per image × method, as ``train.evaluate --csv`` without ``dataset``.
COLUMNS = ["image", "method", *METRICS]


class FolderError(UserError):
    """A folder run cannot start as asked; the message says why and what to do."""


@dataclass(frozen=True)
class FolderRun:
    """A folder's images through the picked methods, as PNG files in a folder of their own.

    Attributes:
        folder: holds ``original/<image>.png`` (each original cropped to a multiple of 4) and
            ``outputs/<method>/<image>.png`` (every method's output, the layout ``train.evaluate --save`` writes).
        scores: one row per image × method, images in order and methods as picked, columns :data:`COLUMNS`.
        sizes: image -> (height, width) of its cropped original and of its outputs, in pixels.
    """

    folder: Path
    scores: pd.DataFrame
    sizes: dict[str, tuple[int, int]]

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(self.scores["method"]))

    def file(self, image: str, name: str) -> Path:
        """The PNG of ``image``'s original (``name`` is ``ORIGINAL``) or of a method's output."""
        return self.folder / (ORIGINAL if name == ORIGINAL else f"outputs/{name}") / f"{image}.png"


def list_sets(root: Path | None) -> dict[str, Path]:
    """Set name -> its image folder, for every subfolder of ``root`` that holds images directly or in ``HR/``
    (hidden folders skipped), by name; none when ``root`` is ``None`` or not a folder."""
    if root is None or not root.is_dir():
        return {}
    sets = {}
    for folder in sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")):
        images = folder / "HR" if (folder / "HR").is_dir() else folder
        if list_images(images):
            sets[folder.name] = images
    return sets


def set_images(sets: Mapping[str, Path], name: str) -> list[Path]:
    """The image files of the set called ``name``, one of ``sets``: a name, never a path, picks a folder."""
    if name not in sets:
        raise FolderError(f"There is no set called {name!r}; pick one of: {', '.join(sets) or 'none'}.")
    return list_images(sets[name])


def check_uploads(paths: Sequence[str | Path] | None, max_files: int = MAX_UPLOADS) -> list[Path]:
    """Uploaded files, refused when there are none or more than ``max_files``."""
    if not paths:
        raise FolderError("Upload at least one image, or pick a set.")
    if len(paths) > max_files:
        raise FolderError(f"{len(paths)} files were uploaded; upload at most {max_files} at once.")
    return [Path(path) for path in paths]


def image_names(paths: Sequence[Path]) -> list[str]:
    """A name for each file: its :func:`file_stem`, then '_2', '_3' … where two files would share one."""
    names: list[str] = []
    for path in paths:
        stem = file_stem(path)
        name, count = stem, 1
        while name in names:
            count += 1
            name = f"{stem}_{count}"
        names.append(name)
    return names


def check_work(
    paths: Sequence[Path], names: Sequence[str], methods: int, max_pixels: int | None, max_work: int
) -> None:
    """Refuse, from the files' headers and before any work, an image over ``max_pixels`` or too small to score, and
    a request of more than ``max_work`` pixels × methods."""
    work = 0
    for path, name in zip(paths, names, strict=True):
        try:
            with Image.open(path) as image:
                width, height = image.size
        except Exception as error:  # Pillow raises many exception types on files that are not images
            raise FolderError(f"{name} is not an image this app can read.") from error
        if max_pixels is not None and width * height > max_pixels:
            raise FolderError(f"{name} is {width}×{height} pixels; this app accepts at most {max_pixels:,} pixels.")
        if min(width, height) < MIN_GROUND_TRUTH_SIDE:
            raise FolderError(
                f"{name} is {width}×{height} pixels; scoring needs at least {MIN_GROUND_TRUTH_SIDE}×"
                f"{MIN_GROUND_TRUTH_SIDE}."
            )
        work += width * height * methods
    if work > max_work:
        raise FolderError(
            f"This run is {work:,} pixels × methods; one run may be at most {max_work:,}. Pick fewer methods, or "
            "fewer or smaller images."
        )


def run_folder(
    paths: Sequence[Path],
    methods: Sequence[LoadedMethod],
    folder: Path,
    max_pixels: int | None,
    max_work: int = MAX_WORK,
    report: Report | None = None,
) -> FolderRun:
    """Every image of ``paths`` as a ground truth through every available method of ``methods``, written into
    ``folder`` and scored as ``train.evaluate`` scores (:func:`sr_app.scoring.score_images`); ``report`` hears of each
    image × method as it starts. Images are decoded one at a time (:func:`sr_app.images.decode_image`)."""
    runs = [method for method in methods if method.upscaler is not None]
    if not runs:
        raise FolderError("Pick at least one of the available methods.")
    names = image_names(paths)
    check_work(paths, names, len(runs), max_pixels, max_work)
    (folder / ORIGINAL).mkdir(parents=True, exist_ok=True)
    frames, sizes, total = [], {}, len(paths) * len(runs)
    for i, (path, name) in enumerate(zip(paths, names, strict=True)):
        image = benchmark_image(name, decode_image(path, max_pixels), published_lr(path))
        (folder / ORIGINAL / f"{name}.png").write_bytes(encode_png(image.hr))
        sizes[name] = image.hr.shape[:2]
        for j, method in enumerate(runs):
            step = i * len(runs) + j
            if report is not None:
                report(step / total, f"{name} · {title(method.name)} ({step + 1} of {total})")
            scores = score_images(method.upscaler, [image], folder / "outputs" / method.name)
            frames.append(scores.assign(method=method.name))
    return FolderRun(folder, pd.concat(frames, ignore_index=True)[COLUMNS], sizes)


def with_means(scores: pd.DataFrame) -> pd.DataFrame:
    """``scores`` (columns :data:`COLUMNS`) followed by each method's mean over the images, as rows whose image is
    :data:`MEAN`."""
    means = scores.groupby("method", sort=False)[list(METRICS)].mean().reset_index().assign(image=MEAN)
    return pd.concat([scores, means[COLUMNS]], ignore_index=True)


def display_table(scores: pd.DataFrame) -> pd.DataFrame:
    """The table the tab shows: :func:`with_means` of ``scores``, methods by their titles, PSNR (dB) to 2 decimals
    and SSIM to 4."""
    table = with_means(scores)
    return pd.DataFrame(
        {
            "Image": table["image"],
            "Method": table["method"].map(title),
            "PSNR (dB)": table["psnr"].round(2),
            "SSIM": table["ssim"].round(4),
        }
    )


def write_csv(scores: pd.DataFrame, path: Path) -> Path:
    """Write :func:`with_means` of ``scores`` to ``path`` as CSV (:func:`sr_app.csv_files.write_csv`: a name that a
    spreadsheet would run as a formula is made text), scores to 4 decimals as ``train.evaluate --csv`` writes them."""
    return csv_files.write_csv(with_means(scores), path, float_format="%.4f")
