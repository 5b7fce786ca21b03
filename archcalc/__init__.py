"""archcalc: shapes, parameters and multiply-adds of convolutional networks from YAML specs.

The analytic path (spec → graph → analysis → report) imports neither torch nor pandas.
"""
__version__ = "0.1.0"
