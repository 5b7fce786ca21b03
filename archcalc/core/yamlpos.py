"""YAML that remembers where each value came from.

The spec's error messages point at a file, line and column, so the loader keeps positions:
mappings become :class:`PosDict` and sequences :class:`PosList`, each knowing its own position
and that of every key and item. Scalars stay plain Python values; their positions live in the
container that holds them.
"""
from __future__ import annotations

from typing import Any

import yaml

from archcalc.errors import Position, SpecError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
        return _convert(loader, node, file)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        pos = _mark(file, mark) if mark is not None else Position(file)
        raise SpecError(f"not valid YAML: {problem}", pos) from None
    finally:
        loader.dispose()


STR = "tag:yaml.org,2002:str"
PLAIN_TAGS = {"tag:yaml.org,2002:" + t for t in ("map", "seq", "str", "int", "float", "bool",
                                                  "null")}


def _convert(loader, node, file: str) -> Any:
    if node.tag not in PLAIN_TAGS:
        raise SpecError(f"unsupported YAML tag '{node.tag}'", _mark(file, node.start_mark))
    if isinstance(node, yaml.MappingNode):
        out = PosDict()
        out.pos, out.key_pos, out.value_pos = _mark(file, node.start_mark), {}, {}
        for key_node, value_node in node.value:
            key = _convert(loader, key_node, file)
            if isinstance(key, (PosDict, PosList)) or key is None:
                raise SpecError("a key must be a plain name", _mark(file, key_node.start_mark))
            key = str(key)
            if key in out:
                raise SpecError(f"'{key}' is given twice", _mark(file, key_node.start_mark))
            out[key] = _convert(loader, value_node, file)
            out.key_pos[key] = _mark(file, key_node.start_mark)
            out.value_pos[key] = _mark(file, value_node.start_mark)
        return out
    if isinstance(node, yaml.SequenceNode):
        out = PosList(_convert(loader, item, file) for item in node.value)
        out.pos = _mark(file, node.start_mark)
        out.item_pos = [_mark(file, item.start_mark) for item in node.value]
        return out
    if node.tag == STR:
        return node.value  # the common case, without the constructor's bookkeeping
    return loader.construct_object(node, deep=True)
