"""A training run as `archcalc train` sets it up around the engine
(:mod:`archcalc.training.engine`): which spec suits which data, whether they fit, how much work
``--quick`` allows, where the run's files go, what ``--resume`` needs to rebuild, and whether
it learned. Data only: :mod:`archcalc.views.train` words it. Imports torch only lazily."""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

from archcalc.core.ops import fmt_shape
from archcalc.errors import ArchcalcError, Position
from archcalc.files import write_atomic
from archcalc.pytorch.devices import cpu_threads
from archcalc.training.options import CAPPED_BATCH, QUICK_DEFAULTS, TrainConfig, default, val_count

DEFAULT_SPEC = {"cifar10": "cifar-cnn", "fashion-mnist": "fashion-cnn", "synthetic": "cifar-cnn"}
RUN_FILE = "run.json"
CONFIG_FILE = "config.json"          # engine.load_config reads it back
CHECKPOINT_FILE = "checkpoint.pt"    # the engine's
# --quick allows about this much training work (multiply-adds, forward and backward counted as
# 3 × forward): one pass of the notes' CIFAR-10 CNN over 50,000 images is 3.1e12, about a
# minute on two CPU cores. Heavier specs get fewer steps rather than a longer wait.
QUICK_WORK = {"cpu": 3.5e12, "cuda": 3.5e14}


@dataclass
class RunInfo:
    """What a run was made of, saved beside its checkpoint so ``--resume`` can rebuild it."""

    spec: str
    variant: Optional[str]
    dataset: str
    data_dir: Optional[str]
    heads: bool
    quick: bool = False
    settings: Dict[str, str] = field(default_factory=dict)     # --set NAME=VALUE, as given

    def save(self, out_dir: Path) -> None:
        write_atomic(out_dir / RUN_FILE, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, out_dir: Path) -> "RunInfo":
        path = Path(out_dir) / RUN_FILE
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            if not Path(out_dir).is_dir():
                raise ArchcalcError("no such folder to resume", Position(str(out_dir))) from None
            raise ArchcalcError("not a run folder of archcalc train (no run.json)",
                                Position(str(out_dir))) from None
        except (OSError, ValueError, TypeError) as exc:
            raise ArchcalcError(f"cannot read the run's description: {exc}",
                                Position(str(path))) from None


def default_spec(dataset: str) -> str:
    return DEFAULT_SPEC.get(dataset, "cifar-cnn")


def output_classes(shape: Tuple[int, ...]) -> Optional[int]:
    """The number of classes a model's output shape scores, if it is a class-score vector."""
    if len(shape) == 1 or (len(shape) == 3 and shape[1:] == (1, 1)):
        return shape[0]
    return None


def check_fit(spec_name: str, input_shape, output_shape, dataset) -> None:
    """The spec must take the data set's images and score its classes; say both when not."""
    classes = output_classes(output_shape)
    if tuple(input_shape) == tuple(dataset.input_shape) and classes == dataset.num_classes:
        return
    got = f"{classes} classes" if classes else f"an output of {fmt_shape(output_shape)}"
    raise ArchcalcError(
        f"spec '{spec_name}' takes {fmt_shape(input_shape)} images and gives {got}; "
        f"data set '{dataset.name}' has {fmt_shape(dataset.input_shape)} images in "
        f"{dataset.num_classes} classes")


@dataclass
class QuickPlan:
    """How much a --quick run does; the figures behind the cap, for the screen."""

    max_steps: Optional[int]        # per epoch; None: the whole training set
    max_test_images: Optional[int]  # None: the whole test set
    batch_size: int
    macs: int = 0                   # per image, forward
    n_test: int = 0
    device: str = "cpu"

    @property
    def capped(self) -> bool:
        return self.max_steps is not None


def quick_plan(macs: int, n_train: int, n_test: int, batch_size: Optional[int],
               device: str) -> QuickPlan:
    """One pass over the training set when it fits the quick budget, else as many steps as do
    (of CAPPED_BATCH images, unless the user chose a batch size)."""
    budget = QUICK_WORK["cuda" if device == "cuda" else "cpu"]
    if 3 * macs * n_train <= 1.2 * budget:
        return QuickPlan(None, None, batch_size or default("batch_size"), macs, n_test, device)
    batch_size = batch_size or CAPPED_BATCH
    steps = max(10, int(budget / (3 * macs * batch_size)))
    tests = min(n_test, max(500, int(budget / 3 / macs)))
    return QuickPlan(steps, tests, batch_size, macs, n_test, device)


def new_run_dir(spec_stem: str, root: Path = Path("runs")) -> Path:
    """``runs/<spec>-<date>-<time>``, created here, numbered (-2, -3...) if another run made
    that folder first: ``mkdir`` is atomic, so two runs started in the same second never share
    one."""
    base = root / f"{spec_stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchcalcError(f"cannot create the runs folder: {exc.strerror}", Position(str(root)))
    path, n = base, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
            path = Path(f"{base}-{n}")
        except OSError as exc:
            raise ArchcalcError(f"cannot create the run's folder: {exc.strerror}",
                                Position(str(path)))


class FolderClaim:
    """A run folder held by this process: an exclusive ``flock`` on the folder itself, taken
    before anything slow and held until the process ends (or :meth:`release`). The kernel
    drops the lock when the process dies however it dies, so a killed run never leaves a
    folder locked, and no lock file is left behind. Two claims on one folder, from two
    processes or two calls in one process, cannot both succeed."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd: Optional[int] = None

    def acquire(self) -> "FolderClaim":
        try:
            self.fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as exc:
            raise ArchcalcError(f"cannot use the run's folder: {exc.strerror}",
                                Position(str(self.path))) from None
        try:
            import fcntl
        except ImportError:     # no flock (Windows): the folder checks still apply
            return self
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.release()
            raise ArchcalcError("another archcalc train is using this folder right now; wait "
                                "for it, or choose another --out", Position(str(self.path))) from None
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def raise_interrupt(signum, frame):
    """A SIGTERM handler that stops a run as Ctrl-C does (KeyboardInterrupt), so that a run
    stopped while it is set up removes what it made; the engine's training loop takes it over
    as it takes over Python's default handlers (engine._interrupts_between_steps)."""
    raise KeyboardInterrupt


def claim_run_dir(out: Optional[Path], spec_stem: str) -> Tuple[FolderClaim, bool]:
    """The folder of a new run, claimed (:class:`FolderClaim`), and whether it was created
    here (so that a failure before the run starts can remove it again). A folder that holds a
    run is refused, even one stopped before its first checkpoint: ``--resume`` starts that one
    over (resume_job)."""
    if out is None:
        return FolderClaim(new_run_dir(spec_stem)).acquire(), True
    out = Path(out)
    created = False
    try:
        out.mkdir(parents=True)
        created = True
    except FileExistsError:
        if not out.is_dir():
            raise ArchcalcError("not a folder", Position(str(out))) from None
    except OSError as exc:
        raise ArchcalcError(f"cannot create the run's folder: {exc.strerror}",
                            Position(str(out))) from None
    claim = FolderClaim(out).acquire()
    if any((out / name).exists() for name in (RUN_FILE, CHECKPOINT_FILE, "model.pt", "metrics.json")):
        claim.release()
        raise ArchcalcError("this folder already holds a run; continue it with --resume, or "
                            "choose another --out", Position(str(out)))
    return claim, created


# --- did it learn? ---------------------------------------------------------------------------

SPAN_STEPS = 10     # the loss "at the start" and "at the end" are means over at least this many
NOISE_SIGMAS = 3    # a fall, and a lead over chance, must exceed this many standard errors


@dataclass
class LossFall:
    """The training loss over the first and over the last steps, and whether it fell by more
    than noise: ``first - last > margin``, the margin being NOISE_SIGMAS standard errors of the
    difference. ``margin`` is None when too few refreshes came to estimate the noise."""

    first: float
    first_steps: int
    last: float
    last_steps: int
    margin: Optional[float]

    @property
    def fell(self) -> bool:
        return self.margin is not None and self.first - self.last > self.margin

    @property
    def rose(self) -> bool:
        """Rose by more than noise: the run diverged, whatever its test accuracy."""
        return self.margin is not None and self.last - self.first > self.margin


class LossTrend:
    """The training loss over a run, from the engine's progress reports: running means of each
    epoch, refreshed every few steps (``StepInfo.refreshed``). Between two refreshes of an epoch
    lies a window of steps whose mean loss follows exactly from the two running means."""

    def __init__(self):
        self.marks: list = []       # (epoch, step, running mean) at each refresh

    def add(self, info) -> None:
        if info.refreshed:
            self.marks.append((info.epoch, info.step, info.loss))

    def windows(self) -> list:
        """(epoch, steps, mean loss) of each window between refreshes, in order."""
        out, previous = [], None
        for epoch, step, mean in self.marks:
            step0, mean0 = (previous[1], previous[2]) if previous and previous[0] == epoch else (0, 0.0)
            if step > step0:
                out.append((epoch, step - step0, (mean * step - mean0 * step0) / (step - step0)))
            previous = (epoch, step, mean)
        return out

    def noise(self) -> Optional[float]:
        """The standard deviation of one step's loss, from successive windows of an epoch: the
        difference of two window means of a and b steps has variance σ²(1/a + 1/b) when the
        loss is flat, more when it trends, so the estimate errs towards "did not fall"."""
        windows = self.windows()
        terms = [(m1 - m0) ** 2 / (1 / n0 + 1 / n1)
                 for (e0, n0, m0), (e1, n1, m1) in zip(windows, windows[1:]) if e0 == e1]
        return math.sqrt(sum(terms) / len(terms)) if terms else None

    def fall(self) -> Optional[LossFall]:
        """The mean loss over the first SPAN_STEPS steps (or more, up to the next refresh)
        against the last SPAN_STEPS or more, within the first and the last epoch."""
        if not self.marks:
            return None
        first_epoch, last_epoch = self.marks[0][0], self.marks[-1][0]
        head = [m for m in self.marks if m[0] == first_epoch]
        _, first_steps, first = next((m for m in head if m[1] >= SPAN_STEPS), head[-1])
        tail = [m for m in self.marks if m[0] == last_epoch]
        _, end, mean = tail[-1]
        _, start, mean0 = next((m for m in reversed(tail) if end - m[1] >= SPAN_STEPS),
                               (last_epoch, 0, 0.0))
        last = (mean * end - mean0 * start) / (end - start)
        sigma = self.noise()
        margin = None if sigma is None else \
            NOISE_SIGMAS * sigma * math.sqrt(1 / first_steps + 1 / (end - start))
        return LossFall(first, first_steps, last, end - start, margin)


@dataclass
class LearningVerdict:
    """Did a quick run learn? Its held-out accuracy (on the validation images; on the test set
    only when no validation images were held out) beat chance by more than a guesser's noise
    (NOISE_SIGMAS σ of a guess's accuracy on n_test images it never trained on) and its training
    loss did not rise by more than noise. Held-out accuracy is the evidence: a heavy spec's
    50 steps can lift it far beyond chance while the loss of a few small batches still moves
    less than its noise (GoogLeNet for CIFAR-10: 24.4% on 806 test images, chance 10% ± 3.2%,
    and a loss 2.21 → 2.10 within a margin of 0.58). Whether the loss fell is reported beside."""

    loss: LossFall
    test_accuracy: float            # of the held-out images named by ``held_out``
    chance: float
    chance_margin: float
    n_test: int
    held_out: str = "validation"    # or "test"

    @property
    def beat_chance(self) -> bool:
        return self.test_accuracy > self.chance + self.chance_margin

    @property
    def learned(self) -> bool:
        return self.beat_chance and not self.loss.rose


def learning_verdict(loss: LossFall, accuracy: float, num_classes: int, n_images: int,
                     held_out: str = "validation") -> LearningVerdict:
    chance = 1 / num_classes
    margin = NOISE_SIGMAS * math.sqrt(chance * (1 - chance) / n_images)
    return LearningVerdict(loss, accuracy, chance, margin, n_images, held_out)


# --- a run put together: spec, data, model, configuration, folder ---------------------------

@dataclass
class Job:
    """Everything one `archcalc train` invocation trains. Building one imports torch; nothing
    here prints or words anything (archcalc.views.train does)."""

    info: RunInfo
    spec_name: str
    dataset: "object"               # archcalc.training.datasets.Dataset
    model: "object"                 # torch.nn.Module returning logits
    config: TrainConfig
    out_dir: Path
    resume: bool
    params: int
    macs: int
    plan: Optional[QuickPlan] = None    # --quick's plan, for a new quick run
    claim: Optional[FolderClaim] = None # the folder, held for this process (FolderClaim)
    trend: LossTrend = field(default_factory=LossTrend)
    peers: "object" = None              # distributed.Peers under torchrun, else None
    notes: list = field(default_factory=list)   # what the screen should say before training

    @property
    def leader(self) -> bool:
        """Whether this process speaks for the run (rank 0, or the only process)."""
        return self.peers is None or self.peers.rank == 0

    def run(self, on_step=None, on_epoch=None):
        from archcalc.training.engine import train

        def step(info):
            self.trend.add(info)
            if on_step:
                on_step(info)
        try:
            return train(self.model, self.dataset, self.config, self.out_dir,
                         head_weights=getattr(self.model, "loss_weights", None) or None,
                         on_step=step, on_epoch=on_epoch, resume=self.resume, peers=self.peers)
        finally:
            if self.claim:      # the folder is free for --resume once this run has stopped
                self.claim.release()

    @property
    def capped(self) -> bool:
        """Whether each epoch stops short of a whole pass over the training set."""
        full = max(1, self.n_train // self.config.global_batch)
        return self.config.max_steps_per_epoch is not None and self.config.max_steps_per_epoch < full

    @property
    def n_train(self) -> int:
        return len(self.dataset.train_y) - (self.config.val_split or 0)

    def learning_verdict(self, result) -> Optional[LearningVerdict]:
        """For quick runs trained whole in this process: a resumed run lacks its first steps.
        Judged on the validation images; on the test set only when none were held out."""
        fall = self.trend.fall()
        if not self.info.quick or self.resume or fall is None:
            return None
        if result.val_accuracy is not None:
            return learning_verdict(fall, result.val_accuracy, self.dataset.num_classes, result.val_images)
        return learning_verdict(fall, result.test_accuracy, self.dataset.num_classes,
                                result.test_images, "test")


def new_job(dataset_name: str, spec: Optional[str], variant: Optional[str], quick: bool,
            chosen: dict, device: str, compile: bool, data_dir, download: bool, out,
            threads: Optional[int] = None, on_download=None,
            settings: Optional[Dict[str, str]] = None, peers=None) -> Job:
    """A new run: ``chosen`` holds the training options the user gave (None: not given), the
    rest are TrainConfig's defaults, or QUICK_DEFAULTS' for a quick run. ``on_download(done,
    total)`` follows a --download (datasets.download_cifar10). Under torchrun (``peers``)
    ``chosen['batch_size']`` is per process and only rank 0 claims and writes the folder."""
    from dataclasses import replace

    from archcalc.files import resolve_spec
    from archcalc.pytorch.build import load_graph
    from archcalc.pytorch.devices import resolve_device
    from archcalc.training.datasets import load_dataset

    path = resolve_spec(spec or default_spec(dataset_name))
    # a spec that cannot be built (an opaque layer, a shape that does not fit) is refused
    # before a run folder is claimed or a data set is read
    load_graph(path, variant, None, heads=True, settings=settings)
    values = {k: v for k, v in chosen.items() if v is not None}
    if quick:
        values = {**QUICK_DEFAULTS, **values}
    config = TrainConfig(device=device, compile=compile, threads=cpu_threads(threads),
                         processes=peers.size if peers else 1, **values)
    if peers is None or peers.rank == 0:
        claim, created = claim_run_dir(Path(out) if out else None, Path(path).stem)
        out_dir = claim.path
    else:   # rank 0 alone writes; the folder's name reaches the engine from it
        claim, created, out_dir = None, False, None
    try:
        dataset = load_dataset(dataset_name, data_dir, download, on_download)
        # the count held out goes into config.json, so --resume holds out the same images
        config = replace(config, val_split=val_count(config.val_split, dataset_name, len(dataset.train_y)))
        info = RunInfo(str(Path(path).resolve()), variant, dataset_name,
                       str(data_dir) if data_dir else None, heads=False, quick=quick,
                       settings=dict(settings or {}))
        job = _assemble(info, dataset, config, out_dir, resume=False, peers=peers)
        if quick:
            plan = quick_plan(job.macs, job.n_train, len(dataset.test_y),
                              chosen.get("batch_size"), resolve_device(device)[0].type)
            job.config = replace(config, max_steps_per_epoch=plan.max_steps,
                                 max_test_images=plan.max_test_images, batch_size=plan.batch_size)
            job.plan = plan
        # Both files a resume needs, before any training: a run stopped before its first
        # checkpoint resumes from the start (resume_job).
        if claim:
            write_atomic(out_dir / CONFIG_FILE, json.dumps(job.config.to_dict(), indent=2) + "\n")
            job.info.save(out_dir)
    except BaseException:
        if claim:
            claim.release()
        if created:
            _remove_if_empty(out_dir)
        raise
    job.claim = claim
    return job


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def shared_batch(config: TrainConfig, processes: int, out_dir: Path) -> TrainConfig:
    """``config`` for ``processes`` processes, each with an equal share of the run's global
    batch, which a resume keeps (the steps, and so the schedule and the checkpoint's position,
    depend on it)."""
    from dataclasses import replace
    total = config.global_batch
    if total % processes:
        raise ArchcalcError(f"this run's steps are of {total} images ({config.processes} "
                            f"process(es) × {config.batch_size}), which {processes} processes "
                            f"cannot share equally; resume with a number of processes that "
                            f"divides {total}", Position(str(out_dir)))
    return replace(config, batch_size=total // processes, processes=processes)


def check_resume_processes(out_dir: Path, processes: int) -> None:
    """Under torchrun, before the processes wait for each other: whether they can share the
    run's global batch (resume_job says the same later, for a folder without a config)."""
    from archcalc.training.engine import load_config
    if (Path(out_dir) / CONFIG_FILE).is_file():
        shared_batch(load_config(out_dir), processes, Path(out_dir))


def resume_job(out_dir: Path, dataset_name: str, device: str, compile: bool, data_dir,
               threads: Optional[int] = None, peers=None) -> Job:
    """Continue the run in ``out_dir``, with any number of processes that divides its global
    batch. Under torchrun every process reads the folder; rank 0 alone claims it."""
    from dataclasses import replace

    from archcalc.training.datasets import load_dataset
    from archcalc.training.engine import load_config

    leader = peers is None or peers.rank == 0
    claim = FolderClaim(Path(out_dir)).acquire() if leader and Path(out_dir).is_dir() else None
    try:
        info = RunInfo.load(out_dir)
        if info.dataset != dataset_name:
            raise ArchcalcError(f"this run trained on {info.dataset}, not {dataset_name}",
                                Position(str(out_dir)))
        config = replace(load_config(out_dir), device=device, compile=compile,
                         threads=cpu_threads(threads))
        config = shared_batch(config, peers.size if peers else 1, Path(out_dir))
        dataset = load_dataset(dataset_name, data_dir or info.data_dir)
        config = replace(config, val_split=val_count(config.val_split, dataset_name, len(dataset.train_y)))
        # No checkpoint yet: the run stopped before its first one, and starts over; its model
        # is built from the same seed, so it ends where an uninterrupted run ends.
        started = (Path(out_dir) / CHECKPOINT_FILE).exists()
        job = _assemble(info, dataset, config, Path(out_dir), resume=started, peers=peers)
    except BaseException:
        if claim:
            claim.release()
        raise
    job.claim = claim
    return job


def _assemble(info: RunInfo, dataset, config, out_dir: Path, resume: bool, peers=None) -> Job:
    """Build the spec's model (seeded, in logits mode, heads on when the spec has them) and
    check that it fits the data."""
    import torch

    from archcalc.core import analysis
    from archcalc.pytorch.build import build_module, load_graph
    from archcalc.pytorch.devices import check_memory, resolve_device
    from archcalc.training.engine import EVAL_BATCH

    graph = load_graph(info.spec, info.variant, None, heads=True, settings=info.settings)
    check_fit(Path(info.spec).stem, graph.input_shape, graph.rows[-1].out_shape, dataset)
    info.heads = bool(graph.heads)
    # A training step at the batch size, or evaluation (no gradients) at the engine's larger
    # evaluation batch, whichever needs more, must fit before anything is allocated.
    where = resolve_device(config.device)[0]
    check_memory(graph, config.batch_size, where, training=True, heads=info.heads)
    check_memory(graph, max(config.batch_size, EVAL_BATCH), where, heads=info.heads)
    torch.manual_seed(config.seed)      # the initial weights repeat with the seed too
    model = build_module(graph, heads=info.heads, logits=True)
    totals = analysis.analyze(graph).totals
    job = Job(info, Path(info.spec).stem, dataset, model, config, out_dir, resume,
              totals.params, totals.macs, peers=peers)
    if config.sync_bn:
        from archcalc.training.distributed import sync_bn_note
        note = sync_bn_note(model, where.type)
        if note is None and peers is None:
            note = "--sync-bn: one process, so its batch is already all there is"
        if note:
            job.notes.append(note)
    return job
