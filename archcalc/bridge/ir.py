"""The intermediate representation every importer produces and every consumer reads.

Torch-free on purpose: the PyTorch importer (from_torch), the ONNX importer (from_onnx), the spec
writer (writer) and ``verify --against`` all meet here, so none depends on another's framework.
A Model is a list of Nodes in execution order; a Node is one leaf layer or tensor op, named by the
source model's own qualified name, carrying the spec op and arguments it maps to (or ``opaque``)
and what the source itself says about it (output shape, parameters, buffers, MACs if known).
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

INPUT = "input"   # a node's input that is the model's input


@dataclass
class Node:
    name: str                    # the model's own qualified name, dotted: "layer1.0.conv1"
    op: str                      # a spec op name (conv, batchnorm, relu, add, concat, ...) or "opaque"
    args: Dict[str, Any]         # that op's spec arguments, as a spec writes them
    inputs: Tuple[str, ...]      # the producing nodes' names, in order (INPUT for the model's input)
    out_shape: Tuple[int, ...]   # C×H×W or (F,), batch dimension dropped
    params: int = 0              # trainable parameters the source holds for this node
    buffers: int = 0             # floating-point buffers (BatchNorm running stats), num_batches_tracked excluded
    macs: Optional[int] = None   # multiply-adds as the source counts them (fvcore by_module), if known
    kind: str = ""               # what the source called it (module class, aten op, ONNX op_type)
    location: str = ""           # where it is in the source ("layer1.0.relu (aten::hardtanh_)"), for messages


@dataclass
class Model:
    source: str                  # what was imported ("torchvision.models:resnet50", "net.onnx")
    input_shape: Tuple[int, ...]
    nodes: List[Node] = field(default_factory=list)   # execution order

    def opaque(self) -> List[Node]:
        """The nodes no spec op expresses, in execution order (for messages and the header)."""
        return [n for n in self.nodes if n.op == "opaque"]
