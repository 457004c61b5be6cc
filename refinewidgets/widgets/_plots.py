"""Drawing the result plots as inline SVG that follows the page's theme (no pyplot state).

Plotting never computes: the numbers come from :mod:`refinewidgets.core.explore`. Each
function returns HTML: a ``<div class=... role="img" aria-label=...>`` holding an ``<svg>``
with a transparent background whose text, axes and outlines are drawn in ``currentColor``, so
the same plot is dark on a light page and light on a dark one (Voila's and JupyterLab's dark
themes), in JupyterLab, Notebook and Voila alike. It scales down to the width available. Dense
scatters are rasterized inside the SVG (an embedded PNG) to keep it small. Ids inside each SVG
get a unique prefix, so several plots on one page never share an id.
"""

from __future__ import annotations

import functools
import html
import io
import itertools
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core.explore import PCA, BatchView

__all__ = ["bar_img", "batch_pair_img", "distributions_img", "pca_img"]

MAX_BOXES = 120
#: Scatters with more points than this are rasterized inside the SVG.
RASTER_POINTS = 2000
#: Drawn in this colour, then written as ``currentColor`` (the page's text colour).
_INK = "#0f0e0d"
_THEME = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable, in the page's font
    "svg.hashsalt": "refinewidgets",  # the same plot gives the same SVG
    "text.color": _INK,
    "axes.edgecolor": _INK,
    "axes.labelcolor": _INK,
    "axes.titlecolor": _INK,
    "axes.facecolor": "none",
    "figure.facecolor": "none",
    "xtick.color": _INK,
    "ytick.color": _INK,
    "legend.labelcolor": _INK,
    "legend.facecolor": "none",
    "legend.edgecolor": _INK,
    "legend.framealpha": None,
    "boxplot.boxprops.color": _INK,
    "boxplot.whiskerprops.color": _INK,
    "boxplot.capprops.color": _INK,
    "boxplot.medianprops.color": _INK,
}
_SERIAL = itertools.count()


def _themed(draw):
    """Run a drawing function with the theme's matplotlib settings."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(_THEME):
            return draw(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _img(fig, css_class: str, alt: str) -> str:
    """The figure as inline SVG in a labelled block (see the module's docstring)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", transparent=True)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # no XML prolog inside HTML
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r"<style[^>]*>.*?</style>", "", svg, flags=re.S)  # its `*` rule is page-wide
    svg = svg.replace(_INK, "currentColor")
    prefix = f"rw{next(_SERIAL)}-"
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(r"(href=\"#|url\(#)([^\")]+)", lambda m: m.group(1) + prefix + m.group(2), svg)
    width = re.search(r'<svg[^>]*\swidth="([\d.]+)pt"', svg)
    max_width = f"{float(width.group(1)) * 4 / 3:.0f}px" if width else "100%"
    svg = re.sub(
        r'(<svg[^>]*?)\swidth="[^"]*"\s+height="[^"]*"',
        rf'\1 width="100%" style="max-width:{max_width};height:auto" aria-hidden="true" '
        'focusable="false"',
        svg,
        count=1,
    )
    # in its own block, so a heading written before it stays above it
    return (
        f'<div class="{css_class}" role="img" aria-label="{html.escape(alt)}" '
        f'style="max-width:100%;overflow-x:auto">{svg}</div>'
    )


def _palette(labels: pd.Series) -> dict[str, tuple]:
    from matplotlib import colormaps

    levels = list(dict.fromkeys(labels.astype(str)))
    cmap = colormaps["tab10" if len(levels) <= 10 else "tab20"]
    return {level: cmap(i % cmap.N) for i, level in enumerate(levels)}


@_themed
def distributions_img(
    panels: Sequence[tuple[str, pd.DataFrame]], labels: pd.Series, *, css_class: str
) -> str:
    """Per-sample boxes (whiskers 5-95%, box 25-75%, median) for each ``(title, quantiles)``
    panel, coloured by ``labels`` (sample -> experiment or another label)."""
    fig = _figure(10, 2.6 * len(panels))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    colors = _palette(labels)
    for ax, (title, q) in zip(axes, panels):
        shown = (
            q.iloc[np.unique(np.linspace(0, len(q) - 1, min(len(q), MAX_BOXES)).astype(int))]
            if len(q)
            else q
        )
        stats = []
        for sample, row in shown.iterrows():
            v = row.to_numpy(dtype=float)
            if np.isnan(v).all():
                continue
            stats.append(
                {
                    "label": "",
                    "whislo": v[1],
                    "q1": v[2],
                    "med": v[3],
                    "q3": v[4],
                    "whishi": v[5],
                    "fliers": [],
                    "sample": sample,
                }
            )
        if stats:
            boxes = ax.bxp(stats, showfliers=False, patch_artist=True, widths=0.7)
            for patch, st in zip(boxes["boxes"], stats):
                patch.set_facecolor(colors.get(str(labels.get(st["sample"], "")), "grey"))
                patch.set_linewidth(0.3)
        suffix = (
            f" ({len(shown)} of {len(q)} samples)"
            if len(shown) < len(q)
            else f" ({len(q)} samples)"
        )
        ax.set_title(title + suffix, fontsize=10)
        ax.set_xticks([])
        ax.set_ylabel("value")
    handles = [_patch(c) for c in colors.values()]
    if 1 < len(colors) <= 20:
        fig.legend(handles, list(colors), loc="outside right upper", fontsize=7, title=labels.name)
    return _img(
        fig, css_class, "per-sample value distributions: " + "; ".join(t for t, _ in panels)
    )


def _patch(color):
    from matplotlib.patches import Patch

    return Patch(facecolor=color)


def _scatter(ax, coords: pd.DataFrame, labels: pd.Series) -> dict[str, tuple]:
    """PC1 against PC2 of ``coords`` coloured by ``labels`` (aligned by row name)."""
    x = coords.iloc[:, 0].to_numpy()
    y = coords.iloc[:, 1].to_numpy() if coords.shape[1] > 1 else np.zeros(len(coords))
    labels = labels.reindex(coords.index).astype(str)
    colors = _palette(labels)
    for level, color in colors.items():
        on = (labels == level).to_numpy()
        ax.scatter(
            x[on],
            y[on],
            s=14 if len(x) < 500 else 4,
            color=color,
            label=level,
            alpha=0.85,
            rasterized=len(x) > RASTER_POINTS,
        )
    return colors


@_themed
def batch_pair_img(
    views: Sequence[BatchView], labels: pd.Series, *, batch_key: str, css_class: str
) -> str:
    """The before and after of a batch correction side by side, each titled with its batch
    scores (silhouette of the ``batch_key`` labels, share of variance the batches explain)."""
    fig = _figure(11, 4.4)
    axes = fig.subplots(1, len(views), squeeze=False)[0]
    colors: dict[str, tuple] = {}
    alt = []
    for ax, view in zip(axes, views):
        colors = _scatter(ax, view.coordinates, labels)
        s = view.scores
        ax.set_title(
            f"{view.label.capitalize()}: {view.what}\n{batch_key} silhouette "
            f"{s['silhouette']:.2f}, {s['variance_explained']:.0%} of variance",
            fontsize=9,
        )
        axis = "Harmony" if "Harmony" in view.what else "PC"
        ax.set_xlabel(f"{axis} 1")
        ax.set_ylabel(f"{axis} 2")
        alt.append(
            f"{view.label}: silhouette {s['silhouette']:.2f}, "
            f"{s['variance_explained']:.0%} of variance by {batch_key}"
        )
    if len(colors) <= 20:
        axes[-1].legend(fontsize=7, title=labels.name, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _img(fig, css_class, "batch correction, before and after: " + "; ".join(alt))


@_themed
def pca_img(
    result: PCA, labels: pd.Series, *, title: str, css_class: str, unit: str = "samples"
) -> str:
    """A scatter of PC1 against PC2 coloured by ``labels``."""
    fig = _figure(7, 4.6)
    ax = fig.add_subplot()
    coords = result.coordinates
    colors = _scatter(ax, coords, labels)
    ratio = result.explained_variance_ratio
    ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({ratio[1]:.0%} of variance)" if len(ratio) > 1 else "")
    ax.set_title(
        f"{title}: {len(coords):,} {unit}, {result.n_genes:,} genes"
        + (
            f" ({result.n_genes_dropped} with missing values left out)"
            if result.n_genes_dropped
            else ""
        ),
        fontsize=10,
    )
    if len(colors) <= 20:
        ax.legend(fontsize=7, title=labels.name, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _img(fig, css_class, "PCA of the samples")


@_themed
def bar_img(counts: pd.Series, *, title: str, css_class: str) -> str:
    """Horizontal bars of ``counts`` (label -> number)."""
    fig = _figure(7, 0.6 + 0.28 * max(1, len(counts)))
    ax = fig.add_subplot()
    ax.barh([str(i) for i in counts.index][::-1], counts.to_numpy()[::-1], color="#4c72b0")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(counts.name or "")
    return _img(fig, css_class, title)


@_themed
def warm_up() -> None:
    """Import matplotlib and draw small plots of each kind, so that the first real plot is
    quick (fonts, the SVG writer, constrained layout: the app's ready kernels call it before a
    page asks for them)."""
    fig = _figure(3, 2)
    ax = fig.add_subplot()
    ax.scatter([0, 1], [1, 0], s=4, label="a")
    ax.bxp([{"whislo": 0, "q1": 1, "med": 2, "q3": 3, "whishi": 4, "fliers": []}])
    ax.legend(title="warm-up", loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title("warm-up")
    _img(fig, "x", "warm-up")
