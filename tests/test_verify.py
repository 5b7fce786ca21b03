"""verify: the analysis against PyTorch (hooks, parameters, FlopCounterMode) and fvcore.

Expected totals are typed in from shared/reference (googlenet.md, cifar-models.md), not taken
from archcalc's output. The property test is PyTorch as the oracle for every op: for random
valid arguments the analytic shape, params and MACs equal what the built module and fvcore say.
"""
import dataclasses
import json
import os
import subprocess
import sys

import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("fvcore")

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from archcalc.cli import app  # noqa: E402
from archcalc.errors import SpecError  # noqa: E402
from archcalc.files import bundled_specs  # noqa: E402
from archcalc.core.graph import build  # noqa: E402
from archcalc.core.ops import OPS, Op  # noqa: E402
from archcalc.core.ops.conv import Conv  # noqa: E402
from archcalc.core.ops.base import Counts, numel  # noqa: E402
from archcalc.core.ops.norm import LRN  # noqa: E402
from archcalc.core.ops.pool import MaxPool  # noqa: E402
from archcalc.core.spec import parse  # noqa: E402
from archcalc.pytorch.verify import HAND_COUNTS, verify  # noqa: E402
from archcalc.views.verify import summary_line  # noqa: E402

runner = CliRunner()
CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def results():
    """verify() of a bundled spec, run once per module and argument set."""
    cache = {}

    def get(spec, variant=None, heads=False):
        key = (spec, variant, heads)
        if key not in cache:
            cache[key] = verify(spec, variant, heads=heads, device="cpu")
        return cache[key]
    return get


def disagreements(result):
    """What disagreed, readable in a failed assertion."""
    bad = [(l.name, [dataclasses.asdict(c) for c in l.checks() if c.ok is False])
           for l in result.layers if not l.ok]
    totals = {k: dataclasses.asdict(c) for k, c in result.totals.items() if not c.ok}
    return {"layers": bad, "totals": totals, "error": result.error}


# --- the bundled specs agree everywhere -----------------------------------------------------

@pytest.mark.parametrize("spec,variant,heads", [
    ("googlenet", None, False), ("googlenet", None, True),
    ("googlenet", "naive", False), ("googlenet", "naive", True),
    ("cifar-cnn", None, False), ("nin", None, False),
])
def test_every_layer_agrees(results, spec, variant, heads):
    result = results(spec, variant, heads)
    assert result.ok, disagreements(result)
    assert result.device == "cpu" and result.error is None
    assert all(l.ok for l in result.layers)
    if heads:
        assert {l.name for l in result.layers} >= {"aux1.fc", "aux2.conv", "aux2.softmax"}


def _by_cost(paths, slow_macs=20e9):
    """Each bundled spec; those heavier than ``slow_macs`` (U-Net's 150 G on a 572×572 tile, a
    dozen seconds on CPU) marked slow, so that the everyday run stays short."""
    from archcalc.core import analysis
    from archcalc.core.spec import load
    for path in paths:
        macs = analysis.analyze(build(load(path))).totals.macs
        yield pytest.param(path.stem, marks=[pytest.mark.slow] if macs > slow_macs else [])


@pytest.mark.parametrize("name", list(_by_cost(bundled_specs())))
def test_every_bundled_spec_agrees_with_its_heads(results, name):
    result = results(name, None, True)
    assert result.ok, disagreements(result)


EVERY_STRUCTURE = """
input: [3, 16, 16]
blocks:
  res:
    args: [c]
    body:
      add:
        main: [conv: {out: c, kernel: 3, act: relu}, conv: {out: c, kernel: 3}, batchnorm]
        skip: identity
layers:
  stem: {conv: {out: 8, kernel: 3, stride: 2, act: relu}}
  r1: {res: [8]}
  r2: [res: [8], lrn: {size: 3}, {concat: [gap, {avgpool: {kernel: 8}}]}]
  head: [flatten, linear: {out: 5, act: softmax}]
heads:
  side: {after: r1, use: [gap, flatten, linear: {out: 3}, softmax]}
"""


def test_residual_adds_nested_joins_and_a_head_agree():
    result = verify(parse(EVERY_STRUCTURE, "every.yaml"), heads=True, device="cpu", batch=2)
    assert result.ok, disagreements(result)
    kinds = {l.name: l.type for l in result.layers}
    assert kinds["r1"] == "add" and kinds["r2.concat"] == "concat"
    assert kinds["head.linear_softmax"] == "softmax" and "side.linear" in kinds


def test_googlenet_totals_as_the_reference_counts(results):
    t = results("googlenet").totals
    # shared/reference/googlenet.md: 1,582,671,872 MACs; fvcore counts nothing else here
    # (max and average pooling, softmax have no fvcore handler)
    assert t["fvcore"].measured == 1_582_671_872
    assert t["flopcounter"].measured == 2 * 1_582_671_872
    assert t["params"].measured == 6_998_552


def test_cifar_cnn_parameters_and_buffers(results):
    result = results("cifar-cnn")
    # shared/reference/cifar-models.md: Keras' 1,253,674 = 1,252,266 trainable + 1,408
    # BatchNorm moving statistics (2 × (32 + 32 + 64 + 64 + 512))
    assert result.totals["params"].measured == 1_252_266
    assert result.totals["non_trainable"].measured == 1_408
    bn = next(l for l in result.layers if l.name == "conv1.batchnorm")
    assert (bn.params.measured, bn.non_trainable.measured) == (64, 64)  # not num_batches_tracked
    # fvcore's eval-mode batch norm: 2 per element, which the analysis counts as other ops
    assert bn.counted_as == "other_ops" and bn.checked_by == "fvcore"
    assert bn.count.measured == 2 * 32 * 32 * 32


def test_ops_fvcore_does_not_count_are_listed_and_counted_by_hand(results):
    result = results("googlenet")
    pool = next(l for l in result.layers if l.name == "pool1.maxpool")
    assert pool.ok and pool.counted_as == "other_ops" and pool.checked_by == "hand count"
    assert pool.count.measured == 3 * 3 * 64 * 56 * 56     # one read per window element
    assert result.unsupported["aten::max_pool2d"] == 13


# GoogLeNet's layers by how their count is checked, from shared/reference/googlenet.md:
# Table 1 has 57 convolutions (conv1; conv2's reduce and 3×3; six in each of 9 inception
# modules) and one linear layer, all of which fvcore counts. Every convolution is followed by a
# ReLU (57); 4 max pools in the table plus one in each inception's pool branch (13); one average
# pool, dropout and softmax; one concat per inception (9): 82 counted by hand. The naive modules
# (Figure 2a) have 3 convolutions, 1 max pool, no reduction; each auxiliary classifier (section
# 5) an average pool, a 1×1 conv, two linear layers, ReLU after the conv and the first linear,
# dropout and softmax.
CONVS, INCEPTIONS = 1 + 2 + 9 * 6, 9
NAIVE_CONVS = 1 + 2 + 9 * 3
AUX_FVCORE, AUX_HAND = 1 + 2, 1 + 2 + 1 + 1     # conv, 2 linear; avg pool, 2 ReLU, dropout, softmax


@pytest.mark.parametrize("variant,heads,fvcore,hand", [
    (None, False, CONVS + 1, CONVS + (4 + INCEPTIONS) + 3 + INCEPTIONS),
    ("naive", True, NAIVE_CONVS + 1 + 2 * AUX_FVCORE,
     NAIVE_CONVS + (4 + INCEPTIONS) + 3 + INCEPTIONS + 2 * AUX_HAND),
])
def test_googlenet_summary_says_how_each_count_was_checked(results, variant, heads, fvcore,
                                                           hand):
    result = results("googlenet", variant, heads)
    n = fvcore + hand
    assert summary_line(result, 1.0) == (
        f"✓ {n} of {n} layers agree on cpu (as asked) in 1.0 s: {fvcore} counts checked "
        f"against fvcore, {hand} against a count from the torch module, 0 for shape and "
        "parameters only")
    # fvcore met a max_pool2d wherever a max pool was counted by hand
    assert result.unsupported["aten::max_pool2d"] == 4 + INCEPTIONS


def test_a_join_is_counted_from_its_branches(results):
    result = verify(parse(EVERY_STRUCTURE, "every.yaml"), device="cpu")
    layers = {l.name: l for l in result.layers}
    # r1 adds two 8×8×8 branches: one addition per element; r2's concat computes nothing
    assert layers["r1"].checked_by == "hand count" and layers["r1"].count.measured == 8 * 8 * 8
    assert layers["r2.concat"].checked_by == "hand count"
    assert layers["r2.concat"].count.measured == 0
    assert layers["r2.lrn"].count.measured == 3 * 8 * 8 * 8     # a 3-channel window sum


def test_batch_counts_are_per_image():
    result = verify("nin", batch=3, device="cpu")
    assert result.ok, disagreements(result)
    assert result.batch == 3 and result.totals["fvcore"].measured == \
        result.totals["fvcore"].analytic


def test_auto_device_is_cuda_when_available_else_cpu():
    result = verify("nin", device="auto")
    assert result.device == ("cuda:0" if CUDA else "cpu")
    assert result.device_note.startswith("auto")


# --- a wrong analytic rule is caught ---------------------------------------------------------

def one_row_short(original):
    """Conv counts whose MACs for a 3-channel input miss one row of output positions."""
    def counts(self, in_shape, out_shape):
        c = original(self, in_shape, out_shape)
        if in_shape[0] != 3:
            return c
        return dataclasses.replace(c, macs=c.macs - c.macs // out_shape[1])
    return counts


def test_a_wrong_macs_rule_fails_that_layer_with_exit_1(monkeypatch, tmp_path):
    monkeypatch.setattr(Conv, "counts", one_row_short(Conv.counts))
    result = runner.invoke(app, ["verify", "cifar-cnn", "--device", "cpu"])
    assert result.exit_code == 1, result.output
    assert "22 of 23 layers agree" in result.output and "disagree: conv1.conv" in result.output
    out = tmp_path / "v.json"
    result = runner.invoke(app, ["verify", "cifar-cnn", "--device", "cpu", "-f", "json",
                                 "-o", str(out)])
    assert result.exit_code == 1
    data = json.loads(out.read_text())
    assert [l["name"] for l in data["layers"] if not l["ok"]] == ["conv1.conv"]
    conv1 = data["layers"][0]["count"]
    assert conv1["measured"] - conv1["analytic"] == 32 * 32 * 27  # a row: 32 × 32 outputs × 27
    assert data["ok"] is False and data["totals"]["ok"] is False


def test_a_wrong_other_ops_convention_fails_those_layers(monkeypatch):
    """Max pooling counted once per output element instead of once per window element."""
    monkeypatch.setattr(MaxPool, "counts",
                        lambda self, i, o: Counts(other_ops=numel(o)))
    result = runner.invoke(app, ["verify", "googlenet", "--device", "cpu"])
    assert result.exit_code == 1, result.output
    last = result.stdout.splitlines()[-1]
    assert last.startswith("✗ 127 of 140 layers agree")     # the 13 max pools disagree
    assert "disagree: pool1.maxpool, pool2.maxpool, 3a.pool_proj.pool" in last
    assert "hand count 1,806,336" in result.stdout          # pool1: 3 × 3 × 56 × 56 × 64


def test_a_wrong_lrn_convention_fails_that_layer(monkeypatch):
    monkeypatch.setattr(LRN, "counts", lambda self, i, o: Counts(other_ops=2 * numel(o)))
    result = verify(parse(EVERY_STRUCTURE, "every.yaml"), device="cpu")
    assert result.failed == ["r2.lrn"] and not result.totals["hand_count"].ok


def test_a_module_without_a_count_is_checked_for_shape_and_params_and_says_so(monkeypatch):
    monkeypatch.delitem(HAND_COUNTS, torch.nn.Dropout)
    result = verify("googlenet", device="cpu")
    assert result.ok, disagreements(result)
    dropout = next(l for l in result.layers if l.type == "dropout")
    assert dropout.checked_by is None and dropout.count.ok is None
    assert summary_line(result, 1.0).endswith(
        "58 counts checked against fvcore, 81 against a count from the torch module, "
        "1 for shape and parameters only (dropout)")


def test_a_wrong_shape_rule_fails_that_layer_and_does_not_crash(monkeypatch):
    original = MaxPool.output_shape

    def floor_instead_of_ceil(self, shape):
        c, h, w = original(self, shape)
        return (c, h - 1, w - 1) if self.a["ceil"] else (c, h, w)
    monkeypatch.setattr(MaxPool, "output_shape", floor_instead_of_ceil)
    result = verify("nin", device="cpu")
    assert not result.ok
    assert result.failed[0] == "pool1.maxpool"
    pool = result.layers[[l.name for l in result.layers].index("pool1.maxpool")]
    assert pool.output_shape.analytic == (96, 15, 15)
    assert pool.output_shape.measured == (96, 16, 16)


# --- the command ----------------------------------------------------------------------------

def test_cli_table_and_final_line(results):
    result = runner.invoke(app, ["verify", "cifar-cnn", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "conv1.batchnorm" in out and "✓ fvcore" in out and "✓ hand count" in out
    assert "1,252,266" in out and "1,408" in out
    assert "fvcore did not count (no handler): max_pool2d ×2, softmax ×1" in out
    assert "✓ hand counts" in out and "vs analytic other ops" in out
    assert "✓ 23 of 23 layers agree on cpu (as asked) in" in out.splitlines()[-1]


def test_cli_json_contract(tmp_path):
    out = tmp_path / "verify.json"
    result = runner.invoke(app, ["verify", "cifar-cnn", "--format", "json", "-o", str(out),
                                 "--device", "cpu", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "23 of 23 layers agree" in result.stderr
    data = json.loads(out.read_text())
    assert data["ok"] is True and data["device"] == "cpu" and data["batch"] == 2
    for layer in data["layers"]:
        assert {"name", "ok", "output_shape", "params", "non_trainable", "count"} <= set(layer)
        for key in ("output_shape", "params", "non_trainable", "count"):
            assert {"analytic", "measured"} <= set(layer[key])
        assert layer["count"]["checked_by"] in ("fvcore", "hand count")
    checked = data["checked"]
    assert checked["fvcore"] + checked["hand_count"] + checked["shape_only"] == 23
    assert checked["fvcore"] == sum(l["count"]["checked_by"] == "fvcore"
                                    for l in data["layers"])
    assert checked["shape_only"] == 0 and checked["shape_only_types"] == []
    assert data["layers"][0]["output_shape"] == {"analytic": [32, 32, 32],
                                                 "measured": [32, 32, 32], "ok": True}
    totals = data["totals"]
    assert {"macs_analytic", "macs_fvcore", "flops_flopcounter", "params_analytic",
            "params_torch"} <= set(totals)
    assert totals["params_torch"] == totals["params_analytic"] == 1_252_266
    assert totals["flops_flopcounter"] == 2 * totals["macs_analytic"]


def test_cli_batch_is_an_alias_of_batch_size(tmp_path):
    out = tmp_path / "verify.json"
    result = runner.invoke(app, ["verify", "nin", "-f", "json", "-o", str(out),
                                 "--device", "cpu", "--batch", "3"])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["batch"] == 3
    result = runner.invoke(app, ["verify", "nin", "--batch-size", "0"])
    assert result.exit_code == 2 and "--batch-size" in result.stderr


@pytest.mark.parametrize("args,message", [
    (["no-such-spec"], "no such file"),
    (["googlenet", "--variant", "naiv"], "unknown variant 'naiv'"),
    (["nin", "--device", "tpu"], "--device"),
    (["nin", "--input", "3x0x4"], "'input' must be"),
] + ([] if CUDA else [(["nin", "--device", "cuda"], "CUDA is not available")]))
def test_cli_bad_input_exits_2(args, message):
    result = runner.invoke(app, ["verify", *args])
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output


def test_cli_an_op_without_a_builder_exits_2(monkeypatch, tmp_path):
    class Widget(Op):
        name = "widget"
    monkeypatch.setitem(OPS, "widget", Widget)
    spec = tmp_path / "odd.yaml"
    spec.write_text("input: [3, 8, 8]\nlayers:\n  odd: widget\n")
    result = runner.invoke(app, ["verify", str(spec), "--device", "cpu"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{spec}:3:8: layer 'odd.widget': op 'widget' has no " \
                                    "PyTorch builder"


def test_fvcore_noise_stays_off_the_screen(tmp_path):
    """Run as a user would, in a fresh process: only the final line reaches stderr."""
    env = dict(os.environ, PYTHONWARNINGS="default")   # even with warnings shown
    proc = subprocess.run([sys.executable, "-m", "archcalc", "verify", "cifar-cnn", "-f", "json",
                           "--device", "cpu"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "23 of 23 layers agree" in proc.stderr
    assert json.loads(proc.stdout)["fvcore_unsupported"] == {"aten::max_pool2d": 2,
                                                             "aten::softmax": 1}


# --- PyTorch as the oracle for every op -------------------------------------------------------
# Every registered op, its arguments drawn from its own Arg.examples: an op is covered the
# moment it is registered (tests/test_ops.py fails when an argument has no examples).

def draw_args(draw, cls):
    """Each argument from its examples; an optional one is sometimes left to its default."""
    return {key: draw(st.sampled_from(arg.examples)) for key, arg in cls.args.items()
            if arg.required or draw(st.booleans())}


@st.composite
def op_case(draw, name):
    """(input shape, one row around op ``name``): a C×H×W map, or for an op with one input
    sometimes a vector; a join gets two branches in either order, the input itself and a second
    one that may or may not fit with it: as large, with other channels, C×1×1 (a gate for mul),
    smaller (for crop), a vector. What does not fit is refused by the analysis and not
    compared."""
    cls = OPS[name]
    channels, size = draw(st.sampled_from([2, 4, 6])), draw(st.integers(1, 9))
    shape = [channels, size, size]
    if cls.inputs == "many":
        other = draw(st.sampled_from([
            "identity", {"conv": {"out": channels, "kernel": 1}},
            {"conv": {"out": channels + 2, "kernel": 1}}, ["gap"],
            {"conv": {"out": channels, "kernel": 3, "padding": "valid"}},
            {"maxpool": {"kernel": 2, "ceil": True}}, ["gap", "flatten"]]))
        return shape, {name: draw(st.permutations(["identity", other]))}
    if draw(st.integers(0, 2)) == 0:
        shape = [draw(st.integers(1, 24))]
    args = draw_args(draw, cls)
    return shape, ({name: args} if args else name)


def agrees_with_pytorch(input_shape, layer, op):
    text = yaml.safe_dump({"input": input_shape, "layers": {"l": layer}})
    try:
        graph = build(parse(text, "prop.yaml"))
    except SpecError:
        assume(False)       # the analysis refuses it (does not fit): nothing to compare
    result = verify(graph, device="cpu")
    assert result.ok, (text, disagreements(result))
    assert op in {l.type for l in result.layers}, text


# every op PyTorch can build: an opaque stand-in (Op.opaque) refuses by design
@pytest.mark.parametrize("op", sorted(name for name, cls in OPS.items() if not cls.opaque))
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_every_op_agrees_with_pytorch_and_fvcore(op, data):
    """Output shape (forward hooks), params, non-trainable buffers, and fvcore's count where
    the op's ``fvcore`` says fvcore counts it: verify's checks, for each registered op."""
    shape, layer = data.draw(op_case(op))
    agrees_with_pytorch(shape, layer, op)


# --- the modern ops in one network ------------------------------------------------------------

MODERN = """
input: [3, 32, 32]
defaults:
  leaky_relu: {slope: 0.2}
blocks:
  se:
    args: [c]
    body:
      mul: [identity, [gap, conv: {out: 2, kernel: 1, act: silu}, conv: {out: c, kernel: 1, act: hardsigmoid}]]
  cn:
    args: [c]
    body:
      add:
        - identity
        - [conv: {out: c, kernel: 7, groups: c}, layernorm: {eps: 1.0e-6}, conv: {out: 32, kernel: 1, act: gelu}, conv: {out: c, kernel: 1}, layer_scale, stochastic_depth: {p: 0.1}]
layers:
  stem: [conv: {out: 16, kernel: 3, stride: 2, act: leaky_relu}, batchnorm: {affine: false, act: relu6}]
  se: {se: [16]}
  cn: {cn: [16]}
  shuffle: [conv: {out: 16, kernel: 1, groups: 4, act: hardswish}, channel_shuffle: {groups: 4}, groupnorm: {groups: 4, act: tanh}]
  unet:
    crop:
      skip: identity
      up: [maxpool: {kernel: 2}, conv: {out: 16, kernel: 3, padding: valid, act: sigmoid}, conv_transpose: {out: 16, kernel: 2, stride: 2}]
  up: [upsample: {scale: 2, mode: bilinear}, upsample: {size: [40, 36]}, adaptive_maxpool: {size: [7, 5]}, adaptive_avgpool: {size: 6}]
  head: [flatten, layernorm, linear: {out: 10}]
"""


@pytest.fixture(scope="module")
def modern():
    return verify(parse(MODERN, "modern.yaml"), device="cpu", batch=2)


def test_modern_ops_agree_in_one_network(modern):
    assert modern.ok, disagreements(modern)
    layers = {l.name: l for l in modern.layers}
    # written-out figures: the transposed conv by its 6×6 input positions (fvcore), the
    # layer norm of ConvNeXt's block 5 per element (fvcore), 4 reads per bilinear output; the
    # adaptive max pool of 40×36 to 7×5 reads rows [0,6) [5,12) [11,18) [17,23) [22,29) [28,35)
    # [34,40), 46 in all, and columns [0,8) [7,15) [14,22) [21,29) [28,36), 40 in all
    assert layers["unet.up.conv_transpose"].count.measured == 16 * 16 * 2 * 2 * 6 * 6
    assert layers["cn.b2.layernorm"].count.measured == 5 * 16 * 16 * 16
    assert layers["up.upsample_1"].count.measured == 4 * 16 * 24 * 24
    assert layers["up.adaptive_maxpool"].checked_by == "hand count"
    assert layers["up.adaptive_maxpool"].count.measured == 16 * 46 * 40
    assert layers["stem.batchnorm"].count.measured == 16 * 16 * 16     # no γ, β: 1 per element
    assert layers["se"].type == "mul" and layers["se"].count.measured == 16 * 16 * 16
    assert layers["unet"].type == "crop" and layers["unet"].output_shape.measured == (16, 12, 12)
    assert modern.checked_by(None) == []


def test_a_wrong_transposed_conv_or_adaptive_window_rule_fails_that_layer(monkeypatch):
    from archcalc.core.ops.conv import ConvTranspose
    from archcalc.core.ops.pool import AdaptiveMaxPool
    # MACs by output positions, as for a forward conv; windows as if they did not overlap
    monkeypatch.setattr(ConvTranspose, "counts", lambda self, i, o: Counts(
        params=i[0] * o[0] * 4 + o[0], weights=i[0] * o[0] * 4,
        macs=i[0] * o[0] * 4 * o[1] * o[2]))
    monkeypatch.setattr(AdaptiveMaxPool, "counts", lambda self, i, o: Counts(
        other_ops=numel(i)))
    result = verify(parse(MODERN, "modern.yaml"), device="cpu")
    assert result.failed == ["unet.up.conv_transpose", "up.adaptive_maxpool"]


def test_the_new_modules_compute_what_their_docs_say():
    from archcalc.pytorch import modules
    x = torch.arange(2 * 3 * 9 * 8, dtype=torch.float64).view(2, 3, 9, 8)
    # crop 9×8 to 5×5: rows 2..6 ((9 - 5) // 2 = 2), columns 1..5 ((8 - 5) // 2 = 1)
    assert torch.equal(modules.Crop()(x, torch.zeros(1, 1, 5, 5)), x[:, :, 2:7, 1:6])
    # ShuffleNet's shuffle of 6 channels in 3 groups of 2: (0 1)(2 3)(4 5) -> 0 2 4 1 3 5
    y = torch.nn.ChannelShuffle(3).eval()(x.repeat(1, 2, 1, 1))
    assert torch.equal(y, x.repeat(1, 2, 1, 1)[:, [0, 2, 4, 1, 3, 5]])
    # layer norm over the channels at each position, from its definition
    norm = modules.LayerNorm2d(3, eps=1e-6)
    torch.nn.init.normal_(norm.weight), torch.nn.init.normal_(norm.bias)
    mean, var = x.mean(1, keepdim=True), x.var(1, unbiased=False, keepdim=True)
    expected = (x - mean) / (var + 1e-6).sqrt() * norm.weight.view(3, 1, 1) + norm.bias.view(
        3, 1, 1)
    assert torch.allclose(norm.double()(x), expected)
    scale = modules.LayerScale((3, 9, 8), 0.5)
    assert scale.scale.shape == (3, 1, 1) and torch.equal(scale(x), x * 0.5)
    # stochastic depth: identity in eval; in training each sample kept, scaled by 1/(1-p),
    # or zeroed whole
    drop = modules.StochasticDepth(0.5, "row")
    assert drop.eval()(x) is x
    out = drop.train()(x)
    for sample, kept in zip(out, x):
        assert torch.equal(sample, kept * 2) or torch.equal(sample, torch.zeros_like(kept))
