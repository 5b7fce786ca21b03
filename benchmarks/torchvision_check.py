"""Check the bundled zoo specs that follow a torchvision model against the real model.

archcalc's CI cannot import torchvision (the index's torchvision wheel is a CUDA build that does
not load beside the CPU torch CI uses), so the zoo's "counts exactly as torchvision" claims are
checked here, outside CI, in a venv of its own with a matching torch/torchvision pair:

    python3 -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/tvenv/bin/pip install -e .          # archcalc's light install; no [torch] extra needed
    /tmp/tvenv/bin/python benchmarks/torchvision_check.py [--only resnet50 ...] [--threads 2]

Measured on x86_64, Python 3.11, pip taking torch, torchvision and the CUDA wheels from the
local disk (a few small ones from the index): the venv is 5.5 GB and the three commands above
took 1 min 11 s wall (a CUDA build of torch; it runs on the CPU here). The check itself takes
about 35 s on a shared 2-core machine (21 torchvision models, each built and run once).

For each network, archcalc's side is computed WITHOUT torch (spec -> graph -> Report), and the
torchvision model is built with weights=None, in eval mode, and run once on a 1x3x224x224 input.
Compared, each from an independent source on the torchvision side:
- trainable parameters (``requires_grad``), and float buffers (BatchNorm's running statistics;
  ``num_batches_tracked`` is an integer counter, left out);
- multiply-adds of Conv2d and Linear weights measured by forward hooks (Conv2d: output elements
  x in/groups x kh x kw; Linear: output elements x in_features; no bias);
- layer by layer, in execution order: the conv/linear layers of archcalc's report against the
  Conv2d/Linear modules in the order the hooks saw them run, by (output elements, parameters,
  multiply-adds), and the output shape where both sides lay it out as channels x map (a Linear on
  a channels-last tensor, as ConvNeXt's pointwise layers are, gives [H, W, C]: its element count
  is compared). The first divergence is printed.

One line per network; exit status 1 if anything differs, 0 otherwise. Specs that are not bundled
(yet) are skipped with a message. Not checked: networks torchvision does not have (VGG's variant
C, the CIFAR and paper-only specs) and GoogLeNet (torchvision's has BatchNorm and auxiliary
classifiers the paper's network, which the spec follows, has not).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from math import prod
from typing import Dict, List, Optional, Sequence, Tuple

from archcalc.core import analysis, graph
from archcalc.core.spec import load
from archcalc.errors import ArchcalcError
from archcalc.files import resolve_spec

INPUT = (3, 224, 224)
WEIGHTED = ("conv", "linear", "conv_transpose")


@dataclass
class Case:
    """One network: the bundled spec (and its variant candidates, the first present is used),
    settings as `--set` gives them, and the torchvision builder with its keyword arguments."""

    label: str
    spec: str
    variants: Sequence[Optional[str]]   # None: the spec's default network
    builder: str
    kwargs: Dict[str, object]
    settings: Dict[str, str]


def _cases() -> List[Case]:
    cases = []
    for depth in (18, 34, 50, 101, 152):
        cases.append(Case(f"resnet{depth}", "resnet", (f"resnet{depth}", f"resnet-{depth}",
                                                       f"ResNet-{depth}", str(depth)),
                          f"resnet{depth}", {}, {}))
    for letter, depth in zip("ABDE", (11, 13, 16, 19)):
        cases.append(Case(f"vgg{depth}", "vgg", (letter, f"vgg{depth}", f"vgg-{depth}",
                                                 f"VGG{depth}", f"VGG-{depth}", str(depth)),
                          f"vgg{depth}", {}, {}))
    cases.append(Case("alexnet", "alexnet", (None,), "alexnet", {}, {}))
    for width in ("0.5", "0.75", "1.0", "1.4"):
        cases.append(Case(f"mobilenet_v2 w={width}", "mobilenetv2", (None,), "mobilenet_v2",
                          {"width_mult": float(width)}, {"width": width}))
    for name in ("densenet121", "densenet169", "densenet201", "densenet161"):
        cases.append(Case(name, "densenet121", (name,), name, {}, {}))
    cases.append(Case("squeezenet1_0", "squeezenet1_0", (None,), "squeezenet1_0", {}, {}))
    cases.append(Case("efficientnet_b0", "efficientnet-b0", (None,), "efficientnet_b0", {}, {}))
    cases.append(Case("convnext_tiny", "convnext-t", (None,), "convnext_tiny", {}, {}))
    return cases


@dataclass
class Side:
    """What one side counts: totals and the conv/linear layers in execution order, each as
    (output shape without the batch, whether that shape is channels-last, params, MACs)."""

    params: int
    buffers: int
    macs: int
    layers: List[Tuple[Tuple[int, ...], bool, int, int]]


def archcalc_side(case: Case) -> Tuple[Optional[Side], str]:
    """archcalc's counts, or None and why the case is skipped."""
    try:
        spec = load(resolve_spec(case.spec))
    except ArchcalcError:
        return None, f"spec '{case.spec}' is not bundled"
    variant = next((v for v in case.variants if v is None or v in spec.variants), False)
    if variant is False:
        return None, (f"spec '{case.spec}' has no variant among {list(case.variants)} "
                      f"(it has {list(spec.variants)})")
    g = graph.build(spec, variant, input_shape=INPUT, settings=case.settings)
    report = analysis.analyze(g)
    layers = [(tuple(l.output_shape), False, l.params, l.macs)
              for l in report.layers if l.type in WEIGHTED]
    t = report.totals
    where = case.spec + (f" --variant {variant}" if variant else "") + \
        "".join(f" --set {k}={v}" for k, v in case.settings.items())
    return Side(t.params, t.non_trainable, t.macs, layers), where


def torchvision_side(case: Case) -> Side:
    import torch
    import torchvision

    model = getattr(torchvision.models, case.builder)(weights=None, **case.kwargs).eval()
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buffers = sum(b.numel() for n, b in model.named_buffers()
                  if b.is_floating_point() and not n.endswith("num_batches_tracked"))
    seen: List[Tuple[Tuple[int, ...], bool, int, int]] = []

    def hook(module, inputs, output):
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            macs = output.numel() * (module.in_channels // module.groups) * kh * kw
            channels_last = False
        else:
            macs = output.numel() * module.in_features
            channels_last = output.dim() > 2
        seen.append((tuple(output.shape[1:]), channels_last, own, macs))

    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, *INPUT))
    return Side(params, buffers, sum(s[3] for s in seen), seen)


def first_divergence(ours: Side, theirs: Side) -> Optional[str]:
    """The first conv/linear layer where the two sides disagree, in words; None if none."""
    for i, (a, t) in enumerate(zip(ours.layers, theirs.layers)):
        shape_ok = prod(a[0]) == prod(t[0]) if t[1] else a[0] == t[0]
        if not shape_ok or a[2:] != t[2:]:
            return (f"layer {i + 1}: archcalc out {list(a[0])} params {a[2]:,} MACs {a[3]:,}"
                    f" vs torchvision out {list(t[0])}{' (channels-last)' if t[1] else ''}"
                    f" params {t[2]:,} MACs {t[3]:,}")
    if len(ours.layers) != len(theirs.layers):
        n = min(len(ours.layers), len(theirs.layers))
        return f"layer {n + 1}: one side ends after {n} conv/linear layers"
    return None


def _cell(what: str, a: int, t: int) -> str:
    return f"{what} {a:,} {'=' if a == t else '≠'} {t:,} {'✓' if a == t else '✗'}"


def check(case: Case, label_width: int) -> Optional[bool]:
    """Print the case's line (and its first divergence); True if all agree, None if skipped."""
    ours, where = archcalc_side(case)
    if ours is None:
        print(f"{case.label:<{label_width}}  SKIP: {where}")
        return None
    theirs = torchvision_side(case)
    divergence = first_divergence(ours, theirs)
    layers_ok = divergence is None
    cells = [_cell("params", ours.params, theirs.params),
             _cell("buffers", ours.buffers, theirs.buffers),
             _cell("MACs", ours.macs, theirs.macs),
             f"layers {len(ours.layers)}/{len(theirs.layers)} {'✓' if layers_ok else '✗'}"]
    print(f"{case.label:<{label_width}}  " + "  ".join(cells) + f"  [{where}]")
    if divergence:
        print(f"{'':<{label_width}}  first divergence: {divergence}")
    return (layers_ok and ours.params == theirs.params and ours.buffers == theirs.buffers
            and ours.macs == theirs.macs)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="labels to check (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import torch
    import torchvision
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"input 1x{'x'.join(map(str, INPUT))}")
    cases = [c for c in _cases() if not args.only or c.label in args.only]
    width = max(len(c.label) for c in cases)
    results = [check(c, width) for c in cases]
    checked = [r for r in results if r is not None]
    bad = checked.count(False)
    print(f"{len(checked)} checked, {bad} differ, {results.count(None)} skipped")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
