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
# # Lesson 8: The GAN game
#
# A generative adversarial network (Goodfellow et al., 2014) trains two networks against each
# other: a generator $G$ that turns noise into samples, and a discriminator $D$ that tells
# real samples from generated ones. Here we study the game on paper, fix the generator's loss
# so that it actually learns, and play it on a 2-D toy distribution where every sample can be
# plotted.

# %% [markdown]
# ## Goal
#
# - Write the minimax value $V(D, G)$, find the optimal discriminator, and see why the game's
#   value at equilibrium is $-\log 4$.
# - Understand why the generator minimises $-\log D(G(z))$ (**non-saturating** loss) rather than
#   $\log(1 - D(G(z)))$, and measure the difference.
# - Trace the gradient from D's output back into G's output, and check it numerically.
# - Train a GAN built from minigan layers with `minigan.GAN` on a ring of eight Gaussians.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from reference_log import compare, record  # lessons/reference_log.py

import minigan
from minigan import data
from minigan import functional as F
from minigan.data import ring_centers
from minigan.gradcheck import numerical_gradient, rel_error

SMALL = os.environ.get("MINIGAN_LESSON_MODE", "full") == "small"
rng = np.random.default_rng(0)

# %% [markdown]
# ## Math with shapes
#
# **Players.** Noise `z (N, latent_dim)` with $z \sim \mathcal{N}(0, I)$; the generator
# `G: (N, latent_dim) -> (N, 2)`; the discriminator `D: (N, 2) -> (N, 1)` returns a logit $s$,
# and $D(x) = \sigma(s)$ is its probability that $x$ is real (the notation of
# [The math of each layer](../docs/math.md#the-gan-losses): $D$ is always the probability).
#
# **The value.** $D$ maximises and $G$ minimises
#
# $$V(D, G) = \mathbb{E}_{x \sim p_\text{data}}[\log D(x)]
#   + \mathbb{E}_{z}[\log(1 - D(G(z)))].$$
#
# On a batch, $-V$ is exactly D's binary cross-entropy with targets 1 for real and 0 for fake
# (lesson 4): `BCE(D(x), 1) + BCE(D(G(z)), 0)`, computed from logits.
#
# **The optimal discriminator.** For a fixed $G$ with sample density $p_g$, $V$ is an integral
# of $p_\text{data}(x)\log D(x) + p_g(x)\log(1 - D(x))$; maximising $a\log y + b\log(1-y)$ over
# $y \in (0, 1)$ gives $y = a/(a+b)$, so
#
# $$D^*(x) = \frac{p_\text{data}(x)}{p_\text{data}(x) + p_g(x)}, \qquad
#   V(D^*, G) = -\log 4 + 2\,\mathrm{JSD}(p_\text{data} \,\|\, p_g).$$
#
# The Jensen-Shannon divergence is $\ge 0$ and zero only when $p_g = p_\text{data}$: at the
# equilibrium the generator copies the data, $D^* = 1/2$ everywhere, and
# $V = -\log 4 \approx -1.386$ (D's loss $\log 4$).
#
# **The generator's loss.** Write $\tilde s$ for D's logit on a fake sample, so
# $D(G(z)) = \sigma(\tilde s)$. The minimax loss $\log(1 - \sigma(\tilde s))$ has
# $\partial/\partial \tilde s = -\sigma(\tilde s)$: when D confidently rejects the
# fakes ($\sigma(\tilde s) \to 0$, which is the situation at the start of training) the gradient
# vanishes. The **non-saturating** loss $-\log\sigma(\tilde s)$ = `BCE(D(G(z)), 1)` has the same
# fixed point but $\partial/\partial \tilde s = \sigma(\tilde s) - 1 \to -1$: strongest exactly when G is worst.
#
# **Back into G.** With `dlogits (N, 1)` from the loss, `dfake = D.backward(dlogits)` has shape
# `(N, 2)` (D's parameters are frozen for this pass), and `G.backward(dfake)` fills G's
# gradients. One training step: a D update on a real and a fake batch, then a G update through
# the updated D.

# %% [markdown]
# ## Implement
#
# ### The optimal discriminator, numerically
#
# Take two 1-D densities on a grid, a bimodal "data" density and a Gaussian "generator", and
# check $V(D^*, G) = -\log 4 + 2\,\mathrm{JSD}$.

# %%
grid = np.linspace(-10, 10, 8001)  # wide enough that both densities integrate to 1
dx = grid[1] - grid[0]


def gauss(x, mu, sd):
    return np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))


p_data = 0.5 * gauss(grid, -1.5, 0.5) + 0.5 * gauss(grid, 1.5, 0.5)


def value_at_optimum(p_g):
    d_star = p_data / (p_data + p_g)
    one_minus = p_g / (p_data + p_g)  # 1 - D*, without the cancellation of 1 - d_star
    v = np.sum(p_data * np.log(d_star) + p_g * np.log(one_minus)) * dx
    m = 0.5 * (p_data + p_g)
    jsd = 0.5 * np.sum(p_data * np.log(p_data / m) + p_g * np.log(p_g / m)) * dx
    return d_star, v, jsd


fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
for ax, (mu, sd) in zip(axes, ((0.0, 0.5), (0.0, 1.6)), strict=False):
    p_g = gauss(grid, mu, sd)
    d_star, v, jsd = value_at_optimum(p_g)
    ax.plot(grid, p_data, label="p_data")
    ax.plot(grid, p_g, label="p_g")
    ax.plot(grid, d_star, "k--", label="D*(x)")
    ax.set_title(f"V(D*,G) = {v:.3f},  -log4 + 2 JSD = {-np.log(4) + 2 * jsd:.3f}", fontsize=9)
    ax.set_xlim(-5, 5)
    ax.legend(fontsize=8)
    assert np.isclose(v, -np.log(4) + 2 * jsd)
sds = np.linspace(0.3, 3, 40)
axes[2].plot(sds, [value_at_optimum(gauss(grid, 0, s))[1] for s in sds])
axes[2].axhline(-np.log(4), color="gray", ls=":", label="-log 4")
axes[2].set_xlabel("generator's standard deviation")
axes[2].set_ylabel("V(D*, G)")
axes[2].set_title("a single Gaussian can never reach -log 4", fontsize=9)
axes[2].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# $D^*$ is high where the data has more mass than the generator and low where the generator
# over-produces; its gradient points the generator's samples toward the data. A single
# Gaussian cannot match two modes, so $V(D^*, G)$ stays above $-\log 4$.
#
# ### The two generator losses
#
# Write both generator losses and their gradients with respect to D's logits on the fakes, as
# functions of `logits (N, 1)`.


# %%
def g_loss_and_grad(logits, kind):
    """Mean generator loss and dL/dlogits (N, 1). kind: "saturating" or "non_saturating"."""
    n = logits.shape[0]
    d = F.sigmoid(logits)  # D(G(z))
    if kind == "saturating":  # minimise log(1 - D(G(z))) = -softplus(logit)
        loss = -np.mean(np.logaddexp(0, logits))
        grad = -d / n
    else:  # minimise -log D(G(z)) = softplus(-logit)
        loss = np.mean(np.logaddexp(0, -logits))
        grad = (d - 1) / n
    return loss, grad


ls = np.linspace(-8, 8, 401)[:, None]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for kind in ("saturating", "non_saturating"):
    per_example = [g_loss_and_grad(np.array([[v]]), kind) for v in ls[:, 0]]
    axes[0].plot(F.sigmoid(ls), [p[0] for p in per_example], label=kind)
    axes[1].plot(F.sigmoid(ls), [abs(p[1][0, 0]) for p in per_example], label=kind)
axes[0].set_ylabel("generator loss")
axes[1].set_ylabel("|dL / d logit|")
for ax in axes:
    ax.set_xlabel("D(G(z))")
    ax.legend()
axes[1].annotate(
    "D rejects fakes:\nsaturating loss\nhas no gradient",
    (0.02, 0.02),
    (0.08, 0.42),
    arrowprops={"arrowstyle": "->"},
    fontsize=8,
)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Check
#
# Both gradients against finite differences, then the gradient that matters for training:
# from the loss, through a minigan discriminator, into the generator's output `fake (N, 2)`.

# %%
logits = rng.normal(scale=2.0, size=(7, 1))
for kind in ("saturating", "non_saturating"):
    _, analytic = g_loss_and_grad(logits, kind)
    numeric = numerical_gradient(
        lambda _, kind=kind: np.asarray(g_loss_and_grad(logits, kind)[0]), logits, np.array(1.0)
    )
    print(f"{kind:15s} dL/dlogits rel_error {rel_error(analytic, numeric):.1e}")
    assert rel_error(analytic, numeric) < 1e-6

D64 = minigan.mlp_discriminator(2, (16, 16), dtype="float64", rng=0)
fake = rng.normal(scale=0.5, size=(6, 2))
bce = minigan.BCEWithLogitsLoss()


def g_loss_of(fake_batch):
    lg = D64.forward(fake_batch)
    return bce.forward(lg, np.ones_like(lg))  # non-saturating: BCE(D(G(z)), 1)


g_loss_of(fake)
D64.requires_grad_(False)  # only dL/dfake is needed; D's own gradients stay untouched
dfake = D64.backward(bce.backward())  # (6, 2)
D64.requires_grad_(True)
numeric = numerical_gradient(lambda _: g_loss_of(fake), fake, np.array(1.0))
print("dL_G/dfake", dfake.shape, f"rel_error {rel_error(dfake, numeric):.1e}")
assert rel_error(dfake, numeric) < 1e-6
print("D's parameter gradients untouched:", all(not np.any(p.grad) for p in D64.parameters()))

# %% [markdown]
# ## Use minigan
#
# ### The data: eight Gaussians on a ring
#
# A classic test for GANs (Metz et al. 2017): eight well separated modes. The generator ends
# in Tanh, so the ring has radius 0.75 to fit in $(-1, 1)$.

# %%
RADIUS, STD, MODES = 0.75, 0.03, 8
CENTERS = ring_centers(MODES, RADIUS)  # (MODES, 2)


def sample_ring(n, rng):
    """n points (n, 2) float32 from the ring (minigan.data.sample_ring)."""
    return data.sample_ring(n, rng, MODES, RADIUS, STD)


def mode_stats(x, tol=4 * STD):
    """Fraction of samples within tol of a centre, and samples per mode (N,) -> (), (MODES,)."""
    dist = np.linalg.norm(x[:, None, :] - CENTERS[None], axis=2)  # (N, MODES)
    near = np.min(dist, axis=1) < tol
    return float(np.mean(near)), np.bincount(np.argmin(dist, axis=1)[near], minlength=MODES)


real_preview = sample_ring(2000, rng)
near_real, per_mode_real = mode_stats(real_preview)
print(f"real data: fraction near a mode {near_real:.2f}, per mode {per_mode_real}")

# %% [markdown]
# ### The models and the game
#
# `mlp_generator` and `mlp_discriminator` build `Sequential` stacks of `Linear` and
# `LeakyReLU(0.2)` (G ends in `Tanh`, D returns logits). `minigan.GAN` holds both, their Adam
# optimizers and the noise generator; `train_step(real)` plays one round exactly as in
# "Math with shapes" and returns 0-d arrays: D's loss, G's loss, and the mean of $D(x)$ and
# $D(G(z))$ on the batch.

# %%
latent_dim, hidden, batch = 8, (64, 64), 128
init = np.random.default_rng(1)
G = minigan.mlp_generator(latent_dim, hidden, out_features=2, rng=init)
D = minigan.mlp_discriminator(2, hidden, rng=init)
gan = minigan.GAN(
    G,
    D,
    latent_dim,
    g_optimizer=minigan.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999)),
    d_optimizer=minigan.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999)),
    seed=2,
)
print(G, D, sep="\n")

steps = 1000 if SMALL else 5000
snap_at = sorted({0, steps // 20, steps // 5, steps // 2, steps})
z_fixed = np.random.default_rng(3).standard_normal((1500, latent_dim)).astype(np.float32)
data_rng = np.random.default_rng(4)
history, snapshots = [], {}
start = time.perf_counter()
for step in range(steps + 1):
    if step in snap_at:
        snapshots[step] = minigan.to_numpy(gan.sample(len(z_fixed), z=z_fixed))
    if step == steps:
        break
    history.append(gan.train_step(sample_ring(batch, data_rng)))
seconds = time.perf_counter() - start
hist = {k: np.array([float(h[k]) for h in history]) for k in history[0]}  # one sync, at the end
print(f"{steps} steps in {seconds:.1f} s ({1e3 * seconds / steps:.1f} ms/step)")

# %%
fig, axes = plt.subplots(1, len(snap_at), figsize=(3 * len(snap_at), 3))
for ax, step in zip(axes, snap_at, strict=True):
    ax.scatter(real_preview[:, 0], real_preview[:, 1], s=2, c="lightgray")
    ax.scatter(snapshots[step][:, 0], snapshots[step][:, 1], s=2, c="C3")
    near, _ = mode_stats(snapshots[step])
    ax.set_title(f"step {step}: {near:.0%} near a mode", fontsize=9)
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-1.1, 1.1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
plt.suptitle("generated samples (red) over the real ring (gray), same z throughout")
plt.tight_layout()
plt.show()


# %%
def smooth(v, k=25):
    return np.convolve(v, np.ones(k) / k, mode="valid")


fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
axes[0].plot(smooth(hist["d_loss"]), label="D loss")
axes[0].plot(smooth(hist["g_loss"]), label="G loss (non-saturating)")
axes[0].axhline(np.log(4), color="gray", ls=":", label="log 4 (D at equilibrium)")
axes[0].axhline(np.log(2), color="gray", ls="--", label="log 2 (G at equilibrium)")
axes[0].set_xlabel("step")
axes[0].legend(fontsize=8)
axes[1].plot(smooth(hist["d_real"]), label="mean D(x), real")
axes[1].plot(smooth(hist["d_fake"]), label="mean D(G(z)), fake")
axes[1].axhline(0.5, color="gray", ls=":")
axes[1].set_xlabel("step")
axes[1].set_ylim(0, 1)
axes[1].legend(fontsize=8)

gx, gy = np.meshgrid(np.linspace(-1.1, 1.1, 120), np.linspace(-1.1, 1.1, 120))
pts = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
prob = minigan.to_numpy(F.sigmoid(D(pts))).reshape(gx.shape)
cs = axes[2].contourf(gx, gy, prob, levels=20, cmap="RdBu_r")
fig.colorbar(cs, ax=axes[2], label="D(x)")
axes[2].scatter(snapshots[steps][:, 0], snapshots[steps][:, 1], s=1, c="k")
axes[2].set_aspect("equal")
axes[2].set_title("the final discriminator, with G's samples", fontsize=9)
plt.tight_layout()
plt.show()
near, per_mode = mode_stats(snapshots[steps])
print(f"final: {near:.0%} of samples within {4 * STD} of a mode; samples per mode {per_mode}")
print(
    f"last 100 steps: D loss {hist['d_loss'][-100:].mean():.3f} (log 4 = {np.log(4):.3f}), "
    f"D(x) {hist['d_real'][-100:].mean():.2f}, D(G(z)) {hist['d_fake'][-100:].mean():.2f}"
)
assert near > mode_stats(snapshots[0])[0], "the generator should move toward the data"
run = {
    "steps": steps,
    "final_near_mode": near,
    "final_modes_covered": int(np.sum(per_mode >= 0.02 * len(snapshots[steps]))),
    "final_per_mode": [int(n) for n in per_mode],
    "last100_d_loss": float(hist["d_loss"][-100:].mean()),
    "last100_d_real": float(hist["d_real"][-100:].mean()),
    "last100_d_fake": float(hist["d_fake"][-100:].mean()),
}
_ = compare(
    "08_gan_game",
    run,
    [
        ("steps", "steps", "d"),
        ("samples within 4 std of a mode", "final_near_mode", ".0%"),
        ("modes with >= 2 % of samples", "final_modes_covered", "d"),
        ("samples per mode", "final_per_mode", "d"),
        ("last 100 steps: D loss", "last100_d_loss", ".3f"),
        ("last 100 steps: D(x)", "last100_d_real", ".2f"),
        ("last 100 steps: D(G(z))", "last100_d_fake", ".2f"),
    ],
)

# %% [markdown]
# Reading the plots: D's loss hovers near $\log 4$ and both $D(x)$ and $D(G(z))$ near $1/2$:
# neither player wins outright, which is what a healthy GAN looks like. (A GAN's losses do not
# go down like a classifier's: they measure a game, not progress.) The samples start as a blob
# in the centre, overshoot over the whole square, contract onto the circle through the modes,
# and finally gather into the eight modes. D's map shows why: $D(x) > 1/2$ where the data still
# has more mass than the generator (the modes), low elsewhere, so its gradient pushes samples
# into the modes. The thin bridges between modes remain because G is a continuous map from a
# connected noise space: it cannot jump from one mode to the next. In small mode (1000 steps)
# the ring has only just formed; the reference full-mode run (5000 steps, logged in
# `lessons/reference/08_gan_game.json` and printed above next to this run) ends with most
# samples within $4\sigma$ of a mode and every mode covered.
#
# ### Why the non-saturating loss
#
# An experiment instead of a formula: let D train alone for a while against the freshly
# initialised generator, so it confidently rejects the fakes (as it does early in real
# training), then measure the gradient each generator loss sends into G's output.

# %%
init = np.random.default_rng(5)
G0 = minigan.mlp_generator(latent_dim, hidden, out_features=2, rng=init)
D0 = minigan.mlp_discriminator(2, hidden, rng=init)
d_opt = minigan.Adam(D0.parameters(), lr=2e-3, betas=(0.5, 0.999))
loss = minigan.BCEWithLogitsLoss()
ones, zeros = np.ones((batch, 1), np.float32), np.zeros((batch, 1), np.float32)
z = np.random.default_rng(6).standard_normal((batch, latent_dim)).astype(np.float32)
fake0 = G0(z)  # a fixed generator
for _ in range(200):  # D trains alone
    d_opt.zero_grad()
    loss(D0(sample_ring(batch, data_rng)), ones)
    D0.backward(loss.backward(), input_grad=False)
    loss(D0(fake0), zeros)
    D0.backward(loss.backward(), input_grad=False)
    d_opt.step()

logits0 = D0(fake0)
print(f"D(G(z)) after D trained alone: mean {float(np.mean(F.sigmoid(logits0))):.4f}")
D0.requires_grad_(False)
for kind in ("saturating", "non_saturating"):
    _, dlogits = g_loss_and_grad(logits0, kind)
    D0.forward(fake0)
    dfake0 = D0.backward(dlogits.astype(np.float32))  # (N, 2): what G would receive
    print(f"{kind:15s} generator loss: mean |dL/dfake| = {float(np.mean(np.abs(dfake0))):.2e}")
_ = D0.requires_grad_(True)

# %% [markdown]
# With $D(G(z))$ this small (printed above), the non-saturating loss sends a gradient about
# $1/D(G(z))$ times larger into the generator (compare the two printed norms): with the minimax loss, a
# generator facing a confident discriminator barely moves. Lesson 11 shows
# what this does to a whole training run. minigan's `GAN(..., g_loss="saturating")` keeps the
# minimax loss for such experiments; the default is `"non_saturating"`.

# %%
# In full mode with MINIGAN_LESSON_RECORD=1 this run becomes the reference log.
record("08_gan_game", run, small=SMALL, seconds=seconds)

# %% [markdown]
# ## Summary
#
# - $V(D, G) = \mathbb{E}\log D(x) + \mathbb{E}\log(1 - D(G(z)))$; D's loss is $-V$, the BCE
#   with targets 1 (real) and 0 (fake), from logits.
# - $D^* = p_\text{data}/(p_\text{data} + p_g)$ and $V(D^*, G) = -\log 4 + 2\,\mathrm{JSD}$: at
#   equilibrium $D = 1/2$, D's loss is $\log 4$.
# - The generator minimises $-\log D(G(z))$: same fixed point, but a gradient that does not
#   vanish when D wins.
# - The gradient reaches G through D's *input*: `dfake = D.backward(dlogits)` with D frozen,
#   then `G.backward(dfake)`.
# - `minigan.GAN(G, D, latent_dim, g_optimizer, d_optimizer).train_step(real)` plays one round;
#   on the 8-Gaussian ring, a small MLP GAN learns all eight modes.

# %% [markdown]
# ## Exercises
#
# 1. **Gradient-check exercise.** In `exercises/student_layers.py` implement
#    `d_loss_grad_fake(discriminator, fake)`: the gradient of D's loss on a fake batch,
#    `mean BCE(D(fake), 0)`, with respect to `fake (N, D_data)`. Check it with
#    `minigan.gradcheck.numerical_gradient` as in "Check" above, then run
#    `minigan check exercises/student_layers.py`. How does it relate to the gradient of the
#    *saturating* generator loss?
# 2. Train the ring GAN with `g_loss="saturating"` and compare the snapshots and the curves of
#    $D(G(z))$ with the non-saturating run.
# 3. Derive $D^*$ and $V(D^*, G) = -\log 4 + 2\,\mathrm{JSD}$ in full.
# 4. Give D five times G's learning rate. Who wins, and what do D's loss and $D(G(z))$ show?
# 5. Replace the ring with a 5x5 grid of Gaussians (25 modes). How many modes does the GAN
#    find? Try `latent_dim=2` and explain the pictures.
