"""Cross-check the analysis against PyTorch and fvcore, layer by layer.

The model comes from :mod:`archcalc.pytorch.build`, so each analyzed layer has a module of the
same name. One forward pass (hooks, inside ``FlopCounterMode``) gives every layer's input and
output shapes and PyTorch's FLOP total; one fvcore trace gives each module's count. Per layer we
compare the output shape, trainable parameters, non-trainable values (floating-point buffers:
BatchNorm's running mean and variance; the integer ``num_batches_tracked`` step counter is
bookkeeping, not a statistic, and is left out, as the analysis leaves it out) and the layer's
count, checked one of two ways:

- ``fvcore``: fvcore's count for the module, in the convention the op declares (``Op.fvcore``:
  MACs for conv and linear, other ops for BatchNorm and global pooling);
- ``hand count``: where fvcore has no handler (ReLU and the other activations, max and average
  pooling, adaptive max pooling, softmax, LRN, layer scale, dropout, stochastic depth, flatten,
  channel shuffle, identity, joins), the op's other ops worked out here, independently, from
  the torch module's own attributes and the measured tensor shapes (:data:`HAND_COUNTS`).

A layer with neither is checked for shape and parameters only, and says so. Everything runs in
eval mode, fvcore's convention for BatchNorm.

Nothing here prints; ``views/verify.py`` shapes a result for the renderers.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from archcalc.extras import require

require("torch", "verifying a PyTorch model")

import torch
from torch import nn

from archcalc.errors import ArchcalcError, Position
from archcalc.pytorch.devices import check_memory, resolve_device, torch_threads
from archcalc.core.graph import Layer
from archcalc.pytorch import modules
from archcalc.pytorch.quiet import quiet
from archcalc.pytorch.build import Branches, SpecLike, build_module, layer_modules, load_graph

Shape = Tuple[int, ...]

# How a layer's count was checked (LayerCheck.checked_by); None: shape and parameters only.
FVCORE, HAND_COUNT = "fvcore", "hand count"

@dataclass
class Check:
    """One quantity of one layer: the analysis's figure, PyTorch's or fvcore's, and whether they
    agree (None: not compared, as for ops that fvcore does not count)."""

    analytic: Any
    measured: Any
    ok: Optional[bool]

    def to_dict(self) -> dict:
        return {"analytic": _plain(self.analytic), "measured": _plain(self.measured),
                "ok": self.ok}


@dataclass
class LayerCheck:
    name: str
    type: str
    output_shape: Check
    params: Check
    non_trainable: Check
    count: Check                # the measured count against the analytic figure it should equal
    counted_as: Optional[str]   # which analytic figure that is ("macs", "other_ops"), or None
    checked_by: Optional[str]   # FVCORE, HAND_COUNT, or None: shape and parameters only

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks())

    def checks(self) -> List[Check]:
        return [self.output_shape, self.params, self.non_trainable, self.count]

    def to_dict(self) -> dict:
        count = dict(self.count.to_dict(), counted_as=self.counted_as,
                     checked_by=self.checked_by)
        return {"name": self.name, "type": self.type, "ok": self.ok,
                "output_shape": self.output_shape.to_dict(), "params": self.params.to_dict(),
                "non_trainable": self.non_trainable.to_dict(), "count": count}


@dataclass
class Verification:
    """A verify run: per-layer checks and whole-network totals, all per image."""

    name: str
    spec: str
    variant: Optional[str]
    heads: bool
    device: str                 # where it ran: "cpu", "cuda:0"
    device_note: str            # how it was chosen: "auto; CUDA is not available"
    batch: int
    layers: List[LayerCheck]
    totals: Dict[str, Check]
    unsupported: Dict[str, int]         # operators fvcore met but does not count, and how often
    error: Optional[str] = None         # why PyTorch or fvcore could not measure at all
    seconds: Dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and all(l.ok for l in self.layers) and all(
            c.ok for c in self.totals.values())

    @property
    def failed(self) -> List[str]:
        return [l.name for l in self.layers if not l.ok]

    def checked_by(self, how: Optional[str]) -> List[LayerCheck]:
        """The layers whose count was checked ``how`` (FVCORE, HAND_COUNT; None: not at all)."""
        return [l for l in self.layers if l.checked_by == how]

    def to_dict(self) -> dict:
        t = self.totals
        return {
            "ok": self.ok, "name": self.name, "spec": self.spec, "variant": self.variant,
            "heads": self.heads, "device": self.device, "device_note": self.device_note,
            "batch": self.batch,
            "conventions": {
                "per": "image (measured counts divided by the batch)",
                "non_trainable": "floating-point buffers (BatchNorm running mean and variance); "
                                 "num_batches_tracked is not counted",
                "count": "the analytic figure named by counted_as, checked_by fvcore "
                         "(by_module() in eval mode) or a hand count (other ops worked out from "
                         "the torch module's attributes and the measured tensor shapes); "
                         "checked_by null: shape and parameters only"},
            "checked": {
                "fvcore": len(self.checked_by(FVCORE)),
                "hand_count": len(self.checked_by(HAND_COUNT)),
                "shape_only": len(self.checked_by(None)),
                "shape_only_types": sorted({l.type for l in self.checked_by(None)})},
            "layers": [l.to_dict() for l in self.layers],
            "totals": {
                "ok": all(c.ok for c in t.values()),
                "macs_analytic": t["macs"].analytic, "macs_fvcore": t["fvcore"].measured,
                "fvcore_expected": t["fvcore"].analytic,
                "flops_flopcounter": t["flopcounter"].measured,
                "flops_expected": t["flopcounter"].analytic,
                "params_analytic": t["params"].analytic, "params_torch": t["params"].measured,
                "non_trainable_analytic": t["non_trainable"].analytic,
                "non_trainable_torch": t["non_trainable"].measured,
                "other_ops_hand_count": t["hand_count"].measured,
                "other_ops_hand_count_expected": t["hand_count"].analytic},
            "fvcore_unsupported": dict(self.unsupported),
            "error": self.error,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


# --- running the checks --------------------------------------------------------------------

def verify(spec: SpecLike, variant: Optional[str] = None, input=None, heads: bool = False,
           device: str = "auto", batch: int = 1, seed: int = 0,
           threads: Optional[int] = None,
           settings: Optional[Dict[str, str]] = None) -> Verification:
    """Build the model of ``spec`` and check every primitive layer (heads too, if asked).
    ``threads``: CPU threads for the passes (:func:`archcalc.pytorch.devices.cpu_threads`)."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ArchcalcError(f"the batch size must be a positive integer, got {batch!r}",
                            Position("--batch-size"))
    graph = load_graph(spec, variant, input, heads, settings)
    where, note = resolve_device(device)
    check_memory(graph, batch, where, training=False, heads=heads)
    seconds = {}
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):     # the caller's random state stays as it was
        torch.manual_seed(seed)
        model = build_module(graph, heads=heads).eval()
        x = torch.randn((batch,) + tuple(graph.input_shape))
    model, x = model.to(where), x.to(where)
    model.head_outputs = heads      # heads run in eval mode too, so each one is checked
    layers = graph.layers(heads)
    modules = layer_modules(model, layers)
    seconds["build"] = time.perf_counter() - start

    with torch_threads(where, threads):
        start = time.perf_counter()
        seen, flops, error = _forward(model, modules, x)
        seconds["forward"] = time.perf_counter() - start

        by_module, fvcore_total, unsupported = {}, None, {}
        if error is None:       # a model that cannot run forward cannot be traced either
            start = time.perf_counter()
            by_module, fvcore_total, unsupported, error = _fvcore(model, x)
            seconds["fvcore"] = time.perf_counter() - start

    checks = [_check_layer(l, modules[l.name], seen.get(l.name), by_module, batch)
              for l in layers]
    totals = _totals(layers, checks, model, fvcore_total, flops, batch)
    return Verification(graph.spec.name, graph.spec.path, graph.variant, heads, str(where), note,
                        batch, checks, totals, unsupported, error, seconds)


@dataclass
class Seen:
    """What one layer's module took and gave in the forward pass, batch dimension included:
    the shapes of the tensors it combined (its inputs; a join's, its branches' outputs) and of
    its output (None when that was not one tensor)."""

    inputs: List[Shape] = field(default_factory=list)
    output: Optional[Shape] = None


def _forward(model: nn.Module, modules: Dict[str, Optional[nn.Module]], x: torch.Tensor):
    """Each layer module's tensor shapes (:class:`Seen`) and FlopCounterMode's total, from one
    forward pass; or, where PyTorch refuses the pass, the shapes so far and what went wrong in
    which layer."""
    from torch.utils.flop_counter import FlopCounterMode
    seen: Dict[str, Seen] = {}
    running: List[str] = []     # layers entered and not yet left: the last one failed
    handles = []
    for name, module in modules.items():
        if module is None:
            continue
        parts = JOIN_PARTS.get(type(module))
        handles.append(module.register_forward_pre_hook(_enter(seen, running, name, parts)))
        handles.append(module.register_forward_hook(_leave(seen, running, name)))
        for part in (parts(module) if parts else []):
            handles.append(part.register_forward_hook(_part_done(seen, name)))
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    except RuntimeError as exc:
        where = f" in layer '{running[-1]}'" if running else ""
        return seen, None, f"PyTorch's forward pass failed{where}: {_first_line(exc)}"
    finally:
        for handle in handles:
            handle.remove()
    return seen, counter.get_total_flops(), None


def _enter(seen: Dict[str, Seen], running: List[str], name: str, parts):
    def hook(module, inputs):
        running.append(name)
        # a join's inputs are its parts' outputs, which their own hooks add as they come
        seen[name] = Seen([] if parts else [tuple(t.shape) for t in _tensors(inputs)])
    return hook


def _leave(seen: Dict[str, Seen], running: List[str], name: str):
    def hook(module, inputs, output):
        running.pop()
        seen[name].output = tuple(output.shape) if isinstance(output, torch.Tensor) else None
    return hook


def _part_done(seen: Dict[str, Seen], name: str):
    def hook(module, inputs, output):
        seen[name].inputs.extend(tuple(t.shape) for t in _tensors(output))
    return hook


def _tensors(value) -> List[torch.Tensor]:
    """The tensors in a hook's argument: a tensor, or tuples and lists of them (a join's)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


# --- the hand count: a layer's other ops from its torch module ----------------------------
#
# fvcore has no handler for these modules (it counts them 0) and FlopCounterMode counts only
# matrix products and convolutions, so neither can check the analysis's `other_ops` for them.
# Each rule is the op's documented convention (docs/spec.md; each op's counts() in core/ops)
# worked out again from what PyTorch has: the module's own attributes and the tensor shapes the
# forward pass measured, batch included; never from the analysis. Keyed by the exact module
# type, so that a subclass, which may compute something else, is not taken on trust.

HandCount = Callable[[nn.Module, List[Shape], Shape], Optional[int]]


def _pair(value) -> Tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _per_output(module, inputs, out) -> int:
    # ReLU: one max(x, 0); softmax: one exponential; each other activation one evaluation;
    # layer scale one multiply; per element
    return math.prod(out)


def _per_window_element(module, inputs, out) -> int:
    kh, kw = _pair(module.kernel_size)
    return kh * kw * math.prod(out)    # max and average pooling: one read per window element


def _adaptive_window_elements(module, inputs, out) -> int:
    """Adaptive max pooling: one read per window element, as max pooling. The windows are
    measured from PyTorch's own kernel, one axis at a time: pooling an increasing ramp, each
    window's maximum is its last element; a decreasing ramp, its first."""
    *lead, h, w = inputs[0]
    return math.prod(lead) * _window_lengths(h, out[-2]) * _window_lengths(w, out[-1])


def _window_lengths(size: int, out: int) -> int:
    ramp = torch.arange(size, dtype=torch.float64).view(1, 1, size, 1)
    _, last = nn.functional.adaptive_max_pool2d(ramp, (out, 1), return_indices=True)
    _, first = nn.functional.adaptive_max_pool2d(-ramp, (out, 1), return_indices=True)
    return int((last - first + 1).sum())


def _lrn(module, inputs, out) -> int:
    return module.size * math.prod(out)    # a sum over `size` channels per element


def _no_work(module, inputs, out) -> int:
    # dropout and stochastic depth in eval mode, flatten, identity: they pass values on;
    # channel shuffle moves them
    return 0


def _add(module, inputs, out) -> int:
    return (len(inputs) - 1) * math.prod(out)  # n tensors summed: n - 1 additions per element


def _mul(module, inputs, out) -> int:
    # n tensors multiplied, broadcast to the output: n - 1 multiplications per output element
    return (len(inputs) - 1) * math.prod(out)


def _concat(module, inputs, out) -> int:
    return 0        # a concatenation (or a crop) copies; it computes nothing


def _branches(module, inputs, out) -> Optional[int]:
    """build.Branches applies its group's join module (modules.Concat, modules.Add) to the
    branches' outputs: the count is that module's, when a rule knows it."""
    rule = HAND_COUNTS.get(type(module.join))
    return rule(module.join, inputs, out) if rule else None


HAND_COUNTS: Dict[type, HandCount] = {
    nn.ReLU: _per_output, nn.Softmax: _per_output,
    nn.ReLU6: _per_output, nn.Hardswish: _per_output, nn.Hardsigmoid: _per_output,
    nn.SiLU: _per_output, nn.GELU: _per_output, nn.Sigmoid: _per_output, nn.Tanh: _per_output,
    nn.LeakyReLU: _per_output, modules.LayerScale: _per_output,
    nn.MaxPool2d: _per_window_element, nn.AvgPool2d: _per_window_element,
    nn.AdaptiveMaxPool2d: _adaptive_window_elements,
    nn.LocalResponseNorm: _lrn,
    nn.Dropout: _no_work, nn.Flatten: _no_work, nn.Identity: _no_work,
    modules.StochasticDepth: _no_work, nn.ChannelShuffle: _no_work,
    modules.Add: _add, modules.Concat: _concat, modules.Mul: _mul, modules.Crop: _concat,
    Branches: _branches,
}

# Modules that combine the outputs of their children rather than their own inputs: the join
# layer of a group is the group's Branches module, which joins its branches' outputs.
JOIN_PARTS: Dict[type, Callable[[nn.Module], List[nn.Module]]] = {
    Branches: lambda module: list(module.children()),
}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _fvcore(model: nn.Module, x: torch.Tensor):
    """fvcore's counts by module name, its total, the operators it met but did not count, and
    an error if it could not trace; its log lines and the warnings its import and tracing raise
    are kept off the screen."""
    with quiet("fvcore", "iopath"):
        from fvcore.nn import FlopCountAnalysis
        analysis = (FlopCountAnalysis(model, x).unsupported_ops_warnings(False)
                    .uncalled_modules_warnings(False).tracer_warnings("none"))
        try:
            by_module = dict(analysis.by_module())
        except (RuntimeError, TypeError, ValueError) as exc:
            return {}, None, {}, f"fvcore could not trace the model: {_first_line(exc)}"
        return by_module, analysis.total(), dict(analysis.unsupported_ops()), None


def _check_layer(layer: Layer, module: Optional[nn.Module], seen: Optional[Seen],
                 by_module: Dict[str, int], batch: int) -> LayerCheck:
    counts = layer.counts()
    own = layer.is_join      # a join's module is its group's: only its own tensors count
    params = frozen = None
    if module is not None:
        params = _count(module.parameters(recurse=not own), trainable=True)
        frozen = _count(module.parameters(recurse=not own), trainable=False) + sum(
            b.numel() for b in module.buffers(recurse=not own) if b.is_floating_point())
    shape = seen.output if seen is not None else None
    measured_shape = None
    if shape is not None and len(shape) >= 1 and shape[0] == batch:
        measured_shape = tuple(shape[1:])
    field_name, checked_by, count = _measured_count(layer, module, seen, by_module)
    if checked_by is None:
        check = Check(None, None, None)
    else:
        expected = getattr(counts, field_name)
        check = Check(expected, _per_image(count, batch),
                      count is not None and count == expected * batch)
    return LayerCheck(
        layer.name, layer.kind,
        Check(tuple(layer.out_shape), measured_shape, measured_shape == tuple(layer.out_shape)),
        Check(counts.params, params, params == counts.params),
        Check(counts.non_trainable, frozen, frozen == counts.non_trainable),
        check, field_name, checked_by)


def _measured_count(layer: Layer, module: Optional[nn.Module], seen: Optional[Seen],
                    by_module: Dict[str, int]):
    """Which analytic figure a layer's count is checked against, by what, and the count for the
    whole batch (None where it could not be measured): fvcore's where the op declares that
    fvcore counts it, else a hand count where there is a rule for its module."""
    field_name = getattr(layer.op, "fvcore", None)
    if field_name is not None:
        return field_name, FVCORE, by_module.get(layer.name) if module is not None else None
    rule = HAND_COUNTS.get(type(module)) if module is not None else None
    if rule is None:
        return None, None, None
    count = None
    if seen is not None and seen.output is not None:
        count = rule(module, seen.inputs, seen.output)
    return "other_ops", HAND_COUNT, count


def _count(params, trainable: bool) -> int:
    return sum(p.numel() for p in params if p.requires_grad == trainable)


def _per_image(count: Optional[int], batch: int):
    if count is None:
        return None
    return count // batch if count % batch == 0 else count / batch


def _totals(layers: List[Layer], checks: List[LayerCheck], model: nn.Module,
            fvcore_total: Optional[int], flops: Optional[int], batch: int) -> Dict[str, Check]:
    counts = [(l, l.counts()) for l in layers]
    macs = sum(c.macs for _, c in counts)
    fvcore_expected = sum(getattr(c, l.op.fvcore) for l, c in counts
                          if getattr(l.op, "fvcore", None))
    params = sum(c.params for _, c in counts)
    frozen = sum(c.non_trainable for _, c in counts)
    torch_params = _count(model.parameters(), trainable=True)
    torch_frozen = _count(model.parameters(), trainable=False) + sum(
        b.numel() for b in model.buffers() if b.is_floating_point())
    hand = [c.count for c in checks if c.checked_by == HAND_COUNT]
    hand_expected = sum(c.analytic for c in hand)
    hand_measured = None if any(c.measured is None for c in hand) else sum(
        c.measured for c in hand)
    return {
        "macs": Check(macs, None, True),    # the reference for fvcore and FlopCounterMode;
                                            # nothing else measures MACs alone
        "fvcore": Check(fvcore_expected, _per_image(fvcore_total, batch),
                        fvcore_total == fvcore_expected * batch),
        "flopcounter": Check(2 * macs, _per_image(flops, batch), flops == 2 * macs * batch),
        # the sum of the per-layer hand counts: the other ops nothing else measures
        "hand_count": Check(hand_expected, hand_measured, hand_measured == hand_expected),
        "params": Check(params, torch_params, params == torch_params),
        "non_trainable": Check(frozen, torch_frozen, frozen == torch_frozen),
    }
