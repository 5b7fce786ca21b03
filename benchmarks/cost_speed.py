"""What the cost columns add to `archcalc table`: plain `table` against
`table --memory --rf --roofline h200` on the zoo's largest specs, as whole processes.

Target (issue 12): at most 1.5 × plain `table` on the largest bundled spec. Both commands are
timed in the same run, alternating, so the machine's noise cancels in their ratio; the figure to
read is the ratio, not the seconds.

Run: python benchmarks/cost_speed.py [--repeat 7]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import time

from table_speed import ENV, ZOO, archcalc_command, count_layers

COST = ["--memory", "--rf", "--roofline", "h200"]


def run(command: list) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=ENV)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    cmd = archcalc_command()
    print(f"archcalc: {' '.join(cmd)} · median of {args.repeat} runs, piped, alternating "
          f"plain and {' '.join(COST)}")
    for spec, variant in ZOO:
        plain = cmd + ["table", spec] + (["--variant", variant] if variant else [])
        cost = plain + COST
        run(plain), run(cost)           # untimed: the compiled modules' cache
        times = {"plain": [], "cost": []}
        for _ in range(args.repeat):
            times["plain"].append(run(plain))
            times["cost"].append(run(cost))
        p, c = (statistics.median(times[k]) for k in ("plain", "cost"))
        label = f"{spec}{' --variant ' + variant if variant else ''}"
        print(f"  {label:<26} {count_layers(cmd, spec, variant):5,} layers   plain {p:6.3f} s   "
              f"with cost columns {c:6.3f} s   ratio {c / p:4.2f}   (target ≤ 1.5)")


if __name__ == "__main__":
    main()
