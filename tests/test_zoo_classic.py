"""The classic zoo specs (resnet, vgg, alexnet, resnet18-cifar) against oracles that are not
archcalc: torchvision's published parameter counts and GFLOPS, the independent reference models
of tests/zoo_reference.py (their parameters, buffers and conv+linear multiply-adds as PyTorch
runs them), and, for the CIFAR ResNet-18, arithmetic written out below. The audit verdicts are
what the papers' printed figures predict against those oracles."""
import pytest
import torch
from torch import nn

from archcalc.core import analysis, graph, spec
from tests import zoo_reference as zoo
from tests.conftest import SPECS

torch.set_num_threads(1)

# (spec, variant) -> (torchvision's name in zoo.PUBLISHED or None, reference model builder)
NETWORKS = {
    ("resnet", "resnet18"): ("resnet18", lambda: zoo.resnet(18)),
    ("resnet", "resnet34"): ("resnet34", lambda: zoo.resnet(34)),
    ("resnet", "resnet50"): ("resnet50", lambda: zoo.resnet(50)),
    ("resnet", "resnet101"): ("resnet101", lambda: zoo.resnet(101)),
    ("resnet", "resnet152"): ("resnet152", lambda: zoo.resnet(152)),
    ("vgg", "A"): ("vgg11", lambda: zoo.vgg("A")),
    ("vgg", "B"): ("vgg13", lambda: zoo.vgg("B")),
    ("vgg", "C"): (None, lambda: zoo.vgg("C")),        # not in torchvision
    ("vgg", "D"): ("vgg16", lambda: zoo.vgg("D")),
    ("vgg", "E"): ("vgg19", lambda: zoo.vgg("E")),
    ("alexnet", None): ("alexnet", zoo.alexnet),
}

_reports = {}


def report(name, variant=None):
    key = (name, variant)
    if key not in _reports:
        _reports[key] = analysis.analyze(graph.build(spec.load(SPECS / f"{name}.yaml"), variant))
    return _reports[key]


def meta_macs(build, input_shape):
    """zoo.conv_linear_macs's count (its own `_macs` per module call) over a model built on
    PyTorch's meta device: the same shapes without the arithmetic, so ResNet-152 and VGG-19 are
    counted in milliseconds. test_meta_macs_equal_a_real_forward_pass checks it is the same."""
    with torch.device("meta"):
        model = build()
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        total += zoo._macs(module, inputs, output)

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model.eval()(torch.empty(1, *input_shape, device="meta"))
    return model, total


@pytest.mark.parametrize("key", list(NETWORKS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_counts_equal_the_reference_model_and_torchvision(key):
    published, build = NETWORKS[key]
    totals = report(*key).totals
    model, macs = meta_macs(build, (3, 224, 224))
    params, buffers = zoo.counts(model)
    assert totals.params == params
    assert totals.non_trainable == buffers
    assert totals.macs == macs
    if published is not None:
        assert totals.params == zoo.PUBLISHED[published]["num_params"]
        assert round(totals.macs / 1e9, 3) == zoo.PUBLISHED[published]["GFLOPS"]


@pytest.mark.parametrize("key", [("resnet", "resnet18"), ("alexnet", None), ("vgg", "A")],
                         ids=lambda k: k[0])
def test_meta_macs_equal_a_real_forward_pass(key):
    build = NETWORKS[key][1]
    assert meta_macs(build, (3, 224, 224))[1] == zoo.conv_linear_macs(build(), (3, 224, 224))


@pytest.mark.slow
@pytest.mark.parametrize("key", [k for k in NETWORKS if k not in {
    ("resnet", "resnet18"), ("alexnet", None), ("vgg", "A")}], ids=lambda k: f"{k[0]}-{k[1]}")
def test_macs_equal_a_real_forward_pass_of_the_reference(key):
    build = NETWORKS[key][1]
    assert report(*key).totals.macs == zoo.conv_linear_macs(build(), (3, 224, 224))


def test_vgg_c_is_b_with_three_1x1_convolutions():
    """Table 1: C adds a 1×1 conv (with bias) to stages 3, 4 and 5 of B: 256·256, 512·512 twice."""
    extra = (256 * 256 + 256) + 2 * (512 * 512 + 512)
    assert report("vgg", "C").totals.params - report("vgg", "B").totals.params == extra
    # at 56, 28 and 14 pixels
    extra_macs = 56 * 56 * 256 * 256 + 28 * 28 * 512 * 512 + 14 * 14 * 512 * 512
    assert report("vgg", "C").totals.macs - report("vgg", "B").totals.macs == extra_macs


# -- the papers' figures ------------------------------------------------------------------------
# He et al. Table 1 (x 10^9 multiply-adds) against torchvision's GFLOPS, the same counting:
# 1.814 reads as 1.8; 3.664 is 3.7, 1.8% off 3.6 (the paper rounds down); 4.089, 7.801 and 11.514
# are ResNet v1.5's stride in the 3×3 (the paper strides in the first 1×1): 7.6%, 2.7%, 1.9% off.
RESNET_FLAGGED = {"resnet18": False, "resnet34": True, "resnet50": True, "resnet101": True,
                  "resnet152": True}
# Simonyan & Zisserman Table 2, millions, all trainable: 132.9, 133.0, 133.6, 138.4, 143.7.
VGG_PRINTED = {"A": "133M", "B": "133M", "C": "134M", "D": "138M", "E": "144M"}


@pytest.mark.parametrize("variant", list(RESNET_FLAGGED))
def test_resnet_audit(variant):
    r = report("resnet", variant)
    assert r.audit_skipped is None
    assert set(r.paper) == {"ops"}          # Table 1 prints no parameter counts
    cell = r.paper["ops"]
    assert cell.printed == {"resnet18": "1.8G", "resnet34": "3.6G", "resnet50": "3.8G",
                            "resnet101": "7.6G", "resnet152": "11.3G"}[variant]
    assert round(cell.computed, 3) == zoo.PUBLISHED[variant]["GFLOPS"]   # G = 10^9
    assert cell.flag is RESNET_FLAGGED[variant]
    assert r.flagged == ([(analysis.NETWORK, "ops")] if RESNET_FLAGGED[variant] else [])


@pytest.mark.parametrize("variant", list(VGG_PRINTED))
def test_vgg_audit_agrees_with_table_2(variant):
    r = report("vgg", variant)
    assert r.audit_skipped is None
    cell = r.paper["params"]
    assert cell.printed == VGG_PRINTED[variant]
    assert cell.computed == r.totals.params / 1e6       # all trainable, M = 10^6
    assert not cell.flag and r.flagged == []


def test_alexnet_audit_flags_the_two_gpu_networks_60_million():
    r = report("alexnet")
    cell = r.paper["params"]
    assert (cell.printed, cell.computed) == ("60M", 61_100_840 / 1e6)
    assert cell.flag and r.flagged == [(analysis.NETWORK, "params")]


def test_a_variant_is_audited_only_against_its_own_figures():
    # resnet50 is the default network: its figure is audited with no variant named
    assert report("resnet").paper["ops"].printed == "3.8G"
    assert report("vgg").paper["params"].printed == "138M"    # D = VGG-16 is the default


# -- the CIFAR ResNet-18 ------------------------------------------------------------------------
def cifar_resnet18_by_hand():
    """(params, BatchNorm buffers, MACs) of kuangliu/pytorch-cifar's ResNet18, summed by hand:
    a 3×3 stem to 64 at 32×32, two basic blocks per stage (64, 128, 256, 512 at 32, 16, 8, 4),
    a 1×1 projection + BN where a stage halves the size, a 512 -> 10 linear layer."""
    params = 3 * 3 * 3 * 64 + 2 * 64                        # stem conv, BN
    buffers = 2 * 64
    macs = 32 * 32 * 64 * 3 * 3 * 3
    cin, size = 64, 32
    for width in (64, 128, 256, 512):
        for block in range(2):
            stride = 2 if width != 64 and block == 0 else 1
            size //= stride
            params += 3 * 3 * cin * width + 3 * 3 * width * width + 2 * (2 * width)
            buffers += 2 * (2 * width)
            macs += size * size * width * 9 * (cin + width)
            if stride != 1:
                params += cin * width + 2 * width
                buffers += 2 * width
                macs += size * size * width * cin
            cin = width
    params += 512 * 10 + 10
    macs += 512 * 10
    return params, buffers, macs


def cifar_reference():
    """zoo.resnet(18) with the CIFAR stem: a 3×3/1 conv + BN + ReLU, no max pool."""
    model = zoo.resnet(18, num_classes=10)
    model[0] = zoo.conv_bn(3, 64, 3, 1)
    model[1] = nn.Identity()
    return model


def test_cifar_resnet18_by_hand_and_against_the_reference():
    params, buffers, macs = cifar_resnet18_by_hand()
    assert params == 11_173_962             # the figure quoted for this network
    t = report("resnet18-cifar").totals
    assert (t.params, t.non_trainable, t.macs) == (params, buffers, macs)
    model = cifar_reference()
    assert zoo.counts(model) == (params, buffers)
    assert zoo.conv_linear_macs(model, (3, 32, 32)) == macs
    assert report("resnet18-cifar").rows[-1].output_shape == (10,)
    assert (t.depth, report("resnet", "resnet18").totals.depth) == (18, 18)


# -- PyTorch ------------------------------------------------------------------------------------
def torchvision_block_names(depth):
    """torchvision's module names inside layer1..layer4 of resnet<depth>, from the structure
    its resnet.py documents: conv1, bn1, ... per unit, `downsample.0/.1` where the unit projects,
    one `relu` per unit; then avgpool and fc."""
    bottleneck = depth >= 50
    repeats = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
               152: (3, 8, 36, 3)}[depth]
    names = {"maxpool", "avgpool", "fc"}
    convs = 3 if bottleneck else 2
    for stage, n in enumerate(repeats, 1):
        for i in range(n):
            unit = f"layer{stage}.{i}"
            names |= {f"{unit}.{part}{k}" for part in ("conv", "bn") for k in range(1, convs + 1)}
            names.add(f"{unit}.relu")
            if i == 0 and (stage > 1 or bottleneck):
                names |= {f"{unit}.downsample.0", f"{unit}.downsample.1"}
    return names


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_torch_module_names_are_torchvisions(depth):
    from archcalc.pytorch.build import build_model
    model = build_model("resnet", f"resnet{depth}")
    names = {n for n, m in model.named_modules() if not list(m.children())}
    ours = {n for n in names if n.startswith(("layer", "maxpool", "avgpool", "fc"))}
    # ours also has `bnK_relu` (act: relu is a layer of its own) and each unit's `add` (with
    # the tape entries of its `from:` branches, `add.b1`, `add.b2`)
    extra = {n for n in ours if n.endswith("_relu") or ".add" in n}
    assert ours - extra == _leaf_names(depth)


def _leaf_names(depth):
    """torchvision's leaf modules as archcalc names the row-level ones (`maxpool.maxpool`)."""
    rename = {"maxpool": "maxpool.maxpool", "avgpool": "avgpool.adaptive_avgpool",
              "fc": "fc.linear"}
    return {rename.get(n, n) for n in torchvision_block_names(depth)}


VERIFIED = [("resnet", v) for v in RESNET_FLAGGED] + [("vgg", v) for v in VGG_PRINTED] + \
    [("alexnet", None), ("resnet18-cifar", None)]
SLOW_TO_VERIFY = {("vgg", "B"), ("vgg", "C"), ("vgg", "D"), ("vgg", "E"), ("resnet", "resnet152")}


@pytest.mark.parametrize("key", [pytest.param(k, marks=pytest.mark.slow) if k in SLOW_TO_VERIFY
                                 else k for k in VERIFIED], ids=lambda k: f"{k[0]}-{k[1]}")
def test_verify_agrees_on_every_layer(key):
    from archcalc.pytorch.verify import verify
    result = verify(*key, device="cpu", threads=1)
    assert result.ok, result.failed
    assert all(layer.ok for layer in result.layers)


def test_resnet50_paper_stride_placement_accounts_for_the_flag():
    """The README's account of ResNet-50's flag, in arithmetic: torchvision strides the first
    bottleneck of layer2–4 in its 3×3, the paper in its first 1×1. Only that 1×1 changes: it
    runs at H×W instead of (H/2)×(W/2), so v1.5 spends 3/4 of its multiply-adds more."""
    from archcalc.core import analysis, graph
    from archcalc.core.spec import load
    from archcalc.files import resolve_spec
    v15 = analysis.analyze(graph.build(load(resolve_spec("resnet")), "resnet50")).totals.macs
    # (input channels, width, the input's side) of each first 1×1 that would stride
    extra = sum(cin * width * side * side * 3 // 4
                for cin, width, side in ((256, 128, 56), (512, 256, 28), (1024, 512, 14)))
    assert extra == 231_211_008
    assert v15 - extra == 3_857_973_248          # the paper's way: 3.86 G
