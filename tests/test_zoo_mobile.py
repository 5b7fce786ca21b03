"""The bundled MobileNetV2, EfficientNet-B0 and ConvNeXt-T specs count what torchvision's models
count: parameters to the unit (its published `num_params`), BatchNorm statistics, and conv+linear
multiply-adds, against the independent reference models of tests/zoo_reference.py (which
reproduce torchvision's published figures; tests/test_zoo_reference.py proves that). MobileNetV2
also at other width multipliers, set with `settings` as `--set width=...` does. The papers'
whole-network figures are audited as the specs' headers say."""
import json

import pytest
import torch
from typer.testing import CliRunner

from archcalc.cli import app
from archcalc.core import analysis, graph, spec as spec_mod
from archcalc.files import resolve_spec
from tests import zoo_reference as zoo

torch.set_num_threads(1)

# bundled spec -> (reference builder, torchvision's name in zoo.PUBLISHED)
NETWORKS = {
    "mobilenetv2": (zoo.mobilenet_v2, "mobilenet_v2"),
    "efficientnet-b0": (zoo.efficientnet_b0, "efficientnet_b0"),
    "convnext-t": (zoo.convnext_tiny, "convnext_tiny"),
}
# The papers' whole-network figures and how each audit comes out (the specs' headers say why):
# MobileNetV2 3.4M / 300M (torchvision's 3,504,872 reads 3.5M: flagged), EfficientNet-B0
# 5.3M / 0.39B, ConvNeXt-T 28M / 4.5G (28,589,128 reads 29M: flagged).
AUDIT = {
    "mobilenetv2": {"params": ("3.4M", True), "ops": ("300M", False)},
    "efficientnet-b0": {"params": ("5.3M", False), "ops": ("0.39G", False)},
    "convnext-t": {"params": ("28M", True), "ops": ("4.5G", False)},
}
WIDTHS = ["0.5", "0.75", "1.0", "1.4"]


def report(name, settings=None):
    spec = spec_mod.load(resolve_spec(name))
    return analysis.analyze(graph.build(spec, settings=settings))


@pytest.fixture(scope="module")
def references():
    """Each reference model's (params, float buffers, conv+linear MACs at 224×224)."""
    out = {}
    for name, (builder, _) in NETWORKS.items():
        model = builder()
        out[name] = (*zoo.counts(model), zoo.conv_linear_macs(model, (3, 224, 224)))
    return out


@pytest.mark.parametrize("name", list(NETWORKS))
def test_counts_equal_torchvision(name, references):
    totals = report(name).totals
    published = zoo.PUBLISHED[NETWORKS[name][1]]
    params, buffers, macs = references[name]
    assert totals.params == published["num_params"] == params
    assert totals.non_trainable == buffers
    assert totals.macs == macs
    assert round(totals.macs / 1e9, 3) == published["GFLOPS"]


def test_convnext_has_no_buffers_and_mobile_nets_have_batchnorm_statistics(references):
    """LayerNorm keeps no running statistics; BatchNorm keeps two per channel. Independent of
    the reference: ConvNeXt-T's buffers are none; MobileNetV2's are twice its BatchNorm widths."""
    assert report("convnext-t").totals.non_trainable == 0
    # Table 2 at width 1: stem 32; per bottleneck expand (t·in), depthwise (t·in), project (c)
    widths = [32, 32, 16]                       # stem; the t = 1 block: depthwise 32, project 16
    cin = 16
    for t, c, n, _ in zoo.MOBILENET_V2_SETTING[1:]:
        for _ in range(n):
            widths += [t * cin, t * cin, c]
            cin = c
    widths.append(1280)
    assert report("mobilenetv2").totals.non_trainable == 2 * sum(widths)


@pytest.mark.parametrize("width", WIDTHS)
def test_mobilenetv2_width_multiplier(width):
    totals = report("mobilenetv2", {"width": width}).totals
    model = zoo.mobilenet_v2(width_mult=float(width))
    params, buffers = zoo.counts(model)
    assert (totals.params, totals.non_trainable) == (params, buffers)
    assert totals.macs == zoo.conv_linear_macs(model, (3, 224, 224))


def test_mobilenetv2_last_conv_widens_only_above_1():
    """Table 2's note: the last 1×1 convolution keeps 1280 channels below width 1."""
    def last_conv(width):
        g = graph.build(spec_mod.load(resolve_spec("mobilenetv2")), settings={"width": width})
        return next(l for l in g.layers() if l.name == "conv2.conv").out_shape[0]
    assert [last_conv(w) for w in WIDTHS] == [1280, 1280, 1280, 1792]


@pytest.mark.parametrize("name", list(NETWORKS))
def test_paper_audit(name):
    r = report(name)
    assert r.audit_skipped is None
    got = {q: (c.printed, c.flag) for q, c in r.paper.items()}
    assert got == AUDIT[name]


def test_audit_not_applied_at_another_width():
    r = report("mobilenetv2", {"width": "0.5"})
    assert r.audit_skipped and "width" in r.audit_skipped
    assert not r.paper


def test_efficientnet_depth_scales_repeats():
    """ceil(n · depth) repeats per stage, as torchvision: B1's depth 1.1 gives 2, 3, 3, 4, 4,
    5, 2 blocks (1 → 2, 2 → 3, 3 → 4, 4 → 5): 23 MBConv blocks against B0's 16."""
    def blocks(depth):
        g = graph.build(spec_mod.load(resolve_spec("efficientnet-b0")),
                        settings={"depth": depth})
        return len({l.name.split(".")[0] + "." + l.name.split(".")[1] for l in g.layers()
                    if l.name.startswith("mbconv")})
    assert blocks("1.0") == 16
    assert blocks("1.1") == 23


def test_compare_widths_on_the_command_line():
    result = CliRunner().invoke(app, ["compare", "width=0.5", "width=1.0", "--spec",
                                      "mobilenetv2", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    half, full = zoo.mobilenet_v2(width_mult=0.5), zoo.mobilenet_v2()
    assert data["network"]["a"]["params"] == zoo.counts(half)[0]
    assert data["network"]["b"]["params"] == zoo.PUBLISHED["mobilenet_v2"]["num_params"]
    assert data["network"]["a"]["macs"] == zoo.conv_linear_macs(half, (3, 224, 224))
    assert data["network"]["b"]["macs"] == zoo.conv_linear_macs(full, (3, 224, 224))
    plain = CliRunner().invoke(app, ["compare", "width=0.5", "width=1.0", "--spec",
                                     "mobilenetv2"])
    assert plain.exit_code == 0 and "width=0.5 vs width=1.0" in plain.output


# Each spec's default network is verified with every bundled spec (tests/test_verify.py); here
# the settings that change its structure: another width, and a deeper EfficientNet.
@pytest.mark.parametrize("name, settings", [("mobilenetv2", {"width": "0.75"}),
                                            ("efficientnet-b0", {"depth": "1.1"})])
def test_verify_against_pytorch_at_other_settings(name, settings):
    from archcalc.pytorch.verify import verify
    result = verify(name, device="cpu", threads=1, settings=settings)
    assert result.error is None
    assert result.failed == [] and result.ok
