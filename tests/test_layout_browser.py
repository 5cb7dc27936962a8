"""The app's layout for a newcomer in a real browser (headless Chromium through Playwright), on a desktop (1440×900)
and a phone (390×844, device scale 3, touch): after Upscale on a bundled example the viewer is in view; the results
tables of Compare (Ground truth: every column) and Folder fit their box or scroll inside it, never cut off the page;
the strip's thumbnails are tap targets at least 44 CSS px high with their captions inside them, and so are the
toolbar's buttons on the phone. Skipped without
Chromium or ``playwright``. Screenshots go to the test's ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

import pytest

from sr_app.comparison import GROUND_TRUTH, UPSCALE
from sr_app.folder import MEAN
from sr_app.ui.compare import RUN_LABELS
from sr_app.ui.folder import RUN_LABEL
from tests.test_viewer_browser import LOADED_JS, SCROLLED_JS, SETTLED_JS, TIMEOUT_MS

#: Smallest height of a tap target on a phone, in CSS pixels.
TAP_TARGET = 44
#: How the table in the element ``#<id>`` shows its columns: the page's width and scroll width, the right edge of the
#: box it is shown in, and the nearest box that scrolls it sideways (its width, scroll width, overflow-x), if any.
TABLE_JS = """(id) => {
  const table = document.querySelector(`#${id} table`);
  const block = document.getElementById(id).getBoundingClientRect();
  let scroller = table.parentElement;
  while (scroller && !['auto', 'scroll'].includes(getComputedStyle(scroller).overflowX)) {
    scroller = scroller.parentElement;
  }
  const cells = [...table.querySelectorAll('th')].map(th => th.getBoundingClientRect().right);
  return {page: [innerWidth, document.documentElement.scrollWidth], block: [block.left, block.right],
    right: Math.max(...cells), scroller: scroller && [scroller.getBoundingClientRect().left,
      scroller.getBoundingClientRect().right, scroller.clientWidth, scroller.scrollWidth]};
}"""
#: Each thumbnail of the strip: its box's height and width, its caption's width and font size, in CSS pixels.
THUMBS_JS = """(id) => [...document.querySelectorAll(`#${id} .srv-strip .srv-view`)].map(view => {
  const label = view.querySelector('.srv-label');
  return [view.getBoundingClientRect().height, view.getBoundingClientRect().width,
    label.getBoundingClientRect().width, parseFloat(getComputedStyle(label).fontSize)];
})"""
#: The height and width of each button of the viewer's toolbar, in CSS pixels.
BUTTONS_JS = """(id) => [...document.querySelectorAll(`#${id} .srv-bar button`)].map(button => {
  const box = button.getBoundingClientRect();
  return [button.textContent, box.height, box.width];
})"""
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1440, "height": 900}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        **{"device_scale_factor": 3, "is_mobile": True, "has_touch": True},
    },
}


def settle(page) -> None:
    """Wait until the viewer's images are loaded and nothing moves: no fade, no scroll."""
    page.wait_for_function(LOADED_JS)
    page.wait_for_function(SETTLED_JS)
    page.evaluate(SCROLLED_JS)


def assert_viewer_in_view(page) -> None:
    """The viewer's top (within a pixel: a scroll may stop between pixels) and its whole main view lie within the
    window."""
    viewer = page.locator("#viewer").bounding_box()
    main = page.locator("#viewer .srv-main").bounding_box()
    height = page.viewport_size["height"]
    assert -1 <= viewer["y"] < height, f"the viewer's top is at {viewer['y']:.0f} px in a window {height} px high"
    assert main["y"] + main["height"] <= height + 1, f"the main view ends at {main['y'] + main['height']:.0f} px"


def assert_table_reachable(page, elem_id: str) -> None:
    """Every column of the table ``#elem_id`` is on screen, or in a box inside the page that scrolls sideways."""
    shown = page.evaluate(TABLE_JS, elem_id)
    width, page_width = shown["page"]
    assert page_width <= width, f"the page is {page_width} px wide in a window {width} px wide"
    assert shown["block"][1] <= width
    if shown["right"] > shown["block"][1] + 1:  # the table is wider than its box: its box must scroll
        assert shown["scroller"] is not None, f"#{elem_id}: columns cut at {shown['block'][1]:.0f} px, no scrolling"
        left, right, client_width, scroll_width = shown["scroller"]
        assert left >= 0 and right <= width and scroll_width > client_width, shown


def assert_thumbnails_usable(page, elem_id: str) -> None:
    """Each thumbnail is a tap target at least ``TAP_TARGET`` px high whose caption fits it, in a readable size."""
    thumbs = page.evaluate(THUMBS_JS, elem_id)
    assert thumbs, "no thumbnails"
    for height, width, label_width, font_size in thumbs:
        assert height >= TAP_TARGET and label_width <= width + 0.5 and font_size >= 12, thumbs


def assert_buttons_tappable(page, elem_id: str) -> None:
    """Each button of the viewer's toolbar is at least ``TAP_TARGET`` px high and wide."""
    buttons = page.evaluate(BUTTONS_JS, elem_id)
    assert buttons, "no toolbar buttons"
    small = [b for b in buttons if min(b[1], b[2]) < TAP_TARGET]
    assert not small, f"buttons smaller than {TAP_TARGET} px: {small}"


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("screen", list(VIEWPORTS))
def test_a_newcomer_sees_the_viewer_and_every_column_after_a_run(
    browser, app_url: str, screen: str, tmp_path: Path
) -> None:
    page = browser.new_page(**VIEWPORTS[screen])
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(app_url)
        page.get_by_role("button", name="astronaut").click()  # a bundled example
        page.locator("a[href*='astronaut']").first.wait_for()  # its link in the Image box
        page.get_by_role("button", name=RUN_LABELS[UPSCALE]).click()
        page.get_by_text("Time and scores").wait_for()
        settle(page)
        page.screenshot(path=str(tmp_path / f"compare_{screen}.png"))
        assert_viewer_in_view(page)
        assert_thumbnails_usable(page, "viewer")
        if screen == "phone":
            assert_buttons_tappable(page, "viewer")
        assert_table_reachable(page, "results-table")

        # Ground truth: the table's every column (time, PSNR, SSIM) and eight thumbnails with longer captions.
        page.evaluate("() => scrollTo(0, 0)")
        page.get_by_label("Ground truth").check()
        page.get_by_role("button", name=RUN_LABELS[GROUND_TRUTH]).click()
        page.wait_for_function("() => document.querySelectorAll('#viewer .srv-strip .srv-view').length === 8")
        settle(page)
        assert_viewer_in_view(page)
        assert_thumbnails_usable(page, "viewer")
        assert_table_reachable(page, "results-table")
        page.locator("#results-table").scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / f"compare_ground_truth_{screen}.png"), full_page=True)

        # Folder: the bundled examples, one image's row in the viewer.
        page.get_by_role("tab", name="Folder").click()
        page.get_by_role("button", name=RUN_LABEL).click()
        table = page.locator("#folder-table")
        table.get_by_text(MEAN).first.wait_for()
        page.wait_for_function(SETTLED_JS)
        assert_table_reachable(page, "folder-table")
        table.get_by_text("chelsea").first.click()
        page.locator("#folder-viewer .srv").wait_for()
        settle(page)
        assert_thumbnails_usable(page, "folder-viewer")
        page.screenshot(path=str(tmp_path / f"folder_{screen}.png"), full_page=True)
    finally:
        page.close()
