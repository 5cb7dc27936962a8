"""The SRGAN discriminator (Ledig et al. 2017, Fig. 4)."""

from __future__ import annotations

import torch
from torch import nn

#: (output channels, stride) of the conv-BN-LeakyReLU blocks after the first conv.
BLOCKS = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2))
#: Spatial size of the last feature map for the paper's 96×96 input; other sizes are pooled to it.
FEATURE_SIZE = 6


class Discriminator(nn.Module):
    """Conv blocks 64→512 channels with stride-2 steps, batch norm, LeakyReLU 0.2, dense 1024, one logit.

    Takes float [0, 1] NCHW RGB of any size ≥ 16 px (96×96 in the paper) and returns N raw logits
    (real > 0). Feature maps are average-pooled to 6×6, which is the identity at 96×96.
    """

    def __init__(self, n_feats: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, n_feats, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        in_channels = n_feats
        for channels, stride in BLOCKS:
            channels = channels * n_feats // 64
            layers += [
                nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            in_channels = channels
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(FEATURE_SIZE))
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * FEATURE_SIZE**2, 1024),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(1024, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x)).squeeze(1)
