"""`archcalc sweep`: params, MACs and activation memory over a grid of inputs and settings.

Expected numbers come from arithmetic written out here (a tiny conv network), from
shared/reference/googlenet.md (6,998,552 params at 224×224, biases included) and from
torchvision's published counts for MobileNetV2 (width 0.5: 1,968,680; width 1.0: 3,504,872);
never from archcalc's own output."""
import csv
import io
import json
import os
import textwrap

import pytest
from typer.testing import CliRunner

from archcalc.cli import app
from archcalc.core import sweep
from archcalc.core.spec import load, parse
from archcalc.errors import ArchcalcError
from archcalc.files import resolve_spec

runner = CliRunner()

# conv 3→8, 3×3, padding 1 (keeps H×W), relu, global average pool, flatten, linear 8→10
TINY = textwrap.dedent("""\
    name: tiny
    input: [3, 16, 16]
    layers:
      conv: [conv: {out: 8, kernel: 3, padding: 1}, relu]
      head: [gap, flatten, linear: {out: 10}]
    """)
TINY_PARAMS = (3 * 3 * 3 * 8 + 8) + (8 * 10 + 10)       # 224 + 90, whatever the input


def tiny_macs(h, w):
    return 8 * h * w * (3 * 3 * 3) + 8 * 10             # conv: 27 per output value; linear


def tiny_memory(h, w):
    # float32 values alive at once: input 3HW, conv 8HW, relu 8HW, gap 8, flatten 8, linear 10
    return 4 * (3 * h * w + 8 * h * w + 8 * h * w + 8 + 8 + 10)


@pytest.fixture
def tiny_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


# --- the grid ------------------------------------------------------------------------------

def test_a_range_includes_both_ends():
    assert list(sweep.parse_range("128:512:32", "size")) == list(range(128, 513, 32))
    assert len(sweep.parse_range("224:480:8", "size")) == 33
    assert list(sweep.parse_range("100:110:7", "size")) == [100, 107]  # 110 is not on a step
    assert list(sweep.parse_range("224", "size")) == [224]


def test_square_and_rectangular_inputs():
    assert list(sweep.parse_inputs("3x32:96:32").shapes()) == \
        [(3, 32, 32), (3, 64, 64), (3, 96, 96)]
    assert list(sweep.parse_inputs("3x32:64:32x100").shapes()) == [(3, 32, 100), (3, 64, 100)]
    grid = sweep.parse_inputs("1×10:20:10×5:6:1")
    assert list(grid.shapes()) == [(1, 10, 5), (1, 10, 6), (1, 20, 5), (1, 20, 6)]
    assert len(grid) == 4


@pytest.mark.parametrize("text, says", [
    ("3x512:128:32", "empty"),
    ("3x512:128", "not a size or a range"),
    ("3x128:512:0", "from 1"),
    ("3x0:512:32", "from 1"),
    ("3x-128:512:32", "not a size or a range"),
    ("3xabc", "not a size or a range"),
    ("3x1.5:4:1", "not a size or a range"),
    ("3x224x224x3", "not CxS, CxHxW"),
])
def test_bad_ranges_are_refused(text, says):
    with pytest.raises(ArchcalcError, match=says):
        sweep.parse_inputs(text)


def test_settings_grid():
    assert sweep.parse_settings_grid(["width=0.5, 0.75,1.0", "classes=10"]) == \
        {"width": ["0.5", "0.75", "1.0"], "classes": ["10"]}
    for bad, says in (("width=0.5,,1", "empty"), ("width=0.5,", "empty"), ("width=", "NAME="),
                      ("=1", "NAME="), ("width", "NAME=")):
        with pytest.raises(ArchcalcError, match=says):
            sweep.parse_settings_grid([bad])
    with pytest.raises(ArchcalcError, match="given twice"):
        sweep.parse_settings_grid(["width=1", "width=2"])


def test_too_many_points_are_refused_before_any_is_built(tiny_file):
    spec = load(tiny_file)
    with pytest.raises(ArchcalcError, match="100,000 points.*at most 10,000"):
        sweep.run(spec, None, sweep.parse_inputs("3x1:100000:1"), {})
    # the cap counts the product: 5,001 inputs × 2 values
    with pytest.raises(ArchcalcError, match="10,002 points"):
        sweep.run(load(resolve_spec("mobilenetv2")), None, sweep.parse_inputs("3x1:5001:1"),
                  {"width": ["0.5", "1.0"]})


# --- the numbers ---------------------------------------------------------------------------

def test_tiny_network_params_constant_macs_and_memory_scale_with_the_map(tiny_file):
    result = sweep.run(load(tiny_file), None, sweep.parse_inputs("3x8:32:8x16"), {})
    assert [p.input for p in result.points] == [(3, h, 16) for h in (8, 16, 24, 32)]
    for p in result.points:
        h, w = p.input[1:]
        assert (p.params, p.macs, p.memory_bytes) == \
            (TINY_PARAMS, tiny_macs(h, w), tiny_memory(h, w))
    assert [a.name for a in result.axes] == ["input height"]


def test_googlenet_classifier_grows_and_small_inputs_do_not_fit():
    result = sweep.run(load(resolve_spec("googlenet")), None, sweep.parse_inputs("3x32:256:32"),
                       {})
    by_size = {p.input[1]: p for p in result.points}
    assert by_size[224].params == 6_998_552
    # at 256 the 7×7 average pool leaves 2×2×1024 (8×8 maps), so the classifier takes 4,096
    # inputs: 3 × 1,024 × 1,000 more weights than at 224
    assert by_size[256].params == 6_998_552 + 3 * 1024 * 1000
    small = by_size[32]
    assert not small.ok and small.params is None
    assert "layer 'avgpool.avgpool': 7×7 window does not fit a 1×1 input" in small.error
    assert small.error_at.endswith("googlenet.yaml:57:13")
    assert (result.computed, result.failed) == (2, 6)


def test_mobilenetv2_widths_give_torchvision_params():
    result = sweep.run(load(resolve_spec("mobilenetv2")), None, None,
                       sweep.parse_settings_grid(["width=0.5,1.0"]))
    assert [p.params for p in result.points] == [1_968_680, 3_504_872]
    assert [p.input for p in result.points] == [(3, 224, 224)] * 2
    assert [a.name for a in result.axes] == ["width"]


def test_cartesian_product_of_inputs_and_settings():
    result = sweep.run(load(resolve_spec("mobilenetv2")), None, sweep.parse_inputs("3x192:224:32"),
                       sweep.parse_settings_grid(["width=0.5,1.0", "classes=10"]))
    assert [(p.input[1], float(p.settings["width"])) for p in result.points] == \
        [(192, 0.5), (192, 1.0), (224, 0.5), (224, 1.0)]
    # 10 classes instead of 1,000: the classifier (1280 → classes, with biases) shrinks
    assert result.points[3].params == 3_504_872 - 990 * (1280 + 1)


def test_unknown_setting_and_variant_are_bad_input():
    spec = load(resolve_spec("mobilenetv2"))
    with pytest.raises(ArchcalcError, match="no setting 'widht'.*did you mean 'width'"):
        sweep.run(spec, None, None, {"widht": ["0.5"]})
    with pytest.raises(ArchcalcError, match="unknown variant 'nope'"):
        sweep.run(spec, "nope", None, {})


# --- the command ---------------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["--input", "3x512:128:32"], "empty"),
    (["--input", "3x512:128"], "not a size or a range"),
    (["--input", "3x128:512:0"], "from 1"),
    (["--input", "3x1:20000:1"], "at most 10,000"),
    (["--set", "widht=0.5,1.0"], "no setting 'widht'"),
    (["--set", "width=0.5,,1.0"], "empty"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, args, says):
    out = tmp_path / "sweep.csv"
    result = runner.invoke(app, ["sweep", "mobilenetv2", *args, "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert says in result.output and len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not out.exists()


def test_csv_rows_and_the_point_that_does_not_fit(tmp_path):
    out = tmp_path / "g.csv"
    result = runner.invoke(app, ["sweep", "googlenet", "--input", "3x32:224:192", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 points: 1 computed, 1 did not fit" in result.output     # the summary, on stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["input"] for r in rows] == ["3×32×32", "3×224×224"]
    assert rows[0]["params"] == "" and rows[0]["note"].startswith(
        "does not fit: layer 'avgpool.avgpool': 7×7 window does not fit a 1×1 input")
    assert rows[1]["params"] == "6998552" and rows[1]["note"] == ""


def test_json_export(tiny_file, tmp_path):
    out = tmp_path / "t.json"
    result = runner.invoke(app, ["sweep", str(tiny_file), "--input", "3x4:8:4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["varies"] == ["input size"] and data["computed"] == 2
    assert [(p["input"], p["params"], p["macs"], p["memory_bytes"]) for p in data["points"]] == \
        [([3, s, s], TINY_PARAMS, tiny_macs(s, s), tiny_memory(s, s)) for s in (4, 8)]
    assert "batch 1 in float32" in data["memory"]


def test_table_and_markdown_show_settings_and_summary():
    result = runner.invoke(app, ["sweep", "mobilenetv2", "--set", "width=0.5,1.0"])
    assert result.exit_code == 0, result.output
    assert "1,968,680" in result.output and "3,504,872" in result.output
    assert "2 points: 2 computed, 0 did not fit" in result.output
    md = runner.invoke(app, ["sweep", "mobilenetv2", "--set", "width=0.5", "-f", "markdown"])
    assert "| 3×224×224 | 0.5" in md.output


def test_plot_writes_a_png(tmp_path):
    if not os.environ.get("CI"):
        pytest.importorskip("matplotlib")
    from PIL import Image
    target = tmp_path / "sweep.png"
    result = runner.invoke(app, ["sweep", "googlenet", "--input", "3x32:288:64",
                                 "--plot", str(target), "-f", "csv"])
    assert result.exit_code == 0, result.output
    assert "5 points: 2 computed, 3 did not fit" in result.output
    with Image.open(target) as image:
        image.verify()
    with Image.open(target) as image:
        assert image.format == "PNG"


def test_plot_of_two_sweeps_at_once_and_a_figure_only_output(tmp_path):
    """Input × width: one curve per width; ``-o x.svg`` writes the figure and no table."""
    if not os.environ.get("CI"):
        pytest.importorskip("matplotlib")
    target = tmp_path / "widths.svg"
    result = runner.invoke(app, ["sweep", "mobilenetv2", "--input", "3x96:224:64",
                                 "--set", "width=0.5,1.0", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "6 points: 6 computed, 0 did not fit" in result.output
    svg = target.read_text()
    assert svg.lstrip().startswith("<?xml") and "width=0.5" in svg and "width=1" in svg
