"""Coursework, part 2: conv2d, batch norm, the hinge loss and the gradient penalty by hand.

Fill in every ``TODO`` below (each one currently raises ``NotImplementedError``). The forward
passes are given; do not change them. Use NumPy only (the grader lists calls into minigan's
own math for the teacher).

=====================================  ======================================  ==========
Exercise (grader key)                  What to write                           Lesson
=====================================  ======================================  ==========
6. ``Conv2d.backward``                 ``dx``; add ``dW``, ``db`` into grads   12
   (``conv2d_backward``)               (stride, padding, non-square inputs)
7. ``BatchNorm1d.backward``            ``dx`` in training mode; add            14
   (``batch_norm_backward``)           ``dweight``, ``dbias`` (also 2d)
8. ``hinge_loss_grad``                 dL_D/d(d_real), dL_D/d(d_fake),         16
   (``hinge_loss_grad``)               dL_G/d(d_fake)
9. ``gradient_penalty_grad``           dP/dW1, dP/db1, dP/dW2 of a             16
   (``gradient_penalty_grad``)         two-layer critic's gradient penalty
=====================================  ======================================  ==========

Grade it as your teacher will::

    minigan check exercises/student_conv.py

The layer contract is the one of ``student_layers.py`` (lesson 2): ``backward(dout)`` returns
``dx`` (shape of ``x``) and **adds** the parameter gradients into ``self.grads`` unless the
module is frozen (``self.requires_grad`` False); ``backward(dout, input_grad=False)`` returns
``None`` but still adds the parameter gradients. Never change ``dout``, ``x``, the parameters or
the buffers (running statistics) in ``backward``: updating them is not its job.
"""

# ruff: noqa: F841  (the TODO stubs unpack the cache for you before you use it)
from __future__ import annotations

import numpy as np

from minigan.layers import Module


def _pair(v):
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class Conv2d(Module):
    """``y[n, o] = bias[o] + sum_c weight[o, c] * x_pad[n, c]`` (cross-correlation, NCHW).

    Shapes: x (N, C_in, H, W) -> y (N, C_out, H_out, W_out) with
    ``H_out = (H + 2 pH - kH) // sH + 1``; weight (C_out, C_in, kH, kW); bias (C_out,).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        bias: bool = True,
        *,
        dtype="float32",
        rng=None,
    ):
        super().__init__()
        rng = np.random.default_rng(rng)
        self.kernel_size, self.stride, self.padding = (
            _pair(kernel_size),
            _pair(stride),
            _pair(padding),
        )
        kh, kw = self.kernel_size
        bound = 1 / np.sqrt(in_channels * kh * kw)
        shape = (out_channels, in_channels, kh, kw)
        self.params["weight"] = rng.uniform(-bound, bound, shape).astype(dtype)
        if bias:
            self.params["bias"] = rng.uniform(-bound, bound, (out_channels,)).astype(dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))  # (N, C_in, H+2pH, W+2pW)
        ho = (x_pad.shape[2] - kh) // sh + 1
        wo = (x_pad.shape[3] - kw) // sw + 1
        weight = self.params["weight"]
        y = np.zeros((x.shape[0], weight.shape[0], ho, wo), dtype=x.dtype)
        for i in range(kh):  # one kernel offset at a time: a (N, C_in, Ho, Wo) window
            for j in range(kw):
                window = x_pad[:, :, i : i + sh * ho : sh, j : j + sw * wo : sw]
                y += np.einsum("nchw,oc->nohw", window, weight[:, :, i, j])
        if "bias" in self.params:
            y += self.params["bias"][None, :, None, None]
        self._cache = (x_pad, x.shape)
        return y

    def backward(self, dout, *, input_grad: bool = True):
        """Add ``dW`` into ``self.grads["weight"]`` and ``db`` into ``self.grads["bias"]``;
        return ``dx`` of the *unpadded* input's shape (``None`` when ``input_grad`` is False).

        Shapes: dout (N, C_out, H_out, W_out) -> dx (N, C_in, H, W); dW (C_out, C_in, kH, kW);
        db (C_out,). Each output element ``y[n, o, p, q]`` read the window
        ``x_pad[n, :, p*sH + i, q*sW + j]``; the forward's loop over ``(i, j)`` shows how.
        With stride 2, rows of ``x_pad`` that no window read get a zero gradient.
        """
        x_pad, x_shape = self._cached()
        # TODO (exercise 6): accumulate dW and db (use +=) unless frozen, return dx.
        raise NotImplementedError("exercise 6: Conv2d.backward")


class BatchNorm1d(Module):
    """Batch normalisation in training mode, ``y = weight * (x - mean) / sqrt(var + eps) +
    bias`` per channel, with the batch mean and the *biased* batch variance.

    Shapes: x (N, C) (``BatchNorm1d``) or (N, C, H, W) (``BatchNorm2d``) -> y (same);
    weight, bias, running_mean, running_var (C,). Statistics over N (and H, W).
    """

    mixes_batch_rows = True

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, *, dtype="float32"
    ):
        super().__init__()
        self.eps, self.momentum = float(eps), float(momentum)
        self.params["weight"] = np.ones(num_features, dtype=dtype)
        self.params["bias"] = np.zeros(num_features, dtype=dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.buffers["running_mean"] = np.zeros(num_features, dtype=dtype)
        self.buffers["running_var"] = np.ones(num_features, dtype=dtype)

    _ndim = 2

    def forward(self, x):
        if x.ndim != self._ndim or x.shape[1] != self.params["weight"].shape[0]:
            raise ValueError(
                f"x: expected {self._ndim}-D input with {self.params['weight'].shape[0]} "
                f"channels in dim 1, got shape {x.shape}"
            )
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)  # (C,) -> broadcast against x
        mean = x.mean(axis=axes)  # (C,)
        var = x.var(axis=axes)  # (C,) biased
        inv_std = 1 / np.sqrt(var + self.eps)  # (C,)
        xhat = (x - mean.reshape(shape)) * inv_std.reshape(shape)
        m = x.size // x.shape[1]  # values per channel
        rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
        rm[...] = (1 - self.momentum) * rm + self.momentum * mean
        rv[...] = (1 - self.momentum) * rv + self.momentum * var * m / (m - 1)
        self._cache = (xhat, inv_std, axes, shape)
        return self.params["weight"].reshape(shape) * xhat + self.params["bias"].reshape(shape)

    def backward(self, dout, *, input_grad: bool = True):
        """Training mode: ``mean`` and ``var`` are functions of ``x`` too. Add ``dweight`` and
        ``dbias`` into ``self.grads``; return ``dx`` (``None`` when ``input_grad`` is False).

        Shapes: dout (N, C) or (N, C, H, W) -> dx (same); dweight, dbias (C,). Sums run over
        the axes in ``axes`` (N, or N, H, W): ``m = dout.size // dout.shape[1]`` values per
        channel. ``BatchNorm2d`` inherits this method. Do not touch ``running_mean`` /
        ``running_var``.
        """
        xhat, inv_std, axes, shape = self._cached()
        # TODO (exercise 7): accumulate dweight and dbias unless frozen, return dx.
        raise NotImplementedError("exercise 7: BatchNorm1d.backward")


class BatchNorm2d(BatchNorm1d):
    """:class:`BatchNorm1d` for (N, C, H, W) inputs (statistics over N, H, W); same backward."""

    _ndim = 4


def hinge_d_loss(d_real, d_fake):
    """``L_D = mean relu(1 - d_real) + mean relu(1 + d_fake)`` (means over all elements)."""
    return np.mean(np.maximum(0, 1 - d_real)) + np.mean(np.maximum(0, 1 + d_fake))


def hinge_g_loss(d_fake):
    """``L_G = -mean d_fake``."""
    return -np.mean(d_fake)


def hinge_loss_grad(d_real, d_fake):
    """The gradients of the hinge losses into D's outputs (exercise 8).

    ``L_D = hinge_d_loss(d_real, d_fake)`` and ``L_G = hinge_g_loss(d_fake)``: the means run
    over *every element* (D's outputs may be (N, 1), (N,) or a patch map (N, 1, h, w)). The
    grader keeps every input away from the kinks at +-1.

    Parameters
    ----------
    d_real, d_fake : numpy.ndarray, any shape (not necessarily the same)

    Returns
    -------
    (dL_D/d(d_real), dL_D/d(d_fake), dL_G/d(d_fake)) : tuple of three arrays
        Shapes of ``d_real``, ``d_fake``, ``d_fake``. Leave the inputs unchanged.
    """
    # TODO (exercise 8): three arrays, each of its input's shape.
    raise NotImplementedError("exercise 8: hinge_loss_grad")


def critic_forward(x, W1, b1, W2, b2):
    """``f(x) = tanh(x @ W1.T + b1) @ W2.T + b2`` and the cache ``(h,)``.

    Shapes: x (N, D), W1 (H, D), b1 (H,), W2 (1, H), b2 (1,) -> f (N, 1); h (N, H).
    """
    h = np.tanh(x @ W1.T + b1)  # (N, H)
    return h @ W2.T + b2, (h,)


def critic_input_grad(x, W1, b1, W2, b2):
    """``g[n] = d f(x_n) / d x_n = W1.T @ (W2[0] * (1 - h_n^2))``, shape (N, D)."""
    (h,) = critic_forward(x, W1, b1, W2, b2)[1]
    u = W2[0] * (1 - h * h)  # (N, H)
    return u @ W1  # (N, D)


def gradient_penalty_forward(x, W1, b1, W2, b2, weight=10.0):
    """``P = weight * mean_n (||g[n]||_2 - 1)^2`` with ``g = critic_input_grad(...)``."""
    g = critic_input_grad(x, W1, b1, W2, b2)
    norm = np.sqrt(np.sum(g * g, axis=1))  # (N,)
    return weight * np.mean((norm - 1) ** 2)


def gradient_penalty_grad(x, W1, b1, W2, b2, weight=10.0):
    """The gradient of the gradient penalty with respect to the critic's weights (exercise 9).

    ``P = gradient_penalty_forward(x, W1, b1, W2, b2, weight)`` (WGAN-GP, Gulrajani et al.
    2017, Eq. 3): ``g[n] = d f(x_n)/d x_n`` is the critic's input gradient, and
    ``P = weight * mean_n (||g[n]|| - 1)^2``. ``x`` is held fixed (the interpolates).
    ``dP/db2`` is zero (``g`` does not depend on ``b2``), so it is not asked for.

    Parameters
    ----------
    x : numpy.ndarray (N, D)
    W1 (H, D), b1 (H,), W2 (1, H), b2 (1,) : numpy.ndarray
    weight : float, lambda

    Returns
    -------
    (dP/dW1, dP/db1, dP/dW2) : tuple of arrays of shapes (H, D), (H,), (1, H)
        Leave every argument unchanged.

    Hint: with ``s = 1 - h^2`` and ``u = W2[0] * s`` (both (N, H)), ``g = u @ W1``. ``W1``
    reaches ``P`` twice: through ``g = u @ W1`` directly and through ``h = tanh(x @ W1.T + b1)``.
    Go back from ``dP/dg = 2 weight / N (||g|| - 1) g / ||g||`` one step at a time.
    """
    # TODO (exercise 9): return (dW1, db1, dW2).
    raise NotImplementedError("exercise 9: gradient_penalty_grad")
