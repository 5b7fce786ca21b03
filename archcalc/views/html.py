"""The view of `archcalc report`: one self-contained HTML page (diagram, table, plots).

The page needs no network to open: its style and script are inline, fonts are the system's,
the diagram and the plots are inline SVG. Every text a spec supplies (names, descriptions,
sources) is escaped with :func:`html.escape`; the per-row numbers travel as JSON in a
``<script type="application/json">`` block with ``<`` written ``\\u003c``, so a name holding
``</script>`` cannot end it. The numbers are formatted here, in Python, as on screen; the
page's small script only sorts the table and shows a node's numbers, with ``textContent``.
"""
from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, Union

from archcalc.core.analysis import Report
from archcalc.views.report import paper_table, title_of
from archcalc.views.table import Table, fmt_cell, paper_shape

if TYPE_CHECKING:
    from archcalc.core.compare import Comparison

FLAG = "✗"
FLAG_TEXT = "flagged"
NUMERIC = ("int", "figure", "pct", "ratio")


def esc(text) -> str:
    return html.escape(str(text), quote=True)


# --- the table -----------------------------------------------------------------------------

def _sort_value(value, kind: str) -> str:
    """What the script sorts a cell by: the raw number, or the text."""
    if value is None:
        return ""
    if kind == "figure":
        return repr(value[0])
    if kind in NUMERIC:
        return repr(value)
    if kind == "shape":
        return repr(value[0] * value[1] * value[2]) if len(value) == 3 else str(value[0])
    return str(value)


def table_html(table: Table, table_id: str, caption: str) -> str:
    """A Table as an HTML table: headers with scope and a sort button; a flagged figure
    marked by colour, a ✗ and the word 'flagged' (for a screen reader and in print)."""
    numeric = [c.kind in NUMERIC for c in table.columns]
    out = [f'<table id="{esc(table_id)}" class="sortable"><caption>{esc(caption)}</caption>',
           "<thead><tr>"]
    for i, col in enumerate(table.columns):
        kind = "num" if numeric[i] else "text"
        out.append(f'<th scope="col" data-kind="{kind}" aria-sort="none"'
                   f'{" class=num" if numeric[i] else ""}><button type="button">'
                   f'{esc(col.header)}</button></th>')
    out.append("</tr></thead><tbody>")
    for r, row in enumerate(table.rows):
        flags = table.flags[r] if table.flags else [False] * len(row)
        out.append(f'<tr data-row="{esc(row[0])}">')
        for i, (value, col) in enumerate(zip(row, table.columns)):
            text = esc(fmt_cell(value, col.kind))
            classes = (["num"] if numeric[i] else []) + (["flag"] if flags[i] else [])
            if flags[i]:
                text += f' <span class="mark">{FLAG}<span class="sr"> {FLAG_TEXT}</span></span>'
            elif col.kind == "pct" and value is not None:
                text += ' <span class="ok">✓<span class="sr"> agrees</span></span>'
            attrs = f' class="{" ".join(classes)}"' if classes else ""
            sort = f' data-v="{esc(_sort_value(value, col.kind))}"'
            if i == 0:
                out.append(f'<th scope="row"{sort}>{text}</th>')
            else:
                out.append(f"<td{attrs}{sort}>{text}</td>")
        out.append("</tr>")
    out.append("</tbody>")
    if table.footer:
        cells = [esc(fmt_cell(v, c.kind)) for v, c in zip(table.footer, table.columns)]
        out.append(f'<tfoot><tr><th scope="row">{cells[0]}</th>')
        out += [f'<td{" class=num" if numeric[i] else ""}>{c}</td>'
                for i, c in enumerate(cells) if i]
        out.append("</tr></tfoot>")
    out.append("</table>")
    return "".join(out)


def lines_html(lines: Sequence[str], cls: str) -> str:
    return "".join(f'<p class="{cls}">{esc(line)}</p>' for line in lines)


# --- the numbers behind the details panel --------------------------------------------------

def _count(value: int) -> str:
    return fmt_cell(value, "int")


def row_details(report: Report) -> Dict[str, List[Tuple[str, str]]]:
    """Per row, its numbers as (label, text) pairs, formatted as on screen."""
    units = report.paper_units
    out = {}
    for r in report.rows:
        pairs = [("type", r.type)]
        if r.patch:
            pairs.append(("patch/stride", r.patch))
        pairs += [("output", paper_shape(r.output_shape)),
                  ("params (biases included)", _count(r.params)),
                  ("weights (no biases)", _count(r.weights)),
                  ("MACs", _count(r.macs))]
        if r.non_trainable:
            pairs.append(("non-trainable values", _count(r.non_trainable)))
        if r.other_ops:
            pairs.append(("other ops", _count(r.other_ops)))
        pairs.append(("depth", str(r.depth)))
        if r.block_args:
            pairs.append(("block args", ", ".join(f"{k} {v}" for k, v in r.block_args.items())))
        for q, c in r.paper.items():
            unit = "K = " + str(units["params"]) if q == "params" else \
                "M = " + ("10^6" if units["ops"] == 1000 else "2^20")
            computed = fmt_cell((c.computed, c.printed), "figure")
            mark = f"{FLAG} {FLAG_TEXT}" if c.flag else "✓ agrees"
            pairs.append((f"paper {q}",
                          f"{c.printed} printed, {computed} computed ({unit}), "
                          f"{fmt_cell(c.delta_pct, 'pct')} {mark}"))
        if r.head:
            pairs.append(("head", "training only"))
        out[r.name] = pairs
    return out


def layer_details(report: Report) -> Dict[str, List[Tuple[str, str]]]:
    """Per primitive layer (a detailed diagram's nodes), its numbers and its row."""
    out = {}
    for l in report.layers:
        pairs = [("type", l.type), ("row", l.row)]
        if l.patch:
            pairs.append(("patch/stride", l.patch))
        pairs += [("input", fmt_cell(l.input_shapes, "shapes")),
                  ("output", paper_shape(l.output_shape)),
                  ("params", _count(l.params)), ("weights", _count(l.weights)),
                  ("MACs", _count(l.macs))]
        if l.non_trainable:
            pairs.append(("non-trainable values", _count(l.non_trainable)))
        if l.other_ops:
            pairs.append(("other ops", _count(l.other_ops)))
        out[l.name] = pairs
    return out


def data_json(report: Report) -> str:
    """The details as JSON that cannot end its script element: every ``<`` as ``\\u003c``
    (and ``>``, ``&`` too, so no ``<!--`` or ``]]>`` games either)."""
    text = json.dumps({"rows": row_details(report), "layers": layer_details(report)},
                      ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# --- plots ---------------------------------------------------------------------------------

def plots(report: Report, comparison: Optional["Comparison"] = None) -> Optional[List[str]]:
    """The plots as inline SVG (text kept as text: smaller, and readable), or None when the
    plot extra (matplotlib) is not installed."""
    from archcalc.extras import MissingExtra
    try:
        from archcalc.views import plot
    except MissingExtra:
        return None
    from matplotlib import rc_context
    figures = [plot.report_figure(report)]
    if comparison is not None:
        figures.append(plot.comparison_figure(comparison))
    out = []
    for k, figure in enumerate(figures):
        with rc_context({"svg.fonttype": "none"}):
            text = plot.render(figure, "svg").decode("utf-8")
        # no XML declaration or DOCTYPE inline; ids unique in the page
        out.append(_prefix_ids(text[text.index("<svg"):], f"plot{k}-"))
    return out


_REF = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')


def _prefix_ids(svg: str, prefix: str) -> str:
    """Every id of ``svg`` and every reference to one, prefixed: matplotlib numbers its ids
    from 1 in each file (figure_1, patch_1), so two plots in one page would share them."""
    return _REF.sub(lambda m: m.group(1) + prefix + m.group(2), svg)


def plots_missing() -> str:
    from archcalc.extras import EXTRAS
    return f"The plots need matplotlib: {EXTRAS['plot'][1]}"


# --- the page ------------------------------------------------------------------------------

@dataclass
class Missing:
    """A part of the page that could not be made (Graphviz not installed), and why."""
    why: str


def page(report: Report, diagram: Union[str, Missing, None] = None,
         comparison: Optional["Comparison"] = None,
         figures: Optional[List[str]] = None) -> str:
    """The whole page. ``diagram``: inline SVG whose nodes are ``<g id="row-NAME">`` (and
    ``layer-NAME``), or why there is none; ``figures``: inline SVG plots, None when they could not be drawn."""
    title = title_of(report)
    tab = paper_table(report)
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
             f'<meta name=viewport content="width=device-width, initial-scale=1">'
             f"<title>{esc(report.name)} · archcalc report</title><style>{CSS}</style>"
             f"</head><body><main><h1>{esc(report.name)}</h1>",
             f'<p class="lead">{esc(title)}</p>']
    if report.source:
        parts.append(f'<p class="note">{esc(report.source)}</p>')
    parts.append('<section aria-labelledby="h-diagram"><h2 id="h-diagram">Diagram</h2>')
    if isinstance(diagram, Missing):
        parts.append(f'<p class="note">No diagram: {esc(diagram.why)}. The table below '
                     'lists every row.</p>')
    elif diagram:
        parts.append('<p class="note">Hover over, click or focus (Tab, then Enter) a node to '
                     'see its numbers beside it; the table under it holds the same numbers as '
                     'text.</p>')
        parts.append(f'<div class="graph-area"><div class="diagram">{diagram}</div>')
    else:
        parts.append('<p class="note">No diagram: the table below lists every row.</p>')
    parts.append('<div id="details" class="details" role="region" aria-live="polite" '
                 'aria-label="details of the selected node"><p class="note">No node selected.'
                 '</p></div>')
    parts.append("</div></section>" if diagram and not isinstance(diagram, Missing)
                 else "</section>")
    parts.append('<section aria-labelledby="h-table"><h2 id="h-table">Table</h2>')
    parts.append(lines_html(tab.notes, "note"))
    legend = (f'Sort by clicking a column header. A flagged figure is marked {FLAG} '
              f'“{FLAG_TEXT}” on a red ground: it differs from the published one beyond the '
              f'printed precision and {report.tolerance_pct:g}%; ✓ agrees.')
    parts.append(f'<p class="note">{esc(legend)}</p>')
    parts.append(f'<div class="scroll">{table_html(tab, "rows", title)}</div>')
    parts.append(lines_html(tab.summary, "summary"))
    parts.append("</section>")
    if comparison is not None:
        from archcalc.views import compare as compared
        ctab = compared.make_table(comparison)
        parts.append('<section aria-labelledby="h-compare"><h2 id="h-compare">Comparison'
                     '</h2>')
        parts.append(lines_html(ctab.notes, "note"))
        parts.append(f'<div class="scroll">{table_html(ctab, "comparison", ctab.title)}</div>')
        parts.append(lines_html(ctab.summary, "summary"))
        parts.append("</section>")
    parts.append('<section aria-labelledby="h-plots"><h2 id="h-plots">Plots</h2>')
    if figures is None:
        parts.append(f'<p class="note">{esc(plots_missing())}</p>')
    else:
        parts += [f'<figure class="plot">{svg}</figure>' for svg in figures]
    parts.append("</section></main>")
    parts.append(f'<script type="application/json" id="archcalc-data">{data_json(report)}'
                 f"</script><script>{JS}</script></body></html>\n")
    return "".join(parts)


CSS = """
:root{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:#1a1a1a;background:#fff}
main{max-width:1200px;margin:0 auto;padding:1rem}
h1{margin:.2rem 0}.lead{font-size:1.05rem}.note{color:#444;font-size:.9rem;margin:.3rem 0}
.summary{margin:.3rem 0}
.scroll{overflow-x:auto;position:relative}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:.9rem}
caption{text-align:left;font-weight:600;padding:.3rem 0}
th,td{padding:.2rem .5rem;border-bottom:1px solid #ddd;text-align:left;white-space:nowrap}
.num{text-align:right}
thead th{background:#f3f3f3}
thead button{font:inherit;font-weight:600;background:none;border:0;padding:0;cursor:pointer}
thead th[aria-sort=ascending] button::after{content:" ▲"}
thead th[aria-sort=descending] button::after{content:" ▼"}
tfoot td,tfoot th{font-weight:600;border-top:2px solid #999}
td.flag{background:#fde2de;color:#8b0000;font-weight:700}
.ok{color:#1b6e3a}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
tr.selected th,tr.selected td{background:#e8f0fe}
.diagram{overflow:auto;max-height:80vh;border:1px solid #ddd}
.diagram svg{max-width:none}
.diagram g[tabindex]{cursor:pointer}
.diagram g[tabindex]:focus{outline:3px solid #1a73e8}
.diagram g.selected polygon,.diagram g.selected ellipse,.diagram g.selected path{stroke:#1a73e8;
stroke-width:3}
.graph-area{display:grid;grid-template-columns:minmax(0,1fr) minmax(16rem,26rem);gap:1rem;
align-items:start}
@media (max-width:50rem){.graph-area{grid-template-columns:1fr}}
.details{border:1px solid #bbb;padding:.5rem 1rem;margin:0 0 .5rem;background:#fafafa;
position:sticky;top:0}
.details dl{display:grid;grid-template-columns:max-content auto;gap:.1rem 1rem;margin:.3rem 0}
.details dt{font-weight:600}.details dd{margin:0}
figure.plot{margin:1rem 0}figure.plot svg{max-width:100%;height:auto}
"""

JS = r"""
(function(){
"use strict";
var data=JSON.parse(document.getElementById("archcalc-data").textContent);
var panel=document.getElementById("details");
function show(kind,name){
  var pairs=(kind==="row"?data.rows:data.layers)[name];
  if(!pairs){return;}
  var h=document.createElement("h3");
  h.textContent=(kind==="row"?"row ":"layer ")+name;
  var dl=document.createElement("dl");
  pairs.forEach(function(p){
    var dt=document.createElement("dt"),dd=document.createElement("dd");
    dt.textContent=p[0];dd.textContent=p[1];dl.appendChild(dt);dl.appendChild(dd);
  });
  panel.replaceChildren(h,dl);
  document.querySelectorAll(".selected").forEach(function(e){e.classList.remove("selected");});
  var tr=null;
  document.querySelectorAll("#rows tbody tr").forEach(function(r){
    if(r.getAttribute("data-row")===name&&kind==="row"){tr=r;}});
  if(tr){tr.classList.add("selected");}
}
function nodeOf(g){
  var id=g.id;
  if(id.indexOf("row-")===0){return["row",id.slice(4)];}
  return["layer",id.slice(6)];
}
document.querySelectorAll('.diagram g[id^="row-"],.diagram g[id^="layer-"]').forEach(function(g){
  var n=nodeOf(g);
  if(!(n[0]==="row"?data.rows:data.layers)[n[1]]){return;}
  g.setAttribute("tabindex","0");
  g.setAttribute("role","button");
  g.setAttribute("aria-label",n[0]+" "+n[1]+": show its numbers");
  function pick(){show(n[0],n[1]);g.classList.add("selected");}
  g.addEventListener("click",pick);
  g.addEventListener("mouseenter",pick);
  g.addEventListener("focus",pick);
  g.addEventListener("keydown",function(e){
    if(e.key==="Enter"||e.key===" "){e.preventDefault();pick();}});
});
function sortBy(th){
  var table=th.closest("table"),tbody=table.tBodies[0];
  var col=Array.prototype.indexOf.call(th.parentNode.children,th);
  var num=th.getAttribute("data-kind")==="num";
  var was=th.getAttribute("aria-sort");
  var dir=was==="none"?(num?-1:1):(was==="ascending"?-1:1);
  table.querySelectorAll("thead th").forEach(function(h){h.setAttribute("aria-sort","none");});
  th.setAttribute("aria-sort",dir>0?"ascending":"descending");
  var rows=Array.prototype.slice.call(tbody.rows);
  rows.forEach(function(r,i){r._i=i;});
  rows.sort(function(a,b){
    var x=a.cells[col].getAttribute("data-v"),y=b.cells[col].getAttribute("data-v");
    if(x===""&&y===""){return a._i-b._i;}
    if(x===""){return 1;}if(y===""){return -1;}
    var c=num?(parseFloat(x)-parseFloat(y)):x.localeCompare(y,undefined,{numeric:true});
    return c?dir*c:a._i-b._i;
  });
  rows.forEach(function(r){tbody.appendChild(r);});
}
document.querySelectorAll("table.sortable thead th button").forEach(function(b){
  b.addEventListener("click",function(){sortBy(b.parentNode);});
});
})();
"""
