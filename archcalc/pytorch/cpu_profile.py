"""The `cpu` device profile, measured on this machine: no datasheet gives the peak of a CPU
at the thread count archcalc runs with (one by default: pytorch/devices.py), on a machine
that may be shared.

- peak FLOP/s per data type: square torch matmuls (MATMUL_N) on ``cpu_threads()`` threads,
  2·n³ operations each, repeated for about PHASE_SECONDS; the best of three rounds;
- bandwidth: ``dst.copy_(src)`` of COPY_BYTES (read once, written once: 2 × COPY_BYTES moved
  a copy), far larger than any cache; the best of three rounds;
- memory: the machine's physical memory.

About two seconds in all, once: the result is cached as JSON under
``$XDG_CACHE_HOME/archcalc`` (else ``~/.cache/archcalc``), one file per CPU model and thread
count, written whole (files.write_atomic). A cache that cannot be read back as a complete
profile (cut short, edited, another version) is measured again and replaced.
"""
from __future__ import annotations

import json
import math
import os
import platform
import re
import time
from pathlib import Path
from typing import Callable, Dict, Optional

import torch

from archcalc.core.memory import DTYPES
from archcalc.core.roofline import Device, Entry
from archcalc.errors import ArchcalcError
from archcalc.files import write_atomic
from archcalc.pytorch.devices import cpu_threads

CACHE_VERSION = 1
MATMUL_N = 384
COPY_BYTES = 64 * 2 ** 20
PHASE_SECONDS = 0.15
ROUNDS = 3
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "archcalc"


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what platform says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cache_path(model: str, threads: int) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", model).strip("-").lower()[:80] or "cpu"
    return cache_dir() / f"cpu-{slug}-{threads}t.json"


def _best_rate(run: Callable[[], None], amount: float) -> float:
    """``amount`` per second of ``run``: warmed up once, then the best of ROUNDS rounds of
    about PHASE_SECONDS each."""
    run()
    best = 0.0
    for _ in range(ROUNDS):
        count, start = 0, time.perf_counter()
        while True:
            run()
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= PHASE_SECONDS:
                break
        best = max(best, count * amount / elapsed)
    return best


def measure(threads: int) -> Dict[str, object]:
    """The numbers of the `cpu` profile at ``threads`` intra-op threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            peaks = {}
            for name in DTYPES:
                a = torch.randn(MATMUL_N, MATMUL_N).to(TORCH_DTYPES[name])
                b = torch.randn(MATMUL_N, MATMUL_N).to(TORCH_DTYPES[name])
                peaks[name] = _best_rate(lambda: torch.mm(a, b), 2 * MATMUL_N ** 3)
            src = torch.ones(COPY_BYTES // 4)
            dst = torch.empty_like(src)
            bandwidth = _best_rate(lambda: dst.copy_(src), 2 * COPY_BYTES)
    finally:
        torch.set_num_threads(before)
    return {"peak_flops": peaks, "bandwidth": bandwidth, "memory": physical_memory()}


def physical_memory() -> float:
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return float("nan")


def _valid(record, model: str, threads: int) -> bool:
    """Whether a cached record is a complete profile of this CPU at this thread count."""
    try:
        peaks = record["peak_flops"]
        numbers = [peaks[d] for d in DTYPES] + [record["bandwidth"]]
        return (record["version"] == CACHE_VERSION and record["model"] == model
                and record["threads"] == threads
                and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                        and math.isfinite(v) and v > 0 for v in numbers)
                and isinstance(record["memory"], (int, float)))
    except (KeyError, TypeError):
        return False


MAX_CACHE_BYTES = 64 * 1024


def load_or_measure(threads: Optional[int] = None) -> Dict[str, object]:
    """The cached record for this CPU and thread count, else a new measurement (cached)."""
    threads = cpu_threads(threads)
    model = cpu_model()
    path = cache_path(model, threads)
    try:
        # a regular file of a record's size: a FIFO or /dev/zero in its place would never end
        if not path.is_file() or path.stat().st_size > MAX_CACHE_BYTES:
            raise ValueError("not a cache record")
        record = json.loads(path.read_text(encoding="utf-8"))
        if _valid(record, model, threads):
            return dict(record, cache=str(path), cached=True)
    except (OSError, ValueError):
        pass
    record = dict(measure(threads), version=CACHE_VERSION, model=model, threads=threads,
                  measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    stored = str(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(record, indent=2) + "\n", force=True)
    except (OSError, ArchcalcError) as exc:       # measured all the same; just not kept
        stored = f"not cached ({exc})"
    return dict(record, cache=stored, cached=False)


def device(entry: Entry, threads: Optional[int] = None) -> Device:
    """The `cpu` entry of a devices file as a Device, measured (or read from the cache)."""
    record = load_or_measure(threads)
    source = (f"measured {record['measured_at']} on {record['model']}, {record['threads']} "
              f"thread(s): {MATMUL_N}×{MATMUL_N} torch matmuls, a {COPY_BYTES // 2 ** 20} MiB "
              f"copy; cache: {record['cache']}")
    return Device(entry.key, f"{entry.name} ({record['model']}, {record['threads']} "
                  f"thread{'s' * (record['threads'] != 1)})", "CPU",
                  dict(record["peak_flops"]), float(record["bandwidth"]),
                  float(record["memory"]), source)
