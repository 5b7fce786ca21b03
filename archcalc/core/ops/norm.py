"""Normalization: batch normalization and local response normalization."""
from __future__ import annotations

from archcalc.core.ops.base import (Arg, Counts, Op, ShapeError, activation, feature_map, numel, positive_int,
                   positive_number, probability, register)


@register
class BatchNorm(Op):
    name = "batchnorm"
    title = "batch norm"
    summary = "batch normalization over channels (2-D maps) or features (vectors)"
    fvcore = "other_ops"    # fvcore's eval-mode batch_norm: 2 per element, as other_ops here
    args = {
        "eps": Arg(positive_number, 1e-5, doc="added to the variance", examples=(1e-5, 1e-3)),
        "momentum": Arg(probability, 0.1, doc="running-statistics update rate (PyTorch's sense)",
                        examples=(0.1, 0.01)),
        "act": Arg(activation, None, doc="activation layer to follow, e.g. relu",
                   examples=("none", "relu")),
    }

    def output_shape(self, shape):
        if len(shape) not in (1, 3):
            raise ShapeError(f"batch norm needs C×H×W or a vector, got {shape}")
        return shape

    def counts(self, in_shape, out_shape):
        c = in_shape[0]
        # scale γ and shift β are trained (β is the bias); running mean and variance are not.
        # Work at inference: one multiply and one add per element.
        return Counts(params=2 * c, weights=c, non_trainable=2 * c, other_ops=2 * numel(out_shape))

    def to_torch(self, in_shape):
        from torch import nn
        cls = nn.BatchNorm2d if len(in_shape) == 3 else nn.BatchNorm1d
        return cls(in_shape[0], eps=self.a["eps"], momentum=self.a["momentum"])


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

    def to_torch(self, in_shape):
        from torch import nn
        return nn.LocalResponseNorm(self.a["size"], self.a["alpha"], self.a["beta"], self.a["k"])
