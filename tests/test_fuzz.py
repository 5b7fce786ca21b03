"""Random and mutated YAML never gets a traceback: either a report or one ArchcalcError."""
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archcalc.core import analysis, graph
from archcalc.views import report, table
from archcalc.core import spec
from archcalc.errors import ArchcalcError
from tests.conftest import SPECS

GOOGLENET = (SPECS / "googlenet.yaml").read_text(encoding="utf-8")
CIFAR = (SPECS / "cifar-cnn.yaml").read_text(encoding="utf-8")

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True),
                    st.sampled_from(["same", "valid", "relu", "conv", "n1x1", "3a", "", "x.y"]))
keys = st.sampled_from(["input", "layers", "blocks", "heads", "defaults", "conv", "maxpool",
                        "linear", "concat", "add", "seq", "out", "kernel", "stride", "padding",
                        "args", "body", "variants", "after", "use", "paper", "params", "ops",
                        "name", "ceil", "groups", "act", "p", "inception", "zz"])
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
@given(st.randoms(use_true_random=False), st.sampled_from([GOOGLENET, CIFAR]),
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
