"""Upscalers: callables from a uint8 HWC RGB image to its ×4 uint8 HWC RGB result.

:class:`BicubicUpscaler` is MATLAB's bicubic ``imresize``; :class:`ModelUpscaler` runs any network on the best
available device (CUDA, then Apple MPS, then CPU), ``channels_last`` and under bfloat16 autocast where the hardware
is fast at it (:func:`use_bf16`), in tiles with overlapping borders when an image is large, so memory stays bounded
by the tile size and the output image, and pads inputs to the sizes a network requires; optionally as a
self-ensemble (EDSR's "EDSR+"). On the CPU each tile can run through another engine (OpenVINO, ONNX Runtime, or the
fastest measured here: :func:`choose_engine`, :mod:`sr_app.engines`). Which methods exist and how their upscalers are
built is :mod:`sr_app.methods`' registry.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections import defaultdict
from collections.abc import Collection
from pathlib import Path
from typing import Literal, Protocol, get_args

import numpy as np
import torch
from spandrel import SizeRequirements
from torch import nn
from torch.nn import functional as F

from sr_app import engines, timing
from sr_app.engines import Candidate, Engine, EngineError, TileRunner, TorchRunner
from sr_app.images import rgb_to_tensor, tensor_to_rgb
from sr_app.resize import imresize

SCALE = 4
#: One network computation at a time per kind of device, each with all of the device's threads: two at once on a
#: 2-core CPU would each get a fraction of it and wait on each other at every layer. Everything else a request does
#: (decoding, PNG encoding, scoring, other requests' tiles in between) runs concurrently.
DEVICE_LOCKS: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
#: How networks compute: "auto" (bfloat16 autocast where the hardware is fast at it, else float32), "fp32" or
#: "bf16" (bfloat16 autocast even where it is slow).
Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
#: CPU feature flags (``/proc/cpuinfo``) of native bfloat16 arithmetic: Intel AMX and AVX-512 BF16.
FAST_BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
#: LR tile side and the overlap added on every side of a tile. EDSR-baseline's receptive field is 37 px
#: wide at LR, so a 24 px overlap leaves tile seams below one grey level.
DEFAULT_TILE = 256
DEFAULT_TILE_PAD = 24


class Upscaler(Protocol):
    name: str
    device: str

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """×4 upscale a uint8 HWC RGB image to a uint8 HWC RGB image."""
        ...


def default_device() -> torch.device:
    """CUDA if present, then Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_flags() -> frozenset[str]:
    """This machine's CPU feature flags from ``/proc/cpuinfo`` (empty where there is none, as on macOS)."""
    return frozenset(timing.cpu_info().get("flags", "").split())


def use_bf16(precision: Precision, device: torch.device, flags: Collection[str] | None = None) -> bool:
    """Whether to run under bfloat16 autocast: always for "bf16", never for "fp32"; for "auto" where bfloat16 is
    fast: CUDA GPUs with native bfloat16 (compute capability 8.0 and up), and CPUs with one of
    :data:`FAST_BF16_CPU_FLAGS` among ``flags`` (default: this machine's :func:`cpu_flags`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    return device.type == "cpu" and not FAST_BF16_CPU_FLAGS.isdisjoint(cpu_flags() if flags is None else flags)


def bf16_choices(precision: Precision, device: torch.device) -> tuple[bool, ...]:
    """The precisions, as bfloat16 flags, a network may run in: for "auto" where bfloat16 is fast both (an engine
    chooses), else the one :func:`use_bf16` says."""
    if precision == "auto" and use_bf16(precision, device):
        return False, True
    return (use_bf16(precision, device),)


def choose_engine(
    engine: Engine | Candidate,
    model: nn.Module,
    device: torch.device,
    precision: Precision,
    size_requirements: SizeRequirements,
    weights: Path | None,
) -> tuple[TileRunner, str]:
    """How ``model`` runs one tile, and what the device label says of it ("" for torch as asked, else the way it
    runs, and why not another).

    Off the CPU, and for "torch", torch runs ``channels_last``, in bfloat16 where ``precision`` allows it. On the CPU
    "auto" takes the fastest way in the precisions ``precision`` allows (:func:`sr_app.timing.fastest`: timed once
    per CPU model and thread count), "openvino" and "onnxruntime" that engine (in bfloat16 where allowed and the
    engine has it), and a :class:`~sr_app.engines.Candidate` is taken as it is. An engine that cannot run the network
    (``weights``, its file, keys the cached export) leaves it to torch, with the reason in the label.
    """
    if not isinstance(engine, Candidate) and engine not in engines.ENGINES:
        raise ValueError(f"Unknown engine {engine!r}; choose from {', '.join(engines.ENGINES)}")
    allowed = bf16_choices(precision, device)
    if engine == "torch" or device.type != "cpu":
        return TorchRunner(model, device, bf16=True in allowed), ""
    threads = torch.get_num_threads()
    wanted = engine.engine if isinstance(engine, Candidate) else engine
    try:
        if isinstance(engine, Candidate):
            candidate = engine
        elif engine == "auto":
            candidate = timing.fastest(allowed, bf16_choices("auto", device), threads)
            wanted = candidate.engine
        else:
            candidate = Candidate(engine, True in allowed and engine in engines.BF16_ENGINES)
        runner = engines.load(candidate, model, weights, size_requirements, threads)
        return runner, str(dataclasses.replace(candidate, bf16=runner.bf16))  # OpenVINO may run float32 instead
    except EngineError as error:
        fallback = Candidate("torch", True in allowed, channels_last=True)
        return TorchRunner(model, device, fallback.bf16), f"{fallback} ({wanted} unavailable: {error})"


class BicubicUpscaler:
    """MATLAB-compatible bicubic interpolation."""

    name = "bicubic"
    device = "cpu"

    def __init__(self, scale: int = SCALE) -> None:
        self.scale = scale

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return imresize(rgb, self.scale)


class ModelUpscaler:
    """Runs a super-resolution network on 8-bit images, whole or in overlapping tiles.

    Under torch the network and its inputs are kept ``channels_last``, the fastest layout for convolutions on CPUs and
    GPUs (unless an engine candidate says otherwise). ``device`` is the label users see: the device, then on the CPU
    the way the network runs when ``engine`` is not "torch" ("cpu · openvino bf16"), and why an engine asked for
    could not run ("cpu · torch fp32 channels_last (openvino unavailable: …)").

    Args:
        name: method name shown to users.
        model: network mapping float [0, 1] NCHW to float NCHW ×``scale``.
        scale: the network's upscaling factor.
        device: where to run; ``None`` picks :func:`default_device`.
        precision: "auto", "fp32" or "bf16" (see :func:`use_bf16`; "auto" with ``engine="auto"``: the faster of the
            two where bfloat16 is fast); ``self.bf16`` says what runs.
        tile: LR tile side in pixels; ``None`` processes the whole image at once.
        tile_pad: overlap added on each side of a tile, discarded from the output.
        size_requirements: input sizes the network accepts (e.g. a multiple of a window size); each input is
            padded on its bottom and right edges (mirrored where possible) to fit, and the output cropped back.
        self_ensemble: average the network's outputs for the 8 flips and 90° rotations of each input (tile), each
            turned back (EDSR's "EDSR+"); 8× the time.
        engine: how each tile runs on the CPU: "torch", "openvino", "onnxruntime", "auto" (the fastest measured on
            this machine) or one :class:`~sr_app.engines.Candidate` (see :func:`choose_engine`); torch elsewhere.
        weights: the network's weights file, which keys the ONNX export engines other than torch run.
    """

    def __init__(
        self,
        name: str,
        model: nn.Module,
        scale: int = SCALE,
        device: torch.device | str | None = None,
        precision: Precision = "auto",
        tile: int | None = DEFAULT_TILE,
        tile_pad: int = DEFAULT_TILE_PAD,
        size_requirements: SizeRequirements | None = None,
        self_ensemble: bool = False,
        engine: Engine | Candidate = "torch",
        weights: Path | None = None,
    ) -> None:
        self.name = name
        self.scale = scale
        self.torch_device = torch.device(device) if device is not None else default_device()
        self.model = model.eval()
        self.tile = tile
        self.tile_pad = tile_pad
        self.size_requirements = size_requirements or SizeRequirements()
        self.self_ensemble = self_ensemble
        self.weights = weights
        self.run, how = choose_engine(engine, self.model, self.torch_device, precision, self.size_requirements, weights)
        self.bf16 = self.run.bf16
        self.device = f"{self.torch_device.type} · {how}" if how else self.torch_device.type

    def with_self_ensemble(self) -> ModelUpscaler:
        """A copy that runs as a self-ensemble, sharing this upscaler's network (this one is left as it is)."""
        ensemble = copy.copy(self)
        ensemble.self_ensemble = True
        return ensemble

    @torch.inference_mode()
    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        if self.tile is None or max(height, width) <= self.tile:
            return tensor_to_rgb(self._forward(rgb))
        out = np.empty((height * self.scale, width * self.scale, 3), dtype=np.uint8)
        s, pad = self.scale, self.tile_pad
        for top in range(0, height, self.tile):
            for left in range(0, width, self.tile):
                bottom, right = min(top + self.tile, height), min(left + self.tile, width)
                y0, x0 = max(top - pad, 0), max(left - pad, 0)
                y1, x1 = min(bottom + pad, height), min(right + pad, width)
                sr = self._forward(rgb[y0:y1, x0:x1])
                keep = sr[:, (top - y0) * s : (bottom - y0) * s, (left - x0) * s : (right - x0) * s]
                out[top * s : bottom * s, left * s : right * s] = tensor_to_rgb(keep)
        return out

    def _forward(self, rgb: np.ndarray) -> torch.Tensor:
        """float CHW output for a uint8 HWC input: the network's, or its self-ensemble's mean."""
        x = rgb_to_tensor(rgb).unsqueeze(0).to(self.torch_device)
        if not self.self_ensemble:
            return self._network(x)[0]
        outputs = (untransform(self._network(transform(x, *symmetry)), *symmetry) for symmetry in SYMMETRIES)
        return sum(outputs)[0] / len(SYMMETRIES)

    def _network(self, x: torch.Tensor) -> torch.Tensor:
        """float NCHW output of the network for a float [0, 1] NCHW input, padded to its size requirements."""
        height, width = x.shape[-2:]
        pad_width, pad_height = self.size_requirements.get_padding(width, height)
        if pad_width or pad_height:
            mirror = pad_width < width and pad_height < height
            x = F.pad(x, (0, pad_width, 0, pad_height), mode="reflect" if mirror else "replicate")
        with DEVICE_LOCKS[self.torch_device.type]:
            y = self.run(x)
        return y[..., : height * self.scale, : width * self.scale].float()


#: The 8 symmetries of a square, as (mirror left-right, then turn this many quarter turns).
SYMMETRIES = [(mirror, turns) for mirror in (False, True) for turns in range(4)]


def transform(x: torch.Tensor, mirror: bool, turns: int) -> torch.Tensor:
    """``x`` (…HW) mirrored left-right when ``mirror``, then turned by ``turns`` quarter turns."""
    return (x.flip(-1) if mirror else x).rot90(turns, (-2, -1))


def untransform(y: torch.Tensor, mirror: bool, turns: int) -> torch.Tensor:
    """The inverse of :func:`transform`."""
    y = y.rot90(-turns, (-2, -1))
    return y.flip(-1) if mirror else y
