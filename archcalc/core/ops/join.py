"""Joins: ops with several inputs, where parallel branches meet. ``concat`` stacks channels
(an Inception module's output); ``add`` sums equal shapes (a residual connection). A spec writes
their inputs as branches (``concat: [...]`` or a mapping of branch names); see ops/base.Join."""
from __future__ import annotations

from archcalc.core.ops.base import Counts, Join, ShapeError, fmt_shape, numel, register


@register
class Concat(Join):
    name = "concat"
    title = "concat"
    summary = "branches on one input, stacked along the channels; heights and widths must agree"
    fvcore = None       # fvcore has no handler for cat

    def output_shape(self, shapes):
        if any(len(s) != len(shapes[0]) for s in shapes) or any(
                s[1:] != shapes[0][1:] for s in shapes):
            listed = ", ".join(fmt_shape(s) for s in shapes)
            raise ShapeError(f"concat branches disagree in size ({listed}); only channels "
                             "may differ")
        return (sum(s[0] for s in shapes),) + tuple(shapes[0][1:])

    def counts(self, in_shapes, out_shape):
        return Counts()     # a copy, no arithmetic

    def to_torch(self, in_shapes):
        from archcalc.pytorch.modules import Concat as ConcatModule
        return ConcatModule(dim=1)


@register
class Add(Join):
    name = "add"
    title = "add"
    summary = "branches of one shape, summed elementwise: a residual connection"
    fvcore = None       # fvcore has no handler for add

    def output_shape(self, shapes):
        if any(s != shapes[0] for s in shapes):
            listed = ", ".join(fmt_shape(s) for s in shapes)
            raise ShapeError(f"add needs branches of one shape, got {listed}")
        return shapes[0]

    def counts(self, in_shapes, out_shape):
        return Counts(other_ops=(len(in_shapes) - 1) * numel(out_shape))

    def to_torch(self, in_shapes):
        from archcalc.pytorch.modules import Add as AddModule
        return AddModule()
