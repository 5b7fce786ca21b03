"""The `archcalc` command. Each command is one thin function: read options, call the library,
print or write the result. Only this module prints, and it alone picks exit codes:
0 done, 1 a check disagreed, 2 bad input."""
from __future__ import annotations

import contextlib
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Dict, Iterator, List, Optional, Tuple, Union

import typer

from archcalc import __version__
from archcalc.errors import ArchcalcError, Position

app = typer.Typer(
    help="Shapes, parameters and multiply-adds of convolutional networks written as YAML specs.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]})


class Format(str, Enum):
    table = "table"
    csv = "csv"
    markdown = "markdown"
    json = "json"


class Style(str, Enum):
    paper = "paper"
    keras = "keras"


# Options shared by commands (sqlite-utils style): one definition, one help text.
SpecArg = Annotated[str, typer.Argument(
    help="A spec file, or the name of a bundled spec such as googlenet (see `archcalc specs`).")]
VariantOpt = Annotated[Optional[str], typer.Option(
    "--variant", help="Use this variant of every block that has one (e.g. naive).")]
InputOpt = Annotated[Optional[str], typer.Option(
    "--input", help="Input size C×H×W, e.g. 3x448x448, instead of the spec's.")]
SetOpt = Annotated[Optional[List[str]], typer.Option(
    "--set", metavar="NAME=VALUE",
    help="Change one of the spec's settings (e.g. width=0.75); repeat for several.")]
HeadsOpt = Annotated[bool, typer.Option(
    "--heads", help="Include training-only heads (auxiliary classifiers).")]
FormatOpt = Annotated[Optional[Format], typer.Option(
    "--format", "-f", show_default=False,
    help="table (on screen), csv, markdown or json; by default what -o's extension says, "
    "else table.")]
OutputOpt = Annotated[Optional[Path], typer.Option(
    "--output", "-o", help="Write to this file (whole, or not at all) instead of the screen; "
    ".csv, .md, .json or .txt (the screen's table) say the format.")]
FigureOutputOpt = Annotated[Optional[Path], typer.Option(
    "--output", "-o", help="Write to this file (whole, or not at all) instead of the screen; "
    ".csv, .md, .json or .txt (the screen's table) say the format; .png or .svg: the figure "
    "only (as --plot).")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Let -o (or --plot) replace a read-only file; it keeps its mode.")]
WideOpt = Annotated[bool, typer.Option(
    "--wide", help="Every column even on a narrow terminal (which then wraps the lines).")]

# What -o's extension says, one map for every command; figures only where a command draws one.
TEXT_OUTPUTS = {".csv": Format.csv, ".md": Format.markdown, ".json": Format.json,
                ".txt": Format.table}
FIGURE_OUTPUTS = (".png", ".svg")


def output_format(format: Optional[Format], output: Optional[Path],
                  figures: bool = False) -> Optional[Format]:
    """The format to write: --format, or what -o's extension says, or the screen's table.
    None when ``figures`` and -o names a figure (then the figure is the output). An explicit
    --format that contradicts the extension, or an extension that says nothing, is bad input."""
    if output is None:
        return format or Format.table
    suffix = output.suffix.lower()
    known = list(TEXT_OUTPUTS) + list(FIGURE_OUTPUTS if figures else ())
    if suffix in FIGURE_OUTPUTS and figures:
        if format is not None:
            raise ArchcalcError(f"-o {output} is a figure but --format is {format.value}: "
                                "drop one")
        return None
    inferred = TEXT_OUTPUTS.get(suffix)
    if inferred is None and format is None:
        said = f"'{suffix}'" if suffix else "a file without an extension"
        raise ArchcalcError(f"-o {output}: cannot tell the format from {said}; give a file "
                            f"ending in {', '.join(known)}, or --format")
    if inferred is not None and format is not None and format is not inferred:
        raise ArchcalcError(f"-o {output} is a {suffix[1:]} file but --format is "
                            f"{format.value}: drop one, or make them agree")
    return format or inferred


def figure_output(format: Optional[Format], output: Optional[Path], plot: Optional[Path]):
    """(format, text output, figure): ``-o x.png`` is ``--plot x.png`` and no text at all."""
    resolved = output_format(format, output, figures=True)
    if resolved is not None:
        return resolved, output, plot
    if plot is not None:
        raise ArchcalcError(f"-o {output} and --plot {plot} both name the figure: give one")
    return None, None, output


def threads_default() -> str:
    from archcalc.pytorch.devices import DEFAULT_THREADS, THREADS_ENV
    return f"${THREADS_ENV}, else {DEFAULT_THREADS}"


ThreadsOpt = Annotated[Optional[int], typer.Option(
    "--threads", min=1, show_default=threads_default(),
    help="PyTorch's CPU threads. More is faster only on idle cores: on a 2-core machine with "
    "one core busy, 2 threads trained at about half the speed of 1.")]


# --- the roofline's options (table --roofline, profile) --------------------------------------

RooflineOpt = Annotated[Optional[str], typer.Option(
    "--roofline", metavar="DEVICE",
    help="Add each row's arithmetic intensity, roofline time and bound on DEVICE (h200, "
    "h100-sxm, a100-pcie-80gb, l4, m1-max, cpu: measured here; see docs/roofline.md).")]
DevicesOpt = Annotated[Optional[Path], typer.Option(
    "--devices", metavar="FILE",
    help="Device profiles from this YAML file instead of the bundled ones.")]
BatchSizeOpt = Annotated[int, typer.Option(
    "--batch-size", "--batch", help="Images per batch (--memory, --roofline).")]
DtypeOpt = Annotated[str, typer.Option(
    "--dtype", help="Data type of weights and activations: fp32, bf16 or fp16.")]


def roofline_device(name: str, devices: Optional[Path] = None, threads: Optional[int] = None):
    """The roofline's Device named ``name`` (bundled profiles, or --devices FILE's); `cpu` is
    measured here, once, and cached (it needs PyTorch)."""
    from archcalc.core import roofline as rl

    def measure(entry):
        from archcalc.extras import TORCH_ONLY, require
        require("torch", f"measuring the '{entry.key}' device profile", needs=TORCH_ONLY)
        from archcalc.pytorch import cpu_profile
        return cpu_profile.device(entry, threads)
    return rl.resolve(rl.find(rl.load_devices(devices), name), measure)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Bad input becomes one line on stderr and exit code 2, never a traceback."""
    try:
        yield
    except ArchcalcError as exc:
        typer.echo(str(exc), err=True)     # one line: ArchcalcError escapes what it quotes
        raise typer.Exit(2)


def check_output(output: Optional[Path], force: bool = False, inputs=(),
                 plot: Optional[Path] = None) -> None:
    """Before any work: an -o (or --plot) file that cannot be written, or only by destroying
    what is there, is bad input, not a late surprise; so is one that is an input (the spec
    files ``inputs`` name, as arguments or bundled names) or the other output."""
    from archcalc.files import check_distinct, check_writable, resolve_spec
    outputs = [p for p in (output, plot) if p is not None]
    if not outputs:
        return
    for path in outputs:
        check_writable(path, force)
    files = []
    for arg in inputs:
        try:
            files.append(resolve_spec(arg))
        except ArchcalcError:       # not a spec file (a variant's name, a typo): load says so
            pass
    check_distinct(outputs, files)


def input_shape(input: Optional[str]):
    """The --input option as a shape, or None for the spec's own (an empty one is refused)."""
    if input is None:
        return None
    from archcalc.errors import Position
    from archcalc.core.spec import parse_input
    return parse_input(input, Position("--input"))


def emit(text: Union[str, bytes], output: Optional[Path], force: bool = False) -> None:
    """Print ``text``, or write it (text or bytes) whole to ``output`` and say so on stderr."""
    if output is None:
        sys.stdout.write(text)
        return
    from archcalc.files import write_atomic
    write_atomic(output, text, force)
    typer.echo(f"wrote {output}", err=True)


def emit_table(tab, format: Format, output: Optional[Path], wide: bool = False,
               force: bool = False) -> None:
    """A report.Table as CSV or Markdown, or as on screen (to a file without colour, whole)."""
    from archcalc.views import table as render
    if format is Format.csv:
        emit(render.to_csv(tab), output, force)
    elif format is Format.markdown:
        emit(render.to_markdown(tab), output, force)
    elif output is not None:
        emit(render.render_plain(tab), output, force)
    else:
        show(tab, wide)


def console():
    """A rich console on stdout; when piped, wide enough that no table is cut."""
    from rich.console import Console
    return Console() if sys.stdout.isatty() else Console(width=250)


RICH_ROWS = 1_000   # rich lays out about 2,500 rows a second; longer tables go plain


def show(tab, wide: bool = False) -> None:
    """A table on screen: rich in a terminal, plain text when piped or very long. A pipe gets
    every column; a terminal narrower than the table a fitted one and a note that says what
    was left out or shortened, unless ``wide``."""
    from archcalc.errors import printable
    from archcalc.views.table import Fitted, fit, render_plain, screen_width, to_rich
    if not sys.stdout.isatty():     # before importing rich's console: a pipe needs none of it
        sys.stdout.write(render_plain(tab))
        return
    from rich.console import Console
    out = console()
    fitted = Fitted(tab, out.width) if wide else fit(tab, out.width)
    tab = fitted.table
    if len(tab.rows) > RICH_ROWS:
        sys.stdout.write(render_plain(tab, color=True, width=out.width))
    else:
        for note in tab.notes:
            out.print(printable(note), style="dim", highlight=False, markup=False)
        # a table wider than the terminal (--wide) is drawn whole; the terminal wraps it
        needs = screen_width(tab)
        wider = out if needs <= out.width else Console(width=needs)
        for part in to_rich(tab):
            wider.print(part)
    if fitted.note():
        out.print(fitted.note(), style="dim", highlight=False, markup=False)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """A table builds many small acyclic objects; Python's cyclic collector, run again and
    again as they pile up, made a 10,000-layer spec cost 1.7× per layer what 1,000 layers do."""
    import gc
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def settings_given(pairs: Optional[List[str]]) -> Dict[str, str]:
    """``--set NAME=VALUE`` options as a mapping (the spec checks names and values)."""
    from archcalc.core.graph import parse_settings
    return parse_settings(pairs or [], "--set")


def load_graph(spec: str, variant: Optional[str], input: Optional[str], heads: bool,
               settings: Optional[List[str]] = None):
    from archcalc.core import graph as layers
    from archcalc.files import resolve_spec
    from archcalc.core.spec import load
    return layers.build(load(resolve_spec(spec)), variant, input_shape(input), heads=heads,
                        settings=settings_given(settings))


def load_report(spec: str, variant: Optional[str], input: Optional[str], heads: bool,
                tolerance: float, settings: Optional[List[str]] = None):
    from archcalc.core import analysis
    built = load_graph(spec, variant, input, heads, settings)
    return analysis.analyze(built, heads=heads, tolerance_pct=tolerance)


@app.command()
def table(
    spec: SpecArg,
    variant: VariantOpt = None,
    set: SetOpt = None,
    input: InputOpt = None,
    detail: Annotated[bool, typer.Option(
        "--detail", help="One line per primitive layer (every branch of every block).")] = False,
    style: Annotated[Style, typer.Option(
        "--style", help="paper (Table 1's layout, with the audit) or keras (model.summary()).")
    ] = Style.paper,
    heads: HeadsOpt = False,
    tolerance: Annotated[float, typer.Option(
        "--tolerance", min=0.0, help="Audit: percent by which a printed figure may differ.")
    ] = 1.0,
    format: FormatOpt = None,
    output: FigureOutputOpt = None,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Also draw params and MACs per row: FILE.png or FILE.svg.")] = None,
    roofline: RooflineOpt = None,
    devices: DevicesOpt = None,
    batch_size: BatchSizeOpt = 1,
    dtype: DtypeOpt = "fp32",
    wide: WideOpt = False,
    force: ForceOpt = False,
    convention: ConventionOpt = "paper",
    rf: Annotated[bool, typer.Option(
        "--rf", help="Also each row's (with --detail each layer's) receptive field: RF, jump "
        "and start, in input pixels.")] = False,
    memory: Annotated[bool, typer.Option(
        "--memory", help="Add each row's output and parameter bytes, and the inference peak, "
        "a training step's (SGD with momentum, Adam) and the model file's size.")] = False,
) -> None:
    """Per-layer output shapes, parameters and multiply-adds; the paper's figures audited.

    With --roofline DEVICE: each row's (layer's) arithmetic intensity, the time the roofline
    model predicts on that device, and whether compute or memory bounds it.

    Examples:
      archcalc table specs/googlenet.yaml --format markdown -o table1.md
      archcalc table googlenet --roofline h100-sxm --batch-size 64 --dtype bf16
    """
    from archcalc.core import memory as memories
    from archcalc.views import report as view
    from archcalc.views.table import to_json
    with user_errors(), gc_paused():
        memories.check_batch(batch_size)        # checked with or without --memory
        memories.dtype_bytes(dtype)
        check_output(output, force, [spec], plot)
        if rf and style is Style.keras:
            raise ArchcalcError("--rf shows in the paper and --detail tables, not in --style "
                                "keras")
        format, output, plot = figure_output(format, output, plot)
        if plot is not None:
            from archcalc.views import plot as plotting
            plotting.check_path(plot, force)
        built = load_graph(spec, variant, input, heads, set)
        result = convention_report(built, heads, tolerance, convention, rf)
        roof = None
        if roofline is not None:
            from archcalc.core import roofline as rl
            roof = rl.roofline(built, roofline_device(roofline, devices), batch_size, dtype,
                               heads)
        if plot is not None:
            write_plot(plotting.report_figure(result), plot, force)
        mem = memories.network_memory(built, batch_size, dtype, heads) if memory else None
        if format is Format.json:
            emit(to_json(view.to_dict(result, roof, mem)), output, force)
        elif format is not None:
            emit_table(view.make_table(result, style.value, detail, roof, mem), format, output,
                       wide, force)


# --- counting conventions: table --convention, and `conventions` (core/conventions.py) ------

ConventionOpt = Annotated[str, typer.Option(
    "--convention", metavar="NAME",
    help="Count MACs as this tool does: paper (archcalc's), fvcore, flopcounter (FLOPs), "
    "thop, ptflops (its pytorch backend), ptflops-aten or torchinfo; see `archcalc "
    "conventions`.")]


def convention_report(built, heads: bool, tolerance: float, convention: str, rf: bool = False):
    """table's report of ``built``, its MACs counted as ``convention``'s tool counts them; with
    ``rf``, the receptive fields too."""
    from archcalc.core import analysis, conventions
    conventions.tool(convention)
    result = analysis.analyze(built, heads=heads, tolerance_pct=tolerance, rf=rf)
    return conventions.apply(result, built, convention, heads)


@app.command("conventions")
def conventions_command(
    spec: SpecArg,
    variant: VariantOpt = None,
    set: SetOpt = None,
    input: InputOpt = None,
    heads: HeadsOpt = False,
    format: FormatOpt = None,
    output: OutputOpt = None,
    wide: WideOpt = False,
    force: ForceOpt = False,
) -> None:
    """What each FLOP counter (fvcore, FlopCounterMode, thop, ptflops, torchinfo) reports for
    the network, op type by op type, beside archcalc's MACs; and why they differ.

    Example: archcalc conventions resnet18-cifar
    """
    from archcalc.core import conventions
    from archcalc.views import conventions as view
    from archcalc.views.table import to_json
    with user_errors(), gc_paused():
        check_output(output, force, [spec])
        format = output_format(format, output)
        result = conventions.reconcile(load_graph(spec, variant, input, heads, set), heads)
        if format is Format.json:
            emit(to_json(result.to_dict()), output, force)
        else:
            emit_table(view.make_table(result), format, output, wide, force)


# What `graph -o`'s extension says: the DOT text itself, or what Graphviz's dot renders of it.
GRAPH_OUTPUTS = (".svg", ".png", ".dot")


@app.command()
def graph(
    spec: SpecArg,
    variant: VariantOpt = None,
    set: SetOpt = None,
    input: InputOpt = None,
    heads: Annotated[bool, typer.Option(
        "--heads", help="Draw the training-only heads where they attach.")] = False,
    detail: Annotated[bool, typer.Option(
        "--detail", help="One node per primitive layer, in a box per row (and per block "
        "call and branch).")] = False,
    show: Annotated[Optional[List[str]], typer.Option(
        "--show", metavar="params,macs,memory",
        help="Add these numbers to each node's label (memory: float32 outputs, batch 1); "
        "every node's tooltip has them all.")] = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write to this file (whole, or not at all): .svg or .png "
        "(laid out by Graphviz's dot), or .dot; without -o the DOT text is printed.")] = None,
    force: ForceOpt = False,
) -> None:
    """The layer graph as a diagram: rows as boxes, shaded by multiply-adds.

    Edges follow the layers' real inputs (from: included); --detail expands every row into
    its layers, with branches side by side and joins drawn as funnels.

    Examples:
      archcalc graph googlenet -o googlenet.svg
      archcalc graph resnet --variant resnet18 --detail --show params,macs -o r18.png
    """
    from archcalc.core import analysis
    from archcalc.views import diagram
    with user_errors(), gc_paused():
        check_output(output, force, [spec])
        suffix = output.suffix.lower() if output is not None else ".dot"
        if suffix not in GRAPH_OUTPUTS:
            said = f"'{suffix}'" if suffix else "a file without an extension"
            raise ArchcalcError(f"-o {output}: cannot tell the format from {said}; give a "
                                f"file ending in {', '.join(GRAPH_OUTPUTS)}")
        shown = diagram.parse_show(show)
        if suffix != ".dot":
            diagram.dot_program()       # before any work: a missing Graphviz is one line
        built = load_graph(spec, variant, input, heads, set)
        text = diagram.dot_source(built, analysis.analyze(built, heads=heads), detail, shown)
        if suffix == ".svg":
            emit(diagram.svg_document(text), output, force)
        elif suffix == ".png":
            emit(diagram.render(text, "png"), output, force)
        else:
            emit(text, output, force)


@app.command()
def report(
    spec: SpecArg,
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="The page to write (whole, or not at all): FILE.html.")],
    variant: VariantOpt = None,
    set: SetOpt = None,
    input: InputOpt = None,
    heads: HeadsOpt = False,
    compare: Annotated[Optional[Tuple[str, str]], typer.Option(
        "--compare", metavar="A B", help="Also compare two variants of the spec (or two "
        "specs) side by side, as `archcalc compare A B` does.")] = None,
    force: ForceOpt = False,
) -> None:
    """One self-contained HTML page: the diagram, the table (sortable, the paper's audit
    marked), the plots, and with --compare a comparison. It opens without a network.

    Example: archcalc report googlenet --compare naive reduced -o googlenet.html
    """
    with user_errors(), gc_paused():
        inputs = [spec] + list(compare or ())
        check_output(output, force, inputs)
        if output.suffix.lower() not in (".html", ".htm"):
            raise ArchcalcError(f"-o {output}: the report is a web page; give a file ending "
                                "in .html")
        from archcalc.core import analysis
        from archcalc.views import diagram, html
        built = load_graph(spec, variant, input, heads, set)
        result = analysis.analyze(built, heads=heads)
        try:
            drawn = diagram.svg(built, result)
        except diagram.NoLayout as why:     # the page without it, saying why
            drawn = html.Missing(str(why))
        comparison = None
        if compare is not None:
            from archcalc.core import compare as comparing
            a, b = compare
            specs = comparing.is_spec(a) and comparing.is_spec(b)
            comparison = comparing.run(a, b, None if specs else spec, variant if specs else None,
                                       input_shape(input), settings_given(set))
        emit(html.page(result, drawn, comparison,
                       html.plots(result, comparison)), output, force)


@app.command()
def specs() -> None:
    """List the specs that ship with archcalc (usable by name, from any folder)."""
    from rich.table import Table as RichTable
    from archcalc.core.ops import fmt_shape
    from archcalc.files import bundled_specs
    from archcalc.core.spec import load
    tab = RichTable("name", "network", "input", "description", box=None, title_justify="left")
    for path in bundled_specs():
        with user_errors():
            s = load(path)
        tab.add_row(path.stem, s.name, fmt_shape(s.input), s.description or s.source)
    console().print(tab)


# --- compare: two variants of a spec, or two specs, side by side ----------------------------

@app.command()
def compare(
    a: Annotated[str, typer.Argument(
        help="A variant of --spec (e.g. naive), or a spec file or bundled name.")],
    b: Annotated[str, typer.Argument(
        help="What A is compared with, of the same kind; ratios are A / B.")],
    spec: Annotated[Optional[str], typer.Option(
        "--spec", help="The spec whose variants A and B are (default: the bundled googlenet).")
    ] = None,
    variant: VariantOpt = None,
    set: SetOpt = None,
    input: InputOpt = None,
    format: FormatOpt = None,
    output: FigureOutputOpt = None,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Also draw weights and MACs per module, side by side: FILE.png or "
        "FILE.svg.")] = None,
    wide: WideOpt = False,
    force: ForceOpt = False,
) -> None:
    """Two variants of a spec, or two specs, side by side: weights, MACs, widths, ratios.

    A and B are specs when each is an existing file, a bundled spec's name
    (see `archcalc specs`) or a path (ends in .yaml or .yml, or has a '/');
    otherwise they are two variants of --spec (default: the bundled googlenet).

    Variants: each module that differs is built in both on the same input,
    the one the spec's default network feeds it; then each whole network,
    every module fed by the one before, so widths compound.
    Specs: rows matched by name; --variant then applies to both.

    Examples:
      archcalc compare naive reduced --plot inception.png
      archcalc compare specs/a.yaml specs/b.yaml -f markdown -o ab.md
    """
    from archcalc.core import compare as comparing
    from archcalc.views import compare as view
    from archcalc.views.table import to_json
    with user_errors():
        check_output(output, force, [a, b, spec or comparing.DEFAULT_SPEC], plot)
        format, output, plot = figure_output(format, output, plot)
        if plot is not None:
            from archcalc.views import plot as plotting
            plotting.check_path(plot, force)
        result = comparing.run(a, b, spec, variant, input_shape(input), settings_given(set))
        if plot is not None:
            write_plot(plotting.comparison_figure(result), plot, force)
        if format is Format.json:
            emit(to_json(view.to_dict(result)), output, force)
        elif format is not None:
            emit_table(view.make_table(result), format, output, wide, force)


# --- sweep: one network over a grid of inputs and settings ---------------------------------

@app.command()
def sweep(
    spec: SpecArg,
    input: Annotated[Optional[str], typer.Option(
        "--input", help="Inputs to sweep: CxS, S a size or a range start:stop:step (both ends "
        "included; H = W), e.g. 3x128:512:32; or CxHxW, each a size or a range (every "
        "combination).")] = None,
    set: Annotated[Optional[List[str]], typer.Option(
        "--set", metavar="NAME=V1,V2,...",
        help="A setting's values to sweep (e.g. width=0.5,0.75,1.0), or one value to fix it; "
        "several --set sweep every combination.")] = None,
    variant: VariantOpt = None,
    heads: HeadsOpt = False,
    format: FormatOpt = None,
    output: FigureOutputOpt = None,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Also draw params, MACs and memory against what is swept: FILE.png or "
        "FILE.svg.")] = None,
    wide: WideOpt = False,
    force: ForceOpt = False,
) -> None:
    """Params, multiply-adds and activation memory at every point of a grid of inputs and
    settings; a point where the spec does not fit says why, and the others go on.

    Memory: activations of a forward pass at batch 1 in float32 (the input and every layer's
    output, all counted as alive at once; parameters not included).

    Examples:
      archcalc sweep googlenet --input 3x128:512:32 --plot googlenet.png
      archcalc sweep mobilenetv2 --set width=0.5,0.75,1.0 -o widths.csv
    """
    from archcalc.core import sweep as sweeping
    from archcalc.core.spec import load
    from archcalc.files import resolve_spec
    from archcalc.views import sweep as view
    from archcalc.views.table import to_json
    with user_errors(), gc_paused():
        check_output(output, force, [spec], plot)
        format, output, plot = figure_output(format, output, plot)
        if plot is not None:
            from archcalc.views import plot as plotting
            plotting.check_path(plot, force)
        inputs = sweeping.parse_inputs(input) if input is not None else None
        grid = sweeping.parse_settings_grid(set or [])
        result = sweeping.run(load(resolve_spec(spec)), variant, inputs, grid, heads)
        if plot is not None:
            write_plot(plotting.sweep_figure(result), plot, force)
        if format is Format.json:
            emit(to_json(view.to_dict(result)), output, force)
        elif format is not None:
            emit_table(view.make_table(result), format, output, wide, force)
        if format in (Format.csv, Format.json) or output is not None or format is None:
            typer.echo(view.summary_line(result), err=True)


def write_plot(figure, path: Path, force: bool = False) -> None:
    """Write a figure whole and say so on stderr, as emit() does for text."""
    from archcalc.views.plot import write
    write(figure, path, force)
    typer.echo(f"wrote {path}", err=True)


# --- import: a spec from a real model -------------------------------------------------------

@app.command("import")
def import_(
    source: Annotated[str, typer.Argument(
        help="package.module:callable (e.g. torchvision.models:resnet50), a .pt2 file "
             "(torch.export.save) or an .onnx file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The spec to write (YAML).")],
    arg: Annotated[Optional[List[str]], typer.Option(
        "--arg", metavar="KEY=VALUE", help="A keyword argument of the callable (a Python "
        "literal, else text); repeat for more.")] = None,
    input: Annotated[Optional[str], typer.Option(
        "--input", help="Input size C×H×W where the source has none (a callable: default "
        "3x224x224).")] = None,
    depth: Annotated[int, typer.Option(
        "--depth", min=1, help="Rows are the first N components of the layer names.")] = 1,
    force: ForceOpt = False,
) -> None:
    """Write a spec from an existing model: its layers under its own names, traced with
    torch.fx (PyTorch), read from a torch.export program's own graph (.pt2) or with the onnx
    package. An op no spec op expresses becomes an
    `opaque` layer (its shape and parameters, no MACs), listed here with its location."""
    with user_errors():
        check_output(output, force)
        pairs = parse_args(arg or [])
        from archcalc.bridge.sources import load
        from archcalc.bridge.writer import to_spec
        model = load(source, pairs, input_shape(input))
        how = "onnx" if source.endswith(".onnx") else \
            "torch.export" if source.endswith(".pt2") else "torch.fx"
        emit(to_spec(model, depth, how), output, force)
    opaque = model.opaque()
    if opaque:
        typer.echo(f"{len(opaque)} opaque layers: " + ", ".join(n.location for n in opaque),
                   err=True)


# --- verify: the analysis against PyTorch and fvcore ---------------------------------------

@app.command()
def verify(
    spec: SpecArg,
    variant: VariantOpt = None,
    set: SetOpt = None,
    input: InputOpt = None,
    heads: HeadsOpt = False,
    device: Annotated[str, typer.Option(
        "--device", help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N.")] = "auto",
    batch_size: Annotated[int, typer.Option(
        "--batch-size", "--batch", min=1,
        help="Images in the forward pass; counts are shown per image.")] = 1,
    threads: ThreadsOpt = None,
    format: FormatOpt = None,
    output: OutputOpt = None,
    wide: WideOpt = False,
    force: ForceOpt = False,
    against: Annotated[Optional[str], typer.Option(
        "--against", metavar="SOURCE",
        help="Instead, compare the spec layer by layer with a real model: "
        "package.module:callable (e.g. torchvision.models:resnet50), a .pt2 or an .onnx "
        "file; --input gives its input size (else the spec's).")] = None,
    arg: Annotated[Optional[List[str]], typer.Option(
        "--arg", metavar="KEY=VALUE",
        help="A keyword argument for --against's callable (a Python literal, else text); "
        "repeat for several.")] = None,
) -> None:
    """Build the PyTorch model and check every layer against PyTorch and fvcore.

    Per layer: output shape, parameters, buffers, and the count, checked against fvcore or
    worked out again from the torch module (the summary says how many of each); in total:
    fvcore's and FlopCounterMode's counts. Exit 0 when all agree, 1 when anything disagrees.

    With --against SOURCE, the spec is compared instead with a real model, matched by layer
    name, else by execution order: output shapes, parameters, buffers, and MACs (fvcore's on
    the model); the first divergence is named with its cause.

    Examples:
      archcalc verify specs/googlenet.yaml --variant naive --heads --device cpu
      archcalc verify resnet --against torchvision.models:resnet50
    """
    if against is not None or arg:
        verify_against(spec, variant, set, input, heads, against, arg or [], format, output,
                       wide, force)
        return
    import time
    start = time.perf_counter()
    with user_errors():
        check_output(output, force, [spec])
        format = output_format(format, output)
        from archcalc.pytorch import verify as checks     # imports torch and fvcore
        from archcalc.views import verify as view
        result = checks.verify(spec, variant, input, heads=heads, device=device,
                               batch=batch_size, threads=threads, settings=settings_given(set))
        if format is Format.json:
            from archcalc.views.table import to_json
            emit(to_json(result.to_dict()), output, force)
        else:
            emit_table(view.to_table(result), format, output, wide, force)
    line = view.summary_line(result, time.perf_counter() - start)
    on_screen = format is Format.table and output is None
    typer.secho(line, err=not on_screen, fg="green" if result.ok else "red", bold=True)
    raise typer.Exit(0 if result.ok else 1)


def verify_against(spec: str, variant: Optional[str], set: Optional[List[str]],
                   input: Optional[str], heads: bool, against: Optional[str], arg: List[str],
                   format: Optional[Format], output: Optional[Path], wide: bool,
                   force: bool) -> None:
    """`verify --against`: the spec against a real model (archcalc.bridge.diff)."""
    with user_errors():
        if against is None:
            raise ArchcalcError("--arg gives the arguments of --against's callable; give "
                                "--against SOURCE too")
        if heads:
            raise ArchcalcError("--against compares the main network; drop --heads")
        check_output(output, force, [spec])
        format = output_format(format, output)
        args = parse_args(arg)
        built = load_graph(spec, variant, input, False, set)
        from archcalc.bridge import diff, measure
        from archcalc.views import against as view
        real = measure.load(against, args, tuple(built.input_shape))
        result = diff.compare(diff.graph_to_ir(built), real)
        if format is Format.json:
            from archcalc.views.table import to_json
            emit(to_json(result.to_dict()), output, force)
        else:
            emit_table(view.to_table(result), format, output, wide, force)
    on_screen = format is Format.table and output is None
    typer.secho(view.summary_line(result), err=not on_screen,
                fg="green" if result.ok else "red", bold=True)
    raise typer.Exit(0 if result.ok else 1)


def parse_args(pairs: List[str]) -> Dict[str, str]:
    """``--arg KEY=VALUE`` texts as a mapping (the source reads the values)."""
    out: Dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ArchcalcError(f"--arg takes KEY=VALUE (e.g. num_classes=10), got {pair!r}")
        out[key.strip()] = value.strip()
    return out


# --- profile: each layer measured beside the roofline's prediction ------------------------

@app.command()
def profile(
    spec: SpecArg,
    variant: VariantOpt = None,
    set: SetOpt = None,
    input: InputOpt = None,
    device: Annotated[str, typer.Option(
        "--device", help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N.")] = "auto",
    batch_size: BatchSizeOpt = 1,
    backward: Annotated[bool, typer.Option(
        "--backward", help="Also time each layer's backward pass (the model in training "
        "mode).")] = False,
    dtype: DtypeOpt = "fp32",
    repeat: Annotated[int, typer.Option(
        "--repeat", help="Timed runs of each layer (after 2 warm-up runs); the "
        "median is shown.")] = 5,
    devices: DevicesOpt = None,
    threads: ThreadsOpt = None,
    format: FormatOpt = None,
    output: FigureOutputOpt = None,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Also draw each layer's time, predicted against measured: FILE.png "
        "or FILE.svg.")] = None,
    wide: WideOpt = False,
    force: ForceOpt = False,
) -> None:
    """Time every layer of the spec's PyTorch model and set it beside the roofline's
    prediction for the device (the `cpu` profile, measured here; on CUDA the profile of the
    GPU torch reports), with the fraction of the device's peak each layer reached.

    Examples:
      archcalc profile googlenet --device cpu
      archcalc profile resnet --device cuda --batch-size 64 --dtype bf16 --backward --plot r.png
    """
    with user_errors():
        check_output(output, force, [spec], plot)
        format, output, plot = figure_output(format, output, plot)
        if plot is not None:
            from archcalc.views import plot as plotting
            plotting.check_path(plot, force)
        from archcalc.core import roofline as rl
        from archcalc.core.memory import check_batch, dtype_bytes
        check_batch(batch_size)
        dtype_bytes(dtype)
        entries = rl.load_devices(devices)
        from archcalc.pytorch import profile as profiling     # imports torch
        from archcalc.views import roofline as view
        result = profiling.profile(spec, device, batch_size, dtype, backward, repeat, variant,
                                   input, settings_given(set), entries, threads)
        if plot is not None:
            write_plot(plotting.profile_figure(result), plot, force)
        if format is Format.json:
            from archcalc.views.table import to_json
            emit(to_json(result.to_dict()), output, force)
        elif format is not None:
            emit_table(view.profile_table(result), format, output, wide, force)


# --- train: the spec's model on real data, briefly, to show it learns ----------------------

class DatasetName(str, Enum):     # datasets.DATASET_NAMES, which the CLI cannot import cheaply
    cifar10 = "cifar10"
    fashion_mnist = "fashion-mnist"
    synthetic = "synthetic"


class Optimizer(str, Enum):
    sgd = "sgd"
    adam = "adam"


class Schedule(str, Enum):
    onecycle = "onecycle"
    cosine = "cosine"
    none = "none"


def _shown(value) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else \
        f"{value:g}" if isinstance(value, float) else str(value)


def train_default(name: str) -> str:
    """TrainConfig's default for an option of `train`, and --quick's where it differs, as
    --help shows them (options.py is the one source; it does not import torch)."""
    from archcalc.training import options
    text = _shown(options.default(name))
    if name in options.QUICK_DEFAULTS:
        text += f"; {_shown(options.QUICK_DEFAULTS[name])} with --quick"
    if name == "batch_size":
        text += f"; {options.CAPPED_BATCH} when --quick caps a heavy spec"
    return text


@app.command()
def train(
    dataset: Annotated[DatasetName, typer.Argument(
        help="cifar10, fashion-mnist, or synthetic (a built-in learnable set, for demos).")],
    spec: Annotated[Optional[str], typer.Option(
        "--spec", help="The network (default: cifar-cnn for CIFAR-10, fashion-cnn for "
        "Fashion-MNIST).")] = None,
    variant: VariantOpt = None,
    set: SetOpt = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="One bounded pass that ends with a verdict; heavier specs get fewer "
        "steps.")] = False,
    epochs: Annotated[Optional[int], typer.Option(
        "--epochs", min=1, show_default=train_default("epochs"))] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", min=1, show_default=train_default("batch_size"))] = None,
    optimizer: Annotated[Optional[Optimizer], typer.Option(
        "--optimizer", show_default=train_default("optimizer"))] = None,
    lr: Annotated[Optional[float], typer.Option(
        "--lr", help="Learning rate; the peak of a schedule.",
        show_default=train_default("lr"))] = None,
    momentum: Annotated[Optional[float], typer.Option(
        "--momentum", help="SGD momentum.", show_default=train_default("momentum"))] = None,
    nesterov: Annotated[Optional[bool], typer.Option(
        "--nesterov/--no-nesterov", help="SGD with Nesterov momentum.",
        show_default=train_default("nesterov"))] = None,
    weight_decay: Annotated[Optional[float], typer.Option(
        "--weight-decay", show_default=train_default("weight_decay"))] = None,
    schedule: Annotated[Optional[Schedule], typer.Option(
        "--schedule", help="Learning-rate schedule.",
        show_default=train_default("schedule"))] = None,
    label_smoothing: Annotated[Optional[float], typer.Option(
        "--label-smoothing", show_default=train_default("label_smoothing"))] = None,
    augment: Annotated[Optional[bool], typer.Option(
        "--augment/--no-augment", help="Random crops (4-pixel padding) and horizontal flips.",
        show_default=train_default("augment"))] = None,
    seed: Annotated[Optional[int], typer.Option(
        "--seed", help="Makes a CPU run repeat exactly.", show_default=train_default("seed"))
    ] = None,
    device: Annotated[Optional[str], typer.Option(
        "--device", help="auto (CUDA when available), cpu or cuda.",
        show_default=train_default("device"))] = None,
    threads: ThreadsOpt = None,
    compile: Annotated[Optional[bool], typer.Option(
        "--compile", help="torch.compile the model (worth it on CUDA).",
        show_default=train_default("compile"))] = None,
    val_split: Annotated[Optional[int], typer.Option(
        "--val-split", min=0, help="Training images held out for validation, a count: every "
        "epoch and the verdict are scored on them; the test set is evaluated once, at the end. "
        "0: none (the verdict then uses the test set). Seeded by --seed.",
        show_default="a tenth of the training images: 5,000 for cifar10")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(
        "--data-dir", help="Where the data set's files are (else $ARCHCALC_DATA, else the "
        "user cache folder).")] = None,
    download: Annotated[bool, typer.Option(
        "--download", help="Fetch CIFAR-10 over HTTPS and check its published MD5.")] = False,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="The run's folder (default: a new one under runs/).")] = None,
    resume: Annotated[Optional[Path], typer.Option(
        "--resume", help="Continue the interrupted run in this folder, exactly.")] = None,
    log_every: Annotated[float, typer.Option(
        "--log-every", min=0.0, help="When the output is not a terminal (a log), a progress "
        "line this many seconds apart, and a line per epoch.")] = 30.0,
    sync_bn: Annotated[Optional[bool], typer.Option(
        "--sync-bn", help="Under torchrun on CUDA: BatchNorm statistics over the global batch "
        "(SyncBatchNorm).", show_default=train_default("sync_bn"))] = None,
    dist_timeout: Annotated[float, typer.Option(
        "--dist-timeout", min=1.0, help="Under torchrun: seconds to wait for the other "
        "processes, to form the group and in any one exchange.")] = 600.0,
    nproc: Annotated[Optional[int], typer.Option(
        "--nproc", min=1, help="Start this many data-parallel processes on this machine "
        "(runs torchrun --nproc_per_node N -m archcalc train …).")] = None,
) -> None:
    """Train the network of a spec briefly on real data and say whether it learns.

    Example: archcalc train --quick cifar10

    Data-parallel: torchrun --nproc_per_node 2 -m archcalc train cifar10 (the batch size
    is then per process; the run says the global batch).
    """
    from archcalc.training import distributed, options
    chosen = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "momentum": momentum,
              "nesterov": nesterov, "weight_decay": weight_decay, "label_smoothing": label_smoothing,
              "augment": augment, "seed": seed, "sync_bn": sync_bn, "val_split": val_split,
              "optimizer": optimizer.value if optimizer else None,
              "schedule": schedule.value if schedule else None}
    device = device or options.default("device")
    compile = options.default("compile") if compile is None else compile
    with user_errors():
        cluster = distributed.from_env()
        if nproc is not None:
            raise typer.Exit(_torchrun(nproc, cluster))
        if cluster and resume is not None:
            from archcalc.training.runs import check_resume_processes
            check_resume_processes(resume, cluster.world_size)
    with user_errors(), _stop_signals_restored(), _process_group(cluster, device, dist_timeout) as peers:
        from archcalc.training import runs
        if resume is not None:
            given = [k for k, v in chosen.items() if v is not None]
            if given or spec or variant or set or quick or out:
                raise ArchcalcError(f"--resume continues a run with its own settings; drop "
                                    f"{', '.join('--' + k.replace('_', '-') for k in given) or 'the other options'}")
            job = runs.resume_job(resume, dataset.value, device, compile, data_dir, threads, peers)
        else:
            job = runs.new_job(dataset.value, spec, variant, quick, chosen, device, compile,
                               data_dir, download, out, threads, _download_lines(),
                               settings_given(set), peers)
        _train_on_screen(job, log_every)


@contextlib.contextmanager
def _process_group(cluster, device: str, timeout: float):
    """Under torchrun: this process's Peers, the group formed (and left at the end); else None."""
    if cluster is None:
        yield None
        return
    from archcalc.pytorch.devices import resolve_device
    from archcalc.training import distributed
    where = distributed.join(cluster, resolve_device(device)[0].type, timeout)
    try:
        yield distributed.Peers(cluster, where)
    finally:
        distributed.leave()


def _torchrun(nproc: int, cluster) -> int:
    """--nproc N: this same command under ``torchrun --nproc_per_node N``; its exit code."""
    import signal
    import subprocess
    if cluster is not None:
        raise ArchcalcError("--nproc starts torchrun, and this already runs under it; drop --nproc")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if nproc > (cpus or 1):
        # each process is a whole PyTorch (hundreds of MB) and wants a core of its own: --nproc
        # 100000 would start a process storm, not a faster run
        raise ArchcalcError(f"{nproc:,} processes asked for; this machine has {cpus} CPU "
                            f"core(s) for this one, and each training process needs one; at most "
                            f"{cpus} here (more machines: torchrun --nnodes)", Position("--nproc"))
    args = sys.argv[1:]
    if "train" not in args:
        raise ArchcalcError("--nproc works from the command line (archcalc train --nproc N …)")
    rest, skip = [], False
    for arg in args[args.index("train") + 1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "-m", "archcalc", "train", *rest]
    # Ctrl-C reaches torchrun too (the terminal signals both); it stops the workers
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.run(command).returncode
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _stop_signals_restored() -> Iterator[None]:
    """SIGTERM stops `train` as Ctrl-C does (a KeyboardInterrupt, so a run being set up removes
    what it made; the engine then defers both to a step boundary). Both handlers are as they
    were afterwards, for callers in the same process; except after an interrupted run, which
    leaves both ignored (_train_on_screen) until the process ends: a second Ctrl-C on the way
    out would otherwise end in a traceback."""
    import signal
    from archcalc.training.runs import raise_interrupt
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    if saved[signal.SIGTERM] is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    except typer.Exit as stop:
        if stop.exit_code not in INTERRUPTED_CODES:
            _restore(saved)
        raise
    except BaseException:
        _restore(saved)
        raise
    _restore(saved)


INTERRUPTED_CODES = (130, 143)  # 128 + SIGINT, 128 + SIGTERM: TrainingInterrupted.exit_code


def _restore(handlers) -> None:
    import signal
    for number, handler in handlers.items():
        signal.signal(number, handler)


def _download_lines(every: float = 2.0):
    """A --download's progress as a line on stderr at most every ``every`` seconds, and at
    the end: a download never runs in silence."""
    import time
    last = [0.0]

    def on_progress(done: int, total: Optional[int]) -> None:
        now = time.monotonic()
        if now - last[0] < every and done != total:
            return
        last[0] = now
        of = f" of {total / 1e6:,.1f}" if total else ""
        typer.echo(f"downloading CIFAR-10: {done / 1e6:,.1f}{of} MB", err=True)
    return on_progress


def _train_on_screen(job, log_every: float) -> None:
    """Run ``job`` showing its progress (a bar in a terminal, a line every ``log_every``
    seconds in a log), a line per epoch and the result at the end."""
    from archcalc.training.engine import TrainingInterrupted
    from archcalc.views import train as view
    if not job.leader:      # under torchrun rank 0 speaks for the run; the others only fail aloud
        try:
            job.run()
        except TrainingInterrupted as stop:
            raise typer.Exit(stop.exit_code)
        raise typer.Exit(0)
    out = console()
    out.print(view.header(job), highlight=False, markup=False)     # a spec's name is text
    for note in [view.quick_note(job.plan), *job.notes]:
        if note:
            out.print(note, style="yellow", highlight=False)
    with _progress(out, log_every) as (on_step, say):
        try:
            result = job.run(on_step, lambda record: say(view.epoch_line(record)))
        except TrainingInterrupted as stop:
            import signal       # a second Ctrl-C after the checkpoint changes nothing now
            for number in (signal.SIGINT, signal.SIGTERM):
                signal.signal(number, signal.SIG_IGN)
            typer.echo(view.interrupted_line(job.dataset.name, stop.out_dir), err=True)
            raise typer.Exit(stop.exit_code)
    verdict = job.learning_verdict(result)
    for line in view.result_lines(job, result, verdict):
        out.print(line, highlight=False, markup=False,
                  style="bold" if line.startswith(("✓", "✗")) else "")
    raise typer.Exit(0 if verdict is None or verdict.learned else 1)


@contextlib.contextmanager
def _progress(out, log_every: float):
    """(on_step, say): in a terminal a transient rich progress bar, above which lines are
    printed; elsewhere plain progress lines every ``log_every`` seconds, flushed at once."""
    from archcalc.views import train as view
    if not sys.stdout.isatty():
        lines = view.ProgressLines(log_every)

        def say(text: str) -> None:
            out.print(text, highlight=False)
            out.file.flush()

        def on_step(info) -> None:
            line = lines(info)
            if line is not None:
                say(line)
        yield on_step, say
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeRemainingColumn)
    columns = (TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[stats]}"), TimeRemainingColumn())
    with Progress(*columns, console=out, transient=True) as progress:
        task = progress.add_task("train", total=None, epoch="", stats="")

        def on_step(info) -> None:
            progress.update(task, completed=info.step, total=info.steps,
                            epoch=f"{info.epoch}/{info.epochs}",
                            stats=f"loss {info.loss:.3f} · acc {info.accuracy:.1%} · "
                                  f"{info.images_per_second:,.0f} img/s")
        yield on_step, lambda text: progress.console.print(text, highlight=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"archcalc {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False
         ) -> None:
    """archcalc: shapes, parameters and multiply-adds of CNNs written as YAML specs."""
