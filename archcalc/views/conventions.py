"""The view of `archcalc conventions`: each FLOP counter's count of one network, op type by
op type, and what each tool counts twice or leaves out (core/conventions.py)."""
from __future__ import annotations

from archcalc.core.conventions import Reconciliation
from archcalc.core.ops import fmt_shape
from archcalc.views.table import Column, Table


NARROW = {"ptflops-aten": 2, "flopcounter": 3}


def make_table(result: Reconciliation) -> Table:
    """One row per op type, one column per tool; the totals as the footer; what each tool is
    as notes and its double counts and omissions under the table."""
    # a narrow terminal leaves out the layer counts, then the tools whose figure follows from
    # another's (ptflops-aten: the MACs and the biases; flopcounter: 2 × the MACs); their
    # totals stay in the lines under the table
    columns = [Column("op"), Column("layers", "int", optional=1)]
    columns += [Column(t.name, "int", optional=NARROW.get(t.name, 0)) for t in result.tools]
    rows = [[r.op, r.layers] + [r.values[t.name] for t in result.tools] for r in result.ops]
    footer = ["total", sum(r.layers for r in result.ops)] + \
        [result.totals[t.name] for t in result.tools]
    notes = [f"{t.name}: {t.title}, {t.unit}: {t.counts}" for t in result.tools]
    summary = [f"{t.name} {t.unit} {result.totals[t.name]:,}" for t in result.tools]
    summary += [f"{t.name}: {quirk}" for t in result.tools for quirk in t.quirks]
    if result.opaque:
        summary.append(f"{len(result.opaque)} opaque layer{'s' * (len(result.opaque) != 1)}: "
                       f"no tool's count includes them ({', '.join(result.opaque)})")
    title = f"{result.name} · input {fmt_shape(result.input)} · counts by tool"
    return Table(title, notes, columns, rows, footer, summary)
