"""Which torch device a command runs on, and with how many CPU threads: one rule for `verify`
and `train`. Torch is imported inside the functions, so the CLI can read the defaults for its
--help without it."""
from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Iterator, Optional, Tuple

from archcalc.errors import ArchcalcError, Position

if TYPE_CHECKING:
    import torch

# PyTorch's intra-op threads on the CPU. Torch's own default (one per core) stalls when the
# cores are shared: benchmarks/threads.py, training the notes' CNN on a 2-core machine that
# other jobs also used, gave 2 threads 1.36× the speed of 1 when quiet, but 0.35× with one
# core kept busy (median of 3 rounds; single rounds down to 0.14×); on a quiet machine, 1.72×
# quiet and 0.53× loaded (median of 5), while 1 thread kept its speed under load (1.01×). GoogLeNet's verify trace
# took 0.2 s on one thread and up to 2.5 s on two. So one thread is the default, and
# $ARCHCALC_THREADS or --threads asks for more on a machine of one's own.
DEFAULT_THREADS = 1
THREADS_ENV = "ARCHCALC_THREADS"


def cpu_threads(requested: Optional[int] = None) -> int:
    """The intra-op threads to use on the CPU: ``requested``, else $ARCHCALC_THREADS, else
    DEFAULT_THREADS."""
    if requested is not None:
        where, value = "--threads", requested
    elif os.environ.get(THREADS_ENV, "").strip():
        where, text = THREADS_ENV, os.environ[THREADS_ENV].strip()
        value = int(text) if text.isdigit() else None
        if value is None:
            raise ArchcalcError(f"must be a positive whole number of threads, got {text!r}",
                                Position(where))
    else:
        return DEFAULT_THREADS
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArchcalcError(f"must be a positive whole number of threads, got {value!r}",
                            Position(where))
    return value


@contextlib.contextmanager
def torch_threads(device: "torch.device", requested: Optional[int] = None) -> Iterator[int]:
    """On the CPU, PyTorch's intra-op threads set as :func:`cpu_threads` says, then restored;
    on CUDA, left alone. Yields the number of threads in use."""
    import torch
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(requested))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def resolve_device(name: str) -> Tuple["torch.device", str]:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; and a note
    saying how the device was chosen."""
    import torch
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


def check_memory(graph, batch: int, device: "torch.device", training: bool = False,
                 heads: bool = False) -> None:
    """Refuse, before anything is allocated, a model whose parameters and activations at
    ``batch`` (core.memory's estimate) exceed the memory free where they would live. The model
    is built on the CPU first, so its parameters must fit there whatever the device."""
    from archcalc.core import memory
    need = memory.estimate(graph, batch, training, heads)
    problem = None
    if device.type == "cuda":
        import torch
        free, _ = torch.cuda.mem_get_info(device)
        problem = memory.refusal(need, free, f" on {device}")
        need = memory.MemoryNeed(need.params_bytes, 0, batch)
    problem = problem or memory.refusal(need, memory.available_bytes())
    if problem:
        raise ArchcalcError(problem)
