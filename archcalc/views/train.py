"""The words of `archcalc train`: the header, the quick plan's note, progress and epoch lines,
the result and the learning verdict. Plain strings from the data of
:mod:`archcalc.training.runs` and the engine's records; nothing here imports torch or prints."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

from archcalc.errors import printable
from archcalc.training.runs import Job, LearningVerdict, QuickPlan

# When stdout is not a terminal (a log file, a pipe), a plain progress line this often.
PROGRESS_EVERY = 30.0


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' * (n != 1)}"


def header(job: Job) -> str:
    data, c = job.dataset, job.config
    kind = "SYNTHETIC data (built in; not a real data set)" if data.synthetic else data.name
    rate = "constant rate" if c.schedule == "none" else f"{c.schedule} schedule"
    settings = [_plural(c.epochs, "epoch"), f"{c.optimizer} lr {c.lr:g}",
                _batch(c), rate, f"augment {'on' if c.augment else 'off'}"]
    return (f"{'continuing' if job.resume else 'training'} {printable(job.spec_name)} "
            f"({job.params:,} params, {job.macs:,} MACs per image) on {kind}: "
            f"{_split(job.n_train, job.config.val_split or 0, len(data.test_y))} · "
            f"{' · '.join(settings)} → {printable(str(job.out_dir))}")


def _batch(c) -> str:
    """The batch; under torchrun each process's share and the global batch a step trains on."""
    if c.processes == 1:
        return f"batch {c.batch_size}"
    sync = ", BatchNorm synchronized" if c.sync_bn else ""
    return (f"batch {c.global_batch} ({c.processes} processes × {c.batch_size}, "
            f"DistributedDataParallel{sync})")


def _split(train: int, val: int, test: int) -> str:
    if not val:
        return f"{train:,} training (no validation) and {test:,} test images"
    return f"{train:,} training, {val:,} validation and {test:,} test images"


def quick_note(plan: Optional[QuickPlan]) -> Optional[str]:
    """What --quick capped and why, when it capped anything."""
    if plan is None or not plan.capped:
        return None
    return (f"--quick on {plan.device}: {plan.macs / 1e6:,.0f}M multiply-adds per image is too "
            f"much for a whole pass, so training stops after {plan.max_steps} steps of "
            f"{plan.batch_size} ({plan.max_steps * plan.batch_size:,} images) and validation and "
            f"testing use at most {plan.max_test_images:,} images each")


def progress_line(info) -> str:
    """One engine StepInfo as a line for a log."""
    return (f"epoch {info.epoch}/{info.epochs} · step {info.step:,}/{info.steps:,} · "
            f"loss {info.loss:.3f} · acc {info.accuracy:.1%} · "
            f"{info.images_per_second:,.0f} images/s")


class ProgressLines:
    """Throttles progress for a log: a line for the first step, then one every ``every``
    seconds, so a long epoch is never minutes of silence and a short one is not a flood."""

    def __init__(self, every: float = PROGRESS_EVERY, clock: Callable[[], float] = time.monotonic):
        self.every, self.clock = every, clock
        self.last: Optional[float] = None

    def __call__(self, info) -> Optional[str]:
        now = self.clock()
        if self.last is not None and now - self.last < self.every:
            return None
        self.last = now
        return progress_line(info)


def epoch_line(r) -> str:
    """One finished epoch, scored on the validation images (the test set waits for the end)."""
    val = "no validation images" if r.val_accuracy is None else \
        f"val loss {r.val_loss:.4f} acc {r.val_accuracy:.2%}"
    return (f"epoch {r.epoch}: train loss {r.train_loss:.4f} acc {r.train_accuracy:.2%} · "
            f"{val} · {r.seconds:.0f} s · {r.images_per_second:,.0f} images/s")


def trained_for(history, capped: bool) -> str:
    """``1 epoch``, or for a run capped short of a whole pass ``50 steps (800 images)``."""
    epochs = len(history)
    if not capped or any(r.steps is None for r in history):
        return _plural(epochs, "epoch")
    steps, images = sum(r.steps for r in history), sum(r.images for r in history)
    if epochs == 1:
        return f"{_plural(steps, 'step')} ({images:,} images)"
    return f"{epochs} epochs of {_plural(history[0].steps, 'step')} ({images:,} images)"


def verdict_line(v: LearningVerdict) -> str:
    loss = v.loss
    if loss.margin is None:
        fall = "too few steps to tell a fall from noise"
    else:
        moved = "fell" if loss.fell else "rose" if loss.rose else "did not move"
        fall = f"{moved} by more than the noise margin of {loss.margin:.2f}"
    mark = "✓ it learns" if v.learned else "✗ not shown to learn"
    return (f"{mark}: training loss {loss.first:.2f} (first {loss.first_steps} steps) → "
            f"{loss.last:.2f} (last {loss.last_steps}), {fall}; {v.held_out} accuracy "
            f"{v.test_accuracy:.1%} against {v.chance:.1%} by chance "
            f"({'beats' if v.beat_chance else 'does not beat'} it by more than noise on "
            f"{v.n_test:,} images)")


def result_lines(job: Job, result, verdict: Optional[LearningVerdict]) -> list:
    seconds = sum(r.seconds for r in result.history)
    images = sum(r.images_per_second * r.seconds for r in result.history)
    data = "synthetic data" if job.dataset.synthetic else job.dataset.name
    val = "" if result.val_accuracy is None else \
        f"; validation {result.val_accuracy:.2%} on {result.val_images:,} images"
    lines = [f"test accuracy {result.test_accuracy:.2%} on the {result.test_images:,} test images "
             f"of {data} (evaluated once, at the end{val}) after "
             f"{trained_for(result.history, job.capped)} · training {seconds:,.0f} s at "
             f"{images / max(seconds, 1e-9):,.0f} images/s on {result.device} · "
             f"{printable(job.spec_name)}: {job.params:,} params, {job.macs:,} MACs per image"]
    if verdict is not None:
        lines.append(verdict_line(verdict))
    lines.append(f"run folder: {printable(str(job.out_dir))} (metrics.csv, metrics.json, config.json, "
                 "checkpoint.pt, model.pt)")
    return lines


def interrupted_line(dataset_name: str, out_dir: Path) -> str:
    return (f"interrupted: checkpoint saved in {out_dir}; continue with: "
            f"archcalc train {dataset_name} --resume {out_dir}")
