"""The --quick learning rate chosen on held-out training images, never on the test set.

    python benchmarks/quick_lr.py [--lrs 1e-3 3e-3] [--validation 5000] [--seed 0]

CIFAR-10's 50,000 training images are split once (seeded, stratified by class): the last
``--validation`` of a shuffled order per class are held out, the rest train. Each learning rate
trains the notes' CNN for one epoch, as `archcalc train --quick cifar10` does (TrainConfig's
defaults, QUICK_DEFAULTS), and is scored on the held-out images, which stand in for the test
set; the test set is not read. Prints the validation accuracy of each rate.
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile

import torch

from archcalc import build_model
from archcalc.training.datasets import Dataset, load_dataset
from archcalc.training.engine import train
from archcalc.training.options import QUICK_DEFAULTS, TrainConfig


def split(data: Dataset, held_out: int, seed: int) -> Dataset:
    """Training images only: ``held_out`` of them, as many per class, become the 'test' set."""
    generator = torch.Generator().manual_seed(seed)
    per_class = held_out // data.num_classes
    train_idx, val_idx = [], []
    for c in range(data.num_classes):
        idx = (data.train_y == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        val_idx.append(idx[:per_class])
        train_idx.append(idx[per_class:])
    t, v = torch.cat(train_idx).sort().values, torch.cat(val_idx).sort().values
    return dataclasses.replace(data, name=f"{data.name} (train minus {len(v):,} held out)",
                               train_x=data.train_x[t], train_y=data.train_y[t],
                               test_x=data.train_x[v], test_y=data.train_y[v])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3])
    parser.add_argument("--validation", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = split(load_dataset("cifar10"), args.validation, args.seed)
    print(f"{data.name}: {len(data.train_y):,} training, {len(data.test_y):,} validation images")
    for lr in args.lrs:
        config = TrainConfig(**{**QUICK_DEFAULTS, "lr": lr, "seed": args.seed})
        torch.manual_seed(config.seed)
        model = build_model("cifar-cnn", logits=True)
        with tempfile.TemporaryDirectory() as out_dir:
            result = train(model, data, config, out_dir)
        print(f"  lr {lr:g}: validation accuracy {result.test_accuracy:.2%} "
              f"(loss {result.test_loss:.4f}) after one epoch")


if __name__ == "__main__":
    main()
