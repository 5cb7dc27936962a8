"""`python app.py`: the SR Lab web app (Gradio).

    python app.py [--host 127.0.0.1] [--port 7860] [--share] [--max-pixels 4000000] [--device cuda] [--engine auto] \
        [--concurrency 2] [--share-quota-mb 1000] [--share-max-count 500] \
        [--model label=path/to/model.pth ...] [--trust-model] [--datasets ../shared/data/eval]

Loads every method of the registry once at start-up (a method whose weights are missing is shown as unavailable)
and every ``--model`` (a user's model file, through spandrel; one that cannot be loaded stops the start with the
reason; TorchScript only with ``--trust-model``), then serves the Compare, Folder (the bundled examples and the
benchmark sets of ``--datasets``) and Results tabs, queued and run ``--concurrency`` jobs at a time, and beside
them, outside Gradio's queue, the survey's rater page ``/rate/<study id>`` (:mod:`survey.ui.rate`; old rater links
``/?study=<id>`` are redirected there). Every response carries the security headers of :mod:`sr_app.web`.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import gradio as gr

from sr_app import comparison
from sr_app.cli import run_command
from sr_app.data_dir import data_dir_from_env, remember_app_url
from sr_app.engines import ENGINES, Engine
from sr_app.images import DEFAULT_MAX_PIXELS
from sr_app.methods import REGISTRY, Method, MethodError, Settings, resolve
from sr_app.ui import compare, folder
from sr_app.ui.share import DEFAULT_QUOTA, Quota
from sr_app.upscalers import PRECISIONS, Precision
from sr_app.weights import WEIGHTS_DIR, WeightsError
from survey.store import open_store
from survey.ui.rate import BlocksWithRaterPage
from survey.ui.results import admin_password, build_results_tab

TITLE = "SR Lab"
#: Largest upload Gradio accepts at all; the pixel limit (--max-pixels) is checked after, from the image header.
MAX_FILE_SIZE = "100mb"
#: The benchmark sets the Folder tab offers by default (each subfolder, or its HR/, is a set), when the folder exists.
DEFAULT_DATASETS = Path(__file__).resolve().parent.parent / "shared" / "data" / "eval"
#: Jobs (upscales, shares, crops …) run at once by default, for everybody together.
DEFAULT_CONCURRENCY = 2


def build_app(
    weights_dir: Path = WEIGHTS_DIR,
    device: str | None = None,
    precision: Precision = "auto",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    data_dir: Path | None = None,
    models: Sequence[Method] = (),
    concurrency: int = DEFAULT_CONCURRENCY,
    share_quota: Quota = DEFAULT_QUOTA,
    engine: Engine = "torch",
    datasets: Path | None = None,
) -> gr.Blocks:
    """The whole app, with the registry's networks loaded from ``weights_dir`` and the user's ``models`` onto
    ``device`` (``None``: the best available) in ``precision``, uploads limited to ``max_pixels`` (width ×
    height), ``concurrency`` jobs run at once and shared comparisons kept within ``share_quota``; on the CPU the
    networks run through ``engine`` (:mod:`sr_app.engines`; ``python app.py`` asks for "auto": the fastest measured
    on this machine); the Folder tab offers the bundled examples and the sets in ``datasets``.

    Raises :class:`WeightsError` when one of ``models`` cannot be loaded.
    """
    settings = Settings(device=device, precision=precision, weights_dir=weights_dir, engine=engine)
    methods = comparison.load_methods([*REGISTRY.values(), *models], settings)
    for method in methods:
        print(comparison.panel_label(method) + (f": {method.reason}" if method.upscaler is None else ""))
    failed = [method.reason for method in methods[len(REGISTRY) :] if method.upscaler is None]
    if failed:
        raise WeightsError("; ".join(failed))
    store = open_store(data_dir)  # --data-dir, else $SR_LAB_DATA, else ~/.local/share/sr-lab; $DATABASE_URL
    password = admin_password(store)  # $SR_LAB_ADMIN_PASSWORD, else generated once (printed) and kept there
    # hourly, drop served files older than 1 h; raters get their own page (survey.ui.rate), not these tabs
    with BlocksWithRaterPage(store, title=TITLE, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"# {TITLE}: ×4 super-resolution side by side")
        with gr.Tabs():
            with gr.Tab("Compare", id="compare"):
                compare.build_compare_tab(methods, max_pixels, store.data_dir, share_quota)
            with gr.Tab("Folder", id="folder"):
                folder.build_folder_tab(methods, datasets, max_pixels)
            with gr.Tab("Results", id="results"):
                build_results_tab(store, password)
    demo.queue(default_concurrency_limit=concurrency)
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
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto (default): bfloat16 where the hardware is fast at it and the network allows it; fp32; bf16",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="how networks run on the CPU: auto (default): the fastest way measured on this machine (timed once, "
        "kept); torch; openvino; onnxruntime",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"jobs run at once, for all users together (default {DEFAULT_CONCURRENCY}); network computations among "
        "them take turns on the device, each with all of its threads",
    )
    parser.add_argument("--data-dir", type=Path, help="survey database and stimuli (default: $SR_LAB_DATA)")
    parser.add_argument(
        "--share-quota-mb",
        type=float,
        default=DEFAULT_QUOTA.megabytes,
        help=f"largest total size of shared comparisons, in MB (default {DEFAULT_QUOTA.megabytes:g})",
    )
    parser.add_argument(
        "--share-max-count",
        type=int,
        default=DEFAULT_QUOTA.count,
        help=f"most shared comparisons kept (default {DEFAULT_QUOTA.count})",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="add your own ×4 model file (.pth, .safetensors; any architecture spandrel knows) to Compare; repeatable",
    )
    parser.add_argument(
        "--trust-model",
        action="store_true",
        help="also load --model files that are TorchScript, which run code stored in them as they load",
    )
    parser.add_argument(
        "--datasets",
        type=Path,
        default=DEFAULT_DATASETS if DEFAULT_DATASETS.is_dir() else None,
        help="benchmark sets the Folder tab offers by name: each subfolder (or its HR/) is a set (default: "
        "../shared/data/eval when it exists)",
    )
    args = parser.parse_args(argv)
    if args.datasets is not None and not args.datasets.is_dir():
        parser.error(f"--datasets {args.datasets} is not a folder")
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    models = [resolve(spec, trusted=args.trust_model) for spec in args.model]
    built_in = [model.name for model in models if model.name in REGISTRY]
    if built_in:
        raise MethodError(f"--model takes label=path/to/model.pth; {', '.join(built_in)} is already in the app")
    use_own_gradio_cache()
    demo = build_app(
        device=args.device,
        precision=args.precision,
        max_pixels=args.max_pixels,
        data_dir=args.data_dir,
        models=models,
        concurrency=args.concurrency,
        share_quota=Quota(args.share_quota_mb, args.share_max_count),
        engine=args.engine,
        datasets=args.datasets,
    )
    demo.launch(
        server_name=args.host, server_port=args.port, share=args.share, max_file_size=MAX_FILE_SIZE,
        prevent_thread_lock=True,
    )  # fmt: skip
    remember_app_url(data_dir_from_env(args.data_dir), demo.share_url or demo.local_url)  # for survey rater links
    demo.block_thread()


def use_own_gradio_cache() -> Path:
    """Give this process a temporary folder of its own for Gradio's file cache (``$GRADIO_TEMP_DIR``, made inside
    the one set, else inside the system's temporary folder), removed when it exits.

    Gradio caches example and output files by their content in one folder, by default shared by every process on the
    machine, and an app launched with ``delete_cache`` removes the files it cached when it stops: among them the
    bundled examples that another SR Lab process on the machine (or a test run) still serves."""
    folder = Path(tempfile.mkdtemp(prefix="sr-lab-gradio-", dir=os.environ.get("GRADIO_TEMP_DIR")))
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


if __name__ == "__main__":
    run_command(main)
