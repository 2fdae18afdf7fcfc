"""Initialisers: bounds, spread, seeding, and one seed giving one result on every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import dtype_name, host, make_backend

from minigan import init, manual_seed
from minigan.backend import default_rng


def _zeros(backend, shape, dtype="float64"):
    return backend.zeros(shape, dtype)


def test_uniform_bounds_and_spread(backend):
    w = init.uniform_(_zeros(backend, (50, 40)), -0.3, 0.7, rng=0)
    h = host(w)
    assert h.min() >= -0.3 and h.max() < 0.7
    assert h.min() < -0.29 and h.max() > 0.69  # fills the whole interval
    assert h.mean() == pytest.approx(0.2, abs=0.02)


def test_normal_std_for_dcgan(backend):
    w = init.normal_(_zeros(backend, (100, 100)), std=0.02, rng=1)
    h = host(w)
    assert h.std() == pytest.approx(0.02, rel=0.03)  # 10^4 samples: sampling error ~0.7%
    assert abs(h.mean()) < 0.001


def test_xavier_uniform_bound(backend):
    w = init.xavier_uniform_(_zeros(backend, (30, 70)), gain=2.0, rng=2)
    bound = 2.0 * math.sqrt(6.0 / (70 + 30))
    h = np.abs(host(w))
    assert h.max() <= bound and h.max() > 0.98 * bound


@pytest.mark.parametrize(
    "nonlinearity,a,gain",
    [
        ("relu", 0.0, math.sqrt(2.0)),
        ("leaky_relu", 0.2, math.sqrt(2.0 / 1.04)),
        ("leaky_relu", math.sqrt(5), math.sqrt(1.0 / 3.0)),
    ],
)
def test_kaiming_uniform_bound(backend, nonlinearity, a, gain):
    w = init.kaiming_uniform_(_zeros(backend, (40, 25)), a=a, nonlinearity=nonlinearity, rng=3)
    bound = gain * math.sqrt(3.0 / 25)
    h = np.abs(host(w))
    assert h.max() <= bound and h.max() > 0.98 * bound


def test_linear_default_is_pytorch_bound(backend):
    w, b = _zeros(backend, (64, 36)), _zeros(backend, (64,))
    init.linear_default_(w, b, rng=4)
    bound = 1 / 6  # 1 / sqrt(fan_in = 36)
    hw, hb = np.abs(host(w)), np.abs(host(b))
    assert hw.max() <= bound and hw.max() > 0.98 * bound
    assert hb.max() <= bound and hb.max() > 0.8 * bound


def test_calculate_gain():
    assert init.calculate_gain("linear") == 1.0
    assert init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("tanh") == 5.0 / 3
    assert init.calculate_gain("relu") == math.sqrt(2.0)
    assert init.calculate_gain("leaky_relu") == math.sqrt(2.0 / (1 + 0.01**2))
    assert init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2.0 / 1.04)
    with pytest.raises(ValueError, match=r"nonlinearity: unsupported 'selu'"):
        init.calculate_gain("selu")


def test_fan_needs_two_dimensions(backend):
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(5,\)"):
        init.xavier_uniform_(_zeros(backend, (5,)))


@pytest.mark.parametrize(
    "fn",
    [
        lambda a, rng: init.uniform_(a, -1, 1, rng=rng),
        lambda a, rng: init.normal_(a, 0, 0.02, rng=rng),
        lambda a, rng: init.xavier_uniform_(a, rng=rng),
        lambda a, rng: init.kaiming_uniform_(a, rng=rng),
        lambda a, rng: init.linear_default_(a, rng=rng)[0],
    ],
    ids=["uniform_", "normal_", "xavier_uniform_", "kaiming_uniform_", "linear_default_"],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_same_numbers_on_every_backend(backend, fn, dtype):
    ref = fn(_zeros(make_backend("numpy"), (4, 6), dtype), 42)
    got = fn(_zeros(backend, (4, 6), dtype), 42)
    assert dtype_name(got) == dtype and type(got) is type(backend.zeros((1,)))
    np.testing.assert_array_equal(host(got), host(ref))
    other = fn(_zeros(backend, (4, 6), dtype), 43)
    assert not np.array_equal(host(other), host(ref))


def test_generator_state_advances_and_global_seed(backend):
    rng = np.random.default_rng(0)
    a = host(init.uniform_(_zeros(backend, (3,)), rng=rng)).copy()
    b = host(init.uniform_(_zeros(backend, (3,)), rng=rng)).copy()
    assert not np.array_equal(a, b)  # one generator, consecutive draws
    manual_seed(5)
    c = host(init.normal_(_zeros(backend, (3,)))).copy()  # rng=None: the global generator
    manual_seed(5)
    d = host(init.normal_(_zeros(backend, (3,)))).copy()
    np.testing.assert_array_equal(c, d)
    g = manual_seed(5)
    assert default_rng() is g


def test_zeros_and_in_place(backend):
    a = init.uniform_(_zeros(backend, (2, 3)), rng=0)
    assert init.zeros_(a) is a
    assert np.all(host(a) == 0)
