"""`archcalc sweep`: one network's parameters, multiply-adds and activation memory over a grid
of inputs and settings.

The grid is read here as data (``3x128:512:32``: sizes 128 to 512 in steps of 32, both ends
included; ``width=0.5,0.75,1.0``: three values of a setting) and its size is checked before a
single point is built, so a typo with a million points is refused at once. Each point is built
on its own (~10 ms for a ResNet-50): the time grows linearly with the points. A point where the
spec does not build (a 7×7 window on a 1×1 map at a small input) keeps the reason and the
sweep goes on; bad input that no point could fix (an unknown setting, a malformed range) is an
error before anything is built.

Memory is core/memory.py's estimate of a forward pass at batch 1 in float32: the input and
every layer's output, all counted as alive at once (4 bytes a number); parameters are not in it.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from fractions import Fraction
from math import prod
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from archcalc.core import graph as graphs
from archcalc.core import memory
from archcalc.core.limits import MAX_INT
from archcalc.core.ops import Counts, Shape
from archcalc.core.spec import Spec
from archcalc.errors import ArchcalcError, Position, SpecError

MAX_POINTS = 10_000     # ~100 s of building at 10 ms a point: beyond it, a typo is likelier
_INT = re.compile(r"^[0-9]{1,30}$")


# --- the grid ------------------------------------------------------------------------------

@dataclass(frozen=True)
class InputGrid:
    """The inputs of a sweep: a range per dimension (C, H, W; or one for a vector input), all
    combinations of them; ``square``: H and W are one range and take the same value."""

    dims: Tuple[range, ...]
    square: bool = False
    text: str = ""

    def __len__(self) -> int:
        return prod(len(r) for r in self.dims)

    def shapes(self) -> Iterator[Shape]:
        for values in itertools.product(*self.dims):
            yield (values[0], values[1], values[1]) if self.square else tuple(values)


def parse_range(text: str, where: str) -> range:
    """``224`` (one value) or ``start:stop:step``, both ends included, of positive integers.
    An empty range (start after stop) is an error, not a sweep of nothing."""
    parts = text.strip().split(":")
    if len(parts) not in (1, 3) or not all(_INT.match(p.strip()) for p in parts):
        raise ArchcalcError(f"{where}: {text!r} is not a size or a range start:stop:step of "
                            "positive whole numbers (e.g. 128:512:32)", Position("--input"))
    numbers = [int(p) for p in parts]
    if len(numbers) == 1:
        numbers += [numbers[0], 1]
    start, stop, step = numbers
    if min(start, step) == 0 or max(numbers) > MAX_INT:
        raise ArchcalcError(f"{where}: {text!r}: sizes and steps must be from 1 to "
                            f"{MAX_INT:,}", Position("--input"))
    if start > stop:
        raise ArchcalcError(f"{where}: the range {text!r} is empty: it starts after it stops "
                            f"({start} > {stop})", Position("--input"))
    return range(start, stop + 1, step)


def parse_inputs(text: str) -> InputGrid:
    """``--input``: ``CxS`` (a square input whose size S may be a range), ``CxHxW`` (each may
    be a range: every combination), or ``F`` (a vector); any part may be a single number."""
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) not in (1, 2, 3):
        raise ArchcalcError(f"{text!r} is not CxS, CxHxW or F (e.g. 3x128:512:32)",
                            Position("--input"))
    names = {1: ["features"], 2: ["channels", "size"], 3: ["channels", "height", "width"]}
    dims = tuple(parse_range(p, f"input {n}") for p, n in zip(parts, names[len(parts)]))
    return InputGrid(dims, square=len(parts) == 2, text=text)


def parse_settings_grid(pairs: Sequence[str]) -> Dict[str, List[str]]:
    """``--set NAME=V1,V2,...`` options as each setting's values in order (the spec checks the
    names and values). A setting given twice, or a list with an empty value, is an error."""
    grid: Dict[str, List[str]] = {}
    for pair in pairs:
        name, sep, values = pair.partition("=")
        name = name.strip()
        if not sep or not name or not values.strip():
            raise ArchcalcError(f"takes NAME=VALUE or NAME=V1,V2,... (e.g. "
                                f"width=0.5,1.0), got {pair!r}", Position("--set"))
        items = [v.strip() for v in values.split(",")]
        if not all(items):
            raise ArchcalcError(f"{pair!r}: a value in the list is empty",
                                Position("--set"))
        if name in grid:
            raise ArchcalcError(f"'{name}' is given twice: give its values once, "
                                "comma-separated", Position("--set"))
        grid[name] = items
    return grid


def check_size(inputs: int, settings: int) -> int:
    """The number of points, refused beyond MAX_POINTS."""
    points = inputs * settings
    if points > MAX_POINTS:
        raise ArchcalcError(f"the sweep has {points:,} points ({inputs:,} input"
                            f"{'s' * (inputs != 1)} × {settings:,} combination"
                            f"{'s' * (settings != 1)} of settings); at most {MAX_POINTS:,}: "
                            "give larger steps or fewer values")
    return points


# --- the sweep -----------------------------------------------------------------------------

@dataclass
class Point:
    input: Shape
    settings: Dict[str, Any]        # the swept or fixed settings, as the spec reads them
    params: Optional[int] = None
    macs: Optional[int] = None
    memory_bytes: Optional[int] = None      # activations, forward pass, batch 1, float32
    error: Optional[str] = None             # why the spec does not build at this point
    error_at: Optional[str] = None          # where in the spec (FILE:LINE:COL)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Axis:
    """What varies from point to point: ``input`` dimension ``index`` (None: a setting)."""

    name: str               # a setting's name, or what the input dimension is
    index: Optional[int] = None

    def value(self, point: Point) -> Any:
        return point.settings[self.name] if self.index is None else point.input[self.index]


@dataclass
class Sweep:
    name: str               # the network's
    spec_path: str
    variant: Optional[str]
    heads: bool
    input_text: Optional[str]                   # --input as given (None: the spec's)
    settings: Dict[str, List[Any]]              # each given setting's values, as read
    axes: List[Axis]                            # those that take more than one value
    points: List[Point] = field(default_factory=list)

    @property
    def computed(self) -> int:
        return sum(p.ok for p in self.points)

    @property
    def failed(self) -> int:
        return len(self.points) - self.computed

    def to_dict(self) -> dict:
        return {"network": self.name, "spec": self.spec_path, "variant": self.variant,
                "heads": self.heads, "input": self.input_text,
                "settings": {k: [plain(v) for v in vs] for k, vs in self.settings.items()},
                "varies": [a.name for a in self.axes],
                "memory": MEMORY_COUNTS,
                "computed": self.computed, "did_not_fit": self.failed,
                "points": [{"input": list(p.input),
                            "settings": {k: plain(v) for k, v in p.settings.items()},
                            "params": p.params, "macs": p.macs,
                            "memory_bytes": p.memory_bytes, "error": p.error,
                            "error_at": p.error_at} for p in self.points]}


MEMORY_COUNTS = ("activations of a forward pass at batch 1 in float32 (4 bytes a number): the "
                 "input and every layer's output, all counted as alive at once (an upper "
                 "bound; parameters not included)")


def plain(value: Any) -> Any:
    """A setting's value for JSON and for a plot's axis: a fraction as a float."""
    return float(value) if isinstance(value, Fraction) else value


def run(spec: Spec, variant: Optional[str], inputs: Optional[InputGrid],
        settings_grid: Dict[str, List[str]], heads: bool = False) -> Sweep:
    """Every point of ``inputs`` × ``settings_grid`` (cartesian), built and counted.

    Checked before any point is built: the grid's size, the variant, and every setting's name
    and values (an unknown name is bad input, not a point that did not fit)."""
    n_inputs = len(inputs) if inputs is not None else 1
    check_size(n_inputs, prod(len(v) for v in settings_grid.values()))
    graphs.check_variant(spec, variant)
    read = {name: [_read_setting(spec, variant, name, text) for text in values]
            for name, values in settings_grid.items()}
    shapes = list(inputs.shapes()) if inputs is not None else [tuple(spec.input)]
    axes = _axes(inputs) + [Axis(n) for n, vs in read.items() if len(vs) > 1]
    result = Sweep(spec.name, spec.path, variant, heads, inputs.text if inputs else None, read,
                   axes)
    names = list(settings_grid)
    for shape in shapes:
        for texts, values in zip(itertools.product(*settings_grid.values()),
                                 itertools.product(*read.values())):
            point = Point(shape, dict(zip(names, values)))
            _count(point, spec, variant, dict(zip(names, texts)), heads)
            result.points.append(point)
    return result


def _read_setting(spec: Spec, variant: Optional[str], name: str, text: str) -> Any:
    values, _ = graphs.effective_settings(spec, variant, {name: text})
    return values[name][0]


def _axes(inputs: Optional[InputGrid]) -> List[Axis]:
    if inputs is None:
        return []
    names = {1: ["input features"], 2: ["input channels", "input size"],
             3: ["input channels", "input height", "input width"]}[len(inputs.dims)]
    return [Axis(name, i) for i, (name, r) in enumerate(zip(names, inputs.dims)) if len(r) > 1]


def _count(point: Point, spec: Spec, variant, settings: Dict[str, str], heads: bool) -> None:
    """Fill in ``point``'s counts, or why the spec does not build there."""
    try:
        built = graphs.build(spec, variant, point.input, heads=heads, settings=settings)
    except SpecError as exc:
        point.error = exc.message
        point.error_at = str(exc.pos) if exc.pos else None
        return
    total = sum((layer.counts() for layer in built.layers(heads)), Counts())
    point.params, point.macs = total.params, total.macs
    point.memory_bytes = memory.estimate(built, batch=1, heads=heads).activation_bytes
