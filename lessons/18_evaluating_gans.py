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
# # Lesson 18: Evaluating GANs
#
# A GAN has no loss that says how good it is (lesson 9: the losses measure a game, not
# progress). The 2014 paper reported a **Parzen-window log-likelihood**; later papers the
# **Inception Score** and the **Fréchet Inception Distance**. This lesson takes the numbers
# `minigan evaluate` prints apart, one by one, and feeds them "generators" whose flaws we know
# because we built them: a generator that **memorises** the training set, one that outputs
# **k-means centres**, one that **drops half the digits**, one that adds **noise**, and an
# ideal one that draws **unseen real images**. Each metric is fooled by something; the lesson
# finds out which by what.

# %% [markdown]
# ## Goal
#
# - Write the Parzen-window estimator by hand, check it against `minigan.metrics`, and
#   gradient-check its score $\nabla_x \log p(x)$ in float64.
# - Reproduce the point of Theis, van den Oord & Bethge (2016, *A note on the evaluation of
#   generative models*, Sec. 3.2): a memoriser and k-means centres get *high* Parzen scores.
# - Read the classifier metrics (IS, FCD, class histogram, KL to uniform, coverage) and the
#   nearest-neighbour ratio, and see which flaw each one catches.
# - Use the honest protocol of `minigan.metrics.evaluate_checkpoint`: sigma chosen on images
#   the GAN never saw.

# %%
import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from reference_log import compare, record  # lessons/reference_log.py

from minigan.classifier import ClassifierConfig, load_classifier, train_classifier
from minigan.data import load_mnist
from minigan.gradcheck import numerical_gradient, rel_error
from minigan.metrics import (
    PAPER_TABLE1,
    THEIS_TRUE_DISTRIBUTION,
    check_holdout,
    classifier_metrics,
    evaluation_protocol,
    feature_statistics,
    frechet_distance,
    nearest_neighbours,
    parzen_log_density,
    parzen_log_likelihood,
    parzen_select_sigma,
    plot_nearest_neighbours,
)

SMALL = os.environ.get("MINIGAN_LESSON_MODE", "full") == "small"
print("small mode:", SMALL)
run = {}  # the values the reference log keeps (lessons/reference/18_evaluating_gans.json)
t_lesson = time.perf_counter()

# Sizes: M images per "generator", the paper's protocol uses M = 10,000, N_TEST = 10,000 and
# N_VAL = 1,000; the full mode uses M = 2,000 so that k-means stays cheap on a CPU.
M = 300 if SMALL else 2000
N_TEST = 500 if SMALL else 10000
N_VAL = 300 if SMALL else 1000
KMEANS_POOL, KMEANS_ITERS = (3000, 5) if SMALL else (20000, 10)
M_CURVE = (30, 100, 300) if SMALL else (100, 300, 1000, 3000, 9000)

# %% [markdown]
# ## Math with shapes
#
# **Parzen window.** Put a Gaussian of width $\sigma$ on each of $M$ generated images
# $\mu_i$, stacked as `mu (M, D)` ($D = 784$), and score the test images `x (N, D)`:
#
# $$\log p_\sigma(x) = \log \frac1M \sum_{i=1}^M \mathcal N(x; \mu_i, \sigma^2 I)
#   = \operatorname{logsumexp}_i\Big(-\frac{\lVert x - \mu_i\rVert^2}{2\sigma^2}\Big)
#   - \log M - \frac D2 \log(2\pi\sigma^2).$$
#
# The squared distances form a `(N, M)` matrix, `d2 = |x|^2 (N, 1) + |mu|^2 (1, M) - 2 x @ mu.T`;
# the log-sum-exp runs along axis 1 and gives `(N,)`. The number reported is the mean over
# the test set, with $\sigma$ chosen among 10 values in $[0.1, 1]$ to maximise the mean on a
# separate validation set (Goodfellow et al. 2014, Sec. 5).
#
# **Its gradient** (the "score", used in the Check): with the soft assignment
# $w_i(x) = \operatorname{softmax}_i(-\lVert x - \mu_i\rVert^2 / 2\sigma^2)$, `w (N, M)`,
#
# $$\nabla_x \log p_\sigma(x) = \frac{1}{\sigma^2}\sum_i w_i(x)\,(\mu_i - x)
#   \quad\text{i.e. `(w @ mu - x) / sigma**2`, shape (N, D).}$$
#
# **Why it misleads.** In 784 dimensions $M$ kernels cover the space very thinly: the
# estimate is dominated by the *nearest* centre of each test image, so it rewards centres
# that sit close to many test images (averages, copies of training images) and barely sees
# variety or sharpness. Theis et al. (Table 2): 10,000 *training images* as centres score
# 243 nats, 10,000 *k-means centres* of the training set 313, the 2014 GAN 225.
#
# **Classifier metrics.** A classifier gives `p(y|x) (N, 10)` and penultimate features
# `f (N, F)`. The Inception Score is $\exp\big(\mathbb E_x \mathrm{KL}(p(y|x) \,\Vert\, p(y))\big)$
# (Salimans et al. 2016), in $[1, 10]$: high when each sample is classified confidently *and*
# the classes are balanced. The Fréchet distance fits Gaussians `(mu (F,), cov (F, F))` to the
# features of samples and of real images:
#
# $$d^2 = \lVert \mu_1 - \mu_2\rVert^2 + \operatorname{tr}\big(\Sigma_1 + \Sigma_2
#   - 2(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2})^{1/2}\big).$$
#
# With Inception-v3 features this is FID (Heusel et al. 2017); minigan uses its own small
# MNIST classifier, so it is the **FCD** (Fréchet classifier distance), whose values are on
# another scale and must never be compared with published FIDs. The predicted-class histogram
# `(10,)` gives **coverage** (classes with at least 1% of the samples) and
# $\mathrm{KL}(\text{hist} \,\Vert\, \text{uniform})$, 0 for balanced classes, $\log 10 = 2.30$
# for one class only.
#
# **Nearest neighbours.** For each sample, the Euclidean distance to its nearest *training*
# image; its median divided by the same median for unseen real images is about 1 for a model
# that generalises and falls toward 0 for one that copies.

# %% [markdown]
# ## Implement
#
# The estimator by hand, its score, and a small k-means (Lloyd's algorithm) whose assignment
# step is `minigan.metrics.nearest_neighbours`.


# %%
def parzen_by_hand(mu, x, sigma):
    """log p_sigma(x_j) (N,) for centres mu (M, D) and points x (N, D), float64, NumPy."""
    d2 = np.sum(x**2, 1)[:, None] + np.sum(mu**2, 1)[None, :] - 2 * x @ mu.T  # (N, M)
    a = -np.maximum(d2, 0) / (2 * sigma**2)  # (N, M)
    amax = a.max(axis=1, keepdims=True)  # (N, 1): the nearest centre, factored out
    lse = amax[:, 0] + np.log(np.sum(np.exp(a - amax), axis=1))  # (N,)
    m, d = mu.shape
    return lse - np.log(m) - d / 2 * np.log(2 * np.pi * sigma**2)


def parzen_score(mu, x, sigma):
    """grad_x log p_sigma(x) (N, D) = (w @ mu - x) / sigma^2 with w = softmax of -d2/2s^2."""
    d2 = np.sum((x[:, None, :] - mu[None, :, :]) ** 2, axis=2)  # (N, M)
    a = -d2 / (2 * sigma**2)
    w = np.exp(a - a.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)  # (N, M), rows sum to 1
    return (w @ mu - x) / sigma**2  # (N, D)


def kmeans(x, k, iters, rng):
    """k-means centres (k, D) of x (n, D) in [0, 1] by Lloyd's algorithm."""
    centres = x[rng.choice(x.shape[0], k, replace=False)].copy()
    for _ in range(iters):
        idx, _ = nearest_neighbours(x, centres, dtype="float32")  # (n,) assignment
        counts = np.bincount(idx, minlength=k)  # (k,)
        sums = np.zeros_like(centres)
        np.add.at(sums, idx, x)  # (k, D)
        keep = counts > 0  # an empty cluster keeps its old centre
        centres[keep] = sums[keep] / counts[keep, None]
    return centres


# %% [markdown]
# ## Check
#
# 1. The hand-written estimator equals `minigan.metrics.parzen_log_density`.
# 2. `parzen_score` equals central differences of `parzen_by_hand` (float64, eps = 1e-6,
#    random `dout`, relative error below 1e-6).
# 3. `frechet_distance` of two Gaussians with diagonal covariances equals the closed form
#    $\lVert\mu_1-\mu_2\rVert^2 + \sum_k(s_{1k} - s_{2k})^2$ ($s$: standard deviations).

# %%
rng = np.random.default_rng(0)
mu_c = rng.uniform(0, 1, size=(7, 5))  # (M, D)
x_c = rng.uniform(0, 1, size=(4, 5))  # (N, D)
for sigma in (0.1, 0.3, 1.0):
    ours = parzen_by_hand(mu_c, x_c, sigma)
    theirs = parzen_log_density(mu_c, x_c, sigma)
    assert np.allclose(ours, theirs, rtol=1e-12, atol=1e-10), (ours, theirs)
print("parzen_by_hand == minigan.metrics.parzen_log_density for sigma 0.1, 0.3, 1.0")

dout = rng.standard_normal(x_c.shape[0])  # (N,): random weights of the N log-densities
sigma = 0.4
analytic = parzen_score(mu_c, x_c, sigma) * dout[:, None]  # d sum(dout * log p) / dx
numeric = numerical_gradient(lambda x: parzen_by_hand(mu_c, x, sigma), x_c, dout)
err = rel_error(analytic, numeric)
print(f"score grad_x log p, shape {analytic.shape}: rel_error {err:.1e}")
assert err < 1e-6

m1, m2 = rng.standard_normal(6), rng.standard_normal(6)
s1, s2 = rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
d2 = frechet_distance(m1, np.diag(s1**2), m2, np.diag(s2**2))
closed = np.sum((m1 - m2) ** 2) + np.sum((s1 - s2) ** 2)
print(f"frechet_distance {d2:.12f}, closed form {closed:.12f}")
assert abs(d2 - closed) < 1e-9 * closed

# %% [markdown]
# ## Use minigan
#
# ### The data and the protocol
#
# The paper's protocol: the GAN trains on MNIST training images 0-49,999; sigma is chosen on
# 1,000 of images 50,000-59,999, which the GAN never saw; the log-likelihood is averaged over
# the test set. Our "ideal generator" draws images from 51,000 on, which nobody trained on.

# %%
train_u8, train_y = load_mnist("train")  # uint8 (60000, 28, 28), (60000,)
test_u8, test_y = load_mnist("test")  # uint8 (10000, 28, 28)


def flat01(u8):
    """uint8 (N, 28, 28) -> float64 (N, 784) in [0, 1] (what minigan.metrics takes)."""
    return u8.reshape(u8.shape[0], -1).astype(np.float64) / 255.0


train = flat01(train_u8[:50000])  # what "the GAN" trained on
valid = flat01(train_u8[50000 : 50000 + N_VAL])  # chooses sigma
unseen = flat01(train_u8[51000:])  # the ideal generator's pool (9,000 images)
test = flat01(test_u8[:N_TEST])
print(f"train {train.shape}, validation {valid.shape}, unseen {unseen.shape}, test {test.shape}")

# %% [markdown]
# ### Five generators whose flaws we know
#
# Each returns `M` images `(M, 784)` in $[0, 1]$:

# %%
rng = np.random.default_rng(1)
t0 = time.perf_counter()
pool = train[rng.choice(train.shape[0], KMEANS_POOL, replace=False)]
low_digits = np.nonzero(train_y[:50000] < 5)[0]
noisy = train[rng.choice(train.shape[0], M, replace=False)]
noisy = np.clip(noisy + 0.15 * rng.standard_normal(noisy.shape), 0.0, 1.0)
generators = {
    "memoriser (training images)": train[rng.choice(train.shape[0], M, replace=False)],
    "ideal (unseen real images)": unseen[:M],
    "k-means centres": kmeans(pool, M, KMEANS_ITERS, rng),
    "digits 0-4 only": train[rng.choice(low_digits, M, replace=False)],
    "memoriser + noise 0.15": noisy,
}
print(f"built in {time.perf_counter() - t0:.1f} s (k-means: {KMEANS_ITERS} iterations)")

fig, axes = plt.subplots(len(generators), 10, figsize=(10, 1.15 * len(generators)))
for row, (name, imgs) in zip(axes, generators.items(), strict=True):
    for j, ax in enumerate(row):
        ax.imshow(imgs[j].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The k-means centres are blurry averages: no one would call them good samples. The last row
# is visibly noisy. The middle rows look like MNIST, one of them with only five digits.
#
# ### 1. Parzen windows, and why they mislead
#
# `parzen_select_sigma` scores all ten bandwidths from one distance matrix;
# `parzen_log_likelihood` then averages over the test images.

# %%
t0 = time.perf_counter()
parzen = {}
for name, imgs in generators.items():
    best, table = parzen_select_sigma(imgs, valid)
    mean, se = parzen_log_likelihood(imgs, test, best)
    parzen[name] = (best, table, mean, se)
    print(f"{name:30s} sigma {best:.3f}   log-likelihood {mean:8.1f} +- {se:.1f} nats")
print(f"({time.perf_counter() - t0:.1f} s; M = {M} centres, {N_TEST} test images)")
run["M"], run["n_test"] = M, N_TEST
for name, (best, _, mean, _) in parzen.items():
    run[f"parzen {name}"] = mean
    run[f"sigma {name}"] = best

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
names = list(parzen)
axes[0].barh(names, [parzen[n][2] for n in names], xerr=[parzen[n][3] for n in names])
axes[0].invert_yaxis()
axes[0].set_xlabel(f"Parzen log-likelihood of the test set (nats), M = {M}")
for name, (_, table, _, _) in parzen.items():
    axes[1].semilogx(list(table), list(table.values()), marker="o", label=name)
axes[1].set_xlabel("sigma")
axes[1].set_ylabel("mean validation log-likelihood")
axes[1].legend(fontsize=7)
axes[1].set_ylim(bottom=max(-1500, min(min(t.values()) for _, t, _, _ in parzen.values())))
plt.tight_layout()
plt.show()

# %% [markdown]
# The ranking is the point (the reference log below has the full-mode figures). The
# **k-means centres**, blurry averages that no one would take for samples, score far *above*
# real digits, exactly the result of Theis et al. The **memoriser**, which has learnt nothing
# but a copy, scores as well as the ideal generator: the estimator cannot tell copying from
# generalising. A generator that **drops half the digits** and a memoriser with a little
# **pixel noise**, which changes no digit, lose about the same: one number cannot say whether
# a model lacks whole classes or only has grainy pixels, because the estimator measures
# Euclidean closeness in pixel space, not what a digit is.
#
# How far is the estimate from the truth? It depends on $M$: with more centres the nearest
# one gets closer and the score rises, long after the images stop changing.

# %%
t0 = time.perf_counter()
curve = {"ideal (unseen real images)": [], "memoriser (training images)": []}
for m in M_CURVE:
    for name, src in (
        ("ideal (unseen real images)", unseen),
        ("memoriser (training images)", train),
    ):
        centres = src[:m]
        best, _ = parzen_select_sigma(centres, valid)
        curve[name].append(parzen_log_likelihood(centres, test, best)[0])
print(f"({time.perf_counter() - t0:.1f} s)")
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for name, ys in curve.items():
    ax.semilogx(M_CURVE, ys, marker="o", label=name)
ax.axhline(PAPER_TABLE1["Adversarial nets"][0], color="gray", ls="--", label="2014 GAN, M=10,000")
ax.axhline(THEIS_TRUE_DISTRIBUTION, color="k", ls=":", label="Theis: training images, M=10,000")
ax.set_xlabel("number of kernel centres M")
ax.set_ylabel("Parzen log-likelihood (nats)")
ax.legend(fontsize=7)
plt.tight_layout()
plt.show()
for name, ys in curve.items():
    print(f"{name:30s} " + "  ".join(f"M={m}: {y:.1f}" for m, y in zip(M_CURVE, ys, strict=True)))
run["M_curve"] = list(M_CURVE)
run["curve ideal"] = curve["ideal (unseen real images)"]
assert curve["ideal (unseen real images)"][-1] > curve["ideal (unseen real images)"][0]

# %% [markdown]
# The same real images score hundreds of nats more just by using more of them: a Parzen
# number means nothing without its $M$, and the curve is still climbing at the largest $M$
# (the true log-likelihood of a model does not depend on how many samples you draw). Near
# $M$ = 10,000 real digits land around Theis et al.'s 243 nats, above the paper's GAN; at every
# $M$ the memoriser and the ideal generator are indistinguishable.
#
# ### 2. Classifier metrics: IS, FCD, histogram, coverage
#
# `minigan evaluate` uses a cached MNIST classifier (`minigan.classifier.load_classifier`,
# about 98.7% test accuracy, trained once in about a minute). The small mode trains a much
# smaller one on 8,000 images in a few seconds instead; its numbers are on another scale.

# %%
t0 = time.perf_counter()
if SMALL:
    cfg = ClassifierConfig(hidden=(256,), epochs=3, max_shift=0)
    clf = train_classifier(cfg, images=train_u8[:8000, None], labels=train_y[:8000])
else:
    clf = load_classifier(progress=False)
print(f"classifier {clf.config.hidden}: test accuracy {clf.test_accuracy:.4f} "
      f"({time.perf_counter() - t0:.1f} s)")  # fmt: skip
f32 = {name: imgs.astype(np.float32) for name, imgs in generators.items()}
ref_stats = feature_statistics(clf.features_and_logits(test.astype(np.float32))[0])
scores = {name: classifier_metrics(imgs, clf, ref_stats) for name, imgs in f32.items()}
real_row = classifier_metrics(unseen[:M].astype(np.float32), clf, ref_stats)
print(f"{'':30s} {'IS':>6s} {'FCD':>8s} {'covered':>8s} {'KL unif':>8s}")
for name, s in scores.items():
    print(f"{name:30s} {s['inception_score']:6.2f} {s['fcd']:8.2f} {s['digits_covered']:8d} "
          f"{s['kl_uniform']:8.3f}")  # fmt: skip
    run[f"IS {name}"], run[f"FCD {name}"] = s["inception_score"], s["fcd"]
    run[f"KL {name}"] = s["kl_uniform"]

fig, ax = plt.subplots(figsize=(8, 3.2))
width = 0.8 / len(scores)
for k, (name, s) in enumerate(scores.items()):
    h = np.asarray(s["histogram"]) / s["n"]
    ax.bar(np.arange(10) + k * width, h, width, label=name)
ax.axhline(0.1, color="k", lw=0.8, ls="--")
ax.set_xticks(np.arange(10) + 0.4, [str(i) for i in range(10)])
ax.set_xlabel("predicted digit")
ax.set_ylabel("fraction of samples")
ax.legend(fontsize=7, ncol=2)
plt.tight_layout()
plt.show()
high = {n: sum(s["histogram"][5:]) / s["n"] for n, s in scores.items()}  # predicted 5-9
print("fraction predicted as 5-9:", {n: round(v, 3) for n, v in high.items()})
assert high["digits 0-4 only"] < 0.5 * high["ideal (unseen real images)"]
assert scores["digits 0-4 only"]["kl_uniform"] > 5 * real_row["kl_uniform"]

# %% [markdown]
# The classifier metrics see what Parzen missed: the **k-means centres** get an FCD several
# times the ideal generator's (their features are blurred too), although their IS is barely
# lower (the classifier still recognises most averages); the **noise** shows in the FCD too;
# **digits 0-4** show at once in the histogram, coverage and KL, and the IS falls to about 5
# (five classes). But they are blind to **copying**: the memoriser's IS and FCD are as good as
# the ideal generator's (in full mode its FCD is even a little lower: the metric classifier
# learnt its features on those very training images), because its samples *are* real digits.
# That is what the last check is for.
#
# ### 3. Nearest neighbours: the memorisation check
#
# The median distance of each model's samples to their nearest training image, divided by
# that of unseen real images (the ideal generator). `plot_nearest_neighbours` draws the pairs
# (Goodfellow et al. 2014, Figure 2).

# %%
n_nn = min(M, 500)
_, d_ideal = nearest_neighbours(generators["ideal (unseen real images)"][:n_nn], train)
for name, imgs in generators.items():
    _, d = nearest_neighbours(imgs[:n_nn], train)
    ratio = np.median(d) / np.median(d_ideal)
    run[f"NN ratio {name}"] = float(ratio)
    print(f"{name:30s} median distance {np.median(d):5.2f}  ratio {ratio:4.2f}")
assert run["NN ratio memoriser (training images)"] == 0.0

with tempfile.TemporaryDirectory() as tmp:
    fig, axes = plt.subplots(2, 1, figsize=(11, 5.2))
    for ax, name in zip(axes, ("memoriser (training images)", "k-means centres"), strict=True):
        png = plot_nearest_neighbours(generators[name], train, Path(tmp) / "nn.png", title=name)
        ax.imshow(plt.imread(png))
        ax.axis("off")
    plt.tight_layout()
    plt.show()

# %% [markdown]
# The memoriser's nearest training image is itself, at distance 0: caught, and so is the
# "digits 0-4" model, which also copies training images. The noisy copies and the k-means
# centres sit closer to some training image than an unseen real digit does (ratio clearly
# below 1): a noisy copy stays near its source, and a k-means centre is an average of nearby
# training images; with 2,000 centres from 20,000 images some clusters hold a single image,
# whose centre *is* that image (the d = 0.00 in the lower figure). An honest generator gives
# a ratio near 1; only a ratio far below 1 is evidence, and a copy shifted by a pixel would
# escape this Euclidean check (exercise 3).
#
# ### 4. FCD is biased: compare at the same N
#
# Even perfect samples do not reach FCD 0: the Gaussian fitted to $N$ samples has estimation
# error, and $\operatorname{tr}$ of a noisy covariance is biased upward. Unseen real images
# against the test set, for growing $N$:

# %%
ns = [n for n in (100, 300, 1000, 3000, 9000) if n <= unseen.shape[0] and (not SMALL or n <= 1000)]
fcd_real = []
for n in ns:
    feats = clf.features_and_logits(unseen[:n].astype(np.float32))[0]
    fcd_real.append(frechet_distance(*feature_statistics(feats), *ref_stats))
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.loglog(ns, fcd_real, marker="o")
ax.set_xlabel("number of real images N")
ax.set_ylabel("FCD to the test set")
plt.tight_layout()
plt.show()
print(
    "FCD of unseen real images:",
    "  ".join(f"N={n}: {v:.2f}" for n, v in zip(ns, fcd_real, strict=True)),
)
assert fcd_real[-1] < fcd_real[0]
run["fcd_real_n"], run["fcd_real"] = ns, fcd_real

# %% [markdown]
# The FCD of real images falls steadily with $N$: an FCD (or FID) is only comparable between
# runs with the same number of samples and the same feature network. `minigan evaluate` uses
# 10,000 samples and prints the real images' own FCD beside the GAN's, and FCD values are not
# FID values: a different network, a different scale.
#
# ### 5. The honest protocol of `evaluate_checkpoint`
#
# All of the above needs images the GAN has not seen: sigma chosen on training images makes
# the memoriser look even better. `evaluation_protocol` reads a checkpoint's config and says
# which images are unseen; `check_holdout` refuses a held-out range that overlaps training.

# %%
for cfg in ({"n_train": 60000}, {"train_range": [0, 50000], "holdout": [50000, 60000]}):
    prot = evaluation_protocol(cfg, 60000)
    print(cfg, "->", {k: prot[k] for k in ("train_range", "holdout", "honest")})
    for w in prot["warnings"]:
        print("   ", w[:110], "...")
try:
    check_holdout([45000, 55000], [0, 50000], 60000)
except ValueError as exc:
    print("refused:", exc)

# %% [markdown]
# On a real checkpoint, all of this is one call (the command line: `minigan evaluate
# runs/.../checkpoint.npz`):
#
# ```python
# from minigan.metrics import evaluate_checkpoint, format_table
# results = evaluate_checkpoint("runs/mnist-.../checkpoint.npz")  # Parzen, IS, FCD, NN, real rows
# print(format_table(results))
# ```
#
# Train with a validation split (lesson 9, `validation_size=10000`) so the checkpoint
# records what it held out, and the table says "unseen" rather than warning.

# %%
seconds = time.perf_counter() - t_lesson
print(f"lesson ran in {seconds:.0f} s")
_ = compare(
    "18_evaluating_gans",
    run,
    [("centres M", "M", "d")]
    + [(f"Parzen: {n}", f"parzen {n}", ".1f") for n in generators]
    + [(f"IS: {n}", f"IS {n}", ".2f") for n in generators]
    + [(f"FCD: {n}", f"FCD {n}", ".2f") for n in generators]
    + [(f"NN ratio: {n}", f"NN ratio {n}", ".2f") for n in generators],
)
# In full mode with MINIGAN_LESSON_RECORD=1 this run becomes the reference log.
record("18_evaluating_gans", run, small=SMALL, seconds=seconds)

# %% [markdown]
# ## Summary
#
# | metric | rewards | fooled by | catches |
# | --- | --- | --- | --- |
# | Parzen log-likelihood | centres close (in pixels) to test images | k-means averages, copies; depends on $M$ | little: noise and missing classes look alike |
# | Inception Score | confident and balanced classes | copies, blur (barely moves) | dropped classes |
# | FCD (FID with minigan's classifier) | feature statistics like the real ones | copies; depends on $N$ | blur, dropped classes |
# | histogram, coverage, KL to uniform | every class in fair shares | anything class-balanced | mode dropping |
# | nearest-neighbour ratio | distance from the training set | shifted or transformed copies | memorisation (0), averaging and noisy copies (< 1) |
#
# - No single number says "good GAN": read the classifier metrics *and* the nearest-neighbour
#   ratio *and* look at samples. Report Parzen only to compare with the 2014 paper.
# - Choose every setting (sigma, the FCD reference) on images the GAN never saw, and compare
#   FCDs only at the same $N$ with the same classifier.

# %% [markdown]
# ## Exercises
#
# 1. Vary the noise level of the noisy memoriser (0.02, 0.05, 0.1, 0.2) and plot Parzen and
#    FCD against it. At which level do you first *see* the noise? Which metric reacts first?
# 2. Choose the Parzen sigma on the *test* set instead of the validation set. How much does
#    each model gain? Which gains most?
# 3. Make a "generator" that returns each training image shifted by 2 pixels
#    (`np.roll`). What do Parzen, IS, FCD and the nearest-neighbour ratio say? Would the
#    Euclidean nearest-neighbour check catch this kind of copying?
# 4. Compute the Inception Score by hand from `clf.predict_proba(x)` (`(N, 10)`) with one
#    split and compare with `minigan.metrics.inception_score(p, splits=1)`.
# 5. Evaluate a real checkpoint from lesson 9 with `evaluate_checkpoint` and place it in the
#    tables above. Where does it land between the k-means centres and the ideal generator?
