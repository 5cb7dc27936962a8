"""`python -m train.evaluate`: PSNR/SSIM (Y channel, shave 4) of upscaling methods on benchmark sets.

    python -m train.evaluate --data ../shared/data/eval/Set5 --data ../shared/data/eval/Set14 \\
        --methods bicubic,edsr --csv scores.csv --save outputs/

Each ``--data`` folder holds ``HR/`` and optionally ``LR_x4/``. The table printed is the mean per dataset
and method; ``--csv`` writes one row per image (``dataset,image,method,psnr,ssim``); ``--save`` writes the
SR outputs as ``DIR/<dataset>/<method>/<image>.png``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from sr_app.images import ImageError
from sr_app.metrics import psnr_y, ssim_y
from sr_app.upscalers import METHODS, SCALE, load_upscaler
from sr_app.weights import WEIGHTS_DIR, WeightsError
from train.data import BenchmarkImage, load_benchmark

CSV_COLUMNS = ["dataset", "image", "method", "psnr", "ssim"]


def score_images(
    upscale: Callable[[np.ndarray], np.ndarray],
    images: Sequence[BenchmarkImage],
    save_dir: Path | None = None,
) -> pd.DataFrame:
    """PSNR/SSIM of ``upscale`` on each image: a frame with columns ``image, psnr, ssim``."""
    rows = []
    for image in images:
        sr = upscale(image.lr)
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(sr).save(save_dir / f"{image.name}.png")
        rows.append({"image": image.name, "psnr": psnr_y(sr, image.hr, SCALE), "ssim": ssim_y(sr, image.hr, SCALE)})
    return pd.DataFrame(rows, columns=["image", "psnr", "ssim"])


def evaluate(
    data_dirs: Sequence[Path],
    methods: Sequence[str],
    save_dir: Path | None = None,
    bf16: bool = False,
    weights_dir: Path = WEIGHTS_DIR,
) -> pd.DataFrame:
    """Per-image scores of every method on every dataset, with columns :data:`CSV_COLUMNS`."""
    datasets = {Path(d).name: load_benchmark(d, SCALE) for d in data_dirs}
    frames = []
    for method in methods:
        upscaler = load_upscaler(method, bf16=bf16, weights_dir=weights_dir)
        for dataset, images in datasets.items():
            out = save_dir / dataset / method if save_dir is not None else None
            scores = score_images(upscaler, images, out)
            frames.append(scores.assign(dataset=dataset, method=method))
    return pd.concat(frames, ignore_index=True)[CSV_COLUMNS]


def summary_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean PSNR/SSIM per dataset × method, methods in the order given."""
    table = scores.groupby(["dataset", "method"], sort=False)[["psnr", "ssim"]].mean()
    return table.round({"psnr": 2, "ssim": 4})


def parse_methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    return methods


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, action="append", required=True, help="folder with HR/ [LR_x4/]")
    parser.add_argument("--methods", type=parse_methods, default=["bicubic", "edsr"], help="comma-separated")
    parser.add_argument("--csv", type=Path, help="write per-image scores here")
    parser.add_argument("--save", type=Path, help="write SR outputs under this folder")
    parser.add_argument("--bf16", action="store_true", help="run networks under bfloat16 autocast")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR, help="folder of the networks' weights files")
    args = parser.parse_args(argv)
    try:
        scores = evaluate(args.data, args.methods, args.save, args.bf16, args.weights_dir)
    except (WeightsError, ImageError, OSError, ValueError) as error:
        raise SystemExit(f"error: {error}") from error
    print(summary_table(scores).to_string())
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        scores.to_csv(args.csv, index=False, float_format="%.4f")


if __name__ == "__main__":
    main()
