"""Conv2d and ConvTranspose2d (issue 10), on every backend.

Finite differences in float64 for the functional pairs and the layers over strides, paddings,
kernel sizes, non-square inputs and C_in != C_out; the adjoint identities of im2col/col2im and
conv2d/conv_transpose2d; accumulation, dtypes, clear errors; one to one with torch.nn in
float64 (skipped when PyTorch is missing).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import dtype_name, host, require_torch

from minigan import Conv2d, ConvTranspose2d
from minigan import functional as F
from minigan.backend import resolve_device
from minigan.gradcheck import check_function, check_module

TOL = 1e-6

# (N, C_in, C_out, H, W, kernel, stride, padding): every kernel 3/4/5, stride 1/2,
# padding 0/1/2, non-square inputs and kernels, C_in != C_out, batch >= 2.
CONV_CASES = {
    "k3 s1 p0": (2, 2, 3, 5, 6, 3, 1, 0),
    "k3 s2 p1": (2, 3, 2, 6, 5, 3, 2, 1),
    "k4 s2 p1": (2, 2, 3, 6, 8, 4, 2, 1),
    "k5 s1 p2": (2, 2, 1, 5, 4, 5, 1, 2),
    "k3 s2 p2": (3, 1, 2, 5, 7, 3, 2, 2),
    "k(3,2) s(2,1) p(1,0)": (2, 2, 3, 5, 4, (3, 2), (2, 1), (1, 0)),
}
# (N, C_in, C_out, H, W, kernel, stride, padding, output_padding)
CONVT_CASES = {
    "k3 s1 p0": (2, 2, 3, 3, 4, 3, 1, 0, 0),
    "k4 s2 p1": (2, 3, 2, 3, 2, 4, 2, 1, 0),
    "k3 s2 p1 op1": (2, 2, 3, 3, 4, 3, 2, 1, 1),
    "k5 s3 p2 op2": (2, 2, 1, 2, 3, 5, 3, 2, 2),
    "k(3,4) s(2,1) p(0,1) op(1,0)": (2, 2, 3, 3, 2, (3, 4), (2, 1), (0, 1), (1, 0)),
}


def _k(k):
    return (k, k) if isinstance(k, int) else k


def conv_inputs(make, case, dtype="float64"):
    n, ci, co, h, w, k, s, p = case
    kh, kw = _k(k)
    return make((n, ci, h, w), dtype), make((co, ci, kh, kw), dtype), make((co,), dtype), s, p


def convt_inputs(make, case, dtype="float64"):
    n, ci, co, h, w, k, s, p, op = case
    kh, kw = _k(k)
    x, wt, b = make((n, ci, h, w), dtype), make((ci, co, kh, kw), dtype), make((co,), dtype)
    return x, wt, b, s, p, op


def _assert_report(report, record_figure, name, expect_rows):
    assert [r.name for r in report.rows] == expect_rows, str(report)
    assert report.passed and report.max_rel_error < TOL, str(report)
    record_figure("gradcheck max rel error: conv", name, report.max_rel_error)


# ----------------------------------------------------------------------------------------------
# Finite differences
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv2d_functional_gradcheck(backend, make, record_figure, name):
    x, w, b, s, p = conv_inputs(make, CONV_CASES[name])
    report = check_function(
        lambda x, w, b: F.conv2d_forward(x, w, b, s, p),
        F.conv2d_backward,
        x,
        w,
        b,
        names=["x", "weight", "bias"],
        seed=1,
    )
    _assert_report(report, record_figure, f"conv2d {name}", ["x", "weight", "bias"])


@pytest.mark.parametrize("name", list(CONVT_CASES))
def test_conv_transpose2d_functional_gradcheck(backend, make, record_figure, name):
    x, w, b, s, p, op = convt_inputs(make, CONVT_CASES[name])
    report = check_function(
        lambda x, w, b: F.conv_transpose2d_forward(x, w, b, s, p, op),
        F.conv_transpose2d_backward,
        x,
        w,
        b,
        names=["x", "weight", "bias"],
        seed=2,
    )
    _assert_report(report, record_figure, f"conv_transpose2d {name}", ["x", "weight", "bias"])


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_conv_layers_gradcheck(backend, make, record_figure, bias):
    conv = Conv2d(2, 3, (3, 4), stride=(1, 2), padding=1, bias=bias, dtype="float64",
                  device=backend, rng=0)  # fmt: skip
    convt = ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1, bias=bias,
                            dtype="float64", device=backend, rng=1)  # fmt: skip
    rows = ["input", "weight", "bias"][: 3 if bias else 2]
    for layer, x in ((conv, make((2, 2, 5, 6))), (convt, make((2, 3, 3, 2)))):
        report = check_module(layer, x, seed=4)
        _assert_report(report, record_figure, f"{type(layer).__name__}(bias={bias})", rows)


# ----------------------------------------------------------------------------------------------
# Adjoint identities
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CONV_CASES))
def test_im2col_col2im_are_adjoint(backend, make, name):
    n, ci, _, h, w, k, s, p = CONV_CASES[name]
    x = make((n, ci, h, w))
    cols, _ = F.im2col(x, k, s, p)
    c = make(tuple(cols.shape))
    lhs = float(np.sum(host(cols) * host(c)))
    rhs = float(np.sum(host(x) * host(F.col2im(c, x.shape, k, s, p))))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs)), (lhs, rhs)


@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv2d_and_conv_transpose2d_are_adjoint(backend, make, name):
    # <conv2d(x, W), y> = <x, conv_transpose2d(y, W)>, with the output_padding that gives
    # conv_transpose2d back the input's size (the rows conv2d's floor division dropped).
    x, w, _, s, p = conv_inputs(make, CONV_CASES[name])
    y_fwd, _ = F.conv2d_forward(x, w, None, s, p)
    y = make(tuple(y_fwd.shape))
    s2, p2, k2 = F._conv._pair(s, "s", 1), F._conv._pair(p, "p", 0), tuple(w.shape[2:])
    op = tuple(
        x.shape[2 + d] - ((y.shape[2 + d] - 1) * s2[d] - 2 * p2[d] + k2[d]) for d in range(2)
    )
    xt, _ = F.conv_transpose2d_forward(y, w, None, s, p, op)
    assert tuple(xt.shape) == tuple(x.shape)
    lhs = float(np.sum(host(y_fwd) * host(y)))
    rhs = float(np.sum(host(x) * host(xt)))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs)), (lhs, rhs)


# ----------------------------------------------------------------------------------------------
# PyTorch, float64 to 1e-10
# ----------------------------------------------------------------------------------------------
def _close(a, b, what):
    np.testing.assert_allclose(host(a), b.detach().numpy(), rtol=1e-10, atol=1e-10, err_msg=what)


@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv2d_matches_torch(backend, make, name):
    torch = require_torch()
    x, w, b, s, p = conv_inputs(make, CONV_CASES[name])
    y, cache = F.conv2d_forward(x, w, b, s, p)
    dout = make(tuple(y.shape))
    dx, dw, db = F.conv2d_backward(dout, cache)
    tx, tw, tb = (torch.tensor(host(a), requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, s, p)
    ty.backward(torch.tensor(host(dout)))
    for a, t, what in ((y, ty, "y"), (dx, tx.grad, "dx"), (dw, tw.grad, "dw"), (db, tb.grad, "db")):
        _close(a, t, what)


@pytest.mark.parametrize("name", list(CONVT_CASES))
def test_conv_transpose2d_matches_torch(backend, make, name):
    torch = require_torch()
    x, w, b, s, p, op = convt_inputs(make, CONVT_CASES[name])
    y, cache = F.conv_transpose2d_forward(x, w, b, s, p, op)
    dout = make(tuple(y.shape))
    dx, dw, db = F.conv_transpose2d_backward(dout, cache)
    tx, tw, tb = (torch.tensor(host(a), requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, s, p, op)
    ty.backward(torch.tensor(host(dout)))
    for a, t, what in ((y, ty, "y"), (dx, tx.grad, "dx"), (dw, tw.grad, "dw"), (db, tb.grad, "db")):
        _close(a, t, what)


def test_conv_layers_state_dict_loads_into_torch_and_back(backend, make):
    torch = require_torch()
    ours = Conv2d(2, 3, 3, 2, 1, dtype="float64", device=backend, rng=0)
    theirs = torch.nn.Conv2d(2, 3, 3, 2, 1).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.tensor(host(v)) for k, v in ours.state_dict().items()})
    x = make((2, 2, 5, 5))
    _close(ours.forward(x), theirs(torch.tensor(host(x))), "Conv2d forward")
    other = torch.nn.ConvTranspose2d(3, 2, 4, 2, 1).double()
    mine = ConvTranspose2d(3, 2, 4, 2, 1, dtype="float64", device=backend, rng=1)
    mine.load_state_dict({k: v.numpy() for k, v in other.state_dict().items()})
    x = make((2, 3, 3, 4))
    _close(mine.forward(x), other(torch.tensor(host(x))), "ConvTranspose2d forward")


# ----------------------------------------------------------------------------------------------
# Accumulation, dtypes, init
# ----------------------------------------------------------------------------------------------
LAYERS = {
    "Conv2d": (lambda be, dt: Conv2d(2, 3, 3, 2, 1, dtype=dt, device=be, rng=0), (2, 2, 5, 6)),
    "ConvTranspose2d": (
        lambda be, dt: ConvTranspose2d(2, 3, 4, 2, 1, dtype=dt, device=be, rng=0),
        (2, 2, 3, 4),
    ),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_two_backwards_give_twice_the_gradient(backend, make, name):
    build, shape = LAYERS[name]
    layer = build(backend, "float64")
    y = layer.forward(make(shape))
    dout = make(tuple(y.shape))
    dx1 = host(layer.backward(dout))
    once = {k: host(g).copy() for k, g in layer.grads.items()}
    dx2 = host(layer.backward(dout))
    np.testing.assert_array_equal(dx1, dx2)
    for k, g in layer.grads.items():
        assert np.any(once[k] != 0), k
        np.testing.assert_array_equal(host(g), 2 * once[k], err_msg=k)


@pytest.mark.parametrize("name", list(LAYERS))
def test_float32_preserved_and_matches_float64_numpy(backend, make, name):
    build, shape = LAYERS[name]
    ours, ref = build(backend, "float32"), build(resolve_device("cpu"), "float64")
    x = make.host(shape)
    y = ours.forward(make.asarray(x, "float32"))
    dout = make.host(tuple(y.shape))
    dx = ours.backward(make.asarray(dout, "float32"))
    assert dtype_name(y) == "float32" and dtype_name(dx) == "float32"
    assert all(dtype_name(g) == "float32" for g in ours.grads.values())
    np.testing.assert_allclose(host(y), ref.forward(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(host(dx), ref.backward(dout), rtol=1e-4, atol=1e-5)
    for k in ref.grads:
        np.testing.assert_allclose(host(ours.grads[k]), ref.grads[k], rtol=1e-4, atol=1e-5)


def test_pytorch_default_init_bounds(backend):
    conv = Conv2d(4, 8, 3, device=backend, rng=0)
    convt = ConvTranspose2d(4, 8, 3, device=backend, rng=0)
    for layer, fan_in in ((conv, 4 * 9), (convt, 8 * 9)):  # torch: fan_in from weight.shape[1]
        bound = 1 / math.sqrt(fan_in)
        w, b = host(layer.weight), host(layer.bias)
        assert np.max(np.abs(w)) <= bound and np.max(np.abs(b)) <= bound
        assert np.max(np.abs(w)) > 0.8 * bound
    assert tuple(conv.weight.shape) == (8, 4, 3, 3) and tuple(convt.weight.shape) == (4, 8, 3, 3)
    assert Conv2d(1, 1, 1, bias=False, device=backend).bias is None
    assert not Conv2d.mixes_batch_rows and not ConvTranspose2d.mixes_batch_rows


def test_backward_before_forward_and_input_grad_false(backend, make):
    layer = Conv2d(1, 2, 3, device=backend, dtype="float64", rng=0)
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        layer.backward(make((1, 2, 1, 1)))
    y = layer.forward(make((1, 1, 4, 4)))
    assert layer.backward(make(tuple(y.shape)), input_grad=False) is None
    assert np.any(host(layer.grads["weight"]) != 0)


# ----------------------------------------------------------------------------------------------
# Errors: each names expected and got
# ----------------------------------------------------------------------------------------------
def test_wrong_channel_count(backend, make):
    with pytest.raises(ValueError, match=r"expected 3 input channels .* got 2"):
        Conv2d(3, 4, 3, dtype="float64", device=backend).forward(make((1, 2, 5, 5)))
    with pytest.raises(ValueError, match=r"expected 4 input channels .* got 3"):
        ConvTranspose2d(4, 2, 3, dtype="float64", device=backend).forward(make((1, 3, 5, 5)))


def test_input_smaller_than_kernel(backend, make):
    layer = Conv2d(1, 1, 5, padding=1, dtype="float64", device=backend)
    with pytest.raises(
        ValueError, match=r"padded size \(4, 7\) .* smaller than the kernel \(5, 5\)"
    ):
        layer.forward(make((1, 1, 2, 5)))


@pytest.mark.parametrize("cls", [Conv2d, ConvTranspose2d])
def test_stride_zero_and_negative_padding(cls):
    with pytest.raises(ValueError, match=r"stride: expected positive ints, got 0"):
        cls(1, 1, 3, stride=0)
    with pytest.raises(ValueError, match=r"stride: expected positive ints, got \(1, 0\)"):
        cls(1, 1, 3, stride=(1, 0))
    with pytest.raises(ValueError, match=r"padding: expected non-negative ints, got -1"):
        cls(1, 1, 3, padding=-1)
    with pytest.raises(ValueError, match=r"kernel_size: expected positive ints, got 0"):
        cls(1, 1, 0)
    with pytest.raises(ValueError, match=r"in_channels: expected a positive int, got 0"):
        cls(0, 1, 3)


def test_functional_geometry_errors(backend, make):
    x, w = make((1, 1, 5, 5)), make((1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"stride: expected positive ints, got 0"):
        F.conv2d_forward(x, w, stride=0)
    with pytest.raises(ValueError, match=r"padding: expected non-negative ints, got -2"):
        F.conv2d_forward(x, w, padding=-2)
    with pytest.raises(ValueError, match=r"x: expected a 4-D array .* got shape \(5, 5\)"):
        F.conv2d_forward(make((5, 5)), w)
    with pytest.raises(ValueError, match=r"output_padding: expected less than stride \(2, 2\)"):
        F.conv_transpose2d_forward(x, w, stride=2, output_padding=2)


def test_output_padding_not_below_stride():
    with pytest.raises(ValueError, match=r"expected less than stride \(2, 2\) .*got \(2, 2\)"):
        ConvTranspose2d(1, 1, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"expected less than stride \(1, 1\) .*got \(1, 1\)"):
        ConvTranspose2d(1, 1, 3, output_padding=1)


def test_wrong_dout_shape_and_dtype(backend, make):
    layer = Conv2d(1, 2, 3, dtype="float64", device=backend)
    layer.forward(make((2, 1, 4, 4)))
    with pytest.raises(
        ValueError, match=r"dout: expected shape \(2, 2, 2, 2\), got \(2, 2, 3, 3\)"
    ):
        layer.backward(make((2, 2, 3, 3)))
    with pytest.raises(TypeError, match=r"dout: expected dtype .*float64.*got .*float32"):
        layer.backward(make((2, 2, 2, 2), "float32"))
    with pytest.raises(TypeError, match=r"x: expected dtype .*float64.*got .*float32"):
        layer.forward(make((2, 1, 4, 4), "float32"))
