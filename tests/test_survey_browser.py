"""The rater page and the Results tab of the app in a real browser: headless Chromium driven by Playwright, first as
a rater on a desktop (an old ``/?study=`` link, calibration, keys and buttons, a reload and an app restart midway,
never a method name on the page, the completion code at the end), then as the study's owner. Skipped without Chromium
at /usr/bin/chromium (Debian: ``apt-get install chromium``) or the ``playwright`` package; Playwright's own browser
downloads are never used. Screenshots: /tmp/survey_rating.png and /tmp/survey_results.png (the last page shown, if
the test fails). Phones and pair comparisons: ``test_survey_rater_browser.py``."""

import re
from pathlib import Path
from urllib.parse import urlsplit

import gradio as gr
import pytest
from sqlalchemy import select as sql_select

from conftest import CHROMIUM
from sr_app.methods import REGISTRY
from survey.creation import create_study
from survey.db import NEAREST, REFERENCE, Condition, Rating, SourceImage, Stimulus, Store
from survey.report import BY_METHOD, method_title
from survey.ui.rate import BlocksWithRaterPage
from survey.ui.results import LEAVE_OUT, build_results_tab
from tests.survey_fixtures import blank_random_ids, image_folder, tmp_store

FORBIDDEN = re.compile("|".join([*REGISTRY, NEAREST, REFERENCE]), re.IGNORECASE)
PASSWORD = "password"
TIMEOUT_MS = 30_000
RATING_SCREENSHOT, RESULTS_SCREENSHOT = Path("/tmp/survey_rating.png"), Path("/tmp/survey_results.png")
CODE = "DESK-0K"
#: The shown photo's [natural size, displayed size] once it has loaded, else null; and whether it lies whole inside
#: its frame and the window.
STIMULUS_SIZES_JS = """() => {
  const i = document.querySelector('#frames img');
  if (!i || !i.complete || !i.naturalWidth) return null;
  const box = i.getBoundingClientRect(), frame = i.closest('.frame').getBoundingClientRect();
  const whole = box.left >= frame.left && box.right <= frame.right && box.top >= frame.top &&
    box.bottom <= frame.bottom && frame.bottom <= window.innerHeight;
  return [[i.naturalWidth, i.naturalHeight], [box.width, box.height], whole];
}"""


def shown_row(*cells: object) -> re.Pattern[str]:
    """The accessible name of a table row starting with ``cells`` (``None``: any value), numbers as the Results tab
    shows them (3 decimals, no trailing zeros)."""
    shown = [r"\S+" if c is None else re.escape(f"{round(c, 3):g}" if isinstance(c, float) else str(c)) for c in cells]
    return re.compile("^" + " ".join(shown) + "( |$)")


def survey_app(store: Store, password: str) -> gr.Blocks:
    """The Results tab behind another tab, and the rater page, as in the app."""
    with BlocksWithRaterPage(store) as demo, gr.Tabs():
        with gr.Tab("Compare", id="compare"):
            gr.Markdown("Another tab comes first, as in the app.")
        with gr.Tab("Results"):
            build_results_tab(store, password)
    demo.queue(default_concurrency_limit=1)
    return demo


@pytest.mark.browser
@pytest.mark.slow
def test_a_rater_follows_an_old_link_rates_by_keys_reloads_and_finishes_then_the_owner_sees_the_results(
    tmp_path: Path,
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    expect = playwright.expect
    store = tmp_store(tmp_path)
    study = create_study(
        store, "browser", image_folder(tmp_path / "hr", n_images=2), ["bicubic"], reference=True, anchors=True,
        completion_code=CODE,
    )  # fmt: skip
    demo = survey_app(store, PASSWORD)

    def assert_blind(page) -> None:
        """Nothing on the page, visible or not (markup, image addresses, title), names a condition."""
        html = blank_random_ids(page.content())
        assert not FORBIDDEN.search(html), FORBIDDEN.search(html)

    def rated(page, done: int) -> None:
        expect(page.locator("progress")).to_have_js_property("value", done, timeout=TIMEOUT_MS)
        expect(page.get_by_text(f"{done} of 6 rated")).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.locator("#controls button").first).to_be_enabled(timeout=TIMEOUT_MS)

    try:
        _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True)
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            try:
                # An old rater link leads to the rater page, welcome: instructions and the calibration pair.
                page.goto(f"{url}?study={study.public_id}")
                assert urlsplit(page.url).path == f"/rate/{study.public_id}"
                expect(page.get_by_text("Example of 5 Excellent", exact=True)).to_be_visible(timeout=TIMEOUT_MS)
                expect(page.get_by_text("Example of 1 Bad", exact=True)).to_be_visible()
                expect(page.get_by_role("tab")).to_have_count(0)  # no lab around it
                assert_blind(page)
                page.get_by_role("button", name="Start").click()
                rated(page, 0)
                natural, shown, whole = page.wait_for_function(STIMULUS_SIZES_JS).json_value()
                assert natural == shown == [36, 32] and whole  # full resolution, all of it on the screen
                assert_blind(page)
                page.screenshot(path=str(RATING_SCREENSHOT), full_page=True)

                page.keyboard.press("4")
                rated(page, 1)
                page.reload()
                rated(page, 1)  # resumed at the same place, not welcomed again
                expect(page.get_by_role("button", name="Start")).to_be_hidden()
                assert_blind(page)
                for done in range(2, 6):
                    page.keyboard.press("3")
                    rated(page, done)
                    assert_blind(page)
                    if done == 3:  # the app restarts (same address): the rater resumes where they were
                        demo.close()
                        demo = survey_app(store, PASSWORD)
                        demo.launch(server_port=urlsplit(url).port, prevent_thread_lock=True, quiet=True)
                        page.reload()
                        rated(page, 3)
                page.get_by_role("button", name="5 Excellent").click()
                expect(page.get_by_text("Thank you")).to_be_visible(timeout=TIMEOUT_MS)
                expect(page.locator("#code")).to_have_text(CODE)
                assert_blind(page)

                # The study's owner, on the Results tab: every rating counted, MOS per condition as stored.
                page.goto(url)
                page.get_by_role("tab", name="Results").click()
                page.get_by_label("Admin password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                expect(page.get_by_label("Study")).to_have_value("browser", timeout=TIMEOUT_MS)
                page.get_by_label(LEAVE_OUT).uncheck()  # keys answer fast: the rater is rejected as too fast
                page.get_by_role("button", name="Show results").click()
                summary = re.compile(r"\b1 raters? \(1 finished\); 6 ratings\b")
                expect(page.get_by_text(summary)).to_be_visible(timeout=TIMEOUT_MS)
                with store.session() as session:
                    scores = session.execute(
                        sql_select(SourceImage.name, Condition.name, Rating.score)
                        .join(Stimulus, Rating.stimulus_id == Stimulus.id)
                        .join(SourceImage, Stimulus.image_id == SourceImage.id)
                        .join(Condition, Stimulus.condition_id == Condition.id)
                    ).all()
                by_condition: dict[str, list[int]] = {}
                for _, condition, score in scores:
                    by_condition.setdefault(condition, []).append(score)
                assert sorted(by_condition) == sorted(["bicubic", NEAREST, REFERENCE])
                chart = page.locator("svg[aria-label^='MOS per method']")
                mos_table = page.get_by_role("grid", name=BY_METHOD)
                for condition, condition_scores in by_condition.items():
                    mos = sum(condition_scores) / len(condition_scores)
                    expect(chart).to_contain_text(method_title(condition), timeout=TIMEOUT_MS)
                    expect(chart).to_contain_text(f"{mos:.2f}")
                    cells = (
                        method_title(condition),
                        mos,
                        None,
                        len(condition_scores),
                        1,
                        None,
                        None,
                        None,
                        None,
                        "all",
                    )
                    row = shown_row(*cells)
                    expect(mos_table.get_by_role("row", name=row)).to_have_count(1)
                by_image = page.get_by_role("grid", name="MOS per image × method")
                for image, condition, score in scores:  # one rating each: the table shows the rating itself
                    row = shown_row(image, method_title(condition), score)
                    expect(by_image.get_by_role("row", name=row)).to_have_count(1)
            finally:
                page.screenshot(path=str(RESULTS_SCREENSHOT), full_page=True)
                browser.close()
    finally:
        demo.close()
    with store.session() as session:
        assert session.scalars(sql_select(Rating.score).order_by(Rating.id)).all() == [4, 3, 3, 3, 3, 5]
