"""Upsampling by interpolation: the decoder side of segmentation nets and FPNs."""
from __future__ import annotations

import math
from fractions import Fraction

from archcalc.core.ops import onnx_args
from archcalc.core.ops.base import (Arg, ArgError, Counts, Op, choice, feature_map, fits, numel,
                                    pair, Reach, register, torch_pair)

# reads per output element: nearest copies one input value, bilinear weighs four neighbours
_READS = {"nearest": 1, "bilinear": 4}


@register
class Upsample(Op):
    name = "upsample"
    title = "upsample"
    summary = "resize each channel by a whole factor (scale) or to a size; nearest or bilinear"
    # fvcore's upsample_nearest2d: 1 per output element; upsample_bilinear2d: 4; as here
    fvcore = "other_ops"
    args = {
        "scale": Arg(pair, None, doc="whole-number factor, n or [height, width] (or give size)",
                     examples=(1, 2, [2, 3])),
        "size": Arg(pair, None, doc="output height and width, n or [height, width] (or give "
                                    "scale)", examples=(1, 4, [3, 5])),
        "mode": Arg(choice(*_READS), "nearest", doc="'nearest' or 'bilinear' (corners not "
                                                    "aligned, PyTorch's default)",
                    examples=("nearest", "bilinear")),
    }

    def __init__(self, **values):
        if (values.get("scale") is None) == (values.get("size") is None):
            raise ArgError("takes one of 'scale' and 'size'")
        super().__init__(**values)

    def output_shape(self, shape):
        c, h, w = feature_map(shape, "upsampling")
        if self.a["size"] is not None:
            return (c,) + self.a["size"]
        sh, sw = self.a["scale"]
        return fits((c, h * sh, w * sw), "upsampling")

    def reach(self, in_shape, out_shape):
        """PyTorch's source coordinate of output o is ``o·in/out`` for nearest (its floor) and
        ``(o + 1/2)·in/out - 1/2`` for bilinear, which reads its floor and the next position,
        the next with weight 0 (so not at all) where the coordinate is whole."""
        bilinear = self.a["mode"] == "bilinear"

        def axis(size, out):
            scale = Fraction(size, out)

            def reads(o):
                if not bilinear:
                    return (o * size // out,) * 2
                x = (o + Fraction(1, 2)) * scale - Fraction(1, 2)
                first = math.floor(x)
                return (first, first + (x != first))
            return Reach(scale, reads)
        return (axis(in_shape[1], out_shape[1]), axis(in_shape[2], out_shape[2]))

    def counts(self, in_shape, out_shape):
        return Counts(other_ops=_READS[self.a["mode"]] * numel(out_shape))

    def conventions(self, in_shape, out_shape):
        n = numel(out_shape)
        return dict(super().conventions(in_shape, out_shape),
                    # count_upsample: one per output element nearest, 11 bilinear
                    thop=(11 if self.a["mode"] == "bilinear" else 1) * n,
                    # the module hook and the patched F.interpolate: the output, twice
                    ptflops=2 * n)

    def to_torch(self, in_shape):
        from torch import nn
        corners = False if self.a["mode"] == "bilinear" else None
        if self.a["size"] is not None:
            return nn.Upsample(size=self.a["size"], mode=self.a["mode"], align_corners=corners)
        return nn.Upsample(scale_factor=tuple(float(s) for s in self.a["scale"]),
                           mode=self.a["mode"], align_corners=corners)

    # --- what the importers ask (archcalc import, verify --against) ---------------
    torch_modules = ('torch.nn.Upsample',)
    onnx_types = ("Resize", "Upsample")

    @classmethod
    def from_torch(cls, m):
        if m.mode not in _READS or m.align_corners:
            raise ValueError(f"Upsample mode {m.mode} (align_corners {m.align_corners})")
        if m.size is not None:
            return dict(size=torch_pair(m.size), mode=m.mode)
        scale = m.scale_factor if isinstance(m.scale_factor, tuple) else (m.scale_factor,) * 2
        if any(float(s) != int(s) for s in scale):
            raise ValueError(f"Upsample by {m.scale_factor}")
        return dict(scale=torch_pair(tuple(int(s) for s in scale)), mode=m.mode)

    @classmethod
    def from_onnx(cls, node, attrs, initializers, in_shapes):
        """Resize (X, roi, scales, sizes) or the older Upsample (X, scales) of the height and
        width only, by whole constant scales or to constant sizes; 'nearest', or 'linear' with
        corners not aligned (PyTorch's bilinear). Cubic, aligned corners, a crop: opaque."""
        mode = attrs.get("mode", "nearest")
        transform = attrs.get("coordinate_transformation_mode", "half_pixel")
        if mode == "linear" and transform in ("half_pixel", "pytorch_half_pixel"):
            mode = "bilinear"
        elif mode != "nearest" or transform == "tf_crop_and_resize":
            return None
        scales_at, sizes_at = (1, None) if node.op_type == "Upsample" else (2, 3)
        sizes = onnx_args.const(node, initializers, sizes_at) if sizes_at else None
        if sizes is not None and sizes.size == 4:
            (n, c, h, w), (ch, _, _) = sizes.tolist(), in_shapes[0]
            return {"size": onnx_args.spec_pair((h, w)), "mode": mode} if c == ch else None
        scales = onnx_args.const(node, initializers, scales_at)
        if scales is None or scales.size != 4:
            return None
        n, c, h, w = (float(s) for s in scales.tolist())
        if (n, c) != (1.0, 1.0) or not (h.is_integer() and w.is_integer()) or min(h, w) < 1:
            return None
        return {"scale": onnx_args.spec_pair((int(h), int(w))), "mode": mode}
