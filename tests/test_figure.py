"""The figure of a comparison (:mod:`sr_app.figure`) and its Export figure button and ``/export_figure`` endpoint: the
crops are the output PNGs' box magnified by nearest neighbour, captioned with display titles and in ground-truth mode
with PSNR/SSIM; PNG and PDF; the endpoint's limits; in a real browser at a desktop and a phone size. Screenshots of
the browser test: /tmp/compare_figure_<width>.png."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from conftest import free_port, launch
from sr_app.comparison import GROUND_TRUTH, UPSCALE, Comparison, crop_box, draw_box
from sr_app.figure import Figure, Panel, compose_figure
from sr_app.images import load_rgb
from sr_app.resize import magnify
from sr_app.ui.compare import EXAMPLES_DIR, RUN_LABELS, export_figure
from sr_app.ui.saved import Saved, save
from sr_app.upscalers import SCALE
from tests.test_viewer_browser import LOADED_JS, SETTLED_JS, TIMEOUT_MS

NAMES = ("bicubic", "edsr_srgan")
SCORES = {"bicubic": (27.4567, 0.81234), "edsr_srgan": (29.1, 0.87)}


def comparison(ground_truth: bool) -> Comparison:
    """Random 12×10 inputs of two methods (outputs 48×40), with an original and scores in ground-truth mode."""
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    outputs = {name: rng.integers(0, 256, (48, 40, 3), dtype=np.uint8) for name in NAMES}
    hr = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8) if ground_truth else None
    return Comparison(lr, hr, outputs, dict.fromkeys(NAMES, 0.1), scores=SCORES if ground_truth else {}, stem="cup")


def figure_of(saved: Saved, box: tuple[int, int, int, int], zoom: int, scores: bool = True) -> Figure:
    """The figure as the Compare tab composes it, from the session's PNG files."""
    overview, scale = saved.overview()
    panels = [
        Panel(saved.region(name, box), saved.titles[name], saved.scores.get(name) if scores else None)
        for name in saved.names
    ]
    return compose_figure(overview, scale, box, panels, zoom)


def part(figure: Figure | np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
    left, top, width, height = rect
    return np.asarray(figure.image if isinstance(figure, Figure) else figure)[top : top + height, left : left + width]


def test_crops_are_the_output_pngs_box_magnified_and_titled() -> None:
    saved = save(comparison(ground_truth=True))
    box = crop_box(20, 24, 16, saved.size)
    figure = figure_of(saved, box, zoom=3)
    top, left, height, width = box
    assert len(figure.crops) == len(saved.names) == 4
    for name, rect in zip(saved.names, figure.crops, strict=True):
        region = load_rgb(saved.files[name])[top : top + height, left : left + width]
        np.testing.assert_array_equal(part(figure, rect), magnify(region, 3))
    # The overview: the original with the box drawn, magnified by nearest neighbour to about the crops' height.
    overview = part(figure, figure.overview)
    factor = overview.shape[0] // 48
    assert factor >= 2 and overview.shape[:2] == (48 * factor, 40 * factor)
    np.testing.assert_array_equal(overview, magnify(draw_box(load_rgb(saved.files["original"]), box), factor))
    # Titles, never registry keys; PSNR/SSIM as the results table rounds them, under the methods only.
    assert figure.captions == [
        ["Input"],
        ["Bicubic", "PSNR 27.46 dB · SSIM 0.8123"],
        ["EDSR-SRGAN", "PSNR 29.10 dB · SSIM 0.8700"],
        ["Original"],
    ]
    table = saved.table.set_index("Method")
    assert (table.loc["Bicubic", "PSNR (dB)"], table.loc["Bicubic", "SSIM"]) == (27.46, 0.8123)


def text_lines_under(figure: Figure, rect: tuple[int, int, int, int]) -> int:
    """How many lines of text are written under the crop at ``rect``: runs of rows with dark pixels."""
    left, top, width, height = rect
    dark = (part(figure, (left, top + height, width, figure.image.height - top - height)) < 128).any(axis=(1, 2))
    return int(dark[0]) + int((dark[1:] & ~dark[:-1]).sum())


def test_scores_are_written_under_the_crops_of_methods_only() -> None:
    saved = save(comparison(ground_truth=True))
    box = crop_box(20, 24, 16, saved.size)
    scored, plain = figure_of(saved, box, zoom=4), figure_of(saved, box, zoom=4, scores=False)
    assert plain.captions == [["Input"], ["Bicubic"], ["EDSR-SRGAN"], ["Original"]]
    assert [text_lines_under(scored, rect) for rect in scored.crops] == [1, 2, 2, 1]
    assert [text_lines_under(plain, rect) for rect in plain.crops] == [1, 1, 1, 1]
    assert scored.image.height > plain.image.height


def test_upscale_mode_shows_the_input_and_no_scores() -> None:
    saved = save(comparison(ground_truth=False))
    box = crop_box(20, 24, 8, saved.size)
    figure = figure_of(saved, box, zoom=2)
    assert figure.captions == [["Input"], ["Bicubic"], ["EDSR-SRGAN"]]
    overview = part(figure, figure.overview)
    factor = overview.shape[0] // 12
    np.testing.assert_array_equal(overview, magnify(draw_box(comparison(False).lr, box, SCALE), factor))


def exported(*inputs: object) -> list[Path]:
    """The files :func:`export_figure` offers for download."""
    return [Path(file) for file in export_figure(*inputs)]


def test_export_writes_the_figure_as_png_and_pdf() -> None:
    saved = save(comparison(ground_truth=True))
    png, pdf = exported(20, 24, 16, 3, saved)
    assert (png.name, pdf.name) == ("cup_figure.png", "cup_figure.pdf")
    expected = np.asarray(figure_of(saved, crop_box(20, 24, 16, saved.size), zoom=3).image)
    np.testing.assert_array_equal(load_rgb(png), expected)
    # The PDF: one page holding the figure (as the highest-quality JPEG Pillow's PDF writer stores).
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF") and data.count(b"/Type /Page\n") == 1
    embedded = data[data.index(b"\xff\xd8") : data.rindex(b"\xff\xd9") + 2]
    with Image.open(io.BytesIO(embedded)) as image:
        assert image.size == (expected.shape[1], expected.shape[0])
        assert np.abs(np.asarray(image.convert("RGB"), dtype=int) - expected).mean() < 2
    # No x, y: the centre box.
    centre = load_rgb(exported(None, None, 16, 3, saved)[0])
    np.testing.assert_array_equal(centre, figure_of(saved, crop_box(20, 24, 16, saved.size), zoom=3).image)


def test_export_refuses_out_of_range_requests_with_a_message() -> None:
    saved = save(comparison(ground_truth=True))
    for crop_size, zoom in [(1024, 1), (2, 1), (64, 0), (64, 17), (256, 16)]:
        with pytest.raises(gr.Error, match=f"crop_size must be 4 to 512 .* got crop_size {crop_size} and zoom {zoom}"):
            export_figure(20, 24, crop_size, zoom, saved)
    for x, y in [(float("inf"), 24), (20, float("nan")), (-float("inf"), None)]:
        with pytest.raises(gr.Error, match="x and y must be finite numbers"):
            export_figure(x, y, 16, 3, saved)
    with pytest.raises(gr.Error, match="Upscale an image first"):
        export_figure(20, 24, 16, 3, None)


# ---- the live app ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The whole app without weights: Compare runs bicubic only."""
    demo = launch(tmp_path_factory.mktemp("no-weights"), tmp_path_factory.mktemp("data"), free_port())
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 48×40 crop of a real photo, the original of a ground-truth comparison (outputs 48×40)."""
    path = tmp_path_factory.mktemp("upload") / "face.png"
    Image.fromarray(load_rgb(EXAMPLES_DIR / "astronaut.png")[30:78, 60:100]).save(path)
    return path


def served_figure(files: list[np.ndarray], titles: list[str], scores: list, overview: np.ndarray, scale: int,
                  box: tuple[int, int, int, int], zoom: int) -> np.ndarray:  # fmt: skip
    """The figure composed from the images the server gave (at the output size, in the order of the views)."""
    top, left, height, width = box
    panels = [
        Panel(file[top : top + height, left : left + width], title, score)
        for file, title, score in zip(files, titles, scores, strict=True)
    ]
    return np.asarray(compose_figure(overview, scale, box, panels, zoom).image)


@pytest.mark.slow
def test_export_figure_endpoint(app_url: str, upload: Path) -> None:
    client = Client(app_url, verbose=False)
    files, table = client.predict(handle_file(str(upload)), GROUND_TRUTH, ["bicubic"], False, api_name="/upscale")
    png, pdf = client.predict(20, 24, 16, 3, api_name="/export_figure")
    assert (Path(png).name, Path(pdf).name) == ("face_figure.png", "face_figure.pdf")
    assert Path(pdf).read_bytes().startswith(b"%PDF")
    images = [load_rgb(file) for file in files]  # input (×4), bicubic, original
    (method, _, _, psnr, ssim), *_ = table["data"]
    assert method == "Bicubic"
    titles, scores = ["Input", "Bicubic", "Original"], [None, (psnr, ssim), None]
    box = crop_box(20, 24, 16, (48, 40))
    np.testing.assert_array_equal(load_rgb(png), served_figure(images, titles, scores, images[2], 1, box, 3))
    centre = client.predict(None, None, 16, 3, api_name="/export_figure")[0]  # (20, 24) is the centre of 40×48
    np.testing.assert_array_equal(load_rgb(centre), load_rgb(png))
    for crop_size, zoom in [(16, 17), (1024, 1), (512, 16)]:
        with pytest.raises(Exception, match=f"crop_size must be 4 to 512 .* zoom {zoom}"):  # noqa: B017 - AppError
            client.predict(20, 24, crop_size, zoom, api_name="/export_figure")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("viewport", [(1440, 900), (390, 844)], ids=["desktop", "phone"])
def test_export_figure_button_downloads_the_png_and_the_pdf(
    browser, app_url: str, upload: Path, viewport: tuple[int, int], tmp_path: Path
) -> None:
    """Zoom the viewer in, export: the figure of the box the main view shows, magnified as on screen."""
    width, height = viewport
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(app_url)
        page.locator("input[type=file]").first.set_input_files(str(upload))
        page.get_by_role("button", name=RUN_LABELS[UPSCALE]).click()
        page.get_by_text("Time and scores").wait_for()
        page.wait_for_function(LOADED_JS)
        page.wait_for_function(SETTLED_JS)
        page.locator(".srv-main").scroll_into_view_if_needed()
        page.get_by_role("button", name="+").click()
        camera = page.locator("#viewer .srv").evaluate("r => ({...r.dataset})")
        page.get_by_role("button", name="Export figure").click()
        links = page.locator("#figure a[download]")
        links.nth(1).wait_for()
        page.wait_for_function(SETTLED_JS)
        page.screenshot(path=f"/tmp/compare_figure_{width}.png", full_page=True)
        downloads = []
        for i in range(2):
            with page.expect_download() as download:
                links.nth(i).click()
            downloads.append(tmp_path / download.value.suggested_filename)
            download.value.save_as(downloads[-1])
        png, pdf = downloads
        assert (png.name, pdf.name) == ("face_figure.png", "face_figure.pdf")
        assert pdf.read_bytes().startswith(b"%PDF")

        side = min(512, round(float(camera["side"])))
        zoom = max(1, min(16, 2048 // side, round(float(camera["magnification"]))))
        box = crop_box(float(camera["cx"]), float(camera["cy"]), side, (192, 160))
        assert box[2] < 160 and zoom > 1  # zoomed in: a part of the image, magnified
        files = page.locator(".srv-strip img").evaluate_all("images => images.map(image => image.src)")
        images = [load_rgb(unquote(src.split("file=", 1)[1])) for src in files]  # input (×4), bicubic
        expected = served_figure(images, ["Input", "Bicubic"], [None, None], load_rgb(upload), SCALE, box, zoom)
        np.testing.assert_array_equal(load_rgb(png), expected)
    finally:
        page.close()
