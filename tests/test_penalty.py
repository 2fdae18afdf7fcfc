"""The gradient penalty and its hand-written double backward.

* per layer: ``jvp`` against a central difference of ``forward`` along the tangent, and
  ``jvp_backward`` against finite differences of ``L = <a, y> + <b, dy>`` in the input, the
  tangent and each parameter (float64, eps 1e-6, random a, b, rel err < 1e-6);
* the penalty ``P(theta) = weight * mean (||dD/dx|| - 1)^2``: its parameter gradient from
  :func:`gradient_penalty` against finite differences of P as a function of the critic's
  parameters (P computed here from ``forward`` and ``backward`` only), for 3-layer MLP critics
  with LeakyReLU, ReLU, Tanh and Sigmoid; and against ``torch.autograd.grad(...,
  create_graph=True)`` to 1e-10 when torch is installed;
* the contract: gradients add up, caches and ``requires_grad`` restored, a frozen critic gets
  nothing, a zero gradient gives no NaN, float32 stays float32, array-api-strict equals NumPy,
  BatchNorm-like and unsupported modules are refused with their names.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import dtype_name, host, require_torch

from minigan import functional as F
from minigan.backend import array_namespace, resolve_device
from minigan.dcgan import dcgan_discriminator
from minigan.gradcheck import numerical_gradient, rel_error
from minigan.layers import (
    Conv2d,
    ConvTranspose2d,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    Module,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    Unflatten,
)
from minigan.objectives import WGANGP, check_penalty_critic, gradient_penalty

TOL = 1e-6
ACTIVATIONS = {
    "leaky_relu": lambda: LeakyReLU(0.2),
    "relu": ReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
}
TORCH_ACT = {"leaky_relu": ("LeakyReLU", (0.2,)), "relu": ("ReLU", ()), "tanh": ("Tanh", ())}
TORCH_ACT["sigmoid"] = ("Sigmoid", ())
TINY = 1e-12  # as in minigan.functional_double.NORM_TINY


def mlp_critic(backend, act, sizes=(6, 8, 7, 1), dtype="float64", seed=0):
    """A 3-layer MLP critic: Linear, act, Linear, act, Linear."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        lin = Linear(a, b, dtype=dtype, device=backend, rng=seed + i)
        for k in lin.params:  # larger weights than the default, so ||grad|| is near 1
            lin.params[k][...] = lin.params[k] * 2.5
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[act]())
    return Sequential(*layers)


def penalty_value(critic, x, weight, state=None):
    """P from forward and backward only (the formula, independent of the double backward).

    ``state``: a ``critic.forward_state()`` restored before the forward (same dropout mask).
    """
    if state is not None:
        critic.set_forward_state(state)
    out = critic.forward(x)
    critic.requires_grad_(False)
    g = host(critic.backward(critic_ones(out)))
    critic.requires_grad_(True)
    norm = np.sqrt(np.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) + TINY)
    return np.asarray(weight * np.mean((norm - 1) ** 2))


def critic_ones(out):
    return array_namespace(out).ones_like(out)


# ----------------------------------------------------------------------------------------------
# Per layer: jvp and jvp_backward
# ----------------------------------------------------------------------------------------------
LAYERS = {  # name: (builder, input shape); float64, tiny
    "linear": (lambda b: Linear(4, 3, dtype="float64", device=b, rng=3), (5, 4)),
    "linear_nobias": (lambda b: Linear(4, 3, bias=False, dtype="float64", device=b, rng=3), (5, 4)),
    **{name: ((lambda b, make=make: make()), (5, 4)) for name, make in ACTIVATIONS.items()},
    "conv2d": (
        lambda b: Conv2d(2, 3, 3, stride=2, padding=1, dtype="float64", device=b, rng=3),
        (2, 2, 4, 4),
    ),
    "conv2d_nobias": (
        lambda b: Conv2d(2, 3, (2, 3), (1, 2), (0, 1), bias=False, dtype="float64", device=b),
        (2, 2, 3, 5),
    ),
    "conv_transpose2d": (
        lambda b: ConvTranspose2d(2, 3, 3, 2, 1, 1, dtype="float64", device=b, rng=3),
        (2, 2, 3, 3),
    ),
    "flatten": (lambda b: Flatten(), (3, 2, 2, 3)),
    "unflatten": (lambda b: Unflatten(1, (2, 3)), (4, 6)),
    "dropout": (lambda b: Dropout(0.4, rng=5), (5, 4)),  # training mode: a mask
    "dropout_eval": (lambda b: Dropout(0.4, rng=5).eval(), (5, 4)),  # the identity
}


def _forward(layer, state, x):
    """``layer.forward(x)`` with the forward state (Dropout's generator) restored first, so
    every call sees the same mask."""
    layer.set_forward_state(state)
    return layer.forward(x)


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_jvp_is_the_directional_derivative(backend, make, record_figure, name):
    build, shape = LAYERS[name]
    layer = build(backend)
    x, t = make(shape, away=0.1), make(shape)
    state = layer.forward_state()
    _forward(layer, state, x)
    jvp = host(layer.jvp(t))
    eps = 1e-6
    num = host(_forward(layer, state, x + eps * t)) - host(_forward(layer, state, x - eps * t))
    err = rel_error(jvp, num / (2 * eps))
    record_figure("double backward max rel error (float64)", f"{name} jvp", err)
    assert err < TOL
    assert np.max(np.abs(jvp)) > 0.01  # a tangent that is not trivially zero


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_jvp_backward_gradcheck(backend, make, record_figure, name):
    build, shape = LAYERS[name]
    layer = build(backend)
    x, t = make(shape, away=0.1), make(shape)
    state = layer.forward_state()
    out_shape = tuple(_forward(layer, state, x).shape)
    a, b = make(out_shape), make(out_shape)

    def scalar(_):  # L = <a, y> + <b, dy>, reading x, t and the parameters in place
        return _inner(_forward(layer, state, x), a) + _inner(layer.jvp(t), b)

    layer.zero_grad()
    _forward(layer, state, x)
    layer.jvp(t)
    dx, dt = layer.jvp_backward(a, b)
    one = np.asarray(1.0)
    checks = {"x": (dx, x), "tangent": (dt, t)}
    checks |= {k: (layer.grads[k], layer.params[k]) for k in layer.params}
    for k, (analytic, arr) in checks.items():
        err = rel_error(analytic, numerical_gradient(scalar, arr, one))
        record_figure("double backward max rel error (float64)", f"{name} jvp_backward {k}", err)
        assert err < TOL, k


def _inner(u, v):
    return np.asarray(float(array_namespace(u, v).sum(u * v)))


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_jvp_backward_with_zero_dout(backend, make, name):
    """``dout=None`` means zero: the same as passing zeros."""
    build, shape = LAYERS[name]
    layer = build(backend)
    x, t = make(shape, away=0.1), make(shape)
    b = make(tuple(layer.forward(x).shape))
    layer.jvp(t)
    dx_none, dt_none = layer.jvp_backward(None, b)
    grads_none = {k: host(v).copy() for k, v in layer.grads.items()}
    layer.zero_grad()
    dx0, dt0 = layer.jvp_backward(b * 0, b)
    np.testing.assert_allclose(host(dt_none), host(dt0), rtol=0, atol=1e-15)
    np.testing.assert_allclose(0 if dx_none is None else host(dx_none), host(dx0), atol=1e-15)
    for k, v in grads_none.items():
        np.testing.assert_allclose(v, host(layer.grads[k]), atol=1e-15)


@pytest.mark.parametrize("name", ["conv2d", "conv_transpose2d", "flatten", "unflatten", "dropout"])
def test_conv_family_jvp_checks_the_tangent_shape(backend, make, name):
    build, shape = LAYERS[name]
    layer = build(backend)
    layer.forward(make(shape))
    wrong = (shape[0] + 1,) + shape[1:]
    with pytest.raises(ValueError, match=r"tangent shape .* does not match"):
        layer.jvp(make(wrong))
    with pytest.raises(RuntimeError, match=r"jvp_backward\(\) called before jvp\(\)"):
        layer.jvp_backward(None, layer.forward(make(shape)))


def test_jvp_backward_before_jvp_raises(backend, make):
    layer = Linear(3, 2, dtype="float64", device=backend, rng=0)
    x = make((2, 3))
    layer.forward(x)
    with pytest.raises(RuntimeError, match=r"Linear.jvp_backward\(\) called before jvp\(\)"):
        layer.jvp_backward(None, make((2, 2)))
    with pytest.raises(ValueError, match=r"tangent shape \(2, 4\) does not match"):
        layer.jvp(make((2, 4)))


def test_grad_norm_penalty_pair_gradcheck(backend, make, record_figure):
    g = make((5, 3))
    weight = 7.0

    def f(_):
        return F.grad_norm_penalty_forward(g, weight)[0]

    p, cache = F.grad_norm_penalty_forward(g, weight)
    norm = np.sqrt(np.sum(host(g) ** 2, axis=1) + TINY)
    assert abs(float(p) - weight * np.mean((norm - 1) ** 2)) < 1e-12
    one = make.asarray(1.0)
    dg = F.grad_norm_penalty_backward(one, cache)
    err = rel_error(dg, numerical_gradient(f, g, np.asarray(1.0)))
    record_figure("double backward max rel error (float64)", "grad_norm_penalty", err)
    assert err < TOL


# ----------------------------------------------------------------------------------------------
# The penalty's parameter gradient
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_penalty_parameter_gradient_matches_finite_differences(backend, make, record_figure, act):
    if backend.name != "cpu" and act != "tanh":
        pytest.skip("finite differences of every critic run on NumPy; device1 runs tanh only")
    critic = mlp_critic(backend, act)
    x = make((5, 6))
    critic.zero_grad()
    p = gradient_penalty(critic, x, weight=10.0)
    assert abs(float(p) - float(penalty_value(critic, x, 10.0))) < 1e-12
    for name, prm in critic.named_parameters():
        num = numerical_gradient(
            lambda _: penalty_value(critic, x, 10.0), prm.data, np.asarray(1.0)
        )
        err = rel_error(prm.grad, num)
        record_figure("gradient penalty dP/dtheta vs finite differences", f"{act} {name}", err)
        assert err < TOL, name
    assert float(p) > 0.01  # the test set-up: a penalty far from 0, gradients not trivial


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_penalty_matches_torch_double_backward(backend, make, record_figure, act):
    torch = require_torch()
    critic = mlp_critic(backend, act)
    x = make((5, 6))
    critic.zero_grad()
    p = gradient_penalty(critic, x, weight=10.0)
    tlayers = []
    for m in critic.layers:
        if isinstance(m, Linear):
            lin = torch.nn.Linear(m.in_features, m.out_features, dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(torch.tensor(host(m.weight)))
                lin.bias.copy_(torch.tensor(host(m.bias)))
            tlayers.append(lin)
        else:
            cls, args = TORCH_ACT[act]
            tlayers.append(getattr(torch.nn, cls)(*args))
    tcritic = torch.nn.Sequential(*tlayers)
    xt = torch.tensor(host(x), requires_grad=True)
    (g,) = torch.autograd.grad(tcritic(xt).sum(), xt, create_graph=True)
    tp = 10.0 * ((torch.sqrt((g * g).sum(dim=1) + TINY) - 1) ** 2).mean()
    tp.backward()
    assert abs(float(p) - tp.item()) < 1e-10
    for (name, prm), tprm in zip(critic.named_parameters(), tcritic.parameters(), strict=True):
        ref = np.zeros(tuple(tprm.shape)) if tprm.grad is None else tprm.grad.numpy()
        err = rel_error(prm.grad, ref)
        record_figure("gradient penalty dP/dtheta vs torch create_graph", f"{act} {name}", err)
        assert err < 1e-10, name


def test_penalty_on_device1_equals_numpy(backend, make):
    cpu = resolve_device("cpu")
    x_host = make.host((5, 6))
    results = []
    for b in (cpu, backend):
        critic = mlp_critic(b, "tanh")
        critic.zero_grad()
        p = gradient_penalty(critic, b.asarray(x_host, "float64"), 10.0)
        results.append((float(p), [host(q.grad).copy() for q in critic.parameters()]))
    assert abs(results[0][0] - results[1][0]) < 1e-12
    for a, c in zip(results[0][1], results[1][1], strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# Conv critics
# ----------------------------------------------------------------------------------------------
CONV_X = (3, 2, 6, 6)  # (N, C, H, W) of the small conv critic's input


def conv_critic(backend, act, dtype="float64", dropout=None):
    """The acceptance critic: Conv2d(2, 3, 3, stride 2, padding 1) -> act -> [Dropout] ->
    Flatten -> Linear(27, 1)."""
    layers = [Conv2d(2, 3, 3, 2, 1, dtype=dtype, device=backend, rng=1), ACTIVATIONS[act]()]
    if dropout is not None:
        layers.append(Dropout(dropout, rng=11))
    layers += [Flatten(), Linear(27, 1, dtype=dtype, device=backend, rng=2)]
    for m in (layers[0], layers[-1]):
        for k in m.params:  # larger weights than the default, so ||grad|| is near 1
            m.params[k][...] = m.params[k] * 2.5
    return Sequential(*layers)


def tiny_dcgan_critic(backend, dtype="float64"):
    """dcgan_discriminator(norm=None) on 16 x 16 images, 2 base channels (two convolutions)."""
    critic = dcgan_discriminator(
        (1, 16, 16), base_channels=2, norm=None, dtype=dtype, device=backend, rng=0
    )
    for m in critic.modules():
        for k in m.params:  # N(0, 0.02) weights give a tiny input gradient; bring it near 1
            m.params[k][...] = m.params[k] * 12.0
    return critic


CONV_CRITICS = {
    "conv leaky_relu": (lambda b: conv_critic(b, "leaky_relu"), CONV_X),
    "conv tanh": (lambda b: conv_critic(b, "tanh"), CONV_X),
    "conv tanh dropout": (lambda b: conv_critic(b, "tanh", dropout=0.3), CONV_X),
    "dcgan norm=None": (tiny_dcgan_critic, (2, 1, 16, 16)),
}


@pytest.mark.parametrize("name", list(CONV_CRITICS))
def test_conv_penalty_parameter_gradient_matches_finite_differences(
    backend, make, record_figure, name
):
    if backend.name != "cpu" and name != "conv tanh":
        pytest.skip("finite differences of every critic run on NumPy; device1 runs conv tanh")
    build, shape = CONV_CRITICS[name]
    critic = build(backend)
    x = make(shape)
    state = critic.forward_state()  # the dropout mask the penalty's forward will draw
    critic.zero_grad()
    p = gradient_penalty(critic, x, weight=10.0)
    assert abs(float(p) - float(penalty_value(critic, x, 10.0, state))) < 1e-12
    for pname, prm in critic.named_parameters():
        num = numerical_gradient(
            lambda _: penalty_value(critic, x, 10.0, state), prm.data, np.asarray(1.0)
        )
        err = rel_error(prm.grad, num)
        record_figure("gradient penalty dP/dtheta vs finite differences", f"{name} {pname}", err)
        assert err < TOL, pname
        assert np.max(np.abs(host(prm.grad))) > 0 or "bias" in pname  # LeakyReLU: db = 0
    assert float(p) > 0.01  # the test set-up: a penalty far from 0, gradients not trivial


def torch_copy(critic, torch):
    """The same critic in torch.nn, float64, weights copied (Conv2d, Linear, activations,
    Flatten)."""
    out = []
    for m in critic.layers:
        if isinstance(m, Linear):
            t = torch.nn.Linear(m.in_features, m.out_features, dtype=torch.float64)
        elif isinstance(m, Conv2d):
            t = torch.nn.Conv2d(
                m.in_channels,
                m.out_channels,
                m.kernel_size,
                m.stride,
                m.padding,
                bias=m.bias is not None,
                dtype=torch.float64,
            )
        elif isinstance(m, LeakyReLU):
            t = torch.nn.LeakyReLU(m.negative_slope)
        elif isinstance(m, Flatten):
            t = torch.nn.Flatten(m.start_dim, m.end_dim)
        else:
            t = getattr(torch.nn, type(m).__name__)()
        with torch.no_grad():
            for k, v in m.params.items():
                getattr(t, k).copy_(torch.tensor(host(v)))
        out.append(t)
    return torch.nn.Sequential(*out)


def torch_penalty(tcritic, x, torch, weight=10.0):
    xt = torch.tensor(host(x), requires_grad=True)
    (g,) = torch.autograd.grad(tcritic(xt).sum(), xt, create_graph=True)
    norm = torch.sqrt((g * g).reshape(g.shape[0], -1).sum(dim=1) + TINY)
    tp = weight * ((norm - 1) ** 2).mean()
    tp.backward()
    return tp


@pytest.mark.parametrize("name", ["conv leaky_relu", "conv tanh", "dcgan norm=None"])
def test_conv_penalty_matches_torch_double_backward(backend, make, record_figure, name):
    torch = require_torch()
    build, shape = CONV_CRITICS[name]
    critic = build(backend)
    x = make(shape)
    critic.zero_grad()
    p = gradient_penalty(critic, x, weight=10.0)
    tcritic = torch_copy(critic, torch)
    tp = torch_penalty(tcritic, x, torch)
    assert abs(float(p) - tp.item()) < 1e-10
    for (pname, prm), tprm in zip(critic.named_parameters(), tcritic.parameters(), strict=True):
        ref = np.zeros(tuple(tprm.shape)) if tprm.grad is None else tprm.grad.numpy()
        err = rel_error(prm.grad, ref)
        record_figure("gradient penalty dP/dtheta vs torch create_graph", f"{name} {pname}", err)
        assert err < 1e-10, pname


def test_conv_penalty_on_device1_equals_numpy(backend, make):
    cpu = resolve_device("cpu")
    x_host = make.host(CONV_X)
    results = []
    for b in (cpu, backend):
        critic = conv_critic(b, "tanh", dropout=0.3)  # one seeded mask on both backends
        critic.zero_grad()
        p = gradient_penalty(critic, b.asarray(x_host, "float64"), 10.0)
        results.append((float(p), [host(q.grad).copy() for q in critic.parameters()]))
    assert abs(results[0][0] - results[1][0]) < 1e-12
    for a, c in zip(results[0][1], results[1][1], strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)


def test_penalty_draws_one_dropout_mask(backend, make):
    """The forward, the input backward, the tangent pass and its reverse share one mask: a
    penalty call advances the Dropout's generator by exactly one mask draw."""
    critic = conv_critic(backend, "tanh", dropout=0.3)
    drop = critic[2]
    x = make(CONV_X)
    gradient_penalty(critic, x)
    reference = np.random.default_rng(11)
    reference.random((CONV_X[0], 3, 3, 3))  # the one mask of the penalty's forward
    assert drop.rng.random() == reference.random()


def test_wgangp_penalty_on_image_batches(backend, make):
    """WGANGP.penalty on (N, C, H, W) batches: one eps per image, then the conv critic's
    gradient_penalty at those interpolates."""
    critic = tiny_dcgan_critic(backend)
    real, fake = make((2, 1, 16, 16)), make((2, 1, 16, 16))
    critic.zero_grad()
    p = WGANGP(weight=10.0).penalty(critic, real, fake, np.random.default_rng(4))
    grads = [host(q.grad).copy() for q in critic.parameters()]
    eps = np.random.default_rng(4).random(2)[:, None, None, None]
    x_hat = backend.asarray(eps * host(real) + (1 - eps) * host(fake), "float64")
    critic.zero_grad()
    assert abs(float(p) - float(gradient_penalty(critic, x_hat, 10.0))) < 1e-13
    for a, b in zip(grads, [host(q.grad) for q in critic.parameters()], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    assert any(np.max(np.abs(g)) > 0 for g in grads)


def test_batchnorm_conv_critic_is_refused(backend):
    critic = dcgan_discriminator((1, 16, 16), 2, norm="batch", dtype="float64", device=backend)
    x = backend.asarray(np.zeros((2, 1, 16, 16)), "float64")
    with pytest.raises(ValueError, match=r"critic module '3' \(BatchNorm2d\) mixes the rows"):
        gradient_penalty(critic, x)


# ----------------------------------------------------------------------------------------------
# The contract
# ----------------------------------------------------------------------------------------------
def test_penalty_adds_into_grads_and_restores_the_critic(backend, make):
    critic = mlp_critic(backend, "tanh")
    x, x_pen = make((4, 6)), make((4, 6))
    dout = make((4, 1))
    critic.zero_grad()
    critic.forward(x)
    critic.backward(dout)  # D's loss gradient first, as in the training step
    after_loss = [host(p.grad).copy() for p in critic.parameters()]
    critic.zero_grad()
    gradient_penalty(critic, x_pen)
    once = [host(p.grad).copy() for p in critic.parameters()]
    gradient_penalty(critic, x_pen)
    twice = [host(p.grad).copy() for p in critic.parameters()]
    for a, b in zip(once, twice, strict=True):
        np.testing.assert_allclose(b, 2 * a, rtol=1e-13, atol=1e-15)
    assert all(m.requires_grad for m in critic.modules())
    # the caches are those of forward(x) again: a backward now gives the loss gradient
    critic.zero_grad()
    critic.forward(x)
    gradient_penalty(critic, x_pen)
    critic.zero_grad()
    critic.backward(dout)
    for a, b in zip(after_loss, [host(p.grad) for p in critic.parameters()], strict=True):
        np.testing.assert_array_equal(a, b)


def test_frozen_critic_gets_no_penalty_gradient(backend, make):
    critic = mlp_critic(backend, "leaky_relu")
    critic.zero_grad()
    critic.requires_grad_(False)
    p = gradient_penalty(critic, make((4, 6)))
    assert float(p) > 0
    assert all(np.all(host(q.grad) == 0) for q in critic.parameters())
    assert not any(m.requires_grad for m in critic.modules())


def test_zero_input_gradient_gives_no_nan(backend, make):
    critic = mlp_critic(backend, "tanh")
    for k in critic[4].params:
        critic[4].params[k][...] = 0  # D(x) = 0 everywhere: grad_x D = 0, ||g|| = 0
    critic.zero_grad()
    p = gradient_penalty(critic, make((4, 6)), weight=10.0)
    assert abs(float(p) - 10.0 * (np.sqrt(TINY) - 1) ** 2) < 1e-12
    # d sqrt(|g|^2 + tiny)/dg = g / ||g|| = 0 at g = 0: finite (zero) gradients, no NaN
    assert all(np.all(host(q.grad) == 0) for q in critic.parameters())


@pytest.mark.parametrize("act", ["leaky_relu", "tanh"])
def test_float32_penalty_matches_float64(backend, make, act):
    x_host = make.host((8, 6))
    out = {}
    for dtype in ("float32", "float64"):
        critic = mlp_critic(backend, act, dtype=dtype)
        critic.zero_grad()
        p = gradient_penalty(critic, backend.asarray(x_host, dtype), 10.0)
        assert dtype_name(p) == dtype
        assert all(dtype_name(q.grad) == dtype for q in critic.parameters())
        out[dtype] = (float(p), [host(q.grad).astype(np.float64) for q in critic.parameters()])
    assert abs(out["float32"][0] - out["float64"][0]) <= 1e-4 * abs(out["float64"][0]) + 1e-5
    for a, b in zip(out["float32"][1], out["float64"][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


class _RowMixer(Module):
    """Stands for BatchNorm: has the double-backward methods but mixes batch rows."""

    mixes_batch_rows = True

    def forward(self, x):
        return x

    def jvp(self, tangent):
        return tangent

    def jvp_backward(self, dout, dtangent, *, input_grad=True):
        return dout, dtangent


class _NoDoubleBackward(Module):
    def forward(self, x):
        return x


def test_refuses_row_mixing_and_unsupported_modules(backend, make):
    lin = Linear(6, 1, dtype="float64", device=backend, rng=0)
    x = make((3, 6))
    with pytest.raises(ValueError, match=r"critic module '1' \(_RowMixer\) mixes the rows"):
        gradient_penalty(
            Sequential(Linear(6, 6, dtype="float64", device=backend), _RowMixer(), lin), x
        )
    with pytest.raises(TypeError, match=r"critic module '0' \(_NoDoubleBackward\) has no double"):
        check_penalty_critic(Sequential(_NoDoubleBackward(), lin))
    with pytest.raises(ValueError, match=r"critic\(x\): expected D's output of shape \(N, 1\)"):
        gradient_penalty(Linear(6, 2, dtype="float64", device=backend, rng=0), x)


# ----------------------------------------------------------------------------------------------
# Conditional critics: D(x, y) with one-hot labels (LabelConcat); the gradient is in x only
# ----------------------------------------------------------------------------------------------
def conditional_critics(backend):
    from minigan.models import LabelConcat

    mlp = LabelConcat(mlp_critic(backend, "tanh", sizes=(6 + 3, 8, 7, 1)), 3)
    conv = [Conv2d(2 + 3, 3, 3, 2, 1, dtype="float64", device=backend, rng=1), Tanh()]
    conv += [Flatten(), Linear(27, 1, dtype="float64", device=backend, rng=2)]
    for m in (conv[0], conv[-1]):
        for k in m.params:
            m.params[k][...] = m.params[k] * 2.5
    maps = LabelConcat(Sequential(*conv), 3, label_maps=True)
    return {"mlp tanh": (mlp, (5, 6)), "conv tanh label maps": (maps, CONV_X)}


@pytest.mark.parametrize("name", ["mlp tanh", "conv tanh label maps"])
def test_conditional_penalty_parameter_gradient_matches_finite_differences(
    backend, make, record_figure, name
):
    if backend.name != "cpu":
        pytest.skip("finite differences of the conditional critics run on NumPy")
    critic, shape = conditional_critics(backend)[name]
    x = make(shape)
    labels = np.arange(shape[0]) % 3

    def value(_=None):  # P from forward and backward of D(., labels) only
        out = critic.forward(x, labels)
        critic.requires_grad_(False)
        g = host(critic.backward(critic_ones(out)))
        critic.requires_grad_(True)
        norm = np.sqrt(np.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) + TINY)
        return np.asarray(10.0 * np.mean((norm - 1) ** 2))

    critic.zero_grad()
    p = gradient_penalty(critic, x, weight=10.0, labels=labels)
    assert abs(float(p) - float(value())) < 1e-12 and float(p) > 0.01
    other = gradient_penalty(critic, x, weight=10.0, labels=(labels + 1) % 3)
    assert float(other) != float(p)  # the labels reach the critic
    critic.zero_grad()
    gradient_penalty(critic, x, weight=10.0, labels=labels)
    for pname, prm in critic.named_parameters():
        num = numerical_gradient(value, prm.data, np.asarray(1.0))
        err = rel_error(prm.grad, num)
        record_figure(
            "gradient penalty dP/dtheta vs finite differences", f"cond {name} {pname}", err
        )
        assert err < TOL, pname


def test_conditional_wgan_gp_trains_on_the_generic_step():
    from minigan.gan import build_gan

    tiny = {"data_dim": 12, "latent_dim": 4, "g_hidden": (8,), "d_hidden": (8,)}
    obj = {"objective": "wgan_gp", "objective_args": {"weight": 10.0, "n_critic": 2}}
    gan = build_gan("cgan", seed=0, **tiny, **obj)
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-1, 1, (6, 12)).astype(np.float32), rng.integers(0, 10, 6)
    for _ in range(4):
        out = gan.train_step(x, y)
    assert float(out["gradient_penalty"]) > 0 and np.isfinite(float(out["d_loss"]))
    assert gan.g_optimizer.step_count == 2
