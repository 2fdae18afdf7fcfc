"""Issue 9: one loop for every GAN. Datasets by name, presets as data, the objective-driven
step, colour pictures, and the four fixes found while reading the code (each test here failed
before its fix)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from conftest import FASHION_DIR, MNIST_DIR, needs_fashion, needs_mnist
from PIL import Image

from minigan import data
from minigan.backend import resolve_device, to_numpy
from minigan.checkpoint import gan_from_checkpoint, load_checkpoint
from minigan.gan import GAN, build_gan
from minigan.layers import Module
from minigan.losses import BCEWithLogitsLoss
from minigan.objectives import NonSaturating
from minigan.optim import Adam
from minigan.presets import PRESETS, Preset, get_preset
from minigan.train import train
from minigan.viz import image_grid, make_gif, plot_losses, save_image_grid

SMALL = dict(latent_dim=6, g_hidden=(16,), d_hidden=(16,), data_dim=20)
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


def _reals(n=3, rows=8, width=20, seed=2):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, (rows, width)).astype(np.float32) for _ in range(n)]


def _same_state(a: GAN, b: GAN) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if hasattr(sa[k], "shape"):
            assert np.array_equal(to_numpy(sa[k]), to_numpy(sb[k])), k
        else:
            assert sa[k] == sb[k], k


# ---------------------------------------------------------------------------------------------
# The four fixes
# ---------------------------------------------------------------------------------------------
def test_backend_asarray_copies_host_data_so_loaded_optimizers_do_not_share_moments():
    host = np.zeros(3, np.float32)
    assert resolve_device("cpu").asarray(host) is not host
    gan = build_gan(seed=0, **SMALL)
    gan.train_step(_reals(1)[0])
    state = gan.d_optimizer.state_dict()
    oa = Adam(build_gan(seed=1, **SMALL).discriminator.parameters())
    ob = Adam(build_gan(seed=1, **SMALL).discriminator.parameters())
    oa.load_state_dict(state)
    ob.load_state_dict(state)
    assert ob.state["exp_avg"][0] is not oa.state["exp_avg"][0]
    oa.state["exp_avg"][0][...] = 7.0
    assert not np.any(to_numpy(ob.state["exp_avg"][0]) == 7.0)


def test_loss_call_runs_the_subclass_forward():
    class Doubled(BCEWithLogitsLoss):
        def forward(self, input, target):
            return 2 * super().forward(input, target)

    z, y = np.array([[0.3], [-1.0]]), np.array([[1.0], [0.0]])
    assert float(Doubled()(z, y)) == 2 * float(BCEWithLogitsLoss()(z, y))


def test_train_step_keeps_the_callers_requires_grad_even_after_an_error():
    gan = build_gan(seed=0, **SMALL)
    gan.discriminator.requires_grad_(False)  # the caller froze D: the step must not thaw it
    gan.train_step(_reals(1)[0])
    assert not any(m.requires_grad for m in gan.discriminator.modules())

    gan = build_gan(seed=0, **SMALL)
    d_backward = gan.discriminator.backward

    def fails_in_g_step(dout, input_grad=True):  # the G step asks D for dL/d(fake)
        if input_grad:
            raise RuntimeError("D backward failed")
        return d_backward(dout, input_grad=False)

    gan.discriminator.backward = fails_in_g_step
    with pytest.raises(RuntimeError, match="D backward failed"):
        gan.train_step(_reals(1)[0])
    assert all(m.requires_grad for m in gan.discriminator.modules())  # not left frozen


class _ModeSpy(Module):
    """Records the training flag it ran under; stands for BatchNorm (running stats)."""

    def __init__(self):
        super().__init__()
        self.seen: list[bool] = []
        self.updates = 0

    def forward(self, x):
        self.seen.append(self.training)
        self.updates += self.training  # BatchNorm updates its running stats only in training
        return x

    def backward(self, dout, *, input_grad=True):
        return dout


def test_sample_runs_the_generator_in_eval_mode_and_restores_its_mode():
    from minigan.layers import Sequential

    gan = build_gan(seed=0, ema_decay=None, **SMALL)  # G itself samples
    spy = _ModeSpy()
    gan.generator = Sequential(*gan.generator.layers, spy)
    gan.sample(4)
    assert spy.seen == [False] and spy.updates == 0  # no running-stat update while sampling
    assert all(m.training for m in gan.generator.modules())  # training mode restored
    gan.generator.eval()
    gan.sample(2)
    assert not any(m.training for m in gan.generator.modules())  # eval stays eval


def test_joint_pass_asks_the_modules_property():
    class Mixer(Module):
        mixes_batch_rows = True

    from minigan.gan import mixes_batch_rows
    from minigan.layers import Sequential

    assert not mixes_batch_rows(build_gan(seed=0, **SMALL).discriminator)
    assert mixes_batch_rows(Sequential(Mixer()))


# ---------------------------------------------------------------------------------------------
# The objective-driven step
# ---------------------------------------------------------------------------------------------
class _TwoCritic(NonSaturating):
    n_critic = 2


def _two_critic_gan(seed=0):
    gan = build_gan(seed=seed, **SMALL)
    gan.objective = _TwoCritic()
    return gan


def test_n_critic_updates_g_every_nth_call_and_resumes_mid_cycle_exactly():
    reals = _reals(5)
    gan = _two_critic_gan()
    g0 = to_numpy(gan.generator.state_dict()["0.weight"]).copy()
    gan.train_step(reals[0])
    assert np.array_equal(to_numpy(gan.generator.state_dict()["0.weight"]), g0)  # no G update
    assert gan.g_optimizer.step_count == 0 and gan.d_optimizer.step_count == 1
    gan.train_step(reals[1])
    assert gan.g_optimizer.step_count == 1 and gan.d_optimizer.step_count == 2
    out = gan.train_step(reals[2])  # mid-cycle: save here
    assert gan.state_dict()["d_steps"] == 3
    state = {
        k: (to_numpy(v).copy() if hasattr(v, "shape") else v) for k, v in gan.state_dict().items()
    }
    resumed = _two_critic_gan(seed=5)
    resumed.load_state_dict(state)
    for real in reals[3:]:
        a, b = gan.train_step(real), resumed.train_step(real)
        assert {k: float(v) for k, v in a.items()} == {k: float(v) for k, v in b.items()}
    _same_state(gan, resumed)
    assert set(out) == {"d_loss", "g_loss", "d_real", "d_fake"}


def test_saturating_g_loss_is_the_minimax_objective():
    gan = build_gan(seed=0, g_loss="saturating", **SMALL)
    assert gan.objective.name == "minimax" and gan.g_loss == "saturating"
    assert gan.preset.objective == "minimax" and gan.preset.g_loss == "saturating"


# ---------------------------------------------------------------------------------------------
# Presets as data
# ---------------------------------------------------------------------------------------------
def test_presets_are_data_and_round_trip():
    for p in PRESETS.values():
        assert Preset.from_dict(p.to_dict()) == p
    before = get_preset("default").to_dict()
    p = get_preset("default").with_overrides(lr=1e-3, g_hidden=(128,), negative_slope=0.1)
    assert p.optimizer_args["lr"] == 1e-3 and p.generator_args["hidden_sizes"] == (128,)
    assert p.generator_args["negative_slope"] == p.discriminator_args["negative_slope"] == 0.1
    assert get_preset("default").to_dict() == before != p.to_dict()  # the entry is untouched


def test_unknown_preset_field_is_one_line_naming_the_known_fields(tmp_path):
    with pytest.raises(
        ValueError, match=r"unknown preset field\(s\) \['colour'\]; known: .*lr"
    ) as e:
        get_preset("default").with_overrides(colour="red")
    assert "\n" not in str(e.value) and "generator_args" in str(e.value)
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['colour'\].*'objective'"):
        train(colour="red", out_dir=tmp_path / "o", progress=False)
    with pytest.raises(ValueError, match=r"preset: expected one of \[.*'default'.*\], got 'nope'"):
        train(preset="nope", out_dir=tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_presets_command_lists_one_line_per_preset(capsys):
    from minigan.cli import main

    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == list(PRESETS)


# ---------------------------------------------------------------------------------------------
# Datasets by name
# ---------------------------------------------------------------------------------------------
def test_unknown_dataset_is_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"dataset: expected one of \['cifar10', 'fashion-mnist'"):
        data.load("svhn")
    with pytest.raises(ValueError, match="dataset: expected one of"):
        train(dataset="svhn", out_dir=tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_registry_describes_each_dataset():
    for name, info in data.DATASETS.items():
        assert info.name == name and len(info.classes) == 10 and len(info.image_shape) == 3
    assert data.DATASETS["cifar10"].image_shape == (3, 32, 32)


@needs_mnist
def test_a_folder_with_the_other_datasets_files_is_refused_naming_it(tmp_path, monkeypatch):
    import pooch

    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name in data.MNIST_FILES["test"]:
        shutil.copy(os.path.join(MNIST_DIR, name), folder / name)
    monkeypatch.setattr(pooch, "retrieve", lambda *a, **k: pytest.fail("must not download"))
    with pytest.raises(ValueError, match="is MNIST's t10k-images-idx3-ubyte.gz, not Fashion-MNIST"):
        data.load("fashion-mnist", "test", root=tmp_path)


@needs_mnist
def test_mnist_under_the_new_root_layout_and_the_old_one():
    a, la = data.load("mnist", "test", root=os.path.dirname(MNIST_DIR), download=False)
    b, lb = data.load("mnist", "test", root=MNIST_DIR, download=False)
    c, _ = data.load_mnist("test", root=MNIST_DIR, download=False)
    assert a.shape == (10000, 1, 28, 28) and a.dtype == np.uint8
    assert np.array_equal(a, b) and np.array_equal(la, lb) and np.array_equal(a[:, 0], c)


@needs_fashion
def test_real_fashion_mnist():
    images, labels = data.load("fashion-mnist", "test", root=os.path.dirname(FASHION_DIR))
    assert images.shape == (10000, 1, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10
    assert images.mean() == pytest.approx(73.1466, abs=5e-5)  # the README's figure


def _cifar_root():
    root = os.environ.get("MINIGAN_DATA_DIR")
    if not root:
        return None
    gz = data.dataset_dir("cifar10", root) / "data_batch_1.bin.gz"
    return root if gz.is_file() else None


@pytest.mark.skipif(_cifar_root() is None, reason="CIFAR-10 data_batch_1.bin.gz not found")
def test_cifar10_loads_an_explicit_subset_and_says_so(capsys):
    images, labels = data.load("cifar10", "train", root=_cifar_root(), batches=(1,))
    assert images.shape == (10000, 3, 32, 32) and images.dtype == np.uint8
    assert labels[:5].tolist() == [6, 9, 9, 4, 1]  # frog, truck, truck, deer, automobile
    assert "batches [1] only: 10000 of 50000" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="batches="):  # never fewer images silently
        data.load("cifar10", "train", root=_cifar_root(), download=False)


# ---------------------------------------------------------------------------------------------
# Pictures of any (N, C, H, W)
# ---------------------------------------------------------------------------------------------
def test_colour_grid_is_an_rgb_png_of_the_right_size(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (10, 3, 32, 32)).astype(np.float32)
    grid = image_grid(images, nrow=4)
    assert grid.shape == (3 * 34 + 2, 4 * 34 + 2, 3)
    assert np.array_equal(grid[2:34, 2:34], np.round((images[0].transpose(1, 2, 0) + 1) * 127.5))
    path = save_image_grid(images, tmp_path / "rgb.png", nrow=4, scale=2)
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.size == (2 * (4 * 34 + 2), 2 * (3 * 34 + 2))
    gif = make_gif([path, path], tmp_path / "rgb.gif")
    with Image.open(gif) as im:
        assert im.convert("RGB").getpixel((10, 10)) != im.convert("L").getpixel((10, 10))
    grey = image_grid(images[:, :1], nrow=4)
    assert grey.shape == (3 * 34 + 2, 4 * 34 + 2)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        image_grid(np.zeros((2, 2, 4, 4)))


def test_loss_plot_without_bce_reference_and_any_metric_names(tmp_path):
    steps = [
        {"step": i, "epoch": 1, "d_loss": -3.0 * i, "g_loss": 5.0, "wd": 10.0 + i}
        for i in range(1, 9)
    ]
    path = plot_losses(steps, tmp_path / "w.png", reference={})
    assert Image.open(path).size[0] > 0


def test_health_checks_follow_the_objective():
    from minigan.health import HealthMonitor
    from minigan.objectives import GENERIC_CHECKS

    generic = HealthMonitor(checks=GENERIC_CHECKS, patience=1)
    bce = HealthMonitor(patience=1)
    stats = {"d_loss": -5.0, "g_loss": 1.0, "d_fake": 0.0}
    assert generic.update(1, stats) == []  # a critic's negative loss is no "D wins"
    assert {w.code for w in bce.update(1, stats)} == {"D_WINS", "D_FAKE_ZERO"}


# ---------------------------------------------------------------------------------------------
# train() on Fashion-MNIST: exact resume, checkpoint, sample, wrong resume
# ---------------------------------------------------------------------------------------------
@needs_fashion
def test_fashion_mnist_resume_is_bit_identical_and_checkpoints_rebuild(tmp_path, capsys):
    from minigan.cli import main

    kw = {**TINY, "epochs": 3, "dataset": "fashion-mnist", "data_dir": os.path.dirname(FASHION_DIR)}
    straight = train(out_dir=tmp_path / "a", max_steps=25, **kw)
    train(out_dir=tmp_path / "b", max_steps=12, **kw)
    resumed = train(resume=tmp_path / "b" / "checkpoint.npz", max_steps=25, **kw)
    _same_state(straight.gan, resumed.gan)
    assert resumed.steps == straight.steps
    state, config = load_checkpoint(tmp_path / "a" / "checkpoint.npz")
    assert config["dataset"] == "fashion-mnist" and config["preset_fields"]["latent_dim"] == 16
    gan, _, _ = gan_from_checkpoint(tmp_path / "a" / "checkpoint.npz")
    _same_state(gan, straight.gan)
    grid = tmp_path / "g.png"
    assert (
        main(["sample", "--checkpoint", str(tmp_path / "a" / "checkpoint.npz"), "--out", str(grid)])
        == 0
    )
    assert Image.open(grid).size == (484, 484)
    with pytest.raises(ValueError, match="trained on dataset 'fashion-mnist' but dataset='mnist'"):
        train(resume=tmp_path / "a" / "checkpoint.npz", **{**kw, "dataset": "mnist"})
    with pytest.raises(ValueError, match="trained with preset='default' but preset='seed-keras"):
        train(resume=tmp_path / "a" / "checkpoint.npz", preset="seed-keras-mlp", **kw)


def test_relative_data_dir_was_made_absolute():
    env = os.environ.get("MINIGAN_DATA_DIR")
    if env is None:
        pytest.skip("MINIGAN_DATA_DIR is not set")
    assert os.path.isabs(env)
