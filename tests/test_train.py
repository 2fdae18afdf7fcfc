"""train_mnist(): artifacts of a short real run, exact resume, determinism, NaN stop, Ctrl-C,
the array-api-strict device, bad input; and the pictures of minigan.viz."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from conftest import needs_mnist
from PIL import Image

from minigan.backend import to_numpy
from minigan.checkpoint import load_checkpoint, save_checkpoint
from minigan.gan import GAN
from minigan.train import NonFiniteLossError, train_mnist
from minigan.viz import image_grid, make_gif, plot_losses, save_image_grid

# A tiny model on 320 images, 32 per batch: 10 steps per epoch, milliseconds per step.
TINY = dict(
    batch_size=32,
    limit=320,
    device="cpu",
    progress=False,
    log_every=5,
    latent_dim=16,
    g_hidden=(32,),
    d_hidden=(32,),
)


def assert_same_state(a: GAN, b: GAN) -> None:
    """Bit-identical weights, optimizer moments and step counts, and noise RNG state."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if hasattr(sa[k], "shape"):
            assert np.array_equal(to_numpy(sa[k]), to_numpy(sb[k])), k
        else:
            assert sa[k] == sb[k], k


# ---------------------------------------------------------------------------------------------
# The short real run (acceptance: grid, curve, GIF, log, checkpoint, finite losses, sample)
# ---------------------------------------------------------------------------------------------
@needs_mnist
def test_short_real_run_writes_everything(tmp_path, capsys):
    from minigan.cli import main

    out = tmp_path / "run"
    # The default preset (the full-size MLP GAN) on 2560 real images: 40 steps per epoch.
    h = train_mnist(
        epochs=5,
        batch_size=64,
        device="cpu",
        out_dir=out,
        limit=2560,
        progress=False,
        log_every=20,
        max_steps=200,
    )
    assert len(h.steps) == 200 and [r["step"] for r in h.steps] == list(range(1, 201))
    assert len(h.epochs) == 5 and [e["steps"] for e in h.epochs] == [40] * 5
    values = np.array([[r[k] for k in ("d_loss", "g_loss", "d_real", "d_fake")] for r in h.steps])
    assert np.isfinite(values).all()
    assert ((values[:, 2:] > 0) & (values[:, 2:] < 1)).all()  # D outputs are probabilities
    assert values[:, :2].min() > 0  # BCE losses are positive
    print(
        "short run: last epoch D loss {d_loss:.3f}, G loss {g_loss:.3f}, D(x) {d_real:.3f}, "
        "D(G(z)) {d_fake:.3f}, {seconds:.1f} s".format(**h.epochs[-1])
    )

    # Pictures: one 8x8 grid per epoch (484 px with padding 2, scale 2), curve, 5-frame GIF.
    grids = sorted((out / "samples").glob("epoch_*.png"))
    assert [g.name for g in grids] == [f"epoch_{i:03d}.png" for i in range(1, 6)]
    assert Image.open(grids[-1]).size == (484, 484)
    assert h.artifacts["losses"] == out / "losses.png" and Image.open(out / "losses.png").size
    with Image.open(out / "progress.gif") as gif:
        assert gif.n_frames == 5 and gif.info["loop"] == 0

    # Logs: config and every step, JSON and CSV.
    log = json.loads((out / "log.json").read_text())
    assert log["config"]["preset"] == "default" and log["config"]["batch_size"] == 64
    assert len(log["steps"]) == 200 and len(log["epochs"]) == 5
    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 200 and float(rows[-1]["g_loss"]) == h.steps[-1]["g_loss"]

    # The checkpoint rebuilds the same generator, and `minigan sample` draws from it.
    state, config = load_checkpoint(out / "checkpoint.npz")
    assert state["train.step"] == 200 and state["train.epoch"] == 5 and config["limit"] == 2560
    grid = tmp_path / "grid.png"
    code = main(
        ["sample", "--checkpoint", str(out / "checkpoint.npz"), "--n", "16", "--out", str(grid)]
    )
    assert code == 0 and Image.open(grid).size == (244, 244)  # 4 x 4 grid
    assert "wrote 16 samples" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Exact resume and determinism
# ---------------------------------------------------------------------------------------------
@needs_mnist
@pytest.mark.parametrize(
    "n, half, extra",
    [
        pytest.param(25, 12, {}, id="tiny-mid-epoch"),
        pytest.param(20, 10, {}, id="tiny-at-epoch-end"),
        pytest.param(
            10,
            5,
            {
                "batch_size": 64,
                "limit": 512,
                "latent_dim": 100,
                "g_hidden": (256, 512, 1024),
                "d_hidden": (1024, 512, 256),
            },
            id="default-size",
        ),
    ],
)
def test_resume_is_bit_identical(tmp_path, n, half, extra):
    kw = {**TINY, **extra, "epochs": 3}
    straight = train_mnist(out_dir=tmp_path / "a", max_steps=n, **kw)
    first = train_mnist(out_dir=tmp_path / "b", max_steps=half, **kw)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.npz")[0]["train.step"] == half
    resumed = train_mnist(resume=tmp_path / "b" / "checkpoint.npz", max_steps=n, **kw)
    assert resumed.out_dir == tmp_path / "b"  # continues in the checkpoint's directory
    assert_same_state(straight.gan, resumed.gan)
    assert resumed.steps == straight.steps  # every logged loss, bit for bit
    assert first.steps == straight.steps[:half]
    strip = [{k: v for k, v in e.items() if k not in ("seconds", "grid")} for e in straight.epochs]
    assert [
        {k: v for k, v in e.items() if k not in ("seconds", "grid")} for e in resumed.epochs
    ] == strip


@needs_mnist
def test_same_seed_same_weights_other_seed_differs(tmp_path):
    a = train_mnist(out_dir=tmp_path / "a", max_steps=8, epochs=1, **TINY)
    b = train_mnist(out_dir=tmp_path / "b", max_steps=8, epochs=1, **TINY)
    c = train_mnist(out_dir=tmp_path / "c", max_steps=8, epochs=1, seed=1, **TINY)
    assert_same_state(a.gan, b.gan)
    wa = to_numpy(a.gan.generator.state_dict()["0.weight"])
    wc = to_numpy(c.gan.generator.state_dict()["0.weight"])
    assert not np.array_equal(wa, wc)


@needs_mnist
def test_resume_refuses_contradicting_settings(tmp_path):
    train_mnist(out_dir=tmp_path / "a", max_steps=3, epochs=1, **TINY)
    ck = tmp_path / "a" / "checkpoint.npz"
    with pytest.raises(ValueError, match="trained with batch_size=32 but batch_size=16"):
        train_mnist(resume=ck, **{**TINY, "batch_size": 16})
    with pytest.raises(ValueError, match=r"trained with lr=.*but lr=0\.1 was given"):
        train_mnist(resume=ck, lr=0.1, **TINY)
    # Arguments left at their defaults take the checkpoint's values.
    small = {k: v for k, v in TINY.items() if k not in ("batch_size", "limit")}
    h = train_mnist(resume=ck, max_steps=5, epochs=1, **small)
    assert h.config["batch_size"] == 32 and h.config["limit"] == 320 and len(h.steps) == 5


# ---------------------------------------------------------------------------------------------
# NaN, Ctrl-C
# ---------------------------------------------------------------------------------------------
def _patch_step(monkeypatch, at: int, action):
    """Wrap GAN.train_step so that ``action(out)`` runs on the result of call number ``at``."""
    real = GAN.train_step
    calls = {"n": 0}

    def step(self, x):
        out = real(self, x)
        calls["n"] += 1
        if calls["n"] == at:
            action(self, out)
        return out

    monkeypatch.setattr(GAN, "train_step", step)


@needs_mnist
def test_nan_stops_with_the_step_and_keeps_the_last_good_state(tmp_path, monkeypatch):
    def poison(gan, out):
        out["g_loss"] = gan.backend.asarray(np.float32("nan"))

    _patch_step(monkeypatch, 13, poison)
    with pytest.raises(NonFiniteLossError) as e:
        train_mnist(out_dir=tmp_path, epochs=3, **TINY)  # log_every=5: checked at step 15
    msg = str(e.value)
    assert "step 13" in msg and "g_loss=nan" in msg and "learning rate" in msg
    assert e.value.step == 13 and e.value.checkpoint == tmp_path / "checkpoint.npz"
    state, _ = load_checkpoint(tmp_path / "checkpoint.npz")
    assert state["train.step"] == 10  # the last check with finite losses
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["steps"][12]["g_loss"] is None  # the NaN is in the log, as JSON null
    # The saved state is a good one to continue from (e.g. to inspect it).
    monkeypatch.undo()
    h = train_mnist(resume=tmp_path / "checkpoint.npz", epochs=3, max_steps=12, **TINY)
    assert len(h.steps) == 12 and np.isfinite(h.steps[-1]["g_loss"])


@needs_mnist
def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(tmp_path, monkeypatch):
    straight = train_mnist(out_dir=tmp_path / "a", max_steps=25, epochs=3, **TINY)
    _patch_step(monkeypatch, 7, lambda gan, out: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        train_mnist(out_dir=tmp_path / "b", max_steps=25, epochs=3, **TINY)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    state, _ = load_checkpoint(tmp_path / "b" / "checkpoint.npz")
    assert state["train.step"] == 7 and state["data.position"] == 7
    monkeypatch.undo()
    resumed = train_mnist(resume=tmp_path / "b" / "checkpoint.npz", max_steps=25, epochs=3, **TINY)
    assert_same_state(straight.gan, resumed.gan)


# ---------------------------------------------------------------------------------------------
# The whole loop on array-api-strict's device1 (the CPU stand-in for a GPU)
# ---------------------------------------------------------------------------------------------
@needs_mnist
def test_training_on_array_api_strict_device(tmp_path):
    import array_api_strict as xs

    dev = xs.Device("device1")
    kw = {**TINY, "limit": 96, "epochs": 2, "max_steps": 4}
    h = train_mnist(out_dir=tmp_path / "strict", **{**kw, "device": dev})
    w = h.gan.generator.state_dict()["0.weight"]
    assert type(w).__module__.startswith("array_api_strict") and w.device == dev
    ref = train_mnist(out_dir=tmp_path / "np", **kw)
    for a, b in zip(h.steps, ref.steps, strict=True):
        for k in ("d_loss", "g_loss", "d_real", "d_fake"):
            assert np.isfinite(a[k])
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6)
    assert Path(h.artifacts["grid"]).is_file() and Path(h.artifacts["checkpoint"]).is_file()


def test_batches_and_step_on_device1_never_touch_the_host():
    """Without MNIST: synthetic data, the batch iterator and GAN steps all on device1."""
    import array_api_strict as xs

    from minigan.data import BatchIterator
    from minigan.gan import build_gan

    dev = xs.Device("device1")
    gan = build_gan("default", device=dev, seed=0, latent_dim=8, g_hidden=(16,), d_hidden=(16,))
    x = np.random.default_rng(0).uniform(-1, 1, (40, 784)).astype(np.float32)
    loader = BatchIterator(x, 8, device=dev, dtype=gan.dtype, seed=0)
    for real in loader:
        out = gan.train_step(real)
    assert all(v.device == dev for v in out.values())
    assert np.isfinite([float(to_numpy(v)) for v in out.values()]).all()


# ---------------------------------------------------------------------------------------------
# Bad input: clear errors, nothing written
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size: expected an integer >= 1, got 0"),
        ({"batch_size": -3}, "batch_size: expected an integer >= 1, got -3"),
        ({"batch_size": 65, "limit": 64}, r"batch_size: expected <= 64 .*limit=64.*got 65"),
        ({"batch_size": 60001}, r"batch_size: expected <= 60000"),
        (
            {"preset": "nope"},
            r"preset: expected one of \[.*'default'.*'seed-keras-mlp'.*\], got 'nope'",
        ),
        ({"epochs": 0}, "epochs: expected an integer >= 1"),
        ({"lrr": 0.1}, r"unknown setting\(s\) \['lrr'\]"),
        ({"device": "tpu"}, "device: expected 'cpu', 'gpu' or 'auto'"),
        ({"threads": 0}, "threads: expected an integer >= 1, got 0"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        train_mnist(out_dir=out, progress=False, **kwargs)
    assert not out.exists()  # nothing was created


def test_gpu_without_cupy(tmp_path):
    from minigan.backend import cupy_available

    if cupy_available():
        pytest.skip("CuPy and a GPU are available here: the error case cannot happen")
    with pytest.raises(RuntimeError, match="CuPy"):
        train_mnist(device="gpu", out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_out_dir_not_writable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("I am a file, not a directory")
    with pytest.raises(ValueError, match="not writable"):
        train_mnist(out_dir=blocker / "run", progress=False)
    if hasattr(os, "geteuid") and os.geteuid() != 0:  # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="not writable"):
            train_mnist(out_dir=ro, progress=False)


@pytest.mark.parametrize("kind", ["truncated", "foreign", "weights-only", "other-kind"])
def test_resume_from_a_bad_checkpoint(tmp_path, kind):
    path = tmp_path / "checkpoint.npz"
    if kind == "weights-only":  # a minigan checkpoint without the training state
        rng = json.dumps(np.random.default_rng(0).bit_generator.state)  # a valid RNG state
        save_checkpoint(path, {"gan.rng": rng}, {"kind": "minigan.train_mnist"})
        message = r"lacks the training state \['data.position', 'data.rng'"
    elif kind == "other-kind":
        save_checkpoint(path, {"w": np.zeros(3)}, {"kind": "something-else"})
        message = "was not written by train_mnist"
    elif kind == "truncated":
        save_checkpoint(path, {"w": np.zeros(1000)}, {"kind": "minigan.train_mnist"})
        path.write_bytes(path.read_bytes()[:500])
        message = "truncated or corrupt"
    else:
        np.savez(path, weights=np.zeros(3))
        message = "not a minigan checkpoint"
    before = path.read_bytes()
    with pytest.raises(ValueError, match=message):
        train_mnist(resume=path, out_dir=tmp_path / "out")
    assert path.read_bytes() == before and not (tmp_path / "out").exists()


@needs_mnist
def test_resume_with_shapes_that_do_not_match(tmp_path):
    train_mnist(out_dir=tmp_path / "a", max_steps=2, epochs=1, **TINY)
    state, config = load_checkpoint(tmp_path / "a" / "checkpoint.npz")
    config["overrides"]["g_hidden"] = [48]  # the config now describes another generator
    save_checkpoint(tmp_path / "lying.npz", state, config)
    small = {k: v for k, v in TINY.items() if k != "g_hidden"}
    with pytest.raises(
        ValueError,
        match=r"checkpoint .*lying\.npz does not match the model: "
        r"0\.weight: expected shape \(48, 16\), got \(32, 16\)",
    ):
        train_mnist(resume=tmp_path / "lying.npz", out_dir=tmp_path / "b", **small)


# ---------------------------------------------------------------------------------------------
# viz
# ---------------------------------------------------------------------------------------------
def test_image_grid_layout():
    x = -np.ones((5, 4), dtype=np.float32)  # five black 2x2 images...
    x[1] = 1.0  # ...the second one white
    g = image_grid(x, nrow=3, padding=1)
    assert g.shape == (1 + 2 * 3, 1 + 3 * 3) and g.dtype == np.uint8
    assert (g[1:3, 4:6] == 255).all() and g[1:3, 1:3].max() == 0
    assert g.sum() == 4 * 255  # only the white image is non-zero
    with pytest.raises(ValueError, match="not a square image"):
        image_grid(np.zeros((2, 5)))


def test_pictures_are_written(tmp_path):
    rng = np.random.default_rng(0)
    frames = [
        save_image_grid(rng.uniform(-1, 1, (9, 784)), tmp_path / f"f{i}.png", nrow=3, scale=1)
        for i in range(3)
    ]
    assert Image.open(frames[0]).size == (3 * 30 + 2,) * 2
    gif = make_gif(frames, tmp_path / "a.gif")
    with Image.open(gif) as im:
        assert im.n_frames == 3
    steps = [
        {"step": i + 1, "d_loss": 1.3, "g_loss": 0.8, "d_real": 0.6, "d_fake": 0.4}
        for i in range(120)
    ]
    assert Image.open(plot_losses(steps, tmp_path / "l.png")).size == (800, 600)
    with pytest.raises(ValueError, match="no frames"):
        make_gif([], tmp_path / "b.gif")


@needs_mnist
def test_threads_limits_blas_inside_the_loop_only(tmp_path, monkeypatch):
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    seen, real_step = [], GAN.train_step

    def step(self, real):
        seen.append(blas_threads())
        return real_step(self, real)

    monkeypatch.setattr(GAN, "train_step", step)
    with threadpool_limits(limits=2, user_api="blas"):  # as on a 2-core machine
        outside = blas_threads()
        train_mnist(out_dir=tmp_path / "a", max_steps=3, epochs=1, threads=1, **TINY)
        assert blas_threads() == outside  # restored after the loop
    assert outside and all(n == 2 for n in outside)
    assert len(seen) == 3 and all(n == [1] * len(outside) for n in seen)


@needs_mnist
def test_grad_norms_come_with_the_interval_transfer(tmp_path, monkeypatch):
    """The loop copies the gradient norms with the losses (one transfer per log interval);
    the health checks get the same numbers grad_norm reads on its own."""
    from minigan.health import TrainingDiagnostics, grad_norm

    got, real_on_log = [], TrainingDiagnostics.on_log

    def on_log(self, step, rows, host_stats=None):
        want = {"g_grad_norm": grad_norm(self.gan.generator)}
        want["d_grad_norm"] = grad_norm(self.gan.discriminator)
        got.append((host_stats, want))
        return real_on_log(self, step, rows, host_stats)

    monkeypatch.setattr(TrainingDiagnostics, "on_log", on_log)
    train_mnist(out_dir=tmp_path / "a", max_steps=10, epochs=1, **TINY)
    assert len(got) == 2  # log_every=5
    for host_stats, want in got:
        assert host_stats.keys() == want.keys()
        for k, v in want.items():
            assert isinstance(host_stats[k], float) and v > 0
            assert host_stats[k] == pytest.approx(v, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# The MLP builders' BatchNorm and dropout options (issue 12's default preset)
# ---------------------------------------------------------------------------------------------
def test_mlp_builders_put_batchnorm_and_dropout_in_each_hidden_layer():
    from minigan.layers import BatchNorm1d, Dropout, Linear
    from minigan.models import mlp_discriminator, mlp_generator

    g = mlp_generator(8, (16, 32), 12, norm="batch", rng=0)
    kinds = [type(m).__name__ for m in g.modules()][1:]  # [0] is the Sequential
    assert kinds == ["Linear", "BatchNorm1d", "LeakyReLU"] * 2 + ["Linear", "Tanh"]
    assert [m.num_features for m in g.modules() if isinstance(m, BatchNorm1d)] == [16, 32]
    d = mlp_discriminator(12, (32, 16), dropout=0.25, rng=0)
    kinds = [type(m).__name__ for m in d.modules()][1:]
    assert kinds == ["Linear", "LeakyReLU", "Dropout"] * 2 + ["Linear"]
    assert all(m.p == 0.25 for m in d.modules() if isinstance(m, Dropout))
    plain = mlp_discriminator(12, (32, 16), rng=0)
    assert not any(isinstance(m, (Dropout, BatchNorm1d)) for m in plain.modules())
    w_plain = [m.weight.data for m in plain.modules() if isinstance(m, Linear)]
    w_drop = [m.weight.data for m in d.modules() if isinstance(m, Linear)]
    assert all(np.array_equal(a, b) for a, b in zip(w_plain, w_drop, strict=True))


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"norm": "layer"}, "norm: expected one of [None, 'batch'], got 'layer'"),
        ({"dropout": 1.0}, "dropout: expected a probability in [0, 1), got 1.0"),
        ({"dropout": "0.3"}, "dropout: expected a probability in [0, 1), got '0.3'"),
    ],
)
def test_mlp_builders_refuse_bad_options(kw, message):
    from minigan.models import mlp_discriminator

    with pytest.raises(ValueError) as e:
        mlp_discriminator(12, (8,), **kw)
    assert str(e.value) == message


@needs_mnist
def test_resume_with_dropout_in_d_and_batchnorm_in_g_is_bit_identical(tmp_path):
    kw = {
        **TINY,
        "epochs": 3,
        "generator_args": {"hidden_sizes": (32,), "norm": "batch"},
        "discriminator_args": {"hidden_sizes": (32,), "dropout": 0.3},
    }
    kw = {k: v for k, v in kw.items() if k not in ("g_hidden", "d_hidden")}
    straight = train_mnist(out_dir=tmp_path / "a", max_steps=17, **kw)
    train_mnist(out_dir=tmp_path / "b", max_steps=8, **kw)
    resumed = train_mnist(resume=tmp_path / "b" / "checkpoint.npz", max_steps=17, **kw)
    assert "layer_rngs" in straight.gan.state_dict()  # the dropout masks' generator
    assert_same_state(straight.gan, resumed.gan)
    assert resumed.steps == straight.steps


@needs_mnist
def test_a_checkpoint_outlives_a_change_of_its_presets_registry_entry(tmp_path, monkeypatch):
    from minigan.checkpoint import gan_from_checkpoint
    from minigan.presets import PRESETS, Preset

    hist = train_mnist(out_dir=tmp_path / "a", max_steps=2, epochs=1, **TINY)
    monkeypatch.setitem(PRESETS, "default", Preset("default", latent_dim=5))  # a new default
    gan, _, config = gan_from_checkpoint(hist.artifacts["checkpoint"])
    assert config["preset"] == "default" and gan.latent_dim == 16  # what was trained
    assert_same_state(gan, hist.gan)


@needs_mnist
def test_train_mnist_takes_the_presets_epochs_and_batch_size(tmp_path):
    from minigan.presets import PRESETS

    for preset in ("default", "classic"):
        p = PRESETS[preset]
        h = train_mnist(preset=preset, out_dir=tmp_path / preset, limit=2 * p.batch_size,
                        max_steps=1, device="cpu", progress=False)  # fmt: skip
        assert (h.config["epochs"], h.config["batch_size"]) == (p.epochs, p.batch_size)
