"""Array backends: one code path for NumPy (CPU), CuPy (GPU) and array-api-strict (tests).

Every op in minigan starts with ``xp = array_namespace(x, ...)`` and then uses only functions
of the Python array API standard, so the same lines run on every backend. This module also
decides where arrays live (``resolve_device``), moves them there (``to_device``) and back
(``to_numpy``), and owns the *host* random number generator: every random draw (initial
weights, noise, masks) is made by a seeded :class:`numpy.random.Generator` on the host and then
moved to the device, so one seed gives the same numbers on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import array_api_compat
import array_api_compat.numpy
import numpy as np

__all__ = [
    "Backend",
    "array_namespace",
    "resolve_device",
    "resolve_dtype",
    "to_device",
    "to_numpy",
    "device_of",
    "default_rng",
    "manual_seed",
    "as_generator",
    "host_rng_state",
    "set_host_rng_state",
    "cupy_available",
    "check_floating",
]

DEFAULT_DTYPE = "float32"


# ----------------------------------------------------------------------------------------------
# Namespaces
# ----------------------------------------------------------------------------------------------
def array_namespace(*arrays: Any, names: tuple[str, ...] | None = None):
    """Return the array-API namespace shared by ``arrays`` (NumPy, CuPy, array-api-strict, ...).

    Python scalars and ``None`` are ignored, as in ``array_api_compat.array_namespace``.

    Parameters
    ----------
    *arrays : arrays or scalars
        The arrays an op is about to combine.
    names : tuple of str, optional
        Argument names used in error messages (``("x", "weight")``); defaults to ``arg0, arg1...``.

    Returns
    -------
    namespace
        The array-API compatible namespace (``array_api_compat.numpy`` for NumPy arrays).

    Raises
    ------
    TypeError
        If the arrays come from different libraries, or an argument is not an array;
        the message names the offending argument and both libraries.
    ValueError
        If the arrays live on different devices (for example two GPUs, or array-api-strict's
        ``CPU_DEVICE`` and ``device1``); the message names the argument and both devices.
    """
    if arrays and type(arrays[0]) is np.ndarray:
        # Fast path, same answer: plain NumPy arrays only (the CPU case). Every op of every
        # training step asks this question; the general loop below costs ~15 us a call.
        for a in arrays:
            if a is not None and type(a) is not np.ndarray:
                break
        else:
            return array_api_compat.numpy
    names = names or tuple(f"arg{i}" for i in range(len(arrays)))
    first = None  # (name, namespace, device)
    for name, a in zip(names, arrays, strict=False):
        if a is None or isinstance(a, (bool, int, float, complex)):
            continue
        if not array_api_compat.is_array_api_obj(a):
            raise TypeError(f"{name}: expected an array, got {type(a).__name__}")
        ns = array_api_compat.array_namespace(a)
        dev = array_api_compat.device(a)
        if first is None:
            first = (name, ns, dev)
            continue
        if ns is not first[1]:
            raise TypeError(
                f"{name} is a {_lib(ns)} array but {first[0]} is a {_lib(first[1])} array: "
                "move both to one backend first (minigan.backend.to_device)"
            )
        if dev != first[2]:
            raise ValueError(
                f"{name} is on device {dev!r} but {first[0]} is on device {first[2]!r}: "
                "move both to one device first (minigan.backend.to_device)"
            )
    if first is None:
        raise TypeError("array_namespace() needs at least one array argument")
    return first[1]


def _lib(ns) -> str:
    return ns.__name__.replace("array_api_compat.", "")


def device_of(x):
    """Return the device object of array ``x`` (``"cpu"`` for NumPy).

    Raises
    ------
    AttributeError
        ``x`` is not an array (has no ``device``), e.g. a list.
    """
    return array_api_compat.device(x)


def check_floating(x, name: str = "x") -> None:
    """Raise ``TypeError`` unless ``x`` has a real floating dtype (float32 or float64).

    Raises
    ------
    TypeError
        ``x`` is not an array, or its dtype is not real floating; the message names ``name``
        and the dtype.
    """
    xp = array_namespace(x, names=(name,))
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {x.dtype}")


# ----------------------------------------------------------------------------------------------
# Devices
# ----------------------------------------------------------------------------------------------
def cupy_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDARuntimeError (no driver), ...
        return False


@dataclass(frozen=True)
class Backend:
    """Where arrays live: an array-API namespace plus a device of that namespace.

    Attributes
    ----------
    xp : namespace
        ``array_api_compat.numpy``, ``array_api_compat.cupy`` or ``array_api_strict``.
    device : object
        The namespace's device object (``"cpu"`` for NumPy, a ``cupy.cuda.Device``,
        an ``array_api_strict.Device``).
    name : str
        ``"cpu"``, ``"gpu"`` or ``"array_api_strict:<device>"``; what checkpoints record.

    Raises
    ------
    TypeError
        From :meth:`asarray` and :meth:`zeros`: a ``dtype`` other than float32 / float64.
    """

    xp: Any
    device: Any
    name: str

    def asarray(self, a, dtype=None):
        """Copy host data (NumPy array, list, scalar) to this backend, optionally casting."""
        if dtype is not None:
            dtype = resolve_dtype(self.xp, dtype)
        if self.name == "cpu":
            return np.array(a, dtype=dtype, copy=True)  # a copy, as on a device
        return self.xp.asarray(np.asarray(a), dtype=dtype, device=self.device)

    def zeros(self, shape, dtype=DEFAULT_DTYPE):
        """``xp.zeros`` on this backend's device."""
        return self.xp.zeros(shape, dtype=resolve_dtype(self.xp, dtype), device=self.device)

    def __str__(self) -> str:
        return self.name


def resolve_device(device: Any = "cpu") -> Backend:
    """Turn a device request into a :class:`Backend`.

    Parameters
    ----------
    device : str, Backend, array_api_strict.Device or cupy.cuda.Device
        ``"cpu"`` (NumPy), ``"gpu"``/``"cuda"`` (CuPy, device 0), ``"auto"`` (GPU if CuPy sees
        one, else CPU), an existing ``Backend``, or a device object of array-api-strict or CuPy.

    Returns
    -------
    Backend

    Raises
    ------
    RuntimeError
        ``"gpu"`` was asked for but CuPy is not installed or sees no CUDA device; the message
        says how to install it.
    ValueError
        Unknown device string.
    TypeError
        ``device`` is neither a string, a Backend nor a device object of CuPy/array-api-strict.
    """
    if isinstance(device, Backend):
        return device
    if isinstance(device, str):
        key = device.lower()
        if key == "auto":
            key = "gpu" if cupy_available() else "cpu"
        if key == "cpu":
            return Backend(array_api_compat.numpy, "cpu", "cpu")
        if key in ("gpu", "cuda"):
            if not cupy_available():
                raise RuntimeError(
                    f"device={device!r} needs CuPy and a CUDA GPU, but "
                    + (
                        "no CUDA device is visible"
                        if _cupy_importable()
                        else "CuPy is not installed"
                    )
                    + ". Install it with `pip install cupy-cuda12x` (CUDA 12) or "
                    "`pip install cupy-cuda13x` (CUDA 13), or use device='cpu'."
                )
            import cupy
            from array_api_compat import cupy as compat_cupy

            return Backend(compat_cupy, cupy.cuda.Device(0), "gpu")
        raise ValueError(f"device: expected 'cpu', 'gpu' or 'auto', got {device!r}")
    mod = type(device).__module__
    if mod.startswith("array_api_strict"):
        import array_api_strict

        return Backend(array_api_strict, device, f"array_api_strict:{device}")
    if mod.startswith("cupy"):
        from array_api_compat import cupy as compat_cupy

        return Backend(compat_cupy, device, "gpu")
    raise TypeError(
        f"device: expected a str, Backend or device object, got {type(device).__name__}"
    )


def _cupy_importable() -> bool:
    try:
        import cupy  # noqa: F401

        return True
    except Exception:
        return False


def backend_of(x) -> Backend:
    """The :class:`Backend` an array lives on."""
    xp = array_namespace(x)
    dev = array_api_compat.device(x)
    if array_api_compat.is_numpy_array(x):
        return Backend(xp, "cpu", "cpu")
    if array_api_compat.is_cupy_array(x):
        return Backend(xp, dev, "gpu")
    return Backend(xp, dev, f"{_lib(xp)}:{dev}")


def resolve_dtype(xp, dtype: Any = DEFAULT_DTYPE):
    """Map ``"float32"``, ``numpy.float32`` or a namespace dtype to ``xp``'s dtype object.

    Raises
    ------
    TypeError
        For anything but float32 / float64 (minigan trains in float32 and checks gradients in
        float64).
    """
    if dtype is None:
        dtype = DEFAULT_DTYPE
    for name in ("float32", "float64"):
        target = getattr(xp, name)
        # Compare with ``==`` only within one library: array-api-strict warns when its dtypes
        # are compared with NumPy's (numpy.float32 is handled by np.dtype below).
        if (type(dtype) is type(target) and dtype == target) or dtype == name:
            return target
        try:
            if np.dtype(dtype) == np.dtype(name):
                return target
        except TypeError:
            pass
    raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}")


def to_device(x, device: Any):
    """Copy array ``x`` to ``device`` (anything :func:`resolve_device` accepts).

    Arrays already on that device are returned unchanged; anything else goes through the host.
    Shape and dtype are kept.

    Raises
    ------
    TypeError
        ``device`` is not a str, :class:`Backend` or device object.
    ValueError
        Unknown device string.
    RuntimeError
        ``device="gpu"`` without CuPy or a visible CUDA device.
    """
    target = resolve_device(device)
    if target.name == "cpu":
        return to_numpy(x)
    if (
        array_api_compat.is_array_api_obj(x)
        and array_api_compat.array_namespace(x) is target.xp
        and device_of(x) == target.device
    ):
        return x
    return target.xp.asarray(to_numpy(x), device=target.device)


def to_numpy(x) -> np.ndarray:
    """Copy any supported array to a host NumPy array (a no-op for NumPy input).

    On a GPU this waits for the device: call it for logging and saving, not in the hot loop.
    Shape and dtype are kept. Raises nothing of its own: objects it does not recognise go
    through ``numpy.asarray``.
    """
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return np.asarray(x)
    if array_api_compat.is_cupy_array(x):
        return x.get()
    mod = type(x).__module__
    if mod.startswith("array_api_strict"):
        import array_api_strict

        return np.asarray(x.to_device(array_api_strict.Device("CPU_DEVICE")))
    return np.asarray(x)


# ----------------------------------------------------------------------------------------------
# Host random numbers
# ----------------------------------------------------------------------------------------------
_DEFAULT_RNG = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed minigan's global host generator (like ``torch.manual_seed``) and return it.

    Raises
    ------
    TypeError, ValueError
        From ``numpy.random.default_rng``: ``seed`` is not a non-negative int (or other seed
        NumPy accepts).
    """
    global _DEFAULT_RNG
    _DEFAULT_RNG = np.random.default_rng(seed)
    return _DEFAULT_RNG


def default_rng() -> np.random.Generator:
    """The global host generator used when a function gets ``rng=None``."""
    return _DEFAULT_RNG


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """``None`` -> the global generator, ``int`` -> a new seeded generator, else ``rng``.

    Raises
    ------
    TypeError
        ``rng`` is none of ``None``, an int or a ``numpy.random.Generator``.
    ValueError
        A negative int seed (from ``numpy.random.default_rng``).
    """
    if rng is None:
        return _DEFAULT_RNG
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"rng: expected None, an int seed or numpy.random.Generator, got {rng!r}")


def host_rng_state(rng: np.random.Generator) -> str:
    """Serialise a generator's state to a JSON string (for checkpoints, no pickle).

    Raises
    ------
    AttributeError
        ``rng`` is not a ``numpy.random.Generator`` (has no ``bit_generator``).
    TypeError
        A bit generator whose state holds arrays (e.g. ``MT19937``); ``PCG64``, the
        ``default_rng`` one, serialises.
    """
    import json

    return json.dumps(rng.bit_generator.state)


def set_host_rng_state(rng: np.random.Generator, state: str) -> None:
    """Restore a state written by :func:`host_rng_state`.

    Raises
    ------
    json.JSONDecodeError
        ``state`` is not valid JSON (a subclass of ``ValueError``).
    ValueError
        The state belongs to another bit generator (NumPy's check).
    TypeError
        The decoded state is not a dict (NumPy's check).
    """
    import json

    rng.bit_generator.state = json.loads(state)
