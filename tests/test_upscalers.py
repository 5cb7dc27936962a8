from pathlib import Path

import numpy as np
import pytest

from sr_app.methods import REGISTRY, MethodError, Settings, load_upscaler
from sr_app.resize import imresize
from sr_app.upscalers import ModelUpscaler
from sr_app.weights import WeightsError


def test_bicubic_is_the_matlab_imresize(photo: np.ndarray) -> None:
    lr = photo[:40, :56]
    assert np.array_equal(load_upscaler("bicubic")(lr), imresize(lr, 4))


@pytest.mark.slow
def test_shipped_edsr_upscales_8_bit_rgb_by_four(photo: np.ndarray) -> None:
    upscaler = load_upscaler("edsr", Settings(device="cpu"))
    sr = upscaler(photo[:30, :44])
    assert sr.shape == (120, 176, 3) and sr.dtype == np.uint8
    assert upscaler.device == "cpu"


@pytest.mark.slow
def test_tiled_result_equals_whole_image_within_one_grey_level(photo: np.ndarray) -> None:
    lr = photo[100:196, 150:270]  # 96 × 120: 3 × 3 tiles of 40 px
    model = load_upscaler("edsr", Settings(device="cpu", tile=None)).model
    whole = ModelUpscaler("edsr", model, device="cpu", tile=None)(lr)
    tiled = ModelUpscaler("edsr", model, device="cpu", tile=40)(lr)
    assert np.abs(whole.astype(int) - tiled).max() <= 1


def test_missing_weights_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"edsr_x4\.safetensors.*python -m train\.sr --arch"):
        load_upscaler("edsr", Settings(weights_dir=tmp_path))


def test_unknown_method_lists_the_known_ones() -> None:
    with pytest.raises(MethodError, match="choose from " + ", ".join(REGISTRY)):
        load_upscaler("srcnn")
