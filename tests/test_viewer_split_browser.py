"""The viewer's difference views and split view in a real browser (headless Chromium through Playwright), on a wide
(1440×900) and a phone-sized (390×844) page: flipping to a difference image with its scale; the split view's two
images, labels and divider (dragged, and moved with the arrow keys), both halves showing the same region after a pan
(screenshot compared with the served PNGs at 1:1) and a zoom. Skipped without Chromium or ``playwright``.
Screenshots: /tmp/compare_split_<width>.png."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_app.comparison import GROUND_TRUTH
from sr_app.images import load_rgb
from sr_app.ui.compare import EXAMPLES_DIR, RUN_LABELS
from sr_app.ui.viewer import Scale, View, viewer_html
from tests.test_viewer_browser import LOADED_JS, SCROLLED_JS, SETTLED_JS, TIMEOUT_MS, sources

#: Pixels either side of the divider left out of pixel comparisons: its line and its round handle with its focus ring.
DIVIDER_HALF_WIDTH = 18
#: The two images of the main view in split mode: [left, top, width, height] on screen, the main image first.
SPLIT_RECTS_JS = """() => ['img.srv-shown', 'img.srv-right'].map(s => {
  const r = document.querySelector('.srv-main ' + s).getBoundingClientRect(); return [r.left, r.top, r.width, r.height];
})"""
#: The divider's centre on screen, in CSS pixels from the page's left edge.
DIVIDER_X_JS = """() => { const r = document.querySelector('.srv-divider').getBoundingClientRect();
  return r.left + r.width / 2; }"""


def ground_truth_run(page, url: str) -> None:
    """The 160×160 astronaut example in Ground-truth mode, the whole viewer scrolled into view."""
    page.goto(url)
    page.get_by_label("Ground truth").check()
    page.locator("input[type=file]").first.set_input_files(str(EXAMPLES_DIR / "astronaut.png"))
    page.get_by_role("button", name=RUN_LABELS[GROUND_TRUTH]).click()
    page.get_by_text("Time and scores").wait_for()
    page.wait_for_function(LOADED_JS)
    page.wait_for_function(SETTLED_JS)
    page.evaluate(SCROLLED_JS)
    page.evaluate("() => scrollTo(0, Math.floor(document.querySelector('.srv').getBoundingClientRect().top + scrollY))")


def assert_halves_show(page, left_png: np.ndarray, right_png: np.ndarray) -> None:
    """Left of the divider the screen shows ``left_png``, right of it ``right_png``, both at the main image's place
    (1:1, devicePixelRatio 1; the image may lie up to a CSS pixel from its layout position, as in
    ``test_viewer_browser.assert_one_to_one``)."""
    page.wait_for_function(SETTLED_JS)
    left, top, width, height = np.array(page.evaluate(SPLIT_RECTS_JS))[0]
    assert (width, height) == (left_png.shape[1], left_png.shape[0])
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))
    cut = round(page.evaluate(DIVIDER_X_JS))
    found = []
    for y in (round(top) + dy for dy in (-1, 0, 1)):
        for x in (round(left) + dx for dx in (-1, 0, 1)):
            region = shot[y : y + left_png.shape[0], x : x + left_png.shape[1]]
            split = cut - x  # the divider's column in image pixels
            assert DIVIDER_HALF_WIDTH < split < left_png.shape[1] - DIVIDER_HALF_WIDTH, "divider off the image"
            lo, hi = split - DIVIDER_HALF_WIDTH, split + DIVIDER_HALF_WIDTH
            if np.array_equal(region[:, :lo], left_png[:, :lo]) and np.array_equal(region[:, hi:], right_png[:, hi:]):
                found.append((y, x))
    assert len(found) == 1, f"the two halves are not the PNGs' same region near {left, top}"


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("viewport", [(1440, 900), (390, 844)], ids=["wide", "phone"])
def test_difference_views_and_a_split_view_in_sync_with_pan_and_zoom(
    browser, app_url: str, viewport: tuple[int, int]
) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]}, device_scale_factor=1)
    page.set_default_timeout(TIMEOUT_MS)
    try:
        ground_truth_run(page, app_url)
        labels = page.locator(".srv-strip .srv-label").all_inner_texts()
        assert [re.sub(r" ·.*", "", label) for label in labels[:4]] == ["1 Input", "2 Bicubic", "3 EDSR", "4 Original"]
        factor = re.fullmatch(r"5 Bicubic − Original ×(\d+)", labels[4])[1]
        assert labels[5:] == [f"6 EDSR − Original ×{factor}", "7 Bicubic SSIM map", "8 EDSR SSIM map"]

        # Key 5 flips the main view to bicubic's difference image, with its scale.
        page.keyboard.press("5")
        expect(page.locator(".srv-main .srv-label.srv-shown")).to_have_text(labels[4])
        scale = page.locator(".srv-main .srv-scale.srv-shown")
        expect(scale).to_be_visible()
        expect(scale).to_contain_text(f"≥ {-(-255 // int(factor))} of 255")
        shown = page.locator(".srv-main img.srv-shown").get_attribute("src")
        assert shown.endswith("_bicubic_minus_original.png")

        # Split: EDSR on the left, the original on the right, each labelled on its side.
        page.get_by_role("button", name="Split").click()
        expect(page.get_by_role("button", name="Split")).to_have_attribute("aria-pressed", "true")
        page.locator("select[data-side=left]").select_option("2")
        page.locator("select[data-side=right]").select_option("3")
        left_label = page.locator(".srv-main .srv-label.srv-shown")
        right_label = page.locator(".srv-main .srv-label.srv-right")
        expect(left_label).to_have_text(re.compile(r"3 EDSR"))
        expect(right_label).to_have_text("4 Original")
        expect(left_label).to_be_visible()
        expect(right_label).to_be_visible()
        main = page.locator(".srv-main").bounding_box()
        left_box, right_box = left_label.bounding_box(), right_label.bounding_box()
        assert left_box["x"] == pytest.approx(main["x"], abs=1)
        assert right_box["x"] + right_box["width"] == pytest.approx(main["x"] + main["width"], abs=1)

        # At 1:1, drag the divider onto the image: left of it EDSR's PNG, right of it the original's.
        page.get_by_role("button", name="1:1").click()
        page.wait_for_function("() => document.querySelector('.srv-zoom').textContent === '1:1'")
        image = page.locator(".srv-main img.srv-shown").bounding_box()
        divider = page.locator(".srv-divider")
        handle = divider.bounding_box()
        page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
        page.mouse.down()
        page.mouse.move(image["x"] + 60, handle["y"] + handle["height"] / 2, steps=5)
        page.mouse.up()
        assert page.evaluate(DIVIDER_X_JS) == pytest.approx(image["x"] + 60, abs=1)
        divider.focus()
        page.keyboard.press("ArrowRight")  # 2 % of the view's width
        assert page.evaluate(DIVIDER_X_JS) == pytest.approx(image["x"] + 60 + 0.02 * main["width"], abs=1)
        png = {index: load_rgb(path) for index, path in enumerate(sources(page)[:8])}
        assert_halves_show(page, png[2], png[3])

        # Pan (drag the image, away from the divider): both halves move together.
        page.mouse.move(image["x"] + 130, image["y"] + 80)
        page.mouse.down()
        page.mouse.move(image["x"] + 117, image["y"] + 71, steps=3)
        page.mouse.up()
        rects = np.array(page.evaluate(SPLIT_RECTS_JS))
        np.testing.assert_allclose(rects[0] - [image["x"], image["y"], 160, 160], [-13, -9, 0, 0], atol=0.5)
        np.testing.assert_array_equal(rects[0], rects[1])
        assert_halves_show(page, png[2], png[3])

        # Zoom: both images keep one transform; the right one is cut at the divider.
        page.keyboard.press("+")
        expect(page.locator(".srv-zoom")).to_have_text("200%")
        transforms = page.locator(".srv-main img").evaluate_all("i => i.map(x => x.style.transform)")
        assert len(set(transforms)) == 1
        rects = np.array(page.evaluate(SPLIT_RECTS_JS))
        np.testing.assert_array_equal(rects[0], rects[1])
        cut = page.locator(".srv-main img.srv-right").evaluate("i => parseFloat(i.style.clipPath.split(' ').pop())")
        assert rects[1][0] + cut * 2 == pytest.approx(page.evaluate(DIVIDER_X_JS), abs=1)
        page.wait_for_function(SETTLED_JS)
    finally:
        page.screenshot(path=f"/tmp/compare_split_{viewport[0]}.png", full_page=True)
        page.close()


def test_the_markup_shows_scales_and_offers_every_image_on_both_sides(tmp_path: Path) -> None:
    views = [View("EDSR", tmp_path / "a.png"), View("EDSR − Original ×4", tmp_path / "b.png", Scale("0", "≥ 64", "n"))]
    markup = viewer_html(views, (8, 8))
    assert markup.count('class="srv-scale"') == 1 and "0 <i></i> ≥ 64 <small>n</small>" in markup
    assert markup.count("<option") == 4 and 'role="separator"' in markup
