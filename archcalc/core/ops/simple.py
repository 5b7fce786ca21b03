"""Ops without weights that keep or reshape their input: activations, dropout, flatten."""
from __future__ import annotations

from archcalc.core.ops.base import Arg, Counts, Op, numel, probability, register


@register
class ReLU(Op):
    name = "relu"
    title = "relu"
    summary = "rectified linear unit, max(x, 0)"
    activation = True

    def counts(self, in_shape, out_shape):
        return Counts(other_ops=numel(out_shape))

    def to_torch(self, in_shape):
        from torch import nn
        return nn.ReLU()


@register
class Softmax(Op):
    name = "softmax"
    title = "softmax"
    summary = "softmax over channels (the class scores)"
    activation = True
    output_transform = True

    def counts(self, in_shape, out_shape):
        return Counts(other_ops=numel(out_shape))  # one exponential per element

    def to_torch(self, in_shape):
        from torch import nn
        return nn.Softmax(dim=1)


@register
class Dropout(Op):
    name = "dropout"
    title = "dropout"
    summary = "zeroes a random fraction p of activations in training; identity at inference"
    args = {"p": Arg(probability, 0.5, doc="fraction dropped", examples=(0.0, 0.5))}

    def to_torch(self, in_shape):
        from torch import nn
        return nn.Dropout(self.a["p"])


@register
class Flatten(Op):
    name = "flatten"
    title = "flatten"
    summary = "C×H×W to a vector of C·H·W"

    def output_shape(self, shape):
        return (numel(shape),)

    def to_torch(self, in_shape):
        from torch import nn
        return nn.Flatten()


@register
class Identity(Op):
    name = "identity"
    title = "identity"
    summary = "passes its input on; the shortcut branch of a residual add"

    def to_torch(self, in_shape):
        from torch import nn
        return nn.Identity()
