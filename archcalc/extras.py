"""The optional parts of archcalc and what to install for each.

`archcalc table`, `compare` and the text exports need only the light install. Building,
verifying and training a model need the ``torch`` extra (PyTorch, fvcore, NumPy), plots the
``plot`` extra (matplotlib); building and training use only its PyTorch and NumPy (a GPU
machine may have no fvcore), so only verifying asks for fvcore. A command that needs a missing extra stops with one line saying
what to install, PyTorch first: ``pip install 'archcalc[torch]'`` alone would let pip pick a
PyTorch build, which on most machines is a CUDA build of several GB.
"""
from __future__ import annotations

import importlib
from typing import Dict, Optional, Tuple

from archcalc.errors import ArchcalcError

# extra -> (the modules it provides, how to install it)
EXTRAS: Dict[str, Tuple[Tuple[str, ...], str]] = {
    "torch": (("torch", "fvcore", "numpy"),
              "pip install torch (the build for your machine, from pytorch.org: an unpinned "
              "torch is a CUDA build of several GB), then pip install 'archcalc[torch]'"),
    "plot": (("matplotlib",), "pip install 'archcalc[plot]'"),
}
# How a message names each module
TITLES = {"torch": "PyTorch", "fvcore": "fvcore", "numpy": "NumPy", "matplotlib": "matplotlib"}


class MissingExtra(ArchcalcError):
    """An optional part of archcalc that this installation lacks (exit 2 at the CLI)."""


# What building and training a model use of the torch extra: everything but fvcore.
TORCH_ONLY = ("torch", "numpy")


def require(extra: str, what: str, needs: Optional[Tuple[str, ...]] = None) -> None:
    """Raise MissingExtra, naming the install lines, unless ``extra``'s modules (or those of
    them in ``needs``) import."""
    modules, how = EXTRAS[extra]
    needed = needs or modules
    missing = [m for m in needed if not _importable(m)]
    if missing:
        raise MissingExtra(f"{what} needs {_listed([TITLES[m] for m in needed])}, and this "
                           f"installation lacks {', '.join(missing)}: {how}")


def _listed(names) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
