"""The roofline (core/roofline.py), its device profiles, the measured `cpu` profile and its
cache, `table --roofline` and `profile`. Expected figures are worked out by hand below from
the layer's shapes, never taken from archcalc's output."""
import json
import math
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archcalc.cli import app
from archcalc.core import roofline as rl
from archcalc.core.graph import build
from archcalc.core.spec import load
from archcalc.errors import ArchcalcError

runner = CliRunner()

# One 3×3 convolution, 3 → 16 channels, 'same' padding on 32×32, then a small classifier.
TINY = """\
name: tiny
input: [3, 32, 32]
layers:
  conv1: [conv: {out: 16, kernel: 3, padding: same}]
  flatten: flatten
  fc: [linear: {out: 10}]
"""
# conv1 by hand: input 3·32·32 = 3,072 numbers, output 16·32·32 = 16,384; weights
# 16·3·3·3 = 432, biases 16, so 448 params; MACs = 432 weights × 1,024 output positions
# = 442,368.
IN, OUT, PARAMS, MACS = 3_072, 16_384, 448, 442_368


def tiny_graph(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return build(load(str(path)))


def device(peak_tflops: float, bandwidth_gbps: float) -> rl.Device:
    return rl.Device("test", "test device", "PCIe", {d: peak_tflops * 1e12 for d in
                                                      ("fp32", "bf16", "fp16")},
                     bandwidth_gbps * 1e9, 80e9, "hand-made")


# --- the arithmetic ----------------------------------------------------------------------------

def test_a_conv_layers_flops_and_bytes_by_hand(tmp_path):
    roof = rl.roofline(tiny_graph(tmp_path), device(1, 100), batch=2, dtype="fp32")
    conv = roof.layers[0]
    assert conv.name == "conv1.conv"
    # FLOPs: 2 images × 2 × 442,368 MACs (a conv has no other ops)
    assert conv.flops == 2 * 2 * MACS == 1_769_472
    # bytes: 4 × (2 images × (3,072 in + 16,384 out) + 448 params) = 4 × 39,360
    assert conv.bytes == 4 * (2 * (IN + OUT) + PARAMS) == 157_440
    assert conv.intensity == pytest.approx(1_769_472 / 157_440)      # 11.24 FLOP/B


def test_half_precision_halves_the_bytes_not_the_flops(tmp_path):
    graph = tiny_graph(tmp_path)
    full = rl.roofline(graph, device(1, 100), batch=2, dtype="fp32").layers[0]
    half = rl.roofline(graph, device(1, 100), batch=2, dtype="bf16").layers[0]
    assert half.flops == full.flops and half.bytes == 2 * (2 * (IN + OUT) + PARAMS) == 78_720


def test_backward_by_hand(tmp_path):
    conv = rl.roofline(tiny_graph(tmp_path), device(1, 100), batch=2, backward=True).layers[0]
    # two gradients each a forward's multiply-adds: 2 images × 4 × 442,368
    assert conv.flops == 3_538_944
    # 4 × (2 × (16,384 output grad + 2 × 3,072 input read and its grad) + 2 × 448)
    assert conv.bytes == 4 * (2 * (OUT + 2 * IN) + 2 * PARAMS) == 183_808


def test_the_bound_switches_at_the_ridge_point(tmp_path):
    graph = tiny_graph(tmp_path)
    # intensity 11.24 FLOP/B. Ridge 10 (1 TFLOP/s over 100 GB/s): above it, compute-bound
    above = rl.roofline(graph, device(1, 100), batch=2).layers[0]
    assert above.bound == rl.COMPUTE and above.seconds == pytest.approx(1_769_472 / 1e12)
    # ridge 20 (2 TFLOP/s over 100 GB/s): below it, memory-bound, time = bytes / bandwidth
    below = rl.roofline(graph, device(2, 100), batch=2).layers[0]
    assert below.bound == rl.MEMORY and below.seconds == pytest.approx(157_440 / 100e9)
    # at the ridge itself (1,769,472 / 157,440 FLOP/B exactly) both take the same time
    ridge = 1_769_472 / 157_440
    at = rl.roofline(graph, device(ridge * 100e9 / 1e12, 100), batch=2).layers[0]
    assert at.seconds == pytest.approx(157_440 / 100e9)
    assert at.bound == rl.COMPUTE       # a tie goes to compute


def test_totals_sum_the_layers_and_rows_group_them(tmp_path):
    roof = rl.roofline(tiny_graph(tmp_path), device(1, 100), batch=1)
    assert roof.flops == sum(l.flops for l in roof.layers)
    assert roof.seconds == pytest.approx(sum(l.seconds for l in roof.layers))
    rows = roof.by_row()
    assert list(rows) == ["conv1", "flatten", "fc"]
    # fc by hand: 16,384 → 10, 163,850 params; intensity ≈ 0.5: memory-bound
    assert rows["fc"].flops == 2 * 163_840 and rows["fc"].bound == rl.MEMORY


def test_a_bad_batch_is_refused(tmp_path):
    with pytest.raises(ArchcalcError, match="batch size"):
        rl.roofline(tiny_graph(tmp_path), device(1, 100), batch=0)


# --- the device profiles -----------------------------------------------------------------------

def test_every_bundled_profile_is_complete_and_cites_its_datasheet():
    entries = rl.load_devices()
    wanted = {"h200", "h100-sxm", "h100-pcie", "a100-sxm-80gb", "a100-pcie-80gb", "l4",
              "m1-max", "cpu"}
    assert wanted <= set(entries)
    for entry in entries.values():
        assert "http" in entry.source or entry.measured
        if entry.device is not None:
            d = entry.device
            assert all(v > 0 for v in d.peak_flops.values()) and d.bandwidth > 0
    assert entries["cpu"].measured
    # dense, not the sparsity figure: the H100 SXM's BF16 is 1,979 TFLOPS with sparsity
    assert entries["h100-sxm"].device.peak_flops["bf16"] == pytest.approx(989.5e12)
    # plain FP32, not TF32 (the A100's TF32 tensor rate is 156 TFLOPS dense)
    assert entries["a100-sxm-80gb"].device.peak_flops["fp32"] == pytest.approx(19.5e12)
    assert entries["h100-pcie"].device.form_factor == "PCIe"


def test_a_gpu_is_found_by_the_name_torch_reports():
    entries = rl.load_devices()
    assert rl.for_cuda(entries, "NVIDIA H100 PCIe").key == "h100-pcie"
    assert rl.for_cuda(entries, "NVIDIA A100-SXM4-80GB").key == "a100-sxm-80gb"
    with pytest.raises(ArchcalcError, match="no device profile for the GPU 'NVIDIA T4'"):
        rl.for_cuda(entries, "NVIDIA T4")


GOOD = """\
devices:                        # line 1; a profile's fields from line 3 (name) to 8 (source)
  mine:
    name: my card
    form_factor: PCIe
    peak_tflops: {fp32: 10, bf16: 20, fp16: 20}
    bandwidth_gbps: 500
    memory_gb: 16
    source: my own datasheet
"""


def table_with(tmp_path, text, *args):
    path = tmp_path / "devices.yaml"
    path.write_text(text)
    return runner.invoke(app, ["table", "googlenet", "--roofline", "mine", "--devices",
                               str(path), *args])


def test_a_users_devices_file_is_used(tmp_path):
    result = table_with(tmp_path, GOOD, "-f", "json")
    assert result.exit_code == 0, result.stderr
    roof = json.loads(result.stdout)["roofline"]
    assert roof["device"]["name"] == "my card" and roof["ridge_flops_per_byte"] == 20.0


@pytest.mark.parametrize("text, message, line", [
    (GOOD.replace("    bandwidth_gbps: 500\n", ""), "device 'mine': missing field "
     "`bandwidth_gbps`", 3),
    (GOOD.replace("memory_gb: 16", "memory_gb: -16"), "`memory_gb` must be a positive "
     "number, got -16", 7),
    (GOOD.replace("fp16: 20}", "fp8: 40}"), "peak_tflops: missing field `fp16`", 5),
    (GOOD.replace("bandwidth_gbps: 500", "bandwidth_gbps: fast"), "`bandwidth_gbps` must be "
     "a number", 6),
])
def test_a_bad_devices_file_is_one_line_with_its_place(tmp_path, text, message, line):
    result = table_with(tmp_path, text)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert f"devices.yaml:{line}:" in result.stderr


@pytest.mark.parametrize("kind", ["device", "fifo", "too large"])
def test_a_devices_file_that_is_no_file_or_too_large_is_refused_without_reading_it(tmp_path,
                                                                                     kind):
    """Read whole, /dev/zero or a FIFO nobody writes would never end: a real process, bounded
    in time and memory, must answer with one line."""
    import os
    import resource
    import subprocess
    path = {"device": "/dev/zero", "fifo": tmp_path / "fifo", "too large": tmp_path / "big"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "too large":
        path.write_text("# " + "x" * rl.MAX_DEVICES_BYTES + "\n")

    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024 ** 3, 2 * 1024 ** 3))

    done = subprocess.run([sys.executable, "-m", "archcalc", "table", "cifar-cnn",
                           "--roofline", "h200", "--devices", str(path)], capture_output=True,
                          text=True, timeout=60, preexec_fn=limits)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert ("not a file" if kind != "too large" else "larger than 1,000,000 bytes") in done.stderr


def test_an_unknown_device_lists_the_known_ones():
    result = runner.invoke(app, ["table", "googlenet", "--roofline", "h1000"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "unknown device 'h1000'" in result.stderr and "h100-sxm, h100-pcie" in result.stderr


def test_an_unknown_dtype_is_one_line():
    result = runner.invoke(app, ["table", "googlenet", "--roofline", "l4", "--dtype", "fp8"])
    assert result.exit_code == 2
    assert result.stderr == "--dtype: unknown data type 'fp8'; known: fp32, bf16, fp16\n"


# --- table --roofline in every format --------------------------------------------------------

def test_table_roofline_json_section():
    result = runner.invoke(app, ["table", "googlenet", "--roofline", "h100-sxm", "-f", "json",
                                 "--batch-size", "8", "--dtype", "bf16"])
    data = json.loads(result.stdout)
    roof = data["roofline"]
    assert roof["batch"] == 8 and roof["dtype"] == "bf16" and roof["pass"] == "forward"
    assert [l["name"] for l in roof["layers"]] == [l["name"] for l in data["layers"]]
    first = roof["layers"][0]       # GoogLeNet's conv1: 118,013,952 MACs (Table 1: 118M)
    assert first["flops"] == 8 * 2 * 118_013_952
    assert roof["totals"]["seconds"] == pytest.approx(sum(l["seconds"] for l in roof["layers"]))
    assert {l["bound"] for l in roof["layers"]} == {"compute", "memory"}


def test_table_roofline_columns_in_csv_and_markdown():
    csv_text = runner.invoke(app, ["table", "googlenet", "--roofline", "l4", "-f", "csv"]).stdout
    header = csv_text.splitlines()[0].split(",")
    assert {"FLOP/B", "time", "bound"} <= set(header)
    conv1 = next(line for line in csv_text.splitlines() if line.startswith("conv1,"))
    assert "compute" in conv1 or "memory" in conv1
    md = runner.invoke(app, ["table", "googlenet", "--roofline", "l4", "--detail", "-f",
                             "markdown"]).stdout
    assert "| bound" in md and "predicted forward:" in md


def test_roofline_table_fits_80_columns_in_a_terminal():
    sys.path.insert(0, str(Path(__file__).parent))
    from test_width import in_terminal
    for args in (["table", "googlenet", "--roofline", "h100-sxm", "--detail"],
                 ["table", "mobilenetv2", "--roofline", "l4"]):
        text, code = in_terminal(args, 80)
        assert code == 0
        assert max(len(line) for line in text.splitlines()) <= 80, args
