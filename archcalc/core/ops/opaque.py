"""The stand-in for an op archcalc cannot express.

An importer (``archcalc import``) that meets an operation with no spec op (a sort, a top-k, a
custom CUDA kernel) never drops it: it writes an ``opaque`` layer that records what the trace
measured, the output shape and the parameters, so that every later shape and the parameter
total stay right. What it computes is unknown, so it counts no MACs and no other ops, and
archcalc cannot build it (``to_torch`` refuses; ``build_model``, ``verify`` and ``train``
refuse a spec with one up front, naming it).
"""
from __future__ import annotations

from archcalc.core.ops.base import (Arg, ArgError, Counts, Op, _is_int, _too_big, _whole,
                                    register)


def shape(v) -> tuple:
    """A non-empty list of positive ints: a traced output shape, batch dropped."""
    dims = [_whole(x) for x in v] if isinstance(v, list) else None
    if not dims or not all(_is_int(d) and d > 0 for d in dims):
        raise ArgError(f"must be a list of positive integers (C, H, W or F), got {v!r}")
    _too_big(max(dims))
    return tuple(dims)


def count(v) -> int:
    v = _whole(v)
    if not _is_int(v) or v < 0:
        raise ArgError(f"must be a non-negative integer, got {v!r}")
    return v


def text(v) -> str:
    if not isinstance(v, str):
        raise ArgError(f"must be text, got {v!r}")
    return v


@register
class Opaque(Op):
    name = "opaque"
    title = "opaque"
    summary = "an op archcalc cannot express, as a traced model gave it: output shape and " \
              "parameters recorded, MACs not counted, not buildable"
    opaque = True
    args = {
        "shape": Arg(shape, required=True, doc="the traced output shape, batch dropped",
                     examples=([4, 2, 2], [6], [2, 3, 5])),
        "params": Arg(count, 0, doc="the trainable parameters the source holds for it",
                      examples=(0, 10)),
        "kind": Arg(text, "", doc="what the source called it (aten::sort, TopK)",
                    examples=("", "aten::sort"), literal=True),
    }

    def output_shape(self, shape):
        return self.a["shape"]

    def reach(self, in_shape, out_shape):
        return None     # what it computes is unknown: taken to read the whole input

    def counts(self, in_shape, out_shape):
        return Counts(params=self.a["params"], weights=self.a["params"])

    def to_torch(self, in_shape):
        raise NotImplementedError("op 'opaque' stands for an operation archcalc cannot "
                                  "express; it has no PyTorch builder")
