"""What every op is: its arguments, its output shape, its counts.

An op class is the one place that knows an op type. The spec reader validates arguments through
its ``args`` table, the graph asks it for output shapes, the analyzer for counts, the torch
builder for a module. Nothing outside ``archcalc/core/ops`` branches on op names.

Most ops take one input. A :class:`Join` takes several (the branches of a concat or a residual
add): the same interface over a tuple of input shapes, and the spec writes its inputs as
branches. Whether an op takes one input or several is the class attribute ``inputs``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, ClassVar, Dict, Optional, Tuple

from archcalc.core.limits import MAX_INT

Shape = Tuple[int, ...]  # (C, H, W) for feature maps, (F,) for vectors


class ArgError(ValueError):
    """An argument value that does not fit; the message completes "op 'arg' ...". """


class ShapeError(ValueError):
    """An op that cannot take the shape it is given; the message says why."""


@dataclass(frozen=True)
class Arg:
    """One argument of an op: how to check and normalize its value, and its default."""

    check: Callable[[Any], Any]
    default: Any = None
    required: bool = False
    doc: str = ""
    # Values as a spec writes them, each one ``check`` accepts: the PyTorch-oracle property test
    # (tests/test_verify.py) draws every registered op's arguments from them.
    examples: Tuple[Any, ...] = ()
    # Free text taken as written: no name lookup, no expression (an opaque layer's `kind`,
    # "aten::sort", which would otherwise read as a malformed expression).
    literal: bool = False


@dataclass(frozen=True)
class Counts:
    """What one layer costs, per image. Python ints throughout.

    ``params`` are trainable parameters with biases; ``weights`` the same without biases (the
    paper's convention); ``non_trainable`` state such as BatchNorm's running statistics;
    ``macs`` multiply-adds of convolution and linear weights, bias excluded; ``other_ops``
    the elementwise or comparison work of every other op, kept apart from ``macs``.
    """

    params: int = 0
    weights: int = 0
    non_trainable: int = 0
    macs: int = 0
    other_ops: int = 0

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(
            self.params + other.params,
            self.weights + other.weights,
            self.non_trainable + other.non_trainable,
            self.macs + other.macs,
            self.other_ops + other.other_ops,
        )


@dataclass(frozen=True)
class Saved:
    """What autograd keeps of one layer from the forward pass for the backward pass (what
    PyTorch's tools/autograd/derivatives.yaml has the op's backward formula read), per image.

    ``inputs`` (indices into the layer's inputs) and ``output`` name tensors the network
    already holds: memory counts each such tensor once however many layers save it (a conv
    and the ReLU before it keep the same map). ``extra`` are numbers of the network's data type
    that only the backward needs (dropout's noise); ``extra_bytes`` per image and
    ``batch_bytes`` per batch are of a fixed type (int64 indices, float32 statistics).
    Parameters are not counted here: they are alive anyway."""

    inputs: Tuple[int, ...] = ()
    output: bool = False
    extra: int = 0
    extra_bytes: int = 0
    batch_bytes: int = 0


def numel(shape: Shape) -> int:
    return math.prod(shape)


def fmt_shape(shape: Shape) -> str:
    return "×".join(str(d) for d in shape)


class Op:
    """Base class of all ops. Subclasses set the class attributes and override the methods."""

    name: ClassVar[str] = ""            # the key in a spec
    title: ClassVar[str] = ""           # how a table names the type ("convolution")
    summary: ClassVar[str] = ""         # one line for docs and `archcalc ops`
    args: ClassVar[Dict[str, Arg]] = {}
    depth: ClassVar[Optional[str]] = None   # "weights" (conv, linear) or "pool": counted in depth
    activation: ClassVar[bool] = False      # may be named by another op's `act:`
    # Which of this op's Counts fields fvcore's FlopCountAnalysis reports for its module in
    # eval mode ("macs", "other_ops"), or None when fvcore does not count the op (`verify`).
    fvcore: ClassVar[Optional[str]] = None
    # Turns logits into probabilities (softmax): build_model(logits=True) leaves it off the end.
    output_transform: ClassVar[bool] = False
    # "one": output_shape(shape), counts(in_shape, out_shape), to_torch(in_shape);
    # "many" (a Join): the same methods over a tuple of input shapes, one per branch.
    inputs: ClassVar[str] = "one"
    # A stand-in for an operation a traced model had and no op expresses (ops/opaque.py): its
    # shape and parameters are recorded, its work is not counted, and it cannot be built, so
    # build_model, verify and train refuse it and `table` lists it.
    opaque: ClassVar[bool] = False
    # Whether the module's output is its (first) input's storage, a view or the input itself,
    # so that memory allocates nothing for it: "always" (flatten, identity, a crop),
    # "inference" (eval-mode dropout and stochastic depth), or None (a new tensor).
    view: ClassVar[Optional[str]] = None
    # What `archcalc import` maps to this op (archcalc/bridge/from_torch.py builds its registry
    # from these; nothing else names torch types): PyTorch module classes by dotted path
    # ("torch.nn.Conv2d"; subclasses too), and functions or tensor methods a traced graph calls
    # ("torch.cat", "operator.add", "method:flatten"). Strings, so that core never imports torch.
    torch_modules: ClassVar[Tuple[str, ...]] = ()
    torch_functions: ClassVar[Tuple[str, ...]] = ()

    def __init__(self, **values: Any):
        self.a = values  # validated, normalized argument values

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.a.items())
        return f"{self.name}({args})"

    # --- what the analyzer asks -------------------------------------------------------------
    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def reach(self, in_shape: Shape, out_shape: Shape) -> Optional[Tuple["Reach", "Reach"]]:
        """Which input positions each output position reads, along the height and the width
        (core/receptive.py); None where every output reads all of its input (a global pool, a
        linear layer). The default is an elementwise op's: output (i, j) reads input (i, j).
        Normalizations count as elementwise: their statistics are taken as constants, as at
        inference."""
        return same_reach()

    def counts(self, in_shape: Shape, out_shape: Shape) -> Counts:
        return Counts()

    def conventions(self, in_shape: Shape, out_shape: Shape) -> Dict[str, int]:
        """What each FLOP counter of core/conventions.TOOLS reports for this op's module as
        ``to_torch`` builds it, batch 1, eval mode. The default: archcalc's MACs (paper),
        the ``fvcore`` field, twice the MACs for FlopCounterMode (it counts FLOPs of matmuls
        and convolutions only); for ptflops' aten backend, which counts the same ATen calls,
        the MACs and one add per output where a bias is added (params beyond the weights);
        nothing for thop, ptflops' pytorch backend and torchinfo. An op one of those counts
        overrides this and says how, from the tool's own source."""
        counts = self.counts(in_shape, out_shape)
        biased = counts.macs and counts.params > counts.weights
        return {"paper": counts.macs,
                "fvcore": getattr(counts, self.fvcore) if self.fvcore else 0,
                "flopcounter": 2 * counts.macs, "thop": 0, "ptflops": 0,
                "ptflops-aten": counts.macs + (numel(out_shape) if biased else 0),
                "torchinfo": 0}

    def patch(self) -> Optional[str]:
        """Kernel and stride the way the paper writes them (``7×7/2``), if the op has a window."""
        return None

    # --- what the PyTorch importer asks (never imports torch: it reads attributes) ----------
    @classmethod
    def from_torch(cls, module) -> Dict[str, Any]:
        """This op's spec arguments for ``module`` (one of ``torch_modules``), as a spec writes
        them; ValueError where the module does something the op cannot say (the importer then
        keeps it as an opaque layer). The importer checks the result against the traced shapes
        and parameter count, so a mapping can only be refused there, never be wrong silently."""
        return {}

    @classmethod
    def from_torch_call(cls, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """The same for a call of one of ``torch_functions``: its non-tensor arguments (a
        tensor argument is None here), positional and by keyword."""
        return {}

    # --- what the memory model asks (core/memory.py) ----------------------------------------
    def saved(self, in_shape: Shape, out_shape: Shape) -> Saved:
        """What autograd keeps of this layer for the backward pass: nothing by default (a
        reshape, an upsampling, whose backward needs only sizes)."""
        return Saved()

    def state_tensors(self, in_shape: Shape,
                      out_shape: Shape) -> Tuple[Tuple[int, Optional[int]], ...]:
        """The tensors of this layer's ``state_dict``, as (numbers, bytes of one number, or
        None for the network's data type): by default a weight and a bias as ``counts`` has
        them (a layer without either has none)."""
        c = self.counts(in_shape, out_shape)
        return tuple((n, None) for n in (c.weights, c.params - c.weights) if n)

    # --- what the torch builder asks (imports torch lazily) ---------------------------------
    def to_torch(self, in_shape: Shape):
        raise NotImplementedError(f"op '{self.name}' has no PyTorch builder")

    # --- what the ONNX importer asks (archcalc/bridge/from_onnx.py; imports no onnx) --------
    # The ONNX op_types this op imports from; one op_type belongs to at most one op.
    onnx_types: ClassVar[Tuple[str, ...]] = ()

    @classmethod
    def from_onnx(cls, node, attrs: Dict[str, Any], initializers: Dict[str, Any],
                  in_shapes: Tuple[Shape, ...]) -> Optional[Dict[str, Any]]:
        """This op's spec arguments for an ONNX ``node`` (``node.op_type``, ``node.input``) of
        one of ``onnx_types``, or None where the node is one this op cannot express (the
        importer then writes it as an opaque layer). ``attrs`` are the node's attributes as
        Python values, ``initializers`` its constant inputs by name (numpy arrays: weights,
        biases, Clip's bounds), ``in_shapes`` the shapes of its data inputs, batch dropped.
        The default: an op without arguments (relu, sigmoid, identity)."""
        return {}

    # --- what the .pt2 importer asks (archcalc/bridge/from_export.py; imports no torch) -----
    # The ATen overloads this op imports from, as torch.export's graph names them
    # ("aten.conv2d.default"); one overload may belong to several ops (the first that holds wins).
    aten_ops: ClassVar[Tuple[str, ...]] = ()

    @classmethod
    def from_aten(cls, args: Tuple[Any, ...], kwargs: Dict[str, Any],
                  shapes: Tuple[Any, ...]) -> Optional[Dict[str, Any]]:
        """This op's spec arguments for a call of one of ``aten_ops``, or None where the call
        is one this op cannot express (it stays opaque). ``args`` and ``kwargs`` are the call's
        arguments with every tensor None; ``shapes`` has one entry per positional argument: the
        tensor's full shape (batch included; a list of shapes for a list of tensors, as
        ``aten.cat`` takes) or None for a non-tensor. The importer checks the result against
        the exported shapes and parameter count. The default: an op without arguments."""
        return {}


def aten_arg(args: Tuple[Any, ...], kwargs: Dict[str, Any], index: int, name: str,
             default: Any) -> Any:
    """An ATen call's argument by position or keyword, else its schema default."""
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def aten_tensor(shapes: Tuple[Any, ...], index: int) -> Optional[Tuple[int, ...]]:
    """The shape of an ATen call's tensor argument at ``index``, None where it is absent."""
    return tuple(shapes[index]) if len(shapes) > index and shapes[index] is not None else None


class Join(Op):
    """An op with several inputs, written in a spec as two or more branches on one input:
    ``concat: [...]``, ``add: {main: ..., skip: ...}``. Subclasses override ``output_shape``
    (refusing shapes that do not fit together with a ShapeError), ``counts`` and ``to_torch``,
    whose module's ``forward`` takes one tensor per branch, in order. Such a module must be
    stateless (no parameters, no buffers): the torch builder calls it from the branches'
    container, whose name it shares. An elementwise op that broadcasts (a gating multiply,
    ``C×H×W`` by ``C×1×1``) is a Join whose ``output_shape`` broadcasts."""

    inputs = "many"

    def output_shape(self, shapes: Tuple[Shape, ...]) -> Shape:  # type: ignore[override]
        raise NotImplementedError

    def reach(self, in_shapes: Tuple[Shape, ...],  # type: ignore[override]
              out_shape: Shape) -> Tuple[Optional[Tuple["Reach", "Reach"]], ...]:
        """One reach per branch, or None for a branch whose values the output does not read
        (crop's second branch gives only a size). The default: elementwise, a branch's side of
        1 broadcast (read at index 0 by every output position, a squeeze-and-excitation gate)."""
        def branch(shape):
            same = same_reach()
            if len(shape) != 3:
                return same
            return tuple(r if size != 1 or len(out_shape) != 3 or out_shape[k + 1] == 1
                         else sliding(0, 0, 0)
                         for k, (r, size) in enumerate(zip(same, shape[1:])))
        return tuple(branch(s) for s in in_shapes)

    def counts(self, in_shapes: Tuple[Shape, ...],  # type: ignore[override]
               out_shape: Shape) -> Counts:
        return Counts()

    def saved(self, in_shapes: Tuple[Shape, ...],  # type: ignore[override]
              out_shape: Shape) -> Saved:
        return Saved()     # concat and add need only sizes for their backward

    def state_tensors(self, in_shapes, out_shape):  # type: ignore[override]
        return ()          # a join's module is stateless (build.py checks it)

    def to_torch(self, in_shapes: Tuple[Shape, ...]):  # type: ignore[override]
        raise NotImplementedError(f"op '{self.name}' has no PyTorch builder")


OPS: Dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make an op available to specs under ``cls.name``."""
    if not cls.name or cls.name in OPS:
        raise RuntimeError(f"op name {cls.name!r} is empty or taken")
    OPS[cls.name] = cls
    return cls


# --- argument checkers: each returns the normalized value or raises ArgError ---------------

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _whole(v: Any) -> Any:
    """An expression's whole Fraction as its int; any other value as it is. A Fraction that is
    not whole is refused here, saying how to make it whole: an expression's ``cin / 2`` on 75
    channels is 75/2, and archcalc does not guess which rounding the network means."""
    if isinstance(v, Fraction):
        if v.denominator != 1:
            raise ArgError(f"must be a whole number, got {_shown(v)}; round it explicitly "
                           "with round(), ceil(), floor() or //")
        return v.numerator
    return v


def _shown(v: Any) -> str:
    """A value as a message shows it: a Fraction as 75/2 (= 37.5), anything else by repr."""
    if isinstance(v, Fraction):
        return f"{v} (= {float(v):.6g})" if v.denominator != 1 else str(v.numerator)
    return repr(v)


def _too_big(v: Any) -> None:
    if v > MAX_INT:
        raise ArgError(f"must be at most {MAX_INT:,}, got {v}")


def positive_int(v: Any) -> int:
    v = _whole(v)
    if not _is_int(v) or v <= 0:
        raise ArgError(f"must be a positive integer, got {v!r}")
    _too_big(v)
    return v


def pair(v: Any) -> Tuple[int, int]:
    """A positive int or a [height, width] pair: kernels, strides."""
    v = [_whole(x) for x in v] if isinstance(v, list) else _whole(v)
    if _is_int(v) and v > 0:
        _too_big(v)
        return (v, v)
    if isinstance(v, list) and len(v) == 2 and all(_is_int(x) and x > 0 for x in v):
        _too_big(max(v))
        return (v[0], v[1])
    raise ArgError(f"must be a positive integer or [height, width], got {v!r}")


def padding(v: Any):
    """``same``, ``valid``, a non-negative int or a [height, width] pair."""
    if v in ("same", "valid"):
        return v
    v = [_whole(x) for x in v] if isinstance(v, list) else _whole(v)
    if _is_int(v) and v >= 0:
        _too_big(v)
        return (v, v)
    if isinstance(v, list) and len(v) == 2 and all(_is_int(x) and x >= 0 for x in v):
        _too_big(max(v))
        return (v[0], v[1])
    raise ArgError(f"must be 'same', 'valid', a non-negative integer or [height, width], got {v!r}")


# YAML 1.1 booleans that YAML 1.2, as archcalc reads specs, keeps as text
_YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n"}


def boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        hint = " (only true and false are booleans)" if \
            isinstance(v, str) and v.lower() in _YAML11_BOOLEANS else ""
        raise ArgError(f"must be true or false, got {v!r}{hint}")
    return v


def _finite(v: Any) -> bool:
    """An int, a float that is finite, or an expression's Fraction (finite by construction)
    that a float can hold."""
    if isinstance(v, bool) or not isinstance(v, (int, float, Fraction)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def probability(v: Any) -> float:
    if not _finite(v) or not 0 <= v < 1:
        raise ArgError(f"must be a number from 0 up to (not including) 1, got {_shown(v)}")
    return float(v)


def positive_number(v: Any) -> float:
    if not _finite(v) or not v > 0:
        raise ArgError(f"must be a positive number, got {_shown(v)}")
    return float(v)


def activation(v: Any) -> Optional[str]:
    """``none`` or the name of an activation op (``relu``)."""
    if v is None or v == "none":
        return None
    names = sorted(n for n, cls in OPS.items() if cls.activation)
    if v not in names:
        raise ArgError(f"must be 'none' or one of {', '.join(names)}, got {v!r}")
    return v


def act_arg(*examples: str) -> Arg:
    """The ``act:`` argument of an op that an activation layer may follow (``act: relu``)."""
    return Arg(activation, None, doc=f"activation layer to follow, e.g. {examples[0]}",
               examples=("none",) + examples)


# --- window arithmetic shared by convolution and pooling -----------------------------------

def window_padding(pad, size: int, kernel: int, stride: int, dilation: int = 1) -> int:
    """Per-side padding along one axis. ``same`` keeps ``ceil(size / stride)`` symmetrically."""
    if pad == "valid":
        return 0
    if pad == "same":
        span = dilation * (kernel - 1) + 1
        total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
        return math.ceil(total / 2)
    return pad


def window_out(size: int, kernel: int, stride: int, pad: int, dilation: int = 1,
               ceil: bool = False) -> int:
    """Output length along one axis, as PyTorch computes it; below 1 means it does not fit.

    In ceil mode a last, partial window counts when it starts inside the input or the left
    padding (so a 3×3/2 window in ceil mode takes 2×2 to 1×1, as PyTorch and Caffe do).
    """
    room = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (room + (stride - 1 if ceil else 0)) // stride + 1
    if ceil and out > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def feature_map(shape: Shape, what: str) -> Tuple[int, int, int]:
    """The (C, H, W) of ``shape``, or a ShapeError saying that ``what`` needs one."""
    if len(shape) != 3:
        raise ShapeError(f"{what} needs a C×H×W feature map, got a vector of {fmt_shape(shape)}")
    return shape  # type: ignore[return-value]


def window(shape: Shape, kernel, stride, pad, dilation=(1, 1), ceil: bool = False,
           what: str = "window"):
    """Output (H, W) and per-side padding of a sliding window over a C×H×W input."""
    _, h, w = feature_map(shape, what)
    pads = tuple(window_padding(pad if isinstance(pad, str) else pad[i], size, kernel[i],
                                stride[i], dilation[i]) for i, size in enumerate((h, w)))
    if pad == "same" and any(window_out(size, kernel[i], stride[i], pads[i], dilation[i]) !=
                             math.ceil(size / stride[i]) for i, size in enumerate((h, w))):
        raise ShapeError(
            f"padding 'same' cannot keep {h}×{w} / {stride[0]}×{stride[1]} with a "
            f"{kernel[0]}×{kernel[1]} kernel by padding both sides equally; "
            "write padding: valid or a number")
    out = tuple(window_out(size, kernel[i], stride[i], pads[i], dilation[i], ceil)
                for i, size in enumerate((h, w)))
    if min(out) < 1:
        padded = f" (padding {pads[0]}×{pads[1]})" if any(pads) else ""
        raise ShapeError(f"{kernel[0]}×{kernel[1]} {what} does not fit a {h}×{w} input{padded}")
    return out, pads


def patch_text(kernel, stride) -> str:
    k = f"{kernel[0]}×{kernel[1]}"
    s = str(stride[0]) if stride[0] == stride[1] else f"{stride[0]}×{stride[1]}"
    return f"{k}/{s}"


# --- checkers and shape helpers of the ops that came later (transposed convolution, upsampling,
# activations with a parameter); kept apart from the checkers above, which they build on ----

def amount(v: Any) -> Tuple[int, int]:
    """A non-negative int or a [height, width] pair of them, where 'same' and 'valid' mean
    nothing: a transposed convolution's padding and output padding."""
    if v not in ("same", "valid"):
        try:
            normalized = padding(v)
        except ArgError:
            normalized = None
        if isinstance(normalized, tuple):
            return normalized
    raise ArgError(f"must be a non-negative integer or [height, width], got {v!r}")


def number(v: Any) -> float:
    """Any finite number, negative included: a leaky ReLU's slope, a scale's initial value."""
    if not _finite(v):
        raise ArgError(f"must be a finite number, got {v!r}")
    return float(v)


def choice(*values: str) -> Callable[[Any], str]:
    """A checker that takes one of ``values``, as written."""
    def check(v: Any) -> str:
        if not isinstance(v, str) or v not in values:
            raise ArgError(f"must be one of {', '.join(values)}, got {v!r}")
        return v
    return check


def fits(shape: Shape, what: str) -> Shape:
    """``shape``, or a ShapeError where an op that grows its input (an upsampling, a transposed
    convolution) makes a side longer than any input may be."""
    if max(shape) > MAX_INT:
        raise ShapeError(f"{what} would give {fmt_shape(shape)}, more than {MAX_INT:,} along "
                         "one side")
    return shape


# --- what the PyTorch importer reads off a module (attributes only; core never imports torch) --

def torch_pair(v: Any):
    """A PyTorch size (an int or a tuple) as a spec writes it: n when both sides agree."""
    if isinstance(v, (tuple, list)):
        if len(v) == 1 or (len(v) == 2 and v[0] == v[1]):
            return int(v[0])
        if len(v) == 2:
            return [int(v[0]), int(v[1])]
        raise ValueError(f"not a 2-D size: {v!r}")
    return int(v)


def torch_padding(m: Any):
    """A convolution module's zero padding as a spec writes it; ValueError for another padding
    mode or PyTorch's 'same', which pads unevenly where archcalc's does not."""
    if getattr(m, "padding_mode", "zeros") != "zeros":
        raise ValueError(f"padding mode {m.padding_mode}")
    if m.padding == "valid":
        return 0
    if isinstance(m.padding, str):
        raise ValueError(f"padding {m.padding!r}")
    return torch_pair(m.padding)


# --- receptive-field geometry (core/receptive.py composes it through the graph) -------------

@dataclass(frozen=True)
class Reach:
    """Which input positions each output position reads, along one axis (height or width).

    ``reads(i)`` gives the first and the last input index that output ``i`` reads, or None
    where it reads none; indexes are unclipped, so a padded window at the border reads -1 (a
    padding position, which core/receptive.py maps on as if the map went on). ``step`` is how
    many input positions one output position moves by on average: the stride, 1/2 for a 2×
    upsampling, 0 where a broadcast side of 1 is read at every position. ``every``: the
    positions read between the first and the last are ``every`` apart (a dilation's holes),
    which tells what a window at the border reads of the real map."""

    step: Fraction
    reads: Callable[[int], Optional[Tuple[int, int]]]
    every: int = 1
    # output i reads input i and nothing else: core/receptive.py then takes the input's
    # footprints as they are instead of working them out position by position
    identity: bool = False
    # a sliding window (made by `sliding`): reads(i) is (step·i + offsets[0], step·i +
    # offsets[1]) at every i, the step whole; core/receptive.py composes such reaches in
    # closed form instead of position by position
    offsets: Optional[Tuple[int, int]] = None


def sliding(step: int, first: int, last: int, every: int = 1, identity: bool = False) -> Reach:
    """Output i reads ``step·i + first`` to ``step·i + last``, ``every`` apart: a window that
    slides by a whole step (0: a broadcast side read at every position)."""
    return Reach(Fraction(step), lambda i: (step * i + first, step * i + last), every, identity,
                 (first, last))


def same_reach() -> Tuple[Reach, Reach]:
    """Output (i, j) reads input (i, j): every elementwise op, along both axes."""
    one = sliding(1, 0, 0, identity=True)
    return (one, one)


def window_reach(kernel, stride, pads, dilation=(1, 1)) -> Tuple[Reach, Reach]:
    """A sliding window's reach: output i reads ``stride·i - pad`` to ``dilation·(kernel - 1)``
    further on (convolution and pooling, before any ceil-mode clipping at the border)."""
    return tuple(sliding(s, -p, -p + d * (k - 1), d)  # type: ignore[return-value]
                 for k, s, p, d in zip(kernel, stride, pads, dilation))
