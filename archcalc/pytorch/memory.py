"""The memory a pass of a built model really takes, measured: the oracle of core/memory.py.

On CUDA the caching allocator keeps statistics: ``torch.cuda.max_memory_allocated`` after
``reset_peak_stats``. PyTorch keeps none for the CPU, so there ``torch.profiler`` with
``profile_memory=True`` records every allocation and free (its Allocation events, each with
a signed size and the address); the peak of the running sum over that record, in time order,
is the pass's peak above what was alive when it began. What was alive then (the model's
parameters and buffers, the input) is added, so both devices report the same quantity: the
bytes alive at the peak of the pass, model and input included.

The record also tells tensors from kernel workspace: an allocation freed before the aten op
that made it returns (oneDNN's reordered copies of a convolution's input, weight and output,
max pool's int64 indices at inference, BatchNorm's statistics in eval mode) never reaches
Python. :func:`measure_record` gives both peaks; core/memory.py models the tensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from archcalc.extras import TORCH_ONLY, require

require("torch", "measuring memory", needs=TORCH_ONLY)

import torch
from torch import nn


@dataclass(frozen=True)
class Measured:
    """Peaks of one pass, bytes: ``peak`` all allocations, ``tensors`` without the kernel
    workspace; ``base`` what was alive before (parameters, buffers, the input)."""

    peak: int
    tensors: int
    base: int


def _tensor_bytes(tensors) -> int:
    """Bytes of distinct storages (a parameter and a view of it count once)."""
    seen = {}
    for t in tensors:
        if t is not None:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(seen.values())


def _allocations(prof) -> List[Tuple[int, int, int, Optional[int]]]:
    """(time, signed bytes, address, the id of the top-level op it happened in, or None for a
    free by Python's reference counting) for every CPU or CUDA allocation event, in order."""
    from torch._C._profiler import _EventType
    events = []
    stack = [(node, None) for node in prof.profiler.kineto_results.experimental_event_tree()]
    while stack:
        node, top = stack.pop()
        if node.tag == _EventType.Allocation:
            f = node.extra_fields
            events.append((node.start_time_ns, f.alloc_size, f.ptr,
                           None if top is None else id(top)))
        else:
            top = top if top is not None else node
            stack.extend((child, top) for child in node.children)
    events.sort(key=lambda e: e[0])
    return events


def _peaks(prof) -> Tuple[int, int]:
    """The peak of all live bytes, and of the live bytes that outlive the op that made them."""
    events = _allocations(prof)
    made = {}       # address → (index of the allocation, its top-level op)
    workspace = set()
    for i, (_, size, ptr, top) in enumerate(events):
        if size > 0:
            made[ptr] = (i, top)
        elif ptr in made:
            j, top_alloc = made.pop(ptr)
            if top_alloc is not None and top == top_alloc:
                workspace.update((i, j))
    live = peak = tensors_live = tensors_peak = 0
    for i, (_, size, _, _) in enumerate(events):
        live += size
        peak = max(peak, live)
        if i not in workspace:
            tensors_live += size
            tensors_peak = max(tensors_peak, tensors_live)
    return peak, tensors_peak


def _step(model: nn.Module, x: torch.Tensor, training: bool, optimizer):
    if not training:
        with torch.no_grad():
            return model(x)
    out = model(x)
    if isinstance(out, tuple):       # a network with heads: the main output's loss only
        out = out[0]
    target = torch.zeros(out.shape[0], dtype=torch.long, device=out.device)
    loss = nn.functional.cross_entropy(out.float() if out.dtype != torch.float32 else out,
                                       target)
    loss.backward()
    del out, loss
    if optimizer is not None:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return None


OPTIMIZERS = {"sgd": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
              "adam": lambda p: torch.optim.Adam(p, lr=1e-3)}


def measure_record(model: nn.Module, x: torch.Tensor, training: bool,
                   optimizer: Optional[str] = None, device=None) -> Measured:
    """Both peaks of one pass on the CPU (see the module's docstring): a no-grad forward in
    eval mode, or (``training``) a training step in train mode: forward, cross-entropy
    against class 0, backward, and the ``optimizer``'s step ("sgd": with momentum 0.9,
    "adam"; None: none). A step runs once before the record, so that the optimizer's state
    exists and the recorded step is a steady one, as every step after the first is."""
    device = torch.device(device or x.device)
    model = model.to(device)
    x = x.to(device)
    model.train(training)
    opt = OPTIMIZERS[optimizer](model.parameters()) if training and optimizer else None
    _step(model, x, training, opt)          # warm-up: kernels chosen, optimizer state made
    if training and opt is None:
        model.zero_grad(set_to_none=True)
    base = _tensor_bytes(list(model.parameters()) + list(model.buffers()) + [x])
    if opt is not None:
        base += _tensor_bytes(t for state in opt.state.values() for t in state.values()
                              if isinstance(t, torch.Tensor))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_stats(device)
        _step(model, x, training, opt)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        return Measured(peak, peak, base)
    from torch.profiler import ProfilerActivity, profile
    from archcalc.pytorch.quiet import native_stderr_silenced
    with native_stderr_silenced(), \
            profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _step(model, x, training, opt)
    peak, tensors = _peaks(prof)
    return Measured(base + peak, base + tensors, base)


def measure_peak(model: nn.Module, x: torch.Tensor, training: bool,
                 optimizer: Optional[str] = None, device=None) -> int:
    """The bytes alive at the peak of one pass of ``model`` on ``x``: parameters, buffers,
    optimizer state, the input and everything the pass allocates (kernel workspace included).
    On CPU from torch.profiler's allocation record; on CUDA torch.cuda.max_memory_allocated."""
    return measure_record(model, x, training, optimizer, device).peak


__all__ = ["Measured", "measure_peak", "measure_record"]
