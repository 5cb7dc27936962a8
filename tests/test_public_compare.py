"""The app as a hostile client on the internet meets it: everything reachable from its port, used the wrong way.

The app runs in this process on 127.0.0.1 (bicubic only, a share store of two comparisons); the clients are
``gradio_client`` sessions, ``httpx`` and raw sockets. Covered: sharing one comparison twice stores it once; a full
share store refuses clearly and keeps what it holds; out-of-range crops are refused with a message; two sessions
upscale at the same time and each gets its own images; security headers on pages, rater pages and files; a huge
request body is refused before it is read; a TorchScript ``--model`` is refused without ``--trust-model``.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import gradio as gr
import httpx
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image
from skimage import data as skdata
from spandrel.architectures.ESRGAN import ESRGAN

import app
from conftest import error_line, exit_status
from sr_app.comparison import INPUT, UPSCALE
from sr_app.images import load_rgb
from sr_app.resize import magnify
from sr_app.ui.saved import OUTPUT_DIR
from sr_app.ui.share import Quota, delete_shared, list_ids, load_shared, shared_dir
from sr_app.ui.viewer import file_url
from sr_app.upscalers import SCALE, BicubicUpscaler
from sr_app.web import MAX_BODY_BYTES, SECURITY_HEADERS
from tests.test_app import free_port

pytestmark = pytest.mark.slow  # the whole app, run in this process
#: The share store of the app under test holds at most this many comparisons.
SHARE_COUNT = 2


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def app_url(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The whole app, bicubic only (no weights), two jobs at once, a share store of ``SHARE_COUNT`` comparisons."""
    demo = app.build_app(
        weights_dir=tmp_path_factory.mktemp("no-weights"), device="cpu", precision="fp32", data_dir=data_dir,
        concurrency=2, share_quota=Quota(count=SHARE_COUNT),
    )  # fmt: skip
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url
    finally:
        demo.close()


def crop_upload(path: Path, top: int, left: int, height: int = 24, width: int = 20) -> tuple[Path, np.ndarray]:
    """A crop of a real 512×512 photo saved as ``path``: the file and its pixels."""
    rgb = skdata.astronaut()[top : top + height, left : left + width]
    Image.fromarray(rgb).save(path)
    return path, rgb


def upscale(client: Client, path: Path) -> list[str]:
    return client.predict(handle_file(str(path)), UPSCALE, ["bicubic"], False, api_name="/upscale")[0]


def share(client: Client) -> str:
    """The id ``/share`` gives (the value of its update to the link box)."""
    return client.predict(api_name="/share")["value"]


def snapshot(folder: Path) -> dict[Path, tuple[int, int]]:
    """Every file under ``folder``: (size in bytes, modification time in ns)."""
    return {path: (path.stat().st_size, path.stat().st_mtime_ns) for path in folder.rglob("*") if path.is_file()}


def test_sharing_one_comparison_twice_stores_it_once(app_url: str, data_dir: Path, tmp_path: Path) -> None:
    client = Client(app_url, verbose=False)
    upscale(client, crop_upload(tmp_path / "twice.png", 100, 200)[0])
    before = set(list_ids(data_dir))
    first = share(client)
    stored = snapshot(shared_dir(data_dir))
    assert share(client) == first
    assert set(list_ids(data_dir)) == before | {first} and snapshot(shared_dir(data_dir)) == stored
    assert load_shared(data_dir, first).stem == "twice"


def test_a_full_share_store_refuses_clearly_and_keeps_what_it_holds(
    app_url: str, data_dir: Path, tmp_path: Path
) -> None:
    client = Client(app_url, verbose=False)
    added = []
    try:
        for i in range(SHARE_COUNT + 1):  # more comparisons than the store may hold
            upscale(client, crop_upload(tmp_path / f"full{i}.png", 40 * i, 0)[0])
            stored = snapshot(shared_dir(data_dir))
            try:
                added.append(share(client))
            except Exception as error:  # noqa: BLE001 - gradio_client raises AppError with the server's message
                refusal = str(error)
                break
        else:
            pytest.fail(f"{SHARE_COUNT + 1} comparisons were stored in a store for {SHARE_COUNT}")
        assert f"The store of shared comparisons is full ({SHARE_COUNT} of {SHARE_COUNT} comparisons" in refusal
        assert "python -m sr_app.ui.share" in refusal
        assert snapshot(shared_dir(data_dir)) == stored  # nothing written, nothing lost, no staging folder left
        assert len(list_ids(data_dir)) == SHARE_COUNT
    finally:
        for share_id in added:
            delete_shared(data_dir, share_id)


def test_crops_out_of_range_are_refused_with_a_message(app_url: str, tmp_path: Path) -> None:
    client = Client(app_url, verbose=False)
    upscale(client, crop_upload(tmp_path / "zoom.png", 200, 200)[0])
    for crop_size, zoom in [(16, 128), (100_000, 1), (64, 0), (512, 16)]:
        with pytest.raises(Exception, match=f"crop_size must be 4 to 512 .* zoom {zoom}"):  # noqa: B017 - AppError
            client.predict(40, 40, crop_size, zoom, api_name="/compare_crops")
    overview, crops = client.predict(40, 40, 16, 16, api_name="/compare_crops")  # the largest zoom works
    assert [load_rgb(crop["image"]).shape for crop in crops] == [(256, 256, 3)] * 2


def test_two_sessions_upscale_at_the_same_time_and_each_gets_its_own_images(
    app_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each bicubic run waits until the other has started: run one after the other, both would time out.
    both_running = threading.Barrier(2, timeout=30)
    bicubic = BicubicUpscaler.__call__

    def meet_then_upscale(self: BicubicUpscaler, rgb: np.ndarray) -> np.ndarray:
        both_running.wait()
        return bicubic(self, rgb)

    monkeypatch.setattr(BicubicUpscaler, "__call__", meet_then_upscale)
    uploads = [crop_upload(tmp_path / "a.png", 0, 0, 24, 20), crop_upload(tmp_path / "b.png", 300, 300, 16, 28)]
    clients = [Client(app_url, verbose=False) for _ in uploads]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(upscale, clients, [path for path, _ in uploads]))
    monkeypatch.undo()
    for client, files, (path, rgb) in zip(clients, results, uploads, strict=True):
        assert Path(files[0]).name == f"{path.stem}_input.png"
        before, after = client.predict(INPUT, "bicubic", api_name="/compare_pair")  # from the session's own state
        np.testing.assert_array_equal(load_rgb(before), magnify(rgb, SCALE))
        np.testing.assert_array_equal(load_rgb(after), BicubicUpscaler()(rgb))


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.url, name)
    assert "frame-ancestors 'self'" in response.headers["content-security-policy"]


def test_pages_rater_pages_and_files_carry_security_headers(app_url: str, tmp_path: Path) -> None:
    upscale(Client(app_url, verbose=False), crop_upload(tmp_path / "headers_probe.png", 50, 50)[0])
    png = max(OUTPUT_DIR.glob("*/headers_probe_input.png"), key=lambda path: path.stat().st_mtime)
    with httpx.Client(base_url=app_url, timeout=30) as http:
        responses = [
            http.get("/"),
            http.get("/rate/" + "A" * 22),
            http.post("/rate/" + "A" * 22 + "/open", json={}),
            http.get(file_url(png)),
        ]
    assert [response.status_code for response in responses] == [200] * 4
    assert responses[-1].headers["content-type"] == "image/png"
    for response in responses:
        assert_security_headers(response)


def raw_request(url: str, head: str, body: Iterator[bytes]) -> bytes:
    """Send ``head`` and then ``body`` piece by piece on a raw connection (stopping when the server closes it) and
    return what the server answers; ``socket.timeout`` if it answers nothing within 10 s."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as connection:
        connection.sendall(head.encode())
        try:
            for piece in body:
                connection.sendall(piece)
        except OSError:  # the server answered and closed the connection before the body ended
            pass
        return connection.recv(65536)


def test_a_huge_request_body_is_refused_before_it_is_read(app_url: str) -> None:
    path = "/rate/" + "A" * 22 + "/answer"
    declared = 200_000_000
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    answer = raw_request(app_url, head, iter([b'{"token": "']))  # 11 of the 200 MB it declares
    assert answer.startswith(b"HTTP/1.1 413")
    # Without a length (chunked), the body is cut off once it passes the limit.
    megabyte = b"x" * 1_000_000
    chunked = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = (f"{len(megabyte):x}\r\n".encode() + megabyte + b"\r\n" for _ in range(MAX_BODY_BYTES // 1_000_000 + 4))
    assert raw_request(app_url, chunked, iter([*chunks, b"0\r\n\r\n"])).startswith(b"HTTP/1.1 413")
    # An ordinary request still gets its answer.
    response = httpx.post(app_url + path.lstrip("/"), json={"token": "t", "item": "i", "answer": 3}, timeout=30)
    assert response.status_code == 400 and "error" in response.json()


def test_a_torchscript_model_is_refused_without_trust_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "mine.pt"
    torch.jit.save(torch.jit.trace(ESRGAN(num_filters=8, num_blocks=1, scale=4).eval(), torch.rand(1, 3, 8, 8)), script)
    jit_loads = []
    monkeypatch.setattr(torch.jit, "load", lambda *args, **kwargs: jit_loads.append(args))
    argv = ["--device", "cpu", "--data-dir", str(tmp_path / "data"), "--model", f"mine={script}"]
    assert exit_status(app.main, argv) == 1 and jit_loads == []  # nothing in the file ran
    message = error_line(capsys)
    assert message.startswith(f"{script} is a TorchScript file: loading it runs code") and "--trust-model" in message
    monkeypatch.undo()

    class Launched(Exception):
        pass

    def launch(*args: object, **kwargs: object) -> None:
        raise Launched

    threads = torch.get_num_threads()
    monkeypatch.setattr(gr.Blocks, "launch", launch)
    try:
        with pytest.raises(Launched):  # with the flag, the model loads and the app goes on to start
            app.main([*argv, "--trust-model"])
    finally:
        torch.set_num_threads(threads)
