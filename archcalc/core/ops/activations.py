"""Activations beyond ReLU and softmax (simple.py): the ones of MobileNet, EfficientNet,
ConvNeXt and the GAN and LSTM-era nets. Each may be named by another op's ``act:``.

fvcore has no handler for any of them (it lists hardtanh, silu, gelu ... as unsupported and
counts 0), so ``verify`` checks their count by hand: one function evaluation per element.
"""
from __future__ import annotations

from typing import ClassVar

from archcalc.core.ops import onnx_args
from archcalc.core.ops.base import aten_arg, Arg, Saved, Counts, Op, choice, number, numel, register


class _Activation(Op):
    """An elementwise function. ``module`` names torch.nn's class for it: ``to_torch`` makes
    one (with no arguments, unless the op overrides it) and the importer maps it back."""

    activation = True
    module: ClassVar[str] = ""
    # How many of ptflops' counters (module hook, patched torch.nn.functional) see the module
    ptflops_calls: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.module and "torch_modules" not in cls.__dict__:
            cls.torch_modules = (f"torch.nn.{cls.module}",)

    def counts(self, in_shape, out_shape):
        return Counts(other_ops=numel(out_shape))     # one function evaluation per element

    def conventions(self, in_shape, out_shape):
        # thop counts no activation (zero_ops, or no rule); ptflops one per element for each
        # of its module hook and its functional patch that the module's forward meets
        return dict(super().conventions(in_shape, out_shape),
                    ptflops=self.ptflops_calls * numel(out_shape))

    # What the backward takes (derivatives.yaml): most activations ``self``, their input (gelu,
    # silu, hardswish, hardsigmoid, leaky_relu, hardtanh for ReLU6); sigmoid and tanh ``result``.
    backward_reads_output: ClassVar[bool] = False

    def saved(self, in_shape, out_shape) -> Saved:
        return Saved(output=True) if self.backward_reads_output else Saved(inputs=(0,))

    def to_torch(self, in_shape):
        from torch import nn
        return getattr(nn, self.module)()


@register
class ReLU6(_Activation):
    name = "relu6"
    title = "relu6"
    summary = "min(max(x, 0), 6) (MobileNet)"
    module = "ReLU6"
    ptflops_calls = 1     # module hook; its forward calls F.hardtanh, unpatched

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_functions = ('torch.nn.functional.relu6',)
    aten_ops = ("aten.hardtanh.default", "aten.hardtanh_.default", "aten.relu6.default")
    onnx_types = ("Clip",)

    @classmethod
    def from_aten(cls, args, kwargs, shapes):
        """hardtanh(input, min_val, max_val) clamped to [0, 6] (nn.ReLU6's)."""
        bounds = (aten_arg(args, kwargs, 1, "min_val", -1.0), aten_arg(args, kwargs, 2,
                                                                        "max_val", 1.0))
        return {} if len(args) == 1 or bounds == (0.0, 6.0) else None

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        """Clip to [0, 6], the bounds as inputs (opset 11 on) or attributes (before)."""
        low = onnx_args.scalar(onnx_args.const(node, initializers, 1)) \
            if onnx_args.has_input(node, 1) else attrs.get("min")
        high = onnx_args.scalar(onnx_args.const(node, initializers, 2)) \
            if onnx_args.has_input(node, 2) else attrs.get("max")
        return {} if (low, high) == (0.0, 6.0) else None


@register
class HardSwish(_Activation):
    name = "hardswish"
    title = "hard swish"
    summary = "x · relu6(x + 3) / 6 (MobileNetV3)"
    module = "Hardswish"

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_functions = ('torch.nn.functional.hardswish',)
    aten_ops = ('aten.hardswish.default', 'aten.hardswish_.default')
    onnx_types = ("HardSwish",)


@register
class HardSigmoid(_Activation):
    name = "hardsigmoid"
    title = "hard sigmoid"
    summary = "relu6(x + 3) / 6 (MobileNetV3's squeeze-and-excitation gate)"
    module = "Hardsigmoid"

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_functions = ('torch.nn.functional.hardsigmoid',)
    aten_ops = ('aten.hardsigmoid.default', 'aten.hardsigmoid_.default')
    onnx_types = ("HardSigmoid",)

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        """ONNX's HardSigmoid is max(0, min(1, alpha·x + beta)) with alpha 0.2 by default;
        PyTorch's (this op) has alpha 1/6 and beta 1/2."""
        alpha, beta = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
        return {} if abs(alpha - 1 / 6) < 1e-6 and abs(beta - 0.5) < 1e-6 else None


@register
class SiLU(_Activation):
    name = "silu"
    title = "silu"
    summary = "x · sigmoid(x), also called swish (EfficientNet)"
    module = "SiLU"
    ptflops_calls = 1     # no module hook; the patched F.silu

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_functions = ('torch.nn.functional.silu',)
    aten_ops = ('aten.silu.default', 'aten.silu_.default')


@register
class GELU(_Activation):
    name = "gelu"
    title = "gelu"
    summary = "x · Φ(x), the Gaussian error linear unit (ConvNeXt, transformers)"
    module = "GELU"
    ptflops_calls = 2     # module hook and the patched F.gelu
    args = {
        "approximate": Arg(choice("none", "tanh"), "none",
                           doc="'none' (the exact erf) or 'tanh' (its tanh approximation)",
                           examples=("none", "tanh")),
    }

    def to_torch(self, in_shape):
        from torch import nn
        return nn.GELU(approximate=self.a["approximate"])

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_functions = ('torch.nn.functional.gelu',)
    aten_ops = ("aten.gelu.default", "aten.gelu_.default")
    onnx_types = ("Gelu",)

    @classmethod
    def from_aten(cls, args, kwargs, shapes):
        return dict(approximate=kwargs.get("approximate", "none"))

    @classmethod
    def from_torch(cls, m):
        return dict(approximate=m.approximate)

    @classmethod
    def from_torch_call(cls, args, kwargs):
        return dict(approximate=kwargs.get("approximate", "none"))

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        """Gelu (opset 20); earlier exports spell it out with Erf, which stays opaque."""
        approximate = attrs.get("approximate", "none")
        return {"approximate": approximate} if approximate in ("none", "tanh") else None


@register
class Sigmoid(_Activation):
    name = "sigmoid"
    title = "sigmoid"
    summary = "1 / (1 + exp(-x))"
    module = "Sigmoid"

    backward_reads_output = True    # derivatives.yaml: ``sigmoid_backward(grad, result)``

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_functions = ('torch.sigmoid', 'torch.nn.functional.sigmoid', 'method:sigmoid')
    aten_ops = ('aten.sigmoid.default', 'aten.sigmoid_.default')
    onnx_types = ("Sigmoid",)


@register
class Tanh(_Activation):
    name = "tanh"
    title = "tanh"
    summary = "hyperbolic tangent"
    module = "Tanh"

    backward_reads_output = True    # derivatives.yaml: ``tanh_backward(grad, result)``

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_functions = ('torch.tanh', 'torch.nn.functional.tanh', 'method:tanh')
    aten_ops = ('aten.tanh.default', 'aten.tanh_.default')
    onnx_types = ("Tanh",)


@register
class LeakyReLU(_Activation):
    name = "leaky_relu"
    title = "leaky relu"
    summary = "x for x > 0, slope · x below (DCGAN's discriminator: slope 0.2)"
    module = "LeakyReLU"
    ptflops_calls = 1     # module hook; F.leaky_relu is unpatched
    args = {
        "slope": Arg(number, 0.01, doc="the slope below zero (PyTorch's negative_slope)",
                     examples=(0.01, 0.2, 0)),
    }

    def to_torch(self, in_shape):
        from torch import nn
        return nn.LeakyReLU(self.a["slope"])

    # --- what the importers ask (archcalc import, verify --against) ---------------
    onnx_types = ("LeakyRelu",)

    @classmethod
    def from_torch(cls, m):
        return dict(slope=m.negative_slope)

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        return {"slope": float(attrs.get("alpha", 0.01))}
