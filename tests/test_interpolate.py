import re
from pathlib import Path

import pytest
import torch

from conftest import TINY_CONFIG, error_line, exit_status
from sr_app.models import EDSR, EDSRConfig, SRResNetConfig, build_network
from sr_app.weights import WeightsError, load_weights, save_weights
from train.interpolate import interpolate_networks, main


def random_network(seed: int, config: EDSRConfig = TINY_CONFIG) -> EDSR:
    torch.manual_seed(seed)
    return EDSR(config)


def assert_weights_equal(model: EDSR, expected: dict[str, torch.Tensor]) -> None:
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], msg=name)


def test_alpha_moves_every_weight_linearly_from_the_psnr_to_the_gan_network() -> None:
    psnr, gan = random_network(0), random_network(1)
    a, b = psnr.state_dict(), gan.state_dict()
    assert_weights_equal(interpolate_networks(psnr, gan, 0.0), a)
    assert_weights_equal(interpolate_networks(psnr, gan, 1.0), b)
    assert_weights_equal(interpolate_networks(psnr, gan, 0.25), {k: 0.75 * a[k] + 0.25 * b[k] for k in a})
    assert_weights_equal(psnr, a)  # inputs are left as they were


def test_command_writes_the_blend_with_the_gan_provenance_and_without_stale_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    psnr, gan = random_network(0), random_network(1)
    save_weights(psnr, "edsr.safetensors", iterations=100)
    save_weights(gan, "gan.safetensors", iterations=50, iterations_total=150, Set5_psnr=29.1, Set5_ssim=0.82)
    psnr_file = str(tmp_path / "edsr.safetensors")  # absolute, recorded relative to the working directory
    main(["gan.safetensors", "--psnr", psnr_file, "--alpha", "0.5", "--out", "out.safetensors"])
    blended, metadata = load_weights("out.safetensors", expected=TINY_CONFIG)
    a, b = psnr.state_dict(), gan.state_dict()
    assert_weights_equal(blended, {k: (a[k] + b[k]) / 2 for k in a})
    assert metadata["interpolation_alpha"] == "0.5"
    assert metadata["interpolated_with"] == "edsr.safetensors"
    assert (metadata["iterations"], metadata["iterations_total"]) == ("50", "150")
    assert "Set5_psnr" not in metadata and "Set5_ssim" not in metadata


def blend_command(tmp_path: Path, gan_config: EDSRConfig, alpha: str) -> list[str]:
    """Arguments of ``python -m train.interpolate`` blending two random networks saved in ``tmp_path`` into
    ``tmp_path/out.safetensors``."""
    psnr_file, gan_file = tmp_path / "edsr.safetensors", tmp_path / "gan.safetensors"
    save_weights(random_network(0), psnr_file)
    save_weights(random_network(1, gan_config), gan_file)
    return [str(gan_file), "--psnr", str(psnr_file), "--alpha", alpha, "--out", str(tmp_path / "out.safetensors")]


def test_an_alpha_outside_0_to_1_is_a_usage_error_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_status(main, blend_command(tmp_path, TINY_CONFIG, "1.5")) == 2
    assert "error: --alpha must be between 0 and 1, got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "out.safetensors").exists()


def test_mismatched_networks_stop_with_a_message_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_status(main, blend_command(tmp_path, EDSRConfig(n_blocks=3, n_feats=16), "0.5")) == 1
    assert re.fullmatch(r".*gan\.safetensors holds .*, but .* was expected", error_line(capsys))
    assert not (tmp_path / "out.safetensors").exists()


def test_networks_of_different_shapes_are_not_blended() -> None:
    with pytest.raises(WeightsError, match="cannot blend networks of different shapes"):
        interpolate_networks(random_network(0), random_network(1, EDSRConfig(n_blocks=3, n_feats=16)), 0.5)


def test_networks_with_batch_norm_blend_their_statistics() -> None:
    psnr, gan = (build_network(SRResNetConfig(n_blocks=1, n_feats=8)).train() for _ in range(2))
    gan(torch.rand(2, 3, 8, 8))  # moves the GAN network's running statistics
    blended = interpolate_networks(psnr, gan, 0.25)
    mean = "body.0.body.1.running_mean"
    expected = 0.75 * psnr.state_dict()[mean] + 0.25 * gan.state_dict()[mean]
    torch.testing.assert_close(blended.state_dict()[mean], expected)
