"""The views of `archcalc table`: a Report as the paper's table, every layer, or Keras' summary.

Each function turns the analysis' plain data into a :class:`~archcalc.views.table.Table`;
:mod:`archcalc.views.table` renders it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional

from archcalc.core.analysis import PARAMS_CONVENTION, PaperCell, Report
from archcalc.core.conventions import tool
from archcalc.core.ops import fmt_shape
from archcalc.core.receptive import Field
from archcalc.views.table import Column, Table

if TYPE_CHECKING:
    from archcalc.core.roofline import Roofline

STYLES = ("paper", "keras")

# --- building tables from a report ---------------------------------------------------------

def title_of(report: Report) -> str:
    parts = [report.name, f"input {fmt_shape(report.input)}"]
    if report.variant and report.variant != report.network:
        parts.append(f"variant {report.variant}")
    if report.network:
        parts.append(report.network)
    if report.overrides:
        parts.append(", ".join(f"{k}={_setting(v)}" for k, v in report.overrides.items()))
    return " · ".join(parts)


def _setting(value) -> str:
    """A setting's exact value as a person writes it: 0.75, 3, relu (1/3 as 0.333…)."""
    if isinstance(value, (int, str)):
        return str(value)
    return f"{float(value):g}"


def conventions(report: Report) -> str:
    if report.convention != "paper":
        t = tool(report.convention)
        return f"params: trainable, biases included · {t.unit} as {t.title} counts them: " \
               f"{t.counts} (archcalc conventions SPEC compares them all)"
    return ("params: trainable, biases included · MACs: multiply-adds of conv and linear "
            "weights, bias excluded (FLOPs = 2 × MACs)")


def work_unit(report: Report) -> str:
    """The name of the MACs column: MACs, or FLOPs for a convention that counts FLOPs."""
    return tool(report.convention).unit


def audit_note(report: Report) -> str:
    k_params = report.paper_units["params"]
    k_ops = report.paper_units["ops"]
    return (f"paper audit: params in K = {k_params}, ops in M = "
            f"{'10^6' if k_ops == 1000 else '2^20'}; params: "
            f"{PARAMS_CONVENTION[report.paper_params]}; ops = MACs; "
            f"a figure is flagged ✗ when it differs beyond the printed precision and "
            f"{report.tolerance_pct:g}%")


def network_audit(report: Report) -> str:
    """The whole network's published figures beside the computed ones, on one line."""
    parts = []
    for q, c in report.paper.items():
        mark = "✗" if c.flag else "✓"
        # at least the whole part: a figure printed in units (1248424) is not 1.248e+06
        digits = max(4, len(f"{abs(c.computed):.0f}"))
        parts.append(f"{q} {c.printed} printed, {c.computed:.{digits}g}{_unit(c.printed)} computed "
                     f"({c.delta_pct:+.1f}%) {mark}")
    return "paper, whole network: " + " · ".join(parts)


def _unit(printed: str) -> str:
    return printed[-1] if printed[-1:] in "KMG" else ""


def paper_table(report: Report) -> Table:
    """One row per spec row, as Table 1 lays them out, with the audit beside the paper's."""
    blocks: dict = {}       # the block args' names → the blocks (a stage's too) taking them
    for r in report.rows:
        if r.block_args:
            names = blocks.setdefault(tuple(r.block_args), [])
            for part in r.type.split(" + "):
                block = part.split(" ×")[0]
                if block not in names:
                    names.append(block)
    audited = [q for q in ("params", "ops") if any(q in r.paper for r in report.rows)]
    # On a narrow terminal the block args go first, then patch/stride and depth, then the
    # audit's computed figures (its Δ says how they compare); name, shape, params, MACs stay.
    columns = [Column("name"), Column("type", "label"), Column("patch/stride", optional=2),
               Column("output", "shape"), Column("depth", "int", optional=3)]
    if blocks:
        columns.append(Column("block args", optional=1))
    columns += [Column("params", "int"), Column(work_unit(report), "int")] + rf_columns(report)
    for q in audited:
        columns += [Column(f"paper {q}", part="audit"),
                    Column(f"{q} ≈", "figure", "audit", optional=4),
                    Column(f"Δ {q}", "pct", "audit")]
    rows, flags = [], []
    for r in report.rows:
        cells = [f"{r.name} (head)" if r.head else r.name, r.type, r.patch, r.output_shape,
                 r.depth]
        if blocks:
            cells.append(" ".join(str(v) for v in r.block_args.values()) or None)
        cells += [r.params, r.macs]
        cells += rf_cells(report, report.rf.rows[r.name] if report.rf else None)
        flag = [False] * len(cells)
        for q in audited:
            cell: Optional[PaperCell] = r.paper.get(q)
            if cell is None:
                cells += [None, None, None]
                flag += [False] * 3
            else:
                cells += [cell.printed, (cell.computed, cell.printed), cell.delta_pct]
                flag += [False, cell.flag, cell.flag]
        rows.append(cells)
        flags.append(flag)
    t = report.totals
    footer = ["total", None, None, None, t.depth] + [None] * bool(blocks) + [t.params, t.macs]
    footer += [None] * (len(rf_columns(report)) + 3 * len(audited))
    notes = [report.source] if report.source else []
    notes.append(conventions(report))
    notes += [f"block args of {', '.join(names)}: {', '.join(args)}"
              for args, names in blocks.items()]
    if audited or report.paper:
        notes.append(audit_note(report))
    notes += [grown_note(report, g) for g in report.grown] + rf_notes(report)
    summary = [f"depth {t.depth} layers with weights ({t.depth_with_pool} counting pooling) · "
               f"params {t.params:,} ({t.weights:,} weights without biases) · "
               f"{work_unit(report)} {t.macs:,}"]
    if t.non_trainable:
        summary.append(f"non-trainable values (BatchNorm statistics): {t.non_trainable:,}")
    summary += opaque_lines(report) + rf_lines(report)
    if report.audit_skipped:
        summary.append(f"paper audit not applicable: {report.audit_skipped}")
    if report.paper:
        summary.append(network_audit(report))
    if report.audited:
        flagged = report.flagged
        listed = ", ".join(f"{n} {q}" for n, q in flagged) or "none"
        summary.append(f"audit: {len(flagged)} of {report.audited} published figures "
                       f"flagged: {listed}")
    return Table(title_of(report), notes, columns, rows, footer, summary, flags)


def opaque_lines(report: Report) -> List[str]:
    """``2 opaque layers: MACs not counted (layer1.sort, head.topk)``, or nothing."""
    n = len(report.opaque)
    if not n:
        return []
    return [f"{n} opaque layer{'s' * (n != 1)}: MACs not counted ({', '.join(report.opaque)})"]


def grown_note(report: Report, g) -> str:
    """A classifier that grew with the input (analysis.GrownLayer), as one note line."""
    def fed(shape):
        return "×".join(map(str, shape[1:] + shape[:1]))  # H×W×C, as the table shows maps
    return (f"note: at input {'×'.join(map(str, report.input))}, {g.name} takes "
            f"{fed(g.input_shape)} ({fed(g.spec_input_shape)} at the spec's input), so it has "
            f"{g.params:,} of the {report.totals.params:,} params ({g.spec_params:,} at the "
            "spec's input): a fixed-size window before it leaves a larger map on a larger input")


def detail_table(report: Report) -> Table:
    """Every primitive layer, each branch convolution of each Inception module included."""
    # A join's input is all its inputs; on a narrow terminal, their count. What a narrow
    # terminal leaves out first: the derived counts, then patch/stride, then the input.
    columns = [Column("layer"), Column("type"), Column("patch/stride", optional=4),
               Column("input", "shapes", optional=5), Column("output", "shape"),
               Column("params", "int"), Column("weights", "int", optional=3),
               Column("non-trainable", "int", optional=1), Column(work_unit(report), "int"),
               Column("other ops", "int", optional=2)] + rf_columns(report)
    rows = [[l.name, l.type, l.patch, l.input_shapes, l.output_shape, l.params, l.weights,
             l.non_trainable, l.macs, l.other_ops] +
            rf_cells(report, report.rf.layers[l.name] if report.rf else None)
            for l in report.layers]
    t = report.totals
    footer = ["total", None, None, None, None, t.params, t.weights, t.non_trainable, t.macs,
              t.other_ops] + [None] * len(rf_columns(report))
    notes = [conventions(report), "other ops: work of pooling, normalization and activations "
             "(comparisons, adds, scales), never folded into MACs"] + rf_notes(report)
    return Table(title_of(report), notes, columns, rows, footer,
                 [f"{len(report.layers)} layers"] + opaque_lines(report) + rf_lines(report))


# --- receptive fields (`table --rf`, core/receptive.py) -------------------------------------

def rf_columns(report: Report) -> List[Column]:
    """RF stays on a narrow terminal as long as it can; jump and start go first."""
    if report.rf is None:
        return []
    return [Column("RF"), Column("jump", optional=1), Column("start", optional=1)]


def rf_cells(report: Report, f: Optional[Field]) -> list:
    """A field as the table shows it: ``7`` for 7×7, ``7×3``; a jump of ``1/2``; a start of
    ``-0.5``; a pair where height and width differ; ``all`` for a layer that sees the whole
    input."""
    if report.rf is None or f is None:
        return [None] * len(rf_columns(report))
    return [_pair(f.size, "×"), "all" if f.jump is None else _pair(f.jump, ","),
            _pair(tuple(f"{float(s):g}" for s in f.start), ",")]


def _pair(values, sep: str) -> str:
    return str(values[0]) if values[0] == values[1] else f"{values[0]}{sep}{values[1]}"


def rf_notes(report: Report) -> List[str]:
    if report.rf is None:
        return []
    return ["RF: input pixels an output sees (h×w, unclipped) · jump: pixels between "
            "neighbouring outputs; all: sees the whole input · start: centre of output 0's "
            "field, in input pixels"]


def rf_lines(report: Report) -> List[str]:
    """Whether the last layer with a local field sees the whole input, on one line."""
    rf = report.rf
    if rf is None:
        return []
    h, w = rf.input_size
    lines = []
    if rf.last_local is not None:
        size = _pair(rf.layers[rf.last_local].size, "×")
        sees = "sees" if rf.centre_sees_all else "does not see"
        lines.append(f"receptive field of {rf.last_local}, the last layer with a local field: "
                     f"{size}; its centre output {sees} the whole {h}×{w} input")
    if rf.first_whole is not None:
        lines.append(f"from {rf.first_whole} on, every layer sees the whole input")
    return lines


def keras_table(report: Report) -> Table:
    """Keras' model.summary(): Param # counts trainable and non-trainable values."""
    columns = [Column("Layer (type)"), Column("Output Shape", "keras_shape"),
               Column("Param #", "int")]
    rows = [[f"{l.name} ({l.type})", l.output_shape, l.params + l.non_trainable]
            for l in report.layers]
    t = report.totals
    summary = [f"Total params: {t.params + t.non_trainable:,}",
               f"Trainable params: {t.params:,}",
               f"Non-trainable params: {t.non_trainable:,}"] + opaque_lines(report)
    return Table(f'Model: "{report.name}"', [], columns, rows, [], summary)


def make_table(report: Report, style: str = "paper", detail: bool = False,
               roofline: Optional["Roofline"] = None, memory=None) -> Table:
    """The table of ``style``; with ``memory`` (core.memory's NetworkMemory) and ``roofline``,
    their columns after the main ones (bytes; intensity, time, bound), per spec row in the
    paper's layout, per layer otherwise."""
    if style == "keras":
        table = keras_table(report)
    else:
        table = detail_table(report) if detail else paper_table(report)
    by_row = style != "keras" and not detail
    if memory is not None:
        table = add_memory(table, report, memory, not by_row)
    if roofline is None:
        return table
    from archcalc.views.roofline import with_columns
    names = [r.name for r in report.rows] if by_row else [l.name for l in report.layers]
    return with_columns(table, roofline, names.__getitem__, by_row)


def to_dict(report: Report, roofline: Optional["Roofline"] = None, memory=None) -> dict:
    """The JSON contract of `table`; with ``roofline`` and ``memory`` (core.memory's
    NetworkMemory), their sections."""
    data = report.to_dict()
    if memory is not None:
        data["memory"] = memory.to_dict()
    if roofline is not None:
        data["roofline"] = roofline.to_dict()
    return data


# --- memory (table --memory) -----------------------------------------------------------------

def byte_size(count: int) -> str:
    """Bytes as a person reads them: 5.03 MB, 247 MB, 10.8 GB (10^3 steps, as disks count)."""
    for power, unit in ((9, "GB"), (6, "MB"), (3, "KB")):
        if count >= 0.9995 * 10 ** power:
            return f"{count / 10 ** power:#.3g}".rstrip(".") + f" {unit}"
    return f"{count:,} B"


def memory_lines(mem) -> List[str]:
    """The summary lines of ``table --memory`` (core.memory.NetworkMemory)."""
    adam, sgd = mem.training.get("adam"), mem.training.get("sgd")
    lines = [f"memory at batch {mem.batch:,}, {mem.dtype} ({mem.bytes_per_number} bytes a "
             f"number): input {byte_size(mem.input_bytes)} · "
             f"parameters and buffers {byte_size(mem.param_bytes)}",
             f"inference peak (no grad): activations {byte_size(mem.inference_peak)}, "
             f"{byte_size(mem.inference_total)} with the model"]
    steps = [f"{name} {byte_size(t.total)}" for name, t in
             (("SGD with momentum", sgd), ("Adam", adam)) if t is not None]
    if steps:
        saved = (sgd or adam).saved
        lines.append(f"training step peak: {' · '.join(steps)} (weights, optimizer state, "
                     f"saved activations {byte_size(saved)} and gradients)")
    lines.append(f"model file (torch.save of the state_dict): {byte_size(mem.disk_bytes)}")
    return lines


def add_memory(table: Table, report: Report, mem, detail: bool) -> Table:
    """``table`` with two columns per row or layer, its output's bytes at the batch and data
    type and its parameters' and buffers' bytes, and the memory summary lines."""
    per = {m.name: m for m in (mem.layers if detail else mem.rows)}
    names = [l.name for l in report.layers] if detail else [r.name for r in report.rows]
    # left out last on a narrow terminal, after every other optional column (the summary
    # lines stay): a layer's long dotted name may leave no room for them
    columns = table.columns + [Column("out bytes", "int", optional=7),
                               Column("param bytes", "int", optional=6)]
    rows = [cells + ([per[n].activation_bytes, per[n].param_bytes] if n in per else
                     [None, None]) for cells, n in zip(table.rows, names)]
    footer = table.footer + [None, mem.param_bytes] if table.footer else []
    flags = [f + [False, False] for f in table.flags] if table.flags else []
    notes = table.notes + [f"out bytes: a row's output at batch {mem.batch:,} in {mem.dtype}; "
                           "param bytes: its parameters and buffers in " + mem.dtype]
    return Table(table.title, notes, columns, rows, footer, table.summary + memory_lines(mem),
                 flags, table.short)
