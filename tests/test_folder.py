"""Folder mode (:mod:`sr_app.folder`, the Folder tab :mod:`sr_app.ui.folder`): the table equals ``train.evaluate``'s
scores on the bundled examples and on Set5, a client picks only a listed set by name, uploads and work are bounded,
the CSV holds a row per image × method and the means, and the tab runs in a real browser on a wide and a phone
screen (screenshots /tmp/folder_tab_<width>.png)."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import exit_status
from sr_app.comparison import load_methods
from sr_app.folder import (
    MAX_UPLOADS,
    MEAN,
    FolderError,
    check_uploads,
    display_table,
    image_names,
    list_sets,
    run_folder,
    set_images,
    with_means,
    write_csv,
)
from sr_app.methods import REGISTRY, Settings
from sr_app.ui.compare import EXAMPLES_DIR
from sr_app.ui.folder import EXAMPLES, RUN_LABEL, TABLE_LABEL, UPLOADS, folder_sets, run_folder_tab, show_row
from train.evaluate import EVALUATION, evaluate, summary_table

METHODS = ["bicubic", "edsr"]


def settings(weights_dir: Path | None) -> Settings:
    """``train.evaluate``'s settings (fp32), with networks from ``weights_dir`` when given."""
    return EVALUATION if weights_dir is None else replace(EVALUATION, weights_dir=weights_dir)


def methods_from(weights_dir: Path | None = None) -> list:
    """Bicubic and EDSR loaded as ``train.evaluate`` loads them (fp32), from ``weights_dir`` when given."""
    return load_methods([REGISTRY[name] for name in METHODS], settings(weights_dir))


def evaluated(data: Path, weights_dir: Path | None = None) -> pd.DataFrame:
    """``train.evaluate``'s per-image scores of bicubic and EDSR on ``data`` (a folder with ``HR/``)."""
    return evaluate([data], METHODS, settings=settings(weights_dir))


def assert_same(scores: pd.DataFrame, expected: pd.DataFrame) -> None:
    """A run's scores are ``train.evaluate``'s per-image scores, every image × method, to the last bit."""
    both = scores.merge(expected, on=["image", "method"], suffixes=("", "_evaluate"), validate="one_to_one")
    assert len(both) == len(scores) == len(expected)
    np.testing.assert_array_equal(both[["psnr", "ssim"]], both[["psnr_evaluate", "ssim_evaluate"]])


def assert_agree(table: pd.DataFrame, expected: pd.DataFrame, per_image_db: float) -> None:
    """The tab's table (:func:`display_table`) holds ``expected``'s scores image by image within ``per_image_db``
    (and 0.0001 SSIM beyond rounding), and its mean rows ``train.evaluate``'s means to 0.01 dB."""
    rows = table[table["Image"] != MEAN]
    assert len(rows) == len(expected)
    for _, row in expected.iterrows():
        mine = rows[(rows["Image"] == row["image"]) & (rows["Method"] == REGISTRY[row["method"]].title)]
        assert len(mine) == 1
        assert abs(mine["PSNR (dB)"].item() - row["psnr"]) <= per_image_db + 0.005
        assert abs(mine["SSIM"].item() - row["ssim"]) <= 0.0002
    means = table[table["Image"] == MEAN].set_index("Method")
    for (_, method), row in summary_table(expected.assign(dataset="set")).iterrows():
        assert abs(means.at[REGISTRY[method].title, "PSNR (dB)"] - row["psnr"]) <= 0.01
        assert abs(means.at[REGISTRY[method].title, "SSIM"] - row["ssim"]) <= 0.0001


@pytest.mark.slow
def test_table_on_the_examples_equals_train_evaluate(tmp_path: Path, tiny_weights_dir: Path) -> None:
    shutil.copytree(EXAMPLES_DIR, tmp_path / "examples" / "HR")  # a set without LR_x4: LR made as the tab makes it
    expected = evaluated(tmp_path / "examples", tiny_weights_dir)
    paths = set_images(folder_sets(None), EXAMPLES)
    run = run_folder(paths, methods_from(tiny_weights_dir), tmp_path / "run", max_pixels=None)

    assert_same(run.scores, expected)
    assert_agree(display_table(run.scores), expected, per_image_db=0)
    # Every output and cropped original is on disk, of the scored size.
    for image, (height, width) in run.sizes.items():
        for name in ["original", *METHODS]:
            assert Image.open(run.file(image, name)).size == (width, height)


@pytest.mark.slow
def test_set5_bicubic_and_edsr_agree_with_train_evaluate(eval_data: Path, tmp_path: Path) -> None:
    sets = list_sets(eval_data)
    assert sets["Set5"] == eval_data / "Set5" / "HR"
    run = run_folder(set_images(sets, "Set5"), methods_from(), tmp_path / "run", max_pixels=None)
    # Both read Set5's published LR_x4 files: the same images, the same scores, to the last bit.
    assert_same(run.scores, evaluated(eval_data / "Set5"))
    assert_agree(display_table(run.scores), evaluated(eval_data / "Set5"), per_image_db=0)


def test_sets_are_listed_folders_picked_by_name_only(tmp_path: Path) -> None:
    root = tmp_path / "eval"
    for folder in ["A/HR", "B", ".hidden", "empty"]:
        (root / folder).mkdir(parents=True)
    for path in [root / "A/HR/x.png", root / "B/y.png", root / ".hidden/z.png"]:
        Image.new("RGB", (24, 24)).save(path)
    (root / "file.png").write_bytes(b"")
    assert list_sets(root) == {"A": root / "A/HR", "B": root / "B"}
    assert list_sets(None) == {} and list_sets(tmp_path / "missing") == {}
    sets = folder_sets(root)
    assert list(sets) == [EXAMPLES, "A", "B"]
    assert set_images(sets, "B") == [root / "B/y.png"]
    for name in ["../..", "..", "/etc", str(root / "B"), "A/HR", ".hidden", "empty", ""]:
        with pytest.raises(FolderError, match="no set called .*pick one of: examples, A, B"):
            set_images(sets, name)
    with pytest.raises(gr.Error, match="no set called '../..'"):  # the tab's handler refuses before any work
        run_folder_tab("../..", None, METHODS, methods=methods_from(), sets=sets)


def test_app_refuses_a_datasets_flag_that_is_not_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app import main

    assert exit_status(main, ["--datasets", str(tmp_path / "missing")]) == 2
    assert f"--datasets {tmp_path / 'missing'} is not a folder" in capsys.readouterr().err


def test_uploads_are_bounded(tmp_path: Path) -> None:
    paths = [tmp_path / f"{i}.png" for i in range(MAX_UPLOADS + 1)]
    assert check_uploads(paths[:MAX_UPLOADS]) == paths[:MAX_UPLOADS]
    with pytest.raises(FolderError, match=f"{MAX_UPLOADS + 1} files were uploaded; upload at most {MAX_UPLOADS}"):
        check_uploads(paths)
    with pytest.raises(FolderError, match="Upload at least one image"):
        check_uploads([])
    with pytest.raises(gr.Error, match="upload at most"):
        run_folder_tab(UPLOADS, [str(p) for p in paths], METHODS, methods=methods_from(), sets={})


def test_work_and_sizes_are_checked_before_anything_runs(tmp_path: Path) -> None:
    big, small, text = tmp_path / "big.png", tmp_path / "small.png", tmp_path / "notes.png"
    Image.new("RGB", (200, 100)).save(big)
    Image.new("RGB", (19, 40)).save(small)
    text.write_text("not an image")
    methods = methods_from()
    cases = [
        ([big], 19_999, 10**9, "big is 200×100 pixels; this app accepts at most 19,999 pixels"),
        ([big, big], None, 50_000, "This run is 80,000 pixels × methods; one run may be at most 50,000"),
        ([small], None, 10**9, "small is 19×40 pixels; scoring needs at least 20×20"),
        ([big, text], None, 10**9, "notes is not an image this app can read"),
    ]
    for paths, max_pixels, max_work, message in cases:
        with pytest.raises(FolderError, match=message):
            run_folder(paths, methods, tmp_path / "run", max_pixels, max_work)
        assert not (tmp_path / "run").exists()
    with pytest.raises(FolderError, match="Pick at least one"):
        run_folder([big], [], tmp_path / "run", None)


def test_csv_has_a_row_per_image_and_method_and_the_means(tmp_path: Path) -> None:
    names = ['a,"b"\nc', "=1+1", "plain"]
    scores = pd.DataFrame(
        [{"image": n, "method": m, "psnr": 30.0 + i + j, "ssim": 0.9} for i, n in enumerate(names) for j, m in
         enumerate(METHODS)]
    )  # fmt: skip
    rows = pd.read_csv(write_csv(scores, tmp_path / "scores.csv"), keep_default_na=False)
    assert list(rows.columns) == ["image", "method", "psnr", "ssim"]
    assert len(rows) == len(names) * len(METHODS) + len(METHODS)
    written = ['a,"b"\nc', "'=1+1", "plain"]  # a name a spreadsheet would run as a formula is made text
    assert rows["image"].tolist() == [n for n in written for _ in METHODS] + [MEAN] * len(METHODS)
    assert rows[rows["image"] == MEAN]["psnr"].tolist() == [31.0, 32.0]
    assert with_means(scores)["psnr"].tolist()[-2:] == [31.0, 32.0]


def test_upload_names_are_safe_and_unique() -> None:
    paths = [Path("/u/1/a b.png"), Path("/u/2/a b.png"), Path("/u/3/<x>.jpg"), Path("/u/4/Été-1.png")]
    assert image_names(paths) == ["a_b", "a_b_2", "_x_", "Été-1"]


def test_a_row_shows_its_image_through_every_method(tmp_path: Path, tiny_weights_dir: Path) -> None:
    paths = sorted(EXAMPLES_DIR.glob("*.png"))[:2]
    uploads = [str(path) for path in paths]
    table, csv, run = run_folder_tab(UPLOADS, uploads, METHODS, methods=methods_from(tiny_weights_dir), sets={})
    assert table["Image"].tolist() == [paths[0].stem] * 2 + [paths[1].stem] * 2 + [MEAN] * 2
    assert len(pd.read_csv(csv)) == 6
    viewer = show_row(run, table.iloc[3].tolist())  # the second image through EDSR
    assert viewer.count('class="srv-view" ') == 3 and 'data-main="2"' in viewer
    assert f"EDSR · {table.iloc[3]['PSNR (dB)']:.2f} dB" in viewer and "Original" in viewer
    assert show_row(run, table.iloc[4].tolist()) is None  # a mean row
    previous = run.folder
    run_folder_tab(EXAMPLES, None, ["bicubic"], run, methods=methods_from(tiny_weights_dir), sets=folder_sets(None))
    assert not previous.exists()  # the session's previous run is removed


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app with a random tiny EDSR."""
    from app import build_app  # the whole app, as users get it
    from conftest import TINY_CONFIG, free_port
    from sr_app.models import EDSR
    from sr_app.weights import save_weights

    weights = tmp_path_factory.mktemp("weights")
    save_weights(EDSR(TINY_CONFIG), weights / REGISTRY["edsr"].weights, iterations=0)
    demo = build_app(weights_dir=weights, device="cpu", precision="fp32", data_dir=tmp_path_factory.mktemp("data"))
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("viewport", [(1440, 900), (390, 844)], ids=["wide", "phone"])
def test_the_tab_runs_the_examples_and_shows_a_row(browser, app_url: str, viewport: tuple[int, int]) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    from tests.test_viewer_browser import LOADED_JS, SETTLED_JS

    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.set_default_timeout(60_000)
    try:
        page.goto(app_url)
        page.get_by_role("tab", name="Folder").click()
        expect(page.get_by_text(TABLE_LABEL)).to_be_hidden()  # no empty table before a run
        page.get_by_role("button", name=RUN_LABEL).click()
        table = page.locator("#folder-table")
        expect(table.get_by_text(MEAN).first).to_be_visible()
        expect(page.get_by_text(TABLE_LABEL)).to_be_visible()
        expect(table.get_by_text("EDSR")).to_have_count(len(list(EXAMPLES_DIR.glob("*.png"))) + 1)
        table.get_by_text("chelsea").first.click()
        page.wait_for_function(LOADED_JS)
        labels = page.locator("#folder-viewer .srv-strip .srv-label").all_inner_texts()
        assert labels[0] == "1 Original" and labels[1].startswith("2 Bicubic · ") and len(labels) == 3
        page.wait_for_function(SETTLED_JS)
        page.screenshot(path=f"/tmp/folder_tab_{viewport[0]}.png", full_page=True)
    finally:
        page.close()
