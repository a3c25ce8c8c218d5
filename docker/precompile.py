"""Build stage only: byte-compile the libraries' modules the service loads, and ship those as byte-code alone.

Run from the project root inside the image's build stage (the Dockerfile does), with a virtual environment installed
with ``pip install --no-compile``. It imports what serving imports (the app, the migrations, the committed model and
its fast path, a chart drawn with Agg) and then, for each library module that got loaded, replaces ``x.py`` by
``x.pyc`` (a sourceless module, which Python imports the same way). Modules never loaded keep their source and no
byte-code: should one be imported after all, Python compiles it in memory. About 40% of the libraries' modules are
loaded; the image saves the byte-code of the rest and the source of these (~60 MB together, measured in
``make docker-test``). Tracebacks from library frames lose their source lines; the service never logs those lines.
"""
from __future__ import annotations

import importlib.util
import io
import os
import sys
import sysconfig


def load_the_working_set() -> None:
    """Import what the service imports at start-up and while serving a decision and a report."""
    from matplotlib.figure import Figure

    import app  # noqa: F401  (the service, the report, the key tool's module)
    import migrations.__main__  # noqa: F401  (the release command)
    from pipeline.scoring.artifact import DEFAULT_ARTIFACT_DIR, load_artifact

    load_artifact(DEFAULT_ARTIFACT_DIR)  # unpickles the model: its scikit-learn modules
    figure = Figure()
    figure.add_subplot().bar(["a"], [1])
    figure.savefig(io.BytesIO(), format="png")


def make_sourceless(site: str) -> tuple[int, int]:
    """Turn every loaded module under ``site`` into a sourceless .pyc; returns (modules converted, bytes saved)."""
    converted = saved = 0
    for module in list(sys.modules.values()):
        source = getattr(module, "__file__", None) or ""
        if not (source.startswith(site) and source.endswith(".py") and os.path.exists(source)):
            continue
        cached = importlib.util.cache_from_source(source)
        if not os.path.exists(cached):
            continue
        saved += os.path.getsize(source)
        os.replace(cached, source + "c")
        os.remove(source)
        converted += 1
    return converted, saved


def main() -> int:
    """Load the working set, convert it, report the count."""
    sys.dont_write_bytecode = False
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project root
    load_the_working_set()
    site = sysconfig.get_paths()["purelib"]
    converted, saved = make_sourceless(site)
    print(f"precompile: {converted} library modules now byte-code only ({saved / 1e6:.1f} MB of source removed)")
    return 0 if converted else 1


if __name__ == "__main__":
    sys.exit(main())
