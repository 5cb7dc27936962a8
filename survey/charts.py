"""Charts of survey results as standalone SVG strings (no plotting library; they go into the Results tab and the
HTML report as they are).

- :func:`mos_chart`: MOS per method as bars with 95 % intervals (Student t, and the cluster bootstrap if present).
- :func:`scores_chart`: Bradley–Terry scores per method as points with 95 % intervals.
- :func:`significance_matrix`: method × method, coloured by which is better and whether Holm's p < 0.05.
- :func:`heatmap`: MOS per image × method.

Every chart draws names through :func:`html.escape` and carries its title as ``aria-label``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import pandas as pd

from survey.db import ACR_LABELS, MAX_SCORE, MIN_SCORE

#: Bar and point charts: size and margins in pixels; the left margin holds the axis labels.
CHART_WIDTH, CHART_HEIGHT, CHART_MARGIN, CHART_LEFT = 640, 320, 56, 88
BAR_COLOUR, INTERVAL_COLOUR, BOOT_COLOUR = "#4f7cac", "#222", "#d95f02"
#: Matrix and heatmap cells, and the room for their row labels, in pixels.
CELL, ROW_LABELS, COLUMN_LABELS = 64, 120, 90
#: Significance matrix colours: the row method is better or worse than the column method, significantly (Holm
#: p < 0.05) or not; no comparison.
SIGNIFICANCE_COLOURS = {
    (True, True): "#1a9641", (True, False): "#a6d96a", (False, False): "#fdae61", (False, True): "#d7191c",
}  # fmt: skip
NO_DATA_COLOUR = "#eeeeee"
ALPHA = 0.05
#: Heatmap colours from the bottom of the scale (1 Bad) to the top (5 Excellent).
HEATMAP_LOW, HEATMAP_HIGH = (247, 251, 255), (8, 48, 107)


def svg(width: float, height: float, title: str, parts: Sequence[str]) -> str:
    """An SVG document of ``parts`` with a bold ``title`` at the top, ``width`` × ``height`` pixels, shrinking to fit
    a narrower page (a phone)."""
    heading = f'<text x="{width / 2}" y="22" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'style="max-width:100%;height:auto" font-family="sans-serif" role="img" aria-label="{html.escape(title)}">'
        f"{heading}{''.join(parts)}</svg>"
    )


def title_width(title: str) -> float:
    """About how many pixels a bold title needs (8 per character, and a margin)."""
    return 8 * len(title) + 20


def error_bar(x: float, low: float, high: float, cap: float, colour: str) -> str:
    """A vertical error bar from y = ``low`` to ``high`` (pixels) with caps ``cap`` wide each side."""
    return (
        f'<path d="M{x},{low}V{high}M{x - cap},{low}h{2 * cap}M{x - cap},{high}h{2 * cap}" '
        f'stroke="{colour}" stroke-width="1.5" fill="none"/>'
    )


def interval_chart(
    table: pd.DataFrame, value: str, axis: tuple[float, float], ticks: dict[float, str], title: str, bars: bool
) -> str:
    """Bars (``bars``) or points of column ``value`` per ``method``, sorted by it, with the 95 % interval
    ``ci95_low``–``ci95_high`` and, where the columns exist, ``ci95_low_boot``–``ci95_high_boot`` beside it;
    ``axis`` is the (bottom, top) of the value axis, ``ticks`` the labelled grid lines."""
    table = table.sort_values(value).reset_index(drop=True)
    plot_w, plot_h = CHART_WIDTH - CHART_LEFT - CHART_MARGIN, CHART_HEIGHT - 2 * CHART_MARGIN
    bottom, top = axis

    def y(v: float) -> float:
        return CHART_MARGIN + (top - min(max(v, bottom), top)) / (top - bottom) * plot_h

    parts = [
        f'<line x1="{CHART_LEFT}" x2="{CHART_WIDTH - CHART_MARGIN}" y1="{y(tick)}" y2="{y(tick)}" stroke="#ddd"/>'
        f'<text x="{CHART_LEFT - 6}" y="{y(tick) + 4}" text-anchor="end" font-size="11">{html.escape(label)}</text>'
        for tick, label in ticks.items()
    ]
    slot = plot_w / max(len(table), 1)
    boot = "ci95_low_boot" in table
    for i, row in table.iterrows():
        centre, half = CHART_LEFT + (i + 0.5) * slot, slot * 0.3
        if bars:
            parts.append(
                f'<rect x="{centre - half}" y="{y(row[value])}" width="{2 * half}" '
                f'height="{y(bottom) - y(row[value])}" fill="{BAR_COLOUR}"/>'
            )
        else:
            parts.append(f'<circle cx="{centre}" cy="{y(row[value])}" r="5" fill="{BAR_COLOUR}"/>')
        parts.append(
            f'<text x="{centre}" y="{CHART_HEIGHT - CHART_MARGIN + 18}" text-anchor="middle" font-size="12">'
            f"{html.escape(str(row['method']))}</text>"
            f'<text x="{centre + half + 4}" y="{y(row[value]) + 4}" font-size="11">{row[value]:.2f}</text>'
        )
        if not math.isnan(row["ci95_low"]):
            parts.append(error_bar(centre, y(row["ci95_low"]), y(row["ci95_high"]), half / 3, INTERVAL_COLOUR))
        if boot and not math.isnan(row["ci95_low_boot"]):
            x = centre + half / 2
            parts.append(error_bar(x, y(row["ci95_low_boot"]), y(row["ci95_high_boot"]), half / 4, BOOT_COLOUR))
    if boot:
        parts.append(
            f'<text x="{CHART_LEFT}" y="{CHART_HEIGHT - 12}" font-size="11"><tspan fill="{INTERVAL_COLOUR}">'
            f'■ Student t over the scores</tspan>  <tspan fill="{BOOT_COLOUR}">■ bootstrap over raters and images'
            "</tspan></text>"
        )
    return svg(CHART_WIDTH, CHART_HEIGHT, title, parts)


def mos_chart(by_method: pd.DataFrame, title: str) -> str:
    """An SVG bar chart of MOS per method (rows of :func:`survey.stats.mos`) with 95 % interval error bars: the
    Student t interval, and the cluster bootstrap one beside it when the table has it."""
    ticks = {score: f"{score} {label}" for score, label in ACR_LABELS.items()}
    return interval_chart(by_method, "mos", (MIN_SCORE, MAX_SCORE), ticks, title, bars=True)


def scores_chart(scores: pd.DataFrame, title: str) -> str:
    """An SVG chart of Bradley–Terry scores per method (rows of :func:`survey.pairwise.bradley_terry`) as points
    with 95 % intervals; the axis spans the intervals and 0, with grid lines every 0.5 (every 1 past a span of 4)."""
    values = pd.Series(scores[["score", "ci95_low", "ci95_high"]].to_numpy(dtype=float).ravel()).dropna()
    step = 0.5 if values.max() - values.min() <= 4 else 1.0
    low, high = math.floor(min(values.min(), -0.5) / step) * step, math.ceil(max(values.max(), 0.5) / step) * step
    ticks = {low + k * step: f"{low + k * step:+.1f}" for k in range(round((high - low) / step) + 1)}
    return interval_chart(scores, "score", (low, high), ticks, title, bars=False)


def significance_matrix(pairs: pd.DataFrame, methods: Sequence[str], title: str) -> str:
    """Method × method: the cell in row A and column B is green when A is better than B, orange or red when it is
    worse; dark when Holm's adjusted p < 0.05, light when not; it shows the p-value.

    ``pairs`` has one row per compared pair: ``method_a``, ``method_b``, ``diff`` (positive when ``method_a`` is the
    better one) and ``p_holm``. ``methods`` gives the order of the rows and columns (best first reads best).
    """
    n = len(methods)
    width, height = max(ROW_LABELS + n * CELL + 20, title_width(title)), 40 + COLUMN_LABELS + n * CELL + 60
    top = 40 + COLUMN_LABELS
    found = {}
    for row in pairs.itertuples():
        found[(row.method_a, row.method_b)] = (row.diff, row.p_holm)
        found[(row.method_b, row.method_a)] = (-row.diff, row.p_holm)
    parts = []
    for j, method in enumerate(methods):
        x = ROW_LABELS + (j + 0.5) * CELL
        parts.append(
            f'<text transform="translate({x},{top - 6}) rotate(-40)" font-size="12">{html.escape(method)}</text>'
            f'<text x="{ROW_LABELS - 6}" y="{top + (j + 0.5) * CELL + 4}" text-anchor="end" font-size="12">'
            f"{html.escape(method)}</text>"
        )
    for i, a in enumerate(methods):
        for j, b in enumerate(methods):
            x, y = ROW_LABELS + j * CELL, top + i * CELL
            colour, label = NO_DATA_COLOUR, "" if i == j else "–"
            if (a, b) in found and not math.isnan(found[a, b][1]):
                diff, p = found[a, b]
                colour = SIGNIFICANCE_COLOURS[diff > 0, bool(p < ALPHA)] if diff != 0 else NO_DATA_COLOUR
                label = "p<0.001" if p < 0.001 else f"p={p:.2g}" if p < 0.995 else "p=1"
            parts.append(
                f'<rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" fill="{colour}" stroke="#fff"/>'
                f'<text x="{x + CELL / 2}" y="{y + CELL / 2 + 4}" text-anchor="middle" font-size="11">{label}</text>'
            )
    legend = [
        ("row better, p < 0.05", SIGNIFICANCE_COLOURS[True, True]),
        ("row better, n.s.", SIGNIFICANCE_COLOURS[True, False]),
        ("row worse, n.s.", SIGNIFICANCE_COLOURS[False, False]),
        ("row worse, p < 0.05", SIGNIFICANCE_COLOURS[False, True]),
    ]
    for k, (text, colour) in enumerate(legend):
        x, y = 10 + (k % 2) * (width / 2), top + n * CELL + 20 + (k // 2) * 18
        parts.append(
            f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{x + 16}" y="{y}" font-size="11">{text}</text>'
        )
    return svg(width, height, title, parts)


def heatmap(by_image: pd.DataFrame, title: str) -> str:
    """Images (rows) × methods (columns) coloured by MOS from 1 (light) to 5 (dark), each cell showing its MOS.

    ``by_image`` has the columns ``image``, ``method`` and ``mos`` (as :func:`survey.stats.mos` by image and method).
    """
    grid = by_image.pivot_table(index="image", columns="method", values="mos")
    n_rows, n_columns = grid.shape
    top = 40 + COLUMN_LABELS
    width, height = max(ROW_LABELS + n_columns * CELL + 20, title_width(title)), top + n_rows * CELL // 2 + 20
    parts = [
        f'<text transform="translate({ROW_LABELS + (j + 0.5) * CELL},{top - 6}) rotate(-40)" font-size="12">'
        f"{html.escape(str(method))}</text>"
        for j, method in enumerate(grid.columns)
    ]
    for i, image in enumerate(grid.index):
        y = top + i * CELL // 2
        parts.append(
            f'<text x="{ROW_LABELS - 6}" y="{y + CELL / 4 + 4}" text-anchor="end" font-size="12">'
            f"{html.escape(str(image))}</text>"
        )
        for j, value in enumerate(grid.iloc[i]):
            x = ROW_LABELS + j * CELL
            if math.isnan(value):
                colour, label, ink = NO_DATA_COLOUR, "", "#000"
            else:
                share = (min(max(value, MIN_SCORE), MAX_SCORE) - MIN_SCORE) / (MAX_SCORE - MIN_SCORE)
                rgb = [round(lo + share * (hi - lo)) for lo, hi in zip(HEATMAP_LOW, HEATMAP_HIGH, strict=True)]
                colour, label = f"rgb({rgb[0]},{rgb[1]},{rgb[2]})", f"{value:.2f}"
                ink = "#fff" if share > 0.5 else "#000"
            parts.append(
                f'<rect x="{x}" y="{y}" width="{CELL}" height="{CELL // 2}" fill="{colour}" stroke="#fff"/>'
                f'<text x="{x + CELL / 2}" y="{y + CELL / 4 + 4}" text-anchor="middle" font-size="11" fill="{ink}">'
                f"{label}</text>"
            )
    return svg(width, height, title, parts)
