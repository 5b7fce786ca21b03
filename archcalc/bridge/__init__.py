"""The bridge from real models to specs: importers (PyTorch via torch.fx, ONNX) produce one
torch-free intermediate representation (``ir.Model``), which the spec writer turns into YAML and
``verify --against`` compares with a spec. Only the importers import torch or onnx, lazily."""
