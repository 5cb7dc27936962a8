"""The Compare tab: its handlers without a server, then the live app through gradio_client."""

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

from app import build_app
from conftest import TINY_CONFIG
from sr_app.images import load_rgb
from sr_app.methods import REGISTRY, Settings
from sr_app.models import EDSR
from sr_app.ui.compare import (
    EXAMPLES_DIR,
    GROUND_TRUTH,
    INPUT,
    MODES,
    ORIGINAL,
    UPSCALE,
    Comparison,
    LoadedMethod,
    centre_from_overview,
    compare,
    compare_crops,
    compare_pair,
    crop_box,
    load_methods,
    magnify,
    relabel_panels,
    results_table,
    show_pair,
    upscale,
)
from sr_app.upscalers import SCALE
from sr_app.weights import save_weights
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
    """The methods Compare picks at first (bicubic, EDSR, EDSR-SRGAN), loaded as the app loads them."""
    return load_methods(DEFAULTS, Settings(device="cpu", weights_dir=weights_dir))


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


def test_upscale_handler_gives_one_png_per_method(
    methods: list[LoadedMethod], image: np.ndarray, tmp_path: Path
) -> None:
    path = write_png(image, tmp_path / "my photo.png")
    outputs = upscale(str(path), UPSCALE, 16, 2, methods=methods)
    overview, *panels = outputs[: 1 + len(methods)]
    assert overview.shape == image.shape
    for method, panel in zip(methods, panels, strict=True):
        if method.upscaler is None:
            assert panel is None
            continue
        assert Path(panel).name == f"my_photo_{method.name}.png"
        np.testing.assert_array_equal(load_rgb(panel), method.upscaler(image))
    labels = [update["label"] for update in relabel_panels(outputs[-1], methods)]
    assert re.fullmatch(r"Bicubic · cpu · \d+ ms", labels[0]) and re.fullmatch(r"EDSR · cpu · \d+ ms", labels[1])
    assert labels[2] == "EDSR-SRGAN · unavailable"
    assert [update["label"] for update in relabel_panels(None, methods)][:3] == ["Bicubic", "EDSR", labels[2]]


def test_upscale_handler_outputs_in_order(methods: list[LoadedMethod], image: np.ndarray, tmp_path: Path) -> None:
    path = write_png(image, tmp_path / "in.png")
    table, crops, x, y, comparison = upscale(str(path), UPSCALE, 16, 2, methods=methods)[1 + len(methods) :]
    assert list(table["Method"]) == ["Bicubic", "EDSR"] and "PSNR (dB)" not in table
    assert [caption for _, caption in crops] == ["Input", "Bicubic", "EDSR"]
    assert (x, y) == (36 * SCALE // 2, 44 * SCALE // 2)
    assert isinstance(comparison, Comparison)
    # The slider keeps a valid choice and falls back to the default pair for names this run lacks.
    (before, after), left, right = show_pair(INPUT, ORIGINAL, comparison)
    assert (left, right) == (INPUT, "edsr")
    np.testing.assert_array_equal(load_rgb(before), magnify(image, SCALE))
    np.testing.assert_array_equal(load_rgb(after), comparison.outputs["edsr"])


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
        table = results_table(comparison, methods).set_index("Method")
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
    comparison = Comparison(lr, hr, outputs, {"bicubic": 0.0, "edsr": 0.0})
    overview, crops = compare_crops(30, 18, 8, 3, comparison)
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


def test_clicks_on_the_overview_map_to_output_pixels(methods: list[LoadedMethod], image: np.ndarray) -> None:
    comparison = compare(image, UPSCALE, methods[:1])
    event = gr.SelectData(None, {"index": [10, 20], "value": None, "selected": True})
    assert centre_from_overview(comparison, event) == (40, 80)


def test_before_after_pair(methods: list[LoadedMethod], image: np.ndarray) -> None:
    comparison = compare(image, UPSCALE, methods)
    before, after = compare_pair(INPUT, "edsr", comparison)
    np.testing.assert_array_equal(load_rgb(before), magnify(image, SCALE))
    np.testing.assert_array_equal(load_rgb(after), comparison.outputs["edsr"])
    assert compare_pair(INPUT, "edsr", comparison) == (before, after)  # encoded once, then reused
    with pytest.raises(gr.Error, match="Original.*only in Ground truth mode"):
        compare_pair("bicubic", ORIGINAL, comparison)
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
        upscale(None if content is None else str(path), mode, 64, 4, methods=methods, max_pixels=TEST_MAX_PIXELS)


# ---- the live app through gradio_client -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the app, live in this process, with the test weights, upload limit and a fresh data folder."""
    data_dir = tmp_path_factory.mktemp("data")
    demo = build_app(weights_dir=weights_dir, device="cpu", max_pixels=TEST_MAX_PIXELS, data_dir=data_dir)
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


def test_api_upscale_returns_lossless_pngs(
    client: Client, methods: list[LoadedMethod], image: np.ndarray, tmp_path: Path
) -> None:
    path = write_png(image, tmp_path / "in.png")
    outputs = client.predict(handle_file(str(path)), UPSCALE, api_name="/upscale")
    overview, *panels = outputs[: 1 + len(methods)]
    assert load_rgb(overview).shape == image.shape  # the input, with the crop box drawn at the centre
    for method, panel in zip(methods, panels, strict=True):
        if method.upscaler is None:
            assert panel is None
            continue
        assert Path(panel).suffix == ".png"
        np.testing.assert_array_equal(load_rgb(panel), method.upscaler(image))
    crops = client.predict(40, 60, 16, 2, api_name="/compare_crops")[1]
    assert [crop["caption"] for crop in crops] == ["Input", "Bicubic", "EDSR"]
    assert all(Path(crop["image"]).suffix == ".png" for crop in crops)
    bicubic = methods[0].upscaler(image)
    np.testing.assert_array_equal(load_rgb(crops[1]["image"]), magnify(bicubic[52:68, 32:48], 2))
    before, after = client.predict("bicubic", "edsr", api_name="/compare_pair")
    np.testing.assert_array_equal(load_rgb(before), bicubic)
    np.testing.assert_array_equal(load_rgb(after), methods[1].upscaler(image))


def test_api_ground_truth_mode(client: Client, methods: list[LoadedMethod], image: np.ndarray, tmp_path: Path) -> None:
    path = write_png(image, tmp_path / "original.png")
    outputs = client.predict(handle_file(str(path)), GROUND_TRUTH, api_name="/upscale")
    table = outputs[1 + len(methods)]
    assert table["headers"] == ["Method", "Device", "Time (ms)", "PSNR (dB)", "SSIM"]
    expected = compare(image, GROUND_TRUTH, methods).scores
    assert [row[3:] for row in table["data"]] == [[round(p, 2), round(s, 4)] for p, s in expected.values()]
    original, _ = client.predict(ORIGINAL, "edsr", api_name="/compare_pair")
    np.testing.assert_array_equal(load_rgb(original), image)  # 44×36 is already a multiple of 4


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


def test_api_bad_uploads_give_clear_errors_and_the_app_keeps_working(
    client: Client, image: np.ndarray, tmp_path: Path
) -> None:
    good = write_png(image, tmp_path / "good.png")
    for name, (path, message) in bad_uploads(tmp_path).items():
        with pytest.raises(Exception, match=message) as error:  # noqa: B017 - gradio_client raises AppError
            client.predict(handle_file(str(path)), UPSCALE, api_name="/upscale")
        assert "Traceback" not in str(error.value), name
        outputs = client.predict(handle_file(str(good)), UPSCALE, api_name="/upscale")
        assert load_rgb(outputs[1]).shape == (44 * SCALE, 36 * SCALE, 3), name


def test_modes_are_the_api_choices(client: Client) -> None:
    info = client.view_api(print_info=False, return_format="dict")
    endpoints = info["named_endpoints"]
    assert {"/upscale", "/compare_crops", "/compare_pair"} <= set(endpoints)
    mode = endpoints["/upscale"]["parameters"][1]
    assert mode["parameter_default"] == UPSCALE and set(mode["type"]["enum"]) == set(MODES)


# ---- a real browser -------------------------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.browser
def test_browser_ground_truth_run_and_click_to_zoom(app_url: str, tmp_path: Path) -> None:
    """Upload, run in ground-truth mode, click a panel: scores, labels and crops appear. Screenshot in /tmp."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    photo = load_rgb(EXAMPLES_DIR / "astronaut.png")
    upload = write_png(photo[10:90, 40:136], tmp_path / "face.png")  # 96×80: within the test's upload limit
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(app_url)
            page.locator("input[type=file]").first.set_input_files(str(upload))
            page.get_by_label("Ground truth").check()
            page.get_by_role("button", name="Upscale ×4").click()
            page.get_by_text("PSNR (dB)").wait_for(timeout=60_000)
            page.get_by_text("EDSR · cpu ·").wait_for(timeout=30_000)
            assert page.get_by_text("EDSR-SRGAN is unavailable").is_visible()
            centre_x = page.get_by_label("Centre x (output pixels)")
            assert centre_x.input_value() == "48"
            panel = page.locator("#panel-bicubic img")  # the 96×80 output, shown unscaled in the panel's centre
            box = panel.bounding_box()
            panel.click(position={"x": box["width"] / 2 - 20, "y": box["height"] / 2})
            page.wait_for_function("el => el.value !== '48'", arg=centre_x.element_handle(), timeout=30_000)
            assert abs(int(centre_x.input_value()) - 28) <= 1
            page.locator("#crops img").nth(3).wait_for(timeout=30_000)  # input, bicubic, EDSR, original
        finally:
            page.screenshot(path="/tmp/compare_ground_truth.png", full_page=True)
            browser.close()
