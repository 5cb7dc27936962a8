"""Difference images and SSIM maps (sr_app.difference, sr_app.comparison.analyses) as the Compare tab saves and serves
them: each one checked against its definition, computed from the served PNG files."""

from __future__ import annotations

import re

import numpy as np
import pytest

from sr_app.comparison import GROUND_TRUTH, UPSCALE, LoadedMethod, compare, load_methods
from sr_app.difference import UNSCORED, amplification, amplify
from sr_app.images import load_rgb
from sr_app.methods import REGISTRY
from sr_app.metrics import SSIM_MARGIN
from sr_app.resize import imresize, magnify
from sr_app.ui.compare import EXAMPLES_DIR
from sr_app.ui.saved import Saved, discard, save
from sr_app.upscalers import SCALE


class Nearest:
    """A second method beside bicubic: nearest-neighbour magnification."""

    device = "cpu"

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return magnify(rgb, SCALE)


@pytest.fixture(scope="module")
def methods() -> list[LoadedMethod]:
    return [*load_methods([REGISTRY["bicubic"]]), LoadedMethod("nearest", Nearest())]


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A 64×80 crop of a real photo."""
    return load_rgb(EXAMPLES_DIR / "astronaut.png")[40:104, 50:130]


def analyses_of(saved: Saved) -> dict[str, np.ndarray]:
    """The saved analyses by label, read from their PNG files."""
    return {view.label: load_rgb(view.path) for view in saved.analyses}


def test_a_difference_image_is_the_amplified_difference_of_the_served_pngs(
    methods: list[LoadedMethod], image: np.ndarray
) -> None:
    saved = save(compare(image, GROUND_TRUTH, methods))
    try:
        labels = [view.label for view in saved.analyses]
        factor = int(re.fullmatch(r"Bicubic − Original ×(\d+)", labels[0])[1])
        assert labels[1] == f"nearest − Original ×{factor}"  # one amplification for the whole comparison
        original = load_rgb(saved.files["original"]).astype(int)
        served = analyses_of(saved)
        for name, label in [("bicubic", labels[0]), ("nearest", labels[1])]:
            expected = np.minimum(np.abs(load_rgb(saved.files[name]) - original) * factor, 255)
            np.testing.assert_array_equal(served[label], expected)
        scale = saved.analyses[0].scale
        assert (scale.low, scale.high) == ("0", f"≥ {-(-255 // factor)} of 255")
    finally:
        discard(saved)


def test_an_ssim_map_averages_to_the_reported_ssim(methods: list[LoadedMethod], image: np.ndarray) -> None:
    saved = save(compare(image, GROUND_TRUTH, methods))
    try:
        served = analyses_of(saved)
        assert list(served)[2:] == ["Bicubic SSIM map", "nearest SSIM map"]
        for name, title in [("bicubic", "Bicubic"), ("nearest", "nearest")]:
            ssim_map = served[f"{title} SSIM map"]
            assert (ssim_map[:SCALE] == UNSCORED).all() and (ssim_map[:, -SCALE:] == UNSCORED).all()
            # The score is the mean of the map less the shaved border and scikit-image's margin of half a window.
            inner = ssim_map[SCALE:-SCALE, SCALE:-SCALE][SSIM_MARGIN:-SSIM_MARGIN, SSIM_MARGIN:-SSIM_MARGIN]
            assert (inner[..., 0] == inner[..., 2]).all()  # grey
            assert inner[..., 0].mean() / 255 == pytest.approx(saved.scores[name][1], abs=0.01)
        assert saved.scores["bicubic"][1] > saved.scores["nearest"][1] + 0.02  # the maps tell the methods apart
    finally:
        discard(saved)


def test_upscale_mode_subtracts_bicubic_made_for_it_when_it_was_not_picked(
    methods: list[LoadedMethod], image: np.ndarray
) -> None:
    picked = save(compare(image, UPSCALE, methods))
    unpicked = save(compare(image, UPSCALE, methods[1:]))
    try:
        # Bicubic, the reference, has no difference image of its own; there is no SSIM map without an original.
        assert [view.label for view in picked.analyses] == [view.label for view in unpicked.analyses]
        (label,) = analyses_of(unpicked)
        factor = int(re.fullmatch(r"nearest − Bicubic ×(\d+)", label)[1])
        bicubic = imresize(image, SCALE).astype(int)
        expected = np.minimum(np.abs(load_rgb(unpicked.files["nearest"]) - bicubic) * factor, 255)
        np.testing.assert_array_equal(analyses_of(unpicked)[label], expected)
    finally:
        discard(picked)
        discard(unpicked)


def test_the_amplification_brings_the_99th_percentile_up_to_white() -> None:
    small = np.zeros((100, 100), dtype=np.uint8)
    small[0, :50] = 200  # 0.5 % of outliers do not count
    assert amplification({"a": small + 10}) == 16  # 10 × 16 = 160, × 32 would pass 255
    assert amplification({"a": small + 10, "b": np.full((4, 4), 100, np.uint8)}) == 2  # the largest difference rules
    assert amplification({"a": np.full((2, 2), 255, np.uint8)}) == 1
    np.testing.assert_array_equal(amplify(np.array([0, 10, 64, 200], np.uint8), 4), [0, 40, 255, 255])
