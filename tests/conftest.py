import os
from pathlib import Path

import pytest

from archcalc.pytorch.devices import DEFAULT_THREADS

# Torch code outside archcalc's engine and verify (which set their threads themselves) runs
# with archcalc's CPU default too: torch reads this when it is first imported.
os.environ.setdefault("OMP_NUM_THREADS", str(DEFAULT_THREADS))

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "archcalc" / "specs"


@pytest.fixture(autouse=True)
def stop_signals_as_they_were():
    """`archcalc train` stopped by a signal leaves SIGINT and SIGTERM ignored until its process
    exits (cli._stop_signals_restored); in-process tests get them back after each test."""
    import signal
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


@pytest.fixture
def spec_path():
    """Path of a bundled spec by name."""
    return lambda name: str(SPECS / f"{name}.yaml")
