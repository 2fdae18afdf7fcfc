"""Datasets by name (MNIST, Fashion-MNIST, CIFAR-10): reading, download and caching,
preprocessing, and device-side batching.

:func:`load` ``(name, split)`` returns uint8 images (N, C, H, W) and labels (N,) of any dataset in
:data:`DATASETS`; each entry records the image shape, class names, file names, published
checksums and mirrors. Files live in ``root/<dataset folder>/`` (``root`` = ``$MINIGAN_DATA_DIR``,
else the user cache dir); for MNIST a root that holds the four files itself (the layout of
minigan 0.1) is accepted too.

MNIST (LeCun, Cortes and Burges) comes as four gzip-compressed IDX files. An IDX file is a
4-byte magic number ``0x00 0x00 <dtype code> <ndim>`` (dtype code ``0x08`` = unsigned byte),
then ``ndim`` big-endian uint32 dimensions, then the data in C order. Images are
``0x00000803`` (N, 28, 28); labels are ``0x00000801`` (N,).

Where the files come from (:func:`load_mnist`):

1. ``root`` if given, else ``$MINIGAN_DATA_DIR``, else the user cache dir
   (``pooch.os_cache("minigan") / "mnist"``, e.g. ``~/.cache/minigan/mnist`` on Linux);
2. every file's SHA-256 is checked against the published sums, also for files already there
   (the result is remembered per file size and modification time, so it is hashed once);
3. missing or damaged files are downloaded with :mod:`pooch` from public mirrors, hash-checked,
   with a progress bar. A file whose hash is wrong is never read.

Batching (:class:`BatchIterator`): the whole preprocessed training set is copied to the
training device **once**; each epoch a shuffled index array (drawn by a seeded host generator,
so NumPy and CuPy runs match) is moved to the device, and every batch is gathered there with
``xp.take``. Per batch, nothing crosses from host to device.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import struct
import sys
import zlib
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from .backend import as_generator, host_rng_state, resolve_device, set_host_rng_state

__all__ = [
    "MNIST_FILES",
    "MNIST_SHA256",
    "MNIST_MIRRORS",
    "MNIST_SIZES",
    "MNISTNotFoundError",
    "DatasetNotFoundError",
    "Dataset",
    "IDXDataset",
    "CIFAR10Binary",
    "DATASETS",
    "get_dataset",
    "load",
    "default_root",
    "dataset_dir",
    "default_data_dir",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
    "load_idx_pair",
    "load_mnist",
    "preprocess",
    "BatchIterator",
    "ring_centers",
    "sample_ring",
]

#: The two files (images, labels) of each split.
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

#: SHA-256 of the original ``.gz`` files (their md5 sums match the ones published with MNIST
#: and used by torchvision; TensorFlow Datasets records these SHA-256 sums).
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    ),
    "train-labels-idx1-ubyte.gz": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
    ),
}

#: Public mirrors of the original files (yann.lecun.com no longer serves them reliably);
#: the same two torchvision uses, tried in order.
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

#: Number of examples in each split.
MNIST_SIZES: dict[str, int] = {"train": 60000, "test": 10000}

_IMAGES_MAGIC = 0x00000803
_LABELS_MAGIC = 0x00000801
_ENV = "MINIGAN_DATA_DIR"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not on disk and could not be downloaded."""


class MNISTNotFoundError(DatasetNotFoundError):
    """The MNIST files are not on disk and could not be downloaded."""


# ----------------------------------------------------------------------------------------------
# IDX files
# ----------------------------------------------------------------------------------------------
def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Read one gzip-compressed IDX file of unsigned bytes into a NumPy array.

    Parameters
    ----------
    path : path to an ``*-idx?-ubyte.gz`` file
    expected_magic : int, optional
        ``0x00000803`` for images, ``0x00000801`` for labels; checked when given.

    Returns
    -------
    numpy.ndarray, dtype uint8, shape given by the header (e.g. (60000, 28, 28))

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The gzip stream is corrupt or truncated, the magic number is not an unsigned-byte IDX
        header (or not ``expected_magic``), or the data length differs from the header's
        dimensions. Every message starts with the file's path.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise ValueError(
            f"{path}: cannot decompress it ({type(e).__name__}: {e}); the file is corrupt or "
            "truncated: delete it and let minigan download it again"
        ) from e
    if len(raw) < 4:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for an IDX header (4 bytes)")
    (magic,) = struct.unpack(">I", raw[:4])
    ndim = raw[3]
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or ndim == 0:
        raise ValueError(
            f"{path}: bad magic number 0x{magic:08x}: expected an IDX file of unsigned bytes "
            "(0x0000080N, N = number of dimensions)"
        )
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(
            f"{path}: magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
            f"({'images' if expected_magic == _IMAGES_MAGIC else 'labels'})"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: the header needs {header} bytes, the file has {len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    got = len(raw) - header
    if got != prod(dims):
        raise ValueError(
            f"{path}: the header promises dims {dims} = {prod(dims)} bytes of data, "
            f"the file holds {got}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX image file (magic ``0x00000803``) -> uint8 (N, rows, cols).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        A corrupt or truncated file, or not an IDX image file (see :func:`read_idx`).
    """
    return read_idx(path, _IMAGES_MAGIC)


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX label file (magic ``0x00000801``) -> uint8 (N,), values 0..9.

    Raises
    ------
    ValueError
        As :func:`read_idx`, or a label outside 0..9.
    """
    labels = read_idx(path, _LABELS_MAGIC)
    if labels.size and labels.max() > 9:
        raise ValueError(f"{path}: labels must be digits 0..9, found {int(labels.max())}")
    return labels


def load_idx_pair(
    images_path: str | os.PathLike, labels_path: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray]:
    """Read matching image and label IDX files and check they describe the same examples.

    Returns
    -------
    images : uint8 (N, rows, cols)
    labels : uint8 (N,)

    Raises
    ------
    ValueError
        As :func:`read_idx`, or images and labels of different lengths (both files named).
    """
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"images and labels differ in length: {images_path} holds {images.shape[0]} "
            f"images but {labels_path} holds {labels.shape[0]} labels"
        )
    return images, labels


# ----------------------------------------------------------------------------------------------
# Finding, verifying and downloading the files
# ----------------------------------------------------------------------------------------------
def default_data_dir() -> Path:
    """``$MINIGAN_DATA_DIR`` if set, else the user cache dir ``pooch.os_cache("minigan")/mnist``."""
    env = os.environ.get(_ENV)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("minigan")) / "mnist"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_HASH_MEMO: dict[tuple, str] = {}
_LOADED: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _hash_cache_file() -> Path:
    import pooch

    return Path(pooch.os_cache("minigan")) / "sha256-cache.json"


_STAT_FIELDS = ("dev", "ino", "size", "mtime_ns", "ctime_ns")


def _file_key(path: Path) -> tuple:
    """(absolute path, device, inode, size, mtime_ns, ctime_ns): what a rewrite changes.

    A rewrite in place changes the ctime (which no user call can set back, unlike the mtime
    with ``os.utime``); a file put in its place (``mv``, ``cp`` over a deleted one) has
    another inode or ctime.
    """
    st = path.stat()
    return (str(path.resolve()), *(getattr(st, f"st_{f}") for f in _STAT_FIELDS))


def _cached_sha256(path: Path) -> str:
    """SHA-256 of ``path``, remembered by :func:`_file_key` in memory and on disk.

    What the memo guarantees: a file is hashed again whenever its device, inode, size, mtime
    or ctime changed since it was hashed. Writing a file (in place, or replacing it) changes
    its ctime, and the ctime cannot be set back by ``os.utime`` or ``touch``, so a file
    rewritten after it was hashed (also with the same size and a restored mtime) is always
    hashed again. What it does not cover: writes that bypass the file system (the raw block
    device), a system clock set back to the exact ctime, and a file changed between its hash
    and its read (the check and the read are not one step).

    The on-disk memo lives in the user cache dir and is best effort: if it cannot be read or
    written the hash is simply computed again.
    """
    key = _file_key(path)
    stat = dict(zip(_STAT_FIELDS, key[1:], strict=True))
    if key in _HASH_MEMO:
        return _HASH_MEMO[key]
    memo_file = _hash_cache_file()
    disk: dict[str, Any] = {}
    try:
        disk = json.loads(memo_file.read_text())
        entry = disk.get(key[0])
        if entry and all(entry.get(f) == v for f, v in stat.items()):
            _HASH_MEMO[key] = entry["sha256"]
            return entry["sha256"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        disk = {}
    digest = _sha256(path)
    _HASH_MEMO[key] = digest
    try:
        disk = disk if isinstance(disk, dict) else {}
        disk[key[0]] = {**stat, "sha256": digest}
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_name(memo_file.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(disk))
        os.replace(tmp, memo_file)
    except OSError:
        pass
    return digest


def _where(root: Path, given: bool) -> str:
    if given:
        return f"{root} (the root/data_dir argument)"
    if os.environ.get(_ENV):
        return f"{root} (from ${_ENV})"
    return f"{root} (the default cache dir; ${_ENV} is not set)"


def _how_to_provide(root: Path, info: Dataset | None = None) -> str:
    info = info or DATASETS["mnist"]
    names = ", ".join(info.all_files())
    return (
        f"To provide the files, put {names} in a directory and set {_ENV} to it (or pass "
        f"root=/data_dir=/--data-dir), or copy them into {root}; they can be downloaded from "
        f"{info.mirrors[0]}"
    )


def _download(name: str, root: Path, info: Dataset | None = None) -> None:
    """Fetch ``name`` into ``root`` with pooch, trying each mirror; raise the last error."""
    import pooch

    info = info or DATASETS["mnist"]
    errors = []
    for mirror in info.mirrors:
        try:
            pooch.retrieve(
                url=mirror + name,
                known_hash=f"sha256:{info.sha256[name]}",
                fname=name,
                path=root,
                downloader=pooch.HTTPDownloader(progressbar=True, timeout=60),
            )
            return
        except Exception as e:  # network errors, HTTP errors, hash mismatch of the download
            errors.append(f"{mirror}: {type(e).__name__}: {e}")
    raise OSError("; ".join(errors))


def _known_file(digest: str) -> tuple[str, str] | None:
    """``(dataset title, file name)`` of a registered file with this SHA-256, or None."""
    for info in DATASETS.values():
        for fname, h in info.sha256.items():
            if h == digest:
                return info.title, fname
    return None


def _missing_parents(root: Path) -> list[Path]:
    """The folders ``root.mkdir(parents=True)`` would create, deepest first."""
    missing = []
    for d in (root, *root.parents):
        if d.exists():
            break
        missing.append(d)
    return missing


def _ensure_file(
    name: str, root: Path, download: bool, root_given: bool, info: Dataset | None = None
) -> Path:
    """Return the path of a hash-verified ``root/name``, downloading it if needed and allowed.

    A file that is another registered dataset's (same name, other hash: Fashion-MNIST's
    ``train-images-idx3-ubyte.gz`` in the MNIST folder) is refused at once, naming both.
    """
    info = info or DATASETS["mnist"]
    path = root / name
    expected = info.sha256[name]
    problem = None
    if path.is_file():
        got = _cached_sha256(path)
        if got == expected:
            return path
        other = _known_file(got)
        if other is not None:
            raise ValueError(
                f"{path} is {other[0]}'s {other[1]}, not {info.title}'s (SHA-256 {got[:16]}..., "
                f"{info.title} has {expected[:16]}...): this folder holds another dataset's "
                f"files; put {info.title} in {info.folder}/ under the data root"
            )
        problem = (
            f"{path} has the wrong SHA-256 ({got[:16]}..., expected {expected[:16]}...): "
            f"the file is corrupt, truncated or not the original {info.title} file"
        )
    if not download:
        if problem:
            raise ValueError(f"{problem}. It was not used. Delete it, or call with download=True.")
        raise info.not_found(
            f"{info.title} file {name} not found: looked in {_where(root, root_given)} and "
            f"download=False. {_how_to_provide(root, info)}"
        )
    created = _missing_parents(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        _download(name, root, info)
    except OSError as e:
        for d in created:  # a failed download leaves no empty data folders behind
            with contextlib.suppress(OSError):
                d.rmdir()
        if problem:
            raise ValueError(
                f"{problem}. It was not used, and fetching a fresh copy failed ({e}). "
                f"Delete it and provide a good copy. {_how_to_provide(root, info)}"
            ) from e
        raise info.not_found(
            f"{info.title} file {name} not found in {_where(root, root_given)} and downloading "
            f"it failed (offline?): {e}. {_how_to_provide(root, info)}"
        ) from e
    got = _cached_sha256(path)
    if got != expected:  # pooch checks too; this guards against anything slipping through
        raise ValueError(
            f"{path}: downloaded file has the wrong SHA-256 {got}, expected {expected}"
        )
    return path


def load_mnist(
    split: str = "train", root: str | os.PathLike | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Load the real MNIST images and labels of one split.

    Parameters
    ----------
    split : {"train", "test"}
        60000 training or 10000 test examples.
    root : path, optional
        Directory holding (or to receive) the four ``.gz`` files, or a data root with an
        ``mnist/`` folder. Default: ``$MINIGAN_DATA_DIR`` (either layout), else the user cache
        dir (see :func:`default_data_dir`).
    download : bool
        Fetch missing or damaged files from :data:`MNIST_MIRRORS` with pooch.

    Returns
    -------
    images : numpy.ndarray, uint8 (N, 28, 28), pixel values 0..255
    labels : numpy.ndarray, uint8 (N,), digits 0..9

    Raises
    ------
    MNISTNotFoundError (a FileNotFoundError)
        Files missing and not downloadable; the message says where it looked and how to
        provide them (``MINIGAN_DATA_DIR``).
    ValueError
        Unknown split; a file with the wrong SHA-256 that could not be replaced (it is never
        read), or one of another dataset (Fashion-MNIST files share MNIST's names); a corrupt
        IDX file (see :func:`read_idx`); images and labels of different lengths, or not the
        expected number of examples.

    Notes
    -----
    Every file's SHA-256 is checked against :data:`MNIST_SHA256` before it is read; the hash
    is remembered by (path, inode, size, mtime, ctime), so a later call does not hash again
    unless the file was rewritten (see :func:`_cached_sha256` for what that guarantees). The decoded
    arrays of the last split loaded are kept in memory (about 55 MB for "train") and later
    calls return copies of them. ``load("mnist", split)`` gives the same data as (N, 1, 28, 28).
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    info = DATASETS["mnist"]
    root_given = root is not None
    # minigan 0.1: a given root (or $MINIGAN_DATA_DIR) is the folder of the files themselves
    folder = dataset_dir(info, root, flat=root_given or bool(os.environ.get(_ENV)))
    images, labels = info.load_split(split, folder, download, root_given)
    return images[:, 0], labels


# ----------------------------------------------------------------------------------------------
# The dataset registry
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dataset:
    """A dataset of labelled images: where its files live, how to check and read them.

    Attributes
    ----------
    name : str
        Registry name (``load(name)``, ``train(dataset=name)``).
    title : str
        Name in messages ("Fashion-MNIST").
    folder : str
        Folder under the data root (``root/<folder>/``).
    image_shape : tuple (C, H, W)
    classes : tuple of str
        Class names, by label.
    files : dict split -> tuple of file names
    sha256 : dict file name -> published SHA-256
    mirrors : tuple of URL prefixes (tried in order)
    sizes : dict split -> number of examples
    """

    name: str
    title: str
    folder: str
    image_shape: tuple[int, int, int]
    classes: tuple[str, ...]
    files: dict[str, tuple[str, ...]]
    sha256: dict[str, str]
    mirrors: tuple[str, ...]
    sizes: dict[str, int]
    not_found_error: type = DatasetNotFoundError

    def all_files(self) -> list[str]:
        """Every file name of every split."""
        return [n for names in self.files.values() for n in names]

    def not_found(self, message: str) -> DatasetNotFoundError:
        """The exception for missing files (``not_found_error``: MNISTNotFoundError for MNIST)."""
        return self.not_found_error(message)

    def load_split(self, split, folder, download, root_given, batches=None):
        """Verified uint8 images (N, C, H, W) and labels (N,) of ``split`` from ``folder``."""
        raise NotImplementedError


class IDXDataset(Dataset):
    """A dataset in MNIST's format: two gzip-compressed IDX files (images, labels) per split."""

    def load_split(self, split, folder, download, root_given, batches=None):
        """Verify (download if allowed) and read the split's two IDX files, memoised."""
        if batches is not None:
            raise ValueError(f"batches: {self.title} has no batches, got batches={batches!r}")
        paths = [_ensure_file(n, folder, download, root_given, self) for n in self.files[split]]
        key = tuple(_file_key(p) for p in paths)  # a rewritten file is read (and hashed) again
        if key in _LOADED:  # decompressing 47 MB takes about a second: do it once per process
            images, labels = _LOADED[key]
            return images.copy(), labels.copy()
        images, labels = load_idx_pair(*paths)
        want = (self.sizes[split], *self.image_shape[1:])
        if images.shape != want:
            raise ValueError(
                f"{paths[0]}: expected {self.title} {split} images of shape {want}, "
                f"got {images.shape}"
            )
        images = images[:, None]  # (N, 1, H, W)
        _LOADED.clear()  # keep one split in memory at most
        _LOADED[key] = (images, labels)
        return images.copy(), labels.copy()


_CIFAR_RECORD = 1 + 3 * 32 * 32  # label byte, then 1024 red, 1024 green, 1024 blue bytes


class CIFAR10Binary(Dataset):
    """CIFAR-10, the official binary version (``cifar-10-binary.tar.gz``; never the pickles).

    Each ``*.bin`` file holds 10,000 records of 3,073 bytes: the label (0-9), then the 32x32
    image as 1,024 red, 1,024 green and 1,024 blue bytes, row-major (Krizhevsky 2009).
    The archive (md5 :attr:`archive_md5`) is downloaded and unpacked with pooch into
    ``root/cifar-10/``. A batch may also be given as ``data_batch_N.bin.gz`` whose SHA-256 is
    known (:attr:`sha256`).
    """

    archive = "cifar-10-binary.tar.gz"
    archive_md5 = "c32a1d4ab5d03f1284b67883e8d87530"
    #: md5 of the official decompressed batch files known here (checked before reading).
    bin_md5 = {"data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25"}

    def _batch_names(self, split, batches):
        names = self.files[split]
        if batches is None:
            return list(names)
        if split != "train":
            raise ValueError(f"batches: only the train split has batches, got split={split!r}")
        if isinstance(batches, int):  # batches=1 (e.g. ``--data-option batches=1``)
            batches = (batches,)
        bad = [b for b in batches if b not in range(1, len(names) + 1)]
        if bad or not batches:
            raise ValueError(f"batches: expected numbers in 1..{len(names)}, got {batches!r}")
        chosen = [names[b - 1] for b in sorted(set(batches))]
        sys.stderr.write(
            f"{self.title}: loading training batches {sorted(set(batches))} only: "
            f"{10000 * len(chosen)} of {self.sizes['train']} images\n"
        )
        return chosen

    def _from_archive(self, folder, download, root_given):
        import pooch

        if not download and not (folder / self.archive).is_file():
            raise self.not_found(
                f"{self.title}: the full {self.archive} is not in {_where(folder, root_given)} "
                "and download=False; pass batches=(1, ...) to load only the batches present"
            )
        try:
            files = pooch.retrieve(
                self.mirrors[0] + self.archive,
                known_hash=f"md5:{self.archive_md5}",
                fname=self.archive,
                path=folder,
                processor=pooch.Untar(extract_dir="."),
                progressbar=True,
            )
        except Exception as e:  # network or hash errors
            raise self.not_found(
                f"{self.title}: {self.archive} not in {_where(folder, root_given)} and "
                f"downloading it failed (offline?): {type(e).__name__}: {e}"
            ) from e
        return {Path(f).name: Path(f) for f in files}

    def _read(self, path: Path) -> bytes:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
        want = self.bin_md5.get(path.name.removesuffix(".gz"))
        if want and path.suffix != ".gz" and hashlib.md5(raw).hexdigest() != want:
            raise ValueError(f"{path}: wrong md5, not the official CIFAR-10 file; it was not used")
        if len(raw) != 10000 * _CIFAR_RECORD:
            raise ValueError(f"{path}: expected {10000 * _CIFAR_RECORD} bytes, got {len(raw)}")
        return raw

    def load_split(self, split, folder, download, root_given, batches=None):
        """Read the split's batches (all of them, or exactly ``batches`` of the train split)."""
        names = self._batch_names(split, batches)
        local = {}
        for n in names:
            gz = folder / (n + ".gz")
            if gz.is_file() and _cached_sha256(gz) == self.sha256.get(n + ".gz"):
                local[n] = gz
        if len(local) < len(names):
            extracted = self._from_archive(folder, download, root_given)
            local |= {n: extracted[n] for n in names if n not in local}
        raw = np.frombuffer(b"".join(self._read(local[n]) for n in names), np.uint8)
        records = raw.reshape(-1, _CIFAR_RECORD)
        images = records[:, 1:].reshape(-1, 3, 32, 32).copy()
        return images, records[:, 0].copy()


FASHION_MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": (
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
    ),
    "train-labels-idx1-ubyte.gz": (
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
    ),
}

#: Datasets by name; a new dataset is one entry here (and, for a new format, one small class).
DATASETS: dict[str, Dataset] = {
    "mnist": IDXDataset(
        "mnist",
        "MNIST",
        "mnist",
        (1, 28, 28),
        tuple(str(d) for d in range(10)),
        MNIST_FILES,
        MNIST_SHA256,
        MNIST_MIRRORS,
        MNIST_SIZES,
        not_found_error=MNISTNotFoundError,
    ),
    "fashion-mnist": IDXDataset(
        "fashion-mnist",
        "Fashion-MNIST",
        "fashion-mnist",
        (1, 28, 28),
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),  # fmt: skip
        MNIST_FILES,
        FASHION_MNIST_SHA256,
        (
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        ),
        MNIST_SIZES,
    ),
    "cifar10": CIFAR10Binary(
        "cifar10",
        "CIFAR-10",
        "cifar-10",
        (3, 32, 32),
        (
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ),  # fmt: skip
        {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)},
        {"data_batch_1.bin.gz": "6fcee3c4b6ea120cf82b263e2e9fe932e7edf7daf530e8b8ed62c178f70910c6"},
        ("https://www.cs.toronto.edu/~kriz/",),
        {"train": 50000, "test": 10000},
    ),
}


def get_dataset(name: str) -> Dataset:
    """The registry entry of ``name``.

    Raises
    ------
    ValueError
        Unknown name; the message lists the known datasets.
    """
    if isinstance(name, Dataset):
        return name
    if name not in DATASETS:
        raise ValueError(f"dataset: expected one of {sorted(DATASETS)}, got {name!r}")
    return DATASETS[name]


def default_root() -> Path:
    """The data root: ``$MINIGAN_DATA_DIR`` if set, else the user cache dir ``~/.cache/minigan``."""
    env = os.environ.get(_ENV)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("minigan"))


def dataset_dir(info: Dataset | str, root=None, flat: bool = False) -> Path:
    """The folder of ``info``'s files under ``root`` (default :func:`default_root`).

    ``root/<folder>/`` if that folder exists; else ``root`` itself when it holds one of the
    dataset's file names (the flat layout of minigan 0.1, e.g. ``$MINIGAN_DATA_DIR`` pointing
    straight at the MNIST files) or when ``flat`` is set; else ``root/<folder>/``.
    """
    info = get_dataset(info)
    given = root is not None
    root = default_root() if root is None else Path(root).expanduser()
    if root.exists() and not root.is_dir():
        where = "root/data_dir" if given else f"${_ENV}" if os.environ.get(_ENV) else "data root"
        raise ValueError(
            f"{where} {root} is a file; expected the directory that holds the data files "
            f"(or a dataset folder such as {info.folder}/)"
        )
    if root.name == info.folder and any((root / n).is_file() for n in info.all_files()):
        return root  # pointed straight at the dataset's own folder
    sub = root / info.folder
    if sub.is_dir():
        return sub
    if flat or any((root / n).is_file() for n in info.all_files()):
        return root
    return sub


def load(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    download: bool = True,
    *,
    batches: tuple[int, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of a registered dataset as uint8 images and labels.

    Parameters
    ----------
    name : a key of :data:`DATASETS` ("mnist", "fashion-mnist", "cifar10")
    split : {"train", "test"}
    root : path, optional
        The data root holding ``<dataset folder>/`` (default ``$MINIGAN_DATA_DIR``, else the
        user cache dir); see :func:`dataset_dir` for the accepted layouts.
    download : bool
        Fetch missing or damaged files with pooch (hash-checked).
    batches : tuple of int or int, optional
        CIFAR-10 only: load exactly these training batches (1..5), saying so on stderr;
        without it all five are required (never fewer images than the split has).

    Returns
    -------
    images : numpy.ndarray, uint8 (N, C, H, W), pixels 0..255 (C = 1 grey, 3 RGB)
    labels : numpy.ndarray, uint8 (N,)

    Raises
    ------
    ValueError
        Unknown dataset or split; a file with the wrong hash (never read), naming the dataset
        it belongs to when it is another registered one; a corrupt file.
    DatasetNotFoundError (a FileNotFoundError)
        Files missing and not downloadable.
    """
    info = get_dataset(name)
    if split not in info.files:
        raise ValueError(f"split: expected one of {sorted(info.files)}, got {split!r}")
    folder = dataset_dir(info, root)
    return info.load_split(split, folder, download, root is not None, batches=batches)


def preprocess(images: np.ndarray) -> np.ndarray:
    """Scale uint8 images to float32 vectors in [-1, 1] (the generator's tanh range).

    ``x = pixel / 127.5 - 1``, so 0 -> -1.0 and 255 -> 1.0.

    Shapes: images (N, 28, 28) or (N, 784) uint8 -> x (N, 784) float32.

    Raises
    ------
    TypeError
        Images that are not uint8 (already scaled data would be scaled twice).
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"images: expected dtype uint8 (pixels 0..255), got {images.dtype}")
    x = images.reshape(images.shape[0], -1).astype(np.float32)
    x /= np.float32(127.5)
    x -= np.float32(1.0)
    return x


# ----------------------------------------------------------------------------------------------
# Batches on the device
# ----------------------------------------------------------------------------------------------
class BatchIterator:
    """Shuffled mini-batches of a dataset that lives on the training device.

    ``data`` is copied to the device once (``Backend.asarray``). Iterating runs one epoch:
    a permutation of ``0..N-1`` is drawn by the host generator, moved to the device as one
    int64 index array, and batch ``i`` is ``xp.take(data, perm[i*B:(i+1)*B], axis=0)``,
    gathered on the device. Only the index array (8 bytes per example, once per epoch) crosses
    from host to device.

    Parameters
    ----------
    data : array (N, D)
        Host NumPy data (e.g. :func:`preprocess` output) or an array already on ``device``.
    batch_size : int
        1 <= batch_size <= N.
    device : anything :func:`~minigan.backend.resolve_device` accepts
    dtype : "float32" or "float64"
        dtype on the device.
    shuffle : bool
        Draw a new permutation each epoch (else the identity order).
    drop_last : bool
        Skip the final incomplete batch (training: every batch has ``batch_size`` rows).
    seed : int or numpy.random.Generator
        The host generator of the permutations.
    labels : int array (N,), optional
        Class labels of ``data`` (a conditional GAN's): then each batch is a pair
        ``(x, y)``, both gathered with the same indices, y int64 on ``device``.

    Shapes
    ------
    Each batch is (batch_size, D) on ``device`` (the last one may be smaller when
    ``drop_last=False``); with ``labels``, ``((batch_size, D), (batch_size,))``.

    Raises
    ------
    TypeError
        ``batch_size`` is not an int (bools are refused); ``dtype`` is not float32 / float64
        (host data only); ``device`` is not a device.
    ValueError
        ``batch_size`` outside ``1..N``; an unknown device string; ``labels`` not of shape
        (N,).
    RuntimeError
        ``device="gpu"`` without CuPy or a visible CUDA device.

    Notes
    -----
    :meth:`state_dict` records the generator state *at the start of the current epoch* and the
    number of batches already taken from it; :meth:`load_state_dict` then regenerates the same
    permutation and continues from that batch, so a run resumed mid-epoch sees exactly the
    batches an uninterrupted run would.
    """

    def __init__(
        self,
        data,
        batch_size: int,
        *,
        device: Any = "cpu",
        dtype: Any = "float32",
        shuffle: bool = True,
        drop_last: bool = True,
        seed=0,
        labels=None,
    ):
        self.backend = resolve_device(device)
        n = int(data.shape[0])
        if labels is not None and tuple(labels.shape) != (n,):
            raise ValueError(f"labels: expected shape {(n,)}, got {tuple(labels.shape)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size: expected an int, got {batch_size!r}")
        if not 1 <= batch_size <= n:
            raise ValueError(
                f"batch_size: expected 1 <= batch_size <= {n} (dataset size), got {batch_size}"
            )
        if isinstance(data, np.ndarray):
            self.data = self.backend.asarray(data, dtype=dtype)  # the one host->device copy
        else:
            self.data = data
        if isinstance(labels, np.ndarray):
            labels = self.backend.asarray(labels.astype(np.int64))  # once, like the data
        self.labels = labels
        self.n = n
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rng = as_generator(seed) if shuffle else None
        self._epoch_state: str | None = None  # rng state at the start of the current epoch
        self._position = 0  # batches already taken from the current epoch

    def __len__(self) -> int:
        """Batches per epoch."""
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    @property
    def position(self) -> int:
        """Batches already taken from the current epoch (0 between epochs)."""
        return self._position

    def _permutation(self) -> np.ndarray:
        if self.rng is None:
            return np.arange(self.n)
        return self.rng.permutation(self.n)

    def __iter__(self):
        """Yield the batches of one epoch (or the rest of a resumed epoch)."""
        xp = self.backend.xp
        n_batches = len(self)
        while True:
            self._epoch_state = host_rng_state(self.rng) if self.rng is not None else None
            perm = self._permutation()
            if self._position < n_batches:
                break
            self._position = 0  # resumed exactly at an epoch's end: that epoch is over
        index = self.backend.asarray(perm.astype(np.int64))  # once per epoch, (N,) int64
        start = self._position
        B = self.batch_size
        for i in range(start, n_batches):
            stop = min((i + 1) * B, self.n)  # the array API has no out-of-bounds slices
            rows = index[i * B : stop]
            batch = xp.take(self.data, rows, axis=0)  # (B, D)
            self._position = i + 1
            yield batch if self.labels is None else (batch, xp.take(self.labels, rows, axis=0))
        self._position = 0
        self._epoch_state = None

    def state_dict(self) -> dict[str, Any]:
        """``{"rng": JSON state at the start of the current epoch, "position": int}``."""
        if self.rng is None:
            rng = ""
        elif self._position > 0 and self._epoch_state is not None:
            rng = self._epoch_state
        else:
            rng = host_rng_state(self.rng)
        return {"rng": rng, "position": int(self._position)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the next iteration continues at the saved batch.

        Raises
        ------
        ValueError
            A position outside ``0..len(self)``.
        """
        position = int(state["position"])
        if not 0 <= position <= len(self):
            raise ValueError(
                f"data state: position {position} is outside 0..{len(self)} batches per epoch"
            )
        if self.rng is not None:
            rng = state["rng"]
            set_host_rng_state(self.rng, str(rng.item() if hasattr(rng, "item") else rng))
        self._position = position
        self._epoch_state = None


# ----------------------------------------------------------------------------------------------
# A 2-D toy distribution for fast GAN experiments (lessons 8 and 11)
# ----------------------------------------------------------------------------------------------
def ring_centers(modes: int = 8, radius: float = 0.75) -> np.ndarray:
    """Centres of ``modes`` Gaussians evenly spaced on a circle: float64 (modes, 2).

    Raises
    ------
    ValueError
        ``modes`` < 1 or ``radius`` <= 0.
    """
    if modes < 1 or radius <= 0:
        raise ValueError(f"expected modes >= 1 and radius > 0, got modes={modes}, radius={radius}")
    angle = 2 * np.pi * np.arange(modes) / modes
    return radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def sample_ring(
    n: int, rng=None, modes: int = 8, radius: float = 0.75, std: float = 0.03
) -> np.ndarray:
    """``n`` points from a mixture of ``modes`` Gaussians on a ring (Metz et al. 2017).

    Each point picks a centre of :func:`ring_centers` uniformly and adds N(0, std^2 I) noise.
    The default radius 0.75 keeps the data inside a Tanh generator's range (-1, 1).

    Returns
    -------
    numpy.ndarray, float32 (n, 2), on the host (move it with ``Backend.asarray``).

    Raises
    ------
    ValueError
        ``modes`` < 1 or ``radius`` <= 0 (from :func:`ring_centers`).
    """
    rng = as_generator(rng)
    centers = ring_centers(modes, radius)
    k = rng.integers(0, modes, n)
    return (centers[k] + std * rng.standard_normal((n, 2))).astype(np.float32)
