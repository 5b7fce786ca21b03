"""The bundled DenseNet-121, SqueezeNet 1.0 and U-Net specs against independent oracles: the
published figures and reference models of tests/zoo_reference.py (plain torch.nn, not archcalc),
per-layer arithmetic typed in below, and the papers' own printed figures where they print any.
archcalc's counts come from graph.build + analysis.analyze, without torch."""
import pytest
import torch
from torch import nn

from archcalc.core import analysis, graph, spec
from tests import zoo_reference as zoo
from tests.conftest import SPECS

torch.set_num_threads(1)

IMAGENET = (3, 224, 224)
UNET_INPUT = (1, 572, 572)


def report(name, variant=None):
    return analysis.analyze(graph.build(spec.load(SPECS / f"{name}.yaml"), variant))


# --- torchvision's networks: exact parameters, buffers, conv+linear MACs --------------------

@pytest.mark.parametrize("name", ["densenet121", "squeezenet1_0"])
def test_equals_torchvision_and_the_reference_model(name):
    totals = report(name).totals
    model = zoo.TORCHVISION_BUILDERS[name]()
    params, buffers = zoo.counts(model)
    macs = zoo.conv_linear_macs(model, IMAGENET)
    assert totals.params == zoo.PUBLISHED[name]["num_params"] == params
    assert totals.non_trainable == buffers
    assert totals.macs == macs
    assert round(totals.macs / 1e9, 3) == zoo.PUBLISHED[name]["GFLOPS"]


# torchvision's DenseNet-169/201/161 weights meta "num_params" (torchvision/models/densenet.py),
# and the structure torchvision gives each: (blocks, growth, stem)
DENSENET_VARIANTS = {
    "densenet169": (14_149_480, (6, 12, 32, 32), 32, 64),
    "densenet201": (20_013_928, (6, 12, 48, 32), 32, 64),
    "densenet161": (28_681_000, (6, 12, 36, 24), 48, 96),
}


@pytest.mark.parametrize("variant", sorted(DENSENET_VARIANTS))
def test_densenet_variants_equal_torchvision(variant):
    published, blocks, growth, stem = DENSENET_VARIANTS[variant]
    totals = report("densenet121", variant).totals
    model = zoo.densenet121(growth=growth, blocks=blocks, stem=stem)
    assert totals.params == published == zoo.counts(model)[0]
    assert totals.non_trainable == zoo.counts(model)[1]
    assert totals.macs == zoo.conv_linear_macs(model, IMAGENET)


def test_densenet_is_121_layers_deep():
    # 1 stem conv + 2 per dense layer x (6 + 12 + 24 + 16) + 3 transitions + the classifier
    totals = report("densenet121").totals
    assert totals.depth == 1 + 2 * 58 + 3 + 1 == 121


# --- U-Net: Figure 1's shapes, parameters and MACs from per-layer arithmetic ------------------

# (c_in, c_out, kernel, output side) of every convolution, and (c_in, c_out, input side) of the
# 2x2 stride-2 up-convolutions, following Figure 1: unpadded 3x3 lose 2 pixels a side.
UNET_CONVS = [
    (1, 64, 3, 570), (64, 64, 3, 568), (64, 128, 3, 282), (128, 128, 3, 280),
    (128, 256, 3, 138), (256, 256, 3, 136), (256, 512, 3, 66), (512, 512, 3, 64),
    (512, 1024, 3, 30), (1024, 1024, 3, 28),
    (1024, 512, 3, 54), (512, 512, 3, 52), (512, 256, 3, 102), (256, 256, 3, 100),
    (256, 128, 3, 198), (128, 128, 3, 196), (128, 64, 3, 390), (64, 64, 3, 388),
    (64, 2, 1, 388),
]
UNET_UPCONVS = [(1024, 512, 28), (512, 256, 52), (256, 128, 100), (128, 64, 196)]
UNET_PARAMS = (sum(ci * co * k * k + co for ci, co, k, _ in UNET_CONVS)
               + sum(ci * co * 4 + co for ci, co, _ in UNET_UPCONVS))
# a transposed conv: every input pixel times the whole 2x2 kernel into each output channel
UNET_MACS = (sum(s * s * co * ci * k * k for ci, co, k, s in UNET_CONVS)
             + sum(s * s * ci * co * 4 for ci, co, s in UNET_UPCONVS))


def test_unet_figure_1():
    g = graph.build(spec.load(SPECS / "unet.yaml"))
    totals = analysis.analyze(g).totals
    assert g.input_shape == zoo.PAPERS["unet"]["input"] == UNET_INPUT
    assert g.rows[-1].out_shape == zoo.PAPERS["unet"]["output"] == (2, 388, 388)
    assert totals.params == UNET_PARAMS == 31_030_658 == zoo.counts(zoo.unet())[0]
    assert totals.non_trainable == 0
    assert totals.macs == UNET_MACS
    assert totals.depth == 23           # "In total the network has 23 convolutional layers."
    shapes = {layer.name: layer.out_shape for layer in g.layers()}
    # copy and crop: the encoder's map, centre-cropped to the up-convolution's size, goes first
    for level, (channels, side, up) in {4: (512, 64, 56), 3: (256, 136, 104),
                                        2: (128, 280, 200), 1: (64, 568, 392)}.items():
        assert shapes[f"enc{level}.conv2"] == (channels, side, side)
        assert shapes[f"dec{level}.up"] == (channels, up, up)
        assert shapes[f"dec{level}.crop"] == (channels, up, up)
        assert shapes[f"dec{level}.concat"] == (2 * channels, up, up)


@pytest.mark.slow  # the reference's 572x572 forward pass: ~150 G multiply-adds on one thread
def test_unet_macs_equal_the_reference_model():
    assert report("unet").totals.macs == zoo.conv_linear_macs(zoo.unet(), UNET_INPUT) == UNET_MACS


# --- the papers' printed figures ---------------------------------------------------------------

# SqueezeNet Table 1, "# parameter before pruning" per layer (biases included) and its total
SQUEEZENET_TABLE_1 = {"conv1": 14_208, "fire2": 11_920, "fire3": 12_432, "fire4": 45_344,
                      "fire5": 49_440, "fire6": 104_880, "fire7": 111_024, "fire8": 188_992,
                      "fire9": 197_184, "conv10": 513_000}


def test_squeezenet_audit_agrees_with_table_1():
    r = report("squeezenet1_0")
    rows = {row.name: row for row in r.rows}
    for name, printed in SQUEEZENET_TABLE_1.items():
        assert rows[name].params == printed
        assert rows[name].paper["params"].printed == str(printed)
        assert not rows[name].paper["params"].flag
    assert sum(SQUEEZENET_TABLE_1.values()) == 1_248_424 == r.totals.params
    assert r.paper["params"].printed == "1248424" and not r.paper["params"].flag
    assert r.audited == 11 and r.flagged == []


@pytest.mark.parametrize("name", ["densenet121", "unet"])
def test_papers_that_print_no_count_are_not_audited(name):
    r = report(name)
    assert r.audited == 0 and r.paper == {}


# --- PyTorch: verify, and the built models compute what the references compute ---------------

# Each spec is verified against PyTorch and fvcore, layer by layer, with every bundled spec in
# tests/test_verify.py (U-Net's 150 G multiply-adds there marked slow).


def _by_kind(model):
    """Each parametrized module's weights and statistics, grouped by its torch.nn class (archcalc's
    FlattenLinear is a Linear), in module order
    (the reference runs all up-convolutions of U-Net in one list; the spec, each by its level)."""
    groups = {}
    for module in model.modules():
        own = [t for t in module.state_dict(keep_vars=True).items() if "." not in t[0]]
        if own:
            kind = next(c for c in type(module).__mro__ if c.__module__.startswith("torch.nn"))
            groups.setdefault(kind, []).extend(t for _, t in own)
    return groups


def _same_outputs(name, reference, input_shape):
    """Random weights and BatchNorm statistics in the reference, copied into archcalc's model
    value by value in module order (per kind of module); both must then compute the same
    function."""
    from archcalc.pytorch.build import build_model
    torch.manual_seed(0)
    with torch.no_grad():
        for key, value in reference.state_dict().items():
            if value.is_floating_point():
                value.copy_(torch.rand_like(value) + 0.5 if "running_var" in key
                            else torch.randn_like(value) * 0.1)
    model = build_model(name, input=input_shape)
    ours, theirs = _by_kind(model), _by_kind(reference)
    assert {k: [t.shape for t in v] for k, v in ours.items()} == \
        {k: [t.shape for t in v] for k, v in theirs.items()}
    with torch.no_grad():
        for kind, tensors in ours.items():
            for mine, reference_tensor in zip(tensors, theirs[kind]):
                mine.copy_(reference_tensor)
    model.eval(), reference.eval()
    x = torch.randn(2, *input_shape)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-5, rtol=1e-4)


def test_unet_model_follows_the_skip_edges():
    """The smallest tile U-Net takes (188: a 4x4 map at the bottom) keeps every crop; a skip
    edge wired to the wrong layer, or the concatenation in the other order, changes the output."""
    _same_outputs("unet", zoo.unet(), (1, 188, 188))


def test_unet_output_depends_on_the_copied_map():
    from archcalc.pytorch.build import build_model
    torch.manual_seed(0)
    model = build_model("unet", input=(1, 188, 188)).eval()
    x = torch.randn(1, 1, 188, 188)
    with torch.no_grad():
        before = model(x)
        # perturb what enc1 gives only to the copy-and-crop edge: the decoder's last level
        crop = dict(model.named_modules())["dec1.crop"]
        handle = crop.register_forward_hook(lambda module, inputs, out: out + 1.0)
        after = model(x)
        handle.remove()
    assert after.shape == before.shape == (1, 2, 4, 4)
    assert not torch.allclose(before, after)


@pytest.mark.parametrize("name", ["squeezenet1_0", "densenet121"])
def test_torchvision_models_compute_what_the_references_compute(name):
    _same_outputs(name, zoo.TORCHVISION_BUILDERS[name](), IMAGENET)


def test_a_figure_printed_in_units_reads_in_units():
    from archcalc.views.report import network_audit
    assert network_audit(report("squeezenet1_0")) == (
        "paper, whole network: params 1248424 printed, 1248424 computed (+0.0%) ✓")
