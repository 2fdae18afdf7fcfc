"""Batch normalisation, dropout, flatten and unflatten: pure forward/backward pairs.

Re-exported by :mod:`minigan.functional` (``minigan.functional.batch_norm_forward``). Only
array-API operations; random numbers (dropout masks) come from a seeded host
:class:`numpy.random.Generator` and are moved to the device, so NumPy, CuPy and
array-api-strict runs with one seed drop the same units.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .backend import array_namespace, as_generator, backend_of, check_floating

__all__ = [
    "BatchNormCache",
    "batch_norm_forward",
    "batch_norm_backward",
    "batch_norm_running_stats",
    "dropout_mask",
    "dropout_forward",
    "dropout_backward",
    "flatten_forward",
    "flatten_backward",
    "unflatten_forward",
    "unflatten_backward",
]


# ----------------------------------------------------------------------------------------------
# Batch normalisation
# ----------------------------------------------------------------------------------------------
class BatchNormCache(NamedTuple):
    """What :func:`batch_norm_backward` needs, and the batch statistics of a training pass.

    ``xhat`` is the normalised input, ``inv_std = 1/sqrt(var + eps)`` per channel (shaped to
    broadcast against ``x``), ``axes`` the reduced axes, ``training`` whether batch statistics
    were used, ``mean`` and ``var`` the batch mean and the *biased* batch variance per channel
    (``None`` in evaluation mode), ``count`` the values per channel.
    """

    xhat: Any
    inv_std: Any
    weight: Any
    axes: tuple[int, ...]
    training: bool
    mean: Any
    var: Any
    count: int


def _bn_axes(x, num_features: int | None) -> tuple[int, ...]:
    if x.ndim not in (2, 4):
        raise ValueError(
            f"x: expected a 2-D (N, C) or 4-D (N, C, H, W) array, got shape {tuple(x.shape)}"
        )
    if num_features is not None and x.shape[1] != num_features:
        raise ValueError(
            f"x: expected {num_features} features (channels) in dim 1, got {x.shape[1]} "
            f"(x shape {tuple(x.shape)})"
        )
    return (0,) if x.ndim == 2 else (0, 2, 3)


def _per_channel(xp, v, ndim: int):
    """A (C,) array shaped to broadcast against (N, C) or (N, C, H, W)."""
    return v if ndim == 2 else xp.reshape(v, (1, v.shape[0], 1, 1))


def batch_norm_forward(
    x,
    weight=None,
    bias=None,
    running_mean=None,
    running_var=None,
    training: bool = True,
    eps: float = 1e-5,
):
    """Batch normalisation ``y = weight * (x - mean) / sqrt(var + eps) + bias`` per channel
    (``torch.nn.functional.batch_norm``; Ioffe & Szegedy 2015, Algorithm 1).

    Training (or no running statistics): ``mean`` and the *biased* ``var`` over the batch
    (and H, W). Evaluation: ``running_mean`` and ``running_var``. This function changes
    nothing: the running statistics are updated by :func:`batch_norm_running_stats` from the
    cache, so the pair stays pure.

    Parameters
    ----------
    x : array (N, C) or (N, C, H, W), float32 or float64
    weight, bias : arrays (C,) or None (None: scale 1, shift 0)
    running_mean, running_var : arrays (C,) or None
    training : bool
        Use batch statistics (True) or the running ones (False, needs both given).
    eps : float
        Added to the variance (default 1e-5, PyTorch's).

    Shapes
    ------
    x (N, C) or (N, C, H, W) -> y (same); statistics and parameters (C,).

    Returns
    -------
    y : array, shape and dtype of ``x``
    cache : :class:`BatchNormCache`

    Raises
    ------
    ValueError
        ``x`` not 2-D/4-D, a parameter or statistic not of shape (C,), or training with a
        single value per channel (``N*H*W == 1``, as PyTorch refuses).
    TypeError
        Non-float input.
    """
    xp = array_namespace(x, weight, bias, running_mean, running_var)
    check_floating(x, "x")
    axes = _bn_axes(x, None)
    c = x.shape[1]
    stats = (("weight", weight), ("bias", bias), ("running_mean", running_mean))
    for name, v in (*stats, ("running_var", running_var)):
        if v is not None and tuple(v.shape) != (c,):
            raise ValueError(
                f"{name}: expected shape ({c},) for x {tuple(x.shape)}, got {tuple(v.shape)}"
            )
    count = math.prod(x.shape[a] for a in axes)
    use_batch = training or running_mean is None or running_var is None
    if use_batch and count <= 1:
        raise ValueError(
            f"x: expected more than 1 value per channel when training, got input shape "
            f"{tuple(x.shape)} ({count} value per channel)"
        )
    if use_batch:
        mean = xp.mean(x, axis=axes)  # (C,)
        centred = x - _per_channel(xp, mean, x.ndim)
        var = xp.mean(centred * centred, axis=axes)  # (C,) biased: normalises the batch
    else:
        mean, var = None, None
        centred = x - _per_channel(xp, running_mean, x.ndim)
    inv_std = _per_channel(xp, 1 / xp.sqrt((var if use_batch else running_var) + eps), x.ndim)
    xhat = centred * inv_std
    y = xhat
    if weight is not None:
        y = y * _per_channel(xp, weight, x.ndim)
    if bias is not None:
        y = y + _per_channel(xp, bias, x.ndim)
    return y, BatchNormCache(xhat, inv_std, weight, axes, use_batch, mean, var, count)


def batch_norm_backward(dout, cache: BatchNormCache, *, need_dx: bool = True):
    """Gradients of :func:`batch_norm_forward`.

    With ``g = dout * weight`` and ``m`` values per channel, in training mode (the batch
    statistics depend on x; Ioffe & Szegedy 2015, section 3)::

        dx = inv_std / m * (m g - sum(g) - xhat * sum(g * xhat))
        dweight = sum(dout * xhat),   dbias = sum(dout)

    (sums per channel over N, H, W); in evaluation mode ``dx = g * inv_std``.

    Parameters
    ----------
    dout : array of the output's shape
    cache : from :func:`batch_norm_forward`
    need_dx : bool
        Skip ``dx`` (None) when nobody needs it.

    Returns
    -------
    dx, dweight, dbias : arrays (``dweight``/``dbias`` None without weight/bias)

    Raises
    ------
    ValueError
        ``dout`` of another shape than the output (both named).
    TypeError
        ``dout`` of another dtype than the input.
    """
    xhat, inv_std, weight, axes, training, _, _, m = cache
    xp = array_namespace(dout, xhat, names=("dout", "x"))
    if tuple(dout.shape) != tuple(xhat.shape):
        raise ValueError(f"dout: expected shape {tuple(xhat.shape)}, got {tuple(dout.shape)}")
    if dout.dtype != xhat.dtype:
        raise TypeError(f"dout: expected dtype {xhat.dtype} (the input's), got {dout.dtype}")
    dweight = xp.sum(dout * xhat, axis=axes) if weight is not None else None
    dbias = xp.sum(dout, axis=axes)
    dx = None
    if need_dx:
        g = dout * _per_channel(xp, weight, dout.ndim) if weight is not None else dout
        if training:
            sum_g = _per_channel(xp, xp.sum(g, axis=axes), dout.ndim)
            sum_gx = _per_channel(xp, xp.sum(g * xhat, axis=axes), dout.ndim)
            dx = (inv_std / m) * (m * g - sum_g - xhat * sum_gx)
        else:
            dx = g * inv_std
    return dx, dweight, dbias


def batch_norm_running_stats(running_mean, running_var, cache: BatchNormCache, momentum: float):
    """New running statistics after a training pass (``torch.nn.BatchNorm`` convention).

    ``running = (1 - momentum) * running + momentum * batch``, where the batch variance is
    the *unbiased* one, ``var * m / (m - 1)`` (``m`` values per channel); PyTorch's
    ``momentum=0.1`` weighs the new batch by 0.1 (the opposite of Keras' 0.99).

    Parameters
    ----------
    running_mean, running_var : arrays (C,)
    cache : from a training-mode :func:`batch_norm_forward`
    momentum : float in [0, 1]

    Returns
    -------
    (new_mean, new_var) : new arrays (C,); the inputs are not changed.

    Raises
    ------
    ValueError
        The cache is from an evaluation-mode pass (no batch statistics).
    """
    if not cache.training:
        raise ValueError("cache: expected a training-mode batch_norm_forward cache, got eval mode")
    m = cache.count
    new_mean = (1 - momentum) * running_mean + momentum * cache.mean
    new_var = (1 - momentum) * running_var + momentum * (cache.var * (m / (m - 1)))
    return new_mean, new_var


# ----------------------------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------------------------
def _check_p(p) -> float:
    p = float(p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"p: expected a drop probability in [0, 1), got {p}")
    return p


def dropout_mask(like, p: float, rng=None):
    """The scaled keep-mask of inverted dropout: ``1/(1-p)`` with probability ``1-p``, else 0.

    Drawn on the host from ``rng`` (a :class:`numpy.random.Generator`, an int seed, or None
    for minigan's global generator) as ``u >= p`` with ``u ~ U(0, 1)``, then moved to the
    device of ``like`` in its dtype, so every backend drops the same units for one seed.

    Shapes: like (*) -> mask (same shape, dtype and device).

    Raises
    ------
    ValueError
        ``p`` outside [0, 1).
    """
    p = _check_p(p)
    keep = as_generator(rng).random(tuple(like.shape)) >= p
    return backend_of(like).asarray(keep / (1.0 - p), dtype=like.dtype)


def dropout_forward(x, p: float = 0.5, training: bool = True, rng=None, mask=None):
    """Inverted dropout ``y = x * mask`` (``torch.nn.functional.dropout``; Srivastava et al.
    2014, with the 1/(1-p) scale moved to training time so evaluation is the identity).

    Parameters
    ----------
    x : array (*), float
    p : float in [0, 1)
        Probability of dropping a unit.
    training : bool
        False: identity (no mask drawn).
    rng : numpy.random.Generator, int or None
        Host generator for the mask (see :func:`dropout_mask`).
    mask : array or None
        A mask to reuse (for gradient checks); drawn when None.

    Shapes
    ------
    x (*) -> y (same). Cache: the mask (None when it is the identity).

    Raises
    ------
    ValueError
        ``p`` outside [0, 1), or a given ``mask`` of another shape than ``x``.
    TypeError
        Non-float input.
    """
    array_namespace(x, mask, names=("x", "mask"))
    check_floating(x, "x")
    p = _check_p(p)
    if not training or p == 0.0:
        return x, None
    if mask is None:
        mask = dropout_mask(x, p, rng)
    elif tuple(mask.shape) != tuple(x.shape):
        raise ValueError(f"mask: expected shape {tuple(x.shape)}, got {tuple(mask.shape)}")
    return x * mask, mask


def dropout_backward(dout, cache):
    """``dx = dout * mask`` (the identity when the forward was).

    Shapes: dout (*) -> dx (same).

    Raises
    ------
    ValueError
        ``dout`` of another shape than the mask.
    """
    mask = cache
    if mask is None:
        return dout
    array_namespace(dout, mask, names=("dout", "mask"))
    if tuple(dout.shape) != tuple(mask.shape):
        raise ValueError(f"dout: expected shape {tuple(mask.shape)}, got {tuple(dout.shape)}")
    return dout * mask


# ----------------------------------------------------------------------------------------------
# Flatten / Unflatten
# ----------------------------------------------------------------------------------------------
def _dim(dim: int, ndim: int, name: str) -> int:
    if not -ndim <= dim < ndim:
        raise ValueError(f"{name}: expected a dim in [{-ndim}, {ndim}), got {dim}")
    return dim % ndim


def flatten_forward(x, start_dim: int = 1, end_dim: int = -1):
    """Merge dims ``start_dim..end_dim`` into one (``torch.flatten``).

    Shapes: (N, C, H, W) -> (N, C*H*W) with the defaults. Cache: the input shape.

    Raises
    ------
    ValueError
        A dim out of range, or ``start_dim`` after ``end_dim``.
    """
    xp = array_namespace(x, names=("x",))
    s, e = _dim(start_dim, x.ndim, "start_dim"), _dim(end_dim, x.ndim, "end_dim")
    if s > e:
        raise ValueError(f"start_dim: expected <= end_dim {e}, got {s}")
    shape = tuple(x.shape)
    new = shape[:s] + (math.prod(shape[s : e + 1]),) + shape[e + 1 :]
    return xp.reshape(x, new), shape


def flatten_backward(dout, cache):
    """``dx = reshape(dout, input shape)``. Shapes: dout (flat) -> dx (input shape).

    Raises
    ------
    ValueError
        ``dout`` has another number of elements than the input.
    """
    xp = array_namespace(dout, names=("dout",))
    if math.prod(dout.shape) != math.prod(cache):
        raise ValueError(
            f"dout: expected {math.prod(cache)} elements, got shape {tuple(dout.shape)}"
        )
    return xp.reshape(dout, cache)


def unflatten_forward(x, dim: int, unflattened_size):
    """Split dim ``dim`` into ``unflattened_size`` (``torch.nn.Unflatten``).

    Shapes: (N, C*H*W) -> (N, C, H, W) for ``dim=1, unflattened_size=(C, H, W)``.
    Cache: the input shape.

    Raises
    ------
    ValueError
        ``dim`` out of range, or the sizes' product differs from ``x.shape[dim]``.
    """
    xp = array_namespace(x, names=("x",))
    d = _dim(dim, x.ndim, "dim")
    sizes = tuple(int(v) for v in unflattened_size)
    if math.prod(sizes) != x.shape[d]:
        raise ValueError(
            f"unflattened_size: expected sizes whose product is {x.shape[d]} (dim {dim} of x "
            f"{tuple(x.shape)}), got {sizes}"
        )
    shape = tuple(x.shape)
    return xp.reshape(x, shape[:d] + sizes + shape[d + 1 :]), shape


def unflatten_backward(dout, cache):
    """``dx = reshape(dout, input shape)``. Shapes: dout (unflattened) -> dx (input shape).

    Raises
    ------
    ValueError
        ``dout`` has another number of elements than the input.
    """
    return flatten_backward(dout, cache)
