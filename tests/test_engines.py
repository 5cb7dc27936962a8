"""CPU engines: exports that give torch's output through the tiled path, fallbacks to torch, the kept timings."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import re
import sys
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pytest
import torch
from spandrel import SizeRequirements
from spandrel.architectures.ESRGAN import ESRGAN
from torch import nn
from torch.nn import functional as F

from sr_app import engines, timing
from sr_app.engines import Candidate, TorchRunner
from sr_app.methods import REGISTRY, Settings, load_upscaler, resolve
from sr_app.models import EDSR
from sr_app.upscalers import ModelUpscaler
from sr_app.weights import WEIGHTS_DIR, load_weights
from tests.conftest import TINY_CONFIG

EDSR_WEIGHTS = WEIGHTS_DIR / REGISTRY["edsr"].weights
ONNX_CANDIDATES = [Candidate("openvino", False), Candidate("openvino", True), Candidate("onnxruntime", False)]


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, session_cache: Path) -> Path:
    """Exports and timings go to a folder of this test session, not beside the shipped weights."""
    monkeypatch.setattr(engines, "CACHE_DIRS", (session_cache,))
    return session_cache


def grey_levels_apart(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b).max())


@pytest.mark.slow
@pytest.mark.parametrize("candidate", ONNX_CANDIDATES, ids=str)
def test_exported_edsr_gives_torch_fp32_through_tiles_and_padding(candidate: Candidate, photo: np.ndarray) -> None:
    pytest.importorskip(candidate.engine)
    lr = photo[100:175, 150:243]  # 75 × 93: 2 × 3 tiles of 40 px, with odd sizes at the edges
    options = {"device": "cpu", "tile": 40, "size_requirements": SizeRequirements(multiple_of=8)}  # and padded
    model, _ = load_weights(EDSR_WEIGHTS)
    expected = ModelUpscaler("edsr", model, precision="fp32", **options)(lr)
    precision = "bf16" if candidate.bf16 else "fp32"
    upscaler = ModelUpscaler("edsr", model, precision=precision, engine=candidate, weights=EDSR_WEIGHTS, **options)
    assert upscaler.device == f"cpu · {dataclasses.replace(candidate, bf16=upscaler.bf16)}"
    assert grey_levels_apart(upscaler(lr), expected) <= 2


@pytest.mark.slow
def test_a_spandrel_model_exports_and_gives_torch_fp32(tmp_path: Path, photo: np.ndarray) -> None:
    pytest.importorskip("openvino")
    torch.manual_seed(0)
    path = tmp_path / "esrgan.pth"
    torch.save(ESRGAN(num_filters=16, num_blocks=1, scale=4).state_dict(), path)
    method = resolve(f"mine={path}")
    settings = Settings(device="cpu", precision="fp32", tile=16)
    lr = photo[200:237, 230:275]  # 37 × 45
    upscaler = method.load(dataclasses.replace(settings, engine="openvino"))
    assert upscaler.device == "cpu · openvino fp32"
    assert grey_levels_apart(upscaler(lr), method.load(settings)(lr)) <= 2


@pytest.mark.slow
def test_an_engine_not_installed_leaves_the_network_to_torch_with_a_note(
    monkeypatch: pytest.MonkeyPatch, photo: np.ndarray
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    model, _ = load_weights(EDSR_WEIGHTS)
    upscaler = ModelUpscaler("edsr", model, device="cpu", precision="fp32", engine="openvino", weights=EDSR_WEIGHTS)
    assert isinstance(upscaler.run, TorchRunner)
    note = r"cpu · torch fp32 channels_last \(openvino unavailable: openvino is not installed \(.+\)\)"
    assert re.fullmatch(note, upscaler.device)
    lr = photo[:30, :44]
    assert np.array_equal(upscaler(lr), ModelUpscaler("edsr", model, device="cpu", precision="fp32")(lr))


class FixedSize4x(nn.Module):
    """×4 nearest-neighbour upsampling that reads its input size as Python numbers, which a trace keeps as constants."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = int(x.shape[2]), int(x.shape[3])
        return F.interpolate(x, size=(4 * height, 4 * width), mode="nearest")


@pytest.mark.parametrize("engine", ["openvino", "onnxruntime"])
def test_an_export_fixed_to_one_size_is_refused_once_and_torch_runs(
    engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, photo: np.ndarray
) -> None:
    pytest.importorskip(engine)
    cache = tmp_path / "cache"
    monkeypatch.setattr(engines, "CACHE_DIRS", (cache,))
    weights = tmp_path / "fixed.pth"
    torch.save(FixedSize4x().state_dict(), weights)

    def load() -> ModelUpscaler:
        return ModelUpscaler("fixed", FixedSize4x(), device="cpu", precision="fp32", engine=engine, weights=weights)

    upscaler = load()
    assert isinstance(upscaler.run, TorchRunner)
    reason = "the ONNX export does not follow the input size (its trace fixed it)"
    assert upscaler.device == f"cpu · torch fp32 channels_last ({engine} unavailable: {reason})"
    lr = photo[:21, :34]
    assert np.array_equal(upscaler(lr), lr.repeat(4, axis=0).repeat(4, axis=1))
    assert [path.suffix for path in cache.iterdir()] == [".failed"]  # no export kept, the reason remembered

    def export(*args: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(engines, "export", export)
    assert load().device == upscaler.device


def test_off_the_cpu_torch_runs_whatever_the_engine() -> None:
    upscaler = ModelUpscaler("edsr", EDSR(TINY_CONFIG), device="meta", precision="fp32", engine="openvino")
    assert isinstance(upscaler.run, TorchRunner) and upscaler.device == "meta"


def test_an_unknown_engine_names_the_choices() -> None:
    with pytest.raises(ValueError, match="'tensorrt'; choose from auto, torch, openvino, onnxruntime"):
        ModelUpscaler("edsr", EDSR(TINY_CONFIG), device="cpu", engine="tensorrt")  # type: ignore[arg-type]


#: Timings the tests pretend to measure: OpenVINO fastest, in bfloat16 more so; torch contiguous beats channels_last.
PRETEND_SECONDS = {
    Candidate("torch", False, channels_last=True): 2.0,
    Candidate("torch", False, channels_last=False): 1.5,
    Candidate("openvino", False): 1.0,
    Candidate("openvino", True): 0.5,
}


@pytest.fixture()
def timed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """The thread counts :func:`sr_app.timing.time_candidates` is called with (it returns
    :data:`PRETEND_SECONDS`), and a fresh cache folder."""
    monkeypatch.setattr(engines, "CACHE_DIRS", (tmp_path,))
    calls = []

    def pretend(bf16_choices: Collection[bool], threads: int) -> tuple[dict[Candidate, float], dict[str, str]]:
        calls.append(threads)
        seconds = {c: s for c, s in PRETEND_SECONDS.items() if c.bf16 in bf16_choices}
        return seconds, {"onnxruntime fp32": "onnxruntime is not installed"}

    monkeypatch.setattr(timing, "time_candidates", pretend)
    return calls


def test_timings_are_kept_per_cpu_model_and_thread_count(timed: list[int], tmp_path: Path) -> None:
    both, fp32 = (False, True), (False,)
    assert timing.fastest(both, both, threads=2) == Candidate("openvino", True)
    assert timing.fastest(fp32, both, threads=2) == Candidate("openvino", False)  # a network that stays fp32
    assert timed == [2]  # timed once, then read back
    kept = json.loads((tmp_path / timing.WINNERS_FILE).read_text())
    assert kept[timing.machine(2)]["fastest"] == "openvino bf16"
    assert kept[timing.machine(2)]["unavailable"] == {"onnxruntime fp32": "onnxruntime is not installed"}
    assert timing.fastest(fp32, fp32, threads=1) == Candidate("openvino", False)
    assert timed == [2, 1]  # another thread count is timed again
    assert timing.fastest(both, both, threads=2) == Candidate("openvino", True) and timed == [2, 1]
    assert set(json.loads((tmp_path / timing.WINNERS_FILE).read_text())) == {timing.machine(2), timing.machine(1)}


def test_an_upgraded_engine_is_timed_anew(timed: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    both = (False, True)
    timing.fastest(both, both, threads=2)
    version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "99.0" if name == "openvino" else version(name))
    assert "openvino 99.0" in timing.machine(2)
    timing.fastest(both, both, threads=2)
    assert timed == [2, 2]


def test_auto_runs_the_fastest_way_its_precision_allows_and_says_so(
    timed: list[int], tiny_weights_dir: Path, photo: np.ndarray
) -> None:
    pytest.importorskip("openvino")
    settings = Settings(device="cpu", precision="fp32", weights_dir=tiny_weights_dir, engine="auto")
    upscaler = load_upscaler("edsr", settings)
    assert upscaler.device == "cpu · openvino fp32" and timed == [torch.get_num_threads()]
    lr = photo[:30, :44]
    expected = load_upscaler("edsr", dataclasses.replace(settings, engine="torch"))(lr)
    assert grey_levels_apart(upscaler(lr), expected) <= 1
    # Without its weights file a network has no export; torch runs it and the label says why.
    orphan = ModelUpscaler("edsr", EDSR(TINY_CONFIG), device="cpu", precision="fp32", engine="auto")
    assert (
        orphan.device
        == "cpu · torch fp32 channels_last (openvino unavailable: no weights file to key its ONNX export by)"
    )
