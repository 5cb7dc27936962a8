"""The app server's resident memory while several Compare sessions upscale large uploads, and after they end.

    python benchmarks/memory.py [--sessions 3] [--rounds 2] [--max-pixels 1000000] [--methods bicubic]

Starts ``python app.py --max-pixels P`` as a subprocess with a fresh data folder, warms it up with one small
upscale, and then, ``--rounds`` times, has ``--sessions`` ``gradio_client`` sessions at once each upload a synthetic
image of ``P`` pixels (the astronaut photo resized to √P × √P), run ``/upscale`` with ``--methods``, ``/compare_crops``
and ``/compare_pair``, and close. Prints the server's RSS (``VmRSS`` from ``/proc/PID/status``) before, the peak
sampled every 50 ms during each round, and a few seconds after it: with the sessions' images on disk rather than in
their state, the RSS after each round comes back near the baseline instead of growing with every session.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradio_client import Client, handle_file  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.live_app import LiveApp  # noqa: E402
from sr_app.comparison import UPSCALE  # noqa: E402
from sr_app.ui.compare import EXAMPLES_DIR  # noqa: E402

#: Seconds to let the server settle after a round before its RSS is read.
SETTLE_S = 5


def rss_mib(pid: int) -> float:
    """The resident memory of process ``pid`` now (``VmRSS``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc status")


def synthetic_upload(folder: Path, pixels: int) -> Path:
    """The astronaut photo resized to the largest square of at most ``pixels`` pixels, as a PNG in ``folder``."""
    side = math.isqrt(pixels)
    path = folder / f"upload_{side}.png"
    Image.open(EXAMPLES_DIR / "astronaut.png").convert("RGB").resize((side, side), Image.Resampling.BICUBIC).save(path)
    return path


def session(url: str, upload: Path, methods: list[str]) -> None:
    """One user: upscale, look at crops, fetch a pair, leave."""
    client = Client(url, verbose=False, download_files=False)
    try:
        client.predict(handle_file(str(upload)), UPSCALE, methods, False, api_name="/upscale")
        client.predict(300, 200, 64, 4, api_name="/compare_crops")
        client.predict("input", methods[0], api_name="/compare_pair")
    finally:
        client.close()


def run_round(url: str, upload: Path, methods: list[str], sessions: int, pid: int) -> tuple[float, float]:
    """``sessions`` sessions at once; returns their wall time in seconds and the server's peak RSS in MiB, sampled
    every 50 ms."""
    peak, done = rss_mib(pid), threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, rss_mib(pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(sessions) as pool:
            list(pool.map(lambda _: session(url, upload, methods), range(sessions)))
    finally:
        done.set()
        sampler.join()
    return time.perf_counter() - start, peak


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=3, help="sessions at once in each round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-pixels", type=int, default=1_000_000, help="the app's upload limit and upload size")
    parser.add_argument("--methods", default="bicubic", help="comma-separated methods each session runs")
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        upload = synthetic_upload(folder, args.max_pixels)
        live = LiveApp(folder / "data", extra_args=("--max-pixels", str(args.max_pixels), "--device", "cpu"))
        (folder / "data").mkdir()
        live.start()
        try:
            assert live.process is not None
            pid = live.process.pid
            session(live.url, synthetic_upload(folder, 64 * 64), methods)  # imports and first allocations
            time.sleep(SETTLE_S)
            baseline = rss_mib(pid)
            side = math.isqrt(args.max_pixels)
            print(f"{args.sessions} sessions × {args.rounds} rounds, {side}×{side} uploads, methods {args.methods}")
            print(f"baseline RSS {baseline:.0f} MiB")
            for round_ in range(1, args.rounds + 1):
                seconds, peak = run_round(live.url, upload, methods, args.sessions, pid)
                time.sleep(SETTLE_S)
                after = rss_mib(pid)
                print(
                    f"round {round_}: {seconds:.1f} s, peak RSS {peak:.0f} MiB (+{peak - baseline:.0f}), "
                    f"after {after:.0f} MiB (+{after - baseline:.0f})"
                )
        finally:
            live.stop()


if __name__ == "__main__":
    main()
