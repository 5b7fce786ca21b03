"""Expand a spec into a tree of named primitive layers, with every shape inferred.

Blocks are filled in with their arguments (in the chosen variant), ``act:`` becomes a layer of
its own, and every layer gets a dotted name: ``3a.b3x3.reduce``. A row of the spec is a
:class:`Group`; its leaves are :class:`Layer` records in execution order. A layer that does
not fit its input is a SpecError at the spec line that wrote it.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from archcalc.core import limits
from archcalc.errors import Position, SpecError, did_you_mean
from archcalc.core.ops import OPS, ArgError, Counts, Op, Shape, ShapeError
from archcalc.core.spec import Block, Branches, Call, Expr, Head, OpCall, PaperFigure, Seq, Spec, call_args


@dataclass
class Layer:
    """A primitive layer: one op at one place in the network (a join: after its branches)."""

    name: str                       # dotted path, also the torch module name
    op: Op
    in_shapes: Tuple[Shape, ...]
    out_shape: Shape
    pos: Position
    row: str
    _counts: Optional[Counts] = field(default=None, repr=False, compare=False)

    @property
    def kind(self) -> str:
        return self.op.name

    @property
    def in_shape(self) -> Shape:
        return self.in_shapes[0]

    @property
    def is_join(self) -> bool:
        """An op with several inputs (ops.base.Join): it takes every branch's output."""
        return self.op.inputs == "many"

    def counts(self) -> Counts:
        """What the layer costs, asked of its op once (shapes are fixed once built)."""
        if self._counts is None:
            self._counts = (self.op.counts(self.in_shapes, self.out_shape) if self.is_join
                            else self.op.counts(self.in_shape, self.out_shape))
        return self._counts


@dataclass
class Group:
    """A container: a sequence (``join`` None), or parallel branches ending in a join layer."""

    name: str                       # local name within its parent
    path: str                       # dotted path from the root
    children: List["Node"]
    in_shape: Shape
    out_shape: Shape
    join: Optional[Layer] = None

    def layers(self) -> Iterator[Layer]:
        """Every primitive layer inside, in execution order (a join after its branches)."""
        for child in self.children:
            if isinstance(child, Layer):
                yield child
            else:
                yield from child.layers()
        if self.join is not None:
            yield self.join


Node = Union[Layer, Group]


@dataclass
class Row:
    """One row of the spec's table (or one head): its group and what the spec said of it."""

    name: str
    group: Group
    pos: Position
    paper: Dict[str, PaperFigure] = field(default_factory=dict)
    block: Optional[str] = None                 # the block it calls, if it is one block call
    block_args: Dict[str, Any] = field(default_factory=dict)
    head: Optional[Head] = None

    @property
    def out_shape(self) -> Shape:
        return self.group.out_shape


@dataclass
class Graph:
    spec: Spec
    variant: Optional[str]
    input_shape: Shape
    rows: List[Row]
    heads: List[Row]                # empty unless built with heads=True
    with_heads: bool = False        # whether heads were built (and shape-checked)

    def layers(self, heads: bool = False) -> List[Layer]:
        if heads and not self.with_heads and self.spec.heads:
            raise ValueError("this graph was built without its heads: build(..., heads=True)")
        rows = self.rows + (self.heads if heads else [])
        return [layer for row in rows for layer in row.group.layers()]


def build(spec: Spec, variant: Optional[str] = None, input_shape: Optional[Shape] = None,
          heads: bool = False) -> Graph:
    """The layer graph of ``spec`` in ``variant`` (each block's first variant when None).

    Heads are training-only outputs: they are expanded and shape-checked only with ``heads``,
    so that a head which does not fit an input (a 5×5 pool on a 4×4 map) does not stop the
    main network's table. Their ``after:`` names and their own names are checked always."""
    if variant is not None and variant not in spec.variants:
        have = f"this spec has: {', '.join(spec.variants)}" if spec.variants else \
            "this spec has no block with variants"
        raise SpecError(f"unknown variant '{variant}'; {have}", Position(spec.path))
    try:
        return _build(spec, variant, input_shape, heads)
    except RecursionError:  # ARCHCALC_MAX_DEPTH raised beyond what Python's stack holds
        raise SpecError("the network nests too deeply for Python's stack",
                        Position(spec.path)) from None


def _build(spec: Spec, variant: Optional[str], input_shape: Optional[Shape],
           heads: bool) -> Graph:
    builder = _Builder(spec, variant)
    shape = tuple(input_shape or spec.input)
    rows, outputs = [], {}
    for row in spec.rows:
        builder.row_pos = row.pos
        group = builder.group(_named(row.body), row.name, row.name, {}, shape, row.name,
                              "the input")
        block, args = builder.call_info(row.body)
        rows.append(Row(row.name, group, row.pos, row.paper, block, args))
        outputs[row.name] = group.out_shape
        shape = group.out_shape
        builder.previous = row.name
    built, named = [], set()
    for head in spec.heads:
        if head.after not in outputs:
            raise SpecError(f"head '{head.name}': no layer named '{head.after}'"
                            f"{did_you_mean(head.after, outputs)}", head.pos)
        if head.name in outputs or head.name in named:
            raise SpecError(f"the name '{head.name}' is used twice", head.pos)
        named.add(head.name)
        if not heads:
            continue
        builder.previous, builder.row_pos = head.after, head.pos
        group = builder.group(_named(head.body), head.name, head.name, {},
                              outputs[head.after], head.name, head.after)
        block, args = builder.call_info(head.body)
        built.append(Row(head.name, group, head.pos, {}, block, args, head))
    return Graph(spec, variant, tuple(input_shape or spec.input), rows, built, heads)


class _Builder:
    def __init__(self, spec: Spec, variant: Optional[str]):
        self.spec, self.variant = spec, variant
        self.previous = "the input"     # the layer before, for messages
        self.calling: List[str] = []    # blocks being expanded, to catch recursion
        # how far expansion may go: blocks calling blocks multiply layers and nest groups
        self.max_layers = limits.get("ARCHCALC_MAX_LAYERS")
        self.max_depth = limits.get("ARCHCALC_MAX_DEPTH")
        self.layer_count = 0
        self.depth = 0
        self.row_pos = Position(spec.path)  # the row being built, where a limit is reported

    # -- containers ------------------------------------------------------------------------
    def group(self, expr: Expr, name: str, path: str, env, shape: Shape, row: str,
              before: str) -> Group:
        if self.depth >= self.max_depth:
            raise SpecError(f"layer '{row}': blocks, sequences and branches nest more than "
                            f"{self.max_depth:,} levels deep "
                            f"{limits.how_to_raise('ARCHCALC_MAX_DEPTH')}", expr.pos)
        self.depth += 1
        try:
            return self._group(expr, name, path, env, shape, row, before)
        finally:
            self.depth -= 1

    def _group(self, expr: Expr, name, path, env, shape, row, before) -> Group:
        if isinstance(expr, Call):
            block, env = self.enter(expr, env)
            try:
                return self.group(block.expr(self.variant), name, path, env, shape, row, before)
            finally:
                self.calling.pop()
        if isinstance(expr, Branches):
            return self.branches(expr, name, path, env, shape, row)
        items = expr.items if isinstance(expr, Seq) else [expr]
        children, out = self.sequence(items, path, env, shape, row)
        return Group(name, path, children, shape, out)

    def sequence(self, items: Sequence[Expr], path, env, shape, row):
        children: List[Node] = []
        taken = set()
        for item, local in zip(items, _local_names(items)):
            if isinstance(item, OpCall):
                layer = self.layer(item, f"{path}.{local}", env, shape, row)
                new = [layer]
                act = layer.op.a.get("act")
                if act:
                    new.append(self.activation(act, f"{path}.{local}_{act}", layer, row))
            else:
                new = [self.group(item, local, f"{path}.{local}", env, shape, row,
                                  self.previous)]
            for node in new:
                name = node.path if isinstance(node, Group) else node.name
                if name in taken:
                    raise SpecError(f"layer '{path}': the name '{name.rsplit('.', 1)[-1]}' is "
                                    "used twice", item.pos)
                taken.add(name)
                self.previous = name
            children += new
            shape = new[-1].out_shape
        return children, shape

    def branches(self, expr: Branches, name, path, env, shape, row) -> Group:
        names = [n or f"b{i + 1}" for i, (n, _) in enumerate(expr.branches)]
        start = self.previous
        groups = []
        for local, (_, sub) in zip(names, expr.branches):
            self.previous = start
            groups.append(self.group(sub, local, f"{path}.{local}", env, shape, row, start))
        join = OPS[expr.op]()
        shapes = tuple(g.out_shape for g in groups)
        try:
            out = join.output_shape(shapes)
        except ShapeError as exc:
            raise SpecError(f"layer '{path}': {exc}", expr.pos) from None
        layer = self.counted(Layer(path, join, shapes, out, expr.pos, row))
        return Group(name, path, groups, shape, out, layer)

    # -- leaves ----------------------------------------------------------------------------
    def layer(self, call: OpCall, path, env, shape, row) -> Layer:
        op = self.make_op(call, env, path)
        try:
            out = op.output_shape(shape)
        except ShapeError as exc:
            raise SpecError(f"layer '{path}': {exc} (after '{self.previous}')", call.pos) from None
        return self.counted(Layer(path, op, (shape,), out, call.pos, row))

    def activation(self, act: str, path: str, after: Layer, row: str) -> Layer:
        # made as a written op is, so that it takes its arguments' defaults and the spec's
        # `defaults:` for it (act: leaky_relu with defaults: {leaky_relu: {slope: 0.2}})
        op = self.make_op(OpCall(act, {}, {}, None, after.pos), {}, path)
        return self.counted(Layer(path, op, (after.out_shape,), op.output_shape(after.out_shape),
                                  after.pos, row))

    def counted(self, layer: Layer) -> Layer:
        """``layer``, once it is known to stay within the limit on layers."""
        self.layer_count += 1
        if self.layer_count > self.max_layers:
            raise SpecError(f"layer '{layer.row}': the network expands to more than "
                            f"{self.max_layers:,} layers "
                            f"{limits.how_to_raise('ARCHCALC_MAX_LAYERS')}", self.row_pos)
        return layer

    def make_op(self, call: OpCall, env, path) -> Op:
        cls = OPS[call.op]
        given = dict(self.spec.defaults.get(call.op, {}))
        given.update({k: (v, call.arg_pos[k]) for k, v in call.args.items()})
        values = {}
        for key, arg in cls.args.items():
            if key not in given:
                if arg.required:
                    raise SpecError(f"layer '{path}': {call.op} needs '{key}'", call.pos)
                values[key] = arg.check(arg.default) if arg.default is not None else None
                continue
            raw, pos = given[key]
            raw, pos = _substitute(raw, pos, env)
            try:
                values[key] = arg.check(raw)
            except ArgError as exc:
                hint = did_you_mean(raw, env) if isinstance(raw, str) and env else ""
                raise SpecError(f"layer '{path}': {call.op} '{key}' {exc}{hint}", pos) from None
        try:
            return cls(**values)
        except ArgError as exc:
            raise SpecError(f"layer '{path}': {call.op} {exc}", call.pos) from None

    # -- blocks ----------------------------------------------------------------------------
    def enter(self, call: Call, env) -> Tuple[Block, Dict[str, Tuple[Any, Position]]]:
        block = self.spec.blocks[call.block]
        if block.name in self.calling:
            raise SpecError(f"block '{block.name}' calls itself", call.pos)
        self.calling.append(block.name)
        args = [_substitute(v, p, env) for v, p in call_args(call, block)]
        return block, dict(zip(block.params, args))

    def call_info(self, expr: Expr):
        """The block a row calls and its arguments by name, for tables that show them."""
        if not isinstance(expr, Call):
            return None, {}
        block = self.spec.blocks[expr.block]
        return block.name, {p: v for p, (v, _) in zip(block.params, call_args(expr, block))}


def _named(body: Expr) -> Expr:
    """A row's body as its container's content. A block call or join that is the whole row is
    the row itself (``3a.b1x1.conv``); given a ``name``, it is named inside the row, as a named
    op is (``3a.x.b1x1.conv``)."""
    if isinstance(body, (Call, Branches)) and body.name is not None:
        return Seq([body], None, body.pos)
    return body


def _substitute(raw, pos, env):
    """A block argument's value where the body names it; anything else unchanged."""
    if isinstance(raw, str) and raw in env:
        return env[raw]
    if isinstance(raw, list) and any(isinstance(v, str) and v in env for v in raw):
        return [env[v][0] if isinstance(v, str) and v in env else v for v in raw], pos
    return raw, pos


def _default_name(expr: Expr) -> str:
    if isinstance(expr, OpCall):
        return expr.op
    if isinstance(expr, Call):
        return expr.block
    return expr.op if isinstance(expr, Branches) else "seq"


def _local_names(items: Sequence[Expr]) -> List[str]:
    """Given names, else the op's name, numbered (conv_1, conv_2) where it repeats."""
    defaults = [_default_name(e) for e in items]
    repeats = Counter(d for e, d in zip(items, defaults) if e.name is None)
    seen: Counter = Counter()
    names = []
    for expr, default in zip(items, defaults):
        if expr.name is not None:
            names.append(expr.name)
        elif repeats[default] > 1:
            seen[default] += 1
            names.append(f"{default}_{seen[default]}")
        else:
            names.append(default)
    return names
