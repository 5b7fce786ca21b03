"""Training speed of archcalc's engine beside a minimal hand-written PyTorch loop, in one run.

    python benchmarks/train_throughput.py [--steps 30] [--batch-size 64] [--rounds 8] [--threads N]

Both train the CIFAR-10 CNN from ../shared/reference/cifar-models.md §1, built from
specs/cifar-cnn.yaml as `archcalc train` builds it, from the same initial weights, on the same images
(real CIFAR-10 when the loader finds it, else the synthetic set), with the same batch size,
Adam and channels_last memory format (as the engine uses), for the same number of steps, on the
same number of CPU threads (archcalc's default, or --threads).

Shared 2-core machines are noisy (the same loop measured anywhere from 90 to 950 images/s within
minutes), so many short rounds alternate between the two and the best round of each counts:
noise only ever slows a round down. The engine's figure is its own ``images_per_second``
(training steps only, as the hand loop's), so the ratio shows the engine's per-step overhead:
shuffling, normalization, metrics, schedule. Target: ratio >= 0.95.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from archcalc import build_model
from archcalc.training.datasets import Dataset, load_dataset, make_synthetic
from archcalc.errors import DataError
from archcalc.pytorch.devices import cpu_threads
from archcalc.training.engine import TrainConfig, train


def hand_loop(model: nn.Module, data: Dataset, steps: int, batch_size: int) -> float:
    """The plainest loop that does the same work; returns training images per second."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(data.train_y))
    model.to(memory_format=torch.channels_last).train()
    started = time.perf_counter()
    for step in range(steps):
        index = order[step * batch_size:(step + 1) * batch_size]
        x = data.train_x[index].float().div_(255).contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(x), data.train_y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - started)


def engine(model: nn.Module, data: Dataset, steps: int, batch_size: int) -> float:
    config = TrainConfig(epochs=1, batch_size=batch_size, optimizer="adam", lr=1e-3, schedule="none",
                         augment=False, device="cpu", max_steps_per_epoch=steps, max_test_images=batch_size,
                         threads=torch.get_num_threads())
    with tempfile.TemporaryDirectory() as out_dir:
        return train(model, data, config, out_dir).history[0].images_per_second


def fresh_model() -> nn.Module:
    """The notes' CNN as `archcalc train` builds it from specs/cifar-cnn.yaml (logits mode)."""
    torch.manual_seed(0)
    return build_model("cifar-cnn", logits=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for both (default: archcalc's, see pytorch/devices.py)")
    args = parser.parse_args()
    torch.set_num_threads(cpu_threads(args.threads))    # the hand loop's; the engine is told
    try:
        data = load_dataset("cifar10")
    except DataError:
        data = make_synthetic(train=args.steps * args.batch_size, test=args.batch_size)
    print(f"data: {data.name}, batch {args.batch_size}, {args.steps} steps per round, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    best = {"hand loop": 0.0, "engine": 0.0}
    for round_ in range(1, args.rounds + 1):
        for name, run in (("hand loop", hand_loop), ("engine", engine)):
            speed = run(fresh_model(), data, args.steps, args.batch_size)
            best[name] = max(best[name], speed)
            print(f"round {round_}: {name:9s} {speed:8.0f} images/s")
    print(f"best: hand loop {best['hand loop']:.0f}, engine {best['engine']:.0f} images/s; "
          f"ratio {best['engine'] / best['hand loop']:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
