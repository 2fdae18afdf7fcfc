"""EMA of a model's weights (Yazici et al. 2019): the average, the copy, exact resume, errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import dtype_name, host

from minigan.ema import EMA
from minigan.layers import LeakyReLU, Linear, Sequential


def model(backend, dtype="float64"):
    return Sequential(
        Linear(3, 4, dtype=dtype, device=backend, rng=0),
        LeakyReLU(0.2),
        Linear(4, 2, dtype=dtype, device=backend, rng=1),
    )


def perturb(m, make):
    """A stand-in for an optimizer step: change every weight in place."""
    for p in m.parameters():
        data = p.data
        data += make(tuple(data.shape)) * 0.1


def test_update_is_the_exponential_moving_average(backend, make):
    g = model(backend)
    ema = EMA(g, decay=0.9)
    expected = {k: host(v).copy() for k, v in g.state_dict().items()}
    for _ in range(5):
        perturb(g, make)
        ema.update()
        for k, v in g.state_dict().items():
            expected[k] = 0.9 * expected[k] + 0.1 * host(v)
    for k, v in ema.module.state_dict().items():
        np.testing.assert_allclose(host(v), expected[k], rtol=1e-13, atol=1e-15)
    assert ema.num_updates == 5
    # the model itself is untouched by the EMA and differs from the average
    assert not np.allclose(host(g[0].weight), host(ema.module[0].weight))


def test_warmup_ramps_the_decay_as_tensorflow_num_updates(backend, make):
    g = model(backend)
    ema = EMA(g, decay=0.9, warmup=True)
    expected = {k: host(v).copy() for k, v in g.state_dict().items()}
    decays = []
    for n in range(90):  # (1 + n) / (10 + n) reaches 0.9 at n = 80
        d = min(0.9, (1 + n) / (10 + n))  # tf.train.ExponentialMovingAverage(num_updates=n)
        assert ema.current_decay() == pytest.approx(d, rel=1e-15)
        decays.append(d)
        perturb(g, make)
        ema.update()
        for k, v in g.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * host(v)
    for k, v in ema.module.state_dict().items():
        np.testing.assert_allclose(host(v), expected[k], rtol=1e-13, atol=1e-15)
    assert decays[0] == pytest.approx(0.1) and decays[-1] == 0.9  # ramps up, then capped
    assert EMA(g, decay=0.9).current_decay() == 0.9  # off by default, as torch's AveragedModel


def test_copy_samples_with_the_averaged_weights(backend, make):
    g = model(backend)
    ema = EMA(g, decay=0.0)  # decay 0: the copy follows the model exactly
    perturb(g, make)
    ema.update()
    z = make((5, 3))
    np.testing.assert_array_equal(host(ema.module.forward(z)), host(g.forward(z)))
    assert not any(m.requires_grad for m in ema.module.modules())
    assert all(m.requires_grad for m in g.modules())
    assert ema.module[0].params["weight"] is not g[0].params["weight"]


def test_state_dict_resumes_exactly(backend, make):
    g = model(backend)
    ema = EMA(g, decay=0.99)
    for _ in range(3):
        perturb(g, make)
        ema.update()
    state = {
        k: (np.array(host(v)) if hasattr(v, "shape") else v) for k, v in ema.state_dict().items()
    }
    assert state["num_updates"] == 3 and state["decay"] == 0.99
    resumed = EMA(model(backend), decay=0.99)
    resumed.source = g  # continue from the same model
    resumed.load_state_dict(state)
    for _ in range(2):
        perturb(g, make)
        ema.update()
        resumed.update()
    assert resumed.num_updates == ema.num_updates == 5
    for k, v in ema.module.state_dict().items():
        np.testing.assert_array_equal(host(resumed.module.state_dict()[k]), host(v))


def test_float32_stays_float32(backend, make):
    g = model(backend, "float32")
    ema = EMA(g, decay=0.999)
    for p in g.parameters():
        data = p.data
        data += make(tuple(data.shape), "float32")
    ema.update()
    assert all(dtype_name(v) == "float32" for v in ema.module.state_dict().values())


def test_forward_cache_is_not_copied_and_kept_on_the_model(backend, make):
    g = model(backend)
    g.forward(make((2, 3)))
    ema = EMA(g)
    assert all(m._cache is None for m in ema.module.modules())
    assert g[0]._cache is not None


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5, float("nan"), "0.9", True])
def test_decay_outside_unit_interval_is_refused(decay):
    with pytest.raises(ValueError, match=r"ema_decay: expected a number in \[0, 1\), got"):
        EMA(Linear(2, 2, rng=0), decay=decay)
