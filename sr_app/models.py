"""Super-resolution network architectures and their configs.

* EDSR (Lim et al. 2017): residual blocks without batch norm; internally on mean-subtracted [0, 255] values as
  the original implementation, so its weights keep the published scale.
* SRResNet (Ledig et al. 2017, the SRGAN generator): residual blocks with batch norm and PReLU, 9×9 head and tail.
* Swift-SRGAN (Krishnan & Lee 2021): spandrel's class, so our files also load in spandrel-based tools.

Every network takes and returns float tensors in [0, 1] (outputs are not clamped), NCHW RGB, is built from one
frozen config dataclass and keeps it as ``.config``. :data:`ARCHITECTURES` maps each config's ``arch`` name to its
network class; weights files record that name (see :mod:`sr_app.weights`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from spandrel.architectures.SwiftSRGAN import SwiftSRGAN as SpandrelSwiftSRGAN
from torch import nn

#: Mean RGB of DIV2K in [0, 1] (EDSR's MeanShift constants).
DIV2K_MEAN_RGB = (0.4488, 0.4371, 0.4040)
#: EDSR works on [0, 255] values internally.
PIXEL_RANGE = 255.0


@dataclass(frozen=True)
class EDSRConfig:
    """Architecture of one EDSR network.

    The defaults are EDSR-baseline ×4 (16 blocks, 64 channels, 1.52 M parameters); the full EDSR is
    ``EDSRConfig(n_blocks=32, n_feats=256, res_scale=0.1)``.
    """

    arch: ClassVar[str] = "edsr"
    scale: int = 4
    n_blocks: int = 16
    n_feats: int = 64
    res_scale: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SRResNetConfig:
    """Architecture of one SRResNet; the defaults are the SRGAN paper's ×4 generator (1.55 M parameters)."""

    arch: ClassVar[str] = "srresnet"
    scale: int = 4
    n_blocks: int = 16
    n_feats: int = 64

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SwiftSRGANConfig:
    """Architecture of one Swift-SRGAN generator; the defaults are the paper's ×4 network (0.20 M parameters)."""

    arch: ClassVar[str] = "swift_srgan"
    scale: int = 4
    n_blocks: int = 16
    n_feats: int = 64

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


NetworkConfig = EDSRConfig | SRResNetConfig | SwiftSRGANConfig


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


class ResBlock(nn.Module):
    """conv-ReLU-conv with an identity skip, no batch norm; the residual is scaled by ``res_scale``."""

    def __init__(self, n_feats: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(n_feats, n_feats), nn.ReLU(inplace=True), conv3x3(n_feats, n_feats))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


class Upsampler(nn.Sequential):
    """Sub-pixel convolution upsampling for scale 2, 3 or 4 (4 is two ×2 steps)."""

    def __init__(self, scale: int, n_feats: int) -> None:
        if scale in (2, 4):
            steps = [(2, n_feats * 4)] * (scale // 2)
        elif scale == 3:
            steps = [(3, n_feats * 9)]
        else:
            raise ValueError(f"EDSR supports scale 2, 3 or 4, not {scale}")
        layers: list[nn.Module] = []
        for factor, channels in steps:
            layers += [conv3x3(n_feats, channels), nn.PixelShuffle(factor)]
        super().__init__(*layers)


class EDSR(nn.Module):
    """Enhanced Deep Super-Resolution network: head, residual body with a global skip, upsampling tail."""

    def __init__(self, config: EDSRConfig = EDSRConfig()) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.tensor(DIV2K_MEAN_RGB).view(1, 3, 1, 1), persistent=False)
        n = config.n_feats
        self.head = conv3x3(3, n)
        self.body = nn.Sequential(*[ResBlock(n, config.res_scale) for _ in range(config.n_blocks)], conv3x3(n, n))
        self.tail = nn.Sequential(Upsampler(config.scale, n), conv3x3(n, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a float [0, 1] NCHW RGB batch to its ×scale float NCHW RGB batch (not clamped)."""
        x = self.head((x - self.mean) * PIXEL_RANGE)
        x = x + self.body(x)
        return self.tail(x) / PIXEL_RANGE + self.mean


class SRResNetBlock(nn.Module):
    """conv-BN-PReLU-conv-BN with an identity skip."""

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(n_feats, n_feats),
            nn.BatchNorm2d(n_feats),
            nn.PReLU(),
            conv3x3(n_feats, n_feats),
            nn.BatchNorm2d(n_feats),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """The SRGAN paper's generator: 9×9 head, residual body with a global skip, two ×2 sub-pixel stages, 9×9 tail.

    The paper's tanh output in [-1, 1] is replaced by a linear output in [0, 1], as in our other networks.
    """

    def __init__(self, config: SRResNetConfig = SRResNetConfig()) -> None:
        super().__init__()
        if config.scale not in (2, 4):
            raise ValueError(f"SRResNet supports scale 2 or 4, not {config.scale}")
        self.config = config
        n = config.n_feats
        self.head = nn.Sequential(nn.Conv2d(3, n, kernel_size=9, padding=4), nn.PReLU())
        self.body = nn.Sequential(*[SRResNetBlock(n) for _ in range(config.n_blocks)], conv3x3(n, n), nn.BatchNorm2d(n))
        upsampling: list[nn.Module] = []
        for _ in range(config.scale // 2):
            upsampling += [conv3x3(n, n * 4), nn.PixelShuffle(2), nn.PReLU()]
        self.tail = nn.Sequential(*upsampling, nn.Conv2d(n, 3, kernel_size=9, padding=4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a float [0, 1] NCHW RGB batch to its ×scale float NCHW RGB batch (not clamped)."""
        x = self.head(x)
        x = x + self.body(x)
        return self.tail(x)


class SwiftSRGAN(SpandrelSwiftSRGAN):
    """spandrel's Swift-SRGAN generator (depthwise-separable convolutions; output through tanh into [0, 1]), built
    from a config. Its state dict is spandrel's, so spandrel recognises our weights files."""

    def __init__(self, config: SwiftSRGANConfig = SwiftSRGANConfig()) -> None:
        super().__init__(num_channels=config.n_feats, num_blocks=config.n_blocks, upscale_factor=config.scale)
        self.config = config


#: Every architecture a weights file can name, by its config's ``arch``.
ARCHITECTURES: dict[str, type[nn.Module]] = {"edsr": EDSR, "srresnet": SRResNet, "swift_srgan": SwiftSRGAN}
CONFIGS: dict[str, type[NetworkConfig]] = {c.arch: c for c in (EDSRConfig, SRResNetConfig, SwiftSRGANConfig)}


def build_network(config: NetworkConfig) -> nn.Module:
    """A freshly initialised network of the architecture and shape ``config`` describes."""
    return ARCHITECTURES[config.arch](config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
