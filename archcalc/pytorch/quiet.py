"""Keep libraries' log lines and warnings off the screen: a command's output is its own.

fvcore logs what it does not count, torch.export logs a traceback for a file it cannot read;
archcalc says what matters in its own one line instead. Torch-free, so ``archcalc.bridge`` can
use it before it imports torch."""
from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Iterator


@contextlib.contextmanager
def quiet(*names: str) -> Iterator[None]:
    """No log lines below errors from the loggers ``names`` (and their children), and no
    warnings, inside the block; both as they were after it."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Nothing written to file descriptor 2 inside the block reaches the screen: for C++ code
    that prints past Python's logging (torch.profiler's kineto writes a "USDT: ...
    profiler_start" line to stderr on each start and stop). Python's own sys.stderr is flushed
    first, and the descriptor is put back after the block, an exception or not."""
    import os
    import sys
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
