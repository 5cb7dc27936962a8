"""The Survey tab in a real browser: headless Chromium driven over the DevTools protocol through a pipe (no
extra Python packages). Skipped where Chromium is not installed (Debian: ``apt-get install chromium``)."""

import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from sqlalchemy import select as sql_select

from sr_app.upscalers import METHODS
from survey.db import NEAREST, REFERENCE, Rating
from survey.studies import create_study
from survey.ui.rate import SURVEY_TAB_ID, build_survey_tab, select_survey_tab
from survey.ui.results import build_results_tab
from tests.survey_fixtures import image_folder, tmp_store

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")]
FORBIDDEN = re.compile("|".join([*METHODS, "srgan", NEAREST, REFERENCE]), re.IGNORECASE)
TIMEOUT_S = 30.0


class Browser:
    """Just enough of the Chrome DevTools protocol (over ``--remote-debugging-pipe``) to drive one page."""

    def __init__(self, profile: Path) -> None:
        command_read, self._commands = os.pipe()
        self._replies, reply_write = os.pipe()

        def wire() -> None:  # Chromium reads commands on fd 3 and writes replies on fd 4
            os.dup2(command_read, 3)
            os.dup2(reply_write, 4)

        self.process = subprocess.Popen(
            [CHROMIUM or "", "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "--window-size=1200,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=wire,
            pass_fds=(command_read, reply_write, 3, 4),
        )  # fmt: skip
        os.close(command_read)
        os.close(reply_write)
        self._buffer, self._id, self._session = b"", 0, None
        page = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self._session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self._session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                ready, _, _ = select.select([self._replies], [], [], TIMEOUT_S)
                chunk = os.read(self._replies, 1 << 16) if ready else b""
                if not chunk:
                    raise RuntimeError(f"Chromium did not answer {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str) -> Any:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if value := self.evaluate(expression):
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {expression}")

    def press(self, key: str) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=key, text=key if kind == "keyDown" else "")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        os.close(self._commands)
        os.close(self._replies)


def progress_is(value: int) -> str:
    return f"(document.querySelector('progress') || {{}}).value === {value}"


@pytest.mark.slow
def test_a_rater_follows_the_link_rates_by_keys_reloads_and_finishes(tmp_path: Path) -> None:
    store = tmp_store(tmp_path)
    study = create_study(
        store, "browser", image_folder(tmp_path / "hr", n_images=2), ["bicubic"], reference=True, anchors=True
    )
    browser = Browser(tmp_path / "profile")
    with gr.Blocks() as demo:
        with gr.Tabs() as tabs:
            with gr.Tab("Compare", id="compare"):
                gr.Markdown("Another tab comes first, as in the app.")
            with gr.Tab("Survey", id=SURVEY_TAB_ID):
                build_survey_tab(store)
            with gr.Tab("Results"):
                build_results_tab(store, "password")
        demo.load(select_survey_tab, None, tabs, api_visibility="private")
    demo.queue(default_concurrency_limit=1)
    try:
        _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True)
        browser.call("Page.navigate", url=f"{url}?study={study.public_id}")
        browser.wait_for("document.body.innerText.includes('Calibration')")
        browser.evaluate("[...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Start').click()")
        browser.wait_for(progress_is(0))
        natural, shown = browser.wait_for(
            "(() => { const i = document.querySelector('#survey-stimulus img');"
            " return i && i.complete && i.naturalWidth ? [[i.naturalWidth, i.naturalHeight],"
            " [i.clientWidth, i.clientHeight]] : null; })()"
        )
        assert natural == shown == [36, 32]  # full resolution: one image pixel per CSS pixel
        assert not FORBIDDEN.search(browser.evaluate("document.documentElement.outerHTML"))
        browser.press("4")
        browser.wait_for(progress_is(1))
        browser.call("Page.reload")
        browser.wait_for(progress_is(1))  # resumed, not welcomed again
        for done in range(2, 6):
            browser.press("3")
            browser.wait_for(progress_is(done))
        browser.evaluate("document.getElementById('survey-score-5').click()")
        browser.wait_for("document.body.innerText.includes('Thank you')")
    finally:
        browser.close()
        demo.close()
    with store.session() as session:
        assert session.scalars(sql_select(Rating.score).order_by(Rating.id)).all() == [4, 3, 3, 3, 3, 5]
