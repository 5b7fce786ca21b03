"""Figures a report can use as is: per module (or row), weights and MACs as bars; a sweep's
params, MACs and memory as curves against what it varies.

Imported only when a plot is asked for. Figures are drawn on matplotlib's Agg canvas (no
display, no pyplot state), rendered to bytes, then written whole: temporary file, rename.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Union

from archcalc.errors import ArchcalcError, Position
from archcalc.extras import require
from archcalc.files import check_writable, write_atomic
from archcalc.views.table import human

require("plot", "drawing a plot")

from matplotlib import rc_context  # noqa: E402  (after the check that it is installed)
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

if TYPE_CHECKING:
    from archcalc.core.analysis import Report
    from archcalc.core.compare import Comparison
    from archcalc.core.sweep import Sweep

FORMATS = {".png": "png", ".svg": "svg"}
DPI = 150
WIDTH, HEIGHT = 10.0, 7.0           # inches; wider when there are many bars
COLORS = ("#d95f02", "#1b9e77")     # side a, side b (ColorBrewer Dark2, colour-blind safe)
FAILED = "#d62728"                  # a sweep's points that did not fit: red crosses
SERIES = COLORS + ("#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")  # Dark2
LOG_SPREAD = 20                     # a log axis when the largest bar is this many times the least


@dataclass
class Panel:
    ylabel: str
    series: Dict[str, List[Optional[int]]]      # label → one value per category (None: absent)
    notes: List[Optional[str]] = field(default_factory=list)   # above each category: "2.4×"


def check_path(path: Union[str, Path], force: bool = False) -> str:
    """The format for ``path`` (png or svg), checked writable before any work is done
    (``force``: a read-only file may be replaced)."""
    check_writable(path, force)
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        said = f"a '{suffix}' file" if suffix else "a file without an extension"
        raise ArchcalcError(f"cannot plot to {said}: give a file ending in .png or .svg",
                            Position(str(path)))
    return FORMATS[suffix]


def write(figure: Figure, path: Union[str, Path], force: bool = False) -> None:
    write_atomic(path, render(figure, check_path(path, force)), force)


def render(figure: Figure, fmt: str) -> bytes:
    """The figure as PNG or SVG bytes; the same figure gives the same bytes (no date, fixed
    SVG ids), so a figure kept in a repository changes only when its numbers do."""
    buf = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    FigureCanvasAgg(figure)
    with rc_context({"svg.hashsalt": "archcalc"}):
        figure.savefig(buf, format=fmt, dpi=DPI, metadata=metadata)
    return buf.getvalue()


# --- figures -------------------------------------------------------------------------------

def comparison_figure(c: "Comparison") -> Figure:
    """Per module, weights and MACs of both sides; the whole networks' totals in the title."""
    from archcalc.views.compare import title
    pairs = c.modules if c.mode == "variants" else \
        [p for p in c.modules if any(s and (s.weights or s.macs) for s in (p.a, p.b))]
    panels = [Panel(ylabel, {c.a.label: [p.a and getattr(p.a, q) for p in pairs],
                             c.b.label: [p.b and getattr(p.b, q) for p in pairs]},
                    [_times(p.ratio(q)) for p in pairs])
              for q, ylabel in (("weights", "weights (no biases)"),
                                ("macs", "multiply-adds (MACs)"))]
    totals = " · ".join(f"{n.label} {human(n.total('weights'), True)} weights, "
                        f"{human(n.total('macs'), True)} MACs" for n in (c.a, c.b))
    xlabel = (f"module, each fed the same input (as {c.feeder} feeds it); "
              f"above the bars: {c.a.label} / {c.b.label}") if c.mode == "variants" else \
        f"row (matched by name; rows without weights left out); above: {c.a.label} / {c.b.label}"
    return bars(f"{title(c)}\nwhole network: {totals}", [p.name for p in pairs], panels,
                xlabel)


def report_figure(report: "Report") -> Figure:
    """Per row of `archcalc table`, params and MACs; rows without either are left out."""
    from archcalc.views.report import title_of
    rows = [r for r in report.rows if r.params or r.macs]
    label = report.variant or report.name
    panels = [Panel("params (biases included)", {label: [r.params for r in rows]}),
              Panel("multiply-adds (MACs)", {label: [r.macs for r in rows]})]
    t = report.totals
    title = f"{title_of(report)}\ntotal: {human(t.params, True)} params, " \
            f"{human(t.macs, True)} MACs"
    return bars(title, [r.name for r in rows], panels,
                "row (rows without parameters or multiply-adds left out)")


def sweep_figure(s: "Sweep") -> Figure:
    """Params, MACs and activation memory against the first thing that varies (the input's
    size, else a setting), one curve per value of whatever else varies; a point that did not
    fit is a gap in its curve and a red cross at the foot of each panel; the title counts them."""
    from archcalc.views.sweep import title, value_text
    x_axis, others = (s.axes[0], s.axes[1:]) if s.axes else (None, [])
    curves: Dict[str, list] = {}
    for p in s.points:
        label = ", ".join(f"{a.name}={value_text(a.value(p))}" for a in others) or s.name
        curves.setdefault(label, []).append(p)
    xs = [x_axis.value(p) if x_axis else 0 for p in s.points]
    numeric = all(isinstance(v, (int, Fraction)) for v in xs)
    ticks = list(dict.fromkeys(xs))             # a setting that is a name: one tick a value

    def position(value) -> float:
        return float(value) if numeric else ticks.index(value)
    fig = Figure(figsize=(WIDTH, HEIGHT * 1.3), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    quantities = (("params", "params (biases included)"), ("macs", "multiply-adds (MACs)"),
                  ("memory_bytes", "activation memory, bytes\n(forward, batch 1, float32)"))
    for ax, (q, ylabel) in zip(axes, quantities):
        for i, (label, points) in enumerate(curves.items()):
            px = [position(x_axis.value(p) if x_axis else 0) for p in points]
            py = [getattr(p, q) if p.ok else float("nan") for p in points]
            ax.plot(px, py, marker="o", markersize=3, label=label,
                    color=SERIES[i % len(SERIES)])
        failed = sorted({position(x_axis.value(p) if x_axis else 0)
                         for p in s.points if not p.ok})
        if failed:      # at the foot of the panel, so the axis spans every point swept
            ax.plot(failed, [0.02] * len(failed), linestyle="none", marker="x",
                    color=FAILED, label="did not fit", transform=ax.get_xaxis_transform())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: human(v)))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if (len(curves) > 1 or failed) and q == "params":
            ax.legend(loc="best", frameon=False, fontsize=8)
    if not numeric:
        axes[-1].set_xticks(range(len(ticks)), [value_text(v) for v in ticks])
    axes[-1].set_xlabel(x_axis.name if x_axis else "(nothing varies: one point)")
    fit = f"{s.computed:,} of {len(s.points):,} points computed" + \
        (f"; {s.failed:,} did not fit (×)" if s.failed else "")
    fig.suptitle(f"{title(s)}\n{fit}")
    return fig


def profile_figure(p) -> Figure:
    """`archcalc profile`: each layer's measured time as a bar, the roofline's prediction as
    a marker on it (log scale: layers differ by orders of magnitude); the backward pass in a
    second panel with --backward."""
    from archcalc.views.table import seconds
    passes = [("forward", p.forward, [l.forward_seconds for l in p.layers])]
    if p.backward is not None:
        passes.append(("backward", p.backward, [l.backward_seconds for l in p.layers]))
    names = [l.name for l in p.layers]
    fig = Figure(figsize=(max(WIDTH, 0.14 * len(names) + 2), HEIGHT), layout="constrained")
    axes = fig.subplots(len(passes), 1, sharex=True, squeeze=False)[:, 0]
    x = list(range(len(names)))
    for ax, (name, roof, measured) in zip(axes, passes):
        ax.bar(x, [m or 0 for m in measured], 0.8, label="measured", color=COLORS[1])
        ax.plot(x, [l.seconds for l in roof.layers], linestyle="none", marker="_",
                markersize=9, markeredgewidth=2, color=COLORS[0], label="roofline prediction")
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: seconds(v)))
        ax.set_ylabel(f"{name} time per layer, log scale")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        ax.legend(loc="upper right", frameon=False, fontsize=8)
    axes[-1].set_xticks(x, names, rotation=90, fontsize=6 if len(names) > 40 else 8)
    axes[-1].set_xlabel("layer, in execution order")
    totals = "; ".join(f"{name} predicted {seconds(roof.seconds)}, measured "
                       f"{seconds(sum(m or 0 for m in measured))}"
                       for name, roof, measured in passes)
    fig.suptitle(f"{p.name} on {p.device} ({p.profile.name}), {p.dtype}, batch {p.batch:,}"
                 f"\n{totals}")
    return fig


def bars(title: str, categories: Sequence[str], panels: Sequence[Panel], xlabel: str) -> Figure:
    """One panel per quantity, stacked, sharing the categories; bars of each series side by
    side; a log axis where the values spread over more than LOG_SPREAD times."""
    width = max(WIDTH, 0.75 * len(categories) + 2)
    fig = Figure(figsize=(width, HEIGHT), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    x = list(range(len(categories)))
    for k, (ax, panel) in enumerate(zip(axes, panels)):
        n = len(panel.series)
        step = 0.8 / n
        for i, (label, values) in enumerate(panel.series.items()):
            offset = (i - (n - 1) / 2) * step
            ax.bar([xi + offset for xi in x], [v or 0 for v in values], step * 0.95,
                   label=label, color=COLORS[i % len(COLORS)])
        positive = [v for values in panel.series.values() for v in values if v]
        log = bool(positive) and max(positive) >= LOG_SPREAD * min(positive)
        if log:
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: human(v)))
        ax.margins(y=0.15)
        for xi, note in zip(x, panel.notes):
            if note:
                top = max((values[xi] or 0) for values in panel.series.values())
                ax.annotate(note, (xi, top), xytext=(0, 3), textcoords="offset points",
                            ha="center", va="bottom", fontsize=8)
        ax.set_ylabel(panel.ylabel + (", log scale" if log else ""))
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        if n > 1 and k == 0:
            ax.legend(loc="upper left", frameon=False)
    axes[-1].set_xticks(x, categories)
    axes[-1].set_xlabel(xlabel)
    fig.suptitle(title)
    return fig


def _times(r: Optional[float]) -> Optional[str]:
    """A ratio over a pair of bars, two significant digits: 2.4×, 0.34×, 14×."""
    if r is None:
        return None
    return f"{r:.2g}×" if r < 100 else f"{r:.0f}×"
