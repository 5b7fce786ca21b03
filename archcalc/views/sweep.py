"""The view of `archcalc sweep`: one row per point, and the summary line that counts them."""
from __future__ import annotations

from fractions import Fraction
from typing import Any, List

from archcalc.core.ops import fmt_shape
from archcalc.core.sweep import MEMORY_COUNTS, Sweep
from archcalc.views.table import Column, Table


def value_text(value: Any) -> str:
    """A setting's value as a reader writes it: 0.75, not 3/4."""
    return f"{float(value):g}" if isinstance(value, Fraction) else str(value)


def title(s: Sweep) -> str:
    """``GoogLeNet · sweep of input 3x128:512:32 · width 0.5, 1.0``."""
    parts = [s.name]
    if s.variant:
        parts.append(f"variant {s.variant}")
    swept = [f"input {s.input_text}"] if s.input_text else []
    swept += [f"{k} {', '.join(value_text(v) for v in vs)}" for k, vs in s.settings.items()]
    parts.append("sweep of " + " · ".join(swept) if swept else "its own input")
    if s.heads:
        parts.append("heads included")
    return " · ".join(parts)


def summary_line(s: Sweep) -> str:
    """``33 points: 31 computed, 2 did not fit (the first: input 3×32×32)``."""
    line = f"{len(s.points):,} point{'s' if len(s.points) != 1 else ''}: {s.computed:,} " \
           f"computed, {s.failed:,} did not fit"
    failed = [p for p in s.points if not p.ok]
    if failed:
        line += f" (the first: input {fmt_shape(failed[0].input)}"
        line += "".join(f", {k}={value_text(v)}" for k, v in failed[0].settings.items()) + ")"
    return line


def make_table(s: Sweep) -> Table:
    """Input, the given settings, params, MACs, activation memory; a point that does not fit
    says why in the last column, its numbers left empty."""
    columns = [Column("input")] + [Column(name) for name in s.settings] + [
        Column("params", "int"), Column("MACs", "int"),
        Column("memory (bytes)", "int"), Column("note", optional=1)]
    rows: List[list] = []
    for p in s.points:
        rows.append([fmt_shape(p.input)] + [value_text(v) for v in p.settings.values()] +
                    [p.params, p.macs, p.memory_bytes,
                     None if p.ok else f"does not fit: {p.error}"])
    notes = [f"memory: {MEMORY_COUNTS}"]
    return Table(title(s), notes, columns, rows, summary=[summary_line(s)])


def to_dict(s: Sweep) -> dict:
    """The JSON contract: the grid, every point's numbers or why it did not fit, the counts."""
    return {**s.to_dict(), "summary": summary_line(s)}
