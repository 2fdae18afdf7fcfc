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
# # Lesson 9: Training a GAN on MNIST with `train_mnist()`
#
# Lesson 8 played the GAN game on points in the plane. Now the data are the 60,000
# handwritten digits of MNIST, each a vector of 784 pixels, and the generator has to invent
# new ones. One call, `minigan.train_mnist()`, runs the whole job: it loads the data, builds
# the GAN, trains it, and leaves behind pictures, a log and checkpoints. This lesson is about
# *reading* what it leaves behind: the losses, $D(x)$ and $D(G(z))$, and the sample grids.

# %% [markdown]
# ## Goal
#
# - Know every shape in an MNIST GAN step and the number of parameters of each network.
# - Check, in float64, the whole path of the generator's gradient: loss -> D -> G's weights.
# - Train with `minigan.train_mnist()` and read its log: which values of the D loss, G loss,
#   $D(x)$ and $D(G(z))$ are healthy, and what a sample grid tells you that the losses do not.
# - Resume from a checkpoint and sample from a trained generator.

# %%
import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from reference_log import compare, record  # lessons/reference_log.py

import minigan
from minigan import viz
from minigan.checkpoint import gan_from_checkpoint
from minigan.classifier import load_classifier
from minigan.data import load_mnist, preprocess
from minigan.gradcheck import numerical_gradient, rel_error
from minigan.metrics import class_histogram, digits_covered
from minigan.train import METRICS

SMALL = os.environ.get("MINIGAN_LESSON_MODE", "full") == "small"
print("small mode:", SMALL)

# %% [markdown]
# ## Math with shapes
#
# **Data.** `load_mnist("train")` gives `uint8` images `(60000, 28, 28)`; `preprocess` flattens
# and scales them to `float32 (60000, 784)` in $[-1, 1]$, the range of the generator's final
# Tanh. A training batch is `x (N, 784)` with $N = 64$.
#
# **Players** (the `"classic"` preset, minigan 0.1's default; this lesson's figures come from
# it. Today's `"default"` adds BatchNorm in G, a narrower D, batch 128 and an average of G's
# weights to cover every digit: `minigan presets` and `docs/results.md`):
#
# | network | layers (features) | activation | in -> out |
# | --- | --- | --- | --- |
# | G | 100 -> 256 -> 512 -> 1024 -> 784 | LeakyReLU(0.2), Tanh at the end | `z (N, 100)` -> `x̃ (N, 784)` |
# | D | 784 -> 1024 -> 512 -> 256 -> 1 | LeakyReLU(0.2), no final activation | `x (N, 784)` -> logits `(N, 1)` |
#
# A `Linear(i, o)` has $io + o$ parameters. Both use Adam with lr $2 \cdot 10^{-4}$ and
# betas $(0.5, 0.999)$ (the DCGAN settings).
#
# **What `train_step` reports** for each step. D outputs logits, $s$ on a real batch and
# $\tilde s$ on a fake one; $D(x) = \sigma(s)$ and $D(G(z)) = \sigma(\tilde s)$ are the
# probabilities that D assigns to "real" (the notation of
# [The math of each layer](../docs/math.md#the-gan-losses)):
#
# | name | formula | at equilibrium |
# | --- | --- | --- |
# | `d_loss` | $\text{mean}[-\log D(x)] + \text{mean}[-\log(1 - D(G(z)))]$ | $\log 4 \approx 1.386$ |
# | `g_loss` | $\text{mean}[-\log D(G(z))]$ (non-saturating) | $\log 2 \approx 0.693$ |
# | `d_real` | $\text{mean}\,D(x) = \text{mean}\,\sigma(s)$ | $1/2$ |
# | `d_fake` | $\text{mean}\,D(G(z)) = \text{mean}\,\sigma(\tilde s)$, before D's update | $1/2$ |
#
# At the equilibrium of the game the generator's samples are indistinguishable from the data
# and the best D says $1/2$ everywhere (lesson 8). Since $-\log$ is convex, for one batch
# against one D the G loss is at least $-\log$ of the mean $D(G(z))$: a $D(G(z))$ of 0.3
# goes with a G loss of 1.2 or more. (In the log the two are measured a half-step apart,
# before and after D's update, so this holds only roughly there.)
#
# **Why the losses do not go to zero.** A classifier's loss falls as it learns; here each
# player's loss is measured against an opponent that also improves. A D loss that stays near
# $\log 4$ with $D(x) \approx D(G(z)) \approx 1/2$ is a balanced game, not a stalled one. The
# samples, not the losses, tell you whether G is getting better.

# %% [markdown]
# ## Implement
#
# ### Parameter counts


# %%
def count_parameters(model):
    """Number of trainable scalars in a minigan Module."""
    return sum(int(np.prod(p.data.shape)) for p in model.parameters())


gan = minigan.build_gan("classic", seed=0)
n_g, n_d = count_parameters(gan.generator), count_parameters(gan.discriminator)
print(f"G: {n_g:,} parameters   D: {n_d:,} parameters")
assert n_g == (100 * 256 + 256) + (256 * 512 + 512) + (512 * 1024 + 1024) + (1024 * 784 + 784)
assert n_d == (784 * 1024 + 1024) + (1024 * 512 + 512) + (512 * 256 + 256) + (256 * 1 + 1)

# %% [markdown]
# ### A grid of samples, by hand
#
# A sample grid puts $N$ images of $28 \times 28$ pixels into one picture, `nrow` per row,
# with a border of `padding` black pixels. With reshapes and one transpose, no loop:
# `(rows*ncol, 784)` -> `(rows, ncol, 28, 28)` -> swap the middle axes -> `(rows, 28, ncol, 28)`
# -> `(rows*28, ncol*28)`. The border is added by padding each image first.


# %%
def tile(images, nrow=8, padding=2):
    """images (N, 784) in [-1, 1] -> uint8 picture (rows*(28+p)+p, ncol*(28+p)+p)."""
    pix = np.round((np.clip(minigan.to_numpy(images), -1, 1) + 1) * 127.5).astype(np.uint8)
    n = pix.shape[0]
    ncol = min(nrow, n)
    rows = -(-n // ncol)  # ceiling division
    pix = np.concatenate([pix, np.zeros((rows * ncol - n, 784), np.uint8)])  # fill the last row
    pix = pix.reshape(rows, ncol, 28, 28)
    pix = np.pad(pix, ((0, 0), (0, 0), (padding, 0), (padding, 0)))  # border above and left
    pix = pix.transpose(0, 2, 1, 3).reshape(rows * (28 + padding), ncol * (28 + padding))
    return np.pad(pix, ((0, padding), (0, padding)))  # closing border below and right


# %% [markdown]
# ### Smoothing a noisy curve
#
# Per-step losses are noisy (each is one batch of 64). A moving average of window $k$ turns
# `(T,)` values into `(T - k + 1,)` means.


# %%
def smooth(values, k):
    values = np.asarray(values, dtype=np.float64)
    k = max(1, min(k, len(values)))
    return np.convolve(values, np.ones(k) / k, mode="valid")


# %% [markdown]
# ## Check
#
# **The grid** against minigan's `viz.image_grid` (which writes the PNGs of `train_mnist`),
# on an incomplete last row.

# %%
fake = gan.sample(21)  # (21, 784) from the untrained generator
ours, theirs = tile(fake, nrow=8), viz.image_grid(fake, nrow=8)
print("grid shapes:", ours.shape, theirs.shape)
assert np.array_equal(ours, theirs)

# %% [markdown]
# **The generator's gradient, end to end.** In `train_step` the generator's weights get their
# gradient through the discriminator: loss -> `dlogits (N, 1)` -> D (frozen) -> `dfake (N, 784)`
# -> G -> `dW`. We rebuild that path on a tiny float64 GAN and compare the gradient of one of
# G's weight matrices with central differences of the loss itself.

# %%
rng = np.random.default_rng(0)
G64 = minigan.mlp_generator(3, (5,), out_features=4, dtype="float64", rng=rng)
D64 = minigan.mlp_discriminator(4, (6,), dtype="float64", rng=rng)
z = rng.standard_normal((7, 3))
bce = minigan.BCEWithLogitsLoss()
ones = np.ones((7, 1))


def g_loss_value():
    return bce.forward(D64.forward(G64.forward(z)), ones)  # -mean log D(G(z))


G64.zero_grad()
g_loss_value()
D64.requires_grad_(False)  # as in train_step: D only passes the gradient through
dfake = D64.backward(bce.backward())  # (7, 4)
D64.requires_grad_(True)
G64.backward(dfake, input_grad=False)
for name, p in G64.named_parameters():
    numeric = numerical_gradient(lambda _: g_loss_value(), p.data, np.array(1.0))
    err = rel_error(p.grad, numeric)
    print(f"G.{name:9s} {str(p.data.shape):9s} rel_error {err:.1e}")
    assert err < 1e-6
print("D's gradients untouched:", all(not np.any(p.grad) for p in D64.parameters()))

# %% [markdown]
# ## Use minigan
#
# ### One call
#
# `train_mnist` reads MNIST from `$MINIGAN_DATA_DIR` (or downloads it once), builds the
# preset, and trains. Here it writes into a fresh folder; leave `out_dir` out and it uses
# `runs/mnist-<date>-<time>`. In small mode we train on 3,200 images for 150 steps (the
# pictures will be blobs, but every artifact is produced); in full mode on all 60,000 images
# for 8 epochs (7,500 steps), enough for recognisable digits of every class.
#
# `device="cpu"` keeps this lesson independent of a GPU (lesson 10 is about that).

# %%
out_dir = Path(tempfile.mkdtemp(prefix="minigan-lesson09-"))
settings = (
    dict(epochs=3, limit=3200, max_steps=150, log_every=10)
    if SMALL
    else dict(epochs=8, log_every=50)
)
start = time.perf_counter()
history = minigan.train_mnist(
    preset="classic",
    batch_size=64,
    device="cpu",
    seed=0,
    out_dir=out_dir,
    progress=False,
    **settings,
)
seconds = time.perf_counter() - start
print(f"{len(history.steps)} steps in {seconds:.0f} s; files in {history.out_dir}")
for name, path in sorted(history.artifacts.items()):
    print(f"  {name:10s} {path}")

# %% [markdown]
# ### What came back
#
# `history.steps` has one dict per step (Python floats, copied from the device every
# `log_every` steps), `history.epochs` one summary per epoch, `history.gan` the trained GAN.

# %%
print(history.steps[-1])
print(f"{'epoch':>5} {'D loss':>7} {'G loss':>7} {'D(x)':>6} {'D(G(z))':>8} {'seconds':>8}")
for e in history.epochs:
    print(
        f"{e['epoch']:5d} {e['d_loss']:7.3f} {e['g_loss']:7.3f} {e['d_real']:6.3f} "
        f"{e['d_fake']:8.3f} {e['seconds']:8.1f}"
    )
# The epoch summaries are the means of the per-step values:
last = [s for s in history.steps if s["epoch"] == history.epochs[-1]["epoch"]]
assert np.isclose(np.mean([s["d_loss"] for s in last]), history.epochs[-1]["d_loss"])

# %% [markdown]
# ### Reading the curves
#
# The raw per-step values (faint) and their moving average, with the equilibrium values as
# dashed lines. (`train_mnist` saved the same plot as `losses.png`.)

# %%
steps = np.array([s["step"] for s in history.steps])
k = max(1, len(steps) // 40)
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
for key, label in (("d_loss", "D loss"), ("g_loss", "G loss")):
    v = np.array([s[key] for s in history.steps])
    axes[0].plot(steps, v, alpha=0.2)
    axes[0].plot(steps[k - 1 :], smooth(v, k), label=label, color=axes[0].lines[-1].get_color())
axes[0].axhline(np.log(4), ls="--", c="gray", lw=0.8, label="log 4")
axes[0].axhline(np.log(2), ls=":", c="gray", lw=0.8, label="log 2")
for key, label in (("d_real", "D(x)"), ("d_fake", "D(G(z))")):
    v = np.array([s[key] for s in history.steps])
    axes[1].plot(steps, v, alpha=0.2)
    axes[1].plot(steps[k - 1 :], smooth(v, k), label=label, color=axes[1].lines[-1].get_color())
axes[1].axhline(0.5, ls="--", c="gray", lw=0.8)
axes[1].set_ylim(0, 1)
for ax in axes:
    ax.set_xlabel("step")
    ax.legend()
    ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()

d = {key: np.array([s[key] for s in history.steps]) for key in METRICS}
tail = slice(len(steps) // 2, None)  # the second half of training
print(
    f"second half: D loss {d['d_loss'][tail].mean():.3f} (log 4 = {np.log(4):.3f}), "
    f"G loss {d['g_loss'][tail].mean():.3f}, D(x) {d['d_real'][tail].mean():.3f}, "
    f"D(G(z)) {d['d_fake'][tail].mean():.3f}"
)
assert all(np.all(np.isfinite(v)) for v in d.values())

# %% [markdown]
# How to read them. The numbers quoted here are not typed into the text: they come from a
# full-mode run (8 epochs) whose values are committed in `lessons/reference/09_train_mnist.json`,
# and the next cell prints them next to the run you just made (in small mode the early-window
# and per-epoch columns are short or empty).
#
# - **The raw values are noisy.** Each point is one batch of 64; the faint band spans most of
#   $[0, 1]$ for $D(x)$ and $D(G(z))$. Read the moving averages.
# - **First steps.** D learns fastest: within a few hundred steps $D(x)$ rises far above 1/2,
#   $D(G(z))$ falls far below it and the D loss drops well under $\log 4$, while the G loss
#   jumps above 2. G's first images are easy to reject.
# - **Then a slow drift back toward balance.** With this preset on MNIST, D keeps a clear edge
#   for the whole run, but the edge shrinks: from epoch 2 to the last epoch the D loss rises,
#   $D(G(z))$ rises and the G loss falls. An MLP discriminator separates MLP fakes from real
#   digits more easily than the generator can improve them; what matters is that neither mean
#   runs off to 0 or 1.
# - **Trouble signs** (lesson 11 produces each on purpose): a D loss heading to 0 with
#   $D(G(z))$ near 0 (D wins, G stops learning); a G loss climbing steadily; curves that swing
#   wildly; or smooth, healthy-looking curves while the samples all look alike (mode collapse:
#   the losses cannot see it).


# %%
def window_means(lo, hi):
    """Mean of each metric over the steps lo <= step < hi (None when the run is shorter)."""
    rows = [s for s in history.steps if lo <= s["step"] < hi]
    if not rows or history.steps[-1]["step"] < hi - 1:
        return dict.fromkeys(METRICS)
    return {key: float(np.mean([s[key] for s in rows])) for key in METRICS}


early = window_means(200, 500)
per_epoch = {key: [round(float(e[key]), 4) for e in history.epochs] for key in METRICS}
run = {
    "steps": len(history.steps),
    "epochs": len(history.epochs),
    **{f"early_{key}": early[key] for key in METRICS},
    **{f"second_half_{key}": float(d[key][tail].mean()) for key in METRICS},
    **{f"epoch_{key}": per_epoch[key] for key in METRICS},
}
ref = compare(
    "09_train_mnist",
    run,
    [("steps", "steps", "d"), ("epochs", "epochs", "d")]
    + [(f"steps 200-499: {key}", f"early_{key}", ".3f") for key in METRICS]
    + [(f"second half: {key}", f"second_half_{key}", ".3f") for key in METRICS]
    + [(f"per epoch: {key}", f"epoch_{key}", ".2f") for key in METRICS],
)
if ref:
    e = {key: ref[f"epoch_{key}"] for key in METRICS}
    print(
        f"reference run, epoch 2 -> epoch {len(e['d_loss'])}: D loss {e['d_loss'][1]:.2f} -> "
        f"{e['d_loss'][-1]:.2f}, D(G(z)) {e['d_fake'][1]:.2f} -> {e['d_fake'][-1]:.2f}, "
        f"G loss {e['g_loss'][1]:.2f} -> {e['g_loss'][-1]:.2f}"
    )

# %% [markdown]
# ### Reading the pictures
#
# After every epoch `train_mnist` draws the **same** 64 noise vectors through G and saves the
# grid, so the grids show how the mapping from noise to images changes. Here are the first,
# middle and last ones.

# %%
grids = [e["grid"] for e in history.epochs if e.get("grid")]
pick = sorted({0, len(grids) // 2, len(grids) - 1})
fig, axes = plt.subplots(1, len(pick), figsize=(4.5 * len(pick), 4.8))
for ax, i in zip(np.atleast_1d(axes), pick, strict=True):
    ax.imshow(plt.imread(grids[i]), cmap="gray")
    ax.set_title(f"after epoch {history.epochs[i]['epoch']}")
    ax.axis("off")
plt.tight_layout()
plt.show()
print("animated version:", history.artifacts.get("gif"))

# %% [markdown]
# What to look for in a grid, in order:
#
# 1. **Structure.** Noise first, then blobs with a bright centre, then strokes. In small mode
#    we stop here.
# 2. **Digits.** Strokes become recognisable digits. Early grids can show nearly the *same*
#    blurry shape in every cell, a collapse the game usually undoes within an epoch or two.
# 3. **Variety.** Every cell should be a different digit, and all ten classes should appear.
#    MLP GANs trained for a few epochs typically over-produce the easiest digit to draw (1)
#    and under-produce others: a partial mode collapse, their commonest flaw. Below, minigan's
#    MNIST classifier counts the classes of 1,000 samples (what `minigan evaluate` reports);
#    longer training (the default preset trains 40 epochs) helps.
# 4. **Stability.** The same cell should change gradually from epoch to epoch. A digit that
#    jumps to another class each epoch means G is chasing D rather than converging.
#
# ### Pixel statistics: a first number for "looks like MNIST"
#
# Real MNIST is mostly black background with sharp strokes: about 80 % of pixels are exactly
# -1 after scaling. A generator that has learnt this should produce a similar histogram. The
# reference run's samples come close on the fraction of near-black pixels but are darker on
# average than real digits (the printout compares both with this run's).

# %%
real, _ = load_mnist("train")
real = preprocess(real[:1000])
samples = minigan.to_numpy(history.gan.sample(1000))
fig, ax = plt.subplots(figsize=(6, 3))
bins = np.linspace(-1, 1, 41)
ax.hist(real.ravel(), bins=bins, alpha=0.5, density=True, label="real", log=True)
ax.hist(samples.ravel(), bins=bins, alpha=0.5, density=True, label="generated", log=True)
ax.set_xlabel("pixel value")
ax.legend()
plt.tight_layout()
plt.show()
run["black_real"], run["black_fake"] = float(np.mean(real < -0.9)), float(np.mean(samples < -0.9))
run["mean_real"], run["mean_fake"] = float(real.mean()), float(samples.mean())
_ = compare(
    "09_train_mnist",
    run,
    [
        ("real: pixels < -0.9", "black_real", ".1%"),
        ("generated: pixels < -0.9", "black_fake", ".1%"),
        ("real: mean pixel", "mean_real", "+.3f"),
        ("generated: mean pixel", "mean_fake", "+.3f"),
    ],
)

# %% [markdown]
# **Which digits?** minigan's MNIST classifier (`minigan.classifier`, about 98.7 % test
# accuracy) labels the 1,000 samples. It is trained once (about a minute) and cached; in
# small mode the lesson uses it only if it is already cached.

# %%
try:
    clf = load_classifier(train_if_missing=not SMALL, progress=False)
except FileNotFoundError:
    clf = None
    print("classifier not cached: skipped in small mode (minigan evaluate trains and caches it)")
if clf is not None:
    hist = class_histogram(clf.predict((samples + 1) / 2))  # the classifier wants [0, 1]
    run["class_fractions"] = [round(float(f), 3) for f in hist / hist.sum()]
    run["digits_covered"] = digits_covered(hist)
_ = compare(
    "09_train_mnist",
    run,
    [
        ("fraction of each digit 0-9", "class_fractions", ".2f"),
        ("digits with >= 1 % of samples", "digits_covered", "d"),
    ],
)

# %% [markdown]
# ### Checkpoints: resume and sample
#
# `checkpoint.npz` holds the weights, both Adam states, the random generators' states and
# the step counter, so `resume=` continues *exactly* where the run stopped (bit-identical to
# an uninterrupted run on the CPU). Here we add one more epoch (in small mode, a few steps).

# %%
ckpt = history.artifacts["checkpoint"]
more = minigan.train_mnist(
    resume=ckpt,
    epochs=history.epochs[-1]["epoch"] + 1,
    device="cpu",
    progress=False,
    **({"max_steps": len(history.steps) + 20, "log_every": 10} if SMALL else {}),
)
print(f"resumed at step {history.steps[-1]['step']}, now at step {more.steps[-1]['step']}")
assert more.steps[-1]["step"] > history.steps[-1]["step"]

# %% [markdown]
# To draw new digits from a checkpoint, on the command line:
#
# ```bash
# minigan sample --checkpoint runs/mnist-.../checkpoint.npz --n 64 --out grid.png
# ```
#
# and in Python, `gan_from_checkpoint(path)` (from `minigan.checkpoint`) rebuilds the GAN. A nice use:
# walk in a straight line between two noise vectors and watch one digit morph into another.
# Smooth changes mean G has learnt a continuous map rather than memorised a few images.

# %%
gen, _, config = gan_from_checkpoint(ckpt, device="cpu")  # the GAN, its state and settings
print("checkpoint settings:", {k: config[k] for k in ("preset", "seed", "batch_size", "limit")})
zrng = np.random.default_rng(1)
z_ends = zrng.standard_normal((4, 2, gen.latent_dim)).astype(np.float32)  # 4 pairs of ends
t = np.linspace(0, 1, 8, dtype=np.float32)[None, :, None]  # (1, 8, 1)
z_path = (1 - t) * z_ends[:, :1] + t * z_ends[:, 1:]  # (4, 8, latent_dim)
walk = gen.sample(32, z=z_path.reshape(32, gen.latent_dim))
plt.figure(figsize=(8, 4.3))
plt.imshow(tile(walk, nrow=8), cmap="gray")
plt.axis("off")
plt.title("each row: a straight line in noise space")
plt.show()

# %%
# In full mode with MINIGAN_LESSON_RECORD=1 this run becomes the reference log.
record("09_train_mnist", run, small=SMALL, seconds=seconds)

# %% [markdown]
# ## Summary
#
# - `minigan.train_mnist()` (or `minigan train-mnist`) trains the MLP GAN on MNIST and writes
#   a grid per epoch from fixed noise, `losses.png`, `progress.gif`, `log.json`/`log.csv` and
#   `checkpoint.npz`; it returns a `History` with `steps`, `epochs`, `artifacts` and `gan`.
# - Healthy: D loss below but not far from $\log 4$, D(x) and D(G(z)) on either side of
#   $1/2$, neither running off to 0 or 1. The losses measure a game, not progress.
# - The sample grids are the real progress report: structure, digits, variety, stability.
# - G's weights get their gradient through D's input; checked here end to end in float64.
# - `resume=` continues a run exactly; `gan_from_checkpoint` and `minigan sample` draw from it.

# %% [markdown]
# ## Exercises
#
# 1. Train with the `"seed-keras-mlp"` preset (`preset="seed-keras-mlp"`: ReLU generator,
#    Adam 1e-4 with betas (0.9, 0.999)) for the same number of epochs. Compare the curves and
#    the grids. Which differences come from the betas?
# 2. Change the batch size to 16 and to 256 at the same number of *images seen*. What happens
#    to the noise of the curves, the wall time, and the samples?
# 3. The pixel histogram is a weak test. Propose and compute a better one: for example, the
#    fraction of samples whose nearest training image (in Euclidean distance) is closer than
#    any two training images usually are. What would a memorising generator score?
# 4. Train with `g_loss="saturating"` (an override of `train_mnist`). Does it learn? Compare
#    the first 500 steps of D(G(z)) with the default run, and explain with lesson 8.
# 5. **Gradient-check exercise.** In "Check" we verified G's weight gradients. Extend it to
#    D's weight gradients in D's own update (targets 1 for a real batch and 0 for a fake
#    batch, summed), and confirm that D's update must *not* change G's gradients.
