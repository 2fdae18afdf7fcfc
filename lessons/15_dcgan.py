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
# # Lesson 15: DCGAN on MNIST and Fashion-MNIST
#
# Lessons 12-14 built convolution, transposed convolution and batch norm by hand. DCGAN
# (Radford, Metz & Chintala 2016) puts them together into the GAN architecture that made
# GANs work on images: a generator of transposed convolutions and a discriminator of strided
# convolutions, both with batch norm. This lesson follows the shapes through both networks,
# gradient-checks a tiny discriminator, shows why batch norm forces D to see real and fake
# images in **two separate passes**, and trains DCGANs on MNIST and Fashion-MNIST with
# `minigan.train`.

# %% [markdown]
# ## Goal
#
# - Trace `z (N, 100) -> (N, 1, 28, 28)` through the DCGAN generator and back down to a logit
#   through the discriminator, with the output-size formulas of lessons 12 and 13.
# - Gradient-check a float64 DCGAN discriminator with batch norm.
# - See, numerically, that one pass over `[real; fake]` through a batch-norm D differs from
#   two passes, and how `minigan.GAN` decides which to use (`mixes_batch_rows`).
# - Train the `dcgan` preset on MNIST and Fashion-MNIST; read the sample grids and the curves.

# %%
import os
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np

import minigan
from minigan import viz
from minigan.data import DatasetNotFoundError, load_mnist
from minigan.dcgan import dcgan_discriminator, dcgan_generator, dcgan_stages
from minigan.gan import mixes_batch_rows
from minigan.presets import PRESETS

SMALL = os.environ.get("MINIGAN_LESSON_MODE", "full") == "small"
print("small mode:", SMALL)
t_lesson = time.perf_counter()

# The lesson trains the registered preset "dcgan". Where this minigan has no such preset yet,
# the shapes, checks and the batch-norm experiment still run and the training is skipped.
HAVE_DCGAN = "dcgan" in PRESETS
if not HAVE_DCGAN:
    print("SKIP training: this minigan has no preset 'dcgan' (minigan.presets.PRESETS has "
          f"{sorted(PRESETS)}); the shapes, checks and batch-norm parts still run")  # fmt: skip

# %% [markdown]
# ## Math with shapes
#
# **Generator** (`base_channels = 16`, MNIST's `(1, 28, 28)`: two stride-2 stages from a
# `7 x 7` start, `dcgan_stages`):
#
# | layer | output shape |
# | --- | --- |
# | `z` | `(N, 100)` |
# | `Linear(100, 32*7*7, bias=False)`, `Unflatten` | `(N, 32, 7, 7)` |
# | `BatchNorm2d(32)`, `ReLU` | `(N, 32, 7, 7)` |
# | `ConvTranspose2d(32, 16, 4, stride=2, padding=1)`, `BatchNorm2d`, `ReLU` | `(N, 16, 14, 14)` |
# | `ConvTranspose2d(16, 1, 4, 2, 1)`, `Tanh` | `(N, 1, 28, 28)` |
#
# A transposed convolution's output side is $(H - 1)s - 2p + k = 6 \cdot 2 - 2 + 4 = 14$,
# then $13 \cdot 2 - 2 + 4 = 28$: each stage exactly doubles the side (lesson 13).
#
# **Discriminator**: `Conv2d(1, 16, 4, 2, 1)` -> `(N, 16, 14, 14)`, LeakyReLU(0.2) (no batch
# norm on the input layer); `Conv2d(16, 32, 4, 2, 1)` -> `(N, 32, 7, 7)`, BatchNorm2d,
# LeakyReLU; `Flatten` -> `(N, 1568)`; `Linear(1568, 1)` -> logits `(N, 1)`. A convolution's
# output side is $\lfloor (H + 2p - k)/s \rfloor + 1 = (28 + 2 - 4)/2 + 1 = 14$, then 7.
#
# **The two-pass rule.** In training mode, batch norm normalises each channel with the mean
# and variance of *the batch it is given*:
# $\hat x = (x - \mu_B)/\sqrt{\sigma_B^2 + \epsilon}$. If D gets `[real; fake]` (2N rows) in
# one pass, every real image is normalised with statistics that include the fakes, and vice
# versa: D's output for a real image then depends on which fakes share its batch, and D can
# tell the two halves apart by their statistics alone. DCGAN implementations therefore pass
# real and fake batches through D **separately** (the PyTorch DCGAN example does exactly
# this), so each batch-norm call sees one kind of image. For layers that treat rows
# independently (Linear, Conv2d, LeakyReLU) one joint pass is the same computation, and
# faster.

# %% [markdown]
# ## Implement
#
# Trace the shapes by running each layer of the networks on a small batch.


# %%
def trace(net, x):
    """Print each layer's output shape; return the final output."""
    print(f"  {'input':28s} {tuple(x.shape)}")
    for layer in net.layers:
        x = layer.forward(x)
        print(f"  {type(layer).__name__:28s} {tuple(x.shape)}")
    return x


rng = np.random.default_rng(0)
print("dcgan_stages((1, 28, 28)) =", dcgan_stages((1, 28, 28)))
G = dcgan_generator(100, (1, 28, 28), base_channels=16, rng=rng)
D = dcgan_discriminator((1, 28, 28), base_channels=16, rng=rng)
print("generator:")
fake = trace(G, rng.standard_normal((8, 100)).astype(np.float32))
print("discriminator:")
logits = trace(D, fake)
assert fake.shape == (8, 1, 28, 28) and logits.shape == (8, 1)
print("parameters: G", sum(int(p.data.size) for p in G.parameters()),
      " D", sum(int(p.data.size) for p in D.parameters()))  # fmt: skip

# %% [markdown]
# ## Check
#
# A float64 DCGAN discriminator on 16 x 16 images (two stages, 2 base channels, so the check
# is quick) with batch norm in its second stage:
# `minigan.check_module` compares `backward` with central differences for the input and
# every parameter, resetting batch norm's running statistics before each forward.

# %%
D64 = dcgan_discriminator(
    (1, 16, 16), base_channels=2, dtype="float64", rng=np.random.default_rng(1)
)
x64 = np.random.default_rng(2).standard_normal((4, 1, 16, 16))
report = minigan.check_module(D64, x64)
print(report)
assert report.max_rel_error < 1e-5, report.failed  # a deep stack: 1e-5 (STYLE.md)

# %% [markdown]
# ### The two-pass rule, measured
#
# The same real and fake batches through the same batch-norm D, in training mode: once as
# one batch `[real; fake]`, once as two.

# %%
real_u8, _ = load_mnist("train")
real = (real_u8[:64, None].astype(np.float32) / 127.5) - 1.0  # (64, 1, 28, 28) in [-1, 1]
fake = G.forward(rng.standard_normal((64, 100)).astype(np.float32))
D.train()
joint = D.forward(np.concatenate([real, fake]))[:64]  # (64, 1): real rows of one joint pass
alone = D.forward(real)  # (64, 1): real images on their own
print(f"D(real) logits, joint vs separate: max difference {np.max(np.abs(joint - alone)):.3f} "
      f"(logits of size {np.mean(np.abs(alone)):.3f})")  # fmt: skip
assert np.max(np.abs(joint - alone)) > 1e-3

mlp_d = minigan.mlp_discriminator(784, (64,), rng=rng)
print("mixes_batch_rows: DCGAN D", mixes_batch_rows(D), "| MLP D", mixes_batch_rows(mlp_d))
assert mixes_batch_rows(D) and not mixes_batch_rows(mlp_d)

# %% [markdown]
# `minigan.GAN` asks exactly this: `d_joint_batch = not mixes_batch_rows(discriminator)`. With
# the MLP D of lessons 9-11 it runs one pass of 2N rows; with a batch-norm D two passes, so
# that each batch-norm call sees only real or only fake images. No list of layer types is
# involved: BatchNorm declares `mixes_batch_rows = True` and any new layer that mixes rows does
# the same.
#
# ## Use minigan
#
# ### DCGAN on MNIST
#
# One call, as in lesson 9, with the preset `dcgan` (`minigan presets` describes it). The
# small mode trains a few dozen steps on 2,000 images: the grid is still noise with the first
# strokes; the full mode trains the preset's epochs.

# %%
STEPS = 40 if SMALL else None
LIMIT = 2000 if SMALL else None
DATA_ROOT = os.environ.get("MINIGAN_DATA_DIR")
if DATA_ROOT and os.path.basename(os.path.normpath(DATA_ROOT)) == "mnist":
    DATA_ROOT = os.path.dirname(os.path.normpath(DATA_ROOT))  # the root that holds mnist/


def train_dcgan(dataset):
    """minigan.train with the dcgan preset; returns the History (or None without the preset)."""
    if not HAVE_DCGAN:
        print(f"skipped {dataset}: no preset 'dcgan' in this minigan")
        return None
    t0 = time.perf_counter()
    try:
        history = minigan.train(
            preset="dcgan", dataset=dataset, data_dir=DATA_ROOT, out_dir=tempfile.mkdtemp(),
            max_steps=STEPS, limit=LIMIT, progress=False, seed=0,
        )  # fmt: skip
    except DatasetNotFoundError as exc:  # e.g. Fashion-MNIST not downloaded, no network
        print(f"skipped {dataset}: {exc}")
        return None
    print(f"{dataset}: {len(history.steps)} steps in {time.perf_counter() - t0:.0f} s, "
          f"D joint batch: {history.gan.d_joint_batch}")  # fmt: skip
    return history


def show(history, title):
    """A grey sample grid and the loss / D-output curves of one run."""
    steps = history.steps
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    z = np.random.default_rng(123).standard_normal((64, history.gan.latent_dim))
    grid = viz.image_grid(history.gan.sample(64, z=z.astype(np.float32)))
    axes[0].imshow(grid, cmap="gray")
    axes[0].set_title(f"{title}: 64 samples")
    axes[0].axis("off")
    x = [s["step"] for s in steps]
    for key in ("d_loss", "g_loss"):
        axes[1].plot(x, [s[key] for s in steps], label=key, lw=0.8)
    axes[1].axhline(np.log(4), color="gray", ls="--", lw=0.8, label="log 4")
    for key in ("d_real", "d_fake"):
        axes[2].plot(x, [s[key] for s in steps], label=key, lw=0.8)
    axes[2].axhline(0.5, color="gray", ls="--", lw=0.8)
    for ax in axes[1:]:
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    plt.tight_layout()
    plt.show()


mnist_run = train_dcgan("mnist")
if mnist_run is not None:
    assert not mnist_run.gan.d_joint_batch  # batch norm in D: two passes
    show(mnist_run, "DCGAN, MNIST")

# %% [markdown]
# What to look for in the full-mode grid, next to lesson 9's MLP grid: are the strokes
# continuous and of even width, and does every digit appear? Convolutions share their
# weights across the image, so a stroke detector learnt in one place works everywhere, and
# a DCGAN needs far fewer parameters than the MLP GAN (compare the counts above). In the
# curves, look for lesson 9's signature of a balanced game: D's loss staying below
# $\log 4$ without heading to 0, $D(x)$ above $D(G(z))$ without running away. The curves do
# not measure quality: `minigan evaluate` on the run's checkpoint does (lesson 18). (The small
# mode's few dozen steps show noise turning into the first blobs and strokes.)
#
# ### DCGAN on Fashion-MNIST
#
# The same preset and the same call, another registered dataset: only the `dataset` argument
# changes.

# %%
fashion_run = train_dcgan("fashion-mnist")
if fashion_run is not None:
    show(fashion_run, "DCGAN, Fashion-MNIST")

# %% [markdown]
# Fashion-MNIST is harder: textures (knitwear, prints) and more varied shapes within a class.
# Look at whether all ten kinds of garment appear (shirts, trousers, shoes, bags...) and at
# the textures, which are the hardest part for a small generator; `minigan evaluate` has a
# Fashion-MNIST classifier for the numbers.

# %%
print(f"lesson ran in {time.perf_counter() - t_lesson:.0f} s")

# %% [markdown]
# ## Summary
#
# - DCGAN: transposed convolutions up (7 -> 14 -> 28), strided convolutions down, batch norm
#   in both networks except G's output and D's input, ReLU in G, LeakyReLU(0.2) in D, Tanh
#   output, N(0, 0.02) weights, Adam(2e-4, betas (0.5, 0.999)).
# - Every layer of lessons 12-14 has a gradient check; so does the whole D stack.
# - Batch norm makes a row's output depend on its batch: D must see real and fake images in
#   separate passes. `minigan.GAN` decides by `mixes_batch_rows`, not by layer types.
# - `minigan.train(preset="dcgan", dataset=...)` trains on any registered grey dataset.

# %% [markdown]
# ## Exercises
#
# 1. Remove the two-pass rule: build the GAN with `minigan.build_gan("dcgan", ...)`, set
#    `gan.d_joint_batch = True` and train 500 steps. Compare the grids and $D(x)$,
#    $D(G(z))$ with a normal run. What does D learn from the batch statistics?
# 2. Train with `base_channels=32` (`generator_args` and `discriminator_args` overrides). How
#    much slower is a step, and is the grid better after the same number of steps?
# 3. Put D in eval mode (`D.eval()`, running statistics) and repeat the joint-vs-separate
#    experiment. Why is the difference now zero?
# 4. Train the DCGAN on MNIST with `minigan.train(..., metrics_every=1)` and compare the
#    classifier metrics per epoch with the default MLP preset's (lesson 18 explains them).
