"""`python -m train.evaluate`: PSNR/SSIM (Y channel, shave 4) of upscaling methods on benchmark sets.

    python -m train.evaluate --data ../shared/data/eval/Set5 --data ../shared/data/eval/Set14 \\
        --methods bicubic,edsr --csv scores.csv --save outputs/ [--vgg54] [--engine openvino]
    python -m train.evaluate --data ../shared/data/eval/Set14 --outputs theirs/ [--methods bicubic,edsr]

``--methods`` takes registry names and ``label=path`` entries for your own model files (through spandrel).
Each ``--data`` folder holds ``HR/`` and optionally ``LR_x4/``. The table printed is the mean per dataset
and method; ``--csv`` writes one row per image (``dataset,image,method,psnr,ssim``); ``--save`` writes the
computed methods' SR outputs as ``DIR/<dataset>/<method>/<image>.png``. ``--outputs ROOT`` scores precomputed
outputs in that same layout: every method folder under ``ROOT/<name of each --data folder>/`` is scored as the
method named by the folder (see :mod:`sr_app.outputs`); ``--methods`` then defaults to none. ``--vgg54`` adds
a ``vgg54`` column: SRGAN's VGG54 content loss between SR and HR (borders shaved as for PSNR), the perceptual
distance a GAN fine-tuning lowers. Networks run in float32 through torch unless ``--precision`` and ``--engine`` say
otherwise (:mod:`sr_app.engines`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sr_app.cli import run_command
from sr_app.engines import ENGINES
from sr_app.images import load_rgb, rgb_to_tensor
from sr_app.methods import Method, MethodError, Settings, as_method, parse_methods
from sr_app.metrics import shave_border
from sr_app.outputs import read_outputs
from sr_app.scoring import METRICS, BenchmarkImage, load_benchmark, score_images, score_outputs
from sr_app.upscalers import PRECISIONS, SCALE
from sr_app.weights import WEIGHTS_DIR
from train.losses import VGG54, content_loss


def metric_names(vgg54: bool = False) -> list[str]:
    """The score columns: PSNR and SSIM, and the VGG54 distance when asked for."""
    return [*METRICS, *(["vgg54"] if vgg54 else [])]


#: How networks run when scored: float32, so that the figures do not depend on the hardware.
EVALUATION = Settings(precision="fp32")
CSV_COLUMNS = ["dataset", "image", "method", *metric_names()]
#: ``--methods`` when neither it nor ``--outputs`` is given.
DEFAULT_METHODS = "bicubic,edsr"


@torch.no_grad()
def vgg54_distance(vgg: VGG54, sr: np.ndarray, hr: np.ndarray, shave: int = SCALE) -> float:
    """SRGAN's VGG54 content loss between two uint8 HWC RGB images, ``shave`` pixels cut from every border."""
    sr_tensor, hr_tensor = (rgb_to_tensor(shave_border(image, shave))[None] for image in (sr, hr))
    return content_loss(vgg, sr_tensor, hr_tensor).item()


def evaluate(
    data_dirs: Sequence[Path],
    methods: Sequence[str | Method],
    save_dir: Path | None = None,
    settings: Settings = EVALUATION,
    vgg54: bool = False,
    outputs_dir: Path | None = None,
) -> pd.DataFrame:
    """Per-image scores of every method (a :class:`Method`, a registry name or ``label=path``), run with
    ``settings``, on every dataset, then of every method folder of precomputed outputs under
    ``outputs_dir/<dataset>/`` (methods by folder name), with columns :data:`CSV_COLUMNS` (and ``vgg54``). Every
    output folder is checked and every method loaded before anything is scored."""
    datasets = {Path(d).name: load_benchmark(d, SCALE) for d in data_dirs}
    methods = [as_method(method) for method in methods]
    precomputed = (
        read_datasets_outputs(outputs_dir, datasets, [m.name for m in methods]) if outputs_dir is not None else {}
    )
    upscalers = {method.name: method.load(settings) for method in methods}
    metrics = METRICS | ({"vgg54": partial(vgg54_distance, VGG54())} if vgg54 else {})
    frames = []
    for name, upscaler in upscalers.items():
        for dataset, images in datasets.items():
            out = save_dir / dataset / name if save_dir is not None else None
            scores = score_images(upscaler, images, out, metrics)
            frames.append(scores.assign(dataset=dataset, method=name))
    for name, files_by_dataset in precomputed.items():
        for dataset, files in files_by_dataset.items():
            outputs = ((image, load_rgb(files[image.name])) for image in datasets[dataset])
            frames.append(score_outputs(outputs, metrics).assign(dataset=dataset, method=name))
    return pd.concat(frames, ignore_index=True)[["dataset", "image", "method", *metric_names(vgg54)]]


def read_datasets_outputs(
    root: Path, datasets: dict[str, list[BenchmarkImage]], computed: Sequence[str]
) -> dict[str, dict[str, dict[str, Path]]]:
    """``{method: {dataset: {image: output file}}}`` of the method folders under ``root/<dataset>/``, methods by
    name, all checked (:func:`sr_app.outputs.read_outputs`); no folder may share a name with a computed method."""
    precomputed: dict[str, dict[str, dict[str, Path]]] = {}
    for dataset, images in datasets.items():
        sizes = {image.name: image.hr.shape[:2] for image in images}
        for name, files in read_outputs(root / dataset, sizes, reserved=computed).items():
            precomputed.setdefault(name, {})[dataset] = files
    return dict(sorted(precomputed.items()))


def summary_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean of every metric per dataset × method, methods in the order given."""
    table = scores.groupby(["dataset", "method"], sort=False)[metric_names("vgg54" in scores)].mean()
    return table.round({"psnr": 2, "ssim": 4, "vgg54": 4})


def method_list(text: str) -> list[Method]:
    """``--methods``: registry names and ``label=path`` user models, comma-separated; blank for none."""
    if not text.strip():
        return []
    try:
        return parse_methods(text)
    except MethodError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, action="append", required=True, help="folder with HR/ [LR_x4/]")
    parser.add_argument(
        "--methods",
        type=method_list,
        help=f"comma-separated names or label=path/to/model.pth (default {DEFAULT_METHODS}, none with --outputs)",
    )
    parser.add_argument("--outputs", type=Path, help="also score the method folders under OUTPUTS/<dataset>/")
    parser.add_argument("--csv", type=Path, help="write per-image scores here")
    parser.add_argument("--save", type=Path, help="write the computed SR outputs under this folder")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=EVALUATION.precision,
        help="fp32 (default), bf16, or auto: bf16 where the hardware is fast at it and the network allows it",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default=EVALUATION.engine,
        help="how networks run on the CPU: torch (default), openvino, onnxruntime, or auto: the fastest measured here",
    )
    parser.add_argument("--self-ensemble", action="store_true", help="average every network over 8 flips/rotations")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR, help="folder of the networks' weights files")
    parser.add_argument("--vgg54", action="store_true", help="also score the VGG54 distance to HR (lower is closer)")
    args = parser.parse_args(argv)
    methods = args.methods
    if methods is None:
        methods = [] if args.outputs else method_list(DEFAULT_METHODS)
    if not methods and not args.outputs:
        parser.error("--methods names no method; name at least one, or score precomputed ones with --outputs")
    settings = Settings(
        precision=args.precision, self_ensemble=args.self_ensemble, weights_dir=args.weights_dir, engine=args.engine
    )
    scores = evaluate(args.data, methods, args.save, settings, args.vgg54, args.outputs)
    print(summary_table(scores).to_string())
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        scores.to_csv(args.csv, index=False, float_format="%.4f")


if __name__ == "__main__":
    run_command(main)
