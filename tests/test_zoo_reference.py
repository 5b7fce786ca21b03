"""The reference models of tests/zoo_reference.py are right: torchvision's published parameter
counts equal theirs exactly and its published GFLOPS are their conv+linear multiply-adds; VGG C and
U-Net, which torchvision does not ship, against per-layer arithmetic typed in below."""
import pytest
import torch
from torch import nn

from tests import zoo_reference as zoo

torch.set_num_threads(1)

# The papers' own parameter counts in millions, as printed (shared/reference/zoo.md), where the
# network is the paper's: VGG Table 2, EfficientNet-B0 Table 2. Not AlexNet (torchvision's is the
# one-GPU variant), not MobileNetV2 (the paper prints 3.4M; torchvision's 1.0 has 3,504,872).
PAPER_PARAMS_MILLIONS = {"vgg11": 133, "vgg13": 133, "vgg16": 138, "vgg19": 144,
                         "efficientnet_b0": 5.3}


@pytest.mark.parametrize("name", sorted(zoo.PUBLISHED))
def test_reference_model_has_torchvision_published_figures(name):
    model = zoo.TORCHVISION_BUILDERS[name]()
    params, _ = zoo.counts(model)
    published = zoo.PUBLISHED[name]
    assert params == published["num_params"]
    # torchvision's docs print GFLOPS with two decimals
    gmacs = zoo.conv_linear_macs(model, (3, 224, 224)) / 1e9
    assert round(gmacs, 2) == round(published["GFLOPS"], 2)
    if name in PAPER_PARAMS_MILLIONS:
        digits = 1 if name == "efficientnet_b0" else 0
        assert round(params / 1e6, digits) == PAPER_PARAMS_MILLIONS[name]


def test_torchvision_gflops_are_conv_and_linear_macs_to_three_decimals():
    """torchvision's `_ops` carry three decimals; conv+linear multiply-adds reproduce even those,
    for the networks with SE gates, depthwise convs, LayerNorm and per-position Linear layers."""
    for name in ("efficientnet_b0", "convnext_tiny", "mobilenet_v2", "densenet121"):
        gmacs = zoo.conv_linear_macs(zoo.TORCHVISION_BUILDERS[name](), (3, 224, 224)) / 1e9
        assert round(gmacs, 3) == zoo.PUBLISHED[name]["GFLOPS"], name


def _layer_sums(convs, linears=()):
    """(weights + biases, multiply-adds) of (c_in, c_out, kernel, output side) convolutions and
    (in, out) linear layers."""
    params = sum(ci * co * k * k + co for ci, co, k, _ in convs) + sum(i * o + o for i, o in linears)
    macs = sum(side * side * co * ci * k * k for ci, co, k, side in convs)
    return params, macs + sum(i * o for i, o in linears)


# VGG configuration C (Simonyan & Zisserman Table 1): 3x3 convs with padding 1, and a 1x1 conv
# closing each of the last three stages; 2x2 pools halve 224 -> 112 -> 56 -> 28 -> 14 -> 7.
VGG_C_CONVS = [
    (3, 64, 3, 224), (64, 64, 3, 224),
    (64, 128, 3, 112), (128, 128, 3, 112),
    (128, 256, 3, 56), (256, 256, 3, 56), (256, 256, 1, 56),
    (256, 512, 3, 28), (512, 512, 3, 28), (512, 512, 1, 28),
    (512, 512, 3, 14), (512, 512, 3, 14), (512, 512, 1, 14),
]
VGG_C_LINEARS = [(512 * 7 * 7, 4096), (4096, 4096), (4096, 1000)]


def test_vgg_c_against_layer_arithmetic_and_paper_table_2():
    params, macs = _layer_sums(VGG_C_CONVS, VGG_C_LINEARS)
    # the same from torchvision's VGG-16 (D), whose 3x3 convs C replaces by 1x1 in stages 3-5:
    # 138,357,544 - (9 - 1) * (256*256 + 512*512 + 512*512) = 138,357,544 - 4,718,592
    assert params == 133_638_952
    model = zoo.vgg("C")
    assert zoo.counts(model) == (params, 0)
    assert zoo.conv_linear_macs(model, (3, 224, 224)) == macs
    assert round(params / 1e6) == 134  # Table 2: C has 134 million parameters


# U-Net (Ronneberger et al. Figure 1): unpadded 3x3 convs lose 2 pixels per side pair, 2x2 max
# pools halve, 2x2 stride-2 up-convolutions double, the copied maps are cropped to match:
# 572 570 568 | 284 282 280 | 140 138 136 | 68 66 64 | 32 30 28
#   up 56 -> 54 52 | up 104 -> 102 100 | up 200 -> 198 196 | up 392 -> 390 388 -> 1x1 -> 388
UNET_CONVS = [  # (c_in, c_out, kernel, output side)
    (1, 64, 3, 570), (64, 64, 3, 568),
    (64, 128, 3, 282), (128, 128, 3, 280),
    (128, 256, 3, 138), (256, 256, 3, 136),
    (256, 512, 3, 66), (512, 512, 3, 64),
    (512, 1024, 3, 30), (1024, 1024, 3, 28),
    (1024, 512, 3, 54), (512, 512, 3, 52),   # after concatenating 512 copied + 512 up-sampled
    (512, 256, 3, 102), (256, 256, 3, 100),
    (256, 128, 3, 198), (128, 128, 3, 196),
    (128, 64, 3, 390), (64, 64, 3, 388),
    (64, 2, 1, 388),
]
UNET_UPCONVS = [  # (c_in, c_out, input side): each input pixel feeds a 2x2 patch of c_out maps
    (1024, 512, 28), (512, 256, 52), (256, 128, 100), (128, 64, 196),
]


def _unet_arithmetic():
    params, macs = _layer_sums(UNET_CONVS)
    params += sum(ci * co * 4 + co for ci, co, _ in UNET_UPCONVS)
    macs += sum(side * side * ci * co * 4 for ci, co, side in UNET_UPCONVS)
    return params, macs


def test_unet_parameters_against_layer_arithmetic():
    # 3x3 weights: 9 * (1*64 + 64*64 + 64*128 + 128*128 + 128*256 + 256*256 + 256*512 + 512*512
    #   + 512*1024 + 1024*1024 + 1024*512 + 512*512 + 512*256 + 256*256 + 256*128 + 128*128
    #   + 128*64 + 64*64) = 9 * 3,137,600 = 28,238,400;
    # up-conv weights: 4 * (1024*512 + 512*256 + 256*128 + 128*64) = 4 * 696,320 = 2,785,280;
    # 1x1 head: 64*2 = 128; biases: 5,888 (3x3) + 960 (up) + 2 (head) = 6,850;
    # total 28,238,400 + 2,785,280 + 128 + 6,850 = 31,030,658
    assert 9 * 3_137_600 == sum(ci * co * k * k for ci, co, k, _ in UNET_CONVS if k == 3)
    params, _ = _unet_arithmetic()
    assert params == 31_030_658
    assert zoo.counts(zoo.unet()) == (params, 0)


@pytest.mark.slow  # the 572x572 forward pass is ~150 G multiply-adds: a few seconds on one thread
def test_unet_output_and_macs_against_layer_arithmetic():
    model = zoo.unet().eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 572, 572)).shape == (1, 2, 388, 388)
    assert zoo.conv_linear_macs(model, (1, 572, 572)) == _unet_arithmetic()[1]


def test_counting_helpers_on_small_modules():
    """Hand arithmetic for each kind of layer the hooks count, and for what they leave out."""
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),   # 8*8*8*3*9 = 13,824
        nn.Conv2d(8, 8, 3, padding=1, groups=4),                        # 8*8*8*2*9 = 9,216
        nn.ConvTranspose2d(8, 4, 2, stride=2),                          # 8*8*8 * 4*4 = 8,192
        nn.Flatten(1), nn.Linear(4 * 16 * 16, 10),                      # 1024*10 = 10,240
    )
    assert zoo.conv_linear_macs(model, (3, 8, 8)) == 13_824 + 9_216 + 8_192 + 10_240
    # params: 3*8*9+8 + 2*8 (BN) + 8*2*9+8 + 8*4*4+4 + 1024*10+10; buffers: BN mean and var
    assert zoo.counts(model) == (224 + 16 + 152 + 132 + 10_250, 16)
    # a Linear applied at every position (ConvNeXt's MLP) counts per position
    per_position = nn.Sequential(nn.Flatten(2), nn.Linear(4, 6))  # on 1 x 5 x 4 -> 1 x 5 x 6
    assert zoo.conv_linear_macs(per_position, (5, 2, 2)) == 5 * 4 * 6


def test_stochastic_depth_and_dropout_are_identity_in_eval():
    torch.manual_seed(0)
    for build in (zoo.efficientnet_b0, zoo.convnext_tiny):
        model = build().eval()
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            assert torch.equal(model(x), model(x))
