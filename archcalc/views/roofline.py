"""The roofline's text: its columns beside `table`'s, its summary lines, and `profile`'s
table of predicted against measured times. Plain data in (core.roofline, pytorch.profile's
Profile), a :class:`~archcalc.views.table.Table` or lines out."""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional

from archcalc.core.roofline import COMPUTE, CONVENTION, MEMORY, LayerRoof, Roofline
from archcalc.views.table import Column, Table, seconds

# A narrow terminal leaves out the intensity first; the bound, then the time, only after
# every column of the table's own (MobileNetV2's paper table is 82 wide with the time and
# nothing else optional left); the summary lines keep the totals either way.
LAST = 99
ROOF_COLUMNS = [Column("FLOP/B", "float", optional=1), Column("time", "seconds",
                                                               optional=LAST + 1),
                Column("bound", optional=LAST)]


def si(value: float, unit: str) -> str:
    """3 significant digits and an SI prefix: 67.0 TFLOP/s, 3.35 TB/s, 113 MB."""
    for power, prefix in ((15, "P"), (12, "T"), (9, "G"), (6, "M"), (3, "K")):
        if abs(value) >= 0.9995 * 10 ** power:
            return f"{value / 10 ** power:#.3g}".rstrip(".") + f" {prefix}{unit}"
    return f"{value:#.3g}".rstrip(".") + f" {unit}"


def device_line(roof: Roofline) -> str:
    d = roof.device
    return (f"roofline: {d.name} ({d.form_factor}), {roof.dtype}, batch {roof.batch:,}: "
            f"peak {si(roof.peak, 'FLOP/s')}, {si(d.bandwidth, 'B/s')}, ridge "
            f"{roof.ridge:,.1f} FLOP/B")


def summary_lines(roof: Roofline, what: str = "predicted") -> List[str]:
    """The device, then the network's predicted time split by bound."""
    n = {b: sum(1 for l in roof.layers if l.bound == b) for b in (COMPUTE, MEMORY)}
    intensity = f"{roof.flops / roof.bytes:,.1f}" if roof.bytes else "∞"
    passed = "backward" if roof.backward else "forward"
    return [device_line(roof),
            f"{what} {passed}: {seconds(roof.seconds)} ({n[COMPUTE]} compute-bound layers "
            f"{seconds(roof.seconds_bound(COMPUTE))}, {n[MEMORY]} memory-bound "
            f"{seconds(roof.seconds_bound(MEMORY))}); {si(roof.flops, 'FLOP')}, "
            f"{si(roof.bytes, 'B')} moved, {intensity} FLOP/B"]


def convention_note(roof: Roofline) -> str:
    return "roofline: " + CONVENTION["backward" if roof.backward else "forward"] + \
        "; peaks are dense (datasheets' sparsity figures halved), fp32 is plain FP32 not TF32"


def with_columns(table: Table, roof: Roofline, key: Callable[[int], Optional[str]],
                 by_row: bool = False) -> Table:
    """``table`` with the roofline's columns after its main ones: the row ``i`` shows the
    layer (``by_row``: the spec row) named ``key(i)``; the totals row the network's."""
    cells: Dict[str, LayerRoof] = roof.by_row() if by_row else {l.name: l for l in roof.layers}
    main = [i for i, c in enumerate(table.columns) if c.part == "main"]
    at = main[-1] + 1 if main else len(table.columns)

    def put(row: list, values: list) -> list:
        return row[:at] + values + row[at:]

    rows = []
    for i, row in enumerate(table.rows):
        roof_row = cells.get(key(i))
        rows.append(put(row, [roof_row.intensity, roof_row.seconds, roof_row.bound]
                        if roof_row else [None] * 3))
    footer = put(table.footer, [roof.flops / roof.bytes if roof.bytes else None,
                                roof.seconds, None]) if table.footer else []
    flags = [put(f, [False] * 3) for f in table.flags]
    # The device and the predicted total go under the table; where the audit's part takes
    # the summary's later lines on screen (views/table._parts), above it, with the notes.
    lines = summary_lines(roof)
    notes, summary = table.notes + [convention_note(roof)], list(table.summary)
    if any(c.part == "audit" for c in table.columns):
        notes += lines
    else:
        summary += lines
    return dataclasses.replace(table, columns=put(table.columns, list(ROOF_COLUMNS)),
                               rows=rows, footer=footer, flags=flags, notes=notes,
                               summary=summary)


# --- profile --------------------------------------------------------------------------------

def profile_table(p) -> Table:
    """Per layer: the roofline's bound and time beside the measured one, and the fraction of
    the device's peak reached; the backward pass's too with --backward."""
    backward = p.backward is not None
    columns = [Column("layer"), Column("type", optional=2), Column("bound"),
               Column("predicted", "seconds"), Column("measured", "seconds"),
               Column("% peak", "fraction", optional=3)]
    if backward:
        columns += [Column("bwd predicted", "seconds", optional=1),
                    Column("bwd measured", "seconds"),
                    Column("bwd % peak", "fraction", optional=4)]
    rows = []
    for l in p.layers:
        row = [l.name, l.type, l.forward.bound, l.forward.seconds, l.forward_seconds,
               _achieved(l.forward, l.forward_seconds, p.forward.peak)]
        if backward:
            row += [l.backward.seconds, l.backward_seconds,
                    _achieved(l.backward, l.backward_seconds, p.backward.peak)]
        rows.append(row)
    footer = ["total (layers)", None, None, p.forward.seconds, p.measured(), p.achieved()]
    if backward:
        footer += [p.backward.seconds, p.measured(True), p.achieved(True)]
    notes = [convention_note(p.forward),
             f"measured on {p.device}: median of {p.repeat} runs of each layer alone on its "
             f"recorded input, after warm-up"
             + (f"; {p.threads} CPU thread{'s' * (p.threads != 1)}" if p.threads else ""),
             "% peak: the layer's FLOPs over its measured time, as a share of the device's "
             "peak"]
    if backward:
        notes.append(convention_note(p.backward))
    return Table(f"{p.name} · {p.device} · {p.dtype} · batch {p.batch:,}", notes, columns,
                 rows, footer, profile_summary(p))


def _achieved(roof: LayerRoof, measured: Optional[float], peak: float) -> Optional[float]:
    if measured is None or measured <= 0:
        return None
    return roof.flops / measured / peak


def profile_summary(p) -> List[str]:
    lines = [device_line(p.forward), f"device profile: {p.profile.source}"]
    passes = [(p.forward, False, p.network_forward)]
    if p.backward is not None:
        passes.append((p.backward, True, p.network_backward))
    for roof, backward, network in passes:
        name = "backward" if backward else "forward"
        measured = p.measured(backward)
        ratio = f" ({measured / roof.seconds:,.1f}× the prediction)" if roof.seconds else ""
        whole = f"; the whole network in one pass {seconds(network)}" if network else ""
        lines.append(f"{name}: predicted {seconds(roof.seconds)}, measured "
                     f"{seconds(measured)} summed over the layers{ratio}{whole}; "
                     f"{p.achieved(backward):.1%} of peak")
    if p.memory is not None:
        lines.append(memory_line(p.memory))
    return lines


def memory_line(m) -> str:
    """Peak memory of a pass: the spec's estimate beside the measurement."""
    from archcalc.views.report import byte_size
    workspace = "" if m.measured == m.measured_tensors else \
        f" ({byte_size(m.measured_tensors)} without kernel workspace)"
    ratio = f", {m.measured_tensors / m.estimated:.3f}× the estimate" if m.estimated else ""
    return (f"peak memory of a {m.what}, model and input included: estimated "
            f"{byte_size(m.estimated)}, measured {byte_size(m.measured)}{workspace}{ratio}")
