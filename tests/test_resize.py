from pathlib import Path

import numpy as np
import pytest

from sr_app.images import list_images, load_rgb
from sr_app.resize import imresize


@pytest.mark.parametrize("dataset", ["Set5", "Set14"])
def test_downscale_reproduces_published_lr_files(eval_data: Path, dataset: str) -> None:
    for hr_path in list_images(eval_data / dataset / "HR"):
        lr = load_rgb(eval_data / dataset / "LR_x4" / hr_path.name)
        hr = load_rgb(hr_path)[: lr.shape[0] * 4, : lr.shape[1] * 4]
        ours = imresize(hr, 1 / 4)
        assert ours.shape == lr.shape
        assert np.abs(ours.astype(int) - lr).mean() < 0.5, hr_path.name


def test_output_size_is_ceil_of_scaled_size() -> None:
    image = np.zeros((10, 7, 3), np.uint8)
    assert imresize(image, 4).shape == (40, 28, 3)
    assert imresize(image, 1 / 4).shape == (3, 2, 3)


def test_constant_image_stays_constant_both_ways() -> None:
    image = np.full((9, 13, 3), 77, np.uint8)
    assert (imresize(image, 4) == 77).all()
    assert (imresize(image, 0.25) == 77).all()


def test_float_input_gives_unclipped_float_output() -> None:
    edge = np.zeros((8, 8), np.float64)
    edge[:, 4:] = 1.0
    up = imresize(edge, 2)
    assert up.dtype == np.float64
    assert up.min() < 0 and up.max() > 1  # bicubic overshoot at the edge is kept
