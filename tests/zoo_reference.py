"""Independent reference models and published figures for the zoo of bundled specs.

torchvision cannot be imported here (its wheel is a CUDA build that fails next to CPU torch), so
the networks it ships are written again below in plain torch.nn from the papers and from the
structure torchvision documents, short enough to read against them. tests/test_zoo_reference.py
proves them right: each one's parameter count equals torchvision's published `num_params`
exactly, and its conv+linear multiply-adds round to the published GFLOPS. Tests of archcalc's
zoo specs can then use these models (and `counts`, `conv_linear_macs`) as an oracle that is not
archcalc.

This is a plain module imported by tests, not a test file.
"""
import torch
from torch import nn

# ---------------------------------------------------------------------------------------------
# Published figures
# ---------------------------------------------------------------------------------------------
# torchvision's weights meta: `num_params` (exact) and `_ops`, which its model documentation
# prints as "GFLOPS". Source of every torchvision entry: pytorch/vision,
# torchvision/models/<file>.py, the `meta` of the IMAGENET1K_V1 weights ("num_params", "_ops"),
# torchvision 0.15 and later, rendered on https://pytorch.org/vision/stable/models.html and
# https://pytorch.org/vision/stable/models/generated/torchvision.models.<name>.html.
# `_ops` came with pytorch/vision PR #6936 ("Adding FLOPs and size to model metadata",
# https://github.com/pytorch/vision/pull/6936), computed by a __torch_dispatch__ counter after
# Chillee's dev-discuss post that counts aten convolution and matmul ops as multiply-adds; an
# earlier revision (pytorch/vision 07a929e8b851242b1c75c9016ee06a8e502961d8) printed them to one
# decimal (convnext_tiny 4.5, efficientnet_b0 0.4). The figures below were read in copies of those
# meta blocks in the public code index (the whole repository was too large to fetch here) and are
# reproduced exactly by the models below, parameters to the unit and `_ops` to three decimals.
PUBLISHED = {
    # torchvision/models/alexnet.py AlexNet_Weights.IMAGENET1K_V1
    "alexnet": {"num_params": 61_100_840, "GFLOPS": 0.714},
    # torchvision/models/vgg.py VGG11_Weights / VGG13_Weights / VGG16_Weights / VGG19_Weights
    "vgg11": {"num_params": 132_863_336, "GFLOPS": 7.609},
    "vgg13": {"num_params": 133_047_848, "GFLOPS": 11.308},
    "vgg16": {"num_params": 138_357_544, "GFLOPS": 15.47},
    "vgg19": {"num_params": 143_667_240, "GFLOPS": 19.632},
    # torchvision/models/resnet.py ResNet{18,34,50,101,152}_Weights.IMAGENET1K_V1
    # (50/101/152's V2 weights carry the same figures)
    "resnet18": {"num_params": 11_689_512, "GFLOPS": 1.814},
    "resnet34": {"num_params": 21_797_672, "GFLOPS": 3.664},
    "resnet50": {"num_params": 25_557_032, "GFLOPS": 4.089},
    "resnet101": {"num_params": 44_549_160, "GFLOPS": 7.801},
    "resnet152": {"num_params": 60_192_808, "GFLOPS": 11.514},
    # torchvision/models/mobilenetv2.py MobileNet_V2_Weights.IMAGENET1K_V1
    "mobilenet_v2": {"num_params": 3_504_872, "GFLOPS": 0.301},
    # torchvision/models/densenet.py DenseNet121_Weights.IMAGENET1K_V1
    "densenet121": {"num_params": 7_978_856, "GFLOPS": 2.834},
    # torchvision/models/squeezenet.py SqueezeNet1_0_Weights.IMAGENET1K_V1
    "squeezenet1_0": {"num_params": 1_248_424, "GFLOPS": 0.819},
    # torchvision/models/efficientnet.py EfficientNet_B0_Weights.IMAGENET1K_V1
    "efficientnet_b0": {"num_params": 5_288_548, "GFLOPS": 0.386},
    # torchvision/models/convnext.py ConvNeXt_Tiny_Weights.IMAGENET1K_V1
    "convnext_tiny": {"num_params": 28_589_128, "GFLOPS": 4.456},
}

# The papers' own figures (as shared/reference/zoo.md quotes them; rounded as printed). These are
# about the papers' networks, which are not always torchvision's: see the notes.
PAPERS = {
    # Krizhevsky, Sutskever, Hinton 2012: "60 million parameters" for the two-GPU 96/256/384/384/256
    # network; torchvision's is the one-GPU 64/192/384/256/256 variant of Krizhevsky 2014.
    "alexnet": {"params_millions": 60},
    # Simonyan & Zisserman 2015, Table 2 (millions of parameters).
    "vgg_A": {"params_millions": 133},
    "vgg_B": {"params_millions": 133},
    "vgg_C": {"params_millions": 134},
    "vgg_D": {"params_millions": 138},
    "vgg_E": {"params_millions": 144},
    # He et al. 2016, Table 1: "FLOPs" are multiply-adds, x 10^9, with the stride in the first 1x1
    # of a bottleneck (torchvision strides in the 3x3: same parameters, more multiply-adds).
    "resnet18": {"gmacs": 1.8},
    "resnet34": {"gmacs": 3.6},
    "resnet50": {"gmacs": 3.8},
    "resnet101": {"gmacs": 7.6},
    "resnet152": {"gmacs": 11.3},
    # Sandler et al. 2018, Table 4: width 1.0 at 224.
    "mobilenet_v2": {"params_millions": 3.4, "gmacs": 0.300},
    # Tan & Le 2019, Table 2: 5.3M parameters, 0.39B FLOPs (multiply-adds).
    "efficientnet_b0": {"params_millions": 5.3, "gmacs": 0.39},
    # Liu et al. 2022, ImageNet-1K table: 28M parameters, 4.5G FLOPs (multiply-adds).
    "convnext_tiny": {"params_millions": 28, "gmacs": 4.5},
    # Ronneberger et al. 2015, Figure 1: 572x572 input tile, 388x388 output map, 2 classes.
    "unet": {"input": (1, 572, 572), "output": (2, 388, 388)},
}


# ---------------------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------------------
def counts(model):
    """(trainable parameters, floating-point buffers): BatchNorm's running mean and variance
    count as buffers; its integer num_batches_tracked does not."""
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buffers = sum(b.numel() for b in model.buffers() if b.is_floating_point())
    return params, buffers


def _macs(module, inputs, output):
    """Multiply-adds of one call, biases left out, from the module's attributes and the shapes
    it actually saw."""
    if isinstance(module, nn.ConvTranspose2d):
        # every input element is scattered through the kernel into out_channels/groups outputs
        kh, kw = module.kernel_size
        return inputs[0].numel() * (module.out_channels // module.groups) * kh * kw
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    # nn.Linear: in_features multiply-adds per output element (also when applied per position)
    return output.numel() * module.in_features


def conv_linear_macs(model, input_shape):
    """Multiply-adds of every Conv2d, ConvTranspose2d and Linear over one forward pass of a
    batch of one `input_shape` (C, H, W) tensor, in eval mode."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        total += _macs(module, inputs, output)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total


# ---------------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------------
def conv_bn(cin, cout, kernel, stride=1, groups=1, act=nn.ReLU):
    """Conv (no bias, 'same' padding for odd kernels) + BatchNorm + optional activation."""
    layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


def make_divisible(value, divisor=8):
    """Round a channel count to the nearest multiple of `divisor`, never below `divisor` nor
    more than 10% below `value` (MobileNetV2's and EfficientNet's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class DropPath(nn.Module):
    """Stochastic depth per sample ("row" mode): drops the whole residual branch of a sample with
    probability p in training, scaling survivors by 1/(1-p); identity in eval."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty(x.shape[0], *([1] * (x.dim() - 1)), device=x.device)
        return x * keep.bernoulli_(1.0 - self.p) / (1.0 - self.p)


class Classifier(nn.Sequential):
    """Global average pool, flatten, optional dropout, linear."""

    def __init__(self, features, num_classes, dropout=0.0):
        layers = [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers, nn.Linear(features, num_classes))


# ---------------------------------------------------------------------------------------------
# AlexNet (one-GPU variant of "One weird trick", as torchvision has it)
# ---------------------------------------------------------------------------------------------
def alexnet(num_classes=1000):
    relu = lambda: nn.ReLU(inplace=True)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), relu(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), relu(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), relu(),
        nn.Conv2d(384, 256, 3, padding=1), relu(),
        nn.Conv2d(256, 256, 3, padding=1), relu(), nn.MaxPool2d(3, 2),
        nn.AdaptiveAvgPool2d(6), nn.Flatten(1),
        nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), relu(),
        nn.Dropout(0.5), nn.Linear(4096, 4096), relu(),
        nn.Linear(4096, num_classes),
    )


# ---------------------------------------------------------------------------------------------
# VGG, configurations A-E of Table 1 (without LRN / BatchNorm)
# ---------------------------------------------------------------------------------------------
# An int is a 3x3 convolution with that many filters, "1x1:N" a 1x1 convolution, "M" a 2x2 max pool.
VGG_CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, "1x1:256", "M",
          512, 512, "1x1:512", "M", 512, 512, "1x1:512", "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
          512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def vgg(cfg, num_classes=1000):
    layers, cin = [], 3
    for item in VGG_CONFIGS[cfg]:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        kernel, cout = (1, int(item[4:])) if isinstance(item, str) else (3, item)
        layers += [nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.ReLU(inplace=True)]
        cin = cout
    return nn.Sequential(
        *layers, nn.AdaptiveAvgPool2d(7), nn.Flatten(1),
        nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(4096, num_classes),
    )


# ---------------------------------------------------------------------------------------------
# ResNet (torchvision's "v1.5": a bottleneck strides in its 3x3)
# ---------------------------------------------------------------------------------------------
class Residual(nn.Module):
    """ReLU(branch(x) + shortcut(x)); the shortcut is a strided 1x1 conv + BN where the shape
    changes, else identity."""

    def __init__(self, branch, cin, cout, stride):
        super().__init__()
        self.branch = branch
        self.shortcut = (conv_bn(cin, cout, 1, stride, act=None)
                         if stride != 1 or cin != cout else nn.Identity())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.branch(x) + self.shortcut(x))


def basic_block(cin, width, stride):
    branch = nn.Sequential(conv_bn(cin, width, 3, stride), conv_bn(width, width, 3, act=None))
    return Residual(branch, cin, width, stride), width


def bottleneck(cin, width, stride):
    cout = 4 * width
    branch = nn.Sequential(conv_bn(cin, width, 1), conv_bn(width, width, 3, stride),
                           conv_bn(width, cout, 1, act=None))
    return Residual(branch, cin, cout, stride), cout


RESNET_DEPTHS = {  # depth: (block, blocks per stage), He et al. Table 1
    18: (basic_block, (2, 2, 2, 2)),
    34: (basic_block, (3, 4, 6, 3)),
    50: (bottleneck, (3, 4, 6, 3)),
    101: (bottleneck, (3, 4, 23, 3)),
    152: (bottleneck, (3, 8, 36, 3)),
}


def resnet(depth, num_classes=1000):
    block, repeats = RESNET_DEPTHS[depth]
    layers = [conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for stage, (width, n) in enumerate(zip((64, 128, 256, 512), repeats)):
        for i in range(n):
            unit, cin = block(cin, width, 2 if stage > 0 and i == 0 else 1)
            layers.append(unit)
    return nn.Sequential(*layers, Classifier(cin, num_classes))


# ---------------------------------------------------------------------------------------------
# MobileNetV2 (Sandler et al. Table 2; ReLU6; channels by make_divisible(., 8))
# ---------------------------------------------------------------------------------------------
class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = int(round(cin * expand))
        layers = [conv_bn(cin, hidden, 1, act=nn.ReLU6)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   conv_bn(hidden, cout, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


MOBILENET_V2_SETTING = [  # expansion t, channels c, repeats n, first stride s
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
]


def mobilenet_v2(width_mult=1.0, num_classes=1000):
    cin = make_divisible(32 * width_mult)
    last = make_divisible(1280 * max(1.0, width_mult))
    layers = [conv_bn(3, cin, 3, 2, act=nn.ReLU6)]
    for t, c, n, s in MOBILENET_V2_SETTING:
        cout = make_divisible(c * width_mult)
        for i in range(n):
            layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
            cin = cout
    layers.append(conv_bn(cin, last, 1, act=nn.ReLU6))
    return nn.Sequential(*layers, Classifier(last, num_classes, dropout=0.2))


# ---------------------------------------------------------------------------------------------
# DenseNet-121 (growth 32, blocks 6/12/24/16, bottleneck 4 x growth, compression 0.5)
# ---------------------------------------------------------------------------------------------
def bn_relu_conv(cin, cout, kernel):
    return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                         nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False))


class DenseLayer(nn.Module):
    """Appends `growth` new channels to its input."""

    def __init__(self, cin, growth, bottleneck_width):
        super().__init__()
        self.body = nn.Sequential(bn_relu_conv(cin, bottleneck_width * growth, 1),
                                  bn_relu_conv(bottleneck_width * growth, growth, 3))

    def forward(self, x):
        return torch.cat([x, self.body(x)], 1)


def densenet121(num_classes=1000, growth=32, blocks=(6, 12, 24, 16), stem=64, bn_size=4):
    layers = [nn.Conv2d(3, stem, 7, 2, 3, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True),
              nn.MaxPool2d(3, 2, 1)]
    c = stem
    for b, n in enumerate(blocks):
        for _ in range(n):
            layers.append(DenseLayer(c, growth, bn_size))
            c += growth
        if b < len(blocks) - 1:  # transition: halve channels and resolution
            layers += [bn_relu_conv(c, c // 2, 1), nn.AvgPool2d(2, 2)]
            c //= 2
    layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, Classifier(c, num_classes))


# ---------------------------------------------------------------------------------------------
# SqueezeNet 1.0 (Iandola et al. 2016, Table 1)
# ---------------------------------------------------------------------------------------------
class Fire(nn.Module):
    def __init__(self, cin, squeeze, expand1, expand3):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU(inplace=True))
        self.expand1 = nn.Sequential(nn.Conv2d(squeeze, expand1, 1), nn.ReLU(inplace=True))
        self.expand3 = nn.Sequential(nn.Conv2d(squeeze, expand3, 3, padding=1),
                                     nn.ReLU(inplace=True))

    def forward(self, x):
        s = self.squeeze(x)
        return torch.cat([self.expand1(s), self.expand3(s)], 1)


def squeezenet1_0(num_classes=1000):
    pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(3, 96, 7, stride=2), nn.ReLU(inplace=True), pool(),
        Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128), pool(),
        Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
        Fire(384, 64, 256, 256), pool(),
        Fire(512, 64, 256, 256),
        nn.Dropout(0.5), nn.Conv2d(512, num_classes, 1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
    )


# ---------------------------------------------------------------------------------------------
# EfficientNet-B0 (Tan & Le Table 1; MBConv with squeeze-and-excitation, SiLU, stochastic depth)
# ---------------------------------------------------------------------------------------------
class SqueezeExcite(nn.Module):
    def __init__(self, channels, squeeze):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, squeeze, 1),
                                  nn.SiLU(inplace=True), nn.Conv2d(squeeze, channels, 1),
                                  nn.Sigmoid())

    def forward(self, x):
        return x * self.gate(x)


class MBConv(nn.Module):
    def __init__(self, cin, cout, kernel, stride, expand, drop):
        super().__init__()
        hidden = make_divisible(cin * expand)
        layers = [conv_bn(cin, hidden, 1, act=nn.SiLU)] if hidden != cin else []
        layers += [conv_bn(hidden, hidden, kernel, stride, groups=hidden, act=nn.SiLU),
                   SqueezeExcite(hidden, max(1, cin // 4)),  # squeeze from the block's input width
                   conv_bn(hidden, cout, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout
        self.drop = DropPath(drop)

    def forward(self, x):
        return x + self.drop(self.body(x)) if self.residual else self.body(x)


EFFICIENTNET_B0_STAGES = [  # expansion, kernel, first stride, channels, repeats (Table 1)
    (1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1),
]


def efficientnet_b0(num_classes=1000, stochastic_depth=0.2, dropout=0.2):
    total = sum(stage[-1] for stage in EFFICIENTNET_B0_STAGES)
    layers, cin, index = [conv_bn(3, 32, 3, 2, act=nn.SiLU)], 32, 0
    for expand, kernel, stride, cout, n in EFFICIENTNET_B0_STAGES:
        for i in range(n):
            drop = stochastic_depth * index / total  # grows linearly with the block's index
            layers.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand, drop))
            cin, index = cout, index + 1
    layers.append(conv_bn(cin, 4 * cin, 1, act=nn.SiLU))
    return nn.Sequential(*layers, Classifier(4 * cin, num_classes, dropout=dropout))


# ---------------------------------------------------------------------------------------------
# ConvNeXt-T (Liu et al. 2022: patchify stem, 7x7 depthwise, LayerNorm, inverted MLP, layer scale)
# ---------------------------------------------------------------------------------------------
class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of an N, C, H, W tensor."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim, drop, layer_scale=1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.gamma = nn.Parameter(torch.full((dim, 1, 1), layer_scale))
        self.drop = DropPath(drop)

    def forward(self, x):
        y = self.mlp(self.norm(self.dwconv(x).permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return x + self.drop(self.gamma * y)


def convnext_tiny(num_classes=1000, dims=(96, 192, 384, 768), depths=(3, 3, 9, 3),
                  stochastic_depth=0.1):
    total = sum(depths)
    layers = [nn.Conv2d(3, dims[0], 4, stride=4), ChannelNorm(dims[0], eps=1e-6)]
    index = 0
    for stage, (dim, n) in enumerate(zip(dims, depths)):
        if stage > 0:  # downsampling between stages
            layers += [ChannelNorm(dims[stage - 1], eps=1e-6),
                       nn.Conv2d(dims[stage - 1], dim, 2, stride=2)]
        for _ in range(n):
            layers.append(ConvNeXtBlock(dim, stochastic_depth * index / (total - 1)))
            index += 1
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), ChannelNorm(dims[-1], eps=1e-6),
                         nn.Flatten(1), nn.Linear(dims[-1], num_classes))


# ---------------------------------------------------------------------------------------------
# U-Net (Ronneberger et al. 2015, Figure 1: unpadded 3x3 convs, 2x2 up-convs, copy and crop)
# ---------------------------------------------------------------------------------------------
def double_conv(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3), nn.ReLU(inplace=True))


def center_crop(x, height, width):
    top, left = (x.shape[2] - height) // 2, (x.shape[3] - width) // 2
    return x[:, :, top:top + height, left:left + width]


class UNet(nn.Module):
    def __init__(self, in_channels=1, num_classes=2, widths=(64, 128, 256, 512, 1024)):
        super().__init__()
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.down.append(double_conv(cin, w))
            cin = w
        self.pool = nn.MaxPool2d(2, 2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(w * 2, w, 2, stride=2) for w in widths[-2::-1])
        self.merge = nn.ModuleList(double_conv(w * 2, w) for w in widths[-2::-1])
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()  # the bottom of the U is not copied across
        for up, merge in zip(self.up, self.merge):
            x = up(x)
            skip = center_crop(skips.pop(), x.shape[2], x.shape[3])
            x = merge(torch.cat([skip, x], 1))
        return self.head(x)


def unet(num_classes=2):
    return UNet(1, num_classes)


# name -> builder with torchvision's published figures in PUBLISHED
TORCHVISION_BUILDERS = {
    "alexnet": alexnet,
    "vgg11": lambda: vgg("A"), "vgg13": lambda: vgg("B"),
    "vgg16": lambda: vgg("D"), "vgg19": lambda: vgg("E"),
    **{f"resnet{d}": (lambda d=d: resnet(d)) for d in RESNET_DEPTHS},
    "mobilenet_v2": mobilenet_v2,
    "densenet121": densenet121,
    "squeezenet1_0": squeezenet1_0,
    "efficientnet_b0": efficientnet_b0,
    "convnext_tiny": convnext_tiny,
}

assert set(TORCHVISION_BUILDERS) == set(PUBLISHED)
