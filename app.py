"""`python app.py`: the SR Lab web app (Gradio).

    python app.py [--host 127.0.0.1] [--port 7860] [--share] [--max-pixels 4000000] [--device cuda]

Loads every upscaling method once at start-up (a method whose weights are missing is shown as unavailable),
then serves the Compare tab, plus placeholders for the Survey and Results tabs. Requests are queued and run
one at a time.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import gradio as gr

from sr_app.images import DEFAULT_MAX_PIXELS
from sr_app.ui import compare
from sr_app.weights import WEIGHTS_DIR

TITLE = "SR Lab"
#: Largest upload Gradio accepts at all; the pixel limit (--max-pixels) is checked after, from the image header.
MAX_FILE_SIZE = "100mb"


def build_app(
    weights_dir: Path = WEIGHTS_DIR, device: str | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> gr.Blocks:
    """The whole app, with its models loaded from ``weights_dir`` onto ``device`` (``None``: the best available)
    and uploads limited to ``max_pixels`` (width × height)."""
    methods = compare.load_methods(weights_dir, device)
    for method in methods:
        print(compare.panel_label(method) + (f": {method.reason}" if method.upscaler is None else ""))
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:  # hourly, drop served files older than 1 h
        gr.Markdown(f"# {TITLE}: ×4 super-resolution side by side")
        with gr.Tabs():
            with gr.Tab("Compare"):
                compare.build_compare_tab(methods, max_pixels)
            with gr.Tab("Survey"):
                gr.Markdown("A blind mean-opinion-score survey will live here.")
            with gr.Tab("Results"):
                gr.Markdown("Survey results (MOS, confidence intervals, significance tests) will live here.")
    demo.queue(default_concurrency_limit=1)
    return demo


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    parser.add_argument(
        "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="largest upload accepted, in width × height pixels"
    )
    parser.add_argument("--device", help="run the networks here (cpu, cuda, mps); default: the best available")
    args = parser.parse_args(argv)
    demo = build_app(device=args.device, max_pixels=args.max_pixels)
    demo.launch(
        server_name=args.host, server_port=args.port, share=args.share, max_file_size=MAX_FILE_SIZE, css=compare.CSS
    )


if __name__ == "__main__":
    main()
