"""Tables fit the terminal: numbers shortened, then optional columns left out, never a number
split across lines. The fitting is a pure function (unit tests); the command runs under a real
pseudo-terminal of a set size (pty tests)."""
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from archcalc.views.table import Column, Table, fit, render_plain, screen_width

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


# --- the fitting function ------------------------------------------------------------------

def sample() -> Table:
    columns = [Column("name"), Column("patch/stride", optional=2), Column("params", "int"),
               Column("MACs", "int"), Column("block args", optional=1)]
    rows = [["conv1", "7×7/2", 9_472, 118_013_952, None],
            ["3a", None, 163_696, 128_446_464, "64 96 128 16 32 32"]]
    return Table("t", [], columns, rows, ["total", None, 6_998_552, 1_582_671_872, None])


def widths_of(text_rows):
    return max(len(line) for line in text_rows.splitlines())


def test_a_table_that_fits_is_left_whole():
    t = sample()
    # name 5, patch/stride 12, params 9, MACs 13, block args 18: 57 + 3 × 5 + 1
    assert screen_width(t) == 73
    fitted = fit(t, 73)
    assert fitted.table is t and fitted.note() is None


def test_numbers_are_shortened_before_any_column_goes():
    # shortened: params "7.00M" (6 for the header), MACs "1.58G" (4 for the header "MACs"
    # is narrower than "118M"): 5 + 12 + 6 + 5 + 18 + 16 = 62
    fitted = fit(sample(), 62)
    assert [c.header for c in fitted.table.columns] == [c.header for c in sample().columns]
    plain = render_plain(fitted.table)
    assert "7.00M" in plain and "1.58G" in plain and "118M" in plain and "164K" in plain
    assert "6,998,552" not in plain
    assert fitted.note() == ("narrow terminal (62 columns): numbers shortened (K = 10^3, "
                             "M = 10^6, G = 10^9); --wide shows all")


def test_optional_columns_go_in_their_order_then_stop():
    fitted = fit(sample(), 61)          # one short: block args (optional 1) goes first
    assert [c.header for c in fitted.table.columns] == ["name", "patch/stride", "params", "MACs"]
    assert fitted.left_out == ["block args"]
    assert fitted.note().startswith("narrow terminal (61 columns): left out block args; "
                                    "numbers shortened")
    assert widths_of(render_plain(fitted.table)) <= 61
    fitted = fit(sample(), 30)
    assert fitted.left_out == ["block args", "patch/stride"]
    assert [row[0] for row in fitted.table.rows] == ["conv1", "3a"]
    assert widths_of(render_plain(fitted.table)) <= 30


def test_narrower_than_anything_keeps_what_cannot_go():
    fitted = fit(sample(), 10)
    assert [c.header for c in fitted.table.columns] == ["name", "params", "MACs"]
    assert screen_width(fitted.table) > 10       # the terminal wraps; no cell is cut


def test_the_original_table_is_not_changed():
    t = sample()
    fit(t, 20)
    assert len(t.columns) == 5 and not t.short and "6,998,552" in render_plain(t)


def test_a_join_shows_all_its_inputs_or_their_count():
    t = Table("t", [], [Column("layer"), Column("input", "shapes")],
              [["3a", ((64, 28, 28), (128, 28, 28), (32, 28, 28), (32, 28, 28))],
               ["conv", ((3, 224, 224),)]])
    assert "28×28×64 + 28×28×128 + 28×28×32 + 28×28×32" in render_plain(t)
    fitted = fit(t, 20)
    assert "4 inputs" in render_plain(fitted.table) and "224×224×3" in render_plain(fitted.table)
    assert "a join's inputs counted" in fitted.note()


def test_plain_text_wraps_notes_between_words_at_a_width():
    t = Table("a title", ["one two three four five six seven eight nine ten " * 3], [Column("x")],
              [["y"]], summary=["1,582,671,872 MACs and 6,998,552 params in total " * 2])
    out = render_plain(t, width=30)
    assert widths_of(out) <= 30
    assert out.count("1,582,671,872") == 2 and out.count("6,998,552") == 2


# --- the commands under a real terminal ----------------------------------------------------

def in_terminal(args, columns, rows=60, timeout=20.0):
    """Run ``python -m archcalc ARGS`` on a pseudo-terminal ``columns`` wide; its output with
    the ANSI codes taken out, and its exit code."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "archcalc", *args], stdin=child,
                            stdout=child, stderr=child, env=env, close_fds=True)
    os.close(child)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"archcalc {' '.join(args)} ran over {timeout} s")
            ready, _, _ = select.select([main], [], [], 0.2)
            if ready:
                try:
                    data = os.read(main, 65536)
                except OSError:         # the child closed its side (Linux: EIO)
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(main)
    code = proc.wait(timeout=5)
    text = ANSI.sub("", b"".join(chunks).decode("utf-8")).replace("\r\n", "\n")
    return text, code


# Figures a reader looks for. table: GoogLeNet's params and MACs (README; Table 1's 6.8M
# weights), and inception (3a)'s params: weights 192·64 + 192·96 + 96·128·9 + 192·16
# + 16·32·25 + 192·32 = 163,328 plus 64 + 96 + 128 + 16 + 32 + 32 = 368 biases. compare: the
# networks' weights (naive, reduced) and (3a)'s naive weights, 192·64 + 192·128·9 + 192·32·25.
# stages, sweep: torchvision's published MobileNetV2 counts (3,504,872 params and 0.301 G MACs
# at width 1.0, 1,968,680 params at 0.5), tests/zoo_reference.py.
NUMBERS = {"table": ["6,998,552", "1,582,671,872", "163,696"],
           "compare": ["97,519,936", "6,990,272", "387,072"],
           "stages": ["3,504,872", "300,774,272"],
           "sweep": ["1,968,680", "3,504,872"]}
COMMANDS = {"table": ["table", "googlenet"], "compare": ["compare", "naive", "reduced"],
            "stages": ["table", "mobilenetv2"],
            "sweep": ["sweep", "mobilenetv2", "--set", "width=0.5,1.0"]}
TOKEN = re.compile(r"\d[\d,.]*[KMG]?")


def shortened(number: str) -> str:
    """The SI form a fitted table prints (independent arithmetic, 3 significant digits)."""
    value = int(number.replace(",", ""))
    for power, letter in ((9, "G"), (6, "M"), (3, "K")):
        if value >= 10 ** power:
            return f"{value / 10 ** power:#.3g}".rstrip(".") + letter
    return str(value)


@pytest.fixture(scope="module")
def screens():
    return {(name, cols): in_terminal(args, cols)
            for name, args in COMMANDS.items() for cols in (80, 100, 160)}


@pytest.fixture(scope="module")
def piped():
    """Every column, every number whole: what a pipe gets."""
    return {name: subprocess.run([sys.executable, "-m", "archcalc", *args], capture_output=True,
                                 text=True, timeout=20, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                 check=True).stdout
            for name, args in COMMANDS.items()}


@pytest.mark.parametrize("name", list(COMMANDS))
@pytest.mark.parametrize("columns", [80, 100, 160])
def test_no_line_is_wider_than_the_terminal(screens, name, columns):
    text, code = screens[name, columns]
    assert code == 0, text
    too_wide = [line for line in text.splitlines() if len(line) > columns]
    assert too_wide == []


@pytest.mark.parametrize("name", list(COMMANDS))
@pytest.mark.parametrize("columns", [80, 100, 160])
def test_every_number_is_whole_or_shortened_never_split(screens, piped, name, columns):
    text, _ = screens[name, columns]
    for number in NUMBERS[name]:
        assert number in piped[name]
        assert number in text or re.search(rf"(?<![\d.]){re.escape(shortened(number))}", text), \
            number
    # every number on screen is one the pipe printed whole, or its short form: a number cut
    # across two lines would leave pieces that are neither
    table = text.split("narrow terminal (")[0]
    whole = set(TOKEN.findall(piped[name]))
    allowed = whole | {shortened(t) for t in whole if re.fullmatch(r"\d[\d,]*", t)}
    assert set(TOKEN.findall(table)) - allowed == set()


def test_a_narrow_terminal_says_what_it_left_out(screens):
    text, _ = screens["table", 80]
    note = " ".join(text.split("\nnarrow terminal (80 columns): ")[1].split())
    assert note == ("left out block args, params ≈, ops ≈; numbers shortened (K = 10^3, "
                    "M = 10^6, G = 10^9); --wide shows all")
    assert "narrow terminal" not in screens["table", 160][0]


def test_a_stages_long_type_is_cut_and_the_note_says_so(screens):
    """MobileNetV2's rows are stages: 'linear_bottleneck ×1 + inverted_residual ×3' alone
    is 44 columns; at 80 the type is cut with … and the note says so, at 160 it is whole."""
    note = " ".join(screens["stages", 80][0].split("narrow terminal (80 columns): ")[1].split())
    assert "long types cut (…)" in note
    assert "linear_bottleneck ×1 + inverted_residual ×3" in screens["stages", 160][0]


def test_wide_shows_every_column_in_a_narrow_terminal():
    text, code = in_terminal(["table", "googlenet", "--wide"], 80)
    assert code == 0 and "block args" in text and "narrow terminal" not in text
    # rich draws the table whole; the terminal wraps it, so no cell is cut short by rich
    joined = text.replace("\n", "")
    assert "6,998,552" in joined and "1,582,671,872" in joined
