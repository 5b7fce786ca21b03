"""Where specs come from and how archcalc writes files: whole or not at all."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import List, Union

from archcalc.errors import ArchcalcError, Position, did_you_mean

BUNDLED = Path(__file__).parent / "specs"


def bundled_specs() -> List[Path]:
    return sorted(BUNDLED.glob("*.yaml"))


def resolve_spec(arg: str) -> str:
    """A spec path as given, or the bundled spec of that name (``googlenet``)."""
    if Path(arg).is_file():
        return arg
    candidate = BUNDLED / f"{arg}.yaml"
    if candidate.is_file():
        return str(candidate)
    if Path(arg).exists():
        raise ArchcalcError("not a file", Position(arg))
    names = [p.stem for p in bundled_specs()]
    raise ArchcalcError(f"no such file, nor a bundled spec of that name"
                        f"{did_you_mean(Path(arg).stem, names)} (`archcalc specs` lists them)",
                        Position(arg))


def check_writable(path: Union[str, Path]) -> None:
    """Fail early, before any work, when ``path`` cannot be written."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise ArchcalcError(f"cannot write the file: folder '{folder}' does not exist",
                            Position(str(path)))
    if Path(path).is_dir():
        raise ArchcalcError("cannot write the file: it is a folder", Position(str(path)))
    if not os.access(folder, os.W_OK):
        raise ArchcalcError(f"cannot write the file: folder '{folder}' is not writable",
                            Position(str(path)))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Union[str, Path], data: Union[str, bytes]) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    check_writable(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it owner-only; a file gets the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ArchcalcError(f"cannot write the file: {exc.strerror}", Position(str(path)))
        raise
