"""GAN objectives: losses against their formulas, gradients against finite differences.

For every objective in the registry, on every backend: ``d_loss`` and ``g_loss`` equal the
formula written here in NumPy, and their gradients with respect to D's outputs equal central
differences (float64, eps 1e-6, rel err < 1e-6); hinge's inputs are kept 0.1 away from its kinks
at D(x) = 1 and D(G(z)) = -1. WGAN's clipping hook, WGAN-GP's interpolates, metrics, configs
and the one-line errors for bad settings are checked too.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import dtype_name, host

from minigan.gradcheck import numerical_gradient, rel_error
from minigan.health import CODES
from minigan.layers import LeakyReLU, Linear, Sequential
from minigan.objectives import (
    LSGAN,
    OBJECTIVES,
    WGAN,
    WGANGP,
    Hinge,
    Minimax,
    NonSaturating,
    get_objective,
    gradient_penalty,
)

TOL = 1e-6


def _sig(z):
    return 1 / (1 + np.exp(-z))


# The formulas, in NumPy, from the papers: (L_D(r, f), L_G(f)).
FORMULAS = {
    "non_saturating": (
        lambda r, f: -np.mean(np.log(_sig(r))) - np.mean(np.log(1 - _sig(f))),
        lambda f: -np.mean(np.log(_sig(f))),
    ),
    "minimax": (
        lambda r, f: -np.mean(np.log(_sig(r))) - np.mean(np.log(1 - _sig(f))),
        lambda f: np.mean(np.log(1 - _sig(f))),
    ),
    "lsgan": (
        lambda r, f: 0.5 * np.mean((r - 1) ** 2) + 0.5 * np.mean(f**2),
        lambda f: 0.5 * np.mean((f - 1) ** 2),
    ),
    "wgan": (lambda r, f: np.mean(f) - np.mean(r), lambda f: -np.mean(f)),
    "wgan_gp": (lambda r, f: np.mean(f) - np.mean(r), lambda f: -np.mean(f)),
    "hinge": (
        lambda r, f: np.mean(np.maximum(0, 1 - r)) + np.mean(np.maximum(0, 1 + f)),
        lambda f: -np.mean(f),
    ),
}


def outputs(make, name, n_real=6, n_fake=5):
    """D's outputs; hinge's are kept 0.1 away from its kinks, both sides of each occurring."""
    if name == "hinge":
        return 1 + make((n_real, 1), away=0.1) * 2, -1 + make((n_fake, 1), away=0.1) * 2
    return make((n_real, 1)) * 2, make((n_fake, 1)) * 2


def test_registry_holds_every_objective():
    assert set(OBJECTIVES) == set(FORMULAS)
    for name, cls in OBJECTIVES.items():
        assert cls.name == name
        assert set(cls.health_checks) <= set(CODES), name


@pytest.mark.parametrize("name", list(FORMULAS))
def test_d_loss_formula_and_gradients(backend, make, record_figure, name):
    obj = get_objective(name)
    r, f = outputs(make, name)
    loss, dr, df = obj.d_loss(r, f)
    assert abs(float(loss) - FORMULAS[name][0](host(r), host(f))) < 1e-12
    one = np.asarray(1.0)
    for label, analytic, arr in (("real", dr, r), ("fake", df, f)):
        assert tuple(analytic.shape) == tuple(arr.shape) and dtype_name(analytic) == "float64"
        num = numerical_gradient(lambda _: obj.d_loss(r, f)[0], arr, one)
        err = rel_error(analytic, num)
        record_figure("objective gradients max rel error (float64)", f"{name} d_loss {label}", err)
        assert err < TOL


@pytest.mark.parametrize("name", list(FORMULAS))
def test_g_loss_formula_and_gradient(backend, make, record_figure, name):
    obj = get_objective(name)
    _, f = outputs(make, name)
    loss, df = obj.g_loss(f)
    assert abs(float(loss) - FORMULAS[name][1](host(f))) < 1e-12
    num = numerical_gradient(lambda _: obj.g_loss(f)[0], f, np.asarray(1.0))
    err = rel_error(df, num)
    record_figure("objective gradients max rel error (float64)", f"{name} g_loss", err)
    assert err < TOL


def test_hinge_inactive_side_has_zero_gradient(backend, make):
    r = make.asarray([[2.0], [0.5]])  # the first is past the margin: no gradient
    f = make.asarray([[-3.0], [0.2]])
    _, dr, df = Hinge().d_loss(r, f)
    np.testing.assert_array_equal(host(dr), [[0.0], [-0.5]])
    np.testing.assert_array_equal(host(df), [[0.0], [0.5]])


@pytest.mark.parametrize("name", list(FORMULAS))
def test_float32_stays_float32(backend, make, name):
    obj = get_objective(name)
    r, f = (make((4, 1), "float32"), make((4, 1), "float32"))
    loss, dr, df = obj.d_loss(r, f)
    gl, dg = obj.g_loss(f)
    assert {dtype_name(a) for a in (loss, dr, df, gl, dg)} == {"float32"}
    m = obj.metrics(r, f)
    assert set(m) == set(obj.metric_names)
    assert all(tuple(v.shape) == () for v in m.values())


@pytest.mark.parametrize("name", list(FORMULAS))
def test_config_rebuilds_and_wrong_shapes_raise(make, backend, name):
    obj = get_objective(name)
    assert type(obj)(**obj.config()).config() == obj.config()
    with pytest.raises(ValueError, match=r"real_out: expected D's output of shape \(N, 1\)"):
        obj.d_loss(make((4, 2)), make((4, 1)))
    with pytest.raises(ValueError, match=r"fake_out: expected D's output of shape \(N, 1\), got"):
        obj.g_loss(make((4,)))


def test_metrics_values(backend, make):
    r, f = make((6, 1)), make((6, 1))
    rm, fm = float(np.mean(host(r))), float(np.mean(host(f)))
    assert abs(float(WGAN().metrics(r, f)["wasserstein"]) - (rm - fm)) < 1e-12
    assert abs(float(Hinge().metrics(r, f)["score_fake"]) - fm) < 1e-12
    assert abs(float(LSGAN().metrics(r, f)["d_real"]) - rm) < 1e-12
    gp = WGANGP()
    assert float(gp.metrics(r, f)["gradient_penalty"]) == 0.0  # before any penalty


def test_lsgan_targets(backend, make):
    r, f = make((5, 1)), make((5, 1))
    obj = LSGAN(a=-1.0, b=1.0, c=0.0)  # Mao et al. 2017, Eq. 8
    hr, hf = host(r), host(f)
    assert abs(float(obj.d_loss(r, f)[0]) - (0.5 * np.mean((hr - 1) ** 2 + (hf + 1) ** 2))) < 1e-12
    assert abs(float(obj.g_loss(f)[0]) - 0.5 * np.mean(hf**2)) < 1e-12
    assert obj.config() == {"a": -1.0, "c": 0.0}


def test_n_critic_and_defaults():
    assert (WGAN().n_critic, WGANGP().n_critic, LSGAN().n_critic, Hinge().n_critic) == (5, 5, 1, 1)
    assert WGAN().clip_value == 0.01 and WGANGP().weight == 10.0
    assert NonSaturating().n_critic == Minimax().n_critic == 1
    assert WGAN(n_critic=3).config() == {"clip_value": 0.01, "n_critic": 3}


# ----------------------------------------------------------------------------------------------
# WGAN's clipping hook, WGAN-GP's penalty
# ----------------------------------------------------------------------------------------------
def test_wgan_clips_every_critic_parameter_in_place(backend, make):
    critic = Sequential(
        Linear(3, 4, dtype="float64", device=backend, rng=0),
        LeakyReLU(0.2),
        Linear(4, 1, dtype="float64", device=backend, rng=1),
    )
    before = []
    for p in critic.parameters():
        p.data[...] = make(tuple(p.data.shape)) * 0.02  # about half outside [-0.01, 0.01]
        before.append(host(p.data).copy())
    arrays = [p.data for p in critic.parameters()]
    WGAN(clip_value=0.01).after_d_step(critic)
    for p, a, b in zip(critic.parameters(), arrays, before, strict=True):
        assert p.data is a  # in place: the optimizer's handles stay valid
        np.testing.assert_array_equal(host(p.data), np.clip(b, -0.01, 0.01))
    assert any(np.any(np.abs(b) > 0.01) for b in before)  # the set-up clipped something


def test_wgan_gp_penalty_uses_per_example_interpolates(backend, make):
    critic = Sequential(
        Linear(4, 5, dtype="float64", device=backend, rng=0),
        LeakyReLU(0.2),
        Linear(5, 1, dtype="float64", device=backend, rng=1),
    )
    real, fake = make((6, 4)), make((6, 4))
    obj = WGANGP(weight=3.0)
    critic.zero_grad()
    p = obj.penalty(critic, real, fake, np.random.default_rng(5))
    grads = [host(q.grad).copy() for q in critic.parameters()]
    eps = np.random.default_rng(5).random(6)[:, None]  # one U(0, 1) per example
    x_hat = backend.asarray(eps * host(real) + (1 - eps) * host(fake), "float64")
    critic.zero_grad()
    p_ref = gradient_penalty(critic, x_hat, 3.0)
    assert abs(float(p) - float(p_ref)) < 1e-14
    for a, b in zip(grads, [host(q.grad) for q in critic.parameters()], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-16)
    assert float(obj.metrics(make((2, 1)), make((2, 1)))["gradient_penalty"]) == float(p)
    with pytest.raises(ValueError, match=r"fake: expected the real batch's shape \(6, 4\)"):
        obj.penalty(critic, real, make((5, 4)), np.random.default_rng(0))


def test_objectives_without_penalty_return_none(backend, make):
    for name in ("non_saturating", "lsgan", "wgan", "hinge"):
        assert get_objective(name).penalty(None, None, None, None) is None


# ----------------------------------------------------------------------------------------------
# Bad settings: one-line errors
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: WGAN(n_critic=0), r"n_critic: expected an int >= 1, got 0"),
        (lambda: WGANGP(n_critic=-2), r"n_critic: expected an int >= 1, got -2"),
        (lambda: WGAN(n_critic=2.5), r"n_critic: expected an int >= 1, got 2\.5"),
        (lambda: WGAN(n_critic=True), r"n_critic: expected an int >= 1, got True"),
        (lambda: WGAN(clip_value=-0.01), r"clip_value: expected a finite number > 0\.0"),
        (lambda: WGAN(clip_value=0), r"clip_value: expected a finite number > 0\.0, got 0"),
        (lambda: WGANGP(weight=-1.0), r"weight: expected a finite number >= 0\.0, got -1\.0"),
        (lambda: WGANGP(weight=float("inf")), r"weight: expected a finite number"),
        (lambda: LSGAN(a=1.0), r"a, b: expected different targets"),
        (lambda: LSGAN(c="1"), r"c: expected a finite number"),
        (lambda: get_objective("wgan-gp"), r"objective: expected one of \[.*'wgan_gp'.*\]"),
    ],
)
def test_bad_settings(build, match):
    with pytest.raises(ValueError, match=match) as e:
        build()
    assert "\n" not in str(e.value)
