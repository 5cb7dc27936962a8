from pathlib import Path

import pytest
import torch

from sr_app.models import EDSR, EDSRConfig
from sr_app.weights import WeightsError, load_weights, read_metadata, save_weights

SMALL = EDSRConfig(n_blocks=2, n_feats=16)


def test_weights_round_trip_with_config_and_metadata(tmp_path: Path) -> None:
    model = EDSR(SMALL)
    path = tmp_path / "w.safetensors"
    save_weights(model, path, iterations=1234, data="T91", Set5_psnr=31.2)
    loaded, metadata = load_weights(path, expected=SMALL)
    assert loaded.config == SMALL
    assert metadata["iterations"] == "1234" and metadata["data"] == "T91" and metadata["Set5_psnr"] == "31.2"
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name])


def test_missing_file_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"Weights file not found: .*python -m train.edsr"):
        load_weights(tmp_path / "nope.safetensors")


def test_mismatched_config_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_weights(EDSR(SMALL), path)
    with pytest.raises(WeightsError, match="was expected"):
        load_weights(path, expected=EDSRConfig())


def test_non_safetensors_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"this is not a weights file")
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        read_metadata(path)
