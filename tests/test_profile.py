"""`archcalc profile` end to end on the CPU, and the measured `cpu` profile's cache. No test
asserts how long anything takes: only that times were measured (positive) and where."""
import json

import pytest
from typer.testing import CliRunner

from archcalc.cli import app
from archcalc.pytorch import cpu_profile
from archcalc.pytorch.build import build_model, layer_modules, load_graph

runner = CliRunner()


@pytest.fixture
def quick_measure(monkeypatch, tmp_path):
    """The real measurement, made smaller (a 64×64 matmul, a 4 MiB copy, short rounds), in a
    cache of the test's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(cpu_profile, "MATMUL_N", 64)
    monkeypatch.setattr(cpu_profile, "COPY_BYTES", 4 * 2 ** 20)
    monkeypatch.setattr(cpu_profile, "PHASE_SECONDS", 0.01)
    return tmp_path / "cache" / "archcalc"


# --- the cpu profile's cache -----------------------------------------------------------------

def test_the_cpu_profile_is_measured_once_then_read_from_the_cache(quick_measure):
    first = cpu_profile.load_or_measure(1)
    assert not first["cached"] and first["threads"] == 1
    assert all(first["peak_flops"][d] > 0 for d in ("fp32", "bf16", "fp16"))
    assert first["bandwidth"] > 0
    files = list(quick_measure.iterdir())
    assert [f.name for f in files] == [cpu_profile.cache_path(cpu_profile.cpu_model(), 1).name]
    assert not any(f.name.endswith(".tmp") for f in quick_measure.iterdir())
    again = cpu_profile.load_or_measure(1)
    assert again["cached"] and again["peak_flops"] == first["peak_flops"]
    assert again["measured_at"] == first["measured_at"]


def test_the_cache_is_kept_per_thread_count(quick_measure):
    cpu_profile.load_or_measure(1)
    assert not cpu_profile.load_or_measure(2)["cached"]
    assert len(list(quick_measure.iterdir())) == 2


@pytest.mark.parametrize("damage", [
    "{not json",
    json.dumps({"version": 1}),
    "NEGATIVE",
])
def test_a_corrupt_cache_is_measured_again(quick_measure, damage):
    first = cpu_profile.load_or_measure(1)
    path = cpu_profile.cache_path(cpu_profile.cpu_model(), 1)
    if damage == "NEGATIVE":
        record = json.loads(path.read_text())
        record["bandwidth"] = -1.0
        damage = json.dumps(record)
    path.write_text(damage)
    again = cpu_profile.load_or_measure(1)
    assert not again["cached"] and again["bandwidth"] > 0
    stored = json.loads(path.read_text())       # replaced by a whole, valid record
    assert stored["bandwidth"] == again["bandwidth"] and stored["model"] == first["model"]


def test_xdg_cache_home_is_respected(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cpu_profile.cache_dir() == tmp_path / "x" / "archcalc"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cpu_profile.cache_dir() == tmp_path / "home" / ".cache" / "archcalc"


# --- profile end to end ----------------------------------------------------------------------

def profile_json(*args):
    result = runner.invoke(app, ["profile", "cifar-cnn", "--device", "cpu", "--repeat", "2",
                                 "-f", "json", *args])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_profile_rows_are_the_built_models_layers(quick_measure):
    data = profile_json("--batch-size", "2")
    graph = load_graph("cifar-cnn")
    modules = layer_modules(build_model("cifar-cnn"), graph.layers())
    names = [l["name"] for l in data["layers"]]
    assert names == [l.name for l in graph.layers()]
    assert all(modules[n] is not None for n in names)
    for layer in data["layers"]:
        forward = layer["forward"]
        assert forward["measured_seconds"] > 0 and forward["predicted_seconds"] > 0
        assert "backward" not in layer
    totals = data["totals"]["forward"]
    assert totals["measured_seconds"] == pytest.approx(
        sum(l["forward"]["measured_seconds"] for l in data["layers"]))
    assert totals["network_measured_seconds"] > 0 and 0 < totals["achieved_fraction_of_peak"]
    # the prediction is the roofline's: conv1 by hand, 2 images × 2 × 32·3·9 weights × 32·32
    conv1 = data["layers"][0]["forward"]
    assert conv1["flops"] == 2 * 2 * 864 * 1024
    assert data["profile"]["form_factor"] == "CPU" and data["batch"] == 2


def test_profile_backward_times_each_layer_with_weights(quick_measure):
    data = profile_json("--backward", "--batch-size", "2")
    for layer in data["layers"]:
        if layer["type"] in ("conv", "linear", "batchnorm"):
            assert layer["backward"]["measured_seconds"] > 0
    # backward FLOPs are twice the forward MACs' share: 2 images × 4 × MACs for conv1
    assert data["layers"][0]["backward"]["flops"] == 2 * 4 * 864 * 1024
    assert data["totals"]["backward"]["measured_seconds"] > 0


@pytest.mark.parametrize("args, what", [((), "forward (no grad)"),
                                        (("--backward",), "training step (SGD with momentum)")])
def test_profile_sets_the_measured_peak_memory_beside_the_estimate(quick_measure, args, what):
    """The measurement is torch.profiler's allocation record (tests/test_memory.py holds the
    estimate to it exactly for a forward, within 10% for a step); here: the two are the same
    pass, and a batch large enough that activations dominate the model."""
    data = profile_json(*args, "--batch-size", "32", "--repeat", "1")
    memory = data["memory"]
    assert memory["pass"] == what
    assert memory["measured_bytes"] >= memory["measured_tensor_bytes"] > 0
    assert memory["estimated_bytes"] == pytest.approx(memory["measured_tensor_bytes"], rel=0.1)


def test_profile_on_screen_and_its_plot(quick_measure, tmp_path):
    figure = tmp_path / "p.png"
    result = runner.invoke(app, ["profile", "cifar-cnn", "--device", "cpu", "--repeat", "1",
                                 "--plot", str(figure)])
    assert result.exit_code == 0, result.stderr
    assert "predicted" in result.stdout and "measured" in result.stdout
    assert "of peak" in result.stdout and "conv1.conv" in result.stdout
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_spec_too_large_is_refused_before_anything_is_allocated(quick_measure):
    result = runner.invoke(app, ["profile", "googlenet", "--device", "cpu", "--batch-size",
                                 "100000000"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "needs about" in result.stderr and "available" in result.stderr
    assert not quick_measure.exists()       # not even the cpu profile was measured


@pytest.mark.parametrize("option, value", [("--repeat", "0"), ("--repeat", "1000000000"),
                                           ("--batch-size", "0"), ("--batch-size", "-3")])
def test_a_repeat_or_batch_out_of_range_is_one_line(option, value):
    """A billion repeats would look like a hang; 0 images is no pass."""
    result = runner.invoke(app, ["profile", "cifar-cnn", "--device", "cpu", option, value])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"{option}: ")


def test_profile_refuses_cuda_where_there_is_none_and_a_bad_dtype():
    import torch
    if not torch.cuda.is_available():
        result = runner.invoke(app, ["profile", "cifar-cnn", "--device", "cuda"])
        assert result.exit_code == 2 and "CUDA is not available" in result.stderr
    result = runner.invoke(app, ["profile", "cifar-cnn", "--dtype", "int8"])
    assert result.exit_code == 2 and "unknown data type 'int8'" in result.stderr


def test_backward_at_batch_one_through_batchnorm_says_what_to_do(quick_measure):
    result = runner.invoke(app, ["profile", "cifar-cnn", "--device", "cpu", "--backward"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "training mode" in result.stderr and "larger --batch-size" in result.stderr


@pytest.mark.slow
def test_profile_fits_80_columns_in_a_terminal(quick_measure):
    """Layer names, both times, the share of peak and every summary line (the memory line
    too) within 80 columns of a real terminal (the cpu profile measured into the test's
    own cache)."""
    from tests.test_width import in_terminal
    text, code = in_terminal(["profile", "cifar-cnn", "--device", "cpu", "--repeat", "1"], 80,
                             timeout=120)
    assert code == 0, text[-2000:]
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "peak memory of a forward" in text.replace("\n", " ") and "conv1.conv" in text
