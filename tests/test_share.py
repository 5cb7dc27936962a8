"""Shared comparisons: stored under an opaque id in the data folder, reopened read-only, listed and deleted; in a
real browser, a comparison shared through the Share button opens from its link after the app restarts."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import io
import re
import socket
from pathlib import Path
from urllib.parse import unquote

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from sr_app.images import load_rgb
from sr_app.methods import REGISTRY
from sr_app.resize import magnify
from sr_app.ui.compare import (
    EXAMPLES_DIR,
    GROUND_TRUTH,
    OUTPUT_DIR,
    Comparison,
    LoadedMethod,
    compare,
    load_methods,
    open_shared,
    results_table,
    share_comparison,
    views,
)
from sr_app.ui.share import ID_PATTERN, ShareError, delete_shared, list_shared, load_shared, main, shared_dir
from sr_app.upscalers import SCALE

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def bicubic() -> list[LoadedMethod]:
    return load_methods([REGISTRY["bicubic"]])


@pytest.fixture(scope="module")
def comparison(bicubic: list[LoadedMethod]) -> Comparison:
    """A 40×32 original through bicubic in ground-truth mode: input, bicubic and original, all 40×32."""
    return compare(load_rgb(EXAMPLES_DIR / "coffee.png")[100:140, 60:92], GROUND_TRUTH, bicubic, stem="cup")


def test_a_shared_comparison_is_stored_in_the_data_folder_and_reopens_read_only(
    comparison: Comparison, tmp_path: Path
) -> None:
    link, button = share_comparison(comparison, data_dir=tmp_path)
    share_id = link.value
    assert ID_PATTERN.fullmatch(share_id) and link.visible and not button.visible
    shared = load_shared(tmp_path, share_id)
    assert (shared.stem, shared.mode, shared.size) == ("cup", GROUND_TRUTH, (40, 32))
    assert [view.label for view in shared.views] == [view.label for view in views(comparison)]
    assert [view.label for view in shared.views][::2] == ["Input", "Original"]
    for view, name in zip(shared.views, comparison.names, strict=True):
        assert view.path.parent == shared_dir(tmp_path) / share_id  # a copy in the data folder, not a served temp
        np.testing.assert_array_equal(load_rgb(view.path), comparison.view(name))
    assert shared.table.equals(results_table(comparison))

    note, controls, viewer, results, table, files, share = open_shared(share_id, tmp_path)
    assert "Shared comparison" in note.value and "read-only" in note.value and note.visible
    assert not controls.visible and results.visible and not share.visible
    assert str(OUTPUT_DIR) not in viewer and all(str(view.path) in unquote(viewer) for view in shared.views)
    assert files == [str(view.path) for view in shared.views] and table.equals(shared.table)


def test_a_bad_or_missing_id_says_so_and_changes_nothing_else(comparison: Comparison, tmp_path: Path) -> None:
    share_comparison(comparison, data_dir=tmp_path)
    for share_id in ("A" * 22, "../" + "A" * 19, "x"):
        with pytest.raises(ShareError, match="no shared comparison"):
            load_shared(tmp_path, share_id)
        note, *rest = open_shared(share_id, tmp_path)
        assert "no shared comparison" in note.value and rest == [gr.skip()] * 6
    # Without ?compare= the page is left as it is.
    assert open_shared("", tmp_path) == (gr.skip(),) * 7


def test_list_and_delete_from_the_command_line(
    comparison: Comparison, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--data-dir", str(tmp_path), "list"]) == 0
    assert "No shared comparisons" in capsys.readouterr().out
    first = share_comparison(comparison, data_dir=tmp_path)[0].value
    second = share_comparison(comparison, data_dir=tmp_path)[0].value
    assert {shared.id for shared in list_shared(tmp_path)} == {first, second}
    assert main(["--data-dir", str(tmp_path), "list", "--base-url", "http://lab:8000/"]) == 0
    out = capsys.readouterr().out
    assert f"http://lab:8000/?compare={first}" in out and "cup (Ground truth, 32×40, 3 images" in out
    assert main(["--data-dir", str(tmp_path), "delete", first]) == 0
    assert [shared.id for shared in list_shared(tmp_path)] == [second]
    assert not (shared_dir(tmp_path) / first).exists()
    assert main(["--data-dir", str(tmp_path), "delete", first]) == 2
    assert "no shared comparison" in capsys.readouterr().err
    delete_shared(tmp_path, second)
    assert list_shared(tmp_path) == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.browser
def test_browser_a_shared_link_opens_the_comparison_after_a_restart(tmp_path: Path) -> None:
    """Share from the page, restart the app on the same data folder, open the link: the same images, read-only."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    from app import build_app  # the whole app, as users get it

    upload = tmp_path / "leaf.png"
    Image.fromarray(load_rgb(EXAMPLES_DIR / "chelsea.png")[40:64, 100:132]).save(upload)
    data_dir, port = tmp_path / "data", free_port()

    def launch():  # no weights: bicubic is the one method picked
        demo = build_app(weights_dir=tmp_path / "no-weights", device="cpu", data_dir=data_dir)
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        return demo

    demo = launch()
    try:
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(60_000)
            try:
                page.goto(demo.local_url)
                page.locator("input[type=file]").first.set_input_files(str(upload))
                page.get_by_role("button", name="Upscale ×4").click()
                page.get_by_role("button", name="Share").click()
                link = page.get_by_label("Link to this comparison")
                prefix = f"{demo.local_url.rstrip('/')}/?compare="
                playwright.expect(link).to_have_value(re.compile("^" + re.escape(prefix) + ID_PATTERN.pattern + "$"))
                url = link.input_value()
                share_id = url.removeprefix(prefix)

                demo.close()
                demo = launch()
                page.goto(url)
                playwright.expect(page.get_by_text("Shared comparison")).to_be_visible()
                playwright.expect(page.get_by_role("button", name="Upscale ×4")).to_be_hidden()
                page.wait_for_function(
                    "() => { const i = [...document.querySelectorAll('.srv-main img')];"
                    " return i.length === 2 && i.every(x => x.complete && x.naturalWidth); }"
                )
                page.locator(".srv-main").scroll_into_view_if_needed()
                page.get_by_role("button", name="1:1").click()
                shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))
                box = page.locator(".srv-main img.srv-shown").bounding_box()
                top, left = round(box["y"]), round(box["x"])
                bicubic = load_rgb(load_shared(data_dir, share_id).views[1].path)
                np.testing.assert_array_equal(shot[top : top + 96, left : left + 128], bicubic)
                assert bicubic.shape == (24 * SCALE, 32 * SCALE, 3)
                np.testing.assert_array_equal(
                    load_rgb(load_shared(data_dir, share_id).views[0].path),
                    magnify(load_rgb(upload), SCALE),
                )
            finally:
                page.screenshot(path="/tmp/compare_shared.png", full_page=True)
                browser.close()
    finally:
        demo.close()
