import pytest
import torch

from sr_app.models import EDSR, EDSRConfig, count_parameters


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
