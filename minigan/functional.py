"""The math of minigan: pure forward/backward pairs, written once and used everywhere.

Each op is a pair::

    out, cache = op_forward(x, ...)        # compute, and keep what backward needs
    dx, ...    = op_backward(dout, cache)  # chain rule: dL/dx from dL/dout

``dout`` is the upstream gradient dL/dout and has the shape of ``out``. The functions hold no
state, so layers (:mod:`minigan.layers`), losses, lessons and tests all call the same lines.
They use only the Python array API standard (``xp = array_namespace(...)``), so NumPy, CuPy
and array-api-strict arrays run unchanged; dtypes are preserved (float32 in, float32 out).
"""

from __future__ import annotations

from .backend import array_namespace, check_floating, device_of

__all__ = [
    "linear_forward",
    "linear_backward",
    "relu_forward",
    "relu_backward",
    "leaky_relu_forward",
    "leaky_relu_backward",
    "leaky_relu_fast_forward",
    "leaky_relu_fast_backward",
    "tanh_forward",
    "tanh_backward",
    "sigmoid",
    "sigmoid_forward",
    "sigmoid_backward",
    "bce_forward",
    "bce_backward",
    "bce_with_logits_forward",
    "bce_with_logits_backward",
    "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward",
    "check_same_shape",
    "REDUCTIONS",
    "ufuncs_with_out",
    "fast_paths",
]

REDUCTIONS = ("mean", "sum", "none")


def check_same_shape(a, b, name_a: str, name_b: str) -> None:
    """Raise ``ValueError`` naming both shapes unless ``a.shape == b.shape``.

    Raises
    ------
    ValueError
        ``a.shape != b.shape``; the message names ``name_a``, ``name_b`` and both shapes.
    """
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{name_b} shape {tuple(b.shape)} does not match {name_a} shape {tuple(a.shape)}"
        )


# ----------------------------------------------------------------------------------------------
# Linear
# ----------------------------------------------------------------------------------------------
def linear_forward(x, weight, bias=None):
    """Affine map ``y = x @ weight.T + bias`` (``torch.nn.functional.linear``).

    Parameters
    ----------
    x : array, float32 or float64
    weight : array, same dtype
    bias : array or None

    Shapes
    ------
    x (N, in_features), weight (out_features, in_features), bias (out_features,)
    -> y (N, out_features)

    Returns
    -------
    y : array (N, out_features)
    cache : tuple ``(x, weight, bias is not None)`` for :func:`linear_backward`

    Raises
    ------
    ValueError
        ``x`` is not 2-D or its width is not ``in_features`` (both shapes in the message).
    TypeError
        Non-float input, or arrays of different backends/devices.
    """
    xp = array_namespace(x, weight, bias, names=("x", "weight", "bias"))
    check_floating(x, "x")
    if x.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"x: expected shape (N, {weight.shape[1]}) for weight of shape "
            f"{tuple(weight.shape)}, got {tuple(x.shape)}"
        )
    if x.dtype != weight.dtype:
        raise TypeError(f"x: expected dtype {weight.dtype} (the weight's), got {x.dtype}")
    y = x @ weight.T  # (N, out)
    if bias is not None:
        y += bias  # broadcast (out,) over N, in place: no temporary
    del xp
    return y, (x, weight, bias is not None)


def linear_backward(dout, cache, *, need_dx: bool = True, need_dparams: bool = True):
    """Gradients of :func:`linear_forward`.

    With ``y = x W^T + b``::

        dx = dout @ W          (N, in)   = (N, out) @ (out, in)
        dW = dout^T @ x        (out, in) = (out, N) @ (N, in)
        db = sum_n dout[n]     (out,)

    Parameters
    ----------
    dout : array (N, out_features)
    cache : from :func:`linear_forward`
    need_dx : bool
        Skip ``dx`` (return ``None``) when nobody needs it, e.g. for a network's first layer.
    need_dparams : bool
        Skip ``dW`` and ``db`` (return ``None``) when the weights are frozen, e.g. the
        discriminator during the generator's update.

    Returns
    -------
    dx, dweight, dbias : arrays or None (``dbias`` is ``None`` without bias)

    Raises
    ------
    ValueError
        ``dout`` is not of shape (N, out_features) (expected and got shapes named).
    TypeError
        ``dout``'s dtype differs from the weight's (no silent float32 -> float64 upcast).
    """
    x, weight, has_bias = cache
    xp = array_namespace(dout, x, names=("dout", "x"))
    expected = (x.shape[0], weight.shape[0])
    if tuple(dout.shape) != expected:
        raise ValueError(f"dout: expected shape {expected}, got {tuple(dout.shape)}")
    if dout.dtype != weight.dtype:  # a float64 dout would silently make dx float64
        raise TypeError(f"dout: expected dtype {weight.dtype} (the weight's), got {dout.dtype}")
    dx = dout @ weight if need_dx else None  # (N, in)
    dw = db = None
    if need_dparams:
        dw = dout.T @ x  # (out, in)
        if has_bias:
            db = xp.sum(dout, axis=0)  # (out,)
    return dx, dw, db


# ----------------------------------------------------------------------------------------------
# Activations
# ----------------------------------------------------------------------------------------------
def relu_forward(x):
    """``y = max(x, 0)``. Shapes: x (any) -> y (same). Cache: the mask ``x > 0``.

    Dtype: float32 or float64 in, the same out (nothing is upcast).

    Raises
    ------
    TypeError
        ``x`` is not a float array.
    """
    xp = array_namespace(x, names=("x",))
    check_floating(x, "x")
    mask = x > 0
    return xp.where(mask, x, xp.zeros_like(x)), mask


def relu_backward(dout, cache):
    """``dx = dout * [x > 0]`` (the subgradient at 0 is taken as 0, like PyTorch).

    Shapes: dout (shape of the forward output) -> dx (same shape, dtype of ``dout``).

    Raises
    ------
    ValueError
        ``dout``'s shape differs from the forward output's (both shapes are named), or
        ``dout`` lives on another device than the cache.
    TypeError
        ``dout`` belongs to another array library than the cache.
    """
    mask = cache
    xp = array_namespace(dout, mask, names=("dout", "mask"))
    check_same_shape(mask, dout, "forward output", "dout")
    return xp.where(mask, dout, xp.zeros_like(dout))


def leaky_relu_forward(x, negative_slope: float = 0.01):
    """``y = x if x > 0 else negative_slope * x`` (``torch.nn.functional.leaky_relu``).

    Shapes: x (any) -> y (same). Cache: ``(mask, negative_slope)``.

    Dtype: float32 or float64 in, the same out (nothing is upcast).

    Raises
    ------
    TypeError
        ``x`` is not a float array.
    """
    xp = array_namespace(x, names=("x",))
    check_floating(x, "x")
    mask = x > 0
    return xp.where(mask, x, x * negative_slope), (mask, negative_slope)


def leaky_relu_backward(dout, cache):
    """``dx = dout if x > 0 else negative_slope * dout``.

    Shapes: dout (shape of the forward output) -> dx (same shape, dtype of ``dout``).

    Raises
    ------
    ValueError
        ``dout``'s shape differs from the forward output's (both shapes are named), or
        ``dout`` lives on another device than the cache.
    TypeError
        ``dout`` belongs to another array library than the cache.
    """
    mask, negative_slope = cache
    xp = array_namespace(dout, mask, names=("dout", "mask"))
    check_same_shape(mask, dout, "forward output", "dout")
    return xp.where(mask, dout, dout * negative_slope)


def leaky_relu_fast_forward(x, negative_slope: float = 0.01):
    """Fast form of :func:`leaky_relu_forward`: ``y = s * x`` with the local slope
    ``s = dy/dx = 1 if x > 0 else negative_slope`` kept as the cache.

    A piecewise-linear activation is its own slope times its input, so the backward pass is a
    single multiply, ``dx = s * dout`` (:func:`leaky_relu_fast_backward`). The numbers are
    those of :func:`leaky_relu_forward` bit for bit: ``s`` holds exactly 1 or
    ``negative_slope``, and ``x * 1 == x``. Used by :class:`minigan.layers.LeakyReLU`.

    Why: ``xp.where`` with a data-dependent mask is branchy on a CPU (NumPy float32, 256 x 1024:
    about 1 ms, 4 ns per element, against 0.03 ms for a multiply or a comparison here), and
    the teaching form runs it once forward and once backward. The price is a float cache
    (4 bytes per element instead of the bool mask's 1). Plain array-API code: all backends.

    Shapes: x (any) -> y (same). Cache: ``s`` (same shape and dtype as x).

    Raises
    ------
    TypeError
        ``x`` is not a float array.
    """
    xp = array_namespace(x, names=("x",))
    check_floating(x, "x")
    up = xp.astype(x > 0, x.dtype)  # 1 where x > 0, else 0 (NaN: 0, as in the teaching form)
    s = 1 - up  # 0 or 1
    s *= negative_slope  # 0 or negative_slope, exactly
    s += up  # 1 or negative_slope, exactly
    return x * s, s


def leaky_relu_fast_backward(dout, cache):
    """``dx = s * dout`` with the local slope ``s`` from :func:`leaky_relu_fast_forward`.

    Shapes: dout (shape of the forward output) -> dx (same shape, dtype of ``dout``).

    Raises
    ------
    ValueError
        ``dout``'s shape differs from the forward output's (both shapes are named), or
        ``dout`` lives on another device than the cache.
    TypeError
        ``dout`` belongs to another array library than the cache.
    """
    s = cache
    array_namespace(dout, s, names=("dout", "slope"))
    check_same_shape(s, dout, "forward output", "dout")
    return dout * s


def tanh_forward(x):
    """``y = tanh(x)``. Shapes: x (any) -> y (same). Cache: ``y`` itself.

    Dtype: float32 or float64 in, the same out (nothing is upcast).

    Raises
    ------
    TypeError
        ``x`` is not a float array.
    """
    xp = array_namespace(x, names=("x",))
    check_floating(x, "x")
    y = xp.tanh(x)
    return y, y


def tanh_backward(dout, cache):
    """``dx = dout * (1 - y**2)`` with ``y = tanh(x)`` from the cache.

    Shapes: dout (shape of the forward output) -> dx (same shape, dtype of ``dout``).

    Raises
    ------
    ValueError
        ``dout``'s shape differs from the forward output's (both shapes are named), or
        ``dout`` lives on another device than the cache.
    TypeError
        ``dout`` belongs to another array library than the cache.
    """
    y = cache
    array_namespace(dout, y, names=("dout", "y"))
    check_same_shape(y, dout, "forward output", "dout")
    return dout * (1 - y * y)


def sigmoid(x):
    """Numerically stable logistic function ``1 / (1 + exp(-x))``.

    Uses ``e = exp(-|x|)`` so that nothing overflows:
    ``sigmoid(x) = 1 / (1 + e)`` for ``x >= 0`` and ``e / (1 + e)`` for ``x < 0``.
    Finite and exact to rounding at ``x = +-1e3`` (gives exactly 1 and ~0).
    Returns an array of the shape, dtype and device of ``x``.

    Raises
    ------
    TypeError
        ``x`` is not an array.
    """
    xp = array_namespace(x, names=("x",))
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_forward(x):
    """``y = sigmoid(x)`` (stable form, see :func:`sigmoid`). Cache: ``y``.

    Shapes: x (any) -> y (same).

    Dtype: float32 or float64 in, the same out (nothing is upcast).

    Raises
    ------
    TypeError
        ``x`` is not a float array.
    """
    check_floating(x, "x")
    y = sigmoid(x)
    return y, y


def sigmoid_backward(dout, cache):
    """``dx = dout * y * (1 - y)`` with ``y = sigmoid(x)`` from the cache.

    Shapes: dout (shape of the forward output) -> dx (same shape, dtype of ``dout``).

    Raises
    ------
    ValueError
        ``dout``'s shape differs from the forward output's (both shapes are named), or
        ``dout`` lives on another device than the cache.
    TypeError
        ``dout`` belongs to another array library than the cache.
    """
    y = cache
    array_namespace(dout, y, names=("dout", "y"))
    check_same_shape(y, dout, "forward output", "dout")
    return dout * y * (1 - y)


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------
def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")


def _reduce(xp, loss, reduction: str):
    # xp.asarray: NumPy reductions return scalars; keep a 0-d array on every backend.
    if reduction == "mean":
        return xp.asarray(xp.mean(loss))
    if reduction == "sum":
        return xp.asarray(xp.sum(loss))
    return loss


def _upstream(xp, dout, like, reduction: str):
    """Spread the upstream gradient of a reduced loss over the elements of ``like``."""
    if reduction == "none":
        check_same_shape(like, dout, "loss (reduction='none')", "dout")
        return dout
    if dout.ndim != 0:
        raise ValueError(f"dout: expected a scalar (shape ()), got shape {tuple(dout.shape)}")
    if reduction == "mean":
        return dout / (like.size if like.size else 1)
    return dout


def _check_loss_inputs(input, target):
    xp = array_namespace(input, target, names=("input", "target"))
    check_floating(input, "input")
    check_same_shape(input, target, "input", "target")
    if input.dtype != target.dtype:
        raise TypeError(f"target: expected dtype {input.dtype} (the input's), got {target.dtype}")
    return xp


def bce_forward(input, target, reduction: str = "mean"):
    """Binary cross-entropy on probabilities (``torch.nn.functional.binary_cross_entropy``).

    ``l = -(y * log(p) + (1 - y) * log(1 - p))`` with each log clamped at -100 like PyTorch,
    so ``p`` exactly 0 or 1 gives a finite loss (100) instead of inf.

    Parameters
    ----------
    input : array, probabilities in [0, 1]
    target : array, same shape and dtype, in [0, 1]
    reduction : {"mean", "sum", "none"}

    Shapes
    ------
    input (*), target (*) -> loss () or (*) for "none".

    Raises
    ------
    ValueError
        Shape mismatch, or an unknown reduction.
    """
    _check_reduction(reduction)
    xp = _check_loss_inputs(input, target)
    log_p = xp.clip(xp.log(input), -100, None)
    log_1mp = xp.clip(xp.log(1 - input), -100, None)
    loss = -(target * log_p + (1 - target) * log_1mp)
    return _reduce(xp, loss, reduction), (input, target, reduction)


def bce_backward(dout, cache):
    """Gradient of :func:`bce_forward` w.r.t. ``input``.

    ``dl/dp = (p - y) / (p (1 - p))``, with the denominator clamped at 1e-12 as in PyTorch's
    ``binary_cross_entropy_backward`` so that p = 0 or 1 stays finite.

    Shapes: dout () for reduction "mean"/"sum", the loss's shape for "none" -> dinput (shape
    and dtype of ``input``).

    Raises
    ------
    ValueError
        ``dout`` is not a scalar ("mean"/"sum") or not of the loss's shape ("none").
    """
    p, y, reduction = cache
    xp = array_namespace(dout, p, names=("dout", "input"))
    g = _upstream(xp, dout, p, reduction)
    return g * (p - y) / xp.clip(p * (1 - p), 1e-12, None)


def bce_with_logits_forward(input, target, reduction: str = "mean"):
    """Binary cross-entropy on logits (``torch.nn.functional.binary_cross_entropy_with_logits``).

    Stable form of ``-(y log sigmoid(z) + (1 - y) log(1 - sigmoid(z)))``::

        l = max(z, 0) - z * y + log1p(exp(-|z|))

    which never overflows (finite at z = +-1e3).

    Shapes: input (*), target (*) -> loss () or (*) for ``reduction="none"``.

    Raises
    ------
    ValueError
        Shape mismatch, or an unknown reduction.
    """
    _check_reduction(reduction)
    xp = _check_loss_inputs(input, target)
    z, y = input, target
    loss = xp.clip(z, 0, None) - z * y + xp.log1p(xp.exp(-xp.abs(z)))
    return _reduce(xp, loss, reduction), (z, y, reduction)


def bce_with_logits_backward(dout, cache):
    """Gradient of :func:`bce_with_logits_forward`: ``dl/dz = sigmoid(z) - y``.

    Shapes: dout () for reduction "mean"/"sum", the loss's shape for "none" -> dinput (shape
    and dtype of ``input``).

    Raises
    ------
    ValueError
        ``dout`` is not a scalar ("mean"/"sum") or not of the loss's shape ("none").
    """
    z, y, reduction = cache
    xp = array_namespace(dout, z, names=("dout", "input"))
    g = _upstream(xp, dout, z, reduction)
    return g * (sigmoid(z) - y)


def softmax_cross_entropy_forward(logits, labels, reduction: str = "mean"):
    """Softmax cross-entropy on class logits (``torch.nn.functional.cross_entropy``).

    ``l_n = logsumexp(z_n) - z_n[y_n]``, computed with the max subtracted for stability.

    Parameters
    ----------
    logits : array (N, C), float
    labels : integer array (N,) with values in [0, C)
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    loss : () or (N,) for "none"
    cache : for :func:`softmax_cross_entropy_backward`

    Raises
    ------
    ValueError
        ``logits`` not 2-D, labels not of shape (N,), or unknown reduction.
    TypeError
        Non-float logits or non-integer labels. Labels are not range-checked (that would wait
        for the device): a label outside [0, C) matches no class.
    """
    _check_reduction(reduction)
    xp = array_namespace(logits, labels, names=("logits", "labels"))
    check_floating(logits, "logits")
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(f"labels: expected an integer array of class indices, got {labels.dtype}")
    if logits.ndim != 2 or tuple(labels.shape) != (logits.shape[0],):
        raise ValueError(
            f"expected logits (N, C) and labels (N,), got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    shifted = logits - xp.max(logits, axis=1, keepdims=True)  # (N, C), max 0 per row
    log_z = xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))  # (N, 1)
    log_probs = shifted - log_z  # (N, C)
    onehot = xp.astype(
        labels[:, None] == xp.arange(logits.shape[1], device=device_of(labels))[None, :],
        logits.dtype,
    )  # (N, C)
    loss = -xp.sum(log_probs * onehot, axis=1)  # (N,)
    return _reduce(xp, loss, reduction), (xp.exp(log_probs), onehot, reduction)


def softmax_cross_entropy_backward(dout, cache):
    """Gradient of :func:`softmax_cross_entropy_forward`: ``dl/dz = softmax(z) - onehot(y)``.

    Shapes: dout () for reduction "mean"/"sum", (N,) for "none" -> dlogits (N, C), dtype of
    the logits.

    Raises
    ------
    ValueError
        ``dout`` is not a scalar ("mean"/"sum") or not of shape (N,) ("none").
    """
    probs, onehot, reduction = cache
    xp = array_namespace(dout, probs, names=("dout", "logits"))
    if reduction == "none":
        if tuple(dout.shape) != (probs.shape[0],):
            raise ValueError(f"dout: expected shape ({probs.shape[0]},), got {tuple(dout.shape)}")
        return dout[:, None] * (probs - onehot)
    g = _upstream(xp, dout, probs[:, 0], reduction)
    return g * (probs - onehot)


# ----------------------------------------------------------------------------------------------
# Fast paths (NumPy and CuPy): the same arithmetic, written into existing buffers
# ----------------------------------------------------------------------------------------------
FAST_PATHS = True  # switch off (fast_paths(False)) to run only the plain array-API lines


def ufuncs_with_out(x):
    """The NumPy or CuPy module that ``x`` belongs to, or ``None``.

    The array API standard has no ``out=`` argument, so every op above allocates its result.
    NumPy and CuPy ufuncs can also write into a buffer that already exists
    (``np.multiply(a, b, out=buf)``), which saves a temporary and a pass over memory. This is
    the **only** place where minigan asks which library it runs on: the fast paths (Adam's
    update, ...) call it and take the plain array-API lines when it returns ``None``
    (array-api-strict, or fast paths switched off). ``tests/test_fastpath.py`` checks that both
    give the same numbers.
    """
    if not FAST_PATHS:
        return None
    import array_api_compat

    if array_api_compat.is_numpy_array(x):
        import numpy

        return numpy
    if array_api_compat.is_cupy_array(x):
        import cupy

        return cupy
    return None


class fast_paths:  # lower case: used like a function, ``with fast_paths(False): ...``
    """Context manager that switches the fast paths on or off (for tests and benchmarks).

    ``with fast_paths(False):`` runs everything through the plain array-API (teaching) lines.
    """

    def __init__(self, enabled: bool):
        self.enabled = bool(enabled)

    def __enter__(self):
        global FAST_PATHS
        self._saved, FAST_PATHS = FAST_PATHS, self.enabled
        return self

    def __exit__(self, *exc):
        global FAST_PATHS
        FAST_PATHS = self._saved
        return False


# ----------------------------------------------------------------------------------------------
# Convolutions, batch norm, dropout, flatten: their own modules, re-exported here
# ----------------------------------------------------------------------------------------------
from . import functional_conv as _conv  # noqa: E402
from . import functional_double as _double  # noqa: E402
from . import functional_norm as _norm  # noqa: E402
from .functional_conv import *  # noqa: E402, F403
from .functional_double import *  # noqa: E402, F403  (the double backward: JVPs and their reverse)
from .functional_norm import *  # noqa: E402, F403

__all__ += _conv.__all__ + _norm.__all__ + _double.__all__
