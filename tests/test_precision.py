"""How networks compute: bfloat16 where it is fast and exact enough, channels_last, and the self-ensemble."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from spandrel import SizeRequirements
from torch import nn
from torch.nn import functional as F

from sr_app import upscalers
from sr_app.images import rgb_to_tensor, tensor_to_rgb
from sr_app.methods import REGISTRY, Method, Settings, load_upscaler, network_upscaler
from sr_app.metrics import psnr_y
from sr_app.scoring import load_benchmark, score_images
from sr_app.upscalers import ModelUpscaler, bf16_choices, use_bf16
from sr_app.weights import WEIGHTS_DIR, load_weights

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("precision", "flags", "expected"),
    [
        ("auto", {"fpu", "avx512f", "amx_bf16", "amx_tile"}, True),  # Sapphire Rapids and later
        ("auto", {"fpu", "avx512f", "avx512_bf16"}, True),  # Cooper Lake, Zen 4
        ("auto", {"fpu", "avx2", "avx512f"}, False),  # no native bfloat16: autocast would be slower
        ("auto", set(), False),  # no /proc/cpuinfo (macOS, Windows)
        ("fp32", {"amx_bf16"}, False),
        ("bf16", set(), True),
    ],
)
def test_precision_choice_on_cpu(precision: str, flags: set[str], expected: bool) -> None:
    assert use_bf16(precision, CPU, flags) is expected


@pytest.mark.parametrize(("capability", "expected"), [((7, 0), False), ((8, 0), True), ((9, 0), True)])
def test_auto_precision_on_cuda_needs_native_bf16(
    monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], expected: bool
) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert use_bf16("auto", torch.device("cuda"), set()) is expected
    assert use_bf16("fp32", torch.device("cuda"), set()) is False


def test_auto_precision_is_fp32_on_apple_gpus() -> None:
    assert use_bf16("auto", torch.device("mps"), {"amx_bf16"}) is False


def test_auto_precision_leaves_both_to_the_engine_choice_where_bfloat16_is_fast(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(upscalers, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert bf16_choices("auto", CPU) == (False, True)
    assert bf16_choices("fp32", CPU) == (False,) and bf16_choices("bf16", CPU) == (True,)
    monkeypatch.setattr(upscalers, "cpu_flags", lambda: frozenset({"avx2"}))
    assert bf16_choices("auto", CPU) == (False,)


def test_unknown_precision_names_the_choices() -> None:
    with pytest.raises(ValueError, match="'fp16'; choose from auto, fp32, bf16"):
        use_bf16("fp16", CPU, set())  # type: ignore[arg-type]


def test_settings_reach_the_upscaler_and_bf16_unsafe_methods_stay_fp32(tiny_weights_dir: Path) -> None:
    def load(method: str | Method = "edsr", **settings: object) -> ModelUpscaler:
        return load_upscaler(method, Settings(device="cpu", weights_dir=tiny_weights_dir, **settings))

    assert load().bf16 is use_bf16("auto", CPU)
    assert load(precision="bf16").bf16 and not load(precision="fp32").bf16
    assert not load(dataclasses.replace(REGISTRY["edsr"], bf16_safe=False), precision="bf16").bf16
    assert load(self_ensemble=True).self_ensemble and not load().self_ensemble


@pytest.mark.slow
def test_bf16_output_is_close_to_fp32(photo: np.ndarray) -> None:
    model, _ = load_weights(WEIGHTS_DIR / REGISTRY["edsr"].weights)
    lr = photo[100:148, 200:248]
    fp32 = ModelUpscaler("edsr", model, device="cpu", precision="fp32")(lr)
    bf16 = ModelUpscaler("edsr", model, device="cpu", precision="bf16")(lr)
    difference = np.abs(fp32.astype(int) - bf16)
    assert difference.mean() < 0.5 and difference.max() <= 3


@pytest.mark.slow
def test_channels_last_equals_contiguous_within_one_grey_level(photo: np.ndarray) -> None:
    contiguous, _ = load_weights(WEIGHTS_DIR / REGISTRY["edsr"].weights)
    lr = photo[200:260, 150:230]
    with torch.inference_mode():
        expected = tensor_to_rgb(contiguous(rgb_to_tensor(lr)[None])[0])
    model, _ = load_weights(WEIGHTS_DIR / REGISTRY["edsr"].weights)
    upscaler = ModelUpscaler("edsr", model, device="cpu", precision="fp32", tile=None)
    assert upscaler.model.head.weight.is_contiguous(memory_format=torch.channels_last)
    assert np.abs(upscaler(lr).astype(int) - expected).max() <= 1


def shipped_networks() -> list[str]:
    """Registered networks whose weights file is in ``sr_app/weights``."""
    return [
        name
        for name, method in REGISTRY.items()
        if method.build is network_upscaler and (WEIGHTS_DIR / method.weights).is_file()
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", shipped_networks())
def test_bf16_safe_networks_score_within_0_05_db_of_fp32(name: str, eval_data: Path) -> None:
    method = REGISTRY[name]
    if not method.bf16_safe:
        pytest.skip(f"{name} always runs in fp32")
    model, _ = load_weights(WEIGHTS_DIR / method.weights)
    for dataset in ("Set5", "Set14"):
        images = load_benchmark(eval_data / dataset)
        fp32, bf16 = (
            score_images(ModelUpscaler(name, model, device="cpu", precision=precision), images).psnr.mean()
            for precision in ("fp32", "bf16")
        )
        assert abs(bf16 - fp32) <= 0.05, f"{name} on {dataset}: bf16 {bf16:.3f} dB, fp32 {fp32:.3f} dB"


class Blur4x(nn.Module):
    """A ×4 network: a 3×3 convolution, then nearest-neighbour upsampling. With a kernel symmetric under flips and
    transposition it is exactly equivariant to the 8 flips and rotations, so its self-ensemble is itself."""

    def __init__(self, kernel: list[list[float]]) -> None:
        super().__init__()
        self.register_buffer("weight", torch.tensor(kernel).expand(3, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(F.conv2d(x, self.weight, padding=1, groups=3), scale_factor=4, mode="nearest")


SYMMETRIC = [[0.05, 0.1, 0.05], [0.1, 0.4, 0.1], [0.05, 0.1, 0.05]]
ONE_SIDED = [[0.0, 0.0, 0.0], [0.0, 0.3, 0.7], [0.0, 0.0, 0.0]]


def blur(kernel: list[list[float]], lr: np.ndarray, **options: object) -> np.ndarray:
    """``lr`` upscaled by :class:`Blur4x` in fp32 (``options``: more :class:`ModelUpscaler` arguments)."""
    return ModelUpscaler("blur", Blur4x(kernel), device="cpu", precision="fp32", **options)(lr).astype(int)


@pytest.mark.slow
def test_self_ensemble_of_an_equivariant_network_is_the_network(photo: np.ndarray) -> None:
    lr = photo[100:196, 150:270]  # 96 × 120, not square
    plain = blur(SYMMETRIC, lr, tile=None)
    assert plain.shape == (384, 480, 3)
    assert np.abs(blur(SYMMETRIC, lr, self_ensemble=True, tile=None) - plain).max() <= 1
    assert np.abs(blur(SYMMETRIC, lr, self_ensemble=True, tile=40) - plain).max() <= 1
    # A network that is not equivariant changes: its outputs for turned inputs are shifted the other way.
    one_sided = blur(ONE_SIDED, lr, tile=None)
    assert np.abs(blur(ONE_SIDED, lr, self_ensemble=True, tile=None) - one_sided).max() > 10


def test_self_ensemble_with_padding_to_the_size_requirements(photo: np.ndarray) -> None:
    lr = photo[:50, :70]
    padded = {"size_requirements": SizeRequirements(multiple_of=16), "tile": None}
    plain = blur(SYMMETRIC, lr, **padded)
    ensemble = blur(SYMMETRIC, lr, self_ensemble=True, **padded)
    assert ensemble.shape == plain.shape == (200, 280, 3)
    # Each turned input is padded after its own last row and column, so edge pixels see other neighbours than in
    # the plain pass (mirrored, not the convolution's zeros); one LR pixel (4 HR) in from the edges all agree.
    assert np.abs(ensemble - plain)[4:-4, 4:-4].max() <= 1


@pytest.mark.slow
def test_self_ensemble_improves_the_shipped_edsr(eval_data: Path) -> None:
    model, _ = load_weights(WEIGHTS_DIR / REGISTRY["edsr"].weights)
    plain = ModelUpscaler("edsr", model, device="cpu")
    ensemble = ModelUpscaler("edsr+", model, device="cpu", self_ensemble=True)
    for image in [image for image in load_benchmark(eval_data / "Set5") if image.name in ("bird", "butterfly")]:
        assert psnr_y(ensemble(image.lr), image.hr, 4) >= psnr_y(plain(image.lr), image.hr, 4), image.name
