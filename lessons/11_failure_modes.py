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
# # Lesson 11: Failure modes
#
# GANs fail in a few recognisable ways. This lesson causes three of them on purpose, each
# with a one-line change to a working setup, and measures them: **mode collapse** (the
# generator produces only a few kinds of sample), the **vanishing generator gradient** of the
# original minimax loss, and the **discriminator winning** the game. For each we look at the
# three things you can watch in a real run: the curves (losses, $D(x)$, $D(G(z))$), the
# gradient that reaches the generator, and the samples.
#
# Everything runs on the 2-D ring of eight Gaussians from lesson 8, where a step takes
# milliseconds and every sample can be plotted.

# %% [markdown]
# ## Goal
#
# - Measure the gradient the generator receives, and check it against finite differences.
# - Show that the saturating loss's gradient shrinks exactly like the odds
#   $D(G(z)) / (1 - D(G(z)))$, what that does to SGD, and why Adam partly hides it.
# - Produce mode collapse and mode hopping by slowing the discriminator down.
# - Make the discriminator win by speeding it up, and read the signature in the curves.

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
print("small mode:", SMALL)
run = {}  # the values the reference log keeps (lessons/reference/11_failure_modes.json)
t_lesson = time.perf_counter()

# %% [markdown]
# ## Math with shapes
#
# **The gradient that reaches G.** Take a batch of fakes `x̃ = G(z)` of shape `(N, d)` and
# D's logits on them `s̃ (N, 1)`, with $D(G(z)) = \sigma(\tilde s)$. Per example, the two
# generator losses and their derivatives with respect to the logit are
#
# $$\ell_\text{sat} = \log(1 - \sigma(\tilde s)),\quad
#   \frac{\partial \ell_\text{sat}}{\partial \tilde s} = -\sigma(\tilde s);\qquad
#   \ell_\text{ns} = -\log \sigma(\tilde s),\quad
#   \frac{\partial \ell_\text{ns}}{\partial \tilde s} = \sigma(\tilde s) - 1.$$
#
# Backpropagating through D multiplies either by the same row vector
# $\partial \tilde s_n / \partial \tilde x_n$ (shape `(1, d)`, D's input gradient for example
# $n$). So the two gradients `dfake (N, d)` are parallel, row by row, and
#
# $$\frac{\lVert \partial \ell_\text{sat} / \partial \tilde x_n \rVert}
#        {\lVert \partial \ell_\text{ns} / \partial \tilde x_n \rVert}
#   = \frac{\sigma(\tilde s_n)}{1 - \sigma(\tilde s_n)}
#   = \text{the odds D gives that fake } n \text{ is real.}$$
#
# When D rejects the fakes, say $D(G(z)) = 0.001$, the saturating gradient is a thousand
# times smaller than the non-saturating one, pointing the same way.
#
# **What the optimizer does with a small gradient.** SGD moves each weight by
# $\eta\,g$: a 1000x smaller gradient means 1000x smaller steps. Adam moves it by about
# $\eta\,\hat m / (\sqrt{\hat v} + \epsilon)$: scaling every gradient by a constant $c$ scales
# $\hat m$ by $c$ and $\sqrt{\hat v}$ by $c$, so the step does not change as long as
# $c\,|g| \gg \epsilon = 10^{-8}$. Adam undoes a uniformly vanishing gradient, until it
# reaches float32 underflow or $\epsilon$.
#
# **Mode collapse.** For a *fixed* D, G's loss $\mathbb{E}_z[-\log D(G(z))]$ is smallest when
# every $z$ is sent to the single point $x^* = \arg\max_x D(x)$: nothing in the loss rewards
# variety. Only D's reaction stops this: once G piles up at $x^*$, D learns to reject $x^*$,
# and G must spread out. If D reacts too slowly, G collapses onto one point, D eventually
# pushes it off, and G jumps to the next favourite point: **mode hopping** (Goodfellow 2016,
# *NIPS tutorial*, Sec. 5.1.1).
#
# **D winning.** If D learns much faster than G, it separates real from fake almost
# perfectly: D loss $\to 0$ (far below the equilibrium $\log 4 \approx 1.386$), $D(x) \to 1$,
# $D(G(z)) \to 0$. By the odds formula, the saturating gradient then vanishes; the
# non-saturating gradient survives, but G's loss $-\log D(G(z))$ climbs.

# %% [markdown]
# ## Implement
#
# ### The toy data and a coverage measure (as in lesson 8)

# %%
RADIUS, STD, MODES = 0.75, 0.03, 8
CENTERS = ring_centers(MODES, RADIUS)  # (MODES, 2)


def sample_ring(n, rng):
    """n points (n, 2) float32 from the ring (minigan.data.sample_ring)."""
    return data.sample_ring(n, rng, MODES, RADIUS, STD)


def mode_stats(x, tol=4 * STD):
    """(x (N, 2)) -> (fraction within tol of a centre, modes holding >= 2 % of samples,
    samples per mode (MODES,))."""
    dist = np.linalg.norm(x[:, None, :] - CENTERS[None], axis=2)  # (N, MODES)
    near = np.min(dist, axis=1) < tol
    per_mode = np.bincount(np.argmin(dist, axis=1)[near], minlength=MODES)
    return float(np.mean(near)), int(np.sum(per_mode >= 0.02 * len(x))), per_mode


# %% [markdown]
# ### A toy GAN with its own optimizers
#
# `minigan.GAN` takes the two optimizers as arguments, so giving D and G different learning
# rates (or a different optimizer altogether) is a matter of building them yourself.

# %%
LATENT, HIDDEN, BATCH = 8, (64, 64), 128


def make_toy_gan(seed, lr_g=1e-3, lr_d=1e-3, g_loss="non_saturating"):
    init = np.random.default_rng(seed)
    G = minigan.mlp_generator(LATENT, HIDDEN, out_features=2, rng=init)
    D = minigan.mlp_discriminator(2, HIDDEN, rng=init)
    return minigan.GAN(
        G,
        D,
        LATENT,
        g_optimizer=minigan.Adam(G.parameters(), lr=lr_g, betas=(0.5, 0.999)),
        d_optimizer=minigan.Adam(D.parameters(), lr=lr_d, betas=(0.5, 0.999)),
        seed=seed,
        g_loss=g_loss,
    )


# %% [markdown]
# ### The gradient that reaches G
#
# `g_output_grad` computes `dfake (N, d)`, the gradient of G's loss with respect to G's
# output, exactly as `GAN.train_step` does it: loss gradient on the logits, then D's backward
# pass with D's own parameters frozen.


# %%
def g_output_grad(D, fake, kind):
    """dL_G/dfake (N, d) for kind "saturating" or "non_saturating"; also D(G(z)) (N, 1)."""
    bce = minigan.BCEWithLogitsLoss()
    logits = D.forward(fake)  # (N, 1)
    if kind == "non_saturating":  # -mean log D(G(z)) = BCE(logits, 1)
        bce.forward(logits, np.ones_like(logits))
        dlogits = bce.backward()
    else:  # mean log(1 - D(G(z))) = -BCE(logits, 0)
        bce.forward(logits, np.zeros_like(logits))
        dlogits = -bce.backward()
    D.requires_grad_(False)
    dfake = D.backward(dlogits)  # (N, d); D's grads untouched
    D.requires_grad_(True)
    return dfake, F.sigmoid(logits)


def g_grad_norm(D, fake, kind):
    """Mean over examples of ||dl_n/dfake_n||, the per-example gradient (mean undone)."""
    dfake, _ = g_output_grad(D, fake, kind)
    return float(np.mean(np.linalg.norm(minigan.to_numpy(dfake), axis=1)) * fake.shape[0])


# %% [markdown]
# ### The game, recorded


# %%
def play(gan, steps, data_rng, snap_at=(), z_fixed=None, grad_every=0):
    """Run gan.train_step on ring batches; return per-step metrics, snapshots, grad norms."""
    rows, snaps, grads = [], {}, []
    for step in range(steps + 1):
        if step in snap_at:
            snaps[step] = minigan.to_numpy(gan.sample(len(z_fixed), z=z_fixed))
        if grad_every and step % grad_every == 0:
            fake = gan.sample(512)
            grads.append(
                (
                    step,
                    g_grad_norm(gan.discriminator, fake, "non_saturating"),
                    g_grad_norm(gan.discriminator, fake, "saturating"),
                )
            )
        if step == steps:
            break
        rows.append(gan.train_step(sample_ring(BATCH, data_rng)))
    metrics = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}  # one sync
    return metrics, snaps, np.array(grads)


def smooth(v, k=50):
    k = max(1, min(k, len(v)))
    return np.convolve(v, np.ones(k) / k, mode="valid")


# %% [markdown]
# ## Check
#
# `g_output_grad` against central differences of the loss itself, for both losses, on a
# float64 discriminator. Then the prediction of "Math with shapes": per example, the ratio of
# the two gradient norms equals the odds $D(G(z)) / (1 - D(G(z)))$.

# %%
rng = np.random.default_rng(0)
D64 = minigan.mlp_discriminator(2, (16, 16), dtype="float64", rng=rng)
fake64 = rng.normal(scale=0.5, size=(6, 2))
bce64 = minigan.BCEWithLogitsLoss()


def g_loss_value(kind):
    logits = D64.forward(fake64)
    if kind == "non_saturating":
        return bce64.forward(logits, np.ones_like(logits))
    return -bce64.forward(logits, np.zeros_like(logits))


for kind in ("non_saturating", "saturating"):
    analytic, _ = g_output_grad(D64, fake64, kind)
    numeric = numerical_gradient(lambda _, k=kind: g_loss_value(k), fake64, np.array(1.0))
    err = rel_error(analytic, numeric)
    print(f"{kind:15s} dL/dfake {analytic.shape}: rel_error {err:.1e}")
    assert err < 1e-6
assert all(not np.any(p.grad) for p in D64.parameters()), "D's gradients must stay zero"

g_ns, d_fake = g_output_grad(D64, fake64, "non_saturating")
g_sat, _ = g_output_grad(D64, fake64, "saturating")
ratio = np.linalg.norm(g_sat, axis=1) / np.linalg.norm(g_ns, axis=1)  # (N,)
odds = (d_fake / (1 - d_fake))[:, 0]
print("norm ratio:", np.round(ratio, 4))
print("odds      :", np.round(odds, 4))
assert np.allclose(ratio, odds, rtol=1e-10)

# %% [markdown]
# ## Use minigan
#
# ### 1. The vanishing gradient of the saturating loss
#
# **The gradient, as D gets confident.** D trains alone against a fixed, freshly initialised
# generator, as it effectively does early in training when G is bad. Every few steps we
# measure the per-example gradient norm each loss would send into G's output.

# %%
gan = make_toy_gan(seed=1)
D = gan.discriminator
data_rng = np.random.default_rng(2)
z_probe = np.random.default_rng(3).standard_normal((512, LATENT)).astype(np.float32)
fake_fixed = gan.sample(512, z=z_probe)  # G does not change here
bce = minigan.BCEWithLogitsLoss()
ones, zeros = gan.targets(BATCH)
d_alone = []
for step in range(301 if SMALL else 601):
    if step % 10 == 0:
        _, dgz = g_output_grad(D, fake_fixed, "non_saturating")
        d_alone.append(
            (
                float(np.mean(dgz)),
                g_grad_norm(D, fake_fixed, "non_saturating"),
                g_grad_norm(D, fake_fixed, "saturating"),
            )
        )
    gan.d_optimizer.zero_grad()  # one discriminator update, G untouched
    bce.forward(D.forward(sample_ring(BATCH, data_rng)), ones)
    D.backward(bce.backward(), input_grad=False)
    bce.forward(D.forward(fake_fixed[:BATCH]), zeros)
    D.backward(bce.backward(), input_grad=False)
    gan.d_optimizer.step()
d_alone = np.array(d_alone)  # columns: mean D(G(z)), |grad| non-saturating, |grad| saturating

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
axes[0].plot(10 * np.arange(len(d_alone)), d_alone[:, 1], label="non-saturating")
axes[0].plot(10 * np.arange(len(d_alone)), d_alone[:, 2], label="saturating")
axes[0].set_yscale("log")
axes[0].set_xlabel("discriminator steps (G fixed)")
axes[0].set_ylabel("mean per-example |dL/dfake|")
ax2 = axes[0].twinx()
ax2.plot(10 * np.arange(len(d_alone)), d_alone[:, 0], "k:", label="mean D(G(z))")
ax2.set_ylabel("mean D(G(z)) (dotted)")
axes[0].legend(loc="center right")
axes[1].loglog(d_alone[:, 0], d_alone[:, 2] / d_alone[:, 1], "o", label="measured ratio")
p = np.logspace(np.log10(d_alone[:, 0].min()), np.log10(d_alone[:, 0].max()), 50)
axes[1].loglog(p, p / (1 - p), "k--", label="odds p / (1 - p)")
axes[1].set_xlabel("mean D(G(z))")
axes[1].set_ylabel("saturating / non-saturating")
axes[1].legend()
plt.tight_layout()
plt.show()
print(
    f"after D trained alone: D(G(z)) = {d_alone[-1, 0]:.4f}, gradient norms: non-saturating "
    f"{d_alone[-1, 1]:.2e}, saturating {d_alone[-1, 2]:.2e} "
    f"({d_alone[-1, 1] / d_alone[-1, 2]:.0f}x smaller)"
)
assert d_alone[-1, 2] < 0.05 * d_alone[-1, 1]
run["d_alone_steps"] = 10 * (len(d_alone) - 1)
run["d_alone_d_fake"] = float(d_alone[-1, 0])
run["d_alone_grad_ratio"] = float(d_alone[-1, 1] / d_alone[-1, 2])
strong_d_state = {k: np.copy(v) for k, v in D.state_dict().items()}

# %% [markdown]
# The measured ratio follows the odds line (it is a mean over examples of different
# confidence, so it sits near, not exactly on, the line). As D becomes confident the
# non-saturating gradient *grows* (D's slopes get steeper), while the saturating one shrinks.
#
# **What it does to learning.** Now freeze that confident D (learning rate 0) and let G learn
# against it, starting from the same weights, with each loss, first with plain SGD (the
# optimizer of the original GAN paper), then with Adam. The question is simply how many steps
# G needs to fool the fixed D, i.e. to bring $D(G(z))$ up to 1/2.

# %%
g_steps = 400 if SMALL else 1000
runs = {}
for opt_name, make_opt in (
    ("SGD lr 3e-3", lambda ps: minigan.SGD(ps, lr=3e-3)),
    ("Adam lr 1e-3", lambda ps: minigan.Adam(ps, lr=1e-3, betas=(0.5, 0.999))),
):
    for kind in ("non_saturating", "saturating"):
        g = make_toy_gan(seed=1, g_loss=kind)  # the same initial G as above
        g.discriminator.load_state_dict(strong_d_state)  # the confident D
        g.d_optimizer.lr = 0.0  # D frozen: its Adam step changes nothing
        g.g_optimizer = make_opt(g.generator.parameters())
        metrics, _, _ = play(g, g_steps, np.random.default_rng(4))
        runs[opt_name, kind] = metrics["d_fake"]

fig, ax = plt.subplots(figsize=(7, 3.8))
for (opt_name, kind), d_fake in runs.items():
    ls = "-" if opt_name.startswith("SGD") else "--"
    ax.plot(np.arange(1, g_steps + 1), d_fake, ls, label=f"{kind}, {opt_name}")
ax.axhline(0.5, color="gray", lw=0.8)
ax.set_xscale("log")
ax.set_xlabel("generator steps against a fixed, confident D")
ax.set_ylabel("mean D(G(z))")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()


def steps_to_fool(d_fake):
    hit = np.nonzero(d_fake >= 0.5)[0]
    return int(hit[0]) + 1 if hit.size else None


for key, d_fake in runs.items():
    print(f"{key[0]:13s} {key[1]:15s}: D(G(z)) reaches 1/2 after {steps_to_fool(d_fake)} steps")
sgd_ns, sgd_sat = (
    steps_to_fool(runs["SGD lr 3e-3", "non_saturating"]),
    steps_to_fool(runs["SGD lr 3e-3", "saturating"]),
)
assert sgd_ns is not None and (sgd_sat is None or sgd_sat > 5 * sgd_ns)
run["g_steps"] = g_steps
for (opt_name, kind), d_fake in runs.items():
    run[f"fool_{opt_name.split()[0]}_{kind}"] = steps_to_fool(d_fake)
_ = compare(
    "11_failure_modes",
    run,
    [
        ("D steps alone", "d_alone_steps", "d"),
        ("then D(G(z))", "d_alone_d_fake", ".4f"),
        ("non-sat / sat gradient", "d_alone_grad_ratio", ".0f"),
        ("G steps allowed", "g_steps", "d"),
    ]
    + [
        (f"steps to fool D: {o}, {k}", f"fool_{o}_{k}", "d")
        for o in ("SGD", "Adam")
        for k in ("non_saturating", "saturating")
    ],
)
# %% [markdown]
# With SGD, the non-saturating generator fools the fixed D within a few steps, while the
# saturating one crawls for more than ten times as many (the table above compares this run with
# the reference): its gradient starts two orders of magnitude smaller (the ratio printed
# above), and only grows as $D(G(z))$ does, so it escapes slowly and then suddenly. With Adam the two
# curves nearly coincide: Adam divides each gradient by its own running scale, which cancels
# the constant-like factor of the odds (see "Math with shapes"). That is why the saturating
# loss can seem to work in modern code, and why it still fails when D's confidence drives the
# gradient to zero outright (float32 underflow: $\sigma(\tilde s) = 0$ exactly for
# $\tilde s < -104$), or with SGD. The non-saturating loss has no such weakness, which is why
# it is minigan's default.
#
# ### 2. Mode collapse
#
# Two games that differ only in D's learning rate: equal rates ($10^{-3}$ for both, the
# setup of lesson 8), and a discriminator ten times slower than the generator. The same
# 1,000 noise vectors are drawn through G at each snapshot.

# %%
steps = 1000 if SMALL else 4000
snap_at = [int(steps * f) for f in (0.1, 0.25, 0.5, 0.75, 1.0)]
z_fixed = np.random.default_rng(7).standard_normal((1000, LATENT)).astype(np.float32)
seeds = [0] if SMALL else [0, 1, 2]
collapse = {}
for seed in seeds:
    for name, lr_d in (("equal rates", 1e-3), ("D 10x slower", 1e-4)):
        gan = make_toy_gan(seed, lr_g=1e-3, lr_d=lr_d)
        collapse[name, seed] = play(gan, steps, np.random.default_rng(100 + seed), snap_at, z_fixed)

real_preview = sample_ring(2000, np.random.default_rng(8))
fig, axes = plt.subplots(2, len(snap_at), figsize=(2.8 * len(snap_at), 5.8))
for row, name in enumerate(("equal rates", "D 10x slower")):
    _, snaps, _ = collapse[name, seeds[0]]
    for ax, step in zip(axes[row], snap_at, strict=True):
        near, covered, _ = mode_stats(snaps[step])
        ax.scatter(real_preview[:, 0], real_preview[:, 1], s=1, c="lightgray")
        ax.scatter(snaps[step][:, 0], snaps[step][:, 1], s=1, c="C3")
        ax.set_title(f"{name}, step {step}\n{covered}/8 modes, {near:.0%} near one", fontsize=8)
        ax.set_xlim(-1.1, 1.1)
        ax.set_ylim(-1.1, 1.1)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
plt.tight_layout()
plt.show()

print(f"{'run':14s} {'seed':>4s} {'modes covered at each snapshot':>32s}   final D loss, D(G(z))")
for (name, seed), (metrics, snaps, _) in collapse.items():
    covered = [mode_stats(snaps[s])[1] for s in snap_at]
    print(
        f"{name:14s} {seed:4d} {str(covered):>32s}   "
        f"{metrics['d_loss'][-100:].mean():.3f}, {metrics['d_fake'][-100:].mean():.3f}"
    )
final = {k: mode_stats(v[1][steps])[1] for k, v in collapse.items()}
run["collapse_steps"] = steps
for name in ("equal rates", "D 10x slower"):
    run[f"collapse_modes_{name}"] = [final[name, s] for s in seeds]
    run[f"collapse_d_loss_{name}"] = [
        round(float(collapse[name, s][0]["d_loss"][-100:].mean()), 3) for s in seeds
    ]
_ = compare(
    "11_failure_modes",
    run,
    [("steps", "collapse_steps", "d")]
    + [
        (f"{name}: {what} per seed", f"collapse_{key}_{name}", fmt)
        for name in ("equal rates", "D 10x slower")
        for what, key, fmt in (("final modes", "modes", "d"), ("last-100 D loss", "d_loss", ".3f"))
    ],
)
assert sum(final["D 10x slower", s] for s in seeds) < sum(final["equal rates", s] for s in seeds)

# %% [markdown]
# With equal rates the samples spread over the ring and split into the modes. With the slow
# discriminator the generator squeezes all 1,000 noise vectors into one narrow blob or
# streak, and it *jumps* from snapshot to snapshot: each time D finally learns to reject it,
# G moves the whole blob to D's next favourite spot. That is mode hopping, the dynamic form of mode
# collapse.
#
# Note the curves: the collapsed run's D loss sits *near* $\log 4$ and $D(G(z))$ near $1/2$,
# the signature of a healthy game, because the slow D is always confused. The losses cannot
# see mode collapse; the samples can (and, for MNIST, a class histogram of the samples).
#
# ### 3. The discriminator wins
#
# Now the opposite imbalance: G at minigan's default learning rate $2 \cdot 10^{-4}$, and D at
# $2 \cdot 10^{-4}$ (equal) or $2 \cdot 10^{-3}$ (10x faster). We also record, every 50 steps,
# the gradient each loss would send into G's output.

# %%
steps = 1500 if SMALL else 4000
d_win = {}
for name, lr_d in (("equal rates", 2e-4), ("D lr 10x", 2e-3)):
    gan = make_toy_gan(0, lr_g=2e-4, lr_d=lr_d)
    d_win[name] = play(gan, steps, np.random.default_rng(9), [steps], z_fixed, grad_every=50)

fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
for name, (metrics, _, grads) in d_win.items():
    axes[0].plot(smooth(metrics["d_loss"]), label=name)
    axes[1].plot(smooth(metrics["d_fake"]), label=f"D(G(z)), {name}")
    axes[1].plot(smooth(metrics["d_real"]), ":", label=f"D(x), {name}")
    axes[2].plot(grads[:, 0], grads[:, 1], label=f"non-saturating, {name}")
    axes[2].plot(grads[:, 0], grads[:, 2], "--", label=f"saturating, {name}")
axes[0].axhline(np.log(4), color="gray", lw=0.8, ls="--")
axes[0].set_title("D loss (log 4 dashed)", fontsize=9)
axes[1].set_title("mean D outputs", fontsize=9)
axes[1].set_ylim(0, 1)
axes[2].set_yscale("log")
axes[2].set_title("per-example |dL/dfake| reaching G", fontsize=9)
for ax in axes[:3]:
    ax.set_xlabel("step")
    ax.legend(fontsize=7)
metrics, snaps, _ = d_win["D lr 10x"]
gan_won = gan  # the last one built: D lr 10x
gx, gy = np.meshgrid(np.linspace(-1.1, 1.1, 120), np.linspace(-1.1, 1.1, 120))
pts = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
prob = minigan.to_numpy(F.sigmoid(gan_won.discriminator(pts))).reshape(gx.shape)
cs = axes[3].contourf(gx, gy, prob, levels=20, cmap="RdBu_r", vmin=0, vmax=1)
fig.colorbar(cs, ax=axes[3], label="D(x)")
axes[3].scatter(snaps[steps][:, 0], snaps[steps][:, 1], s=1, c="k")
axes[3].set_aspect("equal")
axes[3].set_title("D lr 10x: final D and G's samples", fontsize=9)
plt.tight_layout()
plt.show()

for name, (metrics, snaps, grads) in d_win.items():
    tail = slice(-(steps // 4), None)
    near, covered, _ = mode_stats(snaps[steps])
    print(
        f"{name:12s} last quarter: D loss {metrics['d_loss'][tail].mean():.3f}, "
        f"D(x) {metrics['d_real'][tail].mean():.3f}, D(G(z)) {metrics['d_fake'][tail].mean():.3f}, "
        f"G loss {metrics['g_loss'][tail].mean():.3f}; final |grad| non-sat {grads[-1, 1]:.2e} "
        f"sat {grads[-1, 2]:.2e}; {covered}/8 modes"
    )
m_eq, m_win = d_win["equal rates"][0], d_win["D lr 10x"][0]
tail = slice(-(steps // 4), None)
assert m_win["d_loss"][tail].mean() < m_eq["d_loss"][tail].mean()
assert m_win["d_fake"][tail].mean() < m_eq["d_fake"][tail].mean()
run["d_win_steps"] = steps
for name, (metrics, snaps, _) in d_win.items():
    run[f"d_win_modes_{name}"] = mode_stats(snaps[steps])[1]
    for key in ("d_loss", "d_real", "d_fake", "g_loss"):
        run[f"d_win_{key}_{name}"] = float(metrics[key][tail].mean())
_ = compare(
    "11_failure_modes",
    run,
    [("steps", "d_win_steps", "d")]
    + [
        (f"{name}: {label}", f"d_win_{key}_{name}", fmt)
        for name in ("equal rates", "D lr 10x")
        for label, key, fmt in (
            ("modes covered", "modes", "d"),
            ("last-quarter D loss", "d_loss", ".3f"),
            ("last-quarter D(G(z))", "d_fake", ".3f"),
        )
    ],
)
# %% [markdown]
# With D ten times faster, D's loss falls far below $\log 4$ and keeps falling, $D(x)$ climbs
# away from 1/2 toward 1 and $D(G(z))$ sinks toward 0, while G's loss climbs: the
# discriminator is winning, and the longer the run, the more clearly (compare small and
# full mode).
#
# Its decision map shows why: G's samples sit in D's confident "fake" region, and G is
# pushed around by D's steep slopes instead of being led to the data. The gradient plot shows
# the consequence for the two losses: the saturating gradient falls with $D(G(z))$, by the
# odds factor, while the non-saturating one stays large, so with minigan's default loss G
# keeps receiving a signal even from a winning D. With equal rates the game stays near
# balance ($D(x) \approx D(G(z)) \approx 1/2$) and, given time, G finds every mode; the run
# with the winning D ends with fewer modes covered (the table above: this run against the
# reference full-mode run of 4,000 steps in `lessons/reference/11_failure_modes.json`).
#
# The same three signatures appear on MNIST (lesson 9's curves): keep an eye on a D loss that
# heads to 0 with D(G(z)) near 0, and on samples that all look alike.

# %%
seconds = time.perf_counter() - t_lesson
print(f"lesson ran in {seconds:.0f} s")
# In full mode with MINIGAN_LESSON_RECORD=1 this run becomes the reference log.
record("11_failure_modes", run, small=SMALL, seconds=seconds)

# %% [markdown]
# ## Summary
#
# | failure | cause here | in the curves | in the gradient | in the samples |
# | --- | --- | --- | --- | --- |
# | vanishing gradient | saturating loss vs a confident D | $D(G(z)) \approx 0$, G stuck | shrinks like the odds $D/(1-D)$ | no progress (SGD) |
# | mode collapse | D too slow | look healthy ($D \approx 1/2$) | - | one blob that hops between modes |
# | D winning | D much faster | D loss $\ll \log 4$, $D(x) \to 1$, $D(G(z)) \to 0$, G loss rising | saturating vanishes, non-saturating stays | stalled, few modes |
#
# - G's gradient reaches it through D's input; for the saturating loss it is the
#   non-saturating one times the odds $D(G(z))/(1 - D(G(z)))$: checked in float64.
# - Adam rescales gradients, hiding a uniformly small gradient; SGD does not. The
#   non-saturating loss avoids the problem instead of relying on the optimizer.
# - Balance matters in both directions: a slow D lets G collapse, a fast D wins the game.
# - Losses alone do not diagnose a GAN; look at samples and at the gradient reaching G.

# %% [markdown]
# ## Exercises
#
# 1. **Gradient-check exercise.** Extend `d_loss_grad_fake` in `exercises/student_layers.py`
#    to a `g_loss_grad_fake(discriminator, fake, kind)` that returns `dL_G/dfake` for both
#    generator losses. Check it with `minigan.gradcheck.numerical_gradient` (float64) as in
#    "Check", and verify the odds identity on your own implementation.
# 2. In experiment 1, train D alone for longer (2,000 steps). At what D(G(z)) does the
#    saturating gradient become exactly 0 in float32? Compute the logit at which
#    `minigan.functional.sigmoid` returns 0 in float32 and compare.
# 3. Fix the mode collapse of experiment 2 without changing the learning rates: try two D
#    steps per G step (write the loop with the layers, as in experiment 1), and a larger
#    batch. Measure modes covered.
# 4. Run experiment 3 with `g_loss="saturating"` in `make_toy_gan`. Which curves change, and
#    does G still learn with Adam? Then give G plain SGD and compare.
# 5. On MNIST: build the default GAN with `minigan.build_gan()`, replace `gan.d_optimizer`
#    by an Adam with 10x the learning rate, and train it for 1,000 steps with
#    `gan.train_step` on batches from `minigan.data.BatchIterator`, once with each generator
#    loss. Plot the four metrics and a sample grid (`minigan.viz.save_image_grid`). Which of
#    the three signatures do you see, and when?
