"""The fixtures that test modules share: the benchmark sets in ../shared/data, small generated images and weights,
a fresh survey store and a headless Chromium. A module defines a fixture of its own only where it is particular to
that module (it may override one of these, as ``test_survey_faults.py`` overrides ``store``).

Plain helpers that tests call with arguments stay importable: the constants here (``from conftest import …``) and the
survey helpers in ``survey_fixtures.py`` (``from tests.survey_fixtures import …``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from benchmarks.live_app import free_port
from sr_app.cli import run_command
from sr_app.methods import REGISTRY
from sr_app.models import EDSR, EDSRConfig
from sr_app.weights import save_weights
from survey.db import Store
from tests.survey_fixtures import tmp_store

REPO = Path(__file__).resolve().parents[1]
EVAL_DATA = REPO.parent / "shared" / "data" / "eval"
#: A small EDSR that trains and runs in milliseconds.
TINY_CONFIG = EDSRConfig(n_blocks=2, n_feats=16)
#: Debian's Chromium, which the browser tests drive (Playwright's own browser downloads are never used).
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def eval_data() -> Path:
    """``../shared/data/eval`` (Set5 and Set14 with HR/ and LR_x4/).

    The sets are not part of the project: tests that score them are skipped in a clone without ``../shared`` beside
    it, except under CI (``CI`` set), where the data is laid out and its absence is an error.
    """
    if not (EVAL_DATA / "Set5" / "HR").is_dir():
        message = f"benchmark data missing at {EVAL_DATA} (Set5/Set14 with HR/ and LR_x4/, see README)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return EVAL_DATA


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real 512×512 uint8 RGB photo (scikit-image's astronaut)."""
    return skdata.astronaut()


@pytest.fixture()
def hr_folder(tmp_path: Path, photo: np.ndarray) -> Path:
    """A folder of four 160×160 HR PNG crops."""
    folder = tmp_path / "hr"
    folder.mkdir()
    for i, (top, left) in enumerate([(0, 0), (100, 200), (300, 50), (350, 350)]):
        Image.fromarray(photo[top : top + 160, left : left + 160]).save(folder / f"crop{i}.png")
    return folder


@pytest.fixture()
def tiny_weights_dir(tmp_path: Path) -> Path:
    """A weights folder holding a randomly initialised tiny EDSR as ``edsr``."""
    folder = tmp_path / "weights"
    save_weights(EDSR(TINY_CONFIG), folder / REGISTRY["edsr"].weights, iterations=0)
    return folder


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    """A fresh survey store in ``tmp_path/data`` (see :func:`survey_fixtures.tmp_store`: SQLite, or PostgreSQL)."""
    return tmp_store(tmp_path)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless :data:`CHROMIUM` driven by Playwright, one per test module (each test opens its own pages); the test is
    skipped without Chromium or the ``playwright`` package."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def exit_status(main: Callable[[Sequence[str] | None], object], argv: Sequence[str]) -> int:
    """The exit status of the command ``main`` run with ``argv`` as ``python -m …`` runs it (:mod:`sr_app.cli`)."""
    with pytest.raises(SystemExit) as exited:
        run_command(main, argv)
    return exited.value.code or 0


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The message of the one line ``error: <message>`` a command stopped by a user error wrote to stderr; fails when
    stderr holds anything else (a traceback, more lines)."""
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err.removeprefix("error: ").rstrip("\n")


def launch(weights_dir: Path, data_dir: Path, port: int):  # -> gr.Blocks
    """The whole app as users get it (``app.build_app``, fp32 on the CPU), served in this process on ``port``."""
    from app import build_app

    demo = build_app(weights_dir=weights_dir, device="cpu", precision="fp32", data_dir=data_dir)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return demo


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of the app (:func:`launch`) with a random tiny EDSR: Compare and Folder pick bicubic and EDSR; one
    per test module (the browser tests')."""
    weights = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    save_weights(EDSR(TINY_CONFIG), weights / REGISTRY["edsr"].weights, iterations=0)
    demo = launch(weights, tmp_path_factory.mktemp("data"), free_port())
    try:
        yield demo.local_url
    finally:
        demo.close()
