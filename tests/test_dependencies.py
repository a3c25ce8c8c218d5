"""Dependency drift: requirements.txt, environment.yml, .python-version and what the code imports must agree."""
from __future__ import annotations

import ast
import functools
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_CODE = ["app.py", "gunicorn.conf.py", "service", "pipeline", "models", "migrations"]
DEV_CODE = ["bench", "tests"]  # may also use requirements-dev.txt
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)$")


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_requirements(path: Path) -> dict[str, str]:
    """{distribution: version} from a pip requirements file, following -r includes; anything but == is an error."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            pins.update(read_requirements(path.parent / line[3:].strip()))
            continue
        match = PIN.match(line)
        assert match, f"{path.name}: {line!r} is not an exact pin (name==version)"
        pins[canonical(match[1])] = match[2]
    return pins


def read_environment_yml(path: Path) -> tuple[str, dict[str, str]]:
    """(python version, {distribution: version}) from environment.yml's python= line and its pip: section."""
    python, pins, in_pip = "", {}, False
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        item = line.strip()
        if item.startswith("- python="):
            python = item.split("=", 1)[1]
        if item == "- pip:":
            in_pip, pip_indent = True, len(line) - len(line.lstrip())
            continue
        if in_pip and item:
            if len(line) - len(line.lstrip()) <= pip_indent:
                in_pip = False
                continue
            match = PIN.match(item.removeprefix("- ").strip())
            assert match, f"environment.yml: {item!r} is not an exact pin (name==version)"
            pins[canonical(match[1])] = match[2]
    return python, pins


def python_files(entries: list[str]) -> list[Path]:
    """Every .py file under the given project files/directories (skipping caches and virtualenvs)."""
    files = []
    for entry in entries:
        path = ROOT / entry
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
    return sorted(files)


def local_names() -> set[str]:
    """Top-level importable names that belong to this project, not to a distribution."""
    names = {p.stem for p in ROOT.glob("*.py")}
    names |= {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")}
    return names | {"conftest"}


def third_party_imports(path: Path) -> set[str]:
    """Top-level names of absolute imports in a file that are neither stdlib nor project-local."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - local_names() - {"__future__"}


@functools.lru_cache(maxsize=1)
def _distributions_by_module() -> dict:
    # Scanning every installed distribution's metadata costs ~0.1 s; once per run, not once per import.
    return metadata.packages_distributions()


def distributions_of(module: str) -> set[str]:
    """Installed distributions that provide an import name (psycopg2 -> psycopg2-binary, sklearn -> scikit-learn)."""
    return {canonical(d) for d in _distributions_by_module().get(module, [])}


def undeclared(entries: list[str], declared: set[str]) -> list[str]:
    """'file: module' for every third-party import under entries that no declared distribution provides."""
    problems = []
    for path in python_files(entries):
        for module in sorted(third_party_imports(path)):
            if not distributions_of(module) & declared:
                problems.append(f"{path.relative_to(ROOT)}: imports {module!r} "
                                f"(provided by {sorted(distributions_of(module)) or 'nothing installed'})")
    return problems


RUNTIME = read_requirements(ROOT / "requirements.txt")
DEV = read_requirements(ROOT / "requirements-dev.txt")


def test_environment_yml_pins_equal_requirements_txt():
    """Conda users get exactly what Heroku installs."""
    python, pins = read_environment_yml(ROOT / "environment.yml")
    assert pins == RUNTIME
    assert python == (ROOT / ".python-version").read_text().strip()


def test_dev_requirements_include_every_runtime_pin_unchanged():
    """requirements-dev.txt adds test tools on top of the runtime pins and never overrides one."""
    assert {name: DEV[name] for name in RUNTIME} == RUNTIME


def test_runtime_code_imports_only_declared_packages():
    """A runtime import of a package that requirements.txt does not pin would break on Heroku."""
    assert undeclared(RUNTIME_CODE, set(RUNTIME)) == []


def test_tests_and_benchmarks_import_only_declared_packages():
    """Tests and benchmarks may also use the dev pins (pytest, requests)."""
    assert undeclared(DEV_CODE, set(DEV)) == []


@pytest.mark.parametrize("name", sorted(DEV))
def test_installed_version_matches_pin(name):
    """The environment the tests run in is the one the pins describe."""
    assert metadata.version(name) == DEV[name]


def test_python_version_matches():
    """.python-version (Heroku, pyenv) names the interpreter the tests run on."""
    assert "{}.{}".format(*sys.version_info[:2]) == (ROOT / ".python-version").read_text().strip()


def test_detector_flags_drift(tmp_path):
    """The checks above can fail: a mismatched pin and an undeclared import are both reported."""
    env = tmp_path / "environment.yml"
    env.write_text("dependencies:\n  - python=3.11\n  - pip:\n      - flask==0.1\n")
    assert read_environment_yml(env)[1] != RUNTIME
    stray = tmp_path / "stray.py"
    stray.write_text("import requests\nimport numpy\nimport os\n")
    assert third_party_imports(stray) == {"requests", "numpy"}
    assert not distributions_of("requests") & set(RUNTIME)
    assert distributions_of("sklearn") == {"scikit-learn"}
