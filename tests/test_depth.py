"""Depth (layers with weights on the longest path) follows `from:` edges, not the order in which
a sequence lists its layers: a projection written after `from: input` is beside the main path."""
from archcalc.core import analysis, graph, spec

RESIDUAL = """
input: [8, 16, 16]
layers:
  unit:
    - conv: {name: conv1, out: 8, kernel: 3}
    - conv: {name: conv2, out: 8, kernel: 3}
    - from: input
    - conv: {name: proj, out: 8, kernel: 1}
    - add: [{from: conv2}, {from: proj}]
  pool: {maxpool: {kernel: 2}}
  fc: {linear: {out: 10}}
"""


def test_a_from_edge_starts_a_parallel_path():
    report = analysis.analyze(graph.build(spec.parse(RESIDUAL, "residual.yaml")))
    rows = {r.name: r for r in report.rows}
    # conv1 -> conv2 -> add is two deep; input -> proj -> add is one: the row is 2, not 3
    assert rows["unit"].depth == 2
    assert (report.totals.depth, report.totals.depth_with_pool) == (3, 4)


def test_the_same_net_as_branches_has_the_same_depth():
    branches = RESIDUAL.replace(
        """    - conv: {name: conv1, out: 8, kernel: 3}
    - conv: {name: conv2, out: 8, kernel: 3}
    - from: input
    - conv: {name: proj, out: 8, kernel: 1}
    - add: [{from: conv2}, {from: proj}]""",
        "    add: [[conv: {out: 8, kernel: 3}, conv: {out: 8, kernel: 3}], conv: {out: 8, kernel: 1}]")
    assert branches != RESIDUAL
    report = analysis.analyze(graph.build(spec.parse(branches, "branches.yaml")))
    assert report.rows[0].depth == 2
