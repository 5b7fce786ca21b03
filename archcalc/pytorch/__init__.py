"""The torch side: build a spec's nn.Module, verify it against PyTorch and fvcore.

Each module here that imports torch first checks for the ``torch`` extra
(:func:`archcalc.extras.require`), so a light install gets one line saying what to install;
torch-free modules (``devices``' defaults) stay importable without it.
"""
