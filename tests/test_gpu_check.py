"""benchmarks/gpu_check.py, the script to run on a CUDA machine, exercised here in its --cpu
dry run: every step's command really runs (tiny), and one table comes out. Slow (marked so):
it compiles a model and starts a dozen Python processes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def rows(stdout: str) -> dict:
    """The table's rows by step (the text before two spaces), after its dashed rule."""
    lines = stdout.splitlines()
    rule = next(i for i, l in enumerate(lines) if l.startswith("----"))
    return {l.split("  ")[0].strip(): l for l in lines[rule + 1:] if l.strip()}


@pytest.mark.slow
def test_the_dry_run_runs_every_step_and_prints_one_table(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--cpu"], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    out = done.stdout
    assert out.startswith("python ") and "torch " in out and "fvcore: " in out
    assert out.count("images/s") == 1            # one table
    table = rows(out)
    assert set(table) == {"verify cifar-cnn", "verify fashion-cnn", "train --quick",
                          "train --quick --compile", "torchrun ×2 train --quick"}
    for step in ("verify cifar-cnn", "verify fashion-cnn"):
        assert "  agrees  " in table[step] + "  ", table[step]
        assert " MiB" in table[step]                 # the peak, from the step's own process
    for step in ("train --quick", "train --quick --compile"):
        line = table[step]
        assert "  ok  " in line and "%" in line and " MiB" in line, line
    # DDP is the other helper's; until it is merged the row may fail, but it must say why
    ddp = table["torchrun ×2 train --quick"]
    assert "  ok  " in ddp or "FAILED" in ddp, ddp
    assert done.returncode == (1 if "FAILED" in out or "DISAGREES" in out else 0)
    assert not list(tmp_path.iterdir())              # its files went to a temporary folder


def test_the_table_aligns_and_leaves_unknowns_blank():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
    text = gpu_check.table([gpu_check.Row("verify x", "agrees", peak_bytes=3 * 2**20, seconds=1.25),
                            gpu_check.Row("train", "ok", 12345.6, 0.6123, 2**30, 61.0)], "cuda")
    lines = text.splitlines()
    assert lines[0].split() == ["step", "result", "images/s", "test", "accuracy", "peak", "GPU",
                                "memory", "seconds"]
    assert lines[2].split() == ["verify", "x", "agrees", "3", "MiB", "1.2"]
    assert lines[3].split() == ["train", "ok", "12,346", "61.23%", "1,024", "MiB", "61.0"]
    assert len({len(l) for l in lines[:2]}) == 1      # the rule is as wide as the header


def test_a_failed_step_is_named_by_its_cause_not_by_torchruns_report():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
    stderr = ("\n*****\nSetting OMP_NUM_THREADS environment variable for each process to be 1\n*****\n"
              "run: another archcalc train is using this folder right now\n"
              "W1129 16:04:50.632000 11261 torch/distributed/elastic/api.py:1028] Sending SIGTERM\n"
              "Traceback (most recent call last):\n  File \"run.py\", line 1, in <module>\n"
              "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:\n"
              "============================================================\narchcalc FAILED\n")
    assert gpu_check._message(stderr) == "run: another archcalc train is using this folder right now"
    crash = "Traceback (most recent call last):\n  File \"x.py\", line 3, in f\n    g()\nRuntimeError: CUDA error: out of memory\n"
    assert gpu_check._message(crash) == "RuntimeError: CUDA error: out of memory"
