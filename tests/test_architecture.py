"""The layout is the architecture: which package may import which, and the private peewee API the pool relies on."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from playhouse.pool import PooledDatabase, PooledPostgresqlDatabase

ROOT = Path(__file__).resolve().parent.parent

# Package (a path prefix of the module name) -> module prefixes it must never import. The most specific rule wins
# nothing: every matching rule applies.
FORBIDDEN = {
    "pipeline": ("flask", "werkzeug", "service", "app", "bench", "tests"),
    "models": ("flask", "werkzeug", "service", "pipeline", "app", "bench", "tests"),
    "migrations": ("flask", "werkzeug", "service", "pipeline", "app", "bench", "tests"),
    "service": ("pipeline.training", "pipeline.synthetic", "pipeline.evaluation.cli", "bench", "tests"),
    "pipeline.scoring": ("pipeline.training", "pipeline.synthetic", "pipeline.report", "pipeline.evaluation"),
    "pipeline.transform": ("pipeline.training", "pipeline.synthetic", "pipeline.report", "pipeline.evaluation",
                           "pipeline.scoring"),
    "pipeline.evaluation": ("pipeline.training", "pipeline.synthetic", "pipeline.report"),
    "pipeline.synthetic": ("pipeline.training", "pipeline.report", "pipeline.scoring", "pipeline.evaluation"),
    "pipeline.training": ("pipeline.synthetic", "pipeline.report"),
    "pipeline.report": ("pipeline.training", "pipeline.synthetic"),
    "pipeline.schema": ("pipeline.",),
    "app": ("pipeline.training", "pipeline.synthetic"),
}


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module an absolute import in ``path`` names, deferred imports inside functions included."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _matches(name: str, prefix: str) -> bool:
    return name == prefix.rstrip(".") or name.startswith(prefix if prefix.endswith(".") else prefix + ".")


def import_violations(root: Path = ROOT) -> list[str]:
    """'module imports name (forbidden for package)' for every import against FORBIDDEN."""
    found = []
    packages = ("pipeline", "models", "migrations", "service")
    files = [root / "app.py", *[path for folder in packages for path in (root / folder).rglob("*.py")]]
    for path in files:
        module = _module_name(path, root)
        for package, forbidden in FORBIDDEN.items():
            if not _matches(module, package):
                continue
            found += [f"{module} imports {name} (forbidden in {package})" for name in sorted(_imports(path))
                      if any(_matches(name, prefix) for prefix in forbidden)]
    return sorted(set(found))


def test_no_import_goes_the_wrong_way():
    """The service and the scorer never import training or generator code; nothing below service imports Flask."""
    assert import_violations() == []


def test_the_check_catches_a_wrong_import(tmp_path):
    """The detector itself: a scorer module importing training code is reported."""
    (tmp_path / "pipeline" / "scoring").mkdir(parents=True)
    for name in ("app.py",):
        (tmp_path / name).write_text("")
    for folder in ("models", "migrations", "service"):
        (tmp_path / folder).mkdir()
    (tmp_path / "pipeline" / "scoring" / "bad.py").write_text("def f():\n    from pipeline.training import cli\n")
    (tmp_path / "models" / "bad.py").write_text("import flask\n")
    assert import_violations(tmp_path) == [
        "models.bad imports flask (forbidden in models)",
        "pipeline.scoring.bad imports pipeline.training (forbidden in pipeline.scoring)",
        "pipeline.scoring.bad imports pipeline.training.cli (forbidden in pipeline.scoring)",
    ]


# models/database.py's pool subclasses reach into these private parts of playhouse.pool (pinned in requirements.txt).
# If an upgrade renames one, forking workers or pinging idle connections would break silently: this says where.
POOL_ATTRIBUTES = ("_connections", "_in_use", "_state", "_lock", "_pool_lock", "_pool_available")
POOL_METHODS = ("_is_closed", "_close", "_close_raw", "close_idle", "manual_close", "close_all")


@pytest.mark.parametrize("name", POOL_ATTRIBUTES)
def test_peewee_pool_private_attributes_still_exist(tmp_path, name):
    """Each private attribute models.database._Pool.forget_inherited replaces after a fork is still peewee's own."""
    pool = PooledDatabase.__new__(PooledPostgresqlDatabase)
    PooledPostgresqlDatabase.__init__(pool, "x", max_connections=2)
    assert hasattr(pool, name), (
        f"peewee's pool no longer has {name!r}: review models/database.py (_Pool.forget_inherited, "
        "ServingPostgresqlDatabase) against the new playhouse/pool.py before upgrading peewee")


@pytest.mark.parametrize("name", POOL_METHODS)
def test_peewee_pool_methods_still_exist(name):
    """Each pool method models.database overrides or calls is still defined by peewee."""
    assert callable(getattr(PooledPostgresqlDatabase, name, None)), (
        f"peewee's pool no longer defines {name!r}: review models/database.py (ServingPostgresqlDatabase's ping and "
        "idle bookkeeping) against the new playhouse/pool.py before upgrading peewee")


def test_peewee_exception_wrapper_still_exists():
    """service/predictions.py reads RETURNING rows inside peewee's private exception wrapper."""
    import peewee

    assert hasattr(peewee, "__exception_wrapper__"), (
        "peewee no longer exports __exception_wrapper__: review service/predictions.py's _insert_new, which needs "
        "driver errors raised while reading a RETURNING row translated to peewee's (503 handling relies on it)")
