"""Hostile values for what issues 12 and 13 added: devices files and the cpu profile's cache,
the cost columns on huge inputs and specs, `profile` interrupted, and process counts and splits
that would start a storm. Every case runs the CLI in a child process limited to about 2 GB of
address space and a time limit (tests/test_reliability_specs.py's `archcalc`), so a regression
fails here instead of hanging or eating the machine.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.test_reliability_specs import _limit_child, archcalc, billion_laughs, write

pytest.importorskip("torch")


def one_line(result, code: int = 2) -> str:
    """The single stderr line of a refused command (no traceback, nothing on stdout)."""
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == code, result.stdout[-500:] + result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


# --- devices files --------------------------------------------------------------------------

def test_a_devices_file_that_is_an_alias_bomb(tmp_path):
    path = write(tmp_path, billion_laughs() + "devices: {cpu: *i}\n", "devices.yaml")
    line = one_line(archcalc("table", "cifar-cnn", "--roofline", "h200", "--devices", str(path)))
    assert "more than 2,000,000 YAML values" in line


def test_a_devices_file_nested_thousands_deep(tmp_path):
    path = write(tmp_path, "devices: " + "[" * 5000 + "]" * 5000 + "\n", "devices.yaml")
    line = one_line(archcalc("table", "cifar-cnn", "--roofline", "h200", "--devices", str(path)))
    assert line.startswith(f"{path}:1:")


@pytest.mark.slow
def test_a_cpu_cache_replaced_by_a_fifo_is_measured_again_not_waited_on(tmp_path):
    """A FIFO where the cached record lies (read whole, it would block for ever): the profile
    is measured afresh and the pipe is left alone."""
    from archcalc.pytorch import cpu_profile
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    first = archcalc("table", "cifar-cnn", "--roofline", "cpu", env=env, timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    (cached,) = (tmp_path / "archcalc").glob("cpu-*.json")
    cached.unlink()
    os.mkfifo(cached)
    again = archcalc("table", "cifar-cnn", "--roofline", "cpu", env=env, timeout=120)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr[-2000:]
    assert cached.is_fifo() and cpu_profile.MAX_CACHE_BYTES < 10**6


# --- the cost columns on what no machine could run ------------------------------------------

def test_a_batch_of_10_to_the_30_is_arithmetic_not_allocation():
    result = archcalc("table", "cifar-cnn", "--memory", "--roofline", "h200", "--batch-size",
                      str(10**30))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "training step peak" in result.stdout and "predicted forward" in result.stdout


def test_every_cost_column_on_a_10000_layer_spec_stays_in_its_limits(tmp_path):
    """Receptive fields were worked out position by position (77 s for this spec); now in
    closed form where windows slide by a whole jump."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from table_speed import stage_spec
    finally:
        sys.path.pop(0)
    path = write(tmp_path, stage_spec(10_000))
    result = archcalc("table", str(path), "--memory", "--rf", "--roofline", "h200",
                      "--convention", "thop", timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]


# --- profile ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_profile_prints_nothing_of_its_libraries_on_stderr(tmp_path):
    """torch.profiler's kineto writes 'USDT: ... profiler_start' to file descriptor 2 when the
    memory pass is recorded; a command's output is its own."""
    result = archcalc("profile", "cifar-cnn", "--device", "cpu", "--repeat", "1",
                      env={"XDG_CACHE_HOME": str(tmp_path)}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ""
    assert "peak memory of a forward" in result.stdout


@pytest.mark.slow
def test_profile_stopped_by_ctrl_c_exits_130_without_a_traceback(tmp_path):
    environ = dict(os.environ, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path))

    def child():
        _limit_child()
        signal.signal(signal.SIGINT, signal.SIG_DFL)    # as a terminal's foreground job has it

    proc = subprocess.Popen([sys.executable, "-m", "archcalc", "profile", "googlenet",
                             "--device", "cpu", "--repeat", "50"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environ, preexec_fn=child)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err


# --- training: process counts and splits ----------------------------------------------------

def test_nproc_beyond_the_machines_cores_starts_nothing():
    """One more process than there are cores (were the check gone, a harmless few would start,
    not the storm of --nproc 100000 that the check refuses)."""
    cores = len(os.sched_getaffinity(0))
    line = one_line(archcalc("train", "synthetic", "--nproc", str(cores + 1)))
    assert line.startswith(f"--nproc: {cores + 1:,} processes asked for")


@pytest.mark.parametrize("split", [str(10**12), "5000"])
def test_a_validation_split_of_every_image_or_more_is_one_line(split):
    line = one_line(archcalc("train", "synthetic", "--quick", "--val-split", split))
    assert "--val-split" in line or "validation" in line
