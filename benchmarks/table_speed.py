"""How fast `archcalc table` answers, as a whole process, against PyTorch + fvcore for scale.

Prints the median wall time, piped and under a pseudo-terminal (what people see: the rich
table, fitted to 100 columns), of:
  - `archcalc table specs/googlenet.yaml` (target: at most 0.3 s on a 2-core machine);
  - the same on generated specs of 1,000 and 10,000 layers (target: at most 2 s for 10,000;
    the ratio shows whether growth is linear);
  - for scale: `import torch`, and building GoogLeNet in PyTorch and counting it with fvcore.

Run: python benchmarks/table_speed.py [--repeat 7]
"""
from __future__ import annotations

import argparse
import fcntl
import os
import pty
import struct
import termios
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


def piped(command: list) -> None:
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def in_terminal(command: list, columns: int = 100, rows: int = 40) -> None:
    """Run ``command`` with a pseudo-terminal of ``columns`` × ``rows`` as its screen and read
    everything it draws, as a terminal emulator would."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env,
                            close_fds=True)
    os.close(slave)
    try:
        while os.read(master, 65536):
            pass
    except OSError:     # EIO: the child closed its end
        pass
    finally:
        os.close(master)
    if proc.wait() != 0:
        raise subprocess.CalledProcessError(proc.returncode, command)


def median_seconds(command: list, repeat: int, run=piped) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run(command)
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
          f"median of {args.repeat} runs, whole processes, piped and under a 100-column pty")
    googlenet = cmd + ["table", str(ROOT / "specs" / "googlenet.yaml")]
    figures = {("googlenet", how): median_seconds(googlenet, args.repeat, run)
               for how, run in (("piped", piped), ("pty", in_terminal))}
    print(f"  table googlenet.yaml           {figures['googlenet', 'piped']:6.3f} s piped, "
          f"{figures['googlenet', 'pty']:.3f} s in a terminal   (target ≤ 0.3 s)")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1_000, 10_000):
            path = Path(tmp) / f"chain{n}.yaml"
            path.write_text(generated_spec(n))
            for how, run in (("piped", piped), ("pty", in_terminal)):
                figures[n, how] = median_seconds(cmd + ["table", str(path)],
                                                 max(3, args.repeat // 2), run)
            print(f"  table, {n:>6,} layers           {figures[n, 'piped']:6.3f} s piped, "
                  f"{figures[n, 'pty']:.3f} s in a terminal" +
                  ("   (target ≤ 2 s)" if n == 10_000 else ""))
        print(f"  10,000 / 1,000 layers          "
              f"{figures[10_000, 'piped'] / figures[1_000, 'piped']:6.1f} ×   (piped, start-up "
              "included)")
        per = {n: (figures[n, "piped"] - figures["googlenet", "piped"]) / n * 1e6
               for n in (1_000, 10_000)}
        print(f"  per layer beyond start-up      {per[1_000]:6.0f} µs at 1,000, {per[10_000]:.0f} µs "
              "at 10,000 (equal: linear)")
    try:
        out = subprocess.run([sys.executable, "-c", TORCH_PROBE], check=True,
                             capture_output=True, text=True).stdout.split()
    except (subprocess.CalledProcessError, IndexError) as exc:
        print(f"  for scale: torch + fvcore unavailable ({exc})")
        return
    torch_s = float(out[0])
    print(f"  for scale: import torch        {torch_s:6.3f} s")
    print(f"  for scale: build + fvcore      {float(out[1]):6.3f} s   "
          f"(fvcore total {int(float(out[2])):,} MACs)")
    for key, label in ((("googlenet", "pty"), "googlenet, pty"),
                       ((10_000, "piped"), "10,000 layers, piped"),
                       ((10_000, "pty"), "10,000 layers, pty")):
        print(f"  {label:<29} {figures[key] / torch_s:6.2f} × import torch")


if __name__ == "__main__":
    main()
