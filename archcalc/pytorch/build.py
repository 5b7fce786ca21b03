"""Build a PyTorch module from a layer graph: the same layers, under the same names.

Every primitive layer's module comes from its op's ``to_torch``; this module only arranges them
as the graph does. A sequence becomes a :class:`Sequence`, parallel branches a :class:`Branches`
that joins them with the join op's module (so a concat layer ``3a`` is the module ``3a``), and
the rows and heads hang off a :class:`Network`. ``named_modules()`` therefore yields the graph's
dotted layer names, which is what lets fvcore's ``by_module()`` join the analysis row by row.

Imports torch; the analytic path never imports this module.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple, Union

from archcalc.extras import TORCH_ONLY, require

require("torch", "building a PyTorch model", needs=TORCH_ONLY)

import torch
from torch import nn

from archcalc.errors import ArchcalcError, Position
from archcalc.core.graph import INPUT, Graph, Group, Layer, Ref, build
from archcalc.core.spec import Spec, load, parse_input


class TorchBuildError(ArchcalcError):
    """A layer that archcalc can analyze but cannot build as a PyTorch module."""


def _attach(parent: nn.Module, name: str, child: nn.Module) -> None:
    """Register ``child`` under ``name``. Written to ``_modules`` directly, as nn.Sequential's
    children are, so that spec names which are also nn.Module attributes ("type", "eval")
    still name their layer; children are reached by name, never as attributes."""
    parent._modules[name] = child


class _Container(nn.Module):
    """A module whose children may carry any spec name, "training" included.

    nn.Module refuses to set a plain attribute that shares a child's name, and ``train()``
    sets ``training`` on every module: a layer named ``training`` (or ``head_outputs``) would
    break ``eval()``. Plain values go to the instance's own attributes instead, beside the
    child of the same name in ``_modules``, which is reached by name only."""

    def __setattr__(self, name: str, value) -> None:
        if not isinstance(value, (nn.Module, torch.Tensor)) and name in self.__dict__.get(
                "_modules", {}):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


class Tape:
    """The outputs a later ``from:`` takes, by node name, for one forward pass.

    Shared by every container of one network (held, not registered, so it is no module and no
    state): a container puts in the outputs of its children that the graph's ``referenced``
    names, and a sequence's ``from:`` step takes one out. The network empties it after each
    pass, so no tensor outlives the forward pass that made it."""

    def __init__(self):
        self.outputs: Dict[str, torch.Tensor] = {}


class _Node(_Container):
    """A container that keeps the outputs of the children ``keep`` names (local name → the
    node's dotted name) on the network's tape."""

    def __init__(self, tape: Tape, keep: Dict[str, str]):
        super().__init__()
        self.__dict__["tape"] = tape
        self.__dict__["keep"] = dict(keep)

    def _run(self, name: str, x: torch.Tensor) -> torch.Tensor:
        x = self._modules[name](x)
        if name in self.keep:
            self.tape.outputs[self.keep[name]] = x
        return x


class Sequence(_Node):
    """Children applied one after another (a spec's list or ``seq``); a ``from:`` step
    (a name, not a module) continues from an earlier node's output on the tape."""

    def __init__(self, steps: Iterable[Tuple[str, Optional[nn.Module]]], tape: Tape,
                 keep: Dict[str, str]):
        super().__init__(tape, keep)
        self.__dict__["steps"] = []     # (child name, True) or (an earlier node's name, False)
        for name, child in steps:
            if child is not None:
                _attach(self, name, child)
            self.steps.append((name, child is not None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name, is_child in self.steps:
            x = self._run(name, x) if is_child else self.tape.outputs[name]
        return x


class Branches(_Node):
    """Parallel branches on one input, joined (concat, add) by the join op's module.

    The join module is held, not registered: it is stateless (ops.base.Join), and as a child
    it would be a module name the graph does not have; this container is the join's layer."""

    def __init__(self, branches: Iterable[Tuple[str, nn.Module]], join: nn.Module, tape: Tape,
                 keep: Dict[str, str]):
        super().__init__(tape, keep)
        self.__dict__["join"] = join
        for name, child in branches:
            _attach(self, name, child)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.join(*[self._run(name, x) for name in list(self._modules)])


class Network(_Container):
    """The rows of a spec in order, and its heads (training-only outputs) when built with them.

    ``forward`` returns the main output; with heads, in training mode, ``(main, {head: out})``.
    ``head_outputs`` overrides when heads run: None (training mode only), True or False.
    """

    def __init__(self, rows: List[Tuple[str, nn.Module]], heads: List[Tuple[str, str, nn.Module]],
                 loss_weights: Dict[str, float], input_shape: Tuple[int, ...],
                 tape: Optional[Tape] = None, keep: Iterable[str] = ()):
        super().__init__()
        self.__dict__["tape"] = tape or Tape()
        self.__dict__["keep"] = frozenset(keep)     # rows (and INPUT) a later from: takes
        self.row_names = [name for name, _ in rows]
        self.head_after = {name: after for name, after, _ in heads}
        self.loss_weights = dict(loss_weights)
        self.input_shape = tuple(input_shape)
        self.head_outputs: Optional[bool] = None
        for name, module in rows:
            _attach(self, name, module)
        for name, _, module in heads:
            _attach(self, name, module)

    def forward(self, x: torch.Tensor):
        run_heads = bool(self.head_after) and (
            self.training if self.head_outputs is None else self.head_outputs)
        taps = set(self.head_after.values()) if run_heads else set()
        seen = {}
        outputs = self.tape.outputs
        outputs.clear()
        if INPUT in self.keep:
            outputs[INPUT] = x
        try:
            for name in self.row_names:
                x = self._modules[name](x)
                if name in self.keep:
                    outputs[name] = x
                if name in taps:
                    seen[name] = x
            if not run_heads:
                return x
            return x, {head: self._modules[head](seen[after])
                       for head, after in self.head_after.items()}
        finally:
            outputs.clear()


# --- from a graph -------------------------------------------------------------------------

def check_buildable(graph: Graph, heads: bool = False) -> None:
    """A TorchBuildError naming every opaque layer (ops/opaque.py), before any work: such a
    layer records what a traced model measured and has no module archcalc could build."""
    opaque = graph.opaque(heads and graph.with_heads)
    if opaque:
        names = ", ".join(layer.name for layer in opaque)
        raise TorchBuildError(f"{len(opaque)} opaque layer{'s' * (len(opaque) != 1)} ({names}): "
                              "archcalc cannot build or check them; their output shapes and "
                              "parameters come from the traced model")


def build_module(graph: Graph, heads: bool = False, logits: bool = False) -> Network:
    """The network of ``graph``; with ``heads``, its heads too. ``logits`` leaves off an output
    transform (softmax) that ends the network or a head, for a loss that applies its own.
    Heads need a graph built with them (``load_graph(..., heads=True)``)."""
    if heads and graph.spec.heads and not graph.with_heads:
        raise ArchcalcError("the graph was built without its heads; build it with heads=True")
    check_buildable(graph, heads)
    rows = graph.rows + (graph.heads if heads else [])
    drop: Set[str] = set()
    if logits:
        ends = [graph.rows[-1].group] + [r.group for r in graph.heads]
        drop = {layer.name for layer in map(_last_layer, ends)
                if layer is not None and getattr(layer.op, "output_transform", False)}
    tape = Tape()
    modules = {r.name: _group(r.group, drop, tape, graph.referenced) for r in rows}
    main = [(r.name, modules[r.name]) for r in graph.rows]
    attached = [(r.name, r.head.after, modules[r.name]) for r in graph.heads if heads]
    weights = {r.name: r.head.loss_weight for r in graph.heads if heads}
    keep = {INPUT} & graph.referenced | {r.name for r in graph.rows} & graph.referenced
    return Network(main, attached, weights, graph.input_shape, tape, keep)


def _group(group: Group, drop: Set[str], tape: Tape, referenced) -> nn.Module:
    steps: List[Tuple[str, Optional[nn.Module]]] = []
    keep: Dict[str, str] = {}
    for child in group.children:
        if isinstance(child, Ref):
            steps.append((child.target, None))
            continue
        if isinstance(child, Layer):
            if child.name in drop:
                continue
            local, path, module = child.name.rsplit(".", 1)[-1], child.name, _layer(child)
        else:
            local, path, module = child.name, child.path, _group(child, drop, tape, referenced)
        steps.append((local, module))
        if path in referenced:
            keep[local] = path
    if group.join is None:
        return Sequence(steps, tape, keep)
    join = _layer(group.join)
    if any(True for _ in join.parameters()) or any(True for _ in join.buffers()):
        raise TorchBuildError(f"layer '{group.path}': the module of op '{group.join.kind}' has "
                              "state; a join's module must have none", group.join.pos)
    return Branches(steps, join, tape, keep)


def _layer(layer: Layer) -> nn.Module:
    try:
        module = layer.op.to_torch(layer.in_shapes if layer.is_join else layer.in_shape)
    except NotImplementedError:
        raise TorchBuildError(f"layer '{layer.name}': op '{layer.kind}' has no PyTorch builder",
                              layer.pos) from None
    if not isinstance(module, nn.Module):
        raise TorchBuildError(f"layer '{layer.name}': op '{layer.kind}' built "
                              f"{type(module).__name__}, not a torch.nn.Module", layer.pos)
    return module


def _last_layer(group: Group) -> Optional[Layer]:
    """The layer a sequence ends with (looking into a trailing sub-sequence), if any."""
    if group.join is not None or not group.children:
        return None
    last = group.children[-1]
    if isinstance(last, Ref):
        return None
    return last if isinstance(last, Layer) else _last_layer(last)


# --- from a spec --------------------------------------------------------------------------

SpecLike = Union[str, Path, Spec, Graph]


def load_graph(spec: SpecLike, variant: Optional[str] = None,
               input: Union[str, Tuple[int, ...], List[int], None] = None,
               heads: bool = False, settings: Optional[Dict[str, str]] = None) -> Graph:
    """The layer graph of a spec file, a bundled spec's name (``googlenet``), or a loaded Spec;
    its heads are built (and shape-checked) only with ``heads``. A Graph is returned as it is
    (``variant`` and ``input`` must then be None)."""
    if isinstance(spec, Graph):
        if variant is not None or input is not None or settings:
            raise ArchcalcError("variant and input are fixed once a graph is built; pass the "
                                "spec instead")
        check_buildable(spec, heads)
        return spec
    if not isinstance(spec, Spec):
        from archcalc.files import resolve_spec
        spec = load(resolve_spec(str(spec)))
    shape = None
    if input is not None:
        shape = parse_input(input if isinstance(input, str) else list(input), Position("input"))
    graph = build(spec, variant, shape, heads=heads, settings=settings)
    check_buildable(graph, heads)
    return graph


def build_model(spec: SpecLike, variant: Optional[str] = None,
                input: Union[str, Tuple[int, ...], List[int], None] = None, heads: bool = False,
                logits: bool = False, settings: Optional[Dict[str, str]] = None) -> Network:
    """A ``torch.nn.Module`` for ``spec``, its ``named_modules()`` named as the spec's layers.

    ``variant`` picks a block variant (``naive``); ``input`` overrides the input size
    (``"3x448x448"`` or ``(3, 448, 448)``); ``heads`` adds the training-only heads, so that in
    training mode the model returns ``(main_output, {head_name: output})``; ``logits`` leaves a
    final softmax off the main output and the heads, for ``nn.CrossEntropyLoss``.
    Raises ArchcalcError for a bad spec or an op that has no PyTorch builder.
    """
    from archcalc.pytorch.devices import check_memory
    graph = load_graph(spec, variant, input, heads, settings)
    check_memory(graph, 1, torch.device("cpu"), heads=heads)
    return build_module(graph, heads=heads, logits=logits)


def layer_modules(model: nn.Module, layers: Iterable[Layer]) -> Dict[str, Optional[nn.Module]]:
    """Each layer's module by its name (None where the model has no module of that name)."""
    named = dict(model.named_modules())
    return {layer.name: named.get(layer.name) for layer in layers}


__all__ = ["Branches", "Network", "Sequence", "TorchBuildError", "build_model", "build_module",
           "check_buildable",
           "layer_modules", "load_graph"]
