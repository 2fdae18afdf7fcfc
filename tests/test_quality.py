"""Tests of issue 12's evaluation half: the honest protocol, the classifier registry, CAS, and the
quality benchmark's row.

The MNIST metric classifier is the cached one of tests/test_metrics.py (trained once); the
other tests train tiny classifiers in a temporary cache.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import MNIST_DIR, needs_fashion, needs_mnist
from PIL import Image

from minigan.checkpoint import load_checkpoint, save_checkpoint
from minigan.classifier import (
    CLASSIFIERS,
    ClassifierConfig,
    build_classifier,
    get_spec,
    load_dataset,
    train_classifier,
)
from minigan.metrics import (
    check_holdout,
    classification_accuracy_score,
    evaluate_checkpoint,
    evaluation_protocol,
    format_table,
)

SHARED = Path(MNIST_DIR).parent if MNIST_DIR else None
TINY = ClassifierConfig(hidden=(16,), epochs=1, batch_size=128)


# ----------------------------------------------------------------------------------------------
# The protocol
# ----------------------------------------------------------------------------------------------
def test_check_holdout_refuses_an_overlap_with_the_training_images():
    assert check_holdout([50000, 60000], [0, 50000], 60000) == (50000, 60000)
    with pytest.raises(ValueError, match=r"holdout \[40000, 60000\) overlaps the training images"):
        check_holdout([40000, 60000], [0, 50000], 60000)
    with pytest.raises(ValueError, match="expected 0 <= start < stop <= 60000"):
        check_holdout([50000, 70000], [0, 50000], 60000)
    with pytest.raises(ValueError, match="two ints"):
        check_holdout("50000", [0, 50000], 60000)


def test_evaluation_protocol_reads_the_checkpoint_config():
    new = evaluation_protocol({"n_train": 50000, "holdout": [50000, 60000]}, 60000)
    assert new["honest"] and new["holdout_source"] == "checkpoint" and not new["warnings"]
    old = evaluation_protocol({"n_train": 60000}, 60000)  # trained on everything
    assert not old["honest"] and old["holdout"] == [50000, 60000]
    assert "WARNING" in old["warnings"][0] and "0..59,999" in old["warnings"][0]
    assert evaluation_protocol({"holdout": [50000, 60000]}, 60000)["train_range"] == [0, 50000]
    small = evaluation_protocol({"n_train": 640, "limit": 640}, 60000)
    assert small["honest"] and small["train_range"] == [0, 640]
    seen_test = evaluation_protocol({"n_train": 10000}, 10000, ("train", 8000, 10000))
    assert any("test images are training images" in w for w in seen_test["warnings"])


# ----------------------------------------------------------------------------------------------
# Training with a validation split (train(validation_size=...))
# ----------------------------------------------------------------------------------------------
TINY_GAN = {"latent_dim": 16, "g_hidden": (32,), "d_hidden": (32,)}


@needs_mnist
def test_validation_size_holds_out_the_last_images_and_evaluate_uses_them(tmp_path, monkeypatch):
    import sys

    train_module = sys.modules["minigan.train"]  # minigan.train is the function
    seen = {}

    class Recording(train_module.TrainingDiagnostics):
        def __init__(self, gan, **kw):
            seen.update(kw)
            super().__init__(gan, **kw)

    monkeypatch.setattr(train_module, "TrainingDiagnostics", Recording)
    hist = train_module.train(
        "default", "mnist", batch_size=100, device="cpu", data_dir=MNIST_DIR, progress=False,
        out_dir=tmp_path / "run", max_steps=2, validation_size=10000, **TINY_GAN,
    )  # fmt: skip
    cfg = hist.config
    assert cfg["holdout"] == [50000, 60000] and cfg["n_train"] == 50000
    assert cfg["validation_size"] == 10000 and cfg["steps_per_epoch"] == 500  # 50,000 / 100
    assert seen["holdout"] == [50000, 60000] and seen["dataset"] == "mnist"
    _, saved = load_checkpoint(hist.artifacts["checkpoint"])
    assert saved["holdout"] == [50000, 60000] and saved["n_train"] == 50000
    r = evaluate_checkpoint(hist.artifacts["checkpoint"], **SMALL)
    assert r["protocol"]["holdout_source"] == "checkpoint" and r["protocol"]["honest"]
    assert r["protocol"]["train_range"] == [0, 50000]


@needs_mnist
def test_validation_size_with_limit_and_resume(tmp_path):
    from minigan.train import train

    kw = {"device": "cpu", "data_dir": MNIST_DIR, "progress": False, "batch_size": 32}
    hist = train(limit=64, validation_size=5000, max_steps=1, out_dir=tmp_path / "r", **kw,
                 **TINY_GAN)  # fmt: skip
    assert hist.config["holdout"] == [55000, 60000] and hist.config["n_train"] == 64
    ck = hist.artifacts["checkpoint"]
    with pytest.raises(ValueError, match="trained with validation_size=5000 but"):
        train(resume=ck, validation_size=100, max_steps=2, **kw, **TINY_GAN)
    again = train(resume=ck, max_steps=2, **kw, **TINY_GAN)  # keeps the checkpoint's split
    assert again.config["holdout"] == [55000, 60000]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"validation_size": 10000, "limit": 55000}, r"holdout \[50000, 60000\) overlaps the "
         r"training images \[0, 55000\)"),
        ({"validation_size": 60000}, "validation_size: expected < 60000"),
        ({"validation_size": 0}, "validation_size: expected an integer >= 1, got 0"),
        ({"validation_size": 0.5}, "validation_size: expected an integer >= 1, got 0.5"),
    ],
)  # fmt: skip
def test_a_bad_validation_split_is_refused_before_any_work(tmp_path, kw, message):
    from minigan.train import train

    with pytest.raises(ValueError, match=message):
        train(out_dir=tmp_path / "never", device="cpu", progress=False, **kw)
    assert not (tmp_path / "never").exists()


# ----------------------------------------------------------------------------------------------
# The registry
# ----------------------------------------------------------------------------------------------
def test_registry_has_an_entry_per_dataset_with_its_shape():
    assert set(CLASSIFIERS) >= {"mnist", "fashion-mnist", "cifar10"}
    assert get_spec("mnist").architecture == "784-512-256-10 MLP"
    assert get_spec("cifar10").image_shape == (3, 32, 32)
    if not get_spec("cifar10").config.conv:  # the placeholder must say what it is
        assert "PLACEHOLDER" in get_spec("cifar10").description
    with pytest.raises(KeyError, match=r"no metric classifier for dataset 'svhn'; known: \["):
        get_spec("svhn")
    # MNIST's cache name did not change when the conv/flip fields were added
    assert ClassifierConfig().key() == "b09f0359e2d21eaa"
    assert ClassifierConfig(flip=True).key() != ClassifierConfig().key()


def test_cifar_mlp_placeholder_builds_for_rgb_images(rng):
    spec = get_spec("cifar10")
    cfg = ClassifierConfig(hidden=(8,))
    net = build_classifier(cfg, image_shape=spec.image_shape)
    assert net.forward(rng.standard_normal((2, 3072)).astype(np.float32)).shape == (2, 10)


@needs_fashion
def test_fashion_mnist_is_read_from_its_own_folder():
    images, labels = load_dataset("fashion-mnist", "test", SHARED)
    mnist, _ = load_dataset("mnist", "test", SHARED)
    assert images.shape == mnist.shape == (10000, 1, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10
    assert abs(images.mean() - 73.1466) < 1e-3  # the README's test-set mean, not MNIST's


@needs_fashion
def test_tiny_fashion_classifier_learns(tmp_path):
    clf = train_classifier(TINY, dataset="fashion-mnist", data_dir=SHARED)
    assert clf.spec.dataset == "fashion-mnist" and clf.test_accuracy > 0.7  # chance: 0.1
    back = type(clf).load(clf.save(tmp_path / "f.npz"))
    assert back.spec.dataset == "fashion-mnist" and back.test_accuracy == clf.test_accuracy


# ----------------------------------------------------------------------------------------------
# Classification Accuracy Score
# ----------------------------------------------------------------------------------------------
@needs_mnist
def test_cas_of_real_images_equals_the_real_accuracy(tmp_path):
    images, labels = load_dataset("mnist", "train", MNIST_DIR)
    x = images.reshape(60000, 784).astype(np.float32) / np.float32(255.0)

    def real_samples():  # "samples" that are the real training images, in batches
        for i in range(0, 60000, 5000):
            yield x[i : i + 5000], labels[i : i + 5000]

    r = classification_accuracy_score(
        real_samples, dataset="mnist", config=TINY, data_dir=MNIST_DIR, cache_dir=tmp_path
    )
    print(f"\nCAS of real MNIST, tiny MLP: {r['cas']:.4f} (real: {r['real_accuracy']:.4f})")
    assert r["n"] == 60000 and r["real_accuracy"] > 0.85
    assert r["cas"] == pytest.approx(r["real_accuracy"], abs=1e-9)  # same data, same seed

    perm = np.random.default_rng(0).permutation(60000)

    def wrong_labels():  # labels that say nothing about the images
        yield x[:6000], labels[perm[:6000]]

    bad = classification_accuracy_score(
        wrong_labels, 6000, config=TINY, data_dir=MNIST_DIR, real_accuracy=r["real_accuracy"]
    )
    assert bad["n"] == 6000 and bad["cas"] < 0.3


def test_cas_rejects_bad_samples():
    with pytest.raises(TypeError, match="callable"):
        classification_accuracy_score([(np.zeros((2, 784)), np.zeros(2))])

    def outside():
        yield np.full((200, 784), 2.0, np.float32), np.zeros(200, np.int64)

    with pytest.raises(ValueError, match=r"pixel values in \[0, 1\]"):
        classification_accuracy_score(outside, config=TINY)


# ----------------------------------------------------------------------------------------------
# evaluate on checkpoints: honest, old (saw the validation images), bad holdout, no classifier
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from minigan.train import train_mnist

    out = tmp_path_factory.mktemp("tiny_gan")
    hist = train_mnist(
        epochs=1, batch_size=32, limit=640, device="cpu", progress=False, data_dir=MNIST_DIR,
        out_dir=out, latent_dim=16, g_hidden=(64,), d_hidden=(64,),
    )  # fmt: skip
    return Path(hist.artifacts["checkpoint"])


def _with_config(src: Path, dst: Path, **changes) -> Path:
    state, config = load_checkpoint(src)
    return save_checkpoint(dst, state, {**config, **changes})


SMALL = {"device": "cpu", "data_dir": MNIST_DIR, "n_samples": 200, "n_validation": 100,
         "n_test": 200, "n_neighbours": 20, "progress": False}  # fmt: skip


@needs_mnist
def test_evaluate_says_when_the_checkpoint_saw_the_validation_images(tiny_checkpoint, tmp_path):
    old = _with_config(tiny_checkpoint, tmp_path / "old.npz", n_train=60000, limit=None)
    r = evaluate_checkpoint(old, **SMALL)
    assert not r["protocol"]["honest"]
    table = format_table(r)
    assert "WARNING: this checkpoint trained on training images 0..59,999" in table
    assert "SEEN IN TRAINING" in table
    rc = r["reference"]["classifier"]  # the real FCD row falls back to the test set
    assert rc["fcd_images"] == "test images 0..99 vs test images 100..199"

    honest = _with_config(tiny_checkpoint, tmp_path / "new.npz", n_train=50000,
                          holdout=[50000, 60000])  # fmt: skip
    r = evaluate_checkpoint(honest, **SMALL)
    assert r["protocol"]["honest"] and r["protocol"]["holdout_source"] == "checkpoint"
    assert "WARNING" not in format_table(r)
    assert r["reference"]["classifier"]["fcd_images"].startswith("held-out training images 50,000")


@needs_mnist
def test_evaluate_refuses_a_holdout_overlapping_training(tiny_checkpoint, tmp_path, capsys):
    from minigan.cli import main

    bad = _with_config(tiny_checkpoint, tmp_path / "bad.npz", n_train=55000,
                       holdout=[50000, 60000])  # fmt: skip
    with pytest.raises(ValueError, match=r"overlaps the training images \[0, 55000\)"):
        evaluate_checkpoint(bad, **SMALL)
    assert main(["evaluate", "--checkpoint", str(bad), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "overlaps the training images" in err


@needs_mnist
def test_evaluate_without_a_classifier_says_what_it_skipped(tiny_checkpoint, monkeypatch):
    monkeypatch.delitem(CLASSIFIERS, "mnist")
    r = evaluate_checkpoint(tiny_checkpoint, **SMALL)
    assert r["classifier"] is None and np.isfinite(r["parzen"]["mean"])
    table = format_table(r)
    assert "skipped: Inception score, FCD, class histogram, coverage" in table
    assert "no metric classifier for dataset 'mnist'" in table
    assert "Classifier metrics" not in table and "Nearest training image" in table


# ----------------------------------------------------------------------------------------------
# benchmarks/quality.py and the results page
# ----------------------------------------------------------------------------------------------
def _load_script(name: str):
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_mnist
def test_tiny_quality_run_writes_a_valid_row(tmp_path, capsys):
    import minigan.train  # noqa: F401 - the submodule is an attribute now, not a trainer

    quality = _load_script("quality")
    results = tmp_path / "quality.json"
    argv = ["--preset", "default", "--dataset", "mnist", "--limit", "256", "--max-steps", "20",
            "--n-samples", "200", "--n-test", "200", "--n-validation", "100", "--data-dir",
            MNIST_DIR, "--out", str(tmp_path / "run"), "--results", str(results), "--grid-dir",
            str(tmp_path / "grids")]  # fmt: skip
    assert quality.main(argv) == 0
    assert quality.main(argv + ["--checkpoint", str(tmp_path / "run" / "checkpoint.npz")]) == 0
    rows = json.loads(results.read_text())
    assert len(rows) == 2  # appended, not overwritten
    row = rows[0]
    assert row["preset"] == "default" and row["dataset"] == "mnist" and row["steps"] == 20
    assert row["honest"] and row["protocol"]["train_range"] == [0, 256]
    for key in ("parzen", "inception_score", "fcd", "kl_uniform", "nn_ratio", "train_minutes"):
        assert isinstance(row[key], float) and np.isfinite(row[key]), key
    assert 1 <= row["coverage"] <= 10 and row["cas"] is None
    assert row["real"]["inception_score"] > row["inception_score"]  # 20 steps of training
    assert row["real"]["fcd"] < row["fcd"] and row["real"]["coverage"] == 10
    assert Path(row["grid"]).is_file() and row["command"].startswith("python benchmarks/quality.py")
    assert rows[1]["train_minutes"] is None and rows[1]["parzen"] == pytest.approx(row["parzen"])

    page = _load_script("results_page").render(rows, tmp_path / "results.md")
    assert "| [default](#" in page and "Adversarial nets | 225 ± 2" in page
    assert row["command"] in page and "## Real data" in page


def test_time_to_quality_plot_needs_scored_epochs_and_the_page_shows_it(tmp_path):
    quality = _load_script("quality")
    epochs = [{"epoch": 1, "seconds": 60.0, "metrics": None}]
    assert quality.time_to_quality_plot(epochs, tmp_path / "a.png", "t") is None
    ref = {"inception_score": 9.4, "fcd": 5.0}
    epochs = [
        {"epoch": e, "seconds": 60.0 * e,
         "metrics": {"inception_score": 5.0 + e, "fcd": 50.0 / e, "reference": ref}}
        for e in (1, 2, 3)
    ]  # fmt: skip
    path = quality.time_to_quality_plot(epochs, tmp_path / "img" / "b.png", "t")
    assert path.is_file() and Image.open(path).size[0] > 100
    row = {"id": "x", "preset": "cgan", "dataset": "mnist", "command": "python q", "grid": None,
           "time_plot": str(path), "label_accuracy": 0.9612, "cas": 0.95, "cas_real": 0.988,
           "cas_n": 60000}  # fmt: skip
    results_page = _load_script("results_page")
    page = results_page.render([row], tmp_path / "results.md", trials=tmp_path / "none.json")
    assert "img/b.png" in page and "96.1%" in page and "CAS 0.9500 vs 0.9880" in page
    assert "What the default preset tried" not in page  # no trials file, no section
    trial = {"name": "t", "command": "c", "epochs": [
        {"epoch": 1, "inception_score": 4.5, "fcd": 170.25, "kl_uniform": 0.1}]}  # fmt: skip
    (tmp_path / "t.json").write_text(json.dumps([trial]))
    page = results_page.render([row], tmp_path / "results.md", trials=tmp_path / "t.json")
    assert "| 1 | 4.50 / 170.2 / 0.100 |" in page and "- `t`: c" in page


# ----------------------------------------------------------------------------------------------
# Time to quality: the per-epoch metrics for any dataset with a classifier
# ----------------------------------------------------------------------------------------------
def _tiny_gan():
    from minigan.gan import build_gan

    return build_gan("default", device="cpu", latent_dim=8, g_hidden=(16,), d_hidden=(16,))


@needs_fashion
def test_epoch_metrics_are_plotted_for_fashion_mnist(tmp_path, monkeypatch):
    from dataclasses import replace

    from minigan.health import TrainingDiagnostics

    monkeypatch.setenv("MINIGAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(
        CLASSIFIERS, "fashion-mnist", replace(CLASSIFIERS["fashion-mnist"], config=TINY)
    )
    lines = []
    diag = TrainingDiagnostics(
        _tiny_gan(), metrics_every=1, metrics_samples=50, data_dir=SHARED, out_dir=tmp_path,
        say=lines.append, dataset="fashion-mnist", holdout=[50000, 60000],
    )  # fmt: skip
    row = diag.on_epoch_end(1, 10)
    assert row is not None and sum(row["histogram"]) == 50
    assert row["reference"]["fcd"] < row["fcd"]  # 50 held-out Fashion-MNIST images vs G(z)
    assert (tmp_path / "metrics.png").is_file() and diag.metrics[0]["epoch"] == 1
    assert any(line.startswith("metrics epoch 1: Inception score") for line in lines)


@needs_fashion
def test_epoch_metrics_read_the_held_out_images_from_the_runs_data_subset(tmp_path, monkeypatch):
    # A CIFAR-10 run on data_batch_1 only (data_options={"batches": (1,)}) must not make the
    # per-epoch metrics load all five batches (offline: a failed download after training).
    from dataclasses import replace

    import minigan.classifier as classifier
    from minigan.health import TrainingDiagnostics

    monkeypatch.setenv("MINIGAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(
        CLASSIFIERS, "fashion-mnist", replace(CLASSIFIERS["fashion-mnist"], config=TINY)
    )
    real_load, seen = classifier.load_dataset, []

    def spy(dataset, split, data_dir=None, **options):  # records the options, loads as usual
        seen.append((split, options))
        return real_load(dataset, split, data_dir)

    monkeypatch.setattr(classifier, "load_dataset", spy)
    diag = TrainingDiagnostics(
        _tiny_gan(), metrics_every=1, metrics_samples=50, data_dir=SHARED, out_dir=tmp_path,
        say=lambda line: None, dataset="fashion-mnist", holdout=[50000, 60000],
        data_options={"batches": (1,)},
    )  # fmt: skip
    assert diag.on_epoch_end(1, 10) is not None
    assert ("train", {"batches": (1,)}) in seen


def test_epoch_metrics_without_a_classifier_are_skipped_with_a_reason(tmp_path, monkeypatch):
    from minigan.health import TrainingDiagnostics

    monkeypatch.delitem(CLASSIFIERS, "fashion-mnist")
    lines = []
    diag = TrainingDiagnostics(
        _tiny_gan(), metrics_every=1, out_dir=tmp_path, say=lines.append, dataset="fashion-mnist"
    )
    assert diag.on_epoch_end(1, 10) is None and diag.on_epoch_end(2, 20) is None
    assert len(lines) == 1 and "no metric classifier for dataset 'fashion-mnist'" in lines[0]
    assert not (tmp_path / "metrics.png").exists()


def test_metrics_every_is_refused_only_where_no_metric_classifier_is_registered(monkeypatch):
    from minigan.train import train

    monkeypatch.delitem(CLASSIFIERS, "fashion-mnist")
    with pytest.raises(ValueError, match=r"metrics_every: .* not 'fashion-mnist'"):
        train(dataset="fashion-mnist", metrics_every=1, max_steps=1, data_dir="/nonexistent")


def test_quality_set_overrides_are_json_with_the_presets_tuples():
    quality = _load_script("quality")
    args = quality.parse_args(
        ["--set", 'generator_args={"hidden_sizes": [8, 4]}', "--set", "lr=0.001"]
    )
    assert quality.overrides(args) == {"generator_args": {"hidden_sizes": (8, 4)}, "lr": 0.001}
    for bad in ("lr", "lr=fast"):
        with pytest.raises(SystemExit, match=f"--set expected FIELD=JSON, got '{bad}'"):
            quality.overrides(quality.parse_args(["--set", bad]))


@needs_mnist
def test_evaluation_never_uses_test_images_as_centres_validation_or_reference():
    # CIFAR-10 offline takes its test images from the training split (data_batch_1's last
    # 2,000): the real Parzen row's centres and the held-out images must skip them.
    from dataclasses import replace

    from minigan.backend import resolve_device
    from minigan.metrics import _EvalImages

    spec = replace(CLASSIFIERS["mnist"], test_range=("train", 5000, 8000))
    protocol = {"train_range": [0, 50000], "holdout": [50000, 60000], "honest": True}
    data = _EvalImages("mnist", spec, protocol, resolve_device("cpu"), MNIST_DIR, 1000, None)
    assert data.test.shape[0] == 3000 and data.centres.shape[0] == 10000
    assert data.centres_label == "training images 0..4,999, 8,000..12,999"
    assert data.reference_label == "held-out training images 50,000..59,999"
    inside = replace(spec, test_range=("train", 50000, 60000))  # the held-out images are tests
    with pytest.raises(ValueError, match="held-out images 50,000..59,999 are all test images"):
        _EvalImages("mnist", inside, protocol, resolve_device("cpu"), MNIST_DIR, 1000, None)
    seen = {**protocol, "train_range": [0, 60000], "honest": False}  # warned, not refused
    assert _EvalImages("mnist", inside, seen, resolve_device("cpu"), MNIST_DIR, 1000, None)
    half = replace(spec, test_range=("train", 50000, 55000))
    data = _EvalImages("mnist", half, protocol, resolve_device("cpu"), MNIST_DIR, 1000, None)
    assert data.reference_label == "held-out training images 55,000..59,999"
    assert data.valid.shape[0] == 1000
