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

from archcalc.extras import require

require("torch", "building a PyTorch model")

import torch
from torch import nn

from archcalc.errors import ArchcalcError, Position
from archcalc.core.graph import Graph, Group, Layer, build
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


class Sequence(_Container):
    """Children applied one after another (a spec's list or ``seq``)."""

    def __init__(self, children: Iterable[Tuple[str, nn.Module]]):
        super().__init__()
        for name, child in children:
            _attach(self, name, child)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for child in self._modules.values():
            x = child(x)
        return x


class Branches(_Container):
    """Parallel branches on one input, joined (concat, add) by the join op's module.

    The join module is held, not registered: it is stateless (ops.base.Join), and as a child
    it would be a module name the graph does not have; this container is the join's layer."""

    def __init__(self, branches: Iterable[Tuple[str, nn.Module]], join: nn.Module):
        super().__init__()
        self.__dict__["join"] = join
        for name, child in branches:
            _attach(self, name, child)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.join(*[branch(x) for branch in self._modules.values()])


class Network(_Container):
    """The rows of a spec in order, and its heads (training-only outputs) when built with them.

    ``forward`` returns the main output; with heads, in training mode, ``(main, {head: out})``.
    ``head_outputs`` overrides when heads run: None (training mode only), True or False.
    """

    def __init__(self, rows: List[Tuple[str, nn.Module]], heads: List[Tuple[str, str, nn.Module]],
                 loss_weights: Dict[str, float], input_shape: Tuple[int, ...]):
        super().__init__()
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
        for name in self.row_names:
            x = self._modules[name](x)
            if name in taps:
                seen[name] = x
        if not run_heads:
            return x
        return x, {head: self._modules[head](seen[after])
                   for head, after in self.head_after.items()}


# --- from a graph -------------------------------------------------------------------------

def build_module(graph: Graph, heads: bool = False, logits: bool = False) -> Network:
    """The network of ``graph``; with ``heads``, its heads too. ``logits`` leaves off an output
    transform (softmax) that ends the network or a head, for a loss that applies its own.
    Heads need a graph built with them (``load_graph(..., heads=True)``)."""
    if heads and graph.spec.heads and not graph.with_heads:
        raise ArchcalcError("the graph was built without its heads; build it with heads=True")
    rows = graph.rows + (graph.heads if heads else [])
    drop: Set[str] = set()
    if logits:
        ends = [graph.rows[-1].group] + [r.group for r in graph.heads]
        drop = {layer.name for layer in map(_last_layer, ends)
                if layer is not None and getattr(layer.op, "output_transform", False)}
    modules = {r.name: _group(r.group, drop) for r in rows}
    main = [(r.name, modules[r.name]) for r in graph.rows]
    attached = [(r.name, r.head.after, modules[r.name]) for r in graph.heads if heads]
    weights = {r.name: r.head.loss_weight for r in graph.heads if heads}
    return Network(main, attached, weights, graph.input_shape)


def _group(group: Group, drop: Set[str]) -> nn.Module:
    children = []
    for child in group.children:
        if isinstance(child, Layer):
            if child.name not in drop:
                children.append((child.name.rsplit(".", 1)[-1], _layer(child)))
        else:
            children.append((child.name, _group(child, drop)))
    if group.join is None:
        return Sequence(children)
    join = _layer(group.join)
    if any(True for _ in join.parameters()) or any(True for _ in join.buffers()):
        raise TorchBuildError(f"layer '{group.path}': the module of op '{group.join.kind}' has "
                              "state; a join's module must have none", group.join.pos)
    return Branches(children, join)


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
    return last if isinstance(last, Layer) else _last_layer(last)


# --- from a spec --------------------------------------------------------------------------

SpecLike = Union[str, Path, Spec, Graph]


def load_graph(spec: SpecLike, variant: Optional[str] = None,
               input: Union[str, Tuple[int, ...], List[int], None] = None,
               heads: bool = False) -> Graph:
    """The layer graph of a spec file, a bundled spec's name (``googlenet``), or a loaded Spec;
    its heads are built (and shape-checked) only with ``heads``. A Graph is returned as it is
    (``variant`` and ``input`` must then be None)."""
    if isinstance(spec, Graph):
        if variant is not None or input is not None:
            raise ArchcalcError("variant and input are fixed once a graph is built; pass the "
                                "spec instead")
        return spec
    if not isinstance(spec, Spec):
        from archcalc.files import resolve_spec
        spec = load(resolve_spec(str(spec)))
    shape = None
    if input is not None:
        shape = parse_input(input if isinstance(input, str) else list(input), Position("input"))
    return build(spec, variant, shape, heads=heads)


def build_model(spec: SpecLike, variant: Optional[str] = None,
                input: Union[str, Tuple[int, ...], List[int], None] = None, heads: bool = False,
                logits: bool = False) -> Network:
    """A ``torch.nn.Module`` for ``spec``, its ``named_modules()`` named as the spec's layers.

    ``variant`` picks a block variant (``naive``); ``input`` overrides the input size
    (``"3x448x448"`` or ``(3, 448, 448)``); ``heads`` adds the training-only heads, so that in
    training mode the model returns ``(main_output, {head_name: output})``; ``logits`` leaves a
    final softmax off the main output and the heads, for ``nn.CrossEntropyLoss``.
    Raises ArchcalcError for a bad spec or an op that has no PyTorch builder.
    """
    from archcalc.pytorch.devices import check_memory
    graph = load_graph(spec, variant, input, heads)
    check_memory(graph, 1, torch.device("cpu"), heads=heads)
    return build_module(graph, heads=heads, logits=logits)


def layer_modules(model: nn.Module, layers: Iterable[Layer]) -> Dict[str, Optional[nn.Module]]:
    """Each layer's module by its name (None where the model has no module of that name)."""
    named = dict(model.named_modules())
    return {layer.name: named.get(layer.name) for layer in layers}


__all__ = ["Branches", "Network", "Sequence", "TorchBuildError", "build_model", "build_module",
           "layer_modules", "load_graph"]
