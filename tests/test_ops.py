"""Each op's shape and counts against closed-form arithmetic written out in the test."""
import pytest

from archcalc.core import graph, spec
from archcalc.errors import SpecError
from archcalc.core.ops import OPS, Counts, numel
from archcalc.core.ops.base import window_out


def layers_of(yaml_layers: str, input_shape="[3, 32, 32]"):
    text = f"input: {input_shape}\nlayers:\n{yaml_layers}"
    return graph.build(spec.parse(text, "t.yaml")).layers()


def one(yaml_op: str, input_shape="[3, 32, 32]"):
    return layers_of(f"  l: {yaml_op}\n", input_shape)[0]


@pytest.mark.parametrize("size,kernel,stride,pad,ceil,expected", [
    (224, 7, 2, 3, False, 112),     # conv1
    (112, 3, 2, 0, True, 56),       # Table 1's pool: ceil((112-3)/2)+1
    (112, 3, 2, 0, False, 55),
    (13, 2, 2, 0, False, 6),        # Keras MaxPool2D on 13
    (2, 3, 2, 0, True, 1),          # ceil mode: the window starts inside the input
    (2, 3, 2, 0, False, 0),         # does not fit
    (5, 2, 2, 1, True, 3),          # the last window would start in the right padding only
])
def test_window_arithmetic(size, kernel, stride, pad, ceil, expected):
    assert window_out(size, kernel, stride, pad, ceil=ceil) == expected


def test_conv_same_padding_keeps_ceil_of_input_over_stride():
    l = one("{conv: {out: 64, kernel: 7, stride: 2}}", "[3, 224, 224]")
    assert l.out_shape == (64, 112, 112)
    assert l.counts() == Counts(params=7 * 7 * 3 * 64 + 64, weights=7 * 7 * 3 * 64,
                                macs=7 * 7 * 3 * 64 * 112 * 112)


def test_conv_valid_rectangular_dilated_grouped():
    l = one("{conv: {out: 8, kernel: [3, 5], padding: valid, dilation: 2, groups: 2, bias: false}}",
            "[4, 20, 30]")
    # effective kernel 5×9: 20-5+1 = 16, 30-9+1 = 22; each output channel sees 4/2 inputs
    assert l.out_shape == (8, 16, 22)
    w = 8 * 2 * 3 * 5
    assert l.counts() == Counts(params=w, weights=w, macs=w * 16 * 22)


def test_conv_explicit_padding_and_stride_pair():
    l = one("{conv: {out: 4, kernel: 3, stride: [2, 1], padding: [0, 2]}}", "[1, 9, 9]")
    assert l.out_shape == (4, (9 - 3) // 2 + 1, 9 + 4 - 3 + 1)


def test_linear_flattens_and_counts_without_bias_in_macs():
    l = one("{linear: {out: 10}}", "[64, 2, 2]")
    assert l.out_shape == (10,)
    assert l.counts() == Counts(params=256 * 10 + 10, weights=2560, macs=2560)


def test_batchnorm_trainable_and_running_statistics():
    l = one("batchnorm", "[16, 8, 8]")
    assert l.counts() == Counts(params=32, weights=16, non_trainable=32, other_ops=2 * 16 * 64)
    assert one("batchnorm", "[10]").counts().non_trainable == 20


def test_pools_default_to_unpadded_stride_equal_kernel():
    assert one("{maxpool: {kernel: 2}}", "[3, 13, 13]").out_shape == (3, 6, 6)
    assert one("{avgpool: {kernel: 3, stride: 1, padding: same}}", "[3, 7, 7]").out_shape == (3, 7, 7)
    assert one("{maxpool: {kernel: 3, stride: 2, ceil: true}}", "[3, 112, 112]").out_shape == (3, 56, 56)
    assert one("gap", "[7, 5, 5]").out_shape == (7, 1, 1)


def test_weightless_ops_keep_shape_and_count_apart_from_macs():
    for op in ("relu", "softmax", "dropout", "identity", "lrn"):
        l = one(op, "[4, 6, 6]")
        assert l.out_shape == (4, 6, 6)
        assert l.counts().macs == 0 and l.counts().params == 0
    assert one("flatten", "[4, 6, 6]").out_shape == (144,)


def test_act_adds_its_own_layer():
    ls = layers_of("  c: {conv: {out: 8, kernel: 3, act: relu}}\n")
    assert [(l.name, l.kind) for l in ls] == [("c.conv", "conv"), ("c.conv_relu", "relu")]


def test_defaults_apply_and_can_be_overridden():
    text = ("input: [3, 8, 8]\ndefaults: {conv: {act: relu, bias: false}}\nlayers:\n"
            "  a: {conv: {out: 4, kernel: 1}}\n  b: {conv: {out: 4, kernel: 1, act: none}}\n")
    ls = graph.build(spec.parse(text, "t.yaml")).layers()
    assert [l.name for l in ls] == ["a.conv", "a.conv_relu", "b.conv"]
    assert ls[0].counts().params == 12


def test_residual_add_and_concat_joins():
    ls = layers_of("  res: {add: [identity, conv: {out: 3, kernel: 3}]}\n"
                   "  mix: {concat: {a: {conv: {out: 5, kernel: 1}}, b: {maxpool: {kernel: 3, stride: 1, padding: same}}}}\n")
    by = {l.name: l for l in ls}
    assert by["res"].kind == "add" and by["res"].out_shape == (3, 32, 32)
    assert by["res"].counts().other_ops == 3 * 32 * 32
    assert by["mix"].kind == "concat" and by["mix"].out_shape == (8, 32, 32)


def test_repeated_unnamed_ops_are_numbered():
    ls = layers_of("  s: [conv: {out: 4, kernel: 3}, conv: {out: 4, kernel: 3}, relu]\n")
    assert [l.name for l in ls] == ["s.conv_1", "s.conv_2", "s.relu"]


def test_block_arguments_by_name():
    text = ("input: [3, 8, 8]\nblocks:\n  two:\n    args: [a, b]\n"
            "    body: [conv: {out: a, kernel: 1}, conv: {out: b, kernel: [a, 1], padding: valid}]\n"
            "layers:\n  x: {two: {b: 6, a: 2}}\n")
    ls = graph.build(spec.parse(text, "t.yaml")).layers()
    assert ls[-1].out_shape == (6, 7, 8)


def test_every_op_documents_itself():
    for name, cls in OPS.items():
        assert cls.summary and cls.title, name
        for arg, a in cls.args.items():
            assert a.doc, f"{name}.{arg}"


def test_shape_errors_name_the_layer():
    with pytest.raises(SpecError, match="layer 'p.maxpool': 5×5 window does not fit a 4×4 input"):
        layers_of("  p: {maxpool: {kernel: 5}}\n", "[1, 4, 4]")


# --- joins are ops --------------------------------------------------------------------------

def test_joins_are_registered_ops_with_several_inputs():
    assert OPS["concat"].inputs == OPS["add"].inputs == "many"
    assert OPS["conv"].inputs == "one"
    # (4 + 6) channels of one 5×5 map; 2 branches of 3×5×5 summed: one add per element
    assert OPS["concat"]().output_shape(((4, 5, 5), (6, 5, 5))) == (10, 5, 5)
    assert OPS["add"]().counts(((3, 5, 5),) * 2, (3, 5, 5)).other_ops == 75


def test_a_new_join_needs_no_change_outside_its_class(monkeypatch):
    """A broadcasting join (as the coming `mul` will be) registered like any op: the spec
    reader and the graph take it by its `inputs`, not by its name."""
    from archcalc.core.ops import Join, ShapeError

    class Gate(Join):
        name = "gate"
        title = "gate"
        summary = "a test join: C×H×W times C×1×1, broadcast"

        def output_shape(self, shapes):
            big, small = shapes[0], shapes[-1]
            if len(shapes) != 2 or small != (big[0], 1, 1):
                raise ShapeError(f"cannot broadcast {shapes[1:]} over {big}")
            return big

        def counts(self, in_shapes, out_shape):
            return Counts(other_ops=numel(out_shape))
    monkeypatch.setitem(OPS, "gate", Gate)
    ls = layers_of("  se: {gate: {x: identity, w: [gap, conv: {out: 3, kernel: 1}]}}\n")
    by = {l.name: l for l in ls}
    assert by["se"].kind == "gate" and by["se"].is_join
    assert by["se"].in_shapes == ((3, 32, 32), (3, 1, 1)) and by["se"].out_shape == (3, 32, 32)
    assert by["se"].counts().other_ops == 3 * 32 * 32
    with pytest.raises(SpecError, match="layer 'bad': cannot broadcast"):
        layers_of("  bad: {gate: [identity, identity, identity]}\n")


def test_pool_same_keeps_its_promise_and_refuses_ceil_on_top():
    # same: ceil(8 / 2) = 4; ceil mode on top of same's padding would give 5 (PyTorch:
    # floor((8 + 2·1 - 3 + 1) / 2) + 1 = 5), so the two together are refused
    ls = layers_of("  p: {maxpool: {kernel: 3, stride: 2, padding: same}}\n", "[3, 8, 8]")
    assert ls[0].out_shape == (3, 4, 4)
    with pytest.raises(SpecError, match="'padding: same' already rounds the output up"):
        layers_of("  p: {avgpool: {kernel: 3, stride: 2, padding: same, ceil: true}}\n",
                  "[3, 8, 8]")


# --- naming block calls -----------------------------------------------------------------------

TWO = ("input: [3, 8, 8]\nblocks:\n  two:\n    args: [a, b]\n"
       "    body: [conv: {out: a, kernel: 1}, conv: {out: b, kernel: 1}]\nlayers:\n")


def names_of(layers_yaml: str):
    return [l.name for l in graph.build(spec.parse(TWO + layers_yaml, "t.yaml")).layers()]


def test_a_block_call_is_named_among_its_arguments_by_name():
    inside = names_of("  s:\n    - {two: {name: m1, a: 2, b: 3}}\n    - {two: {name: m2, a: 2, b: 3}}\n")
    beside = names_of("  s:\n    - {name: m1, two: {a: 2, b: 3}}\n    - {name: m2, two: [2, 3]}\n")
    assert inside == beside == ["s.m1.conv_1", "s.m1.conv_2", "s.m2.conv_1", "s.m2.conv_2"]
    # a named call that is the whole row is named inside the row, as a named op is
    assert names_of("  r: {two: {name: x, a: 2, b: 3}}\n") == ["r.x.conv_1", "r.x.conv_2"]
    assert names_of("  r: {two: {a: 2, b: 3}}\n") == ["r.conv_1", "r.conv_2"]


def test_a_block_argument_called_name_stays_an_argument():
    text = ("input: [3, 8, 8]\nblocks:\n  one:\n    args: [name]\n"
            "    body: [conv: {out: name, kernel: 1}]\nlayers:\n  r: {one: {name: 4}}\n")
    ls = graph.build(spec.parse(text, "t.yaml")).layers()
    assert [(l.name, l.out_shape) for l in ls] == [("r.conv", (4, 8, 8))]


def test_naming_a_call_in_its_list_of_arguments_says_how_to_name_it():
    with pytest.raises(SpecError) as err:
        names_of("  s: [two: [2, 3, name: m1]]\n")
    assert str(err.value) == (
        "t.yaml:7:19: block 'two': a call's name cannot be one of its listed arguments; "
        "write it beside the call ({name: m1, two: [...]}) or pass the arguments by name with "
        "the name among them ({two: {name: m1, ...}})")
    with pytest.raises(SpecError, match="named twice"):
        names_of("  s: [{name: a, two: {name: b, a: 2, b: 3}}]\n")


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_gives_examples_for_every_argument(name):
    """The PyTorch-oracle property test (test_verify.py) draws every op's arguments from them:
    an argument without examples would go untested."""
    for key, arg in OPS[name].args.items():
        assert arg.examples, f"{name}.{key} has no examples"
        for value in arg.examples:
            arg.check(value)        # raises ArgError for an example the op would refuse


# --- the modern ops: shapes and counts from the papers' figures and written-out arithmetic ----

def test_adaptive_pools_to_alexnets_6x6():
    # AlexNet's last pool leaves 256×13×13 (torchvision pools adaptively to 6×6): PyTorch's
    # windows are [0,3) [2,5) [4,7) [6,9) [8,11) [10,13), six of 3 rows, overlapping
    avg = one("{adaptive_avgpool: {size: 6}}", "[256, 13, 13]")
    assert avg.out_shape == (256, 6, 6)
    assert avg.counts() == Counts(other_ops=256 * 13 * 13)     # fvcore: each input once
    mx = one("{adaptive_maxpool: {size: [6, 13]}}", "[256, 13, 13]")
    assert mx.out_shape == (256, 6, 13)
    assert mx.counts() == Counts(other_ops=256 * (6 * 3) * 13)  # one read per window element
    with pytest.raises(SpecError, match="needs a C×H×W feature map"):
        one("{adaptive_avgpool: {size: 6}}", "[10]")


def test_conv_transpose_output_size_and_macs_by_input_positions():
    # DCGAN's generator: 4×4×1024 by a 4×4/2 transposed conv with padding 1 gives 8×8×512
    l = one("{conv_transpose: {out: 512, kernel: 4, stride: 2, padding: 1, bias: false}}",
            "[1024, 4, 4]")
    assert l.out_shape == (512, (4 - 1) * 2 - 2 + 4, 8)
    w = 1024 * 512 * 4 * 4
    assert l.counts() == Counts(params=w, weights=w, macs=w * 4 * 4)   # input positions
    # U-Net's up-convolution: 2×2/2 halves the channels, doubles 28×28 to 56×56
    l = one("{conv_transpose: {out: 512, kernel: 2, stride: 2}}", "[1024, 28, 28]")
    assert l.out_shape == (512, 56, 56)
    assert l.counts().params == 1024 * 512 * 4 + 512 and l.op.depth == "weights"
    # (7 - 1)·2 - 2·1 + (3 - 1) + 1, plus output_padding 1: 14, where a 3×3/2 conv takes both
    # 13 and 14 to 7
    assert one("{conv_transpose: {out: 2, kernel: 3, stride: 2, padding: 1, output_padding: 1}}",
               "[2, 7, 7]").out_shape == (2, 14, 14)
    with pytest.raises(SpecError, match="'output_padding' \\(2\\) must be less than the stride"):
        one("{conv_transpose: {out: 2, kernel: 3, stride: 2, output_padding: 2}}", "[2, 7, 7]")
    with pytest.raises(SpecError, match="crops the whole"):
        one("{conv_transpose: {out: 2, kernel: 1, padding: 1}}", "[2, 2, 2]")
    with pytest.raises(SpecError, match="cannot be split into 2 groups"):
        one("{conv_transpose: {out: 2, kernel: 1, groups: 2}}", "[3, 2, 2]")
    with pytest.raises(SpecError, match="must be a non-negative integer"):
        one("{conv_transpose: {out: 2, kernel: 1, padding: same}}", "[3, 2, 2]")


def test_upsample_by_scale_or_to_a_size():
    l = one("{upsample: {scale: [2, 3], mode: bilinear}}", "[4, 5, 6]")
    assert l.out_shape == (4, 10, 18)
    assert l.counts() == Counts(other_ops=4 * 4 * 10 * 18)    # four neighbours per output
    l = one("{upsample: {size: 7}}", "[4, 5, 6]")
    assert l.out_shape == (4, 7, 7) and l.counts().other_ops == 4 * 7 * 7
    for both_or_neither in ("{upsample: {scale: 2, size: 4}}", "upsample"):
        with pytest.raises(SpecError, match="takes one of 'scale' and 'size'"):
            one(both_or_neither)


def test_layer_and_group_norm_follow_fvcores_five_per_element():
    l = one("layernorm", "[96, 56, 56]")        # ConvNeXt-T's stem norm: over 96 channels
    assert l.counts() == Counts(params=192, weights=96, other_ops=5 * 96 * 56 * 56)
    assert one("{layernorm: {affine: false}}", "[10]").counts() == Counts(other_ops=40)
    g = one("{groupnorm: {groups: 32}}", "[64, 8, 8]")
    assert g.counts() == Counts(params=128, weights=64, other_ops=5 * 64 * 64)
    with pytest.raises(SpecError, match="6 channels cannot be split into 4 groups"):
        one("{groupnorm: {groups: 4}}", "[6, 8, 8]")
    with pytest.raises(SpecError, match="one value per group"):
        one("{groupnorm: {groups: 4}}", "[4, 1, 1]")


def test_batchnorm_without_affine_keeps_only_running_statistics():
    l = one("{batchnorm: {affine: false}}", "[16, 8, 8]")
    assert l.counts() == Counts(non_trainable=32, other_ops=16 * 64)  # fvcore: 1 per element


def test_layer_scale_stochastic_depth_and_channel_shuffle():
    assert one("layer_scale", "[96, 56, 56]").counts() == Counts(
        params=96, weights=96, other_ops=96 * 56 * 56)
    assert one("{stochastic_depth: {p: 0.1}}", "[8, 4, 4]").counts() == Counts()
    with pytest.raises(SpecError, match="needs 'p'"):
        one("stochastic_depth")
    assert one("{channel_shuffle: {groups: 3}}", "[24, 4, 4]").out_shape == (24, 4, 4)
    with pytest.raises(SpecError, match="8 channels cannot be split into 3 groups"):
        one("{channel_shuffle: {groups: 3}}", "[8, 4, 4]")


def test_act_takes_the_ops_defaults_and_the_specs():
    text = ("input: [3, 8, 8]\ndefaults: {leaky_relu: {slope: 0.2}}\nlayers:\n"
            "  a: {conv: {out: 4, kernel: 1, act: leaky_relu}}\n"
            "  b: {linear: {out: 4, act: gelu}}\n")
    ls = graph.build(spec.parse(text, "t.yaml")).layers()
    assert [(l.kind, l.op.a) for l in ls[1::2]] == [("leaky_relu", {"slope": 0.2}),
                                                     ("gelu", {"approximate": "none"})]


def test_mul_broadcasts_a_gate_and_crop_cuts_unets_skip():
    ls = layers_of("  se: {mul: [identity, [gap, conv: {out: 3, kernel: 1, act: sigmoid}]]}\n")
    se = ls[-1]
    assert se.in_shapes == ((3, 32, 32), (3, 1, 1)) and se.out_shape == (3, 32, 32)
    assert se.counts() == Counts(other_ops=3 * 32 * 32)
    assert OPS["mul"]().output_shape(((1, 5, 5), (4, 1, 1))) == (4, 5, 5)
    with pytest.raises(SpecError, match="mul cannot broadcast 3×32×32, 5×32×32"):
        layers_of("  se: {mul: [identity, conv: {out: 5, kernel: 1}]}\n")
    # U-Net (Fig. 1): the first level's 64×568×568 is cropped to the 392×392 of the
    # up-convolved map before the concatenation
    assert OPS["crop"]().output_shape(((64, 568, 568), (512, 392, 392))) == (64, 392, 392)
    ls = layers_of("  c: {crop: [identity, conv: {out: 8, kernel: 5, padding: valid}]}\n")
    assert ls[-1].out_shape == (3, 28, 28) and ls[-1].counts() == Counts()
    with pytest.raises(SpecError, match="crop cannot cut 28×28 to a larger 32×32"):
        layers_of("  c: {crop: [conv: {out: 8, kernel: 5, padding: valid}, identity]}\n")
