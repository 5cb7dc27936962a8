"""The README's survey commands run as written (on the benchmark sets in ../shared, from the project's folder)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import REPO, exit_status
from survey.__main__ import main as survey_main

README = (REPO / "README.md").read_text(encoding="utf-8")


def readme_command(start: str) -> list[str]:
    """The arguments of the README's command that begins with ``start`` (a shell line, continued with ``\\``; a
    ``#`` comment ends it)."""
    match = re.search(rf"^{re.escape(start)}(?:.*\\\n)*.*$", README, re.MULTILINE)
    assert match, f"no command starting with {start!r} in README.md"
    return shlex.split(match[0].replace("\\\n", " "), comments=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["set14-x4", "set14-crowd"])
def test_the_readmes_survey_create_commands_run(
    name: str, eval_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the README's paths are relative to the project's folder
    command = readme_command(f"python -m survey create --name {name}")
    assert command[:3] == ["python", "-m", "survey"]
    assert exit_status(survey_main, [*command[3:], "--data-dir", str(tmp_path / "data")]) == 0
