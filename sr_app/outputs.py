"""Bring your own outputs: folders of precomputed ×4 results, in the layout ``python -m train.evaluate --save ROOT``
writes, ``ROOT/<dataset>/<method>/<image>.png``.

A dataset folder holds one folder per method, named by the method (see :data:`sr_app.methods.LABEL_PATTERN`). A
method folder holds one output per ground-truth image, named by the image's stem with any image suffix
(:data:`sr_app.images.IMAGE_SUFFIXES`), of exactly the size of the ground truth as it is scored: cropped to 4 × its
LR size (:func:`sr_app.scoring.load_benchmark`), which for LR made by the lab is a multiple of 4
(``sr_app.resize.make_lr``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from sr_app.images import ImageError, list_images, load_rgb
from sr_app.methods import LABEL_PATTERN

LAYOUT = "expected <dataset>/<method>/<image>.png, as python -m train.evaluate --save writes them"


class OutputsError(ImageError):
    """A folder of outputs cannot be used as it is; the message names the file or folder and says why."""


def read_outputs(
    folder: str | Path, sizes: Mapping[str, tuple[int, int]], reserved: Collection[str] = ()
) -> dict[str, dict[str, Path]]:
    """The method folders of a dataset folder, checked: ``{method: {image stem: output file}}``, methods by name.

    Args:
        folder: ``ROOT/<dataset>``; hidden folders (``.name``) and files directly inside it are ignored.
        sizes: the cropped ground truth's (height, width) in pixels, by image stem.
        reserved: names the same run already uses (computed methods, built-in conditions); no folder may take one.

    Every output is decoded once to check it, so nothing needs scoring or storing before all are known good.

    Raises:
        OutputsError: the folder is missing or holds no method folders; a method folder has an invalid or reserved
            name or holds no images; an output has no ground truth, two outputs share one, a ground-truth image has
            no output, or an output's size differs from its cropped ground truth.
        ImageError: an output file cannot be decoded (the message names it).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputsError(f"Outputs folder not found: {folder} ({LAYOUT})")
    method_dirs = sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))
    if not method_dirs:
        raise OutputsError(f"{folder} holds no method folders ({LAYOUT})")
    outputs = {}
    for method_dir in method_dirs:
        _check_name(method_dir, reserved)
        outputs[method_dir.name] = _method_files(method_dir, sizes)
    for files in outputs.values():
        for stem, path in files.items():
            _check_size(path, sizes[stem])
    return outputs


def _check_name(method_dir: Path, reserved: Collection[str]) -> None:
    """A method folder's name must be a valid label and not one the run already uses."""
    name = method_dir.name
    if not LABEL_PATTERN.fullmatch(name):
        raise OutputsError(
            f"The method folder {method_dir} has an invalid name: it names the method, so use only letters, digits, "
            "'_', '-' and '.'"
        )
    if name in reserved:
        raise OutputsError(
            f"The method folder {method_dir} is named {name!r}, which this run already uses for a computed method or "
            f"a built-in condition ({', '.join(sorted(reserved))}); rename the folder or leave {name!r} out of the "
            "computed methods"
        )


def _method_files(method_dir: Path, sizes: Mapping[str, tuple[int, int]]) -> dict[str, Path]:
    """``{image stem: output file}`` of one method folder: exactly one output per ground-truth image."""
    paths = list_images(method_dir)
    if not paths:
        raise OutputsError(f"The method folder {method_dir} holds no images ({LAYOUT})")
    files: dict[str, Path] = {}
    for path in paths:
        if path.stem not in sizes:
            raise OutputsError(
                f"{path} has no ground truth: none of the {len(sizes)} ground-truth images is named {path.stem!r}"
            )
        if path.stem in files:
            raise OutputsError(f"{files[path.stem]} and {path} are both outputs for the image {path.stem!r}; keep one")
        files[path.stem] = path
    missing = [stem for stem in sizes if stem not in files]
    if missing:
        more = f" (and {len(missing) - 1} more ground-truth images have none)" if len(missing) > 1 else ""
        raise OutputsError(
            f"Missing output {method_dir / missing[0]}.png for the ground-truth image {missing[0]!r}{more}"
        )
    return files


def _check_size(path: Path, size: tuple[int, int]) -> None:
    """An output must decode and have exactly its cropped ground truth's (height, width)."""
    height, width = load_rgb(path).shape[:2]
    if (height, width) != tuple(size):
        raise OutputsError(
            f"{path} is {width}×{height} pixels, but its cropped ground truth is {size[1]}×{size[0]}: a ×4 output must "
            "have exactly that size"
        )
