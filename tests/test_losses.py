"""Loss modules (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss) on every backend.

Gradient checks for each reduction and for a loss on top of a 3-layer network (< 1e-5), values
at the extremes (logits +-1e3, probabilities exactly 0 and 1) against expected values computed
here, dtype preservation, clear errors, and torch.nn when PyTorch is installed.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import dtype_name, host, require_torch

from minigan import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, LeakyReLU, Linear, Sequential
from minigan.gradcheck import check_function, check_module, gradcheck
from minigan.layers import Module

TOL = 1e-6
TOL_DEEP = 1e-5
REDUCTIONS = ["mean", "sum", "none"]
LOSSES = {"BCELoss": BCELoss, "BCEWithLogitsLoss": BCEWithLogitsLoss}


def _inputs(make, name, shape=(4, 3), dtype="float64"):
    if name == "BCELoss":
        inp = make(shape, dtype, low=0.05, high=0.95)
    else:
        inp = make(shape, dtype, low=-4.0, high=4.0)
    return inp, make(shape, dtype, low=0.0, high=1.0)


def _loss_report(loss, inp, target):
    def fwd(a, b):
        return loss.forward(a, b), loss._cache

    def bwd(d, cache):
        loss._cache = cache
        return loss.backward(d)

    return check_function(fwd, bwd, inp, target, names=["input", "target"], seed=5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", list(LOSSES))
def test_bce_losses_gradcheck(backend, make, record_figure, name, reduction):
    loss = LOSSES[name](reduction=reduction)
    inp, target = _inputs(make, name)
    report = _loss_report(loss, inp, target)
    assert [r.name for r in report.rows] == ["input"]
    assert report.passed and report.max_rel_error < TOL, str(report)
    assert gradcheck(loss, inp, target) is True
    record_figure("gradcheck max rel error: losses", f"{name}({reduction})", report.max_rel_error)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_gradcheck(backend, make, record_figure, reduction):
    loss = CrossEntropyLoss(reduction=reduction)
    logits, labels = make((4, 5)), make.labels(4, 5)
    report = _loss_report(loss, logits, labels)
    assert report.passed and report.max_rel_error < TOL, str(report)
    record_figure(
        "gradcheck max rel error: losses", f"CrossEntropyLoss({reduction})", report.max_rel_error
    )


class _NetWithLoss(Module):
    """A network and a loss with fixed targets as one module: checks the whole chain rule."""

    def __init__(self, net, loss, target):
        super().__init__()
        self.net, self.loss, self.target = net, loss, target

    def children(self):
        return {"net": self.net}

    def forward(self, x):
        return self.loss.forward(self.net.forward(x), self.target)

    def backward(self, dout, *, input_grad=True):
        return self.net.backward(self.loss.backward(dout), input_grad=input_grad)


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_on_three_layer_network_gradcheck(backend, make, record_figure, name):
    # Discriminator-style: Linear, LeakyReLU(0.2), Linear (+ Sigmoid inside BCELoss's case).
    layers = [
        Linear(4, 5, dtype="float64", device=backend, rng=30),
        LeakyReLU(0.2),
        Linear(5, 1, dtype="float64", device=backend, rng=31),
    ]
    if name == "BCELoss":
        from minigan import Sigmoid

        layers.append(Sigmoid())
    net = Sequential(*layers)
    x = make((6, 4))
    pre = host(net[0].forward(x))
    assert np.min(np.abs(pre)) > 1e-3, "test setup: LeakyReLU input too close to 0"
    target = make.asarray(np.array([[1.0], [0.0], [1.0], [0.0], [1.0], [0.0]]))
    model = _NetWithLoss(net, LOSSES[name](), target)
    report = check_module(model, x, seed=6)
    assert [r.name for r in report.rows] == ["input", "net.0.weight", "net.0.bias"] + [
        "net.2.weight",
        "net.2.bias",
    ]
    assert report.passed and report.max_rel_error < TOL_DEEP, str(report)
    record_figure(
        "gradcheck max rel error: layers and stacks",
        f"{len(layers)}-layer net + {name}",
        report.max_rel_error,
    )


# ----------------------------------------------------------------------------------------------
# Values at the extremes, against expected values computed here
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_with_logits_at_1e3(backend, make, dtype):
    loss = BCEWithLogitsLoss()
    z = make.asarray([[1e3], [-1e3], [1e3], [-1e3]], dtype)
    y = make.asarray([[1.0], [1.0], [0.0], [0.0]], dtype)
    out = loss(z, y)
    dz = loss.backward()
    # per element: 0, 1000, 1000, 0 -> mean 500; gradient (sigmoid(z) - y) / N
    assert float(host(out)) == 500.0
    np.testing.assert_array_equal(host(dz), [[0.0], [-0.25], [0.25], [0.0]])
    assert dtype_name(out) == dtype and dtype_name(dz) == dtype


# log(0) = -inf is computed and then clamped at -100 (PyTorch's result); NumPy reports the -inf.
@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_at_probabilities_0_and_1(backend, make, dtype):
    loss = BCELoss(reduction="sum")
    p = make.asarray([0.0, 1.0, 0.0, 1.0], dtype)
    y = make.asarray([1.0, 0.0, 0.0, 1.0], dtype)
    out = loss(p, y)
    dp = loss.backward()
    assert float(host(out)) == 200.0  # -log clamped at 100 for each of the two wrong answers
    # (p - y) / max(p (1 - p), 1e-12): -1e12, +1e12, 0, 0
    np.testing.assert_allclose(host(dp), [-1e12, 1e12, 0.0, 0.0], rtol=1e-6)
    assert np.all(np.isfinite(host(dp)))
    assert dtype_name(out) == dtype and dtype_name(dp) == dtype


def test_cross_entropy_at_1e3(backend, make):
    loss = CrossEntropyLoss(reduction="sum")
    z = make.asarray([[1e3, -1e3], [1e3, -1e3]], "float32")
    out = loss(z, make.ints([0, 1]))
    dz = loss.backward()
    assert float(host(out)) == 2000.0
    np.testing.assert_array_equal(host(dz), [[0.0, 0.0], [1.0, -1.0]])
    assert dtype_name(out) == "float32" and dtype_name(dz) == "float32"


# ----------------------------------------------------------------------------------------------
# dtype, default dout, reductions
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", list(LOSSES))
def test_float32_in_float32_out(backend, make, name, reduction):
    loss = LOSSES[name](reduction=reduction)
    inp, target = _inputs(make, name, dtype="float32")
    out = loss(inp, target)
    d = loss.backward()
    assert tuple(out.shape) == (() if reduction != "none" else (4, 3))
    assert (dtype_name(out), dtype_name(d)) == ("float32", "float32")
    assert tuple(d.shape) == (4, 3)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_float32_and_default_dout(backend, make, reduction):
    loss = CrossEntropyLoss(reduction=reduction)
    out = loss(make((4, 5), "float32"), make.labels(4, 5))
    d = loss.backward()
    assert tuple(out.shape) == (() if reduction != "none" else (4,))
    assert (dtype_name(out), dtype_name(d), tuple(d.shape)) == ("float32", "float32", (4, 5))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", [*LOSSES, "CrossEntropyLoss"])
def test_float32_matches_float64_numpy(backend, make, name, reduction):
    # STYLE.md: float32 (and GPU) results are checked against a float64 NumPy run.
    cls = LOSSES.get(name, CrossEntropyLoss)
    if name == "CrossEntropyLoss":
        inp, target = make.host((4, 5)), np.array([0, 4, 2, 2])
        tgt_ours = make.ints(target)
    else:
        lo, hi = (0.05, 0.95) if name == "BCELoss" else (-4.0, 4.0)
        inp, target = make.host((4, 3), low=lo, high=hi), make.host((4, 3), low=0, high=1)
        tgt_ours = make.asarray(target, "float32")
    ref, ours = cls(reduction), cls(reduction)
    out_ref, d_ref = ref(inp, target), ref.backward()
    out, d = ours(make.asarray(inp, "float32"), tgt_ours), ours.backward()
    np.testing.assert_allclose(host(out), out_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(host(d), d_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(LOSSES))
def test_default_dout_is_one_and_mean_is_sum_over_n(backend, make, name):
    inp, target = _inputs(make, name)
    mean, total = LOSSES[name]("mean"), LOSSES[name]("sum")
    m, s = host(mean(inp, target)), host(total(inp, target))
    np.testing.assert_allclose(m * 12, s, rtol=1e-14)
    np.testing.assert_allclose(host(mean.backward()) * 12, host(total.backward()), rtol=1e-14)
    explicit = host(mean.backward(make.asarray(2.5)))
    np.testing.assert_allclose(explicit, 2.5 * host(mean.backward()), rtol=1e-14)


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [BCELoss, BCEWithLogitsLoss, CrossEntropyLoss])
def test_unknown_reduction(cls):
    with pytest.raises(ValueError, match=r"reduction: expected one of \('mean', 'sum', 'none'\)"):
        cls(reduction="batchmean")


@pytest.mark.parametrize("cls", [BCELoss, BCEWithLogitsLoss, CrossEntropyLoss])
def test_backward_before_forward(cls):
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        cls().backward()


@pytest.mark.parametrize("name", list(LOSSES))
def test_target_shape_must_match_input(backend, make, name):
    inp, _ = _inputs(make, name, shape=(4, 1))
    with pytest.raises(
        ValueError, match=r"target shape \(4,\) does not match input shape \(4, 1\)"
    ):
        LOSSES[name]()(inp, make((4,), low=0, high=1))


@pytest.mark.parametrize("name", list(LOSSES))
def test_non_float_and_mismatched_dtype(backend, make, name):
    with pytest.raises(TypeError, match=r"input: expected a float32 or float64 array"):
        LOSSES[name]()(make.ints([0, 1]), make.ints([0, 1]))
    inp, target = _inputs(make, name, dtype="float32")
    with pytest.raises(TypeError, match=r"target: expected dtype .*float32.*got .*float64"):
        LOSSES[name]()(inp, make((4, 3), low=0, high=1))


@pytest.mark.parametrize("name", list(LOSSES))
def test_wrong_dout_shape(backend, make, name):
    inp, target = _inputs(make, name)
    loss = LOSSES[name]()
    loss(inp, target)
    with pytest.raises(
        ValueError, match=r"dout: expected a scalar \(shape \(\)\), got shape \(4, 3\)"
    ):
        loss.backward(make((4, 3)))
    loss = LOSSES[name](reduction="none")
    loss(inp, target)
    with pytest.raises(ValueError, match=r"dout shape \(3, 4\) does not match .* shape \(4, 3\)"):
        loss.backward(make((3, 4)))


def test_cross_entropy_label_shape(backend, make):
    with pytest.raises(ValueError, match=r"labels \(N,\), got \(4, 5\) and \(3,\)"):
        CrossEntropyLoss()(make((4, 5)), make.labels(3, 5))


# ----------------------------------------------------------------------------------------------
# One to one with torch.nn (optional)
# ----------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss"])
def test_matches_torch(backend, make, name, reduction):
    torch = require_torch()
    if name == "CrossEntropyLoss":
        inp = make.asarray(np.concatenate([make.host((4, 5)), [[1e3, -1e3, 0, 0, 0]]]))
        target = make.ints(np.append(make.rng.integers(0, 5, 4), 1))
        ttarget = torch.tensor(host(target))
    else:
        inp, target = _inputs(make, name, shape=(5, 3))
        extremes = [0.0, 1.0, 0.0] if name == "BCELoss" else [1e3, -1e3, 1e3]
        inp = make.asarray(np.concatenate([host(inp)[:4], [extremes]]))
        target = make.asarray(np.concatenate([host(target)[:4], [[1.0, 0.0, 0.5]]]))
        ttarget = torch.tensor(host(target))
    ours = {"BCELoss": BCELoss, "BCEWithLogitsLoss": BCEWithLogitsLoss}.get(name, CrossEntropyLoss)(
        reduction=reduction
    )
    ref = getattr(torch.nn, name)(reduction=reduction)
    out = ours(inp, target)
    dout = make(tuple(out.shape))
    d = ours.backward(dout)
    tin = torch.tensor(host(inp), requires_grad=True)
    tout = ref(tin, ttarget)
    tout.backward(torch.tensor(host(dout)))
    np.testing.assert_allclose(host(out), tout.detach().numpy(), rtol=1e-13)
    tgrad = tin.grad.numpy()
    if name == "BCELoss":
        # At p = 0 or 1 the gradient is (p - y) / 1e-12; PyTorch's kernel stores that 1e-12 as
        # a float32 constant (9.99999996e-13), so its value is 4.0e-9 relatively larger.
        np.testing.assert_allclose(
            host(d)[4], tgrad[4] * float(np.float32(1e-12)) / 1e-12, rtol=1e-12, atol=1e-15
        )
        np.testing.assert_allclose(host(d)[:4], tgrad[:4], rtol=1e-12, atol=1e-15)
    else:
        np.testing.assert_allclose(host(d), tgrad, rtol=1e-12, atol=1e-15)
