"""Fully connected layer. Any input is flattened first, as the paper's classifier takes the
1×1×1024 output of average pooling."""
from __future__ import annotations

from archcalc.core.ops import onnx_args
from archcalc.core.ops.base import (act_arg, Arg, Saved, aten_tensor, boolean, Counts, numel, Op,
                                    positive_int, register)


@register
class Linear(Op):
    name = "linear"
    title = "linear"
    summary = "fully connected layer; the input is flattened to a vector first"
    depth = "weights"
    fvcore = "macs"
    args = {
        "out": Arg(positive_int, required=True, doc="output features", examples=(1, 5, 10)),
        "bias": Arg(boolean, True, doc="add a learned bias per output feature",
                    examples=(True, False)),
        "act": act_arg("relu", "softmax"),
    }

    def output_shape(self, shape):
        return (self.a["out"],)

    def reach(self, in_shape, out_shape):
        return None     # every output reads the whole input

    def counts(self, in_shape, out_shape):
        weights = numel(in_shape) * self.a["out"]
        return Counts(params=weights + (self.a["out"] if self.a["bias"] else 0),
                      weights=weights, macs=weights)

    def conventions(self, in_shape, out_shape):
        counts = self.counts(in_shape, out_shape)
        # thop and ptflops look modules up by exact class: after a vector the module is an
        # nn.Linear, which they count; after a map it is FlattenLinear, which neither knows
        plain = len(in_shape) == 1
        return dict(super().conventions(in_shape, out_shape),
                    thop=counts.macs if plain else 0,           # count_linear: in × out
                    # linear_flops_counter_hook: in × out, and one add per output for the bias
                    ptflops=counts.params if plain else 0,
                    torchinfo=counts.params)                    # every weight and bias, once

    def saved(self, in_shape, out_shape) -> Saved:
        """``addmm`` (``linear``) saves ``mat1``, the flattened input (a view of the input's
        storage), and ``mat2``, the weight (a parameter)."""
        return Saved(inputs=(0,))

    def to_torch(self, in_shape):
        if len(in_shape) == 1:      # a plain nn.Linear where nothing needs flattening
            from torch import nn
            return nn.Linear(in_shape[0], self.a["out"], bias=self.a["bias"])
        from archcalc.pytorch.modules import FlattenLinear
        return FlattenLinear(numel(in_shape), self.a["out"], bias=self.a["bias"])

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.Linear',)
    aten_ops = ("aten.linear.default",)
    onnx_types = ("Gemm", "MatMul")

    @classmethod
    def from_aten(cls, args, kwargs, shapes):
        """linear(input, weight, bias): the output features from the weight's shape."""
        weight = aten_tensor(shapes, 1)
        if weight is None or len(weight) != 2:
            return None
        return dict(out=weight[0], bias=aten_tensor(shapes, 2) is not None)

    @classmethod
    def from_torch(cls, m):
        return dict(out=m.out_features, bias=m.bias is not None)

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        """Gemm (A · B + C) with a constant B, transposed (PyTorch's Linear: transB=1) or not,
        and a constant C, unscaled; or MatMul of a vector by a constant matrix (no bias: the
        importer folds an Add of a constant vector that follows it in as the bias)."""
        weight = onnx_args.const(node, initializers, 1)
        if weight is None or weight.ndim != 2 or len(in_shapes) != 1 or len(in_shapes[0]) != 1:
            return None
        if node.op_type == "MatMul":
            return {"out": int(weight.shape[1]), "bias": False}
        bias = onnx_args.has_input(node, 2)
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or \
                attrs.get("beta", 1.0) != 1.0 or \
                (bias and onnx_args.const(node, initializers, 2) is None):
            return None
        return {"out": int(weight.shape[0] if attrs.get("transB", 0) else weight.shape[1]),
                "bias": bias}
