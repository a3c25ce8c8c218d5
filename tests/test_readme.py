"""The README works verbatim: every fenced ``sh`` command of its quick start and training sections runs, in order,
in a fresh copy of the repository (fresh embedded database, small sizes through the variables the README names),
and afterwards ``git status`` shows nothing new, so ``.gitignore`` covers every file the steps write.

``make test`` is this suite itself and is not run again; ``make run`` (a server) is started in the background,
waited for until /health answers 200 with the model ``MODEL_DIR`` names, then stopped.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.gunicorn_process import free_port

ROOT = Path(__file__).resolve().parent.parent
# Each is taken up to the next heading of any level: the subsections others add below "Training" (retraining from
# the log, the registry's command reference) list commands with placeholders (VERSION, heroku ...), not steps.
SECTIONS = ("## Quick start (fresh machine)", "### Then: demo data, the pages, the offline report",
            "## Training, evaluation and switching models")
# The README's own knobs for quick trials: the smallest sizes at which every step still does its real job.
SMALL = {"DEMO_REQUESTS": "300", "TRAIN_ROWS": "250000", "HELD_OUT_ROWS": "40000"}
SERVER = re.compile(r"^((?:[A-Z_]+=\S+\s+)*)make run$")
SKIPPED = {"make test"}  # this very suite
# Settings of the test process that the README's reader does not have.
SCRUBBED = ("DATABASE_URL", "MODEL_DIR", "API_KEYS", "API_KEYS_REVOKED", "SESSION_SECRET", "API_AUTH_DISABLED",
            "DYNO", "PORT", "VIRTUAL_ENV")

PREAMBLE = r'''set -euo pipefail
readme_serve() {  # the README's `make run`: serve in the background, wait for /health, check the model, stop
    local version
    setsid env "$@" make run > "$READMETEST_DIR/serve.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 300); do
        if version=$(curl -sf "http://127.0.0.1:$PORT/health"); then break; fi
        kill -0 "$pid" 2>/dev/null || { cat "$READMETEST_DIR/serve.log"; echo "make run exited" >&2; return 1; }
        sleep 0.5
    done
    kill -TERM -- "-$pid"; wait "$pid" || true
    echo "served: $version"
    local card="${READMETEST_MODEL_DIR:-artifacts/default}/model_card.json"
    .venv/bin/python -c "import json, sys; v = json.load(open('$card'))['version']; \
sys.exit(0 if v in sys.argv[1] else 'served ' + sys.argv[1] + ', expected ' + v)" "$version"
}
'''


def readme_commands(text: str) -> list[str]:
    """The commands of the ``sh`` blocks of SECTIONS, in order: continuation lines joined, comments dropped."""
    commands = []
    for section in SECTIONS:
        assert section in text, f"the README lost its section {section!r}"
        body = text.split(section + "\n", 1)[1]
        body = re.split(r"\n#{1,6} ", body, maxsplit=1)[0]
        for block in re.findall(r"```sh\n(.*?)```", body, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                command = re.sub(r"\s+#.*$", "", line).strip()
                if command and not command.startswith("#"):
                    commands.append(command)
    return commands


def _script(commands: list[str]) -> str:
    lines = [PREAMBLE]
    for command in commands:
        if command in SKIPPED:
            continue
        served = SERVER.match(command)
        if served:
            assignments = served.group(1).split()
            model_dir = next((a.split("=", 1)[1] for a in assignments if a.startswith("MODEL_DIR=")), "")
            lines.append(f"READMETEST_MODEL_DIR={model_dir} readme_serve {' '.join(assignments)}")
        else:
            lines.append(f"echo {shlex.quote('+ ' + command)} >&2")
            lines.append(command)
    return "\n".join(lines) + "\n"


def test_the_tested_sections_hold_the_whole_journey():
    """Set up, serve, test, demo data, the offline report, train, evaluate and switch: all in the tested sections."""
    commands = readme_commands((ROOT / "README.md").read_text())
    for expected in ("make run", "make test", "make demo", ". .venv/bin/activate", "python -m pipeline.report",
                     "python -m pipeline.synthetic", "python -m pipeline.train", "python -m pipeline.evaluate",
                     "MODEL_DIR=artifacts/retrained make run", "VERSION=$(python -m pipeline.registry import",
                     "python -m pipeline.registry shadow"):
        assert any(command.startswith(expected) for command in commands), expected
    text = (ROOT / "README.md").read_text()
    for variable in SMALL:
        assert variable in text, f"the README must document {variable}"


def _fresh_copy(target: Path) -> None:
    """The working tree's files as a fresh clone has them (tracked and not ignored), committed, sharing .venv."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to((ROOT / ".venv").resolve())
    git = ["git", "-c", "user.name=readme", "-c", "user.email=readme@example.invalid"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "fresh clone"]):
        subprocess.run(git + command, cwd=target, check=True, capture_output=True)


@pytest.mark.slow
def test_readme_commands_work_verbatim(tmp_path):
    """Every command, in order, exit status 0; then no file left that .gitignore does not cover."""
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("needs the project's .venv (make test creates it)")
    repo = tmp_path / "clone"
    repo.mkdir()
    _fresh_copy(repo)
    script = _script(readme_commands((repo / "README.md").read_text()))
    (tmp_path / "readme.sh").write_text(script)
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update(SMALL, PORT=str(free_port()), READMETEST_DIR=str(tmp_path), PATH=os.environ["PATH"])
    result = subprocess.run(["bash", str(tmp_path / "readme.sh")], cwd=repo, env=env, capture_output=True, text=True,
                            timeout=1800)
    assert result.returncode == 0, f"{result.stderr[-4000:]}\n{result.stdout[-2000:]}"
    assert result.stdout.count("served: ") == 2
    assert (repo / "report.html").stat().st_size > 10_000 and (repo / "eval" / "retrained" / "roc.png").exists()
    assert (repo / "instance" / "ctrp3.sqlite3").exists()  # the fresh embedded database the steps made
    left = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout
    assert left == "", f"files the README's steps write that .gitignore does not cover:\n{left}"
