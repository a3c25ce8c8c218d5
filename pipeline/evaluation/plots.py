"""The report's charts as PNG bytes: ROC curves (figs 1-2), fairness gap histograms (figs 3-4), table 6 bars.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot, so no global state is
touched and the functions are safe in web workers and threads. Each returns PNG bytes and, given ``path``, also
writes them there.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100


def _png(figure: Figure, path=None) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def _no_data(axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes, color="0.4")


def roc_png(curves, path=None, title="ROC curve") -> bytes:
    """ROC curve(s) with the AUC in the legend; ``curves`` is a dict or list of dicts with label, fpr, tpr, auc."""
    curves = [curves] if isinstance(curves, dict) else list(curves)
    figure = Figure(figsize=(5.5, 5))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="0.6", label="chance (AUC 0.50)")
    drawn = 0
    for curve in curves:
        if not curve.get("fpr"):
            continue
        auc = curve.get("auc")
        label = f"{curve.get('label', 'model')} (AUC {auc:.3f})" if auc is not None else curve.get("label", "model")
        axes.plot(curve["fpr"], curve["tpr"], linewidth=2, label=label)
        drawn += 1
    if not drawn:
        _no_data(axes, "no outcomes of both classes yet")
    axes.set(xlim=(0, 1), ylim=(0, 1.01), title=title, xlabel="False positive rate (searches without contraband)",
             ylabel="True positive rate (contraband found)")
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    return _png(figure, path)


def gap_histogram_png(series: dict, bin_width=0.05, path=None,
                      title="Precision gaps between protected groups within a department") -> bytes:
    """Grouped bars of gap frequencies (% of each series) in ``bin_width`` bins, e.g. model vs officers.

    ``series`` maps a label ("model, test", "officers, test", "model, production", ...) to a list of gaps given as
    fractions (0.07 is 7 points), as returned by ``fairness.gap_distribution``.
    """
    labels = list(series)
    data = [np.asarray(series[label], dtype=float).round(12) for label in labels]
    top = max([float(g.max()) for g in data if g.size] + [0.25])  # at least 0-25 points, for comparable charts
    n_bins = max(1, int(np.ceil(round(top / bin_width, 9))))
    edges = np.arange(n_bins + 1) * bin_width
    figure = Figure(figsize=(max(6.0, 0.5 * n_bins + 2), 4.5))
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(labels))
    centres = np.arange(n_bins)
    for index, (label, gaps) in enumerate(zip(labels, data)):
        counts, _ = np.histogram(np.clip(gaps, 0, edges[-1]), bins=edges)
        shares = 100 * counts / gaps.size if gaps.size else counts.astype(float)
        axes.bar(centres + (index - (len(labels) - 1) / 2) * width, shares, width=width,
                 label=f"{label} (n={gaps.size})")
    if not any(g.size for g in data):
        _no_data(axes, "no department has two groups with enough data")
    axes.set_xticks(centres, [f"{100 * lo:.0f}-{100 * hi:.0f}" for lo, hi in zip(edges, edges[1:])],
                    rotation=45 if n_bins > 10 else 0)
    axes.set(title=title, xlabel="Gap in precision (percentage points)", ylabel="Share of gaps (%)")
    if labels:
        axes.legend()
    axes.grid(axis="y", alpha=0.3)
    return _png(figure, path)


def population_png(rows, path=None, title="Population: training vs production", max_values=8,
                   labels=("training", "production")) -> bytes:
    """Horizontal bars of each field's value shares on both sides (rows of ``population.population_table``).

    Each field shows at most ``max_values`` values, in the rows' order; a side with no shares at all (e.g. a card
    without a training population) is left out rather than drawn as empty bars.
    """
    fields = list(dict.fromkeys(row["field"] for row in rows))
    longest = max([sum(row["field"] == field for row in rows) for field in fields] + [1])
    row_height = 1.0 + 0.3 * min(longest, max_values)
    figure = Figure(figsize=(10, max(3.0, row_height * ((len(fields) + 1) // 2))), layout="constrained")
    if not fields:
        _no_data(figure.add_subplot(), "no population data")
        return _png(figure, path)
    sides = [(key, label) for key, label in zip(("training_pct", "production_pct"), labels)
             if any(row[key] is not None for row in rows)]
    columns = 2 if len(fields) > 1 else 1
    grid = figure.subplots((len(fields) + columns - 1) // columns, columns, squeeze=False)
    height = 0.8 / max(1, len(sides))
    for axes, field in zip(grid.flat, fields):
        subset = [row for row in rows if row["field"] == field][:max_values]
        positions = np.arange(len(subset))
        for index, (key, label) in enumerate(sides):
            offset = (index - (len(sides) - 1) / 2) * height
            axes.barh(positions + offset, [row[key] or 0.0 for row in subset], height=height, label=label)
        axes.set_yticks(positions, [str(row["value"])[:24] for row in subset])
        axes.invert_yaxis()
        axes.set(title=field, xlabel="Share of rows (%)", xlim=(0, 100))
        axes.legend(loc="lower right", fontsize="small")
    for axes in list(grid.flat)[len(fields):]:
        axes.set_visible(False)
    figure.suptitle(title)
    return _png(figure, path)
