"""Where specs come from and how archcalc writes files: whole or not at all, and never in
place of something the user has: a link is written through, a device or a named pipe is
written to, a read-only file is left alone unless forced, a file keeps its mode, and an
output that is one of the command's inputs (or another of its outputs) is refused."""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterable, List, NamedTuple, Optional, Union

from archcalc.errors import ArchcalcError, Position, did_you_mean

BUNDLED = Path(__file__).parent / "specs"


def bundled_specs() -> List[Path]:
    return sorted(BUNDLED.glob("*.yaml"))


def is_file(arg: Union[str, Path]) -> bool:
    """``Path.is_file()``, except that a folder the user may not search is bad input (one
    line), not a PermissionError from the depths of pathlib."""
    try:
        return stat.S_ISREG(os.stat(arg).st_mode)
    except PermissionError:
        raise ArchcalcError("cannot read the spec: permission denied (a folder on the way "
                            "cannot be searched)", Position(str(arg))) from None
    except (OSError, ValueError):
        return False


def resolve_spec(arg: str) -> str:
    """A spec path as given, or the bundled spec of that name (``googlenet``)."""
    if is_file(arg):
        return arg
    candidate = BUNDLED / f"{arg}.yaml"
    if is_file(candidate):
        return str(candidate)
    if os.path.lexists(arg):
        raise ArchcalcError("not a file", Position(arg))
    names = [p.stem for p in bundled_specs()]
    raise ArchcalcError(f"no such file, nor a bundled spec of that name"
                        f"{did_you_mean(Path(arg).stem, names)} (`archcalc specs`"
                        " lists them)", Position(arg))


# --- where an output really goes ------------------------------------------------------------

class Target(NamedTuple):
    """Where writing ``path`` lands. ``path``: the file to write (a link's final target);
    ``direct``: written to in place (a character device, a named pipe, a descriptor that
    /dev/stdout names), never replaced; ``stat``: what is there now (None: nothing yet)."""

    path: Path
    direct: bool
    stat: Optional[os.stat_result]


def target(path: Union[str, Path]) -> Target:
    """Follow ``path``'s links to what writing it would change. A link under /proc (what
    /dev/stdout and /dev/fd/N are) names an open descriptor: it is written to, not replaced,
    so ``-o /dev/stdout > out.txt`` writes into the file the shell opened."""
    p = os.path.abspath(path)
    for _ in range(40):                              # the kernel's own limit on link chains
        folder = os.path.realpath(os.path.dirname(p))
        p = os.path.join(folder, os.path.basename(p))
        if folder == "/proc" or folder.startswith("/proc/"):
            break
        if not os.path.islink(p):
            break
        p = os.path.join(folder, os.readlink(p))
    else:
        raise ArchcalcError("cannot write the file: too many levels of links",
                            Position(str(path)))
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return Target(Path(p), False, None)
    except OSError as exc:
        raise ArchcalcError(f"cannot write the file: {exc.strerror}", Position(str(path)))
    via_fd = p.startswith("/proc/")
    return Target(Path(p), via_fd or stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode), st)


def read_only(st: os.stat_result) -> bool:
    """No write bit at all: what `chmod a-w` (or 0444) says, which holds for root too."""
    return not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def check_writable(path: Union[str, Path], force: bool = False) -> Target:
    """Fail early, before any work, when ``path`` cannot be written, or would be written
    only by destroying what is there: a read-only file (unless ``force``), a socket, a block
    device. Returns where the write will land."""
    where = target(path)
    pos = Position(str(path))
    if where.stat is not None:
        mode = where.stat.st_mode
        if stat.S_ISDIR(mode):
            raise ArchcalcError("cannot write the file: it is a folder", pos)
        if where.direct:
            return where
        if not stat.S_ISREG(mode):
            kind = "a socket" if stat.S_ISSOCK(mode) else \
                "a block device" if stat.S_ISBLK(mode) else "not a regular file"
            raise ArchcalcError(f"cannot write the file: it is {kind} (archcalc writes files, "
                                "character devices such as /dev/stdout, and named pipes)", pos)
        if not force and (read_only(where.stat) or not os.access(where.path, os.W_OK)):
            raise ArchcalcError(f"cannot write the file: it is read-only (mode "
                                f"{stat.S_IMODE(mode):04o}); --force replaces it, keeping "
                                "its mode", pos)
    folder = where.path.parent
    if not folder.is_dir():
        raise ArchcalcError(f"cannot write the file: folder '{folder}' does not exist", pos)
    if not os.access(folder, os.W_OK):
        raise ArchcalcError(f"cannot write the file: folder '{folder}' is not writable", pos)
    return where


def _identity(path: Union[str, Path]):
    """What makes two paths the same file: device and inode when it exists (so a link or
    another spelling is caught), else the path with every link resolved."""
    try:
        st = os.stat(path)
        return ("inode", st.st_dev, st.st_ino), st
    except OSError:
        return ("path", os.path.realpath(path)), None


def check_distinct(outputs: Iterable[Union[str, Path, None]],
                   inputs: Iterable[Union[str, Path]] = ()) -> None:
    """Refuse an output that is one of the command's inputs (``table s.yaml -o s.yaml``
    would replace the spec with its table) or another of its outputs (one would be lost).
    A character device (/dev/null, a terminal) loses nothing and may appear twice."""
    seen = {}
    for path in inputs:
        key, st = _identity(path)
        if st is None or not stat.S_ISCHR(st.st_mode):
            seen.setdefault(key, f"the input {path}")
    for path in outputs:
        if path is None:
            continue
        key, st = _identity(path)
        if st is not None and stat.S_ISCHR(st.st_mode):
            continue
        if key in seen:
            raise ArchcalcError(f"cannot write the file: it is {seen[key]}; give another "
                                "path", Position(str(path)))
        seen[key] = f"also the output {path}"


# --- writing --------------------------------------------------------------------------------

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Union[str, Path], data: Union[str, bytes], force: bool = False) -> None:
    """Write ``data`` to a temporary file beside the file ``path`` names (through its links),
    then rename it into place, with the mode of the file it replaces. A character device or a
    named pipe is written to directly; a pipe nobody reads is refused, never waited on."""
    where = check_writable(path, force)
    data = data.encode("utf-8") if isinstance(data, str) else data
    if where.direct:
        _write_direct(where, data, str(path))
        return
    dest = where.path
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        if where.stat is None:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it owner-only; a new file gets
        else:                                  # the usual mode, a replaced one keeps its own
            os.fchmod(fd, stat.S_IMODE(where.stat.st_mode))
            if os.geteuid() == 0:       # root replacing a user's file leaves it theirs
                os.fchown(fd, where.stat.st_uid, where.stat.st_gid)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ArchcalcError(f"cannot write the file: {exc.strerror}", Position(str(path)))
        raise


def _write_direct(where: Target, data: bytes, given: str) -> None:
    """Write into a device, a named pipe or an open descriptor's file, never replacing it.
    A pipe is opened without blocking: with no reader that fails at once (ENXIO)."""
    flags = os.O_WRONLY | os.O_NOCTTY
    fifo = where.stat is not None and stat.S_ISFIFO(where.stat.st_mode)
    if fifo:
        flags |= os.O_NONBLOCK
    elif where.stat is not None and stat.S_ISREG(where.stat.st_mode):
        flags |= os.O_APPEND            # /dev/stdout > file: after what the shell put there
    try:
        fd = os.open(where.path, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO and fifo:
            raise ArchcalcError("cannot write the file: it is a named pipe that nothing "
                                "reads; start the reader first", Position(given)) from None
        raise ArchcalcError(f"cannot write the file: {exc.strerror}", Position(given)) from None
    try:
        if fifo:    # a reader is there: now wait for it as any pipe writer does
            os.set_blocking(fd, True)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        raise ArchcalcError(f"cannot write the file: {exc.strerror}", Position(given)) from None
    finally:
        os.close(fd)
