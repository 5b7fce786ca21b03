"""Training: data sets, the engine, and the run folders `archcalc train` keeps.

Each module here that imports torch first checks for the ``torch`` extra
(:func:`archcalc.extras.require`); ``options`` (the defaults `--help` shows) needs no torch.
"""
