"""Shared comparisons: stored once under an id of their content in the data folder, within a quota, reopened
read-only, listed and deleted. In a real browser (a shared link after an app restart): tests/test_viewer_browser.py;
over HTTP as a hostile client: tests/test_public_compare.py."""

from __future__ import annotations

import os
import re

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from pathlib import Path
from urllib.parse import unquote

import gradio as gr
import numpy as np
import pytest

from conftest import exit_status
from sr_app.comparison import GROUND_TRUTH, Comparison, LoadedMethod, compare, load_methods, results_table
from sr_app.data_dir import remember_app_url
from sr_app.images import load_rgb
from sr_app.methods import REGISTRY
from sr_app.ui.compare import EXAMPLES_DIR, open_shared, share_comparison
from sr_app.ui.saved import OUTPUT_DIR, Saved, save
from sr_app.ui.share import (
    ID_PATTERN,
    META_FILE,
    Quota,
    ShareError,
    delete_shared,
    list_shared,
    load_shared,
    shared_dir,
    stored_bytes,
)
from sr_app.ui.share.__main__ import main


@pytest.fixture(scope="module")
def bicubic() -> list[LoadedMethod]:
    return load_methods([REGISTRY["bicubic"]])


@pytest.fixture(scope="module")
def comparison(bicubic: list[LoadedMethod]) -> Comparison:
    """A 40×32 original through bicubic in ground-truth mode: input, bicubic and original, all 40×32."""
    return compare(load_rgb(EXAMPLES_DIR / "coffee.png")[100:140, 60:92], GROUND_TRUTH, bicubic, stem="cup")


@pytest.fixture(scope="module")
def saved(comparison: Comparison) -> Saved:
    """The comparison as a session holds it: PNG files in its folder."""
    return save(comparison)


def test_a_shared_comparison_is_stored_in_the_data_folder_and_reopens_read_only(
    comparison: Comparison, saved: Saved, tmp_path: Path
) -> None:
    link, button = share_comparison(saved, data_dir=tmp_path)
    share_id = link.value
    assert ID_PATTERN.fullmatch(share_id) and link.visible and not button.visible
    shared = load_shared(tmp_path, share_id)
    assert (shared.stem, shared.mode, shared.size) == ("cup", GROUND_TRUTH, (40, 32))
    assert [(view.label, view.scale) for view in shared.views] == [(view.label, view.scale) for view in saved.views()]
    labels = [view.label for view in shared.views]
    assert labels[:3:2] == ["Input", "Original"] and re.fullmatch(r"Bicubic − Original ×\d+", labels[3])
    assert labels[4] == "Bicubic SSIM map" and shared.views[4].scale.high == "1"  # the analyses keep their scales
    for view, name in zip(shared.views[:3], comparison.names, strict=True):
        assert view.path.parent == shared_dir(tmp_path) / share_id  # a copy in the data folder, not a served temp
        np.testing.assert_array_equal(load_rgb(view.path), comparison.view(name))
    assert shared.table.equals(results_table(comparison))

    note, controls, viewer, results, table, files, share = open_shared(share_id, tmp_path)
    assert "Shared comparison" in note.value and "read-only" in note.value and note.visible
    assert not controls.visible and results.visible and not share.visible
    assert str(OUTPUT_DIR) not in viewer and all(str(view.path) in unquote(viewer) for view in shared.views)
    assert files == [str(view.path) for view in shared.views] and table.equals(shared.table)


def test_a_bad_or_missing_id_says_so_and_changes_nothing_else(saved: Saved, tmp_path: Path) -> None:
    share_id = share_comparison(saved, data_dir=tmp_path)[0].value
    meta = shared_dir(tmp_path) / share_id / META_FILE
    meta.write_text(meta.read_text().replace('"file": "cup_input.png"', '"file": "../cup_input.png"'))
    with pytest.raises(ShareError, match="outside the comparison's folder"):
        load_shared(tmp_path, share_id)
    for share_id in ("A" * 22, "../" + "A" * 19, "x"):
        with pytest.raises(ShareError, match="no shared comparison"):
            load_shared(tmp_path, share_id)
        note, *rest = open_shared(share_id, tmp_path)
        assert "no shared comparison" in note.value and rest == [gr.skip()] * 6
    # Without ?compare= the page is left as it is.
    assert open_shared("", tmp_path) == (gr.skip(),) * 7


def test_sharing_again_stores_nothing_new_and_a_full_store_refuses_and_keeps_what_it_holds(
    bicubic: list[LoadedMethod], saved: Saved, tmp_path: Path
) -> None:
    first = share_comparison(saved, data_dir=tmp_path)[0].value
    before = {path: path.stat().st_mtime_ns for path in shared_dir(tmp_path).rglob("*")}
    assert share_comparison(saved, data_dir=tmp_path)[0].value == first  # the same content, the same id
    assert {path: path.stat().st_mtime_ns for path in shared_dir(tmp_path).rglob("*")} == before
    other = save(compare(load_rgb(EXAMPLES_DIR / "rocket.png")[:40, :32], GROUND_TRUTH, bicubic, stem="rocket"))
    used = stored_bytes(shared_dir(tmp_path)) / 1e6
    for quota, message in [(Quota(count=1), r"full \(1 of 1 comparisons"), (Quota(megabytes=used), rf"of {used:g} MB")]:
        with pytest.raises(gr.Error, match=message + ".*python -m sr_app.ui.share"):
            share_comparison(other, data_dir=tmp_path, quota=quota)
        assert {path: path.stat().st_mtime_ns for path in shared_dir(tmp_path).rglob("*")} == before
    assert share_comparison(saved, data_dir=tmp_path, quota=Quota(count=1))[0].value == first  # stored already
    second = share_comparison(other, data_dir=tmp_path, quota=Quota(count=2))[0].value
    assert sorted(shared.id for shared in list_shared(tmp_path)) == sorted([first, second])


def test_list_and_delete_from_the_command_line(
    bicubic: list[LoadedMethod], saved: Saved, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_status(main, ["--data-dir", str(tmp_path), "list"]) == 0
    assert "No shared comparisons" in capsys.readouterr().out
    first = share_comparison(saved, data_dir=tmp_path)[0].value
    other = save(compare(load_rgb(EXAMPLES_DIR / "rocket.png")[:40, :32], GROUND_TRUTH, bicubic, stem="rocket"))
    second = share_comparison(other, data_dir=tmp_path)[0].value
    assert {shared.id for shared in list_shared(tmp_path)} == {first, second}
    assert exit_status(main, ["list", "--data-dir", str(tmp_path), "--base-url", "http://lab:8000/"]) == 0
    out = capsys.readouterr().out
    assert f"http://lab:8000/?compare={first}" in out and "cup (Ground truth, 32×40, 5 images" in out
    assert f"2 comparisons, {stored_bytes(shared_dir(tmp_path)) / 1e6:.1f} MB in total" in out
    assert exit_status(main, ["--data-dir", str(tmp_path), "delete", first]) == 0
    assert [shared.id for shared in list_shared(tmp_path)] == [second]
    assert not (shared_dir(tmp_path) / first).exists()
    assert exit_status(main, ["--data-dir", str(tmp_path), "delete", first]) == 1
    assert "no shared comparison" in capsys.readouterr().err
    assert exit_status(main, ["delete"]) == 2  # usage: no id
    remember_app_url(tmp_path, "http://lab.example.org:7861/")  # as the app records its address when it starts
    assert exit_status(main, ["list", "--data-dir", str(tmp_path)]) == 0
    assert f"http://lab.example.org:7861/?compare={second}" in capsys.readouterr().out
    delete_shared(tmp_path, second)
    assert list_shared(tmp_path) == []
