"""YAML that remembers where each value came from, read by YAML 1.2's rules, within limits.

The spec's error messages point at a file, line and column, so the loader keeps positions:
mappings become :class:`PosDict` and sequences :class:`PosList`, each knowing its own position
and that of every key and item. Scalars stay plain Python values; their positions live in the
container that holds them.

Plain scalars are typed by the YAML 1.2 core schema, not PyYAML's YAML 1.1 one: ``010`` is ten
(not eight), ``1:30`` and ``yes``/``no``/``on``/``off`` are text (not 90 and booleans), only
``true``/``false`` are booleans. Keys are names: a key is kept as written (``010:`` is "010"),
and a key that YAML reads as a boolean or null (``true:``) is refused.

A document with anchors is measured before it is converted, so that aliases of aliases
("billion laughs"), a value that contains itself (``&a [*a]``) or deep nesting are refused with
one line instead of filling memory or Python's stack (limits in :mod:`archcalc.core.limits`);
without anchors nothing repeats, and conversion checks the depth as it goes.
"""
from __future__ import annotations

import math
import re
from typing import Any, Dict, Tuple

import yaml

from archcalc.core import limits
from archcalc.errors import Position, SpecError

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

TAG = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (TAG + t for t in ("str", "int", "float", "bool", "null"))
MAP, SEQ = TAG + "map", TAG + "seq"
PLAIN_TAGS = {MAP, SEQ, STR, INT, FLOAT, BOOL, NULL}

# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution)
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_TRUE, _FALSE = ("true", "True", "TRUE"), ("false", "False", "FALSE")
_NULL = ("", "~", "null", "Null", "NULL")
MAX_DIGITS = 100    # far beyond any spec's number, far below Python's int-conversion limit


class _Loader(_Base):
    """PyYAML's safe loader with YAML 1.2 core tag resolution for plain scalars."""

    yaml_implicit_resolvers: Dict[str, list] = {}


for _tag, _regexp, _first in (
        (BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
        (INT, _INT, "-+0123456789"),
        (FLOAT, _FLOAT, "-+.0123456789"),
        (NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])):
    _Loader.add_implicit_resolver(_tag, _regexp, list(_first))


class PosDict(dict):
    """A mapping with the position of itself, each key and each value."""

    pos: Position
    key_pos: dict
    value_pos: dict


class PosList(list):
    """A sequence with the position of itself and each item."""

    pos: Position
    item_pos: list


def _mark(file: str, mark) -> Position:
    return Position(file, mark.line + 1, mark.column + 1)


def load(text: str, file: str) -> Any:
    """Parse ``text`` (named ``file`` in messages) into plain values with positions kept."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError("the file is empty", Position(file, 1, 1))
        max_depth = limits.get("ARCHCALC_MAX_DEPTH")
        if "&" in text:  # anchors, so maybe aliases: values that repeat or contain themselves
            _measure(node, file, limits.get("ARCHCALC_MAX_YAML_NODES"), max_depth)
        return _convert(node, file, 1, max_depth)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        pos = _mark(file, mark) if mark is not None else Position(file)
        raise SpecError(f"not valid YAML: {problem}", pos) from None
    except RecursionError:  # PyYAML's pure-Python composer recurses once per level
        raise SpecError("the YAML nests too deeply for Python's stack", Position(file)) from None
    finally:
        loader.dispose()


def _children(node):
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return ()


def _measure(root, file: str, max_nodes: int, max_depth: int) -> None:
    """Refuse a document that contains itself, expands (aliases repeated) beyond ``max_nodes``
    values or nests deeper than ``max_depth``, without expanding it: every node's expanded size
    and height are computed once, however many aliases name it."""
    size: Dict[int, int] = {}
    height: Dict[int, int] = {}
    entered = set()                 # entered, not finished: the ancestors of the node at hand
    stack: list = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            height[key] = 1 + max((height[id(k)] for k in kids), default=0) \
                if kids or not isinstance(node, yaml.ScalarNode) else 0
            entered.discard(key)
            continue
        if key in size:
            continue                # an alias of a node already measured
        if key in entered:
            raise SpecError("a recursive alias: this value contains itself",
                            _mark(file, node.start_mark))
        entered.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node))
    if size[id(root)] > max_nodes:
        node = _descend(root, lambda n: size[id(n)] > max_nodes)
        raise SpecError(f"this value expands to more than {max_nodes:,} YAML values, aliases "
                        f"repeated {limits.how_to_raise('ARCHCALC_MAX_YAML_NODES')}",
                        _mark(file, node.start_mark))
    if height[id(root)] > max_depth:
        node = root
        for _ in range(max_depth):   # down the deepest path, to the first level too deep
            node = max(_children(node), key=lambda n: height[id(n)])
        raise _too_deep(node, file, max_depth)


def _descend(node, too_big):
    """The deepest node on the way down from ``node`` that alone is still ``too_big``."""
    while True:
        bigger = [k for k in _children(node) if too_big(k)]
        if not bigger:
            return node
        node = bigger[0]


def _too_deep(node, file: str, max_depth: int) -> SpecError:
    return SpecError(f"the YAML nests more than {max_depth:,} levels deep here "
                     f"{limits.how_to_raise('ARCHCALC_MAX_DEPTH')}", _mark(file, node.start_mark))


def _convert(node, file: str, depth: int, max_depth: int) -> Any:
    """``node`` as plain values with positions; ``depth`` is its own level (the root's is 1)."""
    if node.tag not in PLAIN_TAGS:
        raise SpecError(f"unsupported YAML tag '{node.tag}'", _mark(file, node.start_mark))
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and depth > max_depth:
        raise _too_deep(node, file, max_depth)
    if isinstance(node, yaml.MappingNode):
        out = PosDict()
        out.pos, out.key_pos, out.value_pos = _mark(file, node.start_mark), {}, {}
        for key_node, value_node in node.value:
            key = _key(key_node, file)
            if key in out:
                raise SpecError(f"'{key}' is given twice", _mark(file, key_node.start_mark))
            out[key] = _convert(value_node, file, depth + 1, max_depth)
            out.key_pos[key] = _mark(file, key_node.start_mark)
            out.value_pos[key] = _mark(file, value_node.start_mark)
        return out
    if isinstance(node, yaml.SequenceNode):
        out = PosList([_convert(item, file, depth + 1, max_depth) for item in node.value])
        out.pos = _mark(file, node.start_mark)
        out.item_pos = [_mark(file, item.start_mark) for item in node.value]
        return out
    return _scalar(node, file)


def _key(node, file: str) -> str:
    """A mapping key: a name, as written."""
    if not isinstance(node, yaml.ScalarNode) or node.tag == NULL:
        raise SpecError("a key must be a plain name", _mark(file, node.start_mark))
    if node.tag not in PLAIN_TAGS:
        raise SpecError(f"unsupported YAML tag '{node.tag}'", _mark(file, node.start_mark))
    if node.tag == BOOL:
        raise SpecError(f"a key must be a name; YAML reads {node.value} as a boolean "
                        f"(write '{node.value}' in quotes for the name)",
                        _mark(file, node.start_mark))
    return node.value


def _scalar(node, file: str) -> Any:
    """A scalar's value by the YAML 1.2 core schema (an explicit tag must fit it too)."""
    text, tag = node.value, node.tag
    if tag == STR:
        return text
    pos = _mark(file, node.start_mark)
    if tag == NULL and text in _NULL:
        return None
    if tag == BOOL and text in _TRUE + _FALSE:
        return text in _TRUE
    if tag == INT and _INT.match(text):
        return _int(text, pos)
    if tag == FLOAT and (_FLOAT.match(text) or _INT.match(text)):
        if _INT.match(text):
            return float(_int(text, pos))
        value = float(text.replace(".inf", "inf").replace(".Inf", "inf")
                      .replace(".INF", "inf").replace(".nan", "nan").replace(".NaN", "nan")
                      .replace(".NAN", "nan"))
        if not math.isfinite(value):
            raise SpecError(f"a spec's numbers must be finite, got {text}", pos)
        return value
    kind = {INT: "an integer", FLOAT: "a number", BOOL: "true or false", NULL: "null"}[tag]
    raise SpecError(f"'{text}' is tagged {tag.rsplit(':', 1)[-1]} but is not {kind}", pos)


def _int(text: str, pos: Position) -> int:
    digits = text.lstrip("+-")
    if len(digits) > MAX_DIGITS:
        raise SpecError(f"an integer of {len(digits):,} digits is too large for a spec", pos)
    if digits.startswith(("0o", "0x")):
        return int(digits[2:], 8 if digits[1] == "o" else 16)
    return int(text, 10)
