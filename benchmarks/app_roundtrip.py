"""Round-trip time of the Compare tab's ``/upscale`` call against the bare upscalers it runs.

    python benchmarks/app_roundtrip.py [--size 256] [--repeats 3] [--weights-dir runs/edsr] [--device cpu]

Starts the app in this process on a free port, then, for one ``--size``² photo crop, times
``gradio_client``'s ``predict(..., api_name="/upscale")``: upload, decoding, every available method, PNG
encoding of all panels, crops and slider images, and the client downloading them. The bare time is the
same upscalers called directly on the decoded array. Both are medians of ``--repeats`` runs after a warm-up.
The app's overhead is measured within each call, as its round trip minus the method times the app itself
reports in its table, so that it holds even while other work shares the CPU.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradio_client import Client, handle_file  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data as skdata  # noqa: E402

from app import build_app  # noqa: E402
from sr_app.comparison import UPSCALE, load_methods, title  # noqa: E402
from sr_app.methods import Settings  # noqa: E402
from sr_app.weights import WEIGHTS_DIR  # noqa: E402


def timed(fn: Callable[[], object], repeats: int) -> list[tuple[float, object]]:
    """(wall seconds, result) of ``repeats`` calls of ``fn()``, after one warm-up call."""
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        runs.append((time.perf_counter() - start, result))
    return runs


def reported_seconds(outputs: tuple) -> float:
    """The sum of the method times in the app's results table (the ``/upscale`` output after the panels)."""
    _, table = outputs
    column = table["headers"].index("Time (ms)")
    return sum(row[column] for row in table["data"]) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256, help="side of the square input, in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    image = skdata.astronaut()[: args.size, : args.size]
    upload = Path(tempfile.mkdtemp()) / "input.png"
    Image.fromarray(image).save(upload)

    methods = [
        m
        for m in load_methods(settings=Settings(device=args.device, weights_dir=args.weights_dir))
        if m.upscaler is not None
    ]
    bare = {
        m.name: statistics.median(t for t, _ in timed(lambda m=m: m.upscaler(image), args.repeats)) for m in methods
    }

    demo = build_app(weights_dir=args.weights_dir, device=args.device)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        runs = timed(lambda: client.predict(handle_file(str(upload)), UPSCALE, api_name="/upscale"), args.repeats)
    finally:
        demo.close()

    print(f"input {args.size}×{args.size}, device {args.device}, median of {args.repeats} after a warm-up")
    for name, seconds in bare.items():
        print(f"  bare {title(name):<12} {seconds * 1000:8.0f} ms")
    print(f"  bare sum          {sum(bare.values()) * 1000:8.0f} ms")
    round_trip = statistics.median(t for t, _ in runs)
    in_app = statistics.median(reported_seconds(outputs) for _, outputs in runs)
    overhead = statistics.median(t - reported_seconds(outputs) for t, outputs in runs)
    print(f"  app round trip    {round_trip * 1000:8.0f} ms")
    print(f"  methods in app    {in_app * 1000:8.0f} ms  (the app's own table)")
    print(f"  app overhead      {overhead * 1000:8.0f} ms  (round trip - methods, per call)")


if __name__ == "__main__":
    main()
