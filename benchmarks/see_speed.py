"""How fast the commands that show a network answer, as whole processes, against
`python -c 'import torch'` timed in the same run for scale (the machine's noise cancels in a
ratio). Issue 14's targets:
  - `archcalc sweep resnet --input 3x224:480:8`: 33 ResNet-50s, 224 to 480 in steps of 8
    (target: at most 3 s);
  - `archcalc graph googlenet -o x.svg` (target: at most 1 s);
  - `archcalc report googlenet -o x.html` (target: at most 2 s).
A command this installation does not have yet (its `--help` fails) is skipped with a line
that says so.

Run: python benchmarks/see_speed.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from table_speed import ENV, archcalc_command, median_seconds  # noqa: E402

# (what it is, the command after `archcalc`, the target in seconds); {tmp}: a scratch folder
TARGETS = [
    ("sweep resnet, 33 points", ["sweep", "resnet", "--input", "3x224:480:8"], 3.0),
    ("graph googlenet -o x.svg", ["graph", "googlenet", "-o", "{tmp}/x.svg"], 1.0),
    ("report googlenet -o x.html", ["report", "googlenet", "-o", "{tmp}/x.html"],
     2.0),
]


def available(cmd: list, command: str) -> bool:
    """Whether ``archcalc COMMAND --help`` works here (an older installation lacks some)."""
    return subprocess.run(cmd + [command, "--help"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, env=ENV).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cmd = archcalc_command()
    print(f"archcalc: {' '.join(cmd)} · python {sys.version.split()[0]} · median of "
          f"{args.repeat} runs after one untimed, whole processes, output piped")
    torch_s = None
    try:
        torch_s = median_seconds([sys.executable, "-c", "import torch"], args.repeat)
        print(f"  for scale: python -c 'import torch'   {torch_s:6.3f} s")
    except subprocess.CalledProcessError:
        print("  for scale: torch is not installed here; no ratios")
    with tempfile.TemporaryDirectory() as tmp:
        for label, argv, target in TARGETS:
            if not available(cmd, argv[0]):
                print(f"  {label:<30} skipped: `archcalc {argv[0]} --help` fails here")
                continue
            try:
                seconds = median_seconds(cmd + [a.format(tmp=tmp) for a in argv], args.repeat)
            except subprocess.CalledProcessError as exc:
                print(f"  {label:<30} failed: exit {exc.returncode}")
                continue
            ratio = f" ({seconds / torch_s:.2f} × import torch)" if torch_s else ""
            verdict = "ok" if seconds <= target else "OVER"
            print(f"  {label:<30} {seconds:6.3f} s{ratio}   (target ≤ {target:g} s: {verdict})")


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"  (the whole benchmark took {time.perf_counter() - started:.0f} s)")
