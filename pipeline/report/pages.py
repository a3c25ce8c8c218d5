"""The one templates folder and the Jinja2 environment that renders it without Flask (the offline report).

The service renders the same folder through Flask (``service.pages``), with the same filters, so a page looks
the same whether it was served or written by ``python -m pipeline.report``. Autoescaping is on for .html.
"""
from __future__ import annotations

import base64
import functools
from pathlib import Path

import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
EM_DASH = "\u2014"


def number(value, digits: int = 3) -> str:
    """A float with fixed digits, or an em dash."""
    return EM_DASH if value is None else f"{value:.{digits}f}"


def percent(value, digits: int = 1) -> str:
    """A fraction as a percentage, or an em dash."""
    return EM_DASH if value is None else f"{100 * value:.{digits}f}%"


def points(value, digits: int = 1) -> str:
    """A difference of fractions in percentage points, or an em dash."""
    return EM_DASH if value is None else f"{100 * value:.{digits}f} pts"


def interval(measured: dict | None, as_percent: bool = True) -> str:
    """A rate dict {value, low, high, n} as "36.0% [33.1%, 39.0%] n=512"."""
    if not measured or measured.get("value") is None:
        return f"{EM_DASH} (n={measured.get('n', 0) if measured else 0:,})"
    show = percent if as_percent else number
    return f"{show(measured['value'])} [{show(measured['low'])}, {show(measured['high'])}] n={measured['n']:,}"


def cell(value) -> str:
    """A table cell's text: counts with thousands separators (they reach millions), None as an em dash."""
    if value is None:
        return EM_DASH
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def png_uri(png: bytes) -> str:
    """PNG bytes as a data: URI, so a saved page is one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


FILTERS = {"number": number, "percent": percent, "points": points, "interval": interval, "cell": cell,
           "png_uri": png_uri}


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The templates folder with autoescaping and the report's filters (no Flask)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(FILTERS)
    return env


def render(template: str, **context) -> str:
    """Render one template of the folder offline; the page has no links to the service and no sign-out form."""
    context.setdefault("served", False)
    return environment().get_template(template).render(**context)
