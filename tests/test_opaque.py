"""The opaque op: what an importer writes for an operation archcalc cannot express. Its shape
and parameters are taken as given, it counts no work, and nothing that builds a model takes
it: build_model, verify and train refuse it up front, naming every opaque layer."""
import json

import pytest
from typer.testing import CliRunner

from archcalc.cli import app
from archcalc.core.analysis import analyze
from archcalc.core.graph import build
from archcalc.core.ops import OPS
from archcalc.core.spec import parse
from archcalc.errors import SpecError

runner = CliRunner()

SPEC = """\
input: [3, 16, 16]
layers:
  stem: {conv: {out: 8, kernel: 3}}
  layer1: [{opaque: {shape: [8, 16, 16], kind: "aten::sort", name: sort}}, {conv: {out: 4, kernel: 1}}]
  head: [gap, flatten, {opaque: {shape: [5], params: 25, kind: "aten::topk", name: topk}}]
"""
REFUSAL = ("2 opaque layers (layer1.sort, head.topk): archcalc cannot build or check them; "
           "their output shapes and parameters come from the traced model")


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "traced.yaml"
    path.write_text(SPEC)
    return path


def test_shape_and_params_as_given_and_no_work():
    graph = build(parse(SPEC, "traced.yaml"))
    layers = {l.name: l for l in graph.layers()}
    topk = layers["head.topk"]
    assert topk.out_shape == (5,) and topk.in_shape == (4,)     # whatever the input
    assert topk.op.a["kind"] == "aten::sort".replace("sort", "topk")   # text as written
    c = topk.counts()
    assert (c.params, c.weights, c.non_trainable, c.macs, c.other_ops) == (25, 25, 0, 0, 0)
    # the conv after the sort takes the recorded shape: 8 in, 4 out, 1×1, 16×16 positions
    assert layers["layer1.conv"].counts().macs == 8 * 4 * 16 * 16
    assert [l.name for l in graph.opaque()] == ["layer1.sort", "head.topk"]


@pytest.mark.parametrize("args, message", [
    ("{}", "opaque needs 'shape'"),
    ("{shape: []}", "'shape' must be a list of positive integers"),
    ("{shape: [4, 0]}", "'shape' must be a list of positive integers"),
    ("{shape: 4}", "'shape' must be a list of positive integers"),
    ("{shape: [4], params: -1}", "'params' must be a non-negative integer"),
    ("{shape: [4], kind: 3}", "'kind' must be text"),
])
def test_bad_arguments_are_refused(args, message):
    with pytest.raises(SpecError, match=message.replace("[", r"\[")):
        build(parse(f"input: [3, 8, 8]\nlayers:\n  x: {{opaque: {args}}}\n", "x.yaml"))


def test_to_torch_refuses():
    with pytest.raises(NotImplementedError):
        OPS["opaque"](shape=(4,), params=0, kind="").to_torch((4,))


def test_table_lists_them_in_its_summary_and_json(spec):
    result = runner.invoke(app, ["table", str(spec)])
    assert result.exit_code == 0, result.output
    assert "2 opaque layers: MACs not counted (layer1.sort, head.topk)" in result.stdout
    result = runner.invoke(app, ["table", str(spec), "-f", "json"])
    data = json.loads(result.stdout)
    assert data["opaque"] == ["layer1.sort", "head.topk"]
    # conv 3→8 3×3 (216 + 8 bias), conv 8→4 1×1 (32 + 4), topk's 25
    assert data["totals"]["params"] == 224 + 36 + 25
    assert data["totals"]["macs"] == 216 * 256 + 32 * 256


def test_a_spec_without_them_says_nothing():
    report = analyze(build(parse("input: [3, 8, 8]\nlayers:\n  c: {conv: {out: 2, kernel: 1}}\n",
                                 "x.yaml")))
    assert report.opaque == [] and report.to_dict()["opaque"] == []


def test_build_model_refuses_them(spec):
    pytest.importorskip("torch")
    from archcalc.pytorch.build import TorchBuildError, build_model
    with pytest.raises(TorchBuildError) as info:
        build_model(spec)
    assert info.value.message == REFUSAL


@pytest.mark.parametrize("command", [["verify", "{spec}", "--device", "cpu"],
                                     ["train", "synthetic", "--spec", "{spec}", "--quick"]])
def test_verify_and_train_refuse_them_up_front(spec, tmp_path, command):
    pytest.importorskip("torch")
    out = tmp_path / "run"
    args = [a.format(spec=spec) for a in command]
    if command[0] == "train":
        args += ["--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == REFUSAL
    assert not out.exists()     # train claimed no run folder


def test_one_opaque_layer_is_singular(tmp_path):
    pytest.importorskip("torch")
    path = tmp_path / "one.yaml"
    path.write_text("input: [3, 8, 8]\nlayers:\n  x: {opaque: {shape: [4]}}\n")
    result = runner.invoke(app, ["verify", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("1 opaque layer (x.opaque): ")
