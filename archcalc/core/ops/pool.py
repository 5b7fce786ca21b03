"""Pooling: max and average over a window, global average pooling, and adaptive pooling to a
fixed output size (AlexNet's and VGG's 6×6 and 7×7 before the classifier).

Unlike convolution, a pooling window is unpadded by default ('valid'), as in every framework;
``ceil: true`` rounds the output size up as Caffe did, which is how Table 1 takes 112 to 56.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import ClassVar

from archcalc.core.ops import onnx_args
from archcalc.core.ops.base import (aten_arg, Arg, ArgError, Counts, Op, boolean, feature_map,
                                    fits, numel, pair, padding, patch_text, Reach, register,
                                    Saved, torch_pair, window, window_reach)


class _Window(Op):
    depth = "pool"
    # thop: zero_ops for MaxPool2d, count_avgpool (one per output element) for AvgPool2d
    thop_per_output: ClassVar[int] = 0
    args = {
        "kernel": Arg(pair, required=True, doc="window size, n or [height, width]",
                      examples=(1, 2, 3, [2, 3])),
        "stride": Arg(pair, None, doc="stride; the kernel size when not given",
                      examples=(1, 2, [1, 2])),
        "padding": Arg(padding, "valid", doc="'valid' (default), 'same', n or [height, width]",
                       examples=("valid", "same", 0, 1, [1, 0])),
        "ceil": Arg(boolean, False, doc="round the output size up (Caffe's pooling)",
                    examples=(False, True)),
    }

    def __init__(self, **values):
        if values.get("stride") is None:
            values["stride"] = values["kernel"]
        pad, kernel = values.get("padding"), values["kernel"]
        if isinstance(pad, tuple) and any(p > k // 2 for p, k in zip(pad, kernel)):
            # a window wholly in the padding has nothing to pool: PyTorch refuses to build it
            raise ArgError(f"padding {pad[0]}×{pad[1]} is more than half the "
                           f"{kernel[0]}×{kernel[1]} window; pad at most {kernel[0] // 2}×"
                           f"{kernel[1] // 2}, as PyTorch does")
        if pad == "same" and values.get("ceil"):
            # same already rounds up (output = ceil(input / stride)); ceil mode on top of its
            # padding would round again and give one more (8×8 /2: 5×5, not 4×4)
            raise ArgError("'padding: same' already rounds the output up (ceil(input / "
                           "stride)); drop 'ceil: true', or give the padding as a number")
        super().__init__(**values)

    def _window(self, shape):
        return window(shape, self.a["kernel"], self.a["stride"], self.a["padding"],
                      ceil=self.a["ceil"], what="window")

    def output_shape(self, shape):
        (h, w), _ = self._window(shape)
        return (shape[0], h, w)

    def reach(self, in_shape, out_shape):
        _, pads = self._window(in_shape)
        return window_reach(self.a["kernel"], self.a["stride"], pads)

    def counts(self, in_shape, out_shape):
        kh, kw = self.a["kernel"]
        return Counts(other_ops=kh * kw * numel(out_shape))  # one read per window element

    def conventions(self, in_shape, out_shape):
        # ptflops counts the input twice: pool_flops_counter_hook on the module, and its patch
        # of F.max_pool2d / F.avg_pool2d, which the module's forward calls
        return dict(super().conventions(in_shape, out_shape), ptflops=2 * numel(in_shape),
                    thop=numel(out_shape) * self.thop_per_output)

    def patch(self):
        return patch_text(self.a["kernel"], self.a["stride"])

    # --- what the importers ask (archcalc import, verify --against) ---------------

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        """MaxPool and AveragePool over 2-D windows, undilated, padded equally on both sides
        of each axis; MaxPool's second output (the indices) is not a spec's."""
        kernel, pad = onnx_args.window(attrs, "kernel_shape"), onnx_args.pads(attrs)
        if kernel is None or pad is None or any(d != 1 for d in attrs.get("dilations", [1])) \
                or len(node.output) > 1 and node.output[1]:
            return None
        return {"kernel": kernel, "stride": onnx_args.window(attrs, "strides"),
                "padding": pad, "ceil": bool(attrs.get("ceil_mode", 0))}


def _aten_window(args, kwargs, ceil):
    """A pooling call's window as a spec writes it (an empty stride is the kernel's)."""
    kernel = aten_arg(args, kwargs, 1, "kernel_size", None)
    stride = aten_arg(args, kwargs, 2, "stride", []) or kernel
    return dict(kernel=torch_pair(kernel), stride=torch_pair(stride),
                padding=torch_pair(aten_arg(args, kwargs, 3, "padding", [0])), ceil=bool(ceil))


def _window_args(m):

    """A PyTorch pooling module's window as a spec writes it."""
    pad = torch_pair(m.padding)
    return dict(kernel=torch_pair(m.kernel_size), stride=torch_pair(m.stride or m.kernel_size),
                padding=pad, ceil=m.ceil_mode)


@register
class MaxPool(_Window):
    name = "maxpool"
    title = "max pool"
    summary = "maximum over each window"

    def saved(self, in_shape, out_shape) -> Saved:
        """``max_pool2d_with_indices`` saves ``self`` and ``result1``, the int64 argmax of
        each output element (8 bytes each whatever the data type)."""
        return Saved(inputs=(0,), extra_bytes=8 * numel(out_shape))

    def to_torch(self, in_shape):
        from torch import nn
        _, pads = self._window(in_shape)
        return nn.MaxPool2d(self.a["kernel"], self.a["stride"], pads, ceil_mode=self.a["ceil"])

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.MaxPool2d',)
    aten_ops = ("aten.max_pool2d.default",)
    onnx_types = ("MaxPool",)

    @classmethod
    def from_aten(cls, args, kwargs, shapes):
        """max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode), undilated."""
        if torch_pair(aten_arg(args, kwargs, 4, "dilation", [1])) != 1:
            return None
        return _aten_window(args, kwargs, aten_arg(args, kwargs, 5, "ceil_mode", False))

    @classmethod
    def from_torch(cls, m):
        if torch_pair(m.dilation) != 1 or m.return_indices:
            raise ValueError("MaxPool2d with dilation or indices")
        return _window_args(m)


@register
class AvgPool(_Window):
    name = "avgpool"
    title = "avg pool"
    summary = "mean over each window (padding counts as zeros)"
    thop_per_output = 1

    def saved(self, in_shape, out_shape) -> Saved:
        """``avg_pool2d``'s backward takes ``self`` (derivatives.yaml), so autograd keeps it."""
        return Saved(inputs=(0,))

    def to_torch(self, in_shape):
        from torch import nn
        _, pads = self._window(in_shape)
        return nn.AvgPool2d(self.a["kernel"], self.a["stride"], pads, ceil_mode=self.a["ceil"])

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.AvgPool2d',)
    aten_ops = ("aten.avg_pool2d.default",)
    onnx_types = ("AveragePool",)

    @classmethod
    def from_aten(cls, args, kwargs, shapes):
        """avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
        divisor_override): a divisor override, or padding left out of the mean, is not a spec's."""
        if aten_arg(args, kwargs, 6, "divisor_override", None) is not None or \
                not aten_arg(args, kwargs, 5, "count_include_pad", True):
            return None
        return _aten_window(args, kwargs, aten_arg(args, kwargs, 4, "ceil_mode", False))

    @classmethod
    def from_torch(cls, m):
        if not m.count_include_pad or m.divisor_override is not None:
            raise ValueError("AvgPool2d that does not count the padding")
        return _window_args(m)

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        """As MaxPool; the padding counts as zeros here (count_include_pad=1, PyTorch's
        default), so a padded window that leaves the padding out of its mean stays opaque."""
        args = super().from_onnx(node, attrs, initializers, in_shapes)
        if args is not None and args["padding"] not in (0, [0, 0]) and \
                not attrs.get("count_include_pad", 0):
            return None
        return args


@register
class GlobalAvgPool(Op):
    name = "gap"
    title = "global avg pool"
    summary = "mean over the whole height and width: C×H×W to C×1×1"
    depth = "pool"
    fvcore = "other_ops"    # fvcore's adaptive_avg_pool2d: 1 per input element, as here

    def output_shape(self, shape):
        c, _, _ = feature_map(shape, "global average pooling")
        return (c, 1, 1)

    def reach(self, in_shape, out_shape):
        return None     # every output reads the whole map

    def counts(self, in_shape, out_shape):
        return Counts(other_ops=numel(in_shape))

    def conventions(self, in_shape, out_shape):
        return adaptive_avg_conventions(super().conventions(in_shape, out_shape), in_shape,
                                        out_shape)

    def saved(self, in_shape, out_shape) -> Saved:
        """``_adaptive_avg_pool2d`` saves ``self`` for its backward."""
        return Saved(inputs=(0,))

    def to_torch(self, in_shape):
        from torch import nn
        return nn.AdaptiveAvgPool2d(1)

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.AdaptiveAvgPool2d',)
    aten_ops = ("aten.adaptive_avg_pool2d.default",)
    onnx_types = ("GlobalAveragePool",)

    @classmethod
    def from_aten(cls, args, kwargs, shapes):
        """adaptive_avg_pool2d to 1×1 (else adaptive_avgpool's)."""
        return {} if torch_pair(aten_arg(args, kwargs, 1, "output_size", None)) == 1 else None

    @classmethod
    def from_torch(cls, m):
        if torch_pair(m.output_size) != 1:
            raise ValueError("not global")
        return {}


def adaptive_avg_conventions(base, in_shape, out_shape):
    """nn.AdaptiveAvgPool2d's counts (gap and adaptive_avgpool build one). thop's
    count_adap_avgpool: (the float ratio of input to output area, + 1 for the divide) per
    output element, truncated: float64 as thop computes it, so a ratio that is not whole
    rounds as there. ptflops: the input twice, module hook and patched F.adaptive_avg_pool2d."""
    (_, h, w), (_, oh, ow) = in_shape, out_shape
    return dict(base, thop=int(((h / oh) * (w / ow) + 1) * numel(out_shape)),
                ptflops=2 * numel(in_shape))


def adaptive_windows(size: int, out: int) -> int:
    """The summed length of PyTorch's adaptive pooling windows along one axis.

    Output ``i`` pools input ``floor(i·size/out)`` up to (not including)
    ``ceil((i+1)·size/out)``. Summed over ``i``, the floors and ceilings cancel but for the
    ``out - gcd`` ceilings that round up: ``size + out - gcd(size, out)``. Windows overlap
    where ``out`` does not divide ``size`` (13 to 6: six windows of 3, 18 reads).
    """
    return size + out - math.gcd(size, out)


class _Adaptive(Op):
    depth = "pool"
    args = {
        "size": Arg(pair, required=True, doc="output height and width, n or [height, width]",
                    examples=(1, 2, 3, [2, 3], [6, 1])),
    }

    def output_shape(self, shape):
        c, _, _ = feature_map(shape, f"{self.title}ing")
        return fits((c,) + self.a["size"], self.title)

    def reach(self, in_shape, out_shape):
        """Output i pools ``floor(i·size/out)`` to ``ceil((i+1)·size/out) - 1``, as PyTorch;
        to 1×1 it is a global pool, every output reading the whole map."""
        if out_shape[1:] == (1, 1):
            return None
        def axis(size, out):
            def reads(i):
                return (i * size // out, -(-(i + 1) * size // out) - 1)
            return Reach(Fraction(size, out), reads)
        return (axis(in_shape[1], out_shape[1]), axis(in_shape[2], out_shape[2]))


@register
class AdaptiveAvgPool(_Adaptive):
    name = "adaptive_avgpool"
    title = "adaptive avg pool"
    summary = "mean over windows that tile the input into a fixed output size (size: 6 → C×6×6)"
    fvcore = "other_ops"    # fvcore's adaptive_avg_pool2d: 1 per input element, as here

    def counts(self, in_shape, out_shape):
        # fvcore's convention: one add per input element, whatever the output size (an element
        # that two overlapping windows read counts once)
        return Counts(other_ops=numel(in_shape))

    def conventions(self, in_shape, out_shape):
        return adaptive_avg_conventions(super().conventions(in_shape, out_shape), in_shape,
                                        out_shape)

    def saved(self, in_shape, out_shape) -> Saved:
        """``_adaptive_avg_pool2d`` saves ``self`` for its backward."""
        return Saved(inputs=(0,))

    def to_torch(self, in_shape):
        from torch import nn
        return nn.AdaptiveAvgPool2d(self.a["size"])

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.AdaptiveAvgPool2d',)
    aten_ops = ("aten.adaptive_avg_pool2d.default",)

    @classmethod
    def from_aten(cls, args, kwargs, shapes):
        return dict(size=torch_pair(aten_arg(args, kwargs, 1, "output_size", None)))

    @classmethod
    def from_torch(cls, m):
        return dict(size=torch_pair(m.output_size))


@register
class AdaptiveMaxPool(_Adaptive):
    name = "adaptive_maxpool"
    title = "adaptive max pool"
    summary = "maximum over windows that tile the input into a fixed output size"

    def counts(self, in_shape, out_shape):
        # as maxpool: one read per window element; the windows' lengths multiply per axis
        c, h, w = in_shape
        oh, ow = self.a["size"]
        return Counts(other_ops=c * adaptive_windows(h, oh) * adaptive_windows(w, ow))

    def conventions(self, in_shape, out_shape):
        # thop: zero_ops; ptflops: the input twice (module hook, patched F.adaptive_max_pool2d)
        return dict(super().conventions(in_shape, out_shape), ptflops=2 * numel(in_shape))

    def saved(self, in_shape, out_shape) -> Saved:
        """``adaptive_max_pool2d`` saves ``self`` and ``result1``, int64 indices."""
        return Saved(inputs=(0,), extra_bytes=8 * numel(out_shape))

    def to_torch(self, in_shape):
        from torch import nn
        return nn.AdaptiveMaxPool2d(self.a["size"])

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.AdaptiveMaxPool2d',)
    onnx_types = ("GlobalMaxPool",)

    @classmethod
    def from_torch(cls, m):
        if m.return_indices:
            raise ValueError("AdaptiveMaxPool2d with indices")
        return dict(size=torch_pair(m.output_size))

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        return {"size": 1}
