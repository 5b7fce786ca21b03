"""How long `archcalc import` takes on a ResNet-50-sized model beyond `import torch`, timed in
one run: import torch, build the bundled resnet spec's model (not timed), then trace, propagate
shapes and write the spec (timed). The issue's budget: at most 3 s on a quiet machine.

    PYTHONPATH=$PWD python benchmarks/import_speed.py
"""
import time

start = time.perf_counter()
import torch  # noqa: E402

torch_s = time.perf_counter() - start

import archcalc  # noqa: E402
from archcalc.bridge.from_torch import trace  # noqa: E402
from archcalc.bridge.writer import to_spec  # noqa: E402

model = archcalc.build_model("resnet")
start = time.perf_counter()
text = to_spec(trace(model, (3, 224, 224), "resnet"))
import_s = time.perf_counter() - start
print(f"import torch: {torch_s:.2f} s; import of ResNet-50 (trace, shapes, spec of "
      f"{text.count(chr(10))} lines): {import_s:.2f} s (budget 3 s)")
