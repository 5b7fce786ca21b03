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

Under torchrun (``peers``, :mod:`archcalc.training.distributed`) every process runs this loop
on its own model wrapped in DistributedDataParallel. A step takes ``batch_size × processes``
images of the epoch's seeded order, the same order on every process, and each process trains
on its own contiguous share of them, so N processes step as one process would with the global
batch. Running sums and the evaluation (each process tests a share of the test set) are summed
over all processes; rank 0 alone writes files. Before each update the processes agree whether
any received a stop signal or failed, so all stop at the same step with none left waiting.

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
from archcalc.training.distributed import Peers, sync_batchnorm, sync_bn_note
from archcalc.training.options import DEVICES, OPTIMIZERS, SCHEDULES, TrainConfig, default, val_count  # noqa: F401 (re-exported)

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


class StepFailed(Exception):
    """A process failed within a step, and all processes agreed to stop there."""

    def __init__(self, cause: Optional[BaseException], rank: int, where: str):
        super().__init__(where)
        self.cause, self.rank, self.where = cause, rank, where


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
          resume: bool = False, peers: Optional[Peers] = None) -> TrainResult:
    """Train ``model`` (which must return logits) on ``dataset``; see the module docstring.

    With a fixed seed a CPU run repeats exactly, and ``resume=True`` continues from
    ``out_dir/checkpoint.pt`` to the same weights and metrics as an uninterrupted run. Seed the
    global RNG before building the model if its initial weights should repeat too.
    Ctrl-C saves a checkpoint and raises :class:`TrainingInterrupted`.

    With ``peers`` (under torchrun, the process group formed) the run is one of several
    data-parallel processes on ``peers.device``; ``config.batch_size`` is this process's share
    of each step and ``config.processes`` must be the number of processes. Only rank 0 writes;
    the others may pass ``out_dir=None`` (every process must be able to read ``out_dir`` to
    resume). A process that fails within a step stops all of them there, after rank 0 saved a
    checkpoint: it raises its own error, the others an ArchcalcError naming its rank.
    """
    if peers is not None:
        out_dir = peers.from_leader(str(out_dir) if peers.rank == 0 else None)
    out_dir = Path(out_dir)
    config = replace(config, val_split=val_count(config.val_split, dataset.name, len(dataset.train_y)))
    device = peers.device if peers is not None else resolve_device(config.device)[0]
    with torch_threads(device, config.threads):
        return _train(model, dataset, config, out_dir, device, head_weights or {}, on_step,
                      on_epoch, resume, peers)


def _train(model, dataset, config, out_dir: Path, device, head_weights, on_step, on_epoch,
           resume: bool, peers: Optional[Peers]) -> TrainResult:
    leader = peers is None or peers.rank == 0
    if leader:
        out_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(model, dataset, config, device, head_weights, peers)
    if resume:
        path = out_dir / "checkpoint.pt"
        state = _read_checkpoint(path, config)
        problem = check_state(state, run)
        if problem:
            raise ArchcalcError(f"{path}: cannot resume from this checkpoint: {problem}")
        run.load_state_dict(state)
    elif leader:
        _write_json(out_dir / "config.json", config.to_dict())
    with _interrupts_between_steps() as stop_requested:
        try:
            while run.epoch < config.epochs:
                run.check_stop(stop_requested)
                record = run.run_epoch(on_step, stop_requested)
                state = run.state_dict()
                if leader:
                    _write_torch(out_dir / "checkpoint.pt", state)
                    _write_metrics(out_dir, run)
                if on_epoch:
                    on_epoch(record)
            run.check_stop(stop_requested)      # every process's signal, under torchrun
            run.test = run.evaluate(run.test_x, run.test_y, run.test_count, stop_requested,
                                    "the test")
            if leader:
                _write_metrics(out_dir, run)
        except (KeyboardInterrupt, StepFailed) as stop:
            # Signals stay deferred here (still inside the block): the write finishes whole.
            state = run.state_dict()
            if leader:
                _write_torch(out_dir / "checkpoint.pt", state)
            if isinstance(stop, StepFailed):
                if stop.cause is not None:
                    raise stop.cause
                raise ArchcalcError(f"the process of rank {stop.rank} failed at {stop.where}; all "
                                    f"stopped there and {out_dir / 'checkpoint.pt'} holds the "
                                    f"run up to it (rank {stop.rank}'s message says why)") from None
            raise TrainingInterrupted(out_dir, stop_requested.signum or run.agreed_signal) from None
        if leader:
            _write_torch(out_dir / "model.pt", run.model.state_dict())
    last = run.history[-1]
    return TrainResult(out_dir, run.history, run.test[1], run.test[0], str(run.device),
                       last.val_accuracy, last.val_loss, run.val_count, run.test_count)


class _Run:
    """The state of one training run and the loops that advance it, one step at a time.

    The position (epoch, step, this epoch's shuffled order, running sums) is part of the state,
    so a checkpoint taken between any two steps resumes exactly.
    """

    def __init__(self, model: torch.nn.Module, dataset: Dataset, config: TrainConfig,
                 device: torch.device, head_weights: dict[str, float], peers: Optional[Peers] = None):
        self.dataset, self.config, self.device = dataset, config, device
        self.head_weights, self.peers = head_weights, peers
        self.cuda = device.type == "cuda"
        processes = peers.size if peers else 1
        if config.processes != processes:
            raise ArchcalcError(f"the configuration is for {config.processes} process(es), "
                                f"this run has {processes}")
        if config.sync_bn:
            sync_bn_note(model, device.type)    # refused on the CPU, where it would matter
        self.model = sync_batchnorm(model) if config.sync_bn and peers else model
        # channels_last (NHWC) suits the convolution kernels of GPUs and of oneDNN on CPU: the
        # notes' CNN trains about 20% faster this way on a 2-core CPU (best of 12 rounds each).
        self.memory_format = torch.channels_last
        self.model.to(device, memory_format=self.memory_format)
        self.forward = peers.wrap(self.model) if peers else self.model
        self.forward = torch.compile(self.forward) if config.compile else self.forward
        # Under torchrun, evaluation uses the plain module: DDP's forward broadcasts buffers, a
        # collective, and the processes' shares of the held-out images differ in batches by one.
        self.test_forward = self.model if peers else self.forward
        # this process's share of every step's global batch
        self.mine = slice(peers.rank * config.batch_size, (peers.rank + 1) * config.batch_size) \
            if peers else slice(None)
        self.agreed_signal: Optional[int] = None
        # The split follows from the count and the seed: the same on every process.
        train_idx, val_idx = hold_out(dataset.train_y, config.val_split, config.seed)
        val_idx = _spread(val_idx, config.max_test_images)
        test_idx = _spread(torch.arange(len(dataset.test_y)), config.max_test_images)
        self.val_count, self.test_count = len(val_idx), len(test_idx)    # over all processes
        if peers:       # each process evaluates its share of the held-out images
            val_idx, test_idx = val_idx[peers.part(len(val_idx))], test_idx[peers.part(len(test_idx))]
        if processes > 1 and config.global_batch > len(train_idx):
            raise ArchcalcError(f"a step of {processes} processes × {config.batch_size} images "
                                f"needs {config.global_batch:,} training images; "
                                f"{dataset.name} has {len(train_idx):,} after the validation "
                                f"split: use fewer processes or a smaller --batch-size")
        train_x = dataset.train_x[train_idx]
        mean, std = (s.to(device) for s in channel_stats(train_x))   # of the training images only
        self.train_x, self.train_y, self.val_x, self.val_y, self.test_x, self.test_y = (
            _to_device(t, device) for t in (
                train_x, dataset.train_y[train_idx], dataset.train_x[val_idx],
                dataset.train_y[val_idx], dataset.test_x[test_idx], dataset.test_y[test_idx]))
        self.test: Optional[tuple[float, float]] = None    # (loss, accuracy), after the last epoch
        self.train_transform = BatchTransform(mean, std, augment=config.augment)
        self.test_transform = BatchTransform(mean, std, augment=False)
        self.steps = min(max(1, len(self.train_y) // config.global_batch),
                         config.max_steps_per_epoch or math.inf)
        self.optimizer = _make_optimizer(self.model, config)
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
        # Under torchrun loss_sum, correct and seen are this process's; ``carried`` holds the
        # sums over all processes that a checkpoint brought (the same on every process).
        self.carried = (0.0, 0, 0)

    def run_epoch(self, on_step, stop_requested: Callable[[], bool]) -> EpochRecord:
        """Finish the current epoch (from wherever it stands), evaluate, and move to the next."""
        if self.order is None:
            self.order = torch.randperm(len(self.train_y), generator=self.generator)
        order = self.order.to(self.device)
        self.model.train()
        self._shown: Optional[tuple[float, float]] = None
        started = time.perf_counter()
        batch = self.config.global_batch
        try:
            for step in range(self.step, self.steps):
                self._train_step(order[step * batch:(step + 1) * batch], stop_requested)
                self.step = step + 1
                if on_step:
                    on_step(self._step_info(started))
                if not self.peers and stop_requested():
                    raise KeyboardInterrupt
        finally:
            self.seconds += time.perf_counter() - started
        val_loss, val_accuracy = self.evaluate(self.val_x, self.val_y, self.val_count,
                                               stop_requested, f"epoch {self.epoch + 1}'s validation") \
            if self.val_count else (None, None)
        loss_sum, correct, seen = self._running_totals()
        record = EpochRecord(self.epoch + 1, loss_sum / seen, correct / seen, val_loss, val_accuracy,
                             self.seconds, seen / max(self.seconds, 1e-9), self.lr, self.steps, seen)
        self.history.append(record)
        self.epoch, self.step = self.epoch + 1, 0
        self._start_epoch()
        return record

    def _running_totals(self) -> tuple[float, int, int]:
        """This epoch's loss sum, correct answers and images so far, over all processes."""
        if not self.peers:
            return self.loss_sum.item(), self.correct.item(), self.seen
        loss_sum, correct, seen = self.peers.sum(self.loss_sum, self.correct, torch.tensor(self.seen))
        return (self.carried[0] + loss_sum.item(), self.carried[1] + int(correct.item()),
                self.carried[2] + int(seen.item()))

    def check_stop(self, stop_requested: Callable[[], bool]) -> None:
        """Between epochs: stop on a signal (any process's, under torchrun)."""
        if self.peers:
            signum, _ = self.peers.agree(stop_requested.signum if stop_requested() else None, False)
            if signum:
                self.agreed_signal = signum
                raise KeyboardInterrupt
        elif stop_requested():
            raise KeyboardInterrupt

    def _train_step(self, index: torch.Tensor, stop_requested: Callable[[], bool]) -> None:
        """One update from the step's global batch ``index``, of which this process trains on
        its share. Under torchrun the processes agree after the forward pass, before the
        update, whether to go on; on a stop the random states are put back as they were, so
        the checkpoint holds the position before this step exactly."""
        rng = self._rng_state() if self.peers else None
        try:
            if self.train_transform.augment:    # every process draws for the global batch
                x = self.train_transform(self.train_x[index], self.generator)[self.mine]
            else:
                x = self.train_transform(self.train_x[index[self.mine]])
            x = x.contiguous(memory_format=self.memory_format)
            y = self.train_y[index[self.mine]]
            with self._autocast():
                logits, heads = _split_output(self.forward(x))
                logits = _as_logits(logits, self.dataset.num_classes)
                if self.epoch == 0 and self.step == 0:
                    _refuse_probabilities(logits)
                loss = self._loss(logits, heads, y)
            failure = None
        except Exception as exc:
            if not self.peers:
                raise
            failure = exc
        if self.peers:
            signum, failed = self.peers.agree(stop_requested.signum if stop_requested() else None,
                                              failure is not None)
            if signum or failed:
                self._set_rng_state(rng)
                if failed:
                    raise StepFailed(failure, failed - 1,
                                     f"epoch {self.epoch + 1}, step {self.step + 1}") from failure
                self.agreed_signal = signum
                raise KeyboardInterrupt
        self.optimizer.zero_grad(set_to_none=True)
        with self.peers.contact() if self.peers else contextlib.nullcontext():
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
        # Under torchrun this process's share stands for every process's (no collective here).
        size = self.peers.size if self.peers else 1
        seen = self.carried[2] + self.seen * size
        if refresh:
            self._shown = ((self.carried[0] + self.loss_sum.item() * size) / seen,
                           (self.carried[1] + self.correct.item() * size) / seen)
        elapsed = self.seconds + time.perf_counter() - started
        return StepInfo(self.epoch + 1, self.config.epochs, self.step, self.steps, *self._shown,
                        seen / max(elapsed, 1e-9), refresh)

    @torch.inference_mode()
    def evaluate(self, images: torch.Tensor, labels: torch.Tensor, total: int,
                 stop_requested: Callable[[], bool] = lambda: False,
                 what: str = "the evaluation") -> tuple[float, float]:
        """Mean cross-entropy and accuracy of the main output over held-out images: ``total``
        of them in all, of which ``images`` and ``labels`` are this process's share under
        torchrun (the sums are reduced over the processes; ``what`` names the pass if one
        fails)."""
        self.model.eval()
        count = len(labels)    # this process's share under torchrun
        if not total:   # a data set without test images (benchmarks/quick_lr.py keeps it unseen)
            return math.nan, math.nan
        batch = max(self.config.batch_size, EVAL_BATCH)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        failure = None
        try:
            for start in range(0, count, batch):
                x = self.test_transform(images[start:min(start + batch, count)])
                y = labels[start:min(start + batch, count)]
                with self._autocast():
                    logits = _as_logits(_split_output(self.test_forward(x.contiguous(memory_format=self.memory_format)))[0],
                                        self.dataset.num_classes)
                loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
                correct += (logits.argmax(1) == y).sum()
                if not self.peers and stop_requested():  # under torchrun: at the next step
                    raise KeyboardInterrupt
        except Exception as exc:
            if not self.peers:
                raise
            failure = exc
        if self.peers:
            loss_sum, correct, failed = self.peers.sum(
                loss_sum, correct, torch.tensor(self.peers.rank + 1 if failure else 0))
            if failed:
                raise StepFailed(failure, int(failed.item()) - 1, what)
        return loss_sum.item() / total, correct.item() / total

    def _autocast(self):
        dtype = AUTOCAST.get(self.device.type)
        return torch.autocast(self.device.type, dtype=dtype) if dtype else contextlib.nullcontext()

    def _rng_state(self) -> tuple:
        return (torch.get_rng_state(), self.generator.get_state(),
                torch.cuda.get_rng_state_all() if self.cuda else None)

    def _set_rng_state(self, state: tuple) -> None:
        torch.set_rng_state(state[0])
        self.generator.set_state(state[1])
        if state[2] is not None:
            torch.cuda.set_rng_state_all(state[2])

    def state_dict(self) -> dict[str, Any]:
        """The run's state; under torchrun the running sums are over all processes (so every
        process must call this at the same point) and the random states rank 0's."""
        loss_sum, correct, seen = self._running_totals()
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "order": self.order,
            "running": {"loss_sum": torch.tensor(loss_sum, dtype=torch.float64),
                        "correct": torch.tensor(correct, dtype=torch.int64), "seen": seen,
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
        if self.peers:      # the sums are over all processes
            self.carried = (self.loss_sum.item(), int(self.correct.item()), self.seen)
            self.loss_sum, self.correct, self.seen = self.loss_sum * 0, self.correct * 0, 0
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
    # The number of processes may change, and with it each one's share of a step: the global
    # batch (batch_size × processes) is what must stay.
    ignored = {"device", "compile", "threads", "processes", "batch_size"}
    saved, wanted = state["config"], config.to_dict()
    saved = {**{k: default(k) for k in ("processes", "sync_bn")}, **saved}   # older runs lack them
    changed = sorted(k for k in wanted if k not in ignored and not equal(saved.get(k), wanted[k]))
    saved_batch = saved.get("batch_size")
    if type(saved_batch) is int and type(saved.get("processes", 1)) is int:
        saved_batch *= saved.get("processes", 1)
    if not equal(saved_batch, config.global_batch):
        changed.append("global batch")
        saved["global batch"], wanted["global batch"] = saved_batch, config.global_batch
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
        "processes": run.config.processes,
        "train_images": len(run.train_y),
        "val_images": run.val_count,
        "test_images": run.test_count,
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
