"""The Compare tab's viewer in a real browser (headless Chromium through Playwright): every view pans and zooms
together, keys flip the main view in place, 1:1 puts one PNG pixel on one device pixel (screenshots compared with the
served PNGs, at devicePixelRatio 1 and 2), full screen, labels; the rough edges around it; a comparison shared from
the page opens from its link after the app restarts. Skipped without Chromium at /usr/bin/chromium or the
``playwright`` package. Screenshots: /tmp/compare_viewer.png, /tmp/compare_shared.png."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import io
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from conftest import free_port, launch
from sr_app.comparison import UPSCALE
from sr_app.images import load_rgb
from sr_app.ui.compare import EXAMPLES_DIR, RUN_LABELS, SELF_ENSEMBLE_LABEL
from sr_app.ui.share import ID_PATTERN, SHARE_PARAM, shared_dir
from sr_app.ui.viewer import View, viewer_html

TIMEOUT_MS = 60_000
SCREENSHOT = Path("/tmp/compare_viewer.png")
#: Every image of the viewer, main view first (only the image it shows): [left, top, width, height] on screen.
RECTS_JS = """() => [...document.querySelectorAll('.srv-main img.srv-shown, .srv-strip img')].map(i => {
  const r = i.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })"""
LOADED_JS = """() => { const images = [...document.querySelectorAll('.srv img')];
  return images.length > 0 && images.every(image => image.complete && image.naturalWidth > 0); }"""
#: Nothing on the page is animating. Gradio fades a component in (``transition: all .15s`` from opacity 0.2) and its
#: progress overlay out when an event ends, and the results may appear during that fade: a screenshot taken then
#: shows the viewer dimmed or overlaid (about one run in five failed so before this wait).
SETTLED_JS = "() => document.getAnimations().every(animation => animation.playState !== 'running')"
#: Resolves once the page has not scrolled for 200 ms: the Compare tab's smooth scroll to the viewer after a run has
#: ended (a test's own scroll during it would be overridden).
SCROLLED_JS = """() => new Promise(done => {
  let last = null;
  const check = () => { if (last === scrollY) done(true); else { last = scrollY; setTimeout(check, 200); } };
  check();
})"""


def test_viewer_markup_labels_every_view_and_keys_the_first_nine(tmp_path: Path) -> None:
    views = [View(f"<M{i}> & co", tmp_path / f"{i}.png") for i in range(10)]
    markup = viewer_html(views, (40, 30), main=2)
    assert 'data-width="30" data-height="40" data-main="2"' in markup
    # label and alt text in the main view and in the strip, and the split view's two selects
    assert markup.count("&lt;M3&gt; &amp; co") == 6
    assert "<b>9</b> &lt;M8&gt;" in markup and "<b>10</b>" not in markup
    assert unquote(markup).count(f"gradio_api/file={tmp_path.resolve() / '9.png'}") == 2


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40×48 (height × width) crop of a real photo: outputs of 160×192."""
    path = tmp_path_factory.mktemp("upload") / "face.png"
    Image.fromarray(load_rgb(EXAMPLES_DIR / "astronaut.png")[30:70, 60:108]).save(path)
    return path


def open_page(browser, app_url: str, dpr: float):
    page = browser.new_page(viewport={"width": 1200, "height": 1000}, device_scale_factor=dpr)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app_url)
    return page


def run(page, upload: Path, button: str = RUN_LABELS[UPSCALE]) -> None:
    page.locator("input[type=file]").first.set_input_files(str(upload))
    page.get_by_role("button", name=button).click()
    page.get_by_text("Time and scores").wait_for()
    page.wait_for_function(LOADED_JS)
    page.wait_for_function(SETTLED_JS)
    page.evaluate(SCROLLED_JS)
    # The whole viewer on screen, scrolled by whole CSS pixels (a fractional scroll would resample the page).
    page.evaluate("() => scrollTo(0, Math.floor(document.querySelector('.srv').getBoundingClientRect().top + scrollY))")


def rects(page) -> np.ndarray:
    return np.array(page.evaluate(RECTS_JS))


def sources(page) -> list[str]:
    """The files the viewer's images show, main view first, as the server serves them."""
    return [
        unquote(src.split("file=", 1)[1]) for src in page.locator(".srv img").evaluate_all("i => i.map(x => x.src)")
    ]


def served_png(page, index: int) -> np.ndarray:
    """The PNG that the viewer's image ``index`` shows, read from the server's folder."""
    return load_rgb(sources(page)[index])


def assert_one_to_one(page, dpr: float) -> None:
    """The main view's image, screenshot in device pixels, equals its PNG pixel for pixel, edges included.

    The browser paints the view's content at the view's position rounded to whole CSS pixels, so the image can lie
    up to a CSS pixel from where layout puts it; it is looked for within that distance."""
    page.get_by_role("button", name="1:1").click()
    page.wait_for_function("() => document.querySelector('.srv-zoom').textContent === '1:1'")
    page.wait_for_function(SETTLED_JS)
    index = int(page.locator(".srv").get_attribute("data-main"))
    png = served_png(page, index)
    left, top, width, height = rects(page)[0]
    assert (width * dpr, height * dpr) == (png.shape[1], png.shape[0])  # one image pixel per device pixel
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot(scale="device"))).convert("RGB"))
    near = range(-round(dpr), round(dpr) + 1)
    found = [
        (y, x)
        for y in (round(top * dpr) + dy for dy in near)
        for x in (round(left * dpr) + dx for dx in near)
        if np.array_equal(shot[y : y + png.shape[0], x : x + png.shape[1]], png)
    ]
    assert len(found) == 1, f"the {png.shape[1]}×{png.shape[0]} PNG is not on screen unchanged near {left, top}"


@pytest.mark.browser
@pytest.mark.slow
def test_views_pan_zoom_and_flip_together_and_show_pixels_1_to_1(browser, app_url: str, photo: Path) -> None:
    page = open_page(browser, app_url, dpr=1)
    expect = pytest.importorskip("playwright.sync_api").expect
    try:
        expect(page.get_by_text("the results appear here")).to_be_visible()
        expect(page.get_by_text("Time and scores")).to_be_hidden()  # no empty table with headers 1 2 3
        page.get_by_label("Ground truth").check()
        expect(page.get_by_role("button", name=RUN_LABELS["Ground truth"])).to_be_visible(timeout=TIMEOUT_MS)
        page.get_by_label("Upscale", exact=True).check()
        run(page, photo)

        labels = page.locator(".srv-strip .srv-label").all_inner_texts()
        assert labels[0] == "1 Input" and re.fullmatch(r"2 Bicubic · cpu · \d+ ms", labels[1])
        assert re.fullmatch(r"3 EDSR · cpu · \d+ ms", labels[2]) and re.fullmatch(r"4 EDSR − Bicubic ×\d+", labels[3])
        assert len(labels) == 4
        expect(page.locator(".srv-main .srv-label.srv-shown")).to_have_text(labels[1])  # the first method

        # Drag the main view: every image moves by the drag.
        before = rects(page)
        main = page.locator(".srv-main").bounding_box()
        page.mouse.move(main["x"] + 300, main["y"] + 300)
        page.mouse.down()
        page.mouse.move(main["x"] + 240, main["y"] + 265, steps=4)
        page.mouse.up()
        np.testing.assert_allclose(rects(page) - before, [[-60, -35, 0, 0]] * 5, atol=0.5)
        # Zoom with the wheel over a small view: every image takes the same new scale.
        strip = page.locator(".srv-strip .srv-view").nth(2).bounding_box()
        page.mouse.move(strip["x"] + strip["width"] / 2, strip["y"] + strip["height"] / 2)
        page.mouse.wheel(0, -400)
        shown = "document.querySelector('.srv-main img.srv-shown').getBoundingClientRect().width"
        page.wait_for_function(f"() => {shown} > {before[0][2] * 1.5}")
        zoomed = rects(page)
        assert np.ptp(zoomed[:, 2]) < 1e-6 and zoomed[0, 2] > before[0, 2] * 1.5
        # Key 3 flips the main view to EDSR in place; a click on the strip flips it back.
        page.keyboard.press("3")
        expect(page.locator(".srv-main .srv-label.srv-shown")).to_have_text(labels[2])
        np.testing.assert_array_equal(rects(page)[0], zoomed[0])
        page.locator(".srv-strip .srv-view").nth(1).click()
        expect(page.locator(".srv-main .srv-label.srv-shown")).to_have_text(labels[1])
        page.keyboard.press("3")
        assert_one_to_one(page, dpr=1)
        expect(page.locator(".srv-zoom")).to_have_text("1:1")
        for _ in range(6):  # 1:1 doubled six times is capped at 16 device pixels per image pixel
            page.keyboard.press("+")
        expect(page.locator(".srv-zoom")).to_have_text("1600%")
        assert rects(page)[0, 2] == 16 * 192
        expect(page.locator(".srv-magnified")).to_have_count(1)  # nearest neighbour when magnified
        page.keyboard.press("0")
        expect(page.get_by_role("button", name="Fit")).to_have_attribute("aria-pressed", "true")

        page.keyboard.press("f")
        page.wait_for_function("() => document.fullscreenElement?.classList.contains('srv')")
        page.keyboard.press("f")
        page.wait_for_function("() => !document.fullscreenElement")
    finally:
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        page.close()


@pytest.mark.browser
@pytest.mark.slow
def test_one_to_one_on_a_high_density_screen(browser, app_url: str, photo: Path) -> None:
    page = open_page(browser, app_url, dpr=2)
    try:
        run(page, photo)
        assert_one_to_one(page, dpr=2)
    finally:
        page.close()


@pytest.mark.browser
@pytest.mark.slow
def test_a_bad_upload_is_one_message_and_no_error_badges(browser, app_url: str, tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"not an image")
    page = open_page(browser, app_url, dpr=1)
    expect = pytest.importorskip("playwright.sync_api").expect
    try:
        page.get_by_label(SELF_ENSEMBLE_LABEL).check()
        page.locator("input[type=file]").first.set_input_files(str(tmp_path / "bad.png"))
        page.get_by_role("button", name=RUN_LABELS[UPSCALE]).click()
        expect(page.get_by_text("not an image this app can read")).to_have_count(1, timeout=TIMEOUT_MS)
        expect(page.locator("[data-testid=status-tracker] .error")).to_have_count(0, timeout=TIMEOUT_MS)
        expect(page.get_by_text("the results appear here")).to_be_visible()
    finally:
        page.close()


@pytest.mark.browser
@pytest.mark.slow
def test_a_shared_link_opens_the_comparison_read_only_after_a_restart(browser, tmp_path: Path, photo: Path) -> None:
    """Share from the page, restart the app on the same data folder, open the link: the stored images, 1:1."""
    expect = pytest.importorskip("playwright.sync_api").expect
    data_dir, port, no_weights = tmp_path / "data", free_port(), tmp_path / "no-weights"  # bicubic only
    demo = launch(no_weights, data_dir, port)
    page = open_page(browser, demo.local_url, dpr=1)
    try:
        run(page, photo)
        page.get_by_role("button", name="Share").click()
        link = page.locator("#share-link textarea")
        prefix = f"{demo.local_url.rstrip('/')}/?{SHARE_PARAM}="
        expect(link).to_have_value(re.compile(re.escape(prefix) + ID_PATTERN.pattern + "$"), timeout=TIMEOUT_MS)
        url = link.input_value()

        demo.close()
        demo = launch(no_weights, data_dir, port)
        page.goto(url)
        expect(page.get_by_text("Shared comparison")).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.get_by_role("button", name=RUN_LABELS[UPSCALE])).to_be_hidden()
        expect(page.get_by_role("button", name="Share")).to_be_hidden()
        page.wait_for_function(LOADED_JS)
        page.wait_for_function(SETTLED_JS)
        stored = shared_dir(data_dir) / url.removeprefix(prefix)
        assert all(Path(path).parent == stored for path in sources(page))  # not Gradio's cache, not a temp folder
        assert page.locator(".srv-strip .srv-label").all_inner_texts()[0] == "1 Input"
        assert_one_to_one(page, dpr=1)
    finally:
        page.screenshot(path="/tmp/compare_shared.png", full_page=True)
        page.close()
        demo.close()
