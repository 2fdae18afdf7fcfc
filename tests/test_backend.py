"""minigan.backend: namespaces, devices, dtypes, host RNG, and clear errors when mixing."""

from __future__ import annotations

import json

import array_api_compat
import numpy as np
import pytest
from conftest import BACKENDS, HAS_CUPY_GPU, HAS_STRICT, dtype_name, host, make_backend

from minigan import BCEWithLogitsLoss, Linear
from minigan import functional as F
from minigan.backend import (
    Backend,
    array_namespace,
    as_generator,
    backend_of,
    check_floating,
    default_rng,
    device_of,
    host_rng_state,
    manual_seed,
    resolve_device,
    resolve_dtype,
    set_host_rng_state,
    to_device,
    to_numpy,
)

needs_strict = pytest.mark.skipif(not HAS_STRICT, reason="array-api-strict is not installed")

# The non-NumPy backends: mixing any of them with NumPy must fail loudly.
DEVICE_BACKENDS = [p for p in BACKENDS if p.id != "numpy"]


@pytest.fixture(params=DEVICE_BACKENDS)
def device_backend(request) -> Backend:
    return make_backend(request.param)


# ----------------------------------------------------------------------------------------------
# Backend objects and arrays
# ----------------------------------------------------------------------------------------------
def test_backend_asarray_and_zeros(backend):
    a = backend.asarray([[1.0, 2.0], [3.0, 4.0]], "float32")
    z = backend.zeros((2, 3), "float64")
    assert dtype_name(a) == "float32" and dtype_name(z) == "float64"
    assert dtype_name(backend.zeros((1,))) == "float32"  # float32 is the default
    assert array_namespace(a) is backend.xp and device_of(a) == backend.device
    assert backend_of(a) == backend
    np.testing.assert_array_equal(host(a), [[1, 2], [3, 4]])
    assert np.all(host(z) == 0) and tuple(z.shape) == (2, 3)
    assert str(backend) == backend.name


def test_to_device_and_back(backend):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    d = to_device(x, backend)
    assert array_namespace(d) is backend.xp and dtype_name(d) == "float32"
    assert to_device(d, backend) is d  # already there: no copy
    back = to_numpy(d)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, x)
    assert isinstance(to_device(d, "cpu"), np.ndarray)


@needs_strict
def test_strict_device1_refuses_numpy_like_a_gpu():
    # Why the array-api-strict parametrization proves GPU readiness on a CPU.
    import array_api_strict as xps

    a = xps.asarray([1.0, 2.0], device=xps.Device("device1"))
    with pytest.raises(RuntimeError, match="Can't convert"):
        np.asarray(a)
    with pytest.raises(ValueError, match="different devices"):
        a + xps.asarray([1.0, 2.0])
    np.testing.assert_array_equal(to_numpy(a), [1.0, 2.0])  # the explicit way still works


def test_resolve_device_strings():
    cpu = resolve_device("cpu")
    assert cpu.name == "cpu" and cpu.xp is array_api_compat.numpy and cpu.device == "cpu"
    assert resolve_device("CPU") == cpu
    assert resolve_device(cpu) is cpu
    assert resolve_device("auto").name == ("gpu" if HAS_CUPY_GPU else "cpu")
    with pytest.raises(ValueError, match=r"device: expected 'cpu', 'gpu' or 'auto', got 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(TypeError, match=r"device: expected a str, Backend or device object, got"):
        resolve_device(3)


@pytest.mark.skipif(HAS_CUPY_GPU, reason="a GPU is present, so 'gpu' cannot fail here")
def test_gpu_without_cupy_says_how_to_install():
    with pytest.raises(RuntimeError, match=r"needs CuPy and a CUDA GPU.*pip install cupy-cuda12x"):
        resolve_device("gpu")


@needs_strict
def test_resolve_strict_device():
    import array_api_strict as xps

    be = resolve_device(xps.Device("device1"))
    assert be.xp is xps and be.device == xps.Device("device1")
    assert be.name.startswith("array_api_strict:")


def test_resolve_dtype(backend):
    xp = backend.xp
    for spec in ("float32", np.float32, np.dtype("float32"), xp.float32):
        assert resolve_dtype(xp, spec) == xp.float32
    assert resolve_dtype(xp, "float64") == xp.float64
    assert resolve_dtype(xp, None) == xp.float32
    for bad in ("int32", "float16", np.int64):
        with pytest.raises(TypeError, match=r"dtype: expected float32 or float64, got"):
            resolve_dtype(xp, bad)


def test_check_floating(backend, make):
    check_floating(make((2,), "float32"), "w")
    with pytest.raises(TypeError, match=r"w: expected a float32 or float64 array, got dtype"):
        check_floating(make.ints([1, 2]), "w")


# ----------------------------------------------------------------------------------------------
# Mixing backends and devices
# ----------------------------------------------------------------------------------------------
def test_array_namespace_basics(backend, make):
    a = make((2,))
    assert array_namespace(a, 1.0, None, 3) is backend.xp  # Python scalars and None ignored
    with pytest.raises(TypeError, match=r"needs at least one array"):
        array_namespace(1.0, None)
    with pytest.raises(TypeError, match=r"b: expected an array, got list"):
        array_namespace(a, [1.0, 2.0], names=("a", "b"))


def test_mixing_numpy_with_a_device_backend_names_the_argument(device_backend):
    lib = "array_api_strict" if device_backend.name != "gpu" else "cupy"
    xd = device_backend.asarray(np.ones((2, 3)), "float64")
    xh = np.ones((2, 3))
    with pytest.raises(TypeError, match=rf"arg1 is a numpy array but arg0 is a {lib} array"):
        array_namespace(xd, xh)
    layer = Linear(3, 2, dtype="float64", device=device_backend)
    with pytest.raises(TypeError, match=rf"weight is a {lib} array but x is a numpy array"):
        layer.forward(xh)
    host_layer = Linear(3, 2, dtype="float64", device="cpu")
    with pytest.raises(TypeError, match=rf"weight is a numpy array but x is a {lib} array"):
        host_layer.forward(xd)
    with pytest.raises(TypeError, match=rf"target is a numpy array but input is a {lib} array"):
        BCEWithLogitsLoss()(xd, xh)
    layer.forward(device_backend.asarray(np.ones((2, 3)), "float64"))
    with pytest.raises(TypeError, match=rf"x is a {lib} array but dout is a numpy array"):
        layer.backward(np.ones((2, 2)))


@needs_strict
def test_mixing_devices_names_the_argument_and_both_devices():
    import array_api_strict as xps

    dev1, cpu = xps.Device("device1"), xps.Device("CPU_DEVICE")
    layer = Linear(3, 2, dtype="float64", device=dev1)
    x_cpu = xps.asarray(np.ones((2, 3)), device=cpu)
    pattern = r"weight is on device .*device1.* but x is on device .*CPU_DEVICE"
    with pytest.raises(ValueError, match=pattern):
        layer.forward(x_cpu)
    z1 = xps.asarray(np.zeros((4,)), device=dev1)
    y_cpu = xps.asarray(np.zeros((4,)), device=cpu)
    with pytest.raises(ValueError, match=r"target is on device .*CPU_DEVICE.* but input is on"):
        F.bce_with_logits_forward(z1, y_cpu)
    # Moving explicitly fixes it.
    y = layer.forward(to_device(x_cpu, dev1))
    assert device_of(y) == dev1


# ----------------------------------------------------------------------------------------------
# Host random numbers
# ----------------------------------------------------------------------------------------------
def test_manual_seed_and_as_generator():
    g = manual_seed(3)
    assert default_rng() is g and as_generator(None) is g
    a = as_generator(7).standard_normal(3)
    np.testing.assert_array_equal(a, np.random.default_rng(7).standard_normal(3))
    own = np.random.default_rng(1)
    assert as_generator(own) is own
    assert as_generator(np.int64(7)).standard_normal(3)[0] == a[0]
    with pytest.raises(TypeError, match=r"rng: expected None, an int seed or numpy.random"):
        as_generator("seed")


def test_host_rng_state_round_trip_is_json():
    g = np.random.default_rng(11)
    g.standard_normal(5)
    state = host_rng_state(g)
    assert isinstance(state, str) and json.loads(state)["bit_generator"] == "PCG64"
    a = g.standard_normal(4)
    set_host_rng_state(g, state)
    np.testing.assert_array_equal(g.standard_normal(4), a)
