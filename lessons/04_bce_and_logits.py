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
# # Lesson 4: Binary cross-entropy, logits and numerical stability
#
# A GAN's discriminator answers one yes/no question: "is this image real?". Its loss is the
# binary cross-entropy (BCE). Written the textbook way it overflows, returns `inf` or `nan`,
# and, worse for GANs, silently kills gradients. This lesson derives the form minigan uses.

# %% [markdown]
# ## Goal
#
# - Define BCE on probabilities and on **logits** (pre-sigmoid scores).
# - Derive the stable formula $\max(z, 0) - zy + \log(1 + e^{-|z|})$ and its gradient
#   $\sigma(z) - y$.
# - Watch the naive formula break, in float32 and float64, and see why clamping is not a fix.

# %%
import os
import warnings

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
# The discriminator ends with a Linear layer producing a **logit** $z \in \mathbb{R}$ per
# example; $p = \sigma(z) = 1/(1 + e^{-z})$ is the probability "real". With target
# $y \in [0, 1]$ (1 = real, 0 = fake):
#
# $$\ell(p, y) = -\big(y \log p + (1 - y)\log(1 - p)\big), \qquad
#   L = \frac{1}{N}\sum_n \ell_n \quad\text{(reduction "mean")}.$$
#
# Shapes: logits `z (N, 1)`, targets `y (N, 1)` (the same shape; remember lesson 1's
# `(N,)` vs `(N, 1)` trap), loss `()`.
#
# Substitute $p = \sigma(z)$. Using $\log\sigma(z) = -\log(1 + e^{-z})$ and
# $\log(1-\sigma(z)) = -z - \log(1 + e^{-z})$:
#
# $$\ell(z, y) = \log(1 + e^{-z}) + (1 - y) z = \log(1 + e^{z}) - yz .$$
#
# The term $\log(1 + e^{z})$ ("softplus") overflows for large $z$. Split off the large part:
# $\log(1 + e^{z}) = \max(z, 0) + \log(1 + e^{-|z|})$, where $e^{-|z|} \le 1$ can never
# overflow, and `log1p` keeps precision when it is tiny:
#
# $$\boxed{\ell(z, y) = \max(z, 0) - zy + \operatorname{log1p}(e^{-|z|})}$$
#
# The gradient is beautifully simple:
# $\partial\ell/\partial z = \sigma(z) - y$, so for the mean,
# **`dz = dout * (sigmoid(z) - y) / N`**, shape `(N, 1)`; it is bounded in $[-1, 1]$ for
# every $z$.

# %% [markdown]
# ## Implement
#
# First the naive version, sigmoid then log, exactly as the formula reads; then the stable
# one.


# %%
def bce_naive(z, y):
    p = 1 / (1 + np.exp(-z))
    return np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))


def bce_stable(z, y):
    return np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))


def bce_stable_grad(z, y, dout=1.0):
    e = np.exp(-np.abs(z))
    sig = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    return dout * (sig - y) / z.size


for z0 in (0.5, 20.0, 40.0, 800.0):
    z = np.array([[z0], [-z0]])
    y = np.array([[0.0], [1.0]])  # both examples confidently *wrong*
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        naive = bce_naive(z, y)
    note = f"  warnings: {sorted({str(w.message) for w in caught})}" if caught else ""
    print(f"|z| = {z0:5.1f}: naive {naive:9.4f}  stable {bce_stable(z, y):9.4f}{note}")

# %% [markdown]
# The true loss of a confidently wrong answer is about $|z|$. The naive form fails at two
# different places, one for each target:
#
# - **$y = 0$, large $z$:** $\sigma(z) = 1/(1 + e^{-z})$ rounds to exactly 1 once $e^{-z}$ is
#   below half the spacing of floats near 1 ($z \gtrsim 37$ in float64, $z \gtrsim 17$ in
#   float32), long before `exp` overflows, and $\log(1 - 1) = -\infty$.
# - **$y = 1$, very negative $z$:** $\sigma(z)$ itself becomes exactly 0, and $\log 0 = -\infty$.
#   With $1/(1 + e^{-z})$ that happens when $e^{-z}$ overflows to `inf`: at $z \approx -88.7$
#   in float32 ($\log$ of the largest float32, $3.4 \cdot 10^{38}$), $z \approx -709.8$ in
#   float64. (The overflow comes first: $e^{z}$ itself would underflow only below $z \approx -103.3$.)
#
# Plot the loss for a positive example ($y = 1$) in float32:

# %%
zs = np.linspace(-120, 30, 1501).astype(np.float32)
ys = np.ones_like(zs)
with np.errstate(over="ignore", divide="ignore"):
    p32 = (1 / (1 + np.exp(-zs))).astype(np.float32)
    naive32 = -np.log(p32)
    clamped32 = -np.maximum(np.log(p32), -100.0)  # what BCELoss does: log clamped at -100
stable32 = np.maximum(zs, 0) - zs * ys + np.log1p(np.exp(-np.abs(zs)))

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(zs, stable32, label="stable (from logits)", lw=3, alpha=0.5)
ax.plot(zs, np.where(np.isfinite(naive32), naive32, np.nan), "--", label="naive: -log(sigmoid(z))")
ax.plot(zs, clamped32, ":", label="probabilities, log clamped at -100")
ax.set_xlabel("logit z (target y = 1)")
ax.set_ylabel("loss, float32")
ax.set_title("BCE for a real example, computed three ways")
ax.legend()
plt.tight_layout()
plt.show()
first_inf = zs[np.isfinite(naive32)].min()
print(
    f"float32: naive loss finite down to z = {first_inf:.1f}; sigmoid(-88.8) = {p32[np.argmin(np.abs(zs + 88.8))]}"
)

# %% [markdown]
# The naive curve stops (it is `inf`) where $\sigma(z)$ becomes 0, near $z = -88.7$. Clamping
# the log, as `torch.nn.BCELoss` and `minigan.BCELoss` do, keeps the value finite, but look at
# what it does to the **gradient**. On the flat part (in float32 from $z \approx -88.7$, where
# $p = 0$ and the clamped log jumps to $-100$) the loss no longer depends on $z$. In exact arithmetic the chain rule through a separate Sigmoid is harmless:
# $\frac{\partial\ell}{\partial p}\,\sigma'(z) = -\frac{1}{p} \cdot p(1 - p) = -(1 - \sigma(z))
# \approx -1$. In floating point the two factors are computed apart: at $z = -200$ (float64),
# $\sigma'(z) = p(1 - p) \approx 1.4 \cdot 10^{-87}$, while $\partial\ell/\partial p$ is not
# $-1/p \approx -7 \cdot 10^{86}$: `BCELoss.backward`, like PyTorch's, divides by
# $\max(p(1 - p), 10^{-12})$, so it returns $-10^{12}$, and the product is about
# $-1.4 \cdot 10^{-75}$ (printed below) instead of $-1$, even though the example is as wrong
# as can be. A discriminator (or a generator, lesson 8) stuck there stops learning. The logits
# form has gradient $\sigma(z) - 1 \approx -1$: it keeps pushing.

# %%
z_far = np.array([[-200.0]])
one = np.array([[1.0]])
bce_prob = minigan.BCELoss()
sig = minigan.Sigmoid()
loss_p = bce_prob(sig(z_far), one)
grad_p = sig.backward(bce_prob.backward())  # chain rule through the separate sigmoid
bce_logit = minigan.BCEWithLogitsLoss()
loss_z = bce_logit(z_far, one)
grad_z = bce_logit.backward()
print(f"Sigmoid + BCELoss:   loss {float(loss_p):7.2f}  dL/dz {float(grad_p[0, 0]):+.3e}")
print(f"BCEWithLogitsLoss:   loss {float(loss_z):7.2f}  dL/dz {float(grad_z[0, 0]):+.3e}")
p_far = float(sig(z_far)[0, 0])
print(
    f"sigmoid'(-200) = {p_far * (1 - p_far):.2e}; exact chain rule -(1 - sigmoid) = {p_far - 1:+.3e}"
)

# %% [markdown]
# ## Check
#
# Our stable loss equals the naive one wherever the naive one is finite, and its gradient
# passes a numerical check, also at large logits where the naive form is useless.

# %%
z = rng.normal(scale=3.0, size=(8, 1))
y = rng.uniform(size=(8, 1))  # soft targets in [0, 1] work too
print("stable == naive for moderate logits:", np.isclose(bce_stable(z, y), bce_naive(z, y)))
for scale in (1.0, 30.0):
    zc = rng.normal(scale=scale, size=(8, 1))
    numeric = numerical_gradient(lambda _, zc=zc: np.asarray(bce_stable(zc, y)), zc, np.array(1.0))
    err = rel_error(bce_stable_grad(zc, y), numeric)
    print(f"logit scale {scale:4.1f}: gradient relative error {err:.1e}")
    assert err < 1e-6

# %% [markdown]
# ## Use minigan
#
# `minigan.BCEWithLogitsLoss(reduction="mean")` (the name and default of
# `torch.nn.BCEWithLogitsLoss`) implements the boxed formula in
# `minigan.functional.bce_with_logits_forward`; its `backward(dout=None)` returns
# `dout * (sigmoid(z) - y) / N`. It agrees with our version and is finite at $\pm 10^3$.
# `minigan.gradcheck(loss, z, y)` checks a loss in one line.

# %%
loss_fn = minigan.BCEWithLogitsLoss()
print("minigan == ours:", np.isclose(float(loss_fn(z, y)), bce_stable(z, y)))
print("gradient == ours:", np.allclose(loss_fn.backward(), bce_stable_grad(z, y)))
print("gradcheck:", minigan.gradcheck(loss_fn, z, y))

huge = np.array([[1e3], [-1e3]], dtype=np.float32)
targets = np.array([[0.0], [1.0]], dtype=np.float32)
print("float32 loss at +-1e3:", loss_fn(huge, targets), "gradient:", loss_fn.backward().ravel())
out, _ = F.bce_with_logits_forward(huge, targets, reduction="none")
print("per-example losses:", out.ravel(), "dtype", out.dtype)

# %% [markdown]
# The same idea, "never exponentiate something large", gives the softmax cross-entropy used
# for classification in lesson 7 (`minigan.CrossEntropyLoss`): subtract the row maximum
# before `exp`, the log-sum-exp trick.

# %% [markdown]
# ## Summary
#
# - Work with logits. $\ell(z, y) = \max(z, 0) - zy + \operatorname{log1p}(e^{-|z|})$ never
#   overflows, and $\partial\ell/\partial z = \sigma(z) - y$ stays in $[-1, 1]$.
# - Sigmoid-then-log returns `inf` as soon as $\sigma(z)$ rounds to 1 ($z \gtrsim 17$ in
#   float32, target 0) or to 0 ($z \lesssim -88.7$ in float32, target 1).
# - Clamping the log keeps the value finite but zeroes the gradient exactly where learning
#   is needed most.
# - In minigan: `BCEWithLogitsLoss` after a Linear layer, never `Sigmoid` + `BCELoss`.

# %% [markdown]
# ## Exercises
#
# 1. **Gradient-check exercise.** In `exercises/student_layers.py` implement
#    `BCEWithLogitsLoss.backward(dout=None)`: the gradient with respect to the logits for
#    `reduction="mean"` and `"sum"`, scaled by the upstream `dout` (default 1). Check it with
#    `minigan.gradcheck.check_function` or `minigan check exercises/student_layers.py`
#    (the grader also tries logits of ±1e3).
# 2. Derive $\log(1 + e^{z}) = \max(z, 0) + \log(1 + e^{-|z|})$ and the gradient
#    $\sigma(z) - y$ from the boxed formula, handling $z > 0$ and $z < 0$ separately.
# 3. Compute BCE for soft targets $y = 0.9$ ("label smoothing") at the logit that minimises
#    it. What is the minimum value, and why is it not 0?
# 4. Write a stable `log_sigmoid(z)` and use it for $\log\sigma(z)$ and
#    $\log(1 - \sigma(z)) = \log\sigma(-z)$.
