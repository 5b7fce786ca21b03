"""The bridge's IR as a spec a person can read and edit.

The layout follows the model's own names: a row per top-level child (or per the first
``depth`` name components, joined by ``_``), and inside a row a named ``seq`` per module
level, so that every layer keeps its qualified name (``layer1.0.conv1``) and the spec's
PyTorch model has the source's module names. A layer takes the previous layer's output unless
its input is another: then a ``{from: NAME}`` comes first, NAME as short as the spec's
inside-out lookup allows. Joins (add, concat, mul) name all their inputs:
``add: [{from: bn3}, {from: downsample}]``. Arguments equal to the op's default are left out.

Repeated structure becomes blocks and stages where it repeats exactly, else it is written out
in full; either way the numbers the spec gives are the model's, layer by layer.

- A row is a stage when all its layers sit in sub-containers named ``0, 1, ..., N-1`` (N >= 2,
  in that order), as torchvision's ``layer2.0``, ``layer2.1`` are. Each repeat's *signature* is
  its layers' names below the repeat, ops, argument names and non-integer values, and edges:
  ``input`` for the repeat's input (the layer before it), the relative name for a layer inside
  it. An edge to anything else (a skip from an earlier row) does not fit a block: plain rows.
- Repeats 1..N-1 must share one signature (the row's block); repeat 0 may share it or have
  another (a downsample branch): then it is a second block, called by ``first: {block: ...}``.
- A block is shared by every row whose repeats have its signature. The integer arguments whose
  values differ between its calls (anywhere in the model) become block arguments; positions
  with the same values at every call share one argument, named after the first such op
  argument (``out`` -> ``width``, else the argument's own name: ``stride``), numbered if taken.
  Each argument's default is its most common value, so calls name only what differs. The
  stage's ``args`` are the middle repeats' values (which must agree), ``first``/``last`` carry
  what repeat 0 / N-1 change. A stage passes its ``args`` to the first repeat too, so a first
  block that lacks one accepts it without using it (its own values are literal there).
  Anything that does not fit (middle repeats that disagree, an edge a body cannot name) leaves
  the row written out in full.
- Blocks are named after the row where they first appear: ``layer1_unit`` (the repeated
  block), ``layer2_first`` (a different first repeat); the IR has no container class names.
- Inside a body, ``from: input`` is the block call's input and other names are relative to
  the call (the lookup is inside-out, so ``from: bn2`` inside ``layer2.0`` is
  ``layer2.0.bn2``), so one body serves every repeat.
"""
from __future__ import annotations

from collections import Counter
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
    if writer.blocks:
        body += yaml.safe_dump({"blocks": writer.blocks}, sort_keys=False,
                               default_flow_style=None, width=100, allow_unicode=True)
    body += yaml.safe_dump({"layers": layers}, sort_keys=False, default_flow_style=None,
                           width=100, allow_unicode=True)
    return "\n".join(head) + "\n" + body


def _args(node: Node, subst: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """The node's arguments without those equal to the op's default; ``subst`` maps an
    argument to the block argument that carries it (written whatever its value)."""
    subst = subst or {}
    cls = OPS.get(node.op)
    if cls is None:
        return {k: subst.get(k, v) for k, v in node.args.items()}
    out = {}
    for key, value in node.args.items():
        if key in subst:
            out[key] = subst[key]
            continue
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
        self.blocks: Dict[str, Any] = {}                # the spec's blocks, as written
        self.root: Optional[str] = None                 # while writing a body: its call's path
        self.block_input = INPUT                        # ... and the IR name of its input
        self.subst: Dict[str, Dict[str, str]] = {}      # ... IR name → {op arg: block arg}

    # -- layout ------------------------------------------------------------------------------
    def layers(self) -> Dict[str, Any]:
        rows: Dict[str, Any] = {}
        runs = self._runs(self.model.nodes, lambda n: self._row_of(n))
        plans = _Stages(self, runs)
        for row, nodes in runs:
            name = self._unique(row, rows)
            stage = plans.stage(row) if name == row else None
            if stage is not None:
                rows[name] = {"stage": stage}
                self._stage_written(name, nodes)
                continue
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
            items.append({node.op: dict(name=local, **_args(node, self.subst.get(node.name)))})
        self.written[node.name] = mine
        self.done.add(mine)
        self.prev = node.name
        return items

    def _ref(self, target: str, where: str) -> str:
        """The shortest name ``from:`` written in container ``where`` finds ``target`` by
        (graph.py's lookup: ``where.NAME``, then each enclosing container's, then ``NAME``)."""
        if self.root is not None:
            return self._body_ref(target, where)
        if target == INPUT:     # the network's input, from any row (input is the row's own)
            return "/input"
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

    # -- blocks and stages -------------------------------------------------------------------
    def _stage_written(self, row: str, nodes: List[Node]) -> None:
        """Record a stage row's layers as the spec names them: ``row.K.REST``."""
        self.done.add(row)
        for node in nodes:
            full = node.name    # a stage row is a depth-1 row whose repeats are named 0..N-1
            self.written[node.name] = full
            parts = full.split(".")
            self.done.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
        self.prev = nodes[-1].name

    def body(self, nodes: List[Node], root: str, before: str,
             subst: Dict[str, Dict[str, str]]) -> List[Any]:
        """The items of a block body written from one of its calls (``root``, whose input is
        the IR node ``before``); the writer's state is left as it was. _NoFit if an edge
        cannot be said inside the body."""
        saved = (dict(self.written), set(self.done), self.prev)
        self.root, self.block_input, self.subst, self.prev = root, before, subst, before
        try:
            cut = root.count(".") + 1
            return self._sequence(nodes, root, [n.name.split(".")[cut:] for n in nodes])
        finally:
            self.written, self.done, self.prev = saved
            self.root, self.block_input, self.subst = None, INPUT, {}

    def _body_ref(self, target: str, where: str) -> str:
        """``from:`` inside a body: ``input``, or a name that the lookup finds inside the call
        itself (so it means the same layer in every repeat)."""
        if target == self.block_input:
            return "input"
        full = self.written.get(target, "")
        root = self.root + "."
        if not full.startswith(root):
            raise _NoFit(target)
        parts = full[len(root):].split(".")
        scopes = [s for s in (where.rsplit(".", i)[0] for i in range(where.count(".") + 1))
                  if s + "." == root or s.startswith(root)]
        for cut in range(len(parts) - 1, -1, -1):
            name = ".".join(parts[cut:])
            found = next((f"{s}.{name}" for s in scopes if f"{s}.{name}" in self.done), None)
            if found == full:
                return name
        raise _NoFit(target)


class _NoFit(Exception):
    """Something a block body cannot say: that row is written out in full."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _arg_name(key: str) -> str:
    return {"out": "width"}.get(key, key)


class _Stages:
    """Which rows are stages, the blocks they call and those blocks' arguments (module
    docstring). ``stage(row)`` is the row's ``stage:`` mapping, or None: written in full."""

    def __init__(self, writer: _Writer, runs):
        self.writer = writer
        self.rows: Dict[str, list] = {}          # row → [(nodes, prefix, before, sig, values)]
        self.names: Dict[tuple, str] = {}        # signature → block name
        self.calls: Dict[tuple, list] = {}       # signature → every call's values
        self.args: Dict[tuple, List[Tuple[str, Any]]] = {}    # signature → [(arg, default)]
        self.where: Dict[tuple, Dict[str, tuple]] = {}        # signature → {arg: (rel, key)}
        self.subst: Dict[tuple, Dict[str, Dict[str, str]]] = {}  # signature → {rel: {key: arg}}
        self.bodies: Dict[tuple, Optional[list]] = {}
        before = INPUT
        for row, nodes in runs:
            repeats = self._repeats(row, nodes, before) if writer.depth == 1 else None
            before = nodes[-1].name
            if repeats is None:
                continue
            main = repeats[-1][3]
            if any(r[3] != main for r in repeats[1:]):
                continue
            self.rows[row] = repeats
            for k, rep in enumerate(repeats):
                sig = rep[3]
                self.names.setdefault(sig, f"{row}_unit" if sig == main else f"{row}_first")
                self.calls.setdefault(sig, []).append(rep[4])
        for sig, calls in self.calls.items():
            self._arguments(sig, calls)

    def _repeats(self, row: str, nodes: List[Node], before: str):
        groups = _Writer._runs(nodes, lambda n: n.name.split(".")[1]
                               if n.name.count(".") >= 2 and n.name.split(".")[0] == row
                               else None)
        if len(groups) < 2 or [k for k, _ in groups] != [str(i) for i in range(len(groups))]:
            return None
        repeats = []
        for key, members in groups:
            prefix = f"{row}.{key}"
            sig, values = self._signature(members, prefix, before)
            if sig is None:
                return None
            repeats.append((members, prefix, before, sig, values))
            before = members[-1].name
        return repeats

    @staticmethod
    def _signature(nodes: List[Node], prefix: str, before: str):
        """(signature, {(rel, key): int value}) of one repeat, or (None, None)."""
        inside = {n.name for n in nodes}
        cut = len(prefix) + 1
        sig, values = [], {}
        for node in nodes:
            edges = []
            for i in node.inputs:
                if i == before:
                    edges.append("input")
                elif i in inside:
                    edges.append(i[cut:])
                else:
                    return None, None
            rel = node.name[cut:]
            ints = tuple(k for k, v in node.args.items() if _is_int(v))
            lit = tuple((k, repr(v)) for k, v in node.args.items() if not _is_int(v))
            values.update({(rel, k): node.args[k] for k in ints})
            sig.append((rel, node.op, ints, lit, tuple(edges)))
        return tuple(sig), values

    def _arguments(self, sig, calls) -> None:
        """Block arguments: the positions whose values differ between calls, one argument
        per distinct vector of values, its default the most common value."""
        vectors: Dict[tuple, List[tuple]] = {}
        for pos in calls[0]:
            vector = tuple(c[pos] for c in calls)
            if len(set(vector)) > 1:
                vectors.setdefault(vector, []).append(pos)
        args, where, subst = [], {}, {}
        for vector, positions in vectors.items():
            base = _arg_name(positions[0][1])
            name, i = base, 2
            while name in where or name in ("name", "block", "cin", "hin", "win"):
                name, i = f"{base}{i}", i + 1
            default = Counter(vector).most_common(1)[0][0]
            args.append((name, default))
            where[name] = positions[0]
            for rel, key in positions:
                subst.setdefault(rel, {})[key] = name
        self.args[sig], self.where[sig], self.subst[sig] = args, where, subst

    def _values(self, sig, values) -> Dict[str, Any]:
        return {a: values[self.where[sig][a]] for a, _ in self.args[sig]}

    def _block(self, sig, rep) -> Optional[str]:
        """The block's name, its body written (once) from the call ``rep``; None if it cannot
        be written."""
        if sig not in self.bodies:
            nodes, prefix, before = rep[0], rep[1], rep[2]
            cut = len(prefix) + 1
            subst = {n.name: self.subst[sig][n.name[cut:]] for n in nodes
                     if n.name[cut:] in self.subst[sig]}
            try:
                self.bodies[sig] = self.writer.body(nodes, prefix, before, subst)
            except _NoFit:
                self.bodies[sig] = None
        body = self.bodies[sig]
        if body is None:
            return None
        name = self.names[sig]
        if name not in self.writer.blocks:
            entry: Dict[str, Any] = {}
            if self.args[sig]:
                entry["args"] = [{a: d} for a, d in self.args[sig]]
            entry["body"] = body
            self.writer.blocks[name] = entry
        return name

    def stage(self, row: str) -> Optional[Dict[str, Any]]:
        repeats = self.rows.get(row)
        if repeats is None:
            return None
        main = repeats[-1][3]
        defaults = dict(self.args[main])
        values = [self._values(r[3], r[4]) for r in repeats]
        middle = values[1:-1] or values[1:]
        if any(v != middle[0] for v in middle):
            return None
        args = {a: v for a, v in middle[0].items() if v != defaults[a]}
        last = {a: v for a, v in values[-1].items() if v != args.get(a, defaults[a])}
        name = self._block(main, repeats[-1])
        if name is None:
            return None
        first: Dict[str, Any] = {}
        if repeats[0][3] != main:
            other = dict(self.args[repeats[0][3]])
            name0 = self._block(repeats[0][3], repeats[0])
            if name0 is None:
                return None
            for a in args:      # the stage passes its args to every repeat: accept them
                if a not in other:
                    other[a] = defaults[a]
                    self.args[repeats[0][3]].append((a, defaults[a]))
                    self.writer.blocks[name0].setdefault("args", []).append({a: defaults[a]})
            first["block"] = name0
            defaults0 = other
        else:
            defaults0 = defaults
        first.update({a: v for a, v in values[0].items()
                      if a in self.where[repeats[0][3]] and v != args.get(a, defaults0[a])})
        stage: Dict[str, Any] = {"block": name, "repeat": len(repeats)}
        for key, part in (("args", args), ("first", first), ("last", last)):
            if part:
                stage[key] = part
        return stage
