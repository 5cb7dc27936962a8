"""Training patches: folders of HR images -> random aligned (LR, HR) patch pairs, LR made with the MATLAB bicubic.
Each image is decoded and downscaled once and cached in RAM; patches are random crops of the cached
pairs with random flips and 90° rotations. :func:`make_loader` batches them, the global batch split across the
processes of a distributed run, and :func:`endless` draws batches epoch after epoch.
Benchmark sets are read by :func:`sr_app.scoring.load_benchmark`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from sr_app.images import ImageError, list_images, load_rgb, rgb_to_tensor
from sr_app.resize import make_lr

log = logging.getLogger(__name__)
#: A training batch: LR and HR patches, float [0, 1] NCHW.
Batch = tuple[torch.Tensor, torch.Tensor]


class PatchDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Random (LR, HR) patch pairs from folders of HR images.

    Items are float [0, 1] CHW tensors: LR ``lr_patch`` square, HR ``lr_patch * scale`` square. One pass
    over the dataset visits every image ``repeat`` times, each time at a random position.
    """

    def __init__(
        self,
        folders: list[str | Path],
        scale: int = 4,
        lr_patch: int = 48,
        repeat: int = 20,
        augment: bool = True,
    ) -> None:
        self.scale, self.lr_patch, self.repeat, self.augment = scale, lr_patch, repeat, augment
        paths = [path for folder in folders for path in list_images(folder)]
        if not paths:
            raise FileNotFoundError(f"No images (png, jpg, bmp, tif, webp) found in {', '.join(map(str, folders))}")
        self.pairs = [make_lr(load_rgb(path), scale) for path in paths]
        small = [p for p, (lr, _) in zip(paths, self.pairs, strict=True) if min(lr.shape[:2]) < lr_patch]
        self.pairs = [(lr, hr) for lr, hr in self.pairs if min(lr.shape[:2]) >= lr_patch]
        p_hr = lr_patch * scale
        if small:
            log.warning("Skipping %d of %d images smaller than a %d px HR patch", len(small), len(paths), p_hr)
        if not self.pairs:
            raise ImageError(f"All {len(paths)} images are smaller than the {p_hr} px HR patch size")

    def __len__(self) -> int:
        return len(self.pairs) * self.repeat

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        lr, hr = self.pairs[index % len(self.pairs)]
        p, s = self.lr_patch, self.scale
        top = int(torch.randint(lr.shape[0] - p + 1, ()))
        left = int(torch.randint(lr.shape[1] - p + 1, ()))
        lr = lr[top : top + p, left : left + p]
        hr = hr[top * s : (top + p) * s, left * s : (left + p) * s]
        if self.augment:
            flip, rotations = bool(torch.randint(2, ())), int(torch.randint(4, ()))
            if flip:
                lr, hr = lr[:, ::-1], hr[:, ::-1]
            lr, hr = np.rot90(lr, rotations), np.rot90(hr, rotations)
        return rgb_to_tensor(lr), rgb_to_tensor(hr)


def make_loader(
    dataset: PatchDataset, batch_size: int, workers: int, device: torch.device, seed: int = 0
) -> DataLoader:
    """Random training batches from ``dataset``: ``batch_size`` (global) split across the processes of a distributed
    run, ``workers`` loader processes kept alive between epochs."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    return DataLoader(
        dataset,
        batch_size=batch_size // world,
        sampler=DistributedSampler(dataset, seed=seed) if world > 1 else RandomSampler(dataset),
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
    )


def endless(loader: DataLoader) -> Iterator[Batch]:
    epoch = 0
    while True:
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1
