"""MNIST loading, validation, download fallbacks, preprocessing and device-side batching."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import MNIST_DIR, needs_mnist

from minigan import data
from minigan.backend import Backend, device_of, to_numpy
from minigan.data import (
    MNIST_FILES,
    BatchIterator,
    MNISTNotFoundError,
    load_idx_pair,
    load_mnist,
    preprocess,
    read_idx,
    read_idx_images,
    read_idx_labels,
)


def write_idx(path: Path, magic: int, dims: tuple[int, ...], payload: bytes) -> Path:
    """Write a gzip-compressed IDX file with the given header and data bytes."""
    header = struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims)
    with gzip.open(path, "wb") as f:
        f.write(header + payload)
    return path


@pytest.fixture
def idx_files(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5, dtype=np.uint8)
    ipath = write_idx(tmp_path / "img.gz", 0x803, images.shape, images.tobytes())
    lpath = write_idx(tmp_path / "lab.gz", 0x801, labels.shape, labels.tobytes())
    return ipath, lpath, images, labels


@pytest.fixture(autouse=True)
def private_hash_memo(tmp_path, monkeypatch):
    """Keep the on-disk SHA-256 memo of these tests out of the user's cache dir."""
    monkeypatch.setattr(data, "_hash_cache_file", lambda: tmp_path / "memo" / "sha256.json")
    monkeypatch.setattr(data, "_HASH_MEMO", {})


# ---------------------------------------------------------------------------------------------
# IDX parsing on synthetic files
# ---------------------------------------------------------------------------------------------
def test_read_idx_roundtrip(idx_files):
    ipath, lpath, images, labels = idx_files
    got_images, got_labels = load_idx_pair(ipath, lpath)
    assert got_images.dtype == np.uint8 and got_images.shape == (5, 28, 28)
    assert got_labels.dtype == np.uint8 and got_labels.shape == (5,)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    got_images[0, 0, 0] ^= 1  # the result is an ordinary writable array


def test_wrong_magic_number(idx_files, tmp_path):
    ipath, lpath, *_ = idx_files
    with pytest.raises(ValueError, match=r"magic number 0x00000801, expected 0x00000803") as e:
        read_idx_images(lpath)  # a labels file where images are expected
    assert str(lpath) in str(e.value)
    bad = write_idx(tmp_path / "bad.gz", 0x0D03, (1, 2, 2), b"\0" * 16)  # dtype code 0x0D = float
    with pytest.raises(ValueError, match="bad magic number 0x00000d03"):
        read_idx(bad)


def test_truncated_gzip(idx_files, tmp_path):
    ipath, *_ = idx_files
    cut = tmp_path / "cut.gz"
    cut.write_bytes(ipath.read_bytes()[:-100])
    with pytest.raises(ValueError, match="corrupt or truncated") as e:
        read_idx_images(cut)
    assert str(cut) in str(e.value)


def test_not_gzip(tmp_path):
    junk = tmp_path / "junk.gz"
    junk.write_bytes(b"this is not gzip data at all")
    with pytest.raises(ValueError, match="cannot decompress"):
        read_idx(junk)


def test_data_shorter_than_header_says(tmp_path):
    short = write_idx(tmp_path / "short.gz", 0x803, (3, 28, 28), b"\0" * (2 * 28 * 28))
    with pytest.raises(ValueError, match=r"promises dims \(3, 28, 28\) = 2352 bytes.*holds 1568"):
        read_idx_images(short)


def test_images_and_labels_of_different_lengths(idx_files, tmp_path):
    ipath, *_ = idx_files
    lpath = write_idx(tmp_path / "lab4.gz", 0x801, (4,), bytes([1, 2, 3, 4]))
    with pytest.raises(ValueError, match="5 images but .* 4 labels") as e:
        load_idx_pair(ipath, lpath)
    assert str(ipath) in str(e.value) and str(lpath) in str(e.value)


def test_label_out_of_range(tmp_path):
    lpath = write_idx(tmp_path / "lab.gz", 0x801, (2,), bytes([3, 12]))
    with pytest.raises(ValueError, match="digits 0..9, found 12"):
        read_idx_labels(lpath)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_idx(tmp_path / "nope.gz")


# ---------------------------------------------------------------------------------------------
# Finding the files: offline errors, hashes, downloads
# ---------------------------------------------------------------------------------------------
def test_offline_without_files_says_where_it_looked(tmp_path):
    with pytest.raises(MNISTNotFoundError) as e:
        load_mnist("train", root=tmp_path, download=False)
    msg = str(e.value)
    assert str(tmp_path) in msg and "MINIGAN_DATA_DIR" in msg
    assert "train-images-idx3-ubyte.gz" in msg


def test_default_root_is_the_env_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGAN_DATA_DIR", str(tmp_path / "mnist-here"))
    assert data.default_data_dir() == tmp_path / "mnist-here"
    with pytest.raises(MNISTNotFoundError, match=r"mnist-here \(from \$MINIGAN_DATA_DIR\)"):
        load_mnist("test", download=False)


def test_default_root_without_env_is_the_user_cache(monkeypatch):
    import pooch

    monkeypatch.delenv("MINIGAN_DATA_DIR", raising=False)
    assert data.default_data_dir() == Path(pooch.os_cache("minigan")) / "mnist"


def test_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    import pooch

    calls = []

    def offline(url, **kw):
        calls.append(url)
        raise ConnectionError("no network")

    monkeypatch.setattr(pooch, "retrieve", offline)
    with pytest.raises(MNISTNotFoundError, match="downloading it failed") as e:
        load_mnist("test", root=tmp_path / "cache")
    assert "no network" in str(e.value) and "MINIGAN_DATA_DIR" in str(e.value)
    assert len(calls) == len(data.MNIST_MIRRORS)  # every mirror was tried


def test_wrong_hash_is_reported_and_never_used(idx_files, tmp_path, monkeypatch):
    import pooch

    ipath, lpath, *_ = idx_files
    root = tmp_path / "root"
    root.mkdir()
    # A perfectly readable IDX file that is not the real MNIST file.
    shutil.copy(ipath, root / "t10k-images-idx3-ubyte.gz")
    shutil.copy(lpath, root / "t10k-labels-idx1-ubyte.gz")
    monkeypatch.setattr(data, "read_idx", lambda *a, **k: pytest.fail("a bad file was read"))
    with pytest.raises(ValueError, match="wrong SHA-256.*not used"):
        load_mnist("test", root=root, download=False)
    monkeypatch.setattr(pooch, "retrieve", lambda url, **kw: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises(ValueError, match="wrong SHA-256.*fetching a fresh copy failed"):
        load_mnist("test", root=root, download=True)


def test_hash_is_computed_once_per_file_version(tmp_path, monkeypatch):
    f = tmp_path / "some.gz"
    f.write_bytes(b"abc")
    calls = []
    real = data._sha256
    monkeypatch.setattr(data, "_sha256", lambda p: calls.append(p) or real(p))
    h1 = data._cached_sha256(f)
    monkeypatch.setattr(data, "_HASH_MEMO", {})  # a new process: only the disk memo is left
    h2 = data._cached_sha256(f)
    assert h1 == h2 and len(calls) == 1
    f.write_bytes(b"abcd")  # new size and mtime: hashed again
    assert data._cached_sha256(f) != h1 and len(calls) == 2


# ---------------------------------------------------------------------------------------------
# Real MNIST
# ---------------------------------------------------------------------------------------------
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_mnist
@pytest.mark.parametrize(
    "split, n, counts, mean",
    [("train", 60000, TRAIN_COUNTS, 33.3184), ("test", 10000, TEST_COUNTS, 33.7912)],
)
def test_real_mnist(split, n, counts, mean):
    images, labels = load_mnist(split, root=MNIST_DIR, download=False)
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == counts
    assert images.mean() == pytest.approx(mean, abs=5e-5)


@needs_mnist
def test_bad_local_copy_is_refetched(tmp_path, monkeypatch):
    import pooch

    root = tmp_path / "root"
    root.mkdir()
    for name in MNIST_FILES["test"]:
        shutil.copy(Path(MNIST_DIR) / name, root / name)
    bad = root / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-10])  # truncated download
    fetched = []

    def fake_retrieve(url, known_hash, fname, path, **kw):  # a mirror that has the right file
        fetched.append(url)
        shutil.copy(Path(MNIST_DIR) / fname, Path(path) / fname)
        return str(Path(path) / fname)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    images, labels = load_mnist("test", root=root)
    assert fetched == [data.MNIST_MIRRORS[0] + "t10k-labels-idx1-ubyte.gz"]
    assert labels.shape == (10000,) and np.bincount(labels).tolist() == TEST_COUNTS


def test_unknown_split():
    with pytest.raises(ValueError, match="split: expected 'train' or 'test', got 'val'"):
        load_mnist("val")


# ---------------------------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------------------------
def test_preprocess_range_and_shape():
    images = np.array([[[0, 255], [127, 128]]], dtype=np.uint8)
    x = preprocess(images)
    assert x.dtype == np.float32 and x.shape == (1, 4)
    # float32 rounding: within one ulp of 1.0 (1.2e-7) of the exact values; the ends are exact.
    np.testing.assert_allclose(x[0], [-1.0, 1.0, 127 / 127.5 - 1, 128 / 127.5 - 1], atol=1.2e-7)
    assert x[0, 0] == -1.0 and x[0, 1] == 1.0
    with pytest.raises(TypeError, match="expected dtype uint8"):
        preprocess(x)


# ---------------------------------------------------------------------------------------------
# Batches on the device
# ---------------------------------------------------------------------------------------------
def _rows(batch) -> list[int]:
    """Row ids encoded in column 0 of the test data."""
    return [int(v) for v in to_numpy(batch)[:, 0]]


def _dataset(n=10, d=3):
    x = np.zeros((n, d), dtype=np.float32)
    x[:, 0] = np.arange(n)
    x[:, 1:] = np.random.default_rng(1).standard_normal((n, d - 1))
    return x


def test_batches_live_on_the_device(backend):
    x = _dataset()
    it = BatchIterator(x, 4, device=backend, seed=0)
    batches = list(it)
    assert len(it) == 2 and len(batches) == 2  # drop_last: 10 // 4
    for b in batches:
        assert type(b) is type(it.data)
        assert device_of(b) == backend.device
        assert tuple(b.shape) == (4, 3)
        host = to_numpy(b)
        np.testing.assert_array_equal(host, x[host[:, 0].astype(int)])  # the rows, unchanged
    seen = sum((_rows(b) for b in batches), [])
    assert len(set(seen)) == 8  # no row twice within an epoch


def test_one_epoch_covers_everything_without_drop_last(backend):
    it = BatchIterator(_dataset(), 4, device=backend, seed=0, drop_last=False)
    sizes = [int(b.shape[0]) for b in it]
    assert sizes == [4, 4, 2]
    rows = sorted(sum((_rows(b) for b in it), []))
    assert rows == list(range(10))


def test_shuffle_is_seeded_and_changes_every_epoch():
    x = _dataset(50)
    a = BatchIterator(x, 5, seed=3)
    b = BatchIterator(x, 5, seed=3)
    epoch1 = [_rows(t) for t in a]
    assert epoch1 == [_rows(t) for t in b]
    assert [_rows(t) for t in a] != epoch1
    assert [_rows(t) for t in BatchIterator(x, 5, seed=4)] != epoch1
    assert [_rows(t) for t in BatchIterator(x, 5, shuffle=False)][0] == [0, 1, 2, 3, 4]


def test_no_host_to_device_copy_per_batch(monkeypatch):
    """The data goes to the device once; then one index array per epoch, nothing per batch."""
    copies = []
    real = Backend.asarray
    monkeypatch.setattr(
        Backend,
        "asarray",
        lambda self, a, dtype=None: copies.append(np.shape(a)) or real(self, a, dtype),
    )
    it = BatchIterator(_dataset(40), 4, seed=0)
    assert copies == [(40, 3)]
    for _ in range(2):
        assert len(list(it)) == 10
    assert copies == [(40, 3), (40,), (40,)]


def test_resume_mid_epoch_gives_the_same_batches(backend):
    x = _dataset(30)
    straight = BatchIterator(x, 4, device=backend, seed=7)
    expected = [_rows(b) for b in straight] + [_rows(b) for b in straight]

    first = BatchIterator(x, 4, device=backend, seed=7)
    taken = []
    for i, b in enumerate(first):
        taken.append(_rows(b))
        if i == 2:
            break
    state = first.state_dict()
    assert state["position"] == 3
    second = BatchIterator(x, 4, device=backend, seed=999)  # the seed is overwritten
    second.load_state_dict(state)
    rest = [_rows(b) for b in second] + [_rows(b) for b in second]
    assert taken + rest == expected


def test_resume_exactly_at_epoch_end():
    x = _dataset(12)
    straight = BatchIterator(x, 4, seed=1)
    expected = [_rows(b) for b in straight] + [_rows(b) for b in straight]
    first = BatchIterator(x, 4, seed=1)
    taken = [_rows(b) for _, b in zip(range(3), first, strict=False)]  # all 3, then stop
    state = first.state_dict()
    assert state["position"] == 3
    second = BatchIterator(x, 4, seed=2)
    second.load_state_dict(state)
    assert taken + [_rows(b) for b in second] == expected


@pytest.mark.parametrize("bad", [0, -1, 11])
def test_batch_size_out_of_range(bad):
    with pytest.raises(ValueError, match=r"1 <= batch_size <= 10 \(dataset size\)"):
        BatchIterator(_dataset(), bad)


def test_bad_resume_position():
    it = BatchIterator(_dataset(), 5)
    with pytest.raises(ValueError, match="position 7 is outside 0..2"):
        it.load_state_dict({"rng": it.state_dict()["rng"], "position": 7})


def test_sample_ring_points_lie_near_the_ring_centres():
    from minigan.data import ring_centers, sample_ring

    x = sample_ring(4000, np.random.default_rng(0), modes=8, radius=0.75, std=0.03)
    assert x.shape == (4000, 2) and x.dtype == np.float32
    centers = ring_centers(8, 0.75)
    assert np.allclose(np.linalg.norm(centers, axis=1), 0.75)
    dist = np.linalg.norm(x[:, None, :] - centers[None], axis=2).min(axis=1)
    assert np.mean(dist < 4 * 0.03) > 0.99  # 4 sigma in 2-D holds ~99.97 %
    counts = np.bincount(np.linalg.norm(x[:, None] - centers[None], axis=2).argmin(1), minlength=8)
    assert counts.min() > 400  # every mode used (expected 500 each)
    with pytest.raises(ValueError, match="modes >= 1"):
        ring_centers(0)
