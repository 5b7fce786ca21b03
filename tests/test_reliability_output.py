"""Nothing a user has is lost through -o, and nothing a user wrote reaches a terminal raw.

A corpus of cases (issue 9, "Data lost" 1-2, the PermissionError traceback, terminal escapes).
Each sets up its files, runs the command as a user types it, and checks the exit code, the one
line on stderr, and that every file there before is still there, byte for byte, mode for mode.
Commands that could block (pipes, terminals) run in a subprocess with a time limit, so a hang
fails the test instead of holding the suite.
"""
import csv
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archcalc import files
from archcalc.cli import app

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "archcalc" / "specs"
TIMEOUT = 60
runner = CliRunner()

SMALL = "input: [3, 8, 8]\nlayers:\n  c1: [conv: {out: 4, kernel: 3}]\n  flat: flatten\n"


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def proc(*args, **kwargs):
    """archcalc in a subprocess of its own, with a time limit."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "archcalc", *map(str, args)], env=env,
                          timeout=TIMEOUT, **kwargs)


def snapshot(folder: Path) -> dict:
    """Every entry of ``folder``: its kind, link target, mode and bytes."""
    out = {}
    for p in sorted(folder.iterdir()):
        st = p.lstat()
        entry = {"mode": st.st_mode}
        if p.is_symlink():
            entry["link"] = os.readlink(p)
        elif stat.S_ISREG(st.st_mode):
            entry["bytes"] = p.read_bytes()
        out[p.name] = entry
    return out


def one_line_error(result, *words):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SMALL)
    return path


# --- 1. -o replaces whatever is at the path -------------------------------------------------

def test_a_link_is_written_through_and_stays_a_link(spec, tmp_path):
    real = tmp_path / "real.md"
    real.write_text("old\n")
    real.chmod(0o640)
    (tmp_path / "link.md").symlink_to("real.md")
    result = cli("table", spec, "-o", tmp_path / "link.md")
    assert result.exit_code == 0, result.output
    assert os.readlink(tmp_path / "link.md") == "real.md"
    assert "| c1 " in real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_a_dangling_link_creates_its_target(spec, tmp_path):
    (tmp_path / "link.csv").symlink_to("made.csv")
    assert cli("table", spec, "-o", tmp_path / "link.csv").exit_code == 0
    assert (tmp_path / "link.csv").is_symlink()
    assert (tmp_path / "made.csv").read_text().startswith("name,")


def test_a_link_into_another_folder_writes_there(spec, tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "t.json").write_text("{}")
    (tmp_path / "t.json").symlink_to(tmp_path / "other" / "t.json")
    assert cli("table", spec, "-o", tmp_path / "t.json").exit_code == 0
    assert json.loads((tmp_path / "other" / "t.json").read_text())["rows"]
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["t.json"]  # no temp left


# /dev/null and /dev/stdout themselves are never the targets here: run as root against a
# regression, that would replace the machine's own (it did, once, while these were written).
# A null device made in tmp_path, and a link like /dev/stdout's, take the same paths.

@pytest.fixture
def null(tmp_path):
    """A character device like /dev/null (1, 3), in tmp_path; skipped where mknod is not
    allowed."""
    path = tmp_path / "null"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except OSError as exc:
        pytest.skip(f"cannot make a device node: {exc.strerror}")
    return path


@pytest.fixture
def stdout_link(tmp_path):
    """What /dev/stdout is: a link to the descriptor under /proc."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("no /proc")
    path = tmp_path / "stdout"
    path.symlink_to(os.readlink("/dev/stdout") if os.path.islink("/dev/stdout")
                    else "/proc/self/fd/1")
    return path


def test_a_character_device_stays_a_device(null, spec):
    before = null.lstat()
    result = cli("table", spec, "-o", null, "-f", "csv")
    assert result.exit_code == 0, result.output
    after = null.lstat()
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert after.st_ino == before.st_ino


def test_dev_stdout_to_a_pipe(spec, stdout_link):
    r = proc("table", spec, "-o", stdout_link, "-f", "csv", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert list(csv.reader(io.StringIO(r.stdout)))[1][0] == "c1"
    assert stdout_link.is_symlink()


def test_dev_stdout_to_a_file_writes_into_that_file(spec, tmp_path, stdout_link):
    out = tmp_path / "out.csv"
    with open(out, "w") as f:
        r = proc("table", spec, "-o", stdout_link, "-f", "csv", stdout=f,
                 stderr=subprocess.PIPE, text=True)
    assert r.returncode == 0, r.stderr
    assert out.read_text().count("name,") == 1 and "c1," in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "s.yaml", "stdout"]
    assert stdout_link.is_symlink()


def test_a_pipe_nobody_reads_is_refused_at_once(spec, tmp_path):
    fifo = tmp_path / "p.md"
    os.mkfifo(fifo)
    r = proc("table", spec, "-o", fifo, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"{fifo}: cannot write the file: it is a named pipe that nothing reads; start the "
        "reader first"]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_pipe_with_a_reader_gets_the_table(spec, tmp_path):
    fifo = tmp_path / "p.md"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    # the reader may not have opened the pipe yet; archcalc then refuses, and is run again
    for _ in range(50):
        r = proc("table", spec, "-o", fifo, capture_output=True, text=True)
        if r.returncode == 0:
            break
        assert "nothing reads" in r.stderr
    reader.join(TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert b"| c1 " in got[0]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_socket_is_refused(spec, tmp_path):
    path = tmp_path / "sock.md"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        before = snapshot(tmp_path)
        one_line_error(cli("table", spec, "-o", path), "it is a socket")
        assert snapshot(tmp_path) == before
    finally:
        server.close()


@pytest.mark.parametrize("command", [
    ["table", "{spec}"],
    ["compare", "naive", "reduced"],
    ["verify", "{spec}"],           # refused before torch is imported
])
def test_a_read_only_file_is_kept(spec, tmp_path, command):
    out = tmp_path / "ro.md"
    out.write_text("mine\n")
    out.chmod(0o444)
    before = snapshot(tmp_path)
    args = [a.format(spec=spec) for a in command]
    line = one_line_error(cli(*args, "-o", out), "read-only (mode 0444)", "--force")
    assert line.startswith(f"{out}: ")
    assert snapshot(tmp_path) == before


def test_force_replaces_a_read_only_file_and_keeps_its_mode(spec, tmp_path):
    out = tmp_path / "ro.md"
    out.write_text("mine\n")
    out.chmod(0o444)
    assert cli("table", spec, "-o", out, "--force").exit_code == 0
    assert "| c1 " in out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o444


def test_a_read_only_plot_is_kept_unless_forced(spec, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "p.png"
    png.write_bytes(b"not yet")
    png.chmod(0o400)
    before = snapshot(tmp_path)
    one_line_error(cli("table", spec, "--plot", png), "read-only (mode 0400)")
    assert snapshot(tmp_path) == before
    assert cli("table", spec, "--plot", png, "--force").exit_code == 0
    assert png.read_bytes().startswith(b"\x89PNG")
    assert stat.S_IMODE(png.stat().st_mode) == 0o400


def test_a_replaced_file_keeps_its_mode(spec, tmp_path):
    out = tmp_path / "t.csv"
    out.write_text("old\n")
    out.chmod(0o600)
    assert cli("table", spec, "-o", out).exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and out.read_text().startswith("name,")


def test_a_new_file_gets_the_usual_mode(spec, tmp_path):
    out = tmp_path / "new.csv"
    mask = os.umask(0o022)
    try:
        assert cli("table", spec, "-o", out).exit_code == 0
    finally:
        os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


# --- 2. an output that is an input, or another output ---------------------------------------

def test_the_spec_as_its_own_output(spec, tmp_path):
    before = snapshot(tmp_path)
    one_line_error(cli("table", spec, "-o", spec, "-f", "csv"),
                   f"{spec}: cannot write the file: it is the input {spec}")
    assert snapshot(tmp_path) == before


def test_the_spec_under_another_spelling(spec, tmp_path):
    (tmp_path / "sub").mkdir()
    other = tmp_path / "sub" / ".." / "s.yaml"
    before = snapshot(tmp_path / "sub"), snapshot(tmp_path)
    one_line_error(cli("table", spec, "-o", other, "-f", "csv"), "it is the input")
    assert (snapshot(tmp_path / "sub"), snapshot(tmp_path)) == before


def test_a_link_to_the_spec(spec, tmp_path):
    (tmp_path / "t.md").symlink_to("s.yaml")
    before = snapshot(tmp_path)
    one_line_error(cli("table", spec, "-o", tmp_path / "t.md"), "it is the input")
    assert snapshot(tmp_path) == before


def test_a_hard_link_to_the_spec(spec, tmp_path):
    os.link(spec, tmp_path / "t.md")
    before = snapshot(tmp_path)
    one_line_error(cli("table", spec, "-o", tmp_path / "t.md"), "it is the input")
    assert snapshot(tmp_path) == before


def test_a_bundled_spec_by_name(tmp_path, monkeypatch):
    bundled = tmp_path / "specs"
    bundled.mkdir()
    shutil.copy(BUNDLED / "cifar-cnn.yaml", bundled)
    monkeypatch.setattr(files, "BUNDLED", bundled)   # a copy: a failure must not hit the repo
    before = snapshot(bundled)
    one_line_error(cli("table", "cifar-cnn", "-o", bundled / "cifar-cnn.yaml", "-f", "csv"),
                   "it is the input")
    assert snapshot(bundled) == before


def test_compare_spec_option_as_output(tmp_path):
    g = tmp_path / "g.yaml"
    shutil.copy(BUNDLED / "googlenet.yaml", g)
    before = snapshot(tmp_path)
    one_line_error(cli("compare", "naive", "reduced", "--spec", g, "-o", g, "-f", "csv"),
                   "it is the input")
    assert snapshot(tmp_path) == before


def test_compare_second_spec_as_output(spec, tmp_path):
    b = tmp_path / "b.yaml"
    b.write_text(SMALL)
    before = snapshot(tmp_path)
    one_line_error(cli("compare", spec, b, "-o", b, "-f", "csv"), "it is the input")
    assert snapshot(tmp_path) == before


def test_verify_spec_as_output(spec, tmp_path):
    before = snapshot(tmp_path)
    one_line_error(cli("verify", spec, "-o", spec, "-f", "csv"), "it is the input")
    assert snapshot(tmp_path) == before


def test_plot_and_output_the_same_file(spec, tmp_path):
    png = tmp_path / "same.png"
    png.write_bytes(b"my plot")
    before = snapshot(tmp_path)
    one_line_error(cli("table", spec, "-o", png, "--plot", png), "also the output")
    assert snapshot(tmp_path) == before


def test_plot_linked_to_the_text_output(spec, tmp_path):
    (tmp_path / "t.md").write_text("mine\n")
    (tmp_path / "p.png").symlink_to("t.md")
    before = snapshot(tmp_path)
    one_line_error(cli("table", spec, "-o", tmp_path / "t.md", "--plot", tmp_path / "p.png"),
                   "also the output")
    assert snapshot(tmp_path) == before


def test_plot_and_output_new_files_under_two_spellings(spec, tmp_path):
    (tmp_path / "d").mkdir()
    one_line_error(cli("table", spec, "-o", tmp_path / "x.svg",
                       "--plot", tmp_path / "d" / ".." / "x.svg"), "x.svg")
    assert not (tmp_path / "x.svg").exists()


def test_a_character_device_twice_loses_nothing_and_is_allowed():
    files.check_distinct(["/dev/null", "/dev/null"], ["/dev/null"])


# --- 3. a spec in a folder the user cannot search -------------------------------------------

@pytest.mark.parametrize("command", [
    ["table", "{spec}"],
    ["compare", "{spec}", "cifar-cnn"],
    ["compare", "naive", "reduced", "--spec", "{spec}"],
])
def test_a_spec_in_a_folder_that_cannot_be_searched(tmp_path, command, request):
    """A real permission error: as root (who ignores modes) the test takes the effective
    uid of nobody for the run, after one run as root has imported what the command needs."""
    if os.geteuid() == 0:           # pytest's tmp_path is root's alone: take a folder nobody
        tmp_path = Path(tempfile.mkdtemp())  # can reach, up to the locked one
        request.addfinalizer(lambda: shutil.rmtree(tmp_path, ignore_errors=True))
    locked = tmp_path / "locked"
    locked.mkdir()
    spec = locked / "s.yaml"
    spec.write_text(SMALL)
    args = [a.format(spec=spec) for a in command]
    as_root = os.geteuid() == 0
    if as_root:
        cli(*[a.format(spec=BUNDLED / "googlenet.yaml") for a in command])  # imports
        os.chmod(tmp_path, 0o755)
        for parent in tmp_path.parents:         # nobody must reach tmp_path to be refused
            if parent.stat().st_mode & 0o001 == 0:
                pytest.skip(f"{parent} cannot be searched by nobody")
    locked.chmod(0)
    try:
        if as_root:
            os.seteuid(65534)
        try:
            result = cli(*args)
        finally:
            if as_root:
                os.seteuid(0)
    finally:
        locked.chmod(0o755)
    line = one_line_error(result, "permission denied")
    assert line.startswith(f"{spec}: cannot read the spec")


# --- 4. control characters and markup in what a user wrote ---------------------------------

EVIL = r'''name: "evil\e[2J net [red]x"
source: "[bold red]src\r\0 \u202e"
description: "desc\x9b31m\nnext | pipe"
input: [3, 8, 8]
layers:
  c1: [conv: {out: 4, kernel: 3}]
  flat: flatten
'''
RAW = ("\x1b", "\x00", "\r", "\x9b", "\u202e")


@pytest.fixture
def evil(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(EVIL)
    return path


@pytest.mark.parametrize("format", ["table", "csv", "markdown"])
def test_text_formats_escape_control_characters(evil, format):
    r = cli("table", evil, "-f", format)
    assert r.exit_code == 0, r.output
    assert not any(ch in r.stdout for ch in RAW)
    assert "\\x1b[2J" in r.stdout or format == "csv"   # CSV shows no title


def test_markdown_lines_stay_lines(evil, tmp_path):
    out = tmp_path / "t.md"
    assert cli("table", evil, "-o", out).exit_code == 0
    text = out.read_text()
    assert "evil\\x1b[2J net" in text and "src\\r\\x00 \\u202e" in text
    assert not any(ch in text for ch in RAW)


def test_json_keeps_the_text_and_escapes_it(evil):
    r = cli("table", evil, "-f", "json")
    assert not any(ch in r.stdout for ch in RAW)
    data = json.loads(r.stdout)
    assert data["name"] == "evil\x1b[2J net [red]x"
    assert data["source"] == "[bold red]src\r\x00 \u202e"


def test_an_error_quoting_a_key_escapes_it(tmp_path):
    path = tmp_path / "k.yaml"
    path.write_text('input: [3, 8, 8]\nlayers:\n  a: [conv: {out: 4, kernel: 3, "\\e[2Jx": 1}]\n')
    line = one_line_error(cli("table", path), "unknown key", "\\x1b[2Jx")
    assert "\x1b" not in line


def test_a_terminal_gets_no_raw_escape_and_no_markup(evil):
    """On a real terminal (a pty) rich draws the table: the user's text is shown, not obeyed
    (no screen clear, no [red] taken as markup). rich's own colours are its only escapes."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "LINES": "50",
           "TERM": "xterm"}
    try:
        p = subprocess.Popen([sys.executable, "-m", "archcalc", "table", str(evil)],
                             stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env)
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:         # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert p.wait(TIMEOUT) == 0
    finally:
        os.close(master)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "\x1b[2J" not in screen and "\x9b" not in screen and "\u202e" not in screen
    assert "evil\\x1b[2J net [red]x" in screen      # literal, markup not applied
    assert "[bold red]src\\r\\x00" in screen
