"""GoogLeNet's Table 1. Every expected number is typed in from the independent arithmetic in
shared/reference/googlenet.md, never from archcalc's output."""
import pytest

from archcalc.core import analysis, graph, spec

# row: (output C×H×W as Table 1 prints H×W×C, depth, weights without biases, MACs)
TABLE_1 = {
    "conv1": ((64, 112, 112), 1, 9_408, 118_013_952),
    "pool1": ((64, 56, 56), 0, 0, 0),
    "conv2": ((192, 56, 56), 2, 114_688, 359_661_568),
    "pool2": ((192, 28, 28), 0, 0, 0),
    "3a": ((256, 28, 28), 2, 163_328, 128_049_152),
    "3b": ((480, 28, 28), 2, 388_096, 304_267_264),
    "pool3": ((480, 14, 14), 0, 0, 0),
    "4a": ((512, 14, 14), 2, 375_552, 73_608_192),
    "4b": ((512, 14, 14), 2, 448_512, 87_908_352),
    "4c": ((512, 14, 14), 2, 509_440, 99_850_240),
    "4d": ((528, 14, 14), 2, 604_672, 118_515_712),
    "4e": ((832, 14, 14), 2, 867_328, 169_996_288),
    "pool4": ((832, 7, 7), 0, 0, 0),
    "5a": ((832, 7, 7), 2, 1_042_432, 51_079_168),
    "5b": ((1024, 7, 7), 2, 1_442_816, 70_697_984),
    "avgpool": ((1024, 1, 1), 0, 0, 0),
    "dropout": ((1024, 1, 1), 0, 0, 0),
    "linear": ((1000,), 1, 1_024_000, 1_024_000),   # Table 1: 1×1×1000, a vector
    "softmax": ((1000,), 0, 0, 0),
}


@pytest.fixture(scope="module")
def report():
    from tests.conftest import SPECS
    return analysis.analyze(graph.build(spec.load(SPECS / "googlenet.yaml")))


def test_rows_in_table_1_order(report):
    assert [r.name for r in report.rows] == list(TABLE_1)


@pytest.mark.parametrize("name", list(TABLE_1))
def test_row_matches_table_1(report, name):
    row = next(r for r in report.rows if r.name == name)
    shape, depth, weights, macs = TABLE_1[name]
    assert (row.output_shape, row.depth, row.weights, row.macs) == (shape, depth, weights, macs)


def test_totals(report):
    t = report.totals
    assert t.weights == 6_990_272
    assert t.params == 6_998_552          # biases on every conv and the linear layer
    assert t.macs == 1_582_671_872
    assert (t.depth, t.depth_with_pool) == (22, 27)
    assert t.non_trainable == 0


def test_aux_heads_add_their_parameters():
    from tests.conftest import SPECS
    g = graph.build(spec.load(SPECS / "googlenet.yaml"), heads=True)
    with_heads = analysis.analyze(g, heads=True)
    assert with_heads.totals.params - 6_998_552 == 6_379_728
    heads = {r.name: r for r in with_heads.rows if r.head}
    assert set(heads) == {"aux1", "aux2"}
    # avg pool 5×5/3 after 4a and 4d gives 4×4×512 and 4×4×528
    layers = {l.name: l for l in with_heads.layers}
    assert layers["aux1.avgpool"].output_shape == (512, 4, 4)
    assert layers["aux2.avgpool"].output_shape == (528, 4, 4)


def test_audit_flags_exactly_the_known_inconsistencies(report):
    assert sorted(report.flagged) == sorted([
        ("conv1", "params"), ("conv1", "ops"), ("4c", "params"), ("4d", "params"),
        ("5a", "params"), ("5a", "ops"), ("5b", "params")])


def test_audit_cells_in_paper_units(report):
    rows = {r.name: r for r in report.rows}
    cell = rows["3a"].paper["params"]
    assert cell.printed == "159K"
    assert cell.computed == 163_328 / 1024 == 159.5
    assert round(cell.delta_pct, 2) == 0.31 and not cell.flag
    linear_ops = rows["linear"].paper["ops"]
    assert linear_ops.computed == 1.024 and not linear_ops.flag     # "1M" agrees
    assert round(rows["4c"].paper["params"].delta_pct, 1) == 7.5    # 497.5K vs 463K


def test_tolerance_is_the_users(report):
    from tests.conftest import SPECS
    strict = analysis.analyze(graph.build(spec.load(SPECS / "googlenet.yaml")), tolerance_pct=0.5)
    # 4a (366.75K vs 364K, +0.76%) and 4e (847K vs 840K, +0.83%) now disagree too
    assert {("4a", "params"), ("4e", "params")} <= set(strict.flagged)
    loose = analysis.analyze(graph.build(spec.load(SPECS / "googlenet.yaml")), tolerance_pct=10)
    assert sorted(loose.flagged) == [("conv1", "ops"), ("conv1", "params")]


def test_naive_variant_compounds_channels():
    from tests.conftest import SPECS
    g = graph.build(spec.load(SPECS / "googlenet.yaml"), variant="naive")
    t = analysis.analyze(g).totals
    rows = {r.name: r for r in g.rows}
    assert t.weights == 97_519_936 and t.macs == 12_568_061_056
    assert rows["5b"].out_shape[0] == 4_944


def test_32x32_input_stops_at_the_layer_that_no_longer_fits():
    from archcalc.errors import SpecError
    from tests.conftest import SPECS
    with pytest.raises(SpecError) as err:
        graph.build(spec.load(SPECS / "googlenet.yaml"), input_shape=(3, 32, 32))
    assert "layer 'avgpool.avgpool': 7×7 window does not fit a 1×1 input (after '5b')" in str(err.value)


def test_larger_input_changes_shapes_not_conv_weights():
    from tests.conftest import SPECS
    g = graph.build(spec.load(SPECS / "googlenet.yaml"), input_shape=(3, 448, 448))
    rows = {r.name: r for r in g.rows}
    assert rows["5b"].out_shape == (1024, 14, 14)
    assert rows["avgpool"].out_shape == (1024, 8, 8)    # 7×7/1 unpadded on 14×14


def test_layer_names_mirror_the_paper():
    from tests.conftest import SPECS
    g = graph.build(spec.load(SPECS / "googlenet.yaml"))
    names = [l.name for l in g.layers()]
    for name in ("conv1.conv", "conv2.reduce", "conv2.conv", "3a.b1x1.conv", "3a.b3x3.reduce",
                 "3a.b3x3.conv", "3a.b5x5.reduce", "3a.b5x5.conv", "3a.pool_proj.pool",
                 "3a.pool_proj.proj", "3a", "linear.linear"):
        assert name in names
    assert len(names) == len(set(names))


# --- the audit applies only where the paper's figures do ------------------------------------

def test_at_another_input_the_audit_is_skipped_and_the_grown_classifier_noted():
    from tests.conftest import SPECS
    r = analysis.analyze(graph.build(spec.load(SPECS / "googlenet.yaml"),
                                     input_shape=(3, 448, 448)))
    assert r.audit_skipped == "the paper's figures are for input 3×224×224, not 3×448×448"
    assert r.flagged == [] and all(not row.paper for row in r.rows)
    # 448 halves five times (conv1, pool1..pool4) to 14; the fixed 7×7/1 pool leaves
    # 14 - 7 + 1 = 8, so the linear layer takes 8·8·1024 = 65,536 features:
    # 65,536 × 1000 weights + 1000 biases = 65,537,000 (1024 × 1000 + 1000 = 1,025,000 at 224)
    assert [(g.name, g.input_shape, g.params, g.spec_input_shape, g.spec_params)
            for g in r.grown] == [("linear.linear", (1024, 8, 8), 65_537_000, (1024, 1, 1),
                                   1_025_000)]
    # every other layer is as at 224: 6,998,552 - 1,025,000 + 65,537,000
    assert r.totals.params == 71_510_552
    data = r.to_dict()
    assert data["audit_skipped"] == r.audit_skipped
    assert data["grown_with_input"][0]["input_shape"] == [1024, 8, 8]


def test_another_variant_skips_the_audit_the_default_one_does_not():
    from tests.conftest import SPECS
    s = spec.load(SPECS / "googlenet.yaml")
    naive = analysis.analyze(graph.build(s, variant="naive"))
    assert naive.audit_skipped == ("the paper's figures are for the default variant (reduced), "
                                   "not 'naive'")
    assert naive.flagged == [] and naive.grown == []
    for same in (graph.build(s, variant="reduced"), graph.build(s, input_shape=(3, 224, 224))):
        r = analysis.analyze(same)
        assert r.audit_skipped is None and len(r.flagged) == 7
