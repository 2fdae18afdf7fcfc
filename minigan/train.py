"""``train_mnist()``: train the MLP GAN on real MNIST and keep everything a student wants to see.

One call loads MNIST (:mod:`minigan.data`), builds a GAN from a preset (:func:`build_gan`),
and runs the loop of :meth:`GAN.train_step` over shuffled mini-batches, with

* a tqdm progress bar showing D loss, G loss, D(x) and D(G(z));
* a sample grid from one fixed noise batch after every epoch (``samples/epoch_NNN.png``), a
  loss-curve plot (``losses.png``), an animated GIF of the grids (``progress.gif``), and a log
  (``log.json`` with the config, ``log.csv`` with one row per step);
* a checkpoint (``checkpoint.npz``) every epoch, at the end, and on Ctrl-C, from which
  ``resume=`` continues exactly (bit-identical weights on CPU).

GPU discipline: ``train_step`` returns 0-d arrays that stay on the device. The loop keeps them
in a list and copies them to the host once every ``log_every`` steps (one ``to_numpy`` of a
stacked ``(log_every, 4)`` array), so the GPU is never made to wait inside a step. The check
for NaN/inf losses therefore happens at those log intervals and at each epoch's end, not after
every step: a non-finite loss is noticed at most ``log_every`` steps late, and training stops
with the state saved at the last interval whose losses were all finite.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .backend import Backend, resolve_device, to_numpy
from .checkpoint import _overrides_from_json, load_checkpoint, restore_gan, save_checkpoint
from .data import MNIST_SIZES, BatchIterator, default_data_dir, load_mnist, preprocess
from .gan import GAN, PRESETS, Preset, build_gan, get_preset
from .health import TrainingDiagnostics
from .viz import make_gif, plot_losses, save_image_grid

__all__ = ["History", "NonFiniteLossError", "train_mnist", "METRICS"]

#: What ``GAN.train_step`` returns and the log records for each step.
METRICS = ("d_loss", "g_loss", "d_real", "d_fake")
#: Settings that define a run; a resumed run takes them from the checkpoint.
RUN_SETTINGS = ("preset", "batch_size", "seed", "limit")
_DEFAULTS = {"preset": "default", "batch_size": 64, "seed": 0, "limit": None}
N_SAMPLES = 64  # images in each sample grid (an 8 x 8 grid)
CHECKPOINT_NAME = "checkpoint.npz"


@dataclass
class History:
    """What :func:`train_mnist` returns.

    Attributes
    ----------
    gan : GAN
        The trained GAN (on the training device).
    steps : list of dict
        One dict per step: ``step`` (1-based, counting across epochs and resumes), ``epoch``
        (1-based), ``d_loss``, ``g_loss``, ``d_real`` = mean D(x), ``d_fake`` = mean D(G(z)),
        as Python floats.
    epochs : list of dict
        One dict per finished epoch: ``epoch``, ``steps``, the means of the four metrics,
        ``seconds`` (wall time of that epoch in this process) and ``grid`` (path or None).
    artifacts : dict of str -> Path
        ``checkpoint``, ``log_json``, ``log_csv``, ``losses``, ``gif``, ``grid`` (the last
        sample grid) and ``samples`` (the directory of grids).
    out_dir : Path
    config : dict
        The run's settings, as stored in the checkpoint and ``log.json``.
    health : list of HealthWarning
        Warnings of the training health checks (:mod:`minigan.health`) in this process.
    """

    gan: GAN
    steps: list[dict[str, float]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, Path] = field(default_factory=dict)
    out_dir: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    health: list[Any] = field(default_factory=list)

    def __repr__(self) -> str:  # the default would print every step
        last = self.steps[-1] if self.steps else None
        tail = f", last: D loss {last['d_loss']:.4f}, G loss {last['g_loss']:.4f}" if last else ""
        return (
            f"History({len(self.steps)} steps, {len(self.epochs)} epochs{tail}, "
            f"out_dir={str(self.out_dir)!r})"
        )


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or inf; training stopped after saving the last good state.

    Attributes
    ----------
    step : int
        The first step whose loss or D output was not finite.
    checkpoint : Path or None
        The checkpoint holding the last good state (None if none could be saved).
    """

    def __init__(self, message: str, step: int, checkpoint: Path | None):
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint


class _Diverged(Exception):
    def __init__(self, row: dict[str, float]):
        super().__init__(row)
        self.row = row


class _StopRequested(Exception):
    """Ctrl-C arrived; raised between two steps so the state is consistent."""


class _SigintGuard:
    """Turn the first Ctrl-C into a flag checked between steps (a second one interrupts).

    Only possible in the main thread; elsewhere it does nothing and a KeyboardInterrupt (if any)
    arrives as usual.
    """

    def __init__(self):
        self.requested = False
        self._old = None

    def _handler(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self._old)  # a second Ctrl-C interrupts at once
        sys.stderr.write("\nCtrl-C: stopping after this step and saving a checkpoint...\n")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None
        return False


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------
def _check_int(name: str, value: Any, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")


_OVERRIDABLE = tuple(f.name for f in fields(Preset) if f.name not in ("name", "notes")) + ("dtype",)


def _split_preset(preset: str | Preset, overrides: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Reduce ``preset`` (a name or a Preset object) to a registered name plus overrides."""
    if isinstance(preset, Preset):
        base = PRESETS.get(preset.name, PRESETS["default"])
        diff = {
            k: v
            for k, v in preset.to_dict().items()
            if k not in ("name", "notes") and getattr(base, k) != v
        }
        return base.name, {**diff, **overrides}
    if not isinstance(preset, str):
        raise ValueError(f"preset: expected a preset name, got {preset!r}")
    get_preset(preset)  # ValueError listing the known presets
    return preset, dict(overrides)


def _check_overrides(overrides: dict[str, Any]) -> None:
    unknown = sorted(set(overrides) - set(_OVERRIDABLE))
    if unknown:
        raise ValueError(
            f"unknown setting(s) {unknown}: train_mnist passes extra keywords to build_gan, "
            f"which accepts {sorted(_OVERRIDABLE)}"
        )


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, (str, int, float, bool, list, dict)) or v is None:
        return v
    return str(v)


def _prepare_out_dir(out_dir: Path) -> bool:
    """Create ``out_dir`` and prove it is writable; return True if it was created here."""
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(
            f"out_dir {out_dir} is not writable ({type(e).__name__}: {e}); choose another "
            "directory (out_dir= / --out)"
        ) from e
    return created


_RESUME_KEYS = ("train.step", "train.epoch", "data.rng", "data.position", "log.epochs") + tuple(
    f"log.{k}" for k in ("step", "epoch", *METRICS)
)


def _reconcile_resume(
    given: dict[str, Any],
    overrides: dict[str, Any],
    ck_state: dict[str, Any],
    ck_config: dict[str, Any],
    path: Path,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run settings for a resumed run: the checkpoint's, unless the caller contradicts them."""
    if ck_config.get("kind") != "minigan.train_mnist":
        raise ValueError(
            f"checkpoint {path} was not written by train_mnist (config kind "
            f"{ck_config.get('kind')!r}); cannot resume from it"
        )
    settings = {}
    for key in RUN_SETTINGS:
        ck = ck_config.get(key)
        if given[key] != _DEFAULTS[key] and given[key] != ck:
            raise ValueError(
                f"resume: the checkpoint {path} was trained with {key}={ck!r} but {key}="
                f"{given[key]!r} was given; leave it out (a resumed run keeps its settings)"
            )
        settings[key] = ck
    ck_over = _overrides_from_json(ck_config.get("overrides", {}))
    missing = sorted(set(_RESUME_KEYS) - set(ck_state))
    if missing:
        raise ValueError(
            f"checkpoint {path} lacks the training state {missing}; cannot resume from it"
        )
    for key, value in overrides.items():
        if key not in ck_over or _jsonable(ck_over[key]) != _jsonable(value):
            raise ValueError(
                f"resume: the checkpoint {path} was trained with {key}="
                f"{ck_over.get(key, '<preset value>')!r} but {key}={value!r} was given; "
                "leave it out (a resumed run keeps its settings)"
            )
    return settings, ck_over


# ----------------------------------------------------------------------------------------------
# State <-> checkpoint
# ----------------------------------------------------------------------------------------------
def _copy_state(gan: GAN) -> dict[str, Any]:
    """``gan.state_dict()`` with every array copied on its device (no host transfer)."""
    xp = gan.backend.xp
    return {
        k: (xp.asarray(v, copy=True) if hasattr(v, "shape") else v)
        for k, v in gan.state_dict().items()
    }


def _state_finite(gan_state: dict[str, Any], xp) -> bool:
    return all(
        bool(xp.all(xp.isfinite(v)))
        for v in gan_state.values()
        if hasattr(v, "shape") and xp.isdtype(v.dtype, "real floating")
    )


@dataclass
class _Snapshot:
    """A consistent training state between two steps (arrays are device copies)."""

    gan_state: dict[str, Any]
    data_state: dict[str, Any]
    step: int
    epochs_done: int
    n_epoch_rows: int


def _checkpoint_state(snap: _Snapshot, steps: list[dict], epochs: list[dict]) -> dict[str, Any]:
    state: dict[str, Any] = {f"gan.{k}": v for k, v in snap.gan_state.items()}
    state["data.rng"] = snap.data_state["rng"]
    state["data.position"] = snap.data_state["position"]
    state["train.step"] = snap.step
    state["train.epoch"] = snap.epochs_done
    rows = steps[: snap.step]  # steps holds every step from 1 (restored on resume)
    state["log.step"] = np.asarray([r["step"] for r in rows], dtype=np.int64)
    state["log.epoch"] = np.asarray([r["epoch"] for r in rows], dtype=np.int64)
    for k in METRICS:
        state[f"log.{k}"] = np.asarray([r[k] for r in rows], dtype=np.float64)
    state["log.epochs"] = json.dumps([_json_row(r) for r in epochs[: snap.n_epoch_rows]])
    return state


def _steps_from_state(state: dict[str, Any]) -> list[dict[str, float]]:
    cols = {k: np.asarray(state[f"log.{k}"]).reshape(-1) for k in ("step", "epoch", *METRICS)}
    return [
        {"step": int(cols["step"][i]), "epoch": int(cols["epoch"][i])}
        | {k: float(cols[k][i]) for k in METRICS}
        for i in range(cols["step"].shape[0])
    ]


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = None  # JSON has no NaN/inf
        elif isinstance(v, Path):
            v = str(v)
        out[k] = v
    return out


def _write_logs(out_dir: Path, config, steps, epochs, artifacts) -> tuple[Path, Path]:
    log_json = out_dir / "log.json"
    log_csv = out_dir / "log.csv"
    head = json.dumps(
        {
            "config": config,
            "epochs": [_json_row(r) for r in epochs],
            "artifacts": {k: str(v) for k, v in artifacts.items()},
        },
        indent=1,
    )
    rows = ",\n  ".join(json.dumps(_json_row(r)) for r in steps)  # one step per line
    tmp = log_json.with_name(".log.json.tmp")
    tmp.write_text(head[: -len("\n}")] + ',\n "steps": [\n  ' + rows + "\n ]\n}\n")
    os.replace(tmp, log_json)
    tmp = log_csv.with_name(".log.csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "epoch", *METRICS])
        for r in steps:
            w.writerow([r["step"], r["epoch"], *(repr(r[k]) for k in METRICS)])
    os.replace(tmp, log_csv)
    return log_json, log_csv


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    return (
        f"epoch {row['epoch']}/{epochs}: {row['steps']} steps, D loss {row['d_loss']:.4f}, "
        f"G loss {row['g_loss']:.4f}, D(x) {row['d_real']:.3f}, D(G(z)) {row['d_fake']:.3f}, "
        f"{row['seconds']:.1f} s"
    )


# ----------------------------------------------------------------------------------------------
# The main job
# ----------------------------------------------------------------------------------------------
def train_mnist(
    epochs: int = 30,
    batch_size: int = 64,
    preset: str | Preset = "default",
    device: Any = "auto",
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    progress: bool = True,
    log_every: int = 50,
    sample_every_epoch: bool = True,
    *,
    max_steps: int | None = None,
    limit: int | None = None,
    checkpoint_every_epoch: bool = True,
    health: bool = True,
    metrics_every: int | None = None,
    metrics_samples: int = 2000,
    **overrides: Any,
) -> History:
    """Train a GAN on the real MNIST training set and write its pictures, log and checkpoints.

    Parameters
    ----------
    epochs : int
        Total epochs (passes over the data); a resumed run continues up to this number.
    batch_size : int
        Real images per step (and as many fakes); 1 <= batch_size <= training set size.
    preset : str or Preset
        ``"default"`` or ``"seed-keras-mlp"`` (see :data:`minigan.gan.PRESETS`).
    device : {"auto", "cpu", "gpu"} or a device object
        ``"auto"`` uses CuPy when it sees a GPU, else NumPy.
    seed : int
        Seeds the weights, the noise, the data order and the fixed sample noise.
    data_dir : path, optional
        Where the MNIST ``.gz`` files are (or go); default ``$MINIGAN_DATA_DIR``, else the
        user cache dir (:func:`minigan.data.load_mnist`).
    out_dir : path, optional
        Where everything is written; default ``./runs/mnist-<YYYYmmdd-HHMMSS>``, or the
        checkpoint's directory when resuming.
    resume : path, optional
        A ``checkpoint.npz`` to continue from. The run's settings (preset, batch_size, seed,
        limit and the overrides) come from the checkpoint; arguments left at their defaults
        are ignored, and one that contradicts the checkpoint raises ``ValueError``.
    progress : bool
        Show a tqdm bar with D loss, G loss, D(x), D(G(z)). Without it, one line per epoch
        is printed instead.
    log_every : int
        Steps between host transfers of the losses (bar update and NaN check).
    sample_every_epoch : bool
        Write ``samples/epoch_NNN.png`` after each epoch.
    max_steps : int, optional
        Stop after this many steps in total (counting those before a resume), e.g. for tests
        and the lessons' small mode. All artifacts and a final checkpoint are still written.
    limit : int, optional
        Train on the first ``limit`` training images only (small mode).
    checkpoint_every_epoch : bool
        Save ``checkpoint.npz`` after every epoch (it is always saved at the end).
    health : bool
        Run the health checks of :class:`minigan.health.HealthMonitor` at every log interval
        (D winning, D(G(z)) stuck near 0, G loss rising, exploding gradients) and print each
        warning once, with a suggested fix.
    metrics_every : int, optional
        Every this many epochs, score ``metrics_samples`` images from fixed noise with the MNIST
        classifier (Inception score, Frechet classifier distance, digits covered; also checks
        for mode collapse), print one line, store it in ``History.epochs[i]["metrics"]`` and
        plot ``metrics.png``. The first use trains and caches the classifier (about a minute).
    metrics_samples : int
        Images per metrics evaluation (>= 10; default 2000).
    **overrides
        Passed to :func:`minigan.gan.build_gan`: preset fields (``lr=1e-4``,
        ``g_loss="saturating"``, ``g_hidden=(128,)``...) or ``dtype``.

    Returns
    -------
    History
        ``gan``, ``steps``, ``epochs``, ``artifacts`` (paths written), ``out_dir``, ``config``.

    Raises
    ------
    ValueError
        Bad arguments (``batch_size <= 0`` or larger than the data, unknown preset or
        override, ...), an ``out_dir`` that is not writable (raised before any work), a
        resume checkpoint that is truncated, foreign, or does not match the model.
    RuntimeError
        ``device="gpu"`` without CuPy or a GPU.
    MNISTNotFoundError
        No MNIST files and no way to download them.
    NonFiniteLossError
        A loss became NaN/inf; raised after the last good state was saved to the checkpoint.
    KeyboardInterrupt
        Re-raised after Ctrl-C, once a checkpoint of the last completed step was saved.

    Notes
    -----
    Losses are copied to the host every ``log_every`` steps and at the end of each epoch, so
    NaN/inf is detected there (a per-step check would make a GPU wait after every step). The
    saved state is the one at the last check whose losses were all finite.

    ``losses.png`` is redrawn at an epoch's end at most every 30 s (drawing takes a few
    tenths of a second) and always at the end; ``log.json``/``log.csv`` after every epoch.

    Resuming reproduces an uninterrupted run exactly (bit-identical on CPU): the checkpoint
    holds the weights, Adam's moments and step counts, the noise generator's state, the data
    generator's state at the start of the current epoch and the number of batches already
    taken from it.
    """
    # ---- validate everything cheap first: nothing is written if an argument is wrong ----
    _check_int("epochs", epochs, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("log_every", log_every, 1)
    _check_int("max_steps", max_steps, 1, allow_none=True)
    _check_int("limit", limit, 1, allow_none=True)
    _check_int("seed", seed, 0)
    _check_int("metrics_every", metrics_every, 1, allow_none=True)
    _check_int("metrics_samples", metrics_samples, 10)
    preset_name, overrides = _split_preset(preset, overrides)
    _check_overrides(overrides)
    backend: Backend = resolve_device(device)  # RuntimeError for "gpu" without CuPy

    ck_state: dict[str, Any] | None = None
    if resume is not None:
        resume = Path(resume)
        ck_state, ck_config = load_checkpoint(resume)
        given = {"preset": preset_name, "batch_size": batch_size, "seed": seed, "limit": limit}
        settings, overrides = _reconcile_resume(given, overrides, ck_state, ck_config, resume)
        preset_name, batch_size, seed, limit = (settings[k] for k in RUN_SETTINGS)

    n_train = MNIST_SIZES["train"] if limit is None else min(limit, MNIST_SIZES["train"])
    if batch_size > n_train:
        raise ValueError(
            f"batch_size: expected <= {n_train} (the number of training images"
            f"{' with limit=' + str(limit) if limit else ''}), got {batch_size}"
        )
    if out_dir is None:
        if resume is not None:
            out_dir = resume.parent
        else:
            out_dir = Path("runs") / time.strftime("mnist-%Y%m%d-%H%M%S")
    out_dir = Path(out_dir)
    created = _prepare_out_dir(out_dir)

    try:
        images, _ = load_mnist("train", root=data_dir)
        x = preprocess(images[:n_train])
        del images
        try:
            gan = build_gan(preset_name, device=backend, seed=seed, **overrides)
        except TypeError as e:
            raise ValueError(f"cannot build the GAN: {e}") from e
        loader = BatchIterator(
            x, batch_size, device=backend, dtype=gan.dtype, seed=np.random.default_rng([seed, 1])
        )
        del x
        if ck_state is not None:
            restore_gan(gan, ck_state, resume)
            loader.load_state_dict(
                {"rng": ck_state["data.rng"], "position": ck_state["data.position"]}
            )
    except BaseException:
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise

    config = {
        "kind": "minigan.train_mnist",
        "preset": preset_name,
        "overrides": {k: _jsonable(v) for k, v in overrides.items()},
        "batch_size": int(batch_size),
        "seed": int(seed),
        "limit": limit,
        "epochs": int(epochs),
        "max_steps": max_steps,
        "log_every": int(log_every),
        "device": backend.name,
        "dtype": str(gan.dtype),
        "n_train": int(n_train),
        "steps_per_epoch": len(loader),
        "data_dir": str(Path(data_dir) if data_dir is not None else default_data_dir()),
        "preset_fields": {k: _jsonable(v) for k, v in gan.preset.to_dict().items()},
    }
    from . import __version__

    config["minigan_version"] = __version__

    history = History(gan=gan, out_dir=out_dir, config=config)
    step = 0
    epochs_done = 0
    if ck_state is not None:
        step = int(ck_state["train.step"])
        epochs_done = int(ck_state["train.epoch"])
        history.steps = _steps_from_state(ck_state)
        history.epochs = json.loads(ck_state["log.epochs"])
        ck_state = None  # free the host copy

    samples_dir = out_dir / "samples"
    checkpoint_path = out_dir / CHECKPOINT_NAME
    art = history.artifacts
    art["samples"] = samples_dir
    host_dtype = np.float32 if "32" in str(gan.dtype) else np.float64
    # One fixed noise batch: every epoch's grid shows the same 64 z, so the GIF shows each
    # digit taking shape. Its own generator: sampling never moves the training noise.
    z_fixed = gan.backend.asarray(
        np.random.default_rng([seed, 2]).standard_normal((N_SAMPLES, gan.latent_dim), host_dtype),
        dtype=gan.dtype,
    )
    xp = gan.backend.xp
    steps_per_epoch = len(loader)
    total = (
        epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    )

    def done() -> bool:
        return epochs_done >= epochs or (max_steps is not None and step >= max_steps)

    def snapshot() -> _Snapshot:
        return _Snapshot(
            _copy_state(gan), loader.state_dict(), step, epochs_done, len(history.epochs)
        )

    def save(snap: _Snapshot) -> Path:
        save_checkpoint(
            checkpoint_path, _checkpoint_state(snap, history.steps, history.epochs), config
        )
        art["checkpoint"] = checkpoint_path
        return checkpoint_path

    def grid(name: str) -> Path:
        path = save_image_grid(gan.sample(N_SAMPLES, z=z_fixed), samples_dir / name)
        art["grid"] = path
        return path

    last_plot = [time.perf_counter()]

    def write_logs(plot: bool = True) -> None:
        if history.steps and plot:
            art["losses"] = plot_losses(history.steps, out_dir / "losses.png")
            last_plot[0] = time.perf_counter()
        art["log_json"], art["log_csv"] = _write_logs(
            out_dir, config, history.steps, history.epochs, art
        )

    pending: list[tuple[int, int, dict[str, Any]]] = []  # device results since the last flush

    def flush(check: bool = True) -> None:
        """Copy the pending per-step results to the host in one transfer; check finiteness."""
        if not pending:
            return
        stacked = xp.stack([xp.stack([out[k] for k in METRICS]) for _, _, out in pending])
        values = to_numpy(stacked).astype(np.float64)  # (L, 4): the one host sync
        rows = [
            {"step": s, "epoch": e} | dict(zip(METRICS, map(float, v), strict=True))
            for (s, e, _), v in zip(pending, values, strict=True)
        ]
        pending.clear()
        history.steps.extend(rows)
        if check:
            bad = ~np.isfinite(values).all(axis=1)
            if bad.any():
                raise _Diverged(rows[int(np.argmax(bad))])
        last = rows[-1]
        bar.set_postfix(
            {
                "D loss": f"{last['d_loss']:.3f}",
                "G loss": f"{last['g_loss']:.3f}",
                "D(x)": f"{last['d_real']:.3f}",
                "D(G(z))": f"{last['d_fake']:.3f}",
            },
            refresh=False,
        )

    from tqdm.auto import tqdm

    good = snapshot()  # the last state known to be finite and consistent
    bar = tqdm(
        total=total, initial=min(step, total), disable=not progress, unit="step", dynamic_ncols=True
    )
    say = bar.write if progress else print
    diag = TrainingDiagnostics(
        gan,
        health=health,
        metrics_every=metrics_every,
        metrics_samples=metrics_samples,
        data_dir=data_dir,
        seed=seed,
        out_dir=out_dir,
        say=say,
    )
    history.health = diag.warnings
    last_saved_step = -1
    try:
        with _SigintGuard() as guard:
            while not done():
                epoch = epochs_done + 1
                bar.set_description(f"epoch {epoch}/{epochs}")
                t0 = time.perf_counter()
                for real in loader:
                    out = gan.train_step(real)  # 0-d device arrays: no sync here
                    step += 1
                    pending.append((step, epoch, out))
                    bar.update(1)
                    if step % log_every == 0:
                        # ---- at log interval: the only host sync inside an epoch ----
                        flush()
                        good = snapshot()
                        diag.on_log(step, history.steps[-log_every:])  # health checks
                    if guard.requested:
                        raise _StopRequested
                    if max_steps is not None and step >= max_steps:
                        break
                flush()
                if loader.position not in (0, steps_per_epoch):
                    break  # stopped mid-epoch by max_steps
                # ---- at epoch end ----
                epochs_done += 1
                rows = [r for r in history.steps if r["epoch"] == epoch]
                summary: dict[str, Any] = {"epoch": epoch, "steps": len(rows)}
                summary |= {k: float(np.mean([r[k] for r in rows])) for k in METRICS}
                summary["seconds"] = time.perf_counter() - t0
                summary["grid"] = (
                    str(grid(f"epoch_{epoch:03d}.png")) if sample_every_epoch else None
                )
                history.epochs.append(summary)
                metrics_row = diag.on_epoch_end(epoch, step)  # every metrics_every epochs
                if metrics_row is not None:
                    summary["metrics"] = metrics_row
                    art.update(diag.artifacts)
                good = snapshot()
                if checkpoint_every_epoch:
                    save(good)
                    last_saved_step = step
                # The plot takes ~0.3 s: refresh it at most every 30 s (and at the end).
                write_logs(plot=time.perf_counter() - last_plot[0] > 30)
                say(_epoch_line(summary, epochs))
    except _StopRequested:
        try:
            flush()
            good = snapshot()
        except _Diverged:
            pass
        bar.close()
        path = save(good)
        write_logs()
        print(
            f"Interrupted: saved step {good.step} to {path}; continue with "
            f"resume='{path}' (CLI: --resume {path}).",
            file=sys.stderr,
        )
        raise KeyboardInterrupt from None
    except KeyboardInterrupt:  # a second Ctrl-C, or outside the main thread: mid-step
        bar.close()
        pending.clear()
        path = save(good)
        write_logs()
        print(f"Interrupted: saved step {good.step} to {path}.", file=sys.stderr)
        raise
    except _Diverged as d:
        bar.close()
        pending.clear()
        saved: Path | None = None
        if _state_finite(good.gan_state, xp):
            saved = save(good)
        elif checkpoint_path.exists():
            saved = checkpoint_path
        write_logs()
        row = d.row
        bad = ", ".join(f"{k}={row[k]}" for k in METRICS)
        where = (
            f"saved the last good state (step {good.step}) to {saved}"
            if saved
            else ("no good state could be saved")
        )
        raise NonFiniteLossError(
            f"non-finite loss at step {row['step']} (epoch {row['epoch']}): {bad}; training "
            f"stopped and {where}. Likely causes: a learning rate too high (lr="
            f"{gan.preset.lr:g}; try lr={gan.preset.lr / 4:g}), the saturating G loss, or "
            "data outside [-1, 1]. Losses are checked every log_every steps, so the first bad "
            "step is at most log_every steps before the check.",
            step=row["step"],
            checkpoint=saved,
        ) from None
    finally:
        bar.close()

    # ---- the end: final grid, checkpoint, GIF, plots, logs ----
    epoch_grids = sorted(samples_dir.glob("epoch_[0-9][0-9][0-9].png"))
    frames = list(epoch_grids)
    if loader.position not in (0, steps_per_epoch) or not frames:
        frames.append(grid(f"step_{step:06d}.png"))  # stopped mid-epoch: one more grid
    if step != last_saved_step:
        save(snapshot())
    art["gif"] = make_gif(frames, out_dir / "progress.gif")
    write_logs()
    return history
