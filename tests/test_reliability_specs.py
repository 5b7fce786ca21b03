"""Specs built to hang archcalc, fill its memory or overflow its stack get one line, exit 2.

Each case runs the CLI in a child process limited to about 2 GB of address space and 30 s, so
that a regression fails the test instead of eating the machine: before the limits, the alias
bomb below reached 2.2 GB in a minute and the doubling blocks ran on.
"""
import os
import resource
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from archcalc.cli import app
from archcalc.core import graph, spec
from tests.conftest import ROOT, SPECS

MEMORY = 2 * 1024**3
runner = CliRunner()


def _limit_child():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def archcalc(*args, env=None, timeout=30):
    """Run ``python -m archcalc ARGS`` under the memory and time limits."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ARCHCALC_MAX_")}
    environ.update(PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "archcalc", *args], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=_limit_child, env=environ)


def refused(path, *args, env=None) -> str:
    """The one line that ``table PATH`` prints on stderr, having checked it is one clean line."""
    result = archcalc("table", str(path), *args, env=env)
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def billion_laughs(levels=9, width=9) -> str:
    """A few hundred bytes standing for width**levels values: each alias list repeats the last."""
    names = "abcdefghijklmnop"[:levels]
    lines = ["a: &a [" + ",".join(["x"] * width) + "]"]
    lines += [f"{n}: &{n} [" + ",".join([f"*{p}"] * width) + "]" for p, n in zip(names, names[1:])]
    return "\n".join(lines) + "\n"


def test_alias_bomb_before_the_unknown_keys(tmp_path):
    path = write(tmp_path, billion_laughs() + "input: [3, 8, 8]\nlayers: {l: relu}\n")
    assert len(path.read_bytes()) < 400
    assert refused(path) == (f"{path}:7:4: this value expands to more than 2,000,000 YAML values, "
                             "aliases repeated (set ARCHCALC_MAX_YAML_NODES to raise the limit)")


def test_alias_bomb_inside_the_layers(tmp_path):
    bomb = billion_laughs().replace("\n", "\n  ")
    path = write(tmp_path, "input: [3, 8, 8]\nblocks:\n  " + bomb +
                 "\nlayers: {l: {seq: *i}}\n")
    assert "ARCHCALC_MAX_YAML_NODES" in refused(path)


def test_alias_bomb_within_a_raised_limit_still_reads(tmp_path):
    """The limit counts values as aliases repeat them: 9 + 9 + 81 + 729 lists and items."""
    path = write(tmp_path, billion_laughs(levels=3) + "input: [3, 8, 8]\nlayers: {l: relu}\n")
    assert "ARCHCALC_MAX_YAML_NODES" in refused(path, env={"ARCHCALC_MAX_YAML_NODES": "800"})
    assert refused(path, env={"ARCHCALC_MAX_YAML_NODES": "2000"}).endswith(
        "the spec: unknown key 'a'")


def test_doubling_blocks_stop_at_the_layer_limit(tmp_path):
    """30 blocks each calling the next twice: 2**30 layers from 800 bytes."""
    lines = ["input: [3, 8, 8]", "blocks:"]
    lines += [f"  b{i}: {{body: [b{i + 1}, b{i + 1}]}}" for i in range(30)]
    lines += ["  b30: {body: relu}", "layers:", "  x: b0"]
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert len(path.read_bytes()) < 1000
    assert refused(path) == (f"{path}:35:3: layer 'x': the network expands to more than 100,000 "
                             "layers (set ARCHCALC_MAX_LAYERS to raise the limit)")


def test_layer_limit_is_the_environments(tmp_path):
    lines = ["input: [3, 8, 8]", "layers:"] + [f"  l{i}: relu" for i in range(20)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert refused(path, env={"ARCHCALC_MAX_LAYERS": "10"}) == (
        f"{path}:13:3: layer 'l10': the network expands to more than 10 layers "
        "(set ARCHCALC_MAX_LAYERS to raise the limit)")
    assert refused(path, env={"ARCHCALC_MAX_LAYERS": "lots"}) == (
        "ARCHCALC_MAX_LAYERS must be a positive whole number, got 'lots'")
    assert archcalc("table", str(path), env={"ARCHCALC_MAX_LAYERS": "20"}).returncode == 0


@pytest.mark.parametrize("text, where", [
    ("input: [3, 8, 8]\nlayers: &a {l: [*a]}\n", "2:9"),
    ("a: &a [*a]\ninput: [3, 8, 8]\nlayers: {l: relu}\n", "1:4"),
    ("input: [3, 8, 8]\nlayers: {l: &m {seq: [relu, *m]}}\n", "2:13"),
], ids=["layers", "top-level list", "op"])
def test_recursive_alias(tmp_path, text, where):
    path = write(tmp_path, text)
    assert refused(path) == f"{path}:{where}: a recursive alias: this value contains itself"


@pytest.mark.parametrize("levels", [300, 999])
@pytest.mark.parametrize("kind", ["list", "mapping", "block"])
def test_deep_nesting(tmp_path, kind, levels):
    if kind == "list":
        body = "[" * levels + "relu" + "]" * levels
    elif kind == "mapping":
        body = "{seq: " * levels + "relu" + "}" * levels
    else:   # block style: one level of indentation each
        body = "\n" + "\n".join("  " * (i + 2) + "-" for i in range(levels)) + " relu"
    path = write(tmp_path, "input: [3, 8, 8]\nlayers:\n  l: " + body + "\n")
    line = refused(path)
    # beyond 1,000 levels libyaml refuses first ("exceeded maximum nesting depth")
    assert line.startswith(f"{path}:") and ("ARCHCALC_MAX_DEPTH" in line or
                                            "nesting depth" in line), line


@pytest.mark.parametrize("levels, what", [(400, "network"), (900, "YAML")])
def test_depth_limit_raised_beyond_pythons_stack(tmp_path, levels, what):
    path = write(tmp_path, "input: [3, 8, 8]\nlayers:\n  l: " + "[" * levels + "relu" +
                 "]" * levels + "\n")
    assert refused(path, env={"ARCHCALC_MAX_DEPTH": "100000"}) == (
        f"{path}: the {what} nests too deeply for Python's stack")


def test_blocks_calling_blocks_deeply(tmp_path):
    lines = ["input: [3, 8, 8]", "blocks:"]
    lines += [f"  b{i}: {{body: [b{i + 1}]}}" for i in range(400)]
    lines += ["  b400: {body: relu}", "layers:", "  x: b0"]
    path = write(tmp_path, "\n".join(lines) + "\n")
    line = refused(path)
    assert line.endswith(": layer 'x': blocks, sequences and branches nest more than 100 levels "
                         "deep (set ARCHCALC_MAX_DEPTH to raise the limit)"), line


@pytest.mark.parametrize("value, message", [
    ("3x²x224", "got [3, '²', 224]"),
    ("3x" + "9" * 5000 + "x224", "got [3, '999999"),
    ("3x10000000000x224", "'input' dimensions must be at most 2,147,483,647, got 10000000000"),
])
def test_bad_input_option(value, message):
    result = archcalc("table", "cifar-cnn", "--input", value)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("--input: ") and message in result.stderr


def test_huge_channels_cannot_make_numbers_too_long_to_print(tmp_path):
    """out: 10**300 used to print 300-digit counts; 10**5000 is too long for int() itself."""
    for digits in (50, 300, 5000):
        path = write(tmp_path, "input: [3, 8, 8]\nlayers:\n  c: {conv: {out: 1" + "0" * digits
                     + ", kernel: 1}}\n")
        assert refused(path).startswith(f"{path}:3:")


def test_yaml_1_2_numbers(tmp_path):
    """010 is ten, not YAML 1.1's eight; 0o10 and 0x10 say their base; a key stays as written."""
    s = spec.parse("input: [3, 8, 8]\nlayers:\n"
                   "  010: {conv: {out: 010, kernel: 1}}\n"
                   "  b: {conv: {out: 0o10, kernel: 1}}\n"
                   "  c: {conv: {out: 0x10, kernel: 1, bias: false}}\n"
                   "  d: {batchnorm: {eps: 1e-3}}\n", "n.yaml")
    layers = graph.build(s).layers()
    assert [row.name for row in s.rows] == ["010", "b", "c", "d"]
    assert [layer.out_shape for layer in layers] == [(10, 8, 8), (8, 8, 8), (16, 8, 8),
                                                     (16, 8, 8)]
    assert layers[2].op.a["bias"] is False and layers[3].op.a["eps"] == 0.001


def test_ten_thousand_layers_and_every_bundled_spec_still_read(tmp_path):
    lines = ["input: [8, 16, 16]", "layers:"]
    lines += [f"  l{i}: " + ("{conv: {out: 8, kernel: 3, padding: 1}}", "batchnorm", "relu")[i % 3]
              for i in range(10_000)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert archcalc("table", str(path), "-f", "csv").returncode == 0
    for bundled in sorted(SPECS.glob("*.yaml")):
        result = runner.invoke(app, ["table", str(bundled)])
        assert result.exit_code == 0, (bundled, result.stderr)


@pytest.mark.parametrize("args,line", [
    (["table", "googlenet", "--input", ""],
     "--input: 'input' must be [channels, height, width] of positive integers, got ['']"),
    (["table", "googlenet", "--tolerance", "nan"],
     "--tolerance: the audit's tolerance must be a finite percentage, not negative, got nan"),
    (["table", "googlenet", "--tolerance", "inf"],
     "--tolerance: the audit's tolerance must be a finite percentage, not negative, got inf"),
    (["train", "synthetic", "--quick", "--lr", "inf"],
     "training option 'lr' must be a positive finite number, got inf"),
    (["train", "synthetic", "--quick", "--weight-decay", "nan"],
     "training option 'weight_decay' must be a finite number, not negative, got nan"),
])
def test_options_that_are_not_numbers_one_can_use(args, line, tmp_path):
    """An empty --input, a tolerance or rate of NaN or infinity: one line, exit 2, and no run
    folder left behind."""
    result = subprocess.run([sys.executable, "-m", "archcalc", *args], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == line
    assert list(tmp_path.iterdir()) == []


# --- the new inputs: settings, sweeps, diagrams, imports -------------------------------------
# Each is run as a user would, in a child limited to 2 GB and 30 s: one line, exit 2, nothing
# on stdout, whatever the value's size or nesting.

HUGE_CHAIN = "input: [2, 4, 4]\nlayers:\n" + "".join(f"  l{i}: relu\n" for i in range(20_000))


@pytest.mark.parametrize("args, said", [
    (["table", "mobilenetv2", "--set", "width=1e999999"], "is too large (more than 100 digits)"),
    (["table", "mobilenetv2", "--set", "width=" + "(" * 300 + "1" + ")" * 300],
     "too many nested parentheses"),
    (["table", "mobilenetv2", "--set", "width=" + "9*" * 400 + "9"], "expression '9*9"),
    (["table", "mobilenetv2", "--set", "width=1/0"], "division by zero"),
    (["table", "mobilenetv2", "--set", "width"], "--set takes NAME=VALUE"),
    (["table", "resnet", "--set", "n1=99999999"], "more than the limit of 100,000 layers"),
    (["sweep", "resnet", "--input", "3x1:2147483647:1"], "the sweep has 2,147,483,647 points"),
    (["sweep", "mobilenetv2", "--set", "width=" + ",".join(["0.5"] * 20_000)],
     "the sweep has 20,000 points"),
    (["sweep", "googlenet", "--input", "3x" + "9" * 5000], "--input"),
    (["import", "os.path:nosuchthing", "-o", "{tmp}/x.yaml"], "os.path:nosuchthing"),
    (["import", "{tmp}/junk.onnx", "-o", "{tmp}/x.yaml"], "junk.onnx"),
    (["import", "{tmp}/junk.pt2", "-o", "{tmp}/x.yaml"], "junk.pt2"),
    (["graph", "{tmp}/chain.yaml", "--detail", "-o", "{tmp}/x.svg"], "20,001 nodes"),
])
def test_hostile_values_for_the_new_commands_are_one_line(tmp_path, args, said):
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07" + os.urandom(4096))
    (tmp_path / "junk.pt2").write_bytes(b"PK\x03\x04" + os.urandom(4096))
    (tmp_path / "chain.yaml").write_text(HUGE_CHAIN)
    result = archcalc(*[a.format(tmp=tmp_path) for a in args], timeout=60)
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 2 and result.stdout == "", result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], result.stderr[-2000:]
    assert not (tmp_path / "x.yaml").exists() and not (tmp_path / "x.svg").exists()
