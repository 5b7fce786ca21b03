"""Joins: where parallel branches meet. ``concat`` stacks channels (an Inception module's
output); ``add`` sums equal shapes (a residual connection). They are the spec's structural
keys rather than ops with arguments, so they live in their own small registry."""
from __future__ import annotations

from typing import Sequence

from archcalc.core.ops.base import Counts, Shape, ShapeError, fmt_shape, numel


class Concat:
    name = "concat"
    title = "concat"
    fvcore = None       # as for ops (ops/base.py): fvcore ignores cat

    def output_shape(self, shapes: Sequence[Shape]) -> Shape:
        if any(len(s) != len(shapes[0]) for s in shapes) or any(
                s[1:] != shapes[0][1:] for s in shapes):
            listed = ", ".join(fmt_shape(s) for s in shapes)
            raise ShapeError(f"concat branches disagree in size ({listed}); only channels "
                             "may differ")
        return (sum(s[0] for s in shapes),) + tuple(shapes[0][1:])

    def counts(self, in_shapes, out_shape) -> Counts:
        return Counts()

    def combine(self, tensors):
        import torch
        return torch.cat(tensors, dim=1)


class Add:
    name = "add"
    title = "add"
    fvcore = None       # fvcore has no handler for add

    def output_shape(self, shapes: Sequence[Shape]) -> Shape:
        if any(s != shapes[0] for s in shapes):
            listed = ", ".join(fmt_shape(s) for s in shapes)
            raise ShapeError(f"add needs branches of one shape, got {listed}")
        return shapes[0]

    def counts(self, in_shapes, out_shape) -> Counts:
        return Counts(other_ops=(len(in_shapes) - 1) * numel(out_shape))

    def combine(self, tensors):
        out = tensors[0]
        for t in tensors[1:]:
            out = out + t
        return out


JOINS = {"concat": Concat(), "add": Add()}
