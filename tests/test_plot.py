"""Figures: `compare --plot` and `table --plot` write a whole, valid PNG or SVG, and only then
import matplotlib."""
import xml.etree.ElementTree as ET

import pytest
from PIL import Image
from typer.testing import CliRunner

from archcalc.core import compare
from archcalc.views import plot
from archcalc.cli import app
from archcalc.errors import ArchcalcError
from tests.test_imports import loaded

runner = CliRunner()


@pytest.fixture(scope="module")
def figure():
    return plot.comparison_figure(compare.run("naive", "reduced"))


def test_png_is_a_valid_image_of_the_expected_size(tmp_path, figure):
    target = tmp_path / "inception.png"
    plot.write(figure, target)
    with Image.open(target) as image:
        image.verify()                          # a complete, uncorrupted PNG
    with Image.open(target) as image:
        assert image.format == "PNG"
        assert image.size == (int(plot.WIDTH * plot.DPI), int(plot.HEIGHT * plot.DPI))
    assert [p.name for p in tmp_path.iterdir()] == ["inception.png"]   # no temporary left


def test_svg_is_xml_and_reproducible(tmp_path):
    c = compare.run("naive", "reduced")
    target = tmp_path / "inception.svg"
    plot.write(plot.comparison_figure(c), target)
    assert ET.parse(target).getroot().tag.endswith("svg")
    assert plot.render(plot.comparison_figure(c), "svg") == target.read_bytes()


def test_figure_reads_well(figure):
    weights, macs = figure.axes
    assert [t.get_text() for t in weights.get_legend().get_texts()] == ["naive", "reduced"]
    assert weights.get_yscale() == "log"        # 163K to 5.9M: a log axis
    assert "weights" in weights.get_ylabel() and "MACs" in macs.get_ylabel()
    assert [t.get_text() for t in macs.get_xticklabels()] == \
        ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
    title = figure.get_suptitle()
    assert "naive 97.5M weights, 12.6G MACs" in title
    assert "reduced 6.99M weights, 1.58G MACs" in title
    assert "2.4×" in [t.get_text() for t in weights.texts]    # 387,072 / 163,328 over 3a


def test_table_figure_has_a_bar_per_row_with_weights(spec_path):
    from archcalc.core import analysis, graph, spec
    report = analysis.analyze(graph.build(spec.load(spec_path("googlenet"))))
    fig = plot.report_figure(report)
    labels = [t.get_text() for t in fig.axes[-1].get_xticklabels()]
    assert labels == ["conv1", "conv2", "3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b",
                      "linear"]
    assert "7.00M params, 1.58G MACs" in fig.get_suptitle()


def test_human_numbers():
    assert [plot.human(v) for v in (0, 999, 163_328, 1_000_000, 12_568_061_056)] == \
        ["0", "999", "163K", "1M", "12.6G"]
    assert plot.human(6_998_552, zeros=True) == "7.00M"
    assert plot.human(999_500) == "1M"            # rounds into the next unit, not 1e+03K


@pytest.mark.parametrize("name, message", [
    ("figure.jpg", "cannot plot to a '.jpg' file: give a file ending in .png or .svg"),
    ("figure", "cannot plot to a file without an extension"),
    ("missing/figure.png", "folder"),
])
def test_bad_plot_paths(tmp_path, name, message):
    with pytest.raises(ArchcalcError, match=message):
        plot.check_path(tmp_path / name)


# --- through the commands -------------------------------------------------------------------

def test_compare_plot_from_the_command(tmp_path):
    target = tmp_path / "inception.png"
    result = runner.invoke(app, ["compare", "naive", "reduced", "--plot", str(target)])
    assert result.exit_code == 0, result.stderr
    assert f"wrote {target}" in result.stderr and "1,582,671,872" in result.stdout
    with Image.open(target) as image:
        assert image.size == (1500, 1050)


def test_table_plot_from_the_command(tmp_path):
    target = tmp_path / "table1.svg"
    result = runner.invoke(app, ["table", "googlenet", "--plot", str(target), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    assert ET.parse(target).getroot().tag.endswith("svg")


@pytest.mark.parametrize("command", [["compare", "naive", "reduced"], ["table", "googlenet"]])
@pytest.mark.parametrize("name, message", [
    ("figure.pdf", "cannot plot to a '.pdf' file: give a file ending in .png or .svg"),
    ("missing/figure.png", "cannot write the file: folder"),
    (".", "cannot write the file: it is a folder"),
])
def test_bad_plot_path_is_one_line_and_writes_nothing(tmp_path, command, name, message):
    output = tmp_path / "out.csv"
    result = runner.invoke(app, command + ["--plot", str(tmp_path / name), "-f", "csv",
                                           "-o", str(output)])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []       # neither the table nor the figure


def test_matplotlib_only_when_a_plot_is_asked_for(tmp_path):
    assert loaded("compare", "naive", "reduced") == []
    assert loaded("compare", "naive", "reduced", "-f", "json") == []
    assert "matplotlib" in loaded("compare", "naive", "reduced", "-f", "json",
                                  "--plot", str(tmp_path / "f.png"))
    assert "matplotlib" in loaded("table", "googlenet", "-f", "json",
                                  "--plot", str(tmp_path / "t.png"))
