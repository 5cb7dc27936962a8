from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import error_line, exit_status
from sr_app.resize import imresize, make_lr
from train.evaluate import CSV_COLUMNS, main, vgg54_distance
from train.losses import VGG54


def test_bicubic_reproduces_published_figures(eval_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    csv = tmp_path / "scores.csv"
    main(
        [
            "--data",
            str(eval_data / "Set5"),
            "--data",
            str(eval_data / "Set14"),
            "--methods",
            "bicubic",
            "--csv",
            str(csv),
        ]
    )
    scores = pd.read_csv(csv)
    assert list(scores.columns) == CSV_COLUMNS
    assert len(scores) == 5 + 14
    means = scores.groupby("dataset")[["psnr", "ssim"]].mean()
    assert means.loc["Set5", "psnr"] == pytest.approx(28.42, abs=0.03)
    assert means.loc["Set5", "ssim"] == pytest.approx(0.8104, abs=0.002)
    assert means.loc["Set14", "psnr"] == pytest.approx(26.00, abs=0.1)
    table = capsys.readouterr().out
    assert "Set5" in table and "bicubic" in table and "28.4" in table


def test_without_lr_folder_lr_is_made_from_hr_and_outputs_are_saved(
    hr_folder: Path, tiny_weights_dir: Path, tmp_path: Path
) -> None:
    dataset = tmp_path / "Mine"
    (dataset / "HR").parent.mkdir(exist_ok=True)
    hr_folder.rename(dataset / "HR")
    csv, save = tmp_path / "scores.csv", tmp_path / "out"
    main(
        [
            "--data",
            str(dataset),
            "--methods",
            "bicubic,edsr",
            "--weights-dir",
            str(tiny_weights_dir),
            "--csv",
            str(csv),
            "--save",
            str(save),
        ]
    )
    scores = pd.read_csv(csv)
    assert sorted(scores.method.unique()) == ["bicubic", "edsr"]
    assert (scores.dataset == "Mine").all() and len(scores) == 8
    saved = Image.open(save / "Mine" / "edsr" / "crop0.png")
    assert saved.size == (160, 160) and np.asarray(saved).dtype == np.uint8


def test_missing_weights_give_a_clear_error(eval_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["--data", str(eval_data / "Set5"), "--methods", "edsr", "--weights-dir", str(tmp_path)]
    assert exit_status(main, argv) == 1
    assert "Weights file not found" in error_line(capsys)


def test_unknown_method_is_refused(eval_data: Path, capsys: pytest.CaptureFixture) -> None:
    assert exit_status(main, ["--data", str(eval_data / "Set5"), "--methods", "bicubic,srcnn"]) == 2
    assert "Unknown method 'srcnn'; choose from bicubic, edsr" in capsys.readouterr().err


def test_data_folder_without_images_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "Empty" / "HR").mkdir(parents=True)
    assert exit_status(main, ["--data", str(tmp_path / "Empty"), "--methods", "bicubic"]) == 1
    assert error_line(capsys) == f"No images found in {tmp_path / 'Empty' / 'HR'}"


@pytest.mark.slow
def test_vgg54_distance_is_zero_for_hr_and_grows_with_blur(photo: np.ndarray) -> None:
    vgg = VGG54()
    hr = photo[:256, :256]
    blurred = {scale: imresize(make_lr(hr, scale)[0], scale) for scale in (2, 4)}
    assert vgg54_distance(vgg, hr, hr) == 0
    assert 0 < vgg54_distance(vgg, blurred[2], hr) < vgg54_distance(vgg, blurred[4], hr)


@pytest.mark.slow
def test_vgg54_column_in_the_csv_and_the_table(eval_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    csv = tmp_path / "scores.csv"
    main(["--data", str(eval_data / "Set5"), "--methods", "bicubic", "--vgg54", "--csv", str(csv)])
    scores = pd.read_csv(csv)
    assert list(scores.columns) == [*CSV_COLUMNS, "vgg54"] and (scores.vgg54 > 0).all()
    assert "vgg54" in capsys.readouterr().out
