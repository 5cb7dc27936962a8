"""Inference latency and peak memory of every upscaling method, and our networks next to the bare loop.

    python benchmarks/inference.py                       # 256² whole and 1024² tiled, fp32 (and bf16 where fast)
    python benchmarks/inference.py --sizes 256,512,1024,2048 --tiled-only   # memory vs image size
    python benchmarks/inference.py --methods edsr,realesrgan --sizes 256   # Real-ESRGAN ×4 (optional) next to EDSR
    python benchmarks/inference.py --vs-bare --methods edsr --sizes 256 --repeats 5    # ours vs bare, fp32 vs bf16
    python benchmarks/inference.py --vs-bare --methods edsr --sizes 1024 --precisions bf16   # tiled vs untiled

Each measurement runs in a fresh subprocess, so peak memory is that of one configuration alone:
on CPU the growth of the process's peak RSS during inference, on CUDA ``torch.cuda.max_memory_allocated``.
Latency is the median of ``--repeats`` runs after one warm-up run.

``--vs-bare`` times, in one process and interleaved (every variant once per round, so that other work on the
machine disturbs them alike), the bare loop ``model(x)`` (``channels_last``, under ``inference_mode``, bf16 autocast
for bf16; a float tensor in and out, the whole image at once) against the upscaler the app uses, whole
(``ours_s``) and in tiles of ``--tile`` (``tiled_s``, sizes above the tile only): the fastest of ``--repeats``
rounds after a warm-up round.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sr_app.images import rgb_to_tensor  # noqa: E402
from sr_app.methods import REGISTRY, Settings, load_upscaler  # noqa: E402
from sr_app.upscalers import DEFAULT_TILE, ModelUpscaler, default_device, use_bf16  # noqa: E402
from sr_app.weights import WeightsError  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(method: str, size: int, tile: int | None, bf16: bool, device: str | None, repeats: int) -> dict:
    """Latency and memory of one configuration, in this process."""
    upscaler = load_upscaler(method, Settings(device=device, precision="bf16" if bf16 else "fp32", tile=tile))
    image = noise_image(size)
    cuda = upscaler.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    before = peak_rss_mib()
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        upscaler(image)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mib() - before
    return {
        "method": method,
        "device": upscaler.device,
        "dtype": "bf16" if getattr(upscaler, "bf16", False) else "fp32",
        "input": f"{size}x{size}",
        "tiled": getattr(upscaler, "tile", None) is not None and size > upscaler.tile,
        "median_s": round(statistics.median(times[1:]), 3),
        "peak_mib": round(peak, 1),
        "output_mib": round(size * size * 16 * 3 / 2**20, 1),
    }


def noise_image(size: int) -> np.ndarray:
    """A ``size``² uint8 RGB test input (seeded noise)."""
    return np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)


def fastest(variants: dict[str, Callable[[], object]], rounds: int, sync: Callable[[], None]) -> dict[str, float]:
    """The fastest time in seconds of each variant over ``rounds`` rounds after a warm-up round; each round runs every
    variant once, every other round in reverse order, so that other work on the machine disturbs them alike.
    ``sync`` waits for the device (CUDA runs asynchronously)."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(rounds + 1):
        for name in list(variants)[:: -1 if round_ % 2 else 1]:
            start = time.perf_counter()
            variants[name]()
            sync()
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: min(seconds) for name, seconds in times.items()}


def synchronize(device: torch.device) -> Callable[[], None]:
    """A function that waits for ``device`` to finish its queued work."""
    return torch.cuda.synchronize if device.type == "cuda" else lambda: None


def vs_bare(method: str, size: int, tile: int, bf16: bool, device: str | None, repeats: int) -> dict | None:
    """One row of the ``--vs-bare`` table: the bare loop, our upscaler whole and tiled; ``None`` for a method
    without a network (bicubic, Real-ESRGAN)."""
    settings = Settings(device=device, precision="bf16" if bf16 else "fp32", tile=None)
    whole = load_upscaler(method, settings)
    if not isinstance(whole, ModelUpscaler):
        return None
    tiled = load_upscaler(method, dataclasses.replace(settings, tile=tile))
    image = noise_image(size)
    x = rgb_to_tensor(image)[None].to(whole.torch_device, memory_format=torch.channels_last)

    @torch.inference_mode()
    def bare() -> torch.Tensor:
        with torch.autocast(whole.torch_device.type, dtype=torch.bfloat16, enabled=whole.bf16):
            return whole.model(x)

    variants = {"bare": bare, "ours": lambda: whole(image)}
    if size > tile:
        variants["tiled"] = lambda: tiled(image)
    seconds = fastest(variants, repeats, synchronize(whole.torch_device))
    row = {
        "method": method,
        "input": f"{size}x{size}",
        "dtype": "bf16" if whole.bf16 else "fp32",
        "bare_s": round(seconds["bare"], 3),
        "ours_s": round(seconds["ours"], 3),
        "ours/bare": round(seconds["ours"] / seconds["bare"], 2),
    }
    if "tiled" in seconds:
        row |= {"tiled_s": round(seconds["tiled"], 3), "tiled/ours": round(seconds["tiled"] / seconds["ours"], 2)}
    return row


def print_table(rows: list[dict]) -> None:
    header = list(dict.fromkeys(key for row in rows for key in row))
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row.get(k, "")) for k in header))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default=",".join(REGISTRY), help="names or label=path/to/model.pth")
    parser.add_argument("--sizes", default="256,1024", help="square input sides")
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE, help="LR tile side for the tiled runs")
    parser.add_argument("--tiled-only", action="store_true", help="skip whole-image runs above the tile size")
    parser.add_argument("--precisions", help="fp32, bf16 or fp32,bf16 (default: bf16 too where it is fast)")
    parser.add_argument("--device")
    parser.add_argument("--vs-bare", action="store_true", help="time the bare loop next to ours, in this process")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one JSON config to measure
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(**json.loads(args.one))))
        return

    fast_bf16 = use_bf16("auto", torch.device(args.device) if args.device else default_device())
    precisions = args.precisions or ("fp32,bf16" if fast_bf16 else "fp32")
    dtypes = [precision == "bf16" for precision in precisions.split(",")]
    upscalers = {}
    for method in args.methods.split(","):
        try:
            upscalers[method] = load_upscaler(method)
        except WeightsError as error:
            print(f"skipping {method}: {error}", file=sys.stderr)
    if args.vs_bare:
        rows = [
            row
            for method in upscalers
            for size in map(int, args.sizes.split(","))
            for bf16 in dtypes
            if (row := vs_bare(method, size, args.tile, bf16, args.device, args.repeats)) is not None
        ]
        print(f"{torch.get_num_threads()} threads; fastest of {args.repeats} interleaved rounds after a warm-up")
        print_table(rows)
        return
    rows = []
    for method, upscaler in upscalers.items():
        for size in map(int, args.sizes.split(",")):
            tiles = [args.tile] if args.tiled_only or size > args.tile else [None]
            for bf16 in dtypes if hasattr(upscaler, "bf16") else [False]:  # bicubic and Real-ESRGAN have no bf16
                for tile in tiles:
                    config = {
                        "method": method,
                        "size": size,
                        "tile": tile,
                        "bf16": bf16,
                        "device": args.device,
                        "repeats": args.repeats,
                    }
                    out = subprocess.run(
                        [sys.executable, __file__, "--one", json.dumps(config)],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    rows.append(json.loads(out.stdout))
                    print(json.dumps(rows[-1]), file=sys.stderr)
    print_table(rows)


if __name__ == "__main__":
    main()
