"""The benchmark scripts are run by hand, not by the tests; each must at least still import, so that a function
renamed under them shows here rather than when someone next measures (``benchmarks/training.py`` once imported a timer
that had moved to ``sr_app.engines``)."""

import importlib
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def test_the_benchmarks_are_found() -> None:
    assert {"inference", "training", "memory", "survey_http_load"} <= {path.stem for path in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_every_benchmark_script_imports(script: Path) -> None:
    importlib.import_module(f"benchmarks.{script.stem}")
