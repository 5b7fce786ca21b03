"""The view of `archcalc verify --against`: one row per matched pair (or one-sided layer), and
the summary line that names the first divergence."""
from __future__ import annotations

from archcalc.bridge.diff import Comparison, Quantity, Row
from archcalc.core.ops import fmt_shape
from archcalc.views.table import Column, Table


def summary_line(result: Comparison) -> str:
    """``✓ 174 of 174 layers agree with torchvision.models:resnet50``, or
    ``✗ first divergence: conv1: stride 1 in the spec, 2 in the model → 4× the MACs (3 of 174
    layers differ)``."""
    if result.ok:
        return f"✓ {len(result.rows)} of {len(result.rows)} layers agree with {result.model}"
    bad = sum(not r.ok for r in result.rows)
    return f"✗ first divergence: {result.cause} ({bad} of {len(result.rows)} layers differ " \
           f"from {result.model})"


def to_table(result: Comparison) -> Table:
    """Per pair: the spec's layer, how it was matched (and the model's name where it differs),
    the spec's figures, and ✓ or what the model has instead."""
    columns = [Column("layer"), Column("matched by", optional=2),
               Column("output", "shape", optional=3), Column("params", "int"),
               Column("buffers", "int", optional=1), Column("MACs", "int"), Column("check")]
    rows, flags = [], []
    for r in result.rows:
        node = r.spec or r.model
        rows.append([node.name, matched(r), node.out_shape, node.params, node.buffers,
                     r.macs.spec if r.spec else r.macs.model, verdict(r)])
        flags.append([not r.ok] * len(columns))
    (sp, mp), (sb, mb), (sm, mm) = (result.totals()[k] for k in ("params", "buffers", "macs"))
    footer = ["total (spec)", None, None, sp, sb, sm, "✓" if result.ok else "✗"]
    notes = [f"{result.spec} against {result.model}",
             "figures: the spec's (the model's where only the model has the layer); "
             "check: ✓, or what the model has instead",
             "MACs: conv and linear, archcalc's against fvcore's (by_module, batch 1) on the "
             "model; buffers: BatchNorm running statistics"]
    line = f"{_mark(sp == mp)} parameters: spec {sp:,}, model {mp:,}; " \
           f"{_mark(sb == mb)} buffers: spec {sb:,}, model {mb:,}; "
    if any(r.macs.ok is not None for r in result.rows):
        line += f"{_mark(sm == mm)} MACs: spec {sm:,}, model {mm:,}"
    else:
        line += "MACs not compared: the model's are unknown (fvcore counts a " \
                "package.module:callable's nn.Module, not a .pt2's or an ONNX file's)"
    lines = [line]
    if not result.input.ok:
        lines.append(f"✗ input: spec {fmt_shape(result.input.spec)}, model "
                     f"{fmt_shape(result.input.model)}")
    return Table(f"verify against {result.model}", notes, columns, rows, footer, lines, flags)


def matched(row: Row) -> str:
    """``name``, ``order (conv1)`` with the model's name, or which side alone has the layer."""
    if row.spec is None:
        return "model only"
    if row.model is None:
        return "spec only"
    if row.matched_by == "order" and row.model.name != row.spec.name:
        return f"order ({row.model.name})"
    return row.matched_by


def verdict(row: Row) -> str:
    if row.ok:
        if row.spec is None or row.model is None:
            return "✓ passes its input on"
        return "✓" if row.op.ok else f"✓ as {row.model.op}"
    if row.spec is None or row.model is None:
        return "✗ missing in the " + ("spec" if row.spec is None else "model")
    wrong = [(what, q) for what, q in (("output", row.shape), ("params", row.params),
                                       ("buffers", row.buffers), ("MACs", row.macs))
             if q.ok is False]
    op = [] if row.op.ok else [row.model.op]
    return "✗ model: " + "; ".join(op + [f"{what} {_fmt(q)}" for what, q in wrong])


def _fmt(q: Quantity) -> str:
    v = q.model
    if isinstance(v, tuple):     # as the table shows maps: H×W×C
        return fmt_shape(v[1:] + v[:1] if len(v) == 3 else v)
    return f"{v:,}" if isinstance(v, int) else str(v)


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"
