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


def import_peer(module: str, what: str):
    """A peer tool a test compares archcalc with (thop, ptflops, torchinfo, fvcore): the
    module, or outside CI the test skipped with the reason; in CI (CI set, as .ci/run does),
    which installs the test extra, a peer that cannot be imported is a failure."""
    import importlib
    try:
        return importlib.import_module(module)
    except Exception as exc:        # thop's own imports fail as ImportError or worse
        why = f"{what} cannot be imported ({type(exc).__name__}: {exc}); " \
              "pip install -e '.[test]' installs it"
        if os.environ.get("CI"):
            pytest.fail(f"CI needs {what}: {why}", pytrace=False)
        pytest.skip(why)
