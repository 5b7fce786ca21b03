"""`archcalc report`: one self-contained HTML page, its text escaped, its numbers the paper's.

Expected numbers are GoogLeNet's from shared/reference/googlenet.md (hand arithmetic and
fvcore), not archcalc's own output. The page in a real browser: test_report_browser.py.
"""
import dataclasses
import json
import re

import pytest
from typer.testing import CliRunner

from archcalc.cli import app, load_report
from archcalc.views import html

runner = CliRunner()

EVIL = "</script><script>alert(1)</script>"

# GoogLeNet from the reference: params with biases, MACs; 3a's weights (Table 1's filters
# 64/96/128/16/32/32 on 192 channels) and its biases (one per filter: 64+96+128+16+32+32).
TOTAL_PARAMS = "6,998,552"
TOTAL_MACS = "1,582,671,872"
WEIGHTS_3A = 192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 25 + 192 * 32
PARAMS_3A = WEIGHTS_3A + (64 + 96 + 128 + 16 + 32 + 32)


def make(*args):
    result = runner.invoke(app, ["report", *args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def googlenet(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "googlenet.html"
    make("googlenet", "-o", str(path))
    return path.read_text(encoding="utf-8")


def test_arithmetic_of_3a_agrees_with_the_reference():
    assert WEIGHTS_3A == 163_328 and PARAMS_3A == 163_696


def test_page_is_self_contained_and_small(googlenet):
    # no resource fetched from elsewhere: no src/href to a URL (plain links would be text),
    # no stylesheet or script files, no web fonts
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", googlenet, re.I)
    assert refs == []
    assert "<link" not in googlenet and "@import" not in googlenet
    assert "@font-face" not in googlenet
    assert not re.search(r"""url\(\s*["']?\s*(?:https?:)?//""", googlenet, re.I)
    assert not re.search(r"<script[^>]*\ssrc=", googlenet)
    size = len(googlenet.encode("utf-8"))
    print(f"\nGoogLeNet report: {size:,} bytes")
    assert size < 1_000_000


def test_page_shows_the_totals_the_audit_and_the_parts(googlenet):
    assert TOTAL_PARAMS in googlenet and TOTAL_MACS in googlenet
    assert f"{PARAMS_3A:,}" in googlenet          # 3a's details, in the JSON block
    assert googlenet.count('<th scope="col"') >= 8 and '<th scope="row"' in googlenet
    # conv1's published 2.7K is flagged (9,408 weights are 9.2K): marked with text too
    conv1 = re.search(r'<tr data-row="conv1">.*?</tr>', googlenet).group()
    assert 'class="num flag"' in conv1 and "flagged" in conv1
    assert 'aria-live="polite"' in googlenet and 'id="row-3a"' in googlenet
    assert "<svg" in googlenet          # the diagram, and the plots when matplotlib is here


def test_compare_includes_both_variants(tmp_path):
    path = tmp_path / "x.html"
    make("googlenet", "--compare", "naive", "reduced", "-o", str(path))
    page = path.read_text(encoding="utf-8")
    table = re.search(r'<table id="comparison".*?</table>', page, re.S).group()
    assert "naive weights" in table and "reduced weights" in table
    assert '<tr data-row="3a">' in table and '<tr data-row="5b">' in table


def test_spec_text_stays_inert(tmp_path):
    spec = tmp_path / "evil.yaml"
    spec.write_text(f'name: "Evil {EVIL}"\nsource: "from {EVIL}"\n'
                    'description: "<img src=x onerror=alert(3)>"\ninput: [3, 32, 32]\n'
                    "layers:\n  c1: {conv: {out: 8, kernel: 3}}\n"
                    "  fc: [flatten, linear: {out: 10}]\n", encoding="utf-8")
    path = tmp_path / "evil.html"
    make(str(spec), "-o", str(path))
    page = path.read_text(encoding="utf-8")
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in page      # shown as text
    assert page.count("<script") == 2        # the data block and the page's own script


def test_json_block_cannot_be_ended_by_a_name():
    report = load_report("googlenet", None, None, False, 1.0)
    row = dataclasses.replace(report.rows[0], name=EVIL)
    report = dataclasses.replace(report, rows=[row] + report.rows[1:])
    page = html.page(report)
    block = re.search(r'<script type="application/json" id="archcalc-data">(.*?)</script>',
                      page, re.S).group(1)
    assert "<" not in block
    assert EVIL in json.loads(block)["rows"]         # the name comes back exactly
    assert EVIL not in page


def test_without_matplotlib_the_page_says_what_plots_need():
    report = load_report("googlenet", None, None, False, 1.0)
    page = html.page(report, figures=None)
    assert "The plots need matplotlib" in page and "archcalc[plot]" in page


@pytest.mark.parametrize("name", ["x.txt", "x"])
def test_output_must_be_html(tmp_path, name):
    result = runner.invoke(app, ["report", "googlenet", "-o", str(tmp_path / name)])
    assert result.exit_code == 2 and ".html" in result.stderr
    assert "Traceback" not in result.output and not list(tmp_path.iterdir())


def test_output_is_required():
    result = runner.invoke(app, ["report", "googlenet"])
    assert result.exit_code == 2 and "--output" in result.output
