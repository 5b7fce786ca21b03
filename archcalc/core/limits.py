"""How far a spec may expand before archcalc refuses it.

A few hundred bytes of YAML can stand for billions of values (aliases of aliases: "billion
laughs") or layers (blocks that each call the next twice), and deep nesting exhausts Python's
stack. Reading and expanding a spec therefore stop at these limits, each with a message that
names the limit and the environment variable that raises it. The defaults admit every bundled
spec and a 10,000-layer spec many times over.
"""
from __future__ import annotations

import os
import re

from archcalc.errors import ArchcalcError

# environment variable -> default
DEFAULTS = {
    "ARCHCALC_MAX_YAML_NODES": 2_000_000,   # YAML values of a document with anchors, aliases expanded
    "ARCHCALC_MAX_DEPTH": 100,              # nesting of YAML values, and of blocks and sequences
    "ARCHCALC_MAX_LAYERS": 100_000,         # primitive layers in the expanded network
}

# Largest integer an op argument or an input dimension may be: far above any real network, far
# below what overflows PyTorch's int64 shapes or makes counts too long to print.
MAX_INT = 2**31 - 1

_DIGITS = re.compile(r"^[0-9]{1,12}$")


def get(name: str) -> int:
    """The limit ``name`` (a key of DEFAULTS): its environment variable, else its default."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return DEFAULTS[name]
    text = raw.strip().replace("_", "")
    if not _DIGITS.match(text) or int(text) == 0:
        raise ArchcalcError(f"{name} must be a positive whole number, got {raw[:40]!r}")
    return int(text)


def how_to_raise(name: str) -> str:
    """The end of a message for a spec beyond ``limit``."""
    return f"(set {name} to raise the limit)"
