"""archcalc import writes repeated structure as blocks and stages, and stays exact.

Oracles: the model's own parameter count (sum of p.numel()), fvcore's conv+linear MACs, and
torchvision's published ResNet-18 figures (11,689,512 parameters, 1.814G multiply-adds) for the
round trip of the bundled resnet spec."""
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from archcalc.bridge.from_torch import trace  # noqa: E402
from archcalc.bridge.writer import to_spec  # noqa: E402
from archcalc.core.graph import build  # noqa: E402
from archcalc.core.ops import Counts  # noqa: E402
from archcalc.core.spec import load  # noqa: E402

torch.set_num_threads(1)


class Unit(nn.Module):
    """A basic block as torchvision writes it: a 1×1 downsample where the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.downsample = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + (x if self.downsample is None else self.downsample(x)))


class SmallResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU())
        self.layer1 = nn.Sequential(Unit(16, 16, 1), Unit(16, 16, 1), Unit(16, 16, 1))
        self.layer2 = nn.Sequential(Unit(16, 32, 2), Unit(32, 32, 1), Unit(32, 32, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layer2(self.layer1(self.stem(x)))), 1))


def _graph(text, tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(text)
    return build(load(str(path)))


def _rows(graph):
    return {r.name: sum((l.counts() for l in r.group.layers()), Counts()) for r in graph.rows}


def _total(graph):
    return sum((l.counts() for l in graph.layers()), Counts())


def _stage(text, row):
    """The lines of ``row``'s entry under layers: (the YAML as written)."""
    lines = text.split("\nlayers:\n")[1].splitlines()
    start = lines.index(f"  {row}:")
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("    ")),
               len(lines))
    return "\n".join(lines[start:end])


def test_resnet_like_model_becomes_two_stages(tmp_path):
    fvcore = pytest.importorskip("fvcore.nn")
    model = SmallResNet().eval()
    text = to_spec(trace(model, (3, 32, 32), "test"))
    layer1, layer2 = _stage(text, "layer1"), _stage(text, "layer2")
    assert "stage:" in layer1 and "repeat: 3" in layer1 and "first" not in layer1, layer1
    assert "stage:" in layer2 and "repeat: 3" in layer2 and "first: {block:" in layer2, layer2
    graph = _graph(text, tmp_path)
    names = {l.name for l in graph.layers()}
    assert {"layer1.2.conv2", "layer2.0.downsample.0", "layer2.2.bn2"} <= names
    assert _total(graph).params == sum(p.numel() for p in model.parameters())
    flops = fvcore.FlopCountAnalysis(model, torch.zeros(1, 3, 32, 32))
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    by_module = flops.by_module()
    for row in ("layer1", "layer2"):
        module = getattr(model, row)
        assert _rows(graph)[row].params == sum(p.numel() for p in module.parameters()), row
        assert _rows(graph)[row].macs == by_module[row] - sum(
            by_module[f"{row}.{n}"] for n, m in module.named_modules()
            if isinstance(m, nn.BatchNorm2d)), row
    conv_linear = sum(by_module[n] for n, m in model.named_modules()
                      if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert _total(graph).macs == conv_linear


def test_no_stage_where_the_repeats_differ(tmp_path):
    model = SmallResNet().eval()
    model.layer1[1].conv2 = nn.Conv2d(16, 16, 3, 1, 1, bias=True)   # differs in a literal
    ir = trace(model, (3, 32, 32), "test")
    text = to_spec(ir)
    assert "stage:" not in _stage(text, "layer1")
    assert "stage:" in _stage(text, "layer2")
    graph = _graph(text, tmp_path)
    assert _total(graph).params == sum(p.numel() for p in model.parameters())


def test_resnet18_round_trip_gives_stages(tmp_path):
    import archcalc
    model = archcalc.build_model("resnet", variant="resnet18")
    text = to_spec(trace(model, (3, 224, 224), "resnet"))
    for row in ("layer1", "layer2", "layer3", "layer4"):
        assert "stage:" in _stage(text, row), row
    for row in ("layer2", "layer3", "layer4"):
        assert "first: {block:" in _stage(text, row), row
    total = _total(_graph(text, tmp_path))
    assert (total.params, total.macs) == (11_689_512, 1_814_073_344)   # torchvision's
