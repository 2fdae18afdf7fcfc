# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 12: Convolution by hand
#
# The MLP GAN of lessons 8-11 treats an image as a flat vector of 784 numbers: it has to learn
# separately that a stroke at the top left looks like a stroke at the bottom right. A
# convolution shares one small set of weights across every position of the image. This lesson
# writes the convolution as one matrix product (*im2col*), derives its backward pass with
# shapes, and checks it against finite differences, before using `minigan.layers.Conv2d`.

# %% [markdown]
# ## Goal
#
# - Write the 2-D convolution (PyTorch's `conv2d`: a cross-correlation) with stride and
#   padding, and its output-size formula.
# - Lay the image patches out as the columns of one matrix with **strided slices** (im2col),
#   so the convolution is one GEMM.
# - Derive `dW`, `db` and `dx`; see that `dx` is *col2im*, the adjoint of im2col, where
#   overlapping patches add up.
# - Gradient-check it, then use `minigan.functional.conv2d_forward` / `conv2d_backward` and
#   `minigan.layers.Conv2d`.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import minigan
from minigan import functional as F
from minigan.gradcheck import numerical_gradient, rel_error

SMALL = os.environ.get("MINIGAN_LESSON_MODE", "full") == "small"
rng = np.random.default_rng(0)

# %% [markdown]
# ## Math with shapes
#
# **The convolution.** Images `x (N, C, H, W)` (NCHW, as PyTorch), weight
# `W (C_out, C, kH, kW)`, bias `b (C_out,)`, stride $s$ and zero padding $p$ on each side:
#
# $$y_{n,o,u,v} = b_o + \sum_{c,i,j} W_{o,c,i,j}\; x^\text{pad}_{n,\,c,\,u s + i,\,v s + j},
# \qquad H_\text{out} = \left\lfloor \frac{H + 2p - k_H}{s} \right\rfloor + 1$$
#
# (the same for the width). `y` has shape `(N, C_out, H_out, W_out)`. Deep learning's
# "convolution" does not flip the kernel: it is a cross-correlation, as in PyTorch.
#
# **im2col.** Copy every patch that the kernel meets into one column:
#
# $$\mathcal C_{(c,i,j),\,(u,v,n)} = x^\text{pad}_{n,\,c,\,u s+i,\,v s+j},
# \qquad \mathcal C \text{ of shape } (C k_H k_W,\; H_\text{out} W_\text{out} N).$$
#
# For a fixed kernel offset $(i, j)$, the entries $x^\text{pad}[:, :, i::s, j::s]$ (the first
# $H_\text{out}$ rows and $W_\text{out}$ columns of that strided slice) fill one block of rows
# of $\mathcal C$. So im2col is $k_H k_W$ **strided slices**, no loop over pixels. With the
# weight flattened to `W2 (C_out, C*kH*kW)`, the convolution is one matrix product:
#
# $$Y_2 = W_2\, \mathcal C + b \qquad (C_\text{out},\; H_\text{out} W_\text{out} N),$$
#
# reshaped to `(N, C_out, H_out, W_out)`.
#
# **Backward.** With the upstream gradient `dout` laid out like $Y_2$ as
# `D (C_out, H_out*W_out*N)`, the rules of the Linear layer (lesson 2) apply to the GEMM:
#
# $$\bar W_2 = D\,\mathcal C^\top \;(C_\text{out}, C k_H k_W), \qquad
# \bar b = \textstyle\sum_{n,u,v} \text{dout} \;(C_\text{out},), \qquad
# \bar{\mathcal C} = W_2^\top D \;(C k_H k_W, H_\text{out} W_\text{out} N).$$
#
# Each entry of $\mathcal C$ is a copy of a pixel; a pixel that sits in several patches has
# several copies, and its gradient is the **sum** of the gradients of its copies. That
# scatter-add is *col2im*: $\bar x = \text{col2im}(\bar{\mathcal C})$, the adjoint (transpose)
# of im2col. Padding entries are dropped.

# %% [markdown]
# ## Implement
#
# ### The definition, with loops
#
# Six nested loops straight from the formula: slow, but obviously right. Everything below is
# compared with it.


# %%
def out_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def conv2d_loops(x, w, b, stride, pad):
    """The definition. x (N, C, H, W), w (O, C, kH, kW), b (O,) -> (N, O, Ho, Wo)."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = out_size(h, kh, stride, pad), out_size(wd, kw, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    y = np.zeros((n, o, ho, wo))
    for a in range(n):
        for oc in range(o):
            for u in range(ho):
                for v in range(wo):
                    patch = xp[a, :, u * stride : u * stride + kh, v * stride : v * stride + kw]
                    y[a, oc, u, v] = np.sum(w[oc] * patch) + b[oc]
    return y


# %% [markdown]
# ### im2col as strided slices
#
# The buffer is `(C, kH, kW, H_out, W_out, N)`; offset $(i, j)$ fills `cols[:, i, j]` with one
# strided slice of the padded image. Reshaping to 2-D gives exactly the layout of the formula.


# %%
def my_im2col(x, kh, kw, stride, pad):
    """x (N, C, H, W) -> cols (C*kH*kW, Ho*Wo*N), (Ho, Wo)."""
    n, c, h, w = x.shape
    ho, wo = out_size(h, kh, stride, pad), out_size(w, kw, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((c, kh, kw, ho, wo, n), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride]
            cols[:, i, j] = patch.transpose(1, 2, 3, 0)  # (N, C, Ho, Wo) -> (C, Ho, Wo, N)
    return cols.reshape(c * kh * kw, ho * wo * n), (ho, wo)


def my_col2im(cols, x_shape, kh, kw, stride, pad):
    """Adjoint of my_im2col: scatter-add every column back onto its patch -> (N, C, H, W)."""
    n, c, h, w = x_shape
    ho, wo = out_size(h, kh, stride, pad), out_size(w, kw, stride, pad)
    cols6 = cols.reshape(c, kh, kw, ho, wo, n)
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            xp[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride] += cols6[
                :, i, j
            ].transpose(3, 0, 1, 2)
    return xp[:, :, pad : pad + h, pad : pad + w]


def my_conv2d_forward(x, w, b, stride, pad):
    o, c, kh, kw = w.shape
    cols, (ho, wo) = my_im2col(x, kh, kw, stride, pad)  # (C*kH*kW, Ho*Wo*N)
    y2 = w.reshape(o, -1) @ cols + b[:, None]  # (O, Ho*Wo*N): the one GEMM
    y = y2.reshape(o, ho, wo, x.shape[0]).transpose(3, 0, 1, 2)  # (N, O, Ho, Wo)
    return y, (cols, w, x.shape, stride, pad)


def my_conv2d_backward(dout, cache):
    cols, w, x_shape, stride, pad = cache
    o, c, kh, kw = w.shape
    d2 = dout.transpose(1, 2, 3, 0).reshape(o, -1)  # (O, Ho*Wo*N), the columns' order
    dw = (d2 @ cols.T).reshape(w.shape)  # (O, C, kH, kW)
    db = d2.sum(axis=1)  # (O,)
    dx = my_col2im(w.reshape(o, -1).T @ d2, x_shape, kh, kw, stride, pad)  # (N, C, H, W)
    return dx, dw, db


# Non-square input, stride 2, padding 1: the cases where index bugs show.
x = rng.standard_normal((2, 3, 7, 6))
w = rng.standard_normal((4, 3, 3, 3))
b = rng.standard_normal(4)
y, cache = my_conv2d_forward(x, w, b, 2, 1)
cols, (ho, wo) = my_im2col(x, 3, 3, 2, 1)
print("x", x.shape, "-> cols", cols.shape, "-> y", y.shape, f"(H_out, W_out) = ({ho}, {wo})")
print("im2col vs minigan.functional.im2col:", np.array_equal(cols, F.im2col(x, 3, 2, 1)[0]))
print("GEMM conv vs the six loops:        ", f"{rel_error(y, conv2d_loops(x, w, b, 2, 1)):.1e}")
assert np.allclose(y, conv2d_loops(x, w, b, 2, 1))

# %% [markdown]
# ### What im2col looks like
#
# One channel, a 6x6 image numbered 0..35, a 3x3 kernel, stride 1, no padding: 16 patches,
# each a column of 9 numbers. Neighbouring columns share six of their nine pixels: im2col
# copies each interior pixel up to nine times, the memory price of turning a convolution into
# one fast matrix product.

# %%
img = np.arange(36.0).reshape(1, 1, 6, 6)
cols_img, _ = my_im2col(img, 3, 3, 1, 0)  # (9, 16)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), gridspec_kw={"width_ratios": [1, 1.8, 1]})
axes[0].imshow(img[0, 0], cmap="viridis")
for (r, c), v in np.ndenumerate(img[0, 0]):
    axes[0].text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=7, color="w")
axes[0].add_patch(plt.Rectangle((-0.5, -0.5), 3, 3, fill=False, ec="r", lw=2))
axes[0].set_title("image (6, 6); the first patch in red", fontsize=9)
axes[1].imshow(cols_img, cmap="viridis", aspect="auto")
for (r, c), v in np.ndenumerate(cols_img):
    axes[1].text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=6, color="w")
axes[1].set_xlabel("column = patch (u, v)")
axes[1].set_ylabel("row = kernel offset (i, j)")
axes[1].set_title("im2col: (C*kH*kW, Ho*Wo*N) = (9, 16)", fontsize=9)
copies = my_col2im(np.ones_like(cols_img), img.shape, 3, 3, 1, 0)[0, 0]
axes[2].imshow(copies, cmap="magma")
for (r, c), v in np.ndenumerate(copies):
    axes[2].text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=8, color="c")
axes[2].set_title("col2im(ones): copies of each pixel", fontsize=9)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
plt.tight_layout()
plt.show()

# %% [markdown]
# The right panel is col2im of a matrix of ones: how many columns hold each pixel, i.e. how
# many terms its gradient sums. Corners appear once, the centre nine times.
#
# ## Check
#
# Gradient check in float64 with a random `dout` (never all ones: a sum would hide a
# transposed index): `numerical_gradient` differentiates $L = \sum y \odot \text{dout}$ by
# central differences, for the input, the weight and the bias.

# %%
dout = rng.standard_normal(y.shape)
dx, dw, db = my_conv2d_backward(dout, cache)


def y_of(_):  # reads x, w, b through the closure: numerical_gradient perturbs them in place
    return my_conv2d_forward(x, w, b, 2, 1)[0]


for name, analytic, tensor in (("dx", dx, x), ("dW", dw, w), ("db", db, b)):
    err = rel_error(analytic, numerical_gradient(y_of, tensor, dout))
    print(f"{name} {str(analytic.shape):14s} rel_error {err:.1e}")
    assert err < 1e-6

# The adjoint identity behind col2im: <im2col(x), c> = <x, col2im(c)> for every x and c.
c_rand = rng.standard_normal(cols.shape)
lhs, rhs = np.sum(cols * c_rand), np.sum(x * my_col2im(c_rand, x.shape, 3, 3, 2, 1))
print(f"<im2col(x), c> = {lhs:.10f}\n<x, col2im(c)> = {rhs:.10f}")
assert np.isclose(lhs, rhs)

# %% [markdown]
# ## Use minigan
#
# `minigan.functional.conv2d_forward(x, weight, bias, stride, padding)` returns `(y, cache)`
# and `conv2d_backward(dout, cache)` returns `(dx, dweight, dbias)`: the same math, written
# with array-API operations only, so it also runs on CuPy (lesson 10). `minigan.layers.Conv2d`
# wraps it in a layer with PyTorch's name, defaults and initialisation.

# %%
y_mg, cache_mg = F.conv2d_forward(x, w, b, stride=2, padding=1)
dx_mg, dw_mg, db_mg = F.conv2d_backward(dout, cache_mg)
print("forward vs ours:", f"{rel_error(y_mg, y):.1e}")
for name, a, m in (("dx", dx, dx_mg), ("dW", dw, dw_mg), ("db", db, db_mg)):
    print(f"{name} vs ours: {rel_error(a, m):.1e}")

conv = minigan.layers.Conv2d(3, 4, kernel_size=3, stride=2, padding=1, dtype="float64", rng=1)
print(conv, "weight", conv.weight.shape)
report = minigan.check_module(conv, x)
print(report)
assert report.passed

# %% [markdown]
# A strided convolution halves the resolution, which is how a DCGAN discriminator (lesson 15)
# goes from a 28x28 image to a score. A small stack, checked as a whole (so `dx` of the second
# layer feeds the first):

# %%
stack = minigan.Sequential(
    minigan.layers.Conv2d(1, 4, 4, stride=2, padding=1, dtype="float64", rng=2),
    minigan.LeakyReLU(0.2),
    minigan.layers.Conv2d(4, 2, 3, stride=2, padding=1, dtype="float64", rng=3),
)
x_img = rng.standard_normal((2, 1, 8, 8))
print("(2, 1, 8, 8) ->", stack(x_img).shape)
report = minigan.check_module(stack, x_img)
print(report)
assert report.passed

# %% [markdown]
# ### Why im2col: the loops against one GEMM
#
# Same result, very different speed: the six Python loops do one tiny dot product per output
# value, the GEMM hands all of them to BLAS at once.

# %%
shape = (4, 3, 16, 16) if SMALL else (16, 3, 32, 32)
xb = rng.standard_normal(shape)
wb = rng.standard_normal((8, 3, 3, 3))
bb = np.zeros(8)
start = time.perf_counter()
ref = conv2d_loops(xb, wb, bb, 1, 1)
t_loops = time.perf_counter() - start
start = time.perf_counter()
repeats = 20
for _ in range(repeats):
    fast, _ = F.conv2d_forward(xb, wb, bb, 1, 1)
t_gemm = (time.perf_counter() - start) / repeats
print(f"x {shape}: loops {1e3 * t_loops:.1f} ms, im2col + GEMM {1e3 * t_gemm:.2f} ms")
print(f"same result: rel_error {rel_error(ref, fast):.1e}")

# %% [markdown]
# ## Summary
#
# - `conv2d`: `x (N, C, H, W)`, `W (C_out, C, kH, kW)` -> `y (N, C_out, H_out, W_out)` with
#   $H_\text{out} = \lfloor (H + 2p - k)/s \rfloor + 1$; a cross-correlation, as in PyTorch.
# - im2col lays the patches out as `(C*kH*kW, H_out*W_out*N)` with $k_H k_W$ strided slices;
#   the convolution is then one GEMM `W2 @ cols`.
# - Backward: `dW2 = D @ cols.T`, `db = sum dout`, `dx = col2im(W2.T @ D)`. col2im is the
#   adjoint of im2col: a pixel in several patches sums the gradients of its copies.
# - Check with a random `dout`, non-square inputs, stride and padding, in float64.
# - minigan: `functional.im2col`, `conv2d_forward`, `conv2d_backward`, `layers.Conv2d`.

# %% [markdown]
# ## Exercises
#
# 1. **Graded exercise.** Implement the backward pass of a convolution (`dx`, `dW`, `db` from
#    `dout` and the forward cache) in the exercise file and grade it with
#    `minigan check` (exercise `conv2d_backward`; see `exercises/README.md`). Test your own
#    version first with `numerical_gradient` as in "Check", with batch > 1, a non-square
#    image, stride 2 and padding 1.
# 2. Work out by hand the output size of a 4x4 kernel with stride 2 and padding 1 on a 28x28
#    image, then on a 27x27 one. Where does the floor in the formula lose a row?
# 3. Write `dx` *without* col2im: for each output position, add `W * dout` onto the patch. Check
#    it against `my_conv2d_backward`, then time both.
# 4. How many numbers does im2col hold for a batch of 64 images 3x64x64 and a 4x4 kernel with
#    stride 1? With stride 2? Compare with the image itself.
# 5. A 1x1 convolution is a Linear layer applied at every pixel. Show it with `conv2d_forward`
#    and `minigan.functional.linear_forward` on a `(N, C, H, W)` input.
