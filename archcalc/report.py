"""Turn a Report into tables: on screen (rich), CSV, Markdown, JSON.

Collecting numbers (analysis) and formatting them (here) stay apart, as in torchinfo. A
:class:`Table` holds raw values (ints, shapes, floats) under typed columns; each renderer
formats them its own way, so CSV gets plain numbers and the screen gets ``1,234``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, List, Optional

from .analysis import PaperCell, Report

FORMATS = ("table", "csv", "markdown", "json")
STYLES = ("paper", "keras")
UNIT_LETTERS = ("", "K", "M", "G")


@dataclass
class Column:
    header: str
    kind: str = "text"      # text, int, shape (C,H,W shown as the paper's H×W×C), keras_shape,
                            # figure (a computed value in paper units), pct,
                            # ratio (a float shown as 2.37×)
    part: str = "main"      # "audit" columns go to a second table on screen


@dataclass
class Table:
    title: str
    notes: List[str]
    columns: List[Column]
    rows: List[List[Any]]
    footer: List[Any] = field(default_factory=list)     # a totals row, same columns
    summary: List[str] = field(default_factory=list)    # lines under the table
    flags: List[List[bool]] = field(default_factory=list)  # per cell: flagged by the audit


# --- building tables from a report ---------------------------------------------------------

def title_of(report: Report) -> str:
    shape = "×".join(map(str, report.input))
    parts = [report.name, f"input {shape}"]
    if report.variant:
        parts.append(f"variant {report.variant}")
    return " · ".join(parts)


def conventions() -> str:
    return ("params: trainable, biases included · MACs: multiply-adds of conv and linear "
            "weights, bias excluded (FLOPs = 2 × MACs)")


def audit_note(report: Report) -> str:
    k_params = report.paper_units["params"]
    k_ops = report.paper_units["ops"]
    return (f"paper audit: params in K = {k_params}, ops in M = "
            f"{'10^6' if k_ops == 1000 else '2^20'}; weights only (no biases); ops = MACs; "
            f"a cell is flagged ✗ when it differs beyond the printed precision and "
            f"{report.tolerance_pct:g}%")


def paper_table(report: Report) -> Table:
    """One row per spec row, as Table 1 lays them out, with the audit beside the paper's."""
    blocks = {}
    for r in report.rows:
        if r.block_args:
            blocks.setdefault(r.type, list(r.block_args))
    audited = [q for q in ("params", "ops") if any(q in r.paper for r in report.rows)]
    columns = [Column("name"), Column("type"), Column("patch/stride"), Column("output", "shape"),
               Column("depth", "int")]
    if blocks:
        columns.append(Column("block args"))
    columns += [Column("params", "int"), Column("MACs", "int")]
    for q in audited:
        columns += [Column(f"paper {q}", part="audit"), Column(f"{q} ≈", "figure", "audit"),
                    Column(f"Δ {q}", "pct", "audit")]
    rows, flags = [], []
    for r in report.rows:
        cells = [f"{r.name} (head)" if r.head else r.name, r.type, r.patch, r.output_shape,
                 r.depth]
        if blocks:
            cells.append(" ".join(str(v) for v in r.block_args.values()) or None)
        cells += [r.params, r.macs]
        flag = [False] * len(cells)
        for q in audited:
            cell: Optional[PaperCell] = r.paper.get(q)
            if cell is None:
                cells += [None, None, None]
                flag += [False] * 3
            else:
                cells += [cell.printed, (cell.computed, cell.printed), cell.delta_pct]
                flag += [False, cell.flag, cell.flag]
        rows.append(cells)
        flags.append(flag)
    t = report.totals
    footer = ["total", None, None, None, t.depth] + [None] * bool(blocks) + [t.params, t.macs]
    footer += [None] * (3 * len(audited))
    notes = [report.source] if report.source else []
    notes.append(conventions())
    notes += [f"block args of {name}: {', '.join(args)}" for name, args in blocks.items()]
    if audited:
        notes.append(audit_note(report))
    summary = [f"depth {t.depth} layers with weights ({t.depth_with_pool} counting pooling) · "
               f"params {t.params:,} ({t.weights:,} weights without biases) · "
               f"MACs {t.macs:,}"]
    if t.non_trainable:
        summary.append(f"non-trainable values (BatchNorm statistics): {t.non_trainable:,}")
    if audited:
        flagged = report.flagged
        listed = ", ".join(f"{n} {q}" for n, q in flagged) or "none"
        summary.append(f"audit: {len(flagged)} of {sum(len(r.paper) for r in report.rows)} "
                       f"published figures flagged: {listed}")
    return Table(title_of(report), notes, columns, rows, footer, summary, flags)


def detail_table(report: Report) -> Table:
    """Every primitive layer, each branch convolution of each Inception module included."""
    columns = [Column("layer"), Column("type"), Column("patch/stride"), Column("input", "shape"),
               Column("output", "shape"), Column("params", "int"), Column("weights", "int"),
               Column("non-trainable", "int"), Column("MACs", "int"), Column("other ops", "int")]
    rows = [[l.name, l.type, l.patch, l.input_shape, l.output_shape, l.params, l.weights,
             l.non_trainable, l.macs, l.other_ops] for l in report.layers]
    t = report.totals
    footer = ["total", None, None, None, None, t.params, t.weights, t.non_trainable, t.macs,
              t.other_ops]
    notes = [conventions(), "other ops: work of pooling, normalization and activations "
             "(comparisons, adds, scales), never folded into MACs"]
    return Table(title_of(report), notes, columns, rows, footer,
                 [f"{len(report.layers)} layers"])


def keras_table(report: Report) -> Table:
    """Keras' model.summary(): Param # counts trainable and non-trainable values."""
    columns = [Column("Layer (type)"), Column("Output Shape", "keras_shape"),
               Column("Param #", "int")]
    rows = [[f"{l.name} ({l.type})", l.output_shape, l.params + l.non_trainable]
            for l in report.layers]
    t = report.totals
    summary = [f"Total params: {t.params + t.non_trainable:,}",
               f"Trainable params: {t.params:,}",
               f"Non-trainable params: {t.non_trainable:,}"]
    return Table(f'Model: "{report.name}"', [], columns, rows, [], summary)


def make_table(report: Report, style: str = "paper", detail: bool = False) -> Table:
    if style == "keras":
        return keras_table(report)
    return detail_table(report) if detail else paper_table(report)


# --- formatting cells ----------------------------------------------------------------------

def fmt_cell(value: Any, kind: str, plain: bool = False) -> str:
    """A cell as text. ``plain`` (CSV) keeps numbers unformatted and machine-readable."""
    if value is None:
        return ""
    if kind == "int":
        return str(value) if plain else f"{value:,}"
    if kind == "shape":
        return paper_shape(value)
    if kind == "keras_shape":
        dims = value[1:] + value[:1] if len(value) == 3 else value
        return "(None, " + ", ".join(map(str, dims)) + ")"
    if kind == "figure":
        computed, printed = value
        if plain:
            return repr(round(computed, 6))
        decimals = len(printed.rstrip("KMG").split(".")[1]) if "." in printed else 0
        unit = printed[-1] if printed[-1] in "KMG" else ""
        return f"{computed:.{decimals + 1}f}{unit}"
    if kind == "ratio":
        return f"{value:.4f}" if plain else f"{value:.2f}×"
    if kind == "pct":
        if plain:
            return f"{value:.2f}"
        return f"{value:+.1f}%" if round(value, 1) else "0.0%"
    return str(value)


def paper_shape(shape) -> str:
    """The paper's H×W×C for a C×H×W map; a vector as its length."""
    if len(shape) == 3:
        c, h, w = shape
        return f"{h}×{w}×{c}"
    return "×".join(map(str, shape))


# --- renderers -----------------------------------------------------------------------------

def _parts(table: Table):
    """The screen shows the main columns, then the audit columns as a second, narrower table.

    Yields (column indexes, title, footer, summary lines, row indexes) for each part.
    """
    main = [i for i, c in enumerate(table.columns) if c.part == "main"]
    audit = [i for i, c in enumerate(table.columns) if c.part == "audit"]
    every = range(len(table.rows))
    yield main, table.title, table.footer, table.summary[:1] if audit else table.summary, every
    if audit:
        keep = [r for r in every if any(table.rows[r][i] is not None for i in audit)]
        yield [0] + audit, "Audit of the published figures", [], table.summary[1:], keep


def _screen_cell(table: Table, r: int, i: int):
    """A cell's text on screen and whether the audit flagged it."""
    value, col = table.rows[r][i], table.columns[i]
    flagged = bool(table.flags) and table.flags[r][i]
    text = fmt_cell(value, col.kind)
    if col.kind == "pct" and value is not None:
        text += " ✗" if flagged else " ✓"
    return text, flagged


def _numeric(col: Column) -> bool:
    return col.kind in ("int", "figure", "pct", "ratio")


def to_rich(table: Table) -> list:
    """Rich renderables, one per part (see :func:`_parts`)."""
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    out = []
    for cols, title, footer, summary, rows in _parts(table):
        rt = RichTable(title=title, caption="\n".join(summary) or None, box=box.SIMPLE_HEAVY,
                       show_footer=bool(footer), caption_justify="left", title_justify="left")
        for i in cols:
            col = table.columns[i]
            rt.add_column(col.header, justify="right" if _numeric(col) else "left",
                          overflow="fold", footer=fmt_cell(footer[i], col.kind) if footer else "")
        for r in rows:
            cells = [_screen_cell(table, r, i) for i in cols]
            rt.add_row(*(Text(t, style="bold red" if f else "") for t, f in cells))
        out.append(rt)
    return out


def render_plain(table: Table, color: bool = False) -> str:
    """The layout of :func:`to_rich` as plain text: fast for tables of any length, and what
    a file or a pipe gets. ``color`` marks flagged cells in ANSI red."""
    lines = list(table.notes)
    for cols, title, footer, summary, rows in _parts(table):
        headers = [table.columns[i].header for i in cols]
        body = [[_screen_cell(table, r, i) for i in cols] for r in rows]
        foot = [fmt_cell(footer[i], table.columns[i].kind) for i in cols] if footer else None
        widths = [max([len(h)] + [len(row[k][0]) for row in body] + ([len(foot[k])] if foot else []))
                  for k, h in enumerate(headers)]
        right = [_numeric(table.columns[i]) for i in cols]

        def line(cells, flags=()):
            out = []
            for k, text in enumerate(cells):
                text = text.rjust(widths[k]) if right[k] else text.ljust(widths[k])
                out.append(f"\x1b[1;31m{text}\x1b[0m" if color and k < len(flags) and flags[k]
                           else text)
            return ("  " + "   ".join(out)).rstrip()

        rule = " " + "━" * (sum(widths) + 3 * (len(widths) - 1) + 2)
        lines += ["", title, "", line(headers), rule]
        lines += [line([t for t, _ in row], [f for _, f in row]) for row in body]
        if foot:
            lines += [rule, line(foot)]
        lines += [""] + summary
    return "\n".join(lines) + "\n"


def to_frame(table: Table, plain: bool = True):
    """The table as a DataFrame of text: machine-readable numbers when ``plain`` (CSV), else
    the cells as on screen, audit marks included (Markdown)."""
    import pandas as pd
    if plain:
        rows = [[fmt_cell(v, c.kind, True) for v, c in zip(row, table.columns)]
                for row in table.rows]
    else:
        rows = [[_screen_cell(table, r, i)[0] for i in range(len(table.columns))]
                for r in range(len(table.rows))]
    if table.footer:
        rows.append([fmt_cell(v, c.kind, plain) for v, c in zip(table.footer, table.columns)])
    return pd.DataFrame(rows, columns=[c.header for c in table.columns])


def to_csv(table: Table) -> str:
    return to_frame(table, plain=True).to_csv(index=False, lineterminator="\n")


def to_markdown(table: Table) -> str:
    align = ["right" if _numeric(c) else "left" for c in table.columns]
    frame = to_frame(table, plain=False)
    lines = [f"**{table.title}**", ""]
    lines += [f"{note}  " for note in table.notes]
    lines += ["", frame.to_markdown(index=False, colalign=align), ""]
    lines += [f"{line}  " for line in table.summary]
    return "\n".join(lines).rstrip() + "\n"


def to_json(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
