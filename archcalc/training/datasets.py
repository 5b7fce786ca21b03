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

Every problem with the data raises :class:`~archcalc.errors.DataError` naming the file.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

from archcalc.extras import require

require("torch", "training")

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
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

_CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
_CIFAR_PIXELS = 3 * 32 * 32
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


def load_dataset(name: str, data_dir: Optional[PathLike] = None, download: bool = False) -> Dataset:
    """Load a data set by name; see the module docstring for where each one is looked for."""
    if name == "cifar10":
        return load_cifar10(data_dir, download=download)
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
                 counts: tuple[int, int] = CIFAR10_COUNTS) -> Dataset:
    """CIFAR-10 from :func:`data_folder`, downloading the Python archive there if asked."""
    folder = data_folder(data_dir)
    if folder.name in dict(_CIFAR_SOURCES) and folder.exists():  # pointed at the archive or folder itself
        return read_cifar10(folder, counts)
    for entry, _ in _CIFAR_SOURCES:
        if (folder / entry).exists():
            return read_cifar10(folder / entry, counts)
    if download:
        return read_cifar10(download_cifar10(folder), counts)
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
    blobs = _read_members(path, prefix, members)
    parse = _parse_cifar_binary if binary else _parse_cifar_pickle
    parts = [parse(blobs[m], _where(path, prefix, m)) for m in members]
    train = _concat(parts[:5])
    test = parts[5]
    for (x, y), count, split in ((train, counts[0], "training"), (test, counts[1], "test")):
        if len(y) != count:
            raise DataError(f"{len(y):,} {split} images, expected {count:,} (a truncated or "
                            f"foreign file?)", Position(str(path)))
    return Dataset("cifar10", list(CIFAR10_CLASSES), train[0], train[1], test[0], test[1])


def download_cifar10(folder: Path, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5) -> Path:
    """Fetch the Python-format archive into ``folder``; it appears there only whole and verified."""
    target = folder / "cifar-10-python.tar.gz"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".cifar-10-python.", suffix=".part")
    except OSError as exc:
        raise DataError(f"cannot write the download into {folder}: {exc}") from exc
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise DataError(f"download from {url} has MD5 {digest.hexdigest()}, expected {md5}; "
                            f"not keeping it")
        os.replace(tmp_name, target)
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"could not download CIFAR-10 from {url}: {exc}") from exc
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target


def _where(path: Path, prefix: str, member: str) -> Position:
    """The file to name in a message: the member's own path, or the archive and member."""
    if path.is_dir():
        return Position(str(path / member))
    return Position(f"{path}[{prefix}/{member}]")


def _read_members(path: Path, prefix: str, members: list[str]) -> dict[str, bytes]:
    """The named files' bytes, from a folder or (one sequential pass, nothing extracted) a .tar.gz."""
    if path.is_dir():
        missing = [m for m in members if not (path / m).is_file()]
        if missing:
            raise DataError(f"missing {', '.join(missing)}", Position(str(path)))
        return {m: (path / m).read_bytes() for m in members}
    wanted = {f"{prefix}/{m}": m for m in members}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for info in archive:
                if info.name in wanted and info.isfile():
                    found[wanted[info.name]] = archive.extractfile(info).read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"cannot read as a .tar.gz archive (truncated or foreign?): {exc}",
                        Position(str(path))) from exc
    missing = [f"{prefix}/{m}" for m in members if m not in found]
    if missing:
        raise DataError(f"archive lacks {', '.join(missing)}", Position(str(path)))
    return found


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
    except Exception as exc:  # a damaged pickle can fail in many ways; all mean the same here
        raise DataError(f"not a readable CIFAR-10 batch (truncated or foreign?): {exc}", where) from exc
    if not isinstance(batch, dict):
        raise DataError(f"expected a dict of batch data, found {type(batch).__name__}", where)
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != _CIFAR_PIXELS:
        raise DataError(f"'data' is not an N×{_CIFAR_PIXELS} uint8 array", where)
    if not isinstance(labels, list) or not all(isinstance(v, int) for v in labels):
        raise DataError("'labels' is not a list of integers", where)
    if len(labels) != len(data):
        raise DataError(f"{len(data):,} images but {len(labels):,} labels", where)
    return _cifar_tensors(data, np.asarray(labels, dtype=np.int64), where)


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
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _numpy_reconstruct() -> Callable:
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _BatchUnpickler(pickle.Unpickler):
    """Admits only what official CIFAR batches reference: numpy's array reconstruction.

    Anything else a pickle names (``os.system``, ``builtins.eval`` ...) is refused before it can
    be called, so a hostile file cannot run code.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        ("_codecs", "encode"): lambda: _latin1_encode,
    }

    def __init__(self, file, where: Position):
        super().__init__(file, encoding="bytes")
        self.where = where

    def find_class(self, module: str, name: str):
        allowed = self._ALLOWED.get((module, name))
        if allowed is None:
            raise DataError(f"refusing to unpickle: the file references {module}.{name}, which a "
                            f"CIFAR-10 batch never does (a tampered or foreign file?)", self.where)
        return allowed()


# ----------------------------------------------------------------------------------- Fashion-MNIST

def load_fashion_mnist(data_dir: Optional[PathLike] = None,
                       counts: tuple[int, int] = FASHION_MNIST_COUNTS) -> Dataset:
    """Fashion-MNIST from ``data_dir`` if given, else ``$ARCHCALC_DATA``/the cache, else Debian's folder."""
    folders = [data_folder(data_dir)] if data_dir is not None else [data_folder(), DEBIAN_FASHION_MNIST]
    for folder in folders:
        if all((folder / f).is_file() for f in _FASHION_FILES.values()):
            return _read_fashion_mnist(folder, counts)
    raise DataError(f"Fashion-MNIST not found in {' or '.join(map(str, folders))} (looked for "
                    f"{', '.join(_FASHION_FILES.values())}); provide it with --data-dir DIR, or by "
                    f"setting $ARCHCALC_DATA=DIR, or with 'apt-get install dataset-fashion-mnist'")


def _read_fashion_mnist(folder: Path, counts: tuple[int, int]) -> Dataset:
    arrays = {key: read_idx(folder / name) for key, name in _FASHION_FILES.items()}
    for split, count in (("train", counts[0]), ("test", counts[1])):
        images, labels = arrays[f"{split}_x"], arrays[f"{split}_y"]
        where = Position(str(folder / _FASHION_FILES[f"{split}_x"]))
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.shape[0] != count:
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


def read_idx(path: Path) -> np.ndarray:
    """One gzipped IDX file of unsigned bytes: magic ``00 00 08 ndim``, ndim big-endian uint32 sizes."""
    where = Position(str(path))
    try:
        with gzip.open(path, "rb") as f:
            blob = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read as gzip (truncated or foreign?): {exc}", where) from exc
    if len(blob) < 4 or blob[0:2] != b"\0\0" or blob[2] != 0x08 or not 1 <= blob[3] <= 4:
        raise DataError(f"not an IDX file of unsigned bytes (magic {blob[:4].hex() or 'missing'})", where)
    ndim = blob[3]
    header = 4 + 4 * ndim
    if len(blob) < header:
        raise DataError("IDX header is truncated", where)
    shape = tuple(int.from_bytes(blob[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(blob) != expected:
        raise DataError(f"{len(blob):,} bytes, but the header's shape {shape} needs {expected:,} "
                        f"(truncated or foreign?)", where)
    return np.frombuffer(blob, dtype=np.uint8, offset=header).reshape(shape)


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
