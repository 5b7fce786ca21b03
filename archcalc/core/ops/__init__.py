"""The op registry: one module per op family, each op one class. Importing this package
registers them all; ``OPS`` maps a spec's op name to its class."""
from archcalc.core.ops import (conv, join, linear, norm, pool, simple,  # noqa: F401
                               activations, resample, opaque)  # (registration)
from archcalc.core.ops.base import (OPS, Arg, ArgError, Counts, Join, Op, Shape, ShapeError, fmt_shape,
                                   numel)

__all__ = ["OPS", "Arg", "ArgError", "Counts", "Join", "Op", "Shape", "ShapeError", "fmt_shape",
           "numel"]
