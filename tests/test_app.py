"""The Compare tab: its handlers without a server, then the live app through gradio_client; ``app.py`` recording its
address for the survey's rater links. The viewer in a browser is tests/test_viewer_browser.py."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import io
import re
import socket
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

import app
from app import build_app
from conftest import TINY_CONFIG, exit_status
from sr_app.comparison import (
    GROUND_TRUTH,
    INPUT,
    MODES,
    ORIGINAL,
    UPSCALE,
    Comparison,
    LoadedMethod,
    compare,
    crop_box,
    load_methods,
    panel_label,
    results_table,
)
from sr_app.images import load_rgb
from sr_app.methods import REGISTRY, Settings
from sr_app.models import EDSR
from sr_app.resize import magnify
from sr_app.ui.compare import EXAMPLES_DIR, RUN_LABELS, compare_crops, compare_pair, run_label, upscale
from sr_app.ui.saved import OUTPUT_DIR, Saved, discard, save
from sr_app.upscalers import SCALE, ModelUpscaler
from sr_app.weights import save_weights
from survey.__main__ import main as survey_main
from tests.survey_fixtures import image_folder
from train.evaluate import evaluate

#: The registry's default methods; the handler tests run these (the others are picked in the browser or API).
DEFAULTS = [method for method in REGISTRY.values() if method.default]
#: Upload limit of the live app under test: 100×100 passes, 101×100 does not.
TEST_MAX_PIXELS = 100 * 100


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder with a random tiny EDSR as ``edsr`` and nothing for ``edsr_srgan``."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    save_weights(EDSR(TINY_CONFIG), folder / REGISTRY["edsr"].weights, iterations=0)
    return folder


@pytest.fixture(scope="module")
def methods(weights_dir: Path) -> list[LoadedMethod]:
    """The methods Compare picks at first (bicubic, EDSR, EDSR-SRGAN), loaded as the app loads them, in float32 (as
    ``train.evaluate`` scores by default, whatever this CPU's bfloat16 support)."""
    return load_methods(DEFAULTS, Settings(device="cpu", precision="fp32", weights_dir=weights_dir))


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A 44×36 (height × width) crop of a real photo: not square, so swapped axes show."""
    return load_rgb(EXAMPLES_DIR / "astronaut.png")[30:74, 60:96]


def write_png(rgb: np.ndarray, path: Path) -> Path:
    Image.fromarray(rgb).save(path)
    return path


def available(methods: list[LoadedMethod]) -> list[LoadedMethod]:
    return [method for method in methods if method.upscaler is not None]


# ---- handlers, no server --------------------------------------------------------------------------------------


def test_missing_weights_make_a_method_unavailable_with_its_reason(methods: list[LoadedMethod]) -> None:
    assert [method.name for method in methods] == [method.name for method in DEFAULTS]
    by_name = {method.name: method for method in methods}
    assert by_name["bicubic"].upscaler is not None and by_name["edsr"].upscaler is not None
    assert by_name["edsr_srgan"].upscaler is None
    assert "Weights file not found" in by_name["edsr_srgan"].reason
    assert REGISTRY["edsr_srgan"].weights in by_name["edsr_srgan"].reason


def test_upscale_mode_equals_calling_each_upscaler(methods: list[LoadedMethod], image: np.ndarray) -> None:
    comparison = compare(image, UPSCALE, methods)
    assert list(comparison.outputs) == [method.name for method in available(methods)]
    assert comparison.hr is None and comparison.scores == {}
    for method in available(methods):
        output = comparison.outputs[method.name]
        assert output.dtype == np.uint8 and output.shape == (44 * SCALE, 36 * SCALE, 3)
        np.testing.assert_array_equal(output, method.upscaler(image))


def test_upscale_handler_gives_one_named_png_per_image(
    methods: list[LoadedMethod], image: np.ndarray, tmp_path: Path
) -> None:
    path = write_png(image, tmp_path / "my photo.png")
    files, table, saved = upscale(str(path), UPSCALE, methods=methods)
    assert [Path(file).name for file in files] == ["my_photo_input.png", "my_photo_bicubic.png", "my_photo_edsr.png"]
    # The input's download is the input itself, magnified ×4 by nearest neighbour: no crop box drawn on it.
    np.testing.assert_array_equal(load_rgb(files[0]), magnify(image, SCALE))
    for method, file in zip(available(methods), files[1:], strict=True):
        np.testing.assert_array_equal(load_rgb(file), method.upscaler(image))
    assert list(table["Method"]) == ["Bicubic", "EDSR"] and list(table) == ["Method", "Device", "Time (ms)"]
    assert isinstance(saved, Saved) and saved.names == [INPUT, "bicubic", "edsr"]
    labels = [view.label for view in saved.views()]
    assert labels[0] == "Input" and re.fullmatch(r"Bicubic · cpu · \d+ ms", labels[1])
    assert re.fullmatch(r"EDSR · cpu · \d+ ms", labels[2])
    assert [panel_label(method) for method in methods] == ["Bicubic", "EDSR", "EDSR-SRGAN · unavailable"]


def test_a_session_keeps_files_not_images_and_its_next_comparison_removes_the_last(
    methods: list[LoadedMethod], image: np.ndarray, tmp_path: Path
) -> None:
    path = write_png(image, tmp_path / "photo.png")
    first = upscale(str(path), UPSCALE, methods=methods)[2]
    # The handle a session keeps: paths, labels and a small table; the pixels are in the PNG files only.
    assert not any(isinstance(value, np.ndarray) for value in vars(first).values())
    assert first.folder.parent == OUTPUT_DIR and set(first.folder.iterdir()) == {view.path for view in first.views()}
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    with pytest.raises(gr.Error, match="not an image"):  # a failed run leaves the session's comparison as it was
        upscale(str(tmp_path / "bad.png"), UPSCALE, previous=first, methods=methods)
    assert first.folder.is_dir()
    second = upscale(str(path), UPSCALE, previous=first, methods=methods)[2]
    assert not first.folder.exists() and second.folder.is_dir()
    with pytest.raises(gr.Error, match="removed after an hour"):
        compare_crops(40, 40, 16, 2, first)
    discard(second)  # what the session's state does when Gradio deletes it
    assert not second.folder.exists()


def test_ground_truth_mode_labels_views_with_scores_and_shows_the_original(
    methods: list[LoadedMethod], image: np.ndarray
) -> None:
    comparison = compare(image, GROUND_TRUTH, methods)
    assert comparison.names == [INPUT, "bicubic", "edsr", ORIGINAL]
    psnr = comparison.scores["edsr"][0]
    assert re.fullmatch(rf"EDSR · {psnr:.2f} dB · cpu · \d+ ms", comparison.label("edsr"))
    assert comparison.label(ORIGINAL) == "Original"
    assert run_label(GROUND_TRUTH).value == RUN_LABELS[GROUND_TRUTH] == "Downscale ×4, upscale and score"
    assert run_label(UPSCALE).value == "Upscale ×4"


@pytest.mark.slow
def test_self_ensemble_changes_networks_only_and_leaves_the_shared_upscaler_alone(
    methods: list[LoadedMethod], image: np.ndarray
) -> None:
    plain = compare(image, UPSCALE, methods)
    ensemble = compare(image, UPSCALE, methods, self_ensemble=True)
    edsr = next(method.upscaler for method in methods if method.name == "edsr")
    assert isinstance(edsr, ModelUpscaler) and not edsr.self_ensemble  # the loaded upscaler is not changed
    np.testing.assert_array_equal(ensemble.outputs["bicubic"], plain.outputs["bicubic"])
    assert np.abs(ensemble.outputs["edsr"].astype(int) - plain.outputs["edsr"]).max() > 0
    reference = ModelUpscaler("edsr", edsr.model, device="cpu", precision="fp32", self_ensemble=True)
    np.testing.assert_array_equal(ensemble.outputs["edsr"], reference(image))
    assert ensemble.ensembled == {"edsr"} and list(results_table(ensemble)["Method"]) == ["Bicubic", "EDSR+"]
    copy = edsr.with_self_ensemble()
    assert copy.self_ensemble and copy.model is edsr.model and not edsr.self_ensemble


def test_progress_names_each_method_as_it_starts(methods: list[LoadedMethod], image: np.ndarray) -> None:
    heard: list[tuple[float, str]] = []
    compare(image, UPSCALE, methods, report=lambda fraction, text: heard.append((fraction, text)))
    assert heard == [(0.0, "Bicubic (1 of 2)"), (0.5, "EDSR (2 of 2)")]


def test_ground_truth_scores_equal_train_evaluate(
    methods: list[LoadedMethod], weights_dir: Path, tmp_path: Path
) -> None:
    photo = load_rgb(EXAMPLES_DIR / "coffee.png")
    (tmp_path / "Tiny" / "HR").mkdir(parents=True)
    originals = {"a": photo[:46, :63], "b": photo[100:164, 50:90]}  # sizes not multiples of 4 on purpose
    for name, original in originals.items():
        write_png(original, tmp_path / "Tiny" / "HR" / f"{name}.png")
    reference = evaluate(
        [tmp_path / "Tiny"], ["bicubic", "edsr"], settings=Settings(precision="fp32", weights_dir=weights_dir)
    )
    for name, original in originals.items():
        comparison = compare(original, GROUND_TRUTH, methods)
        assert comparison.hr.shape == (original.shape[0] // 4 * 4, original.shape[1] // 4 * 4, 3)
        assert comparison.lr.shape[:2] == (comparison.hr.shape[0] // 4, comparison.hr.shape[1] // 4)
        table = results_table(comparison).set_index("Method")
        for method in ("bicubic", "edsr"):
            row = reference[(reference.image == name) & (reference.method == method)].iloc[0]
            assert comparison.scores[method] == (row.psnr, row.ssim)
            title = {"bicubic": "Bicubic", "edsr": "EDSR"}[method]
            assert table.loc[title, "PSNR (dB)"] == round(row.psnr, 2)
            assert table.loc[title, "SSIM"] == round(row.ssim, 4)


def test_crop_box_snaps_to_input_pixels_and_stays_inside() -> None:
    assert crop_box(50, 30, 16, (80, 120)) == (20, 40, 16, 16)
    assert crop_box(51, 33, 16, (80, 120)) == (24, 40, 16, 16)
    assert crop_box(0, 0, 16, (80, 120)) == (0, 0, 16, 16)
    assert crop_box(119, 79, 16, (80, 120)) == (64, 104, 16, 16)
    assert crop_box(60, 40, 500, (80, 120)) == (0, 20, 80, 80)  # shrunk to the shorter side


def test_compare_crops_cuts_the_same_region_of_every_image() -> None:
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    outputs = {name: rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for name in ("bicubic", "edsr")}
    hr = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    seconds, scores = {"bicubic": 0.0, "edsr": 0.0}, {"bicubic": (30.0, 0.9), "edsr": (31.0, 0.9)}
    saved = save(Comparison(lr, hr, outputs, seconds, scores=scores))
    overview, crops = compare_crops(30, 18, 8, 3, saved)
    top, left = 12, 24  # centre (30, 18), side 8: rows 14..22 -> 12..20 snapped; columns 26..34 -> 24..32
    assert [caption for _, caption in crops] == ["Input", "Bicubic", "EDSR", "Original"]
    expected = [
        magnify(lr[3:5, 6:8], 4),
        outputs["bicubic"][12:20, 24:32],
        outputs["edsr"][12:20, 24:32],
        hr[12:20, 24:32],
    ]
    for (crop, _), region in zip(crops, expected, strict=True):
        assert crop.shape == (24, 24, 3)
        np.testing.assert_array_equal(crop, magnify(region, 3))
        np.testing.assert_array_equal(crop[::3, ::3], region)
    # The box is drawn on the overview (the original here), just outside the region.
    assert overview.shape == hr.shape
    assert tuple(overview[top - 1, left + 3]) == (255, 0, 80) and tuple(overview[top + 8, left + 3]) == (255, 0, 80)
    np.testing.assert_array_equal(overview[top : top + 8, left : left + 8], hr[top : top + 8, left : left + 8])
    # In upscale mode the overview is the input itself.
    overview = compare_crops(30, 18, 8, 3, save(Comparison(lr, None, outputs, seconds)))[0]
    assert overview.shape == lr.shape
    np.testing.assert_array_equal(overview[:2], lr[:2])  # above the box
    for crop_size, zoom in [(1024, 1), (2, 1), (64, 0), (64, 17), (256, 16)]:
        with pytest.raises(gr.Error, match=f"crop_size must be 4 to 512 .* got crop_size {crop_size} and zoom {zoom}"):
            compare_crops(30, 18, crop_size, zoom, saved)


def test_before_after_pair(methods: list[LoadedMethod], image: np.ndarray) -> None:
    comparison = compare(image, UPSCALE, methods)
    saved = save(comparison)
    before, after = compare_pair(INPUT, "edsr", saved)
    np.testing.assert_array_equal(load_rgb(before), magnify(image, SCALE))
    np.testing.assert_array_equal(load_rgb(after), comparison.outputs["edsr"])
    assert compare_pair(INPUT, "edsr", saved) == (before, after)  # the session's files, not encoded again
    with pytest.raises(gr.Error, match="Original.*only in Ground truth mode"):
        compare_pair("bicubic", ORIGINAL, saved)
    with pytest.raises(gr.Error, match="No image called 'srgan'; choose from input, bicubic, edsr"):
        compare_pair("bicubic", "srgan", saved)
    with pytest.raises(gr.Error, match="Upscale an image first"):
        compare_pair("bicubic", "edsr", None)


def test_one_pixel_image_upscales(methods: list[LoadedMethod]) -> None:
    comparison = compare(np.full((1, 1, 3), 200, dtype=np.uint8), UPSCALE, methods)
    assert all(output.shape == (4, 4, 3) for output in comparison.outputs.values())


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [
        (None, UPSCALE, "Upload an image or pick an example"),
        (b"not an image at all", UPSCALE, "not an image this app can read"),
        (b"", UPSCALE, "empty"),
        ("small", GROUND_TRUTH, "at least 20×20 pixels"),
        ("big", UPSCALE, "101×100 = 10,100 pixels"),
    ],
)
def test_bad_input_gives_a_clear_error(
    methods: list[LoadedMethod], tmp_path: Path, content: bytes | str | None, mode: str, message: str
) -> None:
    path = tmp_path / "upload.png"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        write_png(np.zeros((100, 101, 3) if content == "big" else (19, 30, 3), np.uint8), path)
    with pytest.raises(gr.Error, match=message):
        upscale(None if content is None else str(path), mode, methods=methods, max_pixels=TEST_MAX_PIXELS)


# ---- the live app through gradio_client -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the app, live in this process, with the test weights, upload limit and a fresh data folder."""
    data_dir = tmp_path_factory.mktemp("data")
    demo = build_app(
        weights_dir=weights_dir, device="cpu", precision="fp32", max_pixels=TEST_MAX_PIXELS, data_dir=data_dir
    )
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def png_with_size(png: bytes, width: int, height: int) -> bytes:
    """``png`` with the size in its header replaced (and the header checksum fixed)."""
    header = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
    return png[:8] + struct.pack(">I", 13) + header + struct.pack(">I", zlib.crc32(header)) + png[33:]


@pytest.mark.slow
def test_api_upscale_returns_lossless_pngs(
    client: Client, methods: list[LoadedMethod], image: np.ndarray, tmp_path: Path
) -> None:
    path = write_png(image, tmp_path / "in.png")
    files, table = client.predict(handle_file(str(path)), UPSCALE, api_name="/upscale")
    assert [Path(file).name for file in files] == ["in_input.png", "in_bicubic.png", "in_edsr.png"]
    np.testing.assert_array_equal(load_rgb(files[0]), magnify(image, SCALE))
    for method, file in zip(available(methods), files[1:], strict=True):
        np.testing.assert_array_equal(load_rgb(file), method.upscaler(image))
    assert [row[0] for row in table["data"]] == ["Bicubic", "EDSR"]
    overview, crops = client.predict(40, 60, 16, 2, api_name="/compare_crops")
    assert load_rgb(overview).shape == image.shape  # the input, with the crop box drawn
    assert [crop["caption"] for crop in crops] == ["Input", "Bicubic", "EDSR"]
    assert all(Path(crop["image"]).suffix == ".png" for crop in crops)
    bicubic = methods[0].upscaler(image)
    np.testing.assert_array_equal(load_rgb(crops[1]["image"]), magnify(bicubic[52:68, 32:48], 2))
    before, after = client.predict("bicubic", "edsr", api_name="/compare_pair")
    np.testing.assert_array_equal(load_rgb(before), bicubic)
    np.testing.assert_array_equal(load_rgb(after), methods[1].upscaler(image))


@pytest.mark.slow
def test_api_ground_truth_mode(client: Client, methods: list[LoadedMethod], image: np.ndarray, tmp_path: Path) -> None:
    path = write_png(image, tmp_path / "original.png")
    files, table = client.predict(handle_file(str(path)), GROUND_TRUTH, api_name="/upscale")
    assert Path(files[-1]).name == "original_original.png"
    assert table["headers"] == ["Method", "Device", "Time (ms)", "PSNR (dB)", "SSIM"]
    expected = compare(image, GROUND_TRUTH, methods).scores
    assert [row[3:] for row in table["data"]] == [[round(p, 2), round(s, 4)] for p, s in expected.values()]
    original, _ = client.predict(ORIGINAL, "edsr", api_name="/compare_pair")
    np.testing.assert_array_equal(load_rgb(original), image)  # 44×36 is already a multiple of 4
    ensemble = client.predict(handle_file(str(path)), GROUND_TRUTH, ["edsr"], True, api_name="/upscale")[1]
    assert ensemble["data"][0][0] == "EDSR+" and ensemble["data"][0][3:] != table["data"][1][3:]


def bad_uploads(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, part of the error message) for every kind of bad upload."""
    noisy = np.random.default_rng(2).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    png = io.BytesIO()
    Image.fromarray(noisy).save(png, "PNG")
    png = png.getvalue()
    corrupt = bytearray(png)
    corrupt[len(png) // 2] ^= 0xFF
    files = {
        "corrupt": (bytes(corrupt), "corrupt or truncated"),
        "truncated": (png[: len(png) // 2], "corrupt or truncated"),
        "text": (b"just some text\n", "not an image this app can read"),
        "empty": (b"", "empty"),
        "too_large": (png_with_size(png, 101, 100), "at most 10,000 pixels"),
        "bomb": (png_with_size(png, 40_000, 40_000), "decompression bomb|at most 10,000 pixels"),
    }
    paths = {}
    for name, (data, message) in files.items():
        (tmp_path / f"{name}.png").write_bytes(data)
        paths[name] = (tmp_path / f"{name}.png", message)
    (tmp_path / "notes.txt").write_text("hello")
    paths["wrong_suffix"] = (tmp_path / "notes.txt", "Invalid file type")
    return paths


@pytest.mark.slow
def test_api_bad_uploads_give_clear_errors_and_the_app_keeps_working(
    client: Client, image: np.ndarray, tmp_path: Path
) -> None:
    good = write_png(image, tmp_path / "good.png")
    for name, (path, message) in bad_uploads(tmp_path).items():
        with pytest.raises(Exception, match=message) as error:  # noqa: B017 - gradio_client raises AppError
            client.predict(handle_file(str(path)), UPSCALE, api_name="/upscale")
        assert "Traceback" not in str(error.value), name
        files, _ = client.predict(handle_file(str(good)), UPSCALE, api_name="/upscale")
        assert load_rgb(files[1]).shape == (44 * SCALE, 36 * SCALE, 3), name


@pytest.mark.slow
def test_modes_are_the_api_choices(client: Client) -> None:
    info = client.view_api(print_info=False, return_format="dict")
    endpoints = info["named_endpoints"]
    assert {"/upscale", "/compare_crops", "/compare_pair", "/share"} <= set(endpoints)
    mode = endpoints["/upscale"]["parameters"][1]
    assert mode["parameter_default"] == UPSCALE and set(mode["type"]["enum"]) == set(MODES)


# ---- app.py and the survey's rater links ------------------------------------------------------------------------


@pytest.mark.slow
def test_the_app_records_its_address_for_the_rater_links_survey_create_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, port, threads = tmp_path / "data", free_port(), torch.get_num_threads()
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda self: None)  # main() returns once the app serves
    try:
        app.main(["--port", str(port), "--data-dir", str(data_dir), "--device", "cpu", "--concurrency", "2"])
        assert torch.get_num_threads() == threads  # jobs take turns on the device, each with all its threads
    finally:
        gr.close_all()
        torch.set_num_threads(threads)
    images = image_folder(tmp_path / "hr", n_images=2)
    args = ["--data-dir", str(data_dir), "create", "--name", "s", "--images", str(images), "--methods", "bicubic"]
    assert exit_status(survey_main, args) == 0
    assert f"rater link: http://127.0.0.1:{port}/" in capsys.readouterr().out
    assert exit_status(survey_main, ["list", "--data-dir", str(data_dir), "--base-url", "https://lab.example/"]) == 0
    assert "rater link: https://lab.example/" in capsys.readouterr().out
