"""The analytic path stays light: `archcalc table` and its exports (CSV, Markdown, JSON) import
none of torch, fvcore and pandas; matplotlib only when a plot is asked for."""
import ast
import json
import subprocess
import sys
from pathlib import Path

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


def test_csv_and_markdown_exports_import_nothing_heavy():
    """CSV is the stdlib's csv, Markdown is tabulate: a light install can export."""
    assert loaded("table", "googlenet", "-f", "csv") == []
    assert loaded("table", "googlenet", "-f", "markdown") == []
    assert loaded("compare", "naive", "reduced", "-f", "markdown") == []


# --- the layout shows the torch boundary ------------------------------------------------------

CORE = Path(__file__).resolve().parent.parent / "archcalc" / "core"
OUTSIDE_CORE = ("torch", "fvcore", "matplotlib", "pandas", "archcalc.pytorch",
                "archcalc.training", "archcalc.views", "archcalc.cli")


def _imports(tree):
    """(module imported, name of the function it is imported in, or None at module level)."""
    found = []

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef,
                                                     ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Import):
                found.extend((alias.name, function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                found.append((child.module, function))
            visit(child, inner)
    visit(tree, None)
    return found


def test_the_analytic_core_imports_nothing_from_the_torch_side():
    """archcalc/core is spec, graph, ops and analysis: only an op's own ``to_torch`` may reach
    torch (lazily), as each op is the one place that knows how to build its module."""
    offences = []
    for path in sorted(CORE.rglob("*.py")):
        for module, function in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            heavy = any(module == m or module.startswith(m + ".") for m in OUTSIDE_CORE)
            if heavy and function != "to_torch":
                offences.append(f"{path.relative_to(CORE.parent.parent)}: {module} "
                                f"({'module level' if function is None else function})")
    assert offences == []
