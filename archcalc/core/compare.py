"""Two networks side by side: two variants of one spec, or two specs matched row by row.

``archcalc compare naive reduced`` asks what GoogLeNet's 1×1 reductions buy (Figure 2). Two
answers are measured, because they differ: on equal inputs a naive module needs 2.4 to 5.1
times the weights of a reduced one, the naive network 14 times those of the reduced network.

- per module, the same input: every row whose layers differ between the variants is built in
  both, on the input the spec's default network feeds it (for GoogLeNet, the reduced one);
- the whole network: every module in one variant, each fed by the one before, so the naive
  pool branch's unprojected channels compound from module to module.

Two specs (``archcalc compare a.yaml b.yaml``) are matched by row name instead. Everything here
is plain data (ints, shapes, names); ratios are computed when asked for. Nothing prints.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from archcalc.core import graph
from archcalc.errors import ArchcalcError, Position, SpecError
from archcalc.files import BUNDLED, is_file, resolve_spec
from archcalc.core.ops import Counts, Shape
from archcalc.core.spec import Spec, load

DEFAULT_SPEC = "googlenet"
QUANTITIES = ("params", "weights", "macs")


def is_spec(arg: str) -> bool:
    """A spec rather than a variant: an existing file, a bundled spec's name, or anything that
    looks like a path (ends in .yaml/.yml or has a '/'), so a mistyped file is not taken for a
    variant name. Variant names have neither dots nor slashes, so none is hidden by this."""
    path = Path(arg)
    return (is_file(path) or path.suffix in (".yaml", ".yml") or "/" in arg
            or is_file(BUNDLED / f"{arg}.yaml"))


# --- the numbers ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Cost:
    """What one row costs in one network, and the shapes it takes and gives."""

    params: int         # trainable, biases included
    weights: int        # the same without biases (the paper's convention)
    macs: int
    in_shape: Shape
    out_shape: Shape

    @classmethod
    def of(cls, row: graph.Row) -> "Cost":
        c = sum((layer.counts() for layer in row.group.layers()), Counts())
        return cls(c.params, c.weights, c.macs, row.group.in_shape, row.out_shape)

    def to_dict(self) -> dict:
        return {"input_channels": self.in_shape[0], "output_channels": self.out_shape[0],
                "params": self.params, "weights": self.weights, "macs": self.macs}


def ratio(a: int, b: int) -> Optional[float]:
    return a / b if b else None


@dataclass
class Pair:
    """One row (or module) in both networks; a side is None where that network lacks it."""

    name: str
    a: Optional[Cost]
    b: Optional[Cost]

    def diff(self, q: str) -> int:
        """a − b; a missing side counts as zero, so differences add up to the totals'."""
        return (getattr(self.a, q) if self.a else 0) - (getattr(self.b, q) if self.b else 0)

    def ratio(self, q: str) -> Optional[float]:
        return ratio(getattr(self.a, q), getattr(self.b, q)) if self.a and self.b else None

    @property
    def input_channels(self) -> Optional[int]:
        """The channels both sides take, when they take the same."""
        if self.a and self.b and self.a.in_shape[0] == self.b.in_shape[0]:
            return self.a.in_shape[0]
        return None


@dataclass
class Network:
    """One side: a spec built in one variant, row by row (heads left out)."""

    label: str                  # how tables name this side: the variant, or the spec's file
    spec: Spec
    variant: Optional[str]
    input: Shape
    rows: Dict[str, Cost]       # in the spec's order
    settings: Dict[str, str] = dataclasses.field(default_factory=dict)   # as given

    def total(self, q: str) -> int:
        return sum(getattr(c, q) for c in self.rows.values())

    def describe(self) -> dict:
        return {"label": self.label, "spec": self.spec.path, "name": self.spec.name,
                "variant": self.variant, "settings": dict(self.settings),
                "input": list(self.input)}


def network(spec: Spec, variant: Optional[str], input_shape: Optional[Shape],
            label: str, settings: Optional[Dict[str, str]] = None) -> Network:
    g = graph.build(spec, variant, input_shape, settings=settings)
    return Network(label, spec, variant, g.input_shape, {r.name: Cost.of(r) for r in g.rows},
                   dict(settings or {}))


def side(text: str, common: Dict[str, str]) -> Tuple[Optional[str], Dict[str, str]]:
    """One side of ``compare A B``: a variant's name, or settings ``NAME=VALUE[,NAME=VALUE]``
    (``width=0.5``), each on top of the ``--set`` settings both sides share."""
    if "=" not in text:
        return text, dict(common)
    return None, {**common, **graph.parse_settings(text.split(","), f"'{text}'")}


@dataclass
class Comparison:
    mode: str                   # "variants" or "specs"
    a: Network
    b: Network
    modules: List[Pair]         # variants: the rows that differ, same input; specs: every row
    fed_by: Optional[str] = None    # variants: the variant whose network feeds the modules,
                                    # None where the blocks' first variants differ
    # variants: rows left out of the same-input comparison, since they take an earlier row's
    # output (from:) and cannot be built alone; they are in the whole networks
    apart: List[str] = dataclasses.field(default_factory=list)

    @property
    def feeder(self) -> str:
        return f"the {self.fed_by} network" if self.fed_by else "the spec's default network"

    def ratio(self, q: str) -> Optional[float]:
        return ratio(self.a.total(q), self.b.total(q))

    def module_total(self, side: str, q: str) -> int:
        return sum(getattr(getattr(p, side), q) for p in self.modules if getattr(p, side))

    def to_dict(self) -> dict:
        """The JSON contract: a, b, modules, network, ratios (the view adds the verdict)."""
        modules = [{"name": p.name, "input_channels": p.input_channels,
                    "a": p.a.to_dict() if p.a else None, "b": p.b.to_dict() if p.b else None,
                    "ratios": {q: p.ratio(q) for q in QUANTITIES},
                    "differences": {q: p.diff(q) for q in QUANTITIES}}
                   for p in self.modules]
        names = [p.name for p in self.modules]

        def stacked(n: Network) -> dict:
            widths = {name: n.rows[name].out_shape[0] for name in names if name in n.rows}
            return {**{q: n.total(q) for q in QUANTITIES}, "output_channels": widths}

        return {"mode": self.mode, "a": self.a.describe(), "b": self.b.describe(),
                "fed_by": self.fed_by, "modules": modules, "not_built_alone": self.apart,
                "network": {"a": stacked(self.a), "b": stacked(self.b)},
                "ratios": {q: self.ratio(q) for q in QUANTITIES},
                "differences": {q: self.a.total(q) - self.b.total(q) for q in QUANTITIES}}


# --- comparing -----------------------------------------------------------------------------

def run(a: str, b: str, spec: Optional[str] = None, variant: Optional[str] = None,
        input_shape: Optional[Shape] = None,
        settings: Optional[Dict[str, str]] = None) -> Comparison:
    """What ``archcalc compare A B`` compares: two specs when both arguments are specs
    (see :func:`is_spec`), else two variants (or two settings) of ``spec`` (the bundled
    GoogLeNet by default). ``settings`` (``--set``) apply to both sides."""
    settings = dict(settings or {})
    if is_spec(a) and is_spec(b):
        if spec is not None:
            raise ArchcalcError(f"'{a}' and '{b}' are specs; --spec is for naming the spec "
                                "whose variants to compare")
        return compare_specs(load(resolve_spec(a)), load(resolve_spec(b)), variant,
                             input_shape, settings)
    if is_spec(a) or is_spec(b):
        found, other = (a, b) if is_spec(a) else (b, a)
        raise ArchcalcError(f"'{found}' is a spec but '{other}' is neither a file nor a bundled "
                            f"spec: compare two specs, or two variants of one "
                            f"(archcalc compare naive reduced --spec {found})")
    if variant is not None:
        raise ArchcalcError("--variant is for comparing two specs; to compare variants, name "
                            "both as the arguments")
    return compare_variants(load(resolve_spec(spec or DEFAULT_SPEC)), a, b, input_shape,
                            settings)


def compare_variants(spec: Spec, a: str, b: str, input_shape: Optional[Shape] = None,
                     settings: Optional[Dict[str, str]] = None) -> Comparison:
    """Variants (or settings) ``a`` and ``b`` of ``spec``: per module on the same input, and
    stacked."""
    common = dict(settings or {})
    side_a, side_b = side(a, common), side(b, common)
    net_a = network(spec, side_a[0], input_shape, a, side_a[1])    # raises on unknown ones
    net_b = network(spec, side_b[0], input_shape, b, side_b[1])
    if a == b:
        raise ArchcalcError(f"'{a}' twice: name two different variants "
                            f"({', '.join(spec.variants)})", Position(spec.path))
    fed_by, feed_settings = _default_variant(spec), common
    if spec.network_variants and fed_by not in (side_a[0], side_b[0]) and \
            side_a[0] in spec.network_variants:
        # two networks of which neither is the default (resnet18 vs resnet34): A feeds both
        fed_by, feed_settings = side_a
    feed = graph.build(spec, fed_by, input_shape, settings=feed_settings)
    modules, apart = [], []
    for row, fed in zip(spec.rows, feed.rows):
        try:
            pair = _same_input(spec, row, fed.group.in_shape, side_a, side_b)
        except SpecError:       # a row that takes an earlier row's output cannot stand alone
            apart.append(row.name)
            continue
        if pair:
            modules.append(pair)
    if not modules:
        raise ArchcalcError(f"variants '{a}' and '{b}' build the same layers in every row: "
                            "nothing to compare", Position(spec.path))
    return Comparison("variants", net_a, net_b, modules, fed_by, apart)


def compare_specs(spec_a: Spec, spec_b: Spec, variant: Optional[str] = None,
                  input_shape: Optional[Shape] = None,
                  settings: Optional[Dict[str, str]] = None) -> Comparison:
    """Two specs, rows matched by name; a row only one of them has is paired with None."""
    label_a, label_b = _labels(spec_a, spec_b)
    net_a = network(spec_a, variant, input_shape, label_a, settings)
    net_b = network(spec_b, variant, input_shape, label_b, settings)
    if not set(net_a.rows) & set(net_b.rows):
        raise ArchcalcError(f"{spec_a.path} and {spec_b.path} have no row name in common: "
                            "nothing to match row by row")
    names = _union(list(net_a.rows), list(net_b.rows))
    modules = [Pair(n, net_a.rows.get(n), net_b.rows.get(n)) for n in names]
    return Comparison("specs", net_a, net_b, modules)


def _same_input(spec: Spec, row, shape: Shape, a, b) -> Optional[Pair]:
    """``row`` built alone on ``shape`` in both sides (variant, settings); None when the two
    are the same. Raises SpecError for a row that cannot stand alone (its ``from:`` takes an
    earlier row's output)."""
    alone = dataclasses.replace(spec, rows=[row], heads=[], input=shape)
    row_a, row_b = (graph.build(alone, v, settings=s).rows[0] for v, s in (a, b))
    if _layers(row_a) == _layers(row_b):
        return None
    return Pair(row.name, Cost.of(row_a), Cost.of(row_b))


def _layers(row: graph.Row) -> list:
    return [(l.name, l.kind, l.out_shape, l.counts()) for l in row.group.layers()]


def _default_variant(spec: Spec) -> Optional[str]:
    """The variant the spec builds by default, when every block's first variant is the same."""
    firsts = spec.first_variants
    return firsts[0] if len(firsts) == 1 else None


def _labels(spec_a: Spec, spec_b: Spec) -> Tuple[str, str]:
    """The files' names, or the paths where the names are the same."""
    for a, b in ((Path(spec_a.path).stem, Path(spec_b.path).stem), (spec_a.path, spec_b.path)):
        if a != b:
            return a, b
    return "A", "B"


def _union(a: List[str], b: List[str]) -> List[str]:
    """a's names in order; each of b's own after the nearest name before it in b."""
    out = list(a)
    for i, name in enumerate(b):
        if name not in out:
            before = next((out.index(n) for n in reversed(b[:i]) if n in out), -1)
            out.insert(before + 1, name)
    return out
