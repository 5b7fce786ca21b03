"""Receptive fields: which input pixels each layer's outputs see, worked out without torch.

Data flow. Each op says, along the height and the width, which input positions each output
position reads (``Op.reach``: a :class:`~archcalc.core.ops.base.Reach` per axis, per branch for
a join, or None for an op whose every output reads all of its input). This module composes
those through the graph's real edges (``Layer.inputs``, ``graph.layers`` in execution order):

1. backwards, in reverse execution order: the output positions each layer must know, its own
   plus those a later layer's window reaches beyond its border (padding), so that
2. forwards, in execution order, every layer gets per output position ``i`` the first and last
   input pixel it sees: ``lo(i)``, ``hi(i)``, the lowest ``lo`` and highest ``hi`` of the
   positions it reads in each of its inputs (the network's input sees pixel ``i`` itself),
   and the same within the image (``within(i)``: only real positions read, only real pixels).
   Each layer's :class:`Track` holds them in one of three forms:

   - a line, in closed form (``_slide``): where every input is a line read by a sliding window
     (``Reach.offsets``: convolutions, pools, elementwise ops, joins, crop) and all move by the
     same whole number of pixels per output, ``lo(i) = a + i·jump``, ``hi(i) = b + i·jump``
     at every ``i``, and within the image that cut to one pair of bounds. This is a chain of
     windows from the input, so nearly every layer, and its cost does not grow with the map.
     Where the bounds do not compose (a dilated window cut at the border, a window in the
     padding alone, a join of uneven bounds) the within-the-image footprints are worked out
     position by position, the unclipped line kept;
   - position by position (``_through``), for the ``needed`` positions: after upsampling,
     transposed convolutions and adaptive pools, and at joins of inputs that move differently;
     what reads a line there asks it for any position;
   - ``whole``: see the definitions.

   An elementwise layer with one input shares its input's Track. ``CLOSED_FORM`` switches the
   lines off (a test checks both paths agree on every bundled spec).

Definitions (each along the height and the width; kernels may be rectangular):

- A footprint is unclipped: a padded window at the border goes on past the image, as if the
  input were large enough that nothing is clipped (the usual "theoretical" receptive field,
  which may be larger than the input: ResNet-50's last map sees 483 pixels of a 224 input).
- **RF** is the largest footprint (``hi - lo + 1``) over the layer's output positions; it
  differs between positions only after upsampling (a bilinear weight of exactly 0 reads
  nothing) or adaptive pooling with overlapping windows.
- **jump** is how far apart, in input pixels, neighbouring outputs are: the product of the
  strides on the way (1/2 after a 2× upsampling, a Fraction); the largest over a join's
  branches.
- **start** is the centre of output 0's footprint, in input pixel coordinates (pixel centres at
  0, 1, ... H - 1): negative where padding puts the first window partly outside the image.
  Output ``i``'s centre is ``start + i·jump`` where the jump is whole and nothing upsamples.
- **whole**: a layer whose output reads all of its input (a global pool, flatten, linear: a
  vector output sees everything its map saw), and every layer after it that takes its output
  (a squeeze-and-excitation gate's mul, what follows the gate), sees the whole input. Its
  footprint is the union of what its inputs saw, clipped to the image: the whole input (an
  unclipped union would say a global pool sees more than the image). Its jump is None; its RF
  is that union's size, the input's size unless strides skip the last rows.
- Normalizations are elementwise here, their statistics taken as constants (inference), and
  an opaque layer (an op archcalc cannot express) is taken to read its whole input.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Dict, List, Optional, Tuple

from archcalc.core.graph import INPUT, Graph, Layer

Interval = Tuple[int, int]

# Compose sliding windows in closed form (a line, below). Only a test sets it to False, to
# check the closed forms against the position-by-position path on every bundled spec.
CLOSED_FORM = True


@dataclass
class Track:
    """One layer's footprints along one axis, in one of three forms:

    - a line (``line`` given; a chain of sliding windows, the common case): output ``i`` sees
      ``line[0] + i·jump`` to ``line[1] + i·jump`` unclipped, at every ``i``; within the image
      that cut to ``bounds`` (the first and last pixel that all its positions together see
      there) where given, else ``inside[i]``;
    - position by position: output ``i`` sees ``lo[i - origin]`` to ``hi[i - origin]``
      unclipped, for the positions worked out, and ``inside[i]`` within the image for its own
      positions 0 .. size-1;
    - ``whole`` (a layer that sees the whole input): that at every position."""

    origin: int = 0
    lo: List[Optional[int]] = field(default_factory=list)
    hi: List[Optional[int]] = field(default_factory=list)
    inside: List[Optional[Interval]] = field(default_factory=list)
    jump: Optional[Fraction] = Fraction(1)
    whole: Optional[Interval] = None
    line: Optional[Interval] = None         # output 0's footprint, unclipped
    bounds: Optional[Interval] = None

    def at(self, i: int) -> Optional[Interval]:
        """Output ``i``'s footprint, or None where it sees nothing (no transposed-convolution
        tap lands on it)."""
        if self.whole is not None:
            return self.whole
        if self.line is not None:   # a line's jump is whole
            shift = self.jump.numerator * i  # type: ignore[union-attr]
            return (self.line[0] + shift, self.line[1] + shift)
        k = i - self.origin
        if not 0 <= k < len(self.lo):
            raise IndexError(f"position {i} is beyond what was worked out")
        return None if self.lo[k] is None else (self.lo[k], self.hi[k])  # type: ignore

    def within(self, i: int) -> Optional[Interval]:
        """Output ``i``'s footprint within the image (what gradients reach at this input)."""
        if self.whole is not None:
            return self.whole
        if self.bounds is not None:
            lo, hi = self.at(i)  # type: ignore[misc]
            return (max(self.bounds[0], lo), min(self.bounds[1], hi))
        return self.inside[i]


@dataclass(frozen=True)
class Field:
    """A layer's receptive field, (height, width) each: see the module's definitions."""

    size: Tuple[int, int]
    jump: Optional[Tuple[Fraction, Fraction]]      # None: the layer sees the whole input
    start: Tuple[Fraction, Fraction]

    @property
    def whole(self) -> bool:
        return self.jump is None

    def to_dict(self) -> dict:
        return {"size": list(self.size), "whole": self.whole,
                "jump": None if self.jump is None else [_number(j) for j in self.jump],
                "start": [_number(s) for s in self.start]}


def _number(value: Fraction):
    """A Fraction for JSON: an int where whole, else a float."""
    return value.numerator if value.denominator == 1 else float(value)


@dataclass
class Fields:
    """Every layer's footprints (tracks, (height, width)) and fields, by layer name."""

    input_size: Tuple[int, int]
    tracks: Dict[str, Tuple[Track, Track]]
    fields: Dict[str, Field]
    order: List[str]                # the layers, in execution order

    def footprint(self, name: str, i: int, j: int, clipped: bool = False) -> Tuple[
            Optional[Interval], Optional[Interval]]:
        """The input rows and columns output (i, j) of layer ``name`` sees: unclipped, or
        ``clipped`` to what it sees within the image (then i, j must be its own positions)."""
        h, w = self.tracks[name]
        return (h.within(i), w.within(j)) if clipped else (h.at(i), w.at(j))


def fields(graph: Graph, heads: bool = False) -> Fields:
    """The receptive field of every layer of ``graph`` (its heads too when asked)."""
    layers = graph.layers(heads)
    _, height, width = graph.input_shape if len(graph.input_shape) == 3 else (0, 1, 1)
    reaches = {layer.name: _reaches(layer) for layer in layers}
    needed = _needed(layers, reaches)
    # the network's input: position i sees pixel i (padding positions included), 0 .. size-1
    tracks: Dict[str, Tuple[Track, Track]] = {
        INPUT: tuple(Track(line=(0, 0), bounds=(0, size - 1)) for size in (height, width))}
    shapes = {INPUT: graph.input_shape}
    result = {}
    for layer in layers:
        shapes[layer.name] = layer.out_shape
        reach = reaches[layer.name]
        read = [p for p, axes in zip(layer.inputs, reach or [()] * len(layer.inputs))
                if axes is not None]
        if reach is None or any(tracks[p][0].whole is not None for p in read):
            tracks[layer.name] = tuple(  # type: ignore[assignment]
                Track(whole=_union([_seen(tracks[p][k], shapes[p], k) for p in read], size),
                      jump=None) for k, size in enumerate((height, width)))
        else:
            tracks[layer.name] = tuple(  # type: ignore[assignment]
                _forward(layer, reach, tracks, shapes, needed[layer.name][k], k) for k in range(2))
        result[layer.name] = _field(tracks[layer.name], layer.out_shape)
    return Fields((height, width), tracks, result, [layer.name for layer in layers])


def _reaches(layer: Layer):
    """Per input, the op's (height, width) reach or None where it is not read; None for a
    layer that sees its whole input: its op says so, or its output is no map."""
    if len(layer.out_shape) != 3:
        return None
    if layer.is_join:
        per_branch = layer.op.reach(layer.in_shapes, layer.out_shape)
    else:
        one = layer.op.reach(layer.in_shape, layer.out_shape)
        if one is None:
            return None
        per_branch = (one,)
    if any(len(s) != 3 for s, r in zip(layer.in_shapes, per_branch) if r is not None):
        return None     # a map made from a vector (an opaque layer): it has seen everything
    return per_branch


def _needed(layers: List[Layer], reaches) -> Dict[str, List[Interval]]:
    """Per layer and axis, the output positions to work out: its own, and those a later
    layer reads beyond its border (padding), found in reverse execution order."""
    needed = {layer.name: [(0, layer.out_shape[1] - 1), (0, layer.out_shape[2] - 1)]
              if len(layer.out_shape) == 3 else [(0, 0), (0, 0)] for layer in layers}
    for layer in reversed(layers):
        reach = reaches[layer.name]
        if reach is None:
            continue
        for producer, axes in zip(layer.inputs, reach):
            if axes is None or producer == INPUT:
                continue
            for k, r in enumerate(axes):
                first, last = needed[layer.name][k]
                if r.offsets is not None and CLOSED_FORM:   # a window: its reads only move on
                    step = int(r.step)
                    low, high = needed[producer][k]
                    needed[producer][k] = (min(low, step * first + r.offsets[0]),
                                           max(high, step * last + r.offsets[1]))
                    continue
                # every position: a transposed convolution's reads need not grow with it
                spans = [s for s in map(r.reads, range(first, last + 1)) if s is not None]
                if spans:
                    low, high = needed[producer][k]
                    needed[producer][k] = (min(low, min(s[0] for s in spans)),
                                           max(high, max(s[1] for s in spans)))
    return needed


def _forward(layer: Layer, reach, tracks, shapes, span: Interval, k: int) -> Track:
    """Footprints along axis ``k`` of the positions ``span`` of a layer that reads windows,
    unclipped, and within the image for its own positions."""
    inputs = [(tracks[p][k], axes[k], shapes[p][k + 1])
              for p, axes in zip(layer.inputs, reach) if axes is not None]
    if len(inputs) == 1 and inputs[0][1].identity:
        return inputs[0][0]     # its span holds this layer's, which it was asked to work out
    if CLOSED_FORM:
        track = _slide(inputs, layer.out_shape[k + 1])
        if track is not None:
            return track
    if all(r.identity for _, r, _ in inputs):
        return _elementwise([track for track, _, _ in inputs], span, layer.out_shape[k + 1])
    first, last = span
    lo: List[Optional[int]] = []
    hi: List[Optional[int]] = []
    for i in range(first, last + 1):
        seen = _through(inputs, i, clip=False)
        lo.append(None if seen is None else seen[0])
        hi.append(None if seen is None else seen[1])
    inside = [_through(inputs, i, clip=True) for i in range(layer.out_shape[k + 1])]
    jumps = [track.jump * r.step for track, r, _ in inputs]
    return Track(first, lo, hi, inside, max(jumps) if jumps else Fraction(0))


def _slide(inputs, size: int) -> Optional[Track]:
    """The footprints, as a line, of a layer whose every input is a line read by a sliding
    window, all moving by the same number of pixels per output; None for any other layer.

    Unclipped: through a window of input positions ``s·i + first`` .. ``s·i + last`` of a line
    ``a + j·J`` .. ``b + j·J`` (J ≥ 0: footprints only move on), output i sees from its first
    position's first pixel to its last position's last, ``a + first·J + i·s·J`` .. ``b +
    last·J + i·s·J``: a line with jump ``s·J``. Within the image, output i reads the input's
    real positions of its window (cut to 0 .. n-1); where every output reads at least one
    (no window lies in the padding alone), the first and last of those have footprints within
    the image that are the input's line cut to its bounds, so output i's is its own unclipped
    footprint cut to the same bounds. With holes (``every`` > 1) a window cut at the border
    starts at an offset that depends on i: bounds only where no window is cut, else
    ``inside`` position by position. Over several inputs: the lowest first and highest last
    pixel; one pair of bounds where the input with the lowest first pixel also has the lowest
    bound, and the one with the highest last pixel the highest."""
    jumps, ends = set(), []     # ends: per input, output 0's first and last pixel, bounds
    for track, r, n in inputs:
        if (track.line is None or r.offsets is None or track.jump.denominator != 1
                or track.jump < 0 or r.offsets[0] > r.offsets[1]
                or (r.offsets[1] - r.offsets[0]) % r.every):
            return None
        step, (first, last), jump = int(r.step), r.offsets, track.jump.numerator
        jumps.add(jump * step)
        reads_real = (last >= 0 and step * (size - 1) + first <= n - 1 if r.every == 1 else
                      first >= 0 and step * (size - 1) + last <= n - 1)
        ends.append((track.line[0] + first * jump, track.line[1] + last * jump,
                     track.bounds if reads_real else None))
    if len(jumps) != 1:
        return None
    jump = jumps.pop()
    line = (min(e[0] for e in ends), max(e[1] for e in ends))
    cut = [(a, b, bounds) for a, b, bounds in ends if bounds is not None]
    if len(cut) == len(ends):
        low, high = min(c[2][0] for c in cut), max(c[2][1] for c in cut)
        if ((line[0], low) in [(a, bounds[0]) for a, _, bounds in cut]
                and (line[1], high) in [(b, bounds[1]) for _, b, bounds in cut]):
            # cut to what its own positions 0 .. size-1 see: then `bounds` is their union
            return Track(jump=Fraction(jump), line=line,
                         bounds=(max(low, line[0]), min(high, line[1] + jump * (size - 1))))
    return Track(jump=Fraction(jump), line=line,
                 inside=[_through(inputs, i, clip=True) for i in range(size)])


def _elementwise(tracks: List[Track], span: Interval, size: int) -> Track:
    """Footprints of a join whose output i reads position i of each input (a residual add, a
    concat), position by position: at each the union of its inputs'."""
    first, last = span
    prints = [[t.at(i) for t in tracks] for i in range(first, last + 1)]
    within = [[t.within(i) for t in tracks] for i in range(size)]
    lo = [min((p[0] for p in ps if p is not None), default=None) for ps in prints]
    hi = [max((p[1] for p in ps if p is not None), default=None) for ps in prints]
    inside = [None if all(p is None for p in ps) else
              (min(p[0] for p in ps if p is not None), max(p[1] for p in ps if p is not None))
              for ps in within]
    return Track(first, lo, hi, inside, max(t.jump for t in tracks))


def _through(inputs, i: int, clip: bool) -> Optional[Interval]:
    """What output ``i`` sees through its inputs: the lowest first and highest last pixel of
    the positions it reads; ``clip``: only the inputs' real positions, within the image."""
    low = high = None
    for track, r, size in inputs:
        read = r.reads(i)
        if read is not None and clip:   # the first and last position read of the real map
            first, last = read
            if first < 0:
                first -= first // r.every * r.every
            if last >= size:
                last += (size - 1 - last) // r.every * r.every
            read = (first, last)
        if read is None or read[0] > read[1]:
            continue
        # every position read: footprints need not grow with the position (a transposed
        # convolution's taps, a window's border within the image), and one may be empty
        seen = [s for s in map(track.within if clip else track.at,
                               range(read[0], read[1] + 1, r.every)) if s is not None]
        if not seen:
            continue
        first_pixel, last_pixel = min(s[0] for s in seen), max(s[1] for s in seen)
        low = first_pixel if low is None else min(low, first_pixel)
        high = last_pixel if high is None else max(high, last_pixel)
    return None if low is None else (low, high)  # type: ignore[return-value]


def _seen(track: Track, shape, k: int) -> Optional[Interval]:
    """What a whole map (or vector) saw along axis k within the image: the union of its
    positions' footprints."""
    if track.whole is not None:
        return track.whole
    if track.bounds is not None:
        return track.bounds
    seen = [s for s in map(track.within, range(shape[k + 1])) if s is not None]
    return (min(s[0] for s in seen), max(s[1] for s in seen)) if seen else None


def _union(intervals: List[Optional[Interval]], size: int) -> Interval:
    """The smallest interval holding every one of ``intervals``, clipped to ``0 .. size-1``."""
    known = [i for i in intervals if i is not None]
    if not known:
        return (0, size - 1)    # nothing seen by any input: an opaque layer fed nothing
    return (max(0, min(i[0] for i in known)), min(size - 1, max(i[1] for i in known)))


def _field(tracks: Tuple[Track, Track], shape) -> Field:
    """A layer's field from its footprints: the largest over its own output positions."""
    sizes, starts = [], []
    for k, track in enumerate(tracks):
        if track.whole is not None:
            first = last = track.whole
            prints = [track.whole]
        elif track.line is not None:
            first = track.line
            prints = [track.line]
        else:
            prints = [p for p in map(track.at, range(shape[k + 1])) if p is not None]
            first = track.at(0) or prints[0] if prints else (0, -1)
        sizes.append(max((p[1] - p[0] + 1 for p in prints), default=0))
        starts.append(Fraction(first[0] + first[1], 2))
    jump = None if tracks[0].jump is None else (tracks[0].jump, tracks[1].jump)
    return Field(tuple(sizes), jump, tuple(starts))  # type: ignore[arg-type]


@dataclass
class Summary:
    """What `table --rf` shows: every layer's field and each row's (its last layer's), and
    whether the last layer that still sees a window of the input sees all of it."""

    input_size: Tuple[int, int]
    layers: Dict[str, Field]
    rows: Dict[str, Field]
    last_local: Optional[str]           # the main network's last layer with a local field
    centre_sees_all: bool               # its centre output's footprint covers the input
    first_whole: Optional[str]          # the first layer that sees the whole input

    def to_dict(self) -> dict:
        local = self.layers.get(self.last_local) if self.last_local else None
        return {"input": list(self.input_size),
                "last_local_layer": self.last_local,
                "last_local_field": local.to_dict() if local else None,
                "centre_sees_whole_input": self.centre_sees_all,
                "first_whole_layer": self.first_whole,
                "definitions": DEFINITIONS}


DEFINITIONS = {
    "size": "receptive field, height and width: the most input pixels one output position "
            "sees, unclipped (padding counts as if the input went on)",
    "jump": "input pixels between neighbouring output positions (the strides multiplied); "
            "null where the layer sees the whole input (after a global pool, flatten, linear "
            "or a gate that multiplies by a globally pooled branch)",
    "start": "centre of output position 0's footprint in input pixel coordinates (pixel "
             "centres at 0 .. H-1; negative where it reaches into the padding)",
    "whole": "the layer sees the whole input; size is then what it sees within the image",
}


def summarize(graph: Graph, heads: bool = False) -> Summary:
    """The fields of ``graph``'s layers and rows (heads too when asked), and the summary."""
    found = fields(graph, heads)
    rows = graph.rows + (graph.heads if heads else [])
    ends = {row.name: list(row.group.layers())[-1].name for row in rows}
    main = [layer for row in graph.rows for layer in row.group.layers()]
    local = [layer for layer in main if not found.fields[layer.name].whole]
    whole = [layer for layer in main if found.fields[layer.name].whole]
    sees_all = False
    if local:
        last = local[-1]
        span = found.footprint(last.name, last.out_shape[1] // 2, last.out_shape[2] // 2)
        sees_all = all(s is not None and s[0] <= 0 and s[1] >= size - 1
                       for s, size in zip(span, found.input_size))
    return Summary(found.input_size, found.fields,
                   {name: found.fields[layer] for name, layer in ends.items()},
                   local[-1].name if local else None, sees_all,
                   whole[0].name if whole else None)
