"""The training engine on small hand-written models and a small synthetic set (CPU, seconds)."""
from __future__ import annotations

import csv
import json
import os
import signal

import pytest
import torch
from torch import nn

from archcalc.training.datasets import Dataset, make_synthetic
from archcalc.errors import ArchcalcError
from archcalc.pytorch.devices import DEFAULT_THREADS, THREADS_ENV, cpu_threads
from archcalc.training.engine import TrainConfig, TrainingInterrupted, load_config, train

DATA = make_synthetic(train=512, test=128)
TIMING = {"seconds", "images_per_second"}


class SmallNet(nn.Module):
    """Conv, BN, dropout (so the global RNG matters), pooling, linear; optionally an aux head
    or a trailing 1×1 spatial shape, or a final softmax."""

    def __init__(self, aux: bool = False, spatial_output: bool = False, softmax: bool = False):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Dropout(0.2), nn.MaxPool2d(4))
        self.spatial_output, self.softmax = spatial_output, softmax
        self.head = nn.Conv2d(8, 10, 8) if spatial_output else nn.Sequential(nn.Flatten(), nn.Linear(8 * 64, 10))
        self.aux = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)) if aux else None

    def forward(self, x):
        features = self.features(x)
        out = self.head(features)
        if self.softmax:
            out = out.softmax(1)
        if self.aux is not None and self.training:
            return out, {"aux": self.aux(features)}
        return out


def small_net(seed: int = 0, **kwargs) -> SmallNet:
    torch.manual_seed(seed)
    return SmallNet(**kwargs)


def config(**changes) -> TrainConfig:
    base = dict(epochs=2, batch_size=32, augment=True, seed=0, device="cpu")
    return TrainConfig(**{**base, **changes})


def numbers(history):
    return [{k: v for k, v in r.to_dict().items() if k not in TIMING} for r in history]


def assert_same_weights(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_loss_falls_and_every_output_file_is_written(tmp_path):
    steps, model = [], small_net()
    result = train(model, DATA, config(epochs=3, lr=1e-2), tmp_path, on_step=steps.append)
    history = result.history
    assert history[-1].train_loss < history[0].train_loss
    assert result.test_accuracy > 0.5 and result.device == "cpu"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.pt", "config.json", "metrics.csv", "metrics.json", "model.pt"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_accuracy"] == result.test_accuracy and len(metrics["epochs"]) == 3
    assert metrics["dataset"] == "synthetic" and metrics["synthetic"] is True and metrics["test_images"] == 128
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert set(rows[0]) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                            "seconds", "images_per_second", "lr", "steps", "images"}
    # a tenth of the 512 training images (51) is held out for validation by default
    assert metrics["train_images"] == 461 and metrics["val_images"] == 51
    assert [(int(r["steps"]), int(r["images"])) for r in rows] == [(461 // 32, 461 // 32 * 32)] * 3
    assert metrics["threads"] == cpu_threads()      # 1, unless $ARCHCALC_THREADS says otherwise
    assert load_config(tmp_path) == config(epochs=3, lr=1e-2, val_split=51)   # the count, resolved
    restored = small_net(seed=1)
    restored.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    assert_same_weights(restored, model)
    assert steps[-1].step == steps[-1].steps == 461 // 32 and steps[-1].epoch == steps[-1].epochs == 3


def test_a_seeded_cpu_run_repeats_exactly(tmp_path):
    a, b = small_net(), small_net()
    ra = train(a, DATA, config(), tmp_path / "a")
    rb = train(b, DATA, config(), tmp_path / "b")
    assert numbers(ra.history) == numbers(rb.history)
    assert_same_weights(a, b)


def interrupt_after_epoch_1(record):
    if record.epoch == 1:
        raise KeyboardInterrupt


def press_ctrl_c_at(epoch: int, step: int):
    def on_step(info):
        if (info.epoch, info.step) == (epoch, step):
            os.kill(os.getpid(), signal.SIGINT)
    return on_step


@pytest.mark.parametrize("interrupt", [
    {"on_epoch": interrupt_after_epoch_1},        # 1 epoch + resume 1 epoch
    {"on_step": press_ctrl_c_at(1, 5)},           # a real Ctrl-C in the middle of epoch 1
    {"on_step": press_ctrl_c_at(2, 14)},          # after the last step, before evaluation
])
def test_resume_matches_an_uninterrupted_run(tmp_path, interrupt):
    whole = small_net()
    expected = train(whole, DATA, config(), tmp_path / "whole")

    with pytest.raises(TrainingInterrupted) as stopped:
        train(small_net(), DATA, config(), tmp_path / "split", **interrupt)
    assert stopped.value.out_dir == tmp_path / "split"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    resumed = small_net(seed=99)  # the checkpoint, not the initial weights, must decide
    result = train(resumed, DATA, config(), tmp_path / "split", resume=True)

    assert numbers(result.history) == numbers(expected.history)
    assert_same_weights(resumed, whole)
    assert json.loads((tmp_path / "split" / "metrics.json").read_text())["test_accuracy"] == expected.test_accuracy


def test_sgd_without_momentum_resumes(tmp_path):
    """Plain SGD keeps no optimizer state at all; its checkpoint must still resume (it was
    refused as keeping 'state for 0 of 6 parameters')."""
    plain = config(optimizer="sgd", momentum=0.0, nesterov=False, schedule="none")
    whole = small_net()
    expected = train(whole, DATA, plain, tmp_path / "whole")
    with pytest.raises(TrainingInterrupted):
        train(small_net(), DATA, plain, tmp_path / "split", on_epoch=interrupt_after_epoch_1)
    resumed = small_net(seed=99)
    result = train(resumed, DATA, plain, tmp_path / "split", resume=True)
    assert numbers(result.history) == numbers(expected.history)
    assert_same_weights(resumed, whole)


def test_interrupt_from_a_callback_saves_the_position(tmp_path):
    def stop_at_step_3(info):
        if info.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train(small_net(), DATA, config(), tmp_path, on_step=stop_at_step_3)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert (state["epoch"], state["step"], state["running"]["seen"]) == (0, 3, 96)
    assert not (tmp_path / "model.pt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_resume_needs_a_checkpoint_and_the_same_configuration(tmp_path):
    with pytest.raises(ArchcalcError, match="no checkpoint to resume from"):
        train(small_net(), DATA, config(), tmp_path, resume=True)
    with pytest.raises(TrainingInterrupted):
        train(small_net(), DATA, config(), tmp_path, on_epoch=interrupt_after_epoch_1)
    with pytest.raises(ArchcalcError, match=r"different configuration \(lr: 0.003 → 0.01\)"):
        train(small_net(), DATA, config(lr=0.01), tmp_path, resume=True)


def test_auxiliary_heads_add_their_weighted_loss(tmp_path):
    one_step = config(epochs=1, max_steps_per_epoch=1, augment=False)
    plain = train(small_net(aux=True), DATA, one_step, tmp_path / "plain", head_weights={"aux": 0.0})
    weighted = train(small_net(aux=True), DATA, one_step, tmp_path / "weighted", head_weights={"aux": 0.3})
    aux_loss = (weighted.history[0].train_loss - plain.history[0].train_loss) / 0.3
    assert 1.5 < aux_loss < 4  # about ln(10) for an untrained head
    assert weighted.history[0].train_accuracy == plain.history[0].train_accuracy  # from the main output
    with pytest.raises(ArchcalcError, match="auxiliary head 'aux' but no loss weight"):
        train(small_net(aux=True), DATA, one_step, tmp_path / "missing")


def test_outputs_with_trailing_unit_dimensions_are_flattened(tmp_path):
    result = train(small_net(spatial_output=True), DATA, config(epochs=1), tmp_path)
    assert result.test_accuracy > 0.1


def test_a_model_ending_in_softmax_is_refused(tmp_path):
    with pytest.raises(ArchcalcError, match="looks like softmax probabilities.*logits"):
        train(small_net(softmax=True), DATA, config(), tmp_path)


def test_an_output_of_the_wrong_shape_is_refused(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 7))
    with pytest.raises(ArchcalcError, match=r"output has shape \(32, 7\); training needs \(batch, 10\)"):
        train(model, DATA, config(), tmp_path)


@pytest.mark.parametrize("optimizer,schedule", [("sgd", "cosine"), ("sgd", "none"), ("adam", "cosine")])
def test_every_optimizer_and_schedule_runs(tmp_path, optimizer, schedule):
    cfg = config(epochs=2, optimizer=optimizer, schedule=schedule, lr=0.05 if optimizer == "sgd" else 1e-3,
                 weight_decay=5e-4, label_smoothing=0.1)
    result = train(small_net(), DATA, cfg, tmp_path)
    assert result.history[-1].train_loss < result.history[0].train_loss
    if schedule == "none":
        assert result.history[0].lr == result.history[1].lr == 0.05


def test_quick_caps_limit_steps_and_test_images(tmp_path):
    steps = []
    train(small_net(), DATA, config(epochs=1, max_steps_per_epoch=3, max_test_images=50), tmp_path,
          on_step=steps.append)
    assert [s.step for s in steps] == [1, 2, 3] and steps[0].steps == 3
    assert json.loads((tmp_path / "metrics.json").read_text())["test_images"] == 50


@pytest.mark.parametrize("changes,message", [
    ({"epochs": 0}, "'epochs' must be at least 1, got 0"),
    ({"optimizer": "rmsprop"}, "'optimizer' must be one of"),
    ({"lr": -1.0}, "'lr' must be a positive finite number"),
    ({"label_smoothing": 1.0}, r"'label_smoothing' must be in \[0, 1\)"),
    ({"device": "tpu"}, "'device' must be one of"),
    ({"max_steps_per_epoch": 0}, "'max_steps_per_epoch' must be at least 1"),
    ({"optimizer": "sgd", "momentum": 0.0}, "'nesterov' needs a positive momentum"),
])
def test_bad_options_are_refused(changes, message):
    with pytest.raises(ArchcalcError, match=message):
        TrainConfig(**changes)


def test_config_round_trips_through_a_dict():
    cfg = TrainConfig(epochs=3, optimizer="sgd", max_steps_per_epoch=5)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ArchcalcError, match="unknown training option"):
        TrainConfig.from_dict({"epochz": 3})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_cuda_without_it_is_an_error(tmp_path):
    with pytest.raises(ArchcalcError, match="CUDA is not available here"):
        train(small_net(), DATA, config(device="cuda"), tmp_path)


def test_grayscale_28x28_images_train_with_augmentation(tmp_path):
    """Fashion-MNIST's shape (1×28×28) goes through the same normalization and crop."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (80, 1, 28, 28), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10, (80,), generator=gen)
    data = Dataset("fashion-mnist", [str(i) for i in range(10)], x[:64], y[:64], x[64:], y[64:])
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    result = train(model, data, config(epochs=1, batch_size=16), tmp_path)
    assert len(result.history) == 1 and 0 <= result.test_accuracy <= 1


def test_cpu_threads_default_to_one_and_can_be_asked_for(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert cpu_threads() == DEFAULT_THREADS == 1
    monkeypatch.setenv(THREADS_ENV, "3")
    assert cpu_threads() == 3
    assert cpu_threads(2) == 2                      # --threads beats the environment
    monkeypatch.setenv(THREADS_ENV, "two")
    with pytest.raises(ArchcalcError, match="^ARCHCALC_THREADS: must be a positive whole number"):
        cpu_threads()
    with pytest.raises(ArchcalcError, match="^--threads: must be a positive whole number"):
        cpu_threads(0)


@pytest.mark.parametrize("threads", [1, 2])
def test_training_runs_on_the_threads_asked_for_then_restores_them(tmp_path, monkeypatch, threads):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    before = torch.get_num_threads()
    during = []
    train(small_net(), DATA, config(epochs=1, max_steps_per_epoch=2, threads=threads), tmp_path,
          on_step=lambda info: during.append(torch.get_num_threads()))
    assert during == [threads, threads]
    assert torch.get_num_threads() == before


def test_metrics_json_stays_json_when_the_loss_is_not_finite(tmp_path):
    """A diverged run's NaN loss is written as null: json.dumps' bare NaN is not JSON."""
    import json as json_module
    from archcalc.training.engine import _write_json
    _write_json(tmp_path / "m.json", {"epochs": [{"train_loss": float("nan"), "lr": 1e-3}],
                                     "test_loss": float("inf")})
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json_module.loads(text) == {"epochs": [{"train_loss": None, "lr": 1e-3}],
                                       "test_loss": None}
