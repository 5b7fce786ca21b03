"""Cross-check the analysis against PyTorch and fvcore, layer by layer.

The model comes from :mod:`archcalc.torch_build`, so each analyzed layer has a module of the same
name. One forward pass (hooks, inside ``FlopCounterMode``) gives every output shape and PyTorch's
FLOP total; one fvcore trace gives each module's count. Per layer we compare the output shape,
trainable parameters, non-trainable values (floating-point buffers: BatchNorm's running mean
and variance; the integer ``num_batches_tracked`` step counter is bookkeeping, not a statistic,
and is left out, as the analysis leaves it out) and fvcore's count, in the convention each op
declares (``Op.fvcore``). Everything runs in eval mode, fvcore's convention for BatchNorm.

Nothing here prints; :func:`to_table` shapes a result for the renderers in :mod:`report`.
"""
from __future__ import annotations

import contextlib
import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from torch import nn

from archcalc.errors import ArchcalcError, Position
from archcalc.pytorch.devices import resolve_device, torch_threads
from archcalc.core.graph import Layer
from archcalc.pytorch.build import SpecLike, build_module, layer_modules, load_graph

NOT_COUNTED = "not counted by fvcore"

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
    macs: Check                 # fvcore's count against the analytic figure it should equal
    counted_as: Optional[str]   # which analytic figure that is ("macs", "other_ops"), or None

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks())

    def checks(self) -> List[Check]:
        return [self.output_shape, self.params, self.non_trainable, self.macs]

    def to_dict(self) -> dict:
        macs = dict(self.macs.to_dict(), counted_as=self.counted_as)
        if self.counted_as is None:
            macs["note"] = NOT_COUNTED
        return {"name": self.name, "type": self.type, "ok": self.ok,
                "output_shape": self.output_shape.to_dict(), "params": self.params.to_dict(),
                "non_trainable": self.non_trainable.to_dict(), "macs": macs}


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
                "macs": "fvcore by_module() in eval mode against the analytic figure named by "
                        "counted_as"},
            "layers": [l.to_dict() for l in self.layers],
            "totals": {
                "ok": all(c.ok for c in t.values()),
                "macs_analytic": t["macs"].analytic, "macs_fvcore": t["fvcore"].measured,
                "fvcore_expected": t["fvcore"].analytic,
                "flops_flopcounter": t["flopcounter"].measured,
                "flops_expected": t["flopcounter"].analytic,
                "params_analytic": t["params"].analytic, "params_torch": t["params"].measured,
                "non_trainable_analytic": t["non_trainable"].analytic,
                "non_trainable_torch": t["non_trainable"].measured},
            "fvcore_unsupported": dict(self.unsupported),
            "error": self.error,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


# --- running the checks --------------------------------------------------------------------

def verify(spec: SpecLike, variant: Optional[str] = None, input=None, heads: bool = False,
           device: str = "auto", batch: int = 1, seed: int = 0,
           threads: Optional[int] = None) -> Verification:
    """Build the model of ``spec`` and check every primitive layer (heads too, if asked).
    ``threads``: CPU threads for the passes (:func:`archcalc.pytorch.devices.cpu_threads`)."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ArchcalcError(f"the batch must be a positive integer, got {batch!r}",
                            Position("--batch"))
    graph = load_graph(spec, variant, input)
    where, note = resolve_device(device)
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
        shapes, flops, error = _forward(model, modules, x)
        seconds["forward"] = time.perf_counter() - start

        by_module, fvcore_total, unsupported = {}, None, {}
        if error is None:       # a model that cannot run forward cannot be traced either
            start = time.perf_counter()
            by_module, fvcore_total, unsupported, error = _fvcore(model, x)
            seconds["fvcore"] = time.perf_counter() - start

    checks = [_check_layer(l, modules[l.name], shapes.get(l.name), by_module, batch)
              for l in layers]
    totals = _totals(layers, model, fvcore_total, flops, batch)
    return Verification(graph.spec.name, graph.spec.path, graph.variant, heads, str(where), note,
                        batch, checks, totals, unsupported, error, seconds)


def _forward(model: nn.Module, modules: Dict[str, Optional[nn.Module]], x: torch.Tensor):
    """Each layer module's output shape and FlopCounterMode's total, from one forward pass;
    or, where PyTorch refuses the pass, the shapes so far and what went wrong in which layer."""
    from torch.utils.flop_counter import FlopCounterMode
    shapes: Dict[str, Any] = {}
    running: List[str] = []     # layers entered and not yet left: the last one failed
    handles = []
    for name, module in modules.items():
        if module is not None:
            handles.append(module.register_forward_pre_hook(
                lambda m, i, name=name: running.append(name)))
            handles.append(module.register_forward_hook(_record(shapes, running, name)))
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    except RuntimeError as exc:
        where = f" in layer '{running[-1]}'" if running else ""
        return shapes, None, f"PyTorch's forward pass failed{where}: {_first_line(exc)}"
    finally:
        for handle in handles:
            handle.remove()
    return shapes, counter.get_total_flops(), None


def _record(shapes: Dict[str, Any], running: List[str], name: str):
    def hook(module, inputs, output):
        running.pop()
        shapes[name] = tuple(output.shape) if isinstance(output, torch.Tensor) else None
    return hook


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _fvcore(model: nn.Module, x: torch.Tensor):
    """fvcore's counts by module name, its total, the operators it met but did not count, and
    an error if it could not trace; its log lines and the warnings its import and tracing raise
    are kept off the screen."""
    with _quiet():
        from fvcore.nn import FlopCountAnalysis
        analysis = (FlopCountAnalysis(model, x).unsupported_ops_warnings(False)
                    .uncalled_modules_warnings(False).tracer_warnings("none"))
        try:
            by_module = dict(analysis.by_module())
        except (RuntimeError, TypeError, ValueError) as exc:
            return {}, None, {}, f"fvcore could not trace the model: {_first_line(exc)}"
        return by_module, analysis.total(), dict(analysis.unsupported_ops()), None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No log lines from fvcore (and iopath, which it imports) below errors; no warnings."""
    loggers = [logging.getLogger(name) for name in ("fvcore", "iopath")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _check_layer(layer: Layer, module: Optional[nn.Module], shape, by_module: Dict[str, int],
                 batch: int) -> LayerCheck:
    counts = layer.counts()
    own = layer.is_join      # a join's module is its group's: only its own tensors count
    params = frozen = None
    if module is not None:
        params = _count(module.parameters(recurse=not own), trainable=True)
        frozen = _count(module.parameters(recurse=not own), trainable=False) + sum(
            b.numel() for b in module.buffers(recurse=not own) if b.is_floating_point())
    measured_shape = None
    if shape is not None and len(shape) >= 1 and shape[0] == batch:
        measured_shape = tuple(shape[1:])
    field_name = getattr(layer.op, "fvcore", None)
    if field_name is None:
        macs = Check(counts.macs, None, None)
    else:
        expected = getattr(counts, field_name)
        count = by_module.get(layer.name) if module is not None else None
        macs = Check(expected, _per_image(count, batch),
                     count is not None and count == expected * batch)
    return LayerCheck(
        layer.name, layer.kind,
        Check(tuple(layer.out_shape), measured_shape, measured_shape == tuple(layer.out_shape)),
        Check(counts.params, params, params == counts.params),
        Check(counts.non_trainable, frozen, frozen == counts.non_trainable),
        macs, field_name)


def _count(params, trainable: bool) -> int:
    return sum(p.numel() for p in params if p.requires_grad == trainable)


def _per_image(count: Optional[int], batch: int):
    if count is None:
        return None
    return count // batch if count % batch == 0 else count / batch


def _totals(layers: List[Layer], model: nn.Module, fvcore_total: Optional[int],
            flops: Optional[int], batch: int) -> Dict[str, Check]:
    counts = [(l, l.counts()) for l in layers]
    macs = sum(c.macs for _, c in counts)
    fvcore_expected = sum(getattr(c, l.op.fvcore) for l, c in counts
                          if getattr(l.op, "fvcore", None))
    params = sum(c.params for _, c in counts)
    frozen = sum(c.non_trainable for _, c in counts)
    torch_params = _count(model.parameters(), trainable=True)
    torch_frozen = _count(model.parameters(), trainable=False) + sum(
        b.numel() for b in model.buffers() if b.is_floating_point())
    return {
        "macs": Check(macs, None, True),    # the reference for the two below; nothing else
                                            # measures MACs alone
        "fvcore": Check(fvcore_expected, _per_image(fvcore_total, batch),
                        fvcore_total == fvcore_expected * batch),
        "flopcounter": Check(2 * macs, _per_image(flops, batch), flops == 2 * macs * batch),
        "params": Check(params, torch_params, params == torch_params),
        "non_trainable": Check(frozen, torch_frozen, frozen == torch_frozen),
    }
