"""Data loading: both official CIFAR-10 layouts, safe unpickling, IDX files, batch transforms.

The CIFAR-10 fakes are tiny (four images per batch) but laid out exactly like the official
downloads, and written here in the same way the official files are (planar R, G, B rows).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from archcalc.training import datasets
from archcalc.training.datasets import (BatchTransform, channel_stats, download_cifar10, load_cifar10,
                               load_dataset, load_fashion_mnist, make_synthetic, read_cifar10, read_idx)
from archcalc.errors import DataError

PER_BATCH = 4
COUNTS = (5 * PER_BATCH, PER_BATCH)
BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def fake_batches(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per batch name: planar pixel rows N×3072 and labels N."""
    rng = np.random.default_rng(seed)
    return {name: (rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8),
                   rng.integers(0, 10, PER_BATCH, dtype=np.uint8)) for name in BATCHES}


def binary_files(batches) -> dict[str, bytes]:
    files = {f"{name}.bin": np.concatenate([y[:, None], x], axis=1).tobytes() for name, (x, y) in batches.items()}
    files["batches.meta.txt"] = "\n".join(datasets.CIFAR10_CLASSES).encode()
    return files


def python_files(batches) -> dict[str, bytes]:
    files = {name: pickle.dumps({b"batch_label": name.encode(), b"labels": [int(v) for v in y],
                                 b"data": x, b"filenames": [b"x.png"] * len(y)}, protocol=2)
             for name, (x, y) in batches.items()}
    files["batches.meta"] = pickle.dumps({b"label_names": [c.encode() for c in datasets.CIFAR10_CLASSES]}, protocol=2)
    return files


def write_source(folder: Path, kind: str, files: dict[str, bytes], archive: bool) -> Path:
    """Write ``files`` as the official folder or .tar.gz of that format; return its path."""
    inner = "cifar-10-batches-bin" if kind == "binary" else "cifar-10-batches-py"
    if not archive:
        (folder / inner).mkdir(parents=True)
        for name, payload in files.items():
            (folder / inner / name).write_bytes(payload)
        return folder / inner
    path = folder / ("cifar-10-binary.tar.gz" if kind == "binary" else "cifar-10-python.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(f"{inner}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


SOURCES = [("binary", False), ("binary", True), ("python", False), ("python", True)]


@pytest.mark.parametrize("kind,archive", SOURCES)
def test_reads_every_official_layout(tmp_path, kind, archive):
    batches = fake_batches()
    files = binary_files(batches) if kind == "binary" else python_files(batches)
    data = read_cifar10(write_source(tmp_path, kind, files, archive), counts=COUNTS)
    x, y = batches["data_batch_2"]
    assert data.train_x.shape == (20, 3, 32, 32) and data.train_x.dtype == torch.uint8
    assert data.test_x.shape == (4, 3, 32, 32) and data.train_y.dtype == torch.int64
    # Image 1 of batch 2 is training image 5; row 2, column 3 of its green plane:
    assert int(data.train_x[PER_BATCH + 1, 1, 2, 3]) == int(x[1][1024 + 2 * 32 + 3])
    assert data.train_y[PER_BATCH:2 * PER_BATCH].tolist() == y.tolist()
    assert data.test_y.tolist() == batches["test_batch"][1].tolist()
    assert (data.name, data.input_shape, data.num_classes, data.synthetic) == ("cifar10", (3, 32, 32), 10, False)


def test_accepts_pickles_from_numpy_1(tmp_path):
    """Official batches name numpy.core.multiarray, which numpy 2 moved to numpy._core."""
    files = {k: v.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
             for k, v in python_files(fake_batches()).items()}
    assert b"numpy.core.multiarray" in files["test_batch"]
    data = read_cifar10(write_source(tmp_path, "python", files, archive=True), counts=COUNTS)
    assert len(data.train_y) == 20


class RunsShell:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("archive", [False, True])
def test_refuses_a_pickle_that_would_run_code(tmp_path, archive):
    marker = tmp_path / "pwned"
    files = python_files(fake_batches())
    files["test_batch"] = pickle.dumps({b"data": RunsShell(f"touch {marker}"), b"labels": []}, protocol=2)
    source = write_source(tmp_path, "python", files, archive)
    with pytest.raises(DataError) as error:
        read_cifar10(source, counts=COUNTS)
    assert "refusing to unpickle" in str(error.value) and "system" in str(error.value)
    assert "test_batch" in str(error.value) and str(source) in str(error.value)
    assert not marker.exists()


def test_refuses_codecs_other_than_latin1(tmp_path):
    files = python_files(fake_batches())
    files["test_batch"] = files["test_batch"].replace(b"latin1", b"rot_13")
    with pytest.raises(DataError, match="rot_13"):
        read_cifar10(write_source(tmp_path, "python", files, archive=False), counts=COUNTS)


def test_truncated_binary_batch_is_named(tmp_path):
    files = binary_files(fake_batches())
    files["data_batch_3.bin"] = files["data_batch_3.bin"][:-100]
    source = write_source(tmp_path, "binary", files, archive=False)
    with pytest.raises(DataError, match="not a whole number of 3,073-byte records") as error:
        read_cifar10(source, counts=COUNTS)
    assert str(source / "data_batch_3.bin") in str(error.value)


@pytest.mark.parametrize("kind", ["binary", "python"])
def test_truncated_archive_is_named(tmp_path, kind):
    batches = fake_batches()
    source = write_source(tmp_path, kind, binary_files(batches) if kind == "binary" else python_files(batches), True)
    source.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated") as error:
        read_cifar10(source, counts=COUNTS)
    assert str(source) in str(error.value)


def test_foreign_file_is_refused(tmp_path):
    source = tmp_path / "cifar-10-python.tar.gz"
    source.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(DataError, match="cannot read as a .tar.gz archive"):
        read_cifar10(source, counts=COUNTS)


def test_truncated_pickle_is_named(tmp_path):
    files = python_files(fake_batches())
    files["data_batch_1"] = files["data_batch_1"][:500]
    with pytest.raises(DataError, match="data_batch_1.*truncated or foreign"):
        read_cifar10(write_source(tmp_path, "python", files, archive=False), counts=COUNTS)


def test_archive_without_the_batches_is_refused(tmp_path):
    files = binary_files(fake_batches())
    del files["test_batch.bin"]
    with pytest.raises(DataError, match="archive lacks cifar-10-batches-bin/test_batch.bin"):
        read_cifar10(write_source(tmp_path, "binary", files, archive=True), counts=COUNTS)


def test_wrong_image_count_is_reported(tmp_path):
    source = write_source(tmp_path, "binary", binary_files(fake_batches()), archive=True)
    with pytest.raises(DataError, match="20 training images, expected 50,000"):
        read_cifar10(source)


def test_labels_out_of_range_are_refused(tmp_path):
    batches = fake_batches()
    batches["test_batch"][1][0] = 10
    with pytest.raises(DataError, match=r"labels range \d+\.\.10, expected 0\.\.9"):
        read_cifar10(write_source(tmp_path, "binary", binary_files(batches), archive=False), counts=COUNTS)


def test_binary_format_is_preferred(tmp_path):
    write_source(tmp_path, "python", python_files(fake_batches(seed=1)), archive=True)
    write_source(tmp_path, "binary", binary_files(fake_batches(seed=2)), archive=True)
    data = load_cifar10(tmp_path, counts=COUNTS)
    assert data.test_y.tolist() == fake_batches(seed=2)["test_batch"][1].tolist()


@pytest.mark.parametrize("archive", [False, True])
def test_data_dir_may_name_the_archive_or_folder_itself(tmp_path, archive):
    source = write_source(tmp_path, "binary", binary_files(fake_batches()), archive)
    assert len(load_cifar10(source, counts=COUNTS).test_y) == PER_BATCH


def test_no_data_says_where_it_looked_and_how_to_provide_it(tmp_path):
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", data_dir=tmp_path)
    message = str(error.value)
    for needed in (str(tmp_path), "cifar-10-binary.tar.gz", "--data-dir", "$ARCHCALC_DATA", "--download"):
        assert needed in message


def test_data_folder_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("ARCHCALC_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.data_folder() == tmp_path / "xdg" / "archcalc"
    monkeypatch.setenv("ARCHCALC_DATA", str(tmp_path / "env"))
    assert datasets.data_folder() == tmp_path / "env"
    assert datasets.data_folder(tmp_path / "given") == tmp_path / "given"


def test_download_keeps_only_a_verified_whole_file(tmp_path):
    served = tmp_path / "served.tar.gz"
    served.write_bytes(b"pretend archive")
    url, folder = served.as_uri(), tmp_path / "cache"
    with pytest.raises(DataError, match="MD5"):
        download_cifar10(folder, url=url, md5="0" * 32)
    assert list(folder.iterdir()) == []
    target = download_cifar10(folder, url=url, md5=hashlib.md5(b"pretend archive").hexdigest())
    assert target == folder / "cifar-10-python.tar.gz" and target.read_bytes() == b"pretend archive"
    assert [p.name for p in folder.iterdir()] == ["cifar-10-python.tar.gz"]


def test_failed_download_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="could not download"):
        download_cifar10(tmp_path, url=(tmp_path / "absent").as_uri())
    assert list(tmp_path.iterdir()) == []


def test_unknown_name_suggests_the_near_one():
    with pytest.raises(DataError, match="did you mean 'cifar10'"):
        load_dataset("cifar-10")


# ----------------------------------------------------------------------------------- Fashion-MNIST

def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion(folder: Path, train: int = 6, test: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (train, 28, 28)),
              "train-labels-idx1-ubyte.gz": rng.integers(0, 10, train),
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (test, 28, 28)),
              "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, test)}
    for name, array in arrays.items():
        (folder / name).write_bytes(gzip.compress(idx_bytes(array)))
    return arrays


def test_reads_fashion_mnist_idx_files(tmp_path):
    arrays = write_fashion(tmp_path)
    data = load_fashion_mnist(tmp_path, counts=(6, 3))
    assert data.train_x.shape == (6, 1, 28, 28) and data.test_x.shape == (3, 1, 28, 28)
    assert torch.equal(data.train_x[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte.gz"].astype(np.uint8)))
    assert data.test_y.tolist() == arrays["t10k-labels-idx1-ubyte.gz"].tolist()
    assert (data.name, data.input_shape, data.classes[9]) == ("fashion-mnist", (1, 28, 28), "Ankle boot")


def test_idx_with_a_foreign_magic_is_refused(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + bytes(12)))  # 0x0D: float data
    with pytest.raises(DataError, match="not an IDX file of unsigned bytes"):
        read_idx(path)


def test_truncated_idx_is_refused(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((5, 28, 28)))[:-1]))
    with pytest.raises(DataError, match=r"header's shape \(5, 28, 28\) needs 3,936"):
        read_idx(path)


def test_truncated_gzip_is_refused(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((5, 28, 28))))[:40])
    with pytest.raises(DataError, match="cannot read as gzip"):
        read_idx(path)


def test_fashion_mnist_counts_and_image_size_are_checked(tmp_path):
    write_fashion(tmp_path)
    with pytest.raises(DataError, match=r"expected \(60000, 28, 28\)"):
        load_fashion_mnist(tmp_path)


def test_fashion_mnist_not_found_names_the_folder(tmp_path):
    with pytest.raises(DataError, match=f"Fashion-MNIST not found in {tmp_path}"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


@pytest.mark.skipif(not datasets.DEBIAN_FASHION_MNIST.is_dir(),
                    reason="Debian's dataset-fashion-mnist package is not installed")
def test_debian_fashion_mnist(monkeypatch, tmp_path):
    monkeypatch.setenv("ARCHCALC_DATA", str(tmp_path))  # empty, so the Debian folder is used
    data = load_dataset("fashion-mnist")
    assert data.train_x.shape == (60000, 1, 28, 28) and data.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(data.test_y).tolist() == [1000] * 10


# ----------------------------------------------------------------------------- synthetic, transforms

def test_synthetic_is_fixed_and_labelled_as_such():
    a, b = make_synthetic(train=200, test=50), make_synthetic(train=200, test=50)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.synthetic and a.name == "synthetic" and a.input_shape == (3, 32, 32) and a.num_classes == 10
    assert set(a.train_y.tolist()) == set(range(10))


def test_normalization_centres_each_channel():
    data = make_synthetic(train=500, test=10)
    mean, std = channel_stats(data.train_x, chunk=64)
    expected = data.train_x.double().transpose(0, 1).reshape(3, -1)
    assert torch.allclose(mean.double(), expected.mean(1), atol=1e-3)
    assert torch.allclose(std.double(), expected.std(1, unbiased=False), atol=1e-3)
    out = BatchTransform(mean, std)(data.train_x)
    assert out.dtype == torch.float32
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(out.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)


def crop_and_flip_one_by_one(images, generator, padding=4):
    """The obvious per-image version, drawing the same random numbers in the same order."""
    n, _, h, w = images.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    out = []
    for i in range(n):
        dy, dx = int(offsets[0, i]), int(offsets[1, i])
        crop = padded[i, :, dy:dy + h, dx:dx + w]
        out.append(crop.flip(2) if flips[i] else crop)
    return torch.stack(out)


def test_augmentation_is_a_padded_crop_and_flip_per_image():
    images = make_synthetic(train=64, test=1).train_x
    transform = BatchTransform(torch.zeros(3), torch.ones(3), augment=True)
    batch = transform.crop_and_flip(images, torch.Generator().manual_seed(3))
    expected = crop_and_flip_one_by_one(images, torch.Generator().manual_seed(3))
    assert torch.equal(batch, expected)
    assert not torch.equal(batch, images)


def test_augmentation_repeats_with_the_same_generator():
    images = make_synthetic(train=32, test=1).train_x
    transform = BatchTransform(torch.zeros(3), torch.ones(3), augment=True)
    first = transform(images, torch.Generator().manual_seed(7))
    again = transform(images, torch.Generator().manual_seed(7))
    other = transform(images, torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)
