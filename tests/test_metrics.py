"""Tests of minigan.metrics and minigan.classifier (issue 6).

Fast checks on synthetic data run everywhere; the ones on real MNIST need
``MINIGAN_DATA_DIR`` (CI: ../shared/data/mnist) and skip with the reason otherwise. The MNIST
classifier is trained once (about a minute on two cores) and cached in the user cache dir
(``$MINIGAN_CACHE_DIR/classifier`` if set).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import MNIST_DIR, host, needs_mnist

from minigan import functional as F
from minigan.backend import to_numpy
from minigan.classifier import ClassifierConfig, MNISTClassifier, build_classifier, load_classifier
from minigan.gradcheck import check_module
from minigan.layers import Module
from minigan.metrics import (
    DEFAULT_SIGMAS,
    check_images,
    class_histogram,
    classifier_metrics,
    digits_covered,
    feature_statistics,
    format_table,
    frechet_distance,
    generate_samples,
    inception_score,
    kl_to_uniform,
    nearest_neighbours,
    parzen_log_density,
    parzen_log_likelihood,
    parzen_select_sigma,
    plot_nearest_neighbours,
    sqrtm_psd,
)


def direct_parzen(centres: np.ndarray, x: np.ndarray, sigma: float) -> np.ndarray:
    """The textbook formula, one point at a time, explicit differences, float64."""
    m, d = centres.shape
    out = []
    for row in x.astype(np.float64):
        a = -np.sum((centres.astype(np.float64) - row) ** 2, axis=1) / (2 * sigma**2)  # (M,)
        top = a.max()
        out.append(top + np.log(np.sum(np.exp(a - top))) - np.log(m))
    return np.asarray(out) - d / 2 * np.log(2 * np.pi * sigma**2)


# ----------------------------------------------------------------------------------------------
# Parzen window
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [0.1, 0.3, 1.0])
def test_parzen_matches_direct_float64(backend, rng, sigma):
    centres = rng.uniform(0, 1, (40, 16))
    x = rng.uniform(0, 1, (23, 16))
    want = direct_parzen(centres, x, sigma)
    c_b, x_b = backend.asarray(centres, "float64"), backend.asarray(x, "float64")
    got = parzen_log_density(c_b, x_b, sigma, batch_size=7)  # several batches, one partial
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-9)
    mean, se = parzen_log_likelihood(c_b, x_b, sigma, batch_size=7)
    assert mean == pytest.approx(want.mean(), rel=1e-12, abs=1e-9)
    # standard error exactly as the paper's parzen_ll.py: population std / sqrt(N)
    assert se == pytest.approx(want.std() / math.sqrt(want.size), rel=1e-9)


def test_parzen_float32_inputs_are_computed_in_float64(rng):
    centres = rng.uniform(0, 1, (30, 784)).astype(np.float32)
    x = rng.uniform(0, 1, (10, 784)).astype(np.float32)
    want = direct_parzen(centres, x, 0.2)  # the float32 values, exactly, in float64
    np.testing.assert_allclose(parzen_log_density(centres, x, 0.2), want, rtol=1e-10, atol=1e-8)


def test_parzen_log_sum_exp_is_stable_far_from_every_centre():
    # A point 10 units from its only centre at sigma 0.01: exp(-500000) underflows to 0, so a
    # naive log(mean(exp(...))) gives -inf. The exact value is -d^2/(2 s^2) - D/2 log(2 pi s^2).
    centres = np.zeros((1, 100))
    x = np.full((1, 100), 1.0)
    sigma = 0.01
    d2 = 100.0
    want = -d2 / (2 * sigma**2) - 50 * math.log(2 * math.pi * sigma**2)
    with np.errstate(divide="ignore"):
        assert np.isneginf(np.log(np.mean(np.exp(-d2 / (2 * sigma**2)))))  # the naive way
    got = parzen_log_density(centres, x, sigma)
    assert np.isfinite(got[0]) and got[0] == pytest.approx(want, rel=1e-12)


def test_parzen_select_sigma_takes_the_best_of_the_table(rng):
    centres = rng.uniform(0, 1, (50, 8))
    valid = np.clip(centres[:20] + 0.05 * rng.standard_normal((20, 8)), 0, 1)
    best, table = parzen_select_sigma(centres, valid, batch_size=6)
    assert list(table) == pytest.approx(list(DEFAULT_SIGMAS))
    for s, v in table.items():
        assert v == pytest.approx(direct_parzen(centres, valid, s).mean(), rel=1e-10, abs=1e-9)
    assert table[best] == max(table.values())
    assert best in table  # a grid value
    assert DEFAULT_SIGMAS[0] == pytest.approx(0.1) and DEFAULT_SIGMAS[-1] == pytest.approx(1.0)
    assert DEFAULT_SIGMAS.size == 10


@pytest.mark.parametrize(
    "bad, kind, match",
    [
        (np.zeros((4, 28, 28)), ValueError, r"shape \(N, D\).*\(4, 28, 28\)"),
        (np.full((4, 16), 1.5), ValueError, r"\[0, 1\].*1\.5"),
        (np.full((4, 16), -1.0), ValueError, r"\[0, 1\].*\(x \+ 1\) / 2"),
        (np.zeros((4, 16), dtype=np.uint8), TypeError, "uint8"),
        (np.zeros((4, 15)), ValueError, r"16 features.*\(4, 15\)"),
        (np.full((4, 16), np.nan), ValueError, "NaN"),
        (np.zeros((0, 16)), ValueError, "at least one"),
    ],
)
def test_parzen_rejects_bad_inputs(bad, kind, match):
    centres = np.full((5, 16), 0.5)
    with pytest.raises(kind, match=match):
        parzen_log_likelihood(centres, bad, 0.2)


@pytest.mark.parametrize("sigma", [0.0, -0.1, float("nan")])
def test_parzen_rejects_bad_sigma(sigma):
    x = np.full((3, 4), 0.5)
    with pytest.raises(ValueError, match="sigma"):
        parzen_log_likelihood(x, x, sigma)


def test_parzen_rejects_mixed_backends():
    import array_api_strict as xps

    a = np.full((3, 4), 0.5)
    b = xps.asarray(a)
    with pytest.raises(TypeError, match="array"):
        parzen_log_likelihood(a, b, 0.2)


def test_check_images_accepts_the_closed_interval():
    check_images(np.asarray([[0.0, 1.0]]))  # both ends are legal pixel values


# ----------------------------------------------------------------------------------------------
# Classifier-based scores on synthetic numbers
# ----------------------------------------------------------------------------------------------
def test_inception_score_limits():
    eye = np.eye(10)
    confident_balanced = np.tile(eye, (20, 1))  # every class equally often, one-hot
    assert inception_score(confident_balanced, splits=2)[0] == pytest.approx(10.0)
    one_class = np.tile(eye[3], (50, 1))
    assert inception_score(one_class, splits=5) == pytest.approx((1.0, 0.0))
    uncertain = np.full((40, 10), 0.1)
    assert inception_score(uncertain, splits=4)[0] == pytest.approx(1.0)


def test_inception_score_equals_the_formula(rng):
    logits = rng.standard_normal((30, 10)) * 3
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    py = p.mean(axis=0)
    want = math.exp(np.mean(np.sum(p * np.log(p / py), axis=1)))
    assert inception_score(p, splits=1) == pytest.approx((want, 0.0), rel=1e-12)


def test_inception_score_rejects_bad_input():
    with pytest.raises(ValueError, match="probabilities"):
        inception_score(np.full((4, 10), 0.5))  # rows sum to 5
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        inception_score(np.full(10, 0.1))
    with pytest.raises(ValueError, match="splits"):
        inception_score(np.full((4, 10), 0.1), splits=5)


def test_histogram_coverage_and_kl():
    hist = class_histogram(np.asarray([0, 0, 1, 9, 9, 9]))
    assert hist.tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 3]
    assert digits_covered(hist) == 3
    assert kl_to_uniform(np.ones(10)) == pytest.approx(0.0, abs=1e-15)
    assert kl_to_uniform([5, 0, 0, 0, 0, 0, 0, 0, 0, 0]) == pytest.approx(math.log(10))
    p = hist / hist.sum()
    want = sum(q * math.log(10 * q) for q in p if q > 0)
    assert kl_to_uniform(hist) == pytest.approx(want)
    # a digit with 0.5% of the samples is not covered; 1% is
    assert digits_covered([995, 5] + [0] * 8) == 1
    assert digits_covered([990, 10] + [0] * 8) == 2
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        class_histogram(np.asarray([0, 10]))
    with pytest.raises(ValueError, match="integer"):
        class_histogram(np.asarray([0.0, 1.0]))
    with pytest.raises(ValueError, match="positive sum"):
        kl_to_uniform(np.zeros(10))


def test_frechet_distance_closed_forms(rng):
    f = 6
    a = rng.standard_normal((f, f))
    cov = a @ a.T + 0.1 * np.eye(f)
    mu = rng.standard_normal(f)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-9)
    shift = rng.standard_normal(f)
    assert frechet_distance(mu, cov, mu + shift, cov) == pytest.approx(shift @ shift, rel=1e-9)
    # diagonal covariances: sum (sqrt(a_i) - sqrt(b_i))^2 per dimension
    da, db = rng.uniform(0.1, 2, f), rng.uniform(0.1, 2, f)
    want = np.sum((np.sqrt(da) - np.sqrt(db)) ** 2)
    got = frechet_distance(np.zeros(f), np.diag(da), np.zeros(f), np.diag(db))
    assert got == pytest.approx(want, rel=1e-9)
    # symmetric in its two Gaussians
    b = rng.standard_normal((f, f))
    cov2 = b @ b.T
    assert frechet_distance(mu, cov, shift, cov2) == pytest.approx(
        frechet_distance(shift, cov2, mu, cov), rel=1e-9
    )


def test_frechet_distance_matches_scipy_sqrtm(rng):
    linalg = pytest.importorskip(
        "scipy.linalg", reason="SciPy is not installed: optional cross-check skipped"
    )
    f = 8
    a, b = rng.standard_normal((f, 3 * f)), rng.standard_normal((f, 3 * f))
    c1, c2 = np.cov(a), np.cov(b)
    m1, m2 = rng.standard_normal(f), rng.standard_normal(f)
    covmean = np.real(linalg.sqrtm(c1 @ c2))
    want = np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * np.trace(covmean)
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(want, rel=1e-7)


def test_sqrtm_psd_squares_back(rng):
    a = rng.standard_normal((5, 5))
    s = a @ a.T
    r = sqrtm_psd(s)
    np.testing.assert_allclose(r @ r, s, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(r, r.T, atol=0)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"cov2: expected shape \(3, 3\)"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(np.zeros((1, 3)))


# ----------------------------------------------------------------------------------------------
# Nearest neighbours
# ----------------------------------------------------------------------------------------------
def test_nearest_neighbours_match_brute_force(backend, rng):
    ref = rng.uniform(0, 1, (57, 12))
    q = rng.uniform(0, 1, (9, 12))
    q[2] = ref[41]  # an exact copy: distance 0, index 41
    d_all = np.sqrt(((q[:, None, :] - ref[None, :, :]) ** 2).sum(-1))
    idx, dist = nearest_neighbours(
        backend.asarray(q, "float64"), backend.asarray(ref, "float64"), batch_size=4
    )
    np.testing.assert_array_equal(idx, d_all.argmin(axis=1))
    np.testing.assert_allclose(dist, d_all.min(axis=1), rtol=1e-12, atol=1e-12)
    assert idx[2] == 41 and dist[2] == 0.0


def test_plot_nearest_neighbours_writes_a_png(tmp_path, rng):
    from PIL import Image

    ref = rng.uniform(0, 1, (20, 784))
    path = plot_nearest_neighbours(ref[:3] * 0.9, ref, tmp_path / "sub" / "nn.png", n=3)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 100


# ----------------------------------------------------------------------------------------------
# The metric classifier
# ----------------------------------------------------------------------------------------------
class _NetWithLoss(Module):
    """Classifier MLP followed by the mean softmax cross-entropy (for a gradient check)."""

    def __init__(self, net, labels):
        super().__init__()
        self.net = net
        self.labels = labels

    def children(self):
        return {"net": self.net}

    def forward(self, x):
        loss, self._cache = F.softmax_cross_entropy_forward(self.net.forward(x), self.labels)
        return loss

    def backward(self, dout, *, input_grad=True):
        dlogits = F.softmax_cross_entropy_backward(dout, self._cache)
        return self.net.backward(dlogits, input_grad=input_grad)


def test_classifier_network_and_loss_gradcheck(backend, make, record_figure):
    # The classifier's layer stack at a small input size, then the cross-entropy it trains on.
    cfg = ClassifierConfig(hidden=(6, 5))
    net = build_classifier(cfg, device=backend, dtype="float64", in_features=12)
    x = make((4, 12), away=0.1)
    model = _NetWithLoss(net, make.labels(4, 10))
    report = check_module(model, x)
    record_figure(
        "max rel error", "classifier MLP (12-6-5-10) + cross-entropy", report.max_rel_error
    )
    assert report.passed, str(report)
    assert report.max_rel_error < 1e-5  # STYLE.md: 1e-5 for deep stacks


def test_classifier_config_key_depends_on_every_field():
    base = ClassifierConfig()
    keys = {base.key()}
    for change in ({"epochs": 7}, {"hidden": (512, 128)}, {"lr": 2e-3}, {"seed": 1}):
        fields = {**base.to_dict(), **change}
        keys.add(ClassifierConfig.from_dict(fields).key())
    assert len(keys) == 5
    assert ClassifierConfig.from_dict(base.to_dict()) == base


def test_classifier_save_load_roundtrip_without_pickle(tmp_path, rng):
    cfg = ClassifierConfig(hidden=(8,))
    clf = MNISTClassifier(build_classifier(cfg), cfg, test_accuracy=0.5)
    path = clf.save(tmp_path / "c.npz")
    with np.load(path, allow_pickle=False) as npz:  # plain arrays only
        assert "net.0.weight" in npz.files
    back = MNISTClassifier.load(path)
    x = rng.uniform(0, 1, (5, 784))
    np.testing.assert_array_equal(to_numpy(back.logits(x)), to_numpy(clf.logits(x)))
    assert back.config == cfg and back.test_accuracy == 0.5
    with pytest.raises(ValueError, match=r"\(N, 784\)"):
        back.logits(np.zeros((2, 28, 28)))


def test_load_classifier_without_cache_and_training_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="no cached MNIST classifier"):
        load_classifier(cache_dir=tmp_path, train_if_missing=False)


@pytest.fixture(scope="module")
def mnist():
    from minigan.data import load_mnist

    train, _ = load_mnist("train", root=MNIST_DIR)
    test, test_labels = load_mnist("test", root=MNIST_DIR)

    def flat(u8):
        return u8.reshape(u8.shape[0], 784).astype(np.float64) / 255.0

    return {"train": flat(train), "test": flat(test), "test_labels": test_labels}


@pytest.fixture(scope="module")
def classifier():
    return load_classifier(data_dir=MNIST_DIR, progress=False)  # trains once, then cached


@needs_mnist
def test_classifier_reaches_98_percent(classifier, mnist):
    acc = classifier.accuracy(mnist["test"], mnist["test_labels"])
    print(f"\nMNIST metric classifier: test accuracy {100 * acc:.2f}% ({classifier})")
    assert acc >= 0.98
    assert classifier.test_accuracy == pytest.approx(acc, abs=1e-4)  # what the cache recorded


@needs_mnist
def test_classifier_metrics_real_digits_vs_a_single_digit(classifier, mnist):
    test, labels = mnist["test"], mnist["test_labels"]
    # random halves: MNIST's test set is ordered (its first 5000 images are the cleaner ones)
    perm = np.random.default_rng(0).permutation(10000)
    stats = feature_statistics(classifier.features_and_logits(test[perm[5000:]])[0])
    real = classifier_metrics(test[perm[:5000]], classifier, stats)
    ones = classifier_metrics(test[labels == 1][:500], classifier, stats)
    print(f"\nreal test images: {real}\nonly ones: {ones}")
    assert real["inception_score"] > 9.0 and ones["inception_score"] < 1.2
    assert real["digits_covered"] == 10 and ones["digits_covered"] == 1
    assert real["kl_uniform"] < 0.01 and ones["kl_uniform"] > 2.0
    assert real["fcd"] < ones["fcd"] / 20  # two halves of the test set vs. only ones
    assert sum(real["histogram"]) == 5000
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        classifier_metrics(test[:10] * 2 - 1, classifier)


# ----------------------------------------------------------------------------------------------
# Parzen on real MNIST: real digits >> a barely trained GAN >> noise
# ----------------------------------------------------------------------------------------------
@needs_mnist
def test_parzen_on_mnist_ranks_real_above_gan_above_noise(mnist):
    from minigan.data import preprocess
    from minigan.gan import build_gan

    valid = mnist["train"][50000:50500]  # the paper's validation range (a 500-image subset)
    scored = mnist["train"][:1000]
    real = mnist["test"][:2000]  # real test images used as the "samples"
    noise = np.random.default_rng(0).uniform(0, 1, (2000, 784))
    gan = build_gan("default", g_hidden=(128,), d_hidden=(128,), seed=0)
    x = preprocess((mnist["train"][:5000] * 255).round().astype(np.uint8))
    r = np.random.default_rng(0)
    for _ in range(300):
        gan.train_step(x[r.integers(0, 5000, 64)])
    fake = host(generate_samples(gan, 2000)).astype(np.float64)
    ll = {}
    for name, centres in (("real", real), ("gan", fake), ("noise", noise)):
        sigma, _ = parzen_select_sigma(centres, valid)
        ll[name] = parzen_log_likelihood(centres, scored, sigma)
    print(f"\nParzen LL, 2000 centres, 1000 scored images: {ll}")
    (lr, er), (lg, eg), (ln, en) = ll["real"], ll["gan"], ll["noise"]
    assert lr > lg + 200 and lg > ln + 200  # each gap > 40 standard errors
    assert max(er, eg, en) < 10


@needs_mnist
def test_format_table_shows_every_block(classifier, mnist):
    test = mnist["test"]
    stats = feature_statistics(classifier.features_and_logits(test)[0])
    c = classifier_metrics(test[:1000], classifier, stats)
    results = {
        "checkpoint": "x.npz",
        "config": {"preset": "default"},
        "n_samples": 1000,
        "seed": 0,
        "device": "cpu",
        "parzen": {"sigma": 0.17, "mean": 230.0, "stderr": 2.0, "n_centres": 1000,
                   "n_test": 100, "n_validation": 100},
        "classifier": c,
        "classifier_info": {"architecture": "784-512-256-10", "test_accuracy": 0.987},
        "nearest": {"n": 10, "median": 5.0, "mean": 5.1, "figure": None},
        "reference": {"parzen": {"sigma": 0.17, "mean": 241.2, "stderr": 2.1,
                                 "centres": "MNIST training images 0..9999"},
                      "classifier": c, "nearest": {"n": 10, "median": 4.4, "mean": 4.5}},
    }  # fmt: skip
    table = format_table(results)
    print("\n" + table)
    for piece in ("230.0 +- 2.0", "241.2 +- 2.1", "225 +- 2", "Frechet classifier distance",
                  "digits covered", "98.70%", "ratio 1.14"):  # fmt: skip
        assert piece in table


# ----------------------------------------------------------------------------------------------
# evaluate_checkpoint and `minigan evaluate`, end to end on a tiny trained GAN
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from minigan.train import train_mnist

    out = tmp_path_factory.mktemp("tiny_gan")
    hist = train_mnist(
        epochs=1,
        batch_size=32,
        limit=640,
        device="cpu",
        progress=False,
        data_dir=MNIST_DIR,
        out_dir=out,
        latent_dim=16,
        g_hidden=(64,),
        d_hidden=(64,),
    )
    return hist.artifacts["checkpoint"]


@needs_mnist
def test_evaluate_checkpoint_end_to_end(tiny_checkpoint, classifier, tmp_path):
    from minigan.metrics import evaluate_checkpoint

    r = evaluate_checkpoint(
        tiny_checkpoint,
        device="cpu",
        data_dir=MNIST_DIR,
        n_samples=300,
        n_validation=100,
        n_test=200,
        n_neighbours=20,
        figure=tmp_path / "nn.png",
        classifier=classifier,
        progress=False,
    )
    p, rp = r["parzen"], r["reference"]["parzen"]
    assert (p["n_centres"], p["n_test"], p["n_validation"]) == (300, 200, 100)
    assert p["sigma"] in [s for s, _ in p["sigma_table"]] and np.isfinite(p["mean"])
    assert rp["n_centres"] == 10000 and rp["mean"] > p["mean"] + 100  # 20 steps of training
    c, rc = r["classifier"], r["reference"]["classifier"]
    assert sum(c["histogram"]) == 300 and sum(rc["histogram"]) == 200
    assert rc["digits_covered"] == 10 and rc["fcd"] < c["fcd"]
    assert r["nearest"]["n"] == 20 and Path(r["nearest"]["figure"]).is_file()
    import json

    json.dumps(r)  # JSON-serialisable as documented
    table = format_table(r)
    assert f"{p['mean']:.1f} +- {p['stderr']:.1f}" in table and "real test set" in table


@needs_mnist
def test_cli_evaluate_prints_the_table(tiny_checkpoint, classifier, tmp_path, capsys):
    from minigan.cli import main

    out_json = tmp_path / "r.json"
    rc = main(
        ["evaluate", "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--n-samples",
         "200", "--data-dir", MNIST_DIR, "--no-reference", "--json", str(out_json)]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0
    assert "Parzen-window log-likelihood" in text and "paper, Table 1: Adversarial nets" in text
    assert "Frechet classifier distance" in text
    import json

    assert json.loads(out_json.read_text())["n_samples"] == 200


def test_cli_evaluate_reports_a_missing_checkpoint(tmp_path, capsys):
    from minigan.cli import main

    assert main(["evaluate", "--checkpoint", str(tmp_path / "nope.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
