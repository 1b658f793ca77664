"""The IDX loader against hand-written files, fake data sets served from file:// mirrors, and
the real MNIST test split and Fashion-MNIST (skipped where absent)."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from shared import need

from jaxprecond.tasks import idx

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FASHION = Path("/usr/share/datasets/fashion-mnist")

#: MNIST's test split: images per digit 0 … 9 (LeCun et al.'s published counts).
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

TYPE_CODES = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``, written with ``struct`` independently of the reader."""
    header = struct.pack(">BBBB", 0, 0, TYPE_CODES[array.dtype.name], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, *, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No real data folder is found: HOME, XDG cache, $JAXPRECOND_DATA and the system root moved."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv(idx.DATA_ENV, raising=False)
    monkeypatch.setattr(idx, "DATASETS_ROOT", tmp_path / "system")
    return tmp_path


@pytest.fixture
def tiny(isolated, monkeypatch, rng):
    """A fake data set ``tiny`` (7 train and 3 test images), files in ``tmp/source``.

    Train files are listed by md5, test files by sha256, as the real table mixes both.
    """
    arrays = {
        "train": (rng.integers(0, 256, (7, 28, 28), np.uint8), rng.integers(0, 10, 7, np.uint8)),
        "test": (rng.integers(0, 256, (3, 28, 28), np.uint8), rng.integers(0, 10, 3, np.uint8)),
    }
    source = isolated / "source"
    files = {}
    for split, (images, labels) in arrays.items():
        for filename, array in zip(idx.SPLIT_FILES[split], (images, labels), strict=True):
            content = write(source / filename, idx_bytes(array), gz=True).read_bytes()
            algorithm = "md5" if split == "train" else "sha256"
            files[filename] = (f"{algorithm}:{hashlib.new(algorithm, content).hexdigest()}",)
    entry = {"mirrors": (source.as_uri() + "/",), "files": files}
    monkeypatch.setitem(idx.DATASETS, "tiny", entry)
    return arrays, source


# --- read_idx ------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-3, 0, 7], np.int8),
        np.array([[-30000, 2], [3, 30000]], np.int16),
        np.array([-(2**31), 2**31 - 1, 5], np.int32),
        np.array([[1.5, -2.25e-3], [np.pi, 1e30]], np.float32),
    ],
    ids=["uint8", "int8", "int16", "int32", "float32"],
)
def test_read_idx_round_trip(tmp_path, array, gz):
    path = write(tmp_path / "file-idx", idx_bytes(array), gz=gz)  # named without .gz
    result = idx.read_idx(path)
    assert result.dtype == array.dtype and result.dtype.isnative
    np.testing.assert_array_equal(result, array)


def test_read_idx_hand_written_bytes(tmp_path):
    data = bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 9, 8, 7])  # a uint8 vector (9, 8, 7)
    np.testing.assert_array_equal(idx.read_idx(write(tmp_path / "v", data)), [9, 8, 7])
    data = bytes([0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 1, 0, 0xFF, 0xFF, 0xFF, 0xFE])  # int32 (256, -2)
    np.testing.assert_array_equal(idx.read_idx(write(tmp_path / "w", data, gz=True)), [256, -2])


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x01\x02\x08\x01\x00\x00\x00\x01\x05", "bad magic number"),
        (b"\x00\x00", "bad magic number"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x01", "truncated IDX header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03\x05\x06", "needs 3 data bytes, the file has 2"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x05\x06", "needs 1 data bytes, the file has 2"),
        (b"\x1f\x8b\x08\x00garbage", "not a valid gzip file"),
    ],
    ids=["magic", "short", "type-code", "header", "too-short", "too-long", "gzip"],
)
def test_read_idx_malformed(tmp_path, data, message):
    path = write(tmp_path / "broken.gz", data)
    with pytest.raises(ValueError, match=message) as error:
        idx.read_idx(path)
    assert str(path) in str(error.value)


# --- the table and the search path ---------------------------------------------------------------


def test_table_lists_four_files_with_valid_digests():
    lengths = {"sha256": 64, "md5": 32}
    for name, entry in idx.DATASETS.items():
        filenames = [f for split in idx.SPLITS for f in idx.SPLIT_FILES[split]]
        assert sorted(entry["files"]) == sorted(filenames), name
        assert entry["mirrors"] and all(m.endswith("/") for m in entry["mirrors"])
        for digests in entry["files"].values():
            for digest in digests:
                algorithm, _, value = digest.partition(":")
                assert len(value) == lengths[algorithm] and int(value, 16) >= 0


def test_data_dirs_order(isolated, monkeypatch):
    monkeypatch.setenv(idx.DATA_ENV, str(isolated / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(isolated / "xdg"))
    assert idx.data_dirs("mnist", isolated / "arg") == [
        isolated / "arg" / "mnist",
        isolated / "arg",
        isolated / "env" / "mnist",
        isolated / "env",
        isolated / "xdg" / "jaxprecond" / "mnist",
        isolated / "system" / "mnist",
    ]


def test_data_dirs_defaults_and_duplicates(isolated, monkeypatch):
    monkeypatch.setenv(idx.DATA_ENV, str(isolated / "same"))
    folders = idx.data_dirs("fashion-mnist", isolated / "same")
    assert folders == [
        isolated / "same" / "fashion-mnist",
        isolated / "same",
        isolated / "home" / ".cache" / "jaxprecond" / "fashion-mnist",
        isolated / "system" / "fashion-mnist",
    ]


@pytest.mark.parametrize("call", [lambda: idx.data_dirs("cifar"), lambda: idx.cache_dir("cifar")])
def test_unknown_name(call):
    with pytest.raises(ValueError, match=r"'cifar'.*\['fashion-mnist', 'mnist'\]"):
        call()


def test_load_bad_name_and_split():
    with pytest.raises(ValueError, match=r"unknown data set 'emnist'.*'mnist'"):
        idx.load_idx_dataset("emnist", "test")
    with pytest.raises(ValueError, match=r"unknown split 'val'.*\('train', 'test'\)"):
        idx.load_idx_dataset("mnist", "val")


# --- loading, verification and download ----------------------------------------------------------


@pytest.mark.parametrize("where", ["named", "flat", "env"])
def test_load_from_folders(tiny, monkeypatch, where):
    arrays, source = tiny
    if where == "named":  # data_dir/<name>/
        (source.parent / "data").mkdir()
        source.rename(source.parent / "data" / "tiny")
        data_dir = source.parent / "data"
    elif where == "flat":  # data_dir itself
        data_dir = source
    else:
        monkeypatch.setenv(idx.DATA_ENV, str(source))
        data_dir = None
    for split in idx.SPLITS:
        images, labels = idx.load_idx_dataset("tiny", split, data_dir=data_dir)
        assert images.dtype == labels.dtype == np.uint8
        np.testing.assert_array_equal(images, arrays[split][0])
        np.testing.assert_array_equal(labels, arrays[split][1])


def test_a_folder_needs_both_files_of_the_split(tiny, monkeypatch):
    arrays, source = tiny
    partial = source.parent / "partial"
    partial.mkdir()
    (source / "t10k-images-idx3-ubyte.gz").rename(partial / "t10k-images-idx3-ubyte.gz")
    monkeypatch.setenv(idx.DATA_ENV, str(source))  # has the labels only
    with pytest.raises(FileNotFoundError):
        idx.load_idx_dataset("tiny", "test", data_dir=partial)  # has the images only


def test_checksum_mismatch_names_file_and_digests(tiny):
    _, source = tiny
    path = source / "t10k-labels-idx1-ubyte.gz"
    content = idx_bytes(np.array([1, 2, 3], np.uint8))
    path.write_bytes(gzip.compress(content, mtime=0))
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    expected = idx.DATASETS["tiny"]["files"][path.name][0]
    with pytest.raises(ValueError, match="checksum mismatch") as error:
        idx.load_idx_dataset("tiny", "test", data_dir=source)
    message = str(error.value)
    assert path.name in message and expected in message and f"sha256:{actual}" in message


def test_md5_and_alternative_digests_accepted(tiny, monkeypatch):
    _, source = tiny
    path = source / "t10k-images-idx3-ubyte.gz"
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    files = dict(idx.DATASETS["tiny"]["files"])
    files[path.name] = ("sha256:" + "0" * 64, f"md5:{md5}")  # the second one matches
    monkeypatch.setitem(idx.DATASETS["tiny"], "files", files)
    images, _ = idx.load_idx_dataset("tiny", "test", data_dir=source)
    assert images.shape == (3, 28, 28)


def test_verification_is_cached_per_path_and_mtime(tiny, monkeypatch):
    _, source = tiny
    calls = []
    digests = idx.file_digests
    monkeypatch.setattr(idx, "file_digests", lambda path: calls.append(path) or digests(path))
    idx.load_idx_dataset("tiny", "train", data_dir=source)
    idx.load_idx_dataset("tiny", "train", data_dir=source)
    assert len(calls) == 2  # each file hashed once
    calls.clear()
    path = source / "train-labels-idx1-ubyte.gz"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # "modified"
    idx.load_idx_dataset("tiny", "train", data_dir=source)
    assert [Path(p).name for p in calls] == [path.name]


def test_missing_lists_every_folder(isolated):
    with pytest.raises(FileNotFoundError) as error:
        idx.load_idx_dataset("fashion-mnist", "train", data_dir=isolated / "mine")
    message = str(error.value)
    for folder in idx.data_dirs("fashion-mnist", isolated / "mine"):
        assert f"  {folder}\n" in message
    assert "train-images-idx3-ubyte.gz" in message and "train-labels-idx1-ubyte.gz" in message
    assert "download=True" in message and "--download" in message
    assert "dataset-fashion-mnist" in message and idx.DATA_ENV in message


def test_download_into_cache(tiny, monkeypatch):
    arrays, source = tiny
    mirrors = ((source.parent / "nowhere").as_uri() + "/", source.as_uri() + "/")  # first fails
    monkeypatch.setitem(idx.DATASETS["tiny"], "mirrors", mirrors)
    images, labels = idx.load_idx_dataset("tiny", "test", download=True)
    np.testing.assert_array_equal(images, arrays["test"][0])
    np.testing.assert_array_equal(labels, arrays["test"][1])
    cache = idx.cache_dir("tiny")
    assert cache == tiny[1].parent / "home" / ".cache" / "jaxprecond" / "tiny"
    assert sorted(p.name for p in cache.iterdir()) == sorted(idx.SPLIT_FILES["test"])
    for filename in idx.SPLIT_FILES["test"]:
        assert (cache / filename).read_bytes() == (source / filename).read_bytes()
    # found in the cache from now on, without downloading
    monkeypatch.setitem(idx.DATASETS["tiny"], "mirrors", ())
    images, _ = idx.load_idx_dataset("tiny", "test")
    np.testing.assert_array_equal(images, arrays["test"][0])


def test_download_rejects_bad_checksum_and_leaves_nothing(tiny, monkeypatch):
    _, source = tiny
    (source / "train-images-idx3-ubyte.gz").write_bytes(b"not the file")
    monkeypatch.setenv("XDG_CACHE_HOME", str(source.parent / "xdg"))
    with pytest.raises(FileNotFoundError, match="checksum mismatch"):
        idx.load_idx_dataset("tiny", "train", download=True)
    cache = idx.cache_dir("tiny")
    assert [p.name for p in cache.iterdir()] == []  # no partial or temporary file


def test_download_offline(isolated, monkeypatch):
    monkeypatch.setitem(idx.DATASETS["mnist"], "mirrors", ((isolated / "void").as_uri() + "/",))
    with pytest.raises(FileNotFoundError, match="The download failed") as error:
        idx.load_idx_dataset("mnist", "test", download=True)
    assert str(idx.cache_dir("mnist")) in str(error.value)


# --- the real files ------------------------------------------------------------------------------


def test_mnist_test_split(isolated):
    need((SHARED_DATA / "mnist").is_dir(), SHARED_DATA / "mnist")
    images, labels = idx.load_idx_dataset("mnist", "test", data_dir=SHARED_DATA)
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), MNIST_TEST_COUNTS)
    assert images.min() == 0 and images.max() == 255


def test_fashion_mnist_from_the_system_folder(monkeypatch):
    need(FASHION.is_dir(), f"{FASHION} (Debian package dataset-fashion-mnist)")
    monkeypatch.delenv(idx.DATA_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/nonexistent-cache")
    images, labels = idx.load_idx_dataset("fashion-mnist", "train")
    assert images.shape == (60_000, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels), [6000] * 10)
    images, labels = idx.load_idx_dataset("fashion-mnist", "test")
    assert images.shape == (10_000, 28, 28)
    np.testing.assert_array_equal(np.bincount(labels), [1000] * 10)
