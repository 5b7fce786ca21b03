"""Data-parallel training under torchrun: which process this is, and what the processes agree on.

``torchrun --nproc_per_node N -m archcalc train …`` starts N copies of `train`, each told its
place by environment variables (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT);
:func:`from_env` reads them (torch-free, so the CLI can check them first), :func:`join` forms
the process group (gloo on the CPU, NCCL on CUDA, one device per process) within a stated
timeout, so a group that cannot form is one line, not a hang. :class:`Peers` is what the engine
needs from the others: its share of each batch and of the test set, sums over all processes,
and an agreement each step on whether to stop, so that no process is left waiting in a
collective that the others will never join.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Mapping, Optional

from archcalc.errors import ArchcalcError

if TYPE_CHECKING:
    import torch

ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# How long a process waits for the others: to form the group, and in any one collective
# (a checkpoint written by rank 0 while the others wait included).
DEFAULT_TIMEOUT = 600.0
SYNC_BN_CPU = ("--sync-bn needs CUDA: PyTorch's SyncBatchNorm refuses CPU tensors (on the CPU "
               "each process normalizes over its own batch; drop --sync-bn)")


@dataclass(frozen=True)
class Cluster:
    """This process's place among the processes torchrun started."""

    world_size: int
    rank: int
    local_rank: int
    master: str         # MASTER_ADDR:MASTER_PORT, for messages

    @property
    def leader(self) -> bool:
        """Rank 0 alone prints progress and writes the run's files."""
        return self.rank == 0


def from_env(environ: Mapping[str, str] = os.environ) -> Optional[Cluster]:
    """The cluster torchrun describes in ``environ``; None when not started by torchrun (no
    WORLD_SIZE) or as its only process."""
    if "WORLD_SIZE" not in environ:
        return None
    missing = [k for k in ENV if not environ.get(k, "").strip()]
    if missing:
        raise ArchcalcError(f"WORLD_SIZE is set but {', '.join(missing)} not: start "
                            f"data-parallel training with torchrun")
    numbers = {}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        text = environ[key].strip()
        if not text.isdigit():
            raise ArchcalcError(f"{key} must be a whole number, got {text!r}")
        numbers[key] = int(text)
    world, rank = numbers["WORLD_SIZE"], numbers["RANK"]
    if world < 1 or rank >= world:
        raise ArchcalcError(f"RANK {rank} is not one of WORLD_SIZE {world}'s ranks (0..{world - 1})")
    if world == 1:
        return None
    return Cluster(world, rank, numbers["LOCAL_RANK"],
                   f"{environ['MASTER_ADDR'].strip()}:{environ['MASTER_PORT'].strip()}")


def join(cluster: Cluster, device_type: str, timeout_s: float = DEFAULT_TIMEOUT) -> "torch.device":
    """Form the process group; returns this process's device (cuda:LOCAL_RANK on CUDA)."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist
    if device_type == "cuda":
        if cluster.local_rank >= torch.cuda.device_count():
            raise ArchcalcError(f"LOCAL_RANK {cluster.local_rank} has no GPU: this node has "
                                f"{torch.cuda.device_count()}; start at most that many processes per node")
        device = torch.device("cuda", cluster.local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    try:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=cluster.rank,
                                world_size=cluster.world_size, timeout=timedelta(seconds=timeout_s),
                                device_id=device if device.type == "cuda" else None)
    except (RuntimeError, ValueError, OSError) as exc:     # torch's DistError is a RuntimeError
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ArchcalcError(f"the {cluster.world_size} processes did not form a group at "
                            f"{cluster.master} within {timeout_s:g} s (this is rank "
                            f"{cluster.rank}): {first}") from None
    return device


def leave() -> None:
    """Undo :func:`join` (a no-op when no group was formed)."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class Peers:
    """The other processes, as the engine sees them; every method but :meth:`part` is a
    collective, which every process must call at the same point."""

    def __init__(self, cluster: Cluster, device: "torch.device"):
        self.cluster, self.device = cluster, device
        self.rank, self.size = cluster.rank, cluster.world_size

    def part(self, count: int) -> slice:
        """This process's contiguous share of ``count`` items (sizes differ by one at most)."""
        return slice(self.rank * count // self.size, (self.rank + 1) * count // self.size)

    def wrap(self, module: "torch.nn.Module") -> "torch.nn.Module":
        from torch.nn.parallel import DistributedDataParallel
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def sum(self, *values: "torch.Tensor") -> list:
        """Each value summed over all processes, in float64 (counts stay exact below 2**53)."""
        import torch
        import torch.distributed as dist
        total = torch.stack([v.detach().to(self.device, torch.float64).reshape(()) for v in values])
        with self.contact():
            dist.all_reduce(total)
        return list(total.unbind())

    def agree(self, signum: Optional[int], failed: bool) -> tuple[int, int]:
        """(the largest stop signal any process received, or 0; 1 + the highest rank that
        failed, or 0): the same answer on every process, so all stop at the same step."""
        import torch
        import torch.distributed as dist
        flags = torch.tensor([signum or 0, self.rank + 1 if failed else 0], device=self.device)
        with self.contact():
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return int(flags[0]), int(flags[1])

    def from_leader(self, value):
        """Rank 0's ``value`` (a picklable object) on every process."""
        import torch.distributed as dist
        box = [value]
        with self.contact():
            dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    @contextlib.contextmanager
    def contact(self) -> Iterator[None]:
        """An exchange with the other processes (DDP's gradient sums in a backward pass too):
        one that fails because another process died or stopped answering becomes one line."""
        import torch.distributed as dist
        try:
            yield
        except RuntimeError as exc:    # gloo: "Connection reset by peer"; NCCL: its watchdog
            if not isinstance(exc, dist.DistError) and not any(
                    word in str(exc) for word in ("gloo", "NCCL", "Connection", "peer", "Timed out")):
                raise               # a failure of this process's own (autograd, memory)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ArchcalcError(f"rank {self.rank} lost the other processes (one stopped or "
                                f"died; its own output says why): {first[:300]}") from None


def has_batchnorm(model: "torch.nn.Module") -> bool:
    from torch.nn.modules.batchnorm import _BatchNorm
    return any(isinstance(m, _BatchNorm) for m in model.modules())


def sync_bn_note(model: "torch.nn.Module", device_type: str) -> Optional[str]:
    """For --sync-bn: a note when ``model`` has no BatchNorm (nothing to synchronize, anywhere);
    refused on the CPU when it has some; else None."""
    if not has_batchnorm(model):
        return "--sync-bn: the spec has no BatchNorm layer, so there is nothing to synchronize"
    if device_type != "cuda":
        raise ArchcalcError(SYNC_BN_CPU)
    return None


def sync_batchnorm(model: "torch.nn.Module") -> "torch.nn.Module":
    """``model`` with every BatchNorm a SyncBatchNorm (same weights and state_dict keys)."""
    import torch
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
