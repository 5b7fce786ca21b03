"""The training engine behind ``archcalc train``: model-agnostic, resumable, and silent.

:func:`train` takes an already built ``torch.nn.Module`` and a :class:`~archcalc.datasets.Dataset`
and writes into one output folder:

- ``config.json``: the resolved :class:`TrainConfig`;
- ``metrics.csv`` and ``metrics.json``: one record per finished epoch (rewritten after each),
  scored on the validation images; ``metrics.json`` gets the test set's score at the end;
- ``checkpoint.pt``: everything needed to continue exactly (weights, optimizer, scheduler, RNG
  states, position in the epoch, metrics so far), saved after every epoch and on Ctrl-C;
- ``model.pt``: the final ``state_dict``.

Validation and test: ``config.val_split`` training images (a tenth by default) are held out,
seeded (:func:`~archcalc.training.datasets.hold_out`), and score every epoch; the test set is
evaluated once, after the last epoch, so that nothing is chosen on it.

Every file is written whole (:func:`archcalc.files.write_atomic`), so an interrupted run never
leaves half a file. The engine never prints: the CLI draws progress from
the ``on_step`` and ``on_epoch`` callbacks.

The model must return **logits**. A spec's final softmax belongs to inference, not to training
(cross-entropy applies its own log-softmax), so build the model in logits mode; a model whose
output already looks like probabilities is refused. In training mode a model may return
``(main, {head_name: output})``: each auxiliary head adds its cross-entropy times its weight from
``head_weights``. Evaluation uses the main output only. Outputs N×K×1×1 are flattened to N×K.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Union

from archcalc.extras import TORCH_ONLY, require

require("torch", "training", needs=TORCH_ONLY)

import torch
import torch.nn.functional as F

from archcalc.errors import ArchcalcError
from archcalc.files import write_atomic
from archcalc.pytorch.devices import resolve_device, torch_threads
from archcalc.training.checkpoints import check_state, equal
from archcalc.training.datasets import BatchTransform, Dataset, channel_stats, hold_out
from archcalc.training.options import DEVICES, OPTIMIZERS, SCHEDULES, TrainConfig, val_count  # noqa: F401 (re-exported)

# Running loss and accuracy reach on_step every this many steps: reading them back from the
# device (.item()) stalls a CUDA pipeline, and a progress bar needs no more.
REFRESH_EVERY = 10
CHECKPOINT_FORMAT = 2   # 2: epochs scored on validation images (val_loss, val_accuracy)
EVAL_BATCH = 256    # evaluation's batch, at least: no gradients, so larger batches are cheap
# Mixed precision by device type: bf16 autocast on CUDA (no loss scaling needed, unlike fp16);
# none on the CPU, where bf16 is slower on most processors. Losses are taken in float32.
AUTOCAST = {"cuda": torch.bfloat16}


@dataclass
class StepInfo:
    """Progress within an epoch, for a progress bar. Loss and accuracy are the epoch's running
    means, refreshed on the first step, every ``REFRESH_EVERY`` steps and on the last one
    (``refreshed`` says whether they were at this step)."""

    epoch: int  # 1-based
    epochs: int
    step: int  # 1-based, within the epoch
    steps: int
    loss: float
    accuracy: float
    images_per_second: float
    refreshed: bool = True


@dataclass
class EpochRecord:
    """One finished epoch. ``train_loss`` is the optimized objective (label smoothing and
    auxiliary heads included); ``val_loss`` is plain cross-entropy of the main output on the
    validation images (None, as ``val_accuracy``, when none are held out)."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: Optional[float]
    val_accuracy: Optional[float]
    seconds: float
    images_per_second: float
    lr: float
    steps: Optional[int] = None     # None in checkpoints written before these were recorded
    images: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """What a finished run returns; the same numbers are in ``out_dir/metrics.json``. The test
    figures come from the one evaluation of the test set, after the last epoch; the validation
    figures are the last epoch's (None without validation images)."""

    out_dir: Path
    history: list[EpochRecord]
    test_accuracy: float
    test_loss: float
    device: str
    val_accuracy: Optional[float] = None
    val_loss: Optional[float] = None
    val_images: int = 0
    test_images: int = 0


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during training, after the checkpoint was saved. Still a KeyboardInterrupt, so code
    that does not know it stops as before; the CLI catches it to exit 130 with a resume hint."""

    def __init__(self, out_dir: Path, signum: Optional[int] = None):
        super().__init__(f"training interrupted; checkpoint saved in {out_dir}")
        self.out_dir = Path(out_dir)
        self.signum = signum    # SIGINT or SIGTERM; None when raised by a callback

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process a signal stopped."""
        return 128 + (self.signum or signal.SIGINT)


def load_config(out_dir: Union[str, Path]) -> TrainConfig:
    """The configuration a previous run in ``out_dir`` was started with (for resuming it)."""
    path = Path(out_dir) / "config.json"
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise ArchcalcError(f"{path}: cannot read the run's configuration: {exc}") from exc


def train(model: torch.nn.Module, dataset: Dataset, config: TrainConfig, out_dir: Union[str, Path], *,
          head_weights: Optional[dict[str, float]] = None,
          on_step: Optional[Callable[[StepInfo], None]] = None,
          on_epoch: Optional[Callable[[EpochRecord], None]] = None,
          resume: bool = False) -> TrainResult:
    """Train ``model`` (which must return logits) on ``dataset``; see the module docstring.

    With a fixed seed a CPU run repeats exactly, and ``resume=True`` continues from
    ``out_dir/checkpoint.pt`` to the same weights and metrics as an uninterrupted run. Seed the
    global RNG before building the model if its initial weights should repeat too.
    Ctrl-C saves a checkpoint and raises :class:`TrainingInterrupted`.
    """
    out_dir = Path(out_dir)
    config = replace(config, val_split=val_count(config.val_split, dataset.name, len(dataset.train_y)))
    device = resolve_device(config.device)[0]
    with torch_threads(device, config.threads):
        return _train(model, dataset, config, out_dir, device, head_weights or {}, on_step,
                      on_epoch, resume)


def _train(model, dataset, config, out_dir: Path, device, head_weights, on_step, on_epoch,
           resume: bool) -> TrainResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(model, dataset, config, device, head_weights)
    if resume:
        path = out_dir / "checkpoint.pt"
        state = _read_checkpoint(path, config)
        problem = check_state(state, run)
        if problem:
            raise ArchcalcError(f"{path}: cannot resume from this checkpoint: {problem}")
        run.load_state_dict(state)
    else:
        _write_json(out_dir / "config.json", config.to_dict())
    with _interrupts_between_steps() as stop_requested:
        try:
            while run.epoch < config.epochs:
                if stop_requested():
                    raise KeyboardInterrupt
                record = run.run_epoch(on_step, stop_requested)
                _write_torch(out_dir / "checkpoint.pt", run.state_dict())
                _write_metrics(out_dir, run)
                if on_epoch:
                    on_epoch(record)
            if stop_requested():
                raise KeyboardInterrupt
            run.test = run.evaluate(run.test_x, run.test_y, stop_requested)
            _write_metrics(out_dir, run)
        except KeyboardInterrupt:
            # Signals stay deferred here (still inside the block): the write finishes whole.
            _write_torch(out_dir / "checkpoint.pt", run.state_dict())
            raise TrainingInterrupted(out_dir, stop_requested.signum) from None
        _write_torch(out_dir / "model.pt", model.state_dict())
    last = run.history[-1]
    return TrainResult(out_dir, run.history, run.test[1], run.test[0], str(run.device),
                       last.val_accuracy, last.val_loss, len(run.val_y), len(run.test_y))


class _Run:
    """The state of one training run and the loops that advance it, one step at a time.

    The position (epoch, step, this epoch's shuffled order, running sums) is part of the state,
    so a checkpoint taken between any two steps resumes exactly.
    """

    def __init__(self, model: torch.nn.Module, dataset: Dataset, config: TrainConfig,
                 device: torch.device, head_weights: dict[str, float]):
        self.model, self.dataset, self.config, self.device = model, dataset, config, device
        self.head_weights = head_weights
        self.cuda = device.type == "cuda"
        # channels_last (NHWC) suits the convolution kernels of GPUs and of oneDNN on CPU: the
        # notes' CNN trains about 20% faster this way on a 2-core CPU (best of 12 rounds each).
        self.memory_format = torch.channels_last
        model.to(device, memory_format=self.memory_format)
        self.forward = torch.compile(model) if config.compile else model
        train_idx, val_idx = hold_out(dataset.train_y, config.val_split, config.seed)
        val_idx = _spread(val_idx, config.max_test_images)
        test_idx = _spread(torch.arange(len(dataset.test_y)), config.max_test_images)
        train_x = dataset.train_x[train_idx]
        mean, std = (s.to(device) for s in channel_stats(train_x))   # of the training images only
        self.train_x, self.train_y, self.val_x, self.val_y, self.test_x, self.test_y = (
            _to_device(t, device) for t in (
                train_x, dataset.train_y[train_idx], dataset.train_x[val_idx],
                dataset.train_y[val_idx], dataset.test_x[test_idx], dataset.test_y[test_idx]))
        self.test: Optional[tuple[float, float]] = None    # (loss, accuracy), after the last epoch
        self.train_transform = BatchTransform(mean, std, augment=config.augment)
        self.test_transform = BatchTransform(mean, std, augment=False)
        self.steps = min(max(1, len(self.train_y) // config.batch_size),
                         config.max_steps_per_epoch or math.inf)
        self.optimizer = _make_optimizer(model, config)
        self.scheduler = _make_scheduler(self.optimizer, config, config.epochs * self.steps)
        torch.manual_seed(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.history: list[EpochRecord] = []
        self.epoch, self.step = 0, 0
        self.order: Optional[torch.Tensor] = None
        self._start_epoch()

    def _start_epoch(self) -> None:
        self.order = None
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self.correct = torch.zeros((), dtype=torch.int64, device=self.device)
        self.seen, self.seconds, self.lr = 0, 0.0, self.optimizer.param_groups[0]["lr"]

    def run_epoch(self, on_step, stop_requested: Callable[[], bool]) -> EpochRecord:
        """Finish the current epoch (from wherever it stands), evaluate, and move to the next."""
        if self.order is None:
            self.order = torch.randperm(len(self.train_y), generator=self.generator)
        order = self.order.to(self.device)
        self.model.train()
        self._shown: Optional[tuple[float, float]] = None
        started = time.perf_counter()
        try:
            for step in range(self.step, self.steps):
                self._train_step(order[step * self.config.batch_size:(step + 1) * self.config.batch_size])
                self.step = step + 1
                if on_step:
                    on_step(self._step_info(started))
                if stop_requested():
                    raise KeyboardInterrupt
        finally:
            self.seconds += time.perf_counter() - started
        val_loss, val_accuracy = self.evaluate(self.val_x, self.val_y, stop_requested) \
            if len(self.val_y) else (None, None)
        record = EpochRecord(self.epoch + 1, self.loss_sum.item() / self.seen, self.correct.item() / self.seen,
                             val_loss, val_accuracy, self.seconds, self.seen / max(self.seconds, 1e-9), self.lr,
                             self.steps, self.seen)
        self.history.append(record)
        self.epoch, self.step = self.epoch + 1, 0
        self._start_epoch()
        return record

    def _train_step(self, index: torch.Tensor) -> None:
        x = self.train_transform(self.train_x[index], self.generator)
        x = x.contiguous(memory_format=self.memory_format)
        y = self.train_y[index]
        with self._autocast():
            logits, heads = _split_output(self.forward(x))
            logits = _as_logits(logits, self.dataset.num_classes)
            if self.epoch == 0 and self.step == 0:
                _refuse_probabilities(logits)
            loss = self._loss(logits, heads, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.loss_sum += loss.detach() * len(y)
        self.correct += (logits.argmax(1) == y).sum()
        self.seen += len(y)

    def _loss(self, logits: torch.Tensor, heads: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        smoothing = self.config.label_smoothing
        loss = F.cross_entropy(logits.float(), y, label_smoothing=smoothing)
        for name, output in heads.items():
            if name not in self.head_weights:
                raise ArchcalcError(f"the model returned auxiliary head '{name}' but no loss weight "
                                    f"for it was given")
            head_logits = _as_logits(output, self.dataset.num_classes)
            loss = loss + self.head_weights[name] * F.cross_entropy(head_logits.float(), y,
                                                                    label_smoothing=smoothing)
        return loss

    def _step_info(self, started: float) -> StepInfo:
        refresh = self._shown is None or self.step % REFRESH_EVERY == 0 or self.step == self.steps
        if refresh:
            self._shown = (self.loss_sum.item() / self.seen, self.correct.item() / self.seen)
        elapsed = self.seconds + time.perf_counter() - started
        return StepInfo(self.epoch + 1, self.config.epochs, self.step, self.steps, *self._shown,
                        self.seen / max(elapsed, 1e-9), refresh)

    @torch.inference_mode()
    def evaluate(self, images: torch.Tensor, labels: torch.Tensor,
                 stop_requested: Callable[[], bool] = lambda: False) -> tuple[float, float]:
        """Mean cross-entropy and accuracy of the main output over held-out images."""
        self.model.eval()
        count = len(labels)
        if not count:   # a data set without test images (benchmarks/quick_lr.py keeps it unseen)
            return math.nan, math.nan
        batch = max(self.config.batch_size, EVAL_BATCH)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for start in range(0, count, batch):
            x = self.test_transform(images[start:min(start + batch, count)])
            y = labels[start:min(start + batch, count)]
            with self._autocast():
                logits = _as_logits(_split_output(self.forward(x.contiguous(memory_format=self.memory_format)))[0],
                                    self.dataset.num_classes)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
            if stop_requested():
                raise KeyboardInterrupt
        return loss_sum.item() / count, correct.item() / count

    def _autocast(self):
        dtype = AUTOCAST.get(self.device.type)
        return torch.autocast(self.device.type, dtype=dtype) if dtype else contextlib.nullcontext()

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "order": self.order,
            "running": {"loss_sum": self.loss_sum.cpu(), "correct": self.correct.cpu(), "seen": self.seen,
                        "seconds": self.seconds, "lr": self.lr},
            "rng": {"torch": torch.get_rng_state(), "generator": self.generator.get_state(),
                    "cuda": torch.cuda.get_rng_state_all() if self.cuda else None},
            "history": [r.to_dict() for r in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step, self.order = state["epoch"], state["step"], state["order"]
        running = state["running"]
        self.loss_sum, self.correct = running["loss_sum"].to(self.device), running["correct"].to(self.device)
        self.seen, self.seconds, self.lr = running["seen"], running["seconds"], running["lr"]
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["generator"])
        if self.cuda and state["rng"]["cuda"] is not None:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.history = [EpochRecord(**r) for r in state["history"]]


def _spread(index: torch.Tensor, limit: Optional[int]) -> torch.Tensor:
    """``index``, or ``limit`` of its entries evenly spaced over it: test files may be sorted by
    class (the rebuilt CIFAR-10 is), so its first N images would all be airplanes."""
    count = len(index)
    if not limit or limit >= count:
        return index
    return index[torch.arange(limit) * count // limit]


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The whole data set moves once; on CUDA through pinned memory, without blocking."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor


def _make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    """Stepped once per training step; ``lr`` is the peak of one-cycle and the start of cosine."""
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _split_output(output: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(main, {head: output})`` from a model with auxiliary heads, else ``(output, {})``."""
    if isinstance(output, tuple) and len(output) == 2 and isinstance(output[1], dict):
        return output[0], output[1]
    return output, {}


def _as_logits(output: torch.Tensor, num_classes: int) -> torch.Tensor:
    """N×K, from N×K or N×K×1×1 (a model ending in global pooling and a 1×1 convolution)."""
    if output.dim() > 2 and all(size == 1 for size in output.shape[2:]):
        output = output.flatten(1)
    if output.dim() != 2 or output.shape[1] != num_classes:
        raise ArchcalcError(f"the model's output has shape {tuple(output.shape)}; training needs "
                            f"(batch, {num_classes}), one score per class")
    return output


def _refuse_probabilities(logits: torch.Tensor) -> None:
    """Softmax outputs would train silently badly (cross-entropy of a second softmax)."""
    rows = logits.detach().float()
    if bool((rows >= 0).all()) and torch.allclose(rows.sum(1), torch.ones(len(rows), device=rows.device),
                                                  atol=1e-2):
        raise ArchcalcError("the model's output looks like softmax probabilities; training needs "
                            "logits, so build the model without its final softmax")


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))


@contextlib.contextmanager
def _interrupts_between_steps():
    """Ctrl-C (SIGINT) and SIGTERM only set a flag, which the loops check between steps, so a
    checkpoint never holds half an optimizer update. Every signal does only that, the second
    and later ones too, until the block ends: the checkpoint written on the way out is
    therefore written whole (a second Ctrl-C 50 ms after the first once landed inside it).

    Yields the "was a stop signal received?" check; the signal's number is in
    ``check.signum``. Off the main thread nothing is changed and the check is always false;
    a signal whose handler the host replaced (not Python's default) is left to the host.
    """
    def never() -> bool:
        return False
    never.signum = None
    if threading.current_thread() is not threading.main_thread():
        yield never
        return
    from archcalc.training.runs import raise_interrupt
    plain = (signal.default_int_handler, signal.SIG_DFL, raise_interrupt)
    taken = {s: signal.getsignal(s) for s in STOP_SIGNALS if signal.getsignal(s) in plain}
    received = threading.Event()

    def handler(signum, frame):
        if not received.is_set():
            check.signum = signum
        received.set()

    def check() -> bool:
        return received.is_set()
    check.signum = None
    for s in taken:
        signal.signal(s, handler)
    try:
        yield check
    finally:
        for s, previous in taken.items():
            signal.signal(s, previous)


def _read_checkpoint(path: Path, config: TrainConfig) -> dict[str, Any]:
    """A checkpoint to resume from; it must come from a run with the same configuration
    (device, threads and compilation aside), or "continue exactly" would be a lie."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ArchcalcError(f"{path}: no checkpoint to resume from") from None
    except Exception as exc:  # torch.load fails in many ways on a damaged file; all mean the same
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ArchcalcError(f"{path}: cannot read the checkpoint: {first}") from None
    if isinstance(state, dict) and type(state.get("format")) is int and 0 < state["format"] < CHECKPOINT_FORMAT:
        raise ArchcalcError(f"{path}: written by an older archcalc (checkpoint format "
                            f"{state['format']}, now {CHECKPOINT_FORMAT}), which scored epochs on "
                            f"the test set; start the run again")
    if not isinstance(state, dict) or not equal(state.get("format"), CHECKPOINT_FORMAT):
        raise ArchcalcError(f"{path}: not an archcalc training checkpoint")
    if not isinstance(state.get("config"), dict):
        raise ArchcalcError(f"{path}: cannot resume from this checkpoint: 'config' is missing "
                            f"or not a dictionary")
    ignored = {"device", "compile", "threads"}
    saved, wanted = state["config"], config.to_dict()
    changed = sorted(k for k in wanted if k not in ignored and not equal(saved.get(k), wanted[k]))
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} → {wanted[k]!r}" for k in changed)
        raise ArchcalcError(f"{path}: cannot resume with a different configuration ({details})")
    return state


def _write_torch(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomic(path, buffer.getvalue())


def _write_metrics(out_dir: Path, run: _Run) -> None:
    """Per epoch, the validation figures; the test figures once the test set was evaluated
    (null until then)."""
    records = [r.to_dict() for r in run.history]
    last = run.history[-1]
    test_loss, test_accuracy = run.test or (None, None)
    summary = {
        "dataset": run.dataset.name,
        "synthetic": run.dataset.synthetic,
        "device": str(run.device),
        "threads": torch.get_num_threads(),
        "train_images": len(run.train_y),
        "val_images": len(run.val_y),
        "test_images": len(run.test_y),
        "val_accuracy": last.val_accuracy,
        "val_loss": last.val_loss,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "epochs": records,
    }
    _write_json(out_dir / "metrics.json", summary)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    write_atomic(out_dir / "metrics.csv", table.getvalue())


def _write_json(path: Path, data: Any) -> None:
    """JSON that every reader accepts: a diverged run's NaN or infinite loss is written as null
    (json.dumps would write the bare word NaN, which is not JSON)."""
    write_atomic(path, json.dumps(_finite(data), indent=2, allow_nan=False) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
