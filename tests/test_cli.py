"""Every ``python -m …`` command of the lab follows one convention (:mod:`sr_app.cli`): exit 0 on success, 1 with the
single line ``error: <message>`` on stderr on a user error, 2 with argparse's usage on a bad flag."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, error_line, exit_status


@dataclass(frozen=True)
class Command:
    module: str  # its main's module: ``python -m <module without .__main__>`` (app: ``python app.py``)
    user_error: Sequence[str]  # arguments that stop it with a user error (run in an empty folder)
    message: str  # how that error's message starts
    bad_flag: Sequence[str]  # arguments argparse refuses

    def main(self) -> Callable[[Sequence[str] | None], object]:
        return importlib.import_module(self.module).main

    def source(self) -> Path:
        return REPO / f"{self.module.replace('.', '/')}.py"


MISSING_WEIGHTS = "Weights file not found: missing.safetensors."
COMMANDS = [
    Command(
        "sr_app.ui.share.__main__",
        ["delete", "nope", "--data-dir", "data"],
        "There is no shared comparison 'nope' here",
        ["list", "--bogus"],
    ),
    Command(
        "survey.__main__",
        ["export", "--study", "nope", "--out", "out", "--data-dir", "data"],  # --data-dir after the subcommand too
        "No study named 'nope'",
        ["plan", "--images", "many"],
    ),
    Command("train.sr", ["--data", "missing", "--out", "run"], "Image folder not found: missing", ["--arch", "vdsr"]),
    Command(
        "train.edsr", ["--data", "missing", "--out", "run"], "Image folder not found: missing", ["--batch-size", "x"]
    ),
    Command(
        "train.gan",
        ["--data", "missing", "--out", "run", "--init", "missing.safetensors"],
        MISSING_WEIGHTS,
        ["--data", "hr", "--out", "run", "--vgg", "imagenet"],
    ),
    Command(
        "train.evaluate",
        ["--data", "missing", "--methods", "bicubic"],
        "Image folder not found: missing/HR",
        ["--data", "Set5", "--engine", "tensorrt"],
    ),
    Command(
        "train.interpolate",
        ["missing.safetensors", "--psnr", "missing.safetensors", "--out", "out.safetensors"],
        MISSING_WEIGHTS,
        ["gan.safetensors", "--out", "out.safetensors", "--alpha", "2"],
    ),
    Command("app", ["--model", "edsr"], "--model takes label=path/to/model.pth", ["--concurrency", "0"]),
]

IDS = [command.module.removesuffix(".__main__") for command in COMMANDS]


@pytest.mark.parametrize("command", COMMANDS, ids=IDS)
def test_a_user_error_exits_1_with_one_line_and_a_bad_flag_exits_2(
    command: Command, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    main = command.main()
    assert exit_status(main, command.user_error) == 1
    assert error_line(capsys).startswith(command.message)
    assert exit_status(main, command.bad_flag) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ") and ": error: " in err.splitlines()[-1] and "Traceback" not in err


@pytest.mark.parametrize("command", COMMANDS, ids=IDS)
def test_the_command_runs_its_main_by_the_convention(command: Command) -> None:
    assert command.source().read_text().endswith('\nif __name__ == "__main__":\n    run_command(main)\n')
