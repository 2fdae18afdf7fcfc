"""DCGAN in the training frame: the builders' registry call, the presets, a short real run
with its artifacts, exact resume with BatchNorm, sampling that leaves BatchNorm alone, and the
dataset options (CIFAR-10's one offline batch)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import needs_mnist
from PIL import Image
from test_train import assert_same_state

from minigan import data
from minigan.backend import to_numpy
from minigan.checkpoint import load_checkpoint
from minigan.cli import _data_option
from minigan.gan import build_gan, mixes_batch_rows
from minigan.layers import BatchNorm2d, Conv2d, ConvTranspose2d, Linear
from minigan.models import MODELS, get_model
from minigan.presets import get_preset
from minigan.train import train

# A DCGAN small enough for milliseconds per step: 2 / 4 channels, z of 8.
TINY_DCGAN = dict(
    generator_args={"base_channels": 2},
    discriminator_args={"base_channels": 2, "norm": "batch"},
    latent_dim=8,
    batch_size=16,
    limit=128,  # 8 steps per epoch
    device="cpu",
    progress=False,
    log_every=4,
)


def _batch_norms(module):
    return [m for m in module.modules() if isinstance(m, BatchNorm2d)]


# ---------------------------------------------------------------------------------------------
# Builders and presets
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset, shape", [("dcgan", (1, 28, 28)), ("dcgan-cifar10", (3, 32, 32))])
def test_dcgan_presets_build_through_the_registry(preset, shape):
    assert get_model("dcgan_generator").layout == "image"
    assert get_model("dcgan_discriminator").build is MODELS["dcgan_discriminator"].build
    gan = build_gan(preset, image_shape=shape, seed=3)
    assert gan.data_shape == shape
    x = gan.sample(5)
    assert tuple(x.shape) == (5, *shape) and float(np.abs(to_numpy(x)).max()) <= 1
    assert tuple(gan.discriminator.forward(x).shape) == (5, 1)
    # D has BatchNorm: real and fake go through it in separate passes.
    assert mixes_batch_rows(gan.discriminator) and not gan.d_joint_batch
    # The DCGAN init (Radford et al. 2016): conv weights N(0, 0.02), BatchNorm weight N(1, 0.02).
    convs = [m for m in gan.generator.modules() if isinstance(m, (Conv2d, ConvTranspose2d))]
    w = np.concatenate([to_numpy(m.params["weight"]).ravel() for m in convs])
    assert abs(w.std() - 0.02) < 0.002 and abs(w.mean()) < 0.002
    gamma = np.concatenate([to_numpy(m.params["weight"]) for m in _batch_norms(gan.generator)])
    assert abs(gamma.mean() - 1) < 0.01 and 0.01 < gamma.std() < 0.03
    p = get_preset(preset)
    assert p.optimizer == "adam" and p.lr == 2e-4 and p.betas == (0.5, 0.999)
    assert p.batch_size in (64, 128) and "Radford" in p.notes


def test_dcgan_overrides_reach_the_builders():
    gan = build_gan("dcgan", generator_args={"base_channels": 4}, latent_dim=7)
    linear = next(m for m in gan.generator.modules() if isinstance(m, Linear))
    assert tuple(linear.params["weight"].shape) == (8 * 7 * 7, 7)  # c0 = 4 * 2 for 2 stages
    with pytest.raises(TypeError, match="hidden_sizes"):
        build_gan("dcgan", g_hidden=(32,))  # an MLP shortcut means nothing to a DCGAN


def test_sample_leaves_batch_norm_statistics_and_mode_alone():
    gan = build_gan("dcgan", seed=0, generator_args={"base_channels": 2})
    real = np.random.default_rng(0).uniform(-1, 1, (16, 1, 28, 28)).astype(np.float32)
    gan.train_step(real)  # running statistics move away from their initial values
    before = {k: to_numpy(v).copy() for k, v in gan.generator.state_dict().items()}
    a = to_numpy(gan.sample(8, z=np.ones((8, gan.latent_dim), np.float32)))
    b = to_numpy(gan.sample(8, z=np.ones((8, gan.latent_dim), np.float32)))
    after = gan.generator.state_dict()
    assert all(np.array_equal(before[k], to_numpy(after[k])) for k in before)
    assert np.array_equal(a, b)  # eval mode: running statistics, so rows do not interact
    assert all(m.training for m in gan.generator.modules())  # G's training mode came back


# ---------------------------------------------------------------------------------------------
# Real data: a short run with every artifact, and exact resume
# ---------------------------------------------------------------------------------------------
@needs_mnist
def test_short_real_dcgan_run_writes_everything(tmp_path, capsys):
    from minigan.cli import main

    out = tmp_path / "run"
    # The dcgan preset at a quarter of its width (G 8x7x7 -> 4x14x14) on 320 real images,
    # 32 per batch: 10 steps per epoch.
    small = {"generator_args": {"base_channels": 4},
             "discriminator_args": {"base_channels": 4, "norm": "batch"}}  # fmt: skip
    h = train("dcgan", "mnist", epochs=3, batch_size=32, limit=320, max_steps=30, out_dir=out,
              device="cpu", progress=False, log_every=10, **small)  # fmt: skip
    assert [r["step"] for r in h.steps] == list(range(1, 31))
    assert [e["steps"] for e in h.epochs] == [10, 10, 10]
    losses = np.array([[r["d_loss"], r["g_loss"]] for r in h.steps])
    assert np.isfinite(losses).all() and losses.min() > 0
    grids = sorted((out / "samples").glob("epoch_*.png"))
    assert [g.name for g in grids] == ["epoch_001.png", "epoch_002.png", "epoch_003.png"]
    assert Image.open(grids[-1]).size == (484, 484)  # 8 x 8 of 28 px, padding 2, scale 2
    with Image.open(out / "progress.gif") as gif:
        assert gif.n_frames == 3
    log = json.loads((out / "log.json").read_text())
    assert log["config"]["preset"] == "dcgan" and len(log["steps"]) == 30
    assert log["config"]["image_shape"] == [1, 28, 28]
    assert (out / "log.csv").read_text().count("\n") == 31  # header + 30 steps
    state, config = load_checkpoint(out / "checkpoint.npz")
    assert state["train.step"] == 30 and config["preset_fields"]["generator"] == "dcgan_generator"
    assert any(k.endswith("running_var") for k in state)  # BatchNorm buffers are saved
    grid = tmp_path / "grid.png"
    code = main(["sample", "--checkpoint", str(out / "checkpoint.npz"), "--n", "9",
                 "--out", str(grid)])  # fmt: skip
    assert code == 0 and Image.open(grid).size == (184, 184)  # 3 x 3 grid
    assert "wrote 9 samples" in capsys.readouterr().out


@needs_mnist
@pytest.mark.parametrize("n, half", [(20, 10), (16, 8)], ids=["mid-epoch", "at-epoch-end"])
def test_dcgan_resume_is_bit_identical(tmp_path, n, half):
    """N straight steps == N/2 + resume; the grid at each epoch end must not move BatchNorm."""
    kw = {**TINY_DCGAN, "epochs": 3}
    straight = train("dcgan", "mnist", out_dir=tmp_path / "a", max_steps=n, **kw)
    train("dcgan", "mnist", out_dir=tmp_path / "b", max_steps=half, **kw)
    resumed = train("dcgan", resume=tmp_path / "b" / "checkpoint.npz", max_steps=n, **kw)
    assert len(straight.epochs) >= 2  # a grid was drawn mid-run
    assert_same_state(straight.gan, resumed.gan)  # includes running_mean / running_var
    assert resumed.steps == straight.steps
    buffers = [k for k in straight.gan.state_dict() if "running" in k]
    assert buffers, "the tiny DCGAN has BatchNorm buffers"


# ---------------------------------------------------------------------------------------------
# Dataset options: CIFAR-10's one offline batch
# ---------------------------------------------------------------------------------------------
def _cifar_root():
    root = os.environ.get("MINIGAN_DATA_DIR")
    if not root:
        return None
    gz = data.dataset_dir("cifar10", root) / "data_batch_1.bin.gz"
    return root if gz.is_file() else None


@pytest.mark.skipif(_cifar_root() is None, reason="CIFAR-10 data_batch_1.bin.gz not found")
def test_cifar10_dcgan_on_one_batch(tmp_path, capsys, monkeypatch):
    from dataclasses import replace

    from minigan.classifier import CLASSIFIERS, ClassifierConfig

    monkeypatch.setenv("MINIGAN_CACHE_DIR", str(tmp_path / "cache"))  # a tiny metric classifier
    tiny = ClassifierConfig(hidden=(16,), epochs=1, batch_size=256, mean=0.4734, std=0.2516)
    monkeypatch.setitem(CLASSIFIERS, "cifar10", replace(CLASSIFIERS["cifar10"], config=tiny))
    kw = {**TINY_DCGAN, "limit": None, "batch_size": 500}
    h = train("dcgan-cifar10", "cifar10", epochs=1, max_steps=2, data_dir=_cifar_root(),
              data_options={"batches": (1,)}, out_dir=tmp_path / "c", **kw)  # fmt: skip
    assert "loading training batches [1] only: 10000 of 50000" in capsys.readouterr().err
    assert h.config["n_train"] == 10000 and h.config["steps_per_epoch"] == 20
    assert h.config["data_options"] == {"batches": [1]}
    assert Image.open(h.artifacts["grid"]).mode == "RGB"
    from minigan.cli import main  # evaluate reads the same subset (only batch 1 is offline)

    ck = str(tmp_path / "c" / "checkpoint.npz")
    argv = ["evaluate", "--checkpoint", ck, "--data-dir", _cifar_root(), "--no-reference"]
    assert main([*argv, "--n-samples", "20", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "cifar10" in out and "Inception" in out  # the classifier metrics, on batch 1 alone
    with pytest.raises(ValueError, match="data_options"):
        train("dcgan-cifar10", "cifar10", resume=tmp_path / "c" / "checkpoint.npz", max_steps=3,
              data_options={"batches": (2,)}, **kw)  # fmt: skip


def test_bad_data_options(tmp_path):
    with pytest.raises(ValueError, match=r"data_options: expected keys among \['batches'\]"):
        train("dcgan", out_dir=tmp_path / "o", data_options={"batch": 1}, progress=False)
    assert not (tmp_path / "o").exists()


def test_cli_data_option_parsing():
    import argparse

    assert _data_option("batches=1") == ("batches", 1)
    assert _data_option("batches=1,2") == ("batches", (1, 2))
    assert _data_option("name=x") == ("name", "x")
    with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
        _data_option("batches")


def test_generate_samples_flattens_conv_images():
    """``minigan evaluate`` scores flat (N, D) images; a conv G's (N, C, H, W) are flattened."""
    from minigan.metrics import generate_samples

    gan = build_gan("dcgan", generator_args={"base_channels": 2}, seed=0)
    x = to_numpy(generate_samples(gan, 5, seed=1, batch_size=2))
    z = np.random.default_rng(1).standard_normal((5, 100), dtype=np.float32)  # the same stream
    images = to_numpy(gan.sample(5, z=z))  # (5, 1, 28, 28) in [-1, 1]
    assert x.shape == (5, 784) and 0 <= x.min() and x.max() <= 1
    np.testing.assert_allclose(x, np.clip((images.reshape(5, -1) + 1) / 2, 0, 1), atol=1e-6)
