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


def import_peer(module: str, dist: str, version: str):
    """A peer tool a test compares archcalc with (thop, ptflops, torchinfo, fvcore), pinned
    in the test extra because each version counts its own way: the module, or outside CI the
    test skipped with the reason (not installed, or another version); in CI (CI set, as
    .ci/run does), which installs the test extra, either is a failure."""
    import importlib
    import importlib.metadata
    try:
        installed = importlib.metadata.version(dist)
        found = importlib.import_module(module)
        why = None if installed.replace("-", ".post") == version else \
            f"{dist} {installed} is installed; archcalc's convention is {dist} {version}'s"
    except Exception as exc:        # thop's own imports fail as ImportError or worse
        found, why = None, f"{dist} cannot be imported ({type(exc).__name__}: {exc})"
    if why is None:
        return found
    why += f"; pip install {dist}=={version} (the test extra has it)"
    if os.environ.get("CI"):
        pytest.fail(f"CI needs {dist} {version}: {why}", pytrace=False)
    pytest.skip(why)
