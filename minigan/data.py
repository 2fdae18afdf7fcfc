"""MNIST: the IDX file reader, download and caching, preprocessing, and device-side batching.

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

import gzip
import hashlib
import json
import os
import struct
import zlib
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


class MNISTNotFoundError(FileNotFoundError):
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


_HASH_MEMO: dict[tuple[str, int, int], str] = {}
_LOADED: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _hash_cache_file() -> Path:
    import pooch

    return Path(pooch.os_cache("minigan")) / "sha256-cache.json"


def _cached_sha256(path: Path) -> str:
    """SHA-256 of ``path``, remembered by (absolute path, size, mtime) in memory and on disk.

    The on-disk memo lives in the user cache dir and is best effort: if it cannot be read or
    written the hash is simply computed again.
    """
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _HASH_MEMO:
        return _HASH_MEMO[key]
    memo_file = _hash_cache_file()
    disk: dict[str, Any] = {}
    try:
        disk = json.loads(memo_file.read_text())
        entry = disk.get(key[0])
        if entry and entry["size"] == key[1] and entry["mtime_ns"] == key[2]:
            _HASH_MEMO[key] = entry["sha256"]
            return entry["sha256"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        disk = {}
    digest = _sha256(path)
    _HASH_MEMO[key] = digest
    try:
        disk = disk if isinstance(disk, dict) else {}
        disk[key[0]] = {"size": key[1], "mtime_ns": key[2], "sha256": digest}
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


def _how_to_provide(root: Path) -> str:
    names = ", ".join(n for pair in MNIST_FILES.values() for n in pair)
    return (
        f"To provide the files, put {names} in a directory and set {_ENV} to it (or pass "
        f"root=/data_dir=/--data-dir), or copy them into {root}; they can be downloaded from "
        f"{MNIST_MIRRORS[0]}"
    )


def _download(name: str, root: Path) -> None:
    """Fetch ``name`` into ``root`` with pooch, trying each mirror; raise the last error."""
    import pooch

    errors = []
    for mirror in MNIST_MIRRORS:
        try:
            pooch.retrieve(
                url=mirror + name,
                known_hash=f"sha256:{MNIST_SHA256[name]}",
                fname=name,
                path=root,
                downloader=pooch.HTTPDownloader(progressbar=True, timeout=60),
            )
            return
        except Exception as e:  # network errors, HTTP errors, hash mismatch of the download
            errors.append(f"{mirror}: {type(e).__name__}: {e}")
    raise OSError("; ".join(errors))


def _ensure_file(name: str, root: Path, download: bool, root_given: bool) -> Path:
    """Return the path of a hash-verified ``root/name``, downloading it if needed and allowed."""
    path = root / name
    expected = MNIST_SHA256[name]
    problem = None
    if path.is_file():
        got = _cached_sha256(path)
        if got == expected:
            return path
        problem = (
            f"{path} has the wrong SHA-256 ({got[:16]}..., expected {expected[:16]}...): "
            "the file is corrupt, truncated or not the original MNIST file"
        )
    if not download:
        if problem:
            raise ValueError(f"{problem}. It was not used. Delete it, or call with download=True.")
        raise MNISTNotFoundError(
            f"MNIST file {name} not found: looked in {_where(root, root_given)} and "
            f"download=False. {_how_to_provide(root)}"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
        _download(name, root)
    except OSError as e:
        if problem:
            raise ValueError(
                f"{problem}. It was not used, and fetching a fresh copy failed ({e}). "
                f"Delete it and provide a good copy. {_how_to_provide(root)}"
            ) from e
        raise MNISTNotFoundError(
            f"MNIST file {name} not found in {_where(root, root_given)} and downloading it "
            f"failed (offline?): {e}. {_how_to_provide(root)}"
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
        Directory holding (or to receive) the four ``.gz`` files. Default: ``$MINIGAN_DATA_DIR``,
        else the user cache dir (see :func:`default_data_dir`).
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
        read); a corrupt IDX file (see :func:`read_idx`); images and labels of different
        lengths, or not the expected number of examples.

    Notes
    -----
    Every file's SHA-256 is checked against :data:`MNIST_SHA256` before it is read; the hash
    is remembered by (path, size, mtime), so a later call does not hash again. The decoded
    arrays of the last split loaded are kept in memory (about 55 MB for "train") and later
    calls return copies of them.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    root_given = root is not None
    root = Path(root).expanduser() if root_given else default_data_dir()
    paths = [_ensure_file(name, root, download, root_given) for name in MNIST_FILES[split]]
    key = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    if key in _LOADED:  # decompressing 47 MB takes about a second: do it once per process
        images, labels = _LOADED[key]
        return images.copy(), labels.copy()
    images, labels = load_idx_pair(*paths)
    if images.shape[1:] != (28, 28) or images.shape[0] != MNIST_SIZES[split]:
        raise ValueError(
            f"{paths[0]}: expected MNIST {split} images of shape "
            f"{(MNIST_SIZES[split], 28, 28)}, got {images.shape}"
        )
    _LOADED.clear()  # keep one split in memory at most
    _LOADED[key] = (images, labels)
    return images.copy(), labels.copy()


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

    Shapes
    ------
    Each batch is (batch_size, D) on ``device`` (the last one may be smaller when
    ``drop_last=False``).

    Raises
    ------
    TypeError
        ``batch_size`` is not an int (bools are refused); ``dtype`` is not float32 / float64
        (host data only); ``device`` is not a device.
    ValueError
        ``batch_size`` outside ``1..N``; an unknown device string.
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
    ):
        self.backend = resolve_device(device)
        n = int(data.shape[0])
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
            batch = xp.take(self.data, index[i * B : stop], axis=0)  # (B, D)
            self._position = i + 1
            yield batch
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
