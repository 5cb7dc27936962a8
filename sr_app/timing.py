"""Which way to run a network is the fastest on this machine, measured.

:func:`fastest` times every way this machine can run EDSR-baseline (:func:`sr_app.engines.candidates`) on a 64×64
input, in interleaved rounds, once per CPU model, thread count and engine versions, and keeps the seconds in
``winners.json`` beside the ONNX exports (:func:`sr_app.engines.cache_dir`; delete it to time again).
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Collection, Hashable
from pathlib import Path
from typing import TypeVar

import torch
from spandrel import SizeRequirements
from torch import nn

from sr_app.engines import (
    ENGINES,
    Candidate,
    EngineError,
    TileRunner,
    cache_dir,
    candidates,
    export,
    make_runner,
    sample,
)
from sr_app.models import EDSR

WINNERS_FILE = "winners.json"
#: The timing input's side in pixels, and the rounds timed after a warm-up round.
TIMING_SIZE, TIMING_ROUNDS = 64, 5

Variant = TypeVar("Variant", bound=Hashable)


def time_interleaved(
    variants: dict[Variant, Callable[[], object]], rounds: int, sync: Callable[[], None] = lambda: None
) -> dict[Variant, list[float]]:
    """Seconds each variant took in each of ``rounds`` rounds after a warm-up round. Each round runs every variant
    once, every other round in reverse order, so that other work on the machine disturbs them alike; ``sync`` waits
    for the device (CUDA runs asynchronously)."""
    seconds: dict[Variant, list[float]] = {name: [] for name in variants}
    for round_ in range(rounds + 1):
        for name in list(variants)[:: -1 if round_ % 2 else 1]:
            start = time.perf_counter()
            variants[name]()
            sync()
            if round_:
                seconds[name].append(time.perf_counter() - start)
    return seconds


def time_candidates(
    bf16_choices: Collection[bool],
    threads: int,
    network: nn.Module | None = None,
    size: int = TIMING_SIZE,
    rounds: int = TIMING_ROUNDS,
) -> tuple[dict[Candidate, float], dict[str, str]]:
    """The best seconds of every candidate in the precisions ``bf16_choices`` that runs here, on ``network`` (default:
    EDSR-baseline ×4, randomly initialised) with a size² input and ``threads`` threads, over ``rounds`` interleaved
    rounds; and why each other candidate cannot run."""
    network = (network or EDSR()).eval()
    runners: dict[Candidate, TileRunner] = {}
    unavailable: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as folder:
        onnx = Path(folder) / "network.onnx"
        try:
            export(network, onnx, SizeRequirements())
        except EngineError as error:
            unavailable = {str(c): str(error) for c in candidates(bf16_choices) if c.engine != "torch"}
        for candidate in candidates(bf16_choices):
            if str(candidate) in unavailable:
                continue
            try:  # each torch runner gets its own copy: it moves its network into its memory layout
                runners[candidate] = make_runner(candidate, copy.deepcopy(network), onnx, threads)
            except EngineError as error:
                unavailable[str(candidate)] = str(error)
    x = sample((size, size))
    with torch.inference_mode():
        seconds = time_interleaved({c: functools.partial(runner, x) for c, runner in runners.items()}, rounds)
    return {candidate: min(times) for candidate, times in seconds.items()}, unavailable


@functools.cache
def cpu_info() -> dict[str, str]:
    """The first processor's fields in ``/proc/cpuinfo`` ("model name", "flags" …); empty where there is none (macOS,
    Windows)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields = (line.partition(":") for line in text.split("\n\n")[0].splitlines())
    return {key.strip(): value.strip() for key, _, value in fields}


def engine_versions() -> str:
    """The installed version of every engine's package ("torch 2.14.1, openvino 2026.4.0, onnxruntime -")."""
    found = []
    for package in ENGINES[1:]:  # every engine but auto
        try:
            found.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{package} -")
    return ", ".join(found)


def machine(threads: int) -> str:
    """What the timings are kept under: the CPU model, the thread count and the engines' versions (an engine installed
    or upgraded is timed anew)."""
    model = cpu_info().get("model name") or platform.processor() or platform.machine()
    return f"{model}, {threads} threads, {engine_versions()}"


def timings(bf16_choices: Collection[bool], threads: int) -> dict[Candidate, float]:
    """The seconds of every candidate on this machine with ``threads`` threads, from ``winners.json`` in
    :func:`cache_dir`; timed (:func:`time_candidates`, in the precisions ``bf16_choices``) and kept there the first
    time."""
    path = cache_dir() / WINNERS_FILE
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        kept = {}
    key = machine(threads)
    if key not in kept:
        seconds, unavailable = time_candidates(bf16_choices, threads)
        kept[key] = {
            "fastest": str(min(seconds, key=seconds.__getitem__)),
            "seconds": {str(candidate): round(s, 4) for candidate, s in sorted(seconds.items(), key=lambda i: i[1])},
            "unavailable": unavailable,
            "timed": f"EDSR-baseline x4 on {TIMING_SIZE}x{TIMING_SIZE}, best of {TIMING_ROUNDS} interleaved rounds",
            "when": time.strftime("%Y-%m-%d %H:%M"),
        }
        draft = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        draft.write_text(json.dumps(kept, indent=2))
        draft.replace(path)
    by_name = {str(candidate): candidate for candidate in candidates((False, True))}
    return {by_name[name]: s for name, s in kept[key]["seconds"].items() if name in by_name}


def fastest(bf16_choices: Collection[bool], timed_choices: Collection[bool], threads: int) -> Candidate:
    """The fastest candidate in the precisions ``bf16_choices`` on this machine with ``threads`` threads, from
    :func:`timings` (which times the precisions ``timed_choices`` the first time); torch ``channels_last`` when none
    was timed in those precisions."""
    seconds = {c: s for c, s in timings(timed_choices, threads).items() if c.bf16 in bf16_choices}
    if not seconds:
        return Candidate("torch", True in bf16_choices, channels_last=True)
    return min(seconds, key=seconds.__getitem__)
