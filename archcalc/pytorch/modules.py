"""The few torch modules that PyTorch does not have as such. Imported only by the torch path."""
from __future__ import annotations

import torch
from torch import nn


class FlattenLinear(nn.Linear):
    """nn.Linear that flattens its input from dimension 1, so it can follow a C×H×W map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(1))
