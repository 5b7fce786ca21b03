"""Receptive fields (core/receptive.py) against hand arithmetic and against gradients.

The oracle no one wrote the answer to: a linearized copy of each bundled spec's PyTorch model
(every weight positive, nonlinearities gone, max pools averaged, one channel per layer), made
from the torch modules archcalc builds and not from the receptive-field code, is run on an input
large enough that nothing is clipped; the extent of the non-zero input gradient of one output
position is what that position sees. The analytic footprint of the same position must match,
at every row's output (several depths), and for small networks at every layer.
"""
import glob
import math
from fractions import Fraction
from pathlib import Path

import pytest

from archcalc.core import graph, receptive, spec

SPECS = sorted(Path(p).stem for p in glob.glob(str(Path(__file__).resolve().parent.parent /
                                                   "archcalc" / "specs" / "*.yaml")))
SLOW = {"resnet", "resnet:resnet152", "unet", "vgg", "densenet121", "convnext-t", "googlenet",
        "efficientnet-b0"}


def built(layers: str, input_shape="[1, 64, 64]"):
    """A graph of one-line layers (``- conv: {out: 1, kernel: 3}``), each its own row."""
    body = "".join(f"  l{i}: {{{line.strip()[2:]}}}\n"
                   for i, line in enumerate(layers.strip().splitlines()))
    return graph.build(spec.parse(f"input: {input_shape}\nlayers:\n{body}", "t.yaml"))


def last_field(layers: str, input_shape="[1, 64, 64]"):
    g = built(layers, input_shape)
    fields = receptive.fields(g)
    return fields.fields[fields.order[-1]]


# --- hand arithmetic ---------------------------------------------------------------------

def test_two_3x3_convolutions_see_5():
    f = last_field("- conv: {out: 1, kernel: 3}\n- conv: {out: 1, kernel: 3}")
    assert f.size == (5, 5) and f.jump == (1, 1)
    assert f.start == (0, 0)     # padding 'same' (1 each side): output 0 is centred on pixel 0


def test_stride_2_then_3x3_sees_7_with_jump_2():
    # 3×3/2 sees 3; the next 3×3 adds 2 neighbours 2 pixels apart on each side: 3 + 2·2 = 7
    f = last_field("- conv: {out: 1, kernel: 3, stride: 2, padding: 0}\n"
                   "- conv: {out: 1, kernel: 3, padding: 0}")
    assert f.size == (7, 7) and f.jump == (2, 2)
    assert f.start == (3, 3)    # unpadded: output 0 of 7 pixels 0..6 is centred on 3


def test_dilation_2_3x3_sees_5():
    f = last_field("- conv: {out: 1, kernel: 3, dilation: 2, padding: 0}")
    assert f.size == (5, 5) and f.start == (2, 2)


def test_rectangular_kernels_and_strides_keep_height_and_width_apart():
    # height: 5 then 3/2 → 5 + 2·1 = 7, jump 2·1; width: 1 then 3/1 → 3, jump 1
    f = last_field("- conv: {out: 1, kernel: [5, 1], padding: 0}\n"
                   "- maxpool: {kernel: [3, 3], stride: [2, 1]}")
    assert f.size == (7, 3) and f.jump == (2, 1) and f.start == (3, 1)


def test_a_transposed_convolution():
    # 3×3/2, no padding: output o gets input j where o = 2j + t, t in 0..2; o = 2 reads j = 0
    # (t = 2) and j = 1 (t = 0): 2 pixels; odd o reads one (t = 1)
    g = built("- conv_transpose: {out: 1, kernel: 3, stride: 2}")
    fields = receptive.fields(g)
    name = fields.order[-1]
    assert fields.footprint(name, 2, 3) == ((0, 1), (1, 1))
    assert fields.fields[name].size == (2, 2) and fields.fields[name].jump == (Fraction(1, 2),) * 2
    # output 0 is input 0's tap t = 0 and, unclipped (the map taken to go on before pixel 0),
    # input -1's tap t = 2: centred half a pixel before pixel 0
    assert fields.fields[name].start == (Fraction(-1, 2),) * 2


def test_output_padding_adds_a_row_no_input_reaches_but_the_unpadded_arithmetic():
    f = last_field("- conv_transpose: {out: 1, kernel: 2, stride: 2, output_padding: 1}\n"
                   "- conv: {out: 1, kernel: 3, padding: 0}", "[1, 8, 8]")
    # 2×2/2 makes each input pixel a 2×2 block; a 3×3 over two blocks sees 2 pixels
    assert f.size == (2, 2) and f.jump == (Fraction(1, 2),) * 2


def test_a_global_pool_and_what_follows_see_the_whole_input():
    g = built("- conv: {out: 2, kernel: 3}\n- gap: {}\n- linear: {out: 3}", "[1, 20, 12]")
    fields = receptive.fields(g)
    for name in fields.order[1:]:
        f = fields.fields[name]
        assert f.whole and f.size == (20, 12) and f.start == (Fraction(19, 2), Fraction(11, 2))


def test_an_se_gate_makes_the_gated_map_see_the_whole_input():
    text = """input: [2, 16, 16]
layers:
  c: {conv: {out: 2, kernel: 3}}
  se:
    mul:
      main: [{identity: {}}]
      gate: [{gap: {}}, {conv: {out: 2, kernel: 1}}]
  after: {conv: {out: 2, kernel: 3}}
"""
    fields = receptive.fields(graph.build(spec.parse(text, "t.yaml")))
    assert not fields.fields["c.conv"].whole
    assert fields.fields["se"].whole and fields.fields["se"].size == (16, 16)
    assert fields.fields["after.conv"].whole


def test_bilinear_weights_of_exactly_zero_read_nothing():
    # ×3: output o's source is (o + 1/2)/3 - 1/2; o = 1 gives 0 exactly, one pixel; o = 2 gives
    # 1/3, pixels 0 and 1
    g = built("- upsample: {scale: 3, mode: bilinear}", "[1, 8, 8]")
    fields = receptive.fields(g)
    name = fields.order[-1]
    assert fields.footprint(name, 1, 2) == ((0, 0), (0, 1))
    assert fields.fields[name].size == (2, 2) and fields.fields[name].jump == (Fraction(1, 3),) * 2


def test_adaptive_pooling_windows_overlap_where_the_size_does_not_divide():
    # 13 to 6: output 1 pools floor(13/6) = 2 to ceil(26/6) - 1 = 4: 3 pixels
    f = last_field("- adaptive_avgpool: {size: 6}", "[1, 13, 13]")
    assert f.size == (3, 3) and f.jump == (Fraction(13, 6),) * 2


def test_crop_reads_only_its_first_branch_offset_to_the_centre():
    text = """input: [1, 12, 12]
layers:
  wide: {conv: {out: 1, kernel: 3, padding: 0}}
  small: {conv: {out: 1, kernel: 5, padding: 0}}
  cut: {crop: [{from: wide}, {from: small}]}
"""
    fields = receptive.fields(graph.build(spec.parse(text, "t.yaml")))
    # wide is 10×10, small 6×6 (kernel 5 on wide): the crop starts 2 in, at wide's output 2,
    # which sees pixels 2..4; small's 5×5 window of wide's windows (7 pixels) is not read
    assert fields.footprint("cut", 0, 0) == ((2, 4), (2, 4))
    assert fields.fields["cut"].size == (3, 3)


# --- the oracle: gradients of a linearized copy of the built model -----------------------

def linearized(graph_):
    """The graph's PyTorch model with every module replaced by a linear, positive,
    one-channel stand-in derived from the module itself (float64)."""
    import torch
    from torch import nn

    from archcalc.pytorch import build as torch_build
    from archcalc.pytorch import modules

    class Windowed(nn.Module):
        """Sums the input channels, then one 1→1 (transposed) convolution of the module's
        kernel, stride, padding and dilation, every weight 1/kernel area."""

        def __init__(self, m):
            super().__init__()
            kind = nn.ConvTranspose2d if isinstance(m, nn.ConvTranspose2d) else nn.Conv2d
            extra = {"output_padding": m.output_padding} if kind is nn.ConvTranspose2d else {}
            self.conv = kind(1, 1, m.kernel_size, m.stride, m.padding, dilation=m.dilation,
                             bias=False, dtype=torch.float64, **extra)
            with torch.no_grad():
                self.conv.weight.fill_(1 / math.prod(m.kernel_size))

        def forward(self, x):
            return self.conv(x.mean(1, keepdim=True))

    class Summed(nn.Module):
        """A linear layer: one feature, the mean of its whole input."""

        def forward(self, x):
            return x.flatten(1).mean(1, keepdim=True)

    def stand_in(m):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            return Windowed(m)
        if isinstance(m, nn.Linear):
            return Summed()
        if isinstance(m, nn.MaxPool2d):
            return nn.AvgPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)
        if isinstance(m, nn.AdaptiveMaxPool2d):
            return nn.AdaptiveAvgPool2d(m.output_size)
        if isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Upsample, nn.Flatten)):
            return m
        if not list(m.children()) and type(m).__module__.startswith(("torch.nn", "archcalc")):
            return nn.Identity()    # norms, activations, dropout, scales, shuffles
        raise AssertionError(f"no stand-in for {type(m).__name__}")

    with torch.device("meta"):
        model = torch_build.build_module(graph_)
    for parent in list(model.modules()):
        for local, child in list(parent._modules.items()):
            if child is not None and not isinstance(child, torch_build._Container) and \
                    not list(child.children()):     # a leaf: not a sequence of from: steps
                parent._modules[local] = stand_in(child)
        # a mul (a gate) is bilinear: x·g would square the values at every gate, to
        # overflow (or underflow: exact zeros) after a dozen; a sum keeps the same inputs
        if isinstance(getattr(parent, "join", None), modules.Mul):
            parent.__dict__["join"] = modules.Add()
    assert not any(p.is_meta for p in model.parameters())
    return model.eval()


def measured(graph_, targets):
    """Per (layer, i, j) in ``targets``: the (rows, columns) of the input whose gradient is
    non-zero for that output position (the sum of all outputs for a vector), None where none
    is (a transposed convolution's output that no tap reaches). One backward
    pass: sample n of a batch back-propagates from target n only (nothing mixes samples)."""
    import torch

    model = linearized(graph_)
    outputs = {}
    modules = dict(model.named_modules())
    for name in {name for name, _, _ in targets}:
        modules[name].register_forward_hook(
            lambda m, args, out, name=name: outputs.__setitem__(name, out))
    x = torch.ones((len(targets), 1) + graph_.input_shape[1:], dtype=torch.float64,
                   requires_grad=True)
    with torch.no_grad():
        model(x.detach()[:1].expand((1,) + graph_.input_shape))     # a dry run: shapes
    model(x.expand((len(targets),) + graph_.input_shape))
    total = 0
    for n, (name, i, j) in enumerate(targets):
        out = outputs[name]
        total = total + (out[n, :, i, j].sum() if out.dim() == 4 else out[n].sum())
    grad, = torch.autograd.grad(total, x)
    assert torch.isfinite(grad).all()       # else a NaN would read as "reached"
    extents = []
    for n in range(len(targets)):
        rows = torch.nonzero(grad[n, 0].abs().sum(1)).flatten().tolist()
        cols = torch.nonzero(grad[n, 0].abs().sum(0)).flatten().tolist()
        extents.append(((rows[0], rows[-1]), (cols[0], cols[-1])) if rows else None)
    return extents


def centre(layer):
    """The centre output position of a map (0, 0 for a vector)."""
    return (layer.out_shape[1] // 2, layer.out_shape[2] // 2) if len(layer.out_shape) == 3 \
        else (0, 0)


def checked_layers(g, every: bool):
    """Every row's output (and every layer for a small network), the heads left out."""
    layers = g.layers()
    if every:
        return layers
    ends = {list(r.group.layers())[-1].name for r in g.rows}
    return [layer for layer in layers if layer.name in ends]


def large_enough(loaded, checked_names):
    """The smallest input (the spec's, grown by 32s) at which every checked layer's centre
    output sees no padding. The receptive-field code only picks the size: at a size too small
    the measured extent would be clipped, and the comparison fail rather than pass."""
    size = loaded.input_shape[1]
    while True:
        g = graph.build(loaded.spec, loaded.variant,
                        input_shape=(loaded.input_shape[0], size, size))
        fields = receptive.fields(g)
        layers = {layer.name: layer for layer in g.layers()}
        spans = [fields.footprint(n, *centre(layers[n])) for n in checked_names]
        if all(0 <= a[0] and a[1] < size for s in spans for a in s):
            return g, fields
        size += 32


def bundled(name):
    """A bundled spec's graph; ``resnet:resnet152`` names a variant."""
    name, _, variant = name.partition(":")
    return graph.build(spec.load(Path(__file__).resolve().parent.parent / "archcalc" /
                                 "specs" / f"{name}.yaml"), variant or None)


def each_spec(slow):
    return [pytest.param(n, marks=pytest.mark.slow) if n in slow else n
            for n in SPECS + ["resnet:resnet152"]]


@pytest.mark.parametrize("name", each_spec(SLOW | {"googlenet-cifar"}))
def test_unclipped_the_field_is_what_gradients_reach_on_a_large_input(name):
    """At every row's output (every layer of a small network): the centre position's
    footprint on an input where it sees no padding."""
    pytest.importorskip("torch")
    loaded = bundled(name)
    at_spec = receptive.fields(loaded)
    # fields up to 800 pixels (an input up to about 832): DenseNet's 2,071 would take minutes
    names = [layer.name for layer in checked_layers(loaded, len(loaded.layers()) <= 60)
             if max(at_spec.fields[layer.name].size) <= 800]
    g, fields = large_enough(loaded, names)
    layers = {layer.name: layer for layer in g.layers()}
    targets = [(n,) + centre(layers[n]) for n in names]
    want = [fields.footprint(n, i, j) for n, i, j in targets]
    assert dict(zip(names, measured(g, targets))) == dict(zip(names, want))
    for n, ((a, b), (c, d)) in zip(names, want):    # the table's RF: the largest over positions
        assert fields.fields[n].size[0] >= b - a + 1 and fields.fields[n].size[1] >= d - c + 1


@pytest.mark.parametrize("name", each_spec(SLOW | {"mobilenetv2", "squeezenet1_0"}))
def test_clipped_at_the_spec_input_corners_and_centre_are_what_gradients_reach(name):
    """At the spec's own input, where deep layers' windows reach into the padding: what each
    row's output sees within the image, at its first, centre and last position."""
    pytest.importorskip("torch")
    g = bundled(name)
    fields = receptive.fields(g)
    targets = []
    for layer in checked_layers(g, False):
        if len(layer.out_shape) != 3:
            targets.append((layer.name, 0, 0))
            continue
        _, h, w = layer.out_shape
        targets += [(layer.name, 0, 0), (layer.name,) + centre(layer),
                    (layer.name, h - 1, w - 1)]
    want = [fields.footprint(n, i, j, clipped=True) for n, i, j in targets]
    assert dict(zip(targets, measured(g, targets))) == dict(zip(targets, want))


# --- `archcalc table --rf` -----------------------------------------------------------------

def cli(*args):
    from typer.testing import CliRunner

    from archcalc.cli import app
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout


def test_table_rf_in_json_has_every_row_and_layer_and_says_what_sees_the_whole_input():
    import json
    code, out = cli("table", "vgg", "--rf", "-f", "json")
    assert code == 0
    data = json.loads(out)
    # VGG-16: thirteen 3×3 convolutions and four 2×2/2 pools before the fifth pool; the RF
    # grows by 2·jump per convolution and by jump per pool: 2·(2·1 + 2·2 + 3·4 + 3·8 + 3·16)
    # + (1 + 2 + 4 + 8) + 1 = 180 + 15 + 1 = 196 after conv5_3, +16 after pool5: 212
    by_name = {r["name"]: r["rf"] for r in data["rows"]}
    assert by_name["pool5"] == {"size": [212, 212], "whole": False, "jump": [32, 32],
                                "start": [15.5, 15.5]}
    assert all("rf" in layer for layer in data["layers"])
    assert data["rf"]["input"] == [224, 224]
    assert data["rf"]["centre_sees_whole_input"] is False      # 212 < 224
    assert data["layers"][-1]["rf"]["whole"] and data["layers"][-1]["rf"]["jump"] is None
    code, out = cli("table", "vgg", "-f", "json")
    assert "rf" not in json.loads(out) and "rf" not in json.loads(out)["rows"][0]


def test_table_rf_columns_in_csv_and_markdown_and_the_summary_line():
    import csv
    import io
    code, out = cli("table", "cifar-cnn", "--rf", "--detail", "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows[0]["RF"] == "3" and rows[0]["jump"] == "1"
    code, out = cli("table", "cifar-cnn", "--rf", "-f", "markdown")
    header = next(line for line in out.splitlines() if line.startswith("| name"))
    assert code == 0 and [c.strip() for c in header.split("|")][-4:-1] == ["RF", "jump", "start"]
    code, out = cli("table", "resnet18-cifar", "--rf", "-f", "csv")
    # a 3×3 stem (3), then per stage four 3×3 convolutions, each adding 2 jumps; the first at
    # the stage's old jump (its stride 2 doubles it after): layer1 3 + 4·2 = 11; layer2
    # 11 + 2 + 3·4 = 25; layer3 25 + 4 + 3·8 = 53; layer4 53 + 8 + 3·16 = 109
    assert [r["RF"] for r in csv.DictReader(io.StringIO(out))][:5] == \
        ["3", "11", "25", "53", "109"]
    code, out = cli("table", "resnet18-cifar", "--rf")
    assert "its centre output sees the whole 32×32 input" in out
    assert "from avgpool.adaptive_avgpool on, every layer sees the whole input" in out


def test_table_rf_refuses_the_keras_style():
    code, _ = cli("table", "vgg", "--rf", "--style", "keras")
    assert code == 2


def test_table_rf_fits_80_columns_in_a_terminal():
    from test_width import in_terminal
    for args in (["table", "googlenet", "--rf"], ["table", "googlenet", "--rf", "--detail"]):
        text, code = in_terminal(args, 80)
        assert code == 0 and max(map(len, text.splitlines())) <= 80
        assert " RF " in text and "907" in text     # GoogLeNet's last map sees 907 pixels


OPS_NO_BUNDLED_SPEC_USES = {
    "bilinear ×3 (weights of exactly 0), a 3×3 after it": (
        "- upsample: {scale: 3, mode: bilinear}\n- conv: {out: 1, kernel: 3}", "[1, 6, 5]"),
    "bilinear and nearest to sizes that do not divide": (
        "- upsample: {size: [11, 7], mode: bilinear}\n- upsample: {size: [17, 9]}",
        "[1, 5, 4]"),
    "dilated transposed convolution with output padding": (
        "- conv_transpose: {out: 2, kernel: 3, stride: 2, dilation: 3, output_padding: 1, "
        "padding: 1}\n- conv: {out: 1, kernel: [3, 1], stride: [1, 2], padding: 0}",
        "[1, 6, 6]"),
    "adaptive pools that overlap, ceil-mode and padded pools": (
        "- maxpool: {kernel: 3, stride: 2, ceil: true}\n- avgpool: {kernel: 3, stride: 1, "
        "padding: 1}\n- adaptive_maxpool: {size: [6, 4]}\n- adaptive_avgpool: {size: 3}",
        "[1, 27, 26]"),
}


@pytest.mark.parametrize("case", sorted(OPS_NO_BUNDLED_SPEC_USES))
def test_every_position_of_the_ops_no_bundled_spec_uses_is_what_gradients_reach(case):
    """Every output position of every layer, within the image, against gradients."""
    pytest.importorskip("torch")
    g = built(*OPS_NO_BUNDLED_SPEC_USES[case])
    fields = receptive.fields(g)
    targets = [(layer.name, i, j) for layer in g.layers()
               for i in range(layer.out_shape[1]) for j in range(layer.out_shape[2])]
    want = [None if None in p else p
            for p in (fields.footprint(n, i, j, clipped=True) for n, i, j in targets)]
    assert None in want or "transposed" not in case     # the case has outputs that see nothing
    assert dict(zip(targets, measured(g, targets))) == dict(zip(targets, want))


# --- the closed forms against the position-by-position path ------------------------------

# Where a sliding window's closed form must stop short (receptive._slide): windows with holes
# cut at the border, strides that skip the last rows, windows in the padding alone, a join
# whose branch with the lowest first pixel does not have the lowest first pixel within the
# image; beside them every op no bundled spec uses.
EDGES = {
    "dilated windows cut at the border": (
        "- conv: {out: 1, kernel: 3, dilation: 2, padding: 1}\n"
        "- conv: {out: 1, kernel: 3, dilation: 3, padding: 2}\n- conv: {out: 1, kernel: 3}",
        "[1, 11, 10]"),
    "a stride that skips the last rows, then padded and ceil-mode windows": (
        "- conv: {out: 1, kernel: 3, stride: 2, padding: 0}\n- conv: {out: 1, kernel: 3}\n"
        "- maxpool: {kernel: 3, stride: 2, ceil: true}\n- conv: {out: 1, kernel: 3}",
        "[1, 8, 9]"),
    "windows in the padding alone": (
        "- conv: {out: 1, kernel: 1, padding: 2}\n- conv: {out: 1, kernel: 3, stride: 3}\n"
        "- conv: {out: 1, kernel: 2, dilation: 3, padding: 1}", "[1, 9, 8]"),
    "a strided 1×1 whose first window is padding, its last not (height)": (
        "- conv: {out: 1, kernel: 1, stride: 2, padding: 1}\n- conv: {out: 1, kernel: 3}",
        "[1, 10, 9]"),
}

JOIN_OF_UNEVEN_BOUNDS = """input: [1, 12, 12]
layers:
  wide: {conv: {out: 1, kernel: 3, padding: 0}}
  small: {conv: {out: 1, kernel: 5, padding: 0}}
  cut: {crop: [{from: wide}, {from: small}]}
  padded: {conv: {out: 1, kernel: 7, padding: 3}}
  both: {concat: [{from: padded}, {from: small}]}
  after: {conv: {out: 1, kernel: 3}}
"""

# a 1×1 map that is no global pool (a window the size of the input), broadcast by a gate: its
# branch moves by 0 pixels per output, the map's by 1
BROADCAST_OF_A_WINDOW = """input: [1, 8, 8]
layers:
  c: {conv: {out: 1, kernel: 3}}
  gated:
    mul:
      main: [{identity: {}}]
      gate: [{conv: {out: 1, kernel: 8, padding: 0}}]
  after: {conv: {out: 1, kernel: 3}}
"""


def closed_and_by_position(g, heads=False):
    """``g``'s fields worked out with the closed forms and without (position by position)."""
    closed = receptive.fields(g, heads)
    receptive.CLOSED_FORM = False
    try:
        by_position = receptive.fields(g, heads)
    finally:
        receptive.CLOSED_FORM = True
    return closed, by_position


def assert_same_footprints(g, heads=False):
    """Every layer's field, jump, and every footprint the position-by-position path worked
    out, unclipped and within the image, are the closed forms' too."""
    closed, by_position = closed_and_by_position(g, heads)
    assert closed.order == by_position.order and closed.fields == by_position.fields
    shapes = {layer.name: layer.out_shape for layer in g.layers(heads)}
    for name in by_position.order:
        for k, (fast, slow) in enumerate(zip(closed.tracks[name], by_position.tracks[name])):
            assert (fast.jump, fast.whole) == (slow.jump, slow.whole), name
            if slow.whole is not None:
                continue
            size = shapes[name][k + 1]
            worked = (range(slow.origin, slow.origin + len(slow.lo)) if slow.line is None
                      else range(-size, 2 * size))
            assert [fast.at(i) for i in worked] == [slow.at(i) for i in worked], name
            assert [fast.within(i) for i in range(size)] == \
                [slow.within(i) for i in range(size)], name
    return closed, by_position


def every_variant():
    names = []
    for name in SPECS:
        loaded = spec.load(Path(__file__).resolve().parent.parent / "archcalc" / "specs" /
                           f"{name}.yaml")
        names += [name] + [f"{name}:{v}" for v in list(loaded.network_variants)[1:]]
    return names


@pytest.mark.parametrize("name", every_variant())
def test_closed_forms_give_every_footprint_of_every_bundled_spec_as_position_by_position(name):
    closed, by_position = assert_same_footprints(bundled(name))

    def lines(found):   # layers whose footprints are lines, the input's shared ones aside
        return [n for n in found.order if found.tracks[n][0].line not in (None, (0, 0))]
    assert lines(closed) and not lines(by_position)


@pytest.mark.parametrize("case", sorted(EDGES) + sorted(OPS_NO_BUNDLED_SPEC_USES))
def test_closed_forms_stop_where_they_would_differ(case):
    assert_same_footprints(built(*{**EDGES, **OPS_NO_BUNDLED_SPEC_USES}[case]))


def test_closed_forms_of_a_gate_that_broadcasts_a_window():
    g = graph.build(spec.parse(BROADCAST_OF_A_WINDOW, "t.yaml"))
    assert_same_footprints(g)
    fields = receptive.fields(g)
    # the gate reads c's 0 .. 7, which see pixels -1 .. 8; position i of the map sees i - 1 ..
    # i + 1: within those for i in 0 .. 7, and beyond them at position 8 (after's padding)
    assert [fields.footprint("gated", i, 0)[0] for i in (0, 7, 8)] == [(-1, 8)] * 2 + [(-1, 9)]
    # after's position 0 reads gated's -1 .. 1, unclipped -2 .. 8: 11 pixels; position 7 -1 .. 9
    assert fields.fields["gated"].jump == (1, 1) and fields.fields["after.conv"].size == (11, 11)


def test_closed_forms_of_a_join_of_uneven_bounds():
    g = graph.build(spec.parse(JOIN_OF_UNEVEN_BOUNDS, "t.yaml"))
    assert_same_footprints(g)
    # by hand: cut's position i is wide's 2 + i, which sees pixels 2 + i .. 4 + i (i < 6:
    # within the image pixels 2 .. 9 in all); padded's position i sees cut's i - 3 .. i + 3,
    # unclipped pixels i - 1 .. i + 7; small's i sees i .. i + 6. Unclipped, both's row 0 sees
    # -1 .. 7, its column 1 0 .. 8
    fields = receptive.fields(g)
    assert fields.footprint("both", 0, 1) == ((-1, 7), (0, 8))
    # within the image, position 1: padded reads cut's 0 .. 4 (pixels 2 .. 8), small 1 .. 7:
    # from 1 (small's, though padded reaches lower unclipped) to 8; position 0: padded reads
    # cut's 0 .. 3 (2 .. 7), small 0 .. 6: 0 to 7
    assert fields.footprint("both", 1, 0, clipped=True) == ((1, 8), (0, 7))
