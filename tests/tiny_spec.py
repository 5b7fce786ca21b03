"""A tiny trainable spec that training tests share: 3×32×32 → conv 4@3×3 stride 2 (15×15×4) →
BatchNorm, ReLU → max pool 3 (5×5×4) → 10 classes. A pass over a synthetic set takes seconds."""
import textwrap

TINY = textwrap.dedent("""\
    name: tiny
    input: [3, 32, 32]
    layers:
      conv1: [conv: {out: 4, kernel: 3, stride: 2, padding: valid}, batchnorm: {act: relu}]
      pool: [maxpool: {kernel: 3}]
      flatten: flatten
      classify: [linear: {out: 10}]
    """)
