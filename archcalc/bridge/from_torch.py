"""A PyTorch nn.Module as the bridge's IR: traced with torch.fx, shapes from one forward pass.

Why torch.fx: ``symbolic_trace`` with shape propagation (``ShapeProp``, one batch-1 forward in
eval mode) takes about 1.3 s for ResNet-50 here, torch.export about 4 s; fx also keeps the
model's own module names, which the spec's layer names are. What it cannot capture is Python
control flow that depends on tensor values (``if x.sum() > 0:``): fx refuses it with a TraceError
or TypeError, which ``trace`` turns into one line.

The Tracer's leaf modules are those an op in archcalc/core/ops declares (``torch_modules``) and
PyTorch's own (fx's default); every other module is traced through, so a function it calls is
named by the module it runs in (``layer1.0.add``). The mapping from a module type or a function to
a spec op is the op classes' (``torch_modules``, ``torch_functions``, ``from_torch``); this file
only builds the registry from them and checks each mapping against what the trace saw: the op's
output shape on the traced input shapes, and its parameter and buffer counts, must equal the
model's, else the node is kept as an ``opaque`` layer (never dropped).
"""
from __future__ import annotations

import importlib
import operator  # noqa: F401  (registry strings name it)
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from archcalc.bridge.ir import INPUT, Model, Node
from archcalc.core.ops import OPS, ArgError, ShapeError
from archcalc.errors import ArchcalcError


def _resolve(dotted: str) -> Any:
    """``torch.nn.Conv2d`` → the object, or None where this PyTorch lacks it."""
    module, _, attr = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


def _registry() -> Tuple[Dict[type, List[type]], Dict[Any, List[type]]]:
    """Module type → op classes, and function (or ``method:NAME``) → op classes, in OPS order
    (gap before adaptive_avgpool: the first whose mapping holds wins)."""
    modules: Dict[type, List[type]] = {}
    functions: Dict[Any, List[type]] = {}
    for cls in OPS.values():
        for dotted in cls.torch_modules:
            found = _resolve(dotted)
            if found is not None:
                modules.setdefault(found, []).append(cls)
        for dotted in cls.torch_functions:
            found = dotted if dotted.startswith("method:") else _resolve(dotted)
            if found is not None:
                functions.setdefault(found, []).append(cls)
    return modules, functions


MODULES, FUNCTIONS = _registry()


def _module_ops(module: nn.Module) -> List[type]:
    """The op classes of ``module``'s type or its nearest registered base class."""
    for base in type(module).__mro__:
        if base in MODULES:
            return MODULES[base]
    return []


class _Tracer(torch.fx.Tracer):
    """fx's tracer with archcalc's leaf modules, recording the module each op runs in."""

    def __init__(self):
        super().__init__()
        self.scopes: Dict[str, str] = {}    # fx node name → qualified name of its module

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return bool(_module_ops(m)) or super().is_leaf_module(m, qualname)

    def path_of_module(self, mod: nn.Module) -> str:
        try:
            return super().path_of_module(mod)
        except NameError:
            # a module held but not registered (archcalc's join modules): it runs in the
            # scope of the module that calls it
            return self.scope.module_path

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        self.scopes[node.name] = self.scope.module_path
        return node


def trace(model: nn.Module, input_shape: Tuple[int, ...], source: str) -> Model:
    """The IR of ``model`` on a batch of one ``input_shape`` input. ArchcalcError (one line)
    where fx cannot trace it or the forward pass fails."""
    try:
        model.eval()
    except NotImplementedError:     # a torch.export program's module: its mode was fixed then
        pass
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except (torch.fx.proxy.TraceError, TypeError, NotImplementedError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArchcalcError(f"{source}: torch.fx cannot trace the model ({first}); data-"
                            "dependent control flow cannot be captured") from None
    # flat aliases for the modules and attributes the graph uses: a model's child may share a
    # name with an nn.Module method ("double", "eval"), which GraphModule's getattr would take
    aliases: Dict[str, str] = {}
    owned: Dict[str, Any] = {}
    for fx in graph.nodes:
        if fx.op in ("call_module", "get_attr"):
            alias = aliases.setdefault(fx.target, f"_m{len(aliases)}")
            owned[alias] = _attr(tracer.root, fx.target)
            fx.target = alias
    gm = torch.fx.GraphModule(owned, graph)
    gm.meta["archcalc_names"] = {v: k for k, v in aliases.items()}
    gm.graph.eliminate_dead_code()
    try:
        # fake tensors: shapes without arithmetic (ResNet-50's real forward is most of a second)
        from torch._subclasses.fake_tensor import FakeTensorMode
        fake = FakeTensorMode(allow_non_fake_inputs=True)
        with torch.no_grad():
            ShapeProp(gm, fake_mode=fake).propagate(torch.zeros((1,) + tuple(input_shape)))
    except Exception as exc:  # the user's forward pass: any error is bad input
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArchcalcError(f"{source}: the forward pass at input "
                            f"{'x'.join(map(str, input_shape))} failed: {first}") from None
    return Model(source, tuple(input_shape), _nodes(gm, tracer.scopes))


def _nodes(gm: torch.fx.GraphModule, scopes: Dict[str, str]) -> List[Node]:
    named = dict(gm.named_modules())
    qualified = gm.meta["archcalc_names"]
    names: Dict[str, str] = {}              # fx node → IR name (tensor producers only)
    used: Counter = Counter()
    out: List[Node] = []
    for fx in gm.graph.nodes:
        meta = fx.meta.get("tensor_meta")
        if _several(meta):
            meta = meta[0]      # several outputs (torch.sort): kept, opaque, by the first
        if fx.op == "placeholder":
            names[fx.name] = INPUT
            continue
        if fx.op in ("output", "get_attr") or not hasattr(meta, "shape"):
            continue
        inputs = tuple(names[a.name] for a in _tensor_args(fx) if a.name in names)
        in_shapes = tuple(_shape(a.meta["tensor_meta"]) for a in _tensor_args(fx)
                          if a.name in names)
        shape = _shape(meta)
        if fx.op == "call_module":
            module = named[fx.target]
            base, kind = qualified[fx.target], type(module).__name__
            params = sum(p.numel() for p in module.parameters())
            buffers = sum(b.numel() for n, b in module.named_buffers()
                          if b.is_floating_point() and not n.endswith("num_batches_tracked"))
            candidates = [(cls, lambda cls=cls: cls.from_torch(module))
                          for cls in _module_ops(module)]
        else:
            params = sum(_attr(gm, a.target).numel() for a in _tensor_args(fx)
                         if a.op == "get_attr" and isinstance(_attr(gm, a.target), nn.Parameter))
            buffers = 0
            key = f"method:{fx.target}" if fx.op == "call_method" else fx.target
            fname = str(fx.target) if fx.op == "call_method" else getattr(
                fx.target, "__name__", str(fx.target))
            kind = fx.target if fx.op == "call_method" else fname
            scope = scopes.get(fx.name, "")
            ops = FUNCTIONS.get(key, []) if _hashable(key) else []
            base = f"{scope}.{ops[0].name if ops else fname.strip('_')}".lstrip(".")
            plain = tuple(None if isinstance(a, torch.fx.Node) else a for a in fx.args)
            kw = {k: v for k, v in fx.kwargs.items() if not isinstance(v, torch.fx.Node)}
            candidates = [(cls, lambda cls=cls: cls.from_torch_call(plain, kw)) for cls in ops]
        name = base if not used[base] else f"{base}_{used[base]}"
        used[base] += 1
        op, args = _mapped(candidates, in_shapes, shape, params, buffers)
        if op is None:
            op, args = "opaque", {"shape": list(shape), "params": params, "kind": str(kind)}
        names[fx.name] = name
        out.append(Node(name, op, args, inputs, shape, params, buffers, None, str(kind),
                        f"{name} ({kind})"))
    return _collapse(out)


def _tensor_args(fx: torch.fx.Node) -> List[torch.fx.Node]:
    found: List[torch.fx.Node] = []
    torch.fx.node.map_arg((fx.args, fx.kwargs), lambda a: found.append(a))
    return [a for a in found if a.op == "get_attr" or hasattr(a.meta.get("tensor_meta"), "shape")
            or _several(a.meta.get("tensor_meta"))]


def _several(meta) -> bool:
    """Metadata of several tensors (TensorMetadata itself is a named tuple: it has a shape)."""
    return isinstance(meta, (tuple, list)) and not hasattr(meta, "shape") and bool(meta) \
        and hasattr(meta[0], "shape")


def _attr(root: nn.Module, target: str):
    """A module or tensor by its qualified name, reached through ``_modules`` (a child may be
    called "double" or "eval", as nn.Module's methods are)."""
    *path, last = target.split(".")
    for part in path:
        root = root._modules[part]
    for table in (root._modules, root._parameters, root._buffers):
        if last in table:
            return table[last]
    return getattr(root, last)


def _hashable(key: Any) -> bool:
    try:
        hash(key)
        return True
    except TypeError:
        return False


def _shape(meta) -> Tuple[int, ...]:
    if _several(meta):
        meta = meta[0]
    return tuple(int(d) for d in meta.shape[1:])


def _mapped(candidates, in_shapes, shape, params, buffers) -> Tuple[Optional[str], Dict]:
    """The first candidate op whose mapping holds: arguments it accepts, as many inputs as it
    takes, and the traced output shape, parameters and buffers on the traced inputs."""
    for cls, args_of in candidates:
        many = cls.inputs == "many"
        if (len(in_shapes) < 2) if many else (len(in_shapes) != 1):
            continue
        try:
            args = args_of()
            checked = {k: cls.args[k].check(v) for k, v in args.items()}
            for k, spec_arg in cls.args.items():
                checked.setdefault(k, spec_arg.default)
            op = cls(**checked)
            given = in_shapes if many else in_shapes[0]
            counts = op.counts(given, op.output_shape(given))
            if tuple(op.output_shape(given)) != shape or counts.params != params or \
                    counts.non_trainable != buffers:
                continue
        except (ValueError, ArgError, ShapeError, KeyError, TypeError, AttributeError):
            continue
        return cls.name, args
    return None, {}


def _collapse(nodes: List[Node]) -> List[Node]:
    """A function that is the only node in its module, whose name ends as the op does
    (archcalc's own join ``layer1.0.add`` running ``+``: ``layer1.0.add.add``), takes the
    module's name."""
    prefixes = Counter(n.name.rsplit(".", 1)[0] for n in nodes if "." in n.name)
    names = {n.name for n in nodes}
    renamed: Dict[str, str] = {}
    for n in nodes:
        parent, _, last = n.name.rpartition(".")
        if parent and parent.rsplit(".", 1)[-1] == last and prefixes[parent] == 1 and \
                parent not in names and not any(m.startswith(parent + ".") and m != n.name
                                                for m in names):
            renamed[n.name] = parent
    for n in nodes:
        n.name = renamed.get(n.name, n.name)
        n.location = f"{n.name} ({n.kind})"
        n.inputs = tuple(renamed.get(i, i) for i in n.inputs)
    return nodes
