"""Checkpoints: .npz round trip, atomic writes, and clear errors for bad files."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from minigan import checkpoint
from minigan.backend import to_numpy
from minigan.checkpoint import (
    MARKER,
    gan_from_checkpoint,
    load_checkpoint,
    restore_gan,
    save_checkpoint,
)
from minigan.gan import build_gan

TINY = {"latent_dim": 4, "g_hidden": (8,), "d_hidden": (8,)}


def _state(rng):
    return {
        "w32": rng.standard_normal((3, 4)).astype(np.float32),
        "w64": rng.standard_normal(5),
        "idx": np.arange(6, dtype=np.int64),
        "name": "adam-state",
        "count": 7,
        "lr": 2e-4,
        "flag": True,
    }


def test_round_trip(tmp_path, rng):
    state = _state(rng)
    config = {"preset": "default", "hidden": [1, 2], "none": None}
    path = save_checkpoint(tmp_path / "ck.npz", state, config)
    got, got_config = load_checkpoint(path)
    assert got_config == config
    assert set(got) == set(state)
    for k in ("w32", "w64", "idx"):
        assert got[k].dtype == state[k].dtype
        np.testing.assert_array_equal(got[k], state[k])
    assert got["name"] == "adam-state" and isinstance(got["name"], str)
    assert got["count"] == 7 and isinstance(got["count"], int)
    assert got["lr"] == 2e-4 and got["flag"] is True
    # Plain NumPy reads it without pickle.
    with np.load(path, allow_pickle=False) as npz:
        assert int(npz[MARKER]) == checkpoint.FORMAT_VERSION


def test_device_arrays_are_saved_as_numpy(tmp_path, make):
    w = make((2, 3), "float32")
    save_checkpoint(tmp_path / "ck.npz", {"w": w}, {})
    got, _ = load_checkpoint(tmp_path / "ck.npz")
    assert isinstance(got["w"], np.ndarray)
    np.testing.assert_array_equal(got["w"], to_numpy(w))


def test_save_is_atomic(tmp_path, rng, monkeypatch):
    path = tmp_path / "ck.npz"
    save_checkpoint(path, {"a": np.ones(3)}, {"v": 1})
    before = path.read_bytes()

    def crash(f, **arrays):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"a": np.zeros(3)}, {"v": 2})
    assert path.read_bytes() == before  # the old checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]  # no temp file left behind


def test_unstorable_values_fail_before_writing(tmp_path):
    with pytest.raises(TypeError, match="object arrays cannot be stored"):
        save_checkpoint(tmp_path / "ck.npz", {"x": np.array([{}, 1], dtype=object)}, {})
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(tmp_path / "ck.npz", {}, {"bad": object()})
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "ck.npz", {MARKER: 1}, {})
    assert not (tmp_path / "ck.npz").exists()


def test_truncated_checkpoint(tmp_path, rng):
    path = save_checkpoint(tmp_path / "ck.npz", _state(rng), {})
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or corrupt") as e:
        load_checkpoint(cut)
    assert str(cut) in str(e.value)


def test_corrupt_member_is_caught(tmp_path, rng):
    path = save_checkpoint(tmp_path / "ck.npz", {"w": np.zeros(10_000)}, {})
    raw = bytearray(path.read_bytes())
    raw[2000] ^= 0xFF  # a flipped byte inside the array data: the zip CRC catches it
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="cannot be read"):
        load_checkpoint(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all, just text\n"])
def test_garbage_file(tmp_path, content):
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"checkpoint {path} cannot be read"):
        load_checkpoint(path)


def test_foreign_npz(tmp_path):
    path = tmp_path / "weights.npz"
    np.savez(path, W=np.ones(3))
    with pytest.raises(ValueError, match=f"not a minigan checkpoint.*{MARKER}.*'W'"):
        load_checkpoint(path)


def test_pickled_content_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, **{MARKER: np.asarray(1), "x": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError, match="pickled objects, which are refused"):
        load_checkpoint(path)


def test_newer_format_version(tmp_path):
    path = tmp_path / "future.npz"
    np.savez(path, **{MARKER: np.asarray(99), "__config__": np.asarray("{}")})
    with pytest.raises(ValueError, match="format version 99"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_checkpoint(tmp_path / "nope.npz")


def _gan_checkpoint(path, **overrides):
    gan = build_gan("default", device="cpu", seed=3, **{**TINY, **overrides})
    state = {f"gan.{k}": v for k, v in gan.state_dict().items()}
    config = {"kind": "minigan.train_mnist", "preset": "default", "seed": 3}
    config["overrides"] = {k: list(v) if isinstance(v, tuple) else v for k, v in TINY.items()}
    save_checkpoint(path, state, config)
    return gan


def test_gan_round_trip(tmp_path):
    gan = _gan_checkpoint(tmp_path / "ck.npz")
    back, _, config = gan_from_checkpoint(tmp_path / "ck.npz")
    z = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(to_numpy(back.sample(3, z=z)), to_numpy(gan.sample(3, z=z)))
    assert back.generator.params.keys() == gan.generator.params.keys()


def test_shape_mismatch_names_the_checkpoint_and_parameter(tmp_path):
    _gan_checkpoint(tmp_path / "ck.npz", g_hidden=(16,))  # weights of a wider generator
    state, _ = load_checkpoint(tmp_path / "ck.npz")
    gan = build_gan("default", device="cpu", **TINY)
    with pytest.raises(
        ValueError,
        match=r"does not match the model: 0\.weight: expected shape "
        r"\(8, 4\), got \(16, 4\)",
    ) as e:
        restore_gan(gan, state, tmp_path / "ck.npz")
    assert "checkpoint" in str(e.value) and str(tmp_path / "ck.npz") in str(e.value)


def test_missing_parameters(tmp_path):
    gan = build_gan("default", device="cpu", **TINY)
    with pytest.raises(ValueError, match="no GAN weights"):
        restore_gan(gan, {"x": 1}, "ck.npz")
    state = {f"gan.{k}": v for k, v in gan.state_dict().items() if k != "generator.0.bias"}
    with pytest.raises(ValueError, match=r"does not match the model.*missing \['0\.bias'\]"):
        restore_gan(gan, state, "ck.npz")


# ----------------------------------------------------------------------------------------------
# Crafted and mislabelled files (issue 15, items 10 and 13): one line naming the file and problem
# ----------------------------------------------------------------------------------------------
def test_npy_renamed_npz_says_so(tmp_path):
    path = tmp_path / "ck.npz"
    with open(path, "wb") as f:
        np.save(f, np.ones(3))
    # before: "'numpy.ndarray' object does not support the context manager protocol"
    with pytest.raises(ValueError, match=r"ck\.npz cannot be read: it holds a single \.npy"):
        load_checkpoint(path)


def test_foreign_npz_is_refused_before_its_arrays_are_read(tmp_path, monkeypatch):
    path = tmp_path / "big.npz"
    np.savez(path, W=np.zeros(10))
    reads = []
    real = np.lib.npyio.NpzFile.__getitem__
    monkeypatch.setattr(
        np.lib.npyio.NpzFile, "__getitem__", lambda s, k: reads.append(k) or real(s, k)
    )
    with pytest.raises(ValueError, match="not a minigan checkpoint"):
        load_checkpoint(path)
    assert reads == []  # before: every member was read first


def _crafted(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _npy_header(shape, dtype="<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def test_declared_sizes_are_checked_before_loading(tmp_path):
    head = {MARKER: _npy(np.asarray(1)), "__config__": _npy(np.asarray("{}"))}
    path = tmp_path / "lie.npz"  # a header declaring 8 GB over 32 bytes of data
    _crafted(path, {**head, "w": _npy_header((10**9,)) + bytes(32)})
    with pytest.raises(ValueError, match=r"lie\.npz cannot be read: entry 'w\.npy' declares"):
        load_checkpoint(path)
    path = tmp_path / "obj.npz"
    _crafted(path, {**head, "w": _npy_header((2,), "|O") + bytes(16)})
    with pytest.raises(ValueError, match=r"entry 'w' holds pickled objects"):
        load_checkpoint(path)
    path = tmp_path / "ok.npz"
    save_checkpoint(path, {"w": np.zeros(1000)}, {})
    with pytest.raises(ValueError, match=r"more than 100 bytes \(MAX_CHECKPOINT_BYTES\)"):
        load_checkpoint(path, max_bytes=100)


def test_config_that_is_a_list(tmp_path):
    path = tmp_path / "ck.npz"
    np.savez(path, **{MARKER: np.asarray(1), "__config__": np.asarray("[1, 2]")})
    # before: AttributeError traceback in gan_from_checkpoint
    with pytest.raises(ValueError, match=r"ck\.npz: the config is a JSON list, expected an object"):
        load_checkpoint(path)


def test_bad_rng_state_names_the_file_and_entry(tmp_path):
    path = save_checkpoint(tmp_path / "ck.npz", {"gan.rng": '{"bit_generator": "MT19937"}'}, {})
    # before: "state must be for a PCG64 RNG" without the file (raised later, while resuming)
    with pytest.raises(ValueError, match=r"ck\.npz: entry 'gan\.rng' is not a valid PCG64"):
        load_checkpoint(path)
    good = json.dumps(np.random.default_rng(0).bit_generator.state)
    state, _ = load_checkpoint(save_checkpoint(tmp_path / "ok.npz", {"data.rng": good}, {}))
    assert state["data.rng"] == good


def test_huge_model_override_is_one_line(tmp_path):
    path = tmp_path / "ck.npz"
    _gan_checkpoint(path)
    state, config = load_checkpoint(path)
    config["overrides"]["g_hidden"] = [200000, 200000]
    save_checkpoint(path, state, config)
    # before: MemoryError traceback
    with pytest.raises(ValueError, match=r"ck\.npz: the model its config describes does not fit"):
        gan_from_checkpoint(path)
    config["overrides"] = [1, 2]
    save_checkpoint(path, state, config)
    with pytest.raises(ValueError, match=r"config 'overrides' is a JSON list"):
        gan_from_checkpoint(path)
