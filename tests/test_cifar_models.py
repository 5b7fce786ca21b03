"""The CIFAR-10 models of shared/reference/cifar-models.md, numbers typed in from there."""
from archcalc.core import analysis, graph, spec
from tests.conftest import SPECS

KERAS_SUMMARY = [  # (output shape, Keras "Param #") for the layers Keras lists with params
    ((32, 32, 32), 896), ((32, 32, 32), 128), ((32, 30, 30), 9_248), ((32, 30, 30), 128),
    ((64, 15, 15), 18_496), ((64, 15, 15), 256), ((64, 13, 13), 36_928), ((64, 13, 13), 256),
    ((512,), 1_180_160), ((512,), 2_048), ((10,), 5_130)]


def report(name):
    return analysis.analyze(graph.build(spec.load(SPECS / f"{name}.yaml")))


def test_cifar_cnn_matches_keras_summary():
    r = report("cifar-cnn")
    with_params = [(l.output_shape, l.params + l.non_trainable) for l in r.layers
                   if l.params + l.non_trainable]
    assert with_params == KERAS_SUMMARY
    t = r.totals
    assert t.params + t.non_trainable == 1_253_674
    assert t.params == 1_252_266
    assert t.non_trainable == 1_408 == 2 * (32 + 32 + 64 + 64 + 512)
    assert t.macs == 20_741_120 == 19_556_352 + 1_184_768


def test_cifar_cnn_pooling_floors():
    layers = {l.name: l for l in report("cifar-cnn").layers}
    assert layers["pool1.maxpool"].output_shape == (32, 15, 15)
    assert layers["pool2.maxpool"].output_shape == (64, 6, 6)
    assert layers["flatten.flatten"].output_shape == (2_304,)


def test_network_in_network_parameters():
    r = report("nin")
    assert r.totals.params == 966_986
    assert {row.name: row.output_shape for row in r.rows}["gap"] == (10,)


def test_googlenet_for_cifar_keeps_table_1_widths_at_32x32():
    rows = {r.name: r for r in report("googlenet-cifar").rows}
    table_1_channels = {"3a": 256, "3b": 480, "4a": 512, "4b": 512, "4c": 512, "4d": 528,
                        "4e": 832, "5a": 832, "5b": 1024}
    for name, channels in table_1_channels.items():
        assert rows[name].output_shape[0] == channels
    assert rows["3b"].output_shape[1:] == (32, 32)
    assert rows["5b"].output_shape[1:] == (8, 8)        # two 3×3/2 pools with padding 1
    assert rows["linear"].output_shape == (10,)


def test_fashion_cnn_takes_28x28_grayscale():
    r = report("fashion-cnn")
    assert r.input == (1, 28, 28)
    assert r.rows[-1].output_shape == (10,)
    # conv1: 3×3×1×32 + 32; conv2: 3×3×32×64 + 64; dense: 3136×128 + 128; classify: 128×10 + 10
    # plus BatchNorm's γ and β: 2×(32 + 64 + 128)
    assert r.totals.params == 320 + 18_496 + 401_536 + 1_290 + 2 * (32 + 64 + 128)
