"""How much memory a network needs before it is built, from the analysis' shapes alone, and
whether the machine has it: so `verify`, `build_model` and `train` refuse a spec that cannot
fit (``conv: {out: 100000000}``, a 3×100000×100000 input, ``--batch 100000000``) with both
figures, instead of ending in an allocator traceback or a 70-second swap storm.

A deliberately simple upper bound (float32 throughout, 4 bytes a number):

- parameters: every layer's parameters and buffers (``params + non_trainable``) × 4 bytes;
- activations: the input and every layer's output at the batch size, all of them alive at
  once: what autograd keeps for the backward pass, and more than a no-grad forward holds;
- training adds a gradient for each parameter and two Adam moments (3 × the parameters more)
  and a gradient for each activation (2 × the activations in all).

Torch-free, like the rest of core/.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from math import prod
from typing import Optional

from archcalc.errors import ArchcalcError, Position

BYTES = 4   # float32

# The data types a memory or roofline estimate may assume, and the bytes of one number in each.
DTYPES = {"fp32": 4, "bf16": 2, "fp16": 2}


def dtype_bytes(name: str, where: str = "--dtype") -> int:
    """The bytes of one number in the data type ``name``; one clear line for an unknown one."""
    if name not in DTYPES:
        raise ArchcalcError(f"unknown data type {name!r}; known: {', '.join(DTYPES)}",
                            Position(where))
    return DTYPES[name]


@dataclass
class MemoryNeed:
    params_bytes: int
    activation_bytes: int
    batch: int

    @property
    def total(self) -> int:
        return self.params_bytes + self.activation_bytes


def estimate(graph, batch: int = 1, training: bool = False, heads: bool = False) -> MemoryNeed:
    """The memory a forward pass (``training``: a training step) of ``graph`` needs."""
    layers = graph.layers(heads and graph.with_heads)
    params = sum(l.counts().params + l.counts().non_trainable for l in layers)
    activations = prod(graph.input_shape) + sum(prod(l.out_shape) for l in layers)
    params_bytes = params * BYTES * (4 if training else 1)
    activation_bytes = activations * batch * BYTES * (2 if training else 1)
    return MemoryNeed(params_bytes, activation_bytes, batch)


def available_bytes() -> Optional[int]:
    """The memory this machine can give now: MemAvailable of /proc/meminfo (Linux), else the
    free physical pages; None when neither can be read (the check is then skipped)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def gigabytes(count: int) -> str:
    return f"{count / 1e9:,.1f} GB" if count >= 1e8 else f"{count / 1e6:,.1f} MB"


def refusal(need: MemoryNeed, available: Optional[int], where: str = "") -> Optional[str]:
    """The one line that refuses ``need`` when more than ``available``; None when it fits."""
    if available is None or need.total <= available:
        return None
    return (f"needs about {gigabytes(need.total)} for parameters and activations at batch "
            f"{need.batch:,}; {gigabytes(available)} available{where}")
