"""The few torch modules that PyTorch does not have as such. Imported only by the torch path."""
from __future__ import annotations

from archcalc.extras import TORCH_ONLY, require

require("torch", "building a PyTorch model", needs=TORCH_ONLY)

import torch
from torch import nn


class FlattenLinear(nn.Linear):
    """nn.Linear that flattens its input from dimension 1, so it can follow a C×H×W map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(1))


class Concat(nn.Module):
    """The concat join: its inputs, one per branch, stacked along ``dim``."""

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.dim)


class Add(nn.Module):
    """The add join: its inputs, one per branch, summed."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Mul(nn.Module):
    """The mul join: its inputs, one per branch, multiplied (broadcasting sides of 1)."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Crop(nn.Module):
    """The crop join: the first input cut to the height and width of the second, centred.

    The offset is ``(H1 - H2) // 2`` from the top (and likewise from the left): an odd
    difference leaves the extra row at the bottom, as the common PyTorch U-Nets crop. (For
    U-Net's even differences this is torchvision's ``center_crop`` too; for odd ones
    torchvision rounds half to even instead.)"""

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        h, w = like.shape[-2:]
        top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
        return x[..., top:top + h, left:left + w]


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of a map at each position (ConvNeXt's LayerNorm2d):
    nn.LayerNorm(C) applied channels-last, so its ``weight`` and ``bias`` (C each) are this
    module's own, as in torchvision's ConvNeXt."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class LayerScale(nn.Module):
    """A learned scale per channel, ``scale`` of shape (C, 1, 1) for a C×H×W map or (C,) for
    a vector (torchvision's CNBlock holds the same as ``layer_scale``), filled with ``init``."""

    def __init__(self, shape, init: float):
        super().__init__()
        self.scale = nn.Parameter(torch.full((shape[0],) + (1,) * (len(shape) - 1),
                                             float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class StochasticDepth(nn.Module):
    """Drops its input (a residual branch) with probability ``p`` in training, per sample
    (``row``) or for the whole batch (``batch``), scaling what it keeps by 1/(1-p) so that the
    expectation is unchanged; identity in eval mode. torchvision.ops.StochasticDepth's rule."""

    def __init__(self, p: float, mode: str = "row"):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        size = [x.shape[0] if self.mode == "row" else 1] + [1] * (x.dim() - 1)
        keep = 1 - self.p
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * noise.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"
