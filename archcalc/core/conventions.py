"""The counting conventions of the FLOP counters people compare archcalc with.

"Is it MACs or FLOPs, and why does tool X say something else?" Each counter counts its own
set of modules or functions its own way: linear bias or not, BatchNorm as 1, 2 or 4 per element
or as its parameter count, pooling or not, activations only where a module hook or a patched
function sees them. Every op knows what each tool reports for its module as archcalc builds
it (``Op.conventions``, written from the tool's source); this module names the tools, says
what each counts and where it counts twice or not at all, and sums. tests/test_conventions.py
checks every convention against the tool itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Tuple

from archcalc.core.graph import Graph, Layer
from archcalc.errors import ArchcalcError, Position


@dataclass(frozen=True)
class Tool:
    """One counter: its name on the command line, what it is, its unit and its quirks."""

    name: str
    title: str                  # the tool and the call, with the version it is pinned to
    unit: str                   # "MACs" or "FLOPs"
    counts: str                 # what it counts, in one line
    quirks: Tuple[str, ...]     # its double counts and omissions, one line each


TOOLS: Tuple[Tool, ...] = (
    Tool("paper", "archcalc (the papers' convention)", "MACs",
         "multiply-adds of convolution and linear weights, bias excluded; nothing else",
         ("pooling, normalization and activations are other ops, never MACs (table "
          "--detail)",)),
    Tool("fvcore", "fvcore 0.1.5 FlopCountAnalysis.total(), eval mode", "MACs",
         "conv and linear multiply-adds (no bias); batch norm 1 per element (2 with γ, β); "
         "layer and group norm 4 (5); adaptive average pooling 1 per input; upsampling 1 "
         "(nearest) or 4 (bilinear) per output",
         ("no activations, max or average pooling, softmax, LRN, adds or concats: "
          "unsupported ops count 0",)),
    Tool("flopcounter", "torch.utils.flop_counter.FlopCounterMode", "FLOPs",
         "2 × the multiply-adds of matmuls and convolutions, bias excluded",
         ("counts nothing but matmuls, convolutions and attention",)),
    Tool("thop", "thop 0.1.1.post2209072238 profile() (not ultralytics-thop)", "MACs",
         "conv multiply-adds by OUTPUT elements (a transposed conv's too), linear in × out, "
         "batch norm 4 per element (2 without γ, β), avg pool 1 per output, adaptive avg "
         "pool (in/out area + 1) per output, softmax 3C - 1 per vector, upsample 1 or 11",
         ("matches module classes exactly: a subclass counts 0 (archcalc's FlattenLinear, a "
          "linear layer after a map; LayerNorm2d, layer norm on a map)",
          "no activation is counted (ReLU, ReLU6, LeakyReLU are zero_ops; the rest have no "
          "rule); nor max pooling, group norm, LRN, adds or concats")),
    Tool("ptflops", "ptflops 0.7.5 get_model_complexity_info(backend='pytorch')", "MACs",
         "conv and linear multiply-adds with one add per output for the bias; batch and "
         "group norm 1 per element (2 with γ, β), layer norm 1; pooling 1 per input; "
         "activations 1 per element where a hook or patch sees them",
         ("counts twice what has both a module hook and a patched function that its forward "
          "calls: max, avg and adaptive pooling, ReLU, GELU, upsampling",
          "SiLU and softmax once (patched F.silu and F.softmax, no module hook); sigmoid, "
          "tanh, hardswish, hardsigmoid not at all",
          "sees inside F.local_response_norm: its x·x, avg_pool3d, ·alpha and +k",
          "matches module classes exactly: FlattenLinear and LayerNorm2d count 0; "
          "adds, multiplies and concats written as + * and torch.cat count 0",
          "the default backend is aten since 0.7.4 (ptflops-aten): pin backend='pytorch' "
          "for these numbers")),
    Tool("ptflops-aten", "ptflops 0.7.5 get_model_complexity_info(backend='aten'), its "
         "default", "MACs",
         "the multiply-adds of ATen's mm, addmm, bmm and convolution calls, and one add per "
         "output for a bias",
         ("counts nothing else: no normalization, pooling or activation",)),
    Tool("torchinfo", "torchinfo 1.8.0 summary() \"Total mult-adds\"", "MACs",
         "per leaf module, its weight and bias parameters × the output positions for a "
         "module named *Conv*, × 1 (the batch) for any other",
         ("a conv's bias is counted; a transposed conv's by its OUTPUT positions",
          "batch, layer and group norm count their γ and β (2C), not per element; "
          "pooling, activations, LRN and joins count 0")),
)

NAMES: Tuple[str, ...] = tuple(t.name for t in TOOLS)


def tool(name: str) -> Tool:
    """The tool called ``name``, or bad input listing the known ones."""
    for t in TOOLS:
        if t.name == name:
            return t
    raise ArchcalcError(f"unknown convention {name!r}; known: {', '.join(NAMES)}",
                        Position("--convention"))


def layer_values(layer: Layer) -> Dict[str, int]:
    """What every tool reports for ``layer``'s module."""
    shapes = layer.in_shapes if layer.is_join else layer.in_shape
    return layer.op.conventions(shapes, layer.out_shape)


@dataclass
class OpRow:
    """One op type: how many layers, and each tool's sum over them."""

    op: str
    title: str
    layers: int
    values: Dict[str, int]


@dataclass
class Reconciliation:
    """Every tool's count of one network, by op type, with each tool's quirks."""

    name: str
    input: Tuple[int, ...]
    tools: Tuple[Tool, ...]
    ops: List[OpRow]
    totals: Dict[str, int]
    opaque: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "input": list(self.input),
                "tools": [{"name": t.name, "title": t.title, "unit": t.unit,
                           "counts": t.counts, "quirks": list(t.quirks)} for t in self.tools],
                "ops": [{"op": r.op, "title": r.title, "layers": r.layers,
                         "values": dict(r.values)} for r in self.ops],
                "totals": dict(self.totals), "opaque": list(self.opaque)}


def reconcile(graph: Graph, heads: bool = False) -> Reconciliation:
    """Each tool's count of ``graph``, op type by op type, in order of first appearance."""
    rows: Dict[str, OpRow] = {}
    totals = dict.fromkeys(NAMES, 0)
    for layer in graph.layers(heads):
        values = layer_values(layer)
        row = rows.setdefault(layer.kind, OpRow(layer.kind, layer.op.title, 0,
                                                dict.fromkeys(NAMES, 0)))
        row.layers += 1
        for name in NAMES:
            row.values[name] += values[name]
            totals[name] += values[name]
    return Reconciliation(graph.spec.name, tuple(graph.input_shape), TOOLS, list(rows.values()),
                          totals, [layer.name for layer in graph.opaque(heads)])


def apply(report, graph: Graph, name: str, heads: bool = False):
    """``report`` (core.analysis.Report) with every MACs figure, per layer, per row and in
    total, as tool ``name`` counts it. The paper's figures are audited in archcalc's own
    convention, so under another the audit is left out and the report says why."""
    tool(name)
    if name == "paper":
        return report
    per_layer = {layer.name: layer_values(layer)[name] for layer in graph.layers(heads)}
    per_row: Dict[str, int] = {}
    layers = []
    for stats in report.layers:
        per_row[stats.row] = per_row.get(stats.row, 0) + per_layer[stats.name]
        layers.append(replace(stats, macs=per_layer[stats.name]))
    rows = [replace(r, macs=per_row.get(r.name, 0), paper={}) for r in report.rows]
    totals = replace(report.totals, macs=sum(per_layer[s.name] for s in report.layers))
    skipped = report.audit_skipped
    if report.paper or any(r.paper for r in report.rows):
        skipped = "the paper's figures are audited in archcalc's own convention " \
                  "(--convention paper)"
    return replace(report, layers=layers, rows=rows, totals=totals, paper={},
                   audit_skipped=skipped, convention=name)
