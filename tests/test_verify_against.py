"""verify --against: a spec compared, layer by layer, with a real model.

The real models are written here by hand in plain PyTorch (no archcalc), so the spec is
checked against something archcalc did not make; their MACs come from fvcore. The expected
factors are worked out from the feature-map sizes (a stride of 1 where the model has 2 keeps
four times the positions)."""
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archcalc.bridge.diff import compare, graph_to_ir
from archcalc.cli import app
from archcalc.core.graph import build
from archcalc.core.spec import load, parse
from archcalc.files import resolve_spec

runner = CliRunner()


# --- the bundled ResNet-50 against itself with the stem at stride 1 (the issue's case) --------

def test_a_stem_at_stride_1_is_named_with_four_times_the_macs():
    text = Path(resolve_spec("resnet")).read_text()
    stem = "conv1:   [conv: {out: 64, kernel: 7, stride: 2}"
    assert stem in text
    wrong = text.replace(stem, stem.replace("stride: 2", "stride: 1"))
    model = graph_to_ir(build(load(resolve_spec("resnet"))), "resnet50")
    result = compare(graph_to_ir(build(parse(wrong, "wrong.yaml"))), model)
    # 7×7 stride 1, padding 3, on 224×224 keeps 224² positions; stride 2 gives 112²
    factor = (224 * 224) // (112 * 112)
    assert factor == 4
    assert result.cause == f"conv1.conv: stride 1 in the spec, 2 in the model → {factor}× the MACs"
    assert not result.ok
    spec_totals = result.totals()
    assert spec_totals["params"][0] == spec_totals["params"][1]     # same parameters
    assert all(r.matched_by == "name" for r in result.rows)        # the same names throughout
    assert compare(model, model).ok


def test_a_repeat_too_few_is_named_as_the_missing_block():
    text = Path(resolve_spec("resnet")).read_text()
    assert "  n3: 6\n" in text
    short = graph_to_ir(build(parse(text.replace("  n3: 6\n", "  n3: 5\n"), "short.yaml")))
    model = graph_to_ir(build(load(resolve_spec("resnet"))), "resnet50")
    # a bottleneck: 3 convs, 3 batchnorms, 2 relus after bn1/bn2, the add, its relu
    assert compare(short, model).cause == \
        "the model has layer3.5 (10 layers) after layer3.4.relu, the spec does not"
    assert compare(model, short).cause == \
        "the spec has layer3.5 (10 layers) after layer3.4.relu, the model does not"


def test_the_comparison_imports_no_torch():
    """diff and its view are torch-free: only the importer and fvcore's count need torch."""
    import subprocess
    import sys
    code = ("import sys, archcalc.bridge.diff, archcalc.views.against; "
            "print(sorted(m for m in ('torch', 'fvcore') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# --- against a model written here in plain PyTorch ---------------------------------------------

torch = pytest.importorskip("torch")
pytest.importorskip("fvcore")
from torch import nn  # noqa: E402


class Block(nn.Module):
    """torchvision's BasicBlock, identity shortcut."""

    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class TinyResNet(nn.Module):
    def __init__(self, classes=10, stride=2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(Block(8), Block(8))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


SOURCE = f"{__name__}:TinyResNet"

SPEC = """\
input: [3, 32, 32]
defaults:
  conv: {bias: false}
blocks:
  basic:
    args: [width]
    body:
      - conv: {name: conv1, out: width, kernel: 3, padding: 1}
      - batchnorm: {name: bn1, act: relu}
      - conv: {name: conv2, out: width, kernel: 3, padding: 1}
      - batchnorm: {name: bn2}
      - add: [{from: bn2}, {from: input}]
      - relu
layers:
  conv1: [conv: {out: 8, kernel: 3, stride: 2, padding: 1}, batchnorm, relu]
  layer1: {stage: {block: basic, repeat: 2, args: {width: 8}}}
  avgpool: gap
  flatten: flatten
  fc: {linear: {out: 10}}
"""
STEM = "conv: {out: 8, kernel: 3, stride: 2, padding: 1}"


def spec_file(tmp_path, text=SPEC):
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return str(path)


def test_a_matching_spec_agrees_on_every_layer(tmp_path):
    result = runner.invoke(app, ["verify", spec_file(tmp_path), "--against", SOURCE])
    assert result.exit_code == 0, result.output
    # 3 stem layers, 2 blocks of 8 (conv, bn, relu, conv, bn, add, relu ... bn1's relu), 3 head
    assert result.stdout.strip().splitlines()[-1] == f"✓ 20 of 20 layers agree with {SOURCE}"
    data = json.loads(runner.invoke(app, ["verify", spec_file(tmp_path), "--against", SOURCE,
                                          "-f", "json"]).stdout)
    assert data["ok"] and data["cause"] is None
    # the model's own figures: conv 3→8 3×3 (216), 4 convs 8→8 3×3 (576 each), 5 BatchNorms of
    # 8 channels (16 params, 16 running statistics each), fc 8→10 (90)
    assert data["totals"]["params"] == {"spec": 216 + 4 * 576 + 5 * 16 + 90,
                                        "model": 216 + 4 * 576 + 5 * 16 + 90}
    assert data["totals"]["buffers"]["model"] == 5 * 16
    # MACs: the stem at 16×16, the block convs at 16×16, fc 8×10
    assert data["totals"]["macs"]["model"] == 216 * 256 + 4 * 576 * 256 + 80
    by_name = {l["spec"]: l for l in data["layers"]}
    assert by_name["conv1.conv"]["model"] == "conv1" and \
        by_name["conv1.conv"]["matched_by"] == "order"
    assert by_name["layer1.0.conv1"]["matched_by"] == "name"


def test_the_issues_stride_case_against_a_real_model(tmp_path):
    wrong = SPEC.replace(STEM, STEM.replace("stride: 2", "stride: 1"))
    result = runner.invoke(app, ["verify", spec_file(tmp_path, wrong), "--against", SOURCE])
    assert result.exit_code == 1, result.output
    # stride 1 keeps 32×32 positions where the model's stride 2 gives 16×16: 4×
    factor = (32 * 32) // (16 * 16)
    assert f"✗ first divergence: conv1.conv (the model's conv1): stride 1 in the spec, 2 in " \
           f"the model → {factor}× the MACs" in result.stdout


def test_a_wrong_padding_is_named(tmp_path):
    wrong = SPEC.replace(STEM, STEM.replace("padding: 1", "padding: 0"))
    result = runner.invoke(app, ["verify", spec_file(tmp_path, wrong), "--against", SOURCE,
                                 "-o", str(tmp_path / "out.json")])
    assert result.exit_code == 1
    # padding 0: (32 - 3) // 2 + 1 = 15 rows and columns, against 16: (15/16)² = 0.879
    assert f"{(15 * 15) / (16 * 16):.3g}" == "0.879"
    cause = json.loads((tmp_path / "out.json").read_text())["cause"]
    assert cause == "conv1.conv (the model's conv1): padding 0 in the spec, 1 in the model " \
                    "→ 0.879× the MACs"
    assert "✗ first divergence: " + cause in result.stderr


def test_padding_same_is_worked_out_before_it_is_compared(tmp_path):
    """3×3 'same' at stride 1 is padding 1: no difference there, so the block convs agree."""
    same = SPEC.replace("kernel: 3, padding: 1}", "kernel: 3}")
    assert same.count("kernel: 3}") == 2
    result = runner.invoke(app, ["verify", spec_file(tmp_path, same), "--against", SOURCE])
    assert result.exit_code == 0, result.output


def test_a_missing_block_is_named(tmp_path):
    short = SPEC.replace("repeat: 2", "repeat: 1")
    result = runner.invoke(app, ["verify", spec_file(tmp_path, short), "--against", SOURCE])
    assert result.exit_code == 1
    # the traced block: conv1, bn1, relu, conv2, bn2, add, relu_1 and nothing else... 7 layers
    assert "✗ first divergence: the model has layer1.1 (7 layers) after layer1.0.relu, the " \
           "spec does not" in result.stdout


def test_arguments_reach_the_callable(tmp_path):
    wrong = SPEC.replace("stride: 2, padding: 1", "stride: 1, padding: 1")
    result = runner.invoke(app, ["verify", spec_file(tmp_path, wrong), "--against", SOURCE,
                                 "--arg", "stride=1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["verify", spec_file(tmp_path), "--against", SOURCE,
                                 "--arg", "classes=12"])
    assert result.exit_code == 1
    # fc: 8×10 MACs in the spec, 8×12 in the model
    assert f"{(8 * 10) / (8 * 12):.3g}" == "0.833"
    assert "fc.linear (the model's fc): out 10 in the spec, 12 in the model → 0.833× the MACs" \
        in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--against", "no_such_module_here:Net"], "cannot import no_such_module_here"),
    (["--against", "just-a-name"], "expected package.module:callable"),
    (["--against", f"{__name__}:Block"], "calling Block failed"),
    (["--against", f"{__name__}:SPEC"], "is not callable"),
    (["--arg", "classes=3"], "give --against SOURCE too"),
    (["--against", SOURCE, "--arg", "classes"], "--arg takes KEY=VALUE"),
    (["--against", SOURCE, "--heads"], "drop --heads"),
])
def test_bad_input_exits_2(tmp_path, args, message):
    result = runner.invoke(app, ["verify", spec_file(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


class Summed(nn.Module):
    """A conv, then an operation no spec op expresses (a running sum along the channels)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 1, 1)

    def forward(self, x):
        return torch.cumsum(self.conv(x), dim=1)


def test_opaque_layers_are_compared_by_shape_and_parameters(tmp_path):
    """Plain verify refuses an opaque layer (it cannot build one); --against compares it."""
    text = ("input: [3, 8, 8]\nlayers:\n  conv: {conv: {out: 4, kernel: 3}}\n"
            "  cumsum: {opaque: {shape: [4, 8, 8], kind: running sum}}\n")
    spec = spec_file(tmp_path, text)
    assert runner.invoke(app, ["verify", spec]).exit_code == 2
    result = runner.invoke(app, ["verify", spec, "--against", f"{__name__}:Summed",
                                 "--input", "3x8x8"])
    assert result.exit_code == 0, result.output
    wrong = spec_file(tmp_path, text.replace("shape: [4, 8, 8]", "shape: [4, 8, 4]"))
    result = runner.invoke(app, ["verify", wrong, "--against", f"{__name__}:Summed",
                                 "--input", "3x8x8"])
    assert result.exit_code == 1
    # the importer's name for the sort's node is its own; the kind (free text) is not compared
    assert "cumsum.opaque (the model's cumsum): shape 4×8×4 in the spec, 4×8×8 in the model " \
           "→ output 4×8×4 in the spec, 4×8×8 in the model (1 of 2 layers differ" in result.stdout
