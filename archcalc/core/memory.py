"""How much memory a network needs, from the analysis' shapes alone (no torch).

Two estimates live here.

1. A deliberately simple upper bound, :func:`estimate`, for refusing a spec before anything
   is allocated (``verify``, ``build_model``, ``train`` and ``sweep`` use it): float32
   throughout; every layer's parameters and buffers; the input and every layer's output at the
   batch size all alive at once; training adds a gradient and two Adam moments per parameter
   and a gradient per activation. It can only be too high, which is what a refusal wants.

2. The refined model, :func:`network_memory`, that ``archcalc table --memory`` shows. Data
   flow::

       Graph (core/graph.py: rows → Groups → Layers, Refs for ``from:``, ``referenced``)
         │
         ├─ per layer: output numbers per image, ``op.state_tensors`` → LayerMemory
         │
         ├─ inference: _Inference walks the Group tree exactly as pytorch/build.py's modules
         │   run it (Sequence, Branches, Network, the Tape) and counts references to each
         │   tensor's storage. A module call's arguments hold its input until it returns; a
         │   sequence drops a tensor when it moves on to the next step's output; a branches
         │   container holds every branch's output until its join has run; the tape holds a
         │   ``from:`` target until the pass ends; a view op (``op.view``: flatten, identity,
         │   a crop, eval-mode dropout) shares its input's storage. No op runs in place (every
         │   to_torch builds out-of-place modules), and ``act:`` is a layer (a module) of its
         │   own. The peak of the live bytes over that walk is the inference activation peak.
         │
         ├─ training: what autograd saves, from each op's ``saved`` (core/ops: derivatives.yaml
         │   knowledge, one op in one place): the tensors it names (a layer's inputs or its
         │   output, through views to the storage, each counted once) and its extras (max
         │   pool's int64 indices, dropout's noise, BatchNorm's float32 statistics). A step is
         │   walked layer by layer (_training_step): the forward keeps what is saved and what
         │   the Tape holds; the backward, last layer first, frees a node's saved tensors once
         │   it has run, holds each activation gradient from its last consumer's backward to
         │   its producer's, and accumulates the parameters' gradients. Its peak, plus the
         │   weights and the optimizer's state (SGD with momentum: one buffer per parameter;
         │   Adam: two), is the training figure.
         │
         └─ disk: the state_dict that torch.save writes: each tensor's bytes in a zip entry
             aligned to 64 bytes, its pickled key, the archive's fixed records.

   Every number is an int of bytes (or elements); views/ formats them.

Torch-free, like the rest of core/. archcalc/pytorch/memory.py measures the same quantities
with torch.profiler, and the tests hold the two against each other.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from math import prod
from typing import Dict, List, Optional, Tuple

from archcalc.errors import ArchcalcError, Position
from archcalc.core.graph import INPUT, Group, Layer, Ref

BYTES = 4   # float32

# The data types a memory or roofline estimate may assume, and the bytes of one number in each.
DTYPES = {"fp32": 4, "bf16": 2, "fp16": 2}


def dtype_bytes(name: str, where: str = "--dtype") -> int:
    """The bytes of one number in the data type ``name``; one clear line for an unknown one."""
    if name not in DTYPES:
        raise ArchcalcError(f"unknown data type {name!r}; known: {', '.join(DTYPES)}",
                            Position(where))
    return DTYPES[name]


@dataclass
class MemoryNeed:
    params_bytes: int
    activation_bytes: int
    batch: int

    @property
    def total(self) -> int:
        return self.params_bytes + self.activation_bytes


def estimate(graph, batch: int = 1, training: bool = False, heads: bool = False) -> MemoryNeed:
    """The memory a forward pass (``training``: a training step) of ``graph`` needs."""
    layers = graph.layers(heads and graph.with_heads)
    params = sum(l.counts().params + l.counts().non_trainable for l in layers)
    activations = prod(graph.input_shape) + sum(prod(l.out_shape) for l in layers)
    params_bytes = params * BYTES * (4 if training else 1)
    activation_bytes = activations * batch * BYTES * (2 if training else 1)
    return MemoryNeed(params_bytes, activation_bytes, batch)


def available_bytes() -> Optional[int]:
    """The memory this machine can give now: MemAvailable of /proc/meminfo (Linux), else the
    free physical pages; None when neither can be read (the check is then skipped)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def gigabytes(count: int) -> str:
    return f"{count / 1e9:,.1f} GB" if count >= 1e8 else f"{count / 1e6:,.1f} MB"


def refusal(need: MemoryNeed, available: Optional[int], where: str = "") -> Optional[str]:
    """The one line that refuses ``need`` when more than ``available``; None when it fits."""
    if available is None or need.total <= available:
        return None
    return (f"needs about {gigabytes(need.total)} for parameters and activations at batch "
            f"{need.batch:,}; {gigabytes(available)} available{where}")


# --- the refined model ----------------------------------------------------------------------

# optimizer → buffers it keeps per parameter (torch.optim.SGD with momentum: momentum_buffer;
# Adam: exp_avg and exp_avg_sq; amsgrad would add a third)
OPTIMIZERS = {"sgd": 1, "adam": 2}


def check_batch(batch: int, where: str = "--batch-size") -> int:
    """``batch``, or one clear line when it is not a positive whole number."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ArchcalcError(f"the batch size must be a positive whole number, got {batch!r}",
                            Position(where))
    return batch


@dataclass(frozen=True)
class LayerMemory:
    """One layer's share: its output (per image, and in bytes at the batch and data type)
    and its parameters and buffers (the state_dict's tensors) in bytes."""

    name: str
    activation_elements: int        # the output's numbers, one image
    activation_bytes: int           # at the batch size and data type
    param_bytes: int                # state_dict tensors (parameters and buffers)


@dataclass(frozen=True)
class Training:
    """A training step's peak with one optimizer (bytes), and its parts. The peak is not the
    parts' sum: the backward frees saved activations as it makes gradients, and the peak is
    where the two together are highest (see _training_step)."""

    optimizer: str
    weights: int                    # parameters and buffers, alive throughout
    optimizer_state: int            # alive throughout (after the first step)
    gradients: int                  # one per parameter, at the end of the backward
    saved: int                      # what autograd keeps for the backward (input included)
    activations: int                # the peak of saved activations + all gradients

    @property
    def total(self) -> int:
        return self.weights + self.optimizer_state + self.activations


@dataclass
class NetworkMemory:
    """What ``table --memory`` reports: per layer, and for the network at a batch and dtype."""

    batch: int
    dtype: str
    layers: List[LayerMemory]
    input_bytes: int
    param_bytes: int                # parameters and buffers (what a model holds)
    trainable_bytes: int            # parameters only (what gradients and optimizers copy)
    inference_peak: int             # activations alive at once in a no-grad forward, input too
    training: Dict[str, Training] = field(default_factory=dict)
    disk_bytes: int = 0
    rows: List[LayerMemory] = field(default_factory=list)   # per spec row: its output, its state

    @property
    def bytes_per_number(self) -> int:
        return DTYPES[self.dtype]

    @property
    def inference_total(self) -> int:
        return self.param_bytes + self.inference_peak

    def to_dict(self) -> dict:
        """The JSON contract's ``memory`` section: every figure in bytes."""
        return {
            "batch": self.batch, "dtype": self.dtype, "bytes_per_number": self.bytes_per_number,
            "input_bytes": self.input_bytes, "param_bytes": self.param_bytes,
            "trainable_bytes": self.trainable_bytes,
            "inference": {"activation_peak": self.inference_peak,
                          "total": self.inference_total},
            "training": {name: dict(asdict(t), total=t.total)
                         for name, t in self.training.items()},
            "disk_bytes": self.disk_bytes,
            "rows": [asdict(row) for row in self.rows],
            "layers": [asdict(layer) for layer in self.layers],
        }


def _out_elements(layer: Layer) -> int:
    return prod(layer.out_shape)


def _in_shapes(layer: Layer):
    return layer.in_shapes if layer.is_join else layer.in_shape


def state_tensors(layer: Layer, size: int) -> List[int]:
    """The bytes of each tensor of ``layer``'s state_dict at ``size`` bytes a number."""
    return [n * (each or size) for n, each in layer.op.state_tensors(_in_shapes(layer),
                                                                     layer.out_shape)]


def layer_memory(layer: Layer, batch: int, size: int) -> LayerMemory:
    elements = _out_elements(layer)
    return LayerMemory(layer.name, elements, elements * batch * size,
                       sum(state_tensors(layer, size)))


class _Heap:
    """Storages by id with reference counts; the live bytes and their peak."""

    def __init__(self):
        self.size: Dict[int, int] = {}
        self.refs: Dict[int, int] = {}
        self.live = self.peak = 0

    def new(self, nbytes: int) -> int:
        sid = len(self.size)
        self.size[sid], self.refs[sid] = nbytes, 1
        self.live += nbytes
        self.peak = max(self.peak, self.live)
        return sid

    def hold(self, sid: int) -> int:
        self.refs[sid] += 1
        return sid

    def drop(self, sid: int) -> None:
        self.refs[sid] -= 1
        if self.refs[sid] == 0:
            self.live -= self.size[sid]


class _Inference:
    """A no-grad forward pass of the built model (pytorch/build.py), as references to storages.

    Mirrors the containers line by line: ``Sequence.forward`` rebinds ``x`` after each step,
    ``Branches.forward`` passes the list of its branches' outputs to the join, ``_Node._run``
    puts a referenced output on the tape, ``Network.forward`` clears the tape at the end, and
    ``nn.Module.__call__`` holds its arguments until ``forward`` returns."""

    def __init__(self, graph, batch: int, size: int):
        self.heap = _Heap()
        self.tape: Dict[str, int] = {}
        self.referenced = graph.referenced
        self.batch, self.size = batch, size

    def network(self, graph) -> int:
        x = self.heap.new(prod(graph.input_shape) * self.batch * self.size)  # the caller's
        if INPUT in self.referenced:
            self.tape[INPUT] = self.heap.hold(x)
        cur = self.heap.hold(x)
        for row in graph.rows:
            out = self.group(row.group, cur)
            self.keep(row.name, out)
            self.heap.drop(cur)
            cur = out
        for sid in self.tape.values():      # outputs.clear() in the finally
            self.heap.drop(sid)
        return self.heap.peak

    def keep(self, path: str, sid: int) -> None:
        if path in self.referenced:
            self.tape[path] = self.heap.hold(sid)

    def node(self, node, x: int) -> int:
        if isinstance(node, Layer):
            out = self.layer(node, (x,))
            self.keep(node.name, out)
        else:
            out = self.group(node, x)
            self.keep(node.path, out)
        return out

    def group(self, group: Group, x: int) -> int:
        self.heap.hold(x)               # the module call's arguments
        if group.join is None:
            cur = self.heap.hold(x)
            for child in group.children:
                out = (self.heap.hold(self.tape[child.target]) if isinstance(child, Ref)
                       else self.node(child, cur))
                self.heap.drop(cur)
                cur = out
            result = cur
        else:
            outs = [self.node(child, x) for child in group.children]
            result = self.layer(group.join, tuple(outs))
            for sid in outs:
                self.heap.drop(sid)
        self.heap.drop(x)
        return result

    def layer(self, layer: Layer, inputs: Tuple[int, ...]) -> int:
        if layer.op.view is not None:   # "always" or "inference": no new storage
            return self.heap.hold(inputs[0])
        return self.heap.new(_out_elements(layer) * self.batch * self.size)


def inference_peak(graph, batch: int = 1, dtype: str = "fp32") -> int:
    """The most bytes of activations (the input included) alive at once during a no-grad
    forward pass of the built model, heads off (they run in training only)."""
    return _Inference(graph, batch, dtype_bytes(dtype)).network(graph)


def _storage(layers: Dict[str, Layer], name: str) -> str:
    """The layer (or INPUT) whose storage the output ``name`` is, through views (training)."""
    while name != INPUT and layers[name].op.view == "always":
        name = layers[name].inputs[0]
    return name


def _producers(graph) -> Dict[str, str]:
    """Each node's (layer's, container's) output as the layer that made it, by dotted path:
    what a ``from:`` that names the node takes, so what the Tape holds."""
    found: Dict[str, str] = {INPUT: INPUT}

    def walk(group: Group, before: str) -> str:
        current = before
        for child in group.children:
            if isinstance(child, Ref):
                current = found[child.target]
            elif isinstance(child, Layer):
                current = found[child.name] = child.name
            else:
                found[child.path] = current = walk(child, before if group.join else current)
        if group.join is not None:
            current = group.join.name
        return current

    current = INPUT
    for row in graph.rows:
        found[row.name] = current = walk(row.group, current)
    for row in graph.heads:         # a head takes the output of the row it follows
        found[row.name] = walk(row.group, found[row.head.after])
    return found


@dataclass(frozen=True)
class _Step:
    """One training step's activations, bytes: all autograd saves, and the peak of saved
    activations, activation gradients and parameter gradients alive at once."""

    saved: int
    peak: int


def _training_step(graph, batch: int, size: int, heads: bool) -> _Step:
    """Walks a training step over the layers (execution order), by storage:

    forward: a layer's output is made; what some op saves stays until the backward.
    backward, last layer first: autograd frees what a node saved once the node has run (when
    no node still to run saved it too); the gradient of a tensor lives from the backward of its
    last consumer (the loss, for the output) to that of its producer (the input needs none);
    the parameters' gradients accumulate from the last layer (zero_grad(set_to_none) frees
    them between steps, so none exist during the forward)."""
    layers = graph.layers(heads and graph.with_heads)
    by_name = {layer.name: layer for layer in layers}
    index = {layer.name: i for i, layer in enumerate(layers)}
    n = len(layers)

    def nbytes(name):
        shape = graph.input_shape if name == INPUT else by_name[name].out_shape
        return prod(shape) * batch * size

    first_saver: Dict[str, int] = {INPUT: -1}      # the input is held by the caller throughout
    extras = [0] * n
    last_use: Dict[str, int] = {}
    for i, layer in enumerate(layers):
        s = layer.op.saved(_in_shapes(layer), layer.out_shape)
        for root in [_storage(by_name, layer.inputs[k]) for k in s.inputs] + \
                ([_storage(by_name, layer.name)] if s.output else []):
            first_saver[root] = min(first_saver.get(root, i), i)
        extras[i] = (s.extra * size + s.extra_bytes) * batch + s.batch_bytes
        for name in layer.inputs:
            last_use[_storage(by_name, name)] = i
    if layers:
        last_use[_storage(by_name, layers[-1].name)] = n      # the loss takes the output
    saved = sum(nbytes(r) for r in first_saver) + sum(extras)
    params = [layer.counts().params * size for layer in layers]
    producers = _producers(graph)
    taped = {_storage(by_name, producers[node]) for node in graph.referenced} - set(first_saver)

    def made_at(root):              # the step that makes a storage (the input: before all)
        return 0 if root == INPUT else index[root]

    # running sums (index i: the step at which the bytes appear, or stop being needed)
    made = [0] * n          # forward: saved or taped storages, and extras, as they are made
    for root in set(first_saver) | taped:
        made[made_at(root)] += nbytes(root)
    needed = [0] * (n + 1)  # backward: a saved storage is needed down to its first saver
    for root, j in first_saver.items():
        needed[max(j, 0)] += nbytes(root)
    grad = [0] * (n + 2)    # backward: a gradient lives from its last consumer to its producer
    for root, last in last_use.items():
        if root != INPUT:
            grad[index[root]] += nbytes(root)
            grad[last + 1] -= nbytes(root)

    # forward: what is saved so far, what the Tape holds for a later from: (until the pass
    # ends), and the layer's inputs and output that are neither
    peak = kept = 0
    for i, layer in enumerate(layers):
        kept += made[i] + extras[i]
        here = {_storage(by_name, name) for name in layer.inputs} | {_storage(by_name,
                                                                               layer.name)}
        peak = max(peak, kept + sum(nbytes(r) for r in here
                                    if r not in first_saver and r not in taped))
    # backward, last layer first
    alive_saved = list(_running(needed[:n]))
    alive_extras = list(_running(extras))
    alive_grads = list(_running(grad[:n]))
    param_grads = 0
    for i in range(n - 1, -1, -1):
        param_grads += params[i]
        peak = max(peak, alive_saved[i] + alive_extras[i] + alive_grads[i] + param_grads)
    return _Step(saved, peak)


def _running(values):
    total = 0
    for v in values:
        total += v
        yield total


def saved_bytes(graph, batch: int, dtype: str, heads: bool = False) -> int:
    """What autograd keeps for the backward pass of one training step (each op's ``saved``):
    every saved tensor's storage once, the extras, and the network's input."""
    return _training_step(graph, batch, dtype_bytes(dtype), heads).saved


# torch.save's archive (torch/serialization.py; caffe2/serialize/inline_container.cc writes
# it with miniz): a zip file, uncompressed, whose records are, in order, data.pkl,
# .format_version, .storage_alignment, byteorder, data/0, data/1, ... (one per storage),
# version and .data/serialization_id, each under a folder named as the file's stem. Each
# record is a local header (30 bytes, the name, a 4-byte extra field whose padding puts the
# data on a 64-byte boundary), the data, and a 16-byte data descriptor; the central directory
# has 46 bytes and the name per record; the end record 22. The pickle holds, per tensor, its
# key, the storage's key, dtype, location, size, offset, shape and stride: about 58 bytes and
# the key's length (a shape's and stride's ints vary by a few bytes: the op says only a
# tensor's numbers, so those are left to the test's tolerance); and the state_dict's
# ``_metadata``, a {"version": n} per module (containers and the root "" too): 17 bytes and
# the module's name each.
_ALIGN = 64
_RECORDS_BEFORE = ((".format_version", 1), (".storage_alignment", 2), ("byteorder", 6))
_RECORDS_AFTER = (("version", 2), (".data/serialization_id", 40))
_PICKLE_EMPTY, _PICKLE_FIRST, _PICKLE_PER_TENSOR, _PICKLE_PER_MODULE = 34, 74, 57, 17
# pickle's memo: 8 entries a tensor, 2 a module; from the 257th on, each put takes 5 bytes
# (LONG_BINPUT) instead of 2 (BINPUT)
_MEMO_PER_TENSOR, _MEMO_PER_MODULE, _MEMO_SHORT = 8, 2, 256


def _pickle_bytes(tensors, modules) -> int:
    """data.pkl's size: the state_dict's keys, each tensor's record (its storage's key, its
    size as an int as wide as pickle writes it) and the _metadata of every module."""
    total = _PICKLE_EMPTY + (_PICKLE_FIRST if tensors else 0)
    for i, (key, nbytes) in enumerate(tensors):
        total += _PICKLE_PER_TENSOR + len(key) + len(str(i)) + _int_width(nbytes)
    total += sum(_PICKLE_PER_MODULE + len(name) for name in modules)
    memos = _MEMO_PER_TENSOR * len(tensors) + _MEMO_PER_MODULE * len(modules)
    return total + 3 * max(0, memos - _MEMO_SHORT)


def _int_width(nbytes: int) -> int:
    """Extra bytes pickle spends on a storage's size in numbers beyond a one-byte int (the
    numbers, about: the bytes at 4 a number is close enough to pick the width)."""
    numbers = nbytes // 4 or 1
    return 0 if numbers < 256 else 1 if numbers < 65536 else 3


def disk_bytes(graph, dtype: str = "fp32", stem: str = "model", heads: bool = False) -> int:
    """The size of the file ``torch.save(model.state_dict(), "STEM.pt")`` writes for the
    built model (with its heads, if ``heads``) at ``dtype`` (``model.to(dtype)``: float
    tensors at the dtype, BatchNorm's int64 counter as it is)."""
    size = dtype_bytes(dtype)
    tensors = []        # (state_dict key, bytes)
    names = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    heads = heads and graph.with_heads
    for layer in graph.layers(heads):
        for i, nbytes in enumerate(state_tensors(layer, size)):
            tensors.append((f"{layer.name}.{names[i] if i < len(names) else i}", nbytes))
    return archive_bytes(tensors, _module_names(graph, heads), stem)


def _module_names(graph, heads: bool = False) -> List[str]:
    """The built model's module names (build.py): the root, every row and container, and
    every layer but a join (whose module is held by its container, named as it)."""
    names = {""}

    def walk(group: Group) -> None:
        names.add(group.path)
        for child in group.children:
            if isinstance(child, Layer):
                names.add(child.name)
            elif isinstance(child, Group):
                walk(child)
    for row in graph.rows + (graph.heads if heads else []):
        names.add(row.name)
        walk(row.group)
    return sorted(names)


def archive_bytes(tensors, modules, stem: str) -> int:
    """The size of torch.save's zip archive of ``tensors`` ((key, bytes), one storage each)
    from a model whose modules are named ``modules``."""
    pickle = _pickle_bytes(tensors, modules)
    records = ([("data.pkl", pickle)] + list(_RECORDS_BEFORE) +
               [(f"data/{i}", nbytes) for i, (_, nbytes) in enumerate(tensors)] +
               list(_RECORDS_AFTER))
    offset = central = 0
    for name, nbytes in records:
        name = f"{stem}/{name}"
        start = offset + 30 + len(name) + 4
        offset = start + (-start % _ALIGN) + nbytes + 16
        central += 46 + len(name)
    return offset + central + 22


def network_memory(graph, batch: int = 1, dtype: str = "fp32", heads: bool = False,
                   optimizers=("sgd", "adam")) -> NetworkMemory:
    """Every figure of ``table --memory`` for ``graph`` at ``batch`` and ``dtype``."""
    check_batch(batch)
    size = dtype_bytes(dtype)
    layers = graph.layers(heads and graph.with_heads)
    per_layer = [layer_memory(layer, batch, size) for layer in layers]
    param_bytes = sum(m.param_bytes for m in per_layer)
    trainable = sum(layer.counts().params for layer in layers) * size
    step = _training_step(graph, batch, size, heads)
    training = {opt: Training(opt, param_bytes, OPTIMIZERS[opt] * trainable, trainable,
                              step.saved, step.peak) for opt in optimizers}
    by_name = {m.name: m for m in per_layer}
    rows = graph.rows + (graph.heads if heads and graph.with_heads else [])
    per_row = [LayerMemory(row.name, prod(row.out_shape), prod(row.out_shape) * batch * size,
                           sum(by_name[layer.name].param_bytes for layer in row.group.layers()))
               for row in rows]
    return NetworkMemory(batch, dtype, per_layer, prod(graph.input_shape) * batch * size,
                         param_bytes, trainable, inference_peak(graph, batch, dtype), training,
                         disk_bytes(graph, dtype, heads=heads), per_row)
