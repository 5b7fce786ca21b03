"""`archcalc graph`: the layer graph as a Graphviz diagram. The DOT text is checked against
the networks' published structure (GoogLeNet's nine Inception modules and their six
convolutions, U-Net's copy-and-crop skips, ResNet's projection shortcut) and against the
graph's own edges (Layer.inputs); SVG and PNG are laid out by the real `dot`."""
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from archcalc.cli import app, load_graph
from archcalc.core.analysis import analyze
from archcalc.core.graph import INPUT
from archcalc.views import diagram

runner = CliRunner()
EDGE = re.compile(r'^\s*"([^"]+)" -> "([^"]+)"', re.M)


def needs_dot():
    """SVG and PNG need Graphviz: skipped without it, except on CI, which installs it."""
    if shutil.which("dot") is None:
        if os.environ.get("CI"):
            pytest.fail("Graphviz's dot is not installed on CI (apt install graphviz)")
        pytest.skip("Graphviz's dot is not installed (apt install graphviz)")


def dot_of(*args):
    result = runner.invoke(app, ["graph", *args])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def edges(dot):
    return set(EDGE.findall(dot))


def clusters(dot):
    """Each cluster's id → the node ids inside it, sub-clusters' nodes included."""
    inside, stack = {}, []
    for line in dot.splitlines():
        line = line.strip()
        opened = re.match(r'subgraph "cluster_([^"]+)" \{', line)
        if opened:
            stack.append(opened.group(1))
            inside[stack[-1]] = set()
        elif line == "}" and stack:
            stack.pop()
        elif stack and re.fullmatch(r'"[^"]+";', line):
            for c in stack:
                inside[c].add(line[1:-2])
    return inside


INCEPTIONS = ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]   # the paper's Table 1


def test_googlenet_rows_are_nodes_in_order_with_their_shapes():
    dot = dot_of("googlenet")
    for name in INCEPTIONS:
        assert f'"row-{name}" [id="row-{name}"' in dot
    # the paper's output sizes: 3a 28×28×256, 5b 7×7×1024
    assert re.search(r'"row-3a" \[[^\n]*label="3a\\ninception\\n256×28×28"', dot)
    assert re.search(r'"row-5b" \[[^\n]*label="5b\\ninception\\n1024×7×7"', dot)
    chain = ["input", "row-conv1", "row-pool1", "row-conv2", "row-pool2", "row-3a", "row-3b",
             "row-pool3", "row-4a"]
    assert set(zip(chain, chain[1:])) <= edges(dot)
    assert ("row-3a", "row-4a") not in edges(dot)


def test_googlenet_detail_clusters_each_branch_and_the_concat():
    dot = dot_of("googlenet", "--detail")
    inside = clusters(dot)
    three_a = inside["group-3a"]
    # the paper's six convolutions of 3a: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj
    convs = {"3a.b1x1.conv", "3a.b3x3.reduce", "3a.b3x3.conv", "3a.b5x5.reduce",
             "3a.b5x5.conv", "3a.pool_proj.proj"}
    assert {f"layer-{c}" for c in convs} <= three_a
    for branch in ("b1x1", "b3x3", "b5x5", "pool_proj"):
        assert f"group-3a.{branch}" in inside              # a box per branch
        assert "layer-3a" not in inside[f"group-3a.{branch}"]
    assert "layer-3a" in three_a                             # the join, after the branches
    assert re.search(r'"layer-3a" \[[^\n]*class="join"[^\n]*label="concat\\n256×28×28"', dot)
    into_join = {t for t, h in edges(dot) if h == "layer-3a"}
    assert into_join == {"layer-3a.b1x1.conv_relu", "layer-3a.b3x3.conv_relu",
                         "layer-3a.b5x5.conv_relu", "layer-3a.pool_proj.proj_relu"}


def test_detail_edges_are_the_layers_inputs():
    graph = load_graph("googlenet", None, None, False)
    want = {("input" if p == INPUT else f"layer-{p}", f"layer-{l.name}")
            for l in graph.layers() for p in l.inputs}
    assert edges(dot_of("googlenet", "--detail")) == want


def test_unet_skips_are_edges_between_rows():
    got = edges(dot_of("unet"))
    for enc, dec in (("enc4", "dec4"), ("enc3", "dec3"), ("enc2", "dec2"), ("enc1", "dec1")):
        assert (f"row-{enc}", f"row-{dec}") in got          # copy and crop
    assert ("row-enc5", "row-dec4") in got and ("row-dec4", "row-dec3") in got
    assert ("row-enc4", "row-dec3") not in got
    # one edge per pair of rows, however many layers of one read the other
    assert len(EDGE.findall(dot_of("unet"))) == len(got)


def test_resnet_detail_draws_the_shortcuts():
    got = edges(dot_of("resnet", "--detail"))
    # torchvision's layer1.0: the projection shortcut reads what the max pool gave
    assert ("layer-maxpool.maxpool", "layer-layer1.0.downsample.0") in got
    assert ("layer-layer1.0.downsample.1", "layer-layer1.0.add") in got
    assert ("layer-layer1.0.bn3", "layer-layer1.0.add") in got
    # layer1.1's identity shortcut: the block's input is layer1.0's output
    assert ("layer-layer1.0.relu", "layer-layer1.1.add") in got


def test_heads_attach_where_they_attach():
    assert "aux1" not in dot_of("googlenet")
    got = edges(dot_of("googlenet", "--heads"))
    assert ("row-4a", "row-aux1") in got and ("row-4d", "row-aux2") in got
    detail = edges(dot_of("googlenet", "--heads", "--detail"))
    assert ("layer-4a", "layer-aux1.avgpool") in detail       # 4a's output is its concat


def test_show_adds_numbers_and_the_legend_says_what_they_are():
    dot = dot_of("googlenet", "--show", "macs,memory")
    label = re.search(r'"row-3a" \[[^\n]*label="([^"]*)"', dot).group(1)
    assert "MACs 128M" in label                     # the paper's Table 1: 3a, ops 128M
    # the outputs of 3a's 13 layers, channels 64+64+96+96+128+128+16+16+32+32+192+32+32+256
    # = 1,184 at 28×28, 4 bytes each: 3,713,024 bytes
    assert "memory 3.71 MB" in label and "params" not in label
    assert "4 bytes" in dot and "multiply-adds" in dot
    result = runner.invoke(app, ["graph", "googlenet", "--show", "flops"])
    assert result.exit_code == 2 and "params, macs, memory" in result.stderr


def test_shades_run_from_white_to_the_largest():
    dot = dot_of("googlenet")
    fill = dict(re.findall(r'"(row-[^"]+)" \[[^\n]*fillcolor="([^"]+)"', dot))
    assert fill["row-pool1"] == diagram.SHADES[0]           # no multiply-adds
    assert fill["row-conv2"] == diagram.SHADES[-1]          # 360M, GoogLeNet's largest row
    assert fill["row-3a"] not in (diagram.SHADES[0], diagram.SHADES[-1])


def test_svg_keeps_the_ids_and_inlines_without_a_prolog():
    needs_dot()
    graph = load_graph("googlenet", None, None, False)
    text = diagram.svg(graph, analyze(graph))
    assert text.startswith("<svg") and "<?xml" not in text and "DOCTYPE" not in text
    assert 'id="row-3a"' in text
    ET.fromstring(text)


def test_svg_file_shows_special_characters_as_written(tmp_path):
    needs_dot()
    spec = tmp_path / "odd.yaml"
    spec.write_text("name: 'a<b & \"c\" \\ d'\ninput: [1, 8, 8]\n"
                    "layers:\n  x-1: {conv: {out: 2, kernel: 3}}\n")
    out = tmp_path / "odd.svg"
    result = runner.invoke(app, ["graph", str(spec), "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    root = ET.fromstring(out.read_bytes())
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert any(t.startswith('a<b & "c" \\ d') for t in texts)
    assert 'id="row-x-1"' in out.read_text()


def test_png_is_a_png(tmp_path):
    needs_dot()
    out = tmp_path / "g.png"
    result = runner.invoke(app, ["graph", "unet", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]     # no temporary left


def test_dot_file_without_graphviz_and_svg_refused_in_one_line(tmp_path):
    """A PATH without dot is the real condition of a machine without Graphviz."""
    env = dict(os.environ, PATH=str(tmp_path / "empty"))
    command = [sys.executable, "-m", "archcalc", "graph", "googlenet", "-o"]
    svg = tmp_path / "g.svg"
    svg.write_text("before")
    done = subprocess.run(command + [str(svg)], env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "apt install graphviz" in done.stderr
    assert "brew install graphviz" in done.stderr
    assert svg.read_text() == "before"                   # left as it was
    dot = tmp_path / "g.dot"
    done = subprocess.run(command + [str(dot)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert dot.read_text().startswith("digraph")


def test_unknown_extension_is_refused_before_any_work(tmp_path):
    out = tmp_path / "g.jpg"
    result = runner.invoke(app, ["graph", "googlenet", "-o", str(out)])
    assert result.exit_code == 2
    assert ".svg, .png, .dot" in result.stderr and not out.exists()


def test_a_bad_spec_leaves_the_output_as_it_was(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\ninput: [1, 4, 4]\nlayers:\n  x: {nosuchop: {out: 2}}\n")
    out = tmp_path / "g.dot"
    out.write_text("before")
    result = runner.invoke(app, ["graph", str(spec), "-o", str(out)])
    assert result.exit_code == 2 and "bad.yaml:4" in result.stderr
    assert out.read_text() == "before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "g.dot"]


def test_dot_escapes_quotes_backslashes_and_controls():
    assert diagram.quote('a"b\\c\nd') == '"a\\"b\\\\c\\\\nd"'


def test_a_diagram_too_large_to_lay_out_is_refused_at_once_and_the_report_goes_without(
        tmp_path):
    """dot took 2.8 s for 3,000 nodes and over a minute for 20,000: past the limit it is not
    run at all (one line, exit 2, nothing written); the .dot text and the report still are."""
    rows = diagram.MAX_LAYOUT_NODES + 1
    spec = tmp_path / "chain.yaml"
    spec.write_text("input: [2, 4, 4]\nlayers:\n" + "".join(f"  l{i}: relu\n"
                                                           for i in range(rows)))
    needs_dot()
    out = tmp_path / "chain.svg"
    result = runner.invoke(app, ["graph", str(spec), "--detail", "-o", str(out)])
    assert result.exit_code == 2 and not out.exists()
    assert result.stderr.strip() == (
        f"the diagram has {rows + 1:,} nodes, more than Graphviz lays out in reasonable time "
        f"({diagram.MAX_LAYOUT_NODES:,}); draw it without --detail, or write .dot")
    assert runner.invoke(app, ["graph", str(spec), "--detail", "-o",
                               str(tmp_path / "chain.dot")]).exit_code == 0
    page = tmp_path / "chain.html"
    assert runner.invoke(app, ["report", str(spec), "-o", str(page)]).exit_code == 0
    assert "No diagram: the diagram has" in page.read_text()
