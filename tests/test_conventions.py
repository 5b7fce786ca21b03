"""`table --convention` and `archcalc conventions` against the counters themselves.

Every expected number here comes from running the tool on the model archcalc builds
(build_model, eval mode, batch 1): fvcore's FlopCountAnalysis, PyTorch's FlopCounterMode,
thop 0.1.1.post2209072238's profile, ptflops 0.7.5's pytorch backend and torchinfo 1.8.0's
"Total mult-adds". Outside CI a peer that cannot be imported skips with the reason; in CI it
fails (conftest.import_peer). One small spec per op shows each op's rule on its own; the
bundled specs show that the rules add up on real networks.
"""
import contextlib
import io
import json
import logging
import textwrap
import warnings

import pytest

torch = pytest.importorskip("torch")

from archcalc.cli import app  # noqa: E402
from archcalc.core import conventions  # noqa: E402
from archcalc.core.analysis import analyze  # noqa: E402
from archcalc.pytorch.build import build_model, load_graph  # noqa: E402
from conftest import import_peer  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

PEERS = ("fvcore", "flopcounter", "thop", "ptflops", "ptflops-aten", "torchinfo")
# the original thop (Lyken17's pytorch-OpCounter); ultralytics-thop is another distribution,
# which `import thop` would also find, but not under this distribution name
THOP = "0.1.1.post2209072238"


# --- the tools themselves ------------------------------------------------------------------

def run_fvcore(model, x):
    nn = import_peer("fvcore.nn", "fvcore", "0.1.5.post20221221")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("fvcore").setLevel(logging.ERROR)
        return nn.FlopCountAnalysis(model, x).unsupported_ops_warnings(False) \
            .uncalled_modules_warnings(False).tracer_warnings("none").total()


def run_flopcounter(model, x):
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def run_thop(model, x):
    thop = import_peer("thop", "thop", THOP)
    total, _ = thop.profile(model, inputs=(x,), verbose=False)
    return int(total)


def run_ptflops(model, x, backend="pytorch"):
    ptflops = import_peer("ptflops", "ptflops", "0.7.5")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        macs, _ = ptflops.get_model_complexity_info(
            model, tuple(x.shape[1:]), as_strings=False, print_per_layer_stat=False,
            backend=backend, ost=out)
    assert macs is not None, out.getvalue()      # ptflops prints its exception and gives None
    return macs


def run_torchinfo(model, x):
    torchinfo = import_peer("torchinfo", "torchinfo", "1.8.0")
    return torchinfo.summary(model, input_data=x, verbose=0, device="cpu").total_mult_adds


RUN = {"fvcore": run_fvcore, "flopcounter": run_flopcounter, "thop": run_thop,
       "ptflops": run_ptflops, "ptflops-aten": lambda m, x: run_ptflops(m, x, "aten"),
       "torchinfo": run_torchinfo}


def measured(tool, spec, input=None):
    """``tool``'s count of the model archcalc builds for ``spec``, and archcalc's own."""
    torch.manual_seed(0)
    model = build_model(spec, input=input).eval()
    graph = load_graph(spec, input=input)
    x = torch.randn((1,) + tuple(graph.input_shape))
    with torch.no_grad():
        got = RUN[tool](model, x)
    return got, conventions.reconcile(graph).totals[tool]


# --- one op at a time -------------------------------------------------------------------------

# (input, the layers of one row): every op, and the argument that changes a tool's count
CASES = {
    "conv": ([3, 9, 9], "conv: {out: 6, kernel: [3, 2], stride: 2, groups: 3}"),
    "conv no bias": ([3, 8, 8], "conv: {out: 4, kernel: 3, bias: false}"),
    "conv_transpose": ([4, 5, 5], "conv_transpose: {out: 6, kernel: 3, stride: 2, padding: 1, "
                                  "output_padding: 1}"),
    "conv_transpose grouped": ([4, 3, 4], "conv_transpose: {out: 6, kernel: 2, stride: 2, "
                                          "groups: 2, bias: false}"),
    "linear on a map": ([3, 4, 4], "linear: {out: 5}"),
    "linear": ([3, 4, 4], "[flatten, linear: {out: 5}]"),
    "linear no bias": ([12], "linear: {out: 5, bias: false}"),
    "batchnorm": ([3, 5, 5], "batchnorm"),
    "batchnorm no affine": ([3, 5, 5], "batchnorm: {affine: false}"),
    "batchnorm on a vector": ([7], "batchnorm"),
    "layernorm on a map": ([4, 3, 3], "layernorm"),
    "layernorm": ([6], "layernorm"),
    "layernorm no affine": ([6], "layernorm: {affine: false}"),
    "groupnorm": ([6, 3, 3], "groupnorm: {groups: 3}"),
    "groupnorm no affine": ([6, 3, 3], "groupnorm: {groups: 2, affine: false}"),
    "layer_scale": ([4, 3, 3], "layer_scale"),
    "lrn": ([8, 5, 5], "lrn: {size: 5}"),
    "lrn even": ([7, 3, 4], "lrn: {size: 4}"),
    "maxpool": ([3, 9, 9], "maxpool: {kernel: 3, stride: 2, padding: 1, ceil: true}"),
    "avgpool": ([3, 9, 9], "avgpool: {kernel: 3, stride: 2, padding: 1}"),
    "gap": ([5, 7, 6], "gap"),
    "adaptive_avgpool": ([3, 7, 13], "adaptive_avgpool: {size: [3, 6]}"),
    "adaptive_maxpool": ([3, 7, 13], "adaptive_maxpool: {size: [2, 3]}"),
    "relu": ([3, 4, 4], "relu"),
    "relu6": ([3, 4, 4], "relu6"),
    "leaky_relu": ([3, 4, 4], "leaky_relu: {slope: 0.2}"),
    "gelu": ([3, 4, 4], "gelu: {approximate: tanh}"),
    "silu": ([3, 4, 4], "silu"),
    "sigmoid": ([3, 4, 4], "sigmoid"),
    "tanh": ([3, 4, 4], "tanh"),
    "hardswish": ([3, 4, 4], "hardswish"),
    "hardsigmoid": ([3, 4, 4], "hardsigmoid"),
    "softmax on a map": ([5, 2, 3], "softmax"),
    "softmax": ([10], "softmax"),
    "upsample": ([3, 4, 5], "upsample: {scale: [2, 3]}"),
    "upsample bilinear": ([3, 4, 5], "upsample: {size: [7, 9], mode: bilinear}"),
    "dropout flatten identity": ([3, 4, 4], "[dropout, identity, flatten]"),
    "channel_shuffle": ([6, 2, 2], "channel_shuffle: {groups: 3}"),
    "stochastic_depth": ([3, 2, 2], "stochastic_depth: {p: 0.2}"),
    "add": ([3, 4, 4], "add: {main: {conv: {out: 3, kernel: 1}}, skip: identity}"),
    "mul": ([3, 4, 4], "mul: {main: identity, gate: [gap, sigmoid]}"),
    "concat": ([3, 4, 4], "concat: [{conv: {out: 2, kernel: 1}}, identity]"),
    "crop": ([3, 6, 6], "crop: {big: identity, small: {maxpool: {kernel: 2}}}"),
}


def case_spec(tmp_path, name):
    shape, layers = CASES[name]
    layers = layers if layers.startswith("[") else f"[{layers}]"
    path = tmp_path / f"{name.replace(' ', '_')}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        input: {shape}
        layers:
          only: {layers}
        """))
    return str(path)


@pytest.mark.parametrize("tool", PEERS)
def test_each_op_is_counted_as_the_tool_counts_it(tmp_path, tool):
    """One op per model, so a rule that is off names its op; all of them in one test per tool,
    to keep the file quick. The expectation is the tool's, the model archcalc's build."""
    wrong = []
    for name in CASES:
        got, ours = measured(tool, case_spec(tmp_path, name))
        if got != ours:
            wrong.append(f"{name}: {tool} says {got}, archcalc's {tool} convention {ours}")
    assert not wrong, "\n".join(wrong)


def test_the_cases_cover_every_buildable_op(tmp_path):
    """A new op needs a case here, where its rule is checked against every tool."""
    from archcalc.core.ops import OPS
    covered = {layer.kind for name in CASES
               for layer in load_graph(case_spec(tmp_path, name)).layers()}
    assert sorted(set(OPS) - covered) == ["opaque"]      # which nothing can build


# --- bundled networks ---------------------------------------------------------------------

QUICK = [("cifar-cnn", None), ("resnet18-cifar", None), ("mobilenetv2", "3x64x64"),
         ("squeezenet1_0", "3x96x96")]
SLOW = [("googlenet", None), ("densenet121", "3x64x64"), ("efficientnet-b0", "3x96x96"),
        ("convnext-t", "3x64x64"), ("unet", "1x188x188")]


@pytest.mark.parametrize("tool", PEERS)
@pytest.mark.parametrize("spec,input", QUICK)
def test_bundled_networks_total_as_the_tool_does(spec, input, tool):
    got, ours = measured(tool, spec, input)
    assert got == ours


@pytest.mark.slow
@pytest.mark.parametrize("tool", PEERS)
@pytest.mark.parametrize("spec,input", SLOW)
def test_larger_bundled_networks_total_as_the_tool_does(spec, input, tool):
    got, ours = measured(tool, spec, input)
    assert got == ours


def test_table_rows_and_layers_add_up_to_the_tool_total():
    """table --convention thop: every layer's figure is thop's for that module (its
    ret_layer_info), and the rows and the total are their sums."""
    thop = import_peer("thop", "thop", THOP)
    graph = load_graph("cifar-cnn")
    model = build_model("cifar-cnn").eval()
    total, _, info = thop.profile(model, inputs=(torch.randn(1, 3, 32, 32),), verbose=False,
                                  ret_layer_info=True)
    report = conventions.apply(analyze(graph), graph, "thop")
    assert report.totals.macs == int(total)
    for row in report.rows:
        assert row.macs == int(info[row.name][0]), row.name
        assert row.macs == sum(l.macs for l in report.layers if l.row == row.name)
    assert report.convention == "thop" and report.paper == {}


# --- the commands -------------------------------------------------------------------------

def invoke(*args):
    return CliRunner().invoke(app, list(args))


def test_table_convention_changes_the_total_and_says_whose_it_is():
    graph = load_graph("resnet18-cifar")
    model = build_model("resnet18-cifar").eval()
    flops = run_flopcounter(model, torch.randn(1, 3, 32, 32))
    result = invoke("table", "resnet18-cifar", "--convention", "flopcounter", "-f", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["convention"] == "flopcounter" and data["totals"]["macs"] == flops
    assert data["totals"]["macs"] == 2 * analyze(graph).totals.macs     # FLOPs = 2 × MACs
    plain = invoke("table", "resnet18-cifar", "--convention", "flopcounter").stdout
    assert "FLOPs" in plain and "FlopCounterMode" in plain and f"{flops:,}" in plain


def test_table_under_a_convention_leaves_the_paper_audit_out():
    result = invoke("table", "googlenet", "--convention", "torchinfo", "-f", "json")
    data = json.loads(result.stdout)
    assert data["audit"]["network"] == {} and "convention" in data["audit_skipped"]
    assert all("paper" not in row for row in data["rows"])


def test_an_unknown_convention_lists_the_known_ones():
    for args in (["table", "cifar-cnn", "--convention", "flops"],):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "unknown convention 'flops'" in lines[0]
        assert "paper, fvcore, flopcounter, thop, ptflops, ptflops-aten, torchinfo" in lines[0]


def test_conventions_command_json_agrees_with_the_tools():
    result = invoke("conventions", "cifar-cnn", "-f", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [t["name"] for t in data["tools"]] == list(conventions.NAMES)
    model = build_model("cifar-cnn").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert data["totals"]["ptflops"] == run_ptflops(model, x)
        assert data["totals"]["torchinfo"] == run_torchinfo(model, x)
    by_op = {r["op"]: r for r in data["ops"]}
    assert by_op["conv"]["layers"] == 4 and sum(r["layers"] for r in data["ops"]) == \
        len(load_graph("cifar-cnn").layers())
    for name in conventions.NAMES:
        assert sum(r["values"][name] for r in data["ops"]) == data["totals"][name]
    assert any("twice" in q for t in data["tools"] for q in t["quirks"])


@pytest.mark.parametrize("fmt", ["csv", "markdown", "table"])
def test_conventions_command_other_formats(fmt):
    result = invoke("conventions", "resnet18-cifar", "-f", fmt)
    assert result.exit_code == 0, result.output
    for name in conventions.NAMES:
        assert name in result.stdout
    assert "batchnorm" in result.stdout


def test_conventions_command_bad_input_is_one_line():
    result = invoke("conventions", "no-such-spec")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_conventions_fit_an_80_column_terminal():
    from test_width import in_terminal
    for args in (["conventions", "googlenet"], ["table", "googlenet", "--convention", "thop"]):
        text, code = in_terminal(args, 80)
        assert code == 0, text
        assert [line for line in text.splitlines() if len(line) > 80] == []
    assert "ptflops: counts twice" in " ".join(in_terminal(["conventions", "cifar-cnn"],
                                                           80)[0].split())
