"""Convolution: 2-D, grouped, dilated, with rectangular kernels; and its transpose, which
upsamples (U-Net's up-convolution, FCN's and DCGAN's "deconvolution")."""
from __future__ import annotations

import math
from fractions import Fraction

from archcalc.core.ops import onnx_args
from archcalc.core.ops.base import (act_arg, amount, Arg, ArgError, aten_arg, aten_tensor, boolean,
                                    Counts, feature_map, fits, numel, Op, padding, pair, patch_text,
                                    positive_int, Reach, register, Saved, ShapeError,
                                    torch_padding, torch_pair, window, window_reach)


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
        "act": act_arg("relu"),
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

    def reach(self, in_shape, out_shape):
        _, pads = window(in_shape, self.a["kernel"], self.a["stride"], self.a["padding"],
                         self.a["dilation"])
        return window_reach(self.a["kernel"], self.a["stride"], pads, self.a["dilation"])

    def counts(self, in_shape, out_shape):
        kh, kw = self.a["kernel"]
        weights = self.a["out"] * (in_shape[0] // self.a["groups"]) * kh * kw
        bias = self.a["out"] if self.a["bias"] else 0
        return Counts(params=weights + bias, weights=weights,
                      macs=weights * out_shape[1] * out_shape[2])

    def conventions(self, in_shape, out_shape):
        macs = self.counts(in_shape, out_shape).macs
        return dict(super().conventions(in_shape, out_shape),
                    thop=macs,      # count_convNd: output elements × in/groups × kh × kw
                    # conv_flops_counter_hook: the same, and one add per output for the bias
                    ptflops=macs + (numel(out_shape) if self.a["bias"] else 0),
                    # every weight and bias × output positions ("Conv" in the class name)
                    torchinfo=self.counts(in_shape, out_shape).params * out_shape[1] *
                    out_shape[2])

    def patch(self):
        return patch_text(self.a["kernel"], self.a["stride"])

    def saved(self, in_shape, out_shape) -> Saved:
        """convolution_backward needs the input (for the weight's gradient) and the weight
        (a parameter): derivatives.yaml's ``convolution`` saves ``input`` and ``weight``."""
        return Saved(inputs=(0,))

    def to_torch(self, in_shape):
        from torch import nn
        _, pads = window(in_shape, self.a["kernel"], self.a["stride"], self.a["padding"],
                         self.a["dilation"])
        return nn.Conv2d(in_shape[0], self.a["out"], self.a["kernel"], self.a["stride"], pads,
                         self.a["dilation"], self.a["groups"], self.a["bias"])

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.Conv2d',)
    aten_ops = ("aten.conv2d.default",)
    onnx_types = ("Conv",)

    @classmethod
    def from_aten(cls, args, kwargs, shapes):
        """conv2d(input, weight, bias, stride, padding, dilation, groups): the kernel and the
        output channels from the weight's shape, a bias where one is passed; padding 'same'
        (PyTorch's, uneven) stays opaque."""
        weight = aten_tensor(shapes, 1)
        pad = aten_arg(args, kwargs, 4, "padding", [0])
        if weight is None or len(weight) != 4 or isinstance(pad, str) and pad != "valid":
            return None
        return dict(out=weight[0], kernel=torch_pair(weight[2:]),
                    stride=torch_pair(aten_arg(args, kwargs, 3, "stride", [1])),
                    padding=0 if pad == "valid" else torch_pair(pad),
                    dilation=torch_pair(aten_arg(args, kwargs, 5, "dilation", [1])),
                    groups=aten_arg(args, kwargs, 6, "groups", 1),
                    bias=aten_tensor(shapes, 2) is not None)

    @classmethod
    def from_torch(cls, m):
        return dict(out=m.out_channels, kernel=torch_pair(m.kernel_size),
                    stride=torch_pair(m.stride), padding=torch_padding(m),
                    dilation=torch_pair(m.dilation), groups=m.groups, bias=m.bias is not None)

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        """Conv with a constant 4-D weight (out, in/groups, kh, kw) and pads equal on both
        sides of each axis; asymmetric pads (TensorFlow's 'same' at stride 2) stay opaque."""
        weight = onnx_args.const(node, initializers, 1)
        pad = onnx_args.pads(attrs)
        if weight is None or weight.ndim != 4 or pad is None or len(in_shapes) != 1 or \
                (onnx_args.has_input(node, 2) and onnx_args.const(node, initializers, 2) is None):
            return None
        return {"out": int(weight.shape[0]), "kernel": onnx_args.spec_pair(weight.shape[2:]),
                "stride": onnx_args.window(attrs, "strides"), "padding": pad,
                "dilation": onnx_args.window(attrs, "dilations"),
                "groups": int(attrs.get("group", 1)), "bias": onnx_args.has_input(node, 2)}


@register
class ConvTranspose(Op):
    """PyTorch's ConvTranspose2d: each input position scatters ``kernel`` × output channels
    into the output, ``stride`` apart; ``padding`` crops the result on each side."""

    name = "conv_transpose"
    title = "transposed conv"
    summary = "transposed 2-D convolution (up-convolution): output = (input - 1) × stride " \
              "- 2 × padding + dilation × (kernel - 1) + output_padding + 1"
    depth = "weights"
    # fvcore's conv handler counts a transposed convolution by its INPUT positions:
    # in × out/groups × kh × kw × H_in × W_in, as macs here (and as FlopCounterMode does)
    fvcore = "macs"
    args = {
        "out": Arg(positive_int, required=True, doc="output channels", examples=(2, 4, 6)),
        "kernel": Arg(pair, required=True, doc="kernel size, n or [height, width]",
                      examples=(1, 2, 3, [2, 3])),
        "stride": Arg(pair, 1, doc="stride (the upsampling factor), n or [height, width]",
                      examples=(1, 2, [2, 1])),
        "padding": Arg(amount, 0, doc="rows and columns cropped from each side of the output, "
                                      "n or [height, width]", examples=(0, 1, [1, 0])),
        "output_padding": Arg(amount, 0, doc="rows and columns added to one side (bottom, "
                                             "right); less than the stride or the dilation",
                              examples=(0, 1)),
        "dilation": Arg(pair, 1, doc="spacing between kernel elements", examples=(1, 2)),
        "groups": Arg(positive_int, 1, doc="channel groups; input and output channels must divide",
                      examples=(1, 2)),
        "bias": Arg(boolean, True, doc="add a learned bias per output channel",
                    examples=(True, False)),
        "act": act_arg("relu"),
    }

    def __init__(self, **values):
        super().__init__(**values)
        if values["out"] % values["groups"]:
            raise ArgError(f"'out' ({values['out']}) must be divisible by 'groups' "
                           f"({values['groups']})")
        for extra, stride, dilation in zip(values["output_padding"], values["stride"],
                                           values["dilation"]):
            if extra >= stride and extra >= dilation:
                # PyTorch's rule: an output padding of a whole stride would be a row no
                # input position reaches
                raise ArgError(f"'output_padding' ({extra}) must be less than the stride "
                               f"({stride}) or the dilation ({dilation}), as PyTorch requires")

    def output_shape(self, shape):
        c, h, w = feature_map(shape, "a transposed convolution")
        if c % self.a["groups"]:
            raise ShapeError(f"{c} input channels cannot be split into {self.a['groups']} groups")
        out = tuple((size - 1) * self.a["stride"][i] - 2 * self.a["padding"][i]
                    + self.a["dilation"][i] * (self.a["kernel"][i] - 1)
                    + self.a["output_padding"][i] + 1 for i, size in enumerate((h, w)))
        if min(out) < 1:
            ph, pw = self.a["padding"]
            raise ShapeError(f"padding {ph}×{pw} crops the whole {self.a['kernel'][0]}×"
                             f"{self.a['kernel'][1]} transposed convolution of a {h}×{w} input")
        return fits((self.a["out"],) + out, "the transposed convolution")

    def reach(self, in_shape, out_shape):
        """Input j adds its kernel to outputs ``j·stride - padding + t·dilation`` (t < kernel),
        so output o reads the j for which ``o + padding - t·dilation`` is a multiple of the
        stride: the first and last such j (none for an output no tap lands on)."""
        def axis(k, s, p, d):
            def reads(o):
                js = [(o + p - t * d) // s for t in range(k) if (o + p - t * d) % s == 0]
                return (min(js), max(js)) if js else None
            # the taps that land are s / gcd(s, d) apart, the inputs they read d / gcd(s, d)
            return Reach(Fraction(1, s), reads, d // math.gcd(s, d))
        return tuple(axis(*args) for args in zip(self.a["kernel"], self.a["stride"],
                                                 self.a["padding"], self.a["dilation"]))

    def counts(self, in_shape, out_shape):
        kh, kw = self.a["kernel"]
        weights = in_shape[0] * (self.a["out"] // self.a["groups"]) * kh * kw
        bias = self.a["out"] if self.a["bias"] else 0
        # every input position times the whole kernel, products that padding crops included
        return Counts(params=weights + bias, weights=weights,
                      macs=weights * in_shape[1] * in_shape[2])

    def conventions(self, in_shape, out_shape):
        counts = self.counts(in_shape, out_shape)
        kh, kw = self.a["kernel"]
        return dict(super().conventions(in_shape, out_shape),
                    # count_convNd, as for a convolution: OUTPUT elements × in/groups × kh × kw
                    thop=numel(out_shape) * (in_shape[0] // self.a["groups"]) * kh * kw,
                    # conv_flops_counter_hook(transpose=True): input positions, and the bias
                    ptflops=counts.macs + (numel(out_shape) if self.a["bias"] else 0),
                    # every weight and bias × OUTPUT positions ("Conv" in the class name)
                    torchinfo=counts.params * out_shape[1] * out_shape[2])

    def patch(self):
        return patch_text(self.a["kernel"], self.a["stride"])

    def saved(self, in_shape, out_shape) -> Saved:
        """The same ``convolution`` (transposed=True) entry: ``input`` and ``weight``."""
        return Saved(inputs=(0,))

    def to_torch(self, in_shape):
        from torch import nn
        return nn.ConvTranspose2d(in_shape[0], self.a["out"], self.a["kernel"], self.a["stride"],
                                  self.a["padding"], self.a["output_padding"], self.a["groups"],
                                  self.a["bias"], self.a["dilation"])

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.ConvTranspose2d',)
    onnx_types = ("ConvTranspose",)

    @classmethod
    def from_torch(cls, m):
        return dict(out=m.out_channels, kernel=torch_pair(m.kernel_size),
                    stride=torch_pair(m.stride), padding=torch_padding(m),
                    output_padding=torch_pair(m.output_padding), dilation=torch_pair(m.dilation),
                    groups=m.groups, bias=m.bias is not None)

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        """ConvTranspose with a constant weight (in, out/groups, kh, kw), symmetric pads and no
        explicit output_shape (which asks the runtime to work the padding out)."""
        weight = onnx_args.const(node, initializers, 1)
        pad = onnx_args.pads(attrs)
        if weight is None or weight.ndim != 4 or pad is None or "output_shape" in attrs or \
                len(in_shapes) != 1 or \
                (onnx_args.has_input(node, 2) and onnx_args.const(node, initializers, 2) is None):
            return None
        groups = int(attrs.get("group", 1))
        return {"out": int(weight.shape[1]) * groups,
                "kernel": onnx_args.spec_pair(weight.shape[2:]),
                "stride": onnx_args.window(attrs, "strides"), "padding": pad,
                "output_padding": onnx_args.window(attrs, "output_padding", 0),
                "dilation": onnx_args.window(attrs, "dilations"), "groups": groups,
                "bias": onnx_args.has_input(node, 2)}
