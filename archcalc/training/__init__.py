"""Training: data sets, the engine, and the run folders `archcalc train` keeps.

Importing this package needs the ``torch`` extra; without it, one line says what to install.
"""
from archcalc.extras import require

require("torch", "training")
