"""How fast `archcalc table` answers, as a whole process, against PyTorch + fvcore for scale.

Prints the median wall time, piped and under a pseudo-terminal (what people see: the rich
table, fitted to 100 columns), each also as a ratio to `python -c 'import torch'` timed in the
same run (the machine's noise cancels in a ratio), of:
  - `archcalc table` on GoogLeNet and on the zoo's largest specs (target: at most 0.3 s on a
    quiet 2-core machine, and 0.1 × import torch);
  - generated specs of 1,000 and 10,000 layers, a chain and one written with stages (target
    for 10,000: at most 2 s and 0.7 × import torch; 10,000 / 1,000 shows whether growth is
    linear);
  - for scale: building GoogLeNet in PyTorch and counting it with fvcore.

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


# What a user's machine does: Python caches compiled modules (this development machine sets
# PYTHONDONTWRITEBYTECODE, which would compile archcalc's modules from source in every run).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def piped(command: list) -> None:
    # stderr too: `-o` commands say "wrote FILE" there; a failure still raises (check=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=ENV)


def in_terminal(command: list, columns: int = 100, rows: int = 40) -> None:
    """Run ``command`` with a pseudo-terminal of ``columns`` × ``rows`` as its screen and read
    everything it draws, as a terminal emulator would."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in ENV.items() if k not in ("COLUMNS", "LINES")}
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
    run(command)        # a first run, untimed: it writes the compiled modules' cache
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


# The zoo's largest networks (by primitive layers) and the variant that makes each largest.
ZOO = [("resnet", "resnet152"), ("densenet121", None), ("efficientnet-b0", None),
       ("convnext-t", None), ("unet", None), ("vgg", "E")]


def stage_spec(layers: int) -> str:
    """``layers`` primitive layers written with stages: a conv-batchnorm-relu block stamped in
    four stages, the way a real spec reaches that size."""
    per_stage = layers // 12
    lines = ["name: staged", "input: [8, 16, 16]", "blocks:", "  unit:", "    args: [out]",
             "    body: [conv: {out: out, kernel: 3}, batchnorm: {act: relu}]", "layers:"]
    lines += [f"  stage{i}: {{stage: {{block: unit, repeat: {per_stage}, args: {{out: 8}}}}}}"
              for i in range(4)]
    return "\n".join(lines) + "\n"


def count_layers(cmd: list, spec: str, variant) -> int:
    args = cmd + ["table", spec, "--detail", "-f", "csv"] + (["--variant", variant] if variant else [])
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return len(out.splitlines()) - 2        # the header and the total


def both(cmd: list, repeat: int) -> dict:
    return {how: median_seconds(cmd, repeat, run)
            for how, run in (("piped", piped), ("pty", in_terminal))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    cmd = archcalc_command()
    print(f"archcalc: {' '.join(cmd)} · python {sys.version.split()[0]} · "
          f"median of {args.repeat} runs, whole processes, piped and under a 100-column pty")
    torch_s = median_seconds([sys.executable, "-c", "import torch"], args.repeat)
    print(f"  for scale: python -c 'import torch'   {torch_s:6.3f} s")
    figures = {}

    def show(label: str, key, target: str, ratio_target: str) -> None:
        f = figures[key]
        print(f"  {label:<34} {f['piped']:6.3f} s piped ({f['piped'] / torch_s:.2f} × torch), "
              f"{f['pty']:.3f} s in a terminal ({f['pty'] / torch_s:.2f} × torch)   "
              f"(target ≤ {target}, ≤ {ratio_target} × torch)")

    figures["googlenet"] = both(cmd + ["table", str(ROOT / "specs" / "googlenet.yaml")],
                                args.repeat)
    show("table googlenet", "googlenet", "0.3 s", "0.1")
    for spec, variant in ZOO:
        if not (ROOT / "specs" / f"{spec}.yaml").exists():
            continue
        command = cmd + ["table", spec] + (["--variant", variant] if variant else [])
        figures[spec] = both(command, args.repeat)
        label = f"table {spec}{' --variant ' + variant if variant else ''}"
        show(f"{label} ({count_layers(cmd, spec, variant):,} layers)", spec, "0.3 s", "0.1")
    with tempfile.TemporaryDirectory() as tmp:
        for name, text, n in (("chain", generated_spec(1_000), 1_000),
                              ("chain", generated_spec(10_000), 10_000),
                              ("stages", stage_spec(10_000), 10_000)):
            path = Path(tmp) / f"{name}{n}.yaml"
            path.write_text(text)
            figures[name, n] = both(cmd + ["table", str(path)], max(3, args.repeat // 2))
            show(f"table, {n:,} layers ({name})", (name, n), "2 s" if n == 10_000 else "—",
                 "0.7" if n == 10_000 else "—")
    print(f"  10,000 / 1,000 layers (chain)      "
          f"{figures['chain', 10_000]['piped'] / figures['chain', 1_000]['piped']:6.1f} ×   "
          "(piped, start-up included)")
    try:
        out = subprocess.run([sys.executable, "-c", TORCH_PROBE], check=True,
                             capture_output=True, text=True).stdout.split()
    except (subprocess.CalledProcessError, IndexError) as exc:
        print(f"  for scale: torch + fvcore unavailable ({exc})")
        return
    print(f"  for scale: build + fvcore googlenet {float(out[1]):6.3f} s   "
          f"(fvcore total {int(float(out[2])):,} MACs)")


if __name__ == "__main__":
    main()
