"""Issue 9's training cases: two runs on one folder, interrupts by real signals, tampered and
foreign checkpoints, and models too large for the machine. Each case has its exit code and its
one-line message; memory and time are capped in the test so a regression fails instead of
eating the machine."""
import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from archcalc.cli import app
from archcalc.core import memory
from archcalc.core.graph import build
from archcalc.core.spec import load
from archcalc.errors import ArchcalcError
from archcalc.training import runs
from archcalc.views import train as view
from tests.tiny_spec import TINY

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()



@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    path.write_text(TINY)
    return path


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


# --- 1. one folder, one run ----------------------------------------------------------------

def test_two_claims_on_one_folder_in_one_process(tmp_path):
    first = runs.FolderClaim(tmp_path).acquire()
    with pytest.raises(ArchcalcError, match="another archcalc train is using this folder"):
        runs.FolderClaim(tmp_path).acquire()
    first.release()
    runs.FolderClaim(tmp_path).acquire().release()      # free again once released


CLAIM = """
import sys, time
from pathlib import Path
from archcalc.errors import ArchcalcError
from archcalc.training import runs
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))   # both start claiming together
try:
    runs.claim_run_dir(Path(sys.argv[1]), "tiny")
except ArchcalcError as exc:
    print(exc)
    sys.exit(2)
time.sleep(1.0)     # hold the claim while the other tries
"""


def test_two_processes_claiming_one_folder_exactly_one_wins(tmp_path):
    start = time.time() + 1.5
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", CLAIM, str(tmp_path / "run"), str(start)],
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = sorted((p.wait(timeout=30), p.stdout.read()) for p in procs)
    assert [code for code, _ in results] == [0, 2]
    assert "another archcalc train is using this folder" in results[1][1]


def test_a_folder_holding_a_run_is_refused_and_default_folders_never_collide(tmp_path):
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(ArchcalcError, match="already holds a run; continue it with --resume"):
        runs.claim_run_dir(tmp_path / "done", "tiny")
    made = {runs.new_run_dir("tiny", tmp_path / "runs") for _ in range(3)}
    assert len(made) == 3 and all(p.is_dir() for p in made)


def test_a_run_that_fails_before_training_leaves_no_folder(tmp_path, tiny):
    out = tmp_path / "run"
    result = cli("train", "fashion-mnist", "--spec", tiny, "--out", out,
                 "--data-dir", tmp_path / "nothing")
    assert result.exit_code == 2
    assert not out.exists()


# --- 2. interrupts by real signals ----------------------------------------------------------

def _train_process(tiny, out, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "archcalc", "train", "synthetic", "--spec", str(tiny),
         "--epochs", "4", "--out", str(out), "--log-every", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})


def _result(out):
    metrics = json.loads((out / "metrics.json").read_text())
    return metrics["test_accuracy"], metrics["test_loss"], \
        [(e["train_loss"], e["val_loss"]) for e in metrics["epochs"]]


@pytest.mark.slow
def test_signals_stop_at_a_step_and_resume_ends_as_an_uninterrupted_run(tmp_path, tiny):
    """The signals go to real processes; the reference run and the resumes run in this one
    (same seed, one thread: the same numbers), which keeps the test near 30 s."""
    whole = cli("train", "synthetic", "--spec", tiny, "--epochs", "4", "--out", tmp_path / "whole")
    assert whole.exit_code == 0, whole.output
    expected = _result(tmp_path / "whole")
    cases = [("two Ctrl-C 50 ms apart", [signal.SIGINT, signal.SIGINT], 0.3, 130),
             ("SIGTERM", [signal.SIGTERM], 0.1, 143),
             ("SIGTERM before the first checkpoint", [signal.SIGTERM], None, None)]
    for name, signals, delay, code in cases:
        out = tmp_path / name.replace(" ", "-")
        proc = _train_process(tiny, out)
        if delay is None:       # as soon as the folder is set up, before or at the first epoch
            while not (out / "run.json").exists() and proc.poll() is None:
                time.sleep(0.005)
        else:
            while not proc.stdout.readline().startswith("epoch 1/4"):
                pass
            time.sleep(delay)
        for number in signals:
            proc.send_signal(number)
            time.sleep(0.05)
        _, err = proc.communicate(timeout=60)
        if code is not None:
            assert proc.returncode == code, (name, err)
            assert f"--resume {out}" in err and "Traceback" not in err, name
        assert not [p for p in out.iterdir() if p.name.endswith(".tmp")], name
        resumed = cli("train", "synthetic", "--resume", out)
        assert resumed.exit_code == 0, (name, resumed.output)
        assert _result(out) == expected, name


def test_a_folder_without_a_checkpoint_resumes_from_the_start(tmp_path, tiny):
    """The state a signal during setup leaves: run.json and config.json, no checkpoint. A new
    run is refused there (run.json says a run began); --resume starts it over."""
    whole = cli("train", "synthetic", "--spec", tiny, "--epochs", "1", "--out", tmp_path / "a")
    assert whole.exit_code == 0, whole.output
    expected = _result(tmp_path / "a")
    for name in ("checkpoint.pt", "model.pt", "metrics.json", "metrics.csv"):
        (tmp_path / "a" / name).unlink()
    again = cli("train", "synthetic", "--spec", tiny, "--epochs", "1", "--out", tmp_path / "a")
    assert again.exit_code == 2 and "already holds a run" in one_line(again)
    assert cli("train", "synthetic", "--resume", tmp_path / "a").exit_code == 0
    assert _result(tmp_path / "a") == expected


# --- 3. tampered and foreign checkpoints ----------------------------------------------------

@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, tiny):
    """A real run of 2 epochs stopped after its first: a checkpoint to tamper with."""
    out = tmp_path_factory.mktemp("ckpt") / "run"

    def stop(record):
        raise KeyboardInterrupt

    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(view, "epoch_line", stop)
        result = cli("train", "synthetic", "--spec", tiny, "--epochs", "2", "--out", out)
    for number, handler in handlers.items():     # an interrupted train leaves them ignored
        signal.signal(number, handler)
    assert result.exit_code == 130, result.output
    return out


def _set(*path, value):
    def change(state):
        target = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _drop(key):
    return lambda state: state.pop(key)


def _first_weight(change):
    def apply(state):
        name = next(iter(state["model"]))
        state["model"][name] = change(state["model"][name])
    return apply


def _adam_step(state):
    for slots in state["optimizer"]["state"].values():
        slots["step"] = slots["step"] + 7


class Foreign:
    pass


TAMPERED = {   # name: (change to the loaded state, or bytes for the whole file; message)
    "missing key": (_drop("rng"), "missing 'rng'"),
    "missing two keys": (lambda s: (s.pop("order"), s.pop("history")), "missing 'order', 'history'"),
    "not a dict": (lambda s: [1, 2, 3], "not an archcalc training checkpoint"),
    "another format": (_set("format", value=3), "not an archcalc training checkpoint"),
    "an older format": (_set("format", value=1), "written by an older archcalc (checkpoint format 1"),
    "format an empty tensor": (_set("format", value=torch.zeros(0)),
                               "not an archcalc training checkpoint"),
    "config value a tensor": (_set("config", "lr", value=torch.zeros(2)),
                              "cannot resume with a different configuration (lr: tensor"),
    "config not a dict": (_set("config", value="adam"), "'config' is missing or not a dictionary"),
    "step 10**6": (_set("step", value=10 ** 6), "'step' is 1000000, outside 0..70"),
    "step a float": (_set("step", value=3.0), "'step' is a float, not a whole number"),
    "negative epoch": (_set("epoch", value=-1), "'epoch' is -1, outside 0..2"),
    "epoch 10**6": (_set("epoch", value=10 ** 6), "'epoch' is 1000000, outside 0..2"),
    "epoch moved, nothing else": (_set("epoch", value=2), "'optimizer' took 70 steps, the position says 140"),
    "history cut": (_set("history", value=[]), "'history' must list 1 finished epochs"),
    "rng of floats": (_set("rng", "torch", value=torch.zeros(5056)), "'rng' torch holds torch.float32"),
    "rng cut short": (_set("rng", "generator", value=torch.zeros(10, dtype=torch.uint8)),
                      "'rng' generator has shape (10,)"),
    "rng not a dict": (_set("rng", value=[1]), "'rng' is a list, not a dictionary"),
    "another spec's weights": (_set("model", value={"fc.weight": torch.zeros(2, 2)}),
                               "its weights are not this spec's: missing conv1.conv.weight"),
    "weight of another size": (_first_weight(lambda t: torch.zeros(8, 3, 3, 3)),
                               "weight 'conv1.conv.weight' has shape (8, 3, 3, 3), not (4, 3, 3, 3)"),
    "weight in float64": (_first_weight(lambda t: t.double()),
                          "weight 'conv1.conv.weight' holds torch.float64"),
    "weight of NaN": (_first_weight(lambda t: t * float("nan")), "holds NaN or infinite values"),
    "weight not a tensor": (_first_weight(lambda t: t.tolist()), "is a list, not a tensor"),
    "optimizer off by 7 steps": (_adam_step, "'optimizer' took 77 steps, the position says 70"),
    "scheduler elsewhere": (_set("scheduler", "last_epoch", value=5), "'scheduler' took 5 steps"),
    "scheduler of another length": (_set("scheduler", "total_steps", value=10 ** 9),
                                    "'scheduler' total_steps is 1000000000"),
    "order not a permutation": (_set("order", value=torch.zeros(4500, dtype=torch.int64)),
                                "'order' is not an order of the 4500 training images"),
    "running seen wrong": (_set("running", "seen", value=12), "'running' seen is 12"),
    "history not records": (_set("history", value=[{"epoch": "one"}]), "'history' record 1 is not"),
    "scheduler phase removed": (_set("scheduler", "_schedule_phases", 1, value=None),
                                "'scheduler' _schedule_phases is"),
    "Adam's moment missing": (lambda s: next(iter(s["optimizer"]["state"].values())).pop("exp_avg"),
                              "holds exp_avg_sq, step, not exp_avg, exp_avg_sq, step"),
    "Adam's eps not a number": (_set("optimizer", "param_groups", 0, "eps", value=None),
                                "'optimizer' eps is None, this run's is 1e-08"),
    "Adam's step an empty tensor": (
        lambda s: next(iter(s["optimizer"]["state"].values())).update(step=torch.zeros(0)),
        "'optimizer' took tensor([]) steps, the position says 70"),
    "betas of one number": (_set("optimizer", "param_groups", 0, "betas", value=(0.9,)),
                            "'optimizer' betas is (0.9,), not 2 numbers"),
    "a foreign object": (lambda s: {"payload": argparse.Namespace()}, "cannot read the checkpoint"),
    "truncated": (b"PK\x03\x04 not a whole zip", "cannot read the checkpoint"),
}


def resume_capped(out):
    """`archcalc train synthetic --resume OUT` with this process's address space capped at
    16 GB, so a checkpoint that makes it allocate wildly fails the test, not the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (min(16 << 30, hard) if hard > 0 else 16 << 30, hard))
    try:
        return cli("train", "synthetic", "--resume", out)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("case", list(TAMPERED))
def test_a_tampered_checkpoint_is_refused_in_one_line(tmp_path, stopped_run, case):
    change, message = TAMPERED[case]
    out = tmp_path / "run"
    shutil.copytree(stopped_run, out)
    if isinstance(change, bytes):
        (out / "checkpoint.pt").write_bytes(change)
    else:
        state = torch.load(out / "checkpoint.pt", weights_only=True)
        state = change(state) if case in ("not a dict", "a foreign object") else \
            (change(state), state)[1]
        torch.save(state, out / "checkpoint.pt")
    result = resume_capped(out)
    assert result.exit_code == 2, (case, result.output, result.exception)
    line = one_line(result)
    assert line.startswith(f"{out / 'checkpoint.pt'}: "), line
    assert message in line, line
    assert not (out / "model.pt").exists()


def test_the_untampered_checkpoint_resumes(tmp_path, stopped_run):
    out = tmp_path / "run"
    shutil.copytree(stopped_run, out)
    assert cli("train", "synthetic", "--resume", out).exit_code == 0


# --- 4. memory, estimated before anything is allocated --------------------------------------

def test_the_estimate_against_hand_arithmetic(tiny):
    graph = build(load(str(tiny)))
    # parameters: conv 4×3×3×3 + 4 = 112, BatchNorm 2×4 and 2×4 running statistics = 16,
    # linear 100×10 + 10 = 1,010: 1,138 numbers, 4 bytes each
    # activations: input 3×32×32 = 3,072; conv, BatchNorm, ReLU 15×15×4 = 900 each; pool and
    # flatten 5×5×4 = 100 each; linear 10: 5,982 numbers an image
    need = memory.estimate(graph, batch=2)
    assert (need.params_bytes, need.activation_bytes) == (1138 * 4, 5982 * 2 * 4)
    step = memory.estimate(graph, batch=2, training=True)     # + gradients, 2 Adam moments
    assert (step.params_bytes, step.activation_bytes) == (1138 * 4 * 4, 5982 * 2 * 4 * 2)
    assert memory.refusal(need, need.total) is None
    assert memory.refusal(need, need.total - 1) == \
        "needs about 0.1 MB for parameters and activations at batch 2; 0.1 MB available"


BIG_CONV = "name: big\ninput: [3, 32, 32]\nlayers:\n  conv1: [conv: {out: 100000000, kernel: 3}]\n"
# the same convolution as a whole-image filter, so that the spec fits the data set's classes
BIG_NET = ("name: big\ninput: [3, 32, 32]\nlayers:\n  conv1: [conv: {out: 100000000, kernel: 32, padding: valid}]\n"
           "  flatten: flatten\n  classify: [linear: {out: 10}]\n")


@pytest.mark.parametrize("args", [
    ["verify", "{big}"],
    ["verify", "{tiny}", "--input", "3x100000x100000"],
    ["verify", "{tiny}", "--batch", "100000000"],
    ["train", "synthetic", "--spec", "{tiny}", "--batch-size", "100000000", "--out", "{out}"],
    ["train", "synthetic", "--spec", "{net}", "--out", "{out}"],
])
def test_too_large_for_this_machine_is_refused_before_allocating(tmp_path, tiny, args):
    big = tmp_path / "big.yaml"
    big.write_text(BIG_CONV)
    net = tmp_path / "net.yaml"
    net.write_text(BIG_NET)
    out = tmp_path / "run"
    args = [a.format(big=big, net=net, tiny=tiny, out=out) for a in args]
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (min(16 << 30, hard) if hard > 0 else 16 << 30, hard))
    try:
        result = cli(*args)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert result.exit_code == 2, result.output
    line = one_line(result)
    assert line.startswith("needs about ") and " GB for parameters and activations at batch " \
        in line and line.endswith(" available"), line
    assert not out.exists()


def test_build_model_refuses_too(tmp_path):
    from archcalc.pytorch.build import build_model
    big = tmp_path / "big.yaml"
    big.write_text(BIG_CONV)
    with pytest.raises(ArchcalcError, match=r"needs about [\d,.]+ GB .* at batch 1; "):
        build_model(str(big))


# --- fuzz: checkpoints mutated at random --------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True),
    st.text(max_size=8), st.lists(st.integers(-3, 3), max_size=4),
    st.sampled_from([torch.zeros(0), torch.zeros(3, dtype=torch.uint8), torch.ones(2, 2).double(),
                     torch.tensor(float("nan")), torch.arange(5)]))


def _leaves(value, path=()):
    """Every place in a loaded checkpoint that holds a value: (path of keys and indexes)."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, path + (index,))


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_checkpoints_resume_or_are_refused_in_one_line(tmp_path_factory, stopped_run,
                                                               data):
    """A checkpoint with any one value replaced, removed, or bytes of its file flipped: `--resume`
    either finishes (exit 0) or refuses in one line (exit 2); never a traceback, never a hang."""
    out = tmp_path_factory.mktemp("fuzz") / "run"
    shutil.copytree(stopped_run, out)
    path = out / "checkpoint.pt"
    if data.draw(st.booleans(), label="flip bytes"):
        blob = bytearray(path.read_bytes())
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            blob[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
        path.write_bytes(bytes(blob))
    else:
        state = torch.load(path, weights_only=True)
        places = [p for p in _leaves(state) if p]
        where = data.draw(st.sampled_from(places), label="place")
        parent = state
        for key in where[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and data.draw(st.booleans(), label="remove"):
            del parent[where[-1]]
        else:
            parent[where[-1]] = data.draw(ODD_VALUES, label="value")
        torch.save(state, path)
    result = resume_capped(out)
    assert result.exit_code in (0, 2), (result.output, result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        one_line(result)
