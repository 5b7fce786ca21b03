"""Spec language 2's structure: block argument defaults, stages, ``from:`` edges, settings and
network variants, and the whole network's paper figures.

Expected numbers are worked out by hand in the comments beside them (weights = out × in × k²,
MACs = weights × output H×W), never taken from archcalc's output."""
import json
import textwrap

import pytest
from typer.testing import CliRunner

from archcalc.cli import app
from archcalc.core import analysis, compare
from archcalc.core.graph import INPUT, build
from archcalc.core.spec import parse
from archcalc.errors import SpecError

runner = CliRunner()


def spec(text: str, path: str = "lang.yaml"):
    return parse(textwrap.dedent(text), path)


def names(graph, row):
    return [l.name for l in graph.layers() if l.row == row]


# --- block argument defaults -----------------------------------------------------------------

DEFAULTS = """
input: [4, 8, 8]
blocks:
  unit:
    args: [out, {stride: 1}, {kernel: 3}]
    body: {conv: {out: out, kernel: kernel, stride: stride, bias: false}}
layers:
  a: {unit: [8]}
  b: {unit: {out: 8, stride: 2}}
  c: {unit: [8, 1, 1]}
"""


def test_a_block_argument_left_out_takes_its_default():
    g = build(spec(DEFAULTS))
    a, b, c = (row.group.out_shape for row in g.rows)
    assert a == (8, 8, 8)           # stride 1 by default: 8×8 kept
    assert b == (8, 4, 4)           # stride 2 given by name
    assert c == (8, 4, 4)           # all three given in order: 1×1 kernel
    params = [sum(l.counts().params for l in row.group.layers()) for row in g.rows]
    assert params == [8 * 4 * 9, 8 * 8 * 9, 8 * 8 * 1]


@pytest.mark.parametrize("call, message", [
    ("{unit: []}", "block 'unit' takes 1 to 3 arguments (out, stride, kernel), got 0"),
    ("{unit: {stride: 2}}", "block 'unit' is missing argument 'out'"),
    ("{unit: [8, 1, 1, 1]}", "block 'unit' takes 1 to 3 arguments (out, stride, kernel), got 4"),
])
def test_a_required_argument_is_never_silently_something_else(call, message):
    text = DEFAULTS.replace("a: {unit: [8]}", f"a: {call}")
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        spec(text)


def test_a_default_is_worked_out_at_the_call_from_the_arguments_given_and_the_input():
    text = """
    input: [12, 4, 4]
    settings: {out: 99}
    blocks:
      mlp:
        args: [out, {hidden: "out * 4"}, {squeeze: "max(1, cin // 4)"}]
        body: [conv: {name: a, out: hidden, kernel: 1}, conv: {name: b, out: squeeze, kernel: 1},
               conv: {name: c, out: out, kernel: 1}]
    layers:
      m: {mlp: [2]}
    """
    g = build(spec(text))
    # hidden: the call's out (2, not the setting's 99) × 4; squeeze: the call's input 12 // 4
    assert [l.out_shape[0] for l in g.layers()] == [8, 3, 2]


def test_a_default_before_a_required_argument_is_refused():
    with pytest.raises(SpecError, match="argument 'kernel' has no default but follows one"):
        spec(DEFAULTS.replace("[out, {stride: 1}, {kernel: 3}]", "[out, {stride: 1}, kernel]"))


# --- stages ------------------------------------------------------------------------------------

STAGES = """
input: [8, 16, 16]
settings: {n: 3}
blocks:
  res:
    args: [out, {stride: 1}]
    body:
      - conv: {name: conv1, out: out, kernel: 3, stride: stride, bias: false}
      - conv: {name: conv2, out: out, kernel: 3, bias: false}
      - add: {main: {from: conv2}, shortcut: {from: input}}
  res_down:
    args: [out, {stride: 2}]
    body:
      - conv: {name: conv1, out: out, kernel: 3, stride: stride, bias: false}
      - conv: {name: conv2, out: out, kernel: 3, bias: false}
      - add:
          main: {from: conv2}
          downsample: [{from: input}, conv: {name: proj, out: out, kernel: 1, stride: stride, bias: false}]
layers:
  layer1: {stage: {block: res, repeat: n, args: {out: 8}}}
  layer2: {stage: {block: res, repeat: "n - 1", args: {out: 16}, first: {block: res_down}}}
"""


def test_a_stage_names_its_repeats_like_torchvision():
    g = build(spec(STAGES))
    assert names(g, "layer1")[:4] == ["layer1.0.conv1", "layer1.0.conv2", "layer1.0.add",
                                      "layer1.1.conv1"]
    assert [n for n in names(g, "layer1") if n.endswith(".add")] == [
        "layer1.0.add", "layer1.1.add", "layer1.2.add"]       # repeat: n = 3
    assert names(g, "layer2") == [
        "layer2.0.conv1", "layer2.0.conv2", "layer2.0.add.downsample.proj", "layer2.0.add",
        "layer2.1.conv1", "layer2.1.conv2", "layer2.1.add"]    # n - 1 = 2, the first projects
    assert g.rows[1].out_shape == (16, 8, 8)


def test_a_stage_counts_each_repeat_with_its_own_block():
    g = build(spec(STAGES))
    rows = analysis.analyze(g).rows
    # layer1: 3 repeats × 2 convs × 8·8·9 weights, on 16×16
    assert rows[0].params == 3 * 2 * 8 * 8 * 9
    assert rows[0].macs == 3 * 2 * 8 * 8 * 9 * 16 * 16
    # layer2.0: 16·8·9 + 16·16·9 + a 1×1 projection 16·8; layer2.1: 2 × 16·16·9; all on 8×8
    weights = (16 * 8 * 9 + 16 * 16 * 9 + 16 * 8) + 2 * 16 * 16 * 9
    assert rows[1].params == weights and rows[1].macs == weights * 8 * 8
    assert (rows[0].type, rows[1].type) == ("res ×3", "res_down ×1 + res ×1")


def test_a_stage_of_0_repeats_says_so():
    text = STAGES.replace("repeat: n,", "repeat: 0,")
    with pytest.raises(SpecError, match="'repeat' .* must be a positive integer, got 0"):
        build(spec(text))


def test_settings_change_a_stage_and_the_table_says_so():
    text = STAGES
    assert len(names(build(spec(text), settings={"n": "5"}), "layer1")) == 5 * 3
    g = build(spec(text), settings={"n": "5"})
    assert g.overrides == {"n": 5} and g.settings == {"n": 5}


# --- from: any earlier layer -------------------------------------------------------------------

SKIPS = """
input: [3, 16, 16]
layers:
  enc: {conv: {out: 4, kernel: 3, bias: false}}
  down: [maxpool: {kernel: 2}, conv: {out: 8, kernel: 3, bias: false}]
  up: {upsample: {scale: 2}}
  merge: {concat: [{from: enc}, {from: up}]}
  tail: [{from: down}, gap]
  out: {concat: [{from: tail}, [{from: merge}, gap]]}
"""


def test_from_takes_the_named_layers_output_and_the_graph_records_the_edge():
    g = build(spec(SKIPS))
    merge = next(l for l in g.layers() if l.name == "merge")
    assert merge.in_shapes == ((4, 16, 16), (8, 16, 16)) and merge.out_shape == (12, 16, 16)
    assert merge.inputs == ("enc.conv", "up.upsample")
    gap = next(l for l in g.layers() if l.name == "tail.gap")
    assert gap.in_shapes == ((8, 8, 8),) and gap.inputs == ("down.conv",)
    assert next(l for l in g.layers() if l.name == "out").inputs == ("tail.gap", "out.b2.gap")
    assert next(l for l in g.layers() if l.name == "enc.conv").inputs == (INPUT,)
    assert {"enc", "up", "down"} <= g.referenced


@pytest.mark.parametrize("edit, message", [
    ("tail: [{from: down}, gap]", None),
    ("tail: [{from: later}, gap]\n  later: gap", "'from: later' names a later layer"),
    ("tail: [{from: tail}, gap]", "'from: tail' names 'tail', which this layer is part of"),
    ("tail: [{from: dwn}, gap]", "'from: dwn' names no earlier layer — did you mean 'down'?"),
    ("tail: {add: [{from: enc}, {from: down}]}", "add needs branches of one shape, got "
                                                  "4×16×16, 8×8×8"),
])
def test_from_refuses_what_is_not_an_earlier_layer(edit, message):
    text = SKIPS.replace("tail: [{from: down}, gap]", edit)
    if message is None:
        build(spec(text))
        return
    with pytest.raises(SpecError, match=message):
        build(spec(text))


def test_a_layer_that_a_from_passes_over_is_refused():
    text = SKIPS.replace("out: {concat: [{from: tail}, [{from: merge}, gap]]}",
                         "out: [{from: tail}, flatten]")
    with pytest.raises(SpecError, match="lang.yaml:7:11: layer 'merge': its output reaches no "
                                        "later layer and is not the network's output"):
        build(spec(text))


def test_the_built_model_follows_the_from_edges():
    torch = pytest.importorskip("torch")
    from archcalc.pytorch.build import build_model
    model = build_model(spec(SKIPS)).eval()
    modules = dict(model.named_modules())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        enc = modules["enc.conv"](x)
        down = modules["down.conv"](torch.nn.functional.max_pool2d(enc, 2))
        up = torch.nn.functional.interpolate(down, scale_factor=2)
        merge = torch.cat([enc, up], dim=1)
        expected = torch.cat([down.mean(dim=(2, 3), keepdim=True),    # tail: from down, gap
                              merge.mean(dim=(2, 3), keepdim=True)], dim=1)
        assert torch.allclose(model(x), expected, atol=1e-6)
        assert model.tape.outputs == {}                     # nothing outlives the pass


def test_verify_checks_every_layer_of_a_graph_with_skips():
    pytest.importorskip("torch")
    from archcalc.pytorch.verify import verify
    result = verify(spec(SKIPS), device="cpu")
    assert result.ok and len(result.layers) == 8


# --- settings, network variants and the whole network's paper figures -------------------------

NETWORKS = """
input: [3, 8, 8]
settings: {width: 1.0, act: relu}
variants:
  small: {settings: {width: 0.5}, paper: {params: 224}}
  big: {settings: {width: 2}, paper: {params: 1.0K}}
paper: {params: 230}
paper_units: {params: 1000}
paper_params: params
layers:
  conv: {conv: {out: "round(8 * width)", kernel: 3, act: act}}
"""


def test_the_first_network_variant_is_the_default_and_its_figures_are_audited():
    r = analysis.analyze(build(spec(NETWORKS)))
    # small: width 0.5 → 4 filters: 4·3·9 weights + 4 biases = 112 params
    assert r.totals.params == 112 and r.settings == {"width": 0.5, "act": "relu"}
    # both the spec's figure (230) and the variant's (224) describe the default network
    assert {q: (c.printed, c.flag) for q, c in r.paper.items()} == {"params": ("224", True)}


def test_a_variant_sets_its_settings_and_brings_its_own_figures():
    r = analysis.analyze(build(spec(NETWORKS), "big"))
    assert r.totals.params == 16 * 3 * 9 + 16          # width 2: 16 filters = 448
    assert r.paper["params"].printed == "1.0K" and r.paper["params"].flag   # 0.448K
    assert r.audit_skipped is None


def test_set_overrides_a_setting_and_skips_the_audit_with_the_reason():
    r = analysis.analyze(build(spec(NETWORKS), settings={"width": "0.75"}))
    assert r.totals.params == 6 * 3 * 9 + 6             # round(8 × 0.75) = 6 filters
    assert r.paper == {}
    assert r.audit_skipped == "the paper's figures are for the spec's own settings, not width=0.75"


def test_whole_network_figures_count_biases_only_when_the_spec_says_so():
    text = NETWORKS.replace("paper_params: params\n", "").replace("{width: 0.5}, paper: {params: 224}",
                                                                   "{width: 0.5}, paper: {params: 108}")
    r = analysis.analyze(build(spec(text)))
    assert r.paper_params == "weights" and not r.paper["params"].flag    # 4·3·9 = 108


@pytest.mark.parametrize("given, message", [
    ({"widht": "1"}, "--set: no setting 'widht' — did you mean 'width'?"),
    ({"width": "1/0"}, "division by zero"),
    ({"width": "a b"}, "not a valid expression"),
])
def test_a_bad_setting_is_one_line(given, message):
    with pytest.raises(SpecError, match=message):
        build(spec(NETWORKS), settings=given)


def test_a_variant_may_only_set_declared_settings():
    with pytest.raises(SpecError, match="variant 'big': no setting 'depth'"):
        spec(NETWORKS.replace("big: {settings: {width: 2}", "big: {settings: {depth: 2}"))


def test_cli_set_reaches_table_and_compare_sides_are_settings(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(textwrap.dedent(NETWORKS))
    out = runner.invoke(app, ["table", str(path), "--set", "width=0.75", "-f", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["totals"]["params"] == 168 and data["settings"]["width"] == 0.75
    bad = runner.invoke(app, ["table", str(path), "--set", "width"])
    assert bad.exit_code == 2 and "--set takes NAME=VALUE" in bad.stderr
    c = compare.run("width=0.5", "width=2", str(path))
    assert (c.a.total("params"), c.b.total("params")) == (112, 448)
    assert c.a.settings == {"width": "0.5"}


def test_train_builds_the_network_with_its_settings(tmp_path):
    """--set reaches train's graph: 3 classes do not fit the synthetic set's 10."""
    path = tmp_path / "net.yaml"
    path.write_text(textwrap.dedent("""
        input: [3, 32, 32]
        settings: {classes: 10}
        layers:
          head: [gap, linear: {out: classes}]
    """))
    ok = runner.invoke(app, ["train", "synthetic", "--spec", str(path), "--set", "classes=3",
                             "--out", str(tmp_path / "run")])
    assert ok.exit_code == 2
    assert "gives 3 classes; data set 'synthetic' has 3×32×32 images in 10 classes" in ok.stderr
    assert not (tmp_path / "run").exists()


def test_a_run_records_its_settings_for_resume(tmp_path):
    from archcalc.training.runs import RunInfo
    info = RunInfo("net.yaml", None, "synthetic", None, False, True, {"width": "0.75"})
    info.save(tmp_path)
    assert RunInfo.load(tmp_path).settings == {"width": "0.75"}
    old = json.loads((tmp_path / "run.json").read_text())
    del old["settings"]                 # a run folder from before settings existed
    (tmp_path / "run.json").write_text(json.dumps(old))
    assert RunInfo.load(tmp_path).settings == {}


def test_compare_of_two_networks_neither_the_default_feeds_both_from_a():
    """resnet18 vs resnet34 (the default is resnet50): each stage is fed what ResNet-18 feeds
    it, not ResNet-50's 4× wider maps."""
    c = compare.run("resnet18", "resnet34", "resnet")
    layer2 = next(p for p in c.modules if p.name == "layer2")
    assert layer2.input_channels == 64 and c.fed_by == "resnet18"
    # ResNet-18's layer2: a projecting basic block (3×3 64→128, 3×3 128→128, 1×1 64→128) and a
    # plain one (two 3×3 128→128), five BatchNorms whose γ count as weights (β as biases)
    weights = 64 * 128 * 9 + 128 * 128 * 9 + 64 * 128 + 2 * 128 * 128 * 9 + 5 * 128
    assert layer2.a.weights == weights == 524_928


def test_compare_says_which_rows_could_not_be_built_alone(tmp_path):
    path = tmp_path / "skips.yaml"
    path.write_text(textwrap.dedent("""
        input: [1, 16, 16]
        settings: {w: 8}
        layers:
          enc: {conv: {out: w, kernel: 3}}
          down: [maxpool: {kernel: 2}, conv: {out: "w * 2", kernel: 3}]
          up: [upsample: {scale: 2}, conv: {out: w, kernel: 1}]
          merge: {concat: [{from: enc}, {from: up}]}
    """))
    c = compare.run("w=4", "w=8", str(path))
    assert [p.name for p in c.modules] == ["enc", "down", "up"] and c.apart == ["merge"]
    # merge: 2w channels of 16×16 in each whole network
    assert (c.a.rows["merge"].out_shape, c.b.rows["merge"].out_shape) == ((8, 16, 16),
                                                                          (16, 16, 16))
    shown = runner.invoke(app, ["compare", "w=4", "w=8", "--spec", str(path), "-f", "json"])
    assert json.loads(shown.stdout)["not_built_alone"] == ["merge"]


def test_a_leading_slash_looks_from_the_top_and_slash_input_is_the_networks_input():
    text = """
    input: [3, 8, 8]
    layers:
      a: {conv: {out: 4, kernel: 3}}
      b: {concat: [{from: a}, [{from: /input}, conv: {out: 2, kernel: 1}]]}
      c: {concat: [[{from: /a.conv}, gap], [{from: b}, gap]]}
    """
    g = build(spec(text))
    # b's second branch: a 1×1 conv on the network's 3 channels (2·3 weights + 2 biases), not
    # on row b's input (a's 4 channels)
    conv = next(l for l in g.layers() if l.name == "b.b2.conv")
    assert conv.in_shapes == ((3, 8, 8),) and conv.counts().params == 2 * 3 + 2
    assert conv.inputs == (INPUT,) and INPUT in g.referenced
    assert next(l for l in g.layers() if l.name == "c.b1.gap").inputs == ("a.conv",)
    with pytest.raises(SpecError, match="'from: /conv' names no earlier layer"):
        build(spec(text.replace("/a.conv", "/conv")))
