"""Receptive fields: which input pixels each layer's outputs see, worked out without torch.

Data flow. Each op says, along the height and the width, which input positions each output
position reads (``Op.reach``: a :class:`~archcalc.core.ops.base.Reach` per axis, per branch for
a join, or None for an op whose every output reads all of its input). This module composes
those through the graph's real edges (``Layer.inputs``, ``graph.layers`` in execution order):

1. backwards, in reverse execution order: the output positions each layer must know, its own
   plus those a later layer's window reaches beyond its border (padding), so that
2. forwards, in execution order, every layer gets per output position ``i`` the first and last
   input pixel it sees: ``lo(i)``, ``hi(i)``, the lowest ``lo`` and highest ``hi`` of the
   positions it reads in each of its inputs (the network's input sees pixel ``i`` itself).

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


@dataclass
class Track:
    """One layer's footprints along one axis: output ``i`` sees input pixels ``lo[i - origin]``
    to ``hi[i - origin]`` unclipped, and ``inside[i]`` of them within the image (for its own
    positions 0 .. size-1 only); or, for a layer that sees the whole input, ``whole`` at every
    position."""

    origin: int = 0
    lo: List[Optional[int]] = field(default_factory=list)
    hi: List[Optional[int]] = field(default_factory=list)
    inside: List[Optional[Interval]] = field(default_factory=list)
    jump: Optional[Fraction] = Fraction(1)
    whole: Optional[Interval] = None

    def at(self, i: int) -> Optional[Interval]:
        """Output ``i``'s footprint, or None where it sees nothing (no transposed-convolution
        tap lands on it)."""
        if self.whole is not None:
            return self.whole
        k = i - self.origin
        if not 0 <= k < len(self.lo):
            raise IndexError(f"position {i} is beyond what was worked out")
        return None if self.lo[k] is None else (self.lo[k], self.hi[k])  # type: ignore

    def within(self, i: int) -> Optional[Interval]:
        """Output ``i``'s footprint within the image (what gradients reach at this input)."""
        return self.whole if self.whole is not None else self.inside[i]


class _Input(Track):
    """The network's input: position i sees pixel i, padding positions included."""

    def at(self, i: int) -> Interval:
        return (i, i)

    def within(self, i: int) -> Interval:
        return (i, i)


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
    tracks: Dict[str, Tuple[Track, Track]] = {INPUT: (_Input(), _Input())}
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


def _elementwise(tracks: List[Track], span: Interval, size: int) -> Track:
    """Footprints of a layer whose output i reads position i of each input (an activation, a
    normalization, a residual add, a concat): one input's as they are (its span holds this
    layer's, which it was asked to work out), or at each position the union of its inputs'."""
    if len(tracks) == 1:
        return tracks[0]
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
    if isinstance(track, _Input):
        return (0, shape[k + 1] - 1) if len(shape) == 3 else (0, 0)
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
