"""Issue 11, second half: presets of the objectives, conditional GANs, EMA of G, exact resume
(mid n_critic cycle, conditional, EMA), bad input, and the ring of 8 Gaussians."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import MNIST_DIR, needs_mnist

from minigan import data
from minigan.backend import to_numpy
from minigan.checkpoint import gan_from_checkpoint
from minigan.gan import GAN, build_gan
from minigan.layers import Linear, Sequential
from minigan.metrics import modes_covered
from minigan.models import LabelConcat, one_hot
from minigan.presets import PRESETS
from minigan.train import train

TINY = dict(
    batch_size=16,
    limit=160,
    device="cpu",
    progress=False,
    log_every=3,
    latent_dim=8,
    g_hidden=(16,),
    d_hidden=(16,),
)


def _same_state(a: GAN, b: GAN) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if hasattr(sa[k], "shape"):
            assert np.array_equal(to_numpy(sa[k]), to_numpy(sb[k])), k
        else:
            assert sa[k] == sb[k], k


def _cgan(**kw) -> GAN:
    return build_gan("cgan", seed=0, data_dim=12, latent_dim=4, g_hidden=(8,), d_hidden=(8,), **kw)


def _batch(n=6, width=12, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, width)).astype(np.float32), rng.integers(0, 10, n)


# ---------------------------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------------------------
def test_objective_presets_carry_the_papers_settings():
    wgan, gp = PRESETS["wgan"], PRESETS["wgan-gp"]
    assert (wgan.optimizer, wgan.optimizer_args["lr"]) == ("rmsprop", 5e-5)
    assert wgan.objective_args == {"clip_value": 0.01, "n_critic": 5}
    assert gp.optimizer_args["betas"] == (0.0, 0.9) and gp.optimizer_args["lr"] == 1e-4
    assert gp.objective_args == {"weight": 10.0, "n_critic": 5}
    assert PRESETS["lsgan"].objective == "lsgan"
    g = build_gan("wgan-gp", data_dim=12, latent_dim=4, g_hidden=(8,), d_hidden=(8,))
    assert g.objective.n_critic == 5 and g.objective.weight == 10.0
    assert type(g.d_optimizer).__name__ == "Adam" and g.d_optimizer.betas == (0.0, 0.9)
    assert build_gan("lsgan", **{"data_dim": 12, "g_hidden": (8,)}).objective.name == "lsgan"


def test_ttur_sets_only_ds_learning_rate():
    g = build_gan("default", data_dim=12, g_hidden=(8,), d_hidden=(8,), d_lr=4e-4)
    assert g.d_optimizer.lr == 4e-4 and g.g_optimizer.lr == PRESETS["default"].lr != 4e-4


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"objective": "wgan_div"}, r"objective: expected one of \['hinge', 'lsgan', "),
        ({"objective": "wgan", "n_critic": 0}, "n_critic: expected an int >= 1, got 0"),
        ({"objective": "wgan_gp", "n_critic": -2}, "n_critic: expected an int >= 1, got -2"),
        ({"objective": "wgan", "clip_value": -0.01}, "clip_value"),
        ({"ema_decay": 1.0}, r"ema_decay: expected a number in \[0, 1\), got 1.0"),
        ({"ema_decay": -0.1}, r"ema_decay: expected a number in \[0, 1\), got -0.1"),
        ({"real_label": 0.3}, r"real_label: expected a number in \(0.5, 1\], got 0.3"),
    ],
)
def test_bad_settings_are_one_line_errors(overrides, match):
    with pytest.raises(ValueError, match=match) as e:
        build_gan("default", data_dim=12, g_hidden=(8,), d_hidden=(8,), **overrides)
    assert "\n" not in str(e.value)


def test_wgan_clip_hook_keeps_critic_weights_in_range():
    g = build_gan("wgan", data_dim=12, latent_dim=4, g_hidden=(8,), d_hidden=(8,), lr=0.5)
    for i in range(3):
        g.train_step(_batch(seed=i)[0])
    w = np.concatenate([to_numpy(v).ravel() for v in g.discriminator.state_dict().values()])
    assert np.max(np.abs(w)) <= 0.01 and np.max(np.abs(w)) == pytest.approx(0.01)


def test_switches_off_by_default_leave_the_step_unchanged_and_on_change_it():
    kw = dict(data_dim=12, latent_dim=4, g_hidden=(8,), d_hidden=(8,), seed=0)
    x = _batch()[0]
    plain = build_gan("default", **kw).train_step(x)
    zero = build_gan("default", instance_noise=0.0, **kw).train_step(x)
    assert float(plain["d_loss"]) == float(zero["d_loss"])  # off draws nothing
    noisy = build_gan("default", instance_noise=0.5, **kw).train_step(x)
    assert float(noisy["d_loss"]) != float(plain["d_loss"])


def test_instance_noise_anneals_linearly_and_is_resumed_from_d_steps():
    gan = build_gan("default", data_dim=12, g_hidden=(8,), d_hidden=(8,), instance_noise=0.2,
                    instance_noise_steps=4)  # fmt: skip
    stds = []
    for i in range(6):
        stds.append(gan.noise_std())
        gan.train_step(_batch(seed=i)[0])
    assert stds == pytest.approx([0.2, 0.15, 0.1, 0.05, 0.0, 0.0])


def test_lr_schedule_sets_both_rates_from_the_step_and_needs_the_runs_length():
    gan = build_gan("default", data_dim=12, g_hidden=(8,), d_hidden=(8,), lr=1e-3, d_lr=4e-3,
                    lr_schedule="linear", lr_schedule_args={"start": 0.5})  # fmt: skip
    with pytest.raises(ValueError, match=r"lr_schedule: the GAN does not know the run's length"):
        gan.train_step(_batch()[0])
    gan.total_steps = 4
    used = []
    for i in range(5):
        gan.train_step(_batch(seed=i)[0])
        used += [gan.g_optimizer.lr, gan.d_optimizer.lr]
    assert used == pytest.approx([1e-3, 4e-3] * 3 + [5e-4, 2e-3, 0.0, 0.0])


def _norm(module) -> float:
    return float(np.sqrt(sum(np.sum(to_numpy(p.grad) ** 2) for p in module.parameters())))


def test_max_grad_norm_clips_each_players_gradient():
    kw = dict(data_dim=12, g_hidden=(8,), d_hidden=(8,))
    free = build_gan("default", **kw)
    free.train_step(_batch()[0])
    assert _norm(free.discriminator) > 1e-2 and _norm(free.generator) > 1e-2
    gan = build_gan("default", max_grad_norm=1e-3, **kw)
    gan.train_step(_batch()[0])  # the gradients stay as the optimizers used them
    assert _norm(gan.discriminator) <= 1e-3 * (1 + 1e-5)
    assert _norm(gan.generator) <= 1e-3 * (1 + 1e-5)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"instance_noise": -0.1}, r"instance_noise: expected a finite std >= 0, got -0.1"),
        ({"instance_noise_steps": -1}, r"instance_noise_steps: expected an int >= 0, got -1"),
        ({"max_grad_norm": 0.0}, r"max_grad_norm: expected None or a number > 0, got 0.0"),
    ],
)
def test_bad_switches_are_one_line_errors(overrides, match):
    with pytest.raises(ValueError, match=match):
        build_gan("default", data_dim=12, g_hidden=(8,), d_hidden=(8,), **overrides)


# ---------------------------------------------------------------------------------------------
# conditional GANs
# ---------------------------------------------------------------------------------------------
def test_one_hot_and_label_concat_backward_drop_the_label_columns():
    y = np.array([2, 0, 1])
    assert np.array_equal(one_hot(y, 3, np.float64), np.eye(3)[y])
    rng = np.random.default_rng(0)
    net = LabelConcat(Sequential(Linear(4 + 3, 2, dtype="float64", rng=rng)), 3)
    x = rng.standard_normal((3, 4))
    out = net.forward(x, y)
    w = to_numpy(net.state_dict()["net.0.weight"])
    assert np.allclose(
        out, np.concatenate([x, np.eye(3)[y]], 1) @ w.T + net.state_dict()["net.0.bias"]
    )
    dout = rng.standard_normal((3, 2))
    assert np.allclose(net.backward(dout), dout @ w[:, :4])  # d/dx only, shape of x
    with pytest.raises(TypeError, match="needs labels"):
        net.forward(x)


def test_label_maps_append_constant_class_planes_and_backward_matches_finite_differences():
    from minigan.gradcheck import numerical_gradient, rel_error
    from minigan.layers import Conv2d, Flatten

    rng = np.random.default_rng(0)
    k, n = 3, 2
    net = LabelConcat(
        Sequential(
            Conv2d(2 + k, 2, 3, 1, 1, dtype="float64", rng=rng),
            Flatten(),
            Linear(2 * 4 * 5, 1, dtype="float64", rng=rng),
        ),
        k,
        label_maps=True,
    )
    x = rng.standard_normal((n, 2, 4, 5))  # non-square on purpose
    y = np.array([2, 0])
    out = net.forward(x, y)
    planes = np.broadcast_to(np.eye(k)[y][:, :, None, None], (n, k, 4, 5))
    assert np.allclose(out, net.net.forward(np.concatenate([x, planes], axis=1)))
    dout = rng.standard_normal((n, 1))
    net.forward(x, y)
    dx = net.backward(dout)
    assert dx.shape == x.shape
    num = numerical_gradient(lambda v: net.forward(v, y), x.copy(), dout)
    assert rel_error(dx, num) < 1e-6
    with pytest.raises(ValueError, match=r"x: expected \(N, C, H, W\) with label_maps"):
        net.forward(x.reshape(n, -1), y)


@pytest.mark.parametrize("preset", ["cdcgan", "wgan-gp-dcgan"])
def test_conv_presets_of_the_objectives_issue_train_and_sample(preset):
    p = PRESETS[preset]
    gan = build_gan(preset, seed=0, generator_args={**p.generator_args, "base_channels": 4},
                    discriminator_args={**p.discriminator_args, "base_channels": 4})  # fmt: skip
    assert gan.data_shape == (1, 28, 28)
    labels = gan.balanced_labels(4)
    x = np.random.default_rng(1).uniform(-1, 1, (4, 1, 28, 28)).astype(np.float32)
    before = to_numpy(gan.sample(4, z=np.zeros((4, 100), np.float32), labels=labels))
    for _ in range(5):  # one G step for the 5-critic objective
        out = gan.train_step(x, labels)
    assert all(np.isfinite(float(v)) for v in out.values())
    after = to_numpy(gan.sample(4, z=np.zeros((4, 100), np.float32), labels=labels))
    assert not np.array_equal(before, after)  # G was updated
    if preset == "cdcgan":
        assert gan.discriminator.label_maps and gan.discriminator.net[0].in_channels == 11
        a = gan.sample(2, z=np.zeros((2, 100), np.float32), labels=[3, 3])
        b = gan.sample(2, z=np.zeros((2, 100), np.float32), labels=[3, 8])
        assert np.array_equal(a[0], b[0]) and not np.array_equal(a[1], b[1])
    else:  # the critic of a gradient penalty holds no BatchNorm
        assert not any(m.mixes_batch_rows for m in gan.discriminator.modules())


def test_conditional_gan_conditions_both_players_and_labels_change_the_samples():
    gan = _cgan()
    assert gan.conditional and gan.num_classes == 10
    z = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
    a, b = gan.sample(2, z=z, labels=[1, 1]), gan.sample(2, z=z, labels=[1, 7])
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[1], b[1])
    x, y = _batch()
    out = gan.train_step(x, y)
    assert np.isfinite(float(out["d_loss"])) and np.isfinite(float(out["g_loss"]))


def test_conditional_joint_and_teaching_passes_agree():
    from minigan import functional as F

    x, y = _batch()
    a = _cgan()
    b = _cgan()
    b.d_joint_batch = False
    with F.fast_paths(True):
        ra, rb = a.train_step(x, y), b.train_step(x, y)
    assert float(ra["d_loss"]) == pytest.approx(float(rb["d_loss"]), rel=1e-6)
    for k, v in a.state_dict().items():
        if hasattr(v, "shape"):
            np.testing.assert_allclose(to_numpy(v), to_numpy(b.state_dict()[k]), atol=1e-6)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        ([0, 10], r"labels: expected values in 0..9, got 0..10"),
        ([-1, 3], r"labels: expected values in 0..9, got -1..3"),
        (None, "labels: this GAN is conditional"),
        ([1, 2, 3], r"labels: expected shape \(2,\), got \(3,\)"),
        (np.array([0.5, 1.0]), "labels: expected integers"),
    ],
)
def test_conditional_label_errors(labels, match):
    with pytest.raises(ValueError, match=match) as e:
        _cgan().sample(2, labels=labels)
    assert "\n" not in str(e.value)


def test_labels_given_to_an_unconditional_gan_are_refused():
    gan = build_gan("default", data_dim=12, latent_dim=4, g_hidden=(8,), d_hidden=(8,))
    with pytest.raises(ValueError, match="this GAN is unconditional"):
        gan.sample(2, labels=[0, 1])
    with pytest.raises(ValueError, match="this GAN is unconditional"):
        gan.train_step(*_batch())


def test_conditional_gan_on_the_ring_draws_the_asked_for_mode():
    # labels = the mode each point came from: a cGAN must learn to put class k at centre k
    kw = {"hidden_sizes": (64, 64), "negative_slope": 0.2, "num_classes": 8}
    gan = build_gan("ring", data_dim=2, seed=0, generator="conditional_mlp_generator",
                    discriminator="conditional_mlp_discriminator", generator_args=kw,
                    discriminator_args=kw)  # fmt: skip
    rng, centers = np.random.default_rng(1), data.ring_centers()
    for _ in range(1500):
        k = rng.integers(0, 8, 128)
        x = (centers[k] + 0.03 * rng.standard_normal((128, 2))).astype(np.float32)
        gan.train_step(gan.backend.asarray(x), gan.backend.asarray(k))
    y = gan.balanced_labels(800)
    s = to_numpy(gan.sample(800, labels=y))
    nearest = np.argmin(np.linalg.norm(s[:, None] - centers[None], axis=2), axis=1)
    assert np.mean(nearest == y) >= 0.9  # chance: 1/8


def test_batch_iterator_yields_labels_in_the_images_order_and_resumes_exactly():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    y = np.arange(20) % 7
    it = data.BatchIterator(x, 4, seed=3, labels=y)
    batches = [(to_numpy(a).copy(), to_numpy(b).copy()) for a, b in it]
    for a, b in batches:
        assert np.array_equal(b, (a[:, 0] / 2).astype(int) % 7)  # same rows
    straight = data.BatchIterator(x, 4, seed=3, labels=y)
    first = iter(straight)
    next(first), next(first)
    resumed = data.BatchIterator(x, 4, seed=99, labels=y)
    resumed.load_state_dict(straight.state_dict())
    rest = [to_numpy(b) for _, b in resumed]
    assert all(np.array_equal(r, b) for r, (_, b) in zip(rest, batches[2:], strict=True))
    with pytest.raises(ValueError, match=r"labels: expected shape \(20,\), got \(19,\)"):
        data.BatchIterator(x, 4, labels=y[:19])


# ---------------------------------------------------------------------------------------------
# EMA of G
# ---------------------------------------------------------------------------------------------
def test_ema_is_updated_after_each_g_step_and_samples_with_the_average():
    gan = build_gan("wgan-gp", data_dim=12, latent_dim=4, g_hidden=(8,), d_hidden=(8,),
                    ema_decay=0.9, n_critic=2)  # fmt: skip
    ema0 = {k: to_numpy(v).copy() for k, v in gan.ema.module.state_dict().items()}
    g0 = {k: to_numpy(v).copy() for k, v in gan.generator.state_dict().items()}
    gan.train_step(_batch()[0])
    assert gan.ema.num_updates == 0  # no G step yet
    gan.train_step(_batch(seed=2)[0])
    assert gan.ema.num_updates == 1
    for k, v in gan.generator.state_dict().items():
        v = to_numpy(v)
        if not np.issubdtype(v.dtype, np.floating):  # BatchNorm's counter: copied
            assert np.array_equal(to_numpy(gan.ema.module.state_dict()[k]), v) and v == 2
            continue
        expect = 0.9 * ema0[k] + 0.1 * v
        np.testing.assert_allclose(to_numpy(gan.ema.module.state_dict()[k]), expect, rtol=1e-6)
        assert not np.array_equal(v, g0[k])
    z = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    gan.ema.module.eval(), gan.generator.eval()  # as sample() runs G (BatchNorm: running stats)
    assert np.array_equal(gan.sample(3, z=z), gan.ema.module.forward(gan.backend.asarray(z)))
    assert not np.array_equal(gan.sample(3, z=z), gan.generator.forward(gan.backend.asarray(z)))


def test_export_uses_the_ema_generator():
    from minigan.export import _net_for_export

    gan = _cgan(ema_decay=0.5)
    assert _net_for_export(gan, "generator") is gan.ema.module
    assert _net_for_export(gan, "discriminator") is gan.discriminator


# ---------------------------------------------------------------------------------------------
# exact resume on MNIST: wgan-gp mid n_critic cycle, cgan, EMA
# ---------------------------------------------------------------------------------------------
@needs_mnist
@pytest.mark.parametrize(
    ("preset", "extra", "stop"),
    [
        ("wgan-gp", {}, 7),  # 7 D steps: 2 in the second n_critic=5 cycle
        ("cgan", {}, 6),
        ("default", {"ema_decay": 0.9}, 6),
        ("cgan", {"ema_decay": 0.99}, 5),
        ("default", {"lr_schedule": "linear", "lr_schedule_args": {"start": 0.2}}, 6),
    ],
)
def test_resume_is_bit_identical(tmp_path, preset, extra, stop):
    kw = {**TINY, **extra, "preset": preset, "epochs": 2, "data_dir": MNIST_DIR}
    straight = train(out_dir=tmp_path / "a", max_steps=13, **kw)
    train(out_dir=tmp_path / "b", max_steps=stop, **kw)
    resumed = train(resume=tmp_path / "b" / "checkpoint.npz", max_steps=13, **kw)
    _same_state(straight.gan, resumed.gan)
    assert resumed.steps == straight.steps
    if preset == "wgan-gp":
        assert resumed.gan.d_steps == 13 and resumed.gan.g_optimizer.step_count == 2
    gan, _, _ = gan_from_checkpoint(tmp_path / "a" / "checkpoint.npz")
    _same_state(gan, straight.gan)
    assert (gan.ema is None) == (straight.gan.preset.ema_decay is None)
    if "lr_schedule" in extra:  # train() gave the schedule the run's length: 2 epochs of 10
        assert straight.gan.total_steps == 20
        base = straight.gan.preset.lr
        assert straight.gan.g_optimizer.lr == pytest.approx(base * (1 - (12 / 20 - 0.2) / 0.8))


@needs_mnist
def test_cli_sample_draws_one_row_per_class(tmp_path, capsys):
    from PIL import Image

    from minigan.cli import main

    train(out_dir=tmp_path / "a", preset="cgan", epochs=1, max_steps=2, data_dir=MNIST_DIR,
          **{**TINY})  # fmt: skip
    ck, grid = str(tmp_path / "a" / "checkpoint.npz"), str(tmp_path / "g.png")
    assert (
        main(["sample", "--checkpoint", ck, "--labels", "0-9", "--per-class", "4", "--out", grid])
        == 0
    )
    w, h = Image.open(grid).size
    assert w < h  # 4 columns, 10 rows
    assert main(["sample", "--checkpoint", ck, "--labels", "3-12", "--out", grid]) == 2
    assert "labels: expected values in 0..9, got 3..12" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# the ring of 8 Gaussians
# ---------------------------------------------------------------------------------------------
def test_modes_covered_counts_the_real_ring_and_a_collapsed_one():
    centers = data.ring_centers()
    real = data.sample_ring(2000, 0)
    assert modes_covered(real, centers, 0.03)[0] == 8
    collapsed = np.repeat(centers[:3], 300, axis=0)
    assert modes_covered(collapsed, centers, 0.03) == (3, 1.0)


def test_non_saturating_on_the_ring_covers_at_least_six_modes():
    # lesson 8's setting (the ring preset: Adam 1e-3): a GAN that learns the ring
    gan = build_gan("ring", data_dim=2, seed=0)
    rng = np.random.default_rng(1)
    for _ in range(1500):
        gan.train_step(gan.backend.asarray(data.sample_ring(128, rng)))
    x = to_numpy(
        gan.sample(2000, z=np.random.default_rng(2).standard_normal((2000, 8), np.float32))
    )
    covered, _ = modes_covered(x, data.ring_centers(), 0.03)
    assert covered >= 6


if not os.environ.get("MINIGAN_DATA_DIR"):
    print("tests/test_cgan.py: MNIST tests need MINIGAN_DATA_DIR")


def test_label_accuracy_and_labelled_samples_ask_every_class_in_order():
    from minigan.metrics import generate_samples, label_accuracy, labelled_samples

    gan = _cgan()

    class Oracle:  # predicts what was asked (i % 10) or always 0
        def __init__(self, right):
            self.right = right

        def predict(self, x):
            n = x.shape[0]
            return np.arange(n) % 10 if self.right else np.zeros(n, dtype=np.int64)

    assert label_accuracy(gan, 40, classifier=Oracle(True))["accuracy"] == 1.0
    wrong = label_accuracy(gan, 40, classifier=Oracle(False))
    assert wrong["accuracy"] == pytest.approx(0.1) and wrong["per_class"] == [1.0] + [0.0] * 9
    stream = labelled_samples(gan, 20, seed=3)
    (x0, y0), (x1, _) = next(stream), next(stream)
    assert np.array_equal(y0, np.arange(20) % 10)
    assert np.array_equal(to_numpy(x0), to_numpy(generate_samples(gan, 20, seed=[3, 0])))
    assert not np.array_equal(to_numpy(x0), to_numpy(x1))  # new noise each batch
    with pytest.raises(ValueError, match="expected a conditional GAN"):
        label_accuracy(build_gan("default", data_dim=12, latent_dim=4), 10, classifier=Oracle(True))
