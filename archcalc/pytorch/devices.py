"""Which torch device a command runs on: one rule for `verify` and `train`. Imports torch."""
from __future__ import annotations

from typing import Tuple

import torch

from archcalc.errors import ArchcalcError, Position


def resolve_device(name: str) -> Tuple[torch.device, str]:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; and a note
    saying how the device was chosen."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device()), "auto; CUDA is available"
        return torch.device("cpu"), "auto; CUDA is not available"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ArchcalcError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N",
                            Position("--device")) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ArchcalcError("CUDA is not available here; use --device cpu or auto",
                            Position("--device"))
    if device.type not in ("cpu", "cuda"):
        raise ArchcalcError(f"device '{name}' is not supported; use auto, cpu, cuda or cuda:N",
                            Position("--device"))
    if device.type == "cuda" and device.index is not None and \
            device.index >= torch.cuda.device_count():
        raise ArchcalcError(f"no device '{name}': {torch.cuda.device_count()} CUDA device(s)",
                            Position("--device"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device, "as asked"
