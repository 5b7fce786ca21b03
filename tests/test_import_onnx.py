"""The ONNX importer: hand-built models (onnx.helper) and a torch.onnx.export, read into the
bridge IR and written as a spec whose table numbers are worked out here by hand; bad files.

Skipped without the onnx package, except on CI (which installs the extra): there it fails.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("the onnx package is not installed (pip install 'archcalc[onnx]')",
                allow_module_level=True)

from archcalc.bridge import from_onnx
from archcalc.bridge.ir import INPUT
from archcalc.bridge.writer import to_spec
from archcalc.core.graph import build
from archcalc.core.spec import parse
from archcalc.errors import ArchcalcError


def weight(name, *shape):
    return numpy_helper.from_array(np.full(shape, 0.1, dtype=np.float32), name)


def save(tmp_path, nodes, inits, in_dims, out_dims, name="net.onnx", opset=17):
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_dims)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / name
    onnx.save(model, str(path))
    return str(path)


def table(model):
    """The spec the importer's IR writes, built by archcalc: layer name -> (shape, counts)."""
    graph = build(parse(to_spec(model, depth=1, how="onnx"), "imported.yaml"))
    # a row of one layer names it after its op too (row conv1: conv1.conv): keyed by the row
    return {layer.row if layer.name == f"{layer.row}.{layer.kind}" else layer.name:
            (layer.out_shape, layer.counts()) for layer in graph.layers()}


def conv_bn_net(tmp_path, in_dims=(1, 3, 32, 32)):
    nodes = [
        helper.make_node("Conv", ["x", "c1.w", "c1.b"], ["t1"], name="/conv1/Conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("BatchNormalization", ["t1", "bn.s", "bn.b", "bn.m", "bn.v"], ["t2"],
                         name="/bn1/BatchNormalization", epsilon=1e-3, momentum=0.9),
        helper.make_node("Relu", ["t2"], ["t3"], name="/relu/Relu"),
        helper.make_node("MaxPool", ["t3"], ["t4"], name="/pool/MaxPool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["t4"], ["t5"], name="/flatten/Flatten", axis=1),
        helper.make_node("Gemm", ["t5", "fc.w", "fc.b"], ["y"], name="/fc/Gemm", transB=1),
    ]
    inits = [weight("c1.w", 8, 3, 3, 3), weight("c1.b", 8), weight("bn.s", 8),
             weight("bn.b", 8), weight("bn.m", 8), weight("bn.v", 8),
             weight("fc.w", 10, 8 * 16 * 16), weight("fc.b", 10)]
    return save(tmp_path, nodes, inits, list(in_dims), [in_dims[0], 10])


def test_conv_bn_relu_pool_gemm(tmp_path):
    model = from_onnx.load(conv_bn_net(tmp_path))
    nodes = {n.name: n for n in model.nodes}
    assert list(nodes) == ["conv1", "bn1", "relu", "pool", "flatten", "fc"]
    assert model.input_shape == (3, 32, 32)
    conv, bn, fc = nodes["conv1"], nodes["bn1"], nodes["fc"]
    assert (conv.op, conv.out_shape, conv.params) == ("conv", (8, 32, 32), 8 * 3 * 9 + 8)
    assert conv.args == {"out": 8, "kernel": 3, "stride": 1, "padding": 1, "dilation": 1,
                         "groups": 1, "bias": True}
    # scale and shift are trained, mean and variance are running statistics
    assert (bn.op, bn.params, bn.buffers) == ("batchnorm", 16, 16)
    assert bn.args == {"eps": 1e-3, "momentum": 0.1}       # ONNX's 0.9 keeps the old value
    assert nodes["pool"].out_shape == (8, 16, 16)
    assert (fc.op, fc.out_shape, fc.params, fc.inputs) == ("linear", (10,), 2048 * 10 + 10,
                                                           ("flatten",))
    assert conv.inputs == (INPUT,)

    numbers = table(model)
    assert numbers["conv1"][0] == (8, 32, 32)
    assert numbers["conv1"][1].macs == 8 * 3 * 9 * 32 * 32
    assert numbers["conv1"][1].params == 224
    assert numbers["bn1"][1].params == 16 and numbers["bn1"][1].non_trainable == 16
    assert numbers["pool"][0] == (8, 16, 16)
    assert numbers["fc"][1].macs == 2048 * 10
    assert sum(c.params for _, c in numbers.values()) == 224 + 16 + 20490


def test_residual_add(tmp_path):
    nodes = [
        helper.make_node("Conv", ["x", "a.w"], ["t1"], name="/block/conv1/Conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["t1"], ["t2"], name="/block/relu/Relu"),
        helper.make_node("Conv", ["t2", "b.w"], ["t3"], name="/block/conv2/Conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["t3", "x"], ["t4"], name="/block/Add"),
        helper.make_node("Relu", ["t4"], ["y"], name="/block/relu_1/Relu"),
    ]
    inits = [weight("a.w", 4, 4, 3, 3), weight("b.w", 4, 4, 3, 3)]
    model = from_onnx.load(save(tmp_path, nodes, inits, [1, 4, 8, 8], [1, 4, 8, 8]))
    nodes = {n.name: n for n in model.nodes}
    # the block's own Add is named under the block, beside its modules
    assert list(nodes) == ["block.conv1", "block.relu", "block.conv2", "block.add",
                           "block.relu_1"]
    assert nodes["block.add"].op == "add"
    assert nodes["block.add"].inputs == ("block.conv2", INPUT)
    assert nodes["block.conv2"].args["bias"] is False
    numbers = table(model)
    (add,) = [counts for name, (_, counts) in numbers.items() if name.startswith("block")
              and counts.other_ops and not counts.macs and name != "block.relu" and
              name != "block.relu_1"]
    assert add.other_ops == 4 * 8 * 8
    assert numbers["block.conv1"][1].macs == 4 * 4 * 9 * 8 * 8
    assert numbers["block.conv2"][1].params == 4 * 4 * 9


def concat_net(tmp_path):
    nodes = [
        helper.make_node("Conv", ["x", "a.w", "a.b"], ["t1"], name="/b1/Conv", kernel_shape=[1, 1]),
        helper.make_node("Conv", ["x", "b.w", "b.b"], ["t2"], name="/b2/Conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["t1", "t2"], ["y"], name="/cat/Concat", axis=1),
    ]
    inits = [weight("a.w", 4, 3, 1, 1), weight("a.b", 4), weight("b.w", 6, 3, 3, 3),
             weight("b.b", 6)]
    return save(tmp_path, nodes, inits, [1, 3, 16, 16], [1, 10, 16, 16])


def test_concat_of_two_branches(tmp_path):
    model = from_onnx.load(concat_net(tmp_path))
    assert [n.inputs for n in model.nodes[:2]] == [(INPUT,), (INPUT,)]
    cat = model.nodes[-1]
    assert (cat.name, cat.op, cat.inputs, cat.out_shape) == ("cat", "concat", ("b1", "b2"),
                                                             (10, 16, 16))



def test_concat_of_two_branches_as_a_spec(tmp_path):
    model = from_onnx.load(concat_net(tmp_path))
    numbers = table(model)
    assert numbers["cat"][0] == (10, 16, 16)
    assert numbers["b1"][1].macs == 4 * 3 * 16 * 16
    assert numbers["b2"][1].macs == 6 * 3 * 9 * 16 * 16
    assert numbers["b1"][1].params + numbers["b2"][1].params == (12 + 4) + (162 + 6)


def test_squeeze_and_excitation(tmp_path):
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["p"], name="/se/pool/GlobalAveragePool"),
        helper.make_node("Conv", ["p", "r.w", "r.b"], ["r"], name="/se/reduce/Conv",
                         kernel_shape=[1, 1]),
        helper.make_node("Relu", ["r"], ["a"], name="/se/act/Relu"),
        helper.make_node("Conv", ["a", "e.w", "e.b"], ["e"], name="/se/expand/Conv",
                         kernel_shape=[1, 1]),
        helper.make_node("Sigmoid", ["e"], ["g"], name="/se/gate/Sigmoid"),
        helper.make_node("Mul", ["x", "g"], ["y"], name="/se/Mul"),
    ]
    inits = [weight("r.w", 4, 16, 1, 1), weight("r.b", 4), weight("e.w", 16, 4, 1, 1),
             weight("e.b", 16)]
    model = from_onnx.load(save(tmp_path, nodes, inits, [1, 16, 8, 8], [1, 16, 8, 8]))
    nodes = {n.name: n for n in model.nodes}
    assert nodes["se.pool"].op == "gap" and nodes["se.pool"].out_shape == (16, 1, 1)
    assert nodes["se.gate"].op == "sigmoid"
    assert (nodes["se.mul"].op, nodes["se.mul"].inputs) == ("mul", (INPUT, "se.gate"))
    numbers = table(model)
    graph = build(parse(to_spec(model, how="onnx"), "imported.yaml"))
    (mul,) = [layer for layer in graph.layers() if layer.kind == "mul"]
    assert mul.out_shape == (16, 8, 8)
    assert mul.counts().other_ops == 16 * 8 * 8       # one multiply per element
    assert numbers["se.reduce"][1].params == 16 * 4 + 4
    assert numbers["se.expand"][1].macs == 4 * 16


def test_unmapped_and_asymmetric_nodes_are_opaque_never_dropped(tmp_path):
    nodes = [
        # TensorFlow's 'same' at stride 2: one more row and column at the bottom and right
        helper.make_node("Conv", ["x", "w"], ["t1"], name="conv", kernel_shape=[3, 3],
                         pads=[0, 0, 1, 1], strides=[2, 2]),
        helper.make_node("Neg", ["t1"], ["y"], name="neg.op"),
    ]
    model = from_onnx.load(save(tmp_path, nodes, [weight("w", 2, 3, 3, 3)], [1, 3, 8, 8],
                                [1, 2, 4, 4]))
    conv, neg = model.nodes
    assert (conv.op, conv.args) == ("opaque", {"shape": [2, 4, 4], "params": 54, "kind": "Conv"})
    assert (neg.name, neg.op, neg.args["kind"], neg.inputs) == ("neg_op", "opaque", "Neg",
                                                                ("conv",))
    assert [n.location for n in model.opaque()] == ["conv (Conv)", "neg.op (Neg)"]


def test_matmul_and_add_are_one_linear_layer(tmp_path):
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["t"], name="/fc/MatMul"),
        helper.make_node("Add", ["t", "b"], ["y"], name="/fc/Add"),
    ]
    model = from_onnx.load(save(tmp_path, nodes, [weight("w", 12, 5), weight("b", 5)],
                                [1, 12], [1, 5]))
    (fc,) = model.nodes
    assert (fc.name, fc.op, fc.args, fc.params) == ("fc", "linear", {"out": 5, "bias": True},
                                                    12 * 5 + 5)


def test_dynamic_dimensions_need_input(tmp_path):
    path = conv_bn_net(tmp_path, in_dims=("N", 3, "H", "W"))
    with pytest.raises(ArchcalcError) as err:
        from_onnx.load(path)
    assert str(err.value) == "net.onnx has dynamic dimensions (N, H, W); give --input CxHxW"
    model = from_onnx.load(path, (3, 32, 32))
    assert model.nodes[0].out_shape == (8, 32, 32)
    with pytest.raises(ArchcalcError, match="does not fit the model's 4-D input"):
        from_onnx.load(path, (32,))


def test_bad_files_are_one_line(tmp_path):
    good = conv_bn_net(tmp_path)
    data = open(good, "rb").read()
    truncated, corrupt = tmp_path / "cut.onnx", tmp_path / "junk.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    corrupt.write_bytes(b"\xff\x00 not an onnx file \x07" * 10)
    three_d = save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], [], [1, 3, 8],
                   [1, 3, 8], name="seq.onnx")
    broken = save(tmp_path, [helper.make_node("Relu", ["nowhere"], ["y"])], [],
                  [1, 3, 8, 8], [1, 3, 8, 8], name="broken.onnx")
    cases = {str(tmp_path / "missing.onnx"): "no such file", str(truncated): "not a readable",
             str(corrupt): "not a readable", three_d: "3-D",
             broken: "the ONNX checker refuses"}
    for path, words in cases.items():
        with pytest.raises(ArchcalcError) as err:
            from_onnx.load(path)
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_model_exported_by_torch(tmp_path):
    """The legacy (TorchScript) exporter: torch's default exporter (dynamo) needs onnxscript.
    In eval mode it folds a BatchNorm into the convolution before it, so there is none here."""
    torch = pytest.importorskip("torch")
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
            self.conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
            self.pool = nn.AvgPool2d(2)
            self.head = nn.Linear(8 * 4 * 4, 10)

        def forward(self, x):
            x = self.stem(x)
            x = torch.relu(self.conv(x) + x)
            return self.head(torch.flatten(self.pool(x), 1))

    net = Net().eval()
    path = tmp_path / "net.onnx"
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, 16, 16),), str(path), dynamo=False)
    model = from_onnx.load(str(path))
    assert not model.opaque(), [n.location for n in model.opaque()]
    nodes = {n.name: n for n in model.nodes}
    assert nodes["stem.0"].out_shape == (8, 8, 8) and nodes["stem.0"].args["stride"] == 2
    assert nodes["conv"].params == 8 * 8 * 9
    assert nodes["head"].out_shape == (10,)
    assert sum(n.params for n in model.nodes) == sum(p.numel() for p in net.parameters())
    # the shapes PyTorch itself gives each module
    seen = {}
    for name in ("stem.0", "conv", "pool", "head"):
        net.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: seen.__setitem__(name, tuple(o.shape[1:])))
    net(torch.zeros(1, 3, 16, 16))
    assert all(nodes[name].out_shape == shape for name, shape in seen.items()), seen
    numbers = table(model)
    assert numbers["stem.0"][1].macs == 8 * 27 * 8 * 8
    assert numbers["head"][1].macs == 128 * 10


def test_cli_bad_file_exits_2_in_one_line(tmp_path):
    """Through `archcalc import` where this checkout has it."""
    from archcalc.cli import app
    if not any(c.name == "import" for c in app.registered_commands):
        pytest.skip("this checkout has no `archcalc import` yet")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x01garbage" * 5)
    out = tmp_path / "y.yaml"
    result = subprocess.run([sys.executable, "-m", "archcalc", "import", str(junk), "-o",
                             str(out)], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
