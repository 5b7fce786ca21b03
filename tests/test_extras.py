"""A light install runs the analytic path; a command that needs a missing extra says, in one
line and with exit 2, which pip lines install it: the user's PyTorch build first."""
import subprocess
import sys

import pytest

# Run the CLI in a fresh interpreter where some modules cannot be imported (a None entry in
# sys.modules makes `import name` raise ImportError), as on a light install.
PROBE = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
from archcalc.cli import app
app(sys.argv[1:], prog_name="archcalc")
"""


def run_without(blocked, *args, tmp_path=None):
    code = PROBE.format(blocked=list(blocked))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)


@pytest.mark.parametrize("args", [
    ["verify", "googlenet", "--device", "cpu"],
    ["train", "synthetic", "--quick"],
])
def test_torch_commands_name_the_install_lines(args, tmp_path):
    result = run_without(["torch"], *args, tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    line = lines[0]
    assert "lacks torch" in line
    assert line.index("pip install torch") < line.index("pip install 'archcalc[torch]'")
    assert not list(tmp_path.iterdir())     # nothing written: no run folder was made


def test_a_plot_without_matplotlib_says_what_to_install(tmp_path):
    result = run_without(["matplotlib"], "table", "googlenet", "--plot",
                         str(tmp_path / "t.png"), tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("pip install 'archcalc[plot]'")
    assert not (tmp_path / "t.png").exists()


def test_table_and_compare_run_without_torch_or_matplotlib():
    for args in (["table", "googlenet"], ["compare", "naive", "reduced"],
                 ["table", "googlenet", "-f", "json"]):
        result = run_without(["torch", "fvcore", "matplotlib", "numpy"], *args)
        assert result.returncode == 0, result.stderr


def test_verify_without_fvcore_names_it_in_one_line(tmp_path):
    result = run_without(["fvcore"], "verify", "cifar-cnn", "--device", "cpu", tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "lacks fvcore" in lines[0]


TINY = ("name: tiny\ninput: [3, 32, 32]\nlayers:\n"
        "  conv1: [conv: {out: 4, kernel: 3, stride: 2, padding: valid}, batchnorm: {act: relu}]\n"
        "  pool: [maxpool: {kernel: 3}]\n  flatten: flatten\n  classify: [linear: {out: 10}]\n")


@pytest.mark.slow       # a fresh interpreter that imports torch and trains: about 5 s
def test_training_needs_no_fvcore(tmp_path):
    """A GPU machine may lack fvcore: building and training use only PyTorch and NumPy."""
    (tmp_path / "tiny.yaml").write_text(TINY)
    result = run_without(["fvcore"], "train", "synthetic", "--spec", "tiny.yaml", "--epochs", "1",
                         "--batch-size", "500", "--out", "run", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "model.pt").is_file()
