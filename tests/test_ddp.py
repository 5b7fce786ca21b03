"""`archcalc train` as data-parallel processes: real processes started by torchrun (or with
torchrun's variables set by hand, as torchrun sets them), gloo on the CPU, one thread each.

The oracle for "DDP trains correctly" is archcalc's own single process, which other tests check
against PyTorch: N processes with a per-process batch of B/N must end where one process with
batch B ends, up to float rounding (sums in another order). Three controls keep that from being
faked: one process with batch B/2 must end elsewhere (so the processes did pool their batches),
and the same comparison with BatchNorm must fail (so each process did see only its own half:
unsynchronized BatchNorm normalizes over that half).

Every launch has a timeout, so a hang fails a test instead of stalling the suite. Launching
processes takes seconds each, so all but the quickest refusal are marked slow: the everyday run
leaves them to CI, where the whole file takes a minute and a half.
"""
import json
import re
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("this PyTorch has no torch.distributed", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
SPECS = Path(__file__).resolve().parent / "ddp_specs"
TIMEOUT = 120               # seconds any one launch may take: no test waits forever
GLOBAL_BATCH = 128
EPOCHS = 1
# Largest |difference| of a tensor over its largest |value|: rounding alone (float32 gradients
# summed in another order over 35 SGD steps) measured about 2e-7 here, so 1e-5; training on
# another batch ends ~1e-1 away. Longer runs and smaller batches are chaotic: at batch 32 a
# 1e-8 nudge to the weights grew to 1e-2 within one epoch, and at batch 128 to 2e-3 within
# two, so the reference is one epoch of 128-image steps over synthetic's 4,500 training images
# (5,000 less the 500 held out for validation). Max pooling made it chaotic too: a rounding
# difference that flips which value of a window is largest sent the two runs 3e-3 apart, so
# the plain spec pools by averaging.
TRAIN_IMAGES = 5000 - 500
SAME = 1e-5
TRAIN = ["synthetic", "--epochs", str(EPOCHS), "--no-augment", "--optimizer", "sgd",
         "--schedule", "none", "--lr", "0.02", "--device", "cpu", "--seed", "0"]
TORCHRUN_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                 "LOCAL_WORLD_SIZE", "GROUP_RANK", "TORCHELASTIC_RUN_ID")


def env(**extra) -> dict:
    """This checkout first on the path, one thread per process, and no torchrun variables
    inherited from whatever ran pytest."""
    e = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    e.update(PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
             OMP_NUM_THREADS="1", ARCHCALC_THREADS="1", **extra)
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spec(name: str) -> list:
    return ["--spec", str(SPECS / f"{name}.yaml")]


def torchrun_command(nproc: int, *args, nodes=None) -> list:
    where = ["--master_addr", "127.0.0.1"]
    if nodes:
        where += ["--nnodes", str(nodes[0]), "--node_rank", str(nodes[1]), "--master_port",
                  str(nodes[2])]
    else:
        where += ["--master_port", str(free_port())]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            *where, "-m", "archcalc", "train", *args]


def run(command: list, cwd, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env(**extra), capture_output=True, text=True,
                          timeout=TIMEOUT)


def archcalc(*args, cwd, **extra) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "archcalc", "train", *args], cwd, **extra)


def torchrun(nproc: int, *args, cwd) -> subprocess.CompletedProcess:
    return run(torchrun_command(nproc, *args), cwd)


def weights(folder: Path) -> dict:
    return torch.load(folder / "model.pt", weights_only=True)


def difference(a: dict, b: dict) -> float:
    """The largest relative difference of any tensor: max |a - b| / max |a|."""
    assert a.keys() == b.keys()
    return max(((a[k] - b[k]).abs().max() / a[k].abs().max()).item()
               for k in a if a[k].is_floating_point())


def metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("ddp")


@pytest.fixture(scope="module")
def one(work):
    """One process, batch 128: the reference."""
    result = archcalc(*TRAIN, *spec("plain"), "--batch-size", str(GLOBAL_BATCH), "--out", "one",
                      cwd=work)
    assert result.returncode == 0, result.stdout + result.stderr
    return work / "one"


@pytest.fixture(scope="module")
def two(work):
    """Two processes × 64, started with `archcalc train --nproc 2` (which runs torchrun)."""
    result = run([sys.executable, "-m", "archcalc", "train", "--nproc", "2", *TRAIN,
                  *spec("plain"), "--batch-size", str(GLOBAL_BATCH // 2), "--out", "two"], work)
    assert result.returncode == 0, result.stdout + result.stderr
    return work / "two", result


@pytest.mark.slow
def test_two_processes_end_with_one_process_weights(one, two):
    folder, _ = two
    assert difference(weights(one), weights(folder)) < SAME
    a, b = metrics(one)["epochs"], metrics(folder)["epochs"]
    for ra, rb in zip(a, b):
        assert (ra["steps"], ra["images"]) == (rb["steps"], rb["images"]) == (TRAIN_IMAGES // 128, TRAIN_IMAGES // 128 * 128)
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=1e-5)
        assert rb["val_loss"] == pytest.approx(ra["val_loss"], rel=1e-5)
        assert abs(rb["val_accuracy"] - ra["val_accuracy"]) <= 0.004       # 2 of 500 images
    # the test set, evaluated once at the end, each process scoring its share
    ma, mb = metrics(one), metrics(folder)
    assert ma["test_images"] == mb["test_images"] == 1000
    assert mb["test_loss"] == pytest.approx(ma["test_loss"], rel=1e-5)
    assert abs(mb["test_accuracy"] - ma["test_accuracy"]) <= 0.002     # 2 of 1,000 images


@pytest.mark.slow
def test_half_the_batch_in_one_process_ends_elsewhere(one, work):
    """Control: the two processes pooled their batches; each did not just train on its own."""
    result = archcalc(*TRAIN, *spec("plain"), "--batch-size", str(GLOBAL_BATCH // 2), "--out",
                      "half", cwd=work)
    assert result.returncode == 0, result.stderr
    assert difference(weights(one), weights(work / "half")) > 100 * SAME


@pytest.mark.slow
def test_batchnorm_without_sync_differs(work):
    """Control: with BatchNorm each process normalizes over its own 64 images, so two processes
    no longer match one with 128, by far more than the rounding that SAME allows."""
    alone = archcalc(*TRAIN, *spec("batchnorm"), "--batch-size", "128", "--out", "bn1", cwd=work)
    pair = torchrun(2, *TRAIN, *spec("batchnorm"), "--batch-size", "64", "--out", "bn2", cwd=work)
    assert alone.returncode == 0 and pair.returncode == 0, alone.stderr + pair.stderr
    assert difference(weights(work / "bn1"), weights(work / "bn2")) > 100 * SAME


@pytest.mark.slow
def test_only_rank_0_prints_and_writes(one, two):
    folder, result = two
    assert result.stdout.count("training plain (") == 1
    assert "batch 128 (2 processes × 64, DistributedDataParallel)" in result.stdout
    assert result.stdout.count("test accuracy ") == 1
    assert {p.name for p in folder.iterdir()} == {p.name for p in one.iterdir()}
    summary = metrics(folder)
    assert summary["processes"] == 2 and summary["test_images"] == 1000
    config = json.loads((folder / "config.json").read_text())
    assert (config["batch_size"], config["processes"]) == (64, 2)


@pytest.mark.slow
def test_two_nodes_end_with_one_process_weights(one, work):
    """torchrun's multi-node form, both "nodes" on 127.0.0.1, one process each."""
    port = free_port()
    args = [*TRAIN, *spec("plain"), "--batch-size", "64", "--out", "nodes"]
    launchers = [subprocess.Popen(torchrun_command(1, *args, nodes=(2, rank, port)), cwd=work,
                                  env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for rank in (0, 1)]
    try:
        outputs = [p.communicate(timeout=TIMEOUT)[0] for p in launchers]
    finally:
        for p in launchers:
            p.kill()
    assert [p.returncode for p in launchers] == [0, 0], outputs
    assert outputs[0].count("training plain (") == 1 and "training plain (" not in outputs[1]
    assert difference(weights(one), weights(work / "nodes")) < SAME


def ranks(launcher: subprocess.Popen, count: int, deadline: float) -> dict:
    """{rank: pid} of a torchrun launcher's worker processes, read from their environment."""
    found = {}
    while len(found) < count and time.monotonic() < deadline:
        for child in Path("/proc").iterdir():
            if not child.name.isdigit():
                continue
            try:
                status = (child / "status").read_text()
                environ = (child / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            ppid = next(l.split()[1] for l in status.splitlines() if l.startswith("PPid:"))
            if int(ppid) != launcher.pid:
                continue
            for item in environ:
                if item.startswith(b"RANK="):
                    found[int(item[5:])] = int(child.name)
        time.sleep(0.1)
    return found


def start_then(signum: int, work: Path, out: str, epochs: int) -> tuple:
    """2 processes training; ``signum`` to rank 1 alone at the 3rd step. Returns (exit code,
    output) of the launcher."""
    if sys.platform != "linux":
        pytest.skip("finds the workers through /proc")
    launcher = subprocess.Popen(
        torchrun_command(2, *TRAIN[:1], "--epochs", str(epochs), *TRAIN[3:], *spec("plain"),
                         "--batch-size", "64", "--out", out, "--log-every", "0"),
        cwd=work, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + TIMEOUT
    try:
        lines, pids = [], {}
        for line in launcher.stdout:        # rank 0's header, then a line per step
            lines.append(line)
            if line.startswith("training plain ("):
                pids = ranks(launcher, 2, deadline)
            if line.startswith(f"epoch 1/{epochs} · step 3/"):
                break
        assert set(pids) == {0, 1}, "".join(lines)
        os.kill(pids[1], signum)
        rest, _ = launcher.communicate(timeout=max(1, deadline - time.monotonic()))
    finally:
        launcher.kill()
    return launcher.returncode, "".join(lines) + rest


@pytest.mark.slow
def test_ctrl_c_in_one_rank_stops_all_at_the_same_step_and_resumes_on_one(one, work):
    """SIGINT to rank 1 only: rank 0 learns of it through the per-step agreement, writes the
    checkpoint at the step both stopped before, and both exit 130. The checkpoint then resumes
    in ONE process (batch 128, the recorded global batch) to the reference's weights."""
    code, output = start_then(signal.SIGINT, work, "stopped", EPOCHS)
    assert code != 0, output
    # torchrun's report: the workers exit 130; once one has, torchrun sends SIGTERM to any
    # still tearing down (under load rank 1 can be), which then reads -15
    codes = [int(c) for c in re.findall(r"exitcode\s*:\s*(-?\d+)", output)]
    assert 130 in codes and set(codes) <= {130, -15}, output
    assert "interrupted" in output and "--resume" in output
    state = torch.load(work / "stopped" / "checkpoint.pt", weights_only=True)
    assert state["step"] >= 3 and state["epoch"] < EPOCHS, "the signal came too late"
    resumed = archcalc("--resume", "stopped", "synthetic", "--device", "cpu", cwd=work)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "batch 128 ·" in resumed.stdout          # one process takes the whole global batch
    assert difference(weights(one), weights(work / "stopped")) < SAME


@pytest.mark.slow
def test_resume_refuses_a_process_count_that_does_not_divide_the_batch(two, work):
    """Checked before the processes wait for each other: one process with torchrun's
    variables for 3 says so at once, with no group to form."""
    folder, _ = two
    result = archcalc("--resume", str(folder), "synthetic", "--device", "cpu", cwd=work,
                      WORLD_SIZE="3", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(free_port()))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"{folder}: this run's steps are of 128 images (2 process(es) × 64), which 3 processes "
        f"cannot share equally; resume with a number of processes that divides 128"]


@pytest.mark.slow
def test_a_rank_that_dies_stops_the_others(work):
    """SIGKILL to rank 1 (no agreement possible): rank 0 must not wait in a collective; the
    launcher ends well within the timeout, and what rank 0 wrote is whole."""
    started = time.monotonic()
    code, output = start_then(signal.SIGKILL, work, "killed", 20)
    assert code != 0 and time.monotonic() - started < TIMEOUT
    assert "exitcode  : -9" in output
    if (work / "killed" / "checkpoint.pt").exists():
        torch.load(work / "killed" / "checkpoint.pt", weights_only=True)


@pytest.mark.slow
def test_a_group_that_cannot_form_is_one_line(work):
    """Rank 0 of 2 with no rank 1: one line after --dist-timeout, not a hang or a traceback."""
    port = free_port()
    started = time.monotonic()
    result = archcalc(*TRAIN, *spec("plain"), "--out", "alone", "--dist-timeout", "2", cwd=work,
                      WORLD_SIZE="2", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    assert result.returncode == 2 and time.monotonic() - started < 60
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"the 2 processes did not form a group at 127.0.0.1:{port} "
                               f"within 2 s (this is rank 0): ")


@pytest.mark.slow
def test_a_global_batch_larger_than_the_data_is_refused(work):
    result = torchrun(2, *TRAIN, *spec("plain"), "--batch-size", "3000", "--out", "big",
                      cwd=work)
    assert result.returncode != 0
    line = ("a step of 2 processes × 3000 images needs 6,000 training images; synthetic has "
            "4,500 after the validation split: use fewer processes or a smaller --batch-size")
    assert result.stderr.count(line) == 2, result.stderr       # each rank, once
    assert "[rank0]:" not in result.stderr and "[rank1]:" not in result.stderr  # no traceback


@pytest.mark.slow
def test_resume_of_a_folder_whose_checkpoint_is_another_specs(two, work):
    """run.json names the BatchNorm spec, the checkpoint holds the plain one's weights: every
    rank refuses in one line, none waits for the others."""
    folder = work / "foreign"
    shutil.copytree(two[0], folder)
    info = json.loads((folder / "run.json").read_text())
    info["spec"] = str(SPECS / "batchnorm.yaml")
    (folder / "run.json").write_text(json.dumps(info))
    result = torchrun(2, "--resume", str(folder), "synthetic", "--device", "cpu", cwd=work)
    assert result.returncode != 0
    line = (f"{folder / 'checkpoint.pt'}: cannot resume from this checkpoint: its weights are "
            f"not this spec's: missing conv1.batchnorm.weight")
    assert result.stderr.count(line) == 2, result.stderr


def test_sync_bn_on_the_cpu_is_refused_with_the_reason(tmp_path):
    result = archcalc(*TRAIN, *spec("batchnorm"), "--sync-bn", "--out", "x", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "--sync-bn needs CUDA: PyTorch's SyncBatchNorm refuses CPU tensors (on the CPU each "
        "process normalizes over its own batch; drop --sync-bn)")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_sync_bn_without_batchnorm_is_a_note(tmp_path):
    result = archcalc(*TRAIN[:1], "--epochs", "1", *TRAIN[3:], *spec("plain"), "--sync-bn",
                      "--out", "x", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--sync-bn: the spec has no BatchNorm layer, so there is nothing to synchronize" \
        in result.stdout
