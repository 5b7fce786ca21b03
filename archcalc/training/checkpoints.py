"""Is a checkpoint one this run can continue from? Checked key by key before any of it is used.

``torch.load(weights_only=True)`` already refuses anything but tensors and plain containers, so
a checkpoint cannot run code; but a damaged, tampered or foreign one could still hold the wrong
keys, types, sizes or positions, which used to end in a traceback deep inside PyTorch
(ZeroDivisionError, size mismatch) or, for ``epoch: 10**6``, in a run that "finished" with
nothing trained. :func:`check_state` says what is wrong in one line, or nothing.

Position: after ``epoch`` whole epochs and ``step`` steps of the next one, the scheduler and
the optimizer have both stepped ``epoch × steps + step`` times; ``running.seen`` counts
``step × batch_size × processes`` images (all processes') and ``history`` holds ``epoch`` records. A checkpoint whose figures
disagree was not written by this run at a step boundary.
"""
from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, Optional

import torch

KEYS = ("format", "config", "model", "optimizer", "scheduler", "epoch", "step", "order",
        "running", "rng", "history")
RUNNING = {"loss_sum": torch.float64, "correct": torch.int64}


class Invalid(Exception):
    """What is wrong with the checkpoint, as a phrase."""


def check_state(state: Any, run) -> Optional[str]:
    """None when ``state`` is a checkpoint ``run`` (an engine ``_Run``) can load, else why not."""
    try:
        _check(state, run)
    except Invalid as problem:
        return str(problem)
    return None


def _check(state: Any, run) -> None:
    if not isinstance(state, dict):
        raise Invalid(f"it holds a {type(state).__name__}, not a checkpoint's dictionary")
    missing = [k for k in KEYS if k not in state]
    if missing:
        raise Invalid(f"missing {', '.join(repr(k) for k in missing)}")
    config, steps = run.config, run.steps
    epoch = _int(state, "epoch", 0, config.epochs, f"this run has {config.epochs} epochs")
    step = _int(state, "step", 0, steps, f"this run's epochs have {steps} steps")
    if epoch == config.epochs and step:
        raise Invalid(f"'step' is {step} after the last epoch")
    done = epoch * steps + step
    _model(state["model"], run.model)
    _optimizer(state["optimizer"], run.optimizer, done)
    _scheduler(state["scheduler"], run.scheduler, done)
    _order(state["order"], step, len(run.train_y))
    _running(state["running"], step * config.global_batch)
    _rng(state["rng"], run)
    _history(state["history"], epoch)


def equal(value: Any, wanted: Any) -> bool:
    """``value == wanted`` for an untrusted value: of the same type first, and False where
    comparing fails (a tensor's == is elementwise and has no truth value)."""
    if type(value) is not type(wanted):
        return False
    try:
        return bool(value == wanted)
    except (RuntimeError, TypeError, ValueError):
        return False


def _int(state: dict, key: str, low: int, high: int, why: str) -> int:
    value = state[key]
    if type(value) is not int:
        raise Invalid(f"{key!r} is a {type(value).__name__}, not a whole number")
    if not low <= value <= high:
        raise Invalid(f"{key!r} is {value}, outside {low}..{high} ({why})")
    return value


def _tensor(value: Any, what: str, dtype: torch.dtype, shape=None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise Invalid(f"{what} is a {type(value).__name__}, not a tensor")
    if value.dtype != dtype:
        raise Invalid(f"{what} holds {value.dtype}, not {dtype}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise Invalid(f"{what} has shape {tuple(value.shape)}, not {tuple(shape)}")
    return value


def _dict(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise Invalid(f"{what} is a {type(value).__name__}, not a dictionary")
    return value


def _model(saved: Any, model: torch.nn.Module) -> None:
    saved, wanted = _dict(saved, "'model'"), model.state_dict()
    missing = [k for k in wanted if k not in saved]
    extra = [k for k in saved if k not in wanted]
    if missing or extra:
        names = (missing or extra)[:3]
        raise Invalid(f"its weights are not this spec's: {'missing' if missing else 'unexpected'} "
                      f"{', '.join(names)}{' …' if len(missing or extra) > 3 else ''}")
    for name, tensor in wanted.items():
        _tensor(saved[name], f"weight '{name}'", tensor.dtype, tensor.shape)
        if tensor.is_floating_point() and not bool(torch.isfinite(saved[name]).all()):
            raise Invalid(f"weight '{name}' holds NaN or infinite values")


# The state each optimizer keeps per parameter once it has stepped (SGD's buffer is None
# without momentum); a slot missing or of another kind ends in a traceback inside the step.
SLOTS = {"Adam": {"step", "exp_avg", "exp_avg_sq"}, "SGD": {"momentum_buffer"}}
# Parameter-group entries the schedule moves (one-cycle moves Adam's betas too); every other
# entry comes from the configuration, which _read_checkpoint has already found equal.
SCHEDULED = ("lr", "betas", "momentum")
# A scheduler's position; every other entry comes from the configuration.
SCHEDULER_POSITION = ("last_epoch", "_step_count", "_last_lr", "_get_lr_called_within_step",
                      "_is_initial")


def _optimizer(saved: Any, optimizer: torch.optim.Optimizer, done: int) -> None:
    saved = _dict(saved, "'optimizer'")
    groups, wanted = saved.get("param_groups"), optimizer.state_dict()["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(wanted) or \
            any(not isinstance(g, dict) or not isinstance(g.get("params"), list) for g in groups):
        raise Invalid("'optimizer' is not this run's optimizer (its parameter groups differ)")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    ids = [i for g in groups for i in g["params"]]
    if len(ids) != len(params) or set(ids) != set(range(len(params))):
        raise Invalid("'optimizer' is not this run's optimizer (its parameter groups differ)")
    for group, fresh in zip(groups, wanted):
        if set(group) != set(fresh):
            raise Invalid("'optimizer' is not this run's optimizer (its settings differ)")
        for name, value in fresh.items():
            if name == "params":
                continue
            if name in SCHEDULED:
                _like(group[name], value, f"'optimizer' {name}")
            elif not equal(group[name], value):
                raise Invalid(f"'optimizer' {name} is {group[name]!r}, this run's is {value!r}")
    by_id = dict(zip(ids, params))
    state = _dict(saved.get("state"), "'optimizer' state")
    slots_wanted = SLOTS.get(type(optimizer).__name__)
    # SGD without momentum keeps no state at all: nothing to check but that there is none
    stateless = isinstance(optimizer, torch.optim.SGD) and \
        all(g["momentum"] == 0 for g in optimizer.param_groups)
    if done and len(state) != len(params) and not (stateless and not state):
        raise Invalid(f"'optimizer' keeps state for {len(state)} of {len(params)} parameters")
    for key, slots in state.items():
        if key not in by_id:
            raise Invalid(f"'optimizer' has state for parameter {key!r}, which this model lacks")
        slots = _dict(slots, f"'optimizer' state {key}")
        if slots_wanted is not None and set(slots) != slots_wanted:
            raise Invalid(f"'optimizer' state of parameter {key} holds "
                          f"{', '.join(sorted(map(str, slots))) or 'nothing'}, not "
                          f"{', '.join(sorted(slots_wanted))}")
        for slot, value in slots.items():
            if slot == "step":
                count = value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 \
                    else value
                if isinstance(count, float) and count.is_integer():
                    count = int(count)
                if not equal(count, done):
                    raise Invalid(f"'optimizer' took {count!r} steps, the position says {done}")
            elif not (value is None and slot == "momentum_buffer"):
                _tensor(value, f"'optimizer' {slot} of parameter {key}", by_id[key].dtype,
                        by_id[key].shape)


def _like(value: Any, fresh: Any, what: str) -> None:
    """``value`` has ``fresh``'s form (numbers finite; tuples and lists as long), so code
    written for this run's values can use it."""
    if isinstance(fresh, (tuple, list)):
        if not isinstance(value, (tuple, list)) or len(value) != len(fresh):
            raise Invalid(f"{what} is {value!r}, not {len(fresh)} numbers")
        for item, like in zip(value, fresh):
            _like(item, like, what)
    elif isinstance(fresh, (int, float)) and not isinstance(fresh, bool):
        if type(value) not in (int, float) or not math.isfinite(value):
            raise Invalid(f"{what} is {value!r}, not a finite number")
    elif type(value) is not type(fresh):
        raise Invalid(f"{what} is a {type(value).__name__}, not a {type(fresh).__name__}")


def _scheduler(saved: Any, scheduler, done: int) -> None:
    saved, wanted = _dict(saved, "'scheduler'"), scheduler.state_dict()
    if set(saved) != set(wanted):
        raise Invalid("'scheduler' is not this run's learning-rate schedule")
    if not equal(saved.get("last_epoch"), done):
        raise Invalid(f"'scheduler' took {saved.get('last_epoch')} steps, the position says {done}")
    for key, value in wanted.items():
        if key in SCHEDULER_POSITION:
            _like(saved[key], value, f"'scheduler' {key}")
        elif not equal(saved[key], value):
            raise Invalid(f"'scheduler' {key} is {saved[key]!r}, this run's is {value!r}")


def _order(order: Any, step: int, images: int) -> None:
    if order is None:
        if step:
            raise Invalid(f"'order' is missing in the middle of an epoch (step {step})")
        return
    _tensor(order, "'order'", torch.int64, (images,))
    if not torch.equal(order.sort().values, torch.arange(images)):
        raise Invalid(f"'order' is not an order of the {images} training images")


def _running(running: Any, seen: int) -> None:
    running = _dict(running, "'running'")
    for key, dtype in RUNNING.items():
        _tensor(running.get(key), f"'running' {key}", dtype, ())
    if type(running.get("seen")) is not int or running["seen"] != seen:
        raise Invalid(f"'running' seen is {running.get('seen')!r}; the position says {seen} images")
    for key in ("seconds", "lr"):
        value = running.get(key)
        if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
            raise Invalid(f"'running' {key} is {value!r}, not a finite number ≥ 0")


def _rng(rng: Any, run) -> None:
    rng = _dict(rng, "'rng'")
    _tensor(rng.get("torch"), "'rng' torch", torch.uint8, torch.get_rng_state().shape)
    _tensor(rng.get("generator"), "'rng' generator", torch.uint8,
            run.generator.get_state().shape)
    cuda = rng.get("cuda")
    if cuda is not None and not (isinstance(cuda, list) and
                                 all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8
                                     for t in cuda)):
        raise Invalid("'rng' cuda is not a list of CUDA generator states")
    for name, value in (("torch", rng["torch"]), ("generator", rng["generator"])):
        try:    # the state's own checks (Mersenne Twister's), on a scratch generator
            torch.Generator().set_state(value)
        except (RuntimeError, ValueError) as exc:
            raise Invalid(f"'rng' {name} is not a generator state: {str(exc).splitlines()[0]}")


def _history(history: Any, epoch: int) -> None:
    from archcalc.training.engine import EpochRecord
    if not isinstance(history, list) or len(history) != epoch:
        raise Invalid(f"'history' must list {epoch} finished epochs")
    names = {f.name for f in fields(EpochRecord)}
    for n, record in enumerate(history, 1):
        record = _dict(record, f"'history' record {n}")
        if not set(record) <= names or any(
                type(record.get(k)) not in (int, float) or not math.isfinite(record[k])
                for k in names - {"steps", "images"}):
            raise Invalid(f"'history' record {n} is not an epoch's record")
        if not equal(record["epoch"], n):
            raise Invalid(f"'history' record {n} says epoch {record['epoch']}")
