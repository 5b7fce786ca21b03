"""How fast `archcalc table` answers, as a whole process, against PyTorch + fvcore for scale.

Prints the median wall time of:
  - `archcalc table specs/googlenet.yaml` (target: at most 0.3 s on a 2-core machine);
  - the same on generated specs of 1,000 and 10,000 layers (target: at most 2 s for 10,000;
    the ratio shows whether growth is linear);
  - for scale: `import torch`, and building GoogLeNet in PyTorch and counting it with fvcore.

Run: python benchmarks/table_speed.py [--repeat 7]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def archcalc_command() -> list:
    script = shutil.which("archcalc", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "archcalc"]


def median_seconds(command: list, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def generated_spec(layers: int) -> str:
    """A chain of ``layers`` primitive layers: conv, batchnorm, relu repeated, 16×16 maps."""
    lines = ["name: generated", "input: [8, 16, 16]", "layers:"]
    ops = ["{conv: {out: 8, kernel: 3}}", "batchnorm", "relu"]
    lines += [f"  l{i}: {ops[i % 3]}" for i in range(layers)]
    return "\n".join(lines) + "\n"


TORCH_PROBE = """
import time, logging, warnings
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
from fvcore.nn import FlopCountAnalysis
import archcalc
model = archcalc.build_model("googlenet").eval()
total = FlopCountAnalysis(model, torch.zeros(1, 3, 224, 224)).total()
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, total)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    cmd = archcalc_command()
    print(f"archcalc: {' '.join(cmd)} · python {sys.version.split()[0]} · "
          f"median of {args.repeat} runs, whole processes")
    googlenet = median_seconds(cmd + ["table", str(ROOT / "specs" / "googlenet.yaml")],
                               args.repeat)
    print(f"  table googlenet.yaml           {googlenet:6.3f} s   (target ≤ 0.3 s)")
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {}
        for n in (1_000, 10_000):
            path = Path(tmp) / f"chain{n}.yaml"
            path.write_text(generated_spec(n))
            sizes[n] = median_seconds(cmd + ["table", str(path)], max(3, args.repeat // 2))
            print(f"  table, {n:>6,} layers           {sizes[n]:6.3f} s" +
                  ("   (target ≤ 2 s)" if n == 10_000 else ""))
        print(f"  10,000 / 1,000 layers          {sizes[10_000] / sizes[1_000]:6.1f} ×   "
              "(start-up included)")
        per = {n: (t - googlenet) / n * 1e6 for n, t in sizes.items()}
        print(f"  per layer beyond start-up      {per[1_000]:6.0f} µs at 1,000, {per[10_000]:.0f} µs "
              "at 10,000 (equal: linear)")
    try:
        out = subprocess.run([sys.executable, "-c", TORCH_PROBE], check=True,
                             capture_output=True, text=True).stdout.split()
        print(f"  for scale: import torch        {float(out[0]):6.3f} s")
        print(f"  for scale: build + fvcore      {float(out[1]):6.3f} s   "
              f"(fvcore total {int(float(out[2])):,} MACs)")
    except (subprocess.CalledProcessError, IndexError) as exc:
        print(f"  for scale: torch + fvcore unavailable ({exc})")


if __name__ == "__main__":
    main()
