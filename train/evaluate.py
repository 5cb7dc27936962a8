"""`python -m train.evaluate`: PSNR/SSIM (Y channel, shave 4) of upscaling methods on benchmark sets.

    python -m train.evaluate --data ../shared/data/eval/Set5 --data ../shared/data/eval/Set14 \\
        --methods bicubic,edsr --csv scores.csv --save outputs/ [--vgg54]

``--methods`` takes registry names and ``label=path`` entries for your own model files (through spandrel).
Each ``--data`` folder holds ``HR/`` and optionally ``LR_x4/``. The table printed is the mean per dataset
and method; ``--csv`` writes one row per image (``dataset,image,method,psnr,ssim``); ``--save`` writes the
SR outputs as ``DIR/<dataset>/<method>/<image>.png``. ``--vgg54`` adds a ``vgg54`` column: SRGAN's VGG54
content loss between SR and HR (borders shaved as for PSNR), the perceptual distance a GAN fine-tuning lowers.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from sr_app.images import ImageError, rgb_to_tensor
from sr_app.methods import Method, MethodError, Settings, parse_methods, resolve
from sr_app.metrics import psnr_y, shave_border, ssim_y
from sr_app.upscalers import SCALE
from sr_app.weights import WEIGHTS_DIR, WeightsError
from train.data import BenchmarkImage, load_benchmark
from train.losses import VGG54, VGGWeightsError, content_loss


def metric_names(vgg54: bool = False) -> list[str]:
    """The score columns: PSNR and SSIM, and the VGG54 distance when asked for."""
    return ["psnr", "ssim", *(["vgg54"] if vgg54 else [])]


CSV_COLUMNS = ["dataset", "image", "method", *metric_names()]


@torch.no_grad()
def vgg54_distance(vgg: VGG54, sr: np.ndarray, hr: np.ndarray, shave: int = SCALE) -> float:
    """SRGAN's VGG54 content loss between two uint8 HWC RGB images, ``shave`` pixels cut from every border."""
    sr_tensor, hr_tensor = (rgb_to_tensor(shave_border(image, shave))[None] for image in (sr, hr))
    return content_loss(vgg, sr_tensor, hr_tensor).item()


def score_images(
    upscale: Callable[[np.ndarray], np.ndarray],
    images: Sequence[BenchmarkImage],
    save_dir: Path | None = None,
    vgg: VGG54 | None = None,
) -> pd.DataFrame:
    """PSNR/SSIM of ``upscale`` on each image: a frame with columns ``image, psnr, ssim`` (and ``vgg54`` when
    ``vgg`` is given)."""
    rows = []
    for image in images:
        sr = upscale(image.lr)
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(sr).save(save_dir / f"{image.name}.png")
        row = {"image": image.name, "psnr": psnr_y(sr, image.hr, SCALE), "ssim": ssim_y(sr, image.hr, SCALE)}
        if vgg is not None:
            row["vgg54"] = vgg54_distance(vgg, sr, image.hr)
        rows.append(row)
    return pd.DataFrame(rows, columns=["image", *metric_names(vgg is not None)])


def evaluate(
    data_dirs: Sequence[Path],
    methods: Sequence[str | Method],
    save_dir: Path | None = None,
    bf16: bool = False,
    weights_dir: Path = WEIGHTS_DIR,
    vgg54: bool = False,
) -> pd.DataFrame:
    """Per-image scores of every method (a :class:`Method`, a registry name or ``label=path``) on every dataset,
    with columns :data:`CSV_COLUMNS` (and ``vgg54``). Every method is loaded before any is run."""
    datasets = {Path(d).name: load_benchmark(d, SCALE) for d in data_dirs}
    settings = Settings(bf16=bf16, weights_dir=weights_dir)
    upscalers = {method.name: method.load(settings) for method in map(as_method, methods)}
    vgg = VGG54() if vgg54 else None
    frames = []
    for name, upscaler in upscalers.items():
        for dataset, images in datasets.items():
            out = save_dir / dataset / name if save_dir is not None else None
            scores = score_images(upscaler, images, out, vgg)
            frames.append(scores.assign(dataset=dataset, method=name))
    return pd.concat(frames, ignore_index=True)[["dataset", "image", "method", *metric_names(vgg54)]]


def summary_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean of every metric per dataset × method, methods in the order given."""
    table = scores.groupby(["dataset", "method"], sort=False)[metric_names("vgg54" in scores)].mean()
    return table.round({"psnr": 2, "ssim": 4, "vgg54": 4})


def as_method(method: str | Method) -> Method:
    return resolve(method) if isinstance(method, str) else method


def method_list(text: str) -> list[Method]:
    """``--methods``: registry names and ``label=path`` user models, comma-separated."""
    try:
        return parse_methods(text)
    except MethodError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, action="append", required=True, help="folder with HR/ [LR_x4/]")
    parser.add_argument(
        "--methods", type=method_list, default="bicubic,edsr", help="comma-separated names or label=path/to/model.pth"
    )
    parser.add_argument("--csv", type=Path, help="write per-image scores here")
    parser.add_argument("--save", type=Path, help="write SR outputs under this folder")
    parser.add_argument("--bf16", action="store_true", help="run networks under bfloat16 autocast")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR, help="folder of the networks' weights files")
    parser.add_argument("--vgg54", action="store_true", help="also score the VGG54 distance to HR (lower is closer)")
    args = parser.parse_args(argv)
    try:
        scores = evaluate(args.data, args.methods, args.save, args.bf16, args.weights_dir, args.vgg54)
    except (WeightsError, VGGWeightsError, ImageError, OSError, ValueError) as error:
        raise SystemExit(f"error: {error}") from error
    print(summary_table(scores).to_string())
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        scores.to_csv(args.csv, index=False, float_format="%.4f")


if __name__ == "__main__":
    main()
