"""The analytic path stays light: `archcalc table` imports neither torch nor fvcore, and pandas
or matplotlib only for an export or plot that needs them."""
import json
import subprocess
import sys

HEAVY = ("torch", "fvcore", "pandas", "matplotlib")

PROBE = """
import json, sys
from typer.testing import CliRunner
from archcalc.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
assert result.exit_code == 0, result.output
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def loaded(*args):
    code = PROBE.format(heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_table_on_screen_and_json_import_nothing_heavy():
    assert loaded("table", "googlenet") == []
    assert loaded("table", "googlenet", "--detail", "-f", "json") == []
    assert loaded("specs") == []


def test_csv_export_brings_pandas_only():
    assert loaded("table", "googlenet", "-f", "csv") == ["pandas"]
