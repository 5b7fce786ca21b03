"""The table model and its renderers: on screen (rich, or plain text), CSV, Markdown, JSON.

Collecting numbers and formatting them stay apart, as in torchinfo. A :class:`Table` holds raw
values (ints, shapes, floats) under typed columns; each renderer formats them its own way, so
CSV gets plain numbers and the screen gets ``1,234``. Nothing here knows a domain type: each
command's view (``views/report.py``, ``views/compare.py`` ...) builds a Table from its data.

A terminal narrower than a table gets a fitted copy (:func:`fit`): numbers shortened first
(``7.00M``), then the columns the view marked optional left out, and a note says which. A
cell is never split: a number is printed whole, or shortened, or its column is left out.

Text comes from users (a spec's keys, name, description, source): every renderer passes it
through :func:`archcalc.errors.printable`, so a control character is shown as ``\\x1b`` and
never reaches a terminal, nor breaks a Markdown or CSV line; rich gets it as Text (no markup).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence

from archcalc.core.ops import fmt_shape
from archcalc.errors import printable

@dataclass
class Column:
    header: str
    kind: str = "text"      # text, int, shape (C,H,W shown as the paper's H×W×C), keras_shape,
                            # shapes (a layer's inputs: several for a join), figure (a computed
                            # value in paper units), pct, ratio (a float shown as 2.37×), label
                            # (text a narrow terminal may cut: a stage's blocks), seconds
                            # (a time: 12.3 µs, 4.56 ms), float (a ratio such as FLOP/byte),
                            # fraction (0.123 shown as 12.3%)
    part: str = "main"      # "audit" columns go to a second table on screen
    optional: int = 0       # 0: always shown; else left out on a narrow terminal, 1 first


@dataclass
class Table:
    title: str
    notes: List[str]
    columns: List[Column]
    rows: List[List[Any]]
    footer: List[Any] = field(default_factory=list)     # a totals row, same columns
    summary: List[str] = field(default_factory=list)    # lines under the table
    flags: List[List[bool]] = field(default_factory=list)  # per cell: flagged by the audit
    short: bool = False     # on screen, numbers as 7.00M and a join's inputs as a count (fit)


# --- formatting cells ----------------------------------------------------------------------

SHORT_KINDS = {"int": "numbers shortened (K = 10^3, M = 10^6, G = 10^9)",
               "shapes": "a join's inputs counted",
               "label": "long types cut (…)"}
LABEL_SHORT = 24    # a label ("linear_bottleneck ×1 + inverted_residual ×3") cut to this


def fmt_cell(value: Any, kind: str, plain: bool = False, short: bool = False) -> str:
    """A cell as text. ``plain`` (CSV) keeps numbers unformatted and machine-readable;
    ``short`` (a narrow terminal) gives ``7.00M`` for 6,998,552 and ``4 inputs``."""
    if value is None:
        return ""
    if kind == "int":
        if plain:
            return str(value)
        return human(value, True) if short and abs(value) >= 1000 else f"{value:,}"
    if kind == "shape":
        return paper_shape(value)
    if kind == "shapes":
        if short and len(value) > 1:
            return f"{len(value)} inputs"
        return " + ".join(paper_shape(s) for s in value)
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
    if kind == "seconds":
        return repr(float(value)) if plain else seconds(value)
    if kind == "float":
        if plain:
            return repr(float(value))
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if kind == "fraction":
        if plain:
            return f"{value:.6g}"
        return f"{value:.1%}" if value >= 0.001 else f"{value * 100:.2g}%"
    if kind == "pct":
        if plain:
            return f"{value:.2f}"
        return f"{value:+.1f}%" if round(value, 1) else "0.0%"
    text = printable(str(value))
    if kind == "label" and short and len(text) > LABEL_SHORT:
        return text[:LABEL_SHORT - 1] + "…"
    return text


def human(value: float, zeros: bool = False) -> str:
    """3 significant digits and an SI letter: 97.5M, 1.58G, 163K; ``zeros`` keeps 7.00M so."""
    spec = "#.3g" if zeros and value else ".3g"
    for power, letter in ((9, "G"), (6, "M"), (3, "K"), (0, "")):
        if abs(value) >= 0.9995 * 10 ** power or not power:     # 999,500 is 1.00M, not 1e+03K
            return f"{value / 10 ** power:{spec}}".rstrip(".") + letter


def seconds(value: float) -> str:
    """A time in the unit that gives it 3 significant digits: 812 ns, 12.3 µs, 4.56 ms, 2.10 s."""
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(value) >= 0.9995 * scale:
            return f"{value / scale:#.3g}".rstrip(".") + f" {unit}"
    return f"{value / 1e-9:#.3g}".rstrip(".") + " ns" if value else "0 s"


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
    text = fmt_cell(value, col.kind, short=table.short)
    if col.kind == "pct" and value is not None:
        text += " ✗" if flagged else " ✓"
    return text, flagged


def _numeric(col: Column) -> bool:
    return col.kind in ("int", "figure", "pct", "ratio", "seconds", "float", "fraction")


def _footer_cell(table: Table, i: int) -> str:
    return fmt_cell(table.footer[i], table.columns[i].kind, short=table.short)


# --- fitting a terminal --------------------------------------------------------------------

@dataclass
class Fitted:
    """A table fitted to a terminal ``width`` wide, and what was done to it."""

    table: Table
    width: int
    left_out: List[str] = field(default_factory=list)     # headers of the columns left out
    shortened: List[str] = field(default_factory=list)    # what was shortened (SHORT_KINDS)

    def note(self) -> Optional[str]:
        """The dim line under the table: what a reader does not see, and how to see it."""
        said = ([f"left out {', '.join(self.left_out)}"] if self.left_out else []) + \
            self.shortened
        if not said:
            return None
        return f"narrow terminal ({self.width} columns): {'; '.join(said)}; --wide shows all"


def column_widths(table: Table) -> List[int]:
    """Each column's width on screen: its widest cell, header and total included."""
    widths = [len(printable(c.header)) for c in table.columns]
    for r in range(len(table.rows)):
        for i in range(len(widths)):
            widths[i] = max(widths[i], len(_screen_cell(table, r, i)[0]))
    if table.footer:
        widths = [max(w, len(_footer_cell(table, i))) for i, w in enumerate(widths)]
    return widths


def _parts_columns(table: Table, keep: Optional[Sequence[int]] = None) -> List[List[int]]:
    """The columns of each part on screen (see :func:`_parts`), of those in ``keep``."""
    keep = range(len(table.columns)) if keep is None else keep
    parts = [[i for i in keep if table.columns[i].part == part] for part in ("main", "audit")]
    if parts[1]:
        parts[1] = [0] + parts[1]
    return [cols for cols in parts if cols]


def _part_width(widths: Sequence[int], cols: Sequence[int]) -> int:
    """A part's lines: each column one space either side, one between columns, one at each
    edge (rich's SIMPLE_HEAVY box, which :func:`render_plain` draws too)."""
    return sum(widths[i] for i in cols) + 3 * len(cols) + 1


def layout_width(table: Table, widths: Sequence[int],
                 keep: Optional[Sequence[int]] = None) -> int:
    """The widest line of the screen layout (every part) with the columns ``keep``."""
    return max(_part_width(widths, cols) for cols in _parts_columns(table, keep))


def screen_width(table: Table) -> int:
    """How wide the table is on screen, every column as wide as its widest cell."""
    return layout_width(table, column_widths(table))


def fit(table: Table, width: int) -> Fitted:
    """``table`` as it fits ``width`` columns: whole when it fits; else with numbers shortened
    (when a part too wide has any to shorten); else also without optional columns, the lowest
    ``optional`` first, taken only from the parts still too wide, until every part fits.
    When even that is too wide, the least that can be shown is (the terminal then wraps)."""
    full = column_widths(table)
    over = [cols for cols in _parts_columns(table) if _part_width(full, cols) > width]
    if not over:
        return Fitted(table, width)
    short = dataclasses.replace(table, short=True)
    widths = column_widths(short)
    if not any(widths[i] < full[i] for cols in over for i in cols):
        short, widths = table, full
    keep = list(range(len(table.columns)))
    for level in sorted({c.optional for c in table.columns if c.optional}):
        over = [cols for cols in _parts_columns(table, keep) if _part_width(widths, cols) > width]
        if not over:
            break
        keep = [i for i in keep
                if table.columns[i].optional != level or not any(i in cols for cols in over)]
    fitted = select(short, keep)
    shortened = [said for kind, said in SHORT_KINDS.items()
                 if fitted.short and any(_changed(fitted, i) for i, c in
                                         enumerate(fitted.columns) if c.kind == kind)]
    left_out = [table.columns[i].header for _, i in
                sorted((c.optional, i) for i, c in enumerate(table.columns) if i not in keep)]
    return Fitted(fitted, width, left_out, shortened)


def _changed(short: Table, i: int) -> bool:
    """Whether shortening changed any cell of column ``i``."""
    kind = short.columns[i].kind
    values = [row[i] for row in short.rows] + ([short.footer[i]] if short.footer else [])
    return any(fmt_cell(v, kind) != fmt_cell(v, kind, short=True) for v in values)


def select(table: Table, keep: Sequence[int]) -> Table:
    """``table`` with only the columns ``keep`` (in their order)."""
    return dataclasses.replace(
        table, columns=[table.columns[i] for i in keep],
        rows=[[row[i] for i in keep] for row in table.rows],
        footer=[table.footer[i] for i in keep] if table.footer else [],
        flags=[[row[i] for i in keep] for row in table.flags])


# --- on screen -----------------------------------------------------------------------------

def to_rich(table: Table) -> list:
    """Rich renderables, one per part (see :func:`_parts`). Each column is as wide as its
    widest cell and never wraps, so a number is never split; print them on a console at
    least :func:`layout_width` wide (a fitted table fits the terminal)."""
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    widths = column_widths(table)
    out = []
    for cols, title, footer, summary, rows in _parts(table):
        caption = "\n".join(printable(line) for line in summary)
        rt = RichTable(title=Text(printable(title)), caption=Text(caption) if caption else None,
                       box=box.SIMPLE_HEAVY, show_footer=bool(footer), caption_justify="left",
                       title_justify="left")
        for i in cols:
            col = table.columns[i]
            rt.add_column(Text(printable(col.header)),
                          justify="right" if _numeric(col) else "left", no_wrap=True,
                          min_width=widths[i],
                          footer=Text(_footer_cell(table, i)) if footer else "")
        for r in rows:
            cells = [_screen_cell(table, r, i) for i in cols]
            rt.add_row(*(Text(t, style="bold red" if f else "") for t, f in cells))
        out.append(rt)
    return out


def render_plain(table: Table, color: bool = False, width: Optional[int] = None) -> str:
    """The layout of :func:`to_rich` as plain text: fast for tables of any length, and what
    a file or a pipe gets. ``color`` marks flagged cells in ANSI red; ``width`` (a terminal's)
    wraps the notes, titles and summary lines between words (fit the table itself first)."""
    def wrap(texts):
        texts = [printable(text) for text in texts]
        if width is None:
            return texts
        return [part for text in texts for part in
                (textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
                 or [""])]

    lines = wrap(table.notes)
    for cols, title, footer, summary, rows in _parts(table):
        headers = [printable(table.columns[i].header) for i in cols]
        body = [[_screen_cell(table, r, i) for i in cols] for r in rows]
        foot = [_footer_cell(table, i) for i in cols] if footer else None
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
        lines += [""] + wrap([title]) + ["", line(headers), rule]
        lines += [line([t for t, _ in row], [f for _, f in row]) for row in body]
        if foot:
            lines += [rule, line(foot)]
        lines += [""] + wrap(summary)
    return "\n".join(lines) + "\n"


# --- files ---------------------------------------------------------------------------------

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
    """CSV with the stdlib: an export needs no data-frame library. Control characters in
    text are escaped as on screen (see :func:`printable`), so a CSV shown with ``cat`` is safe
    and every record is one line."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([printable(c.header) for c in table.columns])
    writer.writerows(text_rows(table, plain=True))
    return buf.getvalue()


def _md_cell(text: str) -> str:
    """A cell of a pipe table: a '|' in a name would start a new column."""
    return printable(text).replace("|", "\\|")


def to_markdown(table: Table) -> str:
    """A pipe table (tabulate), numbers right-aligned, as GitHub renders it."""
    from tabulate import tabulate
    align = ["right" if _numeric(c) else "left" for c in table.columns]
    body = tabulate([[_md_cell(t) for t in row] for row in text_rows(table, plain=False)],
                    [_md_cell(c.header) for c in table.columns],
                    tablefmt="pipe", colalign=align)
    lines = [f"**{printable(table.title)}**", ""]
    lines += [f"{printable(note)}  " for note in table.notes]
    lines += ["", body, ""]
    lines += [f"{printable(line)}  " for line in table.summary]
    return "\n".join(lines).rstrip() + "\n"


_JSON_CONTROLS = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def to_json(data: dict) -> str:
    """JSON keeps a user's text exactly; json escapes C0 controls itself, and DEL, C1 and the
    bidirectional overrides are escaped here too (\\u009b), so the text is safe on a terminal
    and parses back unchanged."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return _JSON_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
