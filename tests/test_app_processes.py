"""Two ``python app.py`` processes on one machine: one stopping leaves the other's files alone."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

import pytest

from benchmarks.live_app import LiveApp


@pytest.mark.slow
def test_an_app_that_stops_leaves_the_examples_of_another_one_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "gradio"  # one machine's Gradio cache, as /tmp/gradio is for every process by default
    cache.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    first, second = LiveApp(tmp_path / "first"), LiveApp(tmp_path / "second")
    for live in (first, second):
        live.data_dir.mkdir()
        live.start()
    try:
        assert len(list(cache.rglob("astronaut.png"))) == 2  # each process cached the bundled example
        assert first.process is not None
        first.process.send_signal(signal.SIGINT)  # Ctrl+C: Gradio's clean shutdown, which deletes what it cached
        first.process.wait(timeout=60)
        assert len(list(cache.glob("sr-lab-gradio-*"))) == 1  # and removed its own folder
        (kept,) = cache.rglob("astronaut.png")
        with urllib.request.urlopen(f"{second.url}gradio_api/file={kept}", timeout=30) as response:
            assert response.status == 200 and response.read(8) == b"\x89PNG\r\n\x1a\n"
    finally:
        first.stop()
        second.stop()
