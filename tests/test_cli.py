"""The ``minigan`` command line: help with defaults, one-line errors, sample, train-mnist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import needs_mnist
from PIL import Image

from minigan.checkpoint import save_checkpoint
from minigan.cli import COMMANDS, main
from minigan.gan import build_gan

TINY = {"latent_dim": 4, "g_hidden": (8,), "d_hidden": (8,)}


def tiny_checkpoint(path: Path, **overrides) -> Path:
    """A checkpoint of an untrained tiny GAN, shaped like train_mnist's (no MNIST needed)."""
    gan = build_gan("default", device="cpu", seed=1, **{**TINY, **overrides})
    state = {f"gan.{k}": v for k, v in gan.state_dict().items()}
    config = {"kind": "minigan.train_mnist", "preset": "default", "seed": 1}
    config["overrides"] = {k: list(v) if isinstance(v, tuple) else v for k, v in TINY.items()}
    return save_checkpoint(path, state, config)


def run_main(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_documents_the_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train-mnist", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option, default in [
        ("--epochs", "the preset's"),
        ("--batch-size", "the preset's"),
        ("--preset", "default"),
        ("--device", "auto"),
        ("--seed", "0"),
        ("--log-every", "50"),
    ]:
        assert option in text and f"(default: {default})" in text
    for option in ("--data-dir", "--out", "--resume", "--no-progress", "--max-steps", "--limit"):
        assert option in text
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--checkpoint" in text and "(default: 64)" in text and "(default: grid.png)" in text


def test_subcommands_are_registered():
    assert {"train-mnist", "sample"} <= set(COMMANDS)


def test_python_dash_m_minigan():
    r = subprocess.run(
        [sys.executable, "-m", "minigan", "--help"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and "train-mnist" in r.stdout and "sample" in r.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train-mnist", "--batch-size", "0"], "batch_size: expected an integer >= 1, got 0"),
        (["train-mnist", "--batch-size", "100", "--limit", "50"], "batch_size: expected <= 50"),
        (["train-mnist", "--epochs", "-1"], "epochs: expected an integer >= 1"),
        (
            ["train-mnist", "--validation-size", "10000", "--limit", "55000"],
            "holdout [50000, 60000) overlaps the training images [0, 55000)",
        ),
        (["sample", "--checkpoint", "does-not-exist.npz"], "no such file"),
        (["sample", "--checkpoint", "x.npz", "--n", "0"], "--n: expected >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, argv, message):
    code, out, err = run_main(capsys, *argv, "--out", str(tmp_path / "out"))
    assert code == 2
    assert err.startswith("minigan: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_unknown_preset_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train-mnist", "--preset", "nope"])
    assert e.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_device_gpu_without_cupy(capsys, tmp_path):
    from minigan.backend import cupy_available

    if cupy_available():
        pytest.skip("CuPy and a GPU are available here: the error case cannot happen")
    code, _, err = run_main(capsys, "train-mnist", "--device", "gpu", "--out", str(tmp_path / "o"))
    assert code == 2 and "CuPy" in err and "pip install cupy" in err and "Traceback" not in err


def test_sample_from_a_checkpoint(capsys, tmp_path):
    ck = tiny_checkpoint(tmp_path / "ck.npz")
    out = tmp_path / "pics" / "grid.png"
    code, stdout, _ = run_main(
        capsys, "sample", "--checkpoint", str(ck), "--n", "10", "--out", str(out), "--seed", "3"
    )
    assert code == 0 and f"wrote 10 samples to {out}" in stdout
    img = np.asarray(Image.open(out))
    assert img.shape == (2 * (3 * 30 + 2), 2 * (4 * 30 + 2))  # 3 rows of 4, padding 2, scale 2
    again = tmp_path / "again.png"
    run_main(
        capsys, "sample", "--checkpoint", str(ck), "--n", "10", "--out", str(again), "--seed", "3"
    )
    assert np.array_equal(np.asarray(Image.open(again)), img)  # same seed, same picture


@pytest.mark.parametrize("kind", ["foreign", "truncated", "shapes"])
def test_sample_from_a_bad_checkpoint(capsys, tmp_path, kind):
    path = tmp_path / "ck.npz"
    if kind == "foreign":
        np.savez(path, W=np.ones(2))
        message = "not a minigan checkpoint"
    elif kind == "truncated":
        tiny_checkpoint(path)
        path.write_bytes(path.read_bytes()[:300])
        message = "truncated or corrupt"
    else:
        tiny_checkpoint(path, d_hidden=(6,))  # weights that do not fit the config's model
        message = "does not match the model: 0.weight: expected shape (8, 784), got (6, 784)"
    code, _, err = run_main(
        capsys, "sample", "--checkpoint", str(path), "--out", str(tmp_path / "g.png")
    )
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "g.png").exists()


@needs_mnist
def test_train_mnist_command(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --out is ./runs/mnist-<date>-<time>
    code, out, _ = run_main(
        capsys,
        "train-mnist",
        "--limit",
        "256",
        "--max-steps",
        "3",
        "--epochs",
        "1",
        "--no-progress",
        "--device",
        "cpu",
    )
    # 256 // 128 (the default preset's batch size, taken when --batch-size is not given) = 2
    assert code == 0 and "done: 2 steps" in out
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("mnist-")
    for name in ("checkpoint.npz", "log.json", "log.csv", "losses.png", "progress.gif"):
        assert (run / name).is_file(), name
    # Resume a finished run with more epochs: it continues in the same directory.
    code, out, _ = run_main(
        capsys,
        "train-mnist",
        "--resume",
        str(run / "checkpoint.npz"),
        "--epochs",
        "2",
        "--no-progress",
        "--device",
        "cpu",
    )
    assert code == 0 and "done: 4 steps" in out
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]


# ----------------------------------------------------------------------------------------------
# Output paths and counts are checked before the work (issue 15, items 8, 9, 13)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "extra, message",
    [
        # before: "unknown file extension:" after generating
        (["--out", "{tmp}"], "--out: '{tmp}' is a directory; give a file name"),
        (["--out", "{tmp}/grid.xyz"], "--out: expected a file name ending in .png"),
        # before: NumPy's "expected non-negative integer" without the flag
        (["--seed", "-1"], "--seed: expected an int >= 0, got -1"),
        # before: 24 GB and the OOM killer (1e6), a MemoryError traceback (1e8)
        (["--n", "1000000"], "--n: at most 10000 images fit in one grid picture"),
        (["--n", "100000000"], "--n: at most 10000 images fit in one grid picture"),
    ],
)
def test_sample_refuses_bad_output_and_counts(capsys, tmp_path, extra, message):
    ck = tiny_checkpoint(tmp_path / "ck.npz")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    code, _, err = run_main(capsys, "sample", "--checkpoint", str(ck), *argv)
    assert code == 2 and message.replace("{tmp}", str(tmp_path)) in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_sample_generates_in_batches_with_the_same_noise(capsys, tmp_path, monkeypatch):
    import minigan.cli as cli
    from minigan.checkpoint import gan_from_checkpoint

    ck = tiny_checkpoint(tmp_path / "ck.npz")
    assert (
        run_main(
            capsys, "sample", "--checkpoint", str(ck), "--n", "10", "--out", str(tmp_path / "a.png")
        )[0]
        == 0
    )
    monkeypatch.setattr(cli, "_SAMPLE_BATCH", 3)  # 3 + 3 + 3 + 1
    assert (
        run_main(
            capsys, "sample", "--checkpoint", str(ck), "--n", "10", "--out", str(tmp_path / "b.png")
        )[0]
        == 0
    )
    a, b = (np.asarray(Image.open(tmp_path / f)) for f in ("a.png", "b.png"))
    assert np.array_equal(a, b)
    gan, _, _ = gan_from_checkpoint(ck)
    z = np.random.default_rng(0).standard_normal((10, gan.latent_dim), np.float32)
    from minigan.viz import image_grid

    ref = np.kron(image_grid(gan.sample(10, z=z), nrow=4), np.ones((2, 2), np.uint8))
    assert np.array_equal(a, ref)  # the picture the one-batch code drew


def test_image_grid_refuses_a_million_images():
    from minigan.viz import MAX_GRID_IMAGES, image_grid

    with pytest.raises(ValueError, match="at most 10000 fit in one grid"):
        image_grid(np.zeros((MAX_GRID_IMAGES + 1, 4)))


@pytest.mark.parametrize(
    "extra, message",
    [
        # before: the whole evaluation ran, then the JSON was lost
        (["--json", "{tmp}"], "--json: '{tmp}' is a directory"),
        (["--figure", "{tmp}/nn.txt"], "--figure: expected a file name ending in .png"),
        (["--seed", "-2"], "--seed: expected an int >= 0, got -2"),
        # before: accepted
        (["--n-samples", "100000000"], "n_samples: at most 100000 (MAX_EVAL_SAMPLES)"),
    ],
)
def test_evaluate_checks_before_the_work(capsys, tmp_path, monkeypatch, extra, message):
    import minigan.checkpoint as checkpoint

    def no_work(*a, **k):
        raise AssertionError("the evaluation started")

    monkeypatch.setattr(checkpoint, "gan_from_checkpoint", no_work)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    code, _, err = run_main(capsys, "evaluate", "--checkpoint", "ck.npz", *argv)
    assert code == 2 and message.replace("{tmp}", str(tmp_path)) in err, err


def test_evaluate_json_into_a_missing_folder_is_created_first(capsys, tmp_path, monkeypatch):
    import minigan.metrics as metrics

    target = tmp_path / "new" / "deeper" / "results.json"
    seen = {}

    def fake_evaluate(path, **kw):
        seen["folder_exists"] = target.parent.is_dir()  # created before the work
        return {"checkpoint": path}

    monkeypatch.setattr(metrics, "evaluate_checkpoint", fake_evaluate)
    monkeypatch.setattr(metrics, "format_table", lambda r: "table\n")
    code, out, _ = run_main(capsys, "evaluate", "--checkpoint", "ck.npz", "--json", str(target))
    assert code == 0 and seen["folder_exists"] and target.is_file()
    assert f"wrote {target}" in out
