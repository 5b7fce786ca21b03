"""Joins: ops with several inputs, where parallel branches meet. ``concat`` stacks channels
(an Inception module's output); ``add`` sums equal shapes (a residual connection); ``mul``
multiplies, broadcasting (squeeze-and-excitation's gate); ``crop`` cuts the first branch to the
size of the second (U-Net's copy and crop). A spec writes their inputs as branches
(``concat: [...]`` or a mapping of branch names); see ops/base.Join."""
from __future__ import annotations

from archcalc.core.ops import onnx_args
from archcalc.core.ops.base import (aten_arg, Counts, Join, Saved, ShapeError, fmt_shape,
                                    numel, register, sliding)


def _joins_data(node, initializers) -> bool:
    """An elementwise ONNX node is a join when every input is data: a constant operand (x + 3,
    x · 0.5) is not a branch, and the node stays opaque unless the importer folds it as a bias."""
    return len(node.input) >= 2 and onnx_args.data_count(node, initializers) == len(node.input)


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

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_functions = ('torch.cat', 'torch.concat', 'torch.concatenate')
    aten_ops = ("aten.cat.default",)
    onnx_types = ("Concat",)

    @classmethod
    def from_aten(cls, args, kwargs, shapes):
        """cat(tensors, dim) along the channels (dim 1 of N×C×H×W or N×F)."""
        rank = len(shapes[0][0])
        return {} if aten_arg(args, kwargs, 1, "dim", 0) % rank == 1 else None

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        """Concat along the channels (axis 1, or -3 of N×C×H×W) of data inputs only."""
        if not _joins_data(node, initializers):
            return None
        return {} if onnx_args.channel_axis(attrs, len(in_shapes[0]) + 1) else None


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

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_functions = ('operator.add', 'operator.iadd', 'torch.add', 'method:add', 'method:add_')
    aten_ops = ("aten.add.Tensor", "aten.add_.Tensor")
    onnx_types = ("Add", "Sum")

    @classmethod
    def from_aten(cls, args, kwargs, shapes):
        return {} if kwargs.get("alpha", 1) == 1 and len(args) == 2 else None

    @classmethod
    def from_torch_call(cls, args, kwargs):
        if kwargs.get("alpha", 1) != 1:
            raise ValueError("add with alpha")
        return {}

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        return {} if _joins_data(node, initializers) else None


@register
class Mul(Join):
    name = "mul"
    title = "mul"
    summary = "branches multiplied elementwise, broadcasting sides of 1 (C×H×W by C×1×1: " \
              "squeeze-and-excitation's gate)"
    fvcore = None       # fvcore has no handler for mul

    def output_shape(self, shapes):
        listed = ", ".join(fmt_shape(s) for s in shapes)
        if any(len(s) != len(shapes[0]) for s in shapes):
            raise ShapeError(f"mul needs branches of one rank (maps or vectors), got {listed}")
        out = tuple(max(sizes) for sizes in zip(*shapes))
        if any(d not in (1, o) for s in shapes for d, o in zip(s, out)):
            raise ShapeError(f"mul cannot broadcast {listed}: each side must match or be 1")
        return out

    def counts(self, in_shapes, out_shape):
        return Counts(other_ops=(len(in_shapes) - 1) * numel(out_shape))

    def saved(self, in_shapes, out_shape) -> Saved:
        """``mul`` saves both operands when both need a gradient (derivatives.yaml: ``self``
        for other's gradient, ``other`` for self's)."""
        return Saved(inputs=tuple(range(len(in_shapes))))

    def to_torch(self, in_shapes):
        from archcalc.pytorch.modules import Mul as MulModule
        return MulModule()

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_functions = ('operator.mul', 'operator.imul', 'torch.mul', 'method:mul', 'method:mul_')
    aten_ops = ("aten.mul.Tensor", "aten.mul_.Tensor")
    onnx_types = ("Mul",)

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        return {} if _joins_data(node, initializers) else None


@register
class Crop(Join):
    name = "crop"
    title = "crop"
    summary = "the first branch cut to the height and width of the second, centred " \
              "(U-Net's copy and crop)"
    fvcore = None       # slicing: fvcore ignores it

    def output_shape(self, shapes):
        listed = ", ".join(fmt_shape(s) for s in shapes)
        if len(shapes) != 2 or any(len(s) != 3 for s in shapes):
            raise ShapeError(f"crop takes two C×H×W branches (the map, then one of the size "
                             f"to cut it to), got {listed}")
        (c, h, w), (_, th, tw) = shapes
        if th > h or tw > w:
            raise ShapeError(f"crop cannot cut {h}×{w} to a larger {th}×{tw}")
        return (c, th, tw)

    def reach(self, in_shapes, out_shape):
        """The first branch, offset as the module cuts it (pytorch/modules.Crop); the second
        gives only its size, and no output reads its values."""
        (_, h, w), (_, th, tw) = in_shapes

        def axis(offset):
            return sliding(1, offset, offset)
        return ((axis((h - th) // 2), axis((w - tw) // 2)), None)

    def counts(self, in_shapes, out_shape):
        return Counts()     # a copy, no arithmetic

    view = "always"     # a slice of the first input: a view, no new storage

    def to_torch(self, in_shapes):
        from archcalc.pytorch.modules import Crop as CropModule
        return CropModule()
