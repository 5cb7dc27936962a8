from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sr_app.models import CONFIGS, EDSR, EDSRConfig, build_network
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
    with pytest.raises(WeightsError, match=r"Weights file not found: .*python -m train\.sr --arch"):
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


@pytest.mark.parametrize("arch", list(CONFIGS))
def test_every_architecture_round_trips_with_its_name_and_batch_norm_statistics(arch: str, tmp_path: Path) -> None:
    config = CONFIGS[arch](n_blocks=2, n_feats=8)
    model = build_network(config).train()
    model(torch.rand(4, 3, 8, 8))  # moves batch-norm running statistics away from their initial values
    path = tmp_path / f"{arch}.safetensors"
    save_weights(model, path, iterations=7)
    loaded, metadata = load_weights(path)
    assert metadata["arch"] == arch and type(loaded) is type(model) and loaded.config == config
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))


def test_a_file_of_an_unknown_architecture_says_which_are_known(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_weights(EDSR(SMALL), path)
    metadata = read_metadata(path)
    with safe_open(str(path), framework="pt") as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    save_file(tensors, path, metadata=metadata | {"arch": "rcan"})
    with pytest.raises(WeightsError, match="'rcan' network, which this version does not know .*edsr, srresnet"):
        load_weights(path)


def test_files_written_before_arch_was_recorded_are_edsr(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_weights(EDSR(SMALL), path)
    metadata = read_metadata(path)
    del metadata["arch"]
    with safe_open(str(path), framework="pt") as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    save_file(tensors, path, metadata=metadata)
    assert load_weights(path)[0].config == SMALL
