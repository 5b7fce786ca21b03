"""build_model: the PyTorch model of a spec, its modules named as the spec's layers."""
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

import archcalc  # noqa: E402
from archcalc.errors import ArchcalcError, SpecError  # noqa: E402
from archcalc.core.graph import build  # noqa: E402
from archcalc.core.ops import OPS, Op  # noqa: E402
from archcalc.core.spec import load, parse  # noqa: E402
from archcalc.pytorch.build import TorchBuildError, build_model  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    """Forward passes of one or two images: on a busy machine, more threads only wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_exported_lazily_and_import_archcalc_stays_free_of_torch():
    assert archcalc.build_model is build_model
    code = "import sys, archcalc, archcalc.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("variant", ["reduced", "naive"])
def test_every_layer_is_a_module_of_the_same_name(spec_path, variant):
    graph = build(load(spec_path("googlenet")), variant, heads=True)
    with torch.device("meta"):      # structure only: no time spent filling weights
        names = dict(build_model(graph, heads=True).named_modules())
    assert [l.name for l in graph.layers(heads=True) if l.name not in names] == []
    assert isinstance(names["3a.b3x3.conv"], torch.nn.Conv2d)
    assert type(names["3a"]).__name__ == "Branches"     # the concat layer is its group


def test_googlenet_parameters_as_the_reference_counts():
    # 6,998,552 = Table 1's weights and biases (shared/reference/googlenet.md)
    assert trainable(build_model("googlenet")) == 6_998_552


def test_cifar_cnn_parameters_and_batchnorm_buffers():
    model = build_model("cifar-cnn")
    # the notes' Keras model: 1,253,674 params, of which 1,408 are BN moving statistics
    assert trainable(model) == 1_252_266
    stats = sum(b.numel() for n, b in model.named_buffers() if "running_" in n)
    assert stats == 1_408


def test_heads_in_training_mode_return_main_and_a_dict_of_heads():
    model = build_model("googlenet", heads=True).train()
    main, heads = model(torch.randn(2, 3, 224, 224))
    assert main.shape == (2, 1000)
    assert set(heads) == {"aux1", "aux2"} and heads["aux1"].shape == (2, 1000)
    assert model.loss_weights == {"aux1": 0.3, "aux2": 0.3}
    assert model.eval()(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_without_heads_training_mode_returns_the_main_output_only():
    out = build_model("nin").train()(torch.randn(2, 3, 32, 32))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10)


def test_logits_leaves_the_final_softmax_off_the_network_and_its_heads():
    probs = build_model("googlenet", heads=True)
    logits = build_model("googlenet", heads=True, logits=True)
    names = dict(logits.named_modules())
    assert "softmax.softmax" in dict(probs.named_modules())
    assert "softmax.softmax" not in names and "aux1.softmax" not in names
    logits.load_state_dict(probs.state_dict())      # same parameters, same names
    x = torch.randn(1, 3, 224, 224)
    probs.eval(), logits.eval()
    with torch.no_grad():
        assert torch.allclose(logits(x).softmax(1), probs(x), atol=1e-6)
        main, heads = logits.train()(x)
    assert not torch.allclose(heads["aux2"].sum(1), torch.ones(1))


def test_variant_and_input_arguments(spec_path):
    with torch.device("meta"):
        naive = build_model(spec_path("googlenet"), variant="naive")
    # shared/reference/googlenet.md: every module naive, 97,519,936 weights (biases aside)
    assert sum(p.numel() for p in naive.parameters() if p.dim() > 1) == 97_519_936
    model = build_model("nin", input="3x64x64").eval()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    assert build_model("nin", input=(3, 48, 48)).input_shape == (3, 48, 48)


def test_bad_arguments_are_archcalc_errors():
    with pytest.raises(SpecError, match="unknown variant 'naiv'"):
        build_model("googlenet", variant="naiv")
    with pytest.raises(ArchcalcError, match="no such file"):
        build_model("no-such-spec")


def test_layer_names_that_are_module_attributes_still_work():
    spec = parse(textwrap.dedent("""
        input: [3, 8, 8]
        layers:
          type:  {conv: {out: 4, kernel: 3, name: eval}}
          train: [flatten, linear: {out: 2, name: forward}]
    """))
    names = dict(build_model(spec).named_modules())
    assert isinstance(names["type.eval"], torch.nn.Conv2d)
    assert isinstance(names["train.forward"], torch.nn.Linear)
    assert build_model(spec).eval()(torch.randn(1, 3, 8, 8)).shape == (1, 2)


class Widget(Op):
    """An op that archcalc can analyze but that has no PyTorch builder."""
    name = "widget"
    title = "widget"


def test_an_op_without_a_torch_builder_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(OPS, "widget", Widget)
    spec = parse("input: [3, 8, 8]\nlayers:\n  odd: widget\n", "odd.yaml")
    with pytest.raises(TorchBuildError) as caught:
        build_model(spec)
    assert str(caught.value) == "odd.yaml:3:8: layer 'odd.widget': op 'widget' has no " \
                                "PyTorch builder"
    assert isinstance(caught.value, ArchcalcError)


def test_every_registered_op_has_a_torch_builder():
    assert [name for name, cls in OPS.items() if cls.to_torch is Op.to_torch] == []


def test_a_join_runs_its_op_module_and_adds_no_module_name():
    """concat's module is the op's (to_torch), called by its branches' container, whose name
    it shares: named_modules() are the graph's names and nothing else."""
    graph = build(parse("input: [3, 8, 8]\nlayers:\n  mix: {concat: [identity, "
                        "{conv: {out: 2, kernel: 1}}]}\n", "j.yaml"))
    model = build_model(graph)
    names = {n for n, _ in model.named_modules() if n}
    assert names == {"mix", "mix.b1", "mix.b1.identity", "mix.b2", "mix.b2.conv"}
    x = torch.randn(1, 3, 8, 8)
    out = model(x)
    assert out.shape == (1, 5, 8, 8) and torch.equal(out[:, :3], x)


def test_heads_need_a_graph_built_with_them(spec_path):
    graph = build(load(spec_path("googlenet")))         # heads left out: not built
    assert graph.heads == [] and not graph.with_heads
    with pytest.raises(ArchcalcError, match="built without its heads"):
        build_model(graph, heads=True)


def test_layers_named_as_module_attributes_still_train_and_evaluate(tmp_path):
    """nn.Module sets `training` (and this builder `head_outputs`) as plain attributes: a layer
    of that name used to make `eval()` raise TypeError, and so `archcalc train`."""
    spec = tmp_path / "clash.yaml"
    spec.write_text(textwrap.dedent("""\
        input: [3, 8, 8]
        layers:
          training: {conv: {out: 4, kernel: 3, padding: 1, act: relu}}
          forward: [{conv: {out: 4, kernel: 1, name: to}}, {batchnorm: {name: eval}}]
          _modules: {maxpool: {kernel: 2}}
          head_outputs: gap
          row_names: {linear: {out: 2}}
        heads:
          loss_weights: {after: training, use: [gap, linear: {out: 2}]}
        """))
    model = build_model(str(spec), heads=True)
    names = dict(model.named_modules())
    assert {"training.conv", "training.conv_relu", "forward.to", "forward.eval",
            "_modules.maxpool", "head_outputs.gap", "row_names.linear",
            "loss_weights.linear"} <= set(names)
    assert model.eval() is model and model.training is False
    assert all(not m.training for m in model.modules())
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 2)
    model.train()
    out, heads = model(torch.randn(2, 3, 8, 8))
    assert model.training is True and out.shape == (2, 2) and heads["loss_weights"].shape == (2, 2)
    # parameters: conv 3*4*9+4, conv 4*4+4, batchnorm 2*4, linear 4*2+2, head linear 4*2+2
    assert trainable(model) == 112 + 20 + 8 + 10 + 10
    assert isinstance(model._modules["training"], torch.nn.Module)
