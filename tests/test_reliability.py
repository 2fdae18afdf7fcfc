"""Issue 15 (nothing lost, nothing faked): run directories, resume, the lock, atomic artifacts,
stale temp files, stop signals, the data hash memo and the messages of clumsy input."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import needs_mnist

from minigan import files
from minigan.checkpoint import load_checkpoint
from minigan.files import RunDir, atomic_write, new_run_dir
from minigan.gan import GAN, build_gan
from minigan.train import NonFiniteLossError, train_mnist

ROOT = Path(__file__).resolve().parents[1]
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


def _patch_step(monkeypatch, at: int, action):
    """Wrap GAN.train_step so that ``action(gan, out)`` runs after call number ``at``."""
    real = GAN.train_step
    calls = {"n": 0}

    def step(self, x):
        out = real(self, x)
        calls["n"] += 1
        if calls["n"] == at:
            action(self, out)
        return out

    monkeypatch.setattr(GAN, "train_step", step)


def _temps(run: Path) -> list[Path]:
    return sorted(run.glob(".*.tmp")) + sorted(run.glob("samples/.*.tmp"))


# ---------------------------------------------------------------------------------------------
# 1. A run directory is new, resumed, or explicitly overwritten
# ---------------------------------------------------------------------------------------------
@needs_mnist
def test_out_dir_holding_an_earlier_run_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "reuse"
    train_mnist(out_dir=out, epochs=3, max_steps=30, **TINY)
    before = (out / "checkpoint.npz").read_bytes()
    with pytest.raises(ValueError, match="holds an earlier run.*resume=.*overwrite=True"):
        train_mnist(out_dir=out, epochs=1, seed=1, **TINY)
    assert (out / "checkpoint.npz").read_bytes() == before  # nothing replaced
    h = train_mnist(out_dir=out, epochs=1, seed=1, overwrite=True, **TINY)
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch_001.png"]
    assert load_checkpoint(out / "checkpoint.npz")[1]["seed"] == 1 and len(h.steps) == 10


def test_empty_out_dir_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="out_dir: expected a directory name, got ''"):
        train_mnist(out_dir="", **TINY)
    assert list(tmp_path.iterdir()) == []


def test_run_dirs_started_in_the_same_second_differ(tmp_path, monkeypatch):
    monkeypatch.setattr(files.time, "strftime", lambda fmt: "20260101-000000")
    a, b, c = (new_run_dir(tmp_path / "runs", "mnist") for _ in range(3))
    assert [p.name for p in (a, b, c)] == [
        "mnist-20260101-000000",
        "mnist-20260101-000000-2",
        "mnist-20260101-000000-3",
    ]


@needs_mnist
def test_two_default_runs_in_one_second_get_two_directories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(files.time, "strftime", lambda fmt: "20260101-000000")
    a = train_mnist(epochs=1, max_steps=2, **TINY)
    b = train_mnist(epochs=1, max_steps=2, **TINY)
    assert a.out_dir != b.out_dir and len(list((tmp_path / "runs").iterdir())) == 2


# ---------------------------------------------------------------------------------------------
# 2. Resume continues the run it resumes, and says so
# ---------------------------------------------------------------------------------------------
@needs_mnist
def test_resume_keeps_the_runs_epochs_and_says_so(tmp_path, monkeypatch, capsys):
    _patch_step(monkeypatch, 7, lambda gan, out: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        train_mnist(out_dir=tmp_path, epochs=4, **TINY)
    monkeypatch.undo()
    capsys.readouterr()
    h = train_mnist(resume=tmp_path / "checkpoint.npz", **TINY)  # no epochs given
    err = capsys.readouterr().err
    assert len(h.steps) == 40 and len(h.epochs) == 4  # 4 epochs, not 30 (or 1)
    assert load_checkpoint(tmp_path / "checkpoint.npz")[1]["epochs"] == 4
    assert (
        "resume: continuing" in err and "at step 7" in err and "epochs 4: the checkpoint's" in err
    )
    h = train_mnist(resume=tmp_path / "checkpoint.npz", epochs=5, **TINY)  # said otherwise
    assert len(h.epochs) == 5


# ---------------------------------------------------------------------------------------------
# 3. A lock on the run directory; unique temp files
# ---------------------------------------------------------------------------------------------
@needs_mnist
def test_a_second_run_into_a_locked_directory_is_refused(tmp_path):
    out = tmp_path / "busy"
    with RunDir(out):  # another run holds it
        with pytest.raises(ValueError, match="is in use by another run"):
            train_mnist(out_dir=out, epochs=1, **TINY)
        assert not (out / "checkpoint.npz").exists()
    h = train_mnist(out_dir=out, epochs=1, **TINY)  # free again
    assert h.artifacts["checkpoint"].is_file()


def test_a_locked_directory_is_refused_across_processes(tmp_path):
    code = "import sys, time; from minigan.files import RunDir\nwith RunDir(sys.argv[1]):\n"
    code += "    print('locked', flush=True); time.sleep(30)\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, env=env
    )
    try:
        assert p.stdout.readline().strip() == b"locked"
        with pytest.raises(ValueError, match="in use by another run"), RunDir(tmp_path):
            pass
    finally:
        p.kill()
        p.wait()
    with RunDir(tmp_path):  # the kernel dropped the lock with the process
        pass


def test_temp_files_have_unique_names(tmp_path):
    target = tmp_path / "log.json"
    with atomic_write(target, "w") as a, atomic_write(target, "w") as b:  # two writers at once
        a.write("first")
        b.write("second")
    assert target.read_text() == "first" and _temps(tmp_path) == []


@needs_mnist
def test_another_writers_temp_name_does_not_break_the_logs(tmp_path):
    out = tmp_path / "run"
    (out / ".log.json.tmp").mkdir(parents=True)  # the fixed name of another writer's temp file
    h = train_mnist(out_dir=out, epochs=1, **TINY)
    assert json.loads(h.artifacts["log_json"].read_text())["steps"][-1]["step"] == 10


# ---------------------------------------------------------------------------------------------
# 4. The last good state is finite
# ---------------------------------------------------------------------------------------------
@needs_mnist
def test_the_saved_last_good_state_never_holds_nan(tmp_path, monkeypatch):
    def poison(gan, out):  # the losses of step 10 are finite; the weights after it are not
        gan.generator.state_dict()["0.weight"][0, 0] = np.nan  # a view of the weight

    _patch_step(monkeypatch, 10, poison)  # the last step of epoch 1: its end saves a checkpoint
    with pytest.raises(NonFiniteLossError, match="non-finite weights after the update of step 10"):
        train_mnist(out_dir=tmp_path, epochs=3, **TINY)
    state, _ = load_checkpoint(tmp_path / "checkpoint.npz")
    floats = [v for v in state.values() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    assert all(np.isfinite(v).all() for v in floats) and state["train.step"] == 5


@needs_mnist
def test_divergence_hint_after_an_absurd_lr_suggests_the_presets(tmp_path):
    with pytest.raises(NonFiniteLossError) as e:
        train_mnist(out_dir=tmp_path, epochs=1, lr=1e300, **TINY)
    msg = str(e.value)
    from minigan.presets import PRESETS

    own = f"try the 'default' preset's lr={PRESETS['default'].lr:g}"  # its lr, not lr / 4
    assert "2.5e+299" not in msg and own in msg


# ---------------------------------------------------------------------------------------------
# 5. Artifacts never write through a symlink; 6. stale temp files are removed
# ---------------------------------------------------------------------------------------------
@needs_mnist
def test_artifacts_replace_planted_symlinks(tmp_path):
    out, outside = tmp_path / "run", tmp_path / "outside"
    (out / "samples").mkdir(parents=True)
    outside.mkdir()
    names = ("samples/epoch_001.png", "losses.png", "progress.gif", "log.json", "log.csv")
    for i, name in enumerate(names):
        victim = outside / f"victim{i}"
        victim.write_text("precious")
        (out / name).symlink_to(victim)
    train_mnist(out_dir=out, epochs=1, overwrite=True, **TINY)  # links count as an old run
    assert [(outside / f"victim{i}").read_text() for i in range(len(names))] == ["precious"] * 5
    for name in ("losses.png", "progress.gif", "log.json", "log.csv", "checkpoint.npz"):
        assert (out / name).is_file() and not (out / name).is_symlink(), name


def test_a_symlink_at_a_grid_path_is_replaced(tmp_path):
    from minigan.viz import save_image_grid

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "grid.png").symlink_to(victim)
    save_image_grid(np.zeros((4, 784), np.float32), tmp_path / "grid.png")
    assert victim.read_text() == "precious" and not (tmp_path / "grid.png").is_symlink()


@needs_mnist
def test_stale_temp_files_are_removed_on_start_and_resume(tmp_path):
    out = tmp_path / "run"
    (out / "samples").mkdir(parents=True)
    stale = [out / ".checkpoint.npz.k1ll3d.tmp", out / "samples" / ".epoch_001.png.x.tmp"]
    for p in stale:
        p.write_bytes(b"\0" * 1000)
    train_mnist(out_dir=out, epochs=1, max_steps=3, **TINY)
    assert _temps(out) == []
    stale[0].write_bytes(b"half a checkpoint")
    train_mnist(resume=out / "checkpoint.npz", epochs=1, max_steps=6, **TINY)
    assert _temps(out) == []
    mine = out / "notes.tmp"  # not a temp file of ours (no leading dot): kept
    mine.write_text("x")
    with RunDir(out):
        pass
    assert mine.exists()


# ---------------------------------------------------------------------------------------------
# 7. SIGTERM and SIGHUP stop like Ctrl-C: checkpoint, message, exit code
# ---------------------------------------------------------------------------------------------
@needs_mnist
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_stop_signals_save_a_checkpoint(tmp_path, sig):
    if not hasattr(signal, sig):
        pytest.skip(f"{sig} does not exist on this platform")
    signum = getattr(signal, sig)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "minigan", "train-mnist", "--out", str(out), "--limit", "320"]
    cmd += ["--batch-size", "32", "--epochs", "1000", "--no-progress", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "log.json").exists() and p.poll() is None:  # epoch 1 done: training
            assert time.monotonic() < deadline, "the run did not finish an epoch in 120 s"
            time.sleep(0.05)
        p.send_signal(signum)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 128 + signum, err
    name = "Ctrl-C" if sig == "SIGINT" else sig
    assert f"{name}: stopping after this step and saving a checkpoint" in err
    assert "Interrupted: saved step" in err and "--resume" in err
    state, _ = load_checkpoint(out / "checkpoint.npz")
    assert state["train.step"] >= 10 and _temps(out) == []


def test_cli_interrupted_exit_code_follows_the_signal(monkeypatch, tmp_path, capsys):
    from minigan.cli import main
    from minigan.train import Interrupted

    def stopped(**kw):
        raise Interrupted(signal.SIGTERM)

    monkeypatch.setattr(sys.modules["minigan.train"], "train", stopped)
    assert main(["train-mnist", "--out", str(tmp_path / "o")]) == 128 + signal.SIGTERM
    assert "minigan: interrupted" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# 11. The hash memo cannot be fooled by a same-size rewrite with its mtime restored
# ---------------------------------------------------------------------------------------------
@needs_mnist
def test_a_rewritten_file_with_restored_mtime_is_hashed_again(tmp_path, monkeypatch):
    from conftest import MNIST_DIR

    from minigan import data

    monkeypatch.setattr(data, "_hash_cache_file", lambda: tmp_path / "memo.json")
    root = tmp_path / "mnist"
    root.mkdir()
    for name in data.MNIST_FILES["test"]:
        (root / name).write_bytes((Path(MNIST_DIR) / name).read_bytes())
    images, _ = data.load_mnist("test", root=root, download=False)
    target = root / data.MNIST_FILES["test"][0]
    st = target.stat()
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, other content
    target.write_bytes(bytes(raw))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # the old mtime
    assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.raises(ValueError, match="wrong SHA-256"):
        data.load_mnist("test", root=root, download=False)


# ---------------------------------------------------------------------------------------------
# 13. Messages
# ---------------------------------------------------------------------------------------------
def test_data_dir_that_is_a_file(tmp_path, monkeypatch):
    from minigan import data

    f = tmp_path / "not-a-dir"
    f.write_text("x")
    monkeypatch.setenv("MINIGAN_DATA_DIR", str(f))
    with pytest.raises(ValueError, match=r"\$MINIGAN_DATA_DIR .*not-a-dir is a file; expected"):
        data.load_mnist("test")


def test_failed_download_leaves_no_empty_data_dir(tmp_path, monkeypatch):
    import pooch

    from minigan import data

    monkeypatch.setattr(pooch, "retrieve", lambda url, **kw: (_ for _ in ()).throw(OSError("x")))
    monkeypatch.setattr(data, "_hash_cache_file", lambda: tmp_path / "memo.json")
    root = tmp_path / "typo" / "data"
    with pytest.raises(data.MNISTNotFoundError, match="downloading it failed"):
        data.load_mnist("test", root=root)
    assert not (tmp_path / "typo").exists()


@needs_mnist
def test_disk_full_names_the_file_and_the_checkpoint_to_resume(tmp_path, monkeypatch):
    import minigan.checkpoint as ck

    real, calls = ck.np.savez, {"n": 0}

    def savez(f, **arrays):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint: the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(f, **arrays)

    monkeypatch.setattr(ck.np, "savez", savez)
    with pytest.raises(OSError) as e:
        train_mnist(out_dir=tmp_path, epochs=3, **TINY)
    msg = str(e.value)
    assert f"no space left on the device while writing {tmp_path / 'checkpoint.npz'}" in msg
    assert "the last checkpoint" in msg and "(step 10) is intact" in msg and "--resume" in msg
    assert (
        _temps(tmp_path) == []
        and load_checkpoint(tmp_path / "checkpoint.npz")[0]["train.step"] == 10
    )


def _gan():
    return build_gan("default", device="cpu", seed=0, latent_dim=8, g_hidden=(16,), d_hidden=(16,))


def test_train_step_names_the_dtype_and_the_shape():
    gan = _gan()
    with pytest.raises(TypeError, match="real: expected dtype float32 .*got int64"):
        gan.train_step(np.zeros((4, 784), np.int64))
    with pytest.raises(ValueError, match=r"real: expected a batch of shape \(N, 784\).*\(4, 700\)"):
        gan.train_step(np.zeros((4, 700), np.float32))


def test_sample_of_a_negative_count():
    with pytest.raises(ValueError, match="n: expected a number of images >= 0, got -3"):
        _gan().sample(-3)


def test_cli_refuses_an_empty_out_and_reuse(tmp_path, capsys):
    from minigan.cli import main

    assert main(["train-mnist", "--out", "", "--device", "cpu"]) == 2
    assert "out_dir: expected a directory name, got ''" in capsys.readouterr().err
    (tmp_path / "checkpoint.npz").write_bytes(b"an earlier run")
    assert main(["train-mnist", "--out", str(tmp_path), "--device", "cpu", "--limit", "128"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "checkpoint.npz").read_bytes() == b"an earlier run"


# ---------------------------------------------------------------------------------------------
# The interrupt / SIGKILL loop (benchmarks/kill_loop.py), short
# ---------------------------------------------------------------------------------------------
@needs_mnist
@pytest.mark.slow
def test_kill_loop(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "kill_loop.py"), "--kills", "6"]
    cmd += ["--dir", str(tmp_path), "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["kills"] == 6 and figures["torn_checkpoints"] == 0
    assert figures["orphans_after_next_start"] == 0 and figures["bit_identical"] is True
