"""Model weights as safetensors files that carry their architecture and provenance.

Every file stores, next to the tensors, string metadata: ``arch`` (a key of :data:`sr_app.models.ARCHITECTURES`),
``config`` (that architecture's config as JSON) and free-form provenance such as ``iterations``, ``data``,
``set5_psnr``. Loading rebuilds the network from the stored architecture and config, so a file can never be paired
with the wrong network silently. Files written before ``arch`` was recorded are EDSR.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from sr_app.errors import UserError
from sr_app.models import ARCHITECTURES, CONFIGS, NetworkConfig, build_network

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class WeightsError(UserError, RuntimeError):
    """A weights file is missing, unreadable or does not fit the expected network."""


def save_weights(model: nn.Module, path: str | Path, **metadata: object) -> None:
    """Write ``model``'s weights, architecture and config, plus ``metadata`` (stringified), to a safetensors file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in model.state_dict().items()}
    info = {key: str(value) for key, value in metadata.items()}
    info["arch"] = model.config.arch
    info["config"] = json.dumps(model.config.to_dict())
    tmp = path.with_suffix(".tmp")
    save_file(tensors, tmp, metadata=info)
    tmp.replace(path)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata stored in a weights file."""
    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError) as error:
        raise WeightsError(f"{path} is not a readable safetensors file: {error}") from error


def read_config(path: str | Path) -> NetworkConfig:
    """The architecture and shape a weights file was saved with."""
    metadata = read_metadata(path)
    if "config" not in metadata:
        raise WeightsError(f"{path} has no 'config' metadata; it was not written by sr_app.weights.save_weights")
    arch = metadata.get("arch", "edsr")
    if arch not in CONFIGS:
        known = ", ".join(ARCHITECTURES)
        raise WeightsError(f"{path} is a {arch!r} network, which this version does not know (it knows {known})")
    try:
        return CONFIGS[arch](**json.loads(metadata["config"]))
    except (TypeError, ValueError) as error:
        raise WeightsError(f"{path} has an invalid config {metadata['config']!r}: {error}") from error


def load_weights(path: str | Path, expected: NetworkConfig | None = None) -> tuple[nn.Module, dict[str, str]]:
    """Build the network a weights file describes and load it; return it (eval mode, CPU) with its metadata.

    Raises :class:`WeightsError` with an actionable message when the file is missing or unreadable, has no
    config, does not match ``expected``, or its tensors do not fit the config.
    """
    config = read_config(path)
    if expected is not None and config != expected:
        raise WeightsError(f"{path} holds {config}, but {expected} was expected")
    model = build_network(config)
    with safe_open(str(path), framework="pt") as f:
        state = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise WeightsError(f"{path}: tensors do not fit {config}: {error}") from error
    return model.eval(), read_metadata(path)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"Weights file not found: {path}. Train it with `python -m train.sr --arch …` (EDSR, SRResNet, "
            "Swift-SRGAN) or `python -m train.gan --generator …` (EDSR-SRGAN, SRGAN), see the README, or restore the "
            "shipped files with `git checkout -- sr_app/weights`."
        )
    return path
