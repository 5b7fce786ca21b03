"""The --quick learning rate chosen on validation images, never on the test set.

    python benchmarks/quick_lr.py [--lrs 1e-3 3e-3] [--val-split 5000] [--seed 0]

Each learning rate trains the notes' CNN for one epoch as `archcalc train --quick cifar10`
does (TrainConfig's defaults, QUICK_DEFAULTS) through the same engine and the same seeded
validation split (``--val-split``: CIFAR-10's default is 5,000 of the 50,000 training
images, datasets.hold_out), and is scored on those validation images. The test set is taken
out of the data before training, so no choice here can have looked at it. Prints the
validation accuracy of each rate; one run each (a CPU run repeats exactly with its seed).
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import torch

from archcalc import build_model
from archcalc.training.datasets import load_dataset
from archcalc.training.engine import train
from archcalc.training.options import QUICK_DEFAULTS, TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3])
    parser.add_argument("--val-split", type=int, default=None,
                        help="validation images (default: the data set's, a tenth)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spec", default="cifar-cnn")
    args = parser.parse_args()
    data = load_dataset("cifar10")
    data = dataclasses.replace(data, test_x=data.test_x[:0], test_y=data.test_y[:0])  # unseen
    for lr in args.lrs:
        config = TrainConfig(**{**QUICK_DEFAULTS, "lr": lr, "seed": args.seed,
                                "val_split": args.val_split})
        torch.manual_seed(config.seed)
        model = build_model(args.spec, logits=True)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as out_dir:
            result = train(model, data, config, out_dir)
        print(f"lr {lr:g}: validation accuracy {result.val_accuracy:.2%} (loss "
              f"{result.val_loss:.4f}) on {result.val_images:,} images after one epoch on "
              f"{len(data.train_y) - result.val_images:,} · {time.perf_counter() - started:.0f} s",
              flush=True)


if __name__ == "__main__":
    main()
