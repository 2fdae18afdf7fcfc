"""Layers and Sequential, on every backend (numpy, array-api-strict on device1, cupy).

Gradient checks of every layer alone, in two-layer stacks (< 1e-6) and in 3+ layer stacks
(< 1e-5); accumulation; dtype preservation; clear errors; state_dict, to(device), train/eval,
parameter naming; and a one-to-one comparison with torch.nn when PyTorch is installed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import dtype_name, host, require_torch

from minigan import LeakyReLU, Linear, Module, ReLU, Sequential, Sigmoid, Tanh
from minigan.backend import resolve_device, to_numpy
from minigan.gradcheck import check_module

TOL = 1e-6  # one layer or a two-layer stack
TOL_DEEP = 1e-5  # stacks of three or more layers
KINK_MARGIN = 1e-3  # inputs of ReLU-like layers stay this far from 0 (eps is 1e-6)

ACTIVATIONS = {
    "ReLU": ReLU,
    "LeakyReLU(0.01)": LeakyReLU,
    "LeakyReLU(0.2)": lambda: LeakyReLU(0.2),
    "Tanh": Tanh,
    "Sigmoid": Sigmoid,
}


def linear(backend, i, o, *, seed, bias=True, dtype="float64"):
    return Linear(i, o, bias=bias, dtype=dtype, device=backend, rng=seed)


def assert_away_from_kinks(model, x):
    """Test precondition: every input of a ReLU-like layer is at least KINK_MARGIN from 0."""
    layers = model.layers if isinstance(model, Sequential) else [model]
    for i, layer in enumerate(layers):
        if isinstance(layer, (ReLU, LeakyReLU)):
            m = float(np.min(np.abs(host(x))))
            assert m > KINK_MARGIN, f"test setup: input of layer {i} has |x| = {m:.1e}"
        x = layer.forward(x)


def gradcheck(record_figure, name, model, x, tol):
    assert_away_from_kinks(model, x)
    report = check_module(model, x, seed=3)
    n_params = len(model.parameters())
    assert len(report.rows) == 1 + n_params, str(report)
    assert report.passed, str(report)
    assert report.max_rel_error < tol, str(report)
    record_figure("gradcheck max rel error: layers and stacks", name, report.max_rel_error)
    return report


# ----------------------------------------------------------------------------------------------
# Gradient checks: single layers, two-layer stacks, deep stacks
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_linear_gradcheck(backend, make, record_figure, bias):
    layer = linear(backend, 4, 3, seed=1, bias=bias)
    report = gradcheck(record_figure, f"Linear(bias={bias})", layer, make((5, 4)), TOL)
    assert [r.name for r in report.rows] == ["input", "weight", "bias"][: 3 if bias else 2]


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_gradcheck(backend, make, record_figure, name):
    x = make((3, 4), away=0.1) if "ReLU" in name else make((3, 4), low=-3, high=3)
    report = gradcheck(record_figure, name, ACTIVATIONS[name](), x, TOL)
    assert [r.name for r in report.rows] == ["input"]


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_two_layer_stack_linear_then_activation(backend, make, record_figure, name):
    # The activation's backward feeds Linear's backward: dx of both is exercised.
    model = Sequential(linear(backend, 4, 5, seed=2), ACTIVATIONS[name]())
    report = gradcheck(record_figure, f"Linear -> {name}", model, make((3, 4)), TOL)
    assert [r.name for r in report.rows] == ["input", "0.weight", "0.bias"]


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_two_layer_stack_activation_then_linear(backend, make, record_figure, name):
    model = Sequential(ACTIVATIONS[name](), linear(backend, 4, 2, seed=3))
    x = make((3, 4), away=0.1)
    report = gradcheck(record_figure, f"{name} -> Linear", model, x, TOL)
    assert [r.name for r in report.rows] == ["input", "1.weight", "1.bias"]


def test_two_linear_layers(backend, make, record_figure):
    model = Sequential(linear(backend, 4, 3, seed=4), linear(backend, 3, 2, seed=5, bias=False))
    report = gradcheck(record_figure, "Linear -> Linear", model, make((3, 4)), TOL)
    assert [r.name for r in report.rows] == ["input", "0.weight", "0.bias", "1.weight"]


DEEP_STACKS = {
    # A small GAN discriminator: Linear, LeakyReLU(0.2), Linear, LeakyReLU(0.2), Linear, Sigmoid.
    "discriminator-like (6 layers)": lambda be: Sequential(
        linear(be, 4, 6, seed=10),
        LeakyReLU(0.2),
        linear(be, 6, 5, seed=11),
        LeakyReLU(0.2),
        linear(be, 5, 1, seed=12),
        Sigmoid(),
    ),
    # A small GAN generator: Linear, ReLU, Linear, ReLU, Linear, Tanh.
    "generator-like (6 layers)": lambda be: Sequential(
        linear(be, 4, 6, seed=13),
        ReLU(),
        linear(be, 6, 5, seed=14),
        ReLU(),
        linear(be, 5, 3, seed=15),
        Tanh(),
    ),
    "Linear x3 with Tanh (4 layers, nested Sequential)": lambda be: Sequential(
        Sequential(linear(be, 4, 5, seed=16), Tanh()),
        linear(be, 5, 5, seed=17, bias=False),
        linear(be, 5, 2, seed=18),
    ),
}


@pytest.mark.parametrize("name", list(DEEP_STACKS))
def test_deep_stack_gradcheck(backend, make, record_figure, name):
    model = DEEP_STACKS[name](backend)
    gradcheck(record_figure, name, model, make((3, 4)), TOL_DEEP)


# ----------------------------------------------------------------------------------------------
# Accumulation and zero_grad
# ----------------------------------------------------------------------------------------------
def _stack(backend, dtype="float64"):
    return Sequential(
        linear(backend, 4, 5, seed=20, dtype=dtype),
        LeakyReLU(0.2),
        linear(backend, 5, 2, seed=21, dtype=dtype),
    )


def test_two_backwards_give_exactly_twice_the_gradient(backend, make):
    model = _stack(backend)
    x, dout = make((3, 4)), make((3, 2))
    model.forward(x)
    dx1 = host(model.backward(dout))
    once = {k: host(p.grad).copy() for k, p in model.named_parameters()}
    dx2 = host(model.backward(dout))
    np.testing.assert_array_equal(dx1, dx2)  # dx is returned, not accumulated
    for k, p in model.named_parameters():
        assert np.any(once[k] != 0), k
        np.testing.assert_array_equal(host(p.grad), 2 * once[k], err_msg=k)
    model.zero_grad()
    for k, p in model.named_parameters():
        np.testing.assert_array_equal(host(p.grad), np.zeros_like(once[k]), err_msg=k)
    # After zero_grad, one more backward gives the single gradient again.
    model.backward(dout)
    for k, p in model.named_parameters():
        np.testing.assert_array_equal(host(p.grad), once[k], err_msg=k)


def test_gradients_accumulate_over_different_batches(backend, make):
    layer = linear(backend, 3, 2, seed=22)
    xa, xb, da, db = make((4, 3)), make((2, 3)), make((4, 2)), make((2, 2))
    layer.forward(xa)
    layer.backward(da)
    layer.forward(xb)
    layer.backward(db)
    hw = host(layer.grads["weight"])
    np.testing.assert_allclose(hw, host(da).T @ host(xa) + host(db).T @ host(xb), rtol=1e-13)
    np.testing.assert_allclose(
        host(layer.grads["bias"]), host(da).sum(0) + host(db).sum(0), rtol=1e-13
    )


def test_requires_grad_false_freezes_parameters_but_passes_dx(backend, make):
    model = _stack(backend).requires_grad_(False)
    x, dout = make((3, 4)), make((3, 2))
    model.forward(x)
    dx = model.backward(dout)
    assert tuple(dx.shape) == (3, 4)
    for k, p in model.named_parameters():
        assert not p.requires_grad
        assert np.all(host(p.grad) == 0), k
    model.requires_grad_(True)
    model.backward(dout)
    assert np.any(host(model[0].grads["weight"]) != 0)


def test_sequential_input_grad_false(backend, make):
    model = _stack(backend)
    x, dout = make((3, 4)), make((3, 2))
    model.forward(x)
    assert model.backward(dout, input_grad=False) is None
    ref = _stack(backend)
    ref.forward(x)
    ref.backward(dout)
    for (k, p), (_, q) in zip(model.named_parameters(), ref.named_parameters(), strict=True):
        np.testing.assert_array_equal(host(p.grad), host(q.grad), err_msg=k)


# ----------------------------------------------------------------------------------------------
# dtypes
# ----------------------------------------------------------------------------------------------
LAYERS_F32 = {
    "Linear": lambda be: Linear(4, 3, device=be, rng=0),
    "Linear(bias=False)": lambda be: Linear(4, 3, bias=False, device=be, rng=0),
    **{name: (lambda be, f=f: f()) for name, f in ACTIVATIONS.items()},
    "Sequential": lambda be: _stack(be, "float32"),
}


@pytest.mark.parametrize("name", list(LAYERS_F32))
def test_float32_in_float32_out_and_grads(backend, make, name):
    layer = LAYERS_F32[name](backend)
    x = make((3, 4), "float32", away=0.1)
    y = layer.forward(x)
    dx = layer.backward(make(tuple(y.shape), "float32"))
    assert dtype_name(y) == "float32" and dtype_name(dx) == "float32"
    for k, p in layer.named_parameters():
        assert (k, dtype_name(p.data), dtype_name(p.grad)) == (k, "float32", "float32")


def test_float32_run_matches_float64_numpy_run(backend, make):
    # STYLE.md: float32 (and GPU) results are checked against a float64 NumPy run.
    ref = _stack(resolve_device("cpu"), "float64")
    ours = _stack(backend, "float32")
    x, dout = make.host((5, 4)), make.host((5, 2))
    y_ref = ref.forward(x)
    dx_ref = ref.backward(dout)
    y = ours.forward(make.asarray(x, "float32"))
    dx = ours.backward(make.asarray(dout, "float32"))
    np.testing.assert_allclose(host(y), y_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(host(dx), dx_ref, rtol=1e-4, atol=1e-5)
    for (k, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
        np.testing.assert_allclose(host(p.grad), q.grad, rtol=1e-4, atol=1e-5, err_msg=k)


def test_linear_default_dtype_is_float32(backend):
    layer = Linear(2, 3, device=backend)
    assert dtype_name(layer.weight) == "float32" and dtype_name(layer.bias) == "float32"


@pytest.mark.parametrize("name", ["Sigmoid", "Tanh", "LeakyReLU(0.2)", "ReLU"])
def test_activations_finite_at_1e3(backend, make, name):
    layer = ACTIVATIONS[name]()
    x = make.asarray([[-1e3, 1e3], [1e3, -1e3]], "float32")
    y = host(layer.forward(x))
    dx = host(layer.backward(make.asarray([[1.0, 2.0], [3.0, 4.0]], "float32")))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------
ALL_LAYERS = {
    "Linear": lambda be: linear(be, 4, 3, seed=0),
    **{name: (lambda be, f=f: f()) for name, f in ACTIVATIONS.items()},
    "Sequential": lambda be: _stack(be),
}


@pytest.mark.parametrize("name", list(ALL_LAYERS))
def test_backward_before_forward_raises(backend, make, name):
    layer = ALL_LAYERS[name](backend)
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        layer.backward(make((3, 3)))


@pytest.mark.parametrize("name", list(ALL_LAYERS))
def test_wrong_dout_shape_names_both_shapes(backend, make, name):
    layer = ALL_LAYERS[name](backend)
    y = layer.forward(make((3, 4), away=0.1))
    good = tuple(y.shape)
    with pytest.raises(ValueError) as err:
        layer.backward(make((5, 7)))
    msg = str(err.value)
    assert "dout" in msg and str(good) in msg and "(5, 7)" in msg, msg


def test_linear_wrong_rank_or_width(backend, make):
    layer = linear(backend, 4, 3, seed=0)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 4\) .*got \(2, 5\)"):
        layer.forward(make((2, 5)))
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 4\) .*got \(4,\)"):
        layer.forward(make((4,)))


def test_linear_non_float_and_wrong_dtype_input(backend, make):
    layer = linear(backend, 3, 2, seed=0)
    with pytest.raises(TypeError, match=r"x: expected a float32 or float64 array, got dtype"):
        layer.forward(make.ints([[1, 2, 3]]))
    with pytest.raises(TypeError, match=r"x: expected dtype .*float64.*got .*float32"):
        layer.forward(make((2, 3), "float32"))
    with pytest.raises(TypeError, match=r"x: expected a float32 or float64"):
        ReLU().forward(make.ints([1, -2]))


def test_linear_constructor_errors(backend):
    with pytest.raises(ValueError, match=r"in_features: expected a positive int, got 0"):
        Linear(0, 3, device=backend)
    with pytest.raises(ValueError, match=r"out_features: expected a positive int, got 2.5"):
        Linear(3, 2.5, device=backend)
    with pytest.raises(TypeError, match=r"dtype: expected float32 or float64, got 'int32'"):
        Linear(3, 2, dtype="int32", device=backend)


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match=r"argument 1 is not a Module, got function"):
        Sequential(ReLU(), lambda x: x)


# ----------------------------------------------------------------------------------------------
# Initialisation, naming, state_dict, to(device), train/eval
# ----------------------------------------------------------------------------------------------
def test_linear_shapes_and_pytorch_default_init(backend):
    layer = Linear(16, 8, device=backend, rng=0)
    w, b = host(layer.weight), host(layer.bias)
    assert w.shape == (8, 16) and b.shape == (8,)
    bound = 1 / math.sqrt(16)
    assert np.max(np.abs(w)) <= bound and np.max(np.abs(b)) <= bound
    assert np.max(np.abs(w)) > 0.8 * bound  # really U(-bound, bound), not something narrower
    assert Linear(16, 8, bias=False, device=backend).bias is None


def test_same_seed_same_weights_on_every_backend(backend):
    ref = Linear(5, 3, device="cpu", rng=123)
    got = Linear(5, 3, device=backend, rng=123)
    np.testing.assert_array_equal(host(got.weight), host(ref.weight))
    np.testing.assert_array_equal(host(got.bias), host(ref.bias))
    other = Linear(5, 3, device=backend, rng=124)
    assert not np.array_equal(host(other.weight), host(ref.weight))


def test_sequential_parameter_names_and_order(backend):
    model = Sequential(
        Linear(4, 3, device=backend), ReLU(), Sequential(Linear(3, 2, bias=False, device=backend))
    )
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.0.weight"]
    assert [tuple(p.data.shape) for p in model.parameters()] == [(3, 4), (3,), (2, 3)]
    assert list(model.state_dict()) == names
    assert len(model) == 3 and isinstance(model[1], ReLU)
    assert "Linear(in_features=4, out_features=3, bias=True)" in repr(model)


def test_state_dict_round_trip_across_backends(backend, make):
    src = _stack(resolve_device("cpu"))  # host NumPy arrays
    dst = _stack(backend)
    handles = dst.parameters()
    before = [p.data for p in handles]
    dst[0].params["weight"][...] = 0  # make sure values really get copied
    dst.load_state_dict(src.state_dict())
    for (k, p), (_, q) in zip(dst.named_parameters(), src.named_parameters(), strict=True):
        np.testing.assert_array_equal(host(p.data), host(q.data), err_msg=k)
    assert all(p.data is a for p, a in zip(handles, before, strict=True))  # loaded in place
    x = make((3, 4))
    np.testing.assert_allclose(host(dst.forward(x)), src.forward(host(x)), rtol=1e-14)


def test_load_state_dict_errors(backend):
    model = _stack(backend)
    state = {k: to_numpy(v) for k, v in model.state_dict().items()}
    bad = dict(state, **{"2.weight": np.zeros((3, 5))})
    with pytest.raises(ValueError, match=r"2\.weight: expected shape \(2, 5\), got \(3, 5\)"):
        model.load_state_dict(bad)
    missing = {k: v for k, v in state.items() if k != "0.bias"}
    with pytest.raises(KeyError, match=r"missing \['0\.bias'\]"):
        model.load_state_dict(missing)
    with pytest.raises(KeyError, match=r"unexpected \['9\.weight'\]"):
        model.load_state_dict(dict(state, **{"9.weight": np.zeros(1)}))
    model.load_state_dict(missing, strict=False)  # non-strict: loads what is there


def test_to_device_moves_params_and_grads(backend, make):
    model = _stack(resolve_device("cpu"))
    x_host = make.rng.standard_normal((3, 4))
    expect = model.forward(x_host)
    model.to(backend)
    for k, p in model.named_parameters():
        assert type(p.data) is type(make((1,))), k
        assert dtype_name(p.data) == "float64" and dtype_name(p.grad) == "float64"
    with pytest.raises(RuntimeError, match="before forward"):  # caches are dropped by to()
        model.backward(make((3, 2)))
    y = model.forward(make.asarray(x_host))
    np.testing.assert_allclose(host(y), expect, rtol=1e-14)
    model.backward(make((3, 2)))
    model.to("cpu")
    assert isinstance(model[0].weight, np.ndarray)
    assert np.any(model[0].grads["weight"] != 0)


def test_train_eval_flags(backend):
    model = _stack(backend)
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    model.train(False)
    assert not model[2].training


def test_module_base_forward_is_abstract():
    with pytest.raises(NotImplementedError):
        Module().forward(np.zeros(1))


# ----------------------------------------------------------------------------------------------
# One to one with torch.nn (optional)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Linear", *ACTIVATIONS])
def test_matches_torch_nn(backend, make, name):
    torch = require_torch()
    x, dout = make((3, 4)), make((3, 4) if name != "Linear" else (3, 3))
    tx = torch.tensor(host(x), requires_grad=True)
    if name == "Linear":
        ours = linear(backend, 4, 3, seed=7)
        ref = torch.nn.Linear(4, 3).double()
        with torch.no_grad():
            ref.weight.copy_(torch.tensor(host(ours.weight)))
            ref.bias.copy_(torch.tensor(host(ours.bias)))
    else:
        ours = ACTIVATIONS[name]()
        slope = {"LeakyReLU(0.01)": 0.01, "LeakyReLU(0.2)": 0.2}.get(name)
        ref = {
            "ReLU": torch.nn.ReLU(),
            "Tanh": torch.nn.Tanh(),
            "Sigmoid": torch.nn.Sigmoid(),
        }.get(name) or torch.nn.LeakyReLU(slope)
    y = ours.forward(x)
    dx = ours.backward(dout)
    ty = ref(tx)
    ty.backward(torch.tensor(host(dout)))
    np.testing.assert_allclose(host(y), ty.detach().numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(host(dx), tx.grad.numpy(), rtol=1e-13, atol=1e-15)
    if name == "Linear":
        np.testing.assert_allclose(
            host(ours.grads["weight"]), ref.weight.grad.numpy(), rtol=1e-13, atol=1e-15
        )
        np.testing.assert_allclose(
            host(ours.grads["bias"]), ref.bias.grad.numpy(), rtol=1e-13, atol=1e-15
        )


def test_linear_backward_rejects_dout_of_another_dtype(backend, make):
    """A float64 dout must not silently turn a float32 layer's gradients into float64."""
    layer = Linear(3, 2, device=backend, rng=0)
    layer.forward(make((4, 3), "float32"))
    with pytest.raises(TypeError, match=r"dout: expected dtype .*float32.*got .*float64"):
        layer.backward(make((4, 2), "float64"))
