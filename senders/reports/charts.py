"""Charts for the report emails: matplotlib (Agg backend) PNGs whose bytes depend only on the data.

Fixed size and dpi, DejaVu Sans (shipped with matplotlib) and no 'Software' metadata, so the PNG does not
change with the matplotlib version or the clock and a rerun renders the same message.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date

WIDTH, HEIGHT, DPI = 7.0, 3.2, 100
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")


def _figure(height: float = HEIGHT):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.family": "DejaVu Sans", "font.size": 9})
    return plt, *plt.subplots(figsize=(WIDTH, height), dpi=DPI)


def _png(plt, figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def trend(days: Sequence[date], series: dict[str, Sequence[float]], title: str) -> bytes:
    """Lines over days (DAU / WAU / MAU)."""
    plt, figure, axes = _figure()
    for colour, (label, values) in zip(COLOURS, series.items(), strict=False):
        axes.plot(days, values, label=label, color=colour, linewidth=1.6)
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper left", frameon=False)
    figure.autofmt_xdate()
    return _png(plt, figure)


def grouped_bars(labels: Sequence[str], groups: dict[str, Sequence[float]], title: str, percent: bool) -> bytes:
    """Bars per label, one colour per group (target vs control conversion)."""
    plt, figure, axes = _figure()
    width = 0.8 / max(len(groups), 1)
    for index, (colour, (name, values)) in enumerate(zip(COLOURS, groups.items(), strict=False)):
        positions = [i + (index - (len(groups) - 1) / 2) * width for i in range(len(labels))]
        axes.bar(positions, values, width=width, label=name, color=colour)
    axes.set_xticks(range(len(labels)), labels, rotation=15, ha="right")
    if percent:
        from matplotlib.ticker import PercentFormatter

        # decimals=None picks as many as the ticks need (2.5%, not a rounded 2%).
        axes.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(frameon=False)
    return _png(plt, figure)


def horizontal_bars(labels: Sequence[str], values: Sequence[float], title: str) -> bytes:
    """One bar per label, top to bottom in the given order (segment sizes, funnel steps)."""
    plt, figure, axes = _figure(height=max(1.6, 0.35 * len(labels) + 0.8))
    positions = list(range(len(labels)))[::-1]
    axes.barh(positions, values, color=COLOURS[0])
    axes.set_yticks(positions, labels)
    for position, value in zip(positions, values, strict=True):
        axes.text(value, position, f" {value:,.0f}", va="center")
    axes.set_title(title)
    axes.margins(x=0.15)
    return _png(plt, figure)


def heat_map(
    rows: Sequence[str], columns: Sequence[str], values: Sequence[Sequence[float | None]], title: str
) -> bytes:
    """Retention heat map: cohorts down, periods across, the rate written in each cell."""
    import numpy as np

    plt, figure, axes = _figure(height=max(2.0, 0.32 * len(rows) + 1.0))
    grid = np.array([[np.nan if v is None else v for v in row] for row in values], dtype=float)
    image = axes.imshow(grid, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(columns)), columns)
    axes.set_yticks(range(len(rows)), rows)
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            axes.text(j, i, f"{value:.0%}", ha="center", va="center", color="white" if value > 0.5 else "black")
    figure.colorbar(image, ax=axes, format=lambda value, _: f"{value:.0%}")
    axes.set_title(title)
    return _png(plt, figure)
