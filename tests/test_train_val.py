"""The validation split of `archcalc train`: held out of the training images, seeded, disjoint,
scored every epoch; the test set scored once, at the end; kept by --resume; bad sizes refused.
Small models on the synthetic set (CPU, seconds)."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from archcalc.cli import app
from archcalc.errors import ArchcalcError
from archcalc.training.datasets import channel_stats, hold_out, make_synthetic
from archcalc.training.engine import TrainConfig, train
from archcalc.training.options import val_count
from archcalc.views import train as view
from tests.tiny_spec import TINY

DATA = make_synthetic(train=400, test=96)
runner = CliRunner()


def net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(),
                         nn.Linear(6 * 64, 10))


def config(**changes) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 32, "augment": False, "seed": 0,
                          "device": "cpu", **changes})


# --- the split itself --------------------------------------------------------------------------

def test_the_split_is_disjoint_whole_and_in_proportion_to_the_classes():
    labels = torch.tensor([0] * 500 + [1] * 300 + [2] * 200)[torch.randperm(1000)]
    train_idx, val_idx = hold_out(labels, 100, seed=3)
    assert len(val_idx) == 100 and len(train_idx) == 900
    assert not set(train_idx.tolist()) & set(val_idx.tolist())
    assert sorted(train_idx.tolist() + val_idx.tolist()) == list(range(1000))
    # a tenth of each class: 50 of 500, 30 of 300, 20 of 200
    assert torch.bincount(labels[val_idx]).tolist() == [50, 30, 20]


def test_the_same_seed_holds_out_the_same_images_and_another_seed_others():
    labels = DATA.train_y
    assert torch.equal(hold_out(labels, 40, 7)[1], hold_out(labels, 40, 7)[1])
    assert not torch.equal(hold_out(labels, 40, 7)[1], hold_out(labels, 40, 8)[1])


def test_each_data_set_holds_out_a_tenth_by_default():
    assert val_count(None, "cifar10", 50_000) == 5_000
    assert val_count(None, "fashion-mnist", 60_000) == 6_000
    assert val_count(None, "synthetic", 5_000) == 500
    assert val_count(0, "cifar10", 50_000) == 0 and val_count(123, "cifar10", 50_000) == 123


@pytest.mark.parametrize("count", [50_000, 50_001])
def test_a_split_that_leaves_no_training_images_is_refused(count):
    with pytest.raises(ArchcalcError, match=f"--val-split {count:,} would hold out every one of "
                                            f"the 50,000 training images of cifar10"):
        val_count(count, "cifar10", 50_000)


@pytest.mark.parametrize("value", [-1, 2.5, "100"])
def test_a_split_that_is_not_a_count_is_refused(value):
    with pytest.raises(ArchcalcError, match="'val_split' must be a whole number of images"):
        TrainConfig(val_split=value)


# --- the engine ---------------------------------------------------------------------------------

def _accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, mean, std) -> float:
    """An independent evaluation: normalize with the training images' statistics, argmax."""
    model.eval()
    with torch.no_grad():
        x = (images.float() - mean.reshape(1, -1, 1, 1)) / std.reshape(1, -1, 1, 1)
        return (model(x).argmax(1) == labels).double().mean().item()


def test_epochs_score_the_validation_images_and_the_test_set_is_scored_once_at_the_end(tmp_path):
    model = net()
    seen_in_eval = []
    model.register_forward_hook(lambda m, args, out: None if m.training else seen_in_eval.append(len(out)))
    epochs = []
    result = train(model, DATA, config(epochs=3, val_split=60), tmp_path, on_epoch=epochs.append)

    # evaluation forwards: 60 validation images after each of 3 epochs, then 96 test images once
    assert sum(seen_in_eval) == 3 * 60 + 96
    assert (result.val_images, result.test_images) == (60, 96)
    assert all(r.val_accuracy is not None for r in epochs) and len(epochs) == 3

    train_idx, val_idx = hold_out(DATA.train_y, 60, seed=0)
    mean, std = channel_stats(DATA.train_x[train_idx])
    assert result.val_accuracy == pytest.approx(
        _accuracy(model, DATA.train_x[val_idx], DATA.train_y[val_idx], mean, std), abs=1e-9)
    assert result.test_accuracy == pytest.approx(
        _accuracy(model, DATA.test_x, DATA.test_y, mean, std), abs=1e-9)

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (metrics["train_images"], metrics["val_images"], metrics["test_images"]) == (340, 60, 96)
    assert metrics["test_accuracy"] == result.test_accuracy
    assert metrics["val_accuracy"] == epochs[-1].val_accuracy
    assert all("test_accuracy" not in e and e["val_accuracy"] is not None for e in metrics["epochs"])
    assert json.loads((tmp_path / "config.json").read_text())["val_split"] == 60
    assert epochs[0].images == 340 // 32 * 32      # trained on the 340 others only


def test_without_validation_epochs_have_no_held_out_score(tmp_path):
    result = train(net(), DATA, config(epochs=1, val_split=0), tmp_path)
    assert result.val_accuracy is None and result.val_images == 0
    assert result.history[0].val_loss is None and 0 <= result.test_accuracy <= 1
    assert result.history[0].images == 400 // 32 * 32
    assert "no validation images" in view.epoch_line(result.history[0])


# --- the command --------------------------------------------------------------------------------

@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.slow      # about 4 s: two runs and a resume
def test_resume_keeps_the_split(tmp_path, tiny, monkeypatch):
    straight = tmp_path / "straight"
    assert cli("train", "synthetic", "--spec", tiny, "--epochs", "2", "--val-split", "4700",
               "--out", straight).exit_code == 0

    def stop(record):
        raise KeyboardInterrupt
    stopped = tmp_path / "stopped"
    with monkeypatch.context() as patch:
        patch.setattr(view, "epoch_line", stop)
        assert cli("train", "synthetic", "--spec", tiny, "--epochs", "2", "--val-split", "4700",
                   "--out", stopped).exit_code == 130
    assert json.loads((stopped / "config.json").read_text())["val_split"] == 4_700
    resumed = cli("train", "synthetic", "--resume", stopped)
    assert resumed.exit_code == 0, resumed.output
    assert "300 training, 4,700 validation and 1,000 test images" in resumed.stdout
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (straight, stopped))
    assert b["val_images"] == 4_700 and b["train_images"] == 300
    assert [e["val_accuracy"] for e in a["epochs"]] == [e["val_accuracy"] for e in b["epochs"]]
    assert a["test_accuracy"] == b["test_accuracy"]


@pytest.mark.parametrize("count", ["5000", "9999"])
def test_a_split_as_large_as_the_training_set_is_one_line_and_exit_2(tmp_path, tiny, count):
    result = cli("train", "synthetic", "--spec", tiny, "--val-split", count, "--out", tmp_path / "r")
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"--val-split {int(count):,} would hold out every one of the "
                                     f"5,000 training images of synthetic; choose fewer (0 turns "
                                     f"validation off)")
    assert not (tmp_path / "r").exists()


def test_a_negative_split_is_refused(tmp_path, tiny):
    result = cli("train", "synthetic", "--spec", tiny, "--val-split", "-1", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "--val-split" in result.output


def test_the_quick_verdict_is_judged_on_validation_images(tmp_path, tiny):
    result = cli("train", "--quick", "synthetic", "--spec", tiny, "--out", tmp_path / "r")
    assert result.exit_code in (0, 1), result.output
    verdict = next(l for l in result.stdout.splitlines() if l.startswith(("✓", "✗")))
    assert "validation accuracy" in verdict and "on 500 images" in verdict
    assert "test images of synthetic data (evaluated once, at the end; validation " in result.stdout
    off = cli("train", "--quick", "synthetic", "--spec", tiny, "--val-split", "0",
              "--out", tmp_path / "off")
    verdict = next(l for l in off.stdout.splitlines() if l.startswith(("✓", "✗")))
    assert "test accuracy" in verdict and "on 1,000 images" in verdict
