"""A spec against a real model, layer by layer: what `verify --against` finds.

Both sides are :class:`ir.Model` s: the spec's graph through :func:`graph_to_ir` (its counts
from archcalc's ops), the real model from an importer (its shapes, parameters and buffers from
the traced model itself, its MACs from fvcore). Layers are matched by execution order, op for
op, with names deciding between equal choices (``layer1.0.conv1`` on both sides: matched by
name): a global alignment of the two sequences, so a layer one side lacks shows as missing
rather than shifting every later pair. Each matched pair compares output shape, parameters, buffers and,
where fvcore counts the op's MACs (``Op.fvcore == "macs"``: conv, linear), MACs.

The first divergence, in execution order, is named with its cause where the two nodes'
arguments show it: ``conv1: stride 1 in the spec, 2 in the model → 4× the MACs``.

Torch-free: the real model's numbers come in through the IR.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Dict, List, Optional, Sequence, Tuple

from archcalc.bridge import ir
from archcalc.core import graph as graphs
from archcalc.core.ops import OPS, ArgError, Op, fmt_shape
from archcalc.core.ops.base import activation, window_padding

NAME, ORDER = "name", "order"      # how a pair was matched (Row.matched_by)


# --- the spec as the IR ----------------------------------------------------------------------

def graph_to_ir(graph: graphs.Graph, source: str = "") -> ir.Model:
    """Every primitive layer of ``graph`` (heads left out) as a Node: its op and arguments as a
    spec writes them, its inputs, shape, parameters, buffers and MACs from archcalc's ops."""
    nodes = []
    for layer in graph.layers():
        counts = layer.counts()
        nodes.append(ir.Node(
            name=layer.name, op=layer.kind, args=_spec_args(layer.op),
            inputs=tuple(ir.INPUT if i == graphs.INPUT else i for i in layer.inputs),
            out_shape=tuple(layer.out_shape), params=counts.params,
            buffers=counts.non_trainable, macs=counts.macs, kind=layer.op.title,
            location=str(layer.pos)))
    return ir.Model(source or graph.spec.path, tuple(graph.input_shape), nodes)


def _spec_args(op) -> Dict[str, Any]:
    """The op's arguments as a spec writes them (pairs as lists). ``act:`` is left out: the
    graph made it a layer of its own, as the real model has it."""
    cls = type(op)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in op.a.items()
            if cls.args[k].check is not activation}


# --- the comparison --------------------------------------------------------------------------

@dataclass
class Quantity:
    """One figure of one pair: the spec's, the model's, and whether they agree (None: not
    compared, one side has no such figure)."""

    spec: Any
    model: Any
    ok: Optional[bool]

    def to_dict(self) -> dict:
        return {"spec": _plain(self.spec), "model": _plain(self.model), "ok": self.ok}


@dataclass
class Row:
    """A spec layer and the model's layer it was matched with; one of them is None where a
    layer is on one side only."""

    spec: Optional[ir.Node]
    model: Optional[ir.Node]
    matched_by: Optional[str]               # NAME, ORDER, or None (one side only)
    shape: Quantity
    params: Quantity
    buffers: Quantity
    macs: Quantity

    @property
    def name(self) -> str:
        return (self.spec or self.model).name

    @property
    def op(self) -> Optional[Quantity]:
        if self.spec is None or self.model is None:
            return None
        return Quantity(self.spec.op, self.model.op, self.spec.op == self.model.op)

    @property
    def ok(self) -> bool:
        if self.spec is None or self.model is None:     # a pass-through one side lacks is
            return passes_through(self.spec or self.model)  # no difference (a shortcut)
        # the figures decide: two spellings of one op (adaptive_avgpool to 1×1, gap) agree
        return all(q.ok is not False for q in self.quantities())

    def quantities(self) -> List[Quantity]:
        return [self.shape, self.params, self.buffers, self.macs]

    def to_dict(self) -> dict:
        return {"spec": self.spec.name if self.spec else None,
                "model": self.model.name if self.model else None,
                "matched_by": self.matched_by, "ok": self.ok,
                "op": {"spec": self.spec.op if self.spec else None,
                       "model": self.model.op if self.model else None},
                "shape": self.shape.to_dict(), "params": self.params.to_dict(),
                "buffers": self.buffers.to_dict(), "macs": self.macs.to_dict()}


@dataclass
class Comparison:
    spec: str                   # the spec's source (its path)
    model: str                  # the real model's source ("torchvision.models:resnet50")
    input: Quantity             # the input shapes
    rows: List[Row]
    cause: Optional[str]        # the first divergence and its cause; None when all agree

    @property
    def ok(self) -> bool:
        return self.input.ok and all(r.ok for r in self.rows)

    @property
    def first(self) -> Optional[Row]:
        return next((r for r in self.rows if not r.ok), None)

    def totals(self) -> Dict[str, Tuple[int, int]]:
        """Parameters and buffers summed over each side's layers; MACs over the pairs whose
        MACs were compared (both sides known)."""
        spec = [r.spec for r in self.rows if r.spec]
        model = [r.model for r in self.rows if r.model]
        macs = [r.macs for r in self.rows if r.macs.ok is not None]
        return {"params": (sum(n.params for n in spec), sum(n.params for n in model)),
                "buffers": (sum(n.buffers for n in spec), sum(n.buffers for n in model)),
                "macs": (sum(q.spec for q in macs), sum(q.model for q in macs))}

    def to_dict(self) -> dict:
        return {"ok": self.ok, "spec": self.spec, "model": self.model,
                "input": self.input.to_dict(), "cause": self.cause,
                "conventions": {
                    "matched_by": "name: the same qualified name on both sides; order: "
                                  "execution order, op for op, between name matches",
                    "macs": "multiply-adds of conv and linear layers: the spec's from "
                            "archcalc, the model's from fvcore (by_module, batch 1); totals "
                            "over the pairs where both are known",
                    "buffers": "floating-point buffers (BatchNorm running statistics)"},
                "totals": {k: {"spec": s, "model": m} for k, (s, m) in self.totals().items()},
                "layers": [r.to_dict() for r in self.rows]}


def compare(spec: ir.Model, model: ir.Model) -> Comparison:
    """``spec`` against ``model``, layer by layer (see the module's docstring)."""
    pairs = _align(spec.nodes, model.nodes)
    rows = [_row(s, m, how) for s, m, how in pairs]
    given = Quantity(tuple(spec.input_shape), tuple(model.input_shape),
                     tuple(spec.input_shape) == tuple(model.input_shape))
    result = Comparison(spec.source, model.source, given, rows, None)
    if not given.ok:
        result.cause = (f"input {fmt_shape(given.spec)} in the spec, {fmt_shape(given.model)} "
                        "in the model")
    elif result.first is not None:
        result.cause = _cause(result.first, rows, spec, model)
    return result


# --- matching --------------------------------------------------------------------------------

def _align(spec: Sequence[ir.Node], model: Sequence[ir.Node]):
    """(spec node, model node, how) in execution order; a side is None where it has no match.

    A global alignment of the two execution orders (Needleman-Wunsch): a pair of the same op
    scores 2, and 1 more where the names agree (and a little where the shapes do); a pair of
    different ops little, and only where the names or the shapes agree (``gap`` for the
    spec's ``adaptive_avgpool`` to 1×1); a layer left unpaired costs nothing. So the most
    layers pair op for op, names decide between equal choices (a module that a model calls
    twice, ``relu`` and ``relu_1``, cannot pull its pairs out of order), and of equal
    alignments the one that pairs each model layer earliest wins: a block one side lacks shows
    where it is, not as a shift of every later pair."""
    n, m = len(spec), len(model)
    score = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        a, row, above = spec[i - 1], score[i], score[i - 1]
        for j in range(1, m + 1):
            best = max(row[j - 1], above[j])
            pair = _pair_score(a, model[j - 1])
            if pair is not None and above[j - 1] + pair > best:
                best = above[j - 1] + pair
            row[j] = best
    pairs, i, j = [], n, m
    while i or j:
        if j and score[i][j] == score[i][j - 1]:
            pairs.append((None, model[j - 1], None))
            j -= 1
        elif i and score[i][j] == score[i - 1][j]:
            pairs.append((spec[i - 1], None, None))
            i -= 1
        else:
            a, b = spec[i - 1], model[j - 1]
            pairs.append((a, b, NAME if a.name == b.name else ORDER))
            i, j = i - 1, j - 1
    return pairs[::-1]


def _pair_score(a: ir.Node, b: ir.Node) -> Optional[float]:
    named = a.name == b.name
    shaped = tuple(a.out_shape) == tuple(b.out_shape)
    if a.op != b.op:    # another op (or another spelling of it) in the same place
        return 0.5 + named if named or shaped else None
    return 2 + named + 0.25 * shaped


def passes_through(node: ir.Node) -> bool:
    """An op that counts nothing and holds nothing (Op's default counts: identity, dropout,
    stochastic depth at inference, flatten): the spec's ``identity`` shortcut has no node in a
    traced model, and torchvision's ``torch.flatten`` before ``fc`` none in a spec (archcalc's
    linear flattens its own input). Its absence changes no figure; where it changes a shape
    that matters, the layers after it differ."""
    cls = OPS.get(node.op)
    return cls is not None and cls.counts is Op.counts and node.params == node.buffers == 0


def _macs_counted(node: ir.Node) -> bool:
    """Whether MACs are compared for an op: those fvcore counts as MACs (conv, linear)."""
    cls = OPS.get(node.op)
    return cls is not None and cls.fvcore == "macs"


def _row(spec: Optional[ir.Node], model: Optional[ir.Node], how: Optional[str]) -> Row:
    def q(get, known=lambda n: True):
        s = get(spec) if spec is not None and known(spec) else None
        m = get(model) if model is not None and known(model) else None
        return Quantity(s, m, None if s is None or m is None else s == m)

    counted = spec is not None and _macs_counted(spec)
    return Row(spec, model, how,
               q(lambda n: tuple(n.out_shape)), q(lambda n: n.params), q(lambda n: n.buffers),
               q(lambda n: n.macs, lambda n: counted and n.macs is not None))


# --- the cause of the first divergence -------------------------------------------------------

def _cause(row: Row, rows: List[Row], spec: ir.Model, model: ir.Model) -> str:
    if row.model is None or row.spec is None:
        return _one_sided(row, rows)
    name = row.spec.name if row.spec.name == row.model.name else \
        f"{row.spec.name} (the model's {row.model.name})"
    if not row.op.ok:
        effect = _effect(row)
        return f"{name}: {row.spec.op} in the spec, {row.model.op} in the model" + \
            (f" → {effect}" if effect else "")
    args = _arg_differences(row.spec, row.model, spec, model)
    effect = _effect(row)
    if args:
        return f"{name}: {'; '.join(args)}" + (f" → {effect}" if effect else "")
    return f"{name}: {effect}"


def _one_sided(row: Row, rows: List[Row]) -> str:
    """A stretch of layers only one side has, named by what its names share (``layer3.5``)."""
    side = "model" if row.spec is None else "spec"
    other = "spec" if side == "model" else "model"
    start = rows.index(row)
    stretch = []
    for r in rows[start:]:
        if (r.spec is None) != (side == "model") or (r.model is None) != (side == "spec"):
            break
        stretch.append((r.model or r.spec).name)
    what = _common_prefix(stretch) or stretch[0]
    count = f" ({len(stretch)} layers)" if len(stretch) > 1 else ""
    last = [getattr(r, other) for r in rows[:start] if getattr(r, other) is not None]
    if start + len(stretch) == len(rows) or all(getattr(r, other) is None
                                                for r in rows[start:]):
        end = f"the {other} ends at {last[-1].name}" if last else f"the {other} has no layers"
        return f"the {side} has {what}{count}, {end}"
    after = f" after {last[-1].name}" if last else " at the start"
    return f"the {side} has {what}{count}{after}, the {other} does not"


def _common_prefix(names: List[str]) -> str:
    parts = [n.split(".") for n in names]
    common = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return ".".join(common)


def _arg_differences(a: ir.Node, b: ir.Node, spec: ir.Model, model: ir.Model) -> List[str]:
    """``stride 1 in the spec, 2 in the model`` for each argument of the op that differs, both
    sides read through the op's own argument checks (so 3 and [3, 3] agree), a padding 'same'
    or 'valid' worked out per side from the layer's input."""
    cls = OPS.get(a.op)
    if cls is None:
        return []
    out = []
    for key, arg in cls.args.items():
        if arg.check is activation or arg.literal:     # a layer of its own; free text
            continue
        x = _arg(cls, key, a.args, _in_shape(a, spec))
        y = _arg(cls, key, b.args, _in_shape(b, model))
        if x != y:
            out.append(f"{key} {_shown(x)} in the spec, {_shown(y)} in the model")
    return out


def _arg(cls, key: str, args: Dict[str, Any], in_shape: Optional[tuple]) -> Any:
    spec = cls.args[key]
    raw = args.get(key, spec.default)
    try:
        value = spec.check(list(raw) if isinstance(raw, tuple) else raw) \
            if raw is not None else None
    except ArgError:
        return raw
    if key == "padding" and value in ("same", "valid") and in_shape is not None \
            and len(in_shape) == 3 and "kernel" in args:
        kernel = cls.args["kernel"].check(_listed(args["kernel"]))
        stride = cls.args["stride"].check(_listed(args.get("stride", cls.args["stride"].default)))
        dilation = (1, 1)
        if "dilation" in cls.args:
            dilation = cls.args["dilation"].check(
                _listed(args.get("dilation", cls.args["dilation"].default)))
        value = tuple(window_padding(value, size, kernel[i], stride[i], dilation[i])
                      for i, size in enumerate(in_shape[1:]))
    return value


def _listed(v):
    return list(v) if isinstance(v, tuple) else v


def _in_shape(node: ir.Node, model: ir.Model) -> Optional[tuple]:
    if not node.inputs:
        return None
    first = node.inputs[0]
    if first == ir.INPUT:
        return tuple(model.input_shape)
    shapes = {n.name: n.out_shape for n in model.nodes}
    return tuple(shapes[first]) if first in shapes else None


def _effect(row: Row) -> str:
    """What the difference does, the largest first: MACs as a factor, else parameters, else
    buffers, else the output shape."""
    m = row.macs
    if m.ok is False and m.spec and m.model:
        return f"{_factor(Fraction(m.spec, m.model))} the MACs"
    if row.params.ok is False:
        return f"params {row.params.spec:,} in the spec, {row.params.model:,} in the model"
    if row.buffers.ok is False:
        return f"buffers {row.buffers.spec:,} in the spec, {row.buffers.model:,} in the model"
    if row.shape.ok is False:
        return (f"output {fmt_shape(row.shape.spec)} in the spec, "
                f"{fmt_shape(row.shape.model)} in the model")
    if m.ok is False:
        return f"MACs {m.spec:,} in the spec, {m.model:,} in the model"
    return ""


def _factor(ratio: Fraction) -> str:
    """4 → ``4×``; 1/4 → ``1/4 of``; 9/4 → ``2.25×``; 53/54 → ``0.981×``."""
    if ratio < 1 and (1 / ratio).denominator == 1:
        return f"1/{_number(1 / ratio)} of"
    return f"{_number(ratio)}×"


def _number(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{float(x):.3g}"


def _shown(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        return str(value[0])
    if isinstance(value, tuple):
        return "×".join(map(str, value))
    if value is None:
        return "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _plain(value):
    return list(value) if isinstance(value, tuple) else value
