"""Shared comparisons: stored under an opaque id in the data folder, reopened read-only, listed and deleted. In a
real browser (a shared link after an app restart): tests/test_viewer_browser.py."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from pathlib import Path
from urllib.parse import unquote

import gradio as gr
import numpy as np
import pytest

from sr_app.images import load_rgb
from sr_app.methods import REGISTRY
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
from sr_app.ui.share import ID_PATTERN, META_FILE, ShareError, delete_shared, list_shared, load_shared, main, shared_dir


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
    share_id = share_comparison(comparison, data_dir=tmp_path)[0].value
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
