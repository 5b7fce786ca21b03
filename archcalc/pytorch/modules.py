"""The few torch modules that PyTorch does not have as such. Imported only by the torch path."""
from __future__ import annotations

from archcalc.extras import require

require("torch", "building a PyTorch model")

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
