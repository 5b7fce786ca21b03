"""Read a YAML spec into plain records that keep the user's words and their positions.

Nothing here computes shapes or counts: a :class:`Spec` is what the user wrote, checked for
form (known keys, known ops and blocks, names), ready for :mod:`archcalc.graph` to expand.
Op argument values are checked there, once block arguments are filled in.
"""
from __future__ import annotations

import math
import re
from fractions import Fraction
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from archcalc.core import yamlpos
from archcalc.core.expr import IDENTIFIER, exact
from archcalc.core.limits import MAX_INT
from archcalc.errors import Position, SpecError, did_you_mean
from archcalc.core.ops import OPS

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
PAPER_FIGURE = re.compile(r"^([0-9]{1,30}(?:\.[0-9]{1,30})?)([KMG]?)$")
ASCII_INT = re.compile(r"^[0-9]{1,30}$")
STRUCTURAL = ("seq", "stage", "from")   # keys that are not ops: ops with several inputs are ops
PAPER_QUANTITIES = ("params", "ops")
PAPER_PARAMS = ("weights", "params")    # what a paper's parameter figures count
# names every expression has: the channels, height and width of the input at that point
INPUT_NAMES = ("cin", "hin", "win")


@dataclass
class OpCall:
    op: str
    args: Dict[str, Any]            # raw values; inside a block they may name block arguments
    arg_pos: Dict[str, Position]
    name: Optional[str]
    pos: Position


@dataclass
class Seq:
    items: List["Expr"]
    name: Optional[str]
    pos: Position


@dataclass
class Branches:
    op: str                                     # a Join's name: "concat", "add"
    branches: List[Tuple[Optional[str], "Expr"]]
    name: Optional[str]
    pos: Position


@dataclass
class Call:
    block: str
    args: Any   # [(value, position)] in the block's order, or a mapping by argument name
    name: Optional[str]
    pos: Position


@dataclass
class Stage:
    """A block stamped ``repeat`` times, the repeats named ``0, 1, 2, ...``; ``first`` and
    ``last`` override arguments of the first and last repeat (the one that strides), and may
    name another ``block`` for it (the one with a projection shortcut)."""

    block: str                      # a block's name, or a setting whose value names one
    block_pos: Position
    repeat: Any                     # raw: a count, a setting, an expression
    repeat_pos: Position
    args: "yamlpos.PosDict"         # arguments of every repeat, by name
    first: "yamlpos.PosDict"
    last: "yamlpos.PosDict"
    name: Optional[str]
    pos: Position


@dataclass
class From:
    """``from: NAME``: what follows takes the output of the earlier layer NAME (dotted, or
    relative to the enclosing rows, blocks and branches; ``input``: the container's input)."""

    ref: Any                        # raw: a name, or a block argument holding one
    name: Optional[str]
    pos: Position


Expr = Union[OpCall, Seq, Branches, Call, Stage, From]


@dataclass
class Block:
    name: str
    params: List[str]
    variants: Dict[str, Expr]       # named variants, the first being the default; or empty
    body: Optional[Expr]            # the one body of a block without variants
    pos: Position
    defaults: Dict[str, Tuple[Any, Position]] = field(default_factory=dict)

    def expr(self, variant: Optional[str]) -> Expr:
        """The body in ``variant`` when the block has it, else its default."""
        if not self.variants:
            return self.body
        return self.variants.get(variant) or next(iter(self.variants.values()))


@dataclass
class PaperFigure:
    printed: str                    # as the publication prints it: "2.7K"
    value: float                    # 2.7
    unit: str                       # "K", "M", "G" or ""
    decimals: int                   # digits printed after the point
    pos: Position


@dataclass
class NetworkVariant:
    """A named setting of the whole network (``resnet50``): its settings and paper figures."""

    name: str
    settings: Dict[str, Tuple[Any, Position]]
    paper: Dict[str, PaperFigure]
    pos: Position


@dataclass
class Row:
    name: str
    body: Expr
    paper: Dict[str, PaperFigure]
    pos: Position


@dataclass
class Head:
    name: str
    after: str
    body: Expr
    loss_weight: float
    pos: Position


@dataclass
class Spec:
    path: str
    name: str
    source: str
    description: str
    input: Tuple[int, ...]
    defaults: Dict[str, Dict[str, Tuple[Any, Position]]]
    blocks: Dict[str, Block]
    rows: List[Row]
    heads: List[Head]
    paper_units: Dict[str, int] = field(default_factory=lambda: {"params": 1024, "ops": 1000})
    settings: Dict[str, Tuple[Any, Position]] = field(default_factory=dict)
    network_variants: Dict[str, NetworkVariant] = field(default_factory=dict)
    paper: Dict[str, PaperFigure] = field(default_factory=dict)     # the whole network's
    paper_params: str = "weights"   # a paper's parameter figures: weights only, or with biases

    @property
    def first_variants(self) -> List[str]:
        """The variants the spec builds by default, once each: its first network variant, and
        the first variant of each block with variants."""
        names: List[str] = list(self.network_variants)[:1]
        for block in self.blocks.values():
            first = next(iter(block.variants), None)
            if first is not None and first not in names:
                names.append(first)
        return names

    @property
    def variants(self) -> List[str]:
        names: List[str] = list(self.network_variants)
        for block in self.blocks.values():
            names += [v for v in block.variants if v not in names]
        return names


# --- reading -------------------------------------------------------------------------------

def load(path: Union[str, Path]) -> Spec:
    """Read and check the spec at ``path``; raise SpecError with a position on any problem."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SpecError(f"cannot read the spec: {reason}", Position(path)) from None
    return parse(text, path)


def parse(text: str, path: str = "<spec>") -> Spec:
    doc = yamlpos.load(text, path)
    try:
        return _parse(doc, path)
    except RecursionError:  # ARCHCALC_MAX_DEPTH raised beyond what Python's stack holds
        raise SpecError("the spec nests too deeply for Python's stack", Position(path)) from None


def _parse(doc, path: str) -> Spec:
    if not isinstance(doc, yamlpos.PosDict):
        raise SpecError("a spec is a mapping with 'input' and 'layers'", _pos_of(doc, path))
    _check_keys(doc, ("name", "source", "description", "input", "settings", "variants",
                      "defaults", "blocks", "layers", "heads", "paper", "paper_units",
                      "paper_params"), "the spec")
    for key in ("input", "layers"):
        if key not in doc:
            raise SpecError(f"the spec has no '{key}'", doc.pos)
    reader = _Reader(path)
    blocks = reader.blocks(doc.get("blocks"), doc.value_pos.get("blocks", doc.pos))
    reader.known_blocks = blocks
    spec = Spec(
        path=path,
        name=_text(doc, "name", Path(path).stem),
        source=_text(doc, "source", ""),
        description=_text(doc, "description", ""),
        input=parse_input(doc["input"], doc.value_pos["input"]),
        defaults=reader.defaults(doc.get("defaults"), doc.value_pos.get("defaults", doc.pos)),
        blocks=blocks,
        rows=reader.rows(doc["layers"], doc.value_pos["layers"]),
        heads=reader.heads(doc.get("heads"), doc.value_pos.get("heads", doc.pos)),
    )
    if "paper_units" in doc:
        spec.paper_units = reader.paper_units(doc["paper_units"], doc.value_pos["paper_units"])
    if "paper_params" in doc:
        spec.paper_params = reader.paper_params(doc["paper_params"], doc.value_pos["paper_params"])
    if "paper" in doc:
        spec.paper = reader.paper(doc["paper"], doc.value_pos["paper"], "the spec")
    spec.settings = reader.settings(doc.get("settings"), doc.value_pos.get("settings", doc.pos))
    spec.network_variants = reader.network_variants(
        doc.get("variants"), doc.value_pos.get("variants", doc.pos), spec)
    reader.check_calls(spec)
    return spec


def setting_value(value: Any, pos: Position, what: str):
    """A setting's value: a number (kept exact, 0.75 as the fraction 3/4) or a name (text that
    an argument or a stage's ``block`` takes, like ``relu`` or ``bottleneck``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Fraction)):
        raise SpecError(f"{what} must be a number or a name, got {value!r}", pos)
    if isinstance(value, str):
        if not IDENTIFIER.fullmatch(value):
            raise SpecError(f"{what} must be a number or a name (letters, digits, '_'), "
                            f"got {value!r}", pos)
        return value
    return exact(value)


def parse_input(value: Any, pos: Position) -> Tuple[int, ...]:
    """``[C, H, W]`` (or ``[F]``) of positive integers, from YAML or the CLI's ``3x224x224``."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.lower().replace("×", "x").split("x")]
        # ASCII digits only ('²' is a digit to str.isdigit), and never a number too long to
        # convert: such a part stays text, and the check below refuses it
        value = [int(p) if ASCII_INT.match(p) else p for p in parts]
    ok = isinstance(value, list) and len(value) in (1, 3) and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    if not ok:
        shown = repr(value) if len(repr(value)) <= 80 else f"{repr(value)[:60]}…"
        raise SpecError(f"'input' must be [channels, height, width] of positive integers, "
                        f"got {shown}", pos)
    if max(value) > MAX_INT:
        raise SpecError(f"'input' dimensions must be at most {MAX_INT:,}, got {max(value)}", pos)
    return tuple(value)


def _pos_of(value: Any, path: str) -> Position:
    return getattr(value, "pos", Position(path, 1, 1))


def _check_keys(mapping: "yamlpos.PosDict", allowed, where: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise SpecError(f"{where}: unknown key '{key}'{did_you_mean(key, allowed)}",
                            mapping.key_pos[key])


def _text(doc, key: str, default: str) -> str:
    value = doc.get(key, default)
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise SpecError(f"'{key}' must be text", doc.value_pos[key])
    return str(value)


def _name(value: Any, pos: Position, what: str) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool) or not NAME.match(str(value)):
        raise SpecError(f"{what} {value!r} must be letters, digits, '_' or '-' (no dots)", pos)
    return str(value)


class _Reader:
    """Turns positioned YAML into spec records; knows the blocks once they are read."""

    def __init__(self, path: str):
        self.path = path
        self.known_blocks: Dict[str, Block] = {}
        self.called: List[Call] = []
        self.stages: List[Stage] = []

    # -- sections --------------------------------------------------------------------------
    def blocks(self, value, pos) -> Dict[str, Block]:
        if value is None:
            return {}
        mapping = self._mapping(value, pos, "'blocks'")
        out = {}
        # a block may call one defined after it: know every name before reading bodies
        self.known_blocks = {_name(k, mapping.key_pos[k], "block name"): None for k in mapping}
        for key in mapping:
            if key in OPS or key in STRUCTURAL:
                raise SpecError(f"block '{key}' has the name of an op", mapping.key_pos[key])
            out[key] = self.block(key, mapping[key], mapping.value_pos[key])
        return out

    def block(self, name, value, pos) -> Block:
        where = f"block '{name}'"
        body = self._mapping(value, pos, where)
        _check_keys(body, ("args", "body", "variants", "description"), where)
        params, defaults = self.block_args(body.get("args", []),
                                           body.value_pos.get("args", body.pos), where)
        if ("body" in body) == ("variants" in body):
            raise SpecError(f"{where}: give either 'body' or 'variants'", body.pos)
        if "body" in body:
            return Block(name, params, {}, self.expr(body["body"], body.value_pos["body"], where),
                         pos, defaults)
        table = self._mapping(body["variants"], body.value_pos["variants"], where)
        if not table:
            raise SpecError(f"{where}: 'variants' is empty", table.pos)
        variants = {_name(k, table.key_pos[k], "variant"):
                    self.expr(table[k], table.value_pos[k], f"{where}, variant '{k}'")
                    for k in table}
        return Block(name, params, variants, None, pos, defaults)

    def block_args(self, value, pos, where):
        """``args: [width, out, {stride: 1}]``: names, and defaults after the required ones."""
        if value == []:
            return [], {}
        if not isinstance(value, yamlpos.PosList):
            raise SpecError(f"{where}: 'args' must be a list of names (a default as "
                            "{name: value})", pos)
        params, defaults = [], {}
        for i, item in enumerate(value):
            item_pos = value.item_pos[i]
            if isinstance(item, yamlpos.PosDict) and len(item) == 1:
                key = next(iter(item))
                param = _name(key, item.key_pos[key], "argument")
                defaults[param] = (item[key], item.value_pos[key])
            else:
                param = _name(item, item_pos, "argument")
                if defaults:
                    raise SpecError(f"{where}: argument '{param}' has no default but follows "
                                    "one that has; list the required arguments first", item_pos)
            if param in INPUT_NAMES:
                raise SpecError(f"{where}: '{param}' is the input's size in expressions; "
                                "name the argument otherwise", item_pos)
            if param in params:
                raise SpecError(f"{where}: argument '{param}' is listed twice", item_pos)
            params.append(param)
        return params, defaults

    def settings(self, value, pos) -> Dict[str, Tuple[Any, Position]]:
        if value is None:
            return {}
        mapping = self._mapping(value, pos, "'settings'")
        out = {}
        for key in mapping:
            if not IDENTIFIER.fullmatch(str(key)) or key in INPUT_NAMES:
                raise SpecError(f"setting {key!r} must be a name of letters, digits and '_' "
                                f"(not starting with a digit), other than {', '.join(INPUT_NAMES)}",
                                mapping.key_pos[key])
            out[key] = (setting_value(mapping[key], mapping.value_pos[key], f"setting '{key}'"),
                        mapping.value_pos[key])
        return out

    def network_variants(self, value, pos, spec) -> Dict[str, NetworkVariant]:
        """``variants: {resnet18: {settings: {...}, paper: {...}}, ...}``: the first is the
        default network; each sets some of the spec's settings."""
        if value is None:
            return {}
        table = self._mapping(value, pos, "'variants'")
        if not table:
            raise SpecError("'variants' is empty", pos)
        out = {}
        for key in table:
            name = _name(key, table.key_pos[key], "variant")
            where = f"variant '{name}'"
            body = self._mapping(table[key], table.value_pos[key], where)
            _check_keys(body, ("settings", "paper", "description"), where)
            given = self.settings(body.get("settings"), body.value_pos.get("settings", body.pos))
            for setting, (_, setting_pos) in given.items():
                if setting not in spec.settings:
                    raise SpecError(f"{where}: no setting '{setting}' in the spec's 'settings'"
                                    f"{did_you_mean(setting, spec.settings)}", setting_pos)
            paper = self.paper(body["paper"], body.value_pos["paper"], where) \
                if "paper" in body else {}
            out[name] = NetworkVariant(name, given, paper, table.key_pos[key])
        for block in spec.blocks.values():
            for variant in block.variants:
                if variant in out:
                    raise SpecError(f"variant '{variant}' names both a network variant and a "
                                    f"variant of block '{block.name}'", out[variant].pos)
        return out

    def defaults(self, value, pos):
        if value is None:
            return {}
        mapping = self._mapping(value, pos, "'defaults'")
        out = {}
        for op in mapping:
            if op not in OPS:
                raise SpecError(f"'defaults': unknown op '{op}'{did_you_mean(op, OPS)}",
                                mapping.key_pos[op])
            args = self._mapping(mapping[op], mapping.value_pos[op], f"defaults of '{op}'")
            _check_keys(args, OPS[op].args, f"defaults of '{op}'")
            out[op] = {k: (args[k], args.value_pos[k]) for k in args}
        return out

    def rows(self, value, pos) -> List[Row]:
        mapping = self._mapping(value, pos, "'layers'")
        if not mapping:
            raise SpecError("'layers' is empty", pos)
        rows = []
        for key in mapping:
            name = _name(key, mapping.key_pos[key], "layer name")
            body, paper = mapping[key], {}
            where = f"layer '{name}'"
            if isinstance(body, yamlpos.PosDict) and "paper" in body:
                paper = self.paper(body["paper"], body.value_pos["paper"], where)
                body = without(body, "paper")
            rows.append(Row(name, self.expr(body, mapping.value_pos[key], where), paper,
                            mapping.key_pos[key]))
        return rows

    def heads(self, value, pos) -> List[Head]:
        if value is None:
            return []
        mapping = self._mapping(value, pos, "'heads'")
        heads = []
        for key in mapping:
            name = _name(key, mapping.key_pos[key], "head name")
            where = f"head '{name}'"
            head = self._mapping(mapping[key], mapping.value_pos[key], where)
            _check_keys(head, ("after", "use", "loss_weight"), where)
            for required in ("after", "use"):
                if required not in head:
                    raise SpecError(f"{where} has no '{required}'", head.pos)
            weight = head.get("loss_weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or \
                    not math.isfinite(weight) or weight < 0:
                raise SpecError(f"{where}: 'loss_weight' must be a non-negative (finite) number, "
                                f"got {weight!r}", head.value_pos.get("loss_weight", head.pos))
            after = _name(head["after"], head.value_pos["after"], "layer name")
            body = self.expr(head["use"], head.value_pos["use"], where)
            heads.append(Head(name, after, body, float(weight), mapping.key_pos[key]))
        return heads

    def paper(self, value, pos, where) -> Dict[str, PaperFigure]:
        mapping = self._mapping(value, pos, f"{where}: 'paper'")
        _check_keys(mapping, PAPER_QUANTITIES, f"{where}: 'paper'")
        out = {}
        for key in mapping:
            printed = str(mapping[key])
            match = PAPER_FIGURE.match(printed)
            if isinstance(mapping[key], bool) or not match:
                raise SpecError(f"{where}: paper '{key}' must be a figure like 2.7K, 34M or 1000, "
                                f"got {mapping[key]!r}", mapping.value_pos[key])
            number, unit = match.groups()
            decimals = len(number.split(".")[1]) if "." in number else 0
            out[key] = PaperFigure(printed, float(number), unit, decimals, mapping.value_pos[key])
        return out

    def paper_params(self, value, pos) -> str:
        if value not in PAPER_PARAMS:
            raise SpecError(f"'paper_params' must be weights (biases left out, as GoogLeNet's "
                            f"Table 1 counts) or params (all trainable parameters), got {value!r}",
                            pos)
        return value

    def paper_units(self, value, pos) -> Dict[str, int]:
        mapping = self._mapping(value, pos, "'paper_units'")
        _check_keys(mapping, PAPER_QUANTITIES, "'paper_units'")
        for key in mapping:
            if mapping[key] not in (1000, 1024):
                raise SpecError(f"'paper_units': '{key}' must be 1000 or 1024 (the size of K), "
                                f"got {mapping[key]!r}", mapping.value_pos[key])
        return {"params": 1024, "ops": 1000, **mapping}

    def check_calls(self, spec: Spec) -> None:
        for call in self.called:
            block = spec.blocks[call.block]
            _name_from_args(call, block)
            call_args(call, block)
        known = list(spec.blocks) + list(spec.settings)
        for stage in self.stages:
            named = [(stage.block, stage.block_pos)] + [
                (part["block"], part.value_pos["block"]) for part in (stage.first, stage.last)
                if "block" in part]
            for block, pos in named:
                if not isinstance(block, str) or block not in known:
                    raise SpecError(f"stage: no block or setting named {block!r}"
                                    f"{did_you_mean(str(block), known)}", pos)

    # -- expressions -----------------------------------------------------------------------
    def expr(self, value, pos, where, name=None) -> Expr:
        """An op, a block call, a list (sequence), a seq, or a join (concat, add) of branches."""
        if isinstance(value, yamlpos.PosList):
            return Seq([self.expr(v, value.item_pos[i], where) for i, v in enumerate(value)],
                       name, pos)
        if isinstance(value, str):
            return self._call(value, None, pos, pos, where, name)
        if not isinstance(value, yamlpos.PosDict) or not value:
            raise SpecError(f"{where}: expected an op (like conv: {{...}}), a list of ops or a "
                            f"block call, got {value!r}", pos)
        if "name" in value:
            name = _name(value["name"], value.value_pos["name"], "name")
        keys = [k for k in value if k != "name"]
        if len(keys) != 1:
            listed = ", ".join(f"'{k}'" for k in keys) or "none"
            raise SpecError(f"{where}: one op per entry, got {listed} (a list makes a "
                            "sequence)", value.pos)
        key = keys[0]
        return self._call(key, value[key], value.key_pos[key], value.value_pos[key], where, name)

    def _call(self, key, args, pos, args_pos, where, name) -> Expr:
        if key == "from":
            if isinstance(args, bool) or not isinstance(args, (str, int)):
                raise SpecError(f"{where}: 'from' takes the name of an earlier layer, got "
                                f"{args!r}", args_pos)
            return From(str(args), name, pos)
        if key == "stage":
            return self._stage(args, pos, args_pos, where, name)
        if key == "seq":
            if not isinstance(args, yamlpos.PosList) or not args:
                raise SpecError(f"{where}: 'seq' takes a non-empty list", args_pos)
            return Seq([self.expr(v, args.item_pos[i], where) for i, v in enumerate(args)],
                       name, pos)
        if key in OPS and OPS[key].inputs == "many":
            return Branches(key, self._branches(key, args, args_pos, where), name, pos)
        if key in OPS:
            return self._op(key, args, pos, args_pos, where, name)
        if key in self.known_blocks:
            return self._block_call(key, args, pos, args_pos, where, name)
        choices = list(OPS) + list(STRUCTURAL) + list(self.known_blocks)
        raise SpecError(f"{where}: unknown op '{key}'{did_you_mean(str(key), choices)}", pos)

    def _branches(self, kind, value, pos, where):
        if isinstance(value, yamlpos.PosList) and len(value) >= 2:
            return [(None, self.expr(v, value.item_pos[i], where)) for i, v in enumerate(value)]
        if isinstance(value, yamlpos.PosDict) and len(value) >= 2:
            return [(_name(k, value.key_pos[k], "branch name"),
                     self.expr(value[k], value.value_pos[k], where)) for k in value]
        raise SpecError(f"{where}: '{kind}' takes two or more branches, as a list or a mapping "
                        "of branch names", pos)

    def _op(self, op, args, pos, args_pos, where, name):
        if args is None:
            args = yamlpos.PosDict()
            args.pos, args.key_pos, args.value_pos = args_pos, {}, {}
        if not isinstance(args, yamlpos.PosDict):
            raise SpecError(f"{where}: '{op}' takes a mapping of arguments, got {args!r}",
                            args_pos)
        _check_keys(args, list(OPS[op].args) + ["name"], f"{where}: {op}")
        if "name" in args:
            name = _name(args["name"], args.value_pos["name"], "name")
        values = {k: args[k] for k in args if k != "name"}
        return OpCall(op, values, {k: args.value_pos[k] for k in values}, name, pos)

    def _block_call(self, block, args, pos, args_pos, where, name):
        if args is None:
            args = []
        elif isinstance(args, yamlpos.PosList):
            args = [(v, args.item_pos[i]) for i, v in enumerate(args)]
        elif not isinstance(args, yamlpos.PosDict):
            args = [(args, args_pos)]  # a single positional argument
        call = Call(block, args, name, pos)
        self.called.append(call)
        return call

    def _stage(self, value, pos, args_pos, where, name) -> Stage:
        where = f"{where}: stage"
        body = self._mapping(value, args_pos, where)
        _check_keys(body, ("block", "repeat", "args", "first", "last"), where)
        for required in ("block", "repeat"):
            if required not in body:
                raise SpecError(f"{where} has no '{required}'", body.pos)
        block = body["block"]
        if not isinstance(block, str):
            raise SpecError(f"{where}: 'block' takes a block's name, got {block!r}",
                            body.value_pos["block"])
        if block not in self.known_blocks and not IDENTIFIER.fullmatch(block):
            raise SpecError(f"{where}: no block named '{block}'"
                            f"{did_you_mean(block, self.known_blocks)}", body.value_pos["block"])
        parts = {}
        for key in ("args", "first", "last"):
            parts[key] = self._mapping(body[key], body.value_pos[key], f"{where} '{key}'") \
                if key in body else _empty(body.pos)
        stage = Stage(block, body.value_pos["block"], body["repeat"], body.value_pos["repeat"],
                      parts["args"], parts["first"], parts["last"], name, pos)
        self.stages.append(stage)
        return stage

    @staticmethod
    def _mapping(value, pos, where) -> "yamlpos.PosDict":
        if not isinstance(value, yamlpos.PosDict):
            raise SpecError(f"{where} must be a mapping", pos)
        return value


def call_args(call: Call, block: Block) -> List[Tuple[Any, Position]]:
    """The call's arguments in the block's parameter order, checked for names and count;
    an argument not given takes the block's default."""
    if isinstance(call.args, yamlpos.PosDict):
        mapping = call.args
        _check_keys(mapping, block.params, f"block '{block.name}'")
        missing = [p for p in block.params if p not in mapping and p not in block.defaults]
        if missing:
            raise SpecError(f"block '{block.name}' is missing argument "
                            f"{', '.join(repr(m) for m in missing)}", call.pos)
        return [(mapping[p], mapping.value_pos[p]) if p in mapping else block.defaults[p]
                for p in block.params]
    for value, pos in call.args:
        if isinstance(value, yamlpos.PosDict) and "name" in value:
            raise SpecError(f"block '{block.name}': a call's name cannot be one of its listed "
                            f"arguments; write it beside the call ({{name: {value['name']}, "
                            f"{block.name}: [...]}}) or pass the arguments by name with the name "
                            f"among them ({{{block.name}: {{name: {value['name']}, ...}}}})", pos)
    required = len(block.params) - len(block.defaults)
    if not required <= len(call.args) <= len(block.params):
        plural = "s" if len(block.params) != 1 else ""
        count = f"{required} to {len(block.params)}" if block.defaults else str(required)
        raise SpecError(f"block '{block.name}' takes {count} argument{plural} "
                        f"({', '.join(block.params)}), got {len(call.args)}", call.pos)
    return list(call.args) + [block.defaults[p] for p in block.params[len(call.args):]]


def _name_from_args(call: Call, block: Block) -> None:
    """``{inception: {name: m1, n1x1: 64, ...}}``: ``name`` among arguments given by name
    names the call, unless the block has an argument called ``name``."""
    args = call.args
    if not isinstance(args, yamlpos.PosDict) or "name" not in args or "name" in block.params:
        return
    if call.name is not None:
        raise SpecError(f"block '{block.name}': the call is named twice, beside it and among "
                        "its arguments", args.key_pos["name"])
    call.name = _name(args["name"], args.value_pos["name"], "name")
    call.args = without(args, "name")


def _empty(pos: Position) -> "yamlpos.PosDict":
    out = yamlpos.PosDict()
    out.pos, out.key_pos, out.value_pos = pos, {}, {}
    return out


def without(mapping: "yamlpos.PosDict", key: str) -> "yamlpos.PosDict":
    """``mapping`` less ``key``, positions kept."""
    out = yamlpos.PosDict((k, v) for k, v in mapping.items() if k != key)
    out.pos = mapping.pos
    out.key_pos = {k: p for k, p in mapping.key_pos.items() if k != key}
    out.value_pos = {k: p for k, p in mapping.value_pos.items() if k != key}
    return out
