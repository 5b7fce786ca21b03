"""How long `archcalc verify specs/googlenet.yaml --device cpu` takes, and where the time goes.

Prints the median wall time of the whole process (target: at most 10 s on a 2-core machine,
importing torch included), then the parts of the median run: imports (torch, archcalc, fvcore:
timed in a separate process, as is Python's own start-up and exit with torch loaded), building
the model, the forward pass with hooks inside FlopCounterMode (whose first use imports
torch._dynamo, timed apart), the fvcore trace, and the rest (spec, comparisons, output).

Run: python benchmarks/verify_time.py [--repeat 3] [--spec specs/googlenet.yaml]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

IMPORT_PROBE = """
import time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import archcalc.cli, archcalc.pytorch.verify
t2 = time.perf_counter()
import fvcore.nn
t3 = time.perf_counter()
import torch._dynamo
t4 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""


def run_env() -> dict:
    """The environment of a run: this checkout's archcalc first on the path."""
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{path}" if path else str(ROOT))


def verify_run(spec: str) -> tuple:
    """Wall seconds of one whole `archcalc verify` process, and its own timings."""
    command = [sys.executable, "-m", "archcalc", "verify", spec, "--device", "cpu", "-f", "json"]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=run_env())
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"verify exited {proc.returncode}:\n{proc.stderr}")
    return wall, json.loads(proc.stdout)["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--spec", default=str(ROOT / "specs" / "googlenet.yaml"))
    args = parser.parse_args()
    print(f"archcalc verify {Path(args.spec).name} --device cpu · python "
          f"{sys.version.split()[0]} · {os.cpu_count()} cores · median of {args.repeat} "
          "whole processes")
    runs = sorted(verify_run(args.spec) for _ in range(args.repeat))
    wall, parts = runs[len(runs) // 2]
    print(f"  whole process                  {wall:6.2f} s   (target ≤ 10 s; runs: "
          f"{', '.join(f'{w:.2f}' for w, _ in runs)})")

    start = time.perf_counter()
    probe = subprocess.run([sys.executable, "-c", IMPORT_PROBE], check=True,
                           capture_output=True, text=True, env=run_env()).stdout.split()
    probe_wall = time.perf_counter() - start
    torch_s, archcalc_s, fvcore_s, dynamo_s = map(float, probe)
    imports = torch_s + archcalc_s + fvcore_s
    # what a process with torch loaded spends outside its own code: start-up and exit
    outside = probe_wall - imports - dynamo_s
    print(f"  imports                        {imports:6.2f} s   (torch {torch_s:.2f}, archcalc "
          f"and typer {archcalc_s:.2f}, fvcore {fvcore_s:.2f})")
    print(f"  Python start-up and exit       {outside:6.2f} s   (with torch loaded)")
    print(f"  build the model                {parts['build']:6.2f} s")
    print(f"  forward pass + FlopCounterMode {parts['forward']:6.2f} s   (of which importing "
          f"torch._dynamo, on first use: about {dynamo_s:.2f})")
    print(f"  fvcore trace                   {parts.get('fvcore', 0):6.2f} s")
    rest = wall - imports - outside - sum(parts.values())
    print(f"  the rest                       {rest:6.2f} s   (spec, comparisons, output; and the "
          "noise between the probe and the run)")


if __name__ == "__main__":
    main()
