"""Reference solutions of ``exercises/student_conv.py`` (exercises 6-9). Not for students.

The forward passes and helpers are the skeleton's, unchanged; only the ``TODO`` bodies are
filled in. ``minigan check solutions/student_conv.py`` scores 4/4.
"""

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
        x_pad, x_shape = self._cached()
        weight = self.params["weight"]
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        ho, wo = dout.shape[2], dout.shape[3]
        dx_pad = np.zeros_like(x_pad) if input_grad else None
        dweight = np.zeros_like(weight)
        for i in range(kh):
            for j in range(kw):
                rows = slice(i, i + sh * ho, sh)
                cols = slice(j, j + sw * wo, sw)
                window = x_pad[:, :, rows, cols]  # (N, C_in, Ho, Wo)
                dweight[:, :, i, j] = np.einsum("nohw,nchw->oc", dout, window)
                if input_grad:
                    dx_pad[:, :, rows, cols] += np.einsum("nohw,oc->nchw", dout, weight[:, :, i, j])
        if self.requires_grad:
            self.grads["weight"] += dweight
            if "bias" in self.params:
                self.grads["bias"] += dout.sum(axis=(0, 2, 3))
        if not input_grad:
            return None
        h, w = x_shape[2], x_shape[3]
        return dx_pad[:, :, ph : ph + h, pw : pw + w]


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
        xhat, inv_std, axes, shape = self._cached()
        weight = self.params["weight"]
        if self.requires_grad:
            self.grads["weight"] += (dout * xhat).sum(axis=axes)
            self.grads["bias"] += dout.sum(axis=axes)
        if not input_grad:
            return None
        m = dout.size // dout.shape[1]
        g = dout * weight.reshape(shape)  # dL/dxhat
        sum_g = g.sum(axis=axes).reshape(shape)
        sum_gx = (g * xhat).sum(axis=axes).reshape(shape)
        return inv_std.reshape(shape) / m * (m * g - sum_g - xhat * sum_gx)


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
    d_real_grad = -(d_real < 1).astype(d_real.dtype) / d_real.size
    d_fake_grad = (d_fake > -1).astype(d_fake.dtype) / d_fake.size
    g_fake_grad = np.full_like(d_fake, -1.0 / d_fake.size)
    return d_real_grad, d_fake_grad, g_fake_grad


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
    (h,) = critic_forward(x, W1, b1, W2, b2)[1]
    s = 1 - h * h  # (N, H) tanh'
    u = W2[0] * s  # (N, H)
    g = u @ W1  # (N, D)
    norm = np.sqrt(np.sum(g * g, axis=1, keepdims=True))  # (N, 1)
    dg = 2 * weight / x.shape[0] * (norm - 1) * g / norm  # (N, D) dP/dg
    dW1 = u.T @ dg  # g = u @ W1
    du = dg @ W1.T  # (N, H)
    dW2 = np.sum(du * s, axis=0, keepdims=True)  # (1, H)
    ds = du * W2[0]
    da = -2 * h * ds * s  # s = 1 - h^2, h = tanh(a)
    dW1 = dW1 + da.T @ x
    db1 = np.sum(da, axis=0)
    return dW1, db1, dW2
