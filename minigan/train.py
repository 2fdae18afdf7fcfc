"""``train()``: train any preset's GAN on any registered dataset and keep everything a student
wants to see; ``train_mnist()`` is ``train(dataset="mnist")`` with minigan 0.1's signature.

One call loads a dataset (:func:`minigan.data.load`), builds a GAN from a preset
(:mod:`minigan.presets`, :func:`minigan.gan.build_gan`), and runs the loop of
:meth:`GAN.train_step` over shuffled mini-batches, with

* a tqdm progress bar showing the step's metrics (D loss, G loss, D(x), D(G(z)) for BCE);
* a sample grid from one fixed noise batch after every epoch (``samples/epoch_NNN.png``, grey
  or RGB), a loss-curve plot (``losses.png``), an animated GIF of the grids (``progress.gif``),
  and a log (``log.json`` with the config, ``log.csv`` with one row per step);
* a checkpoint (``checkpoint.npz``) every epoch, at the end, and on Ctrl-C, from which
  ``resume=`` continues exactly (bit-identical weights on CPU).

The loop is a handful of small objects, each doing one thing: :class:`_Recorder` (device
results -> host rows, NaN check), :class:`_Artifacts` (grids, plots, GIF, logs),
:class:`_Checkpointer` (snapshots and saving), and :class:`_Trainer` (the epochs, with the
interrupt and divergence handlers). Nothing in it depends on the preset's or dataset's name:
images reach the models in the shape the preset's builders take (:mod:`minigan.models`), and
the metric names come from the step's result dict.

GPU discipline: ``train_step`` returns 0-d arrays that stay on the device. The loop keeps them
in a list and copies them to the host once every ``log_every`` steps (one ``to_numpy`` of a
stacked ``(log_every, n_metrics)`` array), so the GPU is never made to wait inside a step. The
check for NaN/inf losses therefore happens at those log intervals and at each epoch's end, not
after every step: a non-finite loss is noticed at most ``log_every`` steps late, and training
stops with the state saved at the last interval whose losses were all finite.
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backend import Backend, resolve_device, to_numpy
from .checkpoint import _overrides_from_json, load_checkpoint, restore_gan, save_checkpoint
from .classifier import CLASSIFIERS
from .data import BatchIterator, Dataset, dataset_dir, get_dataset, load, preprocess
from .files import RunDir, atomic_write, new_run_dir
from .gan import GAN, build_gan
from .health import TrainingDiagnostics
from .presets import PRESETS, Preset, get_preset
from .viz import make_gif, plot_losses, save_image_grid

__all__ = ["History", "NonFiniteLossError", "Interrupted", "train", "train_mnist", "METRICS"]

#: What ``GAN.train_step`` returns for the BCE games, and what their logs record per step.
METRICS = ("d_loss", "g_loss", "d_real", "d_fake")
#: Settings that define a run; a resumed run takes them from the checkpoint.
RUN_SETTINGS = ("preset", "batch_size", "seed", "limit", "validation_size")
_DEFAULTS = {
    "preset": "default",
    "batch_size": 64,
    "seed": 0,
    "limit": None,
    "validation_size": None,
}
N_SAMPLES = 64  # images in each sample grid (an 8 x 8 grid)
CHECKPOINT_NAME = "checkpoint.npz"
CONFIG_KINDS = ("minigan.train", "minigan.train_mnist")  # written by train(), train_mnist()
#: Progress-bar names of the metrics (others show under their own key).
LABELS = {"d_loss": "D loss", "g_loss": "G loss", "d_real": "D(x)", "d_fake": "D(G(z))"}


@dataclass
class History:
    """What :func:`train` returns.

    Attributes
    ----------
    gan : GAN
        The trained GAN (on the training device).
    steps : list of dict
        One dict per step: ``step`` (1-based, counting across epochs and resumes), ``epoch``
        (1-based) and the step's metrics as Python floats (BCE games: ``d_loss``, ``g_loss``,
        ``d_real`` = mean D(x), ``d_fake`` = mean D(G(z))).
    epochs : list of dict
        One dict per finished epoch: ``epoch``, ``steps``, the means of the metrics,
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
    def __init__(self, row: dict[str, float], what: str = "loss"):
        super().__init__(row)
        self.row = row
        self.what = what  # "loss", or "weights" (finite losses, but the update made NaN/inf)


class _StopRequested(Exception):
    """Ctrl-C (or SIGTERM/SIGHUP) arrived; raised between two steps so the state is consistent."""


class Interrupted(KeyboardInterrupt):
    """Raised after a stop signal once the checkpoint is saved; ``signum`` says which signal.

    A ``KeyboardInterrupt``, so code that catches Ctrl-C catches SIGTERM and SIGHUP too; the
    CLI exits with ``128 + signum`` (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
    """

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signum)
        self.signum = int(signum)


#: The signals that stop a run cleanly: Ctrl-C, a job scheduler's TERM, a closed terminal's HUP.
STOP_SIGNALS = tuple(
    getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)
)


class _SigintGuard:
    """Turn the first stop signal (:data:`STOP_SIGNALS`) into a flag checked between steps; a
    second one acts at once (Ctrl-C: KeyboardInterrupt; SIGTERM/SIGHUP: the default, exit).

    Only possible in the main thread; elsewhere it does nothing and a KeyboardInterrupt (if any)
    arrives as usual.
    """

    def __init__(self):
        self.requested = False
        self.signum = signal.SIGINT
        self._old: dict[int, Any] = {}

    def _handler(self, signum, frame):
        self.requested, self.signum = True, signum
        for sig, old in self._old.items():  # a second signal acts at once
            signal.signal(sig, signal.SIG_DFL if old is None else old)
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        sys.stderr.write(f"\n{name}: stopping after this step and saving a checkpoint...\n")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._old[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)
        self._old = {}
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


_OVERRIDABLE = tuple(Preset.overridable()) + ("dtype",)


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
            f"unknown setting(s) {unknown}: train passes extra keywords to build_gan as preset "
            f"fields, which are {sorted(_OVERRIDABLE)}"
        )


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, (str, int, float, bool, list)) or v is None:
        return v
    return str(v)


def _choose_out_dir(out_dir, s: _Settings) -> tuple[Path, bool]:
    """The run directory and whether it is new: ``out_dir``, the resumed checkpoint's
    directory, or a new ``runs/<dataset>-<time>[-N]``."""
    if out_dir is not None and str(out_dir).strip() == "":
        raise ValueError(
            "out_dir: expected a directory name, got '' (that would be the current directory; "
            "pass '.' to mean it)"
        )
    if out_dir is None and s.resume is not None:
        out_dir = s.resume.parent
    if out_dir is None:
        parent = Path("runs")
        _prepare_out_dir(parent)  # ValueError if runs/ cannot be written
        return new_run_dir(parent, s.dataset.name), True
    out_dir = Path(out_dir)
    return out_dir, _prepare_out_dir(out_dir)


def _check_reuse(run_dir: RunDir, s: _Settings, overwrite: bool) -> None:
    """Never replace an earlier run's files silently: resume it, or say ``overwrite=True``."""
    resuming_here = s.resume is not None and s.resume.resolve().parent == run_dir.path.resolve()
    if resuming_here or not run_dir.holds_run():
        return
    if not overwrite:
        raise ValueError(
            f"out_dir {run_dir.path} holds an earlier run (its checkpoint, logs or samples); "
            "continue it with resume=<its checkpoint.npz> (--resume), choose another "
            "directory, or pass overwrite=True (--overwrite) to replace its files"
        )
    run_dir.clear_run()  # the old grids must not end up in the new progress.gif


def _remove_if_empty(run_dir: RunDir) -> None:
    """Remove a directory this call created when nothing but the lock file is in it."""
    if {p.name for p in run_dir.path.iterdir()} <= {Path(run_dir.lock.lock_file).name}:
        for p in run_dir.path.iterdir():
            p.unlink()
        run_dir.path.rmdir()


def _say_resuming(s: _Settings, opts: dict[str, Any]) -> None:
    """One line on stderr: what the resumed run continues, and where its settings came from."""
    step, epoch = int(s.ck_state["train.step"]), int(s.ck_state["train.epoch"])
    until = f"epoch {s.epochs}" + (f" or step {opts['max_steps']}" if opts["max_steps"] else "")
    print(
        f"resume: continuing {s.resume} at step {step} (epoch {epoch} done) until {until}, "
        f"with its settings (preset {s.preset_name!r}, batch_size {s.batch_size}, seed "
        f"{s.seed}, limit {s.limit}); epochs {s.epochs}: {s.epochs_source}",
        file=sys.stderr,
    )


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


# ----------------------------------------------------------------------------------------------
# The run's settings (validated before anything is written) and resuming
# ----------------------------------------------------------------------------------------------
@dataclass
class _Settings:
    """What defines a run: preset (name + overrides), dataset, batch size, seed, limit, holdout."""

    preset_name: str
    overrides: dict[str, Any]
    dataset: Dataset
    epochs: int | None
    batch_size: int | None
    seed: int
    limit: int | None
    validation_size: int | None = None
    resume: Path | None = None
    ck_state: dict[str, Any] | None = None
    ck_config: dict[str, Any] | None = None
    epochs_source: str = "as given"  # for the resume line: "as given", or "the checkpoint's"
    data_options: dict[str, Any] = field(default_factory=dict)
    n_loaded: int | None = None  # images the loader returned (known once loaded)

    @property
    def preset(self) -> Preset:
        """The registered preset with the overrides applied (``dtype`` is not a field)."""
        over = {k: v for k, v in self.overrides.items() if k != "dtype"}
        return get_preset(self.preset_name).with_overrides(**over)

    @property
    def holdout(self) -> tuple[int, int] | None:
        """The held-out images ``[N - validation_size, N)`` of the training split, or None."""
        n = self.n_total
        return None if not self.validation_size else (n - self.validation_size, n)

    @property
    def n_total(self) -> int:
        """Images of the training split: the loader's count once loaded (a data_options subset)."""
        return self.dataset.sizes["train"] if self.n_loaded is None else self.n_loaded

    @property
    def n_train(self) -> int:
        n = self.n_total if self.holdout is None else self.holdout[0]
        return n if self.limit is None else min(self.limit, n)

    def check_holdout(self) -> None:
        """Refuse a validation split that is empty, the whole split, or overlaps ``limit``."""
        from .metrics import check_holdout

        n = self.dataset.sizes["train"]
        _check_int("validation_size", self.validation_size, 1, allow_none=True)
        if self.holdout is None:
            return
        if self.validation_size >= n:
            raise ValueError(
                f"validation_size: expected < {n} (the {self.dataset.name} training images), "
                f"got {self.validation_size}"
            )
        trained = self.holdout[0] if self.limit is None else min(self.limit, n)
        check_holdout(self.holdout, (0, trained), n)  # a limit past the held-out start overlaps


def _resume_keys(names: tuple[str, ...]) -> tuple[str, ...]:
    fixed = ("train.step", "train.epoch", "data.rng", "data.position", "log.epochs")
    return fixed + tuple(f"log.{k}" for k in ("step", "epoch", *names))


def _metric_names(gan: GAN) -> tuple[str, ...]:
    """The keys of ``gan.train_step``'s result: d_loss, g_loss and the objective's metrics."""
    return ("d_loss", "g_loss", *gan.objective.metric_names)


def _check_kind(ck_config: dict[str, Any], s: _Settings) -> None:
    path = s.resume
    if ck_config.get("kind") not in CONFIG_KINDS:
        raise ValueError(
            f"checkpoint {path} was not written by train_mnist or train (config kind "
            f"{ck_config.get('kind')!r}); cannot resume from it"
        )
    trained_on = ck_config.get("dataset", "mnist")
    if trained_on != s.dataset.name:
        raise ValueError(
            f"resume: the checkpoint {path} was trained on dataset {trained_on!r} but "
            f"dataset={s.dataset.name!r} was asked for; pass dataset={trained_on!r}"
        )


def _reconcile_resume(s: _Settings, ck_state, ck_config) -> None:
    """Run settings for a resumed run: the checkpoint's, unless the caller contradicts them."""
    path = s.resume
    _check_kind(ck_config, s)
    given = {
        "preset": s.preset_name,
        "batch_size": s.batch_size,
        "seed": s.seed,
        "limit": s.limit,
        "validation_size": s.validation_size,
    }
    for key in RUN_SETTINGS:
        ck = ck_config.get(key)
        if given[key] not in (None, _DEFAULTS[key]) and given[key] != ck:
            raise ValueError(
                f"resume: the checkpoint {path} was trained with {key}={ck!r} but {key}="
                f"{given[key]!r} was given; leave it out (a resumed run keeps its settings)"
            )
    s.preset_name, s.batch_size, s.seed, s.limit, s.validation_size = (
        ck_config.get(k) for k in RUN_SETTINGS
    )
    ck_over = _overrides_from_json(ck_config.get("overrides", {}))
    names = tuple(ck_config.get("metrics", METRICS))  # minigan 0.1 logged the BCE metrics
    missing = sorted(set(_resume_keys(names)) - set(ck_state))
    if missing:
        raise ValueError(
            f"checkpoint {path} lacks the training state {missing}; cannot resume from it"
        )
    for key, value in s.overrides.items():
        if key not in ck_over or _jsonable(ck_over[key]) != _jsonable(value):
            raise ValueError(
                f"resume: the checkpoint {path} was trained with {key}="
                f"{ck_over.get(key, '<preset value>')!r} but {key}={value!r} was given; "
                "leave it out (a resumed run keeps its settings)"
            )
    s.overrides = ck_over
    s.ck_state, s.ck_config = ck_state, ck_config
    if s.epochs is None and ck_config.get("epochs") is not None:  # the run's own length
        s.epochs = int(ck_config["epochs"])
        s.epochs_source = "the checkpoint's (pass epochs= / --epochs to change it)"
    ck_data = _overrides_from_json(ck_config.get("data_options", {}))
    if s.data_options and _jsonable(s.data_options) != _jsonable(ck_data):
        raise ValueError(
            f"resume: the checkpoint {path} was trained with data_options={ck_data!r} but "
            f"data_options={s.data_options!r} was given; leave it out"
        )
    s.data_options = ck_data


def _check_data_options(data_options: dict[str, Any]) -> None:
    """The keys must be keyword-only options of :func:`minigan.data.load` (e.g. ``batches``)."""
    known = [n for n, p in inspect.signature(load).parameters.items() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(data_options) - set(known))
    if unknown:
        raise ValueError(f"data_options: expected keys among {known}, got {unknown}")


def _no_dtype(overrides: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in overrides.items() if k != "dtype"}


def _settings(
    preset,
    dataset,
    epochs,
    batch_size,
    seed,
    limit,
    resume,
    overrides,
    validation_size=None,
    data_options=None,
) -> _Settings:
    """Validate the run's arguments (nothing is written) and apply a resume checkpoint's."""
    _check_int("epochs", epochs, 1, allow_none=True)
    _check_int("batch_size", batch_size, 1, allow_none=True)
    _check_int("limit", limit, 1, allow_none=True)
    _check_int("seed", seed, 0)
    preset_name, overrides = _split_preset(preset, overrides)
    _check_overrides(overrides)
    s = _Settings(preset_name, overrides, get_dataset(dataset), epochs, batch_size, seed, limit)
    s.data_options = dict(data_options or {})
    _check_data_options(s.data_options)
    s.validation_size = validation_size
    s.check_holdout()  # before any work: a held-out range that overlaps the training images
    _ = s.preset  # ValueError for a bad override value (g_loss="bogus")
    if resume is not None:
        s.resume = Path(resume)
        ck_state, ck_config = load_checkpoint(s.resume)
        _reconcile_resume(s, ck_state, ck_config)
    if s.batch_size is None:
        s.batch_size = s.preset.batch_size
    if s.epochs is None:
        s.epochs = s.preset.epochs
    _check_batch_size(s)
    return s


def _check_batch_size(s: _Settings) -> None:
    if s.batch_size > s.n_train:
        raise ValueError(
            f"batch_size: expected <= {s.n_train} (the number of training images"
            f"{' with limit=' + str(s.limit) if s.limit else ''}), got {s.batch_size}"
        )


# ----------------------------------------------------------------------------------------------
# Data and model
# ----------------------------------------------------------------------------------------------
def _build(s: _Settings, backend: Backend, data_dir) -> tuple[GAN, BatchIterator]:
    """The GAN of the preset and the batches of the dataset, in the shape the models take."""
    try:
        gan = build_gan(
            s.preset_name,
            device=backend,
            seed=s.seed,
            image_shape=s.dataset.image_shape,
            **s.overrides,
        )
    except TypeError as e:
        raise ValueError(f"cannot build the GAN: {e}") from e
    images, labels = load(s.dataset.name, "train", root=data_dir, **s.data_options)
    s.n_loaded = len(images)  # fewer than the split when data_options chose a subset
    _check_batch_size(s)
    x = preprocess(images[: s.n_train])  # (N, C*H*W) float32 in [-1, 1]
    del images
    x = x.reshape((x.shape[0], *gan.data_shape))  # flat for MLPs, (N, C, H, W) for conv nets
    y = _class_labels(gan, labels[: s.n_train]) if gan.conditional else None
    loader = BatchIterator(
        x, s.batch_size, device=backend, dtype=gan.dtype, seed=np.random.default_rng([s.seed, 1]),
        labels=y,
    )  # fmt: skip
    if s.ck_state is not None:
        restore_gan(gan, s.ck_state, s.resume)
        loader.load_state_dict(
            {"rng": s.ck_state["data.rng"], "position": s.ck_state["data.position"]}
        )
    return gan, loader


def _class_labels(gan: GAN, labels: np.ndarray) -> np.ndarray:
    """The dataset's labels, checked once on the host against the GAN's ``num_classes``."""
    if labels.size and (labels.min() < 0 or labels.max() >= gan.num_classes):
        raise ValueError(
            f"labels: the GAN is conditional on {gan.num_classes} classes, the dataset's "
            f"labels span {labels.min()}..{labels.max()}"
        )
    return labels.astype(np.int64)


def _config(s: _Settings, gan: GAN, loader: BatchIterator, opts: dict, backend, data_dir):
    from . import __version__

    return {
        "kind": "minigan.train",
        "preset": s.preset_name,
        "overrides": {k: _jsonable(v) for k, v in s.overrides.items()},
        "dataset": s.dataset.name,
        "data_options": _jsonable(s.data_options),
        "batch_size": int(s.batch_size),
        "seed": int(s.seed),
        "limit": s.limit,
        "validation_size": s.validation_size,
        "holdout": None if s.holdout is None else list(s.holdout),
        "epochs": int(s.epochs),
        "max_steps": opts["max_steps"],
        "log_every": int(opts["log_every"]),
        "device": backend.name,
        "dtype": str(gan.dtype),
        "n_train": int(s.n_train),
        "steps_per_epoch": len(loader),
        "data_dir": str(dataset_dir(s.dataset, data_dir)),
        "image_shape": list(gan.image_shape),
        "metrics": list(_metric_names(gan)),
        "preset_fields": _jsonable(gan.preset.to_dict()),
        "minigan_version": __version__,
    }


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


def _checkpoint_state(snap: _Snapshot, history: History, names) -> dict[str, Any]:
    state: dict[str, Any] = {f"gan.{k}": v for k, v in snap.gan_state.items()}
    state["data.rng"] = snap.data_state["rng"]
    state["data.position"] = snap.data_state["position"]
    state["train.step"] = snap.step
    state["train.epoch"] = snap.epochs_done
    rows = history.steps[: snap.step]  # steps holds every step from 1 (restored on resume)
    state["log.step"] = np.asarray([r["step"] for r in rows], dtype=np.int64)
    state["log.epoch"] = np.asarray([r["epoch"] for r in rows], dtype=np.int64)
    for k in names:
        state[f"log.{k}"] = np.asarray([r[k] for r in rows], dtype=np.float64)
    state["log.epochs"] = json.dumps([_json_row(r) for r in history.epochs[: snap.n_epoch_rows]])
    return state


def _steps_from_state(state: dict[str, Any], names) -> list[dict[str, float]]:
    cols = {k: np.asarray(state[f"log.{k}"]).reshape(-1) for k in ("step", "epoch", *names)}
    return [
        {"step": int(cols["step"][i]), "epoch": int(cols["epoch"][i])}
        | {k: float(cols[k][i]) for k in names}
        for i in range(cols["step"].shape[0])
    ]


class _Checkpointer:
    """Snapshots of the training state between steps, and saving them to ``checkpoint.npz``."""

    def __init__(self, trainer: _Trainer):
        self.t = trainer
        self.path = trainer.out_dir / CHECKPOINT_NAME
        self.good: _Snapshot | None = None  # the last state known to be finite and consistent
        self.last_saved_step = -1

    def snapshot(self) -> _Snapshot:
        t = self.t
        return _Snapshot(
            _copy_state(t.gan), t.loader.state_dict(), t.step, t.epochs_done, len(t.history.epochs)
        )

    def mark_good(self) -> _Snapshot:
        """Snapshot the state and keep it as the last good one; _Diverged if a weight is NaN/inf.

        Finite losses do not prove finite weights: the step's update comes after its loss
        (``Adam`` with a huge ``lr`` gives inf weights from finite losses).
        """
        snap = self.snapshot()
        if not _state_finite(snap.gan_state, self.t.gan.backend.xp):
            last = self.t.history.steps[-1] if self.t.history.steps else None
            row = last or {"step": snap.step, "epoch": snap.epochs_done}
            raise _Diverged({**row, "step": snap.step}, what="weights")
        self.good = snap
        return self.good

    def save(self, snap: _Snapshot) -> Path:
        t = self.t
        state = _checkpoint_state(snap, t.history, t.names)
        save_checkpoint(self.path, state, t.history.config)
        t.history.artifacts["checkpoint"] = self.path
        self.last_saved_step = snap.step
        return self.path


# ----------------------------------------------------------------------------------------------
# Logs and pictures
# ----------------------------------------------------------------------------------------------
def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = None  # JSON has no NaN/inf
        elif isinstance(v, Path):
            v = str(v)
        out[k] = v
    return out


def _write_logs(out_dir: Path, config, steps, epochs, artifacts, names) -> tuple[Path, Path]:
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
    with atomic_write(log_json, "w") as f:  # a unique temp file, then os.replace
        f.write(head[: -len("\n}")] + ',\n "steps": [\n  ' + rows + "\n ]\n}\n")
    with atomic_write(log_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "epoch", *names])
        for r in steps:
            w.writerow([r["step"], r["epoch"], *(repr(r[k]) for k in names)])
    return log_json, log_csv


def _fmt(key: str, value: float, loss_digits: int = 4) -> str:
    return f"{value:.{loss_digits if key.endswith('_loss') else 3}f}"


def _epoch_line(row: dict[str, Any], epochs: int, names) -> str:
    parts = ", ".join(f"{LABELS.get(k, k)} {_fmt(k, row[k])}" for k in names)
    return f"epoch {row['epoch']}/{epochs}: {row['steps']} steps, {parts}, {row['seconds']:.1f} s"


class _Artifacts:
    """Sample grids from fixed noise, the loss plot, the GIF and the logs of one run."""

    def __init__(self, trainer: _Trainer, seed: int):
        t = self.t = trainer
        gan = t.gan
        self.samples_dir = t.out_dir / "samples"
        t.history.artifacts["samples"] = self.samples_dir
        host_dtype = np.float32 if "32" in str(gan.dtype) else np.float64
        # One fixed noise batch: every epoch's grid shows the same 64 z, so the GIF shows each
        # image taking shape. Its own generator: sampling never moves the training noise.
        noise = np.random.default_rng([seed, 2]).standard_normal(
            (N_SAMPLES, gan.latent_dim), host_dtype
        )
        self.z_fixed = gan.backend.asarray(noise, dtype=gan.dtype)
        self.reference = getattr(gan.objective, "reference_lines", {})
        self.last_plot = time.perf_counter()

    def grid(self, name: str) -> Path:
        gan = self.t.gan
        images = gan.sample(N_SAMPLES, z=self.z_fixed, labels=gan.balanced_labels(N_SAMPLES))
        images = gan.backend.xp.reshape(images, (N_SAMPLES, *gan.image_shape))  # (N, C, H, W)
        path = save_image_grid(images, self.samples_dir / name)
        self.t.history.artifacts["grid"] = path
        return path

    def write_logs(self, plot: bool = True) -> None:
        h, art = self.t.history, self.t.history.artifacts
        if h.steps and plot:
            art["losses"] = plot_losses(
                h.steps, self.t.out_dir / "losses.png", reference=self.reference
            )
            self.last_plot = time.perf_counter()
        art["log_json"], art["log_csv"] = _write_logs(
            self.t.out_dir, h.config, h.steps, h.epochs, art, self.t.names
        )

    def plot_due(self) -> bool:
        """The plot takes ~0.3 s: refresh it at most every 30 s (and at the end)."""
        return time.perf_counter() - self.last_plot > 30

    def finish(self, mid_epoch: bool) -> None:
        """The final grid (when stopped mid-epoch), the GIF and the logs."""
        frames = sorted(self.samples_dir.glob("epoch_[0-9][0-9][0-9].png"))
        if mid_epoch or not frames:
            frames.append(self.grid(f"step_{self.t.step:06d}.png"))
        self.t.history.artifacts["gif"] = make_gif(frames, self.t.out_dir / "progress.gif")
        self.write_logs()


def _as_args(batch) -> tuple:
    """A loader's batch as ``train_step``'s arguments: ``(real,)`` or ``(real, labels)``."""
    return batch if isinstance(batch, tuple) else (batch,)


class _Recorder:
    """Per-step device results -> host rows, one transfer per log interval; NaN check."""

    def __init__(self, trainer: _Trainer):
        self.t = trainer
        self.pending: list[tuple[int, int, Any]] = []  # (step, epoch, (n_metrics,) array)

    def add(self, step: int, epoch: int, out: dict[str, Any]) -> None:
        xp = self.t.gan.backend.xp
        self.pending.append((step, epoch, xp.stack([out[k] for k in self.t.names])))

    def flush(self, check: bool = True, extra: dict[str, Any] | None = None) -> dict[str, float]:
        """Copy the pending results, and the 0-d arrays of ``extra``, to the host in one
        transfer; raise _Diverged on NaN/inf. Returns ``extra`` as host floats."""
        extra = extra or {}
        if not self.pending:
            return {k: float(v) for k, v in extra.items()}
        xp, names = self.t.gan.backend.xp, self.t.names
        stacked = xp.stack([v for _, _, v in self.pending])  # (L, n_metrics)
        flat = xp.concat(
            [xp.reshape(stacked, (-1,)), *(xp.reshape(v, (1,)) for v in extra.values())]
        )
        host = to_numpy(flat).astype(np.float64)  # the one host sync
        values = host[: stacked.shape[0] * len(names)].reshape(stacked.shape)
        host_extra = dict(zip(extra, map(float, host[values.size :]), strict=True))
        rows = [
            {"step": s, "epoch": e} | dict(zip(names, map(float, v), strict=True))
            for (s, e, _), v in zip(self.pending, values, strict=True)
        ]
        self.pending.clear()
        self.t.history.steps.extend(rows)
        if check:
            bad = ~np.isfinite(values).all(axis=1)
            if bad.any():
                raise _Diverged(rows[int(np.argmax(bad))])
        last = rows[-1]
        postfix = {LABELS.get(k, k): f"{last[k]:.3f}" for k in names}
        self.t.bar.set_postfix(postfix, refresh=False)
        return host_extra


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------
class _Trainer:
    """The epochs of one run; owns the history, the step counter and the helpers above."""

    def __init__(self, gan, loader, history, opts: dict[str, Any], seed: int, data_dir):
        self.gan, self.loader, self.history, self.opts = gan, loader, history, opts
        self.out_dir = history.out_dir
        self.names = tuple(history.config["metrics"])
        self.epochs = history.config["epochs"]
        gan.total_steps = self.epochs * len(loader)  # the run's length, for an lr_schedule
        self.step = 0
        self.epochs_done = 0
        self.artifacts = _Artifacts(self, seed)
        self.recorder = _Recorder(self)
        self.checkpoints = _Checkpointer(self)
        self.bar = None
        self.diag = TrainingDiagnostics(
            gan,
            health=opts["health"],
            metrics_every=opts["metrics_every"],
            metrics_samples=opts["metrics_samples"],
            data_dir=data_dir,
            seed=seed,
            out_dir=self.out_dir,
            say=self.say,
            dataset=history.config["dataset"],
            holdout=history.config["holdout"],  # metrics_every's real row: held-out images
            data_options=_overrides_from_json(history.config["data_options"] or {}),
        )
        history.health = self.diag.warnings

    def say(self, line: str) -> None:
        (self.bar.write if self.opts["progress"] and self.bar is not None else print)(line)

    def restore(self, ck_state: dict[str, Any]) -> None:
        self.step = int(ck_state["train.step"])
        self.epochs_done = int(ck_state["train.epoch"])
        self.history.steps = _steps_from_state(ck_state, self.names)
        self.history.epochs = json.loads(ck_state["log.epochs"])

    def done(self) -> bool:
        max_steps = self.opts["max_steps"]
        return self.epochs_done >= self.epochs or (max_steps is not None and self.step >= max_steps)

    @property
    def mid_epoch(self) -> bool:
        return self.loader.position not in (0, len(self.loader))

    def run(self) -> History:
        from tqdm.auto import tqdm

        max_steps = self.opts["max_steps"]
        total = self.epochs * len(self.loader)
        total = total if max_steps is None else min(max_steps, total)
        self.checkpoints.good = self.checkpoints.snapshot()  # the state the run starts from
        self.bar = tqdm(
            total=total,
            initial=min(self.step, total),
            disable=not self.opts["progress"],
            unit="step",
            dynamic_ncols=True,
        )
        try:
            with _SigintGuard() as guard:
                while not self.done() and self.run_epoch(guard):
                    pass
                if self.step != self.checkpoints.last_saved_step:
                    self.checkpoints.save(self.checkpoints.mark_good())
        except _StopRequested:
            self.on_stop_requested(guard.signum)
        except KeyboardInterrupt:  # a second Ctrl-C, or outside the main thread: mid-step
            self.on_interrupt()
            raise
        except _Diverged as d:
            self.on_diverged(d.row, d.what)
        except OSError as e:  # disk full, ...: say which file and what is safe
            raise OSError(e.errno, f"{e.strerror or e}; {self.resume_hint()}") from e
        finally:
            self.bar.close()
        self.artifacts.finish(self.mid_epoch)
        return self.history

    def resume_hint(self) -> str:
        """Where the run can continue from (the checkpoint on disk is never half-written)."""
        path = self.checkpoints.path
        if not path.exists():
            return "training stopped before any checkpoint was saved"
        try:
            step = int(load_checkpoint(path)[0]["train.step"])
        except (ValueError, OSError):  # pragma: no cover - not ours
            return f"training stopped; {path} could not be read back"
        return (
            f"training stopped; the last checkpoint {path} (step {step}) is intact: continue "
            f"with resume='{path}' (CLI: --resume {path}) once there is room"
        )

    def run_epoch(self, guard: _SigintGuard) -> bool:
        """One epoch (or the rest of it); False when stopped mid-epoch by max_steps."""
        epoch = self.epochs_done + 1
        self.bar.set_description(f"epoch {epoch}/{self.epochs}")
        t0 = time.perf_counter()
        log_every, max_steps = self.opts["log_every"], self.opts["max_steps"]
        for batch in self.loader:  # images, or (images, labels) for a conditional GAN
            out = self.gan.train_step(*_as_args(batch))  # 0-d device arrays: no sync here
            self.step += 1
            self.recorder.add(self.step, epoch, out)
            self.bar.update(1)
            if self.step % log_every == 0:
                # ---- at log interval: the only host sync inside an epoch ----
                stats = self.recorder.flush(extra=self.diag.device_stats())  # + grad norms
                self.checkpoints.mark_good()
                self.diag.on_log(self.step, self.history.steps[-log_every:], stats)  # health
            if guard.requested:
                raise _StopRequested
            if max_steps is not None and self.step >= max_steps:
                break
        self.recorder.flush()
        if self.mid_epoch:
            return False
        self.end_epoch(epoch, time.perf_counter() - t0)
        return True

    def end_epoch(self, epoch: int, seconds: float) -> None:
        """Summary row, grid, metrics, checkpoint and logs at an epoch's end."""
        self.epochs_done += 1
        rows = [r for r in self.history.steps if r["epoch"] == epoch]
        summary: dict[str, Any] = {"epoch": epoch, "steps": len(rows)}
        summary |= {k: float(np.mean([r[k] for r in rows])) for k in self.names}
        summary["seconds"] = seconds
        grid = (
            self.artifacts.grid(f"epoch_{epoch:03d}.png")
            if self.opts["sample_every_epoch"]
            else None
        )
        summary["grid"] = str(grid) if grid else None
        self.history.epochs.append(summary)
        metrics_row = self.diag.on_epoch_end(epoch, self.step)  # every metrics_every epochs
        if metrics_row is not None:
            summary["metrics"] = metrics_row
            self.history.artifacts.update(self.diag.artifacts)
        good = self.checkpoints.mark_good()
        if self.opts["checkpoint_every_epoch"]:
            self.checkpoints.save(good)
        self.artifacts.write_logs(plot=self.artifacts.plot_due())
        self.say(_epoch_line(summary, self.epochs, self.names))

    # -- how a run ends early ----------------------------------------------------------------
    def on_stop_requested(self, signum: int = signal.SIGINT) -> None:
        """First stop signal: save the last completed step, then raise :class:`Interrupted`."""
        try:
            self.recorder.flush()
            self.checkpoints.mark_good()
        except _Diverged:
            pass
        self.bar.close()
        good = self.checkpoints.good
        path = self.checkpoints.save(good)
        self.artifacts.write_logs()
        print(
            f"Interrupted: saved step {good.step} to {path}; continue with "
            f"resume='{path}' (CLI: --resume {path}).",
            file=sys.stderr,
        )
        raise Interrupted(signum) from None

    def on_interrupt(self) -> None:
        self.bar.close()
        self.recorder.pending.clear()
        good = self.checkpoints.good
        path = self.checkpoints.save(good)
        self.artifacts.write_logs()
        print(f"Interrupted: saved step {good.step} to {path}.", file=sys.stderr)

    def on_diverged(self, row: dict[str, Any], what: str = "loss") -> None:
        """Save the last good state (if finite) and raise NonFiniteLossError."""
        self.bar.close()
        self.recorder.pending.clear()
        good, saved = self.checkpoints.good, None
        if _state_finite(good.gan_state, self.gan.backend.xp):
            saved = self.checkpoints.save(good)
        elif self.checkpoints.path.exists():
            saved = self.checkpoints.path
        self.artifacts.write_logs()
        bad = ", ".join(f"{k}={row.get(k)}" for k in self.names)
        at = f"at step {row['step']} (epoch {row['epoch']}): {bad}"
        if what == "weights":  # the losses were finite; the update after them was not
            at = f"after the update of step {row['step']} (epoch {row['epoch']}; losses {bad})"
        where = (
            f"saved the last good state (step {good.step}) to {saved}"
            if saved
            else "no good state could be saved"
        )
        raise NonFiniteLossError(
            f"non-finite {what} {at}; training stopped and {where}. Likely causes: a learning "
            f"rate too high{self.lr_hint()}, the saturating G loss, or data outside [-1, 1]. "
            "Losses are checked every log_every steps, so the first bad step is at most "
            "log_every steps before the check.",
            step=row["step"],
            checkpoint=saved,
        ) from None

    def lr_hint(self) -> str:
        """`` (lr=X; try lr=Y)``: a quarter of lr, or the preset's own lr when lr is above it."""
        preset = self.gan.preset
        if preset is None or not preset.lr:
            return ""
        lr, base = preset.lr, get_preset(preset.name).lr if preset.name in PRESETS else None
        if base and lr > base:  # after lr=1e300, "try 2.5e+299" helps nobody
            return f" (lr={lr:g}; try the {preset.name!r} preset's lr={base:g})"
        return f" (lr={lr:g}; try lr={lr / 4:g})"


# ----------------------------------------------------------------------------------------------
# The entry points
# ----------------------------------------------------------------------------------------------
def _loop_options(**opts: Any) -> dict[str, Any]:
    """Check the loop's own options (log_every, max_steps, metrics...)."""
    _check_int("log_every", opts["log_every"], 1)
    _check_int("max_steps", opts["max_steps"], 1, allow_none=True)
    _check_int("metrics_every", opts["metrics_every"], 1, allow_none=True)
    _check_int("metrics_samples", opts["metrics_samples"], 10)
    _check_int("threads", opts["threads"], 1, allow_none=True)
    return opts


def train(
    preset: str | Preset = "default",
    dataset: str = "mnist",
    epochs: int | None = None,
    batch_size: int | None = None,
    device: Any = "auto",
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    progress: bool = True,
    *,
    log_every: int = 50,
    sample_every_epoch: bool = True,
    max_steps: int | None = None,
    limit: int | None = None,
    checkpoint_every_epoch: bool = True,
    health: bool = True,
    metrics_every: int | None = None,
    metrics_samples: int = 2000,
    threads: int | None = None,
    validation_size: int | None = None,
    overwrite: bool = False,
    data_options: dict[str, Any] | None = None,
    **overrides: Any,
) -> History:
    """Train a preset's GAN on a dataset and write its pictures, log and checkpoints.

    Parameters
    ----------
    preset : str or Preset
        A name of :data:`minigan.presets.PRESETS` (``minigan presets`` lists them) or a
        :class:`~minigan.presets.Preset`.
    dataset : str
        A name of :data:`minigan.data.DATASETS` ("mnist", "fashion-mnist", ...).
    epochs : int, optional
        Total epochs (passes over the data); a resumed run continues up to this number.
        None: the preset's; a resumed run's own (and its ``max_steps``), as it says on stderr.
    batch_size : int, optional
        Real images per step (and as many fakes); 1 <= batch_size <= training set size.
        None: the preset's (a resumed run: the checkpoint's).
    device : {"auto", "cpu", "gpu"} or a device object
        ``"auto"`` uses CuPy when it sees a GPU, else NumPy.
    seed : int
        Seeds the weights, the noise, the data order and the fixed sample noise.
    data_dir : path, optional
        The data root holding ``<dataset folder>/`` (or, for MNIST, the folder of its files);
        default ``$MINIGAN_DATA_DIR``, else the user cache dir (:func:`minigan.data.load`).
    out_dir : path, optional
        Where everything is written; default a new ``./runs/<dataset>-<YYYYmmdd-HHMMSS>``
        (``-2``, ``-3``... when that exists), or the checkpoint's directory when resuming.
        A directory holding an earlier run is refused unless it is the resumed run's or
        ``overwrite=True``; one another run is writing to is refused (a lock file); ``""``
        is refused.
    resume : path, optional
        A ``checkpoint.npz`` to continue from. The run's settings (preset, batch_size, seed,
        limit and the overrides) come from the checkpoint; arguments left at their defaults
        are ignored, and one that contradicts the checkpoint raises ``ValueError``.
    progress : bool
        Show a tqdm bar with the step's metrics (D loss, G loss, D(x), D(G(z)) for BCE).
        Without it, one line per epoch is printed instead.
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
    threads : int, optional
        Run NumPy's BLAS (and OpenMP) with at most this many threads during the loop
        (``threadpoolctl.threadpool_limits``); None leaves them as they are (one per core).
        ``threads=1`` is faster when another busy process shares a small machine: on 2 cores
        with a second process at full load, OpenBLAS's 2 threads keep waiting for each other
        (a run fell from ~48 to ~6 steps/s), one thread does not (``docs/benchmarks.md``).
    validation_size : int, optional
        Hold out the last ``validation_size`` images of the training split: train on images
        ``[0, N - validation_size)`` (or the first ``limit`` of them) and record
        ``holdout = [N - validation_size, N)`` and ``n_train`` in the checkpoint's config, so
        ``minigan evaluate`` chooses the Parzen sigma and draws its real reference from images
        the GAN never saw; ``metrics_every`` scores against them too. MNIST with 10000: train on
        0..49,999, hold out 50,000..59,999 (the protocol of Goodfellow et al. 2014). None: train
        on the whole split.
    overwrite : bool
        Allow an ``out_dir`` that holds an earlier run: its run files (checkpoint, logs,
        plots, GIF, sample grids) are deleted first; other files stay.
    data_options : dict, optional
        Keyword options for :func:`minigan.data.load` of the training split, e.g.
        ``{"batches": (1,)}`` to train on CIFAR-10's first batch only (the one present
        offline). Recorded in the config and the checkpoint; a resumed run keeps them.
    **overrides
        Preset fields or shortcuts (``lr=1e-4``, ``g_loss="saturating"``,
        ``g_hidden=(128,)``, ``objective="minimax"``...; see
        :meth:`minigan.presets.Preset.with_overrides`) or ``dtype``.

    Returns
    -------
    History
        ``gan``, ``steps``, ``epochs``, ``artifacts`` (paths written), ``out_dir``, ``config``.

    Raises
    ------
    ValueError
        Bad arguments (``batch_size <= 0`` or larger than the data, unknown preset, dataset
        or preset field, a ``validation_size`` as large as the split or whose held-out images
        overlap the ``limit`` trained on, ...), an ``out_dir`` that is not writable, holds an
        earlier run or is in use by another run (raised before any work), a resume checkpoint
        that is truncated, foreign, from another dataset, or does not match the model; a data
        folder holding another dataset's files.
    RuntimeError
        ``device="gpu"`` without CuPy or a GPU.
    DatasetNotFoundError
        No data files and no way to download them.
    NonFiniteLossError
        A loss became NaN/inf; raised after the last good state was saved to the checkpoint.
    Interrupted
        (a ``KeyboardInterrupt``) after Ctrl-C, SIGTERM or SIGHUP, once a checkpoint of the
        last completed step was saved; ``.signum`` says which.
    OSError
        A write failed (disk full...): the message names the file and the last intact
        checkpoint to resume from.

    Notes
    -----
    Losses are copied to the host every ``log_every`` steps and at the end of each epoch, so
    NaN/inf is detected there (a per-step check would make a GPU wait after every step). The
    saved state is the one at the last check whose losses and weights were all finite.

    ``losses.png`` is redrawn at an epoch's end at most every 30 s (drawing takes a few
    tenths of a second) and always at the end; ``log.json``/``log.csv`` after every epoch.
    Every file is written to a unique temporary file and renamed into place
    (:func:`minigan.files.atomic_write`).

    Resuming reproduces an uninterrupted run exactly (bit-identical on CPU): the checkpoint
    holds the weights, Adam's moments and step counts, the noise generator's state, the data
    generator's state at the start of the current epoch and the number of batches already
    taken from it.
    """
    opts = _loop_options(
        log_every=log_every, max_steps=max_steps, metrics_every=metrics_every,
        metrics_samples=metrics_samples, progress=progress, health=health,
        sample_every_epoch=sample_every_epoch, checkpoint_every_epoch=checkpoint_every_epoch,
        threads=threads,
    )  # fmt: skip
    s = _settings(
        preset,
        dataset,
        epochs,
        batch_size,
        seed,
        limit,
        resume,
        overrides,
        validation_size,
        data_options,
    )
    if metrics_every is not None and s.dataset.name not in CLASSIFIERS:
        raise ValueError(
            f"metrics_every: the classifier metrics exist for {sorted(CLASSIFIERS)} (the metric "
            f"classifiers of minigan.classifier.CLASSIFIERS), not {s.dataset.name!r}; leave "
            "metrics_every out"
        )
    backend: Backend = resolve_device(device)  # RuntimeError for "gpu" without CuPy
    if s.resume is not None and epochs is None and max_steps is None:
        opts["max_steps"] = s.ck_config.get("max_steps")  # the resumed run's own length
    out_dir, created = _choose_out_dir(out_dir, s)
    with RunDir(out_dir) as run_dir:  # the lock; stale temp files of a killed run removed
        _check_reuse(run_dir, s, overwrite)
        try:
            gan, loader = _build(s, backend, data_dir)
        except BaseException:
            if created:
                _remove_if_empty(run_dir)
            raise
        if s.resume is not None:
            _say_resuming(s, opts)
        config = _config(s, gan, loader, opts, backend, data_dir)
        history = History(gan=gan, out_dir=out_dir, config=config)
        trainer = _Trainer(gan, loader, history, opts, s.seed, data_dir)
        if s.ck_state is not None:
            trainer.restore(s.ck_state)
            s.ck_state = None  # free the host copy
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads):  # None: no change
            return trainer.run()


def train_mnist(
    epochs: int | None = None,
    batch_size: int | None = None,
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
    threads: int | None = None,
    validation_size: int | None = None,
    overwrite: bool = False,
    **overrides: Any,
) -> History:
    """Train a GAN on the real MNIST training set: ``train(preset, dataset="mnist", ...)``.

    minigan 0.1's entry point, with its signature, defaults, artifacts, log keys and exact
    resume; :func:`train` takes any preset and dataset. It calls :func:`train` with
    ``dataset="mnist"`` and passes every argument on, so the parameters not listed below
    (``device``, ``seed``, ``data_dir``, ``out_dir``, ``resume``, ``progress``, ``log_every``,
    ``sample_every_epoch``, ``max_steps``, ``limit``, ``checkpoint_every_epoch``, ``health``,
    ``metrics_every``, ``metrics_samples``, ``threads``, ``validation_size``, ``overwrite``
    and ``**overrides``) mean what they mean there; ``data_options`` is not taken (MNIST has
    one training file). Only the order of the arguments (and which of them may be given by
    position) differs.

    Parameters
    ----------
    epochs : int or None
        As in :func:`train`: None means the preset's (40 for ``"default"``, 30 for
        ``"classic"``); with ``resume``, the resumed run's own. (minigan 0.1 meant 30.)
    batch_size : int or None
        As in :func:`train`: None means the preset's (128 for ``"default"``, 64 for
        ``"classic"``). (minigan 0.1 meant 64.)
    preset : str or Preset
        As in :func:`train` (third here, first there): a preset for 28x28 grey images such
        as ``"default"``, ``"classic"`` or ``"seed-keras-mlp"``.

    Returns
    -------
    History
        ``gan``, ``steps``, ``epochs``, ``artifacts`` (paths written), ``out_dir``, ``config``.

    Raises
    ------
    ValueError
        ``epochs`` or ``batch_size`` not a positive int (checked here, before any work); then
        everything :func:`train` raises a ValueError for.
    MNISTNotFoundError
        No MNIST files and no way to download them (a :class:`~minigan.data.DatasetNotFoundError`).
    RuntimeError
        ``device="gpu"`` without CuPy or a GPU.
    NonFiniteLossError
        A loss became NaN/inf (after the last good state was saved), as in :func:`train`.
    Interrupted
        (a ``KeyboardInterrupt``) after Ctrl-C, SIGTERM or SIGHUP, once a checkpoint was saved.
    OSError
        A write failed; the message names the file and the checkpoint to resume from.

    Notes
    -----
    When losses are checked for NaN/inf, when each file is written and how a resumed run
    reproduces an uninterrupted one exactly: see the Notes of :func:`train`.
    """
    _check_int("epochs", epochs, 1, allow_none=True)
    _check_int("batch_size", batch_size, 1, allow_none=True)
    return train(
        preset, "mnist", epochs, batch_size, device, seed, data_dir, out_dir, resume, progress,
        log_every=log_every, sample_every_epoch=sample_every_epoch, max_steps=max_steps,
        limit=limit, checkpoint_every_epoch=checkpoint_every_epoch, health=health,
        metrics_every=metrics_every, metrics_samples=metrics_samples, threads=threads,
        validation_size=validation_size, overwrite=overwrite, **overrides,
    )  # fmt: skip
