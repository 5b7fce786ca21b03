"""The torch side: build a spec's nn.Module, verify it against PyTorch and fvcore.

Importing this package needs the ``torch`` extra; without it, one line says what to install.
"""
from archcalc.extras import require

require("torch", "building or verifying a PyTorch model")
