"""Small, escaping HTML builders for the report page: tables, figures and number formatting."""
from __future__ import annotations

import base64
from html import escape


class Raw(str):
    """HTML that is already safe and must not be escaped again."""


def text(value) -> Raw:
    """Escape any value for HTML (None becomes an em dash)."""
    if isinstance(value, Raw):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Raw(f"{value:,}")  # counts reach millions; separators keep them readable
    return Raw("&mdash;" if value is None else escape(str(value)))


def element(tag: str, *children, **attributes) -> Raw:
    """One element with escaped attributes; children are escaped unless Raw. ``class_`` sets class."""
    attrs = "".join(f' {name.rstrip("_").replace("_", "-")}="{escape(str(value))}"'
                    for name, value in attributes.items() if value is not None and value is not False)
    return Raw(f"<{tag}{attrs}>{''.join(text(child) for child in children)}</{tag}>")


def table(headers: list, rows: list[list], caption: str | None = None, numeric_from: int = 1,
          numeric_to: int | None = None) -> Raw:
    """A table; columns ``numeric_from`` to ``numeric_to`` (exclusive; default: the last) are right-aligned."""
    numeric_to = len(headers) if numeric_to is None else numeric_to
    head = element("tr", *(Raw(element("th", h)) for h in headers))
    body = []
    for row in rows:
        cells = [element("td", cell, class_="num" if numeric_from <= i < numeric_to else None)
                 for i, cell in enumerate(row)]
        body.append(element("tr", *cells))
    parts = [element("caption", caption)] if caption else []
    parts += [element("thead", head), element("tbody", *body)]
    if not rows:
        parts.append(element("tbody", element("tr", element("td", "no data in this selection",
                                                              colspan=len(headers), class_="empty"))))
    return element("table", *parts)


def figure(png: bytes | None, alt: str, caption: str) -> Raw:
    """A PNG embedded as a data: URI with its caption; a visible note when there was nothing to draw."""
    if not png:
        return element("figure", element("p", f"No chart: {alt} has no data in this selection.", class_="empty"),
                       element("figcaption", caption))
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return element("figure", Raw(f'<img src="{uri}" alt="{escape(alt)}">'), element("figcaption", caption))


def number(value, digits: int = 3) -> str:
    """A float with fixed digits, or an em dash."""
    return "\u2014" if value is None else f"{value:.{digits}f}"


def percent(value, digits: int = 1) -> str:
    """A fraction as a percentage, or an em dash."""
    return "\u2014" if value is None else f"{100 * value:.{digits}f}%"


def points(value, digits: int = 1) -> str:
    """A difference of fractions in percentage points, or an em dash."""
    return "\u2014" if value is None else f"{100 * value:.{digits}f} pts"


def interval(measured: dict | None, as_percent: bool = True) -> str:
    """A rate dict {value, low, high, n} as "36.0% [33.1%, 39.0%] n=512"."""
    if not measured or measured.get("value") is None:
        return f"\u2014 (n={measured.get('n', 0) if measured else 0:,})"
    show = percent if as_percent else number
    return f"{show(measured['value'])} [{show(measured['low'])}, {show(measured['high'])}] n={measured['n']:,}"


def definition_list(pairs: list[tuple[str, object]]) -> Raw:
    """Label/value pairs as a <dl>."""
    items = []
    for label, value in pairs:
        items += [element("dt", label), element("dd", value)]
    return element("dl", *items)
