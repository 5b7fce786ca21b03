"""Fully connected layer. Any input is flattened first, as the paper's classifier takes the
1×1×1024 output of average pooling."""
from __future__ import annotations

from archcalc.core.ops.base import Arg, Counts, Op, activation, boolean, numel, positive_int, register


@register
class Linear(Op):
    name = "linear"
    torch_modules = ('torch.nn.Linear',)

    @classmethod
    def from_torch(cls, m):
        return dict(out=m.out_features, bias=m.bias is not None)
    title = "linear"
    summary = "fully connected layer; the input is flattened to a vector first"
    depth = "weights"
    fvcore = "macs"
    args = {
        "out": Arg(positive_int, required=True, doc="output features", examples=(1, 5, 10)),
        "bias": Arg(boolean, True, doc="add a learned bias per output feature",
                    examples=(True, False)),
        "act": Arg(activation, None, doc="activation layer to follow, e.g. relu",
                   examples=("none", "relu", "softmax")),
    }

    def output_shape(self, shape):
        return (self.a["out"],)

    def counts(self, in_shape, out_shape):
        weights = numel(in_shape) * self.a["out"]
        return Counts(params=weights + (self.a["out"] if self.a["bias"] else 0),
                      weights=weights, macs=weights)

    def to_torch(self, in_shape):
        from archcalc.pytorch.modules import FlattenLinear
        return FlattenLinear(numel(in_shape), self.a["out"], bias=self.a["bias"])
