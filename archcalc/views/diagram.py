"""The layer graph as a diagram: a small model of nodes, edges and clusters built from a
:class:`~archcalc.core.graph.Graph` and its :class:`~archcalc.core.analysis.Report`, written
as Graphviz DOT text, and laid out by Graphviz's ``dot`` program into SVG or PNG.

By default one node per row of the table; an edge joins two rows wherever a layer of one takes
the output of a layer of the other (``Layer.inputs``), so a ``from:`` across rows (U-Net's
skips) is drawn as it is built. ``detail`` draws one node per primitive layer instead, inside
a cluster per row and per container (a block call, a join's branches side by side), with the
joins (concat, add, ...) drawn as funnels. Nodes are shaded by multiply-adds, linearly from
white (none) to the darkest blue (the diagram's largest node); the graph's label says so.

Node ids are kept in the SVG (``id="row-3a"``, ``id="layer-3a.b1x1.conv"``) so that a page
that embeds it can find them; every node carries its numbers as a tooltip.
"""
from __future__ import annotations

import math
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from archcalc.core.analysis import Report
from archcalc.core.graph import INPUT, Graph, Group, Layer, Ref, Row
from archcalc.core.memory import BYTES
from archcalc.core.ops import fmt_shape
from archcalc.errors import ArchcalcError, printable
from archcalc.views.report import title_of
from archcalc.views.table import human

SHOW = ("params", "macs", "memory")     # what --show may add to a node's label
FORMATS = ("svg", "png")                # what dot renders here; .dot is the text itself
DOT_TIMEOUT_S = 60
# Graphviz's layout grows faster than the graph: 3,000 nodes took 2.8 s here, 20,000 over a
# minute. Beyond this many nodes dot is not run (the .dot text is still written), and it never
# gets more than DOT_MEMORY bytes of address space.
MAX_LAYOUT_NODES = 5_000
DOT_MEMORY = 4 * 1024 ** 3
INSTALL = "apt install graphviz, or brew install graphviz"
# ColorBrewer's Blues, light to dark: index 0 is a node without multiply-adds
SHADES = ("#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5",
          "#08519c", "#08306b")
LIGHT_TEXT_FROM = 6                     # shades this dark and darker get white text


class NoLayout(ArchcalcError):
    """The diagram cannot be laid out here: a page shows the rest without it."""


class MissingTool(NoLayout):
    """A program archcalc runs (Graphviz's dot) is not installed."""


class TooLarge(NoLayout):
    """More nodes than Graphviz lays out in reasonable time and memory."""


@dataclass
class Node:
    id: str                     # also the DOT node name
    label: List[str]            # lines
    tooltip: List[str]
    macs: int
    kind: str                   # "row", "head", "layer", "join" or "input": the node's class


@dataclass
class Edge:
    tail: str
    head: str
    tooltip: str


@dataclass
class Cluster:
    id: str
    label: str
    nodes: List[str] = field(default_factory=list)
    clusters: List["Cluster"] = field(default_factory=list)


@dataclass
class Diagram:
    title: str
    nodes: List[Node]
    edges: List[Edge]
    clusters: List[Cluster]     # top level (detail: one per row)
    notes: List[str]            # the legend: what the shades and numbers mean

    @property
    def max_macs(self) -> int:
        return max((n.macs for n in self.nodes), default=0)


def parse_show(values: Optional[Iterable[str]]) -> Tuple[str, ...]:
    """``--show params,macs`` (repeatable, comma-separated) as names from SHOW, in SHOW's order."""
    asked = [v.strip().lower() for value in values or () for v in value.split(",") if v.strip()]
    unknown = [v for v in asked if v not in SHOW]
    if unknown:
        raise ArchcalcError(f"--show: unknown '{printable(unknown[0])}'; choose from "
                            f"{', '.join(SHOW)}")
    return tuple(s for s in SHOW if s in asked)


# --- the model ------------------------------------------------------------------------------

def diagram(graph: Graph, report: Report, detail: bool = False, show: Sequence[str] = ()
            ) -> Diagram:
    """The diagram of ``graph``: heads are in it when ``report`` counted them."""
    show = parse_show(show)
    heads = any(r.head for r in report.rows)
    rows: List[Row] = graph.rows + (graph.heads if heads else [])
    layers = {l.name: l for row in rows for l in row.group.layers()}
    outputs = _outputs(rows)
    stats = {l.name: l for l in report.layers}
    input_node = Node("input", ["input", fmt_shape(graph.input_shape)],
                      [f"input {fmt_shape(graph.input_shape)}"], 0, "input")
    nodes, edges, clusters = [input_node], [], []

    def producer(name: str) -> Optional[Layer]:
        """The layer whose output ``name`` (a layer, a container) is; None: the input."""
        return None if name == INPUT else layers[outputs.get(name, name)]

    by_row = {r.name: r for r in report.rows}
    if detail:
        for row in rows:
            clusters.append(_cluster(row.group, f"{row.name} · {by_row[row.name].type}"))
            for layer in row.group.layers():
                s = stats[layer.name]
                numbers = _numbers(s.params, s.macs, _memory(layer.out_shape))
                nodes.append(Node(f"layer-{layer.name}",
                                  _layer_label(layer) + _shown(numbers, show),
                                  [layer.name, f"{layer.kind} → {fmt_shape(layer.out_shape)}"]
                                  + _shown(numbers, SHOW), s.macs,
                                  "join" if layer.is_join else "layer"))
                for source in layer.inputs:
                    made = producer(source)
                    tail = "input" if made is None else f"layer-{made.name}"
                    shape = graph.input_shape if made is None else made.out_shape
                    edges.append(Edge(tail, f"layer-{layer.name}", fmt_shape(shape)))
    else:
        memory = {}
        for layer in layers.values():
            memory[layer.row] = memory.get(layer.row, 0) + _memory(layer.out_shape)
        seen = set()
        for row in rows:
            s = by_row[row.name]
            numbers = _numbers(s.params, s.macs, memory.get(row.name, 0))
            nodes.append(Node(f"row-{row.name}",
                              [row.name, s.type, fmt_shape(row.out_shape)] + _shown(numbers, show),
                              [f"{row.name}: {s.type} → {fmt_shape(row.out_shape)}"]
                              + _shown(numbers, SHOW), s.macs, "head" if s.head else "row"))
            for layer in row.group.layers():
                for source in layer.inputs:
                    made = producer(source)
                    tail = "input" if made is None else f"row-{made.row}"
                    if made is not None and made.row == row.name or (tail, row.name) in seen:
                        continue
                    seen.add((tail, row.name))
                    shape = graph.input_shape if made is None else made.out_shape
                    edges.append(Edge(tail, f"row-{row.name}", fmt_shape(shape)))
    notes = _legend(max((n.macs for n in nodes), default=0), show, detail)
    return Diagram(title_of(report), nodes, edges, clusters, notes)


def _outputs(rows: Sequence[Row]) -> Dict[str, str]:
    """Every container's dotted path → the layer whose output is the container's: its join,
    else its last part's (a ``from:`` at the end: the output it names)."""
    found: Dict[str, str] = {}

    def last(node) -> Optional[str]:
        if isinstance(node, Layer):
            return node.name
        if isinstance(node, Ref):
            return found.get(node.target, node.target)
        out = None
        for child in node.children:
            out = last(child)
        if node.join is not None:
            out = node.join.name
        if out is not None:
            found[node.path] = out
        return out

    for row in rows:
        last(row.group)
    return found


def _cluster(group: Group, label: str) -> Cluster:
    """A group's cluster: its own layers and join, and a sub-cluster per container inside
    that holds layers (a branch that is only a ``from:`` draws nothing, and a join of such
    branches alone, ResNet's ``add``, sits in the cluster around it)."""
    cluster = Cluster(f"group-{group.path}", label)
    for child in group.children:
        if isinstance(child, Layer):
            cluster.nodes.append(f"layer-{child.name}")
        elif isinstance(child, Group):
            inside = [l.name for l in child.layers()]
            if inside == [child.join.name if child.join else None]:
                cluster.nodes.append(f"layer-{child.join.name}")   # a join of from:s alone
            elif inside:
                cluster.clusters.append(_cluster(child, child.name))
    if group.join is not None:
        cluster.nodes.append(f"layer-{group.join.name}")
    return cluster


def _layer_label(layer: Layer) -> List[str]:
    """Its own name (its containers are the clusters around it), its op where that says more,
    its output's shape. A join is named after its container, which the cluster shows."""
    local = layer.name.rsplit(".", 1)[-1]
    lines = [] if layer.is_join or local == layer.kind else [local]
    return lines + [layer.kind, fmt_shape(layer.out_shape)]


def _memory(shape) -> int:
    """A layer's output in bytes, float32 at batch 1 (as core.memory counts activations)."""
    return math.prod(shape) * BYTES


def _numbers(params: int, macs: int, memory: int) -> Dict[str, str]:
    return {"params": f"params {human(params)}", "macs": f"MACs {human(macs)}",
            "memory": f"memory {_bytes(memory)}"}


def _shown(numbers: Dict[str, str], show: Sequence[str]) -> List[str]:
    return [numbers[s] for s in SHOW if s in show]


def _bytes(count: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count} B"


def _legend(largest: int, show: Sequence[str], detail: bool) -> List[str]:
    lines = [f"shade: multiply-adds, linear from white (none) to darkest "
             f"({human(largest)}, the largest {'layer' if detail else 'row'})"]
    if "memory" in show:
        lines.append("memory: output elements × 4 bytes (float32, batch 1)"
                     + ("" if detail else ", summed over the row's layers"))
    return lines


def shade(macs: int, largest: int) -> int:
    """0 (white) for no multiply-adds, else 1 to 8 in proportion to ``largest``."""
    if macs <= 0 or largest <= 0:
        return 0
    return max(1, math.ceil(8 * macs / largest))


# --- DOT ------------------------------------------------------------------------------------

def quote(text: str) -> str:
    """``text`` as a DOT double-quoted string that Graphviz shows as written: control
    characters made visible, backslashes and quotes escaped (a backslash would otherwise
    start one of Graphviz's escapes, ``\\N``, ``\\l``)."""
    return '"' + printable(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lines(lines: Sequence[str]) -> str:
    """Several lines as one DOT string: each escaped, joined by DOT's centred line break."""
    return '"' + "\\n".join(quote(line)[1:-1] for line in lines) + '"'


def to_dot(d: Diagram) -> str:
    largest = d.max_macs
    out = ["digraph archcalc {",
           f"  graph [label={_lines([d.title] + d.notes)}, labelloc=t, fontname=Helvetica, "
           "fontsize=12, rankdir=TB, nodesep=0.25, ranksep=0.3];",
           "  node [shape=box, style=\"rounded,filled\", fontname=Helvetica, fontsize=10, "
           "margin=\"0.08,0.04\"];",
           "  edge [arrowsize=0.6, color=\"#555555\"];"]
    for n in d.nodes:
        level = shade(n.macs, largest)
        attrs = [f"id={quote(n.id)}", f"class={quote(n.kind)}", f"label={_lines(n.label)}",
                 f"tooltip={_lines(n.tooltip)}", f'fillcolor="{SHADES[level]}"']
        if level >= LIGHT_TEXT_FROM:
            attrs.append('fontcolor="white"')
        attrs += _KIND_STYLE.get(n.kind, [])
        out.append(f"  {quote(n.id)} [{', '.join(attrs)}];")
    for c in d.clusters:
        out += _dot_cluster(c, 1)
    for e in d.edges:
        out.append(f"  {quote(e.tail)} -> {quote(e.head)} [tooltip={quote(e.tooltip)}];")
    out.append("}")
    return "\n".join(out) + "\n"


_KIND_STYLE = {
    "join": ["shape=invtrapezium", 'style="filled"', 'margin="0,0"'],
    "input": ["shape=oval", 'style="filled"'],
    "head": ['style="rounded,filled,dashed"'],
}


def _dot_cluster(c: Cluster, depth: int) -> List[str]:
    pad = "  " * depth
    out = [f"{pad}subgraph {quote('cluster_' + c.id)} {{",
           f"{pad}  id={quote(c.id)}; label={quote(c.label)}; style=\"rounded,dashed\"; "
           "color=\"#999999\"; fontname=Helvetica; fontsize=10;"]
    out += [f"{pad}  {quote(n)};" for n in c.nodes]
    for sub in c.clusters:
        out += _dot_cluster(sub, depth + 1)
    out.append(f"{pad}}}")
    return out


# --- rendering with Graphviz ----------------------------------------------------------------

def dot_program() -> str:
    """The path of Graphviz's ``dot``, or MissingTool with the line that installs it."""
    found = shutil.which("dot")
    if found is None:
        raise MissingTool(f"Graphviz's `dot` program is needed for SVG and PNG and is not "
                          f"installed: {INSTALL} (a .dot file needs nothing)")
    return found


def render(dot_text: str, fmt: str) -> bytes:
    """``dot_text`` laid out by ``dot -T<fmt>`` (svg or png), run without a shell."""
    if fmt not in FORMATS:
        raise ValueError(f"render: fmt must be one of {FORMATS}, got {fmt!r}")
    nodes = dot_text.count(" [id=")     # to_dot's node statements (clusters say `id=`)
    if nodes > MAX_LAYOUT_NODES:
        raise TooLarge(f"the diagram has {nodes:,} nodes, more than Graphviz lays out in "
                       f"reasonable time ({MAX_LAYOUT_NODES:,}); draw it without --detail, or "
                       "write .dot")
    program = dot_program()
    try:
        done = subprocess.run([program, f"-T{fmt}"], input=dot_text.encode("utf-8"),
                              capture_output=True, timeout=DOT_TIMEOUT_S, check=False,
                              preexec_fn=_limit_memory)
    except subprocess.TimeoutExpired:
        raise ArchcalcError(f"Graphviz's dot took longer than {DOT_TIMEOUT_S} s to lay out "
                            "the diagram; try without --detail, or write .dot") from None
    except OSError as exc:
        raise MissingTool(f"cannot run Graphviz's dot ({program}): {exc.strerror}; "
                          f"{INSTALL}") from None
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ArchcalcError(f"Graphviz's dot failed (exit {done.returncode})"
                            + (f": {said[-1]}" if said else ""))
    return done.stdout


_ID = re.compile(r'\bid="([^"]*)"')


def _limit_memory() -> None:
    """In dot's process, before it starts: at most DOT_MEMORY of address space."""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (DOT_MEMORY, DOT_MEMORY))


def svg_document(dot_text: str) -> str:
    """The SVG file dot writes, with ids as written: dot escapes every ``-`` as ``&#45;``
    (for its comments), which a page's ``getElementById`` reads the same but a plain search
    for ``id="row-3a"`` does not."""
    text = render(dot_text, "svg").decode("utf-8")
    return _ID.sub(lambda m: 'id="' + m.group(1).replace("&#45;", "-") + '"', text)


def dot_source(graph: Graph, report: Report, detail: bool = False, show=()) -> str:
    """The diagram as DOT text (needs no Graphviz)."""
    return to_dot(diagram(graph, report, detail, show))


def svg(graph: Graph, report: Report, detail: bool = False, show=()) -> str:
    """The diagram as SVG text to inline in HTML: from ``<svg`` on, no XML prolog or DOCTYPE."""
    text = svg_document(dot_source(graph, report, detail, show))
    return text[text.index("<svg"):]
