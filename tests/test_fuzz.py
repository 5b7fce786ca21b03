"""Random and mutated YAML never gets a traceback: either a report or one ArchcalcError."""
import random

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archcalc.core import analysis, graph
from archcalc.views import report, table
from archcalc.core import spec
from archcalc.errors import ArchcalcError
from tests.conftest import SPECS

GOOGLENET = (SPECS / "googlenet.yaml").read_text(encoding="utf-8")
CIFAR = (SPECS / "cifar-cnn.yaml").read_text(encoding="utf-8")
# Spec language 2 in one small spec: settings, variants, defaults, expressions, stages, from:,
# the joins mul and crop, whole-network figures
LANG2 = """name: lang2
input: [3, 32, 32]
settings: {width: 1.0, n: 2, unit: res}
variants:
  base: {settings: {}, paper: {params: 20K}}
  wide: {settings: {width: 1.5}}
paper: {ops: 5M}
paper_params: params
blocks:
  res:
    args: [out, {stride: 1}]
    body:
      - conv: {name: conv1, out: out, kernel: 3, stride: stride, bias: false}
      - batchnorm: {name: bn1, act: relu}
      - conv: {name: conv2, out: "cin", kernel: 3, groups: "cin // 4"}
      - mul: [{from: conv2}, [gap, conv: {out: "cin", kernel: 1, act: sigmoid}]]
      - add: [{from: mul}, [{from: input}, conv: {name: proj, out: out, kernel: 1, stride: stride}]]
layers:
  stem: {conv: {out: "make_divisible(16 * width, 8)", kernel: 3}}
  layer1: {stage: {block: unit, repeat: n, args: {out: "round(16 * width)"}, first: {stride: 2}}}
  up: {upsample: {scale: 2}}
  crop: {crop: [{from: stem}, [{from: up}, conv: {out: 8, kernel: 3, padding: valid}]]}
  pool: {concat: [[{from: layer1}, gap], [{from: crop}, gap]]}
  head: [flatten, linear: {out: 10}]
"""

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True),
                    st.sampled_from(["same", "valid", "relu", "conv", "n1x1", "3a", "", "x.y",
                                     "cin * 2", "cin / 0", "make_divisible(cin * 0.75, 8)",
                                     "ceil(hin / 3)", "width", "input", "1e400", "max()"]))
keys = st.sampled_from(["input", "layers", "blocks", "heads", "defaults", "conv", "maxpool",
                        "linear", "concat", "add", "seq", "out", "kernel", "stride", "padding",
                        "args", "body", "variants", "after", "use", "paper", "params", "ops",
                        "name", "ceil", "groups", "act", "p", "inception", "zz", "stage",
                        "from", "repeat", "first", "last", "block", "settings", "mul", "crop",
                        "upsample", "scale", "paper_params", "width"])
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=25)


def run_whole_path(text: str) -> None:
    try:
        s = spec.parse(text, "fuzz.yaml")
        r = analysis.analyze(graph.build(s, heads=True), heads=True)
        report.make_table(r)
        table.render_plain(report.make_table(r, detail=True))
        table.to_json(r.to_dict())
    except ArchcalcError as exc:
        assert str(exc).startswith("fuzz.yaml") and "\n" not in str(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, values, max_size=6))
def test_random_documents(doc):
    import yaml
    run_whole_path(yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False), st.sampled_from([GOOGLENET, CIFAR, LANG2]),
       st.integers(1, 4))
def test_mutated_specs(rnd: random.Random, base: str, edits: int):
    lines = base.splitlines()
    for _ in range(edits):
        i = rnd.randrange(len(lines))
        kind = rnd.randrange(5)
        if kind == 0:
            del lines[i]
        elif kind == 1:
            lines.insert(i, lines[rnd.randrange(len(lines))])
        elif kind == 2 and lines[i]:
            j = rnd.randrange(len(lines[i]))
            lines[i] = lines[i][:j] + rnd.choice("{}[]:,-#'\" 0179xK") + lines[i][j + 1:]
        elif kind == 3:
            lines[i] = lines[i].replace(str(rnd.randrange(10)), str(rnd.randrange(10)))
        else:
            lines[i] = " " * rnd.randrange(4) + lines[i].lstrip()
    run_whole_path("\n".join(lines))


# --- specs built to expand: aliases, deep nesting, huge numbers, doubling blocks -----------
# These run in a child process limited to 2 GB and 60 s (see test_expanding_mutations): a
# regression in the limits (archcalc.core.limits) must fail, not fill the machine's memory.

def _bomb(rnd: random.Random) -> str:
    levels, width = rnd.randint(2, 10), rnd.randint(2, 12)
    lines = ["zz0: &zz0 [" + ",".join(["x"] * width) + "]"]
    lines += [f"zz{i}: &zz{i} [" + ",".join([f"*zz{i - 1}"] * width) + "]"
              for i in range(1, levels)]
    return "\n".join(lines)


def _expand(rnd: random.Random, lines: list) -> None:
    """One edit of ``lines`` (a spec's) that makes it expand, nest or overflow."""
    layer = [i for i, line in enumerate(lines) if line.startswith("  ") and ": " in line
             and not line.startswith("   ")]
    i = rnd.choice(layer) if layer else rnd.randrange(len(lines))
    kind = rnd.randrange(8)
    if kind == 0:                                       # billion laughs, at the top or inside
        where = rnd.choice([0, i])
        bomb = _bomb(rnd)
        lines.insert(where, bomb if where == 0 else "\n".join("  " + b for b in bomb.split("\n")))
        if where == 0:
            lines.append(f"extra: *zz{bomb.count(chr(10))}")
    elif kind == 1:                                     # deep flow nesting
        n = rnd.choice([50, 99, 150, 300, 999, 1200])
        key, _, value = lines[i].partition(": ")
        left, right = rnd.choice([("[", "]"), ("{seq: ", "}")])
        lines[i] = f"{key}: " + left * n + (value or "relu") + right * n
    elif kind == 2:                                     # an anchor that contains itself
        key, _, value = lines[i].partition(": ")
        lines[i] = f"{key}: &self [{value or 'relu'}, *self]"
    elif kind == 3:                                     # numbers YAML or Python chokes on
        big = rnd.choice(["9" * rnd.randint(10, 6000), "1" + "0" * 21, ".nan", "-.inf", "1e400",
                          "010", "0x7fffffff", "1:30", "yes", "2147483648"])
        numbers = [j for j, line in enumerate(lines) if any(c.isdigit() for c in line)]
        j = rnd.choice(numbers)
        digits = [k for k, c in enumerate(lines[j]) if c.isdigit()]
        k = rnd.choice(digits)
        lines[j] = lines[j][:k] + big + lines[j][k + 1:]
    elif kind == 4:                                     # blocks calling the next twice
        depth = rnd.choice([3, 8, 16, 17, 20, 30])
        chain = [f"  zz{d}: {{body: [zz{d + 1}, zz{d + 1}]}}" for d in range(depth)]
        chain.append(f"  zz{depth}: {{body: relu}}")
        if "blocks:" in lines:
            at = lines.index("blocks:") + 1
            lines[at:at] = chain
        else:
            lines[1:1] = ["blocks:"] + chain
        key = lines[i].partition(": ")[0] if layer else "  zzrow"
        lines[i] = f"{key}: zz0"
    elif kind == 6:                                     # a stage repeated beyond reason
        count = rnd.choice(["99999", "2147483647", "'ceil(10 ** 3)'", "'9' ", "'n * 99999'",
                            "'make_divisible(1e90, 8)'", "0", "-1", "'1 / 3'"])
        key = lines[i].partition(": ")[0] if layer else "  zzrow"
        lines[i] = f"{key}: {{stage: {{block: zzs, repeat: {count}, args: {{}}}}}}"
        stage = ["  zzs: {body: [{stage: {block: zzt, repeat: 400, args: {}}}]}",
                 "  zzt: {body: [relu, relu]}"]
        if "blocks:" in lines:
            at = lines.index("blocks:") + 1
            lines[at:at] = stage
        else:
            lines[1:1] = ["blocks:"] + stage
    elif kind == 7:                                     # expressions that blow up or nest
        expr = rnd.choice(["'(' * 500 + '1' + ')' * 500", "'9' * 900", "'1+' * 400 + '1'",
                           "'cin * ' * 300 + 'cin'"])
        key = lines[i].partition(": ")[0] if layer else "  zzrow"
        lines[i] = f"{key}: {{conv: {{out: '{eval(expr)}', kernel: 1}}}}"
    else:                                               # a key YAML 1.1 read as a boolean
        lines[i] = rnd.choice(["  true: relu", "  no: relu", "  1:30: relu", "  010: relu"])


def expanding_mutations(examples: int = 60) -> None:
    """A hypothesis search, meant for a limited child process (not collected by pytest)."""
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.randoms(use_true_random=False), st.sampled_from([GOOGLENET, CIFAR, LANG2]),
           st.integers(1, 2))
    def search(rnd: random.Random, base: str, edits: int):
        lines = base.splitlines()
        for _ in range(edits):
            _expand(rnd, lines)
        run_whole_path("\n".join(lines))
    search()


def _expanding_mutations_in_a_child(examples: int) -> None:
    import os
    import resource
    import subprocess
    import sys

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))

    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHCALC_MAX_")}
    env["PYTHONPATH"] = str(SPECS.parent.parent)
    code = f"from tests.test_fuzz import expanding_mutations as m; m({examples})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30 + examples, preexec_fn=limit, env=env,
                            cwd=SPECS.parent.parent)
    assert result.returncode == 0, result.stderr[-4000:]


def test_expanding_mutations():
    _expanding_mutations_in_a_child(15)


@pytest.mark.slow
def test_expanding_mutations_at_length():
    _expanding_mutations_in_a_child(200)
