"""Super-resolution network architectures (EDSR, Lim et al. 2017).

Networks take and return float tensors in [0, 1], NCHW RGB. Internally EDSR works on mean-subtracted
values in [0, 255] as the original implementation does, so its weights keep the published scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
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

    scale: int = 4
    n_blocks: int = 16
    n_feats: int = 64
    res_scale: float = 1.0

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


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


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
