"""`python -m train.sr`: pixel-loss pretraining of any registered architecture (the EDSR recipe by default).

    python -m train.sr --arch edsr --data ../shared/data/train/T91 --data ../shared/data/train/BSD200 \\
        --val-data ../shared/data/eval/Set5 --out runs/edsr --bf16
    python -m train.sr --arch srresnet --loss mse --lr-patch 24 ...       # SRResNet as in the SRGAN paper

The weights are exported as the registry's file of the method named like the architecture
(``edsr_x4.safetensors``, ``srresnet_x4.safetensors``, ``swift_srgan_x4.safetensors``). Resume with ``--resume``
(same ``--out``); run on several processes with ``torchrun --nproc-per-node N -m train.sr ...``.
``python -m train.edsr`` is this command with ``--arch edsr``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from sr_app.cli import run_command
from sr_app.models import CONFIGS, EDSRConfig, NetworkConfig
from train.config import TrainConfig, add_arguments
from train.loop import Trainer, run


def build_parser(prog: str = TrainConfig.command) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    add_arguments(parser, recipe=TrainConfig)
    parser.add_argument("--arch", choices=list(CONFIGS), default="edsr", help="network architecture")
    parser.add_argument("--blocks", type=int, default=16, help="residual blocks (full EDSR: 32)")
    parser.add_argument("--feats", type=int, default=64, help="channels (full EDSR: 256)")
    parser.add_argument("--res-scale", type=float, default=1.0, help="EDSR's residual scaling (full EDSR: 0.1)")
    return parser


def network_config(args: argparse.Namespace) -> NetworkConfig:
    """The ×4 network the command line asks for."""
    if args.arch == "edsr":
        return EDSRConfig(scale=4, n_blocks=args.blocks, n_feats=args.feats, res_scale=args.res_scale)
    return CONFIGS[args.arch](scale=4, n_blocks=args.blocks, n_feats=args.feats)


def main(argv: Sequence[str] | None = None, prog: str = TrainConfig.command) -> None:
    args = build_parser(prog).parse_args(argv)
    config = TrainConfig.from_args(args, network=network_config(args), command=prog)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    run(Trainer, config)


if __name__ == "__main__":
    run_command(main)
