"""Image data sets for ``archcalc train``, held whole in memory as uint8 tensors.

Three sources, one shape of result (:class:`Dataset`):

- ``cifar10`` from the official download archives or their extracted folders, in either the
  binary or the Python (pickle) format, found in :func:`data_folder` (``data_dir``, else
  ``$ARCHCALC_DATA``, else ``$XDG_CACHE_HOME/archcalc`` or ``~/.cache/archcalc``), where
  ``download=True`` also puts it. Pickles are read by a restricted unpickler, because a
  downloaded file is untrusted and a plain ``pickle.load`` runs whatever code it names.
- ``fashion-mnist`` from the four gzipped IDX files, in ``data_dir`` if given, else in
  :func:`data_folder` or Debian's ``/usr/share/datasets/fashion-mnist/`` (package
  ``dataset-fashion-mnist``).
- ``synthetic``, generated from a fixed seed, so training works with no files at all.

Every problem with the data raises :class:`~archcalc.errors.DataError` naming the file, in one
line. A data file is untrusted input that may be hostile, so nothing is read or allocated on a
file's word: only regular files are opened (a FIFO would block forever), every size a header
declares is checked against the official files' known sizes first, compressed data is inflated
in bounded chunks that stop as soon as more comes than the file may hold, and a download has an
overall deadline and a minimum rate.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import math
import pickle
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Optional, Union

from archcalc.extras import TORCH_ONLY, require

require("torch", "training", needs=TORCH_ONLY)

import numpy as np
import torch
import torch.nn.functional as F

from archcalc.errors import DataError, Position, did_you_mean

PathLike = Union[str, Path]

DATASET_NAMES = ("cifar10", "fashion-mnist", "synthetic")
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_COUNTS = (50_000, 10_000)
FASHION_MNIST_COUNTS = (60_000, 10_000)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_SIZE = 170_498_071          # bytes of the archive at CIFAR10_URL
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

_CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
_CIFAR_PIXELS = 3 * 32 * 32
# Known sizes of the official files, the most that is ever read or allocated on a file's word.
_CIFAR_BATCH_IMAGES = 10_000
_CIFAR_BINARY_MAX = _CIFAR_BATCH_IMAGES * (1 + _CIFAR_PIXELS)   # exactly 30,730,000 bytes
# The official pickled batches are about 31,035,700 bytes; one pickled again by Python 3 in
# protocol 2 carries its pixels as latin-1 text in UTF-8, two bytes for each byte >= 0x80.
_CIFAR_PICKLE_MAX = 64 * 2**20
_CIFAR_TAR_MAX = 6 * _CIFAR_PICKLE_MAX + 2**20   # an archive's inflated tar stream
_FASHION_IMAGE = (28, 28)
# Search order within a data folder: the binary format first (no unpickling, faster to parse).
_CIFAR_SOURCES = [
    ("cifar-10-batches-bin", "binary"),
    ("cifar-10-binary.tar.gz", "binary"),
    ("cifar-10-batches-py", "python"),
    ("cifar-10-python.tar.gz", "python"),
]
_FASHION_FILES = {
    "train_x": "train-images-idx3-ubyte.gz", "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz", "test_y": "t10k-labels-idx1-ubyte.gz",
}


@dataclass
class Dataset:
    """A labelled image classification set: images N×C×H×W uint8, labels int64."""

    name: str
    classes: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    synthetic: bool = False

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image, the spec's ``input``."""
        c, h, w = self.train_x.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def num_classes(self) -> int:
        return len(self.classes)


Progress = Callable[[int, Optional[int]], None]


def load_dataset(name: str, data_dir: Optional[PathLike] = None, download: bool = False,
                 on_progress: Optional[Progress] = None) -> Dataset:
    """Load a data set by name; see the module docstring for where each one is looked for.

    ``on_progress(bytes_done, bytes_total)`` follows a download (see :func:`download_cifar10`).
    """
    if name == "cifar10":
        return load_cifar10(data_dir, download=download, on_progress=on_progress)
    if name == "fashion-mnist":
        if download:
            raise DataError("--download is only available for cifar10; for fashion-mnist install "
                            "Debian's package 'dataset-fashion-mnist' or pass --data-dir")
        return load_fashion_mnist(data_dir)
    if name == "synthetic":
        return make_synthetic()
    raise DataError(f"unknown data set '{name}'{did_you_mean(name, DATASET_NAMES)} "
                    f"(choose from {', '.join(DATASET_NAMES)})")


def data_folder(data_dir: Optional[PathLike] = None) -> Path:
    """The one folder to look in: ``data_dir``, else ``$ARCHCALC_DATA``, else the user cache.

    An explicit choice is authoritative: data elsewhere is not used behind the user's back.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get("ARCHCALC_DATA"):
        return Path(os.environ["ARCHCALC_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "archcalc"


# ---------------------------------------------------------------------------------------- CIFAR-10

def load_cifar10(data_dir: Optional[PathLike] = None, download: bool = False, *,
                 counts: tuple[int, int] = CIFAR10_COUNTS,
                 on_progress: Optional[Progress] = None) -> Dataset:
    """CIFAR-10 from :func:`data_folder`, downloading the Python archive there if asked."""
    folder = data_folder(data_dir)
    if folder.name in dict(_CIFAR_SOURCES) and os.path.exists(folder):  # pointed at the archive or folder itself
        return read_cifar10(folder, counts)
    for entry, _ in _CIFAR_SOURCES:
        if os.path.exists(folder / entry):
            return read_cifar10(folder / entry, counts)
    if download:
        return read_cifar10(download_cifar10(folder, on_progress=on_progress), counts)
    names = ", ".join(entry for entry, _ in _CIFAR_SOURCES)
    raise DataError(f"CIFAR-10 not found in {folder} (looked for {names}); provide it with "
                    f"--data-dir DIR, or by setting $ARCHCALC_DATA=DIR, or let archcalc fetch it "
                    f"with --download")


def read_cifar10(path: PathLike, counts: tuple[int, int] = CIFAR10_COUNTS) -> Dataset:
    """Read one CIFAR-10 source: an official archive or its extracted folder, either format.

    ``counts`` (train, test) is what the data must hold; tests pass small numbers for tiny fakes.
    """
    path = Path(path)
    kinds = dict(_CIFAR_SOURCES)
    if path.name not in kinds:
        raise DataError(f"not a CIFAR-10 archive or folder name (expected one of "
                        f"{', '.join(kinds)})", Position(str(path)))
    binary = kinds[path.name] == "binary"
    prefix = "cifar-10-batches-bin" if binary else "cifar-10-batches-py"
    members = [f"{batch}.bin" if binary else batch for batch in _CIFAR_BATCHES]
    blobs = _read_members(path, prefix, members, _CIFAR_BINARY_MAX if binary else _CIFAR_PICKLE_MAX)
    parse = _parse_cifar_binary if binary else _parse_cifar_pickle
    parts = [parse(blobs[m], _where(path, prefix, m)) for m in members]
    train = _concat(parts[:5])
    test = parts[5]
    for (x, y), count, split in ((train, counts[0], "training"), (test, counts[1], "test")):
        if len(y) != count:
            raise DataError(f"{len(y):,} {split} images, expected {count:,} (a truncated or "
                            f"foreign file?)", Position(str(path)))
    return Dataset("cifar10", list(CIFAR10_CLASSES), train[0], train[1], test[0], test[1])


def download_cifar10(folder: Path, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5, *,
                     on_progress: Optional[Progress] = None,
                     size: int = CIFAR10_SIZE, deadline_s: float = 3600.0,
                     min_rate: float = 10_000.0, rate_window_s: float = 30.0) -> Path:
    """Fetch the Python-format archive into ``folder``; it appears there only whole and verified.

    ``on_progress(bytes_done, bytes_total)`` is called after every chunk (``bytes_total`` is
    None when the server does not say). A socket timeout bounds one read only, so a server
    that trickles a byte now and then would hold a plain loop forever; this one gives up
    after ``deadline_s`` in all, when fewer than ``min_rate`` bytes per second came over the
    last ``rate_window_s`` seconds, or when more than ``size`` bytes come.
    """
    target = folder / "cifar-10-python.tar.gz"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".cifar-10-python.", suffix=".part")
    except OSError as exc:
        raise DataError(_one_line(f"cannot write the download into {folder}: {exc}")) from exc
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out, \
                urllib.request.urlopen(url, timeout=rate_window_s) as response:
            total = _declared_length(response)
            if total is not None and total > size:
                raise DataError(f"{url} serves {total:,} bytes; the CIFAR-10 archive has {size:,}")
            read = getattr(response, "read1", response.read)   # read1: whatever one recv gives
            start = time.monotonic()
            done, recent = 0, deque([(start, 0)])
            while chunk := read(1 << 20):
                done += len(chunk)
                if done > size:
                    raise DataError(f"{url} sent more than the {size:,} bytes of the CIFAR-10 "
                                    f"archive; not keeping it")
                digest.update(chunk)
                out.write(chunk)
                if on_progress is not None:
                    on_progress(done, total)
                _check_pace(url, done, recent, start, deadline_s, min_rate, rate_window_s)
        if digest.hexdigest() != md5:
            raise DataError(f"download from {url} has MD5 {digest.hexdigest()}, expected {md5}; "
                            f"not keeping it")
        os.replace(tmp_name, target)
    except (urllib.error.URLError, OSError, ValueError) as exc:   # TimeoutError is an OSError
        raise DataError(_one_line(f"could not download CIFAR-10 from {url}: {exc}")) from exc
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target


def _declared_length(response) -> Optional[int]:
    length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
    return int(length) if length and length.isascii() and length.isdigit() else None


def _check_pace(url: str, done: int, recent: deque, start: float, deadline_s: float,
                min_rate: float, window_s: float) -> None:
    """Raise when the download has run past its deadline or is slower than ``min_rate``."""
    now = time.monotonic()
    if now - start > deadline_s:
        raise DataError(f"download from {url} gave up after {deadline_s:g} s with {done:,} bytes "
                        f"received")
    recent.append((now, done))
    while len(recent) > 1 and recent[1][0] <= now - window_s:
        recent.popleft()            # keep one sample at or before the window's start
    then, done_then = recent[0]
    if now - start >= window_s and (done - done_then) / (now - then) < min_rate:
        raise DataError(f"download from {url} is too slow ({(done - done_then) / (now - then):,.0f} "
                        f"bytes/s over the last {window_s:g} s, at least {min_rate:,.0f} needed); "
                        f"try again later, or fetch the file yourself and pass --data-dir")


def _one_line(text: str) -> str:
    """A message from elsewhere (an OS error, a parser) fit for one line of output."""
    text = " ".join(str(text).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _where(path: Path, prefix: str, member: str) -> Position:
    """The file to name in a message: the member's own path, or the archive and member."""
    if os.path.isdir(path):
        return Position(str(path / member))
    return Position(f"{path}[{prefix}/{member}]")


_FILE_KINDS = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device",
               stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}


def _open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading if it is a regular file; anything else is refused.

    Opened without blocking and checked on the open descriptor: a FIFO under a data file's
    name would otherwise block the open (or the read) until something writes to it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise DataError(_one_line(f"cannot open: {exc.strerror or exc}"), Position(str(path))) from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = next((name for test, name in _FILE_KINDS.items() if test(mode)), "not a file")
        raise DataError(f"is {kind}, not a regular file; data is only read from regular files",
                        Position(str(path)))
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _read_at_most(file: BinaryIO, limit: int, what: str, where: Position) -> bytes:
    """All of ``file`` if it holds at most ``limit`` bytes; reads no more than ``limit + 1``."""
    blob = file.read(limit + 1)
    if len(blob) > limit:
        raise DataError(f"holds more than {limit:,} bytes, the most {what} can hold (a tampered "
                        f"or foreign file?)", where)
    return blob


class _Capped:
    """A stream read in bounded chunks that refuses to yield more than ``limit`` bytes in all:
    an inflating archive stops as soon as it grows past the known size, whatever it claims."""

    def __init__(self, stream: BinaryIO, limit: int, where: Position):
        self.stream, self.limit, self.where, self.count = stream, limit, where, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size if 0 <= size <= 1 << 20 else 1 << 20)
        self.count += len(chunk)
        if self.count > self.limit:
            raise DataError(f"inflates to more than {self.limit:,} bytes, more than a CIFAR-10 "
                            f"archive holds (a compression bomb or foreign file?)", self.where)
        return chunk


def _read_members(path: Path, prefix: str, members: list[str], limit: int) -> dict[str, bytes]:
    """The named files' bytes (each at most ``limit``), from a folder or, in one sequential pass
    with nothing extracted, from a .tar.gz."""
    if os.path.isdir(path):
        return {m: _read_folder_member(path / m, limit) for m in members}
    wanted = {f"{prefix}/{m}": m for m in members}
    found: dict[str, bytes] = {}
    where = Position(str(path))
    try:
        with _open_regular(path) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as inflated, \
                tarfile.open(fileobj=_Capped(inflated, _CIFAR_TAR_MAX, where), mode="r|") as archive:
            for info in archive:
                if info.size > (limit if info.name in wanted else _CIFAR_TAR_MAX):
                    raise DataError(_one_line(
                        f"member {info.name} declares {info.size:,} bytes, more than "
                        f"{limit if info.name in wanted else _CIFAR_TAR_MAX:,}, the most it may "
                        f"hold in a CIFAR-10 archive (a tampered or foreign archive?)"), where)
                if info.name in wanted and info.isfile():
                    found[wanted[info.name]] = archive.extractfile(info).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError, OverflowError) as exc:
        raise DataError(_one_line(f"cannot read as a .tar.gz archive (truncated or foreign?): "
                                  f"{exc}"), where) from exc
    missing = [f"{prefix}/{m}" for m in members if m not in found]
    if missing:
        raise DataError(f"archive lacks {', '.join(missing)}", where)
    return found


def _read_folder_member(path: Path, limit: int) -> bytes:
    where = Position(str(path))
    try:
        os.stat(path)
    except FileNotFoundError:
        raise DataError(f"missing {path.name}", Position(str(path.parent))) from None
    except OSError as exc:
        raise DataError(_one_line(f"cannot read: {exc.strerror or exc}"), where) from exc
    with _open_regular(path) as file:
        try:
            return _read_at_most(file, limit, "a CIFAR-10 batch", where)
        except OSError as exc:
            raise DataError(_one_line(f"cannot read: {exc.strerror or exc}"), where) from exc


def _parse_cifar_binary(blob: bytes, where: Position) -> tuple[torch.Tensor, torch.Tensor]:
    """Records of 1 label byte + 3,072 pixel bytes (R, G, B planes of 32×32)."""
    record = 1 + _CIFAR_PIXELS
    if len(blob) == 0 or len(blob) % record:
        raise DataError(f"{len(blob):,} bytes is not a whole number of {record:,}-byte records "
                        f"(truncated or foreign?)", where)
    rows = np.frombuffer(blob, dtype=np.uint8).reshape(-1, record)
    return _cifar_tensors(rows[:, 1:], rows[:, 0], where)


def _parse_cifar_pickle(blob: bytes, where: Position) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch dict with ``data`` (N×3072 uint8) and ``labels`` (N ints), unpickled safely."""
    try:
        batch = _BatchUnpickler(io.BytesIO(blob), where).load()
    except DataError:
        raise
    except _Refused as exc:
        raise DataError(f"refusing to unpickle: {exc} (a tampered or foreign file?)", where) from None
    except Exception as exc:  # a damaged pickle can fail in many ways; all mean the same here
        raise DataError(_one_line(f"not a readable CIFAR-10 batch (truncated or foreign?): "
                                  f"{type(exc).__name__}: {exc}"), where) from exc
    if not isinstance(batch, dict):
        raise DataError(f"expected a dict of batch data, found {type(batch).__name__}", where)
    fields = {}
    for key, value in batch.items():
        if isinstance(key, bytes):
            try:
                key = key.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError("a key of the batch dict is not UTF-8 text (a tampered or "
                                "foreign file?)", where) from None
        fields[key] = value
    data, labels = fields.get("data"), fields.get("labels")
    data = data.array if isinstance(data, _PendingArray) else None
    if data is None:
        raise DataError(f"'data' is not an N×{_CIFAR_PIXELS} uint8 array", where)
    if type(labels) is not list:
        raise DataError("'labels' is not a list of integers", where)
    if len(labels) != len(data):
        raise DataError(f"{len(data):,} images but {len(labels):,} labels", where)
    for i, label in enumerate(labels):
        if type(label) is not int or not 0 <= label <= 9:
            raise DataError(f"label {i} is {_brief(label)}, expected an integer 0..9", where)
    return _cifar_tensors(data, np.asarray(labels, dtype=np.int64), where)


def _brief(value) -> str:
    """A value from a hostile file, described in a few characters (an int may have 10^6 digits)."""
    if type(value) is int and value.bit_length() > 64:
        return f"an integer of {value.bit_length():,} bits"
    if type(value) in (int, float, bool) or value is None:
        return repr(value)
    return f"a {type(value).__name__}"


def _cifar_tensors(pixels: np.ndarray, labels: np.ndarray, where: Position):
    labels = torch.from_numpy(np.array(labels, dtype=np.int64))
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) <= 9:
        raise DataError(f"labels range {int(labels.min())}..{int(labels.max())}, expected 0..9", where)
    images = torch.from_numpy(np.array(pixels, dtype=np.uint8)).reshape(-1, 3, 32, 32)
    return images, labels


def _concat(parts):
    return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])


def _latin1_encode(text: str, encoding: str) -> bytes:
    """Stand-in for ``_codecs.encode``, which Python 3 protocol-2 pickles use to carry bytes."""
    if encoding != "latin1" or type(text) is not str:
        raise _Refused(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class _Refused(Exception):
    """A batch names something allowed in a way no CIFAR-10 batch does."""


class _NdarrayName:
    """What the name ``numpy.ndarray`` stands for in a batch: only ``_reconstruct``'s first
    argument. Called directly it could make a view of any shape and strides (a zero-stride
    2,000,000×3,072 view of a few bytes that the copy then makes gigabytes of)."""

    def __call__(self, *args, **kwargs):
        raise _Refused("the file calls numpy.ndarray directly, which a CIFAR-10 "
                                     "batch never does")


class _Uint8:
    """A dtype in a batch: only uint8 (``numpy.dtype('u1', False, True)`` and its state)."""

    def __setstate__(self, state) -> None:
        if type(state) is not tuple or len(state) != 8 or state[0] != 3 \
                or state[1] not in ("|", b"|") or state[2:] != (None, None, None, -1, -1, 0):
            raise _Refused("a dtype state that is not uint8's")


class _PendingArray:
    """What ``_reconstruct`` returns while a batch is unpickled: nothing is allocated until
    ``__setstate__`` has checked the declared shape, dtype, layout and bytes against a
    CIFAR-10 batch's (at most 10,000×3,072 uint8, contiguous, bytes held in the file)."""

    array: Optional[np.ndarray] = None

    def __setstate__(self, state) -> None:
        ok = type(state) is tuple and len(state) == 5
        if ok:
            version, shape, dtype, fortran, raw = state
            ok = (version == 1 and type(shape) is tuple and len(shape) == 2
                  and all(type(d) is int for d in shape)
                  and 0 <= shape[0] <= _CIFAR_BATCH_IMAGES and shape[1] == _CIFAR_PIXELS
                  and isinstance(dtype, _Uint8) and fortran in (False, 0)
                  and type(fortran) in (bool, int) and type(raw) is bytes
                  and len(raw) == shape[0] * shape[1])
        if not ok:
            raise _Refused(f"an array that is not at most {_CIFAR_BATCH_IMAGES:,}"
                                         f"×{_CIFAR_PIXELS:,} uint8 bytes held in the file")
        self.array = np.frombuffer(raw, dtype=np.uint8).reshape(shape)


def _reconstruct(cls, shape, typecode) -> _PendingArray:
    """Stand-in for numpy's ``_reconstruct``, admitting only the call a pickled ndarray makes."""
    if not isinstance(cls, _NdarrayName) or shape != (0,) or typecode not in (b"b", "b"):
        raise _Refused("a numpy reconstruction call that no CIFAR-10 batch makes")
    return _PendingArray()


def _dtype(name, align=False, copy=True) -> _Uint8:
    """Stand-in for ``numpy.dtype``, admitting only uint8."""
    if name not in ("u1", b"u1") or align not in (False, 0) or copy not in (True, 1) \
            or type(align) not in (bool, int) or type(copy) not in (bool, int):   # 0, 1: older numpy
        raise _Refused("a dtype other than uint8")
    return _Uint8()


class _BatchUnpickler(pickle.Unpickler):
    """Admits only what official CIFAR batches reference: numpy's array reconstruction.

    Anything else a pickle names (``os.system``, ``builtins.eval`` ...) is refused before it can
    be called, so a hostile file cannot run code; and numpy's names resolve to stand-ins that
    check every declared shape and size before anything is allocated, so it cannot make archcalc
    allocate gigabytes either.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): _NdarrayName(),
        ("numpy", "dtype"): _dtype,
        ("_codecs", "encode"): _latin1_encode,
    }

    def __init__(self, file, where: Position):
        super().__init__(file, encoding="bytes")
        self.where = where

    def find_class(self, module: str, name: str):
        allowed = self._ALLOWED.get((module, name))
        if allowed is None:
            raise DataError(_one_line(f"refusing to unpickle: the file references {module}.{name}, "
                                      f"which a CIFAR-10 batch never does (a tampered or foreign "
                                      f"file?)"), self.where)
        return allowed


# ----------------------------------------------------------------------------------- Fashion-MNIST

def load_fashion_mnist(data_dir: Optional[PathLike] = None,
                       counts: tuple[int, int] = FASHION_MNIST_COUNTS) -> Dataset:
    """Fashion-MNIST from ``data_dir`` if given, else ``$ARCHCALC_DATA``/the cache, else Debian's folder."""
    folders = [data_folder(data_dir)] if data_dir is not None else [data_folder(), DEBIAN_FASHION_MNIST]
    for folder in folders:
        if all(os.path.exists(folder / f) for f in _FASHION_FILES.values()):
            return _read_fashion_mnist(folder, counts)
    raise DataError(f"Fashion-MNIST not found in {' or '.join(map(str, folders))} (looked for "
                    f"{', '.join(_FASHION_FILES.values())}); provide it with --data-dir DIR, or by "
                    f"setting $ARCHCALC_DATA=DIR, or with 'apt-get install dataset-fashion-mnist'")


def _read_fashion_mnist(folder: Path, counts: tuple[int, int]) -> Dataset:
    arrays = {}
    for key, name in _FASHION_FILES.items():
        split, kind = key.split("_")
        count = counts[0] if split == "train" else counts[1]
        arrays[key] = read_idx(folder / name, count * math.prod(_FASHION_IMAGE) if kind == "x" else count)
    for split, count in (("train", counts[0]), ("test", counts[1])):
        images, labels = arrays[f"{split}_x"], arrays[f"{split}_y"]
        where = Position(str(folder / _FASHION_FILES[f"{split}_x"]))
        if images.ndim != 3 or images.shape[1:] != _FASHION_IMAGE or images.shape[0] != count:
            raise DataError(f"images of shape {images.shape}, expected ({count}, 28, 28)", where)
        where = Position(str(folder / _FASHION_FILES[f"{split}_y"]))
        if labels.shape != (count,):
            raise DataError(f"labels of shape {labels.shape}, expected ({count},)", where)
        if count and labels.max() > 9:
            raise DataError(f"label {labels.max()} out of range 0..9", where)
    images = {k: torch.from_numpy(arrays[k].copy()).unsqueeze(1) for k in ("train_x", "test_x")}
    labels = {k: torch.from_numpy(arrays[k].astype(np.int64)) for k in ("train_y", "test_y")}
    return Dataset("fashion-mnist", list(FASHION_MNIST_CLASSES), images["train_x"],
                   labels["train_y"], images["test_x"], labels["test_y"])


def read_idx(path: Path, max_items: int = FASHION_MNIST_COUNTS[0] * 28 * 28) -> np.ndarray:
    """One gzipped IDX file of unsigned bytes: magic ``00 00 08 ndim``, ndim big-endian uint32 sizes.

    The header's shape is checked against ``max_items`` (by default the largest Fashion-MNIST
    file's) before the data is inflated, and inflating stops one byte past what it declares.
    """
    where = Position(str(path))
    try:
        with _open_regular(path) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0:2] != b"\0\0" or head[2] != 0x08 or not 1 <= head[3] <= 4:
                raise DataError(f"not an IDX file of unsigned bytes (magic {head.hex() or 'missing'})",
                                where)
            ndim = head[3]
            sizes = f.read(4 * ndim)
            if len(sizes) < 4 * ndim:
                raise DataError("IDX header is truncated", where)
            shape = tuple(int.from_bytes(sizes[4 * i:4 * i + 4], "big") for i in range(ndim))
            header, items = 4 + 4 * ndim, math.prod(shape)
            if items > max_items:
                raise DataError(f"the header's shape {shape} declares {items:,} bytes of data, "
                                f"more than the {max_items:,} this file may hold (a tampered or "
                                f"foreign file?)", where)
            data = f.read(items)
            extra = f.read(1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(_one_line(f"cannot read as gzip (truncated or foreign?): {exc}"), where) from exc
    if len(data) < items:
        raise DataError(f"{header + len(data):,} bytes, but the header's shape {shape} needs "
                        f"{header + items:,} (truncated or foreign?)", where)
    if extra:
        raise DataError(f"longer than the {header + items:,} bytes the header's shape {shape} "
                        f"needs (a foreign file?)", where)
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


# --------------------------------------------------------------------------------------- synthetic

def make_synthetic(train: int = 5000, test: int = 1000, seed: int = 0) -> Dataset:
    """A learnable stand-in for CIFAR-10: 10 classes of 3×32×32 images, the same for every call.

    Each class has a smooth random colour pattern; an image is its class's pattern at a random
    contrast and brightness under heavy noise: easy enough to learn in seconds, not so easy that
    a model is perfect after one step.
    """
    gen = torch.Generator().manual_seed(seed)
    patterns = F.interpolate(torch.rand(10, 3, 8, 8, generator=gen), size=(32, 32),
                             mode="bilinear", align_corners=False) - 0.5

    def images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 10, (n,), generator=gen)
        contrast = 0.3 + 0.7 * torch.rand(n, 1, 1, 1, generator=gen)
        brightness = 0.3 + 0.4 * torch.rand(n, 1, 1, 1, generator=gen)
        noise = 0.3 * torch.randn(n, 3, 32, 32, generator=gen)
        x = patterns[labels] * contrast + brightness + noise
        return (x.clamp(0, 1) * 255).round().to(torch.uint8), labels

    train_x, train_y = images(train)
    test_x, test_y = images(test)
    return Dataset("synthetic", [f"class{i}" for i in range(10)], train_x, train_y, test_x, test_y,
                   synthetic=True)


# -------------------------------------------------------------------------------- validation split

def hold_out(labels: torch.Tensor, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training, validation) indices into ``labels``, disjoint, together all of them, each in
    ascending order: ``count`` images held out in proportion to the classes, chosen at random
    from ``seed`` (the same seed, the same split).

    Each class is shuffled; an image's place in its class's shuffle, as a fraction of the
    class's size, ranks it, and the ``count`` lowest ranks are held out: every class gives up
    its share (to within one image) whatever the count, with no per-class rounding to repair.
    """
    n = len(labels)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    shuffled = labels[order]
    sizes = torch.bincount(shuffled)
    by_class = torch.sort(shuffled, stable=True).indices           # positions, grouped by class
    place = torch.empty(n, dtype=torch.float64)
    starts = torch.cumsum(sizes, 0) - sizes
    place[by_class] = (torch.arange(n) - starts.repeat_interleave(sizes)).double()
    rank = (place + 0.5) / sizes[shuffled].double()
    chosen = order[torch.sort(rank, stable=True).indices[:count]]
    held = torch.zeros(n, dtype=torch.bool)
    held[chosen] = True
    return (~held).nonzero().flatten(), held.nonzero().flatten()


# ---------------------------------------------------------------------------- batch transformation

class BatchTransform:
    """Turns a uint8 batch N×C×H×W into normalized float32, optionally augmented, as whole-batch
    tensor ops on the batch's device (no per-image Python loop).

    Augmentation is the standard CIFAR recipe: a random 32×32 crop of the image padded by 4 black
    pixels, and a horizontal flip with probability 1/2. Random numbers come from the given CPU
    ``torch.Generator`` (small index tensors are then moved to the device), so a run repeats
    exactly on any device.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, augment: bool = False, padding: int = 4):
        self.mean = mean.reshape(1, -1, 1, 1).float()
        self.scale = 1.0 / std.reshape(1, -1, 1, 1).float()
        self.augment = augment
        self.padding = padding

    @classmethod
    def for_dataset(cls, dataset: Dataset, augment: bool = False,
                    device: Union[str, torch.device] = "cpu") -> "BatchTransform":
        mean, std = channel_stats(dataset.train_x)
        return cls(mean.to(device), std.to(device), augment=augment)

    def __call__(self, images: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if self.augment:
            images = self.crop_and_flip(images, generator)
        return (images.float() - self.mean) * self.scale

    def crop_and_flip(self, images: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
        """One gather does both: row/column indices into the padded batch, columns reversed to flip."""
        n, c, h, w = images.shape
        p = self.padding
        padded = F.pad(images, (p, p, p, p))
        offsets = torch.randint(0, 2 * p + 1, (2, n), generator=generator)
        flip = torch.rand(n, generator=generator) < 0.5
        rows = offsets[0, :, None] + torch.arange(h)
        cols = torch.arange(w).expand(n, w)
        cols = offsets[1, :, None] + torch.where(flip[:, None], cols.flip(1), cols)
        rows, cols = rows.to(images.device), cols.to(images.device)
        batch = torch.arange(n, device=images.device)[:, None, None, None]
        channel = torch.arange(c, device=images.device)[None, :, None, None]
        return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of uint8 images, in pixel units (0..255).

    Summed in float64 over chunks, so a 50,000-image set never needs a float copy of itself.
    """
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, len(images), chunk):
        part = images[start:start + chunk].double()
        total += part.sum(dim=(0, 2, 3))
        squares += part.square().sum(dim=(0, 2, 3))
    count = images.numel() // images.shape[1]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(1e-12).sqrt()
    return mean.float(), std.float()
