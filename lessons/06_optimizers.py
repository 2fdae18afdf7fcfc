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
# # Lesson 6: Optimizers: SGD, momentum and Adam
#
# Backward passes give gradients; an optimizer turns them into parameter updates. GANs are
# famously sensitive to this choice (almost every GAN paper uses Adam with
# $\beta_1 = 0.5$), so it pays to see what each rule does on a problem small enough to draw.

# %% [markdown]
# ## Goal
#
# - Write the update rules of SGD, SGD with momentum, and Adam, with PyTorch's conventions.
# - Understand Adam's **bias correction** and see what happens without it.
# - Compare the optimizers on a 2-D ill-conditioned quadratic (trajectories) and on a small
#   classifier built from minigan layers (loss curves).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import minigan

SMALL = os.environ.get("MINIGAN_LESSON_MODE", "full") == "small"
rng = np.random.default_rng(0)

# %% [markdown]
# ## Math with shapes
#
# Every rule acts elementwise on a parameter `p` and its gradient `g` of the same shape
# (`weight (out, in)`, `bias (out,)`); the optimizer's buffers have that shape too.
#
# **SGD**: $p \leftarrow p - \eta\, g$.
#
# **Momentum** (PyTorch's form): $b \leftarrow \mu b + g$ (with $b = g$ on the first step),
# $p \leftarrow p - \eta\, b$. The buffer $b$ is a running sum of past gradients: directions
# where gradients agree build up speed, directions where they flip sign cancel out.
#
# **Adam** (Kingma & Ba 2015, Algorithm 1), at step $t = 1, 2, \dots$:
#
# $$m \leftarrow \beta_1 m + (1 - \beta_1) g, \qquad v \leftarrow \beta_2 v + (1 - \beta_2) g^2,$$
# $$\hat m = \frac{m}{1 - \beta_1^t}, \qquad \hat v = \frac{v}{1 - \beta_2^t}, \qquad
#   p \leftarrow p - \eta\,\frac{\hat m}{\sqrt{\hat v} + \epsilon}.$$
#
# $m$ and $v$ estimate the mean and the uncentred variance of each gradient element, so the
# step $\hat m / \sqrt{\hat v}$ is about $\pm 1$ whatever the gradient's scale: every parameter
# moves at a speed of roughly $\eta$.
#
# **Bias correction.** $m$ and $v$ start at 0. Unrolling, $m_t = (1-\beta_1)\sum_{i \le t}
# \beta_1^{t-i} g_i$, so for a constant gradient $m_t = (1 - \beta_1^t)\, g$: too small by
# exactly the factor that $\hat m$ divides out. The same holds for $v$ with $\beta_2$. Without
# correction the first step is $\eta (1-\beta_1)/\sqrt{1-\beta_2} \approx 3.2\eta$ for the
# default betas: the *denominator* is underestimated more than the numerator.

# %% [markdown]
# ## Implement
#
# The three rules on a NumPy vector, exactly as written above.


# %%
def sgd(grad_fn, w0, lr, steps):
    w = np.array(w0, dtype=np.float64)
    path = [w.copy()]
    for _ in range(steps):
        w -= lr * grad_fn(w)
        path.append(w.copy())
    return np.array(path)


def momentum(grad_fn, w0, lr, mu, steps):
    w = np.array(w0, dtype=np.float64)
    b = None
    path = [w.copy()]
    for _ in range(steps):
        g = grad_fn(w)
        b = g.copy() if b is None else mu * b + g
        w -= lr * b
        path.append(w.copy())
    return np.array(path)


def adam(grad_fn, w0, lr, steps, betas=(0.9, 0.999), eps=1e-8, bias_correction=True):
    w = np.array(w0, dtype=np.float64)
    m, v = np.zeros_like(w), np.zeros_like(w)
    b1, b2 = betas
    path = [w.copy()]
    for t in range(1, steps + 1):
        g = grad_fn(w)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if bias_correction:
            m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        else:
            m_hat, v_hat = m, v
        w -= lr * m_hat / (np.sqrt(v_hat) + eps)
        path.append(w.copy())
    return np.array(path)


# The toy problem: an elongated bowl, curvature 0.5 along w1 and 25 along w2 (condition 50).
CURV = np.array([0.5, 25.0])


def bowl(w):
    return 0.5 * np.sum(CURV * w * w, axis=-1)


def bowl_grad(w):
    return CURV * w


w0 = [-4.0, 1.0]
steps = 150
paths = {
    "SGD lr=0.075": sgd(bowl_grad, w0, 0.075, steps),
    "momentum lr=0.02, mu=0.9": momentum(bowl_grad, w0, 0.02, 0.9, steps),
    "Adam lr=0.2": adam(bowl_grad, w0, 0.2, steps),
    "Adam lr=0.2, betas=(0.5, 0.999)": adam(bowl_grad, w0, 0.2, steps, betas=(0.5, 0.999)),
}

g1, g2 = np.meshgrid(np.linspace(-4.5, 1.5, 200), np.linspace(-1.5, 1.5, 200))
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].contour(
    g1, g2, bowl(np.stack([g1, g2], axis=-1)), levels=np.geomspace(0.01, 40, 12), colors="lightgray"
)
for name, path in paths.items():
    axes[0].plot(path[:40, 0], path[:40, 1], ".-", ms=3, lw=1, label=name)
    axes[1].semilogy(bowl(path), label=name)
axes[0].plot(0, 0, "k*", ms=10)
axes[0].set_title("first 40 steps on the bowl 0.5 (0.5 w1² + 25 w2²)")
axes[0].set_xlabel("w1")
axes[0].set_ylabel("w2")
axes[1].set_title("loss")
axes[1].set_xlabel("step")
axes[1].set_ylim(1e-12, 1e2)
axes[1].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Plain SGD must keep `lr` below $2/25$ (the steep direction's stability limit), so it zig-zags
# across the valley while crawling along it. Momentum damps the zig-zag and accumulates speed
# along the valley. Adam rescales each coordinate by its own gradient size, so both directions
# move at a similar pace; with $\beta_1 = 0.5$ (short memory) it follows the gradient's sign
# closely.
#
# ### Bias correction
#
# Feed Adam a constant gradient and look at the size of each step, with and without
# correction:

# %%
T = np.arange(1, 101)
plt.figure(figsize=(6, 3.5))
for betas in ((0.9, 0.999), (0.5, 0.999)):
    for corrected in (True, False):
        path = adam(
            lambda w: np.ones_like(w), [0.0], 1.0, len(T), betas=betas, bias_correction=corrected
        )
        step = -np.diff(path[:, 0])  # step size in units of lr
        style = "-" if corrected else "--"
        plt.plot(
            T, step, style, label=f"betas={betas}, {'corrected' if corrected else 'no correction'}"
        )
plt.xlabel("step t")
plt.ylabel("step size / lr")
plt.title("Adam on a constant gradient")
plt.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# With correction every step is exactly $\eta$ from the start (the two solid curves coincide).
# Without it the early steps are 3 to 17 times too large (the $\sqrt{v}$ in the denominator is
# still tiny), and the excess decays only over the $\sim 1/(1-\beta_2) = 1000$ steps it takes
# $v$ to warm up.

# %% [markdown]
# ## Check
#
# minigan's `SGD` and `Adam` follow PyTorch's update rules. They update `Parameter` handles
# of a `Module`, so wrap our 2-vector in a one-parameter module and compare trajectories.


# %%
class Point(minigan.Module):
    """A module whose only parameter is a point w (2,): the optimizers need a Module."""

    def __init__(self, w0):
        super().__init__()
        self.params["w"] = np.array(w0, dtype=np.float64)
        self.grads["w"] = np.zeros(2)


def run_minigan(make_optimizer, steps):
    point = Point(w0)
    opt = make_optimizer(point.parameters())
    path = [point.params["w"].copy()]
    for _ in range(steps):
        opt.zero_grad()
        point.grads["w"] += bowl_grad(point.params["w"])  # what a backward pass would add
        opt.step()
        path.append(point.params["w"].copy())
    return np.array(path)


pairs = {
    "SGD": (paths["SGD lr=0.075"], lambda p: minigan.SGD(p, lr=0.075)),
    "momentum": (
        paths["momentum lr=0.02, mu=0.9"],
        lambda p: minigan.SGD(p, lr=0.02, momentum=0.9),
    ),
    "Adam": (paths["Adam lr=0.2"], lambda p: minigan.Adam(p, lr=0.2)),
}
for name, (ours, make) in pairs.items():
    dev = np.max(np.abs(run_minigan(make, steps) - ours))
    print(f"{name:9s} max |minigan - ours| over {steps} steps: {dev:.1e}")
    assert dev < 1e-10

# %% [markdown]
# ## Use minigan
#
# Now a real (if small) network: an MLP classifier on two interleaved half-moons, trained with
# `BCEWithLogitsLoss` (lesson 4). Same data, same initial weights, three optimizers. The loop
# is the pattern of every training loop in this course:
# `zero_grad` -> `forward` -> loss -> `backward` -> `step`.


# %%
def two_moons(n, noise, rng):
    t = rng.uniform(0, np.pi, n)
    label = rng.integers(0, 2, n)
    x = np.where(label == 0, np.cos(t), 1 - np.cos(t))
    y = np.where(label == 0, np.sin(t), 0.5 - np.sin(t))
    pts = np.stack([x, y], axis=1) + noise * rng.standard_normal((n, 2))
    return pts.astype(np.float32), label.astype(np.float32)[:, None]


X, Y = two_moons(512, 0.12, rng)  # X (512, 2), Y (512, 1)


def make_mlp(seed):
    r = np.random.default_rng(seed)
    return minigan.Sequential(
        minigan.Linear(2, 32, rng=r), minigan.ReLU(),
        minigan.Linear(32, 32, rng=r), minigan.ReLU(),
        minigan.Linear(32, 1, rng=r),
    )  # fmt: skip


def train(make_opt, steps, batch=64, seed=0):
    model = make_mlp(seed)
    opt = make_opt(model.parameters())
    loss_fn = minigan.BCEWithLogitsLoss()
    batches = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        idx = batches.integers(0, len(X), batch)
        opt.zero_grad()
        logits = model(X[idx])  # (B, 1)
        losses.append(loss_fn(logits, Y[idx]))  # 0-d arrays; converted once at the end
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()
    return model, np.array([float(v) for v in losses])


steps = 300 if SMALL else 1500
runs = {
    "SGD lr=0.1": lambda p: minigan.SGD(p, lr=0.1),
    "momentum lr=0.1, mu=0.9": lambda p: minigan.SGD(p, lr=0.1, momentum=0.9),
    "Adam lr=1e-2": lambda p: minigan.Adam(p, lr=1e-2),
}
models = {}
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for name, make in runs.items():
    models[name], losses = train(make, steps)
    smooth = np.convolve(losses, np.ones(20) / 20, mode="valid")
    axes[0].semilogy(smooth, label=name)
    acc = np.mean((models[name](X) > 0) == (Y > 0.5))
    print(f"{name:25s} final loss {smooth[-1]:.3f}  train accuracy {acc:.3f}")
axes[0].set_xlabel("step")
axes[0].set_ylabel("BCE (moving average of 20)")
axes[0].set_title("two moons, MLP 2-32-32-1")
axes[0].legend()

gx, gy = np.meshgrid(np.linspace(-1.5, 2.5, 150), np.linspace(-1, 1.5, 150))
grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
prob = minigan.functional.sigmoid(models["Adam lr=1e-2"](grid)).reshape(gx.shape)
axes[1].contourf(gx, gy, prob, levels=20, cmap="RdBu_r", alpha=0.6)
axes[1].scatter(X[:, 0], X[:, 1], c=Y[:, 0], cmap="RdBu_r", s=6, edgecolors="k", linewidths=0.2)
axes[1].set_title("Adam's model: P(class 1)")
plt.tight_layout()
plt.show()

# %% [markdown]
# Note `losses.append(loss_fn(...))` keeps 0-d arrays and converts them with `float()` once,
# after the loop: on a GPU, `float()` waits for the device, so calling it every step would
# serialise the training loop (lesson 10).
#
# For the GAN we will use Adam with `lr=2e-4, betas=(0.5, 0.999)` (Radford et al. 2016): a
# shorter memory for $m$ suits a loss landscape that moves as the other network learns.

# %% [markdown]
# ## Summary
#
# - SGD: $p \mathrel{-}= \eta g$; stable only for $\eta < 2/\lambda_{\max}$, slow along flat
#   directions.
# - Momentum: $b = \mu b + g$, $p \mathrel{-}= \eta b$; damps oscillations, speeds up
#   consistent directions.
# - Adam: per-element step $\eta\,\hat m/(\sqrt{\hat v} + \epsilon)$, roughly scale-free;
#   bias correction makes the early steps the right size.
# - minigan's `SGD` and `Adam` match these rules (and PyTorch's) to rounding; the loop is
#   `zero_grad`, forward, loss, backward, `step`.

# %% [markdown]
# ## Exercises
#
# 1. Add Nesterov momentum to `momentum` ($p \mathrel{-}= \eta(g + \mu b)$ after updating $b$)
#    and compare with `minigan.SGD(..., momentum=0.9, nesterov=True)`.
# 2. Find, by experiment, the learning rate at which SGD diverges on the bowl, and compare
#    with $2/25$.
# 3. Show that Adam is invariant to rescaling the loss by a constant $c > 0$ (up to $\epsilon$),
#    while SGD is not. Check it numerically on the bowl.
# 4. Implement AdamW's decoupled weight decay and explain why it differs from Adam's
#    `weight_decay` (an L2 term added to the gradient).
