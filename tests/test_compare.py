"""`archcalc compare`: naive vs dimension-reduced Inception, and two specs row by row.

Expected numbers are typed in from shared/reference/googlenet.md ("Naive vs dimension-reduced
Inception") and cifar-models.md, or from arithmetic written out here; never from archcalc."""
import json
import textwrap

import pytest

from archcalc.core import compare
from archcalc.views import compare as view
from archcalc.errors import ArchcalcError

MODULES = ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
# Table 1's filter counts: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj
FILTERS = {"3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
           "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
           "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
           "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
           "5b": (384, 192, 384, 48, 128, 128)}
# module: (input channels, reduced weights, reduced out, naive weights, naive out, naive/reduced)
SAME_INPUT = {"3a": (192, 163_328, 256, 387_072, 416, 2.37),
              "3b": (256, 388_096, 480, 1_089_536, 672, 2.81),
              "4a": (480, 375_552, 512, 1_566_720, 928, 4.17),
              "5b": (832, 1_442_816, 1024, 5_857_280, 1728, 4.06)}


@pytest.fixture(scope="module")
def naive_reduced():
    return compare.run("naive", "reduced")


def pair(c, name):
    return next(p for p in c.modules if p.name == name)


# --- per module, the same input -------------------------------------------------------------

def test_the_modules_are_the_nine_inception_modules(naive_reduced):
    assert [p.name for p in naive_reduced.modules] == MODULES
    assert naive_reduced.fed_by == "reduced"


@pytest.mark.parametrize("name", list(SAME_INPUT))
def test_module_on_the_same_input(naive_reduced, name):
    channels, reduced, reduced_out, naive, naive_out, times = SAME_INPUT[name]
    p = pair(naive_reduced, name)
    assert p.input_channels == p.a.in_shape[0] == p.b.in_shape[0] == channels
    assert (p.a.weights, p.a.out_shape[0]) == (naive, naive_out)
    assert (p.b.weights, p.b.out_shape[0]) == (reduced, reduced_out)
    assert round(p.ratio("weights"), 2) == times


def test_3a_multiply_adds(naive_reduced):
    p = pair(naive_reduced, "3a")
    assert (p.a.macs, p.b.macs) == (303_464_448, 128_049_152)
    assert p.a.in_shape == p.b.in_shape == (192, 28, 28)


def test_biases_are_counted_in_params(naive_reduced):
    # 3a naive: one bias per output channel of its three convolutions (64 + 128 + 32)
    p = pair(naive_reduced, "3a")
    assert p.a.params == 387_072 + 64 + 128 + 32
    # 3a reduced: six convolutions, 64 + 96 + 128 + 16 + 32 + 32 biases
    assert p.b.params == 163_328 + 368


# --- the whole network, stacked -------------------------------------------------------------

def test_stacked_totals(naive_reduced):
    a, b = naive_reduced.a, naive_reduced.b
    assert (a.total("weights"), a.total("macs")) == (97_519_936, 12_568_061_056)
    assert (b.total("weights"), b.total("macs")) == (6_990_272, 1_582_671_872)
    assert b.total("params") == 6_998_552


def test_stacked_widths_compound(naive_reduced):
    # naive: out = #1×1 + #3×3 + #5×5 + the input, passed through the pool branch unprojected
    width, naive = 192, []
    for name in MODULES:
        n1, _, n3, _, n5, _ = FILTERS[name]
        width = n1 + n3 + n5 + width
        naive.append(width)
    assert naive[-1] == 4_944
    reduced = [n1 + n3 + n5 + proj for n1, _, n3, _, n5, proj in FILTERS.values()]
    a, b = naive_reduced.a, naive_reduced.b
    assert [a.rows[m].out_shape[0] for m in MODULES] == naive
    assert [b.rows[m].out_shape[0] for m in MODULES] == reduced


def test_verdict_quotes_the_ratios(naive_reduced):
    assert 97_519_936 / 6_990_272 == pytest.approx(13.95, abs=0.01)
    assert 12_568_061_056 / 1_582_671_872 == pytest.approx(7.94, abs=0.01)
    text = view.verdict(naive_reduced)
    assert text.startswith("reduced needs 14.0× fewer weights and 7.9× fewer multiply-adds "
                           "than naive.")
    assert "(the last module: 4,944 channels against 1,024)" in text


def test_verdict_splits_the_saving_between_modules_and_compounding(naive_reduced):
    c = naive_reduced
    alone = sum(p.a.weights - p.b.weights for p in c.modules)
    whole = 97_519_936 - 6_990_272
    share = round(100 * alone / whole)
    assert 0 < share < 50           # most of the saving is compounding, not the modules alone
    assert f"the modules alone make {share}% of the saving in weights" in view.verdict(c)
    assert f"the other {100 - share}%" in view.verdict(c)


def test_order_swaps_sides_not_inputs():
    c = compare.run("reduced", "naive")
    assert c.fed_by == "reduced"
    assert pair(c, "3a").a.weights == 163_328 and round(pair(c, "3a").ratio("weights"), 2) == 0.42
    assert view.verdict(c).startswith("naive needs 14.0× more weights and 7.9× more multiply-adds")


def test_json_contract(naive_reduced):
    data = json.loads(json.dumps(view.to_dict(naive_reduced)))
    assert {"a", "b", "modules", "network", "ratios"} <= set(data)
    assert data["a"]["variant"] == "naive" and data["b"]["variant"] == "reduced"
    m = data["modules"][0]
    assert m["name"] == "3a" and m["input_channels"] == 192
    assert {k: m["a"][k] for k in ("weights", "macs", "output_channels")} == \
        {"weights": 387_072, "macs": 303_464_448, "output_channels": 416}
    assert {k: m["b"][k] for k in ("weights", "macs", "output_channels")} == \
        {"weights": 163_328, "macs": 128_049_152, "output_channels": 256}
    assert {"params", "weights", "macs"} <= set(m["ratios"])
    naive, reduced = data["network"]["a"], data["network"]["b"]
    assert (naive["weights"], naive["macs"]) == (97_519_936, 12_568_061_056)
    assert (reduced["weights"], reduced["macs"]) == (6_990_272, 1_582_671_872)
    assert list(naive["output_channels"]) == MODULES and naive["output_channels"]["5b"] == 4_944
    assert data["ratios"]["weights"] == 97_519_936 / 6_990_272


def test_input_option_reaches_both_networks():
    c = compare.run("naive", "reduced", input_shape=(3, 448, 448))
    assert pair(c, "3a").a.in_shape == (192, 56, 56)
    # weights do not depend on the input size; multiply-adds grow with its area (×4)
    assert pair(c, "3a").a.weights == 387_072 and pair(c, "3a").b.macs == 4 * 128_049_152


# --- two specs, row by row ------------------------------------------------------------------

def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def two_specs(tmp_path):
    a = write(tmp_path, "small.yaml", """
        input: [3, 8, 8]
        layers:
          conv1: {conv: {out: 8, kernel: 3}}
          pool:  {maxpool: {kernel: 2}}
          fc:    [flatten, linear: {out: 10}]
        """)
    b = write(tmp_path, "wide.yaml", """
        input: [3, 8, 8]
        layers:
          conv1: {conv: {out: 16, kernel: 3}}
          conv2: {conv: {out: 16, kernel: 1}}
          pool:  {maxpool: {kernel: 2}}
          fc:    [flatten, linear: {out: 10}]
        """)
    return a, b


def test_specs_matched_by_name(two_specs):
    c = compare.run(*two_specs)
    assert c.mode == "specs" and (c.a.label, c.b.label) == ("small", "wide")
    assert [p.name for p in c.modules] == ["conv1", "conv2", "pool", "fc"]
    conv1, conv2, _, fc = c.modules
    # conv 3×3 on 3 channels, same padding on 8×8: 27 weights per filter, 64 positions
    assert (conv1.a.weights, conv1.b.weights) == (27 * 8, 27 * 16)
    assert (conv1.a.macs, conv1.b.macs) == (27 * 8 * 64, 27 * 16 * 64)
    assert conv1.ratio("weights") == 0.5 and conv1.diff("weights") == -27 * 8
    assert conv2.a is None and conv2.b.weights == 16 * 16 and conv2.ratio("weights") is None
    assert conv2.diff("weights") == -256        # a missing row counts as zero
    # the linear layer sees 8·4·4 = 128 features on one side, 16·4·4 = 256 on the other
    assert (fc.a.weights, fc.b.weights) == (128 * 10, 256 * 10)
    assert fc.input_channels is None and conv1.input_channels == 3
    assert sum(p.diff("weights") for p in c.modules) == c.a.total("weights") - c.b.total("weights")


def test_specs_table_marks_unmatched_rows(two_specs):
    table = view.make_table(compare.run(*two_specs))
    assert [r[0] for r in table.rows] == ["conv1", "conv2 (only in wide)", "pool", "fc"]
    assert table.footer[0] == "total"


def test_bundled_specs_by_name():
    c = compare.run("googlenet", "nin")
    assert c.a.total("params") == 6_998_552 and c.b.total("params") == 966_986
    assert {p.name for p in c.modules if p.a and p.b} == {"pool1", "pool2", "softmax"}


def test_union_keeps_both_orders():
    assert compare._union(["a", "c", "d"], ["b", "c", "e", "d", "f"]) == \
        ["b", "a", "c", "e", "d", "f"]


def test_specs_with_nothing_in_common(tmp_path, two_specs):
    other = write(tmp_path, "other.yaml", """
        input: [3, 8, 8]
        layers:
          stem: {conv: {out: 4, kernel: 1}}
        """)
    with pytest.raises(ArchcalcError, match="no row name in common"):
        compare.run(two_specs[0], other)


# --- telling specs from variants, and bad input ----------------------------------------------

@pytest.mark.parametrize("arg, is_spec", [
    ("googlenet", True), ("nin", True), ("naive", False), ("reduced", False),
    ("missing.yaml", True), ("specs/missing", True)])
def test_is_spec(arg, is_spec):
    assert compare.is_spec(arg) is is_spec


@pytest.mark.parametrize("args, message", [
    (("naiv", "reduced"), "unknown variant 'naiv'; this spec has: reduced, naive"),
    (("naive", "reduced", "cifar-cnn"), "this spec has no variants"),
    (("naive", "naive"), "'naive' twice"),
    (("googlenet", "naive"), "'googlenet' is a spec but 'naive' is neither"),
    (("googlenet", "nin", "googlenet"), "--spec is for naming the spec"),
])
def test_bad_arguments(args, message):
    with pytest.raises(ArchcalcError, match=message.replace("(", r"\(")):
        compare.run(*args)


def test_variant_option_is_for_specs():
    with pytest.raises(ArchcalcError, match="--variant is for comparing two specs"):
        compare.run("naive", "reduced", variant="naive")


def test_variants_that_build_the_same_network(tmp_path):
    path = write(tmp_path, "same.yaml", """
        input: [3, 8, 8]
        blocks:
          unit:
            args: [n]
            variants:
              x: {conv: {out: n, kernel: 3}}
              y: {conv: {out: n, kernel: 3}}
        layers:
          u1: {unit: [8]}
        """)
    with pytest.raises(ArchcalcError, match="build the same layers in every row"):
        compare.run("x", "y", spec=path)


def test_modules_fed_by_the_default_network_when_first_variants_differ(tmp_path):
    path = write(tmp_path, "mixed.yaml", """
        input: [3, 8, 8]
        blocks:
          p:
            variants:
              x: {conv: {out: 4, kernel: 1}}
              y: {conv: {out: 8, kernel: 1}}
          q:
            variants:
              y: {conv: {out: 2, kernel: 1}}
              x: {conv: {out: 6, kernel: 1}}
        layers:
          first: p
          second: q
        """)
    c = compare.run("x", "y", spec=path)
    assert c.fed_by is None and c.feeder == "the spec's default network"
    # by default p gives 4 channels (its first variant, x); q is fed those in both variants
    second = pair(c, "second")
    assert second.a.in_shape == second.b.in_shape == (4, 8, 8)
    assert (second.a.weights, second.b.weights) == (4 * 6, 4 * 2)
    # stacked, q is fed 4 channels in x and 8 in y
    assert (c.a.rows["second"].weights, c.b.rows["second"].weights) == (4 * 6, 8 * 2)


# --- the command ----------------------------------------------------------------------------

def cli(*args, code=0):
    from typer.testing import CliRunner
    from archcalc.cli import app
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.stderr
    return result


def test_cli_table_on_screen():
    out = cli("compare", "naive", "reduced").stdout
    for figure in ("387,072", "163,328", "2.37×", "303,464,448", "4,944", "97,519,936",
                   "12,568,061,056", "6,990,272", "1,582,671,872"):
        assert figure in out
    assert "reduced needs 14.0× fewer weights and 7.9× fewer multiply-adds than naive." in out


def test_cli_json():
    data = json.loads(cli("compare", "naive", "reduced", "-f", "json").stdout)
    assert data["network"]["a"]["weights"] == 97_519_936
    assert data["modules"][0]["a"]["weights"] == 387_072


def test_cli_csv_plain_numbers():
    import csv
    import io
    rows = list(csv.DictReader(io.StringIO(cli("compare", "naive", "reduced", "-f", "csv").stdout)))
    assert [r["module"] for r in rows] == MODULES + ["modules"]
    first = rows[0]
    assert (first["naive weights"], first["reduced weights"]) == ("387072", "163328")
    assert first["× weights"] == "2.3699" and first["input"] == "28×28×192"
    assert (first["naive out"], first["reduced out"]) == ("416", "256")
    assert rows[-2]["naive out (network)"] == "4944"


def test_cli_markdown_to_a_file(tmp_path):
    target = tmp_path / "inception.md"
    result = cli("compare", "naive", "reduced", "--format", "markdown", "-o", str(target))
    assert result.stdout == "" and f"wrote {target}" in result.stderr
    lines = [l for l in target.read_text().splitlines() if l.startswith("|")]
    assert lines[0].startswith("| module") and len({l.count("|") for l in lines}) == 1
    assert any("| 3a " in l and "387,072" in l and "2.37×" in l for l in lines)
    assert "reduced needs 14.0× fewer weights" in target.read_text()


def test_cli_two_specs(two_specs):
    out = cli("compare", *two_specs).stdout
    assert "conv2 (only in wide)" in out and "Δ weights" in out


def test_cli_spec_option(tmp_path):
    out = cli("compare", "naive", "reduced", "--spec", "googlenet", "-f", "json").stdout
    assert json.loads(out)["b"]["spec"].endswith("googlenet.yaml")


@pytest.mark.parametrize("args, message", [
    (["nave", "reduced"], "unknown variant 'nave'; this spec has: reduced, naive"),
    (["naive", "reduced", "--spec", "nin"], "nin.yaml: unknown variant 'naive'; this spec has "
                                            "no variants"),
    (["googlenet", "missing.yaml"], "missing.yaml: no such file"),
    (["naive", "reduced", "--input", "3x7x7"], "does not fit"),
])
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    target = tmp_path / "out.json"
    result = cli("compare", *args, "-f", "json", "-o", str(target), code=2)
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not target.exists()


def test_cli_help():
    out = cli("compare", "--help").stdout
    assert "bundled" in out and "--plot" in out and "--spec" in out


def test_verdict_when_totals_agree(tmp_path, two_specs):
    same = compare.run(two_specs[0], write(tmp_path, "copy.yaml", open(two_specs[0]).read()))
    assert view.verdict(same) == "copy and small need as many weights and multiply-adds."
    # small's layers with a stride of 2 instead of the pool: the same 216 + 1,280 weights,
    # multiply-adds 216·16 + 1,280 = 4,736 against 216·64 + 1,280 = 15,104
    strided = write(tmp_path, "strided.yaml", """
        input: [3, 8, 8]
        layers:
          conv1: {conv: {out: 8, kernel: 3, stride: 2}}
          fc:    [flatten, linear: {out: 10}]
        """)
    assert view.verdict(compare.run(two_specs[0], strided)) == \
        "strided needs 3.2× fewer multiply-adds than small, and as many weights. " \
        "Most of the difference: multiply-adds in conv1 (100%)."
