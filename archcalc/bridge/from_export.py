"""A ``.pt2`` file (``torch.export.save``) as the bridge's IR, read from the ExportedProgram's
own graph rather than by tracing ``program.module()`` again.

The program's graph is ATen-level and already carries everything an import needs: every node's
output as a fake tensor (``node.meta["val"]``: the shape), the module it ran in
(``node.meta["nn_module_stack"]``: the qualified name, ``layer1.0.conv1``), and which graph
inputs are the model's parameters and buffers (``graph_signature``). Which spec op an ATen
overload is, is the op classes' business (``aten_ops``, ``from_aten`` in archcalc/core/ops);
this module looks the overload up and checks the mapping as the fx importer does
(``from_torch._mapped``: output shape, parameters and buffers must agree, else ``opaque``).

A PyTorch module (``torch.nn.*``, or one an op maps) is one layer named by its path, however
many ATen calls it made (a bias added apart from its convolution); a call made in a model's own
module is a layer of its own, named ``path.op`` (``layer1.0.add``) as the fx importer names it.
"""
from __future__ import annotations

import operator
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

import torch

from archcalc.bridge.from_torch import MODULES, _collapse, _mapped, _resolve
from archcalc.bridge.ir import INPUT, Model, Node
from archcalc.core.ops import OPS


def _registry() -> Dict[str, List[type]]:
    """ATen overload name ("aten.conv2d.default") → op classes, in OPS order."""
    found: Dict[str, List[type]] = {}
    for cls in OPS.values():
        for name in cls.aten_ops:
            found.setdefault(name, []).append(cls)
    return found


ATEN = _registry()


def load(program, source: str) -> Model:
    """The IR of an ExportedProgram (its input shape is the one it was exported with)."""
    return _Reader(program, source).run()


def _value(node) -> Optional[torch.Tensor]:
    val = node.meta.get("val") if hasattr(node, "meta") else None
    if isinstance(val, (tuple, list)) and val:
        val = val[0]
    return val if isinstance(val, torch.Tensor) else None


def _scope(node) -> Tuple[str, str, str]:
    """(stack key, qualified path, module type) of the innermost module ``node`` ran in;
    empty for the model's own forward."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", "", ""
    key, (path, kind) = list(stack.items())[-1]
    path = path.replace("L['self'].", "").replace("L__self__.", "")
    kind = kind if isinstance(kind, str) else f"{kind.__module__}.{kind.__qualname__}"
    return key, path, kind


def _leaf(kind: str) -> bool:
    """A module archcalc maps, or PyTorch's own: its calls are one layer."""
    if not kind:
        return False
    if kind.startswith("torch.nn."):
        return True
    cls = _resolve(kind)
    return isinstance(cls, type) and any(base in MODULES for base in cls.__mro__)


class _Reader:
    def __init__(self, program, source: str):
        sig = program.graph_signature
        self.program, self.source = program, source
        self.params = dict(sig.inputs_to_parameters)
        self.buffers = dict(sig.inputs_to_buffers)
        self.user = set(sig.user_inputs)
        self.names: Dict[str, str] = {}         # graph node → IR name of its producer
        self.shapes: Dict[str, Tuple[int, ...]] = {}

    def run(self) -> Model:
        groups: List[Tuple[str, List[Any]]] = []   # (scope key, nodes) in execution order
        input_shape: Tuple[int, ...] = ()
        for node in self.program.graph.nodes:
            if node.op == "placeholder":
                if node.name in self.user:
                    self.names[node.name] = INPUT
                    input_shape = tuple(_value(node).shape)[1:]
                continue
            if node.op != "call_function" or _value(node) is None:
                continue
            if node.target is operator.getitem:
                continue        # a tuple's first tensor: read from its producer (below)
            key, path, kind = _scope(node)
            leaf = _leaf(kind)
            last = groups[-1] if groups else None
            if leaf and last and last[0] == key and any(
                    a in last[1] for a in node.all_input_nodes):
                last[1].append(node)
            else:
                groups.append((key if leaf else "", [node]))
        used: Counter = Counter()
        nodes = [self._node(members, used) for _, members in groups]
        return Model(self.source, input_shape, _collapse(nodes))

    # --- one layer ---------------------------------------------------------------------------
    def _data(self, node) -> Optional[str]:
        """The IR name a graph node's tensor comes from (a getitem reads its tuple's)."""
        if node.target is operator.getitem and node.args[1] == 0:
            node = node.args[0]
        return self.names.get(node.name)

    def _node(self, members: List[Any], used: Counter) -> Node:
        inside = {m.name for m in members}
        inputs: List[str] = []
        in_shapes: List[Tuple[int, ...]] = []
        params = buffers = 0
        for m in members:
            for a in m.all_input_nodes:
                if a.name in inside or (a.op == "call_function" and a.target is operator.getitem
                                        and a.args[0].name in inside):
                    continue
                if a.name in self.params:
                    params += _value(a).numel()
                elif a.name in self.buffers:
                    val = _value(a)
                    if val.is_floating_point() and \
                            not self.buffers[a.name].endswith("num_batches_tracked"):
                        buffers += val.numel()
                elif self._data(a) is not None:
                    inputs.append(self._data(a))
                    in_shapes.append(tuple(_value(a).shape)[1:])
        last = members[-1]
        shape = tuple(int(d) for d in _value(last).shape[1:])
        # the first call an op maps that holds (a Linear module that flattens first: the
        # linear), else the group's first call, opaque
        op, args, head = None, {}, members[0]
        for m in members:
            ops = ATEN.get(str(m.target), [])
            candidates = [(cls, lambda cls=cls, m=m: self._args(cls, m)) for cls in ops]
            op, args = _mapped(candidates, tuple(in_shapes), shape, params, buffers)
            if op is not None:
                head = m
                break
        _, path, kind = _scope(head)
        aten = str(head.target)
        short = aten.split(".")[1] if aten.startswith("aten.") else getattr(
            head.target, "__name__", aten)
        base = path if _leaf(kind) else f"{path}.{op or short}".lstrip(".")
        name = base if not used[base] else f"{base}_{used[base]}"
        used[base] += 1
        if op is None:
            op, args = "opaque", {"shape": list(shape), "params": params, "kind": aten}
        for m in members:
            self.names[m.name] = name
        return Node(name, op, args, tuple(inputs), shape, params, buffers, None, aten,
                    f"{name} ({aten})")

    @staticmethod
    def _args(cls, node) -> Dict[str, Any]:
        """``cls.from_aten`` on ``node``'s call: tensors None, their shapes alongside."""
        def plain(a):
            if isinstance(a, torch.fx.Node):
                return None
            if isinstance(a, (list, tuple)) and any(isinstance(x, torch.fx.Node) for x in a):
                return [plain(x) for x in a]
            return a

        def shape(a):
            if isinstance(a, torch.fx.Node):
                val = _value(a)
                return tuple(val.shape) if val is not None else None
            if isinstance(a, (list, tuple)) and any(isinstance(x, torch.fx.Node) for x in a):
                return [shape(x) for x in a]
            return None
        args = tuple(plain(a) for a in node.args)
        kwargs = {k: plain(v) for k, v in node.kwargs.items()}
        found = cls.from_aten(args, kwargs, tuple(shape(a) for a in node.args))
        if found is None:
            raise ValueError(f"{node.target} is not a {cls.name}")
        return found
