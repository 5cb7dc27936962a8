"""The import rules of docs/ARCHITECTURE.md, read from the source with ``ast``: ``sr_app`` is the ground, ``train`` and
``survey`` stand on it and not on each other, ``app.py`` ties them together; no module imports a command-line module
or another package's UI; no import circles; no module over 400 lines without the reason at its top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("sr_app", "train", "survey")
#: Modules allowed past :data:`MAX_LINES` say why at the top of their docstring, starting with these words.
LONG_MODULE_REASON = "Longer than 400 lines because"
MAX_LINES = 400
#: A command-line module that may import another one: ``python -m train.edsr`` is ``python -m train.sr --arch edsr``.
COMMAND_ALIASES = {("train.edsr", "train.sr")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    paths = [path for package in PACKAGES for path in (REPO / package).rglob("*.py")] + [REPO / "app.py"]
    return {module_name(path): path for path in paths}


MODULES = project_modules()


def imports(path: Path) -> set[str]:
    """The project modules ``path`` imports, at any depth of its code (``from a import b`` counts ``a`` and, when
    ``b`` is a module, ``a.b``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return {name for name in found if name in MODULES and name != module_name(path)}


GRAPH = {name: imports(path) for name, path in MODULES.items()}


def is_command(name: str) -> bool:
    """A module run as a command: ``app``, a package's ``__main__``, or one with an ``if __name__ == "__main__"``."""
    return name == "app" or name.endswith("__main__") or '__name__ == "__main__"' in MODULES[name].read_text()


def package(name: str) -> str:
    return name.split(".")[0]


def is_ui(name: str) -> bool:
    return ".ui." in f"{name}." and not name.endswith(".ui")


def test_the_rules_see_the_whole_project() -> None:
    assert {"app", "sr_app.methods", "survey.db", "train.loop"} <= GRAPH.keys()
    assert "sr_app.models" in GRAPH["sr_app.weights"] and "survey.store" in GRAPH["app"]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if package(n) == "sr_app"))
def test_sr_app_stands_on_nothing_of_ours(name: str) -> None:
    assert {package(m) for m in GRAPH[name]} <= {"sr_app"}, f"{name} imports {sorted(GRAPH[name])}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if package(n) in ("train", "survey")))
def test_train_and_survey_stand_on_sr_app_only(name: str) -> None:
    assert {package(m) for m in GRAPH[name]} <= {package(name), "sr_app"}, f"{name} imports {sorted(GRAPH[name])}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_a_command(name: str) -> None:
    commands = {m for m in GRAPH[name] if is_command(m) and (name, m) not in COMMAND_ALIASES}
    assert not commands, f"{name} imports the command-line module(s) {sorted(commands)}: move what it needs down"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_another_packages_ui(name: str) -> None:
    foreign = {m for m in GRAPH[name] if is_ui(m) and package(m) != package(name) and name != "app"}
    assert not foreign, f"{name} imports the UI module(s) {sorted(foreign)} of another package"


def test_no_import_circles() -> None:
    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen = set()
        while stack:
            name, route = stack.pop()
            for nxt in GRAPH[name]:
                if nxt == start:
                    return [*route, start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*route, nxt]))
        return None

    circles = [" -> ".join(cycle) for name in sorted(GRAPH) if (cycle := cycle_from(name))]
    assert not circles, "import circles:\n" + "\n".join(circles)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small_or_say_why(name: str) -> None:
    source = MODULES[name].read_text(encoding="utf-8")
    lines = source.count("\n")
    docstring = ast.get_docstring(ast.parse(source)) or ""
    assert lines <= MAX_LINES or docstring.startswith(LONG_MODULE_REASON) or LONG_MODULE_REASON in docstring, (
        f"{name} has {lines} lines: split it by job, or start its docstring with '{LONG_MODULE_REASON} …'"
    )
