"""Checkpoints: a flat dict of arrays and scalars in one ``.npz`` file, written atomically.

A checkpoint holds whatever the caller puts in ``state`` (for training: weights, optimizer
moments, the host RNG states, epoch and step, see :mod:`minigan.train`) plus a JSON ``config``
and a format marker. It is plain NumPy: ``numpy.load(path, allow_pickle=False)`` reads it, so
loading a checkpoint never runs code from the file.

Layout of the ``.npz``:

* ``__minigan_checkpoint__``: 0-d int, the format version (:data:`FORMAT_VERSION`);
* ``__config__``: 0-d unicode array, the config as JSON;
* one entry per ``state`` key: arrays as NumPy arrays (copied off the device), strings as 0-d
  unicode arrays, numbers as 0-d arrays.

Writing goes to a temporary file in the same directory, is flushed to disk, then renamed over
the target with :func:`os.replace` (atomic on POSIX and Windows), so a crash or Ctrl-C while
saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .backend import to_numpy
from .files import atomic_write

__all__ = [
    "FORMAT_VERSION",
    "MARKER",
    "save_checkpoint",
    "load_checkpoint",
    "restore_gan",
    "gan_from_checkpoint",
]

FORMAT_VERSION = 1
MARKER = "__minigan_checkpoint__"
CONFIG_KEY = "__config__"


def _to_storable(key: str, value: Any) -> np.ndarray:
    if isinstance(value, str):
        return np.asarray(value)  # 0-d unicode array
    if isinstance(value, (bool, int, float, np.generic)):
        return np.asarray(value)
    try:
        arr = to_numpy(value)
    except Exception as e:  # pragma: no cover - unusual objects
        raise TypeError(f"checkpoint state {key!r}: cannot store a {type(value).__name__}") from e
    if arr.dtype == object:
        raise TypeError(
            f"checkpoint state {key!r}: object arrays cannot be stored without pickle; "
            "store numbers, strings or numeric arrays"
        )
    return arr


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], config: dict[str, Any]) -> Path:
    """Write ``state`` and ``config`` to ``path`` (``.npz``) atomically.

    Parameters
    ----------
    path : path
        Target file; its directory must exist. Written as given (no suffix is added).
    state : dict of str -> array | str | int | float | bool
        Device arrays are copied to the host; strings become 0-d unicode arrays.
    config : dict
        JSON-serialisable settings (stored as one JSON string).

    Returns
    -------
    Path

    Raises
    ------
    TypeError
        A value that cannot be stored without pickle, or a config that is not JSON.
    ValueError
        A state key that collides with the reserved marker/config keys.
    OSError
        The directory is missing or not writable (the previous file, if any, is untouched).
    """
    path = Path(path)
    for reserved in (MARKER, CONFIG_KEY):
        if reserved in state:
            raise ValueError(f"checkpoint state: key {reserved!r} is reserved")
    try:
        config_json = json.dumps(config)
    except (TypeError, ValueError) as e:
        raise TypeError(f"checkpoint config must be JSON-serialisable: {e}") from e
    arrays = {k: _to_storable(k, v) for k, v in state.items()}
    arrays[MARKER] = np.asarray(FORMAT_VERSION)
    arrays[CONFIG_KEY] = np.asarray(config_json)
    with atomic_write(path) as f:  # unique temp file, fsync, os.replace
        np.savez(f, **arrays)
    return path


def _from_stored(arr: np.ndarray) -> Any:
    if arr.ndim == 0:
        if arr.dtype.kind == "U":
            return str(arr)
        return arr.item()  # Python int / float / bool
    return arr


#: Largest total of declared array bytes :func:`load_checkpoint` reads (checked before reading).
MAX_CHECKPOINT_BYTES = 8 * 2**30

_NPY_MAGIC = b"\x93NUMPY"


def _open_archive(path: Path) -> zipfile.ZipFile:
    """Open the ``.npz`` as a zip archive after a look at its first bytes."""
    with open(path, "rb") as f:
        head = f.read(len(_NPY_MAGIC))
    if head.startswith(_NPY_MAGIC):
        raise ValueError(
            f"checkpoint {path} cannot be read: it holds a single .npy array (numpy.save), "
            "not an .npz archive"
        )
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(
            f"checkpoint {path} cannot be read: it is not an .npz archive, or it is truncated "
            f"or corrupt ({type(e).__name__}: {e})"
        ) from e


def _member_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path):
    """(shape, dtype) from one member's .npy header, without reading its data."""
    key = info.filename.removesuffix(".npy")
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy format version {version} is not supported")
    except (ValueError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(
            f"checkpoint {path} cannot be read: entry {key!r} has no valid .npy header ({e})"
        ) from e
    if dtype.hasobject:
        raise ValueError(
            f"checkpoint {path} cannot be read: entry {key!r} holds pickled objects, which are "
            "refused"
        )
    return shape, dtype


def _check_declared_sizes(zf: zipfile.ZipFile, path: Path, max_bytes: int) -> None:
    """Every member's .npy header must match its zip entry, and the total must fit the limit."""
    total = 0
    for info in zf.infolist():
        shape, dtype = _member_header(zf, info, path)
        nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if nbytes > info.file_size:
            raise ValueError(
                f"checkpoint {path} cannot be read: entry {info.filename!r} declares "
                f"{nbytes} bytes of {dtype} {tuple(shape)} but holds {info.file_size}"
            )
        total += info.file_size
        if total > max_bytes:
            raise ValueError(
                f"checkpoint {path} cannot be read: its arrays declare more than {max_bytes} "
                f"bytes (MAX_CHECKPOINT_BYTES), far more than a minigan model needs"
            )


def _read_config(npz, path: Path) -> dict[str, Any]:
    try:
        config = json.loads(str(npz[CONFIG_KEY]))
    except (KeyError, ValueError) as e:
        raise ValueError(f"checkpoint {path}: the config is missing or not valid JSON") from e
    if not isinstance(config, dict):
        raise ValueError(
            f"checkpoint {path}: the config is a JSON {type(config).__name__}, expected an "
            "object of settings"
        )
    return config


def _check_rng_states(state: dict[str, Any], path: Path) -> None:
    """Entries named ``rng`` or ``*.rng`` are host RNG states (``backend.host_rng_state``)."""
    for key, value in state.items():
        if key.rsplit(".", 1)[-1] != "rng":
            continue
        try:
            np.random.PCG64().state = json.loads(value) if isinstance(value, str) else value
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(
                f"checkpoint {path}: entry {key!r} is not a valid PCG64 random-generator state "
                f"({e})"
            ) from e


def _read_members(npz, path: Path) -> dict[str, np.ndarray]:
    out = {}
    for k in npz.files:
        if k in (MARKER, CONFIG_KEY):
            continue
        try:
            out[k] = npz[k]
        except ValueError as e:  # data shorter than its header says, and the like
            raise ValueError(f"checkpoint {path} cannot be read: entry {k!r}: {e}") from e
    return out


def load_checkpoint(
    path: str | os.PathLike, *, max_bytes: int = MAX_CHECKPOINT_BYTES
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : path of the ``.npz``
    max_bytes : int
        Refuse files whose members declare more bytes in total (default
        :data:`MAX_CHECKPOINT_BYTES`).

    Returns
    -------
    state : dict
        Arrays as NumPy arrays; 0-d entries as Python ``str``/``int``/``float``/``bool``.
    config : dict

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file is truncated or corrupt, is a single ``.npy`` or no ``.npz`` archive, holds
        pickled objects, lacks the minigan format marker (a foreign file), has a newer format
        version, declares more bytes than it holds or than ``max_bytes``, has a config that is
        not a JSON object, or an RNG state NumPy refuses. The message names the file and what
        is wrong.

    Notes
    -----
    Nothing is loaded before it is checked: first the member names (the marker), then every
    member's ``.npy`` header (shape and dtype against the zip entry's size), then the marker
    and the config, and only then the arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path}: no such file")
    with _open_archive(path) as zf:
        keys = [n.removesuffix(".npy") for n in zf.namelist()]
        if MARKER not in keys:
            shown = sorted(keys)[:5]
            raise ValueError(
                f"checkpoint {path} is not a minigan checkpoint: the format marker {MARKER!r} "
                f"is missing (keys: {shown}{'...' if len(keys) > 5 else ''})"
            )
        _check_declared_sizes(zf, path, max_bytes)
    try:
        with np.load(path, allow_pickle=False) as npz:
            version = int(npz[MARKER])
            if version > FORMAT_VERSION:
                raise ValueError(
                    f"checkpoint {path} has format version {version}, this minigan reads up "
                    f"to {FORMAT_VERSION}: upgrade minigan"
                )
            config = _read_config(npz, path)
            raw = _read_members(npz, path)
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
        raise ValueError(
            f"checkpoint {path} cannot be read: the file is truncated or corrupt "
            f"({type(e).__name__}: {e})"
        ) from e
    state = {k: _from_stored(v) for k, v in raw.items()}
    _check_rng_states(state, path)
    return state, config


def restore_gan(gan, state: dict[str, Any], source: str | os.PathLike = "checkpoint") -> None:
    """Load the ``gan.*`` entries of a checkpoint ``state`` into ``gan``.

    Raises
    ------
    ValueError
        Missing keys or shapes that do not match ``gan``; the message names the checkpoint,
        the parameter, and expected vs got shapes.
    """
    sub = {k[len("gan.") :]: v for k, v in state.items() if k.startswith("gan.")}
    if not sub:
        raise ValueError(f"checkpoint {source} holds no GAN weights (no 'gan.*' entries)")
    try:
        gan.load_state_dict(sub)
    except (KeyError, ValueError) as e:
        detail = e.args[0] if e.args else str(e)
        raise ValueError(f"checkpoint {source} does not match the model: {detail}") from e


def gan_from_checkpoint(path: str | os.PathLike, device: Any = "cpu"):
    """Rebuild the GAN a training checkpoint describes and load its weights.

    The config names the preset (a registered name plus overrides, or, for a preset this
    minigan does not have, its full data in ``preset_fields``) and the dataset, whose image
    shape the models are built for (MNIST for checkpoints of minigan 0.1).

    Parameters
    ----------
    path : path of a checkpoint written by :func:`minigan.train.train` / ``train_mnist``
    device : where to put the model (``"cpu"``, ``"gpu"``, ``"auto"``, ...)

    Returns
    -------
    gan : GAN
    state, config : as :func:`load_checkpoint`

    Raises
    ------
    ValueError
        As :func:`load_checkpoint`, a config without the model settings, an unknown dataset,
        settings that describe no model or one too large for memory, or weights that do not
        fit the model the config describes.
    """
    from .data import get_dataset
    from .gan import build_gan
    from .presets import Preset

    state, config = load_checkpoint(path)
    try:
        name = config["preset"]
        overrides = config.get("overrides", {})
        seed = config.get("seed", 0)
    except (KeyError, TypeError) as e:
        raise ValueError(
            f"checkpoint {path}: its config has no model settings ('preset' missing); was it "
            "written by minigan.train_mnist?"
        ) from e
    if not isinstance(overrides, dict):
        raise ValueError(
            f"checkpoint {path}: config 'overrides' is a JSON {type(overrides).__name__}, "
            "expected an object"
        )
    overrides = _overrides_from_json(overrides)
    image_shape = get_dataset(config.get("dataset", "mnist")).image_shape
    preset = name
    if "preset_fields" in config:  # what was trained, even if the registry entry changed since
        try:
            preset = Preset.from_dict(config["preset_fields"])
        except (TypeError, ValueError):  # fields of another minigan: fall back on the name
            preset = name
        if preset is not name:
            overrides = {"dtype": overrides["dtype"]} if "dtype" in overrides else {}
    try:
        gan = build_gan(preset, device=device, seed=seed, image_shape=image_shape, **overrides)
    except MemoryError as e:
        raise ValueError(
            f"checkpoint {path}: the model its config describes does not fit in memory "
            f"(preset {name!r}, overrides {overrides}); the config is damaged"
        ) from e
    except TypeError as e:
        raise ValueError(f"checkpoint {path}: its config does not describe a model: {e}") from e
    restore_gan(gan, state, path)
    return gan, state, config


def _overrides_from_json(overrides: dict[str, Any]) -> dict[str, Any]:
    """JSON turns tuples into lists; give the Preset's tuple fields their tuples back."""
    from .presets import _tuples

    return {k: _tuples(v) for k, v in overrides.items()}
