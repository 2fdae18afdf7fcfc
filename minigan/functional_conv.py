"""Convolutions by hand: one im2col / col2im pair for ``conv2d`` and ``conv_transpose2d``.

Layout NCHW, as PyTorch. A convolution is one matrix product once the input patches are laid
out as columns (*im2col*, Chellapilla et al. 2006)::

    cols (C*kH*kW, H_out*W_out*N):  cols[(c, i, j), (p, q, n)] = x_pad[n, c, p*sH + i, q*sW + j]
    y = W (C_out, C*kH*kW) @ cols                                  one 2-D GEMM

and its input gradient scatters columns back onto the image (*col2im*, the adjoint of
im2col: overlapping patches add up). The transposed convolution is the same pair the other
way round: its forward is the convolution's input gradient (GEMM, then col2im) and its
backward is the convolution's forward (im2col, then GEMM). Dumoulin & Visin (2016), "A guide to
convolution arithmetic for deep learning", give the shape rules used here.

Only array-API operations are used (strided slices over the kH*kW kernel offsets, reshape,
``permute_dims``, ``matmul``, zeros + slice assignment for padding), so NumPy, CuPy and
array-api-strict run the same lines. The functions are re-exported by
:mod:`minigan.functional` (``minigan.functional.conv2d_forward``).
"""

from __future__ import annotations

from .backend import array_namespace, check_floating

__all__ = [
    "conv_output_size",
    "im2col",
    "col2im",
    "conv2d_forward",
    "conv2d_backward",
    "conv_transpose2d_forward",
    "conv_transpose2d_backward",
]


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    """``3 -> (3, 3)``, ``(3, 2) -> (3, 2)``; every entry an int >= ``minimum``."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{name}: expected {kind} ints, got {value!r}")
    return pair


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution: ``(size + 2*padding - kernel) // stride + 1``.

    Dumoulin & Visin (2016), relationship 6. Raises nothing; may return 0 or less when the
    padded input is shorter than the kernel (the callers check that).
    """
    return (size + 2 * padding - kernel) // stride + 1


def _geometry(x_shape, kernel_size, stride, padding):
    """Checked ``(kH, kW), (sH, sW), (pH, pW), (H_out, W_out)`` for an input of ``x_shape``."""
    k = _pair(kernel_size, "kernel_size", 1)
    s = _pair(stride, "stride", 1)
    p = _pair(padding, "padding", 0)
    h, w = x_shape[2], x_shape[3]
    if h + 2 * p[0] < k[0] or w + 2 * p[1] < k[1]:
        raise ValueError(
            f"input: padded size ({h + 2 * p[0]}, {w + 2 * p[1]}) of input {tuple(x_shape)} "
            f"with padding {p} is smaller than the kernel {k}"
        )
    out = (conv_output_size(h, k[0], s[0], p[0]), conv_output_size(w, k[1], s[1], p[1]))
    return k, s, p, out


def im2col(x, kernel_size, stride=1, padding=0):
    """Lay the kH x kW patches of ``x`` out as the columns of one matrix.

    ``cols[(c, i, j), (p, q, n)] = x_pad[n, c, p*sH + i, q*sW + j]``, where ``x_pad`` is ``x``
    with ``padding`` zeros on each side of H and W. The batch index runs fastest along a row.

    Parameters
    ----------
    x : array (N, C, H, W)
    kernel_size, stride, padding : int or pair of ints

    Shapes
    ------
    x (N, C, H, W) -> cols (C*kH*kW, H_out*W_out*N),
    ``H_out = (H + 2 pH - kH) // sH + 1`` (the same for W).

    Returns
    -------
    cols : array, dtype and device of ``x``
    out_size : tuple ``(H_out, W_out)``

    Raises
    ------
    ValueError
        ``x`` is not 4-D, a size is not a positive int (padding: non-negative), or the
        padded input is smaller than the kernel.

    Notes
    -----
    One buffer ``(C, kH, kW, H_out, W_out, N)`` is allocated and filled by kH*kW strided
    slice assignments (one per kernel offset ``(i, j)``), from a padded copy of ``x`` laid out
    ``(C, H_pad, W_pad, N)`` so that each slice lands in place without a transpose and copies
    runs of N contiguous numbers (with N innermost the copy is about 2x faster than with
    W_out, a short strided run, innermost); the reshape to 2-D is then free. Only array-API
    operations (no ``as_strided``): NumPy, CuPy and array-api-strict run these lines.
    """
    xp = array_namespace(x, names=("x",))
    if x.ndim != 4:
        raise ValueError(f"x: expected a 4-D array (N, C, H, W), got shape {tuple(x.shape)}")
    (kh, kw), (sh, sw), (ph, pw), (ho, wo) = _geometry(x.shape, kernel_size, stride, padding)
    n, c, h, w = x.shape
    padded = xp.zeros((c, h + 2 * ph, w + 2 * pw, n), dtype=x.dtype, device=x.device)
    padded[:, ph : ph + h, pw : pw + w, :] = xp.permute_dims(x, (1, 2, 3, 0))  # (C, Hp, Wp, N)
    cols = xp.empty((c, kh, kw, ho, wo, n), dtype=x.dtype, device=x.device)
    for i in range(kh):
        rows = slice(i, i + sh * (ho - 1) + 1, sh)  # the H_out rows kernel row i meets
        for j in range(kw):
            cols[:, i, j, ...] = padded[:, rows, j : j + sw * (wo - 1) + 1 : sw, :]
    return xp.reshape(cols, (c * kh * kw, ho * wo * n)), (ho, wo)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """Adjoint of :func:`im2col`: add every column back onto the patch it came from.

    ``x[n, c, p*sH + i - pH, q*sW + j - pW] += cols[(c, i, j), (n, p, q)]`` (entries that fall
    in the padding are dropped). Overlapping patches add up, which is exactly the chain rule
    for the input gradient of a convolution.

    Parameters
    ----------
    cols : array (C*kH*kW, H_out*W_out*N), laid out as :func:`im2col` returns
    x_shape : tuple (N, C, H, W), the shape of the image to build
    kernel_size, stride, padding : int or pair of ints

    Shapes
    ------
    cols (C*kH*kW, H_out*W_out*N) -> x (N, C, H, W)

    Returns
    -------
    x : array, dtype and device of ``cols``

    Raises
    ------
    ValueError
        ``cols`` does not have the shape that ``x_shape`` and the geometry imply (both named),
        or the geometry is invalid (as :func:`im2col`).

    Notes
    -----
    kH*kW strided slice additions into a zero buffer of the padded image, then the padding is
    sliced off. ``<im2col(x), c> = <x, col2im(c)>`` holds to rounding (tests check it).
    """
    xp = array_namespace(cols, names=("cols",))
    x_shape = tuple(int(v) for v in x_shape)
    if len(x_shape) != 4:
        raise ValueError(f"x_shape: expected (N, C, H, W), got {x_shape}")
    (kh, kw), (sh, sw), (ph, pw), (ho, wo) = _geometry(x_shape, kernel_size, stride, padding)
    n, c, h, w = x_shape
    expected = (c * kh * kw, ho * wo * n)
    if tuple(cols.shape) != expected:
        raise ValueError(
            f"cols: expected shape {expected} for x_shape {x_shape}, got {tuple(cols.shape)}"
        )
    cols6 = xp.reshape(cols, (c, kh, kw, ho, wo, n))
    padded = xp.zeros((c, h + 2 * ph, w + 2 * pw, n), dtype=cols.dtype, device=cols.device)
    for i in range(kh):
        rows = slice(i, i + sh * (ho - 1) + 1, sh)
        for j in range(kw):
            padded[:, rows, j : j + sw * (wo - 1) + 1 : sw, :] += cols6[:, i, j, ...]
    return xp.permute_dims(padded[:, ph : ph + h, pw : pw + w, :], (3, 0, 1, 2))  # (N, C, H, W)


def _check_pair_inputs(x, weight, bias, channel_axis: int, op: str):
    xp = array_namespace(x, weight, bias, names=("x", "weight", "bias"))
    check_floating(x, "x")
    if weight.ndim != 4:
        raise ValueError(f"weight: expected a 4-D array, got shape {tuple(weight.shape)}")
    if x.ndim != 4:
        raise ValueError(f"x: expected a 4-D array (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != weight.shape[channel_axis]:
        raise ValueError(
            f"x: expected {weight.shape[channel_axis]} input channels for {op} weight of shape "
            f"{tuple(weight.shape)}, got {x.shape[1]} (x shape {tuple(x.shape)})"
        )
    if x.dtype != weight.dtype:
        raise TypeError(f"x: expected dtype {weight.dtype} (the weight's), got {x.dtype}")
    n_out = weight.shape[1 - channel_axis]
    if bias is not None and tuple(bias.shape) != (n_out,):
        raise ValueError(f"bias: expected shape ({n_out},), got {tuple(bias.shape)}")
    return xp


def _check_dout(dout, expected, dtype):
    if tuple(dout.shape) != tuple(expected):
        raise ValueError(f"dout: expected shape {tuple(expected)}, got {tuple(dout.shape)}")
    if dout.dtype != dtype:
        raise TypeError(f"dout: expected dtype {dtype} (the weight's), got {dout.dtype}")


def conv2d_forward(x, weight, bias=None, stride=1, padding=0):
    """2-D cross-correlation ``y = W * x + b`` (``torch.nn.functional.conv2d``, zero padding).

    ``y[n, o, p, q] = b[o] + sum_{c,i,j} W[o, c, i, j] x_pad[n, c, p*sH + i, q*sW + j]``,
    computed as one GEMM ``W (C_out, C_in*kH*kW) @ im2col(x) (C_in*kH*kW, H_out*W_out*N)``.

    Parameters
    ----------
    x : array (N, C_in, H, W), float32 or float64
    weight : array (C_out, C_in, kH, kW), same dtype
    bias : array (C_out,) or None
    stride : int or pair of positive ints
    padding : int or pair of non-negative ints (zeros on both sides)

    Shapes
    ------
    x (N, C_in, H, W), weight (C_out, C_in, kH, kW) -> y (N, C_out, H_out, W_out),
    ``H_out = (H + 2 pH - kH) // sH + 1``.

    Returns
    -------
    y : array (N, C_out, H_out, W_out)
    cache : for :func:`conv2d_backward`

    Raises
    ------
    ValueError
        Wrong rank, wrong channel count, bias shape, stride < 1, padding < 0, or an input
        smaller than the kernel (expected and got named).
    TypeError
        Non-float input, a dtype differing from the weight's, or mixed backends.
    """
    xp = _check_pair_inputs(x, weight, bias, 1, "conv2d")
    c_out, c_in, kh, kw = weight.shape
    cols, (ho, wo) = im2col(x, (kh, kw), stride, padding)  # (C_in*kH*kW, Ho*Wo*N)
    w2 = xp.reshape(weight, (c_out, c_in * kh * kw))
    y = w2 @ cols  # (C_out, Ho*Wo*N): the one GEMM
    if bias is not None:
        y += bias[:, None]
    # A view: the next conv's im2col reads it back in this (C, H, W, N) order cheaply.
    y = xp.permute_dims(xp.reshape(y, (c_out, ho, wo, x.shape[0])), (3, 0, 1, 2))
    return y, (cols, weight, tuple(x.shape), stride, padding, bias is not None)


def conv2d_backward(dout, cache, *, need_dx: bool = True, need_dparams: bool = True):
    """Gradients of :func:`conv2d_forward`.

    With ``D = dout`` laid out ``(C_out, H_out*W_out*N)`` (the columns' order)::

        dW = D @ cols^T            (C_out, C_in*kH*kW)
        db = sum over n, p, q of dout
        dx = col2im(W^T @ D)       (N, C_in, H, W)

    Parameters
    ----------
    dout : array (N, C_out, H_out, W_out)
    cache : from :func:`conv2d_forward`
    need_dx, need_dparams : bool
        Skip ``dx`` / ``(dW, db)`` (returned as ``None``), as :func:`linear_backward`.

    Returns
    -------
    dx, dweight, dbias : arrays or None (``dbias`` is None without bias)

    Raises
    ------
    ValueError
        ``dout`` of another shape than the output (expected and got named).
    TypeError
        ``dout`` of another dtype than the weight.
    """
    cols, weight, x_shape, stride, padding, has_bias = cache
    xp = array_namespace(dout, weight, names=("dout", "weight"))
    c_out, c_in, kh, kw = weight.shape
    n_cols = cols.shape[1]
    _, _, _, (ho, wo) = _geometry(x_shape, (kh, kw), stride, padding)
    _check_dout(dout, (x_shape[0], c_out, ho, wo), weight.dtype)
    d2 = xp.reshape(xp.permute_dims(dout, (1, 2, 3, 0)), (c_out, n_cols))  # (C_out, Ho*Wo*N)
    dx = dw = db = None
    if need_dparams:
        dw = xp.reshape(d2 @ cols.T, weight.shape)  # (C_out, C_in, kH, kW)
        if has_bias:
            db = xp.sum(d2, axis=1)  # (C_out,)
    if need_dx:
        w2 = xp.reshape(weight, (c_out, c_in * kh * kw))
        dx = col2im(w2.T @ d2, x_shape, (kh, kw), stride, padding)
    return dx, dw, db


def _transpose_geometry(x_shape, weight_shape, stride, padding, output_padding):
    """Output shape of a transposed convolution, with its checks."""
    kh, kw = weight_shape[2], weight_shape[3]
    s = _pair(stride, "stride", 1)
    p = _pair(padding, "padding", 0)
    op = _pair(output_padding, "output_padding", 0)
    if op[0] >= s[0] or op[1] >= s[1]:
        raise ValueError(f"output_padding: expected less than stride {s} in each dim, got {op}")
    n, _, h, w = x_shape
    ho = (h - 1) * s[0] - 2 * p[0] + kh + op[0]
    wo = (w - 1) * s[1] - 2 * p[1] + kw + op[1]
    if ho < 1 or wo < 1:
        raise ValueError(
            f"input: output size ({ho}, {wo}) of conv_transpose2d on input {tuple(x_shape)} "
            f"with kernel ({kh}, {kw}), stride {s}, padding {p} is not positive"
        )
    return (n, weight_shape[1], ho, wo)


def conv_transpose2d_forward(x, weight, bias=None, stride=1, padding=0, output_padding=0):
    """Transposed convolution (``torch.nn.functional.conv_transpose2d``): the adjoint of
    :func:`conv2d_forward` in its input, plus a bias.

    ``y = col2im(W^T @ X) + b`` with ``X`` = x laid out ``(C_in, H*W*N)`` and
    ``W (C_in, C_out*kH*kW)``: every input pixel paints a weighted kH x kW patch onto the
    output, patches stride ``stride`` apart, overlaps summed, ``padding`` cropped per side.

    Parameters
    ----------
    x : array (N, C_in, H, W), float32 or float64
    weight : array (C_in, C_out, kH, kW), same dtype (PyTorch's layout)
    bias : array (C_out,) or None
    stride : int or pair of positive ints
    padding : int or pair of non-negative ints
    output_padding : int or pair, each less than its stride: extra rows/columns at the end

    Shapes
    ------
    x (N, C_in, H, W) -> y (N, C_out, H_out, W_out),
    ``H_out = (H - 1) sH - 2 pH + kH + opH``.

    Returns
    -------
    y : array (N, C_out, H_out, W_out)
    cache : for :func:`conv_transpose2d_backward`

    Raises
    ------
    ValueError
        Wrong rank, channel count or bias shape; stride < 1; padding < 0;
        ``output_padding >= stride``; a non-positive output size.
    TypeError
        Non-float input or a dtype differing from the weight's.
    """
    xp = _check_pair_inputs(x, weight, bias, 0, "conv_transpose2d")
    y_shape = _transpose_geometry(x.shape, weight.shape, stride, padding, output_padding)
    c_in, c_out, kh, kw = weight.shape
    n, _, h, w = x.shape
    x2 = xp.reshape(xp.permute_dims(x, (1, 2, 3, 0)), (c_in, h * w * n))  # (C_in, H*W*N)
    w2 = xp.reshape(weight, (c_in, c_out * kh * kw))
    y = col2im(w2.T @ x2, y_shape, (kh, kw), stride, padding)  # (N, C_out, Ho, Wo)
    if bias is not None:
        y = y + xp.reshape(bias, (1, c_out, 1, 1))
    return y, (x2, weight, tuple(x.shape), y_shape, stride, padding, bias is not None)


def conv_transpose2d_backward(dout, cache, *, need_dx: bool = True, need_dparams: bool = True):
    """Gradients of :func:`conv_transpose2d_forward`: a convolution of ``dout``.

    With ``C = im2col(dout)`` of shape ``(C_out*kH*kW, H*W*N)`` (the same geometry as the
    forward)::

        dx = W @ C            (C_in, H*W*N) -> (N, C_in, H, W)
        dW = X @ C^T          (C_in, C_out*kH*kW)
        db = sum over n, p, q of dout

    Parameters
    ----------
    dout : array (N, C_out, H_out, W_out)
    cache : from :func:`conv_transpose2d_forward`
    need_dx, need_dparams : bool
        Skip ``dx`` / ``(dW, db)`` (returned as ``None``).

    Returns
    -------
    dx, dweight, dbias : arrays or None

    Raises
    ------
    ValueError
        ``dout`` of another shape than the output.
    TypeError
        ``dout`` of another dtype than the weight.
    """
    x2, weight, x_shape, y_shape, stride, padding, has_bias = cache
    xp = array_namespace(dout, weight, names=("dout", "weight"))
    _check_dout(dout, y_shape, weight.dtype)
    c_in, c_out, kh, kw = weight.shape
    cols, _ = im2col(dout, (kh, kw), stride, padding)  # (C_out*kH*kW, H*W*N)
    dx = dw = db = None
    if need_dx:
        w2 = xp.reshape(weight, (c_in, c_out * kh * kw))
        n, _, h, w = x_shape
        dx = xp.permute_dims(xp.reshape(w2 @ cols, (c_in, h, w, n)), (3, 0, 1, 2))
    if need_dparams:
        dw = xp.reshape(x2 @ cols.T, weight.shape)  # (C_in, C_out, kH, kW)
        if has_bias:
            db = xp.sum(dout, axis=(0, 2, 3))
    return dx, dw, db
