"""Bring your own outputs: folders of precomputed ×4 results, scored by ``train.evaluate`` and surveyed like computed
methods, and refused with a message naming the file before anything is scored or stored."""

import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from sqlalchemy import select

from conftest import error_line, exit_status
from sr_app.images import ImageError, load_rgb
from sr_app.resize import make_lr
from survey.__main__ import main as survey_main
from survey.answers import submit_rating
from survey.creation import create_study
from survey.db import REFERENCE, Stimulus, Store
from survey.export import export_study
from survey.raters import start_rater
from survey.studies import list_studies
from tests.survey_fixtures import image_folder, png_chunks, set_response_times
from train.evaluate import main as evaluate_main

#: (height, width) of the generated ground truth; scored cropped to 28 × 32.
SIZE = (30, 34)


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    """``tmp_path/Mine`` with ``HR/photo{0,1,2}.png``, random 30×34 images."""
    image_folder(tmp_path / "Mine" / "HR", size=SIZE)
    return tmp_path / "Mine"


@pytest.fixture()
def outputs(dataset: Path, tmp_path: Path) -> Path:
    """``ROOT/Mine`` as ``train.evaluate --save ROOT`` writes it for bicubic: ``bicubic/photo{0,1,2}.png``."""
    evaluate_main(["--data", str(dataset), "--methods", "bicubic", "--save", str(tmp_path / "out")])
    return tmp_path / "out" / "Mine"


def test_saved_outputs_score_exactly_as_computing_them(tmp_path: Path, tiny_weights_dir: Path) -> None:
    mine = image_folder(tmp_path / "Mine" / "HR", size=SIZE).parent
    yours = image_folder(tmp_path / "Yours" / "HR", n_images=2, size=(41, 37), seed=1).parent
    (yours / "LR_x4").mkdir()
    for path in (yours / "HR").iterdir():
        Image.fromarray(make_lr(load_rgb(path), 4)[0]).save(yours / "LR_x4" / path.name)
    data = ["--data", str(mine), "--data", str(yours)]
    computed, saved = tmp_path / "computed.csv", tmp_path / "saved.csv"
    root = tmp_path / "out"
    evaluate_main([*data, "--methods", "bicubic,edsr", "--weights-dir", str(tiny_weights_dir), "--save", str(root)])
    evaluate_main([*data, "--methods", "bicubic,edsr", "--weights-dir", str(tiny_weights_dir), "--csv", str(computed)])
    evaluate_main([*data, "--outputs", str(root), "--csv", str(saved)])
    assert saved.read_text() == computed.read_text()
    scores = pd.read_csv(saved)
    assert list(scores.method) == ["bicubic"] * 5 + ["edsr"] * 5
    assert list(scores.dataset) == (["Mine"] * 3 + ["Yours"] * 2) * 2
    assert scores.psnr.between(5, 60).all()


def test_a_folder_is_scored_next_to_computed_methods_under_its_own_name(
    dataset: Path, outputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (outputs / "bicubic").rename(outputs / "theirs")
    csv = tmp_path / "scores.csv"
    capsys.readouterr()
    evaluate_main(["--data", str(dataset), "--methods", "bicubic", "--outputs", str(outputs.parent), "--csv", str(csv)])
    scores = pd.read_csv(csv)
    assert list(scores.method) == ["bicubic"] * 3 + ["theirs"] * 3
    by_method = scores.set_index(["method", "image"])[["psnr", "ssim"]]
    assert by_method.loc["theirs"].equals(by_method.loc["bicubic"])
    assert "theirs" in capsys.readouterr().out


def test_with_neither_methods_nor_outputs_nothing_is_scored(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_status(evaluate_main, ["--data", str(dataset), "--methods", ""]) == 2
    assert "--methods names no method" in capsys.readouterr().err


def wrong_size(folder: Path) -> None:
    path = folder / "bicubic" / "photo1.png"
    Image.fromarray(load_rgb(path)[:-1]).save(path)


def twice(folder: Path) -> None:
    Image.open(folder / "bicubic" / "photo0.png").save(folder / "bicubic" / "photo0.bmp")


#: (how the saved folder ROOT/Mine is spoiled, the message with {d} for ROOT/Mine)
BROKEN: dict[str, tuple[Callable[[Path], object], str]] = {
    "wrong size": (wrong_size, "{d}/bicubic/photo1.png is 32×27 pixels, but its cropped ground truth is 32×28"),
    "missing image": (
        lambda d: (d / "bicubic" / "photo2.png").unlink(),
        "Missing output {d}/bicubic/photo2.png for the ground-truth image 'photo2'",
    ),
    "no ground truth": (
        lambda d: shutil.copy(d / "bicubic" / "photo0.png", d / "bicubic" / "extra.png"),
        "{d}/bicubic/extra.png has no ground truth: none of the 3 ground-truth images is named 'extra'",
    ),
    "two outputs for one image": (
        twice,
        "{d}/bicubic/photo0.bmp and {d}/bicubic/photo0.png are both outputs for the image 'photo0'",
    ),
    "unreadable": (
        lambda d: (d / "bicubic" / "photo0.png").write_bytes(b"not a png"),
        "Cannot read image {d}/bicubic/photo0.png: This file is not an image",
    ),
    "empty method folder": (lambda d: (d / "theirs").mkdir(), "The method folder {d}/theirs holds no images"),
    "invalid name": (
        lambda d: (d / "bicubic").rename(d / "bi cubic"),
        "The method folder {d}/bi cubic has an invalid name",
    ),
    "no method folders": (lambda d: shutil.rmtree(d / "bicubic"), "{d} holds no method folders"),
    "missing folder": (shutil.rmtree, "Outputs folder not found: {d}"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_evaluate_refuses_a_broken_folder_before_scoring(
    case: str, dataset: Path, outputs: Path, tmp_path: Path, tiny_weights_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spoil, message = BROKEN[case]
    spoil(outputs)
    saved = tmp_path / "saved"
    args = ["--data", str(dataset), "--outputs", str(outputs.parent), "--methods", "edsr", "--save", str(saved)]
    assert exit_status(evaluate_main, [*args, "--weights-dir", str(tiny_weights_dir)]) == 1
    assert message.format(d=outputs) in error_line(capsys)
    assert not saved.exists()


@pytest.mark.parametrize("case", BROKEN)
def test_survey_refuses_a_broken_folder_and_stores_nothing(
    case: str, dataset: Path, outputs: Path, store: Store
) -> None:
    spoil, message = BROKEN[case]
    spoil(outputs)
    with pytest.raises(ImageError, match=re.escape(message.format(d=outputs))):
        create_study(store, "byo", dataset / "HR", outputs=outputs)
    assert list_studies(store) == []
    assert not store.stimuli_dir.exists() or not any(store.stimuli_dir.iterdir())


def test_a_folder_named_like_a_method_of_the_same_run_is_refused(
    dataset: Path, outputs: Path, store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clash = "{d}/bicubic is named 'bicubic', which this run already uses"
    args = ["--data", str(dataset), "--methods", "bicubic", "--outputs", str(outputs.parent)]
    assert exit_status(evaluate_main, args) == 1
    assert clash.format(d=outputs) in error_line(capsys)
    with pytest.raises(ImageError, match=re.escape(clash.format(d=outputs))):
        create_study(store, "byo", dataset / "HR", ["bicubic"], outputs=outputs)
    (outputs / "bicubic").rename(outputs / REFERENCE)
    with pytest.raises(ImageError, match=re.escape(f"{outputs}/reference is named 'reference'")):
        create_study(store, "byo", dataset / "HR", outputs=outputs)
    assert list_studies(store) == []


def test_a_survey_of_a_folder_is_rated_and_exported(
    dataset: Path, outputs: Path, store: Store, tmp_path: Path, tiny_weights_dir: Path
) -> None:
    (outputs / "bicubic").rename(outputs / "theirs")
    tagged = PngInfo()
    tagged.add_text("Software", "their pipeline")
    Image.open(outputs / "theirs" / "photo0.png").save(outputs / "theirs" / "photo0.png", pnginfo=tagged)
    summary = create_study(
        store, "byo", dataset / "HR", ["edsr"], outputs=outputs, reference=True, weights_dir=tiny_weights_dir
    )
    assert summary.conditions == ("edsr", "theirs", REFERENCE) and summary.images == 3
    with store.session() as session:
        stimuli = {s.public_id: (s.condition.name, s.image.name) for s in session.scalars(select(Stimulus))}
    for public_id, (condition, image) in stimuli.items():
        stored = store.png_path(summary.public_id, public_id)
        assert set(png_chunks(stored.read_bytes())) <= {b"IHDR", b"IDAT", b"IEND"}  # no text, no time
        if condition == "theirs":
            assert np.array_equal(load_rgb(stored), load_rgb(outputs / "theirs" / f"{image}.png"))

    score = {"edsr": 2, "theirs": 4, REFERENCE: 5}
    for rater in range(3):
        state = start_rater(store, summary.public_id, rng=random.Random(rater))
        while state.stimulus is not None:
            condition = stimuli[state.stimulus][0]
            state = submit_rating(store, summary.public_id, state.token, state.stimulus, score[condition])
    set_response_times(store)  # as a person would answer (the server measured milliseconds)
    export_study(store, "byo", tmp_path / "export")
    mos = pd.read_csv(tmp_path / "export" / "mos_by_method.csv").set_index("method")
    assert mos.loc["theirs", "mos"] == 4 and mos.loc["theirs", "n_ratings"] == 9
    assert mos.loc["edsr", "mos"] == 2


def test_the_command_line_surveys_a_folder_without_methods(
    dataset: Path, outputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path / "data"), "create", "--images", str(dataset / "HR")]
    assert exit_status(survey_main, [*data, "--name", "none"]) == 1
    assert "A study needs methods to compare" in error_line(capsys)
    (outputs / "bicubic" / "photo2.png").unlink()
    assert exit_status(survey_main, [*data, "--name", "broken", "--outputs", str(outputs)]) == 1
    assert error_line(capsys).startswith(f"Missing output {outputs}/bicubic/photo2.png")
    shutil.copy(outputs / "bicubic" / "photo1.png", outputs / "bicubic" / "photo2.png")  # any image of the right size
    assert exit_status(survey_main, [*data, "--name", "byo", "--outputs", str(outputs), "--anchors"]) == 0
    assert "3 images × 2 conditions (bicubic, nearest)" in capsys.readouterr().out
