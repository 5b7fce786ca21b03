"""archcalc on a CUDA machine, in one go: one table, under 8 minutes on one GPU.

    python benchmarks/gpu_check.py [--data-dir DIR] [--wheels DIR] [--budget 450]
    python benchmarks/gpu_check.py --cpu      # a dry run of the script itself, tiny steps, CPU

Steps, each a real command line in its own process, bounded by its own timeout and by the
budget left (a step that cannot fit is skipped and says so):

1. ``archcalc verify NAME --device cuda`` for every bundled spec: does the analysis agree
   with PyTorch and fvcore on the GPU (exit 0), disagree (1) or fail (2)?
2. ``archcalc train --quick cifar10`` (one epoch), without and with ``--compile``.
3. ``torchrun --nproc_per_node 2 -m archcalc train --quick cifar10``: two processes, sharing
   one GPU when there is only one (DDP).

Printed: first what this machine has and what each step needs (Python, torch and its CUDA,
the GPUs, fvcore, triton for --compile on CUDA, torchrun, CIFAR-10), then ONE table: what ran,
its result (agreement, or ok), images/s and test accuracy (from the run's metrics.json), peak
memory (on CUDA the largest ``torch.cuda.max_memory_allocated`` of the step's processes, on
the CPU their largest resident set) and seconds. Peak memory is read by a ``sitecustomize``
module this script puts first on the steps' PYTHONPATH; it changes nothing else.

Nothing is downloaded. Without fvcore, ``verify`` cannot run (archcalc's verify compares
against it) and its rows say so; ``--wheels DIR`` installs fvcore first with ``pip install
--no-index --find-links DIR`` (a folder of wheels carried to the machine: fvcore, iopath,
yacs, tabulate, termcolor, portalocker, tqdm, pyyaml). Training needs no fvcore.

``--cpu`` runs every step on the CPU, tiny: two small specs for verify, the synthetic set
and a small spec for training (``--compile`` included: the inductor needs a C compiler), and
the DDP step with the gloo backend. tests/test_gpu_check.py runs it so.

Exit status: 0 when every step that ran passed, 1 when one failed or disagreed, 2 when the
machine lacks what the script needs (torch, or CUDA without --cpu).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 450          # 7.5 minutes for all steps; the script's own start-up comes on top
STEP_TIMEOUT = {"verify": 90, "train": 180, "compile": 240, "ddp": 240}
CPU_STEP_TIMEOUT = {"verify": 60, "train": 90, "compile": 180, "ddp": 120}
CPU_SPECS = ("cifar-cnn", "fashion-cnn")
# The dry run's network: small enough that one pass over the synthetic set takes seconds.
TINY = textwrap.dedent("""\
    name: tiny
    input: [3, 32, 32]
    layers:
      conv1: [conv: {out: 8, kernel: 3, stride: 2, padding: valid}, batchnorm: {act: relu}]
      pool: [maxpool: {kernel: 3}]
      flatten: flatten
      classify: [linear: {out: 10}]
    """)
# Each step's processes write their peak memory here at exit (PEAK_DIR names the folder).
SITECUSTOMIZE = textwrap.dedent("""\
    import atexit, json, os, resource, sys

    def _peak():
        folder = os.environ.get("ARCHCALC_GPU_CHECK_PEAK_DIR")
        if not folder:
            return
        peak = {"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
        torch = sys.modules.get("torch")
        try:
            if torch is not None and torch.cuda.is_initialized():
                peak["cuda"] = max(torch.cuda.max_memory_allocated(d)
                                   for d in range(torch.cuda.device_count()))
        except Exception:
            pass
        with open(os.path.join(folder, f"peak-{os.getpid()}.json"), "w") as f:
            json.dump(peak, f)

    atexit.register(_peak)
    """)


@dataclass
class Row:
    step: str
    result: str = "skipped"
    images_per_second: Optional[float] = None
    test_accuracy: Optional[float] = None
    peak_bytes: Optional[int] = None
    seconds: Optional[float] = None
    ok: Optional[bool] = None       # None: not run


@dataclass
class Machine:
    """What this machine has, and what is missing for which step."""

    lines: List[str] = field(default_factory=list)
    fvcore: bool = False
    cuda_devices: int = 0
    triton: bool = False
    cifar10: Optional[str] = None   # why not, when CIFAR-10 is absent


def survey(args) -> Machine:
    m = Machine()
    m.lines.append(f"python {platform.python_version()} ({sys.executable})")
    import torch
    m.cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(m.cuda_devices)) or "none"
    m.lines.append(f"torch {torch.__version__} (CUDA {torch.version.cuda or 'none'}); GPUs: {gpus}")
    m.fvcore = importlib.util.find_spec("fvcore") is not None
    if not m.fvcore and args.wheels:
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--find-links",
                              str(args.wheels), "fvcore"], capture_output=True, text=True)
        m.fvcore = pip.returncode == 0
        m.lines.append(f"fvcore installed from {args.wheels}" if m.fvcore else
                       f"fvcore NOT installed from {args.wheels}: {_last_line(pip.stderr)}")
    m.lines.append("fvcore: " + ("yes" if m.fvcore else
                                 "MISSING, so verify is skipped (give --wheels DIR to install it)"))
    m.triton = importlib.util.find_spec("triton") is not None
    if not args.cpu:
        m.lines.append("triton: " + ("yes" if m.triton else "MISSING: --compile on CUDA needs it"))
    m.lines.append("torchrun: " + ("yes" if torch.distributed.is_available() else
                                   "MISSING: this torch has no torch.distributed"))
    if not args.cpu:
        from archcalc.errors import ArchcalcError
        from archcalc.training.datasets import load_cifar10
        try:
            load_cifar10(args.data_dir)
            m.lines.append("CIFAR-10: found")
        except ArchcalcError as exc:
            m.cifar10 = str(exc)
            m.lines.append(f"CIFAR-10: MISSING, so training is skipped: {exc}")
    return m


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="dry run on the CPU, tiny steps")
    parser.add_argument("--data-dir", type=Path, help="where CIFAR-10 is (else archcalc's default)")
    parser.add_argument("--wheels", type=Path, help="a folder of wheels to install fvcore from")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for all steps")
    args = parser.parse_args(argv)

    if importlib.util.find_spec("torch") is None:
        print("gpu_check needs torch (and numpy): pip install torch, the build for this machine")
        return 2
    machine = survey(args)
    for line in machine.lines:
        print(line)
    if not args.cpu and not machine.cuda_devices:
        print("no CUDA device: nothing to check here (--cpu runs the dry run)")
        return 2
    sys.stdout.flush()

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        rows = Steps(args, machine, Path(work)).run()
    print()
    print(table(rows, "cpu" if args.cpu else "cuda"))
    return 1 if any(r.ok is False for r in rows) else 0


class Steps:
    def __init__(self, args, machine: Machine, work: Path):
        self.args, self.machine, self.work = args, machine, work
        self.device = "cpu" if args.cpu else "cuda"
        self.timeouts = CPU_STEP_TIMEOUT if args.cpu else STEP_TIMEOUT
        self.deadline = time.monotonic() + args.budget
        site = work / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(site), str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "PYTHONUNBUFFERED": "1"}
        if args.cpu:
            (work / "tiny.yaml").write_text(TINY)
            self.data = ["synthetic", "--spec", str(work / "tiny.yaml")]
        else:
            self.data = ["cifar10"] + (["--data-dir", str(args.data_dir)] if args.data_dir else [])

    def run(self) -> List[Row]:
        from archcalc.files import bundled_specs
        specs = CPU_SPECS if self.args.cpu else [p.stem for p in bundled_specs()]
        rows = [self.verify(name) for name in specs]
        rows.append(self.train("train --quick", []))
        rows.append(self.train("train --quick --compile", ["--compile"], "compile"))
        rows.append(self.ddp())
        return rows

    def verify(self, name: str) -> Row:
        row = Row(f"verify {name}")
        if not self.machine.fvcore:
            row.result = "skipped: no fvcore (--wheels DIR)"
            return row
        code, out, _ = self.call(row, [sys.executable, "-m", "archcalc", "verify", name,
                                       "--device", self.device], self.timeouts["verify"])
        if code is not None:
            row.ok = code == 0
            row.result = {0: "agrees", 1: "DISAGREES"}.get(code, f"FAILED: {out}")
        return row

    def train(self, label: str, extra: List[str], kind: str = "train") -> Row:
        row = Row(label)
        if self.machine.cifar10 and not self.args.cpu:
            row.result = "skipped: no CIFAR-10 (--data-dir DIR)"
            return row
        if kind == "compile" and self.device == "cuda" and not self.machine.triton:
            row.result = "skipped: no triton, which --compile needs on CUDA"
            return row
        out = self.work / kind
        command = [sys.executable, "-m", "archcalc", "train", "--quick", *self.data, "--device",
                   self.device, "--out", str(out), "--log-every", "60", *extra]
        self.finish(row, out, self.call(row, command, self.timeouts[kind]))
        return row

    def ddp(self) -> Row:
        row = Row("torchrun ×2 train --quick")
        if self.machine.cifar10 and not self.args.cpu:
            row.result = "skipped: no CIFAR-10 (--data-dir DIR)"
            return row
        out = self.work / "ddp"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node", "2", "-m", "archcalc", "train", "--quick", *self.data,
                   "--device", self.device, "--out", str(out), "--log-every", "60"]
        self.finish(row, out, self.call(row, command, self.timeouts["ddp"]))
        return row

    def finish(self, row: Row, out: Path, called) -> None:
        code, message, _ = called
        if code is None:
            return
        metrics = _read_json(out / "metrics.json")
        row.ok = code == 0 and metrics is not None and metrics.get("test_accuracy") is not None
        if metrics and metrics.get("epochs"):
            row.images_per_second = metrics["epochs"][-1].get("images_per_second")
            row.test_accuracy = metrics.get("test_accuracy")
        row.result = "ok" if row.ok else f"FAILED (exit {code}): {message}"

    def call(self, row: Row, command: List[str], timeout: float):
        """(exit code, last line of stderr, stdout), or (None, ...) when the budget is spent."""
        left = self.deadline - time.monotonic()
        if left < min(20.0, timeout):
            row.result = f"skipped: the {self.args.budget:.0f} s budget is spent"
            return None, "", ""
        peaks = Path(tempfile.mkdtemp(dir=self.work, prefix="peak-"))
        env = {**self.env, "ARCHCALC_GPU_CHECK_PEAK_DIR": str(peaks)}
        started = time.monotonic()
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=self.work,
                                  timeout=min(timeout, left))
            code, err, out = done.returncode, done.stderr, done.stdout
        except subprocess.TimeoutExpired as stop:
            code, err, out = 124, f"timed out after {stop.timeout:.0f} s", ""
        row.seconds = time.monotonic() - started
        row.peak_bytes = _peak(peaks, "rss" if self.device == "cpu" else "cuda")
        return code, _message(err) or _last_line(out), out


def _peak(folder: Path, kind: str) -> Optional[int]:
    values = [p.get(kind) for p in map(_read_json, folder.glob("peak-*.json")) if p]
    values = [v for v in values if v is not None]
    return max(values) if values else None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# torchrun's own lines around a failure: banners, its glog-style log lines, its thread note
NOISE = re.compile(r"^([*=\-]+|[WEI]\d{4} .*|Setting OMP_NUM_THREADS.*)$")


def _message(stderr: str) -> str:
    """The line that says what went wrong: archcalc's one line, or the first line of a
    traceback's error, before torchrun's report of which rank failed."""
    lines = [l.strip() for l in (stderr or "").splitlines() if l.strip()]
    lines = [l for l in lines if not NOISE.match(l)]
    if not lines:
        return ""
    if lines[0].startswith("Traceback"):
        ends = [l for l in lines if not l.startswith(("Traceback", "File ", "^")) and ":" in l]
        return (ends[0] if ends else lines[-1])[:160]
    return lines[0][:160]


def _last_line(text: str) -> str:
    lines = [l.strip() for l in (text or "").strip().splitlines() if l.strip()]
    return lines[-1][:160] if lines else ""


def table(rows: List[Row], device: str) -> str:
    """The one table: plain text, columns aligned, numbers right-aligned."""
    memory = "peak GPU memory" if device == "cuda" else "peak RSS"
    head = ["step", "result", "images/s", "test accuracy", memory, "seconds"]
    body = [[r.step, r.result,
             "" if r.images_per_second is None else f"{r.images_per_second:,.0f}",
             "" if r.test_accuracy is None else f"{r.test_accuracy:.2%}",
             "" if r.peak_bytes is None else f"{r.peak_bytes / 2**20:,.0f} MiB",
             "" if r.seconds is None else f"{r.seconds:,.1f}"] for r in rows]
    widths = [max(len(line[i]) for line in [head] + body) for i in range(len(head))]
    right = {2, 3, 4, 5}

    def fmt(line):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(line, widths))).rstrip()
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(l) for l in body])


if __name__ == "__main__":
    sys.exit(main())
