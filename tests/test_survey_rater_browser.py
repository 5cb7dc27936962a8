"""The rater page in a real browser (headless Chromium driven by Playwright): a whole ACR study on a 390×844 phone
with photos wider than the screen, and whole pair comparisons on the phone (flipped by taps, keys and the Flip button)
and on a desktop (side by side). Every photo is shown one image pixel per CSS pixel, never scaled down, fully visible
or pannable; the answer buttons stay on the screen; nothing on the page names a method or the lab; the completion code
shows at the end. The page waits out a study's minimum viewing time before it lets a rater answer, and shows a refusal
(too many requests) on its error line. Skipped without Chromium at /usr/bin/chromium or the ``playwright`` package.
Screenshots go to /tmp/survey_rater_*.png."""

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from survey.creation import create_study
from survey.db import LEFT, PC, RIGHT, SIDE_BY_SIDE, TIE, Choice, Rating, Store
from survey.ui.rate import app_kwargs
from survey.ui.rater_requests import RateLimits
from tests.survey_fixtures import blank_random_ids, image_folder
from tests.test_survey_rater_page import FORBIDDEN

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TIMEOUT_MS = 30_000
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
CODE = "PHONE-DONE-42"
#: Where the shown photos are: [natural width, natural height, width and height on the page, CSS pixels] per photo,
#: and for each of their frames [client width, client height, scroll width, scroll height]; the answer buttons'
#: [top, bottom]; the window's inner height, and how far the page itself scrolls.
LAYOUT_JS = """() => ({
  photos: [...document.querySelectorAll("#frames img")].map((img) => {
    const box = img.getBoundingClientRect();
    return [img.naturalWidth, img.naturalHeight, box.width, box.height];
  }),
  frames: [...document.querySelectorAll("#frames .frame")].map((f) => [f.clientWidth, f.clientHeight,
    f.scrollWidth, f.scrollHeight]),
  frameBoxes: [...document.querySelectorAll("#frames .frame")].map((f) => {
    const box = f.getBoundingClientRect();
    return [box.left, box.top, box.right, box.bottom];
  }),
  buttons: [...document.querySelectorAll("#controls button")].map((b) => {
    const box = b.getBoundingClientRect();
    return [box.top, box.bottom];
  }),
  height: window.innerHeight,
  pageScroll: document.documentElement.scrollHeight - window.innerHeight,
})"""
#: Which version of a flipped pair shows: the visibility of versions A and B, and whether they sit at one place.
FLIP_JS = """() => {
  const [a, b] = ["a", "b"].map((v) => document.querySelector("#frames img." + v));
  const [boxA, boxB] = [a, b].map((img) => img.getBoundingClientRect());
  return [getComputedStyle(a).visibility, getComputedStyle(b).visibility,
          boxA.left === boxB.left && boxA.top === boxB.top];
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(store: Store, limits: RateLimits) -> Iterator[str]:
    """The rater page of ``store``'s studies with ``limits``, served by uvicorn in a thread (as under the app, without
    Gradio); its address."""
    server = uvicorn.Server(uvicorn.Config(FastAPI(**app_kwargs(store, limits)), port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture()
def url(store: Store) -> Iterator[str]:
    """The rater page without a limit on answers: the tests answer as fast as the page lets them."""
    with serve(store, RateLimits(answer=None)) as address:
        yield address


def expect():
    return pytest.importorskip("playwright.sync_api").expect


def assert_blind(page) -> None:
    """Nothing on the page, visible or not (markup, addresses, title), names a condition or the lab."""
    html = blank_random_ids(page.content())
    assert not FORBIDDEN.search(html), FORBIDDEN.search(html)


def answered(page, done: int, total: int, verb: str) -> None:
    """Wait until the page says ``done`` of ``total`` are answered and the photo is on screen to answer."""
    expect()(page.locator("#count")).to_have_text(f"{done} of {total} {verb}", timeout=TIMEOUT_MS)
    expect()(page.locator("#controls button").first).to_be_enabled(timeout=TIMEOUT_MS)


def assert_layout(page, pannable: bool) -> dict:
    """Every photo at its own size (never scaled down), fully inside its frame or pannable in it; the answer buttons
    inside the window, which does not scroll."""
    layout = page.evaluate(LAYOUT_JS)
    for natural_w, natural_h, width, height in layout["photos"]:
        assert (width, height) == (natural_w, natural_h), layout  # one image pixel per CSS pixel
    for client_w, client_h, scroll_w, scroll_h in layout["frames"]:
        assert (scroll_w > client_w or scroll_h > client_h) == pannable, layout
    assert all(top >= 0 and bottom <= layout["height"] for top, bottom in layout["buttons"]), layout
    assert layout["pageScroll"] <= 0, layout  # the photo scrolls inside its frame, not the buttons off the page
    return layout


def test_a_whole_acr_study_on_a_phone_with_photos_wider_than_the_screen(
    store: Store, url: str, browser, tmp_path: Path
):
    images = image_folder(tmp_path / "hr", n_images=2, size=(300, 480))  # 480 px wide: more than the 390 px phone
    study = create_study(store, "phone", images, ["bicubic"], reference=True, anchors=True, completion_code=CODE)
    page = browser.new_page(**PHONE)
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{url}/rate/{study.public_id}?PROLIFIC_PID=5f3e")
        expect()(page.get_by_text("Example of 5 Excellent", exact=True)).to_be_visible()
        expect()(page.locator("#best")).to_have_js_property("complete", True)
        assert_blind(page)
        page.get_by_role("button", name="Start").tap()
        for done in range(6):
            answered(page, done, 6, "rated")
            layout = assert_layout(page, pannable=True)
            frame = page.locator("#frames .frame")
            frame.evaluate("(f) => { f.scrollLeft = f.scrollWidth; }")  # the rater pans to the right edge
            assert frame.evaluate("(f) => f.scrollLeft") == layout["frames"][0][2] - layout["frames"][0][0] > 0
            assert_blind(page)
            if done == 0:
                page.screenshot(path="/tmp/survey_rater_phone.png")
            if done == 3:
                page.reload()  # resumes at the same photo
                answered(page, 3, 6, "rated")
            page.get_by_role("button", name=re.compile(f"^{1 + done % 5} ")).tap()
        expect()(page.get_by_text("Thank you!")).to_be_visible()
        expect()(page.locator("#code")).to_have_text(CODE)
        expect()(page.get_by_role("link", name="Return to Prolific to finish")).to_have_attribute(
            "href", f"https://app.prolific.com/submissions/complete?cc={CODE}"
        )
        assert_blind(page)
    finally:
        page.screenshot(path="/tmp/survey_rater_phone_end.png")
        page.close()
    with store.session() as session:
        ratings = session.scalars(select(Rating).order_by(Rating.id)).all()
    assert [r.score for r in ratings] == [1, 2, 3, 4, 5, 1]
    for rating in ratings:
        assert (rating.viewport_width, rating.viewport_height, rating.device_pixel_ratio) == (390, 844, 3)
        assert rating.scale == 1 and 0 < rating.display_ms < rating.response_ms + 1000


def test_pairs_on_a_phone_flipped_by_taps_keys_and_the_button(store: Store, url: str, browser, tmp_path: Path) -> None:
    images = image_folder(tmp_path / "hr", n_images=2, size=(200, 240))
    study = create_study(store, "flip", images, ["bicubic"], reference=True, anchors=True, protocol=PC, allow_tie=True)
    page = browser.new_page(**PHONE)
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{url}/rate/{study.public_id}")
        expect()(page.get_by_text("How to choose:")).to_be_visible()
        expect()(page.get_by_text("Example of 5 Excellent", exact=True)).to_be_hidden()  # no calibration needed
        page.get_by_role("button", name="Start").tap()
        answered(page, 0, 6, "compared")
        assert_layout(page, pannable=False)
        assert page.evaluate(FLIP_JS) == ["visible", "hidden", True]
        page.locator("#frames .stack").tap()  # a tap on the photo flips it, at the same place
        assert page.evaluate(FLIP_JS) == ["hidden", "visible", True]
        expect()(page.locator(".badge")).to_have_text("B")
        page.get_by_role("button", name="flip A / B").tap()
        assert page.evaluate(FLIP_JS) == ["visible", "hidden", True]
        assert_blind(page)
        page.screenshot(path="/tmp/survey_rater_flip.png")
        page.get_by_role("button", name="B ▶ is better").tap()
        answered(page, 1, 6, "compared")
        assert page.evaluate(FLIP_JS) == ["visible", "hidden", True]  # every pair starts at version A
        page.keyboard.press("ArrowLeft")
        answered(page, 2, 6, "compared")
        page.keyboard.press(" ")
        assert page.evaluate(FLIP_JS) == ["hidden", "visible", True]
        page.keyboard.press("ArrowDown")  # no difference
        answered(page, 3, 6, "compared")
        for done in (4, 5):
            page.get_by_role("button", name="◀ A is better").tap()
            answered(page, done, 6, "compared")
            assert_blind(page)
        page.get_by_role("button", name="= no difference").tap()
        expect()(page.get_by_text("Thank you!")).to_be_visible()
        expect()(page.locator("#completion")).to_be_hidden()  # this study has no code
    finally:
        page.close()
    with store.session() as session:
        assert session.scalars(select(Choice.choice).order_by(Choice.position)).all() == [
            RIGHT, LEFT, TIE, LEFT, LEFT, TIE
        ]  # fmt: skip


def test_pairs_side_by_side_on_a_desktop(store: Store, url: str, browser, tmp_path: Path) -> None:
    images = image_folder(tmp_path / "hr", n_images=2, size=(200, 240))
    study = create_study(
        store, "sbs", images, ["bicubic"], anchors=True, protocol=PC, presentation=SIDE_BY_SIDE, completion_code=CODE
    )
    page = browser.new_page(**DESKTOP)
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{url}/rate/{study.public_id}")
        page.get_by_role("button", name="Start").click()
        for done in range(2):
            answered(page, done, 2, "compared")
            layout = assert_layout(page, pannable=False)
            (left_a, top_a, right_a, _), (left_b, top_b, *_) = layout["frameBoxes"]
            assert right_a <= left_b and top_a == top_b  # A on the left, B on the right, both whole
            assert page.locator("button[data-value=tie]").count() == 0  # no ties in this study
            assert_blind(page)
            page.keyboard.press("ArrowRight")
        expect()(page.locator("#code")).to_have_text(CODE)
    finally:
        page.screenshot(path="/tmp/survey_rater_desktop.png")
        page.close()


def test_the_page_waits_out_the_minimum_viewing_time_and_shows_a_refusal(store: Store, browser, tmp_path: Path) -> None:
    study = create_study(store, "slow", image_folder(tmp_path / "hr", n_images=2), ["bicubic"], anchors=True,
                         min_view_ms=2500)  # fmt: skip
    page = browser.new_page(**DESKTOP)
    page.set_default_timeout(TIMEOUT_MS)
    buttons = page.locator("#controls button")
    with serve(store, RateLimits(answer="1/minute")) as address:
        try:
            page.goto(f"{address}/rate/{study.public_id}")
            page.get_by_role("button", name="Start").click()
            expect()(page.locator("#count")).to_have_text("0 of 4 rated")
            page.wait_for_function("() => document.querySelector('#frames img').complete")
            assert all(buttons.nth(i).is_disabled() for i in range(buttons.count()))  # the photo is new: wait
            page.keyboard.press("4")  # ignored while the buttons are disabled: nothing is sent
            start = time.monotonic()
            expect()(buttons.first).to_be_enabled()
            assert time.monotonic() - start > 1.0  # enabled only after (most of) the 2.5 s, counted from the answer
            page.keyboard.press("4")
            answered(page, 1, 4, "rated")  # accepted: the server's minimum had passed
            expect()(page.locator("#status")).to_be_empty()
            page.keyboard.press("3")  # the second answer within the minute: refused by the rate limit
            expect()(page.locator("#status")).to_contain_text("Too many requests from your address")
            expect()(page.locator("#count")).to_have_text("1 of 4 rated")
            expect()(buttons.first).to_be_enabled()  # the rater may try again later
        finally:
            page.screenshot(path="/tmp/survey_rater_min_view.png")
            page.close()
    with store.session() as session:
        assert session.scalars(select(Rating.score)).all() == [4]
