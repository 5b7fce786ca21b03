"""The commands as a user types them, through typer's CliRunner."""
import csv
import io
import json

from typer.testing import CliRunner

from archcalc.cli import app

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_table_on_screen_shows_table_1_and_the_audit():
    out = run("table", "googlenet")
    assert "1,582,671,872" in out and "6,998,552" in out
    assert "112×112×64" in out and "7×7×1024" in out
    assert "Audit of the published figures" in out
    assert "7 of 24 published figures flagged" in out
    assert "K = 1024" in out and "10^6" in out and "1%" in out


def test_table_accepts_a_path(spec_path):
    assert "GoogLeNet" in run("table", spec_path("googlenet"))


def test_json_contract():
    data = json.loads(run("table", "googlenet", "--format", "json"))
    assert {"name", "input", "variant", "rows", "layers", "totals"} <= set(data)
    assert data["input"] == [3, 224, 224] and data["variant"] is None
    for record in data["rows"] + data["layers"]:
        assert {"name", "type", "output_shape", "params", "weights", "non_trainable",
                "macs"} <= set(record)
    row = next(r for r in data["rows"] if r["name"] == "3a")
    assert row["depth"] == 2 and row["output_shape"] == [256, 28, 28]
    assert row["paper"]["params"] == {"printed": "159K", "computed": 159.5, "delta_pct": 0.31,
                                      "flag": False}
    assert data["totals"] == {**data["totals"], "params": 6_998_552, "weights": 6_990_272,
                              "non_trainable": 0, "macs": 1_582_671_872, "depth": 22}
    assert data["audit"]["tolerance_pct"] == 1.0


def test_csv_has_the_screen_columns_with_plain_numbers():
    rows = list(csv.DictReader(io.StringIO(run("table", "googlenet", "-f", "csv"))))
    assert [r["name"] for r in rows][:3] == ["conv1", "pool1", "conv2"]
    conv1 = rows[0]
    assert conv1["MACs"] == "118013952" and conv1["params"] == "9472"
    assert conv1["output"] == "112×112×64"
    assert conv1["paper params"] == "2.7K" and conv1["Δ params"] == "240.28"
    assert rows[-1]["name"] == "total" and rows[-1]["MACs"] == "1582671872"


def test_markdown_is_a_table_a_readme_renders():
    out = run("table", "googlenet", "-f", "markdown")
    lines = [l for l in out.splitlines() if l.startswith("|")]
    assert lines[0].startswith("| name") and set(lines[1]) <= set("|:- ")
    assert len({l.count("|") for l in lines}) == 1      # every row has every column
    assert any("| 3a " in l and "163,696" in l for l in lines)


def test_output_file_written_whole(tmp_path):
    target = tmp_path / "table1.csv"
    result = runner.invoke(app, ["table", "googlenet", "-f", "csv", "-o", str(target)])
    assert result.exit_code == 0 and result.stdout == ""
    assert f"wrote {target}" in result.stderr
    assert target.read_text().startswith("name,type,")
    assert [p.name for p in tmp_path.iterdir()] == ["table1.csv"]   # no temporary left


def test_text_table_to_file_has_no_colour_codes(tmp_path):
    target = tmp_path / "t.txt"
    run("table", "googlenet", "-o", str(target))
    assert "\x1b[" not in target.read_text() and "1,582,671,872" in target.read_text()


def test_detail_lists_every_branch_convolution():
    out = run("table", "googlenet", "--detail")
    for name in ("3a.b1x1.conv", "3a.b3x3.reduce", "3a.b5x5.conv", "3a.pool_proj.proj",
                 "5b.pool_proj.pool"):
        assert name in out


def test_keras_style_totals():
    out = run("table", "cifar-cnn", "--style", "keras")
    assert "Total params: 1,253,674" in out
    assert "Trainable params: 1,252,266" in out
    assert "Non-trainable params: 1,408" in out
    assert "(None, 30, 30, 32)" in out


def test_variant_and_input_options():
    naive = json.loads(run("table", "googlenet", "--variant", "naive", "-f", "json"))
    assert naive["variant"] == "naive" and naive["totals"]["weights"] == 97_519_936
    big = json.loads(run("table", "googlenet", "--input", "3x448x448", "-f", "json"))
    assert big["input"] == [3, 448, 448]
    assert big["rows"][0]["output_shape"] == [64, 224, 224]


def test_heads_are_rows_when_asked():
    data = json.loads(run("table", "googlenet", "--heads", "-f", "json"))
    assert [r["name"] for r in data["rows"]][-2:] == ["aux1", "aux2"]
    assert data["totals"]["params"] == 6_998_552 + 6_379_728
    assert data["totals"]["depth"] == 22


def test_heads_are_built_only_when_asked(spec_path, tmp_path):
    """A head that does not fit an input stops `table` only with --heads.

    Stock GoogLeNet cannot show it: its main path needs a larger map than the aux head does.
    The aux head's 5×5/3 pool needs at least 5×5 after pool3 (its input, 4a's output), while
    the final 7×7 pool needs 7×7 after pool4, i.e. ceil((s - 3) / 2) + 1 >= 7, s >= 13 after
    pool3. So this copy ends in global average pooling instead, as adaptations do; then at
    64×64: conv1 7×7/2 same -> 32, pool1 3×3/2 ceil -> 16, pool2 -> 8, pool3 -> 4; the aux
    pool's 5×5 window does not fit 4×4, and the main path goes on: pool4 -> 2, gap -> 1."""
    text = open(spec_path("googlenet"), encoding="utf-8").read()
    old = "avgpool: {avgpool: {kernel: 7, stride: 1}}"
    assert old in text
    path = tmp_path / "googlenet-gap.yaml"
    path.write_text(text.replace(old, "avgpool: gap"), encoding="utf-8")
    data = json.loads(run("table", str(path), "--input", "3x64x64", "-f", "json"))
    assert data["rows"][-1]["output_shape"] == [1000]
    assert [r["name"] for r in data["rows"] if r["head"]] == []
    lines = text.splitlines()
    line = next(i for i, l in enumerate(lines, 1) if "- avgpool: {kernel: 5, stride: 3}" in l)
    column = lines[line - 1].index("avgpool") + 1
    result = runner.invoke(app, ["table", str(path), "--input", "3x64x64", "--heads"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"{path}:{line}:{column}: layer 'aux1.avgpool': 5×5 "
                                     "window does not fit a 4×4 input (after '4a')")


def test_specs_lists_the_bundled_ones():
    out = run("specs")
    for name in ("googlenet", "cifar-cnn", "nin"):
        assert name in out


def test_help_for_every_command():
    for command in ("table", "specs"):
        out = run(command, "--help")
        assert "Usage" in out


def test_output_file_gets_the_usual_mode(tmp_path):
    import os
    target = tmp_path / "t.json"
    run("table", "googlenet", "-f", "json", "-o", str(target))
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_output_onto_a_folder_is_one_line(tmp_path):
    result = runner.invoke(app, ["table", "googlenet", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{tmp_path}: cannot write the file: it is a folder"


def test_markdown_marks_the_audit_as_the_screen_does():
    out = run("table", "googlenet", "-f", "markdown")
    conv1 = next(l for l in out.splitlines() if l.startswith("| conv1 "))
    assert "+240.3% ✗" in conv1 and "+247.1% ✗" in conv1
    row_3a = next(l for l in out.splitlines() if l.startswith("| 3a "))
    assert "+0.3% ✓" in row_3a


def test_table_says_why_the_audit_does_not_apply_and_notes_the_grown_classifier():
    out = run("table", "googlenet", "--input", "3x448x448")
    assert ("paper audit not applicable: the paper's figures are for input 3×224×224, not "
            "3×448×448") in out
    assert "flagged" not in out and "paper params" not in out
    assert "note: at input 3×448×448, linear.linear takes 8×8×1024" in out
    assert "65,537,000 of the 71,510,552 params" in out
    out = run("table", "googlenet", "--variant", "naive")
    assert "paper audit not applicable" in out and "'naive'" in out


# --- -o says the format --------------------------------------------------------------------

def test_output_extension_says_the_format(tmp_path):
    for name, check in (("t.csv", lambda t: t.startswith("name,type,") and "1582671872" in t),
                        ("t.md", lambda t: "| name" in t and "| 3a " in t),
                        ("t.json", lambda t: json.loads(t)["totals"]["macs"] == 1_582_671_872),
                        ("t.txt", lambda t: "━" in t and "1,582,671,872" in t)):
        target = tmp_path / name
        result = runner.invoke(app, ["table", "googlenet", "-o", str(target)])
        assert result.exit_code == 0 and result.stdout == "", result.stderr
        assert check(target.read_text()), name


def test_output_extension_and_format_that_agree(tmp_path):
    target = tmp_path / "T.CSV"
    run("table", "googlenet", "-f", "csv", "-o", str(target))
    assert target.read_text().startswith("name,type,")


def test_output_extension_against_format_is_one_line(tmp_path):
    target = tmp_path / "t.csv"
    result = runner.invoke(app, ["table", "googlenet", "-f", "markdown", "-o", str(target)])
    assert result.exit_code == 2 and not target.exists()
    assert result.stderr.strip() == (f"-o {target} is a csv file but --format is markdown: "
                                     "drop one, or make them agree")


def test_unknown_output_extension_lists_the_known_ones(tmp_path):
    target = tmp_path / "t.xlsx"
    result = runner.invoke(app, ["table", "googlenet", "-o", str(target)])
    assert result.exit_code == 2 and not target.exists()
    assert result.stderr.strip() == (f"-o {target}: cannot tell the format from '.xlsx'; give "
                                     "a file ending in .csv, .md, .json, .txt, .png, .svg, "
                                     "or --format")
    # an explicit --format writes any name
    run("table", "googlenet", "-f", "csv", "-o", str(target))
    assert target.read_text().startswith("name,type,")


def test_output_figure_is_the_plot_and_nothing_else(tmp_path):
    for command in (["table", "googlenet"], ["compare", "naive", "reduced"]):
        target = tmp_path / "figure.svg"
        result = runner.invoke(app, command + ["-o", str(target)])
        assert result.exit_code == 0, result.stderr
        assert result.stdout == "" and result.stderr.strip() == f"wrote {target}"
        assert target.read_text().lstrip().startswith("<?xml")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.svg"]
        target.unlink()


def test_output_figure_with_a_text_format_or_a_second_figure_is_one_line(tmp_path):
    target = tmp_path / "f.png"
    result = runner.invoke(app, ["table", "googlenet", "-f", "csv", "-o", str(target)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"-o {target} is a figure but --format is csv: drop one"
    result = runner.invoke(app, ["compare", "naive", "reduced", "-o", str(target),
                                 "--plot", str(tmp_path / "g.png")])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_verify_writes_only_text(tmp_path):
    target = tmp_path / "v.png"
    result = runner.invoke(app, ["verify", "cifar-cnn", "--device", "cpu", "-o", str(target)])
    assert result.exit_code == 2 and not target.exists()
    assert result.stderr.strip() == (f"-o {target}: cannot tell the format from '.png'; give a "
                                     "file ending in .csv, .md, .json, .txt, or --format")


# --- a join's inputs -----------------------------------------------------------------------

def test_detail_shows_every_input_of_a_join():
    """Inception (3a) concatenates its four branches: 64, 128, 32 and 32 channels at 28×28
    (Table 1's #1×1, #3×3, #5×5 and pool proj columns)."""
    out = run("table", "googlenet", "--detail")
    row = next(l for l in out.splitlines() if l.split()[:2] == ["3a", "concat"])
    assert "28×28×64 + 28×28×128 + 28×28×32 + 28×28×32" in row and "28×28×256" in row
    layers = {l["name"]: l for l in json.loads(run("table", "googlenet", "--detail", "-f",
                                                   "json"))["layers"]}
    assert layers["3a"]["input_shapes"] == [[64, 28, 28], [128, 28, 28], [32, 28, 28],
                                            [32, 28, 28]]
    assert "input_shape" not in layers["3a"]
    conv = layers["3a.b1x1.conv"]
    assert conv["input_shape"] == [192, 28, 28] and conv["input_shapes"] == [[192, 28, 28]]
    rows = list(csv.DictReader(io.StringIO(run("table", "googlenet", "--detail", "-f", "csv"))))
    assert next(r for r in rows if r["layer"] == "3a")["input"] == \
        "28×28×64 + 28×28×128 + 28×28×32 + 28×28×32"
