"""The view of `archcalc verify`: one row per layer, the totals' lines, and the summary line."""
from __future__ import annotations

from typing import List

from archcalc.core.ops import fmt_shape
from archcalc.pytorch.verify import FVCORE, HAND_COUNT, Check, LayerCheck, Verification
from archcalc.views.table import Column, Table

# How the check column and the summary line name the way a layer's count was checked.
CHECKED = {FVCORE: "fvcore", HAND_COUNT: "hand count", None: "shape only"}


def summary_line(result: Verification, seconds: float) -> str:
    """``✓ 140 of 140 layers agree on cpu (as asked) in 3.1 s: 58 counts checked against
    fvcore, 82 against a count from the torch module, 0 for shape and parameters only`` (and
    what disagreed, if anything)."""
    agree = sum(l.ok for l in result.layers)
    mark = "✓" if result.ok else "✗"
    line = f"{mark} {agree} of {len(result.layers)} layers agree on {result.device} " \
           f"({result.device_note}) in {seconds:.1f} s: {checked_counts(result)}"
    bad_totals = [k for k, c in result.totals.items() if not c.ok]
    if result.failed:
        shown = ", ".join(result.failed[:5]) + (" ..." if len(result.failed) > 5 else "")
        line += f"; disagree: {shown}"
    if result.error:
        line += f"; {result.error}"
    elif bad_totals:
        line += f"; totals disagree: {', '.join(bad_totals)}"
    return line


def checked_counts(result: Verification) -> str:
    """How many layers' counts were checked which way; the unchecked layers' types named."""
    unchecked = result.checked_by(None)
    text = f"{len(result.checked_by(FVCORE))} counts checked against fvcore, " \
           f"{len(result.checked_by(HAND_COUNT))} against a count from the torch module, " \
           f"{len(unchecked)} for shape and parameters only"
    if unchecked:
        text += f" ({', '.join(_types(unchecked))})"
    return text


def to_table(result: Verification) -> Table:
    """One row per layer: the analytic figures, the measured count, how the count was checked,
    and what PyTorch or fvcore measured differently, if anything (all measured figures are in
    the JSON)."""
    # A narrow terminal leaves out non-trainable first, then type and output; the counts
    # compared and the check stay.
    columns = [Column("layer"), Column("type", optional=2), Column("output", "shape", optional=3),
               Column("params", "int"), Column("non-trainable", "int", optional=1),
               Column("analytic", "int"), Column("measured", "int"), Column("check")]
    rows, flags = [], []
    for l in result.layers:
        rows.append([l.name, l.type, l.output_shape.analytic, l.params.analytic,
                     l.non_trainable.analytic, l.count.analytic, l.count.measured, verdict(l)])
        flags.append([not l.ok] * len(columns))
    t = result.totals
    # the count columns mix MACs and other ops and fvcore's with hand counts, so their sums
    # would compare nothing: the totals' lines under the table say what is compared
    footer = ["total (per image)", None, None, t["params"].analytic, t["non_trainable"].analytic,
              None, None, "✓" if all(c.ok for c in t.values()) else "✗"]
    title = f"{result.name} · verify on {result.device} · batch {result.batch}"
    if result.variant:
        title += f" · variant {result.variant}"
    notes = ["checked against PyTorch (output shapes from forward hooks, parameters, buffers) "
             "and fvcore (by_module, eval mode); counts per image",
             "analytic: the count checked, MACs for conv and linear, other ops for the rest; "
             "measured: fvcore's count (conv, linear, BatchNorm, global pooling) or a hand count "
             "(other ops worked out from the torch module's attributes and the measured shapes)",
             "check: ✓ fvcore, ✓ hand count, or ✓ shape only (shape and parameters; no count "
             "to check against)",
             "non-trainable: BatchNorm running mean and variance; num_batches_tracked (an "
             "integer step counter) is not counted"]
    return Table(title, notes, columns, rows, footer, totals_lines(result), flags)


def verdict(layer: LayerCheck) -> str:
    """``✓ fvcore``, ``✓ hand count``, ``✓ shape only``, or ``✗`` and what was measured
    differently."""
    if layer.ok:
        return f"✓ {CHECKED[layer.checked_by]}"
    shape = layer.output_shape.measured
    wrong = [("output: torch", layer.output_shape,
              "—" if shape is None else fmt_shape(shape[1:] + shape[:1])),
             ("params: torch", layer.params, _fmt(layer.params.measured)),
             ("non-trainable: torch", layer.non_trainable, _fmt(layer.non_trainable.measured)),
             (CHECKED[layer.checked_by], layer.count, _fmt(layer.count.measured))]
    return "✗ " + "; ".join(f"{what} {text}" for what, check, text in wrong
                            if check.ok is False)


def totals_lines(result: Verification) -> List[str]:
    t = result.totals

    def mark(check: Check) -> str:
        return "✓" if check.ok else "✗"

    hand = result.checked_by(HAND_COUNT)
    lines = [
        f"{mark(t['fvcore'])} fvcore total {_fmt(t['fvcore'].measured)} vs analytic "
        f"{_fmt(t['fvcore'].analytic)} (MACs {_fmt(t['macs'].analytic)} plus the other ops "
        "fvcore counts)",
        f"{mark(t['flopcounter'])} FlopCounterMode total {_fmt(t['flopcounter'].measured)} "
        f"FLOPs vs 2 × analytic MACs {_fmt(t['flopcounter'].analytic)}",
        f"{mark(t['hand_count'])} hand counts {_fmt(t['hand_count'].measured)} vs analytic "
        f"other ops {_fmt(t['hand_count'].analytic)} ({len(hand)} layers"
        + (f": {', '.join(_types(hand))})" if hand else ")"),
        f"{mark(t['params'])} parameters: PyTorch {_fmt(t['params'].measured)} vs analytic "
        f"{_fmt(t['params'].analytic)}; {mark(t['non_trainable'])} buffers "
        f"{_fmt(t['non_trainable'].measured)} vs {_fmt(t['non_trainable'].analytic)}",
    ]
    if result.error:
        lines.append(f"✗ {result.error}")
    if result.unsupported:
        listed = ", ".join(f"{op.removeprefix('aten::')} ×{n}"
                           for op, n in sorted(result.unsupported.items()))
        lines.append(f"fvcore did not count (no handler): {listed}")
    return lines


def _types(layers: List[LayerCheck]) -> List[str]:
    """The layers' types, each once, in the order they first come."""
    return list(dict.fromkeys(l.type for l in layers))


def _fmt(value) -> str:
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else str(value)
