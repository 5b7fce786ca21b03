"""The table model and its renderers: on screen (rich, or plain text), CSV, Markdown, JSON.

Collecting numbers and formatting them stay apart, as in torchinfo. A :class:`Table` holds raw
values (ints, shapes, floats) under typed columns; each renderer formats them its own way, so
CSV gets plain numbers and the screen gets ``1,234``. Nothing here knows a domain type: each
command's view (``views/report.py``, ``views/compare.py`` ...) builds a Table from its data.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any, List

from archcalc.core.ops import fmt_shape

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


def human(value: float, zeros: bool = False) -> str:
    """3 significant digits and an SI letter: 97.5M, 1.58G, 163K; ``zeros`` keeps 7.00M so."""
    spec = "#.3g" if zeros and value else ".3g"
    for power, letter in ((9, "G"), (6, "M"), (3, "K"), (0, "")):
        if abs(value) >= 0.9995 * 10 ** power or not power:     # 999,500 is 1.00M, not 1e+03K
            return f"{value / 10 ** power:{spec}}".rstrip(".") + letter


def paper_shape(shape) -> str:
    """The paper's H×W×C for a C×H×W map; a vector as its length."""
    if len(shape) == 3:
        c, h, w = shape
        return fmt_shape((h, w, c))
    return fmt_shape(shape)


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


def text_rows(table: Table, plain: bool = True) -> List[List[str]]:
    """The rows (and the totals row) as text: machine-readable numbers when ``plain`` (CSV),
    else the cells as on screen, audit marks included (Markdown)."""
    if plain:
        rows = [[fmt_cell(v, c.kind, True) for v, c in zip(row, table.columns)]
                for row in table.rows]
    else:
        rows = [[_screen_cell(table, r, i)[0] for i in range(len(table.columns))]
                for r in range(len(table.rows))]
    if table.footer:
        rows.append([fmt_cell(v, c.kind, plain) for v, c in zip(table.footer, table.columns)])
    return rows


def to_csv(table: Table) -> str:
    """CSV with the stdlib: an export needs no data-frame library."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c.header for c in table.columns])
    writer.writerows(text_rows(table, plain=True))
    return buf.getvalue()


def to_markdown(table: Table) -> str:
    """A pipe table (tabulate), numbers right-aligned, as GitHub renders it."""
    from tabulate import tabulate
    align = ["right" if _numeric(c) else "left" for c in table.columns]
    body = tabulate(text_rows(table, plain=False), [c.header for c in table.columns],
                    tablefmt="pipe", colalign=align)
    lines = [f"**{table.title}**", ""]
    lines += [f"{note}  " for note in table.notes]
    lines += ["", body, ""]
    lines += [f"{line}  " for line in table.summary]
    return "\n".join(lines).rstrip() + "\n"


def to_json(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
