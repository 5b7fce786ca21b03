"""The bridge's IR as a spec a person can read and edit.

The layout follows the model's own names: a row per top-level child (or per the first
``depth`` name components, joined by ``_``), and inside a row a named ``seq`` per module
level, so that every layer keeps its qualified name (``layer1.0.conv1``) and the spec's
PyTorch model has the source's module names. A layer takes the previous layer's output unless
its input is another: then a ``{from: NAME}`` comes first, NAME as short as the spec's
inside-out lookup allows. Joins (add, concat, mul) name all their inputs:
``add: [{from: bn3}, {from: downsample}]``. Arguments equal to the op's default are left out.

Repeated structure is written out in full (no blocks or stages are detected yet): exact, and
the numbers the spec gives are the model's, layer by layer.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Set, Tuple

import yaml

from archcalc.bridge.ir import INPUT, Model, Node
from archcalc.core.ops import OPS


def to_spec(model: Model, depth: int = 1, how: str = "torch.fx") -> str:
    """YAML text of a spec equivalent to ``model``: its header comment, input and layers."""
    writer = _Writer(model, max(1, depth))
    layers = writer.layers()
    shape = list(model.input_shape)
    opaque = model.opaque()
    head = [f"# Imported from {model.source} by `archcalc import` ({how}); "
            f"{len(model.nodes)} layers, named as the model names them."]
    if opaque:
        head.append(f"# {len(opaque)} opaque layers (no spec op says what they do: their "
                    "shapes and parameters are the model's, their MACs are not counted):")
        head += [f"#   {n.location}" for n in opaque]
    body = yaml.safe_dump({"name": str(model.source), "input": shape}, sort_keys=False,
                          default_flow_style=None, width=100)
    body += yaml.safe_dump({"layers": layers}, sort_keys=False, default_flow_style=None,
                           width=100, allow_unicode=True)
    return "\n".join(head) + "\n" + body


def _args(node: Node) -> Dict[str, Any]:
    """The node's arguments without those equal to the op's default."""
    cls = OPS.get(node.op)
    if cls is None:
        return dict(node.args)
    out = {}
    for key, value in node.args.items():
        arg = cls.args.get(key)
        try:
            same = arg is not None and arg.default is not None and \
                arg.check(value) == arg.check(arg.default)
        except ValueError:
            same = False
        if not same:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


class _Writer:
    def __init__(self, model: Model, depth: int):
        self.model, self.depth = model, depth
        self.written: Dict[str, str] = {INPUT: INPUT}    # IR name → the spec's dotted path
        self.done: Set[str] = set()                     # spec paths finished so far
        self.prev = INPUT                               # IR name of the last layer written

    # -- layout ------------------------------------------------------------------------------
    def layers(self) -> Dict[str, Any]:
        rows: Dict[str, Any] = {}
        for row, nodes in self._runs(self.model.nodes, lambda n: self._row_of(n)):
            name = self._unique(row, rows)
            node = nodes[0]
            if len(nodes) == 1 and node.name == name and node.inputs[:1] == (self.prev,) \
                    and OPS.get(node.op, OPS["relu"]).inputs == "one":
                # a row that is one layer: the op alone (the spec names its layer ROW.OP)
                args = _args(node)
                rows[name] = {node.op: args} if args else node.op
                self.written[node.name] = f"{name}.{node.op}"
                self.done.update({name, f"{name}.{node.op}"})
                self.prev = node.name
                continue
            rows[name] = self._sequence(nodes, name, [n.name.split(".")[self._row_len(n):]
                                                      for n in nodes])
            self.done.add(name)
        return rows

    def _row_len(self, node: Node) -> int:
        parts = node.name.split(".")
        return min(self.depth, len(parts))

    def _row_of(self, node: Node) -> str:
        return "_".join(node.name.split(".")[:self._row_len(node)])

    @staticmethod
    def _runs(items, key):
        """Consecutive items grouped by ``key``: [(key, [items])]."""
        runs: List[Tuple[Any, list]] = []
        for item in items:
            k = key(item)
            if runs and runs[-1][0] == k:
                runs[-1][1].append(item)
            else:
                runs.append((k, [item]))
        return runs

    @staticmethod
    def _unique(name: str, taken) -> str:
        if name not in taken:
            return name
        i = 2
        while f"{name}_{i}" in taken:
            i += 1
        return f"{name}_{i}"

    def _sequence(self, nodes: List[Node], path: str, rests: List[List[str]]) -> List[Any]:
        """The items of the container ``path``; ``rests`` are each node's name below it."""
        items: List[Any] = []
        taken: Set[str] = set()
        pairs = list(zip(nodes, rests))
        for first, run in self._runs(pairs, lambda p: p[1][0] if len(p[1]) > 1 else None):
            if first is None:                       # layers of this container itself
                for node, rest in run:
                    local = self._unique(rest[0] if rest else node.op, taken)
                    taken.add(local)
                    items += self._layer(node, path, local)
                continue
            local = self._unique(first, taken)
            taken.add(local)
            sub = f"{path}.{local}"
            inner = self._sequence([n for n, _ in run], sub, [r[1:] for _, r in run])
            items.append({"name": local, "seq": inner})
            self.done.add(sub)
        return items

    # -- one layer ---------------------------------------------------------------------------
    def _layer(self, node: Node, path: str, local: str) -> List[Any]:
        items: List[Any] = []
        mine = f"{path}.{local}"
        if OPS.get(node.op) is not None and OPS[node.op].inputs == "many":
            branches = [{"from": self._ref(i, f"{mine}.b{k + 1}")}
                        for k, i in enumerate(node.inputs)]
            items.append({"name": local, node.op: branches})
        else:
            if node.inputs and node.inputs[0] != self.prev:
                items.append({"from": self._ref(node.inputs[0], path)})
            items.append({node.op: dict(name=local, **_args(node))})
        self.written[node.name] = mine
        self.done.add(mine)
        self.prev = node.name
        return items

    def _ref(self, target: str, where: str) -> str:
        """The shortest name ``from:`` written in container ``where`` finds ``target`` by
        (graph.py's lookup: ``where.NAME``, then each enclosing container's, then ``NAME``)."""
        if target == INPUT:
            return "input"
        full = self.written[target]
        parts = full.split(".")
        scopes = [where.rsplit(".", i)[0] for i in range(where.count(".") + 1)]
        for cut in range(len(parts) - 1, -1, -1):
            name = ".".join(parts[cut:])
            found = next((t for t in [f"{s}.{name}" for s in scopes] + [name]
                          if t in self.done), None)
            if found == full:
                return name
        return full
