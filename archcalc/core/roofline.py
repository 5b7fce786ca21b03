"""The roofline model of a network on a device: per layer, the work (FLOPs) and the memory
traffic (bytes), their ratio (arithmetic intensity), and the time the layer cannot beat on
that device, ``max(FLOPs / peak, bytes / bandwidth)``: compute-bound above the ridge point
(peak / bandwidth FLOP per byte), memory-bound below it.

Conventions, per layer and per pass, for a batch of N images in one data type (``--dtype``):

- FLOPs (forward) = N × (2 × MACs + other ops): a multiply-add is two operations, and the
  elementwise and comparison work of pooling, normalization, activations and joins (the
  op's ``other_ops``) one each. Both come from ``Layer.counts()``, so every op, a generic
  computation included, is costed without code of its own here.
- bytes (forward) = dtype bytes × (N × (every input + the output) + params + non-trainable
  values): each activation is read or written once per image, the weights and buffers once
  per batch. Caches, fusion and re-reads are ignored: it is the least traffic the layer needs.
- backward (``archcalc profile --backward``): FLOPs = N × (2 × 2 × MACs + other ops) (the
  gradients of the input and of the weights each cost a forward's multiply-adds); bytes =
  dtype bytes × (N × (the output's gradient + the inputs read + their gradients written)
  + 2 × (params + non-trainable)) (the weights read, their gradients written).

Device profiles are data (``archcalc/data/devices.yaml``, or a user's file): dense peak
FLOP/s per data type, memory bandwidth and capacity, each citing its datasheet. A profile
marked ``measured`` (``cpu``) is measured on the machine by the caller (torch is not
imported here; see ``archcalc/pytorch/cpu_profile.py``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

from archcalc.core import yamlpos
from archcalc.core.memory import DTYPES, dtype_bytes
from archcalc.core.ops import numel
from archcalc.errors import ArchcalcError, Position, did_you_mean

BUNDLED_DEVICES = Path(__file__).resolve().parent.parent / "data" / "devices.yaml"
COMPUTE, MEMORY = "compute", "memory"
FORM_FACTORS = ("SXM", "PCIe", "NVL", "SoC", "CPU")
NUMBERS = {"bandwidth_gbps": 1e9, "memory_gb": 1e9}     # field -> its unit in SI


@dataclass(frozen=True)
class Device:
    """One device's roofline: dense peak FLOP/s per data type, bytes/s, bytes of memory."""

    key: str                            # the name a user types: h100-sxm, cpu
    name: str                           # NVIDIA H100 SXM5 80GB
    form_factor: str
    peak_flops: Dict[str, float]        # data type -> FLOP/s (dense)
    bandwidth: float                    # bytes/s
    memory: float                       # bytes
    source: str                         # the datasheet, or how it was measured
    cuda_names: Tuple[str, ...] = ()

    def ridge(self, dtype: str) -> float:
        """The arithmetic intensity (FLOP/byte) where compute and memory take equally long."""
        return self.peak_flops[dtype] / self.bandwidth

    def to_dict(self) -> dict:
        return {"key": self.key, "name": self.name, "form_factor": self.form_factor,
                "peak_flops": dict(self.peak_flops), "bandwidth_bytes_per_s": self.bandwidth,
                "memory_bytes": self.memory, "source": self.source}


@dataclass(frozen=True)
class Entry:
    """A profile as the file gives it: a Device, or ``measured`` (its numbers come later)."""

    key: str
    device: Optional[Device]
    name: str
    source: str
    pos: Position

    @property
    def measured(self) -> bool:
        return self.device is None


Measure = Callable[[Entry], Device]


MAX_DEVICES_BYTES = 1_000_000


def load_devices(path: Union[str, Path, None] = None) -> Dict[str, Entry]:
    """The profiles of a devices file (default: the bundled one), each field checked: a
    missing, negative or non-numeric one is one line naming the file, line and column."""
    path = Path(path) if path is not None else BUNDLED_DEVICES
    where = str(path)
    try:
        # a regular file of a sensible size: --devices /dev/zero or a FIFO would never end
        if not path.is_file():
            raise ArchcalcError("the devices file is not a file", Position(where))
        if path.stat().st_size > MAX_DEVICES_BYTES:
            raise ArchcalcError(f"the devices file is larger than {MAX_DEVICES_BYTES:,} bytes; "
                                "a devices file holds a few profiles", Position(where))
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ArchcalcError(f"cannot read the devices file: {reason}", Position(where)) from None
    data = yamlpos.load(text, where)
    devices = _field(data, "devices", dict, data, where) if isinstance(data, dict) else None
    if not isinstance(data, dict) or not devices:
        raise ArchcalcError("a devices file is a mapping with `devices:`, a mapping of "
                            "device names to profiles", getattr(data, "pos", Position(where)))
    return {key: _entry(key, value, devices.value_pos[key], where)
            for key, value in devices.items()}


def _field(record, key: str, kind, parent, where: str, what: str = ""):
    """``record[key]``, checked present and of ``kind``."""
    pos = getattr(parent, "pos", Position(where))
    if key not in record:
        raise ArchcalcError(f"{what}missing field `{key}`", pos)
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ArchcalcError(f"{what}`{key}` must be {_kind_name(kind)}, got {value!r}",
                            record.value_pos.get(key, pos))
    return value


def _kind_name(kind) -> str:
    return {dict: "a mapping", str: "text", list: "a list", bool: "true or false"}.get(
        kind, "a number")


def _number(record, key: str, where: str, what: str) -> float:
    value = _field(record, key, (int, float), record, where, what)
    if not (math.isfinite(value) and value > 0):
        raise ArchcalcError(f"{what}`{key}` must be a positive number, got {value!r}",
                            record.value_pos[key])
    return float(value)


def _entry(key: str, record, pos: Position, where: str) -> Entry:
    what = f"device '{key}': "
    if not isinstance(record, dict):
        raise ArchcalcError(f"{what}a profile is a mapping of fields", pos)
    name = _field(record, "name", str, record, where, what)
    source = _field(record, "source", str, record, where, what)
    if record.get("measured", False) is True:
        return Entry(key, None, name, source, record.pos)
    form = _field(record, "form_factor", str, record, where, what)
    if form not in FORM_FACTORS:
        raise ArchcalcError(f"{what}`form_factor` is one of {', '.join(FORM_FACTORS)}, got "
                            f"{form!r}", record.value_pos["form_factor"])
    peaks = _field(record, "peak_tflops", dict, record, where, what)
    peak_flops = {dtype: _number(peaks, dtype, where, f"{what}peak_tflops: ") * 1e12
                  for dtype in DTYPES}
    unknown = sorted(set(peaks) - set(DTYPES))
    if unknown:
        raise ArchcalcError(f"{what}peak_tflops: unknown data type {unknown[0]!r}; known: "
                            f"{', '.join(DTYPES)}", peaks.key_pos[unknown[0]])
    bandwidth, memory = (_number(record, f, where, what) * NUMBERS[f] for f in NUMBERS)
    names = record.get("cuda_names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ArchcalcError(f"{what}`cuda_names` must be a list of names",
                            record.value_pos["cuda_names"])
    device = Device(key, name, form, peak_flops, bandwidth, memory, source, tuple(names))
    return Entry(key, device, name, source, record.pos)


def find(entries: Dict[str, Entry], key: str, where: str = "--roofline") -> Entry:
    """The profile named ``key``; an unknown name lists the known ones."""
    if key not in entries:
        raise ArchcalcError(f"unknown device {key!r}{did_you_mean(key, entries)}; known: "
                            f"{', '.join(entries)}", Position(where))
    return entries[key]


def for_cuda(entries: Dict[str, Entry], cuda_name: str) -> Entry:
    """The profile whose ``cuda_names`` hold what torch.cuda.get_device_name() says."""
    for entry in entries.values():
        if entry.device and cuda_name.lower() in (n.lower() for n in entry.device.cuda_names):
            return entry
    known = ", ".join(f"{e.key} ({'; '.join(e.device.cuda_names)})" for e in entries.values()
                      if e.device and e.device.cuda_names)
    raise ArchcalcError(f"no device profile for the GPU {cuda_name!r}; add one to a devices "
                        f"file (--devices FILE) with cuda_names: [{cuda_name!r}]. Known: "
                        f"{known}", Position("--device"))


def resolve(entry: Entry, measure: Optional[Measure] = None) -> Device:
    """The entry's Device; a measured one is measured (``measure``) by the caller's means."""
    if entry.device is not None:
        return entry.device
    if measure is None:
        raise ArchcalcError(f"device '{entry.key}' is measured on this machine, which needs "
                            "PyTorch", Position("--roofline"))
    return measure(entry)


# --- the roofline of a graph ----------------------------------------------------------------

@dataclass
class LayerRoof:
    name: str
    type: str
    row: str
    flops: int
    bytes: int
    seconds: float          # the roofline's time: max(flops / peak, bytes / bandwidth)
    bound: str              # COMPUTE or MEMORY

    @property
    def intensity(self) -> float:
        """FLOPs per byte moved."""
        return self.flops / self.bytes if self.bytes else math.inf

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "row": self.row, "flops": self.flops,
                "bytes": self.bytes, "intensity": _finite(self.intensity),
                "seconds": self.seconds, "bound": self.bound}


def _finite(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None


@dataclass
class Roofline:
    device: Device
    dtype: str
    batch: int
    backward: bool
    layers: List[LayerRoof] = field(default_factory=list)

    @property
    def peak(self) -> float:
        return self.device.peak_flops[self.dtype]

    @property
    def ridge(self) -> float:
        return self.device.ridge(self.dtype)

    @property
    def flops(self) -> int:
        return sum(l.flops for l in self.layers)

    @property
    def bytes(self) -> int:
        return sum(l.bytes for l in self.layers)

    @property
    def seconds(self) -> float:
        """Layers run one after another, each at its own bound."""
        return sum(l.seconds for l in self.layers)

    def seconds_bound(self, bound: str) -> float:
        return sum(l.seconds for l in self.layers if l.bound == bound)

    def by_row(self) -> Dict[str, LayerRoof]:
        """Each row's layers summed: FLOPs, bytes and time; bound: the bound of the layers
        that take most of the row's time."""
        rows: Dict[str, List[LayerRoof]] = {}
        for l in self.layers:
            rows.setdefault(l.row, []).append(l)
        out = {}
        for row, layers in rows.items():
            compute = sum(l.seconds for l in layers if l.bound == COMPUTE)
            total = sum(l.seconds for l in layers)
            out[row] = LayerRoof(row, "row", row, sum(l.flops for l in layers),
                                 sum(l.bytes for l in layers), total,
                                 COMPUTE if compute * 2 >= total else MEMORY)
        return out

    def to_dict(self) -> dict:
        return {"device": self.device.to_dict(), "dtype": self.dtype, "batch": self.batch,
                "pass": "backward" if self.backward else "forward",
                "convention": CONVENTION["backward" if self.backward else "forward"],
                "peak_flops": self.peak, "bandwidth_bytes_per_s": self.device.bandwidth,
                "ridge_flops_per_byte": self.ridge,
                "layers": [l.to_dict() for l in self.layers],
                "totals": {"flops": self.flops, "bytes": self.bytes,
                           "intensity": _finite(self.flops / self.bytes) if self.bytes
                           else None, "seconds": self.seconds,
                           "seconds_compute_bound": self.seconds_bound(COMPUTE),
                           "seconds_memory_bound": self.seconds_bound(MEMORY)}}


CONVENTION = {
    "forward": "FLOPs = N × (2 × MACs + other ops); bytes = dtype bytes × (N × (inputs + "
               "output) + params + non-trainable); time = max(FLOPs / peak, bytes / "
               "bandwidth)",
    "backward": "FLOPs = N × (4 × MACs + other ops); bytes = dtype bytes × (N × (output + "
                "2 × inputs) + 2 × (params + non-trainable)); time = max(FLOPs / peak, "
                "bytes / bandwidth)",
}


def layer_cost(layer, batch: int, size: int, backward: bool = False) -> Tuple[int, int]:
    """(FLOPs, bytes) of one layer for ``batch`` images of ``size`` bytes a number."""
    c = layer.counts()
    inputs = sum(numel(s) for s in layer.in_shapes)
    output = numel(layer.out_shape)
    state = c.params + c.non_trainable
    if backward:
        return batch * (4 * c.macs + c.other_ops), \
            size * (batch * (output + 2 * inputs) + 2 * state)
    return batch * (2 * c.macs + c.other_ops), size * (batch * (inputs + output) + state)


def predict(flops: float, nbytes: float, device: Device, dtype: str) -> Tuple[float, str]:
    """The roofline's time and bound for ``flops`` and ``nbytes`` on ``device``."""
    compute = flops / device.peak_flops[dtype]
    memory = nbytes / device.bandwidth
    return (compute, COMPUTE) if compute >= memory else (memory, MEMORY)


def roofline(graph, device: Device, batch: int = 1, dtype: str = "fp32", heads: bool = False,
             backward: bool = False) -> Roofline:
    """Every layer of ``graph`` (execution order, heads when asked) on ``device``."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ArchcalcError(f"the batch size must be a positive integer, got {batch!r}",
                            Position("--batch-size"))
    size = dtype_bytes(dtype)
    result = Roofline(device, dtype, batch, backward)
    for layer in graph.layers(heads and graph.with_heads):
        flops, nbytes = layer_cost(layer, batch, size, backward)
        seconds, bound = predict(flops, nbytes, device, dtype)
        result.layers.append(LayerRoof(layer.name, layer.kind, layer.row, flops, nbytes,
                                       seconds, bound))
    return result
