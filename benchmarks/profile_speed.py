"""How long `archcalc profile specs/googlenet.yaml --device cpu` takes (target: at most 30 s
on the 2-core machine this project is developed on, importing torch included).

Prints the wall time of each whole process and the median, and the phases profile reports
in its JSON (the `cpu` profile is measured in the first run if this machine has no cached
one yet: its cache is the user's, $XDG_CACHE_HOME/archcalc, unless --fresh-cache gives each
run a new one, which times the measurement too).

Run: python benchmarks/profile_speed.py [--repeat 3] [--spec specs/googlenet.yaml]
     [--backward] [--fresh-cache]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(spec: str, backward: bool, cache: str | None) -> float:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    if cache is not None:
        env["XDG_CACHE_HOME"] = cache
    args = [sys.executable, "-m", "archcalc", "profile", spec, "--device", "cpu", "-f", "json"]
    args += ["--backward"] if backward else []
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"archcalc profile failed ({done.returncode}): {done.stderr.strip()}")
    data = json.loads(done.stdout)
    totals = data["totals"]["forward"]
    print(f"  {wall:6.2f} s wall · {len(data['layers'])} layers · layers measured "
          f"{totals['measured_seconds'] * 1e3:.1f} ms, predicted "
          f"{totals['predicted_seconds'] * 1e3:.1f} ms, one whole pass "
          f"{totals['network_measured_seconds'] * 1e3:.1f} ms · "
          f"{totals['achieved_fraction_of_peak']:.1%} of peak · threads {data['threads']}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--spec", default="specs/googlenet.yaml")
    parser.add_argument("--backward", action="store_true")
    parser.add_argument("--fresh-cache", action="store_true")
    opts = parser.parse_args()
    print(f"archcalc profile {opts.spec} --device cpu{' --backward' * opts.backward}")
    walls = []
    for _ in range(opts.repeat):
        if opts.fresh_cache:
            with tempfile.TemporaryDirectory() as cache:
                walls.append(run_once(opts.spec, opts.backward, cache))
        else:
            walls.append(run_once(opts.spec, opts.backward, None))
    print(f"median {statistics.median(walls):.2f} s wall over {len(walls)} runs "
          f"(target: at most 30 s)")


if __name__ == "__main__":
    main()
