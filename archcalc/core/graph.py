"""Expand a spec into a tree of named primitive layers, with every shape inferred.

Blocks are filled in with their arguments (in the chosen variant), ``act:`` becomes a layer of
its own, and every layer gets a dotted name: ``3a.b3x3.reduce``. A row of the spec is a
:class:`Group`; its leaves are :class:`Layer` records in execution order. A layer that does
not fit its input is a SpecError at the spec line that wrote it.
"""
from __future__ import annotations

import re

from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from archcalc.core import expr as expressions
from archcalc.core import limits, yamlpos
from archcalc.errors import Position, SpecError, did_you_mean
from archcalc.core.ops import OPS, ArgError, Counts, Op, Shape, ShapeError
from archcalc.core.ops.base import positive_int
from archcalc.core.spec import (Block, Branches, Call, Expr, From, Head, OpCall,
                                PaperFigure, Seq, Spec, Stage, call_args, setting_value,
                                without)

INPUT = ":input"        # the network's input, as a producer (no layer can have this name)


@dataclass
class Layer:
    """A primitive layer: one op at one place in the network (a join: after its branches)."""

    name: str                       # dotted path, also the torch module name
    op: Op
    in_shapes: Tuple[Shape, ...]
    out_shape: Shape
    pos: Position
    row: str
    # the layers whose outputs this one takes, one per input (INPUT: the network's input)
    inputs: Tuple[str, ...] = ()
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
            elif isinstance(child, Group):
                yield from child.layers()
        if self.join is not None:
            yield self.join


@dataclass
class Ref:
    """``from:`` in a sequence: what follows takes the output of the earlier node ``target``
    (a layer's or a container's dotted name, or INPUT) instead of the one before."""

    target: str
    out_shape: Shape
    pos: Position


Node = Union[Layer, Group, Ref]


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
    settings: Dict[str, Any] = field(default_factory=dict)     # every setting's value
    overrides: Dict[str, Any] = field(default_factory=dict)    # those set by the caller
    # nodes (layers, containers, INPUT) whose output a later ``from:`` takes
    referenced: frozenset = frozenset()

    def layers(self, heads: bool = False) -> List[Layer]:
        if heads and not self.with_heads and self.spec.heads:
            raise ValueError("this graph was built without its heads: build(..., heads=True)")
        rows = self.rows + (self.heads if heads else [])
        return [layer for row in rows for layer in row.group.layers()]

    def opaque(self, heads: bool = False) -> List[Layer]:
        """The layers that stand in for an operation archcalc cannot express (the ``opaque``
        op): their MACs are not counted and they cannot be built."""
        return [layer for layer in self.layers(heads) if layer.op.opaque]


def build(spec: Spec, variant: Optional[str] = None, input_shape: Optional[Shape] = None,
          heads: bool = False, settings: Optional[Dict[str, Any]] = None) -> Graph:
    """The layer graph of ``spec`` in ``variant`` (the default network when None).

    ``settings`` overrides the spec's settings by name (``{"width": "0.75"}``, as ``--set``
    gives them: text is read as a number where it is one). Heads are training-only outputs:
    they are expanded and shape-checked only with ``heads``, so that a head which does not fit
    an input (a 5×5 pool on a 4×4 map) does not stop the main network's table. Their ``after:``
    names and their own names are checked always."""
    check_variant(spec, variant)
    values, overrides = effective_settings(spec, variant, settings or {})
    try:
        return _build(spec, variant, input_shape, heads, values, overrides)
    except RecursionError:  # ARCHCALC_MAX_DEPTH raised beyond what Python's stack holds
        raise SpecError("the network nests too deeply for Python's stack",
                        Position(spec.path)) from None


def check_variant(spec: Spec, variant: Optional[str]) -> None:
    """A SpecError unless ``variant`` is None or one of the spec's (a block's or a network's)."""
    if variant is not None and variant not in spec.variants:
        have = f"this spec has: {', '.join(spec.variants)}" if spec.variants else \
            "this spec has no variants"
        raise SpecError(f"unknown variant '{variant}'; {have}", Position(spec.path))


def effective_settings(spec: Spec, variant: Optional[str], given: Dict[str, Any]):
    """Every setting's (value, position): the spec's defaults, then the network variant's (the
    first when ``variant`` names none), then ``given``; and the values ``given`` changed."""
    values = dict(spec.settings)
    network = spec.network_variants.get(variant) if variant else None
    if network is None and spec.network_variants:
        network = next(iter(spec.network_variants.values()))
    if network is not None:
        values.update(network.settings)
    changed = {}
    where = Position("--set")
    for name, raw in given.items():
        if name not in spec.settings:
            have = did_you_mean(name, spec.settings) or (
                f"; this spec has: {', '.join(spec.settings)}" if spec.settings else
                "; this spec has no settings")
            raise SpecError(f"no setting '{name}'{have}", where)
        value = setting_value(_number(raw), where, f"setting '{name}'")
        if value != values[name][0]:
            changed[name] = value
        values[name] = (value, where)
    return values, changed


def parse_settings(pairs, where: str) -> Dict[str, str]:
    """``NAME=VALUE`` texts (``--set``, a side of ``compare``) as a mapping; the spec checks the
    names and values when it is built."""
    out: Dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise SpecError(f"{where} takes NAME=VALUE (e.g. width=0.75), got {pair!r}")
        out[name.strip()] = value.strip()
    return out


def _number(raw: Any) -> Any:
    """``--set`` text as a number where it reads as one ("0.75", "10"), else the text."""
    if isinstance(raw, str) and expressions.is_expression(raw):
        return expressions.evaluate(raw, {}, Position("--set"))
    return raw


def _build(spec: Spec, variant, input_shape, heads: bool, settings, overrides) -> Graph:
    builder = _Builder(spec, variant, settings)
    shape = tuple(input_shape or spec.input)
    builder.spec_input = shape
    builder.current = builder.current_node = INPUT
    rows, outputs = [], {}
    for row in spec.rows:
        builder.row_pos = row.pos
        group = builder.group(_named(row.body), row.name, row.name, builder.globals, shape,
                              row.name, "the input")
        block, args = builder.call_info(row.body, shape)
        rows.append(Row(row.name, group, row.pos, row.paper, block, args))
        outputs[row.name] = group.out_shape
        shape = group.out_shape
        builder.previous = row.name
    _check_used([l for r in rows for l in r.group.layers()], builder.current)
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
        builder.current_node = head.after
        builder.current = builder.done[head.after][1]
        group = builder.group(_named(head.body), head.name, head.name, builder.globals,
                              outputs[head.after], head.name, head.after)
        block, args = builder.call_info(head.body, outputs[head.after])
        built.append(Row(head.name, group, head.pos, {}, block, args, head))
    return Graph(spec, variant, tuple(input_shape or spec.input), rows, built, heads,
                 {k: v for k, (v, _) in settings.items()}, overrides,
                 frozenset(builder.referenced))


def _check_used(layers: List[Layer], output: str) -> None:
    """Every layer's output reaches a later layer or is the network's output: a layer that a
    ``from:`` passed over would be counted but compute nothing the network gives."""
    used = {name for layer in layers for name in layer.inputs} | {output}
    for layer in layers:
        if layer.name not in used:
            raise SpecError(f"layer '{layer.name}': its output reaches no later layer and is "
                            "not the network's output (a 'from:' after it takes another "
                            "layer's); use it, or remove it", layer.pos)


class _Builder:
    def __init__(self, spec: Spec, variant: Optional[str], settings):
        self.spec, self.variant = spec, variant
        self.globals = dict(settings)   # every expression's names, block arguments aside
        self.previous = "the input"     # the layer before, for messages
        self.calling: List[str] = []    # blocks being expanded, to catch recursion
        # how far expansion may go: blocks calling blocks multiply layers and nest groups
        self.max_layers = limits.get("ARCHCALC_MAX_LAYERS")
        self.max_depth = limits.get("ARCHCALC_MAX_DEPTH")
        self.layer_count = 0
        self.depth = 0
        self.row_pos = Position(spec.path)  # the row being built, where a limit is reported
        # the real edges: the producer (a layer, or INPUT) of the current tensor, the node
        # (a layer or a container) whose output it is, and every finished node by its path
        self.current = INPUT
        self.current_node = INPUT
        self.done: Dict[str, Tuple[Shape, str]] = {INPUT: ((), INPUT)}
        # containers being built: (path, in shape, input node, input producer, is a scope)
        self.open: List[Tuple[str, Shape, str, str, bool]] = []
        self.referenced: set = set()
        self.stages: Dict[int, str] = {}    # each stage's blocks and repeats, for its row
        self.later_rows = {row.name for row in spec.rows}

    # -- containers ------------------------------------------------------------------------
    def group(self, expr: Expr, name: str, path: str, env, shape: Shape, row: str,
              before: str) -> Group:
        if self.depth >= self.max_depth:
            raise SpecError(f"layer '{row}': blocks, sequences and branches nest more than "
                            f"{self.max_depth:,} levels deep "
                            f"{limits.how_to_raise('ARCHCALC_MAX_DEPTH')}", expr.pos)
        # a row and a block call are where ``from: input`` looks: their input is the input
        scope = self.depth == 0 or isinstance(expr, Call)
        self.depth += 1
        self.open.append((path, shape, self.current_node, self.current, scope))
        try:
            group = self._group(expr, name, path, env, shape, row, before)
        finally:
            self.depth -= 1
            self.open.pop()
        self.finish(path, group.out_shape)
        return group

    def finish(self, path: str, shape: Shape) -> None:
        """``path`` is built: a later ``from:`` may take its output (the current tensor)."""
        self.done[path] = (shape, self.current)
        self.current_node = path
        self.later_rows.discard(path)

    def _group(self, expr: Expr, name, path, env, shape, row, before) -> Group:
        if isinstance(expr, Call):
            block, env = self.enter(expr, env, shape)
            try:
                return self.group(block.expr(self.variant), name, path, env, shape, row, before)
            finally:
                self.calling.pop()
        if isinstance(expr, Stage):
            return self.group(self.stage(expr, path, env, shape), name, path, env, shape, row, before)
        if isinstance(expr, Branches):
            return self.branches(expr, name, path, env, shape, row)
        items = expr.items if isinstance(expr, Seq) else [expr]
        children, out = self.sequence(items, path, env, shape, row)
        return Group(name, path, children, shape, out)

    def sequence(self, items: Sequence[Expr], path, env, shape, row):
        children: List[Node] = []
        taken = set()
        for item, local in zip(items, _local_names(items)):
            if isinstance(item, From):
                ref = self.ref(item, path, env)
                children.append(ref)
                shape = ref.out_shape
                continue
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
        start, node, producer = self.previous, self.current_node, self.current
        groups, ends = [], []
        for local, (_, sub) in zip(names, expr.branches):
            self.previous, self.current_node, self.current = start, node, producer
            groups.append(self.group(sub, local, f"{path}.{local}", env, shape, row, start))
            ends.append(self.current)
        join = OPS[expr.op]()
        shapes = tuple(g.out_shape for g in groups)
        try:
            out = join.output_shape(shapes)
        except ShapeError as exc:
            raise SpecError(f"layer '{path}': {exc}", expr.pos) from None
        layer = self.counted(Layer(path, join, shapes, out, expr.pos, row, tuple(ends)))
        self.current = path
        return Group(name, path, groups, shape, out, layer)

    def ref(self, item: From, path: str, env) -> Ref:
        """The node a ``from:`` names: the nearest enclosing scope's ``NAME`` first (inside
        ``layer1.0``, ``conv1`` is ``layer1.0.conv1``), then the dotted name from the top;
        ``input`` is the input of the block call (or row) the ``from:`` is written in. A
        leading ``/`` looks from the top only: ``/layer1.0.conv1``; ``/input`` is the
        network's input."""
        if isinstance(item.ref, str) and _DOTTED.fullmatch(item.ref):
            # a dotted name (enc4.conv2, layer1.0.relu) or one from the top (/input) is a
            # path, never an expression
            target, pos = item.ref, item.pos
        else:
            target, pos = _resolve(item.ref, item.pos, env, None)
        if not isinstance(target, str):
            raise SpecError(f"layer '{path}': 'from' takes a layer's name, got {target!r}", pos)
        if target == "/input":
            shape, found, self.current = self.spec_input, INPUT, INPUT
        elif target == "input":
            _, shape, found, self.current, _ = next(o for o in reversed(self.open) if o[4])
        else:
            scopes = [path.rsplit(".", i)[0] for i in range(path.count(".") + 1)]
            tried = [f"{scope}.{target}" for scope in scopes] + [target]
            if target.startswith("/"):      # from the top only: /layer1.0.conv1
                tried = [target[1:]]
            found = next((t for t in tried if t in self.done), None)
            if found is None:
                self.no_such_layer(target, tried, path, item.pos)
            shape, self.current = self.done[found]
        self.referenced.add(found)
        self.current_node = found
        self.previous = found
        return Ref(found, shape, item.pos)

    def no_such_layer(self, target: str, tried: List[str], path: str, pos: Position):
        building = {entry[0] for entry in self.open}
        cycle = next((t for t in tried if t in building), None)
        if cycle:
            raise SpecError(f"layer '{path}': 'from: {target}' names '{cycle}', which this layer "
                            "is part of: a layer cannot take its own output (a cycle)", pos)
        if any(t in self.later_rows for t in tried):
            raise SpecError(f"layer '{path}': 'from: {target}' names a later layer; a layer "
                            "can only take the output of one before it", pos)
        known = [p for p in self.done if p != INPUT]
        raise SpecError(f"layer '{path}': 'from: {target}' names no earlier layer"
                        f"{did_you_mean(target.lstrip('/'), known)}", pos)

    def stage(self, stage: Stage, path: str, env, shape) -> Seq:
        """The stage as the sequence of its repeats: block calls named 0, 1, 2, ..."""
        block = self.stage_block(stage.block, stage.block_pos, env)
        raw, pos = _within(f"layer '{path}': stage 'repeat'", (stage.repeat, stage.repeat_pos),
                           env, shape)
        try:
            count = positive_int(raw)
        except ArgError as exc:
            raise SpecError(f"layer '{path}': stage 'repeat' (how many times the block "
                            f"repeats) {exc}", pos) from None
        if count > self.max_layers:
            raise SpecError(f"layer '{path}': stage of {count:,} repeats is more than the "
                            f"limit of {self.max_layers:,} layers "
                            f"{limits.how_to_raise('ARCHCALC_MAX_LAYERS')}", pos)
        calls = []
        for i in range(count):
            parts = [stage.args] + ([stage.first] if i == 0 else []) + \
                ([stage.last] if i == count - 1 else [])
            args = _merged(parts)
            name = block.name
            if "block" in args:     # first: {block: ...}: another block for this repeat
                name = self.stage_block(args["block"], args.value_pos["block"], env).name
                args = without(args, "block")
            calls.append(Call(name, args, str(i), stage.pos))
        self.stages[id(stage)] = _stage_label([call.block for call in calls])
        return Seq(calls, None, stage.pos)

    def stage_block(self, name: str, pos: Position, env) -> Block:
        """The block a stage names: a block, or a setting (or argument) whose value names one."""
        block = self.spec.blocks.get(name)
        if block is None:
            value, _ = env.get(name, (None, None))
            block = self.spec.blocks.get(value) if isinstance(value, str) else None
            if block is None:
                raise SpecError(f"stage: '{name}' is {value!r}, not a block's name"
                                f"{did_you_mean(str(value), self.spec.blocks)}", pos)
        return block

    # -- leaves ----------------------------------------------------------------------------
    def layer(self, call: OpCall, path, env, shape, row) -> Layer:
        op = self.make_op(call, env, path, shape)
        try:
            out = op.output_shape(shape)
        except ShapeError as exc:
            raise SpecError(f"layer '{path}': {exc} (after '{self.previous}')", call.pos) from None
        layer = self.counted(Layer(path, op, (shape,), out, call.pos, row, (self.current,)))
        self.current = path
        self.finish(path, out)
        return layer

    def activation(self, act: str, path: str, after: Layer, row: str) -> Layer:
        # made as a written op is, so that it takes its arguments' defaults and the spec's
        # `defaults:` for it (act: leaky_relu with defaults: {leaky_relu: {slope: 0.2}})
        op = self.make_op(OpCall(act, {}, {}, None, after.pos), self.globals, path,
                          after.out_shape)
        layer = self.counted(Layer(path, op, (after.out_shape,),
                                   op.output_shape(after.out_shape), after.pos, row,
                                   (after.name,)))
        self.current = path
        self.finish(path, layer.out_shape)
        return layer

    def counted(self, layer: Layer) -> Layer:
        """``layer``, once it is known to stay within the limit on layers."""
        self.layer_count += 1
        if self.layer_count > self.max_layers:
            raise SpecError(f"layer '{layer.row}': the network expands to more than "
                            f"{self.max_layers:,} layers "
                            f"{limits.how_to_raise('ARCHCALC_MAX_LAYERS')}", self.row_pos)
        return layer

    def make_op(self, call: OpCall, env, path, shape) -> Op:
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
            raw, pos = given[key] if arg.literal else \
                _within(f"layer '{path}': {call.op} '{key}'", given[key], env, shape)
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
    def enter(self, call: Call, env, shape) -> Tuple[Block, Dict[str, Tuple[Any, Position]]]:
        """The block a call expands, and its names: the settings, then its arguments, each
        worked out where the call is (an expression sees the caller's names and input; a
        default sees the settings, the arguments the call gave and the input)."""
        block = self.spec.blocks[call.block]
        if block.name in self.calling:
            raise SpecError(f"block '{block.name}' calls itself", call.pos)
        self.calling.append(block.name)
        args, defaulted = {}, []
        for param, given in zip(block.params, call_args(call, block)):
            if given is block.defaults.get(param):
                defaulted.append((param, given))
            else:
                args[param] = _within(f"block '{block.name}' argument '{param}'", given, env,
                                      shape)
        # a default is worked out at the call too, and may name the arguments given
        # ({hidden: "out * 4"}): its names are the settings, those arguments and the input
        for param, given in defaulted:
            args[param] = _within(f"block '{block.name}' argument '{param}' (its default)",
                                  given, {**self.globals, **args}, shape)
        return block, {**self.globals, **args}

    def call_info(self, expr: Expr, shape: Shape):
        """The block a row calls (``bottleneck ×3`` for a stage) and its arguments by name as
        they were worked out (a stage's: those every repeat shares), for tables that show them."""
        if isinstance(expr, Stage):
            label = self.stages[id(expr)]
            given = [(key, (expr.args[key], expr.args.value_pos[key])) for key in expr.args]
        elif isinstance(expr, Call):
            block = self.spec.blocks[expr.block]
            given, label = list(zip(block.params, call_args(expr, block))), block.name
        else:
            return None, {}
            shape = None    # an argument that names the input differs from repeat to repeat
        return label, {key: _shown(raw, pos, self.globals, shape) for key, (raw, pos) in given}


def _named(body: Expr) -> Expr:
    """A row's body as its container's content. A block call, stage or join that is the whole
    row is the row itself (``3a.b1x1.conv``, ``layer1.0.conv1``); given a ``name``, it is named
    inside the row, as a named op is (``3a.x.b1x1.conv``)."""
    if isinstance(body, (Call, Branches, Stage)) and body.name is not None:
        return Seq([body], None, body.pos)
    return body


_DOTTED = re.compile(r"/[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*|[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+")


def _resolve(raw, pos, env, shape: Optional[Shape]):
    """An argument's (value, position) where it is used: a name that the block's arguments,
    the settings or the input (``cin``, ``hin``, ``win``) give, an expression worked out
    exactly, or the value as written ('same', 3). A list is worked out item by item."""
    if isinstance(raw, str):
        if raw in env:
            return env[raw]
        names = _names(env, shape)
        if raw in names:
            return names[raw], pos
        if expressions.is_expression(raw):
            return expressions.evaluate(raw, names, pos), pos
        return raw, pos
    if isinstance(raw, list):
        return [_resolve(v, pos, env, shape)[0] for v in raw], pos
    return raw, pos


def _stage_label(blocks: List[str]) -> str:
    """What a stage's row says it is: its blocks in order, each with its repeats
    (``bottleneck ×3``; ``basic_down ×1 + basic ×1``)."""
    runs: List[List] = []
    for name in blocks:
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    return " + ".join(f"{name} ×{n}" for name, n in runs)


def _within(where: str, given, env, shape):
    """``_resolve`` of a (raw, position), an expression's error saying where it was."""
    try:
        return _resolve(*given, env, shape)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc.message}", exc.pos) from None


def _shown(raw, pos, env, shape) -> Any:
    """An argument's value for a table: worked out, or as written where it cannot be."""
    try:
        return _plain(_resolve(raw, pos, env, shape)[0])
    except SpecError:
        return raw


def _plain(value: Any) -> Any:
    """A worked-out value as tables and JSON take it: a fraction as a float (3/4 as 0.75)."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return float(value) if isinstance(value, Fraction) else value


def _names(env, shape: Optional[Shape]) -> Dict[str, Any]:
    """What an expression may name: the input's size where it is known, settings, arguments."""
    names: Dict[str, Any] = {}
    if shape:
        names["cin"] = shape[0]
        if len(shape) == 3:
            names["hin"], names["win"] = shape[1], shape[2]
    names.update({k: v for k, (v, _) in env.items()})
    return names


def _merged(parts) -> "yamlpos.PosDict":
    """Argument mappings merged, later ones winning, with their positions."""
    out = yamlpos.PosDict()
    out.pos, out.key_pos, out.value_pos = parts[0].pos, {}, {}
    for part in parts:
        for key in part:
            out[key] = part[key]
            out.key_pos[key] = part.key_pos[key]
            out.value_pos[key] = part.value_pos[key]
    return out


def _default_name(expr: Expr) -> str:
    if isinstance(expr, OpCall):
        return expr.op
    if isinstance(expr, Call):
        return expr.block
    if isinstance(expr, Stage):
        return "stage"
    if isinstance(expr, From):
        return "from"
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
