from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "archcalc" / "specs"


@pytest.fixture
def spec_path():
    """Path of a bundled spec by name."""
    return lambda name: str(SPECS / f"{name}.yaml")
