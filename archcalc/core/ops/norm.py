"""Normalization: batch, layer, group and local response normalization; and ConvNeXt's layer
scale, a learned per-channel factor that, like a normalization's γ, rescales each channel."""
from __future__ import annotations

from archcalc.core.ops import onnx_args
from archcalc.core.ops.base import (act_arg, Arg, Saved, aten_arg, aten_tensor, boolean, Counts,
                                    feature_map, fmt_shape, number, numel, Op, positive_int,
                                    positive_number, probability, register, ShapeError)


@register
class BatchNorm(Op):
    name = "batchnorm"
    title = "batch norm"
    summary = "batch normalization over channels (2-D maps) or features (vectors)"
    # fvcore's eval-mode batch_norm: 2 per element with γ and β, 1 without; as other_ops here
    fvcore = "other_ops"
    args = {
        "eps": Arg(positive_number, 1e-5, doc="added to the variance", examples=(1e-5, 1e-3)),
        "momentum": Arg(probability, 0.1, doc="running-statistics update rate (PyTorch's sense)",
                        examples=(0.1, 0.01)),
        "affine": Arg(boolean, True, doc="learn a scale γ and shift β per channel",
                      examples=(True, False)),
        "act": act_arg("relu"),
    }

    def output_shape(self, shape):
        if len(shape) not in (1, 3):
            raise ShapeError(f"batch norm needs C×H×W or a vector, got {shape}")
        return shape

    def counts(self, in_shape, out_shape):
        c = in_shape[0]
        # scale γ and shift β are trained (β is the bias); running mean and variance are not,
        # and are kept with or without γ and β. Work at inference, fvcore's convention: one
        # per element to normalize with the running statistics, one more to scale and shift.
        affine = self.a["affine"]
        return Counts(params=2 * c if affine else 0, weights=c if affine else 0,
                      non_trainable=2 * c, other_ops=(2 if affine else 1) * numel(out_shape))

    def conventions(self, in_shape, out_shape):
        n, affine = numel(out_shape), self.a["affine"]
        return dict(super().conventions(in_shape, out_shape),
                    thop=(4 if affine else 2) * n,      # count_normalization: 2, doubled by γ, β
                    ptflops=(2 if affine else 1) * n,   # bn_flops_counter_hook
                    torchinfo=self.counts(in_shape, out_shape).params)  # γ and β, once

    def saved(self, in_shape, out_shape) -> Saved:
        """``native_batch_norm`` in training saves ``input``, the weight and running stats
        (parameters and buffers) and its outputs ``save_mean`` and ``save_invstd``: C float32
        numbers each for the whole batch (they are kept in the accumulate type)."""
        return Saved(inputs=(0,), batch_bytes=2 * in_shape[0] * 4)

    def state_tensors(self, in_shape, out_shape):
        """weight and bias (with ``affine``), running_mean and running_var, and
        num_batches_tracked: one int64 whatever the data type."""
        c = in_shape[0]
        return ((c, None),) * (2 if self.a["affine"] else 0) + ((c, None), (c, None), (1, 8))

    def to_torch(self, in_shape):
        from torch import nn
        cls = nn.BatchNorm2d if len(in_shape) == 3 else nn.BatchNorm1d
        return cls(in_shape[0], eps=self.a["eps"], momentum=self.a["momentum"],
                   affine=self.a["affine"])

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.BatchNorm2d', 'torch.nn.BatchNorm1d')
    aten_ops = ("aten.batch_norm.default", "aten._native_batch_norm_legit_no_training.default")
    onnx_types = ("BatchNormalization",)

    @classmethod
    def from_aten(cls, args, kwargs, shapes):
        """The eval form: batch_norm(input, weight, bias, mean, var, training, momentum, eps,
        cudnn) or _native_batch_norm_legit_no_training(input, weight, bias, mean, var,
        momentum, eps); affine where a weight is passed."""
        training = len(args) == 9 and args[5]
        momentum, eps = (args[6], args[7]) if len(args) == 9 else (
            aten_arg(args, kwargs, 5, "momentum", 0.1), aten_arg(args, kwargs, 6, "eps", 1e-5))
        if training or aten_tensor(shapes, 3) is None:
            return None
        return dict(eps=eps, momentum=momentum, affine=aten_tensor(shapes, 1) is not None)

    @classmethod
    def from_torch(cls, m):
        if m.momentum is None:
            raise ValueError("BatchNorm with a cumulative average (momentum None)")
        return dict(eps=m.eps, momentum=m.momentum, affine=m.affine)

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        """Scale, bias, mean and variance constant. ONNX's momentum weighs the old running
        value (0.9), PyTorch's, as a spec writes it, the new batch (0.1)."""
        if len(in_shapes) != 1 or any(onnx_args.const(node, initializers, i) is None
                                      for i in range(1, 5)):
            return None
        momentum = float(f"{1 - attrs.get('momentum', 0.9):.6g}")
        return {"eps": float(f"{attrs.get('epsilon', 1e-5):.6g}"), "momentum": momentum}


def _affine_norm_counts(c: int, affine: bool, out_shape) -> Counts:
    """Layer and group norm: γ and β per channel (β the bias) when affine, no running
    statistics; fvcore's layer_norm and group_norm handlers count 5 per element with γ and β,
    4 without (a rough estimate of mean, variance, normalize, scale and shift, in its words)."""
    return Counts(params=2 * c if affine else 0, weights=c if affine else 0,
                  other_ops=(5 if affine else 4) * numel(out_shape))


@register
class LayerNorm(Op):
    name = "layernorm"
    title = "layer norm"
    summary = "normalizes each vector over its features, or each position of a map over its " \
              "channels (ConvNeXt's LayerNorm2d)"
    fvcore = "other_ops"    # fvcore's layer_norm: 5 per element with γ and β, 4 without
    args = {
        "eps": Arg(positive_number, 1e-5, doc="added to the variance", examples=(1e-5, 1e-6)),
        "affine": Arg(boolean, True, doc="learn a scale γ and shift β per channel or feature",
                      examples=(True, False)),
        "act": act_arg("gelu"),
    }

    def output_shape(self, shape):
        if len(shape) not in (1, 3):
            raise ShapeError(f"layer norm needs C×H×W or a vector, got {shape}")
        return shape

    def counts(self, in_shape, out_shape):
        return _affine_norm_counts(in_shape[0], self.a["affine"], out_shape)

    def conventions(self, in_shape, out_shape):
        # thop and ptflops know nn.LayerNorm (a vector's) by exact class, not LayerNorm2d (a
        # map's); ptflops' bn hook doubles for an `affine` attribute, which LayerNorm lacks
        n, plain = numel(out_shape), len(in_shape) == 1
        return dict(super().conventions(in_shape, out_shape),
                    thop=(4 if self.a["affine"] else 2) * n if plain else 0,
                    ptflops=n if plain else 0,
                    torchinfo=self.counts(in_shape, out_shape).params)  # γ and β, once

    def saved(self, in_shape, out_shape) -> Saved:
        """``native_layer_norm`` saves ``input`` and its outputs ``mean`` and ``rstd``: one
        float32 each per normalized group (per position of a map, once for a vector)."""
        groups = numel(in_shape) // in_shape[0]
        return Saved(inputs=(0,), extra_bytes=2 * groups * 4)

    def to_torch(self, in_shape):
        from torch import nn
        if len(in_shape) == 1:
            return nn.LayerNorm(in_shape[0], eps=self.a["eps"],
                                elementwise_affine=self.a["affine"])
        from archcalc.pytorch.modules import LayerNorm2d
        return LayerNorm2d(in_shape[0], eps=self.a["eps"], elementwise_affine=self.a["affine"])

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.LayerNorm',)
    onnx_types = ("LayerNormalization",)

    @classmethod
    def from_torch(cls, m):
        # one normalized dimension: a vector's features, or (a subclass such as ConvNeXt's
        # LayerNorm2d) a map's channels; the traced shapes and parameters are checked after
        if len(m.normalized_shape) != 1:
            raise ValueError(f"LayerNorm over {tuple(m.normalized_shape)}")
        return dict(eps=m.eps, affine=m.elementwise_affine)

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        """LayerNormalization of vectors over their features (axis -1 of N×F), with a constant
        scale and bias; over the last axis of a map it normalizes rows, not channels: opaque."""
        if len(in_shapes) != 1 or len(in_shapes[0]) != 1 or \
                not onnx_args.channel_axis(attrs, 2, default=-1) or \
                onnx_args.const(node, initializers, 1) is None or \
                onnx_args.const(node, initializers, 2) is None:
            return None
        return {"eps": float(f"{attrs.get('epsilon', 1e-5):.6g}")}


@register
class GroupNorm(Op):
    name = "groupnorm"
    title = "group norm"
    summary = "normalizes each group of channels over its channels, height and width"
    fvcore = "other_ops"    # fvcore's group_norm: 5 per element with γ and β, 4 without
    args = {
        "groups": Arg(positive_int, required=True, doc="channel groups; the channels must "
                                                       "divide by it", examples=(1, 2, 3)),
        "eps": Arg(positive_number, 1e-5, doc="added to the variance", examples=(1e-5, 1e-3)),
        "affine": Arg(boolean, True, doc="learn a scale γ and shift β per channel",
                      examples=(True, False)),
        "act": act_arg("relu"),
    }

    def output_shape(self, shape):
        if len(shape) not in (1, 3):
            raise ShapeError(f"group norm needs C×H×W or a vector, got {shape}")
        if shape[0] % self.a["groups"]:
            raise ShapeError(f"{shape[0]} channels cannot be split into {self.a['groups']} "
                             "groups")
        if numel(shape) == self.a["groups"]:
            # each group one value, which normalizes to 0; PyTorch refuses it (for one image)
            raise ShapeError(f"group norm of {fmt_shape(shape)} in {self.a['groups']} groups "
                             "leaves one value per group; it needs more")
        return shape

    def counts(self, in_shape, out_shape):
        return _affine_norm_counts(in_shape[0], self.a["affine"], out_shape)

    def conventions(self, in_shape, out_shape):
        return dict(super().conventions(in_shape, out_shape),     # thop has no GroupNorm rule
                    ptflops=(2 if self.a["affine"] else 1) * numel(out_shape),  # bn hook
                    torchinfo=self.counts(in_shape, out_shape).params)  # γ and β, once

    def saved(self, in_shape, out_shape) -> Saved:
        """``native_group_norm`` saves ``input`` and ``mean`` and ``rstd``: one float32 each
        per group of each image."""
        return Saved(inputs=(0,), extra_bytes=2 * self.a["groups"] * 4)

    def to_torch(self, in_shape):
        from torch import nn
        return nn.GroupNorm(self.a["groups"], in_shape[0], eps=self.a["eps"],
                            affine=self.a["affine"])

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.GroupNorm',)
    onnx_types = ("GroupNormalization",)

    @classmethod
    def from_torch(cls, m):
        return dict(groups=m.num_groups, eps=m.eps, affine=m.affine)

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        """GroupNormalization with a scale and bias per channel (opset 21; opset 18's are per
        group, which the importer's parameter check leaves opaque)."""
        if len(in_shapes) != 1 or onnx_args.const(node, initializers, 1) is None or \
                onnx_args.const(node, initializers, 2) is None or "num_groups" not in attrs:
            return None
        return {"groups": int(attrs["num_groups"]),
                "eps": float(f"{attrs.get('epsilon', 1e-5):.6g}")}


@register
class LayerScale(Op):
    name = "layer_scale"
    title = "layer scale"
    summary = "a learned scale per channel (or feature), started small (ConvNeXt, CaiT)"
    args = {
        "init": Arg(number, 1e-6, doc="the scale's initial value", examples=(1e-6, 0.1, 1)),
    }

    def output_shape(self, shape):
        if len(shape) not in (1, 3):
            raise ShapeError(f"layer scale needs C×H×W or a vector, got {shape}")
        return shape

    def counts(self, in_shape, out_shape):
        c = in_shape[0]
        # the scale is a weight (no bias); one multiply per element, which fvcore does not
        # count (an elementwise mul)
        return Counts(params=c, weights=c, other_ops=numel(out_shape))

    def saved(self, in_shape, out_shape) -> Saved:
        """``x * scale``: ``mul`` saves ``other`` (the scale, a parameter) for x's gradient
        and ``self`` (the input) for the scale's."""
        return Saved(inputs=(0,))

    def to_torch(self, in_shape):
        from archcalc.pytorch.modules import LayerScale as LayerScaleModule
        return LayerScaleModule(in_shape, self.a["init"])

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_functions = ('operator.mul', 'torch.mul', 'method:mul')
    aten_ops = ("aten.mul.Tensor",)

    @classmethod
    def from_torch_call(cls, args, kwargs):
        # a multiply by a learned parameter (the importer counts it); its trained values are no
        # initial value, so the spec gets the default
        return {}


@register
class LRN(Op):
    name = "lrn"
    title = "local response norm"
    summary = "local response normalization across channels (AlexNet, Caffe's GoogLeNet)"
    args = {
        "size": Arg(positive_int, 5, doc="channels in each normalization window",
                    examples=(1, 3, 5)),
        "alpha": Arg(positive_number, 1e-4, doc="scale", examples=(1e-4, 0.5)),
        "beta": Arg(positive_number, 0.75, doc="exponent", examples=(0.75, 2)),
        "k": Arg(positive_number, 1.0, doc="additive constant", examples=(1, 2.5)),
    }

    def output_shape(self, shape):
        feature_map(shape, "local response normalization")
        return shape

    def counts(self, in_shape, out_shape):
        return Counts(other_ops=self.a["size"] * numel(out_shape))  # a window sum per element

    def conventions(self, in_shape, out_shape):
        # ptflops' patches see inside F.local_response_norm: x.mul(x), avg_pool3d over the
        # squares padded by size - 1 channels (its input counted), .mul(alpha), .add(k)
        c, h, w = in_shape
        return dict(super().conventions(in_shape, out_shape),
                    ptflops=3 * numel(in_shape) + (c + self.a["size"] - 1) * h * w)

    def saved(self, in_shape, out_shape) -> Saved:
        """nn.LocalResponseNorm is composed of differentiable ops: ``x * x`` (saves x), an
        average pool over the padded squares (saves them: one map), ``mul``/``add``/``pow``
        (saves the pooled map and the power: two maps) and ``x / div`` (saves x and div):
        the input and about three more maps of its size. An approximation from those ops."""
        return Saved(inputs=(0,), extra=3 * numel(in_shape))

    def to_torch(self, in_shape):
        from torch import nn
        return nn.LocalResponseNorm(self.a["size"], self.a["alpha"], self.a["beta"], self.a["k"])

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.LocalResponseNorm',)
    onnx_types = ("LRN",)

    @classmethod
    def from_torch(cls, m):
        return dict(size=m.size, alpha=m.alpha, beta=m.beta, k=m.k)

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        return {"size": int(attrs["size"]),
                "alpha": float(f"{attrs.get('alpha', 1e-4):.6g}"),
                "beta": float(f"{attrs.get('beta', 0.75):.6g}"),
                "k": float(f"{attrs.get('bias', 1.0):.6g}")}
