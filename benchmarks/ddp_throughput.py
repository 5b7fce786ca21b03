"""Data-parallel training speed on the CPU: one process against two (torchrun, gloo), for the
same global batch, and the engine against a hand-written loop in one process.

    python benchmarks/ddp_throughput.py [--steps 30] [--batch-size 64] [--rounds 3]

Both sides train the notes' CIFAR-10 CNN (specs/cifar-cnn.yaml, built as `archcalc train`
builds it) on the synthetic set with the engine, one thread per process, for ``--steps`` steps of
``--batch-size`` images in all: one process takes the whole batch, each of the two half of it
and the gradients are summed over gloo. The figure is the engine's own ``images_per_second``
(training steps only; the two-process figure is rank 0's: all images of a step over its time).
Best round of each counts, as in benchmarks/train_throughput.py: noise only slows a round.

What two cores allow: two processes of one thread each can at best double the rate of one, and
only if both cores are free and the gradient exchange (1.25M parameters, 5 MB, every step) is
cheap beside a step's compute. On a shared machine the second process competes with whatever
else runs, so the ratio shows the machine as much as the code.

The last part reruns benchmarks/train_throughput.py's comparison (the engine against the plainest
loop doing the same work, in one process; target >= 0.95), so one script reports both.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def engine_rate(steps: int, batch_size: int, peers=None) -> float:
    """Training images per second of the engine over ``steps`` steps of ``batch_size`` images
    in all (this process's share when ``peers`` is given)."""
    import torch

    from archcalc import build_model
    from archcalc.training.datasets import make_synthetic
    from archcalc.training.engine import TrainConfig, train
    processes = peers.size if peers else 1
    data = make_synthetic(train=steps * batch_size, test=processes * 8)
    torch.manual_seed(0)
    model = build_model("cifar-cnn", logits=True)
    config = TrainConfig(epochs=1, batch_size=batch_size // processes, optimizer="adam", lr=1e-3,
                         schedule="none", augment=False, device="cpu", threads=1,
                         max_steps_per_epoch=steps, processes=processes)
    with tempfile.TemporaryDirectory() as out_dir:
        result = train(model, data, config, out_dir if not peers or peers.rank == 0 else None,
                       peers=peers)
    return result.history[0].images_per_second


def worker(steps: int, batch_size: int) -> None:
    """One of torchrun's processes: rank 0 prints the rate as JSON."""
    from archcalc.training import distributed
    cluster = distributed.from_env()
    peers = distributed.Peers(cluster, distributed.join(cluster, "cpu", 120))
    try:
        rate = engine_rate(steps, batch_size, peers)
    finally:
        distributed.leave()
    if peers.rank == 0:
        print(json.dumps({"rate": rate}))


def two_process_rate(steps: int, batch_size: int) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_addr", "127.0.0.1", "--master_port", str(port), __file__,
                          "--worker", "--steps", str(steps), "--batch-size", str(batch_size)],
                         env=env, capture_output=True, text=True, timeout=600, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64, help="global: over all processes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.worker:
        return worker(args.steps, args.batch_size)
    import torch
    torch.set_num_threads(1)
    print(f"cifar-cnn on synthetic data, global batch {args.batch_size}, {args.steps} steps, "
          f"1 thread per process, {os.cpu_count()} CPUs, torch {torch.__version__}")
    best = {"1 process": 0.0, "2 processes": 0.0}
    for round_ in range(1, args.rounds + 1):
        for name, rate in (("1 process", lambda: engine_rate(args.steps, args.batch_size)),
                           ("2 processes", lambda: two_process_rate(args.steps, args.batch_size))):
            speed = rate()
            best[name] = max(best[name], speed)
            print(f"round {round_}: {name:11s} {speed:8.0f} images/s", flush=True)
    print(f"best: 1 process {best['1 process']:.0f}, 2 processes (DDP, gloo) "
          f"{best['2 processes']:.0f} images/s; ratio {best['2 processes'] / best['1 process']:.2f} "
          f"(at most 2 on two free cores)", flush=True)
    print("\nthe engine against a plain PyTorch loop, one process "
          "(benchmarks/train_throughput.py):", flush=True)
    subprocess.run([sys.executable, str(HERE / "train_throughput.py"), "--rounds", "4",
                    "--steps", str(args.steps), "--batch-size", str(args.batch_size)],
                   env=dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")),
                   check=True)


if __name__ == "__main__":
    main()
