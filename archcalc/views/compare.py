"""The view of `archcalc compare`: the verdict a reader can quote, and the side-by-side table."""
from __future__ import annotations

from typing import List, Optional, Sequence

from archcalc.core.compare import Comparison, Pair, ratio
from archcalc.core.ops import fmt_shape
from archcalc.views.table import Column, Table


def to_dict(c: Comparison) -> dict:
    """The JSON contract: the comparison's numbers and its verdict."""
    return {**c.to_dict(), "verdict": verdict(c)}


def title(c: Comparison) -> str:
    """What the table and the figure are headed with: the two sides and their input."""
    a, b = c.a, c.b
    if c.mode == "variants":
        return f"{a.spec.name} · {a.label} vs {b.label} · input {fmt_shape(a.input)}"
    inputs = fmt_shape(a.input) if a.input == b.input else \
        f"{fmt_shape(a.input)} vs {fmt_shape(b.input)}"
    variant = f" · variant {a.variant}" if a.variant else ""
    return f"{a.label} ({a.spec.name}) vs {b.label} ({b.spec.name}) · input {inputs}{variant}"


# --- the verdict ---------------------------------------------------------------------------

def verdict(c: Comparison) -> str:
    """One or two sentences a reader can quote: how many times fewer weights and multiply-adds
    b needs than a, and where most of the difference comes from."""
    a, b = c.a, c.b
    nouns = {"weights": "weights", "macs": "multiply-adds"}
    differ = [(q, _times(a.total(q), b.total(q), noun)) for q, noun in nouns.items()
              if a.total(q) != b.total(q)]
    same = [noun for q, noun in nouns.items() if a.total(q) == b.total(q)]
    if not differ:
        return f"{b.label} and {a.label} need as many weights and multiply-adds."
    first = f"{b.label} needs {' and '.join(t for _, t in differ)} than {a.label}"
    first += f", and as many {same[0]}." if same else "."
    where = _compounding(c) if c.mode == "variants" else _where(c)
    return f"{first} {where}" if where else first


def _times(a: int, b: int, noun: str) -> str:
    """How b compares with a (they differ): '14.0× fewer weights', '1.32× more multiply-adds'."""
    word = "fewer" if b < a else "more"
    if not a or not b:
        return f"{abs(a - b):,} {word} {noun}"
    r = max(a, b) / min(a, b)
    return f"{r:.1f}× {word} {noun}" if r >= 1.1 else f"{r:.2f}× {word} {noun}"


def _share(part: int, whole: int) -> Optional[float]:
    share = part / whole if whole else None
    return share if share is not None and 0 <= share <= 1 else None


def _compounding(c: Comparison) -> str:
    """Variants: how much of the difference the modules make on the same input, and how much
    comes from what they feed the rest of the network."""
    whole = {q: c.a.total(q) - c.b.total(q) for q in ("weights", "macs")}
    alone = {q: sum(p.diff(q) for p in c.modules) for q in ("weights", "macs")}
    w, m = (_share(alone[q], whole[q]) for q in ("weights", "macs"))
    if w is None:
        return ""
    noun = "saving" if whole["weights"] > 0 else "extra cost"
    macs, rest_macs = (f" ({m:.0%} of the multiply-adds)", f" ({1 - m:.0%})") if m is not None \
        else ("", "")
    last = c.modules[-1].name
    ch_a, ch_b = c.a.rows[last].out_shape[0], c.b.rows[last].out_shape[0]
    widths = f" (the last module: {ch_a:,} channels against {ch_b:,})" if ch_a != ch_b else ""
    return (f"Fed the same input, the modules alone make {w:.0%} of the {noun} in weights"
            f"{macs}; the other {1 - w:.0%}{rest_macs} comes from what they feed the rest of "
            f"the network{widths}.")


def _where(c: Comparison) -> str:
    """Specs: the few rows that make most of the difference in weights and in multiply-adds."""
    parts = []
    for q, noun in (("weights", "weights"), ("macs", "multiply-adds")):
        rows, share = _largest(c.modules, q, c.a.total(q) - c.b.total(q))
        if rows:
            share = f"{share:.0%}" if share <= 1 else "more than the net difference"
            parts.append(f"{noun} in {', '.join(rows)} ({share})")
    return f"Most of the difference: {'; '.join(parts)}." if parts else ""


def _largest(pairs: Sequence[Pair], q: str, whole: int, most: int = 3):
    """The fewest rows (at most ``most``) whose differences make half of ``whole``."""
    if not whole:
        return [], 0.0
    ranked = sorted(pairs, key=lambda p: p.diff(q) * (1 if whole > 0 else -1), reverse=True)
    rows, done = [], 0
    for p in ranked[:most]:
        if p.diff(q) * whole <= 0:
            break
        rows.append(p.name)
        done += p.diff(q)
        if done / whole >= 0.5:
            break
    return rows, done / whole


# --- the table -----------------------------------------------------------------------------

def make_table(c: Comparison) -> Table:
    return _variants_table(c) if c.mode == "variants" else _specs_table(c)


def _variants_table(c: Comparison) -> Table:
    A, B = c.a.label, c.b.label
    # A narrow terminal leaves out the widths of the whole networks first, then the modules'
    # widths and input, then each side's MACs and weights; the ratios stay.
    columns = [Column("module"), Column("input", "shape", optional=3),
               Column(f"{A} weights", "int", optional=5), Column(f"{B} weights", "int", optional=5),
               Column("× weights", "ratio"),
               Column(f"{A} MACs", "int", optional=4), Column(f"{B} MACs", "int", optional=4),
               Column("× MACs", "ratio"),
               Column(f"{A} out", "int", optional=2), Column(f"{B} out", "int", optional=2),
               Column(f"{A} out (network)", "int", optional=1),
               Column(f"{B} out (network)", "int", optional=1)]
    rows = [[p.name, p.a.in_shape, p.a.weights, p.b.weights, p.ratio("weights"),
             p.a.macs, p.b.macs, p.ratio("macs"), p.a.out_shape[0], p.b.out_shape[0],
             c.a.rows[p.name].out_shape[0], c.b.rows[p.name].out_shape[0]]
            for p in c.modules]
    sums = {(s, q): c.module_total(s, q) for s in "ab" for q in ("weights", "macs")}
    footer = ["modules", None, sums["a", "weights"], sums["b", "weights"],
              ratio(sums["a", "weights"], sums["b", "weights"]), sums["a", "macs"],
              sums["b", "macs"], ratio(sums["a", "macs"], sums["b", "macs"])] + [None] * 4
    notes = [c.a.spec.source] if c.a.spec.source else []
    notes += [f"per module, same input: each row whose layers differ between {A} and {B}, "
              f"built in both on the input {c.feeder} feeds it; 'out' are its "
              "output channels",
              f"network: every module in one variant, fed by the one before, so widths "
              f"compound; 'out (network)' are its output channels there (heads left out)",
              _units_note(A, B)]
    if c.apart:
        notes.append(f"not compared per module: {', '.join(c.apart)} (each takes an earlier "
                     "row's output with from:, so it cannot be built alone); the networks "
                     "include them")
    return Table(title(c), notes, columns, rows, footer, _network_lines(c))


def _specs_table(c: Comparison) -> Table:
    A, B = c.a.label, c.b.label
    # A narrow terminal leaves out the output shapes first, then the differences, then each
    # side's figures (MACs before weights); the ratios stay.
    columns = [Column("row"), Column(f"{A} output", "shape", optional=1),
               Column(f"{B} output", "shape", optional=1)]
    for q, noun, side in (("weights", "weights", 5), ("macs", "MACs", 4)):
        columns += [Column(f"{A} {noun}", "int", optional=side),
                    Column(f"{B} {noun}", "int", optional=side),
                    Column(f"Δ {noun}", "int", optional=3), Column(f"× {noun}", "ratio")]
    rows = []
    for p in c.modules:
        only = "" if p.a and p.b else f" (only in {A if p.a else B})"
        row = [p.name + only, p.a and p.a.out_shape, p.b and p.b.out_shape]
        for q in ("weights", "macs"):
            row += [p.a and getattr(p.a, q), p.b and getattr(p.b, q), p.diff(q), p.ratio(q)]
        rows.append(row)
    footer = ["total", None, None]
    for q in ("weights", "macs"):
        footer += [c.a.total(q), c.b.total(q), c.a.total(q) - c.b.total(q), c.ratio(q)]
    notes = [f"rows matched by name; a row only one spec has is marked so (heads left out)",
             _units_note(A, B), f"Δ = {A} − {B}"]
    return Table(title(c), notes, columns, rows, footer, _network_lines(c))


def _units_note(a: str, b: str) -> str:
    return ("weights: parameters without biases, the paper's convention (--format json also "
            "gives params with biases) · MACs: multiply-adds of conv and linear weights · "
            f"× = {a} / {b}")


def _network_lines(c: Comparison) -> List[str]:
    lines = [f"network {n.label}: {n.total('weights'):,} weights ({n.total('params'):,} params "
             f"with biases) · {n.total('macs'):,} MACs" for n in (c.a, c.b)]
    return lines + [verdict(c)]
