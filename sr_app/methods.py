"""The method registry: every ×4 method the lab knows, in one table, and the user's own models.

:data:`REGISTRY` declares each built-in method once: its name (used on command lines, in the API and in survey
conditions), the title shown in the UI, how it is built and its weights file. Everything else that lists methods
(Compare's panels, ``train.evaluate --methods``, ``survey create --methods``) reads this table. Adding a method is
one entry here.

Wherever a method list is accepted, ``label=path/to/model.pth`` (or ``.safetensors``) adds a user's model, loaded
through spandrel (ESRGAN, Real-ESRGAN Compact, SwinIR, HAT, RCAN, Swift-SRGAN … ; see :func:`load_model_file`).
TorchScript files run code stored in them as they load, so they are loaded only from a method marked ``trusted``
(``python app.py --trust-model``).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import spandrel
import torch
from safetensors.torch import load_file
from torch import nn

from sr_app.engines import Engine
from sr_app.errors import UserError
from sr_app.realesrgan import RealESRGANUpscaler
from sr_app.upscalers import DEFAULT_TILE, SCALE, BicubicUpscaler, ModelUpscaler, Precision, Upscaler
from sr_app.weights import WEIGHTS_DIR, WeightsError, load_weights

#: A user label: letters, digits, ``_``, ``-`` and ``.``; it names folders and survey conditions.
LABEL_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")


class MethodError(UserError, ValueError):
    """A method list names an unknown method or an invalid ``label=path``; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    """How upscalers run: device (``None``: the best available), precision ("auto": bfloat16 where the hardware is
    fast at it and the network allows it, "fp32", or "bf16" wherever the network allows it; see
    :func:`sr_app.upscalers.use_bf16`), LR tile side (``None``: whole images), self-ensemble (the mean over the
    8 flips and rotations of the input, EDSR's "EDSR+", 8× the time), the folder of the built-in weights files and
    the CPU engine ("torch", "openvino", "onnxruntime" or "auto": the fastest measured; see
    :func:`sr_app.upscalers.choose_engine`)."""

    device: torch.device | str | None = None
    precision: Precision = "auto"
    tile: int | None = DEFAULT_TILE
    self_ensemble: bool = False
    weights_dir: Path = WEIGHTS_DIR
    engine: Engine = "torch"


@dataclass(frozen=True)
class Method:
    """One ×4 method.

    Attributes:
        name: identifier on command lines, in the API and in survey conditions.
        title: display name in the UI.
        build: makes the method's upscaler; raises :class:`WeightsError` when it cannot (the message says why).
        weights: the weights file: a file name inside ``Settings.weights_dir`` for built-in networks, a path for a
            user's model, ``None`` for methods without one.
        default: shown in Compare unless the user picks other methods.
        starts_from: for a GAN-trained network, the method whose network ``python -m train.gan`` fine-tunes.
        bf16_safe: the network scores within 0.05 dB PSNR of float32 on Set5 and Set14 under bfloat16 autocast
            (checked by ``tests/test_precision.py``); otherwise it always runs in float32.
        trusted: the user vouched for the model file, so a TorchScript file (which runs code as it loads) is loaded.
    """

    name: str
    title: str
    build: Callable[[Method, Settings], Upscaler]
    weights: str | None = None
    default: bool = False
    starts_from: str | None = None
    bf16_safe: bool = True
    trusted: bool = False

    def load(self, settings: Settings = Settings()) -> Upscaler:
        return self.build(self, settings)


def bicubic_upscaler(method: Method, settings: Settings) -> Upscaler:
    return BicubicUpscaler()


def network_upscaler(method: Method, settings: Settings) -> Upscaler:
    """One of our networks, from its self-describing weights file in ``settings.weights_dir``."""
    model, _ = load_weights(settings.weights_dir / method.weights)
    return ModelUpscaler(
        method.name,
        model,
        scale=model.config.scale,
        device=settings.device,
        precision=settings.precision if method.bf16_safe else "fp32",
        tile=settings.tile,
        self_ensemble=settings.self_ensemble,
        engine=settings.engine,
        weights=settings.weights_dir / method.weights,
    )


class SpandrelNetwork(nn.Module):
    """A model spandrel loaded, called the way spandrel calls it, which some architectures need (MMRealSR's network
    returns a tuple, IPT's takes 0–255): float [0, 1] NCHW in, float [0, 1] NCHW ×scale out."""

    def __init__(self, descriptor: spandrel.ImageModelDescriptor) -> None:
        super().__init__()
        self.descriptor = descriptor
        self.network = descriptor.model  # a submodule, so that .to() and .eval() reach its weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.descriptor(x)


def realesrgan_upscaler(method: Method, settings: Settings) -> Upscaler:
    """Real-ESRGAN through ncnn: always on the CPU, in ``settings.tile`` tiles; bf16 does not apply."""
    return RealESRGANUpscaler(method.name, settings.tile)


def user_model_upscaler(method: Method, settings: Settings) -> Upscaler:
    """A user's model file through spandrel, padded and tiled as its architecture requires."""
    descriptor = load_model_file(method.weights, trusted=method.trusted)
    return ModelUpscaler(
        method.name,
        SpandrelNetwork(descriptor),
        scale=descriptor.scale,
        device=settings.device,
        precision=settings.precision if descriptor.supports_bfloat16 else "fp32",
        tile=settings.tile if descriptor.tiling == spandrel.ModelTiling.SUPPORTED else None,
        size_requirements=descriptor.size_requirements,
        self_ensemble=settings.self_ensemble,
        engine=settings.engine,
        weights=Path(method.weights),
    )


#: Every built-in method, in the order the UI shows them.
# fmt: off
REGISTRY: dict[str, Method] = {
    method.name: method
    for method in (
        Method("bicubic", "Bicubic", bicubic_upscaler, default=True),
        Method("edsr", "EDSR", network_upscaler, "edsr_x4.safetensors", default=True),
        Method("edsr_srgan", "EDSR-SRGAN", network_upscaler, "edsr_srgan_x4.safetensors", default=True,
               starts_from="edsr"),
        Method("srresnet", "SRResNet", network_upscaler, "srresnet_x4.safetensors"),
        Method("srgan", "SRGAN", network_upscaler, "srgan_x4.safetensors", starts_from="srresnet"),
        Method("swift_srgan", "Swift-SRGAN", network_upscaler, "swift_srgan_x4.safetensors"),
        Method("realesrgan", "Real-ESRGAN", realesrgan_upscaler),
    )
}
# fmt: on
DEFAULT_METHODS = tuple(name for name, method in REGISTRY.items() if method.default)


#: Why a TorchScript file is refused, and how to load it anyway.
TORCHSCRIPT_REFUSED = (
    "{path} is a TorchScript file: loading it runs code stored in the file. Load it only if you trust where it came "
    "from, with --trust-model (python app.py --trust-model --model ...), or save its state_dict() as .safetensors"
)


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``): a zip file with ``constants.pkl`` beside its
    pickle, which ``torch.save`` archives lack (the test ``torch.load`` uses to hand a file to ``torch.jit.load``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/", 1)[-1] == "constants.pkl" for name in archive.namelist())


def read_state_dict(path: Path, trusted: bool = False) -> spandrel.StateDict:
    """The tensors of a model file: safetensors as they are; a pickle (``.pth``, ``.pt``, ``.ckpt``) through
    ``torch.load(weights_only=True)``, which rebuilds tensors and plain containers and runs no code from the file; a
    TorchScript archive through ``torch.jit.load`` only when ``trusted`` (:class:`WeightsError` otherwise)."""
    if path.suffix.lower() == ".safetensors":
        return load_file(path, device="cpu")
    if is_torchscript(path):
        if not trusted:
            raise WeightsError(TORCHSCRIPT_REFUSED.format(path=path))
        return torch.jit.load(path, map_location="cpu").state_dict()
    return torch.load(path, map_location="cpu", weights_only=True)


def load_model_file(path: str | Path, trusted: bool = False) -> spandrel.ImageModelDescriptor:
    """A user's ×4 super-resolution model file (``.pth``, ``.pt``, ``.ckpt`` or ``.safetensors``; TorchScript only
    when ``trusted``, see :func:`read_state_dict`), identified by spandrel; :class:`WeightsError` naming the file and
    the reason when it is missing, unreadable, refused, unknown to spandrel, not super-resolution, not ×4 or not RGB."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"Model file not found: {path}")
    try:
        state = spandrel.canonicalize_state_dict(read_state_dict(path, trusted))
        descriptor = spandrel.ModelLoader(device="cpu").load_from_state_dict(state)
    except WeightsError:
        raise
    except spandrel.UnsupportedModelError as error:
        raise WeightsError(
            f"{path}: spandrel does not recognise this model's architecture (it knows ESRGAN, Real-ESRGAN Compact, "
            f"SwinIR, HAT, RCAN, Swift-SRGAN and about 35 more){': ' + str(error) if str(error) else ''}"
        ) from error
    except Exception as error:  # unpickling and safetensors errors have no common type
        raise WeightsError(f"{path} could not be read as a model file: {type(error).__name__}: {error}") from error
    arch = descriptor.architecture.name
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose != "SR":
        raise WeightsError(f"{path} is a {arch} model for {descriptor.purpose!r}, not a super-resolution model")
    if descriptor.scale != SCALE:
        raise WeightsError(f"{path} is a ×{descriptor.scale} {arch} model; this lab compares ×{SCALE} methods")
    if (descriptor.input_channels, descriptor.output_channels) != (3, 3):
        raise WeightsError(
            f"{path} is a {arch} model with {descriptor.input_channels} input and {descriptor.output_channels} output "
            "channels; only RGB → RGB models can be compared"
        )
    return descriptor.eval()


def resolve(spec: str, trusted: bool = False) -> Method:
    """The method a command line or API names: a registered name, or ``label=path`` for a user's model (a TorchScript
    file is loaded only when ``trusted``)."""
    spec = spec.strip()
    if "=" not in spec:
        if spec not in REGISTRY:
            raise MethodError(
                f"Unknown method {spec!r}; choose from {', '.join(REGISTRY)}, or add your own model as label=path"
            )
        return REGISTRY[spec]
    label, path = (part.strip() for part in spec.split("=", 1))
    if not LABEL_PATTERN.fullmatch(label):
        raise MethodError(f"Invalid label {label!r} in {spec!r}: use letters, digits, '_', '-' and '.'")
    if label in REGISTRY:
        raise MethodError(f"The label {label!r} is a built-in method's name; pick another label for {path}")
    if not path:
        raise MethodError(f"{spec!r} names no model file; write label=path/to/model.pth")
    return Method(label, label, user_model_upscaler, path, trusted=trusted)


def parse_methods(text: str) -> list[Method]:
    """A comma-separated method list (names and ``label=path`` entries), each at most once."""
    methods = [resolve(spec) for spec in text.split(",") if spec.strip()]
    if not methods:
        raise MethodError("No method given")
    names = [method.name for method in methods]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise MethodError(f"Methods named more than once: {', '.join(repeated)}")
    return methods


def as_method(spec: str | Method) -> Method:
    """``spec`` itself, or the method a ``name``/``label=path`` spec names."""
    return resolve(spec) if isinstance(spec, str) else spec


def load_upscaler(spec: str | Method, settings: Settings = Settings()) -> Upscaler:
    """The upscaler of a method (or of a ``name``/``label=path`` spec)."""
    return as_method(spec).load(settings)
