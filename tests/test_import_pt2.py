"""archcalc import of a .pt2 (torch.export.save): the ExportedProgram's ATen graph maps to spec
ops under the model's own qualified names.

Oracles, all independent of archcalc: the original nn.Module's own parameter count and float
buffers, fvcore's by_module MACs of its convolutions and linears, the module names PyTorch
gives (named_modules), and the CIFAR ResNet-18's hand sum (tests/test_zoo_classic.py)."""
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from archcalc.bridge.sources import load as load_source  # noqa: E402
from archcalc.bridge.writer import to_spec  # noqa: E402
from archcalc.core.graph import build  # noqa: E402
from archcalc.core.ops import Counts  # noqa: E402
from archcalc.core.spec import load  # noqa: E402

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


class Basic(nn.Module):
    """torchvision's BasicBlock, written out (torchvision is no dependency)."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNetish(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1, ceil_mode=True))
        self.layer1 = nn.Sequential(Basic(16, 16), Basic(16, 32, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layer1(self.stem(x))), 1))


class Inception(nn.Module):
    def __init__(self):
        super().__init__()
        self.b1 = nn.Conv2d(3, 8, 1)
        self.b2 = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU6(), nn.Conv2d(4, 8, 3, padding=1))
        self.b3 = nn.Sequential(nn.AvgPool2d(3, 1, 1), nn.Conv2d(3, 8, 1, groups=1), nn.SiLU())
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(24, 24, 1), nn.Sigmoid())
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(24, 5))

    def forward(self, x):
        y = torch.cat([self.b1(x), self.b2(x), self.b3(x)], 1)
        y = y * self.gate(y)
        return self.head(y.mean((2, 3)))


def _sequential():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 10))


def _export(model, shape, path):
    torch.export.save(torch.export.export(model.eval(), (torch.zeros((1,) + shape),)), str(path))
    return str(path)


def _imported(model, shape, tmp_path):
    """The spec graph and IR of ``model`` exported to a .pt2 and imported."""
    ir = load_source(_export(model, shape, tmp_path / "m.pt2"), {}, None)
    spec = tmp_path / "net.yaml"
    spec.write_text(to_spec(ir, how="torch.export"))
    return build(load(str(spec))), ir


def _totals(graph):
    total = Counts()
    for layer in graph.layers():
        total = total + layer.counts()
    return total


@pytest.mark.parametrize("make,shape", [(_sequential, (3, 16, 16)), (ResNetish, (3, 32, 32)),
                                        (Inception, (3, 16, 16))])
def test_pt2_against_the_module(make, shape, tmp_path):
    fvcore = pytest.importorskip("fvcore.nn")
    model = make().eval()
    graph, ir = _imported(model, shape, tmp_path)
    totals = _totals(graph)
    assert totals.params == sum(p.numel() for p in model.parameters())
    assert totals.non_trainable == sum(b.numel() for n, b in model.named_buffers()
                                       if b.is_floating_point())
    flops = fvcore.FlopCountAnalysis(model, torch.zeros((1,) + shape))
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    by_module = flops.by_module()
    convs = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert totals.macs == sum(by_module[n] for n in convs)
    # every conv and linear is a layer under its module's own name (a top-level one may be a
    # row of one op, which the spec names ROW.OP)
    layers = {l.name: l for l in graph.layers()}
    for name, module in convs.items():
        layer = layers.get(name) or next(l for n, l in layers.items() if n.startswith(name + "."))
        assert layer.counts().macs == by_module[name], name
        assert layer.counts().params == sum(p.numel() for p in module.parameters()), name


def test_pt2_names_and_ops(tmp_path):
    ir = load_source(_export(ResNetish(), (3, 32, 32), tmp_path / "r.pt2"), {}, None)
    ops = {n.name: n.op for n in ir.nodes}
    assert not ir.opaque()
    assert ops["layer1.0.conv1"] == "conv" and ops["layer1.1.downsample.0"] == "conv"
    assert ops["layer1.0.bn1"] == "batchnorm" and ops["stem.3"] == "maxpool"
    assert ops["layer1.0.add"] == "add" and ops["pool"] == "gap" and ops["fc"] == "linear"
    add = next(n for n in ir.nodes if n.name == "layer1.1.add")
    assert add.inputs == ("layer1.1.bn2", "layer1.1.downsample.1")
    ir = load_source(_export(Inception(), (3, 16, 16), tmp_path / "i.pt2"), {}, None)
    ops = {n.name: n.op for n in ir.nodes}
    assert ops["b2.1"] == "relu6" and ops["b3.0"] == "avgpool" and ops["b3.2"] == "silu"
    assert ops["concat"] == "concat" and ops["mul"] == "mul" and ops["head.0"] == "dropout"
    cat = next(n for n in ir.nodes if n.name == "concat")
    assert cat.inputs == ("b1", "b2.2", "b3.2")
    # a mean over H and W is no spec op here: kept, with its shape, never dropped
    assert [(n.op, n.out_shape) for n in ir.opaque()] == [("opaque", (24,))]


def test_pt2_input_shape_is_the_programs(tmp_path):
    from archcalc.errors import ArchcalcError
    pt2 = _export(_sequential(), (3, 16, 16), tmp_path / "m.pt2")
    assert load_source(pt2, {}, (3, 16, 16)).input_shape == (3, 16, 16)
    with pytest.raises(ArchcalcError, match="exported at input 3x16x16"):
        load_source(pt2, {}, (3, 8, 8))


@pytest.mark.slow
def test_pt2_cli_sequential(tmp_path):
    pt2 = _export(_sequential(), (3, 16, 16), tmp_path / "m.pt2")
    out = tmp_path / "m.yaml"
    done = subprocess.run([sys.executable, "-m", "archcalc", "import", pt2, "-o", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "opaque" not in text and "conv:" in text and "linear:" in text and "gap" in text
    bad = subprocess.run([sys.executable, "-m", "archcalc", "import", pt2, "-o",
                          str(tmp_path / "x.yaml"), "--input", "3x8x8"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "exported at input 3x16x16" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_pt2_resnet18_cifar(tmp_path):
    import archcalc
    model = archcalc.build_model("resnet18-cifar")
    graph, ir = _imported(model, (3, 32, 32), tmp_path)
    assert not ir.opaque()
    totals = _totals(graph)
    # the CIFAR ResNet-18's hand sum (tests/test_zoo_classic.py)
    assert (totals.params, totals.macs) == (11_173_962, 555_422_720)
    assert totals.params == sum(p.numel() for p in model.parameters())
    assert "layer1.0.conv1" in {l.name for l in graph.layers()}
