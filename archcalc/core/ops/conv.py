"""Convolution: 2-D, grouped, dilated, with rectangular kernels."""
from __future__ import annotations

from archcalc.core.ops.base import (Arg, ArgError, Counts, Op, ShapeError, activation, boolean, pair, padding,
                   patch_text, positive_int, register, window)


@register
class Conv(Op):
    name = "conv"
    title = "convolution"
    summary = "2-D convolution; padding 'same' by default (output = ceil(input / stride))"
    depth = "weights"
    fvcore = "macs"
    args = {
        "out": Arg(positive_int, required=True, doc="output channels",
                   examples=(2, 4, 6)),
        "kernel": Arg(pair, required=True, doc="kernel size, n or [height, width]",
                      examples=(1, 2, 3, [1, 3], [3, 2])),
        "stride": Arg(pair, 1, doc="stride, n or [height, width]", examples=(1, 2, [2, 1])),
        "padding": Arg(padding, "same", doc="'same', 'valid', n or [height, width]",
                       examples=("same", "valid", 0, 1, [2, 0])),
        "dilation": Arg(pair, 1, doc="spacing between kernel elements", examples=(1, 2, [1, 2])),
        "groups": Arg(positive_int, 1, doc="channel groups; input and output channels must divide",
                      examples=(1, 2)),
        "bias": Arg(boolean, True, doc="add a learned bias per output channel",
                    examples=(True, False)),
        "act": Arg(activation, None, doc="activation layer to follow, e.g. relu",
                   examples=("none", "relu")),
    }

    def __init__(self, **values):
        super().__init__(**values)
        if values["out"] % values["groups"]:
            raise ArgError(f"'out' ({values['out']}) must be divisible by 'groups' "
                           f"({values['groups']})")

    def output_shape(self, shape):
        c = shape[0]
        if len(shape) == 3 and c % self.a["groups"]:
            raise ShapeError(f"{c} input channels cannot be split into {self.a['groups']} groups")
        (h, w), _ = window(shape, self.a["kernel"], self.a["stride"], self.a["padding"],
                           self.a["dilation"], what="kernel")
        return (self.a["out"], h, w)

    def counts(self, in_shape, out_shape):
        kh, kw = self.a["kernel"]
        weights = self.a["out"] * (in_shape[0] // self.a["groups"]) * kh * kw
        bias = self.a["out"] if self.a["bias"] else 0
        return Counts(params=weights + bias, weights=weights,
                      macs=weights * out_shape[1] * out_shape[2])

    def patch(self):
        return patch_text(self.a["kernel"], self.a["stride"])

    def to_torch(self, in_shape):
        from torch import nn
        _, pads = window(in_shape, self.a["kernel"], self.a["stride"], self.a["padding"],
                         self.a["dilation"])
        return nn.Conv2d(in_shape[0], self.a["out"], self.a["kernel"], self.a["stride"], pads,
                         self.a["dilation"], self.a["groups"], self.a["bias"])
