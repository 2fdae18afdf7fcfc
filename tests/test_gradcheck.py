"""The gradient checking tool students use on their own layers.

It must pass correct layers, and on a wrong layer say which tensor (and which element) is wrong.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import host

from minigan import Linear, Sequential, Tanh
from minigan import functional as F
from minigan.gradcheck import (
    GradcheckError,
    check_function,
    check_module,
    gradcheck,
    numerical_gradient,
    rel_error,
)
from minigan.losses import BCEWithLogitsLoss


# ----------------------------------------------------------------------------------------------
# Deliberately wrong layers
# ----------------------------------------------------------------------------------------------
class ForgetsBias(Linear):
    """backward computes dW and dx correctly but never adds the bias gradient."""

    def backward(self, dout, *, input_grad=True):
        dx, dw, _ = F.linear_backward(dout, self._cached())
        self.grads["weight"] += dw
        return dx


class TransposedWeightGrad(Linear):
    """dW = x^T @ dout instead of dout^T @ x (a square layer, so the shapes still fit)."""

    def backward(self, dout, *, input_grad=True):
        x, weight, _ = self._cached()
        dx, _, db = F.linear_backward(dout, self._cached())
        self.grads["weight"] += (dout.T @ x).T
        self.grads["bias"] += db
        return dx


class TransposedInputGrad(Linear):
    """dx = dout @ W^T instead of dout @ W (square, so only the values are wrong)."""

    def backward(self, dout, *, input_grad=True):
        x, weight, _ = self._cached()
        _, dw, db = F.linear_backward(dout, self._cached())
        self.grads["weight"] += dw
        self.grads["bias"] += db
        return dout @ weight.T


class OneWrongElement(Linear):
    """Correct except weight[1, 2], which is off by 0.1."""

    def backward(self, dout, *, input_grad=True):
        dx = super().backward(dout, input_grad=input_grad)
        self.grads["weight"][1, 2] += 0.1
        return dx


class NoInputGrad(Linear):
    def backward(self, dout, *, input_grad=True):
        super().backward(dout)
        return None


def _layer(cls, backend, n=3):
    return cls(n, n, dtype="float64", device=backend, rng=5)


@pytest.mark.parametrize(
    "cls,bad",
    [
        (ForgetsBias, "bias"),
        (TransposedWeightGrad, "weight"),
        (TransposedInputGrad, "input"),
        (OneWrongElement, "weight"),
    ],
    ids=["forgets-bias", "transposed-dW", "transposed-dx", "one-wrong-element"],
)
def test_check_module_names_the_wrong_tensor(backend, make, cls, bad):
    report = check_module(_layer(cls, backend), make((4, 3)))
    assert not report.passed
    assert report.failed == [bad]
    row = report[bad]
    assert not row.passed and row.rel_error > 1e-3
    for other in {"input", "weight", "bias"} - {bad}:
        assert report[other].passed and report[other].rel_error < 1e-6
    text = str(report)
    assert f"FAIL  {bad}" in text and f"FAILED: {bad}" in text
    assert "worst at" in text and "analytic" in text and "numeric" in text


def test_report_points_at_the_wrong_element(backend, make):
    report = check_module(_layer(OneWrongElement, backend), make((4, 3)))
    row = report["weight"]
    assert row.worst_index == (1, 2)
    assert row.analytic - row.numeric == pytest.approx(0.1, rel=1e-6)
    assert "worst at (1, 2)" in str(report)


@pytest.mark.parametrize(
    "cls,bad",
    [(ForgetsBias, "bias"), (TransposedWeightGrad, "weight"), (TransposedInputGrad, "input")],
    ids=["forgets-bias", "transposed-dW", "transposed-dx"],
)
def test_gradcheck_raises_naming_the_tensor(backend, make, cls, bad):
    layer, x = _layer(cls, backend), make((4, 3))
    with pytest.raises(GradcheckError, match=rf"FAILED: {bad}"):
        gradcheck(layer, x)
    assert gradcheck(layer, x, raise_exception=False) is False


def test_wrong_layer_inside_a_stack_is_named_by_its_dotted_name(backend, make):
    model = Sequential(Linear(3, 3, dtype="float64", device=backend, rng=1), Tanh())
    model.layers.append(_layer(ForgetsBias, backend))
    report = check_module(model, make((2, 3)))
    assert report.failed == ["2.bias"]


def test_missing_input_gradient_is_reported(backend, make):
    report = check_module(_layer(NoInputGrad, backend), make((2, 3)))
    assert report.failed == ["input"]
    assert "no analytic gradient" in str(report)


def test_correct_things_pass(backend, make):
    x = make((4, 3))
    assert gradcheck(Linear(3, 2, dtype="float64", device=backend, rng=0), x) is True
    w, b = make((2, 3)), make((2,))
    assert gradcheck((F.linear_forward, F.linear_backward), x, w, b) is True
    p, y = make((4, 3)), make((4, 3), low=0, high=1)
    assert gradcheck(BCEWithLogitsLoss(), p, y) is True
    report = check_function(F.tanh_forward, F.tanh_backward, x, names=["z"])
    assert report.passed and [r.name for r in report.rows] == ["z"]
    assert "all passed" in str(report)


def test_float32_is_rejected(backend, make):
    layer = Linear(3, 2, dtype="float64", device=backend, rng=0)
    with pytest.raises(TypeError, match=r"x: gradient checks need float64 arrays, got .*float32"):
        check_module(layer, make((2, 3), "float32"))
    layer32 = Linear(3, 2, dtype="float32", device=backend, rng=0)
    with pytest.raises(TypeError, match=r"weight: gradient checks need float64"):
        gradcheck(layer32, make((2, 3)))
    with pytest.raises(TypeError, match=r"input0: gradient checks need float64"):
        gradcheck((F.tanh_forward, F.tanh_backward), make((2, 3), "float32"))


def test_gradcheck_argument_errors(backend, make):
    x = make((2, 3))
    with pytest.raises(TypeError, match=r"expected exactly one input"):
        gradcheck(Linear(3, 2, dtype="float64", device=backend), x, x)
    with pytest.raises(TypeError, match=r"expected exactly two inputs"):
        gradcheck(BCEWithLogitsLoss(), x)
    with pytest.raises(TypeError, match=r"expected a Module, a Loss or a \(forward, backward\)"):
        gradcheck(np.tanh, x)


# ----------------------------------------------------------------------------------------------
# The building blocks
# ----------------------------------------------------------------------------------------------
def test_numerical_gradient_of_a_known_function(backend, make):
    x, dout = make((3, 2)), make((3, 2))
    num = numerical_gradient(lambda a: a * a * a, x, dout)
    expect = 3 * host(x) ** 2 * host(dout)
    np.testing.assert_allclose(num, expect, rtol=1e-8, atol=1e-9)
    assert isinstance(num, np.ndarray) and num.dtype == np.float64
    np.testing.assert_array_equal(host(x), host(make.asarray(host(x))))  # x restored


def test_numerical_gradient_is_central(backend, make):
    # For f(x) = x^3 the one-sided difference has error 3 x eps; the central one eps^2.
    x = make.asarray([2.0])
    num = numerical_gradient(lambda a: a * a * a, x, make.asarray([1.0]), eps=1e-3)
    assert abs(num[0] - 12.0) < 2e-6


def test_rel_error():
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    # max|a-b| / max(|a|+|b|) = 0.5 / 4.5
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.5])) == pytest.approx(0.5 / 4.5)
    assert rel_error(np.zeros(3), np.full(3, 1e-9)) == pytest.approx(1e-9 / 1e-8)  # floor 1e-8
    assert rel_error(np.zeros((0,)), np.zeros((0,))) == 0.0
    with pytest.raises(ValueError, match=r"shapes differ, \(2,\) vs \(3,\)"):
        rel_error(np.zeros(2), np.zeros(3))


def test_report_lookup_error_lists_names(backend, make):
    report = check_module(Linear(3, 2, dtype="float64", device=backend), make((2, 3)))
    with pytest.raises(KeyError, match=r"no tensor named 'gamma'.*'input', 'weight', 'bias'"):
        report["gamma"]
