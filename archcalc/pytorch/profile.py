"""Measure each layer of a spec's model on a device and set it beside the roofline's time.

How a layer is timed: one forward pass of the whole model records every layer's input (a
pre-hook on the layer's module; for a join, on the join module its Branches container
holds, whose inputs are the branches' outputs). Each layer's module is then run on its own
recorded input, ``warmup`` times untimed and ``repeat`` times timed, and the median is kept.
Running a layer alone, rather than timing it with hooks inside the whole pass, gives every
layer its own warm-up and repeats, times a join without its branches (its container's hooks
would take in the branches too), and on CUDA needs no synchronization inside the model's
pass. What it cannot see: the cache a layer finds left by the one before it (a small layer
repeated on the CPU finds its input in cache, so may run faster than inside the network).
The whole network is timed too (same warm-up and repeats), so the sum of the layers can be
compared with one real pass.

Clocks: ``time.perf_counter`` on the CPU; on CUDA, ``torch.cuda.Event`` pairs around each
run, read after a synchronize. Threads on the CPU: ``devices.torch_threads`` (archcalc's
thread count, as verify and train use).

Modes: forward only is inference (eval mode, no autograd). With ``backward``, each layer
runs as in training (train mode, autograd on): the forward is timed with autograd recording,
then the backward (``torch.autograd.grad`` of the layer's output, given a random gradient,
with respect to its inputs and parameters; the graph kept, so each repeat times only the
backward).

Memory: after the timings, one more pass (a no-grad forward; with ``backward``, a training
step with SGD and momentum) is measured by ``pytorch/memory.py`` (the CUDA allocator's peak, or
torch.profiler's allocation record on the CPU) and set beside core/memory.py's estimate of the
same pass, model and input included.

Nothing here prints; ``views/roofline.py`` renders a :class:`Profile`.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from archcalc.extras import TORCH_ONLY, require

require("torch", "profiling a PyTorch model", needs=TORCH_ONLY)

import torch
from torch import nn

from archcalc.core import roofline as rl
from archcalc.core.memory import check_batch, dtype_bytes, network_memory
from archcalc.errors import ArchcalcError, Position
from archcalc.pytorch.build import Branches, SpecLike, build_module, layer_modules, load_graph
from archcalc.pytorch.cpu_profile import TORCH_DTYPES
from archcalc.pytorch.devices import check_memory, resolve_device, torch_threads

DEFAULT_REPEAT = 5
MAX_REPEAT = 1000       # timed runs of a layer: more only makes `profile` look hung
WARMUP = 2


@dataclass
class LayerTiming:
    name: str
    type: str
    forward: rl.LayerRoof               # the roofline's prediction
    forward_seconds: float              # measured: the median of the repeats
    backward: Optional[rl.LayerRoof] = None
    backward_seconds: Optional[float] = None

    def to_dict(self) -> dict:
        out = {"name": self.name, "type": self.type,
               "forward": _pass(self.forward, self.forward_seconds)}
        if self.backward is not None:
            out["backward"] = _pass(self.backward, self.backward_seconds)
        return out


def _pass(roof: rl.LayerRoof, seconds: Optional[float]) -> dict:
    return {"flops": roof.flops, "bytes": roof.bytes, "intensity": rl._finite(roof.intensity),
            "bound": roof.bound, "predicted_seconds": roof.seconds, "measured_seconds": seconds}


@dataclass
class MemoryCheck:
    """One pass's peak memory, estimated from the spec and measured (bytes; the model's
    parameters and buffers, the input, and for a training step the optimizer's state too)."""

    what: str                   # "forward (no grad)", "training step (SGD with momentum)"
    estimated: int              # core/memory.py
    measured: int               # everything the pass allocated (kernel workspace included)
    measured_tensors: int       # without workspace freed inside an op (CPU; = measured on CUDA)

    def to_dict(self) -> dict:
        return {"pass": self.what, "estimated_bytes": self.estimated,
                "measured_bytes": self.measured, "measured_tensor_bytes": self.measured_tensors}


@dataclass
class Profile:
    """A profile run: per layer, predicted and measured times; the whole network's pass."""

    name: str
    spec: str
    variant: Optional[str]
    device: str                         # where it ran: "cpu", "cuda:0"
    profile: rl.Device                  # the roofline's device
    dtype: str
    batch: int
    threads: int
    repeat: int
    layers: List[LayerTiming]
    forward: rl.Roofline
    backward: Optional[rl.Roofline] = None
    network_forward: Optional[float] = None     # one whole forward pass, measured
    network_backward: Optional[float] = None    # one whole backward pass, measured
    seconds: Dict[str, float] = field(default_factory=dict)     # wall time of each phase
    memory: Optional[MemoryCheck] = None

    def measured(self, backward: bool = False) -> float:
        """The layers' measured times, summed."""
        return sum((l.backward_seconds or 0.0) if backward else l.forward_seconds
                   for l in self.layers)

    def achieved(self, backward: bool = False) -> float:
        """The fraction of the device's peak the layers reached in all: FLOPs / time / peak."""
        roof = self.backward if backward else self.forward
        time_ = self.measured(backward)
        return roof.flops / time_ / roof.peak if time_ > 0 else 0.0

    def to_dict(self) -> dict:
        out = {"name": self.name, "spec": self.spec, "variant": self.variant,
               "device": self.device, "profile": self.profile.to_dict(), "dtype": self.dtype,
               "batch": self.batch, "threads": self.threads, "repeat": self.repeat,
               "timing": "median of the repeats, each layer run alone on its recorded input",
               "layers": [l.to_dict() for l in self.layers],
               "totals": {"forward": self._totals(False)}}
        if self.backward is not None:
            out["totals"]["backward"] = self._totals(True)
        out["convention"] = {k: rl.CONVENTION[k] for k in out["totals"]}
        if self.memory is not None:
            out["memory"] = self.memory.to_dict()
        return out

    def _totals(self, backward: bool) -> dict:
        roof = self.backward if backward else self.forward
        return {"flops": roof.flops, "bytes": roof.bytes, "predicted_seconds": roof.seconds,
                "measured_seconds": self.measured(backward),
                "network_measured_seconds": self.network_backward if backward
                else self.network_forward,
                "achieved_fraction_of_peak": self.achieved(backward)}


def profile(spec: SpecLike, device_name: str = "auto", batch: int = 1, dtype: str = "fp32",
            backward: bool = False, repeat: int = DEFAULT_REPEAT, variant: Optional[str] = None,
            input=None, settings: Optional[Dict[str, str]] = None,
            devices: Optional[Dict[str, rl.Entry]] = None, threads: Optional[int] = None,
            seed: int = 0) -> Profile:
    """Build ``spec``'s model on ``device_name`` and time every layer (see the module's
    docstring); the roofline's device is the `cpu` profile on the CPU, on CUDA the profile
    whose cuda_names hold the GPU's name (``devices``: a devices file's entries)."""
    check_batch(batch)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= MAX_REPEAT:
        raise ArchcalcError(f"must be a whole number from 1 to {MAX_REPEAT:,} (the median "
                            f"settles long before), got {repeat!r}", Position("--repeat"))
    dtype_bytes(dtype)
    devices = devices if devices is not None else rl.load_devices()
    graph = load_graph(spec, variant, input, False, settings)
    where, _ = resolve_device(device_name)
    check_memory(graph, batch, where, training=backward)     # before anything is allocated
    roof_device = device_profile(devices, where, threads)
    forward = rl.roofline(graph, roof_device, batch, dtype)
    back = rl.roofline(graph, roof_device, batch, dtype, backward=True) if backward else None
    seconds = {}
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_module(graph).train(backward)
        x = torch.randn((batch,) + tuple(graph.input_shape))
    kind = TORCH_DTYPES[dtype]
    model, x = model.to(where, kind), x.to(where, kind)
    layers = graph.layers()
    modules = layer_modules(model, layers)
    seconds["build"] = time.perf_counter() - start
    clock = _cuda_clock if where.type == "cuda" else _cpu_clock
    with torch_threads(where, threads) as used:
        start = time.perf_counter()
        recorded = _record(model, modules, x)
        timings = []
        for layer, roof in zip(layers, forward.layers):
            module, inputs = recorded[layer.name]
            fwd, bwd = _time_layer(layer.name, module, inputs, backward, repeat, clock)
            timings.append(LayerTiming(layer.name, layer.kind, roof, fwd,
                                       back.layers[len(timings)] if back else None, bwd))
        del recorded
        seconds["layers"] = time.perf_counter() - start
        start = time.perf_counter()
        net_fwd, net_bwd = _time_network(model, x, backward, repeat, clock)
        seconds["network"] = time.perf_counter() - start
        start = time.perf_counter()
        memory = _memory_check(graph, model, x, batch, dtype, backward)
        seconds["memory"] = time.perf_counter() - start
    return Profile(graph.spec.name, graph.spec.path, graph.variant, str(where), roof_device,
                   dtype, batch, used if where.type == "cpu" else 0, repeat, timings, forward,
                   back, net_fwd, net_bwd, seconds, memory)


def _memory_check(graph, model: nn.Module, x: torch.Tensor, batch: int, dtype: str,
                  training: bool) -> MemoryCheck:
    """The peak of one more pass, measured, beside core/memory.py's estimate of it."""
    from archcalc.pytorch.memory import measure_record
    estimate = network_memory(graph, batch, dtype, optimizers=("sgd",))
    if training:
        what, estimated = "training step (SGD with momentum)", estimate.training["sgd"].total
    else:
        what, estimated = "forward (no grad)", estimate.inference_total
    measured = measure_record(model, x, training, "sgd" if training else None)
    return MemoryCheck(what, estimated, measured.peak, measured.tensors)


def device_profile(devices: Dict[str, rl.Entry], where: torch.device,
                   threads: Optional[int] = None) -> rl.Device:
    """The roofline device for ``where``: `cpu` (measured), or the GPU's own profile."""
    if where.type == "cuda":
        return rl.resolve(rl.for_cuda(devices, torch.cuda.get_device_name(where)))
    from archcalc.pytorch import cpu_profile
    entry = rl.find(devices, "cpu", "--devices")
    return rl.resolve(entry, lambda e: cpu_profile.device(e, threads))


# --- recording each layer's input -----------------------------------------------------------

def _record(model: nn.Module, modules: Dict[str, Optional[nn.Module]], x: torch.Tensor
            ) -> Dict[str, Tuple[nn.Module, Tuple[torch.Tensor, ...]]]:
    """Each layer's module (a join's own module, not its container) and the tensors it took
    in one forward pass of ``model``."""
    recorded: Dict[str, Tuple[nn.Module, Tuple[torch.Tensor, ...]]] = {}
    handles = []
    for name, module in modules.items():
        if module is None:
            raise ArchcalcError(f"layer '{name}' has no module in the built model")
        target = module.join if isinstance(module, Branches) else module
        handles.append(target.register_forward_pre_hook(_keep(recorded, name, target)))
    try:
        with torch.no_grad():
            model(x)
    except (RuntimeError, ValueError) as exc:     # BatchNorm in training mode: ValueError
        hint = "; with --backward the model runs in training mode, where BatchNorm needs " \
            "more than one value per channel: try a larger --batch-size" if model.training \
            else ""
        raise ArchcalcError(f"PyTorch's forward pass failed: {_first_line(exc)}{hint}"
                            ) from None
    finally:
        for handle in handles:
            handle.remove()
    return recorded


def _keep(recorded, name: str, module: nn.Module):
    def hook(_, inputs):
        recorded[name] = (module, tuple(t.detach() for t in inputs))
    return hook


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- clocks and timing ---------------------------------------------------------------------

def _cpu_clock(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _cuda_clock(run: Callable[[], object]) -> float:
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    run()
    end.record()
    end.synchronize()
    return begin.elapsed_time(end) / 1000.0       # milliseconds


def _median(run: Callable[[], object], repeat: int, clock) -> float:
    for _ in range(WARMUP):
        run()
    return statistics.median(clock(run) for _ in range(repeat))


def _time_layer(name: str, module: nn.Module, inputs: Sequence[torch.Tensor], backward: bool,
                repeat: int, clock) -> Tuple[float, Optional[float]]:
    """The median forward time of ``module`` on ``inputs``; with ``backward``, also the
    median time of its backward pass, with respect to its inputs and parameters."""
    leaves = [t.detach().requires_grad_(backward and t.is_floating_point()) for t in inputs]
    try:
        return _time_passes(lambda: module(*leaves), [t for t in leaves if t.requires_grad] +
                            list(module.parameters()), backward, repeat, clock)
    except (RuntimeError, ValueError) as exc:
        raise ArchcalcError(f"PyTorch could not run layer '{name}': {_first_line(exc)}"
                            ) from None


def _time_network(model: nn.Module, x: torch.Tensor, backward: bool, repeat: int, clock
                  ) -> Tuple[Optional[float], Optional[float]]:
    """One whole forward pass (and, with ``backward``, one whole backward pass), medians."""
    try:
        return _time_passes(lambda: model(x), list(model.parameters()), backward, repeat,
                            clock)
    except (RuntimeError, ValueError) as exc:
        raise ArchcalcError(f"PyTorch's pass of the whole network failed: {_first_line(exc)}"
                            ) from None


def _time_passes(forward: Callable[[], torch.Tensor], wrt: List[torch.Tensor], backward: bool,
                 repeat: int, clock) -> Tuple[float, Optional[float]]:
    """The median time of ``forward()`` (no autograd unless ``backward``) and, with
    ``backward``, of the backward pass of one recorded forward with respect to ``wrt`` (the
    graph kept, so each repeat times the backward alone); None where nothing needs one."""
    if not backward:
        with torch.no_grad():
            return _median(forward, repeat, clock), None
    seconds = _median(forward, repeat, clock)
    out = forward()
    wrt = [t for t in wrt if t.requires_grad]
    if not out.requires_grad or not wrt:
        return seconds, None
    grad = torch.randn_like(out)
    back = _median(lambda: torch.autograd.grad(out, wrt, grad, retain_graph=True,
                                               allow_unused=True), repeat, clock)
    return seconds, back
