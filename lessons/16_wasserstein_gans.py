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
# # Lesson 16: Wasserstein GANs
#
# Lesson 8's discriminator estimates a Jensen-Shannon divergence, which is flat (its gradient
# zero) when the real and generated distributions do not overlap, and lesson 11 showed what
# that does to training. The Wasserstein GAN (Arjovsky et al. 2017) replaces the classifier by
# a *critic* whose score difference estimates the earth mover's distance, a distance that
# keeps a useful gradient however far apart the distributions are. The catch is a constraint
# on the critic (it must be 1-Lipschitz), and the two ways of enforcing it are this lesson:
# weight clipping, and the gradient penalty of WGAN-GP (Gulrajani et al. 2017), whose
# parameter gradient is a gradient of a gradient that we write by hand.

# %% [markdown]
# ## Goal
#
# - Write the WGAN critic and generator losses and know what the critic's score difference
#   estimates.
# - Compare the two ways of keeping the critic Lipschitz: **weight clipping** (WGAN) and the
#   **gradient penalty** (WGAN-GP), on the gradient norms they produce.
# - Compute the penalty's parameter gradient by **double backpropagation by hand** for a
#   two-layer critic (a tangent pass and its reverse, the `jvp` / `jvp_backward` methods),
#   and check it against finite differences.
# - Train a WGAN-GP with `minigan.GAN(..., objective=WGANGP())` on lesson 8's ring of eight
#   Gaussians.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from reference_log import compare, record  # lessons/reference_log.py

import minigan
from minigan import data
from minigan.data import ring_centers
from minigan.gradcheck import numerical_gradient, rel_error
from minigan.objectives import WGAN, WGANGP, gradient_penalty

SMALL = os.environ.get("MINIGAN_LESSON_MODE", "full") == "small"
rng = np.random.default_rng(0)

# %% [markdown]
# ## Math with shapes
#
# **The distance.** The Wasserstein-1 (earth mover's) distance between the data $p$ and the
# generator $q$ is, by Kantorovich-Rubinstein duality,
#
# $$W(p, q) = \sup_{\lVert f \rVert_L \le 1}\; \mathbb E_{x \sim p} f(x) - \mathbb E_{x \sim q}
# f(x),$$
#
# the best score difference of a **1-Lipschitz** function $f$. A critic `f: (N, 2) -> (N, 1)`
# (an MLP with no sigmoid: its output is an unbounded score) plays $f$. The losses on a batch
# (`minigan.objectives.WGAN`, Arjovsky et al. 2017, Algorithm 1):
#
# $$L_D = \operatorname{mean} f(G(z)) - \operatorname{mean} f(x), \qquad
# L_G = -\operatorname{mean} f(G(z)),$$
#
# with gradients $\mp 1/N$ per score, so the logged $\hat W = \operatorname{mean} f(x) -
# \operatorname{mean} f(G(z)) = -L_D$ estimates $W$ (up to the critic's Lipschitz constant).
# The critic is trained `n_critic = 5` times per generator step, so that it stays close to
# the supremum.
#
# **Weight clipping** (WGAN): after each critic step clip every weight into $[-c, c]$,
# $c = 0.01$. The function class is then Lipschitz with *some* constant, but a small one for
# a deep net: the critic's gradient shrinks with every layer, and the weights pile up at
# $\pm c$.
#
# **Gradient penalty** (WGAN-GP, Gulrajani et al. 2017, Eq. 3): an optimal critic has
# gradient norm 1 almost everywhere between the two distributions, so penalise the deviation
# at random interpolates $\hat x_n = \epsilon_n x_n + (1 - \epsilon_n) \tilde x_n$,
# $\epsilon_n \sim U(0, 1)$:
#
# $$P(\theta) = \lambda \frac1N \sum_n \big(\lVert g_n \rVert_2 - 1\big)^2, \qquad
# g_n = \nabla_x f_\theta(\hat x_n) \quad (N, d), \qquad \lambda = 10.$$
#
# **The gradient of a gradient.** $P$ depends on $\theta$ through $g$, itself a first
# derivative, so $\partial P / \partial \theta$ is a second derivative. With
# $v_n = \partial P/\partial g_n = \frac{2\lambda}{N} (\lVert g_n \rVert - 1)
# \frac{g_n}{\lVert g_n \rVert}$ held fixed, the chain rule gives
# $\partial P/\partial\theta = \partial/\partial\theta \sum_n v_n^\top g_n(\theta)$, and
# $v_n^\top g_n = f'(\hat x_n)[v_n]$ is the **directional derivative** of $f$ along $v_n$. So:
#
# 1. forward at $\hat x$, backward with ones: $g$ `(N, d)` (critic frozen);
# 2. $v = \partial P / \partial g$ `(N, d)`;
# 3. push the **tangent** $t_0 = v$ forward through the critic, next to the activations:
#    a Linear layer maps $t \mapsto t W^\top$ (no bias), an activation $t \mapsto \varphi'(h)
#    \odot t$; the last tangent `(N, 1)` is $f'(\hat x_n)[v_n]$ (the `jvp` methods);
# 4. back-propagate $S = \sum_n t_L$ through the pairs (activation, tangent), seeded with
#    $\bar t_L = 1$, $\bar h_L = 0$ (the `jvp_backward` methods). For the two-layer critic
#    $f(x) = \tanh(x W_1^\top + b_1)\, W_2^\top + b_2$ with $h = x W_1^\top + b_1$ `(N, H)`,
#    $a = \tanh h$, $t_1 = v W_1^\top$, $t_2 = \varphi'(h) \odot t_1$, $t_3 = t_2 W_2^\top$:
#
# $$\bar W_2 = \bar t_3^\top t_2 \;(1, H), \qquad \bar t_2 = \bar t_3 W_2 \;(N, H), \qquad
# \bar h = \bar t_2 \odot \varphi''(h) \odot t_1, \qquad \bar t_1 = \bar t_2 \odot \varphi'(h),$$
# $$\bar W_1 = \bar h^\top x + \bar t_1^\top v \;(H, d), \qquad \bar b_1 = \textstyle\sum_n
# \bar h \;(H,), \qquad \bar b_2 = 0,$$
#
# with $\varphi' = 1 - a^2$ and $\varphi'' = -2a(1 - a^2)$ for tanh. For a (leaky) ReLU
# $\varphi'' = 0$: the activations' adjoint stays zero and only the tangents carry
# gradient. The full derivation is in
# [The math of each layer](../docs/math.md#the-gradient-of-a-gradient-wgan-gps-double-backward).

# %% [markdown]
# ## Implement
#
# ### The penalty of a two-layer critic, by hand
#
# The critic is a minigan `Sequential(Linear, Tanh, Linear)` in float64; we read its weights
# and write every pass with NumPy.

# %%
d_in, hidden, n = 2, 5, 4
critic = minigan.Sequential(
    minigan.Linear(d_in, hidden, dtype="float64", rng=1),
    minigan.Tanh(),
    minigan.Linear(hidden, 1, dtype="float64", rng=2),
)
W1, b1 = critic[0].params["weight"], critic[0].params["bias"]  # (H, d), (H,)
W2, b2 = critic[2].params["weight"], critic[2].params["bias"]  # (1, H), (1,)
x_hat = rng.standard_normal((n, d_in))
lam = 10.0


def input_grad(x):
    """Passes 1: g = df/dx (N, d) for f(x) = tanh(x W1^T + b1) W2^T + b2."""
    a = np.tanh(x @ W1.T + b1)  # (N, H)
    return ((1 - a**2) * W2) @ W1, a  # (N, H) * (1, H) -> (N, H) @ (H, d)


def penalty(x):
    g, _ = input_grad(x)
    return lam * np.mean((np.linalg.norm(g, axis=1) - 1) ** 2)


def penalty_param_grads(x):
    """Passes 2-4: v = dP/dg, the tangent pass, and its reverse."""
    g, a = input_grad(x)
    norm = np.linalg.norm(g, axis=1, keepdims=True)  # (N, 1)
    v = 2 * lam / len(x) * (norm - 1) * g / norm  # (N, d)
    d1, d2 = 1 - a**2, -2 * a * (1 - a**2)  # tanh' and tanh'' at h
    t1 = v @ W1.T  # (N, H)   tangent after Linear 1
    t2 = d1 * t1  # (N, H)   after tanh
    # t3 = t2 @ W2.T (N, 1) = f'(x_hat)[v]; seed dt3 = 1, dh3 = 0
    dt3 = np.ones((len(x), 1))
    dW2 = dt3.T @ t2  # (1, H)
    dt2 = dt3 @ W2  # (N, H)
    dh = dt2 * d2 * t1  # (N, H)   the activation's adjoint, from tanh''
    dt1 = dt2 * d1  # (N, H)
    dW1 = dh.T @ x + dt1.T @ v  # (H, d)
    db1 = dh.sum(axis=0)  # (H,)
    return {"0.weight": dW1, "0.bias": db1, "2.weight": dW2, "2.bias": np.zeros(1)}


print(f"P = {penalty(x_hat):.6f}")
mine = penalty_param_grads(x_hat)
for name, grad in mine.items():
    print(f"dP/d{name:9s} {str(grad.shape):8s}")

# %% [markdown]
# ## Check
#
# Finite differences of $P$ in every parameter (`numerical_gradient` perturbs the critic's
# weights in place, and `penalty` reads them), then minigan: `gradient_penalty(critic, x)`
# returns $P$ and **adds** $\partial P/\partial\theta$ into `critic.grads`, running the same
# passes with the layers' `jvp` / `jvp_backward` methods.

# %%
params = {"0.weight": W1, "0.bias": b1, "2.weight": W2, "2.bias": b2}
critic.zero_grad()
p_mg = gradient_penalty(critic, x_hat, lam)
print(f"P: ours {penalty(x_hat):.10f}, minigan {float(p_mg):.10f}")
grads_mg = dict(zip(params, (p.grad for p in critic.parameters()), strict=True))
for name, tensor in params.items():
    numeric = numerical_gradient(lambda _: np.asarray(penalty(x_hat)), tensor, np.array(1.0))
    err_mine = rel_error(mine[name], numeric)
    err_mg = rel_error(minigan.to_numpy(grads_mg[name]), numeric)
    print(f"dP/d{name:9s} ours vs numeric {err_mine:.1e}   minigan vs numeric {err_mg:.1e}")
    assert err_mine < 1e-6 and err_mg < 1e-6

# %% [markdown]
# The layer methods one by one, for the same critic: `jvp` pushes the tangent $v$ forward and
# `jvp_backward(None, ones)` reverses it (`None`: the activations' adjoint at the output is
# zero). Their tangent at the output equals $\sum_j v_{nj} g_{nj}$, the directional derivative.

# %%
g, a = input_grad(x_hat)
v = rng.standard_normal(g.shape)
critic.forward(x_hat)
t_out = critic.jvp(v)  # (N, 1)
print("jvp(v) = <v, g> per example:", f"{rel_error(t_out[:, 0], np.sum(v * g, axis=1)):.1e}")
critic.zero_grad()
critic.jvp_backward(None, np.ones((n, 1)), input_grad=False)


def directional(_):
    gg, _ = input_grad(x_hat)
    return np.asarray(np.sum(v * gg))


numeric = numerical_gradient(directional, W1, np.array(1.0))
print(
    f"d/dW1 sum_n <v_n, g_n>: jvp_backward vs numeric {rel_error(critic[0].grads['weight'], numeric):.1e}"
)

# %% [markdown]
# ## Use minigan
#
# ### Weight clipping vs gradient penalty, on the critic alone
#
# Hold the "generator" fixed (a Gaussian blob in the centre) and train only the critic against
# the ring, once with clipping (`WGAN`, $c = 0.01$, RMSprop as in the paper) and once with the
# penalty (`WGANGP`, $\lambda = 10$, Adam with betas $(0, 0.9)$ as in the paper). Both critics
# are the same three-hidden-layer MLP. Then measure $\lVert \nabla_x f \rVert$ at interpolates,
# the quantity the penalty targets (Gulrajani et al. 2017, Figure 1).

# %%
RADIUS, STD, MODES = 0.75, 0.03, 8
CENTERS = ring_centers(MODES, RADIUS)


def sample_ring(n, rng):
    return data.sample_ring(n, rng, MODES, RADIUS, STD)


def fixed_fake(n, rng):
    return (0.25 * rng.standard_normal((n, 2))).astype(np.float32)


def critic_step(critic, opt, objective, real, fake, rng):
    """One critic update through minigan's objective: loss, penalty, step, clipping."""
    opt.zero_grad()
    out = critic.forward(np.concatenate([real, fake]))  # no BatchNorm: one joint pass is fine
    m = len(real)
    loss, dreal, dfake = objective.d_loss(out[:m], out[m:])
    critic.backward(np.concatenate([dreal, dfake]), input_grad=False)
    objective.penalty(critic, real, fake, rng)  # None for WGAN; adds dP/dtheta for WGANGP
    opt.step()
    objective.after_d_step(critic)  # clips for WGAN; nothing for WGANGP
    return -float(loss)  # the estimate W = mean f(real) - mean f(fake)


def grad_norms(critic, x):
    """||grad_x f(x_n)|| per row (N,), without touching the critic's gradients."""
    critic.forward(x)
    critic.requires_grad_(False)
    g = critic.backward(np.ones((len(x), 1), np.float32))
    critic.requires_grad_(True)
    return np.linalg.norm(minigan.to_numpy(g), axis=1)


critic_steps = 150 if SMALL else 2000
batch = 128 if SMALL else 256
critics, w_curves = {}, {}
for name, objective in (
    ("weight clipping", WGAN(clip_value=0.01)),
    ("gradient penalty", WGANGP(weight=10.0)),
):
    f = minigan.mlp_discriminator(2, (128, 128, 128), rng=7)
    if isinstance(objective, WGANGP):
        opt = minigan.Adam(f.parameters(), lr=1e-4, betas=(0.0, 0.9))
    else:
        opt = minigan.RMSprop(f.parameters(), lr=5e-5)
    step_rng, pen_rng = np.random.default_rng(8), np.random.default_rng(9)
    start = time.perf_counter()
    w_curves[name] = [
        critic_step(
            f, opt, objective, sample_ring(batch, step_rng), fixed_fake(batch, step_rng), pen_rng
        )
        for _ in range(critic_steps)
    ]
    critics[name] = f
    print(
        f"{name:17s}: {critic_steps} critic steps in {time.perf_counter() - start:.1f} s, "
        f"W estimate {np.mean(w_curves[name][-20:]):.2e}"
    )

eval_rng = np.random.default_rng(10)
real_e, fake_e = sample_ring(1000, eval_rng), fixed_fake(1000, eval_rng)
eps_e = eval_rng.random((1000, 1)).astype(np.float32)
interp = eps_e * real_e + (1 - eps_e) * fake_e
norms = {name: grad_norms(f, interp) for name, f in critics.items()}
for name, nm in norms.items():
    print(
        f"{name:17s}: ||grad f|| at interpolates median {np.median(nm):.3g} "
        f"(10%-90%: {np.quantile(nm, 0.1):.3g} - {np.quantile(nm, 0.9):.3g})"
    )
clip_weights = np.concatenate(
    [minigan.to_numpy(p.data).ravel() for p in critics["weight clipping"].parameters()]
)
print(f"clipped critic: {np.mean(np.abs(clip_weights) > 0.0099):.0%} of its weights sit at +-0.01")

# %%
gx, gy = np.meshgrid(np.linspace(-1.1, 1.1, 100), np.linspace(-1.1, 1.1, 100))
pts = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
for ax, (name, f) in zip(axes[:2], critics.items(), strict=True):
    score = minigan.to_numpy(f(pts)).reshape(gx.shape)
    cs = ax.contourf(gx, gy, score, levels=20, cmap="RdBu_r")
    fig.colorbar(cs, ax=ax)
    ax.scatter(real_e[:300, 0], real_e[:300, 1], s=1, c="k")
    ax.scatter(fake_e[:300, 0], fake_e[:300, 1], s=1, c="C2")
    ax.set_aspect("equal")
    ax.set_title(f"critic f(x), {name}", fontsize=9)
bins = np.logspace(-6, 1, 60)
for name, nm in norms.items():
    axes[2].hist(np.maximum(nm, 1e-6), bins=bins, alpha=0.7, label=name)
axes[2].set_xscale("log")
axes[2].axvline(1.0, color="k", ls=":")
axes[2].set_xlabel("||grad_x f|| at interpolates")
axes[2].legend(fontsize=8)
axes[3].hist(clip_weights, bins=60, color="C0")
axes[3].set_yscale("log")
axes[3].set_xlabel("weights of the clipped critic")
axes[3].set_title("clipping piles weights at +-c", fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# The clipped critic's gradient is two to five orders of magnitude below 1 (small mode: a
# shorter run, even smaller): with every weight in $[-0.01, 0.01]$ each of its four Linear
# layers shrinks the gradient, so $\hat W$ is a tiny number whose scale says nothing about the
# distance, and nearly all of its weights sit at the clipping bounds (right panel, log scale).
# Its contour has roughly the right shape (low on the blob, high outside the ring) but is
# piecewise almost linear, and its colour scale is a few hundred times narrower than the
# penalised critic's. The penalised critic rises smoothly from the blob to the ring, with
# gradient norms close to 1 along the interpolates: what an optimal 1-Lipschitz critic looks
# like.
#
# ### A WGAN-GP on the ring
#
# Now the whole game: `minigan.GAN(G, D, latent_dim, g_optimizer, d_optimizer,
# objective=WGANGP())`. Each `train_step` is one critic update (with the penalty), and every
# fifth also updates G, so 5000 steps are 1000 generator updates. The critic returns a raw
# score (`mlp_discriminator` ends in a Linear layer, as a critic should).

# %%
latent_dim, hidden_sizes, gan_batch = 8, (64, 64), 128
init = np.random.default_rng(1)
G = minigan.mlp_generator(latent_dim, hidden_sizes, out_features=2, rng=init)
D = minigan.mlp_discriminator(2, hidden_sizes, rng=init)
gan = minigan.GAN(
    G,
    D,
    latent_dim,
    g_optimizer=minigan.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.9)),
    d_optimizer=minigan.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.9)),
    seed=2,
    objective=WGANGP(weight=0.1, n_critic=5),
)
print(gan.objective)

steps = 300 if SMALL else 5000
snap_at = sorted({0, steps // 10, steps // 2, steps})
z_fixed = np.random.default_rng(3).standard_normal((1500, latent_dim)).astype(np.float32)
data_rng = np.random.default_rng(4)
history, snapshots = [], {}
start = time.perf_counter()
for step in range(steps + 1):
    if step in snap_at:
        snapshots[step] = minigan.to_numpy(gan.sample(len(z_fixed), z=z_fixed))
    if step == steps:
        break
    history.append(gan.train_step(sample_ring(gan_batch, data_rng)))
seconds = time.perf_counter() - start
hist = {k: np.array([float(h[k]) for h in history]) for k in history[0]}
print(f"{steps} critic steps ({steps // 5} G updates) in {seconds:.1f} s")


def mode_stats(x, tol=4 * STD):
    dist = np.linalg.norm(x[:, None, :] - CENTERS[None], axis=2)  # (N, MODES)
    near = np.min(dist, axis=1) < tol
    return float(np.mean(near)), np.bincount(np.argmin(dist, axis=1)[near], minlength=MODES)


# %%
fig, axes = plt.subplots(1, len(snap_at) + 1, figsize=(3.2 * (len(snap_at) + 1), 3.2))
real_preview = sample_ring(2000, rng)
for ax, step in zip(axes, snap_at, strict=False):
    ax.scatter(real_preview[:, 0], real_preview[:, 1], s=2, c="lightgray")
    ax.scatter(snapshots[step][:, 0], snapshots[step][:, 1], s=2, c="C3")
    ax.set_title(f"step {step}: {mode_stats(snapshots[step])[0]:.0%} near a mode", fontsize=9)
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-1.1, 1.1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
k = max(1, min(50, steps // 10))
smooth = np.convolve(hist["wasserstein"], np.ones(k) / k, mode="valid")
axes[-1].plot(smooth, label="W estimate")
axes[-1].plot(np.convolve(hist["gradient_penalty"], np.ones(k) / k, mode="valid"), label="penalty")
axes[-1].set_xlabel("critic step")
axes[-1].legend(fontsize=8)
axes[-1].set_title("the critic's estimate falls as G learns", fontsize=9)
plt.tight_layout()
plt.show()

near, per_mode = mode_stats(snapshots[steps])
run = {
    "steps": steps,
    "final_near_mode": near,
    "final_modes_covered": int(np.sum(per_mode >= 0.02 * len(snapshots[steps]))),
    "final_per_mode": [int(c) for c in per_mode],
    "first100_wasserstein": float(hist["wasserstein"][:100].mean()),
    "last100_wasserstein": float(hist["wasserstein"][-100:].mean()),
    "clip_grad_norm_median": float(np.median(norms["weight clipping"])),
    "gp_grad_norm_median": float(np.median(norms["gradient penalty"])),
}
assert near > mode_stats(snapshots[0])[0], "the generator should move toward the data"
_ = compare(
    "16_wasserstein_gans",
    run,
    [
        ("critic steps", "steps", "d"),
        ("samples within 4 std of a mode", "final_near_mode", ".0%"),
        ("modes with >= 2 % of samples", "final_modes_covered", "d"),
        ("samples per mode", "final_per_mode", "d"),
        ("W estimate, first 100 steps", "first100_wasserstein", ".3f"),
        ("W estimate, last 100 steps", "last100_wasserstein", ".3f"),
        ("clipped critic: median ||grad f||", "clip_grad_norm_median", ".2g"),
        ("penalised critic: median ||grad f||", "gp_grad_norm_median", ".2g"),
    ],
)

# %% [markdown]
# Unlike lesson 8's losses, the critic's estimate $\hat W$ is a distance and is meant to go
# down. After a transient in the first few hundred critic steps (the critic's first fits,
# while the samples leave the centre and overshoot over the whole square) it falls steadily
# as the samples settle onto the ring. The table above prints the reference full-mode run,
# logged in `lessons/reference/16_wasserstein_gans.json`, next to this one. In small mode
# (300 critic steps, 60 generator updates) the samples have only begun to move. In the full
# run they end on a circle through the eight modes: every mode is covered, but many samples
# still lie on the arcs between modes (the share near a mode is in the table); after 1000
# generator updates the arcs are not empty yet. Here $\lambda = 0.1$, the value Gulrajani et
# al. use for their own toy experiments (`gan_toy.py` in their code: a smaller $\lambda$
# helps on toy tasks); the paper's
# $\lambda = 10$ (`WGANGP`'s default) is for images; exercise 3 tries both here.

# %%
# In full mode with MINIGAN_LESSON_RECORD=1 this run becomes the reference log.
record("16_wasserstein_gans", run, small=SMALL, seconds=seconds)

# %% [markdown]
# ## Summary
#
# - A critic $f$ with no sigmoid; $L_D = \operatorname{mean} f(G(z)) - \operatorname{mean}
#   f(x)$, $L_G = -\operatorname{mean} f(G(z))$; $-L_D$ estimates the Wasserstein-1 distance
#   when $f$ is 1-Lipschitz.
# - Weight clipping keeps $f$ Lipschitz crudely: tiny gradients, weights at $\pm c$.
#   The gradient penalty $\lambda\,\operatorname{mean}(\lVert\nabla_x f(\hat x)\rVert - 1)^2$
#   at interpolates gives gradient norms near 1.
# - Its parameter gradient is a second derivative: $g$ by a backward pass, $v = \partial P /
#   \partial g$, a tangent pass $f'(\hat x)[v]$ (`jvp`), and its reverse (`jvp_backward`),
#   which needs $\varphi''$ of each activation.
# - minigan: `objectives.WGAN(clip_value, n_critic)`, `WGANGP(weight, n_critic)`,
#   `gradient_penalty(critic, x, weight)`, the `functional_double` functions; a critic with
#   BatchNorm is refused (lesson 14).

# %% [markdown]
# ## Exercises
#
# 1. **Graded exercise.** Implement the gradient-penalty parameter gradient of a two-layer
#    critic in the exercise file and grade it with `minigan check` (the gradient-penalty
#    exercise of `exercises/README.md`). Start from `penalty_param_grads` above, and check
#    against `numerical_gradient` with batch > 1.
# 2. Redo "The penalty of a two-layer critic, by hand" with `LeakyReLU(0.2)` instead of
#    `Tanh`. Which terms vanish, and why does minigan skip them?
# 3. Train the ring WGAN-GP with $\lambda = 10$ and with $\lambda = 0.01$. What do the
#    samples and the penalty curve show?
# 4. Train the ring GAN with `WGAN(clip_value=0.01)` and RMSprop (lr 5e-5). How many steps
#    does it need compared with WGAN-GP?
# 5. Show numerically that $v_n^\top g_n = f'(\hat x_n)[v_n]$ with a finite difference
#    $(f(\hat x + h v) - f(\hat x - h v)) / 2h$ per example.
