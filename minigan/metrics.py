"""GAN evaluation: Parzen-window log-likelihood, classifier-based scores, nearest neighbours.

Three families of numbers answer "is my GAN any good?":

* **Parzen-window log-likelihood** (:func:`parzen_log_likelihood`, :func:`parzen_select_sigma`),
  with the protocol of Goodfellow et al. (2014), Table 1, so the figure can be put next to the
  paper's (GAN 225 +- 2 on MNIST).
* **Classifier-based scores** (:func:`classifier_metrics`) from a metric classifier of the
  dataset (MNIST, Fashion-MNIST, CIFAR-10) trained with minigan's own layers
  (:mod:`minigan.classifier`): an Inception Score computed with that
  classifier, a Frechet distance between its penultimate-layer features of samples and of real
  test images (the *Frechet classifier distance*, FCD, not Inception-FID: the numbers are not
  comparable with FID values in papers), the predicted-class histogram, the number of digits
  covered and the KL divergence of the histogram to uniform (mode collapse shows up here).
* **Nearest training images** of a few samples (:func:`nearest_neighbours`,
  :func:`plot_nearest_neighbours`), the memorisation check of the paper's Figure 2.

* **Classification Accuracy Score** (:func:`classification_accuracy_score`, Ravuri & Vinyals
  2019): the real test accuracy of the metric classifier trained on labelled samples only.

:func:`evaluate_checkpoint` runs everything on a saved GAN and :func:`format_table` prints the
result next to the real test set's own scores and the paper's Table 1; ``minigan evaluate`` is
the command-line face of the two. The evaluation is honest about what the GAN saw
(:func:`evaluation_protocol`): the Parzen sigma and the real FCD reference come from training
images held out of training (the checkpoint config's ``holdout``, ``[start, stop)``), and the
table warns when the checkpoint trained on them.

All image arguments are flattened images, shape ``(N, D)`` (``D = 784`` for MNIST), with pixel
values in ``[0, 1]`` (the paper's convention; a generator's ``tanh`` output ``x`` maps there
as ``(x + 1) / 2``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .backend import array_namespace, to_numpy
from .files import atomic_write

__all__ = [
    "PAPER_TABLE1",
    "PAPER_ROWS",
    "THEIS_TRUE_DISTRIBUTION",
    "DEFAULT_SIGMAS",
    "MAX_EVAL_SAMPLES",
    "check_images",
    "parzen_log_density",
    "parzen_log_likelihood",
    "parzen_select_sigma",
    "inception_score",
    "class_histogram",
    "digits_covered",
    "kl_to_uniform",
    "feature_statistics",
    "sqrtm_psd",
    "frechet_distance",
    "classifier_metrics",
    "nearest_neighbours",
    "plot_nearest_neighbours",
    "modes_covered",
    "generate_samples",
    "labelled_samples",
    "label_accuracy",
    "default_holdout",
    "check_holdout",
    "evaluation_protocol",
    "classification_accuracy_score",
    "evaluate_checkpoint",
    "format_table",
    "plot_metrics",
]

#: Goodfellow et al. (2014), Table 1, MNIST column: Parzen-window log-likelihood (nats) +- s.e.
PAPER_TABLE1: dict[str, tuple[float, float]] = {
    "DBN": (138.0, 2.0),
    "Stacked CAE": (121.0, 1.6),
    "Deep GSN": (214.0, 1.1),
    "Adversarial nets": (225.0, 2.0),
}

#: Theis, van den Oord & Bethge (2016), Table 2: the same estimator with 10,000 *training
#: images* as kernel centres ("true distribution") scores 243 nats on MNIST.
THEIS_TRUE_DISTRIBUTION = 243.0

#: Ten bandwidths log-spaced in [0.1, 1.0], as in the paper's code (``parzen_ll.py``).
DEFAULT_SIGMAS = np.logspace(-1.0, 0.0, 10)


# ----------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------
def check_images(x, name: str = "x", *, dim: int | None = None) -> None:
    """Raise a clear error unless ``x`` is a float array of shape (N, dim) with values in [0, 1].

    Parameters
    ----------
    x : array (any backend)
    name : str
        Used in the messages.
    dim : int, optional
        Required number of features (784 for MNIST); any when None.

    Raises
    ------
    TypeError
        Not an array, or not a floating dtype.
    ValueError
        Not 2-D, no rows, wrong number of features, non-finite values, or values outside
        [0, 1] (the message gives the range found and says how to map tanh output there).

    Notes
    -----
    Reads the minimum and maximum back to the host (one device sync per call): checks belong
    at the start of an evaluation, not in a training loop.
    """
    xp = array_namespace(x, names=(name,))
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(
            f"{name}: expected a float array with pixel values in [0, 1], got dtype {x.dtype}"
            " (for uint8 images divide by 255)"
        )
    if x.ndim != 2:
        raise ValueError(
            f"{name}: expected flattened images of shape (N, D), got shape {tuple(x.shape)}"
            " (reshape (N, 28, 28) to (N, 784))"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one image, got shape {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name}: expected {dim} features per image, got shape {tuple(x.shape)}")
    lo, hi = float(xp.min(x)), float(xp.max(x))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name}: expected pixel values in [0, 1], got range [{lo:.4g}, {hi:.4g}]"
            " (map generator output in [-1, 1] with (x + 1) / 2)"
        )


def _check_pair(samples, x, names: tuple[str, str]) -> None:
    array_namespace(samples, x, names=names)  # same library and device
    check_images(samples, names[0])
    check_images(x, names[1], dim=samples.shape[1])


def _check_sigmas(sigmas) -> np.ndarray:
    s = np.atleast_1d(np.asarray(sigmas, dtype=np.float64))
    if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(f"sigma: expected positive finite value(s), got {sigmas!r}")
    return s


def _check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    return int(batch_size)


# ----------------------------------------------------------------------------------------------
# Parzen window
# ----------------------------------------------------------------------------------------------
def _parzen_log_density_multi(samples, x, sigmas: np.ndarray, batch_size: int, dtype):
    """log p_sigma(x_j) for every sigma and every row of x: host float64 array (S, N)."""
    xp = array_namespace(samples, x)
    dt = getattr(xp, dtype) if isinstance(dtype, str) else dtype
    mu = xp.astype(samples, dt)  # (M, D) kernel centres
    m, d = mu.shape
    mu_sq = xp.sum(mu * mu, axis=1)  # (M,)
    # log p(x) = logsumexp_i(-||x - mu_i||^2 / (2 s^2)) - log M - D/2 log(2 pi s^2)
    log_norm = math.log(m) + d * np.log(sigmas * math.sqrt(2.0 * math.pi))  # (S,)
    n = x.shape[0]
    out = np.empty((sigmas.size, n), dtype=np.float64)
    for start in range(0, n, batch_size):
        xb = xp.astype(x[start : min(start + batch_size, n), :], dt)  # (B, D)
        # Squared distances by expansion: ||x||^2 + ||mu||^2 - 2 x.mu, one matmul per batch.
        d2 = xp.sum(xb * xb, axis=1)[:, None] + mu_sq[None, :] - 2.0 * (xb @ mu.T)  # (B, M)
        d2 = xp.clip(d2, 0.0, None)  # rounding can leave tiny negatives
        d2_min = xp.min(d2, axis=1, keepdims=True)  # (B, 1): the nearest centre
        excess = d2 - d2_min  # (B, M) >= 0, exactly 0 at the nearest centre
        rows = []
        for s in sigmas:
            inv = 1.0 / (2.0 * float(s) ** 2)
            # log-sum-exp with the largest term (nearest centre) factored out: every
            # exponent is <= 0 and one is 0, so the sum lies in [1, M] and never overflows.
            lse = -d2_min[:, 0] * inv + xp.log(xp.sum(xp.exp(-excess * inv), axis=1))  # (B,)
            rows.append(lse)
        block = to_numpy(xp.stack(rows, axis=0)).astype(np.float64)  # (S, B)
        out[:, start : start + xb.shape[0]] = block - log_norm[:, None]
    return out


def parzen_log_density(samples, x, sigma: float, *, batch_size: int = 500, dtype="float64"):
    """Log-density of each row of ``x`` under a Gaussian Parzen window on ``samples``.

    ``log p(x) = log (1/M) sum_i N(x; mu_i, sigma^2 I)
    = logsumexp_i(-||x - mu_i||^2 / (2 sigma^2)) - log M - (D/2) log(2 pi sigma^2)``.

    Parameters
    ----------
    samples : array (M, D) in [0, 1]
        Kernel centres mu_i (generated images).
    x : array (N, D) in [0, 1], same backend and device as ``samples``
        Points to score (test images).
    sigma : float > 0
        Kernel bandwidth (isotropic).
    batch_size : int
        Rows of ``x`` per step; memory is ``batch_size * M`` numbers of ``dtype``.
    dtype : {"float64", "float32"}
        Precision of the distance computation (see Notes).

    Returns
    -------
    numpy.ndarray (N,), float64, on the host: log p(x_j) in nats.

    Raises
    ------
    TypeError, ValueError
        See :func:`check_images`; ``sigma`` or ``batch_size`` not positive; mixed backends.

    Notes
    -----
    Squared distances come from one matrix product per batch,
    ``||x||^2 + ||mu||^2 - 2 x mu^T``, which cancels catastrophically for near neighbours: in
    float32 the absolute error is about 1e-6 * ||x||^2 (~1e-4 for MNIST digits), i.e. up to
    ~0.01 nats at sigma = 0.1. The default float64 makes the error negligible (< 1e-9 nats)
    at twice the cost, which is a few seconds for the full protocol on a CPU. The
    log-sum-exp factors out the nearest centre, so no exponent is positive and the sum cannot
    overflow or be 0. Follows ``theano_parzen`` of Goodfellow et al.'s ``parzen_ll.py``.
    """
    _check_pair(samples, x, ("samples", "x"))
    sig = _check_sigmas(sigma)
    if sig.size != 1:
        raise ValueError(f"sigma: expected one value, got {sigma!r}")
    return _parzen_log_density_multi(samples, x, sig, _check_batch_size(batch_size), dtype)[0]


def parzen_log_likelihood(
    samples, test, sigma: float, *, batch_size: int = 500, dtype="float64"
) -> tuple[float, float]:
    """Mean Parzen-window log-likelihood of ``test`` and its standard error.

    The estimator of Goodfellow et al. (2014), Sec. 5 and Table 1 (after Breuleux et al.
    2011): fit a Gaussian Parzen window with bandwidth ``sigma`` to ``samples`` (the paper: 10,000
    generated images) and average ``log p(x)`` over ``test`` (the paper: the 10,000 MNIST test
    images). See :func:`parzen_log_density` for the formula and precision notes, and
    :func:`parzen_select_sigma` for the bandwidth.

    Parameters
    ----------
    samples : array (M, D) in [0, 1]
    test : array (N, D) in [0, 1], same backend and device
    sigma : float > 0
    batch_size : int
    dtype : {"float64", "float32"}

    Returns
    -------
    (mean, stderr) : floats, nats. ``stderr = std(log p) / sqrt(N)`` with the population std
    (``ddof=0``), exactly as in the paper's ``parzen_ll.py``.

    Raises
    ------
    TypeError, ValueError
        See :func:`check_images`.

    Notes
    -----
    A weak estimator, reported only to compare with the 2014 paper. Theis, van den Oord &
    Bethge (2016, "A note on the evaluation of generative models", Sec. 3.2) show that in 784
    dimensions it is far from the true log-likelihood even with millions of samples, that it
    ranks models inconsistently with the likelihood, and that it rewards the wrong things:
    10,000 k-means centroids of the training set score 313 nats, above the 243 nats of 10,000
    real training images and the 225 of the paper's GAN. A model that memorises training
    images scores high. Read it together with the classifier metrics and the
    nearest-neighbour check, never alone.
    """
    logp = parzen_log_density(samples, test, sigma, batch_size=batch_size, dtype=dtype)
    return float(np.mean(logp)), float(np.std(logp) / math.sqrt(logp.size))


def parzen_select_sigma(
    samples, validation, sigmas=DEFAULT_SIGMAS, *, batch_size: int = 500, dtype="float64"
) -> tuple[float, dict[float, float]]:
    """Choose the Parzen bandwidth that maximises the mean log-likelihood of ``validation``.

    The paper's protocol (``cross_validate_sigma`` in ``parzen_ll.py``): 10 values log-spaced
    in [0.1, 1.0], validation = 1,000 held-out images (MNIST training images 50,000-50,999:
    the first 1,000 of pylearn2's ``MNIST('train', start=50000, stop=60000)``).

    Parameters
    ----------
    samples : array (M, D) in [0, 1]
    validation : array (N, D) in [0, 1], same backend and device
    sigmas : sequence of positive floats
    batch_size, dtype : as for :func:`parzen_log_density`

    Returns
    -------
    best_sigma : float
    table : dict sigma -> mean validation log-likelihood (nats), in the order of ``sigmas``

    Raises
    ------
    TypeError
        ``samples`` / ``validation`` not float arrays, or from different libraries.
    ValueError
        Either not 2-D with rows in [0, 1] and finite, different widths or devices; a
        ``sigmas`` entry that is not positive and finite; ``batch_size`` not a positive int.

    Notes
    -----
    The distances do not depend on sigma, so they are computed once per batch and every
    bandwidth is scored from them: the search costs about one evaluation, not ten.
    """
    _check_pair(samples, validation, ("samples", "validation"))
    sig = _check_sigmas(sigmas)
    logp = _parzen_log_density_multi(samples, validation, sig, _check_batch_size(batch_size), dtype)
    means = logp.mean(axis=1)
    table = {float(s): float(v) for s, v in zip(sig, means, strict=True)}
    return float(sig[int(np.argmax(means))]), table


# ----------------------------------------------------------------------------------------------
# Classifier-based scores
# ----------------------------------------------------------------------------------------------
def _host_probs(probs, name: str = "probs") -> np.ndarray:
    p = np.asarray(to_numpy(probs), dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"{name}: expected class probabilities of shape (N, C), got {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(np.abs(p.sum(axis=1) - 1) > 1e-3):
        raise ValueError(
            f"{name}: expected rows of non-negative probabilities summing to 1 (softmax output)"
        )
    return p


def inception_score(probs, splits: int = 10) -> tuple[float, float]:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))`` from a classifier's probabilities.

    Salimans et al. (2016), "Improved techniques for training GANs", Sec. 4, computed with
    minigan's MNIST classifier instead of the Inception network (so values lie in [1, 10] and
    are not comparable with ImageNet Inception Scores). High when each sample is classified
    confidently (low entropy p(y|x)) and the classes are balanced (high entropy p(y)).

    Parameters
    ----------
    probs : array (N, C), rows summing to 1 (any backend; copied to the host)
    splits : int
        The N rows are cut into ``splits`` equal parts, p(y) is the mean within each part, and
        the score is reported as mean and std over the parts (as in the original code).

    Returns
    -------
    (mean, std) over the splits.

    Raises
    ------
    ValueError
        Not (N, C) probabilities, or fewer rows than splits.
    """
    p = _host_probs(probs)
    if not isinstance(splits, (int, np.integer)) or not 1 <= splits <= p.shape[0]:
        raise ValueError(f"splits: expected an int in [1, N={p.shape[0]}], got {splits!r}")
    scores = []
    for part in np.array_split(p, splits, axis=0):
        py = part.mean(axis=0, keepdims=True)  # (1, C) marginal p(y)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(part > 0, part * (np.log(part) - np.log(py)), 0.0)  # 0 log 0 = 0
        scores.append(math.exp(float(terms.sum(axis=1).mean())))
    return float(np.mean(scores)), float(np.std(scores))


def class_histogram(labels, num_classes: int = 10) -> np.ndarray:
    """Counts of each predicted class, host int64 (num_classes,).

    Raises
    ------
    ValueError
        ``labels`` not 1-D integers in [0, num_classes).
    """
    y = np.asarray(to_numpy(labels))
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels: expected a 1-D integer array, got shape {y.shape} {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"labels: expected values in [0, {num_classes}), got range [{y.min()}, {y.max()}]"
        )
    return np.bincount(y, minlength=num_classes).astype(np.int64)


def _fractions(hist) -> np.ndarray:
    h = np.asarray(hist, dtype=np.float64)
    if h.ndim != 1 or h.size == 0 or np.any(h < 0) or h.sum() <= 0:
        raise ValueError(
            f"hist: expected non-negative class counts with a positive sum, got {hist}"
        )
    return h / h.sum()


def digits_covered(hist, min_fraction: float = 0.01) -> int:
    """Number of classes that receive at least ``min_fraction`` of the samples.

    The default 1% is a tenth of a class's share under a uniform 10-class distribution: a
    digit the generator almost never draws does not count as covered.

    ``hist`` : class counts, shape (C,) (e.g. from :func:`class_histogram`).

    Raises
    ------
    ValueError
        ``hist`` is not 1-D and non-empty, has a negative count, or sums to 0.
    """
    return int(np.sum(_fractions(hist) >= min_fraction))


def kl_to_uniform(hist) -> float:
    """``KL(p || U) = sum_c p_c log(C p_c)`` of the class fractions ``p`` (nats, >= 0).

    0 for a perfectly balanced generator, ``log C`` (2.30 for 10 classes) when every sample
    is one digit; the MNIST test set itself gives about 0.001.

    ``hist`` : class counts, shape (C,).

    Raises
    ------
    ValueError
        ``hist`` is not 1-D and non-empty, has a negative count, or sums to 0.
    """
    p = _fractions(hist)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p.size * p[nz])))


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and covariance (F, F) of features (N, F), host float64 (``ddof=1``).

    Raises
    ------
    ValueError
        Not 2-D or fewer than 2 rows.
    """
    f = np.asarray(to_numpy(features), dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features: expected shape (N, F) with N >= 2, got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix, via ``eigh``.

    ``a = V diag(w) V^T  ->  a^(1/2) = V diag(sqrt(max(w, 0))) V^T``; eigenvalues that
    rounding made slightly negative are set to 0.

    Shapes: ``a`` (D, D) -> (D, D), host float64.

    Raises
    ------
    ValueError
        ``a`` is 2-D but not square (it cannot be symmetrised).
    numpy.linalg.LinAlgError
        ``a`` is not 2-D, or the eigen-decomposition does not converge.
    """
    a = np.asarray(a, dtype=np.float64)
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """Frechet (2-Wasserstein) distance between Gaussians N(mu1, cov1) and N(mu2, cov2).

    ``d^2 = ||mu1 - mu2||^2 + tr(cov1) + tr(cov2) - 2 tr((cov1^(1/2) cov2 cov1^(1/2))^(1/2))``
    (Dowson & Landau 1982; the formula behind FID, Heusel et al. 2017).

    Shapes: mu (F,), cov (F, F).

    Notes
    -----
    ``tr((cov1 cov2)^(1/2))`` is computed as the trace of the square root of the *symmetric*
    PSD matrix ``cov1^(1/2) cov2 cov1^(1/2)`` (same eigenvalues as ``cov1 cov2``), so two
    ``eigh`` calls replace the general ``scipy.linalg.sqrtm`` and no complex parts appear.
    Returns ``d^2`` (like FID), clipped at 0 against rounding.

    Raises
    ------
    ValueError
        Shapes that do not match.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    f = mu1.shape[0] if mu1.ndim == 1 else -1
    for name, a, shape in (("mu2", mu2, (f,)), ("cov1", cov1, (f, f)), ("cov2", cov2, (f, f))):
        if f < 0 or a.shape != shape:
            raise ValueError(
                f"{name}: expected shape {shape} to match mu1 {mu1.shape}, got {a.shape}"
            )
    s1 = sqrtm_psd(cov1)
    m = s1 @ cov2 @ s1  # (F, F), symmetric PSD
    w = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = float(np.sum(np.sqrt(np.clip(w, 0.0, None))))
    diff = mu1 - mu2
    d2 = float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_sqrt)
    return max(d2, 0.0)


def classifier_metrics(images, classifier, reference_stats=None, *, splits: int = 10) -> dict:
    """Classifier-based scores of a batch of images (generated or real).

    Parameters
    ----------
    images : array (N, D) in [0, 1] (D = 784 for MNIST), on any backend (NumPy arrays go to
        the classifier's device)
    classifier : :class:`minigan.classifier.MetricClassifier`
    reference_stats : (mu, cov), optional
        :func:`feature_statistics` of the reference images (the MNIST test set); without it no
        Frechet distance is computed.
    splits : int
        For :func:`inception_score`.

    Returns
    -------
    dict with ``n``, ``inception_score`` and ``inception_score_std``, ``fcd`` (Frechet
    classifier distance to the reference, if given), ``histogram`` (counts of predicted
    digits 0-9, list of int), ``digits_covered`` (of 10), ``kl_uniform`` (nats),
    ``mean_confidence`` (mean max p(y|x)).

    Notes
    -----
    The *Frechet classifier distance* (FCD) is :func:`frechet_distance` between Gaussians
    fitted to the classifier's penultimate activations (256 features). It works like FID but
    with a small MNIST network instead of Inception-v3, so its values are on another scale and
    must not be compared with published FIDs. It falls with sample size even for perfect
    samples (biased estimator), so compare runs at the same N.

    Raises
    ------
    TypeError, ValueError
        See :func:`check_images`.
    """
    check_images(images, "images", dim=classifier.in_features)
    feats, logits = classifier.features_and_logits(images)
    from .classifier import softmax

    probs = softmax(np.asarray(to_numpy(logits), dtype=np.float64))  # (N, 10) on the host
    hist = class_histogram(np.argmax(probs, axis=1))
    n = int(probs.shape[0])
    is_mean, is_std = inception_score(probs, splits=min(splits, n))
    out: dict[str, Any] = {
        "n": n,
        "inception_score": is_mean,
        "inception_score_std": is_std,
        "fcd": None,
        "histogram": [int(c) for c in hist],
        "digits_covered": digits_covered(hist),
        "kl_uniform": kl_to_uniform(hist),
        "mean_confidence": float(probs.max(axis=1).mean()),
    }
    if reference_stats is not None:
        mu, cov = feature_statistics(feats)
        out["fcd"] = frechet_distance(mu, cov, *reference_stats)
    return out


def classification_accuracy_score(
    samples,
    n: int = 60000,
    *,
    dataset: str = "mnist",
    config=None,
    real_accuracy: float | None = None,
    data_dir=None,
    cache_dir=None,
    device: Any = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Classification Accuracy Score: real test accuracy of a classifier trained on samples only.

    ``CAS = accuracy on the real test set of f_theta``, ``theta = argmin sum_i CE(f(x_i), y_i)``
    over labelled generated pairs ``(x_i, y_i) ~ G(z, y)`` (Ravuri & Vinyals 2019, "Classification
    Accuracy Score for conditional generative models", Sec. 3). The classifier is the dataset's
    metric classifier (:data:`minigan.classifier.CLASSIFIERS`), trained exactly as on real data
    (:func:`minigan.classifier.train_classifier`); the score is reported beside the accuracy of
    the same architecture and settings trained on the real training images.

    Parameters
    ----------
    samples : callable
        ``samples()`` returns an iterable of ``(images, labels)`` batches: images in [0, 1],
        shape (B, C*H*W) or (B, C, H, W), any backend; labels integer class ids (B,). Batches
        are taken until ``n`` images are collected.
    n : int
        Training images (the paper: as many as the real training set, 60,000 for MNIST).
    dataset : str
        Which metric classifier and real test set.
    config : ClassifierConfig, optional
        Default: the registry's for ``dataset``.
    real_accuracy : float, optional
        The real-data baseline; default: the test accuracy of the cached classifier of
        ``config`` trained on real images (:func:`minigan.classifier.load_classifier`, trained
        and cached on first use).
    data_dir, cache_dir, device, progress : as for :func:`minigan.classifier.load_classifier`

    Returns
    -------
    dict with ``cas`` (accuracy in [0, 1]), ``real_accuracy``, ``n`` (images trained on),
    ``histogram`` (label counts of the samples), ``dataset``, ``architecture``.

    Raises
    ------
    TypeError
        ``samples`` is not callable.
    ValueError
        ``n`` < 1; the batches ran out before one classifier batch; images outside [0, 1];
        labels of another length than their images.
    KeyError
        No classifier for ``dataset``.
    """
    from .classifier import get_spec, load_classifier, train_classifier

    if not callable(samples):
        raise TypeError(f"samples: expected a callable returning (images, labels) batches, got "
                        f"{type(samples).__name__}")  # fmt: skip
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected an int >= 1, got {n!r}")
    spec = get_spec(dataset)
    config = spec.config if config is None else config
    xs, ys, got = [], [], 0
    for images, labels in samples():
        x = np.asarray(to_numpy(images), dtype=np.float32).reshape(-1, spec.in_features)
        y = np.asarray(to_numpy(labels)).astype(np.int64).reshape(-1)
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"samples: a batch of {x.shape[0]} images has {y.shape[0]} labels")
        check_images(x, "samples' images")
        xs.append(x[: n - got])
        ys.append(y[: n - got])
        got += xs[-1].shape[0]
        if got >= n:
            break
    if not xs:
        raise ValueError("samples: the callable yielded no batches")
    x = np.concatenate(xs).reshape(-1, *spec.image_shape)
    y = np.concatenate(ys)
    clf = train_classifier(
        config, dataset=dataset, images=x, labels=y, data_dir=data_dir, device=device,
        progress=progress,
    )  # fmt: skip
    if real_accuracy is None:
        real = load_classifier(
            config, dataset=dataset, data_dir=data_dir, cache_dir=cache_dir, progress=progress
        )
        real_accuracy = real.test_accuracy
    return {
        "cas": float(clf.test_accuracy),
        "real_accuracy": None if real_accuracy is None else float(real_accuracy),
        "n": int(y.shape[0]),
        "histogram": [int(c) for c in np.bincount(y, minlength=10)],
        "dataset": dataset,
        "architecture": spec.architecture,
    }


# ----------------------------------------------------------------------------------------------
# Nearest neighbours (memorisation check)
# ----------------------------------------------------------------------------------------------
def nearest_neighbours(queries, reference, *, batch_size: int = 256, dtype="float64"):
    """Index and Euclidean distance of the nearest ``reference`` row for every query row.

    Parameters
    ----------
    queries : array (N, D) in [0, 1]
    reference : array (M, D) in [0, 1], same backend and device (e.g. the training set)
    batch_size : int
        Query rows per step (memory ``batch_size * M`` numbers).
    dtype : precision of the distance matrix (see :func:`parzen_log_density`)

    Returns
    -------
    indices : host int64 (N,)
    distances : host float64 (N,), ``||q - reference[index]||`` recomputed exactly

    Raises
    ------
    TypeError, ValueError
        See :func:`check_images`.
    """
    _check_pair(reference, queries, ("reference", "queries"))
    batch_size = _check_batch_size(batch_size)
    xp = array_namespace(queries, reference)
    dt = getattr(xp, dtype) if isinstance(dtype, str) else dtype
    ref = xp.astype(reference, dt)
    ref_sq = xp.sum(ref * ref, axis=1)  # (M,)
    idx = []
    n = queries.shape[0]
    for start in range(0, n, batch_size):  # slices stay in bounds (the array API requires it)
        q = xp.astype(queries[start : min(start + batch_size, n), :], dt)  # (B, D)
        d2 = ref_sq[None, :] - 2.0 * (q @ ref.T)  # (B, M); ||q||^2 is the same along a row
        idx.append(to_numpy(xp.argmin(d2, axis=1)))
    indices = np.concatenate(idx).astype(np.int64)
    q_host = np.asarray(to_numpy(queries), dtype=np.float64)
    nn_host = np.asarray(to_numpy(reference), dtype=np.float64)[indices]
    return indices, np.sqrt(np.sum((q_host - nn_host) ** 2, axis=1))


def plot_nearest_neighbours(
    samples, reference, path, *, n: int = 10, title: str | None = None, image_shape=(1, 28, 28)
):
    """Save a figure: ``n`` samples (top row) above their nearest reference images (bottom).

    The check of Goodfellow et al. (2014), Figure 2: if the bottom row repeats the top row,
    the generator has memorised training images.

    Parameters
    ----------
    samples : array (N >= n, C*H*W) in [0, 1]; the first ``n`` rows are shown
    reference : array (M, C*H*W) in [0, 1] (the training set), same backend
    path : output ``.png``
    n : int
    title : str, optional
    image_shape : (C, H, W)
        How a row is drawn (grey for C = 1, RGB for C = 3).

    Returns
    -------
    Path of the written figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xp = array_namespace(samples)
    n = min(int(n), samples.shape[0])
    shown = samples[:n, :]
    idx, dist = nearest_neighbours(shown, reference)
    c, h, w = image_shape

    def pictures(rows):  # (n, C*H*W) -> (n, H, W) grey or (n, H, W, 3) RGB
        x = np.asarray(rows).reshape(n, c, h, w).transpose(0, 2, 3, 1)
        return x[..., 0] if c == 1 else x

    top = pictures(to_numpy(shown))
    bottom = pictures(np.asarray(to_numpy(reference))[idx])
    del xp
    fig = Figure(figsize=(1.1 * n + 0.6, 2.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, n, squeeze=False)
    for j in range(n):
        for row, img in ((0, top[j]), (1, bottom[j])):
            ax = axes[row, j]
            ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[1, j].set_xlabel(f"d={dist[j]:.2f}", fontsize=8)
    axes[0, 0].set_ylabel("sample", fontsize=9)
    axes[1, 0].set_ylabel("nearest\ntraining", fontsize=9)
    fig.suptitle(title or "Generated samples and their nearest training images", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        fig.savefig(f, dpi=100, format=path.suffix[1:].lower() or "png")
    return path


# ----------------------------------------------------------------------------------------------
# Evaluating a checkpoint
# ----------------------------------------------------------------------------------------------
#: Paper rows shown beside a dataset's Parzen figure (only MNIST has them).
PAPER_ROWS: dict[str, dict[str, tuple[float, float]]] = {"mnist": PAPER_TABLE1}
#: Most generated images :func:`evaluate_checkpoint` accepts (10x the paper's 10,000): they
#: are held in memory together (784 float32 each, about 300 MB at this limit) and the Parzen
#: window compares each of the 10,000 test images with every one.
MAX_EVAL_SAMPLES = 100_000


def modes_covered(samples, centers, std: float, tol: float = 4.0, min_share: float = 0.2):
    """Modes of a Gaussian mixture a GAN covers: ``sum_k [n_k >= min_share * N / K]``.

    A sample is "near" mode k when it lies within ``tol * std`` of centre k (and nearer to it
    than to any other); mode k is covered when it holds at least ``min_share`` of its fair
    share ``N / K`` of the samples (Metz et al. 2017 and Srivastava et al. 2017 count modes
    the same way, with 3 std and a fixed count).

    Parameters
    ----------
    samples : host array (N, 2)
    centers : host array (K, 2), e.g. :func:`minigan.data.ring_centers`
    std : float
        The mixture's standard deviation.
    tol, min_share : float

    Returns
    -------
    covered : int in 0..K
    near : float
        Fraction of the samples near some mode (sample quality).

    Raises
    ------
    ValueError
        ``samples`` or ``centers`` not of shape (., 2)-like matching widths.
    """
    x, c = np.asarray(samples, dtype=np.float64), np.asarray(centers, dtype=np.float64)
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1]:
        raise ValueError(
            f"samples (N, d) and centers (K, d): got {tuple(x.shape)} and {tuple(c.shape)}"
        )
    dist = np.linalg.norm(x[:, None, :] - c[None], axis=2)  # (N, K)
    near = np.min(dist, axis=1) < tol * std
    counts = np.bincount(np.argmin(dist, axis=1)[near], minlength=len(c))  # (K,)
    return int(np.sum(counts >= min_share * len(x) / len(c))), float(np.mean(near))


def generate_samples(gan, n: int, *, seed=0, batch_size: int = 1000):
    """``n`` generated images in [0, 1] on the GAN's device, (n, D), from noise seeded by ``seed``.

    Images of a convolutional G, (n, C, H, W), are flattened to D = C*H*W.

    ``z ~ N(0, I)`` is drawn on the host by ``numpy.random.default_rng(seed)`` (``seed``: an
    int or a sequence of ints; CPU and GPU give the same samples), and the ``tanh`` output
    ``x`` is mapped by ``(x + 1) / 2``. dtype: the GAN's (float32 unless built otherwise).

    Raises
    ------
    ValueError
        ``n < 1`` or ``batch_size < 1`` (no batch to concatenate), or a negative ``seed``.
    """
    xp = gan.backend.xp
    rng = np.random.default_rng(seed)
    host_dtype = np.float32 if "32" in str(gan.dtype) else np.float64
    parts = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        z = rng.standard_normal((b, gan.latent_dim), dtype=host_dtype)
        parts.append(xp.reshape(gan.sample(b, z=z, labels=gan.balanced_labels(b, start)), (b, -1)))
    x = xp.concat(parts, axis=0)
    return xp.clip((x + 1.0) * 0.5, 0.0, 1.0)


def labelled_samples(gan, batch_size: int = 1000, *, seed=1):
    """Endless ``(images, labels)`` batches of a conditional GAN, every class equally often.

    Batch i is :func:`generate_samples` of ``batch_size`` images in [0, 1] on the GAN's device,
    (batch_size, D), noise seed ``[seed, i]``, with its labels ``j % num_classes`` (host int64,
    (batch_size,)): what :func:`classification_accuracy_score` trains on.
    """
    i = 0
    while True:
        yield generate_samples(gan, batch_size, seed=[seed, i]), gan.balanced_labels(batch_size)
        i += 1


def label_accuracy(gan, n: int = 10000, *, seed=0, classifier) -> dict[str, Any]:
    """Share of a conditional GAN's samples the metric classifier assigns to the asked-for class.

    ``n`` samples of :func:`generate_samples` (labels ``i % K``, noise seed ``seed``) are
    classified by ``classifier`` (a :class:`~minigan.classifier.MetricClassifier`).

    Returns
    -------
    dict with ``accuracy`` (in [0, 1]) and ``per_class`` (K floats, class k's share).

    Raises
    ------
    ValueError
        The GAN is not conditional.
    """
    if not gan.conditional:
        raise ValueError("label_accuracy: expected a conditional GAN (num_classes set), got none")
    asked = gan.balanced_labels(n)
    images = generate_samples(gan, n, seed=seed)
    hit = classifier.predict(images) == asked
    per_class = [float(np.mean(hit[asked == k])) for k in range(gan.num_classes)]
    return {"accuracy": float(np.mean(hit)), "per_class": per_class}


def _say(progress: bool, msg: str) -> None:
    if progress:
        import sys

        print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# The honest protocol: which images the checkpoint did not see
# ----------------------------------------------------------------------------------------------
def default_holdout(n_total: int) -> tuple[int, int]:
    """The last sixth of a training split, ``[n - n // 6, n)``: MNIST's 50,000..59,999."""
    return n_total - n_total // 6, n_total


def _int_range(value, name: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected [start, stop) as two ints, got {value!r}") from None
    return a, b


def check_holdout(holdout, train_range, n_total: int) -> tuple[int, int]:
    """Validate a held-out range ``[start, stop)`` of the training split; return it as ints.

    Parameters
    ----------
    holdout : two ints [start, stop)
        Images of the training split the GAN did not train on (the checkpoint config's
        ``holdout``).
    train_range : two ints [start, stop)
        Images it trained on.
    n_total : int
        Images in the split (60,000 for MNIST).

    Raises
    ------
    ValueError
        Not two ints, empty, outside ``[0, n_total)``, or overlapping ``train_range`` (the
        message gives both ranges).
    """
    a, b = _int_range(holdout, "holdout")
    t0, t1 = _int_range(train_range, "train_range")
    if not 0 <= a < b <= n_total:
        raise ValueError(f"holdout: expected 0 <= start < stop <= {n_total}, got [{a}, {b})")
    if a < t1 and t0 < b:
        raise ValueError(
            f"holdout [{a}, {b}) overlaps the training images [{t0}, {t1}): held-out images "
            "must be images the GAN never trained on"
        )
    return a, b


def _span(r: tuple[int, int]) -> str:
    return f"{r[0]:,}..{r[1] - 1:,}"


def evaluation_protocol(config: dict[str, Any], n_total: int, test_range=None) -> dict[str, Any]:
    """Which images an evaluation may treat as unseen, read from a checkpoint's config.

    The training images are ``config["train_range"]`` if present, else
    ``[0, config["n_train"])`` (``train_mnist`` trains on the first ``n_train`` images; without
    ``n_train``: ``limit``, else up to the held-out start, else the whole split).
    The held-out images are ``config["holdout"]`` (``[start, stop)``, written by training with
    a validation split) or, for checkpoints without it, :func:`default_holdout` (the paper's
    MNIST validation images 50,000..59,999). The Parzen sigma is chosen on the held-out
    images; when the checkpoint trained on them (old checkpoints trained on all 60,000) a
    warning says so and the real FCD reference is drawn from the test set instead.

    Parameters
    ----------
    config : dict
        The checkpoint's config.
    n_total : int
        Images in the training split.
    test_range : (split, start, stop), optional
        Where the "test" images come from (a metric classifier's ``test_range``); a range of
        the training split that overlaps the training images adds a warning.

    Returns
    -------
    dict with ``train_range``, ``holdout`` (lists), ``holdout_source`` (``"checkpoint"`` or
    ``"default"``), ``honest`` (bool: the held-out images are unseen), ``warnings`` (list of
    str).

    Raises
    ------
    ValueError
        A ``holdout`` in the config that is malformed or overlaps the training images.
    """
    if config.get("train_range") is not None:
        train = _int_range(config["train_range"], "train_range")
    else:
        default = _int_range(config["holdout"], "holdout")[0] if config.get("holdout") else n_total
        n_train = config.get("n_train") or config.get("limit") or default
        train = (0, min(int(n_train), n_total))
    warnings: list[str] = []
    if config.get("holdout") is not None:
        holdout, source = check_holdout(config["holdout"], train, n_total), "checkpoint"
    else:
        holdout, source = default_holdout(n_total), "default"
    honest = not (holdout[0] < train[1] and train[0] < holdout[1])
    if not honest:
        warnings.append(
            f"WARNING: this checkpoint trained on training images {_span(train)}, which include "
            f"the validation images {_span(holdout)}: the Parzen sigma is chosen on images it "
            "saw, and the real FCD reference comes from the test set instead. Retrain holding "
            "them out (validation_size=...) for the paper's protocol."
        )
    if test_range is not None and test_range[0] == "train":
        t = (test_range[1], test_range[2] if test_range[2] is not None else n_total)
        if t[0] < train[1] and train[0] < t[1]:
            warnings.append(
                f"WARNING: the test images are training images {_span(t)}, and this checkpoint "
                "trained on them: the classifier scores compare it with its own training data."
            )
    return {
        "train_range": list(train),
        "holdout": list(holdout),
        "holdout_source": source,
        "honest": honest,
        "warnings": warnings,
    }


class _EvalImages:
    """The real images of one evaluation, flattened to (N, D) in [0, 1] on the GAN's device.

    ``train`` (the images the GAN trained on, for nearest neighbours), ``valid`` (Parzen sigma),
    ``test`` (Parzen log-likelihood; classifier metrics' real row), ``target`` (what FCD is
    measured against) and ``reference`` (unseen real images whose FCD to ``target`` is the
    real row), chosen by :func:`evaluation_protocol`.
    """

    def __init__(
        self, dataset, spec, protocol, backend, data_dir, n_validation, n_test, data_options=None
    ):
        from .classifier import load_dataset

        def dev(u8):  # uint8 (N, C, H, W) -> (N, C*H*W) float32 in [0, 1] on the device
            return backend.asarray(u8.reshape(u8.shape[0], -1).astype(np.float32) / 255.0)

        train_all, _ = load_dataset(dataset, "train", data_dir, **(data_options or {}))
        n_all = train_all.shape[0]
        keep = np.ones(n_all, dtype=bool)  # training images that are not test images
        if spec is not None:
            split, lo, hi = spec.test_range
            test_u8 = train_all if split == "train" else load_dataset(dataset, split, data_dir)[0]
            test_u8 = test_u8[lo:hi]
            if split == "train":  # e.g. CIFAR-10 offline: the test images are training images
                keep[lo : n_all if hi is None else hi] = False
        else:
            test_u8 = load_dataset(dataset, "test", data_dir)[0]
        test_u8 = test_u8[:n_test] if n_test is not None else test_u8
        t0, t1 = protocol["train_range"]
        h0, h1 = protocol["holdout"]
        held = np.flatnonzero(keep[h0:h1]) + h0  # held-out images that are not test images
        if held.size == 0 and not protocol["honest"]:  # seen anyway (warned): as they are
            held = np.arange(h0, h1)
        if held.size == 0:
            raise ValueError(
                f"evaluate: the held-out images {_span((h0, h1))} are all test images of "
                f"{dataset!r}'s metric classifier; hold out others (a larger validation_size)"
            )
        self.image_shape = tuple(train_all.shape[1:])
        self.train = dev(train_all[t0:t1])
        self.valid = dev(train_all[held[:n_validation]])
        self.test = dev(test_u8)
        centres = np.flatnonzero(keep)[:10000]  # the real Parzen row: never the test images
        self.centres = dev(train_all[centres])
        self.centres_label = f"training images {_spans(centres)}"
        if protocol["honest"]:  # unseen held-out training images vs the whole test set
            ref = held[:10000]
            self.reference = dev(train_all[ref])
            self.target = self.test
            self.reference_label = f"held-out training images {_spans(ref)}"
            self.target_label = "the test set"
        else:  # the GAN saw the held-out images: one half of the test set vs the other
            half = test_u8.shape[0] // 2
            self.reference, self.target = self.test[:half, :], self.test[half:, :]
            self.reference_label = f"test images 0..{half - 1:,}"
            self.target_label = f"test images {half:,}..{test_u8.shape[0] - 1:,}"


def _spans(index: np.ndarray) -> str:
    """Sorted indices as ranges: [0..7999, 10000..10999] -> "0..7,999, 10,000..10,999"."""
    if index.size == 0:
        return "none"
    breaks = np.flatnonzero(np.diff(index) != 1)
    starts = np.concatenate([[index[0]], index[breaks + 1]])
    stops = np.concatenate([index[breaks], [index[-1]]]) + 1
    return ", ".join(_span((int(a), int(b))) for a, b in zip(starts, stops, strict=True))


def _parzen_block(centres, data: _EvalImages, sigma, sigmas, batch_size) -> dict[str, Any]:
    import time

    t0 = time.perf_counter()
    table = None
    s = sigma
    if s is None:
        s, table = parzen_select_sigma(centres, data.valid, sigmas, batch_size=batch_size)
    mean, se = parzen_log_likelihood(centres, data.test, s, batch_size=batch_size)
    return {
        "sigma": float(s),
        "sigma_table": None if table is None else [[k, v] for k, v in table.items()],
        "mean": mean,
        "stderr": se,
        "n_centres": int(centres.shape[0]),
        "n_test": int(data.test.shape[0]),
        "n_validation": int(data.valid.shape[0]),
        "seconds": time.perf_counter() - t0,
    }


def _nearest_block(queries, data: _EvalImages, n_neighbours: int) -> dict[str, Any]:
    _, d = nearest_neighbours(queries[: min(n_neighbours, queries.shape[0]), :], data.train)
    return {"n": int(d.size), "median": float(np.median(d)), "mean": float(np.mean(d))}


def _classifier_blocks(samples, data: _EvalImages, clf, reference: bool) -> dict[str, Any]:
    """``classifier``, ``classifier_info`` and the real row (``reference_classifier``)."""
    target_stats = feature_statistics(clf.features_and_logits(data.target)[0])
    out: dict[str, Any] = {
        "classifier": classifier_metrics(samples, clf, target_stats),
        "classifier_info": {
            "dataset": clf.spec.dataset,
            "architecture": clf.spec.architecture,
            "description": clf.spec.description,
            "test_accuracy": clf.test_accuracy,
            "key": clf.config.key(),
            "fcd_target": data.target_label,
        },
    }
    if reference:
        real = classifier_metrics(data.test, clf, None)
        ref_stats = feature_statistics(clf.features_and_logits(data.reference)[0])
        real["fcd"] = frechet_distance(*ref_stats, *target_stats)
        real["fcd_images"] = f"{data.reference_label} vs {data.target_label}"
        out["reference_classifier"] = real
    return out


def _load_metric_classifier(dataset: str, backend, data_dir, skipped: list):
    from .classifier import CLASSIFIERS, load_classifier

    if dataset not in CLASSIFIERS:
        skipped.append(
            {
                "metrics": "Inception score, FCD, class histogram, coverage, KL to uniform",
                "reason": f"no metric classifier for dataset {dataset!r} (there are classifiers "
                f"for {sorted(CLASSIFIERS)})",
            }
        )
        return None
    return load_classifier(device=backend, data_dir=data_dir, dataset=dataset)


def evaluate_checkpoint(
    path,
    device: Any = "auto",
    data_dir=None,
    n_samples: int = 10000,
    *,
    seed: int = 0,
    sigma: float | None = None,
    sigmas=DEFAULT_SIGMAS,
    n_validation: int = 1000,
    n_test: int | None = None,
    batch_size: int = 500,
    reference: bool = True,
    n_neighbours: int = 1000,
    figure=None,
    classifier=None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a trained GAN checkpoint with every metric of this module, honestly.

    Steps:

    1. rebuild the GAN (:func:`minigan.checkpoint.gan_from_checkpoint`), read its dataset
       (config ``dataset``, default ``"mnist"``) and which images it did not train on
       (:func:`evaluation_protocol`), draw ``n_samples`` images (:func:`generate_samples`);
    2. Parzen window with the protocol of Goodfellow et al. (2014): the samples are the kernel
       centres, sigma is chosen among ``sigmas`` on the first ``n_validation`` held-out images
       (config ``holdout``; else 50,000.. with a warning when the GAN saw them), the
       log-likelihood is averaged over the test images (or the first ``n_test``);
    3. classifier metrics (:func:`classifier_metrics`) with the dataset's metric classifier
       (:data:`minigan.classifier.CLASSIFIERS`), FCD against the test set's features; for a
       dataset without a classifier these are skipped and ``skipped`` says why;
    4. nearest image among those the GAN trained on, for the first ``n_neighbours`` samples,
       and an optional figure;
    5. with ``reference``: the same for real data, the baseline rows: Parzen with 10,000
       training images as centres; the classifier metrics of the test set, whose FCD is that of
       10,000 unseen real images (held-out training images, else half of the test set against
       the other half, the GAN then being measured against that other half too) (the smallest
       FCD an ideal generator can expect at this sample size); nearest-neighbour distances of
       test images.

    Parameters
    ----------
    path : a ``checkpoint.npz`` from :func:`minigan.train_mnist`
    device : {"auto", "cpu", "gpu"} or a device object
    data_dir : dataset location (see :func:`minigan.classifier.load_dataset`)
    n_samples : int
        Generated images (the paper: 10,000).
    seed : int
        Seed of the noise.
    sigma : float, optional
        Use this bandwidth instead of choosing one.
    sigmas, n_validation, n_test, batch_size : Parzen settings (see above)
    reference : bool
        Also compute the real-data rows (about as long again).
    n_neighbours : int
        Samples (and test images) whose nearest training image is searched.
    figure : path, optional
        Where to save the nearest-neighbour figure (:func:`plot_nearest_neighbours`).
    classifier : MetricClassifier, optional
        Default :func:`minigan.classifier.load_classifier` of the dataset (trained and cached
        on first use).
    progress : bool
        Print what it is doing to stderr.

    Returns
    -------
    dict, JSON-serialisable: ``checkpoint``, ``dataset``, ``config`` (run settings),
    ``protocol`` (:func:`evaluation_protocol`), ``device``, ``n_samples``, ``seed``,
    ``parzen`` (``sigma``, ``sigma_table``, ``mean``, ``stderr``, ``n_test``,
    ``n_validation``, ``seconds``), ``classifier`` (see :func:`classifier_metrics`, or None),
    ``nearest`` (``median``, ``mean`` distance, ``figure``), ``classifier_info`` (architecture
    and test accuracy), ``skipped`` (list of ``metrics``/``reason`` dicts), ``reference``
    (same keys for real data, or None), ``paper`` (:data:`PAPER_TABLE1` for MNIST, else {}).

    Raises
    ------
    ValueError
        Bad counts (``n_samples`` above :data:`MAX_EVAL_SAMPLES`), an unreadable checkpoint
        (see :func:`minigan.checkpoint.load_checkpoint`), a held-out range in its config that
        overlaps its training images.
    FileNotFoundError
        No dataset files.
    """
    from .checkpoint import _overrides_from_json, gan_from_checkpoint
    from .classifier import CLASSIFIERS, load_dataset

    for name, v, lo in (
        ("n_samples", n_samples, 2),
        ("n_validation", n_validation, 1),
        ("n_neighbours", n_neighbours, 1),
    ):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name}: expected an int >= {lo}, got {v!r}")
    if n_samples > MAX_EVAL_SAMPLES:
        raise ValueError(
            f"n_samples: at most {MAX_EVAL_SAMPLES} (MAX_EVAL_SAMPLES), got {n_samples}: the "
            "samples are held in memory (3 KB each) and every test image is compared with "
            "every sample; the paper's protocol uses 10000"
        )
    gan, _, config = gan_from_checkpoint(path, device=device)
    dataset = config.get("dataset") or "mnist"
    spec = CLASSIFIERS.get(dataset)
    data_options = _overrides_from_json(config.get("data_options") or {})  # a training subset
    n_total = load_dataset(dataset, "train", data_dir, **data_options)[0].shape[0]
    protocol = evaluation_protocol(config, n_total, spec.test_range if spec else None)
    if n_validation > protocol["holdout"][1] - protocol["holdout"][0]:
        raise ValueError(
            f"n_validation: expected <= {protocol['holdout'][1] - protocol['holdout'][0]} (the "
            f"held-out images), got {n_validation}"
        )
    backend = gan.backend
    _say(progress, f"evaluate: {path} ({dataset}) on {backend.name}, {n_samples} samples")
    for w in protocol["warnings"]:
        _say(progress, f"evaluate: {w}")
    data = _EvalImages(
        dataset, spec, protocol, backend, data_dir, n_validation, n_test, data_options
    )
    samples = generate_samples(gan, n_samples, seed=seed)
    samples = backend.xp.reshape(samples, (samples.shape[0], -1))  # (N, C*H*W)
    results: dict[str, Any] = {
        "checkpoint": str(path),
        "dataset": dataset,
        "config": {k: config.get(k) for k in ("preset", "overrides", "seed", "epochs")},
        "protocol": protocol,
        "device": backend.name,
        "n_samples": int(n_samples),
        "seed": int(seed),
        "paper": {k: list(v) for k, v in PAPER_ROWS.get(dataset, {}).items()},
        "skipped": [],
    }
    _say(progress, "evaluate: Parzen window (sigma on validation, LL on test)...")
    results["parzen"] = _parzen_block(samples, data, sigma, sigmas, batch_size)
    _say(progress, "evaluate: classifier metrics...")
    clf = classifier or _load_metric_classifier(dataset, backend, data_dir, results["skipped"])
    blocks = _classifier_blocks(samples, data, clf, reference) if clf is not None else {}
    results["classifier"] = blocks.get("classifier")
    results["classifier_info"] = blocks.get("classifier_info")
    _say(progress, "evaluate: nearest training images...")
    results["nearest"] = _nearest_block(samples, data, n_neighbours)
    results["nearest"]["figure"] = None
    if figure is not None:
        results["nearest"]["figure"] = str(
            plot_nearest_neighbours(
                samples,
                data.train,
                figure,
                title=f"{Path(str(path)).name}: samples (top) and "
                "their nearest training images (bottom)",
                image_shape=data.image_shape,
            )
        )
    results["reference"] = None
    if reference:
        _say(progress, "evaluate: reference rows on real images...")
        ref: dict[str, Any] = {
            "parzen": _parzen_block(data.centres, data, sigma, sigmas, batch_size)
        }
        ref["parzen"]["centres"] = data.centres_label
        ref["classifier"] = blocks.get("reference_classifier")
        ref["nearest"] = _nearest_block(data.test, data, n_neighbours)
        results["reference"] = ref
    return results


def _pm(mean: float, err: float, digits: int = 1) -> str:
    return f"{mean:.{digits}f} +- {err:.{digits}f}"


def _class_noun(dataset: str) -> str:
    from .classifier import CLASSIFIERS

    spec = CLASSIFIERS.get(dataset)
    digits = spec is None or spec.class_names == tuple(str(i) for i in range(10))
    return "digits" if digits else "classes"


def _protocol_lines(results: dict[str, Any]) -> list[str]:
    prot = results.get("protocol")
    lines = []
    if prot:
        h, t = prot["holdout"], prot["train_range"]
        state = "unseen" if prot["honest"] else "SEEN IN TRAINING"
        source = "from the checkpoint" if prot["holdout_source"] == "checkpoint" else "default"
        lines.append(
            f"  trained on training images {_span(t)}; held-out images {_span(h)} "
            f"({source}, {state})"
        )
        lines += [f"  {w}" for w in prot.get("warnings", [])]
    for s in results.get("skipped") or []:
        lines.append(f"  skipped: {s['metrics']}: {s['reason']}")
    return lines


def _parzen_lines(results: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    p = results.get("parzen")
    if not p:
        return []
    dataset = results.get("dataset", "mnist")
    lines = [
        f"Parzen-window log-likelihood of the {dataset} test set (nats, higher is better;",
        f"  protocol of Goodfellow et al. 2014: sigma chosen on {p['n_validation']} "
        f"held-out validation images, {p['n_test']} test images)",
        f"  {'kernel centres':<44}{'sigma':>8}  {'log-likelihood':>16}",
        f"  {'this GAN: ' + str(p['n_centres']) + ' samples':<44}{p['sigma']:>8.3f}  "
        f"{_pm(p['mean'], p['stderr']):>16}",
    ]
    rp = ref.get("parzen")
    if rp:
        lines.append(
            f"  {'real: ' + rp.get('centres', 'training images'):<44}{rp['sigma']:>8.3f}  "
            f"{_pm(rp['mean'], rp['stderr']):>16}"
        )
    paper = results.get("paper", PAPER_ROWS.get(dataset, {}))
    for name, (m, e) in paper.items():
        lines.append(f"  {'paper, Table 1: ' + name:<44}{'':>8}  {f'{m:g} +- {e:g}':>16}")
    if paper:
        lines.append(
            f"  (Theis et al. 2016: 10,000 training images score {THEIS_TRUE_DISTRIBUTION:g}; "
            "the estimator is weak, see the docs)"
        )
    return lines + [""]


def _classifier_lines(results: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    c = results.get("classifier")
    if not c:
        return []
    rc = ref.get("classifier") or {}
    info = results.get("classifier_info") or {}
    acc = info.get("test_accuracy")
    acc_s = f", test accuracy {100 * acc:.2f}%" if acc is not None else ""
    noun = _class_noun(results.get("dataset", "mnist"))
    desc = f", {info['description']}" if info.get("description") else ""
    lines = [
        f"Classifier metrics (minigan {results.get('dataset', 'mnist')} classifier "
        f"{info.get('architecture', '')}{desc}{acc_s})",
        f"  {'metric':<44}{'this GAN':>16}  {'real test set':>16}",
    ]
    rows = (
        (
            "Inception score, classifier (higher better)",
            "inception_score",
            lambda d: _pm(d["inception_score"], d["inception_score_std"], 2),
        ),
        ("Frechet classifier distance (lower better)", "fcd", lambda d: f"{d['fcd']:.2f}"),
        (f"{noun} covered, of 10", "digits_covered", lambda d: str(d["digits_covered"])),
        ("KL(class histogram || uniform), nats", "kl_uniform", lambda d: f"{d['kl_uniform']:.4f}"),
        ("mean classifier confidence", "mean_confidence", lambda d: f"{d['mean_confidence']:.3f}"),
    )
    for label, key, fmt in rows:
        a = fmt(c) if c.get(key) is not None else "-"
        b = fmt(rc) if rc.get(key) is not None else "-"
        lines.append(f"  {label:<44}{a:>16}  {b:>16}")
    lines.append("  class histogram, % of images predicted as 0..9:")
    for label, d in (("this GAN", c), ("real test set", rc)):
        if d.get("histogram"):
            h = np.asarray(d["histogram"], dtype=np.float64)
            pct = " ".join(f"{v:4.1f}" for v in 100 * h / h.sum())
            lines.append(f"    {label:<16}{pct}")
    if info.get("fcd_target"):
        lines.append(f"  (FCD of this GAN against {info['fcd_target']})")
    if rc.get("fcd_images"):
        lines.append(f"  (real-set FCD: {rc['fcd_images']}; FCD is not FID, see the docs)")
    return lines + [""]


def _nearest_lines(results: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    nn = results.get("nearest")
    if not nn:
        return []
    rn = ref.get("nearest")
    lines = [
        "Nearest training image the GAN trained on (memorisation check, Euclidean distance)",
        f"  median distance of {nn['n']} samples: {nn['median']:.2f}"
        + (
            f"; of {rn['n']} test images: {rn['median']:.2f}; ratio "
            f"{nn['median'] / rn['median']:.2f} (far below 1 would mean memorisation)"
            if rn
            else ""
        ),
    ]
    if nn.get("figure"):
        lines.append(f"  figure: {nn['figure']}")
    return lines


def format_table(results: dict[str, Any]) -> str:
    """Render :func:`evaluate_checkpoint`'s results as a plain-text table.

    A header with the evaluation protocol (which images the checkpoint trained on, which were
    held out, and a warning when it saw them; metrics skipped and why), then three blocks: the
    Parzen log-likelihood next to the real-data reference and, for MNIST, the paper's Table 1;
    the classifier metrics next to the real test set's own; the nearest-neighbour distances.
    Missing parts (no reference) are shown as ``-``.
    """
    ref = results.get("reference") or {}
    cfg = results.get("config") or {}
    lines = [
        f"minigan evaluation of {results.get('checkpoint')}",
        f"  dataset {results.get('dataset', 'mnist')}, preset {cfg.get('preset')}, "
        f"{results.get('n_samples')} samples (noise seed {results.get('seed')}), device "
        f"{results.get('device')}",
        *_protocol_lines(results),
        "",
    ]
    lines += _parzen_lines(results, ref)
    lines += _classifier_lines(results, ref)
    lines += _nearest_lines(results, ref)
    return "\n".join(lines).rstrip() + "\n"


def plot_metrics(rows, path) -> Path:
    """Plot classifier metrics logged during training against the epoch, as a PNG.

    Parameters
    ----------
    rows : sequence of dicts with ``epoch``, ``inception_score``, ``fcd``, ``digits_covered``
        and optionally ``reference`` (the same keys for real images, drawn dashed), as
        :class:`minigan.health.TrainingDiagnostics` logs them every ``metrics_every`` epochs
    path : output ``.png``

    Returns
    -------
    Path of the written file.

    Raises
    ------
    ValueError
        No rows.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    rows = list(rows)
    if not rows:
        raise ValueError("rows: nothing to plot (empty list)")
    epochs = [r["epoch"] for r in rows]
    fig = Figure(figsize=(9, 3.2), dpi=100, layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (
        ("inception_score", "Inception score (classifier)", (1, 10), "higher is better"),
        ("fcd", "Frechet classifier distance", None, "lower is better"),
        ("digits_covered", "classes covered (of 10)", (0, 10.5), "mode collapse: fewer"),
    )
    for ax, (key, title, ylim, note) in zip(axes, panels, strict=True):
        ys = [np.nan if r.get(key) is None else float(r[key]) for r in rows]
        ax.plot(epochs, ys, marker="o", linewidth=1.2)
        ref = rows[-1].get("reference", {}).get(key) if rows[-1].get("reference") else None
        if ref is not None:
            ax.axhline(ref, color="gray", linestyle="--", linewidth=0.8, label="real images")
            ax.legend(loc="best", fontsize=8)
        ax.set_title(f"{title}\n({note})", fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ylim:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:  # a link at path is replaced, never written through
        fig.savefig(f, format=path.suffix[1:].lower() or "png")
    return path
