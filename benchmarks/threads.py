"""Training speed on 1 and 2 CPU threads, on a quiet machine and with one core kept busy.

    python benchmarks/threads.py [--steps 15] [--rounds 3] [--batch-size 64]

The engine trains the notes' CIFAR-10 CNN (specs/cifar-cnn.yaml, as `archcalc train` builds
it) on the synthetic set for a few steps; its own ``images_per_second`` (training steps only)
is the figure. "loaded" starts one busy process (a Python loop) for the measurement, as
another job on a shared 2-core machine would be, and stops it after. Rounds alternate between
the four settings and the median of each counts: under load, the slow rounds are the point.
This is what chose archcalc's CPU default (archcalc.pytorch.devices.DEFAULT_THREADS).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from archcalc import build_model
from archcalc.training.datasets import make_synthetic
from archcalc.training.engine import TrainConfig, train


def images_per_second(data, threads: int, steps: int, batch_size: int) -> float:
    torch.manual_seed(0)
    model = build_model("cifar-cnn", logits=True)
    config = TrainConfig(epochs=1, batch_size=batch_size, schedule="none", augment=False,
                         device="cpu", threads=threads, max_steps_per_epoch=steps,
                         max_test_images=batch_size)
    with tempfile.TemporaryDirectory() as out_dir:
        return train(model, data, config, out_dir).history[0].images_per_second


@contextlib.contextmanager
def one_core_busy(busy: bool):
    """A process spinning on one core while the block runs (nothing when ``busy`` is false)."""
    if not busy:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)     # let it start spinning
        yield
    finally:
        spinner.terminate()
        spinner.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    data = make_synthetic(train=args.steps * args.batch_size, test=args.batch_size)
    print(f"cifar-cnn on synthetic data, batch {args.batch_size}, {args.steps} steps per round, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start, "
          f"torch {torch.__version__}")
    images_per_second(data, 1, 2, args.batch_size)      # warm-up: first-call allocations
    speeds = {(load, t): [] for load in ("quiet", "loaded") for t in (1, 2)}
    for round_ in range(1, args.rounds + 1):
        for load in ("quiet", "loaded"):
            with one_core_busy(load == "loaded"):
                for threads in (1, 2):
                    speed = images_per_second(data, threads, args.steps, args.batch_size)
                    speeds[load, threads].append(speed)
                    print(f"round {round_}: {load:6s} {threads} thread{'s' * (threads > 1)} "
                          f"{speed:7.0f} images/s", flush=True)
    median = {key: statistics.median(values) for key, values in speeds.items()}
    for load in ("quiet", "loaded"):
        one, two = median[load, 1], median[load, 2]
        print(f"{load}: 1 thread {one:.0f}, 2 threads {two:.0f} images/s (medians); "
              f"2 threads / 1 thread = {two / one:.2f}")
    print(f"1 thread loaded / quiet = {median['loaded', 1] / median['quiet', 1]:.2f}; "
          f"2 threads loaded / quiet = {median['loaded', 2] / median['quiet', 2]:.2f}")


if __name__ == "__main__":
    main()
