"""Real Fashion-MNIST from Debian's dataset-fashion-mnist package: `archcalc train --quick
fashion-mnist` reaches at least 85% test accuracy. Skipped, with the reason, without the files
(.ci/run installs the package). Slow (marked so)."""
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archcalc.cli import app

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(),
                    reason=f"{DEBIAN} is absent: apt-get install dataset-fashion-mnist")
def test_quick_run_learns_real_fashion_mnist(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--quick", "fashion-mnist", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "fashion-mnist" and metrics["test_images"] == 10_000
    assert metrics["test_accuracy"] >= 0.85
