"""archcalc: shapes, parameters and multiply-adds of convolutional networks from YAML specs.

The analytic path (spec → graph → analysis → report) imports neither torch nor pandas.
``archcalc.build_model`` (the PyTorch model of a spec) imports torch when first used.
"""
__version__ = "0.1.0"

__all__ = ["__version__", "build_model"]


def __getattr__(name: str):
    if name == "build_model":
        from archcalc.pytorch.build import build_model
        return build_model
    raise AttributeError(f"module 'archcalc' has no attribute '{name}'")
