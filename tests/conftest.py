import os
from pathlib import Path

import pytest

from archcalc.pytorch.devices import DEFAULT_THREADS

# Torch code outside archcalc's engine and verify (which set their threads themselves) runs
# with archcalc's CPU default too: torch reads this when it is first imported.
os.environ.setdefault("OMP_NUM_THREADS", str(DEFAULT_THREADS))

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "archcalc" / "specs"


@pytest.fixture
def spec_path():
    """Path of a bundled spec by name."""
    return lambda name: str(SPECS / f"{name}.yaml")
