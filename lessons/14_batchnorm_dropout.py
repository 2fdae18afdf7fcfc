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
# # Lesson 14: Batch norm and dropout
#
# DCGAN (Radford et al. 2016) trains stably only with batch normalisation in both networks.
# Batch norm is also the first layer in this course whose output for one example depends on
# the *other* examples of the batch, and that changes how a GAN must feed its discriminator.
# Dropout, the other layer that behaves differently in training and evaluation, comes along.

# %% [markdown]
# ## Goal
#
# - Derive the backward pass of batch normalisation through the batch mean and variance, and
#   reduce it to the three-term formula minigan uses.
# - Gradient-check it in training and evaluation mode, for `(N, C)` and `(N, C, H, W)`.
# - Understand train vs eval mode: batch statistics vs running statistics, and inverted
#   dropout's $1/(1-p)$ scale.
# - See why a discriminator with batch norm must not see real and fake images in one joint
#   batch, and how minigan decides that (`Module.mixes_batch_rows`).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import minigan
from minigan import data
from minigan import functional as F
from minigan.gan import mixes_batch_rows
from minigan.gradcheck import numerical_gradient, rel_error

SMALL = os.environ.get("MINIGAN_LESSON_MODE", "full") == "small"
rng = np.random.default_rng(0)

# %% [markdown]
# ## Math with shapes
#
# **Forward (training).** For `x (N, C)` each channel $c$ is normalised over its $m = N$
# values (for `x (N, C, H, W)` over its $m = NHW$ values):
#
# $$\mu = \frac1m \sum x, \qquad \sigma^2 = \frac1m \sum (x - \mu)^2, \qquad
# \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y = \gamma \hat x + \beta,$$
#
# with $\mu, \sigma^2, \gamma, \beta$ of shape `(C,)` and the *biased* variance (divided by
# $m$), as in Ioffe & Szegedy (2015), Algorithm 1.
#
# **Backward.** Write $g = \bar y\,\gamma = \partial L/\partial \hat x$ and
# $s = (\sigma^2 + \epsilon)^{-1/2}$, and sum over the $m$ values of a channel. $\hat x$
# depends on $x$ directly and through $\mu$ and $\sigma^2$:
#
# $$\bar\sigma^2 = \sum g\,(x - \mu)\cdot\left(-\tfrac12\right) s^3, \qquad
# \bar\mu = -s \sum g + \bar\sigma^2 \cdot \frac{-2}{m}\sum (x - \mu) = -s \sum g$$
#
# (the second term vanishes because $\sum (x - \mu) = 0$), and
#
# $$\bar x = g\,s + \bar\sigma^2\,\frac{2(x - \mu)}{m} + \frac{\bar\mu}{m}.$$
#
# Substituting $x - \mu = \hat x / s$ and $\bar\sigma^2 = -\tfrac12 s^2 \sum g \hat x$ gives the
# three-term form
#
# $$\bar x = \frac{s}{m}\Big(m\,g - \textstyle\sum g - \hat x \sum g\,\hat x\Big), \qquad
# \bar\gamma = \textstyle\sum \bar y\,\hat x, \qquad \bar\beta = \sum \bar y.$$
#
# Reading: the gradient of a batch-normalised input has no component along the constant
# direction (it sums to 0 per channel) nor along $\hat x$: shifting or scaling a channel of
# the batch does not change its output.
#
# **Evaluation.** The running statistics $r_\mu, r_{\sigma^2}$ (updated in training with
# $r \leftarrow (1 - 0.1)\, r + 0.1 \cdot \text{batch}$, the batch variance *unbiased*,
# PyTorch's convention) replace $\mu, \sigma^2$; they are constants, so $\bar x = g\,
# (r_{\sigma^2} + \epsilon)^{-1/2}$.
#
# **Dropout.** Training: $y = x \odot M$ with $M = 1/(1-p)$ with probability $1-p$, else 0
# (the scale keeps $\mathbb E[y] = x$); evaluation: $y = x$. Backward: $\bar x = \bar y \odot M$.

# %% [markdown]
# ## Implement
#
# ### Batch norm, staged like the derivation


# %%
def bn_forward(x, gamma, beta, eps=1e-5):
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
    mu = x.mean(axis=axes).reshape(shape)
    var = ((x - mu) ** 2).mean(axis=axes).reshape(shape)
    s = 1 / np.sqrt(var + eps)
    xhat = (x - mu) * s
    y = gamma.reshape(shape) * xhat + beta.reshape(shape)
    return y, (x, mu, s, xhat, gamma.reshape(shape), axes)


def bn_backward_staged(dout, cache):
    """The chain rule step by step: through xhat, then sigma^2, then mu."""
    x, mu, s, xhat, gamma, axes = cache
    m = x.size // x.shape[1]
    g = dout * gamma  # dL/dxhat
    dvar = np.sum(g * (x - mu), axis=axes, keepdims=True) * (-0.5) * s**3
    dmu = -s * np.sum(g, axis=axes, keepdims=True)  # + dvar * mean(-2 (x - mu)) = 0
    dx = g * s + dvar * 2 * (x - mu) / m + dmu / m
    return dx, np.sum(dout * xhat, axis=axes), np.sum(dout, axis=axes)


def bn_backward_three_terms(dout, cache):
    x, _, s, xhat, gamma, axes = cache
    m = x.size // x.shape[1]
    g = dout * gamma
    sum_g = np.sum(g, axis=axes, keepdims=True)
    sum_gx = np.sum(g * xhat, axis=axes, keepdims=True)
    return s / m * (m * g - sum_g - xhat * sum_gx)


x = rng.standard_normal((6, 4)) * 3 + 1
gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
y, cache = bn_forward(x, gamma, beta)
dout = rng.standard_normal(y.shape)
dx_staged, dgamma, dbeta = bn_backward_staged(dout, cache)
print("per-channel mean of y - beta:", np.round((y - beta).mean(axis=0), 12))
print(
    "staged vs three-term dx:", f"{rel_error(dx_staged, bn_backward_three_terms(dout, cache)):.1e}"
)
print("sum of dx per channel (should be 0):", np.round(dx_staged.sum(axis=0), 12))

# %% [markdown]
# ## Check
#
# Finite differences in float64, random `dout`, for `x`, $\gamma$ and $\beta$, in both ranks.
# Then the classic mistake: treating $\mu$ and $\sigma^2$ as constants (the eval-mode formula
# used in training) fails the check by a wide margin.

# %%
for shape in ((6, 4), (3, 2, 3, 4)):
    x = rng.standard_normal(shape) * 2 + 0.5
    gamma, beta = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    y, cache = bn_forward(x, gamma, beta)
    dout = rng.standard_normal(y.shape)
    dx, dgamma, dbeta = bn_backward_staged(dout, cache)

    def y_of(_, x=x, gamma=gamma, beta=beta):
        return bn_forward(x, gamma, beta)[0]

    for name, analytic, tensor in (
        ("dx", dx, x),
        ("dgamma", dgamma, gamma),
        ("dbeta", dbeta, beta),
    ):
        err = rel_error(analytic, numerical_gradient(y_of, tensor, dout))
        print(f"x {str(shape):14s} {name:7s} rel_error {err:.1e}")
        assert err < 1e-6
    wrong = dout * cache[4] * cache[2]  # g * s: ignores that mu and sigma^2 depend on x
    print(
        f"x {str(shape):14s} dx without the mean/variance terms: rel_error "
        f"{rel_error(wrong, numerical_gradient(y_of, x, dout)):.1e}  (wrong)"
    )

# %% [markdown]
# The same checks on minigan's pure functions and layers. `check_module` restores the running
# statistics before every perturbed forward (they change in each training pass), so every
# evaluation sees the same state.

# %%
x4 = rng.standard_normal((3, 2, 3, 4)) * 2 + 0.5
out, bn_cache = F.batch_norm_forward(x4, np.ones(2), np.zeros(2), training=True)
dout4 = rng.standard_normal(out.shape)
dx_mg, _, _ = F.batch_norm_backward(dout4, bn_cache)
_, ours = bn_forward(x4, np.ones(2), np.zeros(2))
print(
    "minigan batch_norm_backward vs ours:",
    f"{rel_error(dx_mg, bn_backward_staged(dout4, ours)[0]):.1e}",
)

for layer, xin in (
    (minigan.layers.BatchNorm1d(4, dtype="float64"), rng.standard_normal((6, 4))),
    (minigan.layers.BatchNorm2d(2, dtype="float64"), x4),
    (minigan.layers.BatchNorm2d(2, dtype="float64").eval(), x4),
    (minigan.layers.Dropout(0.3, rng=1), rng.standard_normal((5, 4))),
):
    report = minigan.check_module(layer, xin)
    mode = "train" if layer.training else "eval"
    print(
        f"{layer!r:40s} {mode:5s} max rel_error {report.max_rel_error:.1e}  passed {report.passed}"
    )
    assert report.passed

# %% [markdown]
# ## Use minigan
#
# ### Train vs eval mode
#
# `BatchNorm1d(num_features, eps=1e-5, momentum=0.1)` as in PyTorch, with the same
# `state_dict()` keys. In training it normalises with the batch statistics and moves its
# running statistics toward them; `eval()` switches to the running statistics. Feed it
# batches from a fixed distribution (mean 3, standard deviation 2) and watch the running
# statistics converge, and the two modes' outputs on one small batch.

# %%
bn = minigan.layers.BatchNorm1d(3, dtype="float64")
print("state_dict keys:", list(bn.state_dict()))
true_mean, true_std = np.array([3.0, -1.0, 0.0]), np.array([2.0, 0.5, 1.0])
steps = 60 if SMALL else 200
trace_mean, trace_var = [], []
for _ in range(steps):
    bn(rng.standard_normal((16, 3)) * true_std + true_mean)  # training mode
    trace_mean.append(minigan.to_numpy(bn.running_mean).copy())
    trace_var.append(minigan.to_numpy(bn.running_var).copy())
print(
    f"after {steps} batches: running_mean {np.round(trace_mean[-1], 2)}, "
    f"running_var {np.round(trace_var[-1], 2)} (true {true_mean}, {true_std**2})"
)

small_batch = rng.standard_normal((4, 3)) * true_std + true_mean
y_train = minigan.to_numpy(bn.train()(small_batch))
y_eval = minigan.to_numpy(bn.eval()(small_batch))
bn.train()
print("train mode, per-feature mean of the output:", np.round(y_train.mean(axis=0), 3))
print("eval mode,  per-feature mean of the output:", np.round(y_eval.mean(axis=0), 3))

drop = minigan.layers.Dropout(0.5, rng=3)
xs = np.ones((2000, 8))
y_drop = minigan.to_numpy(drop(xs))
print(
    f"Dropout(0.5) training: {np.mean(y_drop == 0):.1%} zeros, kept values {np.unique(y_drop)}, "
    f"mean {y_drop.mean():.3f} (input 1)"
)
print("Dropout eval is the identity:", np.array_equal(minigan.to_numpy(drop.eval()(xs)), xs))

fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
tm, tv = np.array(trace_mean), np.array(trace_var)
for c in range(3):
    axes[0].plot(tm[:, c], color=f"C{c}", label=f"running_mean[{c}]")
    axes[0].axhline(true_mean[c], color=f"C{c}", ls=":")
    axes[1].plot(tv[:, c], color=f"C{c}", label=f"running_var[{c}]")
    axes[1].axhline(true_std[c] ** 2, color=f"C{c}", ls=":")
for ax in axes:
    ax.set_xlabel("training batch")
    ax.legend(fontsize=8)
axes[0].set_title("running mean -> true mean (dotted), momentum 0.1", fontsize=9)
axes[1].set_title("running (unbiased) variance -> true variance", fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# The initial values (0 and 1) fade like $0.9^t$ (after 20 batches 12 % of them is left),
# then the running statistics fluctuate around the true ones. In train mode every batch is
# normalised to mean $\beta = 0$ exactly, whatever it contains; in eval mode a batch is
# normalised with what the layer has seen, so a batch that is unusual stays unusual.
#
# ### Why D must not see real and fake in one batch
#
# A GAN step gives D a real batch and a fake batch. For a discriminator made only of
# row-by-row layers it does not matter whether they go through as one joint batch
# `[real; fake]` of `2N` rows or as two passes; minigan uses the joint pass because it is
# faster (one forward and one backward on larger matrices; `GAN._d_outputs` shows both
# forms). With batch norm it matters:
#
# - in a joint pass the statistics are those of the *mixture*, so a fake row's output
#   depends on the real rows of the batch (and vice versa): D can compare the halves rather
#   than judge each image;
# - at test time D never sees that mixture.
#
# Measure it: a D with `BatchNorm1d`, real points from lesson 8's ring, fakes from a blob.

# %%
init = np.random.default_rng(5)
D_bn = minigan.Sequential(
    minigan.Linear(2, 16, rng=init),
    minigan.layers.BatchNorm1d(16),
    minigan.LeakyReLU(0.2),
    minigan.Linear(16, 1, rng=init),
)
D_plain = minigan.mlp_discriminator(2, (16,), rng=init)
n = 64
real = data.sample_ring(n, rng)  # (N, 2) float32
fake = (0.2 * rng.standard_normal((n, 2)) + 0.3).astype(np.float32)

h_real = minigan.to_numpy(D_bn[0](real))  # what BatchNorm sees: Linear(2, 16) outputs
h_fake = minigan.to_numpy(D_bn[0](fake))
h_joint = np.concatenate([h_real, h_fake])
print("BatchNorm's batch mean of the first 4 features:")
for name, h in (("real alone", h_real), ("fake alone", h_fake), ("joint [real; fake]", h_joint)):
    print(f"  {name:20s} {np.round(h.mean(axis=0)[:4], 3)}")

out_sep_real = minigan.to_numpy(D_bn(real))
out_sep_fake = minigan.to_numpy(D_bn(fake))
out_joint = minigan.to_numpy(D_bn(np.concatenate([real, fake])))
print(f"max |D(fake) joint - D(fake) separate| = {np.abs(out_joint[n:] - out_sep_fake).max():.3f}")

# Change only the real half; with batch norm the fake half's outputs move too.
other_real = data.sample_ring(n, rng)
out_joint2 = minigan.to_numpy(D_bn(np.concatenate([other_real, fake])))
print(
    f"BatchNorm D: fake outputs moved by {np.abs(out_joint2[n:] - out_joint[n:]).max():.3f} "
    "when only the real rows changed"
)
plain1 = minigan.to_numpy(D_plain(np.concatenate([real, fake])))
plain2 = minigan.to_numpy(D_plain(np.concatenate([other_real, fake])))
print(f"plain MLP D: fake outputs moved by {np.abs(plain2[n:] - plain1[n:]).max():.3f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
feat = np.arange(16)
for h, name, mk in (
    (h_real, "real alone", "o"),
    (h_fake, "fake alone", "s"),
    (h_joint, "joint", "x"),
):
    axes[0].plot(feat, h.mean(axis=0), mk, label=name)
axes[0].set_xlabel("feature of the BatchNorm1d(16) input")
axes[0].set_ylabel("batch mean")
axes[0].set_title("the statistics BatchNorm normalises with", fontsize=9)
axes[0].legend(fontsize=8)
axes[1].scatter(out_sep_fake[:, 0], out_joint[n:, 0], s=8)
lim = [min(out_sep_fake.min(), out_joint.min()), max(out_sep_fake.max(), out_joint.max())]
axes[1].plot(lim, lim, "k:", lw=0.8)
axes[1].set_xlabel("D(fake), fake batch alone")
axes[1].set_ylabel("D(fake), inside [real; fake]")
axes[1].set_title("same fake points, same weights, different scores", fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# The joint mean lies halfway between the two, so neither half is normalised with its own
# statistics, and the scores of the same fake points change with the real points next to
# them. minigan therefore asks the model: every module has a class attribute
# `mixes_batch_rows` (True for `BatchNorm1d/2d`), `minigan.gan.mixes_batch_rows(D)` asks all
# sub-modules, and `GAN` sets `d_joint_batch = not mixes_batch_rows(D)`: a batch-norm D gets
# two passes, real then fake, each normalised with its own statistics (as PyTorch's DCGAN
# example does). The gradient penalty of lesson 16 refuses such a critic outright, because it
# needs one gradient per example.

# %%
print(
    "mixes_batch_rows: BatchNorm D", mixes_batch_rows(D_bn), "| plain D", mixes_batch_rows(D_plain)
)
G_tiny = minigan.mlp_generator(4, (8,), out_features=2, rng=init)
for name, D in (("a BatchNorm1d", D_bn), ("no BatchNorm", D_plain)):
    gan = minigan.GAN(
        G_tiny, D, 4, minigan.Adam(G_tiny.parameters()), minigan.Adam(D.parameters()), seed=0
    )
    print(f"GAN whose D has {name:13s}: d_joint_batch = {gan.d_joint_batch}")
try:
    minigan.objectives.gradient_penalty(D_bn, real)
except ValueError as exc:
    print("gradient_penalty:", exc)

# %% [markdown]
# ## Summary
#
# - Batch norm normalises each channel with the batch mean and biased variance, then scales
#   and shifts: `x (N, C)` or `(N, C, H, W)`, statistics and $\gamma, \beta$ `(C,)`.
# - Its training backward goes through $\mu$ and $\sigma^2$:
#   $\bar x = \frac{s}{m}(m g - \sum g - \hat x \sum g \hat x)$, $g = \bar y \gamma$; using
#   the eval formula $g s$ in training is wrong.
# - Eval mode uses running statistics (momentum 0.1, unbiased variance); inverted dropout
#   scales by $1/(1-p)$ in training and is the identity in eval.
# - Batch norm mixes the rows of a batch: a D with it must see real and fake in separate
#   passes. minigan asks `Module.mixes_batch_rows`, never a list of layer types.
# - minigan: `functional.batch_norm_forward` / `_backward` / `batch_norm_running_stats`,
#   `dropout_forward` / `_backward`, `layers.BatchNorm1d`, `BatchNorm2d`, `Dropout`.

# %% [markdown]
# ## Exercises
#
# 1. **Graded exercise.** Implement the training-mode batch-norm backward (`dx`, `dgamma`,
#    `dbeta` for 2-D and 4-D inputs) in the exercise file and grade it with `minigan check`
#    (exercise `batch_norm_backward`; see `exercises/README.md`). Check your version first
#    with `numerical_gradient` as above, on several shapes.
# 2. Derive $\bar x$ for *layer* normalisation (statistics over the features of each row
#    instead of over the batch). Does it mix the rows of a batch?
# 3. Show that in training mode $\sum_n \bar x_{n c} = 0$ and $\sum_n \bar x_{n c} \hat
#    x_{n c} = 0$ for every channel. What does that say about a gradient step on `x`?
# 4. Run the real/fake experiment with `D_bn.eval()` after a few training batches. Does the
#    joint pass still differ from the separate passes? Why is eval mode still no fix for
#    training?
# 5. Gradient-check `Dropout(0.5)` without restoring the generator state between perturbed
#    forwards (write the loop with `numerical_gradient` yourself). What goes wrong?
