"""Where `archcalc import` reads a model from: ``package.module:callable``, a ``.pt2`` file
(torch.export.save), or an ``.onnx`` file (archcalc.bridge.from_onnx). Every failure is one
line (ArchcalcError, exit 2 at the CLI)."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Dict, Optional, Tuple

from archcalc.bridge.ir import Model
from archcalc.errors import ArchcalcError

DEFAULT_INPUT = (3, 224, 224)   # a callable's model carries no input shape


def literal(text: str):
    """An --arg value: a Python literal (3, 0.5, True, [1, 2]) where it reads as one, else text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def load(source: str, args: Dict[str, str], input_shape: Optional[Tuple[int, ...]]) -> Model:
    """The IR of SOURCE. A callable and a .pt2 are traced at ``input_shape`` (a callable's
    default: 3×224×224)."""
    if source.endswith(".onnx"):
        try:
            from archcalc.bridge import from_onnx
        except ImportError:
            raise ArchcalcError(f"{source}: ONNX import is not available in this archcalc "
                                "(archcalc.bridge.from_onnx is missing)") from None
        return from_onnx.load(source, input_shape)
    try:            # torch alone: tracing needs neither fvcore nor NumPy
        import torch  # noqa: F401
    except ImportError:
        raise ArchcalcError(f"{source}: importing a PyTorch model needs PyTorch "
                            "(pip install torch)") from None
    if source.endswith(".pt2"):
        from archcalc.bridge import from_export
        program, saved = _exported(source)
        if input_shape is not None and tuple(input_shape) != tuple(saved):
            raise ArchcalcError(f"{source}: the program was exported at input "
                                f"{'x'.join(map(str, saved))}; it cannot be imported at "
                                f"--input {'x'.join(map(str, input_shape))}")
        return from_export.load(program, source)
    from archcalc.bridge.from_torch import trace
    model = _called(source, args)
    return trace(model, tuple(input_shape or DEFAULT_INPUT), source)


def _exported(path: str):
    import torch
    if not Path(path).is_file():
        raise ArchcalcError(f"{path}: no such file")
    from archcalc.pytorch.quiet import quiet
    try:
        with quiet("torch"):        # it logs a traceback for a file it cannot read
            program = torch.export.load(path)
    except Exception as exc:    # a corrupt or foreign file: any error is bad input
        raise ArchcalcError(f"{path}: not a model saved with torch.export.save "
                            f"({type(exc).__name__})") from None
    # the input shape the program was exported with (batch dropped): a .pt2 carries its own
    users = set(program.graph_signature.user_inputs)
    shapes = [tuple(node.meta["val"].shape)[1:] for node in program.graph.nodes
              if node.op == "placeholder" and node.name in users and "val" in node.meta]
    if len(shapes) != 1:
        raise ArchcalcError(f"{path}: archcalc imports a model of one input; this one takes "
                            f"{len(shapes)}")
    return program, shapes[0]


def _called(source: str, args: Dict[str, str]):
    from torch import nn
    module_name, colon, attr = source.partition(":")
    if not colon or not module_name or not attr:
        raise ArchcalcError(f"{source}: expected package.module:callable, a .pt2 or an .onnx "
                            "file")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:    # the user's module: whatever it raises on import
        raise ArchcalcError(f"{source}: cannot import {module_name} ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ArchcalcError(f"{source}: {module_name} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ArchcalcError(f"{source}: {attr} is not callable")
    try:
        model = target(**{k: literal(v) for k, v in args.items()})
    except Exception as exc:    # the user's callable
        raise ArchcalcError(f"{source}: calling {attr} failed ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(model, nn.Module):
        raise ArchcalcError(f"{source}: {attr} returned {type(model).__name__}, not a "
                            "torch.nn.Module")
    return model
