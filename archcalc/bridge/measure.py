"""The real model's MACs for `verify --against`, as fvcore counts them.

The importers give each node's shape, parameters and buffers from the traced model; MACs come
from fvcore's ``FlopCountAnalysis(module, x).by_module()`` at batch 1 on the real ``nn.Module``,
never from archcalc's own op classes (that would check archcalc against itself). fvcore's count
for a leaf module goes to the node of that name; a node whose name is a container (a function
run inside a module) or no module gets none, and its MACs are not compared.

Imports torch and fvcore.
"""
from __future__ import annotations

from typing import Dict, Tuple

from archcalc.bridge import ir
from archcalc.errors import ArchcalcError


def fill_macs(model: ir.Model, module, input_shape: Tuple[int, ...]) -> ir.Model:
    """``model`` with each leaf module's node's ``macs`` set from fvcore (eval mode, batch 1).
    ArchcalcError (one line) where fvcore cannot trace the module."""
    import torch

    from archcalc.pytorch.verify import _fvcore     # fvcore, quietly, as `verify` runs it
    module.eval()
    with torch.no_grad():
        by_module, _, _, error = _fvcore(module, torch.zeros((1,) + tuple(input_shape)))
    if error is not None:
        raise ArchcalcError(f"{model.source}: {error}")
    leaves = {name for name, m in module.named_modules() if not any(True for _ in m.children())}
    counts: Dict[str, int] = {k: int(v) for k, v in by_module.items() if k in leaves}
    for node in model.nodes:
        if node.macs is None and node.name in counts:
            node.macs = counts[node.name]
    return model


def load(source: str, args: Dict[str, str], input_shape: Tuple[int, ...]) -> ir.Model:
    """SOURCE as the IR (archcalc.bridge.sources.load), with fvcore's MACs where the importer
    left them unknown and the source is a callable's nn.Module. Those of a .pt2 or an ONNX
    model stay unknown (not compared): fvcore reads an nn.Module's own modules, and a
    torch.export module runs aten ops from its root, so fvcore gives its layers nothing."""
    from archcalc.bridge import sources
    model = sources.load(source, args, input_shape)
    if source.endswith((".onnx", ".pt2")) or all(n.macs is not None for n in model.nodes):
        return model
    # sources.load keeps the module to itself: the callable is called again for fvcore
    return fill_macs(model, sources._called(source, args), tuple(model.input_shape))
