"""The ONNX importer: an ``.onnx`` file read with the ``onnx`` package alone (no runtime) into
the bridge's IR (``ir.Model``).

The file is checked (``onnx.checker``), its shapes inferred (``onnx.shape_inference``, with the
input's dimensions fixed from ``--input`` where the file leaves them open), and each node that
computes on the data becomes one IR node. Which spec op a node is, is the op's own business:
each op class declares the ONNX op_types it imports from (``onnx_types``) and reads a node's
arguments (``from_onnx``); this module only looks the op_type up. A node no op expresses, or one
whose mapped op does not reproduce the shape and parameters ONNX gives it, becomes an
``opaque`` node (the traced shape and parameter count, no MACs): never dropped.

Nodes that compute only on constants or on shapes (Constant, Shape, Gather of a shape, the
Concat that builds a Reshape's target) are folded into constants with onnx's reference
evaluator and are no layers. A constant vector added to a MatMul (or a bias-less Conv) is that
layer's bias. ONNX does not tell parameters from buffers: a node's floating-point initializers
are its parameters, except where its op counts some as state (BatchNorm's mean and variance).
"""
from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional, Tuple

from archcalc.bridge.ir import INPUT, Model, Node
from archcalc.core.ops import OPS, ArgError, ShapeError
from archcalc.errors import ArchcalcError

Shape = Tuple[int, ...]

# The ONNX op_type -> op class lookup, built from the ops' own declarations.
ONNX_OPS: Dict[str, type] = {}
for _cls in OPS.values():
    for _type in _cls.onnx_types:
        if _type in ONNX_OPS:
            raise RuntimeError(f"ONNX op_type {_type} is declared by both "
                               f"{ONNX_OPS[_type].name} and {_cls.name}")
        ONNX_OPS[_type] = _cls

# Whose outputs describe the data's shape, not its values: never layers.
_SHAPE_OPS = ("Shape", "Size")
_SEGMENT = re.compile(r"[^A-Za-z0-9_-]")


def load(path: str, input_shape: Optional[Shape] = None) -> Model:
    """The IR of the ONNX file at ``path``; ``input_shape`` (C×H×W or F, batch left out)
    fixes the input's dimensions where the file leaves them open. ArchcalcError, one line, for
    a file that is missing, not ONNX, fails the checker or has open dimensions and no shape."""
    onnx = _onnx()
    model = _read(onnx, path)
    graph = model.graph
    label = os.path.basename(path)
    consts_names = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in consts_names]
    if len(inputs) != 1:
        raise ArchcalcError(f"{path}: the model has {len(inputs)} inputs "
                            f"({', '.join(i.name for i in inputs)}); archcalc imports models "
                            "with one")
    chw = _fix_input(inputs[0], graph, label, path, input_shape)
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                  data_prop=True)
    except Exception as exc:  # onnx raises InferenceError and others, version by version
        raise ArchcalcError(f"{path}: ONNX shape inference fails: {_one_line(exc)}") from None
    return _Importer(onnx, model.graph, path, inputs[0].name, chw).run()


def _onnx():
    try:
        import onnx
        import onnx.reference  # noqa: F401  (folds shape computations)
    except ImportError:
        raise ArchcalcError("reading .onnx files needs the onnx package: "
                            "pip install 'archcalc[onnx]'") from None
    return onnx


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("…" if len(text) > 300 else "") or type(exc).__name__


def _read(onnx, path: str):
    if not os.path.isfile(path):
        raise ArchcalcError(f"{path}: no such file")
    try:
        model = onnx.load(path)
    except Exception as exc:  # DecodeError for a corrupt or truncated file, OSError, ...
        raise ArchcalcError(f"{path}: not a readable ONNX file ({type(exc).__name__}: "
                            f"{_one_line(exc)})") from None
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # ValidationError
        raise ArchcalcError(f"{path}: the ONNX checker refuses the model: "
                            f"{_one_line(exc)}") from None
    return model


def _fix_input(value_info, graph, label: str, path: str, given: Optional[Shape]) -> Shape:
    """The input's shape without its batch, every dimension fixed in the graph: an open batch
    is 1 (archcalc counts per image), an open C, H, W or F comes from ``given``."""
    dims = value_info.type.tensor_type.shape.dim
    if len(dims) not in (2, 4):
        raise ArchcalcError(f"{path}: the input '{value_info.name}' is {len(dims)}-D; archcalc "
                            "imports N×C×H×W images or N×F vectors")
    want = "CxHxW" if len(dims) == 4 else "F"
    if given is not None and len(given) != len(dims) - 1:
        raise ArchcalcError(f"{path}: --input {'x'.join(map(str, given))} does not fit the "
                            f"model's {len(dims)}-D input; give --input {want}")
    opened = [d.dim_param or "?" for d in dims[1:] if not d.HasField("dim_value")]
    if opened and given is None:
        batch = [dims[0].dim_param or "batch"] if not dims[0].HasField("dim_value") else []
        raise ArchcalcError(f"{label} has dynamic dimensions ({', '.join(batch + opened)}); "
                            f"give --input {want}")
    for i, d in enumerate(dims[1:]):
        if d.HasField("dim_value") and given is not None and d.dim_value != given[i]:
            raise ArchcalcError(f"{path}: the model's input is "
                                f"{'x'.join(str(x.dim_value) for x in dims[1:])}, not "
                                f"--input {'x'.join(map(str, given))}")
    fixed = (1,) + tuple(given if given is not None else (d.dim_value for d in dims[1:]))
    if any(n < 1 for n in fixed):
        raise ArchcalcError(f"{path}: the input's dimensions must be positive, got "
                            f"{'x'.join(map(str, fixed[1:]))}")
    for d, n in zip(dims, fixed):
        d.Clear()
        d.dim_value = n
    # shapes the exporter wrote for the open dimensions would contradict the fixed ones
    del graph.value_info[:]
    for out in graph.output:
        out.type.tensor_type.ClearField("shape")
    return fixed[1:]


class _Importer:
    """One pass over the nodes in their (topological) order."""

    def __init__(self, onnx, graph, path: str, input_name: str, chw: Shape):
        self.onnx, self.graph, self.path, self.chw = onnx, graph, path, chw
        from onnx import numpy_helper
        self.consts: Dict[str, Any] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        floating = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                    onnx.TensorProto.BFLOAT16}
        self.weights = {i.name for i in graph.initializer if i.data_type in floating}
        self.counted: set = set()     # initializers already counted (a shared weight once)
        self.shapes: Dict[str, Shape] = {}
        for vi in list(graph.value_info) + list(graph.input) + list(graph.output):
            dims = vi.type.tensor_type.shape.dim
            if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
                self.shapes[vi.name] = tuple(d.dim_value for d in dims)
        self.producer: Dict[str, Node] = {}     # data tensor -> the IR node that makes it
        self.input_name = input_name
        self.uses: Dict[str, int] = {}
        for node in graph.node:
            for name in node.input:
                self.uses[name] = self.uses.get(name, 0) + 1
        self.in_shapes: Dict[int, Tuple[Shape, ...]] = {}   # id(Node) -> its data inputs' shapes
        self.paths: Dict[int, Tuple[List[str], str]] = {}   # id(Node) -> (module path, own name)

    def run(self) -> Model:
        nodes: List[Node] = []
        for index, node in enumerate(self.graph.node):
            data = [n for n in node.input if n and self._is_data(n)]
            if not data or node.op_type in _SHAPE_OPS:
                self._fold(node)
                continue
            if self._folds_bias(node, data):
                continue
            nodes.append(self._node(node, index, data))
        for n in nodes:
            self._check(n)
        self._name(nodes)
        return Model(source=self.path, input_shape=self.chw, nodes=nodes)

    def _is_data(self, tensor: str) -> bool:
        return tensor == self.input_name or tensor in self.producer

    # -- constants and shape computations ----------------------------------------------------
    def _fold(self, node) -> None:
        """Evaluate a node on constants (or a Shape of a tensor whose shape is fixed) so that a
        later Reshape or Resize reads its target as a constant; leave it where it cannot be."""
        import numpy as np
        if node.op_type == "Shape" and node.input[0] in self.shapes and not any(
                a.name in ("start", "end") for a in node.attribute):
            self.consts[node.output[0]] = np.array(self.shapes[node.input[0]], dtype=np.int64)
            return
        if not all(not n or n in self.consts for n in node.input):
            return
        try:
            from onnx.reference import ReferenceEvaluator
            feeds = {n: self.consts[n] for n in node.input if n}
            results = ReferenceEvaluator(node).run(None, feeds)
        except Exception:   # an op the reference evaluator lacks: the consumer stays opaque
            return
        for name, value in zip(node.output, results):
            self.consts[name] = np.asarray(value)

    def _folds_bias(self, node, data: List[str]) -> bool:
        """An Add of a constant vector to a layer that has no bias yet and is read by nothing
        else (PyTorch's Linear exported as MatMul + Add): that layer's bias."""
        if node.op_type != "Add" or len(node.input) != 2 or len(data) != 1:
            return False
        (tensor,) = data
        bias = self.consts.get(node.input[1] if node.input[0] == tensor else node.input[0])
        layer = self.producer.get(tensor)
        if bias is None or layer is None or layer.args.get("bias") is not False or \
                self.uses.get(tensor) != 1 or bias.size != layer.out_shape[0] or \
                node.output[0] not in self.shapes or \
                self.shapes[node.output[0]][1:] != layer.out_shape:
            return False
        layer.args["bias"] = True
        layer.params += self._weights(node)
        layer.kind += "+Add"
        self.producer[node.output[0]] = layer
        return True

    def _weights(self, node) -> int:
        total = 0
        for name in node.input:
            if name in self.weights and name not in self.counted:
                self.counted.add(name)
                total += int(self.consts[name].size)
        return total

    # -- one layer ---------------------------------------------------------------------------
    def _node(self, node, index: int, data: List[str]) -> Node:
        for out in node.output[:1]:
            if out not in self.shapes:
                raise ArchcalcError(f"{self.path}: node '{node.name or index}' "
                                    f"({node.op_type}): ONNX shape inference gives no static "
                                    f"shape for its output '{out}'")
        in_shapes = tuple(self._shape(n) for n in data)
        out_shape = self.shapes[node.output[0]][1:]
        attrs = {a.name: _attr(self.onnx, a) for a in node.attribute}
        cls = ONNX_OPS.get(node.op_type)
        args = cls.from_onnx(node, attrs, self.consts, in_shapes) if cls else None
        # names are given once all nodes are known (_name): inputs refer to the nodes meanwhile
        ir = Node(name="", op=cls.name if args is not None else "opaque",
                  args=dict(args) if args is not None else {},
                  inputs=tuple(INPUT if n == self.input_name else self.producer[n]  # type: ignore
                               for n in data),
                  out_shape=out_shape, params=self._weights(node), kind=node.op_type,
                  location=f"{node.name or f'node {index}'} ({node.op_type})")
        self.in_shapes[id(ir)] = in_shapes
        self.paths[id(ir)] = _path(node, index)
        for out in node.output:
            if out:
                self.producer[out] = ir
        return ir

    def _shape(self, tensor: str) -> Shape:
        if tensor not in self.shapes:
            raise ArchcalcError(f"{self.path}: ONNX shape inference gives no static shape for "
                                f"'{tensor}'")
        return self.shapes[tensor][1:]

    def _check(self, n: Node) -> None:
        """Keep a mapped op only where it reproduces the shape and the parameters (with its
        buffers) that ONNX gives the node; otherwise it is opaque, as an unmapped node is.
        ONNX holds no split of parameters from buffers: where they check, the op's is taken."""
        if n.op != "opaque":
            counts = _counts(OPS[n.op], n.args, self.in_shapes[id(n)], n.out_shape)
            if counts is not None and counts.params + counts.non_trainable == n.params:
                n.params, n.buffers = counts.params, counts.non_trainable
                return
        n.op = "opaque"
        n.args = {"shape": list(n.out_shape), "params": n.params, "kind": n.kind}

    # -- names -------------------------------------------------------------------------------
    def _name(self, nodes: List[Node]) -> None:
        """Module paths where the exporter wrote them (``/layer1/layer1.0/conv1/Conv`` is
        ``layer1.0.conv1``); where several nodes share a path, or a path holds others (a
        block's own Add), each takes its op's name under it (``layer1.0.add``)."""
        paths = {id(n): ".".join(self.paths[id(n)][0]) for n in nodes}
        shared: Dict[str, int] = {}
        for p in paths.values():
            shared[p] = shared.get(p, 0) + 1
        prefixes = {".".join(self.paths[id(n)][0][:k]) for n in nodes
                    for k in range(1, len(self.paths[id(n)][0]))}
        taken: set = set()
        for n in nodes:
            segments, own = self.paths[id(n)]
            path = paths[id(n)]
            if not path or shared[path] > 1 or path in prefixes:
                segments = segments + [own]
            name = ".".join(segments)
            base, k = name, 1
            while name in taken or name == INPUT:
                name = f"{base}_{k}"
                k += 1
            taken.add(name)
            n.name = name
        for n in nodes:
            n.inputs = tuple(i if i == INPUT else i.name for i in n.inputs)  # type: ignore


def _path(node, index: int) -> Tuple[List[str], str]:
    """(module path segments, the node's own name) from its ONNX name, each segment cleaned to
    a spec name. PyTorch's exporter writes one scope per module, a child's scope sometimes
    qualified by its parent's (``/layer1/layer1.0/conv1/Conv``), the op type last."""
    raw = node.name or f"{node.op_type}_{index}"
    parts = [p for p in raw.split("/") if p]
    if len(parts) <= 1:
        return [], _segment(raw.replace(".", "_")).lower() if not node.name else \
            _segment(raw.replace(".", "_"))
    segments: List[str] = []
    for scope in parts[:-1]:
        if segments and scope.startswith(".".join(segments) + "."):
            segments = scope.split(".")
        else:
            segments.extend(scope.split("."))
    return [_segment(s) for s in segments if s], _segment(parts[-1]).lower()


def _segment(text: str) -> str:
    cleaned = _SEGMENT.sub("_", text) or "_"
    return cleaned if cleaned[0] != "-" else "_" + cleaned


def _attr(onnx, attribute) -> Any:
    value = onnx.helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
    return value


def _counts(cls, given: Dict[str, Any], in_shapes: Tuple[Shape, ...], out_shape: Shape):
    """The op's counts for these arguments and inputs, or None where the op refuses them or
    gives another output shape than ONNX."""
    try:
        values = {key: arg.check(given[key]) if key in given else
                  (arg.check(arg.default) if arg.default is not None else None)
                  for key, arg in cls.args.items()}
        op = cls(**values)
        shape_in = in_shapes if cls.inputs == "many" else in_shapes[0]
        if op.output_shape(shape_in) != out_shape:
            return None
        return op.counts(shape_in, out_shape)
    except (ArgError, ShapeError, KeyError, IndexError, TypeError):
        return None

