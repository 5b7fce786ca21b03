"""Reading an ONNX node's attributes and constant inputs the way the ops' ``from_onnx`` need
them: windows (kernel, strides, pads) as a spec writes them, constant inputs by position.

Imports no onnx: a node is anything with ``op_type`` and ``input`` (its input names, '' for an
absent optional input), constants are numpy arrays the importer read (only ``shape``, ``size``
and ``tolist`` are used here). Kept apart from base.py so the ops' ONNX declarations do not touch
the lines every op shares.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence


def const(node, initializers: Dict[str, Any], index: int):
    """The constant at input ``index`` (an initializer or a Constant node's output), or None
    where that input is absent or computed from the data."""
    if index >= len(node.input) or not node.input[index]:
        return None
    return initializers.get(node.input[index])


def has_input(node, index: int) -> bool:
    return index < len(node.input) and bool(node.input[index])


def data_count(node, initializers: Dict[str, Any]) -> int:
    """How many of the node's inputs are data (not constants)."""
    return sum(1 for name in node.input if name and name not in initializers)


def scalar(value) -> Optional[float]:
    """A one-element constant as a float; None for anything larger."""
    if value is None or value.size != 1:
        return None
    return float(value.reshape(-1)[0])


def spec_pair(values: Sequence[int]):
    """[h, w] as a spec writes it: one int when both are equal."""
    h, w = (int(v) for v in values)
    return h if h == w else [h, w]


def window(attrs: Dict[str, Any], key: str, default: int = 1):
    """A 2-D window attribute (kernel_shape, strides, dilations) as a spec writes it; None
    where it is not 2-D."""
    values = attrs.get(key, [default, default])
    return spec_pair(values) if len(values) == 2 else None


def pads(attrs: Dict[str, Any]):
    """ONNX pads [top, left, bottom, right] as a spec's padding: one int or [h, w] when each
    axis is padded equally on both sides; None where they differ (PyTorch cannot pad so) or
    where auto_pad asks the runtime to work the padding out."""
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return None
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    if attrs.get("auto_pad") == "VALID":
        top = left = bottom = right = 0
    if (top, left) != (bottom, right):
        return None
    return spec_pair((top, left))


def channel_axis(attrs: Dict[str, Any], rank: int, default: int = 1) -> bool:
    """Whether the ``axis`` attribute names the channel (or feature) axis of a rank-``rank``
    tensor with its batch dimension: 1, or the same counted from the end."""
    return attrs.get("axis", default) % rank == 1
