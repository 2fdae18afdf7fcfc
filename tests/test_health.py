"""Tests of minigan.health: each failure mode triggers its warning, healthy training does not.

The GAN cases feed *real* training statistics: a small GAN is trained on a toy dataset (64-d
vectors around 10 prototypes, in [-1, 1]) with a deliberately broken configuration and with a
healthy one, and the monitor sees what ``train_mnist`` would give it at its log interval (the
mean of each interval's losses and the gradient norms of the last step).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import MNIST_DIR, needs_mnist

from minigan.gan import GAN, mlp_discriminator, mlp_generator
from minigan.health import CODES, HealthMonitor, HealthWarning, grad_norm
from minigan.layers import Linear
from minigan.optim import SGD, Adam

KEYS = ("d_loss", "g_loss", "d_real", "d_fake")


def toy_data(n=2048, d=64, seed=0) -> np.ndarray:
    r = np.random.default_rng(seed)
    protos = r.uniform(-1, 1, (10, d))
    x = protos[r.integers(0, 10, n)] + 0.1 * r.standard_normal((n, d))
    return np.clip(x, -1, 1).astype(np.float32)


def train_toy(monitor, *, g_loss, d_lr, g_lr=2e-4, steps=600, log_every=50, seed=0):
    """Train a small GAN and feed the monitor at every log interval; return the warnings."""
    r = np.random.default_rng(seed)
    G = mlp_generator(16, (64,), 64, rng=r)
    D = mlp_discriminator(64, (128,), rng=r)
    gan = GAN(
        G,
        D,
        16,
        Adam(G.parameters(), lr=g_lr, betas=(0.5, 0.999)),
        Adam(D.parameters(), lr=d_lr, betas=(0.5, 0.999)),
        seed=seed,
        g_loss=g_loss,
    )
    x = toy_data()
    rows, emitted = [], []
    for step in range(1, steps + 1):
        out = gan.train_step(x[r.integers(0, len(x), 64)])
        rows.append(out)
        if step % log_every == 0:
            means = {k: float(np.mean([float(o[k]) for o in rows])) for k in KEYS}
            rows.clear()
            means["g_grad_norm"] = grad_norm(G)
            means["d_grad_norm"] = grad_norm(D)
            emitted += monitor.update(step, means)
    return emitted, means


def codes(warnings) -> set[str]:
    return {w.code for w in warnings}


def test_saturating_loss_with_10x_discriminator_lr_is_caught():
    # The classic failure (Goodfellow et al. 2014, Sec. 3): D learns 10x faster, rejects every
    # fake, and the saturating loss log(1 - D(G(z))) gives G no gradient.
    broken, last = train_toy(HealthMonitor(), g_loss="saturating", d_lr=2e-3)
    print("\n" + "\n".join(map(str, broken)) + f"\nlast interval: {last}")
    assert {"D_WINS", "D_FAKE_ZERO"} <= codes(broken)
    assert not codes(broken) & {"NAN", "GRAD_EXPLODING", "MODE_COLLAPSE"}
    assert last["d_fake"] < 0.02 and last["d_loss"] < 0.05  # what the warnings claim
    # ...and the same data and model, trained sanely, raise nothing at all
    healthy, _ = train_toy(HealthMonitor(), g_loss="non_saturating", d_lr=2e-4)
    assert healthy == []


def test_rising_generator_loss_is_caught():
    # Non-saturating loss, D lr 10x: G's loss climbs steadily while D pulls ahead.
    monitor = HealthMonitor(rise_warmup=0)
    broken, _ = train_toy(monitor, g_loss="non_saturating", d_lr=2e-3)
    print("\n" + monitor.summary())
    assert "G_LOSS_RISING" in codes(broken)
    healthy, _ = train_toy(HealthMonitor(rise_warmup=0), g_loss="non_saturating", d_lr=2e-4)
    assert "G_LOSS_RISING" not in codes(healthy)


def test_exploding_gradient_is_caught_before_nan():
    # Gradient descent on 0.5 * mean ||W x - y||^2 with a step far above 2 / lambda_max
    # diverges geometrically: the gradient norm grows each step until it overflows.
    r = np.random.default_rng(0)
    layer = Linear(8, 1, dtype="float64", rng=r)
    x = r.standard_normal((32, 8)) * 3
    y = r.standard_normal((32, 1))
    opt = SGD(layer.parameters(), lr=1.0)
    monitor = HealthMonitor()
    norms = []
    for step in range(1, 200):
        opt.zero_grad()
        layer.backward((layer.forward(x) - y) / x.shape[0], input_grad=False)
        norms.append(grad_norm(layer))
        new = monitor.update(step, {"grad_norm": norms[-1]})
        if new:
            break
        opt.step()
    assert [w.code for w in new] == ["GRAD_EXPLODING"]  # the first warning, not NAN
    assert math.isfinite(norms[-1]) and norms[-1] > 10 * np.median(norms[:-1])
    assert step < 20  # caught within a few steps of the blow-up


def test_gradient_spike_must_persist_to_count_as_explosion():
    m = HealthMonitor()  # grad_factor 10, grad_patience 2, grad_max 1e3
    for step, g in enumerate([1.0, 1.2, 0.9, 1.1, 15.0, 1.0, 1.1]):  # one isolated spike
        assert m.update(step, {"d_grad_norm": g}) == []
    assert m.update(10, {"d_grad_norm": 15.0}) == []
    (w,) = m.update(11, {"d_grad_norm": 40.0})  # second check in a row above 10x the median
    assert w.code == "GRAD_EXPLODING" and "2 checks in a row" in w.message
    assert "d_grad_norm 40 is 36x its running median 1.1" in w.message
    # the absolute ceiling fires at once, whatever the history
    (w,) = HealthMonitor().update(1, {"g_grad_norm": 5e3})
    assert w.code == "GRAD_EXPLODING" and "> 1000" in w.message


def test_nan_is_reported_once_unless_repeat_every():
    m = HealthMonitor()
    assert m.update(10, {"d_loss": 1.0, "g_loss": 0.8}) == []
    (w,) = m.update(20, {"d_loss": float("nan"), "g_loss": 0.8})
    assert w.code == "NAN" and w.step == 20 and "d_loss=nan" in w.message
    assert m.update(30, {"d_loss": float("inf")}) == []  # already reported
    m2 = HealthMonitor(repeat_every=100)
    assert codes(m2.update(10, {"g_loss": float("nan")})) == {"NAN"}
    assert m2.update(50, {"g_loss": float("nan")}) == []
    assert codes(m2.update(110, {"g_loss": float("nan")})) == {"NAN"}


def test_d_wins_needs_patience_consecutive_checks():
    m = HealthMonitor(patience=3)
    seq = [0.01, 0.01, 0.5, 0.01, 0.01]  # broken streak: no warning
    for i, v in enumerate(seq):
        assert m.update(i, {"d_loss": v}) == []
    (w,) = m.update(10, {"d_loss": 0.01})  # third in a row
    assert w.code == "D_WINS" and "0.0100" in w.message


def test_mode_collapse_from_a_histogram():
    m = HealthMonitor()
    assert m.update(1, {"class_hist": [100] * 10}) == []
    assert m.update(2, {"class_hist": [60, 40] + [50] * 8}) == []
    (w,) = m.update(3, {"class_hist": [0, 900, 0, 0, 50, 0, 0, 50, 0, 0]})
    assert w.code == "MODE_COLLAPSE" and "3 of 10 classes" in w.message and "1: 90%" in w.message
    assert HealthMonitor().update(1, {"class_hist": [30] + [70] * 9}) == []
    assert codes(HealthMonitor().update(1, {"class_hist": [600] + [40] * 9})) == {"MODE_COLLAPSE"}


@needs_mnist
def test_mode_collapse_from_real_classifier_histograms():
    from minigan.classifier import load_classifier
    from minigan.data import load_mnist
    from minigan.metrics import classifier_metrics

    clf = load_classifier(data_dir=MNIST_DIR, progress=False)
    images, labels = load_mnist("test", root=MNIST_DIR)
    x = images.reshape(-1, 784).astype(np.float64) / 255.0
    varied = classifier_metrics(x[:2000], clf)["histogram"]
    few = classifier_metrics(x[(labels == 1) | (labels == 7)][:2000], clf)["histogram"]
    m = HealthMonitor()
    assert m.update(1, {"class_hist": varied}) == []
    assert codes(m.update(2, {"class_hist": few})) == {"MODE_COLLAPSE"}


@needs_mnist
def test_train_mnist_runs_the_health_checks_and_metrics(tmp_path, capsys):
    from minigan.train import train_mnist

    hist = train_mnist(
        epochs=2, batch_size=32, limit=640, device="cpu", progress=False, data_dir=MNIST_DIR,
        out_dir=tmp_path, log_every=5, metrics_every=1, metrics_samples=300, latent_dim=16,
        g_hidden=(32,), d_hidden=(32,),
    )  # fmt: skip
    out = capsys.readouterr().out
    rows = [e["metrics"] for e in hist.epochs]
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["n"] == 300 for r in rows)
    assert rows[0]["reference"]["digits_covered"] == 10
    assert out.count("metrics epoch") == 2
    # 20 steps of a 32-unit GAN draw blobs that the classifier calls one or two digits: the
    # mode-collapse check sees it, the warning is printed once and kept in History.health
    assert rows[0]["digits_covered"] < 6
    assert [w.code for w in hist.health] == ["MODE_COLLAPSE"]
    assert out.count("MODE_COLLAPSE") == 1
    assert (tmp_path / "metrics.png").is_file() and (tmp_path / "metrics.json").is_file()


def test_warning_text_has_code_step_and_fix():
    w = HealthWarning("D_WINS", 1200, "D loss 0.01 < 0.05.", CODES["D_WINS"])
    s = str(w)
    assert s.startswith("[health] step 1200 D_WINS: D loss 0.01")
    assert "Try: weaken D" in s and "\n" not in s
    for code, fix in CODES.items():
        assert code.isupper() and len(fix) > 20


def test_monitor_rejects_bad_input():
    m = HealthMonitor()
    m.update(100, {"d_loss": 1.0})
    with pytest.raises(ValueError, match="previous step 100"):
        m.update(50, {"d_loss": 1.0})
    with pytest.raises(TypeError, match="d_loss"):
        m.update(200, {"d_loss": "high"})
    with pytest.raises(ValueError, match="class_hist"):
        m.update(300, {"class_hist": [[1, 2], [3, 4]]})
    with pytest.raises(ValueError, match="patience"):
        HealthMonitor(patience=0)
    assert m.summary() == "[health] no problems detected"
