"""A training run as `archcalc train` sets it up around the engine (:mod:`archcalc.train`):
which spec suits which data, whether they fit, how much work ``--quick`` allows, where the
run's files go, what ``--resume`` needs to rebuild, and the verdict at the end."""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Tuple

from archcalc.core.ops import fmt_shape
from archcalc.errors import ArchcalcError, Position
from archcalc.files import write_atomic

DEFAULT_SPEC = {"cifar10": "cifar-cnn", "fashion-mnist": "fashion-cnn", "synthetic": "cifar-cnn"}
RUN_FILE = "run.json"
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

    def save(self, out_dir: Path) -> None:
        write_atomic(out_dir / RUN_FILE, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, out_dir: Path) -> "RunInfo":
        path = Path(out_dir) / RUN_FILE
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
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
    max_steps: Optional[int]        # per epoch; None: the whole training set
    max_test_images: Optional[int]  # None: the whole test set
    batch_size: int
    note: Optional[str]             # what was capped and why, for the screen


CAPPED_BATCH = 16   # a capped run learns more from many small steps than from a few large ones


def quick_plan(macs: int, n_train: int, n_test: int, batch_size: Optional[int],
               device: str) -> QuickPlan:
    """One pass over the training set when it fits the quick budget, else as many steps as do
    (of CAPPED_BATCH images, unless the user chose a batch size)."""
    budget = QUICK_WORK["cuda" if device == "cuda" else "cpu"]
    if 3 * macs * n_train <= 1.2 * budget:
        return QuickPlan(None, None, batch_size or 64, None)
    batch_size = batch_size or CAPPED_BATCH
    steps = max(10, int(budget / (3 * macs * batch_size)))
    tests = min(n_test, max(500, int(budget / 3 / macs)))
    note = (f"--quick on {device}: {macs / 1e6:,.0f}M multiply-adds per image is too much for a "
            f"whole pass, so training stops after {steps} steps of {batch_size} "
            f"({steps * batch_size:,} images) and testing uses {tests:,} of {n_test:,} images")
    return QuickPlan(steps, tests, batch_size, note)


def new_run_dir(spec_stem: str, root: Path = Path("runs")) -> Path:
    """``runs/<spec>-<date>-<time>``, numbered if two runs start in the same second."""
    base = root / f"{spec_stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = Path(f"{base}-{n}")
    return path


@dataclass
class Verdict:
    learned: bool
    text: str


def verdict(first_loss: float, last_loss: float, test_accuracy: float, num_classes: int,
            n_test: int) -> Verdict:
    """Did it learn? The training loss must fall (first batch against the last steps) and test
    accuracy beat chance by more than noise (3 σ of a guesser's accuracy on ``n_test`` images)."""
    chance = 1 / num_classes
    margin = 3 * math.sqrt(chance * (1 - chance) / n_test)
    fell = last_loss < first_loss
    beat = test_accuracy > chance + margin
    mark = "✓ it learns" if fell and beat else "✗ it did not learn"
    text = (f"{mark}: training loss {first_loss:.2f} (first batch) → {last_loss:.2f} (last steps)"
            f", {'fell' if fell else 'did not fall'}; test accuracy {test_accuracy:.1%} against "
            f"{chance:.1%} by chance ({'beats' if beat else 'does not beat'} it by more than "
            f"noise on {n_test:,} images)")
    return Verdict(fell and beat, text)


class LossTrend:
    """The training loss at the start and over the latest steps, from the engine's progress
    reports (running means of the epoch, refreshed every few steps)."""

    def __init__(self):
        self.first: Optional[float] = None
        self.marks: list = []       # (epoch, step, running mean) at each refresh

    def add(self, info) -> None:
        if self.first is None:
            self.first = info.loss  # the first batch's loss, before any update
        if not self.marks or (info.epoch, info.loss) != (self.marks[-1][0], self.marks[-1][2]):
            self.marks.append((info.epoch, info.step, info.loss))

    @property
    def last(self) -> Optional[float]:
        """Mean loss between the last two refreshes of the last epoch (or its running mean)."""
        if not self.marks:
            return None
        epoch, step, mean = self.marks[-1]
        before = [m for m in self.marks[:-1] if m[0] == epoch]
        if not before:
            return mean
        _, step0, mean0 = before[-1]
        return (mean * step - mean0 * step0) / (step - step0)


# --- a run put together: spec, data, model, configuration, folder ---------------------------

@dataclass
class Job:
    """Everything one `archcalc train` invocation trains, and the text it shows about it.
    Building one imports torch; nothing here prints."""

    info: RunInfo
    spec_name: str
    dataset: "object"               # archcalc.datasets.Dataset
    model: "object"                 # torch.nn.Module returning logits
    config: "object"                # archcalc.train.TrainConfig
    out_dir: Path
    resume: bool
    params: int
    macs: int
    notes: list
    trend: LossTrend = field(default_factory=LossTrend)

    def run(self, on_step=None, on_epoch=None):
        from archcalc.training.engine import train

        def step(info):
            self.trend.add(info)
            if on_step:
                on_step(info)
        return train(self.model, self.dataset, self.config, self.out_dir,
                     head_weights=getattr(self.model, "loss_weights", None) or None,
                     on_step=step, on_epoch=on_epoch, resume=self.resume)

    def header(self) -> str:
        data, c = self.dataset, self.config
        kind = "SYNTHETIC data (built in; not a real data set)" if data.synthetic else data.name
        rate = "constant rate" if c.schedule == "none" else f"{c.schedule} schedule"
        settings = [f"{c.epochs} epoch{'s' * (c.epochs != 1)}", f"{c.optimizer} lr {c.lr:g}",
                    f"batch {c.batch_size}", rate, f"augment {'on' if c.augment else 'off'}"]
        return (f"{'continuing' if self.resume else 'training'} {self.spec_name} "
                f"({self.params:,} params, {self.macs:,} MACs per image) on {kind}: "
                f"{len(data.train_y):,} training and {len(data.test_y):,} test images · "
                f"{' · '.join(settings)} → {self.out_dir}")

    @staticmethod
    def epoch_line(r) -> str:
        return (f"epoch {r.epoch}: train loss {r.train_loss:.4f} acc {r.train_accuracy:.2%} · "
                f"test loss {r.test_loss:.4f} acc {r.test_accuracy:.2%} · {r.seconds:.0f} s · "
                f"{r.images_per_second:,.0f} images/s")

    def verdict(self, result) -> Optional[Verdict]:
        """For quick runs trained whole in this process: a resumed run lacks its first steps."""
        if not self.info.quick or self.resume or self.trend.first is None:
            return None
        n_test = min(len(self.dataset.test_y), self.config.max_test_images or len(self.dataset.test_y))
        return verdict(self.trend.first, self.trend.last, result.test_accuracy,
                       self.dataset.num_classes, n_test)

    def result_lines(self, result) -> list:
        seconds = sum(r.seconds for r in result.history)
        images = sum(r.images_per_second * r.seconds for r in result.history)
        data = "synthetic data" if self.dataset.synthetic else self.dataset.name
        lines = [f"test accuracy {result.test_accuracy:.2%} on {data} after "
                 f"{len(result.history)} epoch{'s' * (len(result.history) != 1)} · training "
                 f"{seconds:,.0f} s at {images / max(seconds, 1e-9):,.0f} images/s on {result.device}"
                 f" · {self.spec_name}: {self.params:,} params, {self.macs:,} MACs per image"]
        v = self.verdict(result)
        if v is not None:
            lines.append(v.text)
        lines.append(f"run folder: {self.out_dir} (metrics.csv, metrics.json, config.json, "
                     "checkpoint.pt, model.pt)")
        return lines


def new_job(dataset_name: str, spec: Optional[str], variant: Optional[str], quick: bool,
            chosen: dict, device: str, compile: bool, data_dir, download: bool, out) -> Job:
    from dataclasses import replace

    from archcalc.training.datasets import load_dataset
    from archcalc.files import resolve_spec
    from archcalc.pytorch.devices import resolve_device
    from archcalc.training.engine import TrainConfig

    path = resolve_spec(spec or default_spec(dataset_name))
    values = {k: v for k, v in chosen.items() if v is not None}
    values.setdefault("epochs", 1 if quick else 10)
    values.setdefault("augment", not quick)     # one pass learns faster from the plain images
    config = TrainConfig(device=device, compile=compile, **values)
    out_dir = Path(out) if out else new_run_dir(Path(path).stem)
    if (out_dir / RUN_FILE).exists() or (out_dir / "checkpoint.pt").exists():
        raise ArchcalcError("this folder already holds a run; continue it with --resume, or "
                            "choose another --out", Position(str(out_dir)))
    dataset = load_dataset(dataset_name, data_dir, download)
    info = RunInfo(str(Path(path).resolve()), variant, dataset_name,
                   str(data_dir) if data_dir else None, heads=False, quick=quick)
    job = _assemble(info, dataset, config, out_dir, resume=False)
    notes = []
    if quick:
        plan = quick_plan(job.macs, len(dataset.train_y), len(dataset.test_y),
                          chosen.get("batch_size"), resolve_device(device)[0].type)
        job.config = replace(config, max_steps_per_epoch=plan.max_steps,
                             max_test_images=plan.max_test_images, batch_size=plan.batch_size)
        notes += [plan.note] if plan.note else []
    job.notes = notes
    out_dir.mkdir(parents=True, exist_ok=True)
    job.info.save(out_dir)
    return job


def resume_job(out_dir: Path, dataset_name: str, device: str, compile: bool, data_dir) -> Job:
    from dataclasses import replace

    from archcalc.training.datasets import load_dataset
    from archcalc.training.engine import load_config

    info = RunInfo.load(out_dir)
    if info.dataset != dataset_name:
        raise ArchcalcError(f"this run trained on {info.dataset}, not {dataset_name}",
                            Position(str(out_dir)))
    config = replace(load_config(out_dir), device=device, compile=compile)
    dataset = load_dataset(dataset_name, data_dir or info.data_dir)
    return _assemble(info, dataset, config, Path(out_dir), resume=True)


def _assemble(info: RunInfo, dataset, config, out_dir: Path, resume: bool) -> Job:
    """Build the spec's model (seeded, in logits mode, heads on when the spec has them) and
    check that it fits the data."""
    import torch

    from archcalc.core import analysis
    from archcalc.pytorch.build import build_module, load_graph

    graph = load_graph(info.spec, info.variant, None, heads=True)
    check_fit(Path(info.spec).stem, graph.input_shape, graph.rows[-1].out_shape, dataset)
    info.heads = bool(graph.heads)
    torch.manual_seed(config.seed)      # the initial weights repeat with the seed too
    model = build_module(graph, heads=info.heads, logits=True)
    totals = analysis.analyze(graph).totals
    return Job(info, Path(info.spec).stem, dataset, model, config, out_dir, resume,
               totals.params, totals.macs, [])
