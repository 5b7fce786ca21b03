"""`archcalc train` as a user runs it, on the built-in synthetic set (seconds, no files)."""
import json

import pytest
from typer.testing import CliRunner

from archcalc.cli import app
from archcalc.training import runs
from archcalc.views import train as view

runner = CliRunner()


def train(*args):
    return runner.invoke(app, ["train", *args])


@pytest.mark.slow
def test_quick_synthetic_run_says_it_learns_and_names_the_data(tmp_path):
    """Also the output to a log (CliRunner's stdout is no terminal): with --log-every 0 a
    progress line for every step, then the epoch's line."""
    out = tmp_path / "run"
    result = train("--quick", "synthetic", "--out", str(out), "--log-every", "0")
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC data" in result.stdout
    assert "✓ it learns" in result.stdout
    assert "after 1 epoch ·" in result.stdout
    steps = 4_500 // 64     # the synthetic training set less its 500 validation images, in batches of 64
    progress = [l for l in result.stdout.splitlines() if l.startswith("epoch 1/1 · step ")]
    assert [l.split()[4] for l in progress] == [f"{k}/{steps}" for k in range(1, steps + 1)]
    assert all(" loss " in l and " acc " in l and l.endswith(" images/s") for l in progress)
    assert result.stdout.index(progress[-1]) < result.stdout.index("epoch 1: train loss")
    assert "1,252,266 params, 20,741,120 MACs per image" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "synthetic" and metrics["synthetic"] is True
    assert 0.9 <= metrics["test_accuracy"] <= 1.0 and len(metrics["epochs"]) == 1
    assert {p.name for p in out.iterdir()} == {"run.json", "config.json", "metrics.csv",
                                               "metrics.json", "checkpoint.pt", "model.pt"}
    assert json.loads((out / "run.json").read_text())["dataset"] == "synthetic"


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    assert train("synthetic", "--epochs", "2", "--no-augment", "--out", str(straight)).exit_code == 0

    stopped = tmp_path / "stopped"

    def ctrl_c_after_first_epoch(record):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(view, "epoch_line", ctrl_c_after_first_epoch)
        result = train("synthetic", "--epochs", "2", "--no-augment", "--out", str(stopped))
    assert result.exit_code == 130
    assert f"archcalc train synthetic --resume {stopped}" in result.stderr

    result = train("synthetic", "--resume", str(stopped))
    assert result.exit_code == 0, result.output
    assert "continuing cifar-cnn" in result.stdout
    a = json.loads((straight / "metrics.json").read_text())
    b = json.loads((stopped / "metrics.json").read_text())
    assert [e["val_accuracy"] for e in a["epochs"]] == [e["val_accuracy"] for e in b["epochs"]]
    assert a["test_accuracy"] == b["test_accuracy"] and b["val_images"] == 500
    assert [e["train_loss"] for e in a["epochs"]] == [e["train_loss"] for e in b["epochs"]]


def test_spec_that_does_not_fit_the_data_names_both(tmp_path):
    result = train("synthetic", "--spec", "fashion-cnn", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert result.stderr.strip() == ("spec 'fashion-cnn' takes 1×28×28 images and gives 10 "
                                     "classes; data set 'synthetic' has 3×32×32 images in 10 "
                                     "classes")
    assert not (tmp_path / "r").exists()


def test_resume_refuses_new_settings(tmp_path):
    result = train("synthetic", "--resume", str(tmp_path), "--epochs", "3")
    assert result.exit_code == 2
    assert "--resume continues a run with its own settings; drop --epochs" in result.stderr


def test_resume_of_a_missing_folder_says_so(tmp_path):
    result = train("synthetic", "--resume", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{tmp_path / 'nope'}: no such folder to resume"


def test_resume_of_a_folder_that_is_no_run(tmp_path):
    result = train("synthetic", "--resume", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{tmp_path}: not a run folder of archcalc train (no run.json)"


def test_a_finished_run_is_never_overwritten(tmp_path):
    (tmp_path / "run.json").write_text("{}")
    result = train("--quick", "synthetic", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "already holds a run" in result.stderr
    assert (tmp_path / "run.json").read_text() == "{}"


def test_missing_cifar10_says_where_it_looked_and_how_to_provide_it(tmp_path):
    result = train("--quick", "cifar10", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r"))
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert str(tmp_path) in message
    for way in ("--data-dir", "ARCHCALC_DATA", "--download"):
        assert way in message


@pytest.mark.parametrize("macs,batch,expected", [
    (20_741_120, None, (None, 64)),                 # the notes' CNN: one whole pass
    (1_447_241_728, None, (50, 16)),                # GoogLeNet for CIFAR: 3.5e12 / (3 × macs × 16)
    (1_447_241_728, 64, (12, 64)),                  # a batch size the user chose is kept
])
def test_quick_caps_heavy_specs_only(macs, batch, expected):
    plan = runs.quick_plan(macs, 50_000, 10_000, batch, "cpu")
    assert (plan.max_steps, plan.batch_size) == expected
    assert plan.capped == (expected[0] is not None)
    note = view.quick_note(plan)
    assert (note is None) == (expected[0] is None)
    if note:
        assert f"stops after {plan.max_steps} steps of {plan.batch_size}" in note


def test_the_cli_offers_exactly_the_data_sets_the_loader_knows():
    from archcalc.cli import DatasetName
    from archcalc.training.datasets import DATASET_NAMES
    assert [d.value for d in DatasetName] == list(DATASET_NAMES)
    assert set(runs.DEFAULT_SPEC) == set(DATASET_NAMES)


def test_help_shows_train_configs_defaults():
    """One source: each option's default in `train --help` is TrainConfig's (and --quick's
    where it differs), read here from the dataclass itself."""
    import dataclasses
    import re

    from archcalc.pytorch.devices import DEFAULT_THREADS
    from archcalc.training.options import QUICK_DEFAULTS, TrainConfig

    def shown(value):
        return ("on" if value else "off") if isinstance(value, bool) else \
            f"{value:g}" if isinstance(value, float) else str(value)

    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(line.strip("│ ") for line in result.stdout.splitlines())
    internal = {"max_steps_per_epoch", "max_test_images",
                "processes"}    # torchrun's WORLD_SIZE (tests/test_ddp.py)
    checked = []
    for field in dataclasses.fields(TrainConfig):
        if field.name in internal:
            continue
        option = "--" + field.name.replace("_", "-")
        match = re.search(re.escape(option) + r"\s.*?\[default: \((.*?)\)\]", text)
        assert match, f"{option} shows no default"
        parts = match.group(1).split("; ")
        expected = f"${'ARCHCALC_THREADS'}, else {DEFAULT_THREADS}" if field.name == "threads" \
            else f"a tenth of the training images: {50_000 // 10:,} for cifar10" \
            if field.name == "val_split" else shown(field.default)
        assert parts[0] == expected, option
        if field.name in QUICK_DEFAULTS:
            assert f"{shown(QUICK_DEFAULTS[field.name])} with --quick" in parts, option
        checked.append(field.name)
    assert {"epochs", "batch_size", "optimizer", "lr", "augment", "threads"} <= set(checked)


def test_help_of_train_does_not_import_torch():
    import subprocess
    import sys
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom archcalc.cli import app\n"
            "r = CliRunner().invoke(app, ['train', '--help'])\n"
            "assert r.exit_code == 0, r.output\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_bad_thread_count_in_the_environment_stops_before_anything_is_written(tmp_path):
    result = runner.invoke(app, ["train", "synthetic", "--out", str(tmp_path / "r")],
                           env={"ARCHCALC_THREADS": "x"})
    assert result.exit_code == 2
    assert result.stderr.strip() == "ARCHCALC_THREADS: must be a positive whole number of " \
                                    "threads, got 'x'"
    assert not (tmp_path / "r").exists()


def test_a_download_says_how_far_it_got(capsys):
    """--download's progress reaches stderr as lines, throttled, and always its last chunk."""
    from archcalc import cli
    every_time = cli._download_lines(every=0)
    every_time(1_000_000, 170_498_071)
    throttled = cli._download_lines(every=3600)
    throttled(2_000_000, 170_498_071)       # the first call always speaks
    throttled(3_000_000, 170_498_071)       # within the hour: silent
    throttled(170_498_071, 170_498_071)     # the end: always
    assert capsys.readouterr().err.splitlines() == [
        "downloading CIFAR-10: 1.0 of 170.5 MB", "downloading CIFAR-10: 2.0 of 170.5 MB",
        "downloading CIFAR-10: 170.5 of 170.5 MB"]
