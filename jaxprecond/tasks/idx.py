"""MNIST-style image sets in the IDX format: find, verify, download and read them.

``load_idx_dataset("mnist", "test")`` returns ``(images, labels)`` as numpy ``uint8`` arrays of
shapes ``(N, 28, 28)`` and ``(N,)``. A split is the pair of gzipped IDX files listed in
:data:`SPLIT_FILES`; the first folder of :func:`data_dirs` that holds both is used, every file is
checked against the digests in :data:`DATASETS`, and ``download=True`` fetches missing files
into the user cache. Nothing is downloaded unless asked for.

Fashion-MNIST as installed by Debian's ``dataset-fashion-mnist`` (``/usr/share/datasets/``) is
recompressed: its ``.gz`` files hold the same IDX bytes as Zalando's but a different gzip header
(no file name, another time stamp), hence other digests. Each file therefore lists every digest
it is accepted under: the Debian file's sha256 and the upstream file's md5.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from jaxprecond.checks import MissingFile, SettingError

#: the system-wide data root; Debian's ``dataset-*`` packages install under it.
DATASETS_ROOT = Path("/usr/share/datasets")

#: environment variable naming a folder that holds ``<name>/`` sub-folders (or the files).
DATA_ENV = "JAXPRECOND_DATA"

SPLITS = ("train", "test")

#: the ``(images, labels)`` file names of each split, the same for every data set.
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

#: per data set: download mirrors (tried in order) and, per file, the digests it is accepted
#: under (``"sha256:<hex>"`` or ``"md5:<hex>"``; any one matching accepts the file).
DATASETS = {
    "mnist": {
        "mirrors": (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        "files": {
            # md5: torchvision's ``MNIST.resources``.
            "train-images-idx3-ubyte.gz": ("md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",),
            "train-labels-idx1-ubyte.gz": ("md5:d53e105ee54ea40749a09fcbcd1e9432",),
            "t10k-images-idx3-ubyte.gz": (
                "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                "md5:9fb629c4189551a2d022fa330f9573f3",
            ),
            "t10k-labels-idx1-ubyte.gz": (
                "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                "md5:ec29112dd5afa0611ce80d1b7f02629c",
            ),
        },
    },
    "fashion-mnist": {
        "mirrors": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        "files": {
            # sha256: Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1;
            # md5: upstream (github.com/zalandoresearch/fashion-mnist, README).
            "train-images-idx3-ubyte.gz": (
                "sha256:b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
                "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            ),
            "train-labels-idx1-ubyte.gz": (
                "sha256:0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
                "md5:25c81989df183df01b3e8a0aad5dffbe",
            ),
            "t10k-images-idx3-ubyte.gz": (
                "sha256:cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
                "md5:bef4ecab320f06d8554ea6380940ec79",
            ),
            "t10k-labels-idx1-ubyte.gz": (
                "sha256:8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
                "md5:bb300cfdad3c16e7a12a480ee83cd310",
            ),
        },
    },
}

#: IDX type codes (third byte of the magic number) and their big-endian numpy dtypes.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_HASHES = ("sha256", "md5")

#: files already verified in this process: ``(resolved path, mtime_ns, size, digests)``.
_VERIFIED: set[tuple] = set()


def read_idx(path) -> np.ndarray:
    """Read an IDX file, gzipped or raw (recognised by its content, not its name).

    The header is two zero bytes, a type code (:data:`IDX_DTYPES`), the number of dimensions
    and one big-endian ``uint32`` per dimension; the data follow in C order, big-endian.

    Args:
      path: the file.

    Returns:
      The array, in the native byte order.

    Raises:
      SettingError: the file is not a well-formed IDX file (the message names it).

    Example:
      >>> import os, tempfile
      >>> header = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3])
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     path = os.path.join(folder, "tiny-idx2-ubyte")
      ...     with open(path, "wb") as f:
      ...         _ = f.write(header + bytes(range(6)))
      ...     read_idx(path)
      array([[0, 1, 2],
             [3, 4, 5]], dtype=uint8)
    """
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise SettingError(f"{path}: not a valid gzip file ({error})") from None
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise SettingError(f"{path}: not an IDX file (bad magic number {data[:4].hex()!r})")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise SettingError(f"{path}: unknown IDX type code 0x{code:02x}")
    dtype = IDX_DTYPES[code]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise SettingError(f"{path}: truncated IDX header ({ndim} dimensions, {len(data)} bytes)")
    shape = tuple(int(n) for n in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - offset != expected:
        raise SettingError(
            f"{path}: IDX shape {shape} of {dtype.name} needs {expected} data bytes, "
            f"the file has {len(data) - offset}"
        )
    array = np.frombuffer(data, dtype, offset=offset).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise SettingError(f"unknown data set {name!r}; choose one of {sorted(DATASETS)}")


def cache_dir(name: str) -> Path:
    """The user cache folder of a data set: ``$XDG_CACHE_HOME/jaxprecond/<name>``.

    ``XDG_CACHE_HOME`` defaults to ``~/.cache``. Downloads go here.

    Example:
      >>> cache_dir("mnist").parts[-2:]
      ('jaxprecond', 'mnist')
    """
    _check_name(name)
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root).expanduser() / "jaxprecond" / name


def data_dirs(name: str, data_dir=None) -> list[Path]:
    """The folders searched for a data set's files, in order, without duplicates.

    ``data_dir/<name>`` and ``data_dir``; ``$JAXPRECOND_DATA/<name>`` and ``$JAXPRECOND_DATA``;
    the user cache :func:`cache_dir`; ``/usr/share/datasets/<name>`` (:data:`DATASETS_ROOT`).

    Args:
      name: a key of :data:`DATASETS`.
      data_dir: an optional folder searched first.

    Returns:
      The folders (whether or not they exist).

    Example:
      >>> [str(p) for p in data_dirs("mnist", "/data")][:2]
      ['/data/mnist', '/data']
    """
    _check_name(name)
    roots = [Path(data_dir).expanduser()] if data_dir is not None else []
    if os.environ.get(DATA_ENV):
        roots.append(Path(os.environ[DATA_ENV]).expanduser())
    folders = [folder for root in roots for folder in (root / name, root)]
    folders += [cache_dir(name), Path(DATASETS_ROOT) / name]
    return list(dict.fromkeys(folders))


def file_digests(path) -> dict[str, str]:
    """The sha256 and md5 digests of a file, as ``{"sha256": hex, "md5": hex}`` (one pass).

    Args:
      path: the file.

    Returns:
      ``{"sha256": hex, "md5": hex}``, lower-case hex digests of the file's bytes.

    Example:
      >>> import os, tempfile
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     path = os.path.join(folder, "abc.txt")
      ...     with open(path, "wb") as f:
      ...         _ = f.write(b"abc")
      ...     digests = file_digests(path)
      >>> digests["md5"]
      '900150983cd24fb0d6963f7d28e17f72'
      >>> digests["sha256"][:16]
      'ba7816bf8f01cfea'
    """
    hashers = {algorithm: hashlib.new(algorithm) for algorithm in _HASHES}
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            for hasher in hashers.values():
                hasher.update(chunk)
    return {algorithm: hasher.hexdigest() for algorithm, hasher in hashers.items()}


def _matches(digests: dict[str, str], expected) -> bool:
    for entry in expected:
        algorithm, _, value = entry.partition(":")
        if algorithm not in _HASHES or not value:
            raise SettingError(f"checksum entries are 'sha256:<hex>' or 'md5:<hex>', got {entry!r}")
        if digests[algorithm] == value.lower():
            return True
    return False


def verify_file(path, expected) -> None:
    """Check a file against the digests it is accepted under.

    A file verified once is not hashed again in this process while its path, modification time,
    size and the expected digests stay the same.

    Args:
      path: the file.
      expected: ``"sha256:<hex>"`` / ``"md5:<hex>"`` strings; any one matching accepts the file.

    Raises:
      SettingError: no digest matches (the message names the file, the expected and the actual
        digests).

    Example:
      >>> import os, tempfile
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     path = os.path.join(folder, "abc.txt")
      ...     with open(path, "wb") as f:
      ...         _ = f.write(b"abc")
      ...     verify_file(path, ["sha256:0000", "md5:900150983cd24fb0d6963f7d28e17f72"])  # accepted
      ...     verify_file(path, ["md5:0000"])  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      jaxprecond.checks.SettingError: checksum mismatch for .../abc.txt: expected md5:0000, got ...
    """
    path = Path(path).resolve()
    stat = path.stat()
    stamp = (str(path), stat.st_mtime_ns, stat.st_size, tuple(expected))
    if stamp in _VERIFIED:
        return
    digests = file_digests(path)
    if not _matches(digests, expected):
        actual = ", ".join(f"{algorithm}:{digests[algorithm]}" for algorithm in _HASHES)
        raise SettingError(
            f"checksum mismatch for {path}: expected {' or '.join(expected)}, got {actual}; "
            "delete the file (it is corrupt or another version) and fetch it again"
        )
    _VERIFIED.add(stamp)


def _download(urls, target: Path, expected) -> None:
    """Fetch the first of ``urls`` that succeeds and verifies into ``target``, atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=60) as response:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
            digests = file_digests(temporary)
            if not _matches(digests, expected):
                errors.append(f"{url}: checksum mismatch (got sha256:{digests['sha256']})")
                continue
            os.replace(temporary, target)
            return
        except OSError as error:  # urllib's URLError and HTTPError are OSErrors
            errors.append(f"{url}: {error}")
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
    raise OSError("; ".join(errors))


def _not_found(name: str, split: str, folders, download_error: str | None) -> MissingFile:
    files = " and ".join(SPLIT_FILES[split])
    searched = "\n".join(f"  {folder}" for folder in folders)
    lines = [
        f"the {split} split of {name!r} ({files}) was not found; searched:",
        searched,
        f"Put the files in one of these folders (or pass data_dir=..., or set ${DATA_ENV}), "
        f"or call load_idx_dataset(..., download=True) / pass --download to fetch them into "
        f"{cache_dir(name)}.",
    ]
    if name == "fashion-mnist":
        lines.append(
            "On Debian/Ubuntu, `apt-get install dataset-fashion-mnist` installs them under "
            f"{Path(DATASETS_ROOT) / name}."
        )
    if download_error is not None:
        lines.append(f"The download failed: {download_error}")
    return MissingFile("\n".join(lines))


def load_idx_dataset(
    name: str, split: str, *, data_dir=None, download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels of one split of an IDX image set, checksum-verified.

    Args:
      name: ``"mnist"`` or ``"fashion-mnist"`` (a key of :data:`DATASETS`).
      split: ``"train"`` or ``"test"``.
      data_dir: a folder searched first (see :func:`data_dirs`).
      download: when no searched folder holds both files, download the missing ones into
        :func:`cache_dir` (each verified before it is moved into place).

    Returns:
      ``(images, labels)``: ``uint8`` arrays ``(N, 28, 28)`` and ``(N,)``.

    Raises:
      SettingError: an unknown name or split, a checksum mismatch or a malformed file.
      MissingFile: the files are in no searched folder and were not (or could not be)
        downloaded; the message lists the folders and how to provide the files.

    Example:
      >>> load_idx_dataset("mnist", "validation")
      Traceback (most recent call last):
      ...
      jaxprecond.checks.SettingError: unknown split 'validation'; choose one of ('train', 'test')
    """
    _check_name(name)
    if split not in SPLITS:
        raise SettingError(f"unknown split {split!r}; choose one of {SPLITS}")
    filenames = SPLIT_FILES[split]
    checksums = DATASETS[name]["files"]
    folders = data_dirs(name, data_dir)
    folder = next((f for f in folders if all((f / n).is_file() for n in filenames)), None)
    if folder is None:
        if not download:
            raise _not_found(name, split, folders, None)
        folder = cache_dir(name)
        for filename in filenames:
            if not (folder / filename).is_file():
                urls = [mirror + filename for mirror in DATASETS[name]["mirrors"]]
                try:
                    _download(urls, folder / filename, checksums[filename])
                except OSError as error:
                    raise _not_found(name, split, folders, str(error)) from error
    paths = [folder / filename for filename in filenames]
    for path in paths:
        verify_file(path, checksums[path.name])
    images, labels = (read_idx(path) for path in paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise SettingError(
            f"{folder}: expected images (N, rows, cols) and labels (N,), got shapes "
            f"{images.shape} and {labels.shape}"
        )
    return images, labels
