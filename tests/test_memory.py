"""core/memory.py's figures against hand arithmetic and against what PyTorch really allocates.

The oracle is archcalc/pytorch/memory.py: torch.profiler's allocation record of a pass of the
built model (every allocation and free, by address). Its ``tensors`` peak leaves out kernel
workspace, memory an aten op allocates and frees before it returns (oneDNN's reordered copies
of a convolution's input, weight and output; max pool's int64 indices and BatchNorm's
statistics at inference): no Python-visible tensor holds it, and it depends on which kernel
oneDNN picks for this CPU, so core models the tensors and the inference test holds the model
to the tensor peak exactly, and to the full peak within a bound that says how large the
workspace was."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archcalc.core import memory
from archcalc.core.graph import build
from archcalc.core.spec import parse

torch = pytest.importorskip("torch")

from archcalc.pytorch.build import build_model, load_graph  # noqa: E402
from archcalc.pytorch.memory import measure_peak, measure_record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# A residual and a concat, small enough to follow by hand (input 1×4×4: 16 numbers).
TINY = """
name: tiny
input: [1, 4, 4]
layers:
  a:   {conv: {out: 2, kernel: 1}}
  res: {add: [[conv: {out: 2, kernel: 1}, relu], identity]}
  cat: {concat: [conv: {out: 1, kernel: 1}, conv: {out: 3, kernel: 1}]}
"""


def tiny_graph():
    return build(parse(TINY, "tiny.yaml"))


def test_the_inference_peak_of_a_residual_and_a_concat_by_hand():
    # numbers alive, in order (x is the input, held by the caller throughout):
    #   a:   conv A (2×4×4 = 32)                                   x + A           = 48
    #   res: its input A is held until the row returns; branch 1: conv B 32, relu C 32
    #        (B dies when the sequence moves on), branch 2: identity, A itself (a view);
    #        add D 32 while both branches' outputs are held         x + A + C + D   = 112
    #        then C and the row's input A go                        x + D           = 48
    #   cat: input D held; conv E (1×4×4 = 16), conv F (3×4×4 = 48), both held for the
    #        concat G (4×4×4 = 64)                                  x + D + E + F + G = 176
    assert memory.inference_peak(tiny_graph(), 1, "fp32") == 176 * 4
    assert memory.inference_peak(tiny_graph(), 3, "fp16") == 176 * 3 * 2


def test_what_a_training_step_saves_of_a_residual_and_a_concat_by_hand():
    # conv a saves x (16); the branch conv saves A (32); relu saves its output C (32);
    # identity, add and concat save nothing; convs E and F both save D (32), counted once
    assert memory.saved_bytes(tiny_graph(), 1, "fp32") == (16 + 32 + 32 + 32) * 4


def test_the_tiny_networks_peak_is_what_pytorch_allocates():
    model = build_model(tiny_graph())
    measured = measure_record(model, torch.randn(2, 1, 4, 4), training=False)
    assert measured.tensors == memory.network_memory(tiny_graph(), 2).inference_total


@pytest.mark.parametrize("spec", ["cifar-cnn", "resnet18-cifar"])
def test_the_inference_peak_in_bfloat16_is_what_the_profiler_records(spec):
    model = build_model(spec).to(torch.bfloat16)
    x = torch.randn(2, 3, 32, 32, dtype=torch.bfloat16)
    measured = measure_record(model, x, training=False)
    assert measured.tensors == memory.network_memory(load_graph(spec), 2, "bf16").inference_total


def test_a_layers_bytes_and_parameters():
    mem = memory.network_memory(tiny_graph(), batch=5, dtype="bf16")
    a = mem.layers[0]
    assert (a.name, a.activation_elements, a.activation_bytes) == ("a.conv", 32, 32 * 5 * 2)
    assert a.param_bytes == (2 * 1 + 2) * 2         # weight 2×1×1×1 and bias 2, 2 bytes each
    assert mem.param_bytes == ((2 + 2) + (2 * 2 + 2) + (2 + 1) + (2 * 3 + 3)) * 2


# Every bundled spec: (input or None for its own, batch). Small inputs where the spec allows.
FAST = [("cifar-cnn", None, 2), ("resnet18-cifar", None, 2), ("googlenet-cifar", None, 1),
        ("fashion-cnn", None, 3), ("efficientnet-b0", "3x64x64", 1), ("nin", None, 1),
        ("squeezenet1_0", "3x96x96", 1)]
SLOW = [("alexnet", "3x127x127", 1), ("convnext-t", "3x64x64", 1),
        ("densenet121", "3x64x64", 1), ("googlenet", None, 1), ("mobilenetv2", "3x64x64", 1),
        ("resnet", "3x64x64", 1), ("unet", "1x188x188", 1), ("vgg", "3x64x64", 1)]


@pytest.mark.parametrize("spec,shape,batch", FAST + [pytest.param(*s, marks=pytest.mark.slow)
                                                     for s in SLOW])
def test_the_inference_peak_is_what_the_profiler_records(spec, shape, batch):
    graph = load_graph(spec, input=shape)
    model = build_model(spec, input=shape)
    torch.manual_seed(0)
    measured = measure_record(model, torch.randn(batch, *model.input_shape), training=False)
    predicted = memory.network_memory(graph, batch).inference_total
    assert measured.tensors == predicted
    # the workspace on top: at most the largest layer's input and output twice over (oneDNN
    # reorders a convolution's input and output, and its weight: at most the model again)
    largest = max((sum(map(_numel, l.in_shapes)) + _numel(l.out_shape)) for l in graph.layers())
    assert predicted <= measured.peak <= predicted + 2 * largest * batch * 4 + \
        memory.network_memory(graph, batch).param_bytes


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


# A training step (forward, cross-entropy, backward, the optimizer's step) at batch 256, except
# GoogLeNet-CIFAR: at 256 it needs 10.8 GB and 7 minutes on a 2-core machine (measured: 0.4%
# apart), so it runs at 16. Its activations grow linearly with the batch and already dominate
# at 16 (97% of the peak), so the smaller batch checks the same model.
TRAINING = [("cifar-cnn", 256, "sgd"), ("cifar-cnn", 256, "adam"),
            ("resnet18-cifar", 256, "adam"), ("googlenet-cifar", 16, "sgd")]


@pytest.mark.slow
@pytest.mark.parametrize("spec,batch,optimizer", TRAINING)
def test_a_training_step_is_within_ten_percent_of_the_measured_peak(spec, batch, optimizer):
    graph = load_graph(spec)
    model = build_model(spec, logits=True)
    torch.manual_seed(0)
    x = torch.randn(batch, *model.input_shape)
    measured = measure_peak(model, x, training=True, optimizer=optimizer)
    predicted = memory.network_memory(graph, batch).training[optimizer].total
    assert abs(predicted - measured) <= 0.10 * measured, (predicted, measured)


def test_a_small_training_step_is_within_ten_percent_of_the_measured_peak():
    graph = load_graph("cifar-cnn")
    model = build_model("cifar-cnn", logits=True)
    measured = measure_peak(model, torch.randn(8, 3, 32, 32), training=True, optimizer="sgd")
    predicted = memory.network_memory(graph, 8).training["sgd"].total
    assert abs(predicted - measured) <= 0.10 * measured, (predicted, measured)


# --- the model file ----------------------------------------------------------------------------

@pytest.mark.parametrize("spec,dtype", [("cifar-cnn", "fp32"), ("resnet18-cifar", "bf16"),
                                        ("googlenet-cifar", "fp16"), ("fashion-cnn", "fp32")])
def test_the_model_file_is_the_size_torch_save_writes(spec, dtype, tmp_path):
    model = build_model(spec).to({"fp32": torch.float32, "bf16": torch.bfloat16,
                                  "fp16": torch.float16}[dtype])
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    real = path.stat().st_size
    state = model.state_dict()
    predicted = memory.disk_bytes(load_graph(spec), dtype, stem="model")
    # the tensors' bytes exactly, the archive's records exactly; the pickle's per-tensor ints
    # (shape, stride, the storage's size) and memo references vary in width by a few bytes,
    # which the model does not follow: within 16 bytes a tensor
    assert abs(predicted - real) <= 16 * len(state), (predicted, real)


# --- the command -------------------------------------------------------------------------------

def archcalc(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "archcalc", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_table_memory_in_every_format():
    import csv
    import io
    import json
    graph = load_graph("cifar-cnn")
    mem = memory.network_memory(graph, 4, "bf16")
    out = archcalc("table", "cifar-cnn", "--memory", "--batch-size", "4", "--dtype", "bf16",
                   "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)["memory"]
    # conv1's output: 32×32×32 numbers × 4 images × 2 bytes
    assert data["rows"][0]["activation_bytes"] == 32 * 32 * 32 * 4 * 2
    assert data["inference"]["activation_peak"] == mem.inference_peak
    assert set(data["training"]) == {"sgd", "adam"}
    rows = list(csv.reader(io.StringIO(archcalc("table", "cifar-cnn", "--memory",
                                                "--batch-size", "4", "--format",
                                                "csv").stdout)))
    header = rows[0]
    assert "out bytes" in header and "param bytes" in header
    conv1 = next(r for r in rows if r and r[0] == "conv1")
    assert conv1[header.index("out bytes")] == str(32 * 32 * 32 * 4 * 4)
    # conv1's conv (3·32·9 + 32) and batch norm (4 × 32 and the int64 counter), 4 bytes each
    assert conv1[header.index("param bytes")] == str((3 * 32 * 9 + 32 + 4 * 32) * 4 + 8)
    for fmt in ("markdown", "table"):
        text = archcalc("table", "cifar-cnn", "--memory", "--format", fmt).stdout
        assert "out bytes" in text and "training step peak" in text
        assert "model file" in text


@pytest.mark.parametrize("args,message", [
    (["--batch-size", "0"], "--batch-size: the batch size must be a positive whole number"),
    (["--batch-size", "-3"], "--batch-size: the batch size must be a positive whole number"),
    (["--dtype", "fp8"], "--dtype: unknown data type 'fp8'; known: fp32, bf16, fp16")])
def test_bad_memory_options_are_one_line_and_exit_2(args, message):
    out = archcalc("table", "cifar-cnn", "--memory", *args)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]
    assert out.stderr.startswith(message)


@pytest.mark.parametrize("args", [["cifar-cnn", "--memory", "--batch-size", "256"],
                                  ["resnet18-cifar", "--memory", "--style", "keras"]])
def test_table_memory_fits_an_80_column_terminal(args):
    from test_width import in_terminal     # tests/ is on the path (pytest's rootdir import)
    text, code = in_terminal(["table", *args], 80)
    assert code == 0
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "training step peak" in text.replace("\n", " ")
