"""CPU engines: how a network runs one tile (torch, OpenVINO or ONNX Runtime), and which way is the fastest here.

:class:`sr_app.upscalers.ModelUpscaler` pads, tiles and self-ensembles; an engine only maps one padded tile, a float
[0, 1] NCHW tensor, to the network's float NCHW output ×scale (a :class:`TileRunner`).

* torch runs the network itself, in float32 or under bfloat16 autocast, ``channels_last`` or contiguous.
* OpenVINO (``openvino``; bfloat16 through its inference precision hint) and ONNX Runtime (``onnxruntime``, optional;
  float32 only) run the network exported to ONNX once (opset 18, torch's TorchScript exporter) with a dynamic height
  and width, so one file serves every tile size. The export is kept in :func:`cache_dir` as ``<SHA-256 of the weights
  file>.onnx`` once it gave torch's output at a second input size (a network whose trace fixed its input size is
  refused there); an export that failed is remembered as ``<hash>.failed``.
* :mod:`sr_app.timing` times the candidates and picks the fastest on this machine.

An engine that cannot run a network (package missing, export or compilation failed) raises :class:`EngineError`, and
the upscaler falls back to torch with the reason in its device label.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import importlib.metadata
import os
import tempfile
import textwrap
import warnings
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, Protocol, get_args

import torch
from spandrel import SizeRequirements
from torch import nn

from sr_app.weights import WEIGHTS_DIR

#: How networks run on the CPU: "auto" (the fastest way measured on this machine), or one engine.
Engine = Literal["auto", "torch", "openvino", "onnxruntime"]
ENGINES: tuple[Engine, ...] = get_args(Engine)
#: Engines that compute in bfloat16 (ONNX Runtime's CPU provider has no bfloat16 convolutions).
BF16_ENGINES = frozenset({"torch", "openvino"})
#: Where exports and timings are kept: beside the shipped weights, else (a read-only install) in the user's cache.
CACHE_DIRS = (WEIGHTS_DIR / "engines", Path.home() / ".cache" / "sr-lab" / "engines")
OPSET = 18
INPUT, OUTPUT = "lr", "sr"
#: LR sizes (height, width) a network is exported at and checked at, each first padded to its size requirements: a
#: multiple of 8, and odd sizes of the other orientation, so that a network that pads itself to a multiple of a window
#: traces no padding and shows it at the check.
EXPORT_SIZE, CHECK_SIZE = (40, 48), (37, 29)
#: Largest difference, in [0, 1] units, accepted between an export in float32 and torch (a tenth of a grey level).
EXPORT_TOLERANCE = 0.1 / 255
#: Longest reason quoted from a failing engine, in characters.
REASON_LENGTH = 100


class EngineError(RuntimeError):
    """An engine cannot run a network here; the message says why."""


@dataclass(frozen=True)
class Candidate:
    """One way to run a network on the CPU: an engine, its precision (bfloat16 or float32) and, for torch, its memory
    layout (``channels_last`` or contiguous)."""

    engine: str
    bf16: bool
    channels_last: bool = False

    def __str__(self) -> str:
        """'openvino bf16', 'torch fp32 channels_last' …"""
        name = f"{self.engine} {'bf16' if self.bf16 else 'fp32'}"
        if self.engine != "torch":
            return name
        return f"{name} {'channels_last' if self.channels_last else 'contiguous'}"


def candidates(bf16_choices: Collection[bool]) -> list[Candidate]:
    """Every way to run in the precisions ``bf16_choices`` (bfloat16 flags): torch in both memory layouts, OpenVINO,
    and ONNX Runtime in float32."""
    ways = [("torch", True), ("torch", False), ("openvino", False), ("onnxruntime", False)]
    return [
        Candidate(engine, bf16, channels_last)
        for bf16 in sorted(set(bf16_choices))
        for engine, channels_last in ways
        if engine in BF16_ENGINES or not bf16
    ]


class TileRunner(Protocol):
    #: Whether it computes in bfloat16.
    bf16: bool

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The network's float NCHW output ×scale for a float [0, 1] NCHW input."""
        ...


class TorchRunner:
    """The network in torch on ``device``, its weights and inputs in ``channels_last`` or contiguous layout, under
    bfloat16 autocast when ``bf16``. Moves ``model`` (in place, as ``nn.Module.to`` does)."""

    def __init__(self, model: nn.Module, device: torch.device, bf16: bool, channels_last: bool = True) -> None:
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(device, memory_format=self.memory_format).eval()
        self.device = device
        self.bf16 = bf16

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.model(x.contiguous(memory_format=self.memory_format))


def import_engine(name: str) -> ModuleType:
    """The engine's package; :class:`EngineError` when it is not installed or does not load."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise EngineError(f"{name} is not installed ({error})") from error


@functools.cache
def openvino_core() -> Any:
    """OpenVINO's ``Core``, made once per process."""
    return import_engine("openvino").Core()


class OpenVINORunner:
    """An exported network compiled by OpenVINO for the CPU, each call on ``threads`` threads. It gets as many streams
    as calls of that many threads fit on the CPU, so that concurrent calls (the app's jobs) run side by side, as
    torch's do, instead of queueing for one stream."""

    def __init__(self, onnx: Path, bf16: bool, threads: int) -> None:
        ov = import_engine("openvino")
        streams = max(1, (os.cpu_count() or 1) // threads)
        config = {
            "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
            "INFERENCE_NUM_THREADS": threads * streams,
            "NUM_STREAMS": streams,
        }
        with engine_errors("OpenVINO cannot compile the network"):
            self.compiled = openvino_core().compile_model(onnx, "CPU", config)
        # OpenVINO computes in float32 where the CPU has no bfloat16 instructions, whatever the hint.
        self.bf16 = self.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        request = self.compiled.create_infer_request()  # one per call: concurrent calls share no buffers
        return torch.from_numpy(request.infer({0: x.contiguous().numpy()})[0])


class OnnxRuntimeRunner:
    """An exported network in an ONNX Runtime CPU session, in float32, each call on ``threads`` threads."""

    bf16 = False

    def __init__(self, onnx: Path, threads: int) -> None:
        ort = import_engine("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        with engine_errors("ONNX Runtime cannot load the network"):
            self.session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run([OUTPUT], {INPUT: x.contiguous().numpy()})[0])


@contextlib.contextmanager
def engine_errors(what: str) -> Iterator[None]:
    """Turns any error an engine's own code raises into :class:`EngineError`: "``what``: the reason's first line"."""
    try:
        yield
    except EngineError:
        raise
    except Exception as error:
        lines = str(error).strip().splitlines() or [type(error).__name__]
        raise EngineError(f"{what}: {textwrap.shorten(lines[0], REASON_LENGTH)}") from error


def make_runner(candidate: Candidate, model: nn.Module, onnx: Path | None, threads: int) -> TileRunner:
    """The runner of ``candidate`` on the CPU: torch on ``model``, the others on its export ``onnx``."""
    if candidate.engine == "torch":
        return TorchRunner(model, torch.device("cpu"), candidate.bf16, candidate.channels_last)
    if onnx is None:
        raise EngineError(f"{candidate.engine} needs the network exported to ONNX")
    if candidate.engine == "openvino":
        return OpenVINORunner(onnx, candidate.bf16, threads)
    return OnnxRuntimeRunner(onnx, threads)


def load(
    candidate: Candidate, model: nn.Module, weights: Path | None, size_requirements: SizeRequirements, threads: int
) -> TileRunner:
    """The runner of ``candidate`` for ``model``, whose weights are the file ``weights`` (it keys the cached export);
    :class:`EngineError` when it cannot run here."""
    onnx = None
    if candidate.engine != "torch":
        import_engine(candidate.engine)  # before exporting for nothing, and before remembering a failed export
        import_engine("onnx")  # torch's exporter needs it
        if weights is None:
            raise EngineError("no weights file to key its ONNX export by")
        fp32 = dataclasses.replace(candidate, bf16=False)
        onnx = exported(model, weights, size_requirements, lambda path: make_runner(fp32, model, path, threads))
    return make_runner(candidate, model, onnx, threads)


def cache_dir() -> Path:
    """The first of :data:`CACHE_DIRS` this process can write to (made if missing)."""
    for folder in CACHE_DIRS:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder
    raise EngineError(f"none of {', '.join(map(str, CACHE_DIRS))} is writable")


def padded(size: tuple[int, int], size_requirements: SizeRequirements) -> tuple[int, int]:
    """(height, width) ``size`` grown to the next size the network accepts."""
    height, width = size
    pad_width, pad_height = size_requirements.get_padding(width, height)
    return height + pad_height, width + pad_width


def sample(size: tuple[int, int]) -> torch.Tensor:
    """A seeded float [0, 1] 1×3×height×width input (the caller's random state is left alone)."""
    return torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))


def export(model: nn.Module, path: Path, size_requirements: SizeRequirements) -> None:
    """Write ``model`` (on the CPU, float [0, 1] NCHW in and out) to ``path`` as ONNX, with a dynamic height and
    width; :class:`EngineError` when torch cannot export it."""
    dynamic = {INPUT: {2: "height", 3: "width"}, OUTPUT: {2: "out_height", 3: "out_width"}}
    with warnings.catch_warnings(), engine_errors("ONNX export failed"):
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.9+ deprecates the TorchScript exporter
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # sizes traced as constants fail the check
        x = sample(padded(EXPORT_SIZE, size_requirements))
        torch.onnx.export(
            model, (x,), path, input_names=[INPUT], output_names=[OUTPUT], opset_version=OPSET, dynamo=False,
            dynamic_axes=dynamic,
        )  # fmt: skip


def check(model: nn.Module, runner: TileRunner, size_requirements: SizeRequirements) -> None:
    """:class:`EngineError` unless ``runner`` (an export of ``model`` in float32) gives torch's output at an input
    size other than the one it was exported at."""
    x = sample(padded(CHECK_SIZE, size_requirements))
    with torch.inference_mode():
        expected = model(x)
        with engine_errors("the ONNX export fails at another input size"):
            output = runner(x)
    if output.shape != expected.shape or (output - expected).abs().max() > EXPORT_TOLERANCE:
        raise EngineError("the ONNX export does not follow the input size (its trace fixed it)")


def exported(
    model: nn.Module,
    weights: Path,
    size_requirements: SizeRequirements,
    check_with: Callable[[Path], TileRunner],
) -> Path:
    """The cached ONNX export of ``model``, whose weights are the file ``weights``: exported and checked with the
    float32 runner ``check_with`` makes of it the first time. An export that failed is not tried again: its reason is
    kept beside it (``<hash>.failed``; delete it to try again)."""
    with weights.open("rb") as file:
        path = cache_dir() / f"{hashlib.file_digest(file, 'sha256').hexdigest()[:16]}.onnx"
    failed = path.with_suffix(".failed")
    if failed.is_file():
        raise EngineError(failed.read_text())
    if not path.is_file():
        with tempfile.TemporaryDirectory(dir=path.parent) as folder:
            draft = Path(folder) / path.name
            try:
                export(model, draft, size_requirements)
                check(model, check_with(draft), size_requirements)
            except EngineError as error:
                failed.write_text(str(error))
                raise
            draft.replace(path)
    return path
