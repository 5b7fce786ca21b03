"""The view of `archcalc verify`: one row per layer, the totals' lines, and the summary line."""
from __future__ import annotations

from typing import List

from archcalc.core.ops import fmt_shape
from archcalc.pytorch.verify import NOT_COUNTED, Check, LayerCheck, Verification
from archcalc.views.table import Column, Table


def summary_line(result: Verification, seconds: float) -> str:
    """``✓ 146 of 146 layers agree on cpu in 3.1 s`` (and what disagreed, if anything)."""
    agree = sum(l.ok for l in result.layers)
    mark = "✓" if result.ok else "✗"
    line = f"{mark} {agree} of {len(result.layers)} layers agree on {result.device} " \
           f"({result.device_note}) in {seconds:.1f} s"
    bad_totals = [k for k, c in result.totals.items() if not c.ok]
    if result.failed:
        shown = ", ".join(result.failed[:5]) + (" ..." if len(result.failed) > 5 else "")
        line += f"; disagree: {shown}"
    if result.error:
        line += f"; {result.error}"
    elif bad_totals:
        line += f"; totals disagree: {', '.join(bad_totals)}"
    return line


def to_table(result: Verification) -> Table:
    """One row per layer: the analytic figures, fvcore's count, and what PyTorch or fvcore
    measured differently, if anything (all measured figures are in the JSON)."""
    # A narrow terminal leaves out non-trainable first, then type and output; the counts
    # compared and the check stay.
    columns = [Column("layer"), Column("type", optional=2), Column("output", "shape", optional=3),
               Column("params", "int"), Column("non-trainable", "int", optional=1),
               Column("analytic", "int"), Column("fvcore", "int"), Column("check")]
    rows, flags = [], []
    for l in result.layers:
        rows.append([l.name, l.type, l.output_shape.analytic, l.params.analytic,
                     l.non_trainable.analytic, l.macs.analytic, l.macs.measured, verdict(l)])
        flags.append([not l.ok] * len(columns))
    t = result.totals
    footer = ["total (per image)", None, None, t["params"].analytic, t["non_trainable"].analytic,
              t["fvcore"].analytic, t["fvcore"].measured,
              "✓" if all(c.ok for c in t.values()) else "✗"]
    title = f"{result.name} · verify on {result.device} · batch {result.batch}"
    if result.variant:
        title += f" · variant {result.variant}"
    notes = ["checked against PyTorch (output shapes from forward hooks, parameters, buffers) "
             "and fvcore (by_module, eval mode); counts per image",
             "analytic: what fvcore should count, MACs for conv and linear, other ops for "
             "BatchNorm and global pooling (fvcore's eval-mode convention)",
             "non-trainable: BatchNorm running mean and variance; num_batches_tracked (an "
             "integer step counter) is not counted"]
    return Table(title, notes, columns, rows, footer, totals_lines(result), flags)


def verdict(layer: LayerCheck) -> str:
    """``✓``, ``✓ not counted by fvcore``, or ``✗`` and what was measured differently."""
    if layer.ok:
        return "✓" if layer.counted_as else f"✓ {NOT_COUNTED}"
    shape = layer.output_shape.measured
    wrong = [("output: torch", layer.output_shape,
              "—" if shape is None else fmt_shape(shape[1:] + shape[:1])),
             ("params: torch", layer.params, _fmt(layer.params.measured)),
             ("non-trainable: torch", layer.non_trainable, _fmt(layer.non_trainable.measured)),
             ("fvcore", layer.macs, _fmt(layer.macs.measured))]
    return "✗ " + "; ".join(f"{what} {text}" for what, check, text in wrong
                            if check.ok is False)


def totals_lines(result: Verification) -> List[str]:
    t = result.totals

    def mark(check: Check) -> str:
        return "✓" if check.ok else "✗"

    lines = [
        f"{mark(t['fvcore'])} fvcore total {_fmt(t['fvcore'].measured)} vs analytic "
        f"{_fmt(t['fvcore'].analytic)} (MACs {_fmt(t['macs'].analytic)} plus the other ops "
        "fvcore counts)",
        f"{mark(t['flopcounter'])} FlopCounterMode total {_fmt(t['flopcounter'].measured)} "
        f"FLOPs vs 2 × analytic MACs {_fmt(t['flopcounter'].analytic)}",
        f"{mark(t['params'])} parameters: PyTorch {_fmt(t['params'].measured)} vs analytic "
        f"{_fmt(t['params'].analytic)}; {mark(t['non_trainable'])} buffers "
        f"{_fmt(t['non_trainable'].measured)} vs {_fmt(t['non_trainable'].analytic)}",
    ]
    if result.error:
        lines.append(f"✗ {result.error}")
    if result.unsupported:
        listed = ", ".join(f"{op.removeprefix('aten::')} ×{n}"
                           for op, n in sorted(result.unsupported.items()))
        lines.append(f"fvcore did not count (no handler): {listed}")
    return lines


def _fmt(value) -> str:
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else str(value)
