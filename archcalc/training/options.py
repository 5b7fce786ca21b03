"""How to train, as data: :class:`TrainConfig` and what ``--quick`` changes about it.

This module imports neither torch nor anything that does, so the CLI can read the defaults for
``archcalc train --help`` at no cost. It is the one source of those defaults: the engine trains
with them, :mod:`archcalc.training.runs` starts from them, and the CLI shows them.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Optional

from archcalc.errors import ArchcalcError

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("onecycle", "cosine", "none")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    """How to train. Defaults: Adam as in the notes, under a one-cycle schedule peaking at 3e-3,
    chosen on the validation split, never the test set: one --quick epoch of the notes' CNN at
    batch 64 on CIFAR-10's 45,000 training images, scored on its 5,000 validation images (the
    default split, seed 0), one run each: 1e-3 65.00%, 2e-3 67.86%, 3e-3 68.90%, 5e-3 68.28%
    (``python benchmarks/quick_lr.py --lrs 1e-3 2e-3 3e-3 5e-3``)."""

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 3e-3
    momentum: float = 0.9          # SGD only
    nesterov: bool = True          # SGD only
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    label_smoothing: float = 0.0
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    threads: Optional[int] = None  # CPU threads; None: $ARCHCALC_THREADS, else 1 (pytorch.devices)
    max_steps_per_epoch: Optional[int] = None  # caps each epoch, for quick runs
    max_test_images: Optional[int] = None      # evaluates on N validation and N test images spread over each
    compile: bool = False                      # torch.compile the model
    # Data parallelism (torchrun): batch_size is per process, so a step trains on
    # batch_size × processes images (global_batch); sync_bn normalizes over all of them.
    processes: int = 1
    sync_bn: bool = False
    # Training images held out for validation, a count (0: none); None: a tenth of them
    # (VAL_FRACTION). A new run records the count it used in config.json, so --resume holds out
    # the same images (the split follows from the count and the seed: datasets.hold_out).
    val_split: Optional[int] = None

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, "epochs", "must be at least 1", self.epochs)
        _require(self.batch_size >= 1, "batch_size", "must be at least 1", self.batch_size)
        _require(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {OPTIMIZERS}", self.optimizer)
        _require(0 < self.lr < math.inf, "lr", "must be a positive finite number", self.lr)
        _require(0 <= self.momentum < 1, "momentum", "must be in [0, 1)", self.momentum)
        _require(0 <= self.weight_decay < math.inf, "weight_decay",
                 "must be a finite number, not negative", self.weight_decay)
        _require(self.schedule in SCHEDULES, "schedule", f"must be one of {SCHEDULES}", self.schedule)
        _require(0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)", self.label_smoothing)
        _require(self.device in DEVICES, "device", f"must be one of {DEVICES}", self.device)
        _require(self.val_split is None or (type(self.val_split) is int and self.val_split >= 0),
                 "val_split", "must be a whole number of images, 0 or more", self.val_split)
        for name in ("threads", "max_steps_per_epoch", "max_test_images", "processes"):
            value = getattr(self, name)
            _require(value is None or value >= 1, name, "must be at least 1", value)
        _require(not (self.optimizer == "sgd" and self.nesterov and self.momentum == 0), "nesterov",
                 "needs a positive momentum", self.nesterov)

    @property
    def global_batch(self) -> int:
        """Images per optimizer step, over all processes: what a resume keeps."""
        return self.batch_size * self.processes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ArchcalcError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**data)


def _require(ok: bool, name: str, rule: str, value: Any) -> None:
    if not ok:
        raise ArchcalcError(f"training option '{name}' {rule}, got {value!r}")


# What --quick changes where the user chose nothing: one pass, and from the plain images (one
# pass learns faster without augmentation). A quick run too heavy for one pass also gets
# CAPPED_BATCH images per step (runs.quick_plan).
QUICK_DEFAULTS: dict[str, Any] = {"epochs": 1, "augment": False}
CAPPED_BATCH = 16   # a capped run learns more from many small steps than from a few large ones


# Validation images held out of a data set's training images by default: a tenth, in
# proportion to the classes (datasets.hold_out). CIFAR-10: 5,000 of 50,000 (the usual choice);
# Fashion-MNIST: 6,000 of 60,000; the synthetic set: 500 of 5,000.
VAL_FRACTION = 10   # one image in this many


def val_count(val_split: Optional[int], dataset: str, n_train: int) -> int:
    """How many of ``n_train`` training images to hold out: ``val_split``, or the data set's
    default when None. Refused when it would leave no training images."""
    if val_split is None:
        val_split = n_train // VAL_FRACTION
    if val_split >= n_train:
        raise ArchcalcError(f"--val-split {val_split:,} would hold out every one of the "
                            f"{n_train:,} training images of {dataset}; choose fewer (0 turns "
                            f"validation off)")
    return val_split


def default(name: str) -> Any:
    """TrainConfig's default for the option ``name``."""
    return next(f.default for f in fields(TrainConfig) if f.name == name)
