import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import REPO, TINY_CONFIG, error_line, exit_status
from sr_app.methods import REGISTRY
from sr_app.models import CONFIGS, EDSR, EDSRConfig
from sr_app.weights import load_weights, save_weights
from train.checkpoint import Checkpoint, Progress
from train.config import TrainConfig
from train.loop import Trainer, TrainingDiverged, run
from train.sr import build_parser, main

TINY = ["--blocks", str(TINY_CONFIG.n_blocks), "--feats", str(TINY_CONFIG.n_feats)]


def train_args(hr_folder: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--data",
        str(hr_folder),
        "--out",
        str(out),
        "--lr-patch",
        "16",
        "--batch-size",
        "4",
        "--lr",
        "1e-3",
        "--workers",
        "0",
        "--log-every",
        "5",
        "--checkpoint-every",
        "5",
        *TINY,
        *extra,
    ]


@pytest.mark.slow
def test_training_reduces_the_loss_and_exports_weights(hr_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    main(train_args(hr_folder, out, "--iterations", "60", "--log-every", "20"))
    log = pd.read_csv(out / "log.csv")
    assert list(log.iteration) == [20, 40, 60]
    assert log.pixel.iloc[-1] < 0.7 * log.pixel.iloc[0]
    model, metadata = load_weights(out / "edsr_x4.safetensors", expected=TINY_CONFIG)
    assert metadata["iterations"] == "60" and str(hr_folder) in metadata["data"]


@pytest.mark.slow
def test_resume_continues_from_the_saved_iteration(hr_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    main(train_args(hr_folder, out, "--iterations", "10"))
    main(train_args(hr_folder, out, "--iterations", "15", "--resume"))
    checkpoint = Checkpoint.load(out / "checkpoint.pt", Progress())
    assert checkpoint.progress.iteration == 15
    adam_step = next(iter(checkpoint.trainer["opt_g"]["state"].values()))["step"]
    assert int(adam_step) == 15  # optimizer state was restored, not restarted
    assert list(pd.read_csv(out / "log.csv").iteration) == [5, 10, 15]


@pytest.mark.slow
def test_a_run_that_validated_resumes(hr_folder: Path, tmp_path: Path) -> None:
    # Scores were numpy floats, which the checkpoint kept and weights_only loading then refused.
    shutil.copytree(hr_folder, tmp_path / "Tiny" / "HR")
    out, validate = tmp_path / "run", ["--val-every", "5", "--val-data", str(tmp_path / "Tiny")]
    main(train_args(hr_folder, out, "--iterations", "5", *validate))
    main(train_args(hr_folder, out, "--iterations", "10", *validate, "--resume"))
    log = pd.read_csv(out / "log.csv")
    assert list(log.iteration) == [5, 10] and log.Tiny_psnr.notna().all()


@pytest.mark.slow
def test_a_resumed_run_decays_at_its_new_lr_step(hr_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    main(train_args(hr_folder, out, "--iterations", "5"))
    main(train_args(hr_folder, out, "--iterations", "15", "--lr-step", "10", "--lr-gamma", "0.5", "--resume"))
    # The log shows the rate after each logged update: updates 11-15 ran at half the rate.
    assert list(pd.read_csv(out / "log.csv").lr) == [1e-3, 5e-4, 5e-4]


@pytest.mark.slow
def test_validation_exports_the_best_weights_with_their_scores(
    hr_folder: Path, eval_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    main(train_args(hr_folder, out, "--iterations", "10", "--val-every", "5", "--val-data", str(eval_data / "Set5")))
    log = pd.read_csv(out / "log.csv")
    best = log.Set5_psnr.max()
    _, metadata = load_weights(out / "edsr_x4.safetensors")
    assert float(metadata["Set5_psnr"]) == pytest.approx(best, abs=1e-4)
    assert int(metadata["iterations"]) == int(log.iteration[log.Set5_psnr.idxmax()])


def test_nan_loss_stops_with_a_message(hr_folder: Path, tmp_path: Path) -> None:
    class Diverging(Trainer):
        def train_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
            return {"pixel": float("nan")}

    config = TrainConfig(
        network=TINY_CONFIG, data=(hr_folder,), out=tmp_path / "run", lr_patch=16, batch_size=4, workers=0
    )
    with pytest.raises(TrainingDiverged, match="Loss 'pixel' became nan at iteration 1.*lower --lr"):
        run(Diverging, config)


def test_folder_without_images_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert exit_status(main, train_args(tmp_path / "empty", tmp_path / "run", "--iterations", "1")) == 1
    assert error_line(capsys).startswith("No images (png, jpg, bmp, tif, webp) found in")


def test_unreadable_image_is_a_clear_error(hr_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (hr_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert exit_status(main, train_args(hr_folder, tmp_path / "run", "--iterations", "1")) == 1
    assert error_line(capsys).startswith(f"Cannot read image {hr_folder / 'broken.png'}")


def test_images_all_smaller_than_the_patch_are_a_clear_error(
    hr_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_status(main, [*train_args(hr_folder, tmp_path / "run"), "--lr-patch", "48"]) == 1  # 160 px < 192
    assert error_line(capsys) == "All 4 images are smaller than the 192 px HR patch size"


def test_missing_init_weights_is_a_clear_error(
    hr_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no.safetensors"
    assert exit_status(main, train_args(hr_folder, tmp_path / "run", "--iterations", "1", "--init", str(missing))) == 1
    assert "Weights file not found" in error_line(capsys)


def test_an_unknown_device_is_a_usage_error(
    hr_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_status(main, train_args(hr_folder, tmp_path / "run", "--device", "gpu0")) == 2
    assert "error: argument --device: Invalid device string: 'gpu0'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_two_process_ddp_run(hr_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "train.edsr",
        *train_args(hr_folder, out, "--iterations", "6"),
    ]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert Checkpoint.load(out / "checkpoint.pt", Progress()).progress.iteration == 6
    assert list(pd.read_csv(out / "log.csv").iteration) == [5, 6]
    load_weights(out / "edsr_x4.safetensors", expected=TINY_CONFIG)


@pytest.mark.slow
def test_init_from_weights_counts_the_total_training_length(
    hr_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    main(train_args(hr_folder, first, "--iterations", "10"))
    monkeypatch.chdir(tmp_path)
    main(train_args(hr_folder, second, "--iterations", "5", "--init", str(first / "edsr_x4.safetensors")))
    _, metadata = load_weights(second / "edsr_x4.safetensors")
    assert (metadata["iterations"], metadata["iterations_total"]) == ("5", "15")
    assert metadata["init"] == "first/edsr_x4.safetensors"  # not this machine's absolute path


@pytest.mark.slow
def test_a_resumed_run_keeps_the_init_it_started_from(
    hr_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init, run_folder = tmp_path / "init.safetensors", tmp_path / "run"
    save_weights(EDSR(TINY_CONFIG), init, iterations_total=10)
    monkeypatch.chdir(tmp_path)
    main(train_args(hr_folder, run_folder, "--iterations", "3", "--init", str(init)))
    save_weights(EDSR(TINY_CONFIG), init, iterations_total=1000)  # the init file is replaced meanwhile
    main(train_args(hr_folder, run_folder, "--iterations", "5", "--init", str(init), "--resume"))
    _, metadata = load_weights(run_folder / "edsr_x4.safetensors")
    assert (metadata["iterations"], metadata["iterations_total"], metadata["init"]) == ("5", "15", "init.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "loss"), [("srresnet", "mse"), ("swift_srgan", "l1")])
def test_every_architecture_trains_and_exports_its_registry_file(
    arch: str, loss: str, hr_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    main(train_args(hr_folder, out, "--arch", arch, "--loss", loss, "--iterations", "30", "--log-every", "10"))
    log = pd.read_csv(out / "log.csv")
    assert log.pixel.iloc[-1] < log.pixel.iloc[0]
    model, metadata = load_weights(out / REGISTRY[arch].weights)
    assert model.config == CONFIGS[arch](n_blocks=TINY_CONFIG.n_blocks, n_feats=TINY_CONFIG.n_feats)
    assert (metadata["arch"], metadata["loss"], metadata["iterations"]) == (arch, loss, "30")


def test_the_command_line_builds_the_config_with_the_recipe_defaults() -> None:
    args = build_parser().parse_args(["--data", "hr", "--out", "run", "--val-data", "Set5", "--bf16"])
    config = TrainConfig.from_args(args, network=EDSRConfig())
    assert config == TrainConfig(
        network=EDSRConfig(), data=(Path("hr"),), out=Path("run"), val_data=(Path("Set5"),), bf16=True
    )
    assert config.export_file == Path("run") / REGISTRY["edsr"].weights


@pytest.mark.slow
def test_a_run_records_its_config_at_every_start_and_in_the_checkpoint(hr_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    main(train_args(hr_folder, out, "--iterations", "5"))
    main(train_args(hr_folder, out, "--iterations", "10", "--resume"))
    starts = [json.loads(line) for line in (out / "config.jsonl").read_text().splitlines()]
    assert [(start["iteration"], start["config"]["iterations"]) for start in starts] == [(0, 5), (5, 10)]
    config = starts[-1]["config"]
    assert config["data"] == [str(hr_folder)] and config["resume"] is True
    assert config["network"] == {"arch": "edsr", **TINY_CONFIG.to_dict()}
    assert Checkpoint.load(out / "checkpoint.pt", Progress()).train_config == config


@pytest.mark.slow
def test_a_checkpoint_written_before_the_config_record_resumes(hr_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    main(train_args(hr_folder, out, "--iterations", "5"))
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    del state["train_config"]  # the layout of the runs started before it existed
    torch.save(state, out / "checkpoint.pt")
    assert Checkpoint.load(out / "checkpoint.pt", Progress()).train_config == {}
    main(train_args(hr_folder, out, "--iterations", "10", "--resume"))
    assert Checkpoint.load(out / "checkpoint.pt", Progress()).progress.iteration == 10


class Planted:
    """Unpickling this creates the file ``marker``: what a hostile checkpoint could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return Path.touch, (self.marker,)


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_that_would_unpickle_objects(
    hr_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, marker = tmp_path / "run", tmp_path / "unpickled"
    main(train_args(hr_folder, out, "--iterations", "5"))
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    torch.save(state | {"extra": Planted(marker)}, out / "checkpoint.pt")
    capsys.readouterr()  # the first run's progress bar
    assert exit_status(main, train_args(hr_folder, out, "--iterations", "10", "--resume")) == 1
    assert error_line(capsys) == f"{out}/checkpoint.pt holds more than tensors and plain values; refusing to load it"
    assert not marker.exists()
