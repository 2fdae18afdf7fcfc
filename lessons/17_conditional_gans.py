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
# # Lesson 17: Conditional GANs and GANs as data augmentation
#
# A GAN of lessons 9-16 draws *some* digit. A **conditional GAN** (Mirza & Osindero 2014)
# draws the digit you ask for: G and D both receive the class label. That makes generated
# images *labelled* data, and two questions follow. Are they good enough to train a
# classifier on, with no real image at all? That is the **Classification Accuracy Score**
# (Ravuri & Vinyals 2019). And when real labelled images are scarce, do generated ones help,
# i.e. is a GAN a data-augmentation tool? This lesson measures both.

# %% [markdown]
# ## Goal
#
# - Write the label conditioning (one-hot concatenation) by hand and gradient-check it.
# - Train the `cgan` preset on MNIST with `minigan.train` and sample chosen digits with
#   `gan.sample(n, labels=...)`.
# - Measure the CAS with `minigan.metrics.classification_accuracy_score`, beside the same
#   classifier trained on real images.
# - Run the augmentation experiment: with $n$ real images per class ($n$ = 10, 100, 1000),
#   test accuracy of a classifier trained on them alone and on them plus cGAN samples.

# %%
import math
import os
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np
from reference_log import compare, record  # lessons/reference_log.py

import minigan
from minigan import viz
from minigan.classifier import ClassifierConfig, train_classifier
from minigan.data import load_mnist, preprocess
from minigan.gradcheck import numerical_gradient, rel_error
from minigan.metrics import classification_accuracy_score
from minigan.presets import PRESETS

SMALL = os.environ.get("MINIGAN_LESSON_MODE", "full") == "small"
print("small mode:", SMALL)
run = {}  # the values the reference log keeps (lessons/reference/17_conditional_gans.json)
t_lesson = time.perf_counter()

# The lesson trains the registered preset "cgan" (conditional MLPs). Where this minigan has no
# such preset yet, the conditioning by hand, its check and the real-only baselines still run.
HAVE_CGAN = "cgan" in PRESETS
if not HAVE_CGAN:
    print("SKIP the conditional GAN runs: this minigan has no preset 'cgan' "
          f"(minigan.presets.PRESETS has {sorted(PRESETS)}); the rest still runs")  # fmt: skip

N_PER_CLASS = (10, 50) if SMALL else (10, 100, 1000)
CGAN_STEPS = 40 if SMALL else 4000  # cGAN steps on each small labelled set
GEN_PER_CLASS = 30 if SMALL else 1000  # generated images added per class
CLF_STEPS = 40 if SMALL else 2000  # classifier steps for every training set
CAS_N = 2000 if SMALL else 60000  # generated images the CAS classifier trains on
CGAN_EPOCHS = 10  # full mode: the cGAN of the CAS section (small mode: a few steps)

# %% [markdown]
# ## Math with shapes
#
# **Conditioning by concatenation.** With a label $y \in \{0..9\}$ and its one-hot
# `e_y (N, 10)`:
#
# $$G(z, y) = G'([z, e_y]),\quad [z, e_y] \in \mathbb R^{N \times 110};\qquad
#   D(x, y) = D'([x, e_y]),\quad [x, e_y] \in \mathbb R^{N \times 794}.$$
#
# The game is lesson 8's with every expectation taken per class:
# $\min_G \max_D\, \mathbb E_{(x,y)}[\log D(x, y)] + \mathbb E_{z,y}[\log(1 - D(G(z,y), y))]$.
# D now rejects a good "7" drawn for the label 3, so G must draw what it is told.
#
# **Backward through the concatenation.** If `c = [x, e]` (N, 794), the gradient splits by
# columns: `dx = dc[:, :784]`; the label part `dc[:, 784:]` is dropped (labels are not
# learnt). The same holds for G: `dz = dc[:, :100]`.
#
# **CAS.** Train a classifier $f$ only on labelled samples $(G(z, y), y)$, report its
# accuracy on the real test set. A generator whose "3"s are not recognisable, or that draws
# only one style of each digit, gives a low CAS even when its samples look good, because the
# classifier never sees the rest of each class (Ravuri & Vinyals 2019, Sec. 3).
#
# **Augmentation.** From $n$ real labelled images per class ($10n$ images), train (a) a
# classifier on them, (b) a cGAN on them, then (c) the same classifier on them plus
# `GEN_PER_CLASS` cGAN samples per class. The question is whether (c) beats (a) on the real
# test set.

# %% [markdown]
# ## Implement
#
# The conditioning, by hand: a one-hot encoder and a conditional linear discriminator
# `D(x, y) = [x, e_y] @ W.T + b` built from `minigan.Linear`.


# %%
def one_hot(y, num_classes, dtype=np.float64):
    """(N,) ints -> (N, num_classes) one-hot."""
    out = np.zeros((y.shape[0], num_classes), dtype=dtype)
    out[np.arange(y.shape[0]), y] = 1
    return out


class ConcatLinearD:
    """D(x, y) = Linear([x, one_hot(y)]): logits (N, 1); backward returns dx (N, D) only."""

    def __init__(self, in_features, num_classes, rng):
        self.num_classes, self.d = num_classes, in_features
        self.linear = minigan.Linear(in_features + num_classes, 1, dtype="float64", rng=rng)

    def forward(self, x, y):
        return self.linear.forward(np.concatenate([x, one_hot(y, self.num_classes)], axis=1))

    def backward(self, dout):
        dc = self.linear.backward(dout)  # (N, D + num_classes)
        return dc[:, : self.d]  # the labels' columns get no gradient


# %% [markdown]
# ## Check
#
# `dx` of the conditional D against central differences (float64, random `dout`), and the
# label really matters: the same `x` with another label gives another logit.

# %%
rng = np.random.default_rng(0)
Dc = ConcatLinearD(6, 3, rng)
x = rng.standard_normal((5, 6))
y = rng.integers(0, 3, 5)
dout = rng.standard_normal((5, 1))
Dc.forward(x, y)
analytic = Dc.backward(dout)
numeric = numerical_gradient(lambda v: Dc.forward(v, y), x, dout)
err = rel_error(analytic, numeric)
print(f"conditional D: dx {analytic.shape} rel_error {err:.1e}")
assert err < 1e-6
other = (y + 1) % 3
print("logits with y:", np.round(Dc.forward(x, y)[:, 0], 3))
print("with y + 1:   ", np.round(Dc.forward(x, other)[:, 0], 3))
assert not np.allclose(Dc.forward(x, y), Dc.forward(x, other))

# %% [markdown]
# ## Use minigan
#
# ### A conditional GAN on MNIST
#
# The `cgan` preset wraps the default MLPs so that one-hot labels are concatenated to z and to
# D's input, exactly as above; `minigan.train` then feeds each real batch's labels to the step
# and asks G for fakes of the same labels.

# %%
train_u8, train_y = load_mnist("train")  # (60000, 28, 28) uint8, (60000,)
DATA_ROOT = os.environ.get("MINIGAN_DATA_DIR")


def grid_by_class(gan, per_class=10, seed=0):
    """One row per digit: gan.sample with labels 0..9, each repeated per_class times."""
    labels = np.repeat(np.arange(10), per_class)
    z = np.random.default_rng(seed).standard_normal((labels.size, gan.latent_dim))
    return viz.image_grid(gan.sample(labels.size, z=z.astype(np.float32), labels=labels), nrow=10)


cgan = None
if HAVE_CGAN:
    t0 = time.perf_counter()
    history = minigan.train(
        preset="cgan", dataset="mnist", data_dir=DATA_ROOT, out_dir=tempfile.mkdtemp(),
        epochs=None if SMALL else CGAN_EPOCHS, max_steps=CGAN_STEPS if SMALL else None,
        limit=2000 if SMALL else None, progress=False, seed=0,
    )  # fmt: skip
    cgan = history.gan
    run["cgan_seconds"] = time.perf_counter() - t0
    print(f"cgan: {len(history.steps)} steps in {run['cgan_seconds']:.0f} s")
    plt.figure(figsize=(5, 5))
    plt.imshow(grid_by_class(cgan), cmap="gray")
    plt.title("cgan samples: row k asks for digit k")
    plt.axis("off")
    plt.show()
else:
    print("skipped: no preset 'cgan'")

# %% [markdown]
# In full mode each row holds one digit in varied styles: the label controls the class, the
# noise the style. (In small mode, a few dozen steps, the rows are still noise.)
#
# ### Classification Accuracy Score
#
# `classification_accuracy_score` takes a callable that yields `(images in [0, 1], labels)`
# batches, trains the dataset's metric classifier on `n` of them and tests it on the real
# test set. The full mode uses the registry's classifier (6 epochs, the paper's 60,000
# images); the small mode a small one on 2,000 images, with its real-data baseline trained on
# 2,000 real images the same way.

# %%
if SMALL:
    CAS_CONFIG = ClassifierConfig(hidden=(128,), epochs=2, batch_size=64, max_shift=0)
    real = train_classifier(CAS_CONFIG, images=train_u8[:CAS_N, None], labels=train_y[:CAS_N])
    real_accuracy = real.test_accuracy
else:
    CAS_CONFIG, real_accuracy = None, None  # the registry's classifier and its cached accuracy


def cgan_batches(gan, batch=1000, seed=1):
    """Endless (images (B, 784) in [0, 1], labels (B,)) batches, every class equally often."""
    rng = np.random.default_rng(seed)
    start = 0
    while True:
        labels = (start + np.arange(batch)) % 10
        z = rng.standard_normal((batch, gan.latent_dim)).astype(np.float32)
        x = minigan.to_numpy(gan.sample(batch, z=z, labels=labels))
        yield (x.reshape(batch, -1) + 1) / 2, labels
        start += batch


if cgan is not None:
    t0 = time.perf_counter()
    cas = classification_accuracy_score(
        lambda: cgan_batches(cgan), n=CAS_N, dataset="mnist", config=CAS_CONFIG,
        real_accuracy=real_accuracy, progress=False,
    )  # fmt: skip
    run["cas"], run["cas_real"], run["cas_n"] = cas["cas"], cas["real_accuracy"], cas["n"]
    print(f"CAS {cas['cas']:.4f} (trained on {cas['n']} cgan samples) vs "
          f"{cas['real_accuracy']:.4f} trained on real images ({time.perf_counter() - t0:.0f} s)")  # fmt: skip
else:
    print("CAS skipped: no conditional GAN (no preset 'cgan')")

# %% [markdown]
# The gap between the two numbers is what the samples lack. Samples that look right can still
# miss whole styles of a digit (thin, slanted, open 4s): a classifier trained on them alone
# has never seen those and fails on them in the test set. CAS therefore measures coverage
# *within* each class, which the class histogram of lesson 18 cannot see.
#
# ### GANs as data augmentation
#
# For each $n$: $n$ real images per class (the first $n$ of each digit in the training set),
# a classifier trained on them; a cGAN trained on the same $10n$ images with `GAN.train_step`
# (our own loop: `minigan.train` trains on a whole registered dataset, not on a subset); the
# same classifier trained on the real images plus `GEN_PER_CLASS` generated images per class.
# Every classifier takes the same number of steps, `CLF_STEPS`.


# %%
def per_class_subset(n, seed=0):
    """Indices of the first n training images of each digit (10n indices)."""
    return np.concatenate([np.nonzero(train_y == c)[0][:n] for c in range(10)])


def classifier_accuracy(images_u8_or_01, labels):
    """Test accuracy of an MLP classifier trained for about CLF_STEPS steps on these images."""
    n = images_u8_or_01.shape[0]
    b = min(64, n)
    epochs = max(1, math.ceil(CLF_STEPS / (n // b)))
    cfg = ClassifierConfig(hidden=(256,), epochs=epochs, batch_size=b, max_shift=1)
    x = images_u8_or_01.reshape(n, 1, 28, 28)
    return train_classifier(cfg, images=x, labels=labels).test_accuracy


def train_cgan_on(x_flat, y, steps, seed=0):
    """The cgan preset trained on (x (N, 784) in [-1, 1], y (N,)) with GAN.train_step."""
    gan = minigan.build_gan("cgan", seed=seed)
    rng = np.random.default_rng(seed)
    batch = min(64, x_flat.shape[0])
    for _ in range(steps):
        idx = rng.choice(x_flat.shape[0], batch, replace=False)
        gan.train_step(gan.backend.asarray(x_flat[idx]), labels=y[idx])
    return gan


aug = {"n": [], "real": [], "real+cgan": []}
t0 = time.perf_counter()
for n in N_PER_CLASS:
    idx = per_class_subset(n)
    x01 = train_u8[idx].reshape(idx.size, -1).astype(np.float32) / 255.0  # (10n, 784)
    y = train_y[idx].astype(np.int64)
    acc_real = classifier_accuracy(x01, y)
    acc_aug = None
    if HAVE_CGAN:
        gan = train_cgan_on(preprocess(train_u8[idx]), y, CGAN_STEPS)
        gen_x, gen_y = next(cgan_batches(gan, batch=10 * GEN_PER_CLASS))
        acc_aug = classifier_accuracy(
            np.concatenate([x01, gen_x.astype(np.float32)]), np.concatenate([y, gen_y])
        )
    aug["n"].append(n)
    aug["real"].append(acc_real)
    aug["real+cgan"].append(acc_aug)
    print(f"n = {n:4d} per class: real alone {acc_real:.4f}, real + cgan "
          + ("-" if acc_aug is None else f"{acc_aug:.4f}"))  # fmt: skip
print(f"({time.perf_counter() - t0:.0f} s)")
run.update({f"aug_{k}": v for k, v in aug.items()})

fig, ax = plt.subplots(figsize=(6, 3.8))
ax.semilogx(aug["n"], aug["real"], marker="o", label="n real per class")
if HAVE_CGAN:
    ax.semilogx(aug["n"], aug["real+cgan"], marker="s", label=f"+ {GEN_PER_CLASS} cgan per class")
ax.set_xlabel("real labelled images per class")
ax.set_ylabel("accuracy on the real test set")
ax.legend()
plt.tight_layout()
plt.show()
assert aug["real"][-1] > aug["real"][0]  # more real data helps

# %% [markdown]
# What to look for (compare your run with the reference log below): the real-only curve
# rises steadily with $n$. The cGAN can only recombine what its $10n$ images contain; where
# it helps at all, it is at small $n$, where a classifier trained on a hundred images has seen
# few shifts and styles, and a GAN that has learnt smooth variations of them adds some. At
# large $n$ the real images already cover the class better than the generator does, and
# generated images of lower quality can *lower* the accuracy. "GANs as data augmentation" is
# an experiment to run, not a guarantee.

# %%
seconds = time.perf_counter() - t_lesson
print(f"lesson ran in {seconds:.0f} s")
_ = compare(
    "17_conditional_gans",
    run,
    [
        ("CAS (cgan samples only)", "cas", ".4f"),
        ("same classifier on real", "cas_real", ".4f"),
        ("n per class", "aug_n", "d"),
        ("accuracy, real alone", "aug_real", ".4f"),
        ("accuracy, real + cgan", "aug_real+cgan", ".4f"),
    ],
)
# In full mode with MINIGAN_LESSON_RECORD=1 this run becomes the reference log.
if HAVE_CGAN:
    record("17_conditional_gans", run, small=SMALL, seconds=seconds)

# %% [markdown]
# ## Summary
#
# - A conditional GAN concatenates a one-hot label to G's noise and to D's input; the
#   backward pass simply drops the label columns. `gan.sample(n, labels=...)` draws chosen
#   classes.
# - CAS = real test accuracy of a classifier trained on generated labelled images only: it
#   sees missing styles within a class that IS, FCD and the class histogram miss.
# - As data augmentation a GAN adds at most what its own training images contain; measure
#   it against the real-only baseline at the same classifier budget, as here.

# %% [markdown]
# ## Exercises
#
# 1. **Gradient-check exercise.** Extend `ConcatLinearD` to a conditional generator layer
#    `G(z, y) = Linear([z, e_y])` and check `dz` and the weight gradient with
#    `minigan.gradcheck.numerical_gradient` in float64.
# 2. Label accuracy: classify 1,000 samples of each digit with `minigan.classifier.
#    load_classifier()` and print, per requested digit, how often the classifier agrees.
#    Which digits does the cGAN confuse?
# 3. In the augmentation experiment, vary `GEN_PER_CLASS` (100, 1000, 5000) at $n = 100$.
#    Is there a best ratio of generated to real images?
# 4. Replace the cGAN samples by simple augmentations of the real images (random shifts of up
#    to 2 pixels, `ClassifierConfig(max_shift=2)`). Which helps more at $n = 10$?
