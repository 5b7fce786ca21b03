"""Ops without weights that keep or reshape their input: ReLU and softmax (the other
activations are in activations.py), dropout and stochastic depth, flatten, channel shuffle."""
from __future__ import annotations

from archcalc.core.ops import onnx_args
from archcalc.core.ops.base import (aten_arg, Arg, Saved, Counts, Op, ShapeError, choice, feature_map,
                                    numel, positive_int, probability, register)


@register
class ReLU(Op):
    name = "relu"
    title = "relu"
    summary = "rectified linear unit, max(x, 0)"
    activation = True

    def counts(self, in_shape, out_shape):
        return Counts(other_ops=numel(out_shape))

    def conventions(self, in_shape, out_shape):
        # thop: zero_ops; ptflops twice: its module hook and its patch of F.relu, which
        # nn.ReLU's forward calls
        return dict(super().conventions(in_shape, out_shape), ptflops=2 * numel(out_shape))

    def saved(self, in_shape, out_shape) -> Saved:
        """``relu``'s backward is ``threshold_backward(grad, result, 0)``: the output."""
        return Saved(output=True)

    def to_torch(self, in_shape):
        from torch import nn
        return nn.ReLU()

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.ReLU',)
    torch_functions = ('torch.relu', 'torch.relu_', 'torch.nn.functional.relu',
                       'torch.nn.functional.relu_', 'method:relu', 'method:relu_')
    aten_ops = ("aten.relu.default", "aten.relu_.default")
    onnx_types = ("Relu",)


@register
class Softmax(Op):
    name = "softmax"
    title = "softmax"
    summary = "softmax over channels (the class scores)"
    activation = True
    output_transform = True

    def counts(self, in_shape, out_shape):
        return Counts(other_ops=numel(out_shape))  # one exponential per element

    def conventions(self, in_shape, out_shape):
        c, n = in_shape[0], numel(out_shape)
        return dict(super().conventions(in_shape, out_shape),
                    # count_softmax: exp, add and divide, 3C - 1 per softmax of C
                    thop=n // c * (3 * c - 1),
                    ptflops=n)      # no module hook; the patched F.softmax, once

    def saved(self, in_shape, out_shape) -> Saved:
        """``_softmax`` saves ``result`` (``_softmax_backward_data(grad, result, ...)``)."""
        return Saved(output=True)

    def to_torch(self, in_shape):
        from torch import nn
        return nn.Softmax(dim=1)

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.Softmax',)
    torch_functions = ('torch.softmax', 'torch.nn.functional.softmax', 'method:softmax')
    onnx_types = ("Softmax",)

    @classmethod
    def from_torch(cls, m):
        return cls.from_torch_call((), {"dim": m.dim})

    @classmethod
    def from_torch_call(cls, args, kwargs):
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        if dim != 1:        # archcalc's softmax is over channels (dimension 1 with the batch)
            raise ValueError(f"softmax over dimension {dim}")
        return {}

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        """Softmax over the channels (or features): axis 1, or -1 of a vector."""
        rank = len(in_shapes[0]) + 1
        return {} if onnx_args.channel_axis(attrs, rank, default=-1) else None


@register
class Dropout(Op):
    name = "dropout"
    title = "dropout"
    summary = "zeroes a random fraction p of activations in training; identity at inference"
    args = {"p": Arg(probability, 0.5, doc="fraction dropped", examples=(0.0, 0.5))}

    # at inference nn.Dropout returns its input itself (aten's dropout with train=False)
    view = "inference"

    def saved(self, in_shape, out_shape) -> Saved:
        """On CPU, aten's ``dropout`` in training is ``input * noise`` with ``noise`` a tensor
        of the input's size and dtype (bernoulli, scaled by 1/(1-p)); ``mul`` saves ``noise``
        (``other``) for the input's gradient. (CUDA's fused ``native_dropout`` keeps a bool mask
        instead.) Nothing at p = 0, where the input is returned itself."""
        return Saved(extra=numel(in_shape) if self.a["p"] > 0 else 0)

    def to_torch(self, in_shape):
        from torch import nn
        return nn.Dropout(self.a["p"])

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.Dropout', 'torch.nn.Dropout2d')
    aten_ops = ("aten.dropout.default", "aten.dropout_.default", "aten.feature_dropout.default")
    onnx_types = ("Dropout",)

    @classmethod
    def from_aten(cls, args, kwargs, shapes):
        return dict(p=aten_arg(args, kwargs, 1, "p", 0.5))

    @classmethod
    def from_torch(cls, m):
        return dict(p=m.p)

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        """The ratio as an input (opset 12 on) or an attribute (before); 0.5 by default."""
        if onnx_args.has_input(node, 1):
            ratio = onnx_args.scalar(onnx_args.const(node, initializers, 1))
        else:
            ratio = attrs.get("ratio", 0.5)
        return None if ratio is None else {"p": round(float(ratio), 6)}


@register
class Flatten(Op):
    name = "flatten"
    # a view or reshape flattens where its output is N×F (the importer checks the shape)

    title = "flatten"
    summary = "C×H×W to a vector of C·H·W"

    def output_shape(self, shape):
        return (numel(shape),)

    def reach(self, in_shape, out_shape):
        return None     # the vector holds every position of the map

    # nn.Flatten is a view of its input: no new storage, nothing saved
    view = "always"

    def to_torch(self, in_shape):
        from torch import nn
        return nn.Flatten()

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.Flatten',)
    torch_functions = ('torch.flatten', 'method:flatten', 'method:view', 'method:reshape')
    aten_ops = ("aten.flatten.using_ints", "aten.view.default", "aten.reshape.default")
    onnx_types = ("Flatten", "Reshape")

    @classmethod
    def from_aten(cls, args, kwargs, shapes):
        """flatten(input, start_dim, end_dim) from the channels on; a view or reshape to N×F."""
        rank = len(shapes[0])
        if len(args) > 1 and isinstance(args[1], int):      # flatten.using_ints
            start = aten_arg(args, kwargs, 1, "start_dim", 0) % rank
            end = aten_arg(args, kwargs, 2, "end_dim", -1) % rank
            return {} if (start, end) == (1, rank - 1) else None
        return {}

    @classmethod
    def from_torch(cls, m):
        if (m.start_dim, m.end_dim) != (1, -1):
            raise ValueError(f"Flatten({m.start_dim}, {m.end_dim})")
        return {}

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        """Flatten from axis 1; or a Reshape to (batch, -1) or (batch, C·H·W), as
        ``x.view(x.size(0), -1)`` exports."""
        if node.op_type == "Flatten":
            return {} if attrs.get("axis", 1) == 1 else None
        target = onnx_args.const(node, initializers, 1)
        if target is None or target.shape != (2,):
            return None
        return {} if int(target[1]) in (-1, numel(in_shapes[0])) else None


@register
class Identity(Op):
    name = "identity"
    title = "identity"
    summary = "passes its input on; the shortcut branch of a residual add"

    view = "always"     # nn.Identity returns its input itself

    def to_torch(self, in_shape):
        from torch import nn
        return nn.Identity()

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.Identity',)
    aten_ops = ("aten.clone.default", "aten.alias.default", "aten.contiguous.default")
    onnx_types = ("Identity",)


@register
class StochasticDepth(Op):
    name = "stochastic_depth"
    title = "stochastic depth"
    summary = "in training drops a residual branch per sample with probability p " \
              "(scaling the rest by 1/(1-p)); identity at inference"
    args = {
        "p": Arg(probability, required=True, doc="probability of dropping the branch",
                 examples=(0.0, 0.1, 0.5)),
        "mode": Arg(choice("row", "batch"), "row", doc="'row': drop per sample; 'batch': the "
                                                       "whole batch at once",
                    examples=("row", "batch")),
    }

    view = "inference"      # identity in eval mode (archcalc's module returns its input)

    def saved(self, in_shape, out_shape) -> Saved:
        """In training ``x * noise``: ``mul`` saves the noise, one number per image (row
        mode) or per batch; at most one per image is counted."""
        return Saved(extra=1)

    def to_torch(self, in_shape):
        from archcalc.pytorch.modules import StochasticDepth as StochasticDepthModule
        return StochasticDepthModule(self.a["p"], self.a["mode"])


@register
class ChannelShuffle(Op):
    name = "channel_shuffle"
    title = "channel shuffle"
    summary = "interleaves the channels of its groups (ShuffleNet), a permutation"
    args = {
        "groups": Arg(positive_int, required=True, doc="channel groups; the channels must "
                                                       "divide by it", examples=(1, 2, 3)),
    }

    def output_shape(self, shape):
        c, _, _ = feature_map(shape, "channel shuffle")
        if c % self.a["groups"]:
            raise ShapeError(f"{c} channels cannot be split into {self.a['groups']} groups")
        return shape

    def to_torch(self, in_shape):
        from torch import nn
        return nn.ChannelShuffle(self.a["groups"])

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.ChannelShuffle',)

    @classmethod
    def from_torch(cls, m):
        return dict(groups=m.groups)
