"""Count a layer graph: per layer, per row, in total; and audit the paper's printed figures.

The result is a :class:`Report` of plain data (ints, tuples, strings). Nothing is formatted
here: renderers in :mod:`archcalc.report` decide how numbers look.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Dict, List, Optional, Tuple

from archcalc.core import receptive
from archcalc.core.graph import Graph, Layer, Row, build
from archcalc.core.ops import Counts, Shape, fmt_shape
from archcalc.core.spec import PaperFigure, Spec
from archcalc.errors import ArchcalcError, Position, SpecError

UNIT_POWER = {"": 0, "K": 1, "M": 2, "G": 3}
DEFAULT_TOLERANCE_PCT = 1.0


@dataclass
class LayerStats:
    name: str
    type: str
    row: str
    input_shapes: Tuple[Shape, ...]    # one per input: a join (concat, add) has several
    output_shape: Shape
    params: int
    weights: int
    non_trainable: int
    macs: int
    other_ops: int
    patch: Optional[str]

    @property
    def input_shape(self) -> Optional[Shape]:
        """The input of a one-input layer; None for a join, which has several."""
        return self.input_shapes[0] if len(self.input_shapes) == 1 else None

    def to_dict(self) -> dict:
        """``input_shapes`` for every layer; ``input_shape`` too where there is one input."""
        record = {}
        for key, value in _lists(asdict(self)).items():
            if key == "input_shapes":
                if self.input_shape is not None:
                    record["input_shape"] = list(self.input_shape)
                value = [list(s) for s in self.input_shapes]
            record[key] = value
        return record


@dataclass
class PaperCell:
    """One published figure beside the computed one, in the paper's units and convention."""

    quantity: str               # "params" or "ops"
    printed: str                # "159K"
    computed: float             # 159.5 (in the printed unit)
    delta_pct: float            # (computed - printed) / printed, in percent
    flag: bool                  # disagrees beyond rounding and tolerance

    def to_dict(self) -> dict:
        return {"printed": self.printed, "computed": self.computed,
                "delta_pct": round(self.delta_pct, 2), "flag": self.flag}


@dataclass
class RowStats:
    name: str
    type: str
    patch: Optional[str]
    block_args: Dict[str, object]
    output_shape: Shape
    depth: int                  # layers with weights on the longest path (the paper's depth)
    depth_with_pool: int        # the same, pooling layers counted too
    params: int
    weights: int
    non_trainable: int
    macs: int
    other_ops: int
    paper: Dict[str, PaperCell] = field(default_factory=dict)
    head: bool = False


@dataclass
class Totals:
    params: int
    weights: int
    non_trainable: int
    macs: int
    other_ops: int
    depth: int
    depth_with_pool: int


@dataclass
class GrownLayer:
    """A layer whose parameters depend on the input size: a linear layer fed a map that a
    fixed-size window (GoogLeNet's 7×7 average pool) leaves larger than 1×1 on a larger input,
    so the classifier grows with the input. Both sides: here, and at the spec's own input."""

    name: str
    input_shape: Shape
    params: int
    spec_input_shape: Shape         # the layer's input at the spec's input
    spec_params: int


@dataclass
class Report:
    name: str
    source: str
    spec_path: str
    input: Shape
    variant: Optional[str]
    rows: List[RowStats]
    layers: List[LayerStats]
    totals: Totals
    paper_units: Dict[str, int]
    tolerance_pct: float
    # why the paper's figures were not audited (they describe another network), or None
    audit_skipped: Optional[str] = None
    grown: List[GrownLayer] = field(default_factory=list)
    paper: Dict[str, PaperCell] = field(default_factory=dict)  # the whole network's figures
    paper_params: str = "weights"   # what the audited parameter figures count
    settings: Dict[str, object] = field(default_factory=dict)  # the spec's settings, as built
    overrides: Dict[str, object] = field(default_factory=dict)  # those --set changed
    network: Optional[str] = None       # the network variant built (a spec's first by default)
    # layers that stand in for an op archcalc cannot express (ops/opaque.py): MACs not counted
    opaque: List[str] = field(default_factory=list)
    # whose count the MACs figures are (core/conventions.py: table --convention)
    convention: str = "paper"
    # receptive fields (core/receptive.py), when asked for (`table --rf`)
    rf: Optional[receptive.Summary] = None

    @property
    def flagged(self) -> List[Tuple[str, str]]:
        rows = [(r.name, q) for r in self.rows for q, c in r.paper.items() if c.flag]
        return rows + [(NETWORK, q) for q, c in self.paper.items() if c.flag]

    @property
    def audited(self) -> int:
        """How many published figures were compared: the rows' and the whole network's."""
        return sum(len(r.paper) for r in self.rows) + len(self.paper)

    def to_dict(self) -> dict:
        """The JSON contract: name, input, variant, rows, layers, totals (and the audit's terms)."""
        rows = []
        for r in self.rows:
            row = {k: v for k, v in asdict(r).items() if k != "paper"}
            if r.paper:
                row["paper"] = {q: c.to_dict() for q, c in r.paper.items()}
            rows.append(self._with_rf(r.name, row, "rows"))
        return {
            "name": self.name, "source": self.source, "spec": self.spec_path,
            "input": list(self.input), "variant": self.variant,
            "network_variant": self.network,
            "settings": {k: _plain(v) for k, v in self.settings.items()},
            "audit": {"params_unit_k": self.paper_units["params"],
                      "ops_unit_k": self.paper_units["ops"],
                      "convention": f"params: {PARAMS_CONVENTION[self.paper_params]}; "
                                    "ops = conv and linear multiply-adds",
                      "tolerance_pct": self.tolerance_pct,
                      "network": {q: c.to_dict() for q, c in self.paper.items()}},
            "rows": [_lists(r) for r in rows],
            "layers": [self._with_rf(l.name, l.to_dict(), "layers") for l in self.layers],
            "totals": asdict(self.totals),
            "audit_skipped": self.audit_skipped,
            "grown_with_input": [_lists(asdict(g)) for g in self.grown],
            "opaque": list(self.opaque),
            "convention": self.convention,
        } | ({"rf": self.rf.to_dict()} if self.rf else {})

    def _with_rf(self, name: str, record: dict, of: str) -> dict:
        """``record`` with the receptive field of its row or layer, when they were asked for."""
        if self.rf is not None:
            record["rf"] = getattr(self.rf, of)[name].to_dict()
        return record


NETWORK = "the network"      # how the audit names the whole network's figures
PARAMS_CONVENTION = {"weights": "weights only, no biases", "params": "all trainable, biases "
                     "included"}


def _plain(value):
    """A setting's value for JSON: a fraction as a float."""
    return value if isinstance(value, (int, str)) else float(value)


def _lists(record: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in record.items()}


def analyze(graph: Graph, heads: bool = False,
            tolerance_pct: float = DEFAULT_TOLERANCE_PCT, rf: bool = False) -> Report:
    """Counts of every layer and row of ``graph``; heads are included only when asked; with
    ``rf``, every layer's and row's receptive field too."""
    if not 0 <= tolerance_pct < math.inf:
        raise ArchcalcError(f"the audit's tolerance must be a finite percentage, not negative, "
                            f"got {tolerance_pct!r}", Position("--tolerance"))
    spec = graph.spec
    units = spec.paper_units
    skipped = audit_skipped(graph)
    rows_audited = skipped is None and is_default_network(spec, graph.variant)
    rows = [row_stats(r, units, tolerance_pct, rows_audited, spec.paper_params)
            for r in graph.rows]
    if heads:
        rows += [row_stats(r, units, tolerance_pct) for r in graph.heads]
    layers = [layer_stats(l) for l in graph.layers(heads)]
    total = sum((l.counts() for l in graph.layers(heads)), Counts())
    main = [r for r in rows if not r.head]
    totals = Totals(total.params, total.weights, total.non_trainable, total.macs,
                    total.other_ops, sum(r.depth for r in main),
                    sum(r.depth_with_pool for r in main))
    paper = {}
    if skipped is None:
        whole = {"params": total.params if spec.paper_params == "params" else total.weights,
                 "ops": total.macs}
        paper = {q: audit(fig, q, whole[q], units[q], tolerance_pct)
                 for q, fig in network_figures(graph).items()}
    return Report(spec.name, spec.source, spec.path, graph.input_shape, graph.variant, rows,
                  layers, totals, units, tolerance_pct, skipped, grown_layers(graph), paper,
                  spec.paper_params, dict(graph.settings), dict(graph.overrides),
                  network_variant(spec, graph.variant),
                  [layer.name for layer in graph.opaque(heads)],
                  rf=receptive.summarize(graph, heads) if rf else None)


def network_figures(graph: Graph) -> Dict[str, PaperFigure]:
    """The whole network's published figures that describe ``graph``'s network: the spec's
    ``paper:`` for its default network, and a network variant's own (``resnet50``)."""
    spec = graph.spec
    figures = dict(spec.paper) if is_default_network(spec, graph.variant) else {}
    chosen = network_variant(spec, graph.variant)
    if chosen is not None and all(b.expr(graph.variant) is b.expr(None)
                                  for b in spec.blocks.values()):
        figures.update(spec.network_variants[chosen].paper)
    return figures


def network_variant(spec: Spec, variant: Optional[str]) -> Optional[str]:
    """The network variant ``variant`` builds: itself, else the spec's first (if any)."""
    if variant in spec.network_variants:
        return variant
    return next(iter(spec.network_variants), None)


def audit_skipped(graph: Graph) -> Optional[str]:
    """Why the spec's ``paper:`` figures do not describe ``graph``, or None when they do (or
    there are none): they are for the spec's own input and settings, the rows' and the
    spec's for its default network, a network variant's for that variant."""
    spec = graph.spec
    has_figures = any(r.paper for r in spec.rows) or spec.paper or any(
        v.paper for v in spec.network_variants.values())
    if not has_figures:
        return None
    reasons = []
    if tuple(graph.input_shape) != tuple(spec.input):
        reasons.append(f"the paper's figures are for input {fmt_shape(spec.input)}, not "
                       f"{fmt_shape(graph.input_shape)}")
    if graph.overrides:
        changed = ", ".join(f"{k}={_plain(v):g}" if not isinstance(v, str) else f"{k}={v}"
                            for k, v in graph.overrides.items())
        reasons.append(f"the paper's figures are for the spec's own settings, not {changed}")
    if not reasons and not network_figures(graph) and not is_default_network(
            spec, graph.variant):
        reasons.append(f"the paper's figures are for the default variant "
                       f"({', '.join(sorted(spec.first_variants))}), not '{graph.variant}'")
    return "; ".join(reasons) or None


def is_default_network(spec: Spec, variant: Optional[str]) -> bool:
    """Whether ``variant`` builds the spec's default network: the first network variant (if
    the spec has them) and every block in its first variant."""
    if variant is None:
        return True
    if variant in spec.network_variants and variant != next(iter(spec.network_variants)):
        return False
    return all(b.expr(variant) is b.expr(None) for b in spec.blocks.values())


def grown_layers(graph: Graph) -> List[GrownLayer]:
    """Layers whose parameters differ from those at the spec's own input (a classifier that
    grew with the input); none at the spec's input, or when the spec's input does not build."""
    spec = graph.spec
    if tuple(graph.input_shape) == tuple(spec.input):
        return []
    try:
        own = {l.name: l for l in build(spec, graph.variant).layers()}
    except SpecError:
        return []
    return [GrownLayer(l.name, l.in_shape, l.counts().params, own[l.name].in_shape,
                       own[l.name].counts().params)
            for l in graph.layers() if l.name in own
            and l.counts().params != own[l.name].counts().params]


def layer_stats(layer: Layer) -> LayerStats:
    c = layer.counts()
    patch = layer.op.patch()
    return LayerStats(layer.name, layer.kind, layer.row, tuple(layer.in_shapes), layer.out_shape,
                      c.params, c.weights, c.non_trainable, c.macs, c.other_ops, patch)


def row_stats(row: Row, units: Dict[str, int], tolerance_pct: float,
              audited: bool = True, paper_params: str = "weights") -> RowStats:
    layers = list(row.group.layers())
    c = sum((l.counts() for l in layers), Counts())
    ops = [l for l in layers if not l.is_join]
    counted = {"params": c.params if paper_params == "params" else c.weights, "ops": c.macs}
    paper = {q: audit(fig, q, counted[q], units[q], tolerance_pct)
             for q, fig in row.paper.items() if audited}
    return RowStats(
        name=row.name, type=row_type(row, ops), patch=_row_patch(row, ops),
        block_args=dict(row.block_args), output_shape=row.out_shape,
        depth=depth(layers, ("weights",)), depth_with_pool=depth(layers, ("weights", "pool")),
        params=c.params, weights=c.weights, non_trainable=c.non_trainable, macs=c.macs,
        other_ops=c.other_ops, paper=paper, head=row.head is not None)


def main_ops(ops: List[Layer]) -> List[Layer]:
    """The ops that say what a row is: those with weights, else pooling, else any but
    activations (a conv + batchnorm + relu + maxpool row is a convolution)."""
    for keep in (lambda l: l.op.depth == "weights", lambda l: l.op.depth == "pool",
                 lambda l: not l.op.activation):
        found = [l for l in ops if keep(l)]
        if found:
            return found
    return ops


def row_type(row: Row, ops: List[Layer]) -> str:
    """The block's name for a block call; else the title of the row's main ops."""
    if row.block:
        return row.block
    if row.group.join is not None:
        return row.group.join.op.title
    titles = {l.op.title for l in main_ops(ops)}
    return titles.pop() if len(titles) == 1 else "sequence"


def _row_patch(row: Row, ops: List[Layer]) -> Optional[str]:
    """Kernel/stride of the row's last main op with a window, as Table 1 shows conv2 as 3×3/1."""
    if row.block or row.group.join is not None:
        return None
    patches = [p for p in (l.op.patch() for l in main_ops(ops)) if p]
    return patches[-1] if patches else None


def depth(layers: List[Layer], kinds: Tuple[str, ...]) -> int:
    """Layers of the given depth kinds on the longest path through ``layers`` (a row's, in
    execution order), following each layer's inputs: a ``from:`` edge makes a path branch off
    as a join's branches do, so ResNet's projection written after ``from: input`` is beside
    the main path, not after it. Inputs from outside the row start a path at 0."""
    deepest: Dict[str, int] = {}
    for layer in layers:
        before = max((deepest.get(p, 0) for p in layer.inputs), default=0)
        deepest[layer.name] = before + (1 if layer.op.depth in kinds else 0)
    return max(deepest.values(), default=0)


def audit(figure: PaperFigure, quantity: str, count: int, k: int, tolerance_pct: float) -> PaperCell:
    """Compare ``count`` with the printed ``figure``.

    The computed value is taken in the printed unit (K = ``k``, M = ``k``², ...). It agrees when,
    rounded to the digits the paper printed, it reads the same, or when it is within
    ``tolerance_pct`` percent of the printed value.
    """
    computed = count / k ** UNIT_POWER[figure.unit]
    step = Decimal(1).scaleb(-figure.decimals)
    rounded = Decimal(repr(computed)).quantize(step, rounding=ROUND_HALF_UP)
    delta = (computed - figure.value) / figure.value * 100 if figure.value else float("inf")
    agrees = rounded == Decimal(str(figure.value)).quantize(step) or abs(delta) <= tolerance_pct
    return PaperCell(quantity, figure.printed, computed, delta, not agrees)
