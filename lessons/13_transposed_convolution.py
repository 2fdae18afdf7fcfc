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
# # Lesson 13: Transposed convolution
#
# A discriminator shrinks an image to a score with strided convolutions (lesson 12). A
# generator must do the opposite: grow a small feature map into an image. The layer DCGAN uses
# for that is the *transposed convolution* (sometimes wrongly called "deconvolution"). It is
# not an inverse of the convolution: it is its **adjoint**, the transpose of the same linear
# map. This lesson builds it from that one fact, derives its output size, and shows the
# checkerboard artifacts that uneven overlaps cause.

# %% [markdown]
# ## Goal
#
# - See a convolution as a matrix $A$ acting on the flattened image, and the transposed
#   convolution as $A^\top$: $\langle \text{conv2d}(x, W), y\rangle = \langle x,
#   \text{conv\_transpose2d}(y, W)\rangle$, checked numerically.
# - Derive the output size $H_\text{out} = (H - 1)s - 2p + k + \text{output\_padding}$ and why
#   `output_padding` exists.
# - Gradient-check `minigan.functional.conv_transpose2d_forward` / `_backward` and
#   `minigan.layers.ConvTranspose2d`.
# - Show the **checkerboard** pattern of a stride-2, kernel-3 transposed convolution, and why
#   DCGAN's kernel 4 with stride 2 avoids it.

# %%
import os

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
# **A convolution is a matrix.** For a fixed weight `W (C_out, C_in, k, k)`, stride $s$ and
# padding $p$, the map $x \mapsto \text{conv2d}(x, W)$ (no bias) is linear. Flatten
# `x (N, C_in, H, W)` into a vector of length $N C_\text{in} H W$ and `y` into one of length
# $N C_\text{out} H' W'$: then $y = A x$ for a sparse matrix $A$ whose rows hold copies of the
# kernel.
#
# **Its transpose.** $A^\top$ maps the small `y` back to the size of `x`: every output value
# $y_{n,o,u,v}$ *paints* the kernel $W_{o,:,:,:}$, scaled by $y_{n,o,u,v}$, onto the patch of
# `x` it was computed from, and overlapping paint adds up:
#
# $$z_{n,c,\,us+i-p,\,vs+j-p} \mathrel{+}= W_{o,c,i,j}\; y_{n,o,u,v}.$$
#
# That is `conv_transpose2d(y, W)`, with the weight read as `(C_in, C_out, k, k)` (PyTorch's
# layout: its first axis is the axis of its *input*). In lesson 12's terms it is
# $\text{col2im}(W_2^\top Y_2)$: exactly the input gradient of the convolution. The defining
# property of a transpose is the **adjoint identity**
#
# $$\langle A x, y \rangle = \langle x, A^\top y \rangle \quad\text{for all } x, y,$$
#
# and, the other way round, the *backward* of a transposed convolution is a convolution.
#
# **Output size.** A transposed convolution of an input `(N, C_in, H, W)` has
#
# $$H_\text{out} = (H - 1)\,s - 2p + k + \text{output\_padding}.$$
#
# Reading: $H$ patches, $s$ apart, each $k$ wide, span $(H-1)s + k$; the padding $p$ is
# cropped from both sides. Because a convolution *floors*, several input sizes give the
# same output size (with $k=3, s=2, p=1$, both 7 and 8 map to 4); `output_padding` in
# $[0, s)$ adds rows at the end to pick which one the transpose returns.

# %% [markdown]
# ## Implement
#
# ### The matrix of a convolution
#
# Build $A$ column by column: column $m$ is the convolution of the $m$-th basis image. Tiny
# sizes, so that $A$ can be printed as a picture.


# %%
def conv_matrix(x_shape, w, stride, pad):
    """A (y.size, x.size) with conv2d(x, w).ravel() == A @ x.ravel()."""
    size = int(np.prod(x_shape))
    cols = []
    for m in range(size):
        e = np.zeros(size)
        e[m] = 1.0
        cols.append(F.conv2d_forward(e.reshape(x_shape), w, None, stride, pad)[0].ravel())
    return np.stack(cols, axis=1)


x_shape = (1, 1, 5, 5)
w_small = rng.standard_normal((1, 1, 3, 3))
A = conv_matrix(x_shape, w_small, 2, 1)
print("A", A.shape, "for x (1, 1, 5, 5) -> y (1, 1, 3, 3)")

x = rng.standard_normal(x_shape)
y_target = rng.standard_normal((1, 1, 3, 3))
z, _ = F.conv_transpose2d_forward(y_target, w_small, None, stride=2, padding=1)
print("conv_transpose2d(y) vs A.T @ y:", f"{rel_error(z.ravel(), A.T @ y_target.ravel()):.1e}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3))
axes[0].imshow(A, cmap="RdBu_r")
axes[0].set_title("A (9, 25): conv2d, k=3, s=2, p=1", fontsize=9)
axes[1].imshow(A.T, cmap="RdBu_r")
axes[1].set_title("A.T (25, 9): conv_transpose2d", fontsize=9)
for ax in axes:
    ax.set_xlabel("input index")
    ax.set_ylabel("output index")
plt.tight_layout()
plt.show()

# %% [markdown]
# Each row of $A$ is the kernel laid over one patch (nine entries, the rest zero); each row of
# $A^\top$ lists the output values a pixel contributed to.
#
# ### The painting loop
#
# The same map written as the formula: each input value paints a scaled kernel.


# %%
def conv_transpose_loops(y, w, stride, pad, output_padding=0):
    """y (N, C_in, H, W), w (C_in, C_out, k, k) -> (N, C_out, H_out, W_out)."""
    n, c_in, h, wd = y.shape
    _, c_out, k, _ = w.shape
    ho = (h - 1) * stride - 2 * pad + k + output_padding
    wo = (wd - 1) * stride - 2 * pad + k + output_padding
    z = np.zeros((n, c_out, ho + 2 * pad + k, wo + 2 * pad + k))  # room for the crop
    for a in range(n):
        for ci in range(c_in):
            for u in range(h):
                for v in range(wd):
                    z[a, :, u * stride : u * stride + k, v * stride : v * stride + k] += (
                        w[ci] * y[a, ci, u, v]
                    )
    return z[:, :, pad : pad + ho, pad : pad + wo]


yb = rng.standard_normal((2, 3, 4, 5))
wb = rng.standard_normal((3, 2, 3, 3))  # (C_in, C_out, k, k)
mine = conv_transpose_loops(yb, wb, 2, 1, output_padding=1)
ref, _ = F.conv_transpose2d_forward(yb, wb, None, stride=2, padding=1, output_padding=1)
print("y", yb.shape, "-> z", mine.shape, f"painting loop vs minigan: {rel_error(mine, ref):.1e}")
assert mine.shape == ref.shape and np.allclose(mine, ref)

# %% [markdown]
# ## Check
#
# ### The adjoint identity
#
# With a convolution weight `W (C_out, C_in, k, k)` the same array, read as
# `(C_in', C_out') = (C_out, C_in)`, is the weight of the transposed map. For an input height
# $H$, pick `output_padding` $= (H + 2p - k) \bmod s$ so that the transpose returns exactly
# $H$.

# %%
for stride, pad, k, hw in (
    (1, 0, 3, (6, 5)),
    (2, 1, 3, (7, 8)),
    (2, 1, 4, (8, 6)),
    (3, 2, 5, (9, 10)),
):
    w = rng.standard_normal((4, 3, k, k))  # conv: C_in 3 -> C_out 4
    x = rng.standard_normal((2, 3, *hw))
    y_conv, _ = F.conv2d_forward(x, w, None, stride, pad)
    y = rng.standard_normal(y_conv.shape)
    op = tuple((s_ + 2 * pad - k) % stride for s_ in hw)
    xt, _ = F.conv_transpose2d_forward(y, w, None, stride, pad, output_padding=op)
    lhs, rhs = np.sum(y_conv * y), np.sum(x * xt)
    print(
        f"k={k} s={stride} p={pad} x{hw} -> y{y_conv.shape[2:]}, output_padding {op}: "
        f"<conv(x), y> = {lhs:+.10f}, <x, convT(y)> = {rhs:+.10f}"
    )
    assert xt.shape == x.shape and np.isclose(lhs, rhs, rtol=1e-12, atol=1e-12)

# %% [markdown]
# ### The gradients
#
# The backward pass of the transposed convolution is a convolution (im2col of `dout`, then a
# GEMM). Gradient check in float64, random `dout`, non-square input, stride 2, output
# padding 1:

# %%
bias = rng.standard_normal(2)
z, cache = F.conv_transpose2d_forward(yb, wb, bias, stride=2, padding=1, output_padding=1)
dout = rng.standard_normal(z.shape)
dy, dw, db = F.conv_transpose2d_backward(dout, cache)


def z_of(_):
    return F.conv_transpose2d_forward(yb, wb, bias, stride=2, padding=1, output_padding=1)[0]


for name, analytic, tensor in (("dx", dy, yb), ("dW", dw, wb), ("db", db, bias)):
    err = rel_error(analytic, numerical_gradient(z_of, tensor, dout))
    print(f"{name} {str(analytic.shape):14s} rel_error {err:.1e}")
    assert err < 1e-6

# %% [markdown]
# ### The output size
#
# The formula against the layer, including the two sizes that the convolution cannot tell
# apart:

# %%
print(" H  k  s  p  op -> H_out (formula)  H_out (minigan)  conv2d back to")
for h, k, s, p, op in (
    (4, 4, 2, 1, 0),
    (7, 4, 2, 1, 0),
    (4, 3, 2, 1, 0),
    (4, 3, 2, 1, 1),
    (1, 7, 1, 0, 0),
    (5, 5, 3, 2, 2),
):
    formula = (h - 1) * s - 2 * p + k + op
    out, _ = F.conv_transpose2d_forward(
        np.zeros((1, 1, h, h)), np.zeros((1, 1, k, k)), None, s, p, op
    )
    back = F.conv_output_size(formula, k, s, p)
    print(f"{h:2d} {k:2d} {s:2d} {p:2d} {op:3d}  -> {formula:8d} {out.shape[2]:16d} {back:15d}")
    assert out.shape[2] == formula and back == h

# %% [markdown]
# The last column applies lesson 12's convolution formula to the output: it always returns
# $H$. With $k=3, s=2, p=1$ an input of 4 becomes 7 or, with `output_padding=1`, 8; the
# convolution maps both back to 4.
#
# ### Checkerboard artifacts
#
# Take a constant input and an all-ones kernel: the output counts how many painted patches
# cover each pixel. With kernel 3 and stride 2 the patches overlap on every other row and
# column: odd pixels get one patch, even pixels two, and the corners where an overlap row
# meets an overlap column four. That grid of uneven coverage is the **checkerboard**
# (Odena, Dumoulin & Olah 2016, "Deconvolution and checkerboard artifacts"). With kernel 4
# and stride 2, $k$ is a multiple of $s$ and every interior pixel is covered exactly twice in
# each direction; with kernel 2 there is no overlap at all.

# %%
n_in = 8
ones_in = np.ones((1, 1, n_in, n_in))
configs = ((3, 2, 0), (4, 2, 1), (2, 2, 0), (5, 2, 2))
fig, axes = plt.subplots(2, len(configs), figsize=(3.2 * len(configs), 6.4))
for col, (k, s, p) in enumerate(configs):
    out, _ = F.conv_transpose2d_forward(ones_in, np.ones((1, 1, k, k)), None, s, p)
    ax = axes[0, col]
    im = ax.imshow(out[0, 0], cmap="magma", vmin=0)
    ax.set_title(f"k={k}, s={s}, p={p}: {out.shape[2]}x{out.shape[3]}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks([])
    ax.set_yticks([])
    # Three layers in a row, random positive weights (a generator's first steps, roughly).
    layer_rng = np.random.default_rng(1)
    h = ones_in
    for _ in range(3):
        h, _ = F.conv_transpose2d_forward(h, layer_rng.uniform(0.5, 1.5, (1, 1, k, k)), None, s, p)
    ax = axes[1, col]
    ax.imshow(h[0, 0], cmap="magma")
    ax.set_title(f"three such layers: {h.shape[2]}x{h.shape[3]}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    interior = out[0, 0, k:-k, k:-k]
    print(
        f"k={k} s={s}: one layer, interior coverage from {interior.min():.0f} to "
        f"{interior.max():.0f}; three layers, interior max/min "
        f"{h[0, 0, 8:-8, 8:-8].max() / h[0, 0, 8:-8, 8:-8].min():.2f}"
    )
plt.suptitle("transposed convolution of a constant image (top: all-ones kernel)")
plt.tight_layout()
plt.show()

# %% [markdown]
# The top row is the overlap count: the stride-2 kernel-3 map alternates 1, 2 and 4 in a
# grid, kernel 5 (again not a multiple of the stride) 4, 6 and 9, while kernel 4 is flat
# inside and kernel 2 is flat everywhere. The bottom row, three layers with random positive
# weights, adds a second effect: with stride 2 each output pixel is made from the kernel
# entries at its position modulo 2, so unequal weights print a periodic tile even when nothing
# overlaps (kernel 2). Overlap averages several kernel entries per pixel and softens that tile
# (kernel 4 is the flattest, see the printed max/min ratios), while uneven overlap multiplies
# it from layer to layer (kernel 3 is by far the worst). A generator has to learn weights that
# cancel these patterns exactly, which it rarely does early in training. Hence the rule
# DCGAN follows: a kernel divisible by the stride (`k=4, s=2, p=1` doubles the size exactly),
# or upsampling by resizing followed by a plain convolution.

# %% [markdown]
# ## Use minigan
#
# `minigan.layers.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding,
# output_padding)` mirrors `torch.nn.ConvTranspose2d`; its weight is
# `(in_channels, out_channels, k, k)`. A DCGAN-style upsampler, 7x7 to 14x14 to 28x28 with
# `k=4, s=2, p=1`, gradient-checked as a stack:

# %%
up = minigan.Sequential(
    minigan.layers.ConvTranspose2d(4, 3, 4, stride=2, padding=1, dtype="float64", rng=1),
    minigan.LeakyReLU(0.2),
    minigan.layers.ConvTranspose2d(3, 1, 4, stride=2, padding=1, dtype="float64", rng=2),
    minigan.Tanh(),
)
print(up)
h0 = rng.standard_normal((2, 4, 7, 7))
print("(2, 4, 7, 7) ->", up(h0).shape)
h_check = rng.standard_normal((2, 4, 3, 2)) if SMALL else h0  # the check perturbs every input
report = minigan.check_module(up, h_check)
print(report)
assert report.passed

# %% [markdown]
# ## Summary
#
# - A convolution without bias is a linear map $y = Ax$; the transposed convolution is
#   $A^\top$: every input value paints a scaled kernel, overlaps add up.
# - $\langle \text{conv2d}(x, W), y\rangle = \langle x, \text{conv\_transpose2d}(y, W)\rangle$
#   with the same weight array; the forward of one is the input gradient of the other.
# - $H_\text{out} = (H-1)s - 2p + k + \text{output\_padding}$; `output_padding` in $[0, s)$
#   chooses among the sizes a strided convolution maps to the same output.
# - Kernel sizes that are not multiples of the stride cover pixels unevenly: checkerboard
#   artifacts. DCGAN uses `k=4, s=2, p=1`.
# - minigan: `functional.conv_transpose2d_forward` / `_backward`, `layers.ConvTranspose2d`.

# %% [markdown]
# ## Exercises
#
# 1. Build the matrix of a *transposed* convolution with `conv_matrix`'s trick (apply it to
#    basis images) and check that it equals `A.T` for the same weight.
# 2. Write the backward of `conv_transpose_loops` by hand (hint: it is a convolution) and
#    gradient-check it with `numerical_gradient`.
# 3. For a generator from a 4x4 map to 32x32, list the layers (kernel, stride, padding) that
#    double the size exactly with a kernel divisible by the stride.
# 4. Replace each transposed convolution of the three-layer stack above with a nearest
#    upsampling by 2 (`np.repeat` on both axes) followed by a 3x3 convolution with padding 1.
#    Does the checkerboard disappear?
# 5. Show that `conv_transpose2d` is *not* the inverse of `conv2d`: compute
#    `conv_transpose2d(conv2d(x, W), W)` for a random `x` and compare it with `x`.
