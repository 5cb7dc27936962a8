"""Inference latency and peak memory of every upscaling method.

    python benchmarks/inference.py                       # 256² whole and 1024² tiled, fp32 (and bf16 where fast)
    python benchmarks/inference.py --sizes 256,512,1024,2048 --tiled-only   # memory vs image size
    python benchmarks/inference.py --methods edsr,realesrgan --sizes 256   # Real-ESRGAN ×4 (optional) next to EDSR

Each measurement runs in a fresh subprocess, so peak memory is that of one configuration alone:
on CPU the growth of the process's peak RSS during inference, on CUDA ``torch.cuda.max_memory_allocated``.
Latency is the median of ``--repeats`` runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sr_app.methods import REGISTRY, Settings, load_upscaler  # noqa: E402
from sr_app.weights import WeightsError  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(method: str, size: int, tile: int | None, bf16: bool, device: str | None, repeats: int) -> dict:
    """Latency and memory of one configuration, in this process."""
    upscaler = load_upscaler(method, Settings(device=device, bf16=bf16, tile=tile))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
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
        "dtype": "bf16" if bf16 else "fp32",
        "input": f"{size}x{size}",
        "tiled": getattr(upscaler, "tile", None) is not None and size > upscaler.tile,
        "median_s": round(statistics.median(times[1:]), 3),
        "peak_mib": round(peak, 1),
        "output_mib": round(size * size * 16 * 3 / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default=",".join(REGISTRY), help="names or label=path/to/model.pth")
    parser.add_argument("--sizes", default="256,1024", help="square input sides")
    parser.add_argument("--tile", type=int, default=256, help="LR tile side for the tiled runs")
    parser.add_argument("--tiled-only", action="store_true", help="skip whole-image runs above the tile size")
    parser.add_argument(
        "--bf16",
        choices=["auto", "yes", "no"],
        default="auto",
        help="auto: measure bf16 only where the hardware has native bf16 (CUDA or AVX-512 BF16)",
    )
    parser.add_argument("--device")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one JSON config to measure
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(**json.loads(args.one))))
        return

    fast_bf16 = torch.cuda.is_available() or "avx512_bf16" in Path("/proc/cpuinfo").read_text()
    dtypes = {"auto": [False, True] if fast_bf16 else [False], "yes": [False, True], "no": [False]}[args.bf16]
    rows = []
    for method in args.methods.split(","):
        try:
            upscaler = load_upscaler(method)
        except WeightsError as error:
            print(f"skipping {method}: {error}", file=sys.stderr)
            continue
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
    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[k]) for k in header))


if __name__ == "__main__":
    main()
