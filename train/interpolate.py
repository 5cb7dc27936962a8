"""`python -m train.interpolate`: blend a GAN-trained network with its PSNR-trained start (network interpolation).

    python -m train.interpolate runs/gan/edsr_srgan_x4.safetensors --alpha 0.8 \
        --out sr_app/weights/edsr_srgan_x4.safetensors

Every weight becomes ``(1 - alpha) * psnr + alpha * gan`` (ESRGAN, Wang et al. 2018, section 3.4): alpha 1 is the
GAN network, 0 the PSNR one, values between trade the GAN's texture for fewer of its artefacts and a higher
PSNR. The result keeps the GAN file's provenance metadata (its scores are dropped: they no longer hold) and
records alpha and the PSNR file.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from sr_app.cli import run_command
from sr_app.methods import REGISTRY
from sr_app.models import build_network
from sr_app.weights import WEIGHTS_DIR, WeightsError, load_weights, save_weights
from train.loop import shown_path

log = logging.getLogger(__name__)
#: Metadata keys holding validation scores, which a blended network does not inherit.
SCORE_SUFFIXES = ("_psnr", "_ssim", "_psnr_raw")


def interpolate_networks(psnr: nn.Module, gan: nn.Module, alpha: float) -> nn.Module:
    """A copy of ``psnr`` whose every parameter and buffer is ``(1 - alpha) * psnr + alpha * gan``; raises
    :class:`WeightsError` when the two networks differ in shape."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if psnr.config != gan.config:
        raise WeightsError(f"cannot blend networks of different shapes: {psnr.config} and {gan.config}")
    gan_state = gan.state_dict()
    blended = {  # integer buffers (batch norm's update counts) are kept from the PSNR network
        name: torch.lerp(value, gan_state[name], alpha) if value.is_floating_point() else value
        for name, value in psnr.state_dict().items()
    }
    result = build_network(psnr.config)
    result.load_state_dict(blended)
    return result.eval()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.interpolate", description=__doc__.split("\n")[0])
    parser.add_argument("gan", type=Path, help="GAN-trained weights file (e.g. runs/gan/edsr_srgan_x4.safetensors)")
    parser.add_argument(
        "--psnr", type=Path, default=WEIGHTS_DIR / REGISTRY["edsr"].weights, help="PSNR-trained weights it started from"
    )
    parser.add_argument("--alpha", type=float, default=0.8, help="weight of the GAN network, 0 to 1 (default 0.8)")
    parser.add_argument("--out", type=Path, required=True, help="weights file to write")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f"--alpha must be between 0 and 1, got {args.alpha:g}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    psnr, _ = load_weights(args.psnr)
    gan, metadata = load_weights(args.gan, expected=psnr.config)
    blended = interpolate_networks(psnr, gan, args.alpha)
    kept = {key: value for key, value in metadata.items() if key != "config" and not key.endswith(SCORE_SUFFIXES)}
    psnr_shown = shown_path(args.psnr)
    save_weights(blended, args.out, **kept, interpolation_alpha=args.alpha, interpolated_with=psnr_shown)
    log.info("Wrote %s: %.2f × %s + %.2f × %s", args.out, args.alpha, args.gan, 1 - args.alpha, psnr_shown)


if __name__ == "__main__":
    run_command(main)
