"""The engine's CUDA-only paths, each as far as a CPU can take it: bf16 autocast (its dtype
handling, switched on for the CPU), channels_last, the pinned transfer's CPU side, and
torch.compile (inductor on the CPU). benchmarks/gpu_check.py runs the CUDA side itself."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from archcalc.training import engine
from archcalc.training.datasets import make_synthetic
from archcalc.training.engine import TrainConfig, train

DATA = make_synthetic(train=320, test=64)


def net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.MaxPool2d(4), nn.Flatten(), nn.Linear(8 * 64, 10))


def config(**changes) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 32, "augment": False, "seed": 0,
                          "device": "cpu", "lr": 1e-2, **changes})


def test_bf16_autocast_trains_with_float32_losses(tmp_path, monkeypatch):
    """The CUDA path's autocast, switched on for the CPU: the forward pass really runs in
    bf16, and the loss, the accuracy and the files come out as float32 figures."""
    monkeypatch.setitem(engine.AUTOCAST, "cpu", torch.bfloat16)
    model = net()
    dtypes = set()
    model[-1].register_forward_hook(lambda m, args, out: dtypes.add(out.dtype))
    result = train(model, DATA, config(), tmp_path)
    assert dtypes == {torch.bfloat16}
    history = result.history
    assert all(isinstance(r.train_loss, float) and r.train_loss == r.train_loss for r in history)
    assert history[-1].train_loss < history[0].train_loss
    assert 0.1 < result.test_accuracy <= 1
    assert all(p.dtype == torch.float32 for p in model.parameters())     # weights stay fp32


def test_without_autocast_the_cpu_runs_float32(tmp_path):
    model = net()
    dtypes = set()
    model[-1].register_forward_hook(lambda m, args, out: dtypes.add(out.dtype))
    train(model, DATA, config(epochs=1), tmp_path)
    assert dtypes == {torch.float32} and "cpu" not in engine.AUTOCAST


def test_the_model_and_its_batches_are_channels_last(tmp_path):
    model = net()
    layouts = []
    model[0].register_forward_pre_hook(
        lambda m, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    train(model, DATA, config(epochs=1), tmp_path)
    assert layouts and all(layouts)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_data_stays_in_place_on_the_cpu():
    """Pinned memory and a non-blocking copy are for CUDA; on the CPU the tensor is used as is."""
    t = torch.arange(6)
    assert engine._to_device(t, torch.device("cpu")) is t


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_data_reaches_the_gpu_whole():
    t = torch.randint(0, 255, (64, 3, 32, 32), dtype=torch.uint8)
    moved = engine._to_device(t, torch.device("cuda"))
    torch.cuda.synchronize()
    assert moved.is_cuda and torch.equal(moved.cpu(), t)


@pytest.mark.slow       # the inductor compiles C++ for the CPU: tens of seconds
def test_compile_trains_and_saves_the_plain_models_weights(tmp_path):
    model = net()
    result = train(model, DATA, config(epochs=1, compile=True), tmp_path)
    assert result.history[0].train_loss == result.history[0].train_loss
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    fresh = net(seed=1)
    fresh.load_state_dict(saved)            # no "_orig_mod." prefixes from the compiled wrapper
    assert saved.keys() == fresh.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key
