"""`python -m train.edsr`: L1 pretraining of EDSR ×4 (the EDSR recipe by default).

    python -m train.edsr --data ../shared/data/train/T91 --data ../shared/data/train/BSD200 \\
        --val-data ../shared/data/eval/Set5 --out runs/edsr --bf16

Resume with ``--resume`` (same ``--out``); run on several processes with
``torchrun --nproc-per-node N -m train.edsr ...``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from sr_app.models import EDSRConfig
from sr_app.upscalers import MODEL_WEIGHTS
from train.loop import Trainer, add_loop_arguments, run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.edsr", description=__doc__.split("\n")[0])
    add_loop_arguments(
        parser, lr_patch=48, iterations=300_000, lr_step=200_000, lr_gamma=0.5, export=MODEL_WEIGHTS["edsr"]
    )
    parser.add_argument("--blocks", type=int, default=16, help="residual blocks (EDSR: 32)")
    parser.add_argument("--feats", type=int, default=64, help="channels (EDSR: 256)")
    parser.add_argument("--res-scale", type=float, default=1.0, help="residual scaling (EDSR: 0.1)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config = EDSRConfig(scale=4, n_blocks=args.blocks, n_feats=args.feats, res_scale=args.res_scale)
    try:
        run(Trainer, args, config)
    except (OSError, ValueError, RuntimeError) as error:
        raise SystemExit(f"error: {error}") from error


if __name__ == "__main__":
    main()
