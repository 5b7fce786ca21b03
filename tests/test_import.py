"""archcalc import: a real model's spec gives the model's own numbers.

Oracles: archcalc's table of the bundled spec itself (the round trip through a plain traced
nn.Module), the modules' own parameter counts, fvcore's by_module MACs, and the CLI's one-line
refusals. Tracing uses only standard torch information (module types, attributes, the graph)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from archcalc.bridge.from_torch import trace  # noqa: E402
from archcalc.bridge.writer import to_spec  # noqa: E402
from archcalc.core.analysis import analyze  # noqa: E402,F401
from archcalc.core.graph import build  # noqa: E402
from archcalc.core.ops import OPS  # noqa: E402
from archcalc.core.spec import load, parse  # noqa: E402,F401

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def _spec_graph(text, tmp_path, name="net.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return build(load(str(path)))


def _totals(graph):
    from archcalc.core.ops import Counts
    total = Counts()
    for layer in graph.layers():
        total = total + layer.counts()
    return total


SMALL = {"unet": (1, 188, 188)}


def _bundled():
    from archcalc.files import bundled_specs
    return [p.stem if hasattr(p, "stem") else str(p) for p in bundled_specs()]


@pytest.mark.slow
@pytest.mark.parametrize("spec", _bundled())
def test_round_trip_bundled(spec, tmp_path):
    import archcalc
    from archcalc.pytorch.build import load_graph
    original = load_graph(spec, input=SMALL.get(spec))
    model = archcalc.build_model(spec, input=SMALL.get(spec))
    ir = trace(model, original.input_shape, spec)
    if ir.opaque() and "opaque" not in OPS:
        pytest.skip("needs the opaque op (the against branch)")
    imported = _spec_graph(to_spec(ir), tmp_path)
    assert _totals(imported) == _totals(original)
    # per row: the model's top-level children are the spec's rows
    rows = {r.name: sum((l.counts() for l in r.group.layers()), type(_totals(original))())
            for r in original.rows}
    got = {r.name: sum((l.counts() for l in r.group.layers()), type(_totals(original))())
           for r in imported.rows}
    assert {k: v for k, v in got.items() if v.params or v.macs} == \
        {k: v for k, v in rows.items() if v.params or v.macs}
    # per layer: every layer the import names as the spec does has its shape and counts (the
    # others are joins, named after their op in the import and after their container in a
    # spec, and pass-through layers that a trace in eval mode does not see)
    mine = {l.name: (l.out_shape, l.counts()) for l in original.layers()}
    theirs = {l.name: (l.out_shape, l.counts()) for l in imported.layers()}
    shared = [name for name in mine if name in theirs]
    assert shared and [n for n in shared if mine[n] != theirs[n]] == []


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x if self.down is None else self.down(x)
        return self.relu(out)


class SE(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(c, r, 1), nn.Conv2d(r, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(self.pool(x)))))


class InvertedResidual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(c, 4 * c, 1, bias=False), nn.BatchNorm2d(4 * c),
                                    nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(4 * c, 4 * c, 3, 1, 1, groups=4 * c, bias=False),
                                nn.BatchNorm2d(4 * c), nn.SiLU())
        self.se = SE(4 * c, c // 2)
        self.project = nn.Sequential(nn.Conv2d(4 * c, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.project(self.se(self.dw(self.expand(x))))


class Inception(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.b1 = nn.Conv2d(c, 8, 1)
        self.b2 = nn.Sequential(nn.Conv2d(c, 4, 1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1))
        self.b3 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(c, 4, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x)], 1)


class TinyUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.mid = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose2d(16, 8, 2, 2)
        self.dec = nn.Sequential(nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1))

    def forward(self, x):
        e = self.enc(x)
        return self.dec(torch.cat([e, self.up(self.mid(self.pool(e)))], dim=1))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU())
        self.layer1 = nn.Sequential(Basic(16, 16, 1), Basic(16, 32, 2))
        self.ir = InvertedResidual(32)
        self.inc = Inception(32)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(20, 10)

    def forward(self, x):
        x = self.inc(self.ir(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


@pytest.mark.parametrize("make,shape", [(Net, (3, 32, 32)), (TinyUNet, (3, 32, 32))])
def test_independent_models_against_fvcore(make, shape, tmp_path):
    fvcore = pytest.importorskip("fvcore.nn")
    model = make().eval()
    ir = trace(model, shape, "test")
    assert not ir.opaque()
    graph = _spec_graph(to_spec(ir), tmp_path)
    layers = {l.name: l for l in graph.layers()}
    modules = dict(model.named_modules())
    flops = fvcore.FlopCountAnalysis(model, torch.zeros((1,) + shape))
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    by_module = flops.by_module()
    for name, module in modules.items():
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d, nn.BatchNorm2d)):
            # a top-level leaf is a row of one op, whose layer the spec names ROW.OP
            layer = layers.get(name) or next(l for n, l in layers.items()
                                             if n.startswith(name + "."))
            assert layer.counts().params == sum(p.numel() for p in module.parameters()), name
            if not isinstance(module, nn.BatchNorm2d):
                assert layer.counts().macs == by_module[name], name
    assert _totals(graph).params == sum(p.numel() for p in model.parameters())
    conv_linear = sum(by_module[n] for n, m in modules.items()
                      if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)))
    assert _totals(graph).macs == conv_linear


class Sorter(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.sort(self.conv(x), dim=1).values.abs()


def test_unmapped_ops_are_opaque_with_their_location(tmp_path):
    ir = trace(Sorter(), (3, 8, 8), "test")
    opaque = ir.opaque()
    assert [n.kind for n in opaque] == ["sort", "getattr", "abs"]   # .values: a getattr
    assert all(n.args["shape"] for n in opaque)
    text = to_spec(ir)
    assert "opaque" in text and "sort" in text.split("layers:")[0]
    if "opaque" in OPS:
        assert _spec_graph(text, tmp_path).layers()


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "archcalc", *args], capture_output=True,
                          text=True, cwd=cwd, env={"PYTHONPATH": str(ROOT), "PATH": ""})


@pytest.mark.slow
def test_bad_sources_are_one_line_and_write_nothing(tmp_path):
    (tmp_path / "cond.py").write_text(
        "import torch\nclass M(torch.nn.Module):\n    def forward(self, x):\n"
        "        return x if x.sum() > 0 else -x\ndef make():\n    return M()\n")
    out = tmp_path / "net.yaml"
    for source, says in [("no_such_pkg_xyz:make", "cannot import"),
                         ("os:getcwd", "not a torch.nn.Module"),
                         ("cond:make", "data-dependent control flow"),
                         ("cond", "expected package.module:callable"),
                         ("missing.pt2", "no such file")]:
        run = _cli("import", source, "-o", str(out), cwd=tmp_path)
        assert run.returncode == 2, (source, run.stderr)
        assert says in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert "Traceback" not in run.stderr
        assert not out.exists()
