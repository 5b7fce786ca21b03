"""The op registry: one module per op family, each op one class. Importing this package
registers them all; ``OPS`` maps a spec's op name to its class."""
# importing each family registers its ops
from archcalc.core.ops import (activations, conv, join, linear, norm, opaque,  # noqa: F401
                               pool, resample, simple)
from archcalc.core.ops.base import (OPS, Arg, ArgError, Counts, Join, Op, Shape, ShapeError,
                                    fmt_shape, numel)

__all__ = ["OPS", "Arg", "ArgError", "Counts", "Join", "Op", "Shape", "ShapeError", "fmt_shape",
           "numel"]
