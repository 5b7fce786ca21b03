"""`archcalc train` as a user runs it, on the built-in synthetic set (seconds, no files)."""
import json

import pytest
from typer.testing import CliRunner

from archcalc.training import runs
from archcalc.cli import app

runner = CliRunner()


def train(*args):
    return runner.invoke(app, ["train", *args])


def test_quick_synthetic_run_says_it_learns_and_names_the_data(tmp_path):
    out = tmp_path / "run"
    result = train("--quick", "synthetic", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC data" in result.stdout
    assert "✓ it learns" in result.stdout
    assert "1,252,266 params, 20,741,120 MACs per image" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "synthetic" and metrics["synthetic"] is True
    assert 0.9 <= metrics["test_accuracy"] <= 1.0 and len(metrics["epochs"]) == 1
    assert {p.name for p in out.iterdir()} == {"run.json", "config.json", "metrics.csv",
                                               "metrics.json", "checkpoint.pt", "model.pt"}
    assert json.loads((out / "run.json").read_text())["dataset"] == "synthetic"


def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    assert train("synthetic", "--epochs", "2", "--no-augment", "--out", str(straight)).exit_code == 0

    stopped = tmp_path / "stopped"

    def ctrl_c_after_first_epoch(record):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(runs.Job, "epoch_line", staticmethod(ctrl_c_after_first_epoch))
        result = train("synthetic", "--epochs", "2", "--no-augment", "--out", str(stopped))
    assert result.exit_code == 130
    assert f"archcalc train synthetic --resume {stopped}" in result.stderr

    result = train("synthetic", "--resume", str(stopped))
    assert result.exit_code == 0, result.output
    assert "continuing cifar-cnn" in result.stdout
    a = json.loads((straight / "metrics.json").read_text())
    b = json.loads((stopped / "metrics.json").read_text())
    assert [e["test_accuracy"] for e in a["epochs"]] == [e["test_accuracy"] for e in b["epochs"]]
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
    assert (plan.note is None) == (expected[0] is None)


def test_loss_trend_reads_the_last_window_from_running_means():
    from types import SimpleNamespace as Info
    trend = runs.LossTrend()
    # losses 2.3 on step 1, running mean 2.0 over steps 1-10, 1.5 over steps 1-20
    for step, mean in [(1, 2.3)] + [(s, 2.3) for s in range(2, 10)] + [(10, 2.0), (15, 2.0), (20, 1.5)]:
        trend.add(Info(epoch=1, step=step, loss=mean))
    assert trend.first == 2.3
    assert trend.last == (1.5 * 20 - 2.0 * 10) / 10     # steps 11-20 averaged 1.0


def test_verdict_needs_more_than_noise():
    assert runs.verdict(2.3, 1.0, 0.65, 10, 10_000).learned
    assert not runs.verdict(2.3, 2.2, 0.11, 10, 500).learned    # within 3 σ of a guess
    assert not runs.verdict(2.3, 2.4, 0.5, 10, 500).learned     # loss rose


def test_the_cli_offers_exactly_the_data_sets_the_loader_knows():
    from archcalc.cli import DatasetName
    from archcalc.training.datasets import DATASET_NAMES
    assert [d.value for d in DatasetName] == list(DATASET_NAMES)
    assert set(runs.DEFAULT_SPEC) == set(DATASET_NAMES)
