"""The pure forward/backward pairs of minigan.functional, on every backend.

* finite-difference gradient checks in float64 (eps 1e-6, random dout, tiny shapes, ReLU inputs
  kept away from 0) for every op and every reduction: max rel error < 1e-6;
* forward values against formulas evaluated here on the host;
* stability at logits of +-1e3 and probabilities exactly 0 and 1;
* float32 stays float32; clear errors for bad shapes, dtypes and reductions.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from conftest import dtype_name, host

from minigan import functional as F
from minigan.gradcheck import check_function

TOL = 1e-6  # issue 2: max relative error of a single op
REDUCTIONS = ["mean", "sum", "none"]


def _check(record_figure, name, forward, backward, *inputs, names, expect_rows):
    report = check_function(forward, backward, *inputs, names=names, seed=7)
    assert [r.name for r in report.rows] == expect_rows, str(report)
    assert report.passed, str(report)
    assert report.max_rel_error < TOL, str(report)
    record_figure("gradcheck max rel error: functional", name, report.max_rel_error)
    return report


# ----------------------------------------------------------------------------------------------
# Gradient checks
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_linear_gradcheck(backend, make, record_figure, bias):
    x, w = make((3, 4)), make((5, 4))
    b = make((5,)) if bias else None
    names = ["x", "weight", "bias"]
    expect = names if bias else names[:2]
    _check(
        record_figure,
        f"linear (bias={bias})",
        F.linear_forward,
        F.linear_backward,
        x,
        w,
        b,
        names=names,
        expect_rows=expect,
    )


def test_relu_gradcheck(backend, make, record_figure):
    x = make((3, 4), away=0.1)
    _check(
        record_figure, "relu", F.relu_forward, F.relu_backward, x, names=["x"], expect_rows=["x"]
    )


@pytest.mark.parametrize("slope", [0.01, 0.2])
def test_leaky_relu_gradcheck(backend, make, record_figure, slope):
    x = make((3, 4), away=0.1)
    _check(
        record_figure,
        f"leaky_relu({slope})",
        F.leaky_relu_forward,
        F.leaky_relu_backward,
        x,
        slope,
        names=["x", "negative_slope"],
        expect_rows=["x"],
    )


@pytest.mark.parametrize("op", ["tanh", "sigmoid"])
def test_smooth_activation_gradcheck(backend, make, record_figure, op):
    x = make((3, 4), low=-3.0, high=3.0)
    fwd, bwd = getattr(F, f"{op}_forward"), getattr(F, f"{op}_backward")
    _check(record_figure, op, fwd, bwd, x, names=["x"], expect_rows=["x"])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_gradcheck(backend, make, record_figure, reduction):
    p = make((4, 3), low=0.05, high=0.95)  # finite differences need p away from 0 and 1
    y = make((4, 3), low=0.0, high=1.0)  # soft targets exercise the general formula
    _check(
        record_figure,
        f"bce ({reduction})",
        lambda a, b: F.bce_forward(a, b, reduction),
        F.bce_backward,
        p,
        y,
        names=["input", "target"],
        expect_rows=["input"],
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_gradcheck(backend, make, record_figure, reduction):
    z = make((4, 3), low=-4.0, high=4.0)
    y = make((4, 3), low=0.0, high=1.0)
    _check(
        record_figure,
        f"bce_with_logits ({reduction})",
        lambda a, b: F.bce_with_logits_forward(a, b, reduction),
        F.bce_with_logits_backward,
        z,
        y,
        names=["input", "target"],
        expect_rows=["input"],
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_softmax_cross_entropy_gradcheck(backend, make, record_figure, reduction):
    z = make((4, 5))
    labels = make.labels(4, 5)
    _check(
        record_figure,
        f"softmax_cross_entropy ({reduction})",
        lambda a, b: F.softmax_cross_entropy_forward(a, b, reduction),
        F.softmax_cross_entropy_backward,
        z,
        labels,
        names=["logits", "labels"],
        expect_rows=["logits"],
    )


def test_linear_backward_flags_skip_work(backend, make):
    x, w, b = make((3, 4)), make((2, 4)), make((2,))
    _, cache = F.linear_forward(x, w, b)
    dout = make((3, 2))
    dx, dw, db = F.linear_backward(dout, cache, need_dx=False)
    assert dx is None and dw is not None and db is not None
    dx, dw, db = F.linear_backward(dout, cache, need_dparams=False)
    assert dx is not None and dw is None and db is None
    np.testing.assert_allclose(host(dx), host(dout) @ host(w), rtol=1e-13)


# ----------------------------------------------------------------------------------------------
# Forward values against formulas evaluated on the host
# ----------------------------------------------------------------------------------------------
def test_forward_values(backend, make):
    x, w, b = make((3, 4)), make((2, 4)), make((2,))
    hx, hw, hb = host(x), host(w), host(b)
    y, _ = F.linear_forward(x, w, b)
    np.testing.assert_allclose(host(y), hx @ hw.T + hb, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(host(F.relu_forward(x)[0]), np.maximum(hx, 0))
    np.testing.assert_allclose(
        host(F.leaky_relu_forward(x, 0.2)[0]), np.where(hx > 0, hx, 0.2 * hx), rtol=1e-15
    )
    np.testing.assert_allclose(host(F.tanh_forward(x)[0]), np.tanh(hx), rtol=1e-14)
    np.testing.assert_allclose(host(F.sigmoid_forward(x)[0]), 1 / (1 + np.exp(-hx)), rtol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_loss_values(backend, make, reduction):
    reduce = {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction]
    p, y = make((4, 3), low=0.05, high=0.95), make((4, 3), low=0.0, high=1.0)
    hp, hy = host(p), host(y)
    expect = reduce(-(hy * np.log(hp) + (1 - hy) * np.log(1 - hp)))
    np.testing.assert_allclose(host(F.bce_forward(p, y, reduction)[0]), expect, rtol=1e-13)

    z = make((4, 3), low=-5.0, high=5.0)
    hz = host(z)
    s = 1 / (1 + np.exp(-hz))
    expect = reduce(-(hy * np.log(s) + (1 - hy) * np.log(1 - s)))
    got = host(F.bce_with_logits_forward(z, y, reduction)[0])
    np.testing.assert_allclose(got, expect, rtol=1e-12)

    logits, labels = make((4, 5)), make.labels(4, 5)
    hl, hlab = host(logits), host(labels)
    log_softmax = hl - np.log(np.sum(np.exp(hl), axis=1, keepdims=True))
    expect = reduce(-log_softmax[np.arange(4), hlab])
    got = host(F.softmax_cross_entropy_forward(logits, labels, reduction)[0])
    np.testing.assert_allclose(got, expect, rtol=1e-13)


def test_reduced_losses_are_0d_arrays(backend, make):
    p, y = make((2, 3), low=0.1, high=0.9), make((2, 3), low=0, high=1)
    for fn in (F.bce_forward, F.bce_with_logits_forward):
        for reduction in ("mean", "sum"):
            loss, _ = fn(p, y, reduction)
            assert tuple(loss.shape) == ()
            assert type(loss) is type(p)  # an array of the backend, not a Python/NumPy scalar


# ----------------------------------------------------------------------------------------------
# Stability
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_stable_at_extremes(backend, make, dtype):
    x = make.asarray([-1e3, -30.0, 0.0, 30.0, 1e3], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the stable form never overflows (no RuntimeWarning)
        y, cache = F.sigmoid_forward(x)
        dx = F.sigmoid_backward(make.asarray(np.ones(5), dtype), cache)
    assert dtype_name(y) == dtype and dtype_name(dx) == dtype
    e30 = math.exp(-30.0)
    expect = [math.exp(-1e3), e30 / (1 + e30), 0.5, 1 / (1 + e30), 1.0]  # exp(-1e3) is 0.0
    got = host(y)
    assert np.all(np.isfinite(got)) and np.all(np.isfinite(host(dx)))
    rtol = 1e-6 if dtype == "float32" else 1e-15
    np.testing.assert_allclose(got, expect, rtol=rtol, atol=0)
    assert got[-1] == 1.0 and got[0] == 0.0
    # dy/dx = y (1 - y) from the stored y, as PyTorch does: in float32 y(30) rounds to 1, so 0.
    y_dtype = np.asarray(expect, dtype=dtype)
    np.testing.assert_allclose(host(dx), y_dtype * (1 - y_dtype), rtol=rtol, atol=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_with_logits_stable_at_1e3(backend, make, dtype):
    z = make.asarray([1e3, -1e3, 1e3, -1e3, 1e3, -1e3], dtype)
    y = make.asarray([1.0, 1.0, 0.0, 0.0, 0.5, 0.5], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, cache = F.bce_with_logits_forward(z, y, "none")
        dz = F.bce_with_logits_backward(make.asarray(np.ones(6), dtype), cache)
    # l = max(z,0) - z*y + log1p(exp(-|z|)); exp(-1000) underflows to 0 exactly.
    np.testing.assert_array_equal(host(loss), [0.0, 1e3, 1e3, 0.0, 500.0, 500.0])
    np.testing.assert_array_equal(host(dz), [0.0, -1.0, 1.0, 0.0, 0.5, -0.5])
    assert dtype_name(loss) == dtype and dtype_name(dz) == dtype
    mean, _ = F.bce_with_logits_forward(z, y, "mean")
    assert float(host(mean)) == pytest.approx(3000.0 / 6, rel=1e-7)


# log(0) = -inf is computed and then clamped at -100 (PyTorch's result); NumPy reports the -inf.
@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_at_probabilities_0_and_1(backend, make, dtype):
    # PyTorch clamps each log at -100, so a confident wrong answer costs exactly 100, and the
    # gradient (p - y) / max(p (1 - p), 1e-12) is +-1e12 instead of inf.
    p = make.asarray([0.0, 0.0, 1.0, 1.0, 0.0, 1.0], dtype)
    y = make.asarray([0.0, 1.0, 0.0, 1.0, 0.5, 0.5], dtype)
    loss, cache = F.bce_forward(p, y, "none")
    dp = F.bce_backward(make.asarray(np.ones(6), dtype), cache)
    np.testing.assert_array_equal(host(loss), [0.0, 100.0, 100.0, 0.0, 50.0, 50.0])
    np.testing.assert_allclose(host(dp), [0.0, -1e12, 1e12, 0.0, -0.5e12, 0.5e12], rtol=1e-6)
    assert dtype_name(loss) == dtype and dtype_name(dp) == dtype
    mean, cache = F.bce_forward(p, y, "mean")
    assert float(host(mean)) == pytest.approx(300.0 / 6, rel=1e-7)
    dmean = F.bce_backward(make.asarray(1.0, dtype), cache)
    np.testing.assert_allclose(host(dmean), host(dp) / 6, rtol=1e-6)


def test_softmax_cross_entropy_stable_at_1e3(backend, make):
    logits = make.asarray([[1e3, -1e3, 0.0], [-1e3, 1e3, 1e3]])
    labels = make.ints([1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, cache = F.softmax_cross_entropy_forward(logits, labels, "none")
        dz = F.softmax_cross_entropy_backward(make.asarray([1.0, 1.0]), cache)
    np.testing.assert_allclose(host(loss), [2e3, math.log(2.0)], rtol=1e-15)
    np.testing.assert_allclose(host(dz), [[1.0, -1.0, 0.0], [0.0, -0.5, 0.5]], atol=1e-15)


# ----------------------------------------------------------------------------------------------
# dtypes
# ----------------------------------------------------------------------------------------------
def test_float32_in_float32_out(backend, make):
    f32 = "float32"
    x, w, b = make((3, 4), f32), make((2, 4), f32), make((2,), f32)
    y, cache = F.linear_forward(x, w, b)
    grads = F.linear_backward(make((3, 2), f32), cache)
    assert [dtype_name(a) for a in (y, *grads)] == [f32] * 4
    for op in ("relu", "tanh", "sigmoid", "leaky_relu"):
        out, cache = getattr(F, f"{op}_forward")(x)
        dx = getattr(F, f"{op}_backward")(make((3, 4), f32), cache)
        assert (op, dtype_name(out), dtype_name(dx)) == (op, f32, f32)
    p, t = make((3, 4), f32, low=0.1, high=0.9), make((3, 4), f32, low=0, high=1)
    for fn, bwd in (
        (F.bce_forward, F.bce_backward),
        (F.bce_with_logits_forward, F.bce_with_logits_backward),
    ):
        for reduction in REDUCTIONS:
            loss, cache = fn(p, t, reduction)
            dout = make(() if reduction != "none" else (3, 4), f32)
            d = bwd(dout, cache)
            assert (fn.__name__, reduction, dtype_name(loss), dtype_name(d)) == (
                fn.__name__,
                reduction,
                f32,
                f32,
            )
    labels = make.labels(3, 4)
    for reduction in REDUCTIONS:
        loss, cache = F.softmax_cross_entropy_forward(x, labels, reduction)
        d = F.softmax_cross_entropy_backward(make(() if reduction != "none" else (3,), f32), cache)
        assert (reduction, dtype_name(loss), dtype_name(d)) == (reduction, f32, f32)


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------
def test_linear_rejects_wrong_rank_and_width(backend, make):
    w = make((2, 4))
    with pytest.raises(ValueError, match=r"expected shape \(N, 4\).*got \(3, 5\)"):
        F.linear_forward(make((3, 5)), w)
    with pytest.raises(ValueError, match=r"expected shape \(N, 4\).*got \(4,\)"):
        F.linear_forward(make((4,)), w)
    with pytest.raises(ValueError, match=r"expected shape \(N, 4\).*got \(2, 3, 4\)"):
        F.linear_forward(make((2, 3, 4)), w)


def test_non_float_input_is_rejected(backend, make):
    ints, ints2d = make.ints([1, 2, 3]), make.ints([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(TypeError, match=r"x: expected a float32 or float64 array, got dtype"):
        F.linear_forward(ints2d, make((2, 3)))
    for op in ("relu", "leaky_relu", "tanh", "sigmoid"):
        with pytest.raises(TypeError, match=r"x: expected a float32 or float64"):
            getattr(F, f"{op}_forward")(ints)
    with pytest.raises(TypeError, match=r"input: expected a float32 or float64"):
        F.bce_with_logits_forward(ints, ints)
    with pytest.raises(TypeError, match=r"logits: expected a float32 or float64"):
        F.softmax_cross_entropy_forward(ints2d, make.labels(2, 3))


def test_dtype_mismatch_is_rejected(backend, make):
    with pytest.raises(TypeError, match=r"x: expected dtype .*float32.*got .*float64"):
        F.linear_forward(make((3, 4)), make((2, 4), "float32"))
    with pytest.raises(TypeError, match=r"target: expected dtype .*float64.*got .*float32"):
        F.bce_forward(make((3,), low=0.1, high=0.9), make((3,), "float32", low=0, high=1))


@pytest.mark.parametrize(
    "fn", [F.bce_forward, F.bce_with_logits_forward], ids=["bce", "bce_with_logits"]
)
def test_loss_shape_mismatch_names_both_shapes(backend, make, fn):
    with pytest.raises(
        ValueError, match=r"target shape \(3, 1\) does not match input shape \(3,\)"
    ):
        fn(make((3,), low=0.1, high=0.9), make((3, 1), low=0, high=1))


def test_softmax_cross_entropy_bad_shapes(backend, make):
    with pytest.raises(ValueError, match=r"logits \(N, C\).*got \(3, 4\) and \(2,\)"):
        F.softmax_cross_entropy_forward(make((3, 4)), make.labels(2, 4))


def test_softmax_cross_entropy_needs_integer_labels(backend, make):
    # Float labels used to work on NumPy but fail with a type-promotion error elsewhere.
    with pytest.raises(TypeError, match=r"labels: expected an integer array .*got .*float64"):
        F.softmax_cross_entropy_forward(make((2, 3)), make.asarray([0.0, 2.0]))


@pytest.mark.parametrize(
    "fn",
    [F.bce_forward, F.bce_with_logits_forward, F.softmax_cross_entropy_forward],
    ids=["bce", "bce_with_logits", "softmax_cross_entropy"],
)
def test_unknown_reduction(backend, make, fn):
    with pytest.raises(ValueError, match=r"reduction: expected one of .*got 'avg'"):
        fn(make((3, 2), low=0.1, high=0.9), make((3, 2), low=0, high=1), "avg")


def test_wrong_dout_shape_names_both_shapes(backend, make):
    x = make((3, 4), away=0.1)
    _, cache = F.linear_forward(x, make((2, 4)), make((2,)))
    with pytest.raises(ValueError, match=r"dout: expected shape \(3, 2\), got \(3, 4\)"):
        F.linear_backward(make((3, 4)), cache)
    for op in ("relu", "leaky_relu", "tanh", "sigmoid"):
        _, cache = getattr(F, f"{op}_forward")(x)
        with pytest.raises(ValueError, match=r"dout shape \(4, 3\) does not match .*\(3, 4\)"):
            getattr(F, f"{op}_backward")(make((4, 3)), cache)
    p, y = make((3, 4), low=0.1, high=0.9), make((3, 4), low=0, high=1)
    _, cache = F.bce_forward(p, y, "mean")
    with pytest.raises(
        ValueError, match=r"dout: expected a scalar \(shape \(\)\), got shape \(3, 4\)"
    ):
        F.bce_backward(make((3, 4)), cache)
    _, cache = F.bce_with_logits_forward(p, y, "none")
    with pytest.raises(ValueError, match=r"dout shape \(4, 3\) does not match .*\(3, 4\)"):
        F.bce_with_logits_backward(make((4, 3)), cache)
    _, cache = F.softmax_cross_entropy_forward(p, make.labels(3, 4), "none")
    with pytest.raises(ValueError, match=r"dout: expected shape \(3,\), got \(4,\)"):
        F.softmax_cross_entropy_backward(make((4,)), cache)
