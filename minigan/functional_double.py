"""The double backward: Jacobian-vector products and their reverse pass, op by op.

A gradient penalty (Gulrajani et al. 2017) is a function of ``g = dD/dx``, the critic's
*input* gradient, and its parameter gradient is a second derivative. minigan computes it as
**reverse over forward** (derivation in ``docs/math.md``, "The gradient of a gradient"):

1. ``g = backward(ones)`` through the critic, then ``v = dP/dg`` (a plain backward of the penalty);
2. since ``<v, g> = D'(x)[v]``, the directional derivative of ``D`` along ``v``, we have
   ``dP/dtheta = d/dtheta sum_n D'(x_n)[v_n]`` with ``v`` held fixed;
3. a forward pass of **tangents** computes ``D'(x)[v]``: each op maps a tangent ``t`` of its
   input to the tangent of its output (``op_jvp``, the Jacobian-vector product);
4. a reverse pass through (primal, tangent) pairs gives the parameter gradients
   (``op_jvp_backward``): each op receives ``dout`` (adjoint of its output) and ``dtangent``
   (adjoint of its output tangent) and returns both adjoints for its input.

For an elementwise ``y = phi(x)`` the tangent is ``phi'(x) t``, so the reverse pass needs
``phi''``: zero for (leaky) ReLU, ``-2 y (1 - y^2)`` for tanh, ``y (1 - y)(1 - 2y)`` for the
sigmoid. ``dout`` may be ``None``, meaning zero: at the critic's output only the tangent is
seeded, and through piecewise-linear activations it stays zero, so those products are skipped.

All functions are pure and use only the array API standard; they read the caches of the
forward functions in :mod:`minigan.functional` (re-exported there).

Maps that are linear in their input (convolutions, reshapes, dropout with its mask fixed by
the forward) have the map itself as their tangent map, minus any bias: their ``jvp`` is the
forward applied to the tangent, and their reverse pass is two plain backward passes, one for
``dout`` at the input and one for ``dtangent`` at the tangent, whose weight gradients add up.
"""

from __future__ import annotations

from .backend import array_namespace
from .functional import check_same_shape
from .functional_conv import (
    _pair,
    conv2d_backward,
    conv2d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)
from .functional_norm import dropout_backward, flatten_backward, flatten_forward, unflatten_forward

__all__ = [
    "linear_jvp",
    "linear_jvp_backward",
    "relu_jvp",
    "relu_jvp_backward",
    "leaky_relu_fast_jvp",
    "leaky_relu_fast_jvp_backward",
    "tanh_jvp",
    "tanh_jvp_backward",
    "sigmoid_jvp",
    "sigmoid_jvp_backward",
    "elementwise_jvp_backward",
    "conv2d_jvp",
    "conv2d_jvp_backward",
    "conv_transpose2d_jvp",
    "conv_transpose2d_jvp_backward",
    "flatten_jvp",
    "unflatten_jvp",
    "reshape_jvp_backward",
    "dropout_jvp",
    "dropout_jvp_backward",
    "grad_norm_penalty_forward",
    "grad_norm_penalty_backward",
]

#: Added under the square root of ``||g||^2`` so that a zero gradient gives no NaN.
NORM_TINY = 1e-12


# ----------------------------------------------------------------------------------------------
# Linear
# ----------------------------------------------------------------------------------------------
def linear_jvp(tangent, cache):
    """Tangent of ``y = x W^T + b`` for a tangent ``t`` of ``x``: ``dy = t @ W^T``.

    The bias is a constant of the map ``x -> y``, so it does not enter the tangent.

    Parameters
    ----------
    tangent : array (N, in_features), dtype of the weight
    cache : from :func:`minigan.functional.linear_forward`

    Shapes
    ------
    tangent (N, in_features) -> (N, out_features)

    Returns
    -------
    array (N, out_features)

    Raises
    ------
    ValueError
        ``tangent``'s shape differs from the forward input's (both shapes named).
    """
    x, weight, _ = cache
    array_namespace(tangent, weight, names=("tangent", "weight"))
    check_same_shape(x, tangent, "forward input", "tangent")
    return tangent @ weight.T  # (N, out)


def linear_jvp_backward(dout, dtangent, cache, tangent, *, need_dx=True, need_dparams=True):
    """Reverse pass through ``(y, dy) = (x W^T + b, t W^T)``.

    With ``dout = dL/dy`` and ``dtangent = dL/d(dy)``::

        dx = dout @ W                   dt = dtangent @ W           (N, in)
        dW = dout^T @ x + dtangent^T @ t                            (out, in)
        db = sum_n dout[n]                                          (out,)

    Parameters
    ----------
    dout : array (N, out_features) or None (zero)
    dtangent : array (N, out_features)
    cache : from :func:`minigan.functional.linear_forward`
    tangent : the input tangent given to :func:`linear_jvp`
    need_dx, need_dparams : bool
        Skip the input adjoints or the parameter gradients (return ``None`` for them).

    Returns
    -------
    dx, dtangent_in, dweight, dbias : arrays or None (``dx`` and ``dbias`` are ``None`` when
    ``dout`` is; ``dbias`` also without bias)

    Raises
    ------
    ValueError
        ``dtangent`` or ``dout`` not of shape (N, out_features).
    """
    x, weight, has_bias = cache
    xp = array_namespace(dtangent, weight, dout, names=("dtangent", "weight", "dout"))
    expected = (x.shape[0], weight.shape[0])
    for name, a in (("dtangent", dtangent), ("dout", dout)):
        if a is not None and tuple(a.shape) != expected:
            raise ValueError(f"{name}: expected shape {expected}, got {tuple(a.shape)}")
    dx = dt = dw = db = None
    if need_dx:
        dt = dtangent @ weight  # (N, in)
        dx = None if dout is None else dout @ weight  # (N, in)
    if need_dparams:
        dw = dtangent.T @ tangent  # (out, in)
        if dout is not None:
            dw += dout.T @ x
            db = xp.sum(dout, axis=0) if has_bias else None  # (out,)
    return dx, dt, dw, db


# ----------------------------------------------------------------------------------------------
# Elementwise activations y = phi(x): tangent phi'(x) t
# ----------------------------------------------------------------------------------------------
def elementwise_jvp_backward(dout, dtangent, tangent, d1, d2):
    """Reverse pass through ``(y, dy) = (phi(x), phi'(x) t)`` given ``d1 = phi'(x)``,
    ``d2 = phi''(x)`` (``None`` when zero, the piecewise-linear case)::

        dx = dout * phi'(x) + dtangent * phi''(x) * t
        dt = dtangent * phi'(x)

    Shapes: every array has the shape of ``x``.

    Returns
    -------
    dx (or None when both terms are zero), dt

    Raises
    ------
    ValueError
        ``dtangent`` or ``tangent`` of another shape than ``phi'(x)``.
    """
    array_namespace(dtangent, tangent, d1, names=("dtangent", "tangent", "phi'"))
    check_same_shape(d1, dtangent, "forward output", "dtangent")
    check_same_shape(d1, tangent, "forward output", "tangent")
    dx = None if dout is None else dout * d1
    if d2 is not None:
        curv = dtangent * d2 * tangent  # second-order term, zero for piecewise-linear phi
        dx = curv if dx is None else dx + curv
    return dx, dtangent * d1


def relu_jvp(tangent, cache):
    """``dy = [x > 0] * t`` from :func:`~minigan.functional.relu_forward`'s mask.

    Shapes: tangent (shape of x) -> (same). Raises ``ValueError`` on a shape mismatch.
    """
    xp = array_namespace(tangent, cache, names=("tangent", "mask"))
    check_same_shape(cache, tangent, "forward output", "tangent")
    return xp.where(cache, tangent, xp.zeros_like(tangent))


def relu_jvp_backward(dout, dtangent, cache, tangent):
    """Reverse pass of :func:`relu_jvp` (``phi'' = 0`` away from the kink).

    Returns ``(dx, dt)`` as :func:`elementwise_jvp_backward`. Raises ``ValueError`` on a
    shape mismatch.
    """
    xp = array_namespace(dtangent, cache, names=("dtangent", "mask"))
    d1 = xp.astype(cache, dtangent.dtype)
    return elementwise_jvp_backward(dout, dtangent, tangent, d1, None)


def leaky_relu_fast_jvp(tangent, cache):
    """``dy = s * t`` with the slope ``s`` cached by
    :func:`~minigan.functional.leaky_relu_fast_forward`.

    Shapes: tangent (shape of x) -> (same). Raises ``ValueError`` on a shape mismatch.
    """
    array_namespace(tangent, cache, names=("tangent", "slope"))
    check_same_shape(cache, tangent, "forward output", "tangent")
    return tangent * cache


def leaky_relu_fast_jvp_backward(dout, dtangent, cache, tangent):
    """Reverse pass of :func:`leaky_relu_fast_jvp` (``phi'' = 0`` away from the kink).

    Returns ``(dx, dt)`` as :func:`elementwise_jvp_backward`. Raises ``ValueError`` on a
    shape mismatch.
    """
    return elementwise_jvp_backward(dout, dtangent, tangent, cache, None)


def tanh_jvp(tangent, cache):
    """``dy = (1 - y^2) t`` with ``y = tanh(x)`` cached by :func:`~minigan.functional.tanh_forward`.

    Shapes: tangent (shape of x) -> (same). Raises ``ValueError`` on a shape mismatch.
    """
    y = cache
    array_namespace(tangent, y, names=("tangent", "y"))
    check_same_shape(y, tangent, "forward output", "tangent")
    return tangent * (1 - y * y)


def tanh_jvp_backward(dout, dtangent, cache, tangent):
    """Reverse pass of :func:`tanh_jvp`: ``phi' = 1 - y^2``, ``phi'' = -2 y (1 - y^2)``.

    Returns ``(dx, dt)`` as :func:`elementwise_jvp_backward`. Raises ``ValueError`` on a
    shape mismatch.
    """
    y = cache
    d1 = 1 - y * y
    return elementwise_jvp_backward(dout, dtangent, tangent, d1, -2 * y * d1)


def sigmoid_jvp(tangent, cache):
    """``dy = y (1 - y) t`` with ``y = sigmoid(x)`` cached by
    :func:`~minigan.functional.sigmoid_forward`.

    Shapes: tangent (shape of x) -> (same). Raises ``ValueError`` on a shape mismatch.
    """
    y = cache
    array_namespace(tangent, y, names=("tangent", "y"))
    check_same_shape(y, tangent, "forward output", "tangent")
    return tangent * (y * (1 - y))


def sigmoid_jvp_backward(dout, dtangent, cache, tangent):
    """Reverse pass of :func:`sigmoid_jvp`: ``phi' = y (1 - y)``, ``phi'' = y (1 - y)(1 - 2y)``.

    Returns ``(dx, dt)`` as :func:`elementwise_jvp_backward`. Raises ``ValueError`` on a
    shape mismatch.
    """
    y = cache
    d1 = y * (1 - y)
    return elementwise_jvp_backward(dout, dtangent, tangent, d1, d1 * (1 - 2 * y))


# ----------------------------------------------------------------------------------------------
# Convolutions: linear in x, so the tangent map is the convolution without its bias
# ----------------------------------------------------------------------------------------------
def _check_tangent_shape(x_shape, tangent):
    if tuple(tangent.shape) != tuple(x_shape):
        raise ValueError(
            f"tangent shape {tuple(tangent.shape)} does not match forward input shape "
            f"{tuple(x_shape)}"
        )


def conv2d_jvp(tangent, cache):
    """Tangent of ``y = W * x + b`` for a tangent ``t`` of ``x``: ``dy = W * t`` (no bias).

    Parameters
    ----------
    tangent : array (N, C_in, H, W), dtype of the weight
    cache : from :func:`minigan.functional.conv2d_forward`

    Shapes
    ------
    tangent (N, C_in, H, W) -> dy (N, C_out, H_out, W_out)

    Returns
    -------
    dy : array (N, C_out, H_out, W_out)
    tangent_cache : the cache of ``conv2d_forward(t, W)`` (the tangent's im2col columns), for
        :func:`conv2d_jvp_backward`

    Raises
    ------
    ValueError
        ``tangent``'s shape differs from the forward input's (both shapes named).
    TypeError
        ``tangent`` of another dtype than the weight, or mixed backends.
    """
    _, weight, x_shape, stride, padding, _ = cache
    _check_tangent_shape(x_shape, tangent)
    return conv2d_forward(tangent, weight, None, stride, padding)


def _linear_map_jvp_backward(backward, dout, dtangent, cache, tangent_cache, need_dx, need_dp):
    """``(dx, dt, dW, db)`` of a map linear in its input: ``dx, dW_x, db = backward(dout)``
    at the input, ``dt, dW_t = backward(dtangent)`` at the tangent, ``dW = dW_x + dW_t``."""
    dt, dw, _ = backward(dtangent, tangent_cache, need_dx=need_dx, need_dparams=need_dp)
    dx = db = None
    if dout is not None:
        dx, dw_x, db = backward(dout, cache, need_dx=need_dx, need_dparams=need_dp)
        if need_dp:
            dw = dw + dw_x
    return dx, dt, dw, db


def conv2d_jvp_backward(dout, dtangent, cache, tangent_cache, *, need_dx=True, need_dparams=True):
    """Reverse pass through ``(y, dy) = (W * x + b, W * t)``.

    With ``dout = dL/dy``, ``dtangent = dL/d(dy)`` and ``conv2d_backward``'s input and weight
    gradients ``dx(.)``, ``wgrad(., .)``::

        dx = dx(dout)                   dt = dx(dtangent)             (N, C_in, H, W)
        dW = wgrad(dout, x) + wgrad(dtangent, t)                      (C_out, C_in, kH, kW)
        db = sum over n, p, q of dout                                 (C_out,)

    Parameters
    ----------
    dout : array (N, C_out, H_out, W_out) or None (zero)
    dtangent : array (N, C_out, H_out, W_out)
    cache : from :func:`minigan.functional.conv2d_forward`
    tangent_cache : from :func:`conv2d_jvp`
    need_dx, need_dparams : bool
        Skip the input adjoints or the parameter gradients (returned as ``None``).

    Returns
    -------
    dx, dtangent_in, dweight, dbias : arrays or None (``dx`` and ``dbias`` are ``None`` when
    ``dout`` is; ``dbias`` also without bias)

    Raises
    ------
    ValueError, TypeError
        ``dout`` or ``dtangent`` of another shape or dtype than the output (as
        :func:`~minigan.functional.conv2d_backward`).
    """
    return _linear_map_jvp_backward(
        conv2d_backward, dout, dtangent, cache, tangent_cache, need_dx, need_dparams
    )


def conv_transpose2d_jvp(tangent, cache):
    """Tangent of the transposed convolution ``y = W^T * x + b``: ``dy = W^T * t`` (no bias).

    Parameters
    ----------
    tangent : array (N, C_in, H, W)
    cache : from :func:`minigan.functional.conv_transpose2d_forward`

    Shapes
    ------
    tangent (N, C_in, H, W) -> dy (N, C_out, H_out, W_out)

    Returns
    -------
    dy : array; tangent_cache : for :func:`conv_transpose2d_jvp_backward`

    Raises
    ------
    ValueError
        ``tangent``'s shape differs from the forward input's (both shapes named).
    """
    _, weight, x_shape, y_shape, stride, padding, _ = cache
    _check_tangent_shape(x_shape, tangent)
    s, p = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    # the cache keeps the output shape; output_padding is what the shape rule leaves over
    out_pad = tuple(
        y_shape[2 + i] - ((x_shape[2 + i] - 1) * s[i] - 2 * p[i] + weight.shape[2 + i])
        for i in range(2)
    )
    return conv_transpose2d_forward(tangent, weight, None, stride, padding, out_pad)


def conv_transpose2d_jvp_backward(
    dout, dtangent, cache, tangent_cache, *, need_dx=True, need_dparams=True
):
    """Reverse pass through ``(W^T * x + b, W^T * t)``: as :func:`conv2d_jvp_backward` with
    :func:`~minigan.functional.conv_transpose2d_backward` for the two plain backward passes.

    Shapes: dout, dtangent (N, C_out, H_out, W_out) -> dx, dt (N, C_in, H, W);
    dweight (C_in, C_out, kH, kW); dbias (C_out,).

    Returns
    -------
    dx, dtangent_in, dweight, dbias : arrays or None (as :func:`conv2d_jvp_backward`)

    Raises
    ------
    ValueError, TypeError
        ``dout`` or ``dtangent`` of another shape or dtype than the output.
    """
    return _linear_map_jvp_backward(
        conv_transpose2d_backward, dout, dtangent, cache, tangent_cache, need_dx, need_dparams
    )


# ----------------------------------------------------------------------------------------------
# Reshapes and dropout: the tangent goes the way of the activations
# ----------------------------------------------------------------------------------------------
def flatten_jvp(tangent, cache, start_dim: int = 1, end_dim: int = -1):
    """Tangent of a flatten: the tangent flattened the same way.

    Shapes: tangent (input shape, kept in ``cache``) -> (flattened shape).
    Raises ``ValueError`` when ``tangent``'s shape differs from the forward input's.
    """
    _check_tangent_shape(cache, tangent)
    return flatten_forward(tangent, start_dim, end_dim)[0]


def unflatten_jvp(tangent, cache, dim: int, unflattened_size):
    """Tangent of an unflatten: the tangent unflattened the same way.

    Shapes: tangent (input shape, kept in ``cache``) -> (unflattened shape).
    Raises ``ValueError`` when ``tangent``'s shape differs from the forward input's.
    """
    _check_tangent_shape(cache, tangent)
    return unflatten_forward(tangent, dim, unflattened_size)[0]


def reshape_jvp_backward(dout, dtangent, cache):
    """Reverse pass of a flatten or unflatten: both adjoints reshaped back to the input shape.

    Shapes: dout (or None), dtangent (output shape) -> dx (or None), dt (input shape).
    Raises ``ValueError`` when an adjoint has another number of elements than the input.
    """
    dx = None if dout is None else flatten_backward(dout, cache)
    return dx, flatten_backward(dtangent, cache)


def dropout_jvp(tangent, cache):
    """Tangent of ``y = x * mask`` with the forward's mask held fixed: ``dy = t * mask``.

    ``cache`` is :func:`~minigan.functional.dropout_forward`'s mask (None: the identity, in
    evaluation mode). Shapes: tangent (*) -> (same).
    Raises ``ValueError`` when ``tangent``'s shape differs from the mask's.
    """
    if cache is not None:
        _check_tangent_shape(cache.shape, tangent)
    return dropout_backward(tangent, cache)


def dropout_jvp_backward(dout, dtangent, cache):
    """Reverse pass through ``(x * mask, t * mask)``: ``dx = dout * mask``, ``dt = dtangent *
    mask`` (no second-order term: the map is linear).

    Shapes: dout (or None), dtangent (*) -> dx (or None), dt (same).
    Raises ``ValueError`` when an adjoint's shape differs from the mask's.
    """
    dx = None if dout is None else dropout_backward(dout, cache)
    return dx, dropout_backward(dtangent, cache)


# ----------------------------------------------------------------------------------------------
# The penalty on the gradient norms
# ----------------------------------------------------------------------------------------------
def grad_norm_penalty_forward(grad, weight: float = 10.0):
    """``P = weight * mean_n (||g_n||_2 - 1)^2`` over the rows of ``g`` (Gulrajani et al.
    2017, Eq. 3), with ``||g_n|| = sqrt(sum_j g_nj^2 + 1e-12)`` so a zero gradient gives no NaN.

    Parameters
    ----------
    grad : array (N, ...), float: one input gradient per example
    weight : float, the penalty coefficient lambda

    Shapes
    ------
    grad (N, *) -> P (); the norm is taken over all axes but the first.

    Returns
    -------
    penalty : 0-d array
    cache : for :func:`grad_norm_penalty_backward`

    Raises
    ------
    ValueError
        ``grad`` has fewer than 2 axes or no rows.
    """
    xp = array_namespace(grad, names=("grad",))
    if grad.ndim < 2 or grad.shape[0] == 0:
        raise ValueError(f"grad: expected shape (N, ...) with N >= 1, got {tuple(grad.shape)}")
    flat = xp.reshape(grad, (grad.shape[0], -1))  # (N, D)
    norm = xp.sqrt(xp.sum(flat * flat, axis=1) + NORM_TINY)  # (N,)
    gap = norm - 1  # (N,)
    penalty = weight * xp.mean(gap * gap)
    return xp.asarray(penalty), (grad, norm, gap, float(weight))


def grad_norm_penalty_backward(dout, cache):
    """``dP/dg_n = dout * weight * 2/N * (||g_n|| - 1) * g_n / ||g_n||``.

    Shapes: dout () -> dgrad (shape of ``grad``).

    Raises
    ------
    ValueError
        ``dout`` is not a scalar.
    """
    grad, norm, gap, weight = cache
    xp = array_namespace(dout, grad, names=("dout", "grad"))
    if dout.ndim != 0:
        raise ValueError(f"dout: expected a scalar (shape ()), got shape {tuple(dout.shape)}")
    n = grad.shape[0]
    scale = (2 * weight / n) * gap / norm  # (N,)
    scale = xp.reshape(scale, (n,) + (1,) * (grad.ndim - 1))
    return dout * scale * grad
