from pathlib import Path

import pytest
import spandrel
import torch

from sr_app.models import (
    EDSR,
    EDSRConfig,
    NetworkConfig,
    SRResNetConfig,
    SwiftSRGANConfig,
    build_network,
    count_parameters,
)
from sr_app.weights import save_weights


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_upscales_by_its_scale(scale: int) -> None:
    model = EDSR(EDSRConfig(scale=scale, n_blocks=2, n_feats=16))
    out = model(torch.rand(2, 3, 12, 10))
    assert out.shape == (2, 3, 12 * scale, 10 * scale)


def test_edsr_baseline_has_the_published_parameter_count() -> None:
    assert count_parameters(EDSR()) == 1_517_571  # "1.52 M" in the EDSR paper


def test_full_edsr_builds_with_43m_parameters() -> None:
    model = EDSR(EDSRConfig(n_blocks=32, n_feats=256, res_scale=0.1))
    assert round(count_parameters(model) / 1e6, 1) == 43.1


def test_unsupported_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="scale 2, 3 or 4"):
        EDSR(EDSRConfig(scale=5))


@pytest.mark.parametrize(
    ("config", "parameters"),
    [
        (SRResNetConfig(), 1_549_462),  # "about 1.5 M": 16 blocks, 64 channels, 9×9 head and tail
        (SwiftSRGANConfig(), 201_209),  # "about 0.2 M": depthwise-separable convolutions
    ],
)
def test_zoo_networks_upscale_by_four_with_their_published_size(config: NetworkConfig, parameters: int) -> None:
    model = build_network(config).eval()
    assert count_parameters(model) == parameters
    with torch.no_grad():
        assert model(torch.rand(2, 3, 11, 7)).shape == (2, 3, 44, 28)


def test_our_swift_srgan_file_loads_in_spandrel(tmp_path: Path) -> None:
    path = tmp_path / "swift.safetensors"
    torch.manual_seed(0)
    model = build_network(SwiftSRGANConfig(n_blocks=2, n_feats=8)).eval()
    save_weights(model, path)
    descriptor = spandrel.ModelLoader().load_from_file(path)
    assert (descriptor.architecture.name, descriptor.scale) == ("Swift-SRGAN", 4)
    x = torch.rand(1, 3, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(descriptor.model.eval()(x), model(x))
