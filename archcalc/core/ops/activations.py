"""Activations beyond ReLU and softmax (simple.py): the ones of MobileNet, EfficientNet,
ConvNeXt and the GAN and LSTM-era nets. Each may be named by another op's ``act:``.

fvcore has no handler for any of them (it lists hardtanh, silu, gelu ... as unsupported and
counts 0), so ``verify`` checks their count by hand: one function evaluation per element.
"""
from __future__ import annotations

from archcalc.core.ops.base import Arg, Counts, Op, choice, number, numel, register


class _Activation(Op):
    activation = True

    def counts(self, in_shape, out_shape):
        return Counts(other_ops=numel(out_shape))     # one function evaluation per element


@register
class ReLU6(_Activation):
    name = "relu6"
    torch_modules = ('torch.nn.ReLU6',)
    torch_functions = ('torch.nn.functional.relu6',)
    title = "relu6"
    summary = "min(max(x, 0), 6) (MobileNet)"

    def to_torch(self, in_shape):
        from torch import nn
        return nn.ReLU6()


@register
class HardSwish(_Activation):
    name = "hardswish"
    torch_modules = ('torch.nn.Hardswish',)
    torch_functions = ('torch.nn.functional.hardswish',)
    title = "hard swish"
    summary = "x · relu6(x + 3) / 6 (MobileNetV3)"

    def to_torch(self, in_shape):
        from torch import nn
        return nn.Hardswish()


@register
class HardSigmoid(_Activation):
    name = "hardsigmoid"
    torch_modules = ('torch.nn.Hardsigmoid',)
    torch_functions = ('torch.nn.functional.hardsigmoid',)
    title = "hard sigmoid"
    summary = "relu6(x + 3) / 6 (MobileNetV3's squeeze-and-excitation gate)"

    def to_torch(self, in_shape):
        from torch import nn
        return nn.Hardsigmoid()


@register
class SiLU(_Activation):
    name = "silu"
    torch_modules = ('torch.nn.SiLU',)
    torch_functions = ('torch.nn.functional.silu',)
    title = "silu"
    summary = "x · sigmoid(x), also called swish (EfficientNet)"

    def to_torch(self, in_shape):
        from torch import nn
        return nn.SiLU()


@register
class GELU(_Activation):
    name = "gelu"
    torch_modules = ('torch.nn.GELU',)
    torch_functions = ('torch.nn.functional.gelu',)

    @classmethod
    def from_torch(cls, m):
        return dict(approximate=m.approximate)

    @classmethod
    def from_torch_call(cls, args, kwargs):
        return dict(approximate=kwargs.get("approximate", "none"))
    title = "gelu"
    summary = "x · Φ(x), the Gaussian error linear unit (ConvNeXt, transformers)"
    args = {
        "approximate": Arg(choice("none", "tanh"), "none",
                           doc="'none' (the exact erf) or 'tanh' (its tanh approximation)",
                           examples=("none", "tanh")),
    }

    def to_torch(self, in_shape):
        from torch import nn
        return nn.GELU(approximate=self.a["approximate"])


@register
class Sigmoid(_Activation):
    name = "sigmoid"
    torch_modules = ('torch.nn.Sigmoid',)
    torch_functions = ('torch.sigmoid', 'torch.nn.functional.sigmoid', 'method:sigmoid')
    title = "sigmoid"
    summary = "1 / (1 + exp(-x))"

    def to_torch(self, in_shape):
        from torch import nn
        return nn.Sigmoid()


@register
class Tanh(_Activation):
    name = "tanh"
    torch_modules = ('torch.nn.Tanh',)
    torch_functions = ('torch.tanh', 'torch.nn.functional.tanh', 'method:tanh')
    title = "tanh"
    summary = "hyperbolic tangent"

    def to_torch(self, in_shape):
        from torch import nn
        return nn.Tanh()


@register
class LeakyReLU(_Activation):
    name = "leaky_relu"
    torch_modules = ('torch.nn.LeakyReLU',)

    @classmethod
    def from_torch(cls, m):
        return dict(slope=m.negative_slope)
    title = "leaky relu"
    summary = "x for x > 0, slope · x below (DCGAN's discriminator: slope 0.2)"
    args = {
        "slope": Arg(number, 0.01, doc="the slope below zero (PyTorch's negative_slope)",
                     examples=(0.01, 0.2, 0)),
    }

    def to_torch(self, in_shape):
        from torch import nn
        return nn.LeakyReLU(self.a["slope"])
