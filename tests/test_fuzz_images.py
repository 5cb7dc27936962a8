"""The fuzz corpus of ``benchmarks/fuzz_images.py`` through the live Compare API (``/upscale``), fast.

Each hostile file must get a clear message, or a valid result when it is a legitimately decodable image, and
a good upload right after it must still work. The bad uploads ``tests/test_app.py`` already sends (empty, text,
truncated PNG, a PNG over the size limit and a header bomb) are not repeated here. The app runs in this process
with a tiny random EDSR, so the check costs seconds; the benchmark runs the whole corpus against
``python app.py`` in a subprocess and reports its peak memory.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from gradio_client import Client

from app import build_app
from benchmarks.fuzz_images import Case, build_corpus, check, good_image
from benchmarks.live_app import HOST, free_port
from conftest import TINY_CONFIG
from sr_app.methods import REGISTRY
from sr_app.models import EDSR
from sr_app.weights import save_weights

#: Corpus files whose kind tests/test_app.py already sends through the API.
COVERED_BY_TEST_APP = ("empty.png", "text.png", "truncated.png", "too_large.png", "header_bomb.png")
REFUSED = (
    "random.png", "random.jpg", "drawing.svg", "bad_ihdr.png", "bad_sof.jpg", "truncated.jpg", "zlib_bomb.png",
    "float32.tif",
)  # fmt: skip
DECODED = (
    "corrupt_scan.jpg", "one_pixel.png", "wide_65535x1.png", "tall_1x65535.png", "gray16.png", "rgb16.png",
    "cmyk.jpg", "palette_transparent.png", "animated.gif",
)  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    return {case.name: case for case in build_corpus(tmp_path_factory.mktemp("corpus"))}


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return good_image(tmp_path_factory.mktemp("good"))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A client of the whole app, live in this process, with a tiny random EDSR and the default upload limit."""
    weights = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    save_weights(EDSR(TINY_CONFIG), weights / REGISTRY["edsr"].weights, iterations=0)
    demo = build_app(weights_dir=weights, device="cpu", data_dir=tmp_path_factory.mktemp("data"))
    demo.launch(server_name=HOST, server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield Client(demo.local_url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))
    finally:
        demo.close()


def test_the_lists_here_cover_the_whole_corpus(corpus: dict[str, Case]) -> None:
    names = (*COVERED_BY_TEST_APP, *REFUSED, *DECODED)
    assert sorted(names) == sorted(corpus)
    assert all(corpus[name].expect for name in REFUSED) and not any(corpus[name].expect for name in DECODED)


@pytest.mark.slow
@pytest.mark.parametrize("name", REFUSED)
def test_hostile_files_are_refused_clearly_and_the_app_keeps_serving(
    client: Client, corpus: dict[str, Case], good: Path, name: str
) -> None:
    assert check(client, corpus[name], good).startswith("refused: ")


@pytest.mark.slow
@pytest.mark.parametrize("name", DECODED)
def test_unusual_but_valid_files_are_upscaled(client: Client, corpus: dict[str, Case], good: Path, name: str) -> None:
    assert check(client, corpus[name], good).startswith("upscaled to ")
