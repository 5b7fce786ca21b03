"""Hostile data files: each is refused in one line (exit 2 at the CLI), never a traceback, a
hang or gigabytes of memory.

Every case is built here from its description (issue 9). The bombs and the blocking cases run
in a subprocess with an address-space limit (``RLIMIT_AS``) and a timeout, so a regression
fails the test instead of eating the machine or hanging the suite.
"""
from __future__ import annotations

import gzip
import http.server
import io
import os
import pickle
import random
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from archcalc.cli import app
from archcalc.errors import DataError
from archcalc.training import datasets
from archcalc.training.datasets import download_cifar10, load_fashion_mnist, read_cifar10, read_idx
from tests.test_datasets import (COUNTS, binary_files, fake_batches, idx_bytes, python_files,
                                 write_fashion, write_source)

ROOT = Path(__file__).resolve().parent.parent
MEMORY_LIMIT = 3 * 2**30   # address space for a child: torch and numpy fit, the bombs do not


def refused(call, *args, **kwargs) -> str:
    """The one-line message of the DataError that ``call`` raises."""
    with pytest.raises(DataError) as error:
        call(*args, **kwargs)
    message = str(error.value)
    assert "\n" not in message and "\r" not in message and len(message) < 600
    return message


def in_child(code: str, timeout: float = 60) -> str:
    """Run ``code`` (which prints a DataError's message) in a fresh Python with at most
    MEMORY_LIMIT of address space and ``timeout`` seconds; its one line of output."""
    def limit():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    prelude = ("import sys\nfrom pathlib import Path\nfrom archcalc.errors import DataError\n"
               "from archcalc.training import datasets\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit, env=env, cwd=ROOT)
    assert done.returncode == 0 and done.stderr == "", done.stderr[-3000:]
    assert done.stdout.count("\n") == 1, done.stdout
    return done.stdout.strip()


def refused_in_child(call: str, timeout: float = 60) -> str:
    """The DataError message of ``call`` (an expression over ``datasets`` and ``Path``), made in
    a child process under :func:`in_child`'s limits."""
    return in_child(f"try:\n    {call}\nexcept DataError as e:\n    print(e)\n", timeout)


def via_cli(tmp_path: Path, data: Path, dataset: str = "cifar10") -> str:
    """``archcalc train`` on ``data``: exit 2 and the error as one line on stderr."""
    result = CliRunner().invoke(app, ["train", dataset, "--data-dir", str(data),
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
    return result.stderr.strip()


def pickled_source(tmp_path: Path, test_batch: bytes, archive: bool = True) -> Path:
    files = python_files(fake_batches())
    files["test_batch"] = test_batch
    return write_source(tmp_path, "python", files, archive)


# ---------------------------------------------------------------------------- pickles: size, labels

class Call:
    """Pickles as ``func(*args)``: how a hostile batch names a call."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class Build:
    """Pickles as ``func(*args)`` followed by ``__setstate__(state)``, as an ndarray does."""

    def __init__(self, state, func, *args):
        self.state, self.func, self.args = state, func, args

    def __reduce__(self):
        return self.func, self.args, self.state


def batch(data, labels) -> bytes:
    return pickle.dumps({b"batch_label": b"x", b"labels": labels, b"data": data,
                         b"filenames": []}, protocol=2)


ZERO_STRIDE = batch(Call(np.ndarray, (2_000_000, 3072), np.dtype("u1"), b"\0", 0, (0, 0)), [0])
HUGE_STATE = batch(Build((1, (2_000_000, 3072), np.dtype("u1"), False, b"\0" * 3072),
                         np.ndarray.__reduce__(np.zeros(1))[0], np.ndarray, (0,), b"b"), [0])


def test_zero_stride_view_is_refused_without_a_copy(tmp_path):
    """82 KB that once made a 5.7 GB copy: numpy.ndarray called with strides (0, 0)."""
    source = pickled_source(tmp_path, ZERO_STRIDE)
    message = refused_in_child(f"datasets.read_cifar10(Path({str(source)!r}), counts=(20, 4))")
    assert message == (f"{source}[cifar-10-batches-py/test_batch]: refusing to unpickle: the file "
                       f"calls numpy.ndarray directly, which a CIFAR-10 batch never does (a "
                       f"tampered or foreign file?)")
    assert "refusing to unpickle" in via_cli(tmp_path, source)


def test_array_state_declaring_more_than_its_bytes_is_refused(tmp_path):
    source = pickled_source(tmp_path, HUGE_STATE)
    message = refused_in_child(f"datasets.read_cifar10(Path({str(source)!r}), counts=(20, 4))")
    assert message.endswith("refusing to unpickle: an array that is not at most 10,000×3,072 "
                            "uint8 bytes held in the file (a tampered or foreign file?)")


@pytest.mark.parametrize("array", [np.zeros((2, 3072), np.int64), np.zeros((2, 3072), np.uint8).T,
                                   np.zeros((2, 3071), np.uint8), np.zeros(3072, np.uint8),
                                   np.array([[object()] * 3072], dtype=object)],
                         ids=["int64", "fortran", "3071-wide", "1-d", "objects"])
def test_arrays_unlike_a_batch_are_refused(tmp_path, array):
    try:
        blob = batch(array, [0] * len(array))
    except Exception:
        pytest.skip("numpy cannot pickle this array")
    message = refused(read_cifar10, pickled_source(tmp_path, blob, archive=False), counts=COUNTS)
    assert "refusing to unpickle" in message


def test_label_beyond_int64_is_one_line(tmp_path):
    blob = batch(np.zeros((1, 3072), np.uint8), [2**70])
    source = pickled_source(tmp_path, blob)
    assert refused(read_cifar10, source, counts=COUNTS).endswith(
        "test_batch]: label 0 is an integer of 71 bits, expected an integer 0..9")
    assert "expected an integer 0..9" in via_cli(tmp_path, source)


@pytest.mark.parametrize("label,shown", [(-1, "-1"), (10, "10"), (1.0, "1.0"), (True, "True"),
                                         (b"3", "a bytes"), (10**5000, "an integer of 16,610 bits")],
                         ids=["-1", "10", "float", "bool", "bytes", "10^5000"])
def test_labels_must_be_integers_0_to_9(tmp_path, label, shown):
    blob = batch(np.zeros((1, 3072), np.uint8), [label])
    message = refused(read_cifar10, pickled_source(tmp_path, blob, archive=False), counts=COUNTS)
    assert message.endswith(f"label 0 is {shown}, expected an integer 0..9")


def test_non_utf8_keys_are_one_line(tmp_path):
    files = python_files(fake_batches())
    files["test_batch"] = pickle.dumps({b"\xff\xfe": 1, **pickle.loads(files["test_batch"])}, protocol=2)
    source = write_source(tmp_path, "python", files, archive=True)
    assert refused(read_cifar10, source, counts=COUNTS).endswith(
        "a key of the batch dict is not UTF-8 text (a tampered or foreign file?)")


# ------------------------------------------------------------------------------ archives: sizes

def gz_tar(members: list[tuple[str, int, bytes]]) -> bytes:
    """A .tar.gz whose headers declare the given sizes, whatever data follows them."""
    raw = b"".join(tarfile.TarInfo(name).tobuf(format=tarfile.GNU_FORMAT) if size is None else
                   _header(name, size) + data for name, size, data in members)
    return gzip.compress(raw + b"\0" * 1024)


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.GNU_FORMAT)


def test_tar_header_claiming_a_terabyte_is_refused_before_reading(tmp_path):
    """129 bytes that once raised MemoryError."""
    source = tmp_path / "cifar-10-python.tar.gz"
    source.write_bytes(gz_tar([("cifar-10-batches-py/data_batch_1", 2**40, b"")]))
    assert source.stat().st_size < 200
    message = refused_in_child(f"datasets.read_cifar10(Path({str(source)!r}))")
    assert message == (f"{source}: member cifar-10-batches-py/data_batch_1 declares "
                       f"1,099,511,627,776 bytes, more than 67,108,864, the most it may hold in a "
                       f"CIFAR-10 archive (a tampered or foreign archive?)")
    assert "declares 1,099,511,627,776 bytes" in via_cli(tmp_path, source)


def test_binary_batch_larger_than_ten_thousand_records_is_refused(tmp_path):
    source = tmp_path / "cifar-10-binary.tar.gz"
    size = 10_001 * 3073
    source.write_bytes(gz_tar([("cifar-10-batches-bin/data_batch_1.bin", size, bytes(size))]))
    assert "declares 30,733,073 bytes, more than 30,730,000" in refused(read_cifar10, source)


@pytest.fixture(scope="module")
def inflating_archive(tmp_path_factory) -> Path:
    """Fourteen members of 30 MiB of zeros each (each within what a member may declare), 420 MiB
    gzipped to ~420 KB: the cap on the inflated archive (six batches at their largest) must
    stop it."""
    path = tmp_path_factory.mktemp("bomb") / "cifar-10-python.tar.gz"
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    with open(path, "wb") as out:
        for i in range(14):
            out.write(packer.compress(_header(f"cifar-10-batches-py/extra_{i}", 30 << 20)))
            for _ in range(30):
                out.write(packer.compress(zeros))
        out.write(packer.flush())
    return path


def test_gzip_bomb_stops_at_the_archive_cap(inflating_archive):
    assert inflating_archive.stat().st_size < 2**20
    start = time.monotonic()
    message = refused_in_child(f"datasets.read_cifar10(Path({str(inflating_archive)!r}))")
    assert message == (f"{inflating_archive}: inflates to more than 403,701,760 bytes, more than a "
                       f"CIFAR-10 archive holds (a compression bomb or foreign file?)")
    assert time.monotonic() - start < 30


def test_folder_batch_larger_than_known_is_refused(tmp_path):
    files = binary_files(fake_batches())
    source = write_source(tmp_path, "binary", files, archive=False)
    with open(source / "data_batch_2.bin", "r+b") as f:
        f.truncate(30_730_000 + 1)   # sparse: no disk used
    assert refused(read_cifar10, source, counts=COUNTS) == (
        f"{source / 'data_batch_2.bin'}: holds more than 30,730,000 bytes, the most a CIFAR-10 "
        f"batch can hold (a tampered or foreign file?)")


# ----------------------------------------------------------------------- non-regular files, hangs

def test_fifo_named_like_the_archive_is_refused_at_once(tmp_path):
    fifo = tmp_path / "cifar-10-python.tar.gz"
    os.mkfifo(fifo)
    message = refused_in_child(f"datasets.load_cifar10(Path({str(tmp_path)!r}))", timeout=30)
    assert message == f"{fifo}: is a FIFO, not a regular file; data is only read from regular files"
    assert "is a FIFO" in via_cli(tmp_path, tmp_path)


@pytest.mark.parametrize("target", ["/dev/zero", "fifo", "folder"])
def test_batch_in_a_folder_must_be_a_regular_file(tmp_path, target):
    source = write_source(tmp_path, "binary", binary_files(fake_batches()), archive=False)
    batch_path = source / "data_batch_3.bin"
    batch_path.unlink()
    if target == "fifo":
        os.mkfifo(batch_path)
    elif target == "folder":
        batch_path.mkdir()
    else:
        batch_path.symlink_to(target)
    kind = {"/dev/zero": "a character device", "fifo": "a FIFO", "folder": "a folder"}[target]
    assert refused(read_cifar10, source, counts=COUNTS) == (
        f"{batch_path}: is {kind}, not a regular file; data is only read from regular files")


def test_fifo_among_fashion_mnist_files_is_refused(tmp_path):
    write_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    os.mkfifo(tmp_path / "t10k-labels-idx1-ubyte.gz")
    assert "is a FIFO, not a regular file" in refused(load_fashion_mnist, tmp_path, counts=(6, 3))


# ------------------------------------------------------------------------------------------- IDX

def test_idx_dimensions_whose_product_overflows_are_one_line(tmp_path):
    """(65536, 65536, 65536, 65536): 2^64 items, 0 in int64 arithmetic."""
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 4]) + (65536).to_bytes(4, "big") * 4))
    assert refused(read_idx, path) == (
        f"{path}: the header's shape (65536, 65536, 65536, 65536) declares "
        f"18,446,744,073,709,551,616 bytes of data, more than the 47,040,000 this file may hold "
        f"(a tampered or foreign file?)")


def test_idx_larger_than_the_known_file_is_refused(tmp_path):
    write_fashion(tmp_path)
    header = bytes([0, 0, 8, 1]) + (60_001).to_bytes(4, "big")
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + bytes(60_001)))
    message = refused(load_fashion_mnist, tmp_path)
    assert message.endswith("declares 60,001 bytes of data, more than the 60,000 this file may "
                            "hold (a tampered or foreign file?)")
    assert "train-labels-idx1-ubyte.gz" in message
    assert "60,001 bytes of data" in via_cli(tmp_path, tmp_path, "fashion-mnist")


def test_idx_gzip_bomb_stops_one_byte_past_the_header(tmp_path):
    """The header declares 10 images; 300 MB of zeros follow, gzipped to ~300 KB."""
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(path, "wb") as out:
        out.write(packer.compress(idx_bytes(np.zeros((10, 28, 28)))))
        for _ in range(300):
            out.write(packer.compress(bytes(1 << 20)))
        out.write(packer.flush())
    message = refused_in_child(f"datasets.read_idx(Path({str(path)!r}))")
    assert message == (f"{path}: longer than the 7,856 bytes the header's shape (10, 28, 28) "
                       f"needs (a foreign file?)")


# ------------------------------------------------------------------------------------- truncation

@pytest.mark.parametrize("kind", ["binary", "python"])
@pytest.mark.parametrize("keep", [0, 10, 100, 0.25, 0.5, 0.99])
def test_truncated_archives_are_one_line(tmp_path, kind, keep):
    files = binary_files(fake_batches()) if kind == "binary" else python_files(fake_batches())
    source = write_source(tmp_path, kind, files, archive=True)
    blob = source.read_bytes()
    source.write_bytes(blob[:keep if isinstance(keep, int) else int(len(blob) * keep)])
    assert str(source) in refused(read_cifar10, source, counts=COUNTS)


@pytest.mark.parametrize("cut", [0, 1, 3, 8, 15, 100])
def test_truncated_idx_is_one_line(tmp_path, cut):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((5, 28, 28))))[:cut] if cut < 20 else
                     gzip.compress(idx_bytes(np.zeros((5, 28, 28)))[:cut]))
    refused(read_idx, path)


# --------------------------------------------------------------------------------------- download

class Server:
    """A local HTTP server answering every GET with ``respond(handler)``."""

    def __init__(self, respond):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                try:
                    respond(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/cifar-10-python.tar.gz"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def trickle(every: float, chunk: bytes, length: int = 10**6):
    def respond(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(length))
        handler.end_headers()
        for _ in range(length // len(chunk)):
            handler.wfile.write(chunk)
            handler.wfile.flush()
            time.sleep(every)
    return respond


def test_trickling_server_is_abandoned_for_its_rate(tmp_path):
    """A byte every 0.05 s: 20 bytes/s against the 1,000 required over a 0.5 s window."""
    start = time.monotonic()
    with Server(trickle(0.05, b"x")) as server:
        message = refused(download_cifar10, tmp_path, url=server.url, min_rate=1000,
                          rate_window_s=0.5, deadline_s=10)
    assert time.monotonic() - start < 5
    assert message.startswith(f"download from {server.url} is too slow (")
    assert message.endswith("bytes/s over the last 0.5 s, at least 1,000 needed); try again "
                            "later, or fetch the file yourself and pass --data-dir")
    assert list(tmp_path.iterdir()) == []


def test_steady_but_endless_server_meets_the_deadline(tmp_path):
    start = time.monotonic()
    with Server(trickle(0.01, b"x" * 100)) as server:
        message = refused(download_cifar10, tmp_path, url=server.url, min_rate=100,
                          rate_window_s=0.5, deadline_s=1.5)
    assert 1.5 <= time.monotonic() - start < 5
    assert message.startswith(f"download from {server.url} gave up after 1.5 s with ")
    assert list(tmp_path.iterdir()) == []


def test_silent_server_times_out(tmp_path):
    with Server(lambda handler: time.sleep(3)) as server:
        start = time.monotonic()
        message = refused(download_cifar10, tmp_path, url=server.url, rate_window_s=0.5)
    assert time.monotonic() - start < 2.5
    assert message.startswith(f"could not download CIFAR-10 from {server.url}: ")
    assert "timed out" in message


def test_server_sending_more_than_the_archive_is_cut_off(tmp_path):
    def respond(handler):
        handler.send_response(200)
        handler.end_headers()
        handler.wfile.write(bytes(5000))
    with Server(respond) as server:
        message = refused(download_cifar10, tmp_path, url=server.url, size=4096)
    assert message == (f"{server.url} sent more than the 4,096 bytes of the CIFAR-10 archive; "
                       f"not keeping it")
    with Server(trickle(0, b"x" * 5000, length=5000)) as server:
        assert refused(download_cifar10, tmp_path, url=server.url, size=4096) == (
            f"{server.url} serves 5,000 bytes; the CIFAR-10 archive has 4,096")
    assert list(tmp_path.iterdir()) == []


def test_download_reports_progress(tmp_path):
    import hashlib
    payload = os.urandom(300_000)
    seen = []

    def respond(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        for i in range(0, len(payload), 65536):
            handler.wfile.write(payload[i:i + 65536])
            handler.wfile.flush()
    with Server(respond) as server:
        target = download_cifar10(tmp_path, url=server.url, md5=hashlib.md5(payload).hexdigest(),
                                  on_progress=lambda done, total: seen.append((done, total)))
    assert target.read_bytes() == payload
    assert seen[-1] == (len(payload), len(payload))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and {t for _, t in seen} == {len(payload)}


# ------------------------------------------------------------------------------------------ fuzzing

def mutate(blob: bytes, rnd: random.Random, edits: int) -> bytes:
    data = bytearray(blob)
    for _ in range(edits):
        at = rnd.randrange(len(data) + 1)
        action = rnd.random()
        if action < 0.5 and at < len(data):
            data[at] = rnd.randrange(256)
        elif action < 0.7:
            del data[at:at + rnd.randrange(1, 64)]
        elif action < 0.85:
            data[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 16)))
        else:
            data = data[:at]
        if not data:
            break
    return bytes(data)


def expect_only_data_errors(call, *args, **kwargs) -> None:
    try:
        call(*args, **kwargs)
    except DataError as error:
        assert "\n" not in str(error)


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(rnd=st.randoms(use_true_random=False), edits=st.integers(1, 8),
       kind=st.sampled_from(["binary", "python"]), layer=st.sampled_from(["gzip", "tar", "member"]))
def test_mutated_cifar_archives_raise_only_data_errors(tmp_path_factory, rnd, edits, kind, layer):
    """Mutations at each layer: the gzip bytes, the tar inside, or one batch inside that."""
    folder = tmp_path_factory.mktemp("fuzz")
    files = binary_files(fake_batches()) if kind == "binary" else python_files(fake_batches())
    if layer == "member":
        name = rnd.choice([n for n in files if n.startswith(("data_batch", "test_batch"))])
        files[name] = mutate(files[name], rnd, edits)
        source = write_source(folder, kind, files, archive=rnd.random() < 0.5)
    else:
        source = write_source(folder, kind, files, archive=True)
        blob = source.read_bytes()
        if layer == "gzip":
            blob = mutate(blob, rnd, edits)
        else:
            blob = gzip.compress(mutate(gzip.decompress(blob), rnd, edits))
        source.write_bytes(blob)
    expect_only_data_errors(read_cifar10, source, counts=COUNTS)


@FUZZ
@given(rnd=st.randoms(use_true_random=False), edits=st.integers(1, 8), inflated=st.booleans())
def test_mutated_idx_files_raise_only_data_errors(tmp_path_factory, rnd, edits, inflated):
    folder = tmp_path_factory.mktemp("fuzz")
    write_fashion(folder)
    name = rnd.choice(list(datasets._FASHION_FILES.values()))
    blob = (folder / name).read_bytes()
    blob = gzip.compress(mutate(gzip.decompress(blob), rnd, edits)) if inflated else mutate(blob, rnd, edits)
    (folder / name).write_bytes(blob)
    expect_only_data_errors(load_fashion_mnist, folder, counts=(6, 3))
