"""Training health checks: spot a failing GAN early and say what to do about it.

A :class:`HealthMonitor` is fed host numbers at each logging interval (never per step, so the
GPU is not made to wait) and returns :class:`HealthWarning` objects, each with a code, a
one-line explanation with the numbers that triggered it, and a suggested fix::

    monitor = HealthMonitor()
    for step ...:
        ...
        if step % log_every == 0:
            for w in monitor.update(step, {"d_loss": ..., "g_loss": ..., "d_real": ...,
                                           "d_fake": ...}):
                print(w)

The checks (each warning is emitted once per run, or again after ``repeat_every`` steps):

========================  ======================================================================
code                      fires when
========================  ======================================================================
``NAN``                   any statistic is NaN or infinite
``D_WINS``                D loss < ``d_loss_floor`` for ``patience`` consecutive checks
``D_FAKE_ZERO``           mean D(G(z)) < ``d_fake_floor`` for ``patience`` consecutive checks
``G_LOSS_RISING``         G loss rose by > ``rise_min`` nats over the last ``rise_window`` checks,
                          steadily (correlation with time > ``rise_corr``)
``GRAD_EXPLODING``        a ``*grad_norm`` statistic exceeds ``grad_factor`` x its running
                          median for ``grad_patience`` checks, or ``grad_max``
``MODE_COLLAPSE``         the class histogram of generated digits covers fewer than
                          ``min_digits`` digits (>= 1% each), or one digit takes > ``max_share``
========================  ======================================================================

Background: Goodfellow et al. (2014), Sec. 3 (the saturating minimax loss gives G no gradient
early on, when D rejects its samples confidently); Arjovsky & Bottou (2017), "Towards principled
methods for training GANs" (vanishing and unstable gradients when D is near-perfect);
Salimans et al. (2016) and Goodfellow (2016, NIPS tutorial, Sec. 5.1.1) on mode collapse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import array_namespace
from .files import atomic_write
from .layers import flat_gradient

__all__ = [
    "HealthWarning",
    "HealthMonitor",
    "TrainingDiagnostics",
    "CODES",
    "grad_norm",
    "grad_norm_device",
]

#: Warning codes with their suggested fixes.
CODES: dict[str, str] = {
    "NAN": (
        "lower the learning rate (e.g. lr/4), check the data is scaled to [-1, 1], keep the "
        "logits-based BCEWithLogitsLoss, or clip gradients (minigan.clip_grad_norm_)"
    ),
    "D_WINS": (
        "weaken D: lower its learning rate or width, use the non-saturating G loss "
        "(g_loss='non_saturating'), or add label smoothing / input noise to D"
    ),
    "D_FAKE_ZERO": (
        "use the non-saturating G loss -log D(G(z)) (g_loss='non_saturating'), lower D's "
        "learning rate or raise G's, or add label smoothing / input noise to D"
    ),
    "G_LOSS_RISING": (
        "lower D's learning rate (or raise G's), use equal learning rates with Adam betas "
        "(0.5, 0.999), or give G more capacity"
    ),
    "GRAD_EXPLODING": (
        "lower the learning rate, clip gradients (minigan.clip_grad_norm_), or check for "
        "inputs outside [-1, 1]"
    ),
    "MODE_COLLAPSE": (
        "restart from an earlier checkpoint with a lower learning rate, use Adam betas "
        "(0.5, 0.999), a larger batch, or minibatch discrimination / feature matching "
        "(Salimans et al. 2016)"
    ),
}


@dataclass(frozen=True)
class HealthWarning:
    """One detected problem.

    Attributes
    ----------
    code : str
        A key of :data:`CODES` (``"D_WINS"``, ...).
    step : int
        The training step of the check that fired.
    message : str
        One line: what was seen, with the numbers, and why it matters.
    fix : str
        What to try.
    """

    code: str
    step: int
    message: str
    fix: str

    def __str__(self) -> str:
        return f"[health] step {self.step} {self.code}: {self.message} Try: {self.fix}."


def grad_norm(module) -> float:
    """Global L2 norm ``sqrt(sum_p ||grad_p||^2)`` of a module's gradients, as a host float.

    Reads one number back from the device: call it at logging intervals only. After
    :meth:`minigan.gan.GAN.train_step` the gradients of the last step are still there (they are
    zeroed at the start of the next one). :func:`grad_norm_device` is the same without the
    host read (the training loop folds it into its one transfer per log interval).
    """
    if not module.parameters():
        return 0.0
    return float(grad_norm_device(module))


def grad_norm_device(module):
    """:func:`grad_norm` as a 0-d array on the module's device (no host sync).

    When the gradients are one optimizer's flat buffer (:func:`minigan.layers.flat_gradient`)
    the sum runs over that one array: the same norm up to summation order.

    Raises
    ------
    ValueError
        The module has no parameters.
    """
    params = module.parameters()
    if not params:
        raise ValueError(f"grad_norm_device: {type(module).__name__} has no parameters")
    xp = array_namespace(params[0].grad)
    flat = flat_gradient(params)
    if flat is not None:
        return xp.asarray(xp.sqrt(xp.sum(flat * flat)))
    return xp.asarray(xp.sqrt(sum(xp.sum(p.grad * p.grad) for p in params)))


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


class HealthMonitor:
    """Watch the training statistics and warn about known failure modes.

    Parameters
    ----------
    d_loss_floor : float
        ``D_WINS`` when the D loss (real + fake BCE, ``2 log 2 = 1.39`` at equilibrium) stays
        below this (default 0.05: D(x) ~ 0.98 and D(G(z)) ~ 0.02).
    d_fake_floor : float
        ``D_FAKE_ZERO`` when mean D(G(z)) stays below this (default 0.02).
    patience : int
        Consecutive checks a ``D_WINS`` / ``D_FAKE_ZERO`` condition must hold (default 5).
    rise_window : int
        Checks in the window of ``G_LOSS_RISING`` (default 10).
    rise_min : float
        Minimum rise of the fitted G-loss line over the window, in nats (default 1.0).
    rise_corr : float
        Minimum correlation of G loss with time over the window (default 0.8): only a steady
        rise counts, not noise.
    rise_warmup : int
        Steps ignored by ``G_LOSS_RISING`` (default 1000): at the start G loss normally climbs
        from ~0.7 to ~2 while D learns the easy differences (seen in every healthy MNIST run).
    grad_factor, grad_max : float
        ``GRAD_EXPLODING`` when a gradient norm exceeds ``grad_factor`` (default 10) times the
        median of its earlier values, or ``grad_max`` (default 1e3).
    grad_warmup : int
        Earlier values needed before the relative test applies (default 3).
    grad_patience : int
        Consecutive checks the relative test must fail (default 2): single-step gradient norms
        are noisy (a D norm can jump 5x for one step in healthy training), an explosion
        persists. Exceeding ``grad_max`` fires at once.
    min_digits : int
        ``MODE_COLLAPSE`` when fewer digits than this get >= 1% of the samples (default 6).
    max_share : float
        ``MODE_COLLAPSE`` when one digit gets more than this fraction (default 0.5).
    repeat_every : int, optional
        Emit a code again once this many steps have passed since it was last emitted; by
        default each code is emitted once per run.
    checks : tuple of str, optional
        The codes that apply (``Objective.health_checks``: a Wasserstein critic loss is
        negative by design, so ``D_WINS`` does not apply to it); default all.

    Attributes
    ----------
    warnings : list of HealthWarning
        Every warning emitted so far.

    Notes
    -----
    :meth:`update` takes plain host numbers: the caller converts device arrays once per
    logging interval (averaging the interval's steps makes the checks less noisy).
    """

    def __init__(
        self,
        *,
        d_loss_floor: float = 0.05,
        d_fake_floor: float = 0.02,
        patience: int = 5,
        rise_window: int = 10,
        rise_min: float = 1.0,
        rise_corr: float = 0.8,
        rise_warmup: int = 1000,
        grad_factor: float = 10.0,
        grad_max: float = 1e3,
        grad_warmup: int = 3,
        grad_patience: int = 2,
        min_digits: int = 6,
        max_share: float = 0.5,
        repeat_every: int | None = None,
        checks: tuple[str, ...] | None = None,
    ):
        unknown = sorted(set(checks or ()) - set(CODES))
        if unknown:
            raise ValueError(f"checks: unknown code(s) {unknown}; known: {sorted(CODES)}")
        self.checks = None if checks is None else tuple(checks)
        self.d_loss_floor = float(d_loss_floor)
        self.d_fake_floor = float(d_fake_floor)
        self.patience = _positive_int("patience", patience)
        self.rise_window = _positive_int("rise_window", rise_window)
        if self.rise_window < 3:
            raise ValueError(f"rise_window: expected >= 3, got {rise_window}")
        self.rise_min = float(rise_min)
        self.rise_corr = float(rise_corr)
        self.rise_warmup = int(rise_warmup)
        self.grad_factor = float(grad_factor)
        self.grad_max = float(grad_max)
        self.grad_warmup = _positive_int("grad_warmup", grad_warmup)
        self.grad_patience = _positive_int("grad_patience", grad_patience)
        self.min_digits = _positive_int("min_digits", min_digits)
        self.max_share = float(max_share)
        self.repeat_every = (
            None if repeat_every is None else _positive_int("repeat_every", repeat_every)
        )
        self.warnings: list[HealthWarning] = []
        self._last_emitted: dict[str, int] = {}
        self._streak = {"D_WINS": 0, "D_FAKE_ZERO": 0}
        self._g_losses: list[tuple[int, float]] = []
        self._grad_history: dict[str, list[float]] = {}
        self._grad_streak: dict[str, int] = {}
        self._last_step: int | None = None

    # ------------------------------------------------------------------------------------
    def _emit(self, out: list, code: str, step: int, message: str) -> None:
        if self.checks is not None and code not in self.checks:
            return  # does not apply to this objective
        last = self._last_emitted.get(code)
        if last is not None and (self.repeat_every is None or step - last < self.repeat_every):
            return
        w = HealthWarning(code, step, message, CODES[code])
        self._last_emitted[code] = step
        self.warnings.append(w)
        out.append(w)

    def update(self, step: int, stats: dict[str, Any]) -> list[HealthWarning]:
        """Check one logging interval's statistics; return the warnings that are new.

        Parameters
        ----------
        step : int
            The training step (non-decreasing across calls).
        stats : dict
            Host numbers. Any of ``d_loss``, ``g_loss``, ``d_real``, ``d_fake`` (means over the
            interval or the last step's values), gradient norms under keys ending in
            ``grad_norm`` (e.g. ``g_grad_norm``, ``d_grad_norm``, see :func:`grad_norm`), and
            ``class_hist``: counts of the generated images per predicted digit (see
            :func:`minigan.metrics.classifier_metrics`). Missing keys skip their checks.

        Returns
        -------
        list of HealthWarning (empty when all is well or the problem was already reported).

        Raises
        ------
        ValueError
            ``step`` smaller than the previous one, or a ``class_hist`` that is not a 1-D
            list of non-negative counts.
        """
        step = int(step)
        if self._last_step is not None and step < self._last_step:
            raise ValueError(f"step: expected >= the previous step {self._last_step}, got {step}")
        self._last_step = step
        out: list[HealthWarning] = []

        scalars: dict[str, float] = {}
        for k, v in stats.items():
            if k == "class_hist" or v is None:
                continue
            try:
                scalars[k] = float(v)
            except (TypeError, ValueError) as e:
                raise TypeError(f"stats[{k!r}]: expected a number, got {v!r}") from e
        bad = sorted(k for k, v in scalars.items() if not math.isfinite(v))
        if bad:
            shown = ", ".join(f"{k}={scalars[k]}" for k in bad)
            self._emit(out, "NAN", step, f"non-finite statistic(s) {shown}: training has diverged.")

        d_loss = scalars.get("d_loss")
        self._streak_check(
            out, "D_WINS", step, d_loss, self.d_loss_floor,
            lambda v: f"D loss {v:.4f} < {self.d_loss_floor:g} for {self.patience} checks in a "
            "row: D separates real from fake almost perfectly, so G's learning signal "
            "vanishes (saturating loss) or turns unstable.",
        )  # fmt: skip
        d_fake = scalars.get("d_fake")
        self._streak_check(
            out, "D_FAKE_ZERO", step, d_fake, self.d_fake_floor,
            lambda v: f"mean D(G(z)) {v:.4f} < {self.d_fake_floor:g} for {self.patience} checks "
            "in a row: D rejects every fake; with the saturating loss log(1 - D(G(z))) G's "
            "gradient is ~0.",
        )  # fmt: skip

        g_loss = scalars.get("g_loss")
        if g_loss is not None and math.isfinite(g_loss) and step > self.rise_warmup:
            self._g_losses.append((step, g_loss))
            self._g_losses = self._g_losses[-self.rise_window :]
            self._rise_check(out, step)

        for key, value in scalars.items():
            if key.endswith("grad_norm") and math.isfinite(value):
                self._grad_check(out, step, key, value)

        hist = stats.get("class_hist")
        if hist is not None:
            self._collapse_check(out, step, hist)
        return out

    # ------------------------------------------------------------------------------------
    def _streak_check(self, out, code, step, value, floor, describe) -> None:
        if value is None or not math.isfinite(value):
            return
        self._streak[code] = self._streak[code] + 1 if value < floor else 0
        if self._streak[code] >= self.patience:
            self._emit(out, code, step, describe(value))

    def _rise_check(self, out, step) -> None:
        if len(self._g_losses) < self.rise_window:
            return
        t = np.asarray([s for s, _ in self._g_losses], dtype=np.float64)
        y = np.asarray([v for _, v in self._g_losses], dtype=np.float64)
        if np.ptp(t) == 0 or np.ptp(y) == 0:
            return
        slope, intercept = np.polyfit(t, y, 1)
        rise = slope * (t[-1] - t[0])  # of the fitted line over the window
        corr = float(np.corrcoef(t, y)[0, 1])
        if rise > self.rise_min and corr > self.rise_corr:
            self._emit(
                out,
                "G_LOSS_RISING",
                step,
                f"G loss rose steadily from {y[0]:.3f} to {y[-1]:.3f} over steps "
                f"{int(t[0])}-{int(t[-1])} (fitted rise {rise:.2f} nats, r={corr:.2f}): D is "
                "winning and G's samples are getting easier to reject.",
            )

    def _grad_check(self, out, step, key, value) -> None:
        history = self._grad_history.setdefault(key, [])
        reason = None
        if value > self.grad_max:
            reason = f"{key} {value:.3g} > {self.grad_max:g}"
        elif len(history) >= self.grad_warmup:
            # the median of the values before the current streak: a growing norm does not
            # raise its own baseline
            streak = self._grad_streak.get(key, 0)
            median = float(np.median(history[: len(history) - streak]))
            if median > 0 and value > self.grad_factor * median:
                self._grad_streak[key] = streak + 1
                if streak + 1 >= self.grad_patience:
                    reason = (
                        f"{key} {value:.3g} is {value / median:.0f}x its running median "
                        f"{median:.3g} ({streak + 1} checks in a row)"
                    )
            else:
                self._grad_streak[key] = 0
        history.append(value)
        if reason:
            self._emit(
                out,
                "GRAD_EXPLODING",
                step,
                f"{reason}: updates this large throw the weights far off and usually end in NaN.",
            )

    def _collapse_check(self, out, step, hist) -> None:
        h = np.asarray(hist, dtype=np.float64)
        if h.ndim != 1 or h.size == 0 or np.any(h < 0) or not np.all(np.isfinite(h)):
            raise ValueError(f"class_hist: expected a 1-D list of non-negative counts, got {hist}")
        if h.sum() <= 0:
            return
        p = h / h.sum()
        covered = int(np.sum(p >= 0.01))
        top = int(np.argmax(p))
        if covered < self.min_digits or p[top] > self.max_share:
            share = ", ".join(f"{d}: {100 * p[d]:.0f}%" for d in np.argsort(-p)[:3] if p[d] > 0)
            self._emit(
                out,
                "MODE_COLLAPSE",
                step,
                f"the samples cover {covered} of {h.size} classes (>= 1% each; top: {share}): "
                "G maps most noise vectors to a few modes.",
            )

    def summary(self) -> str:
        """All warnings so far, one per line (or a line saying there were none)."""
        if not self.warnings:
            return "[health] no problems detected"
        return "\n".join(str(w) for w in self.warnings)


class TrainingDiagnostics:
    """What :func:`minigan.train_mnist` runs at its log interval and after each epoch.

    * at each log interval (:meth:`on_log`): the means of the interval's D loss, G loss,
      D(x), D(G(z)) and the gradient norms of G and D (:meth:`device_stats`, copied to the
      host with the loop's one transfer of the interval) go to a
      :class:`HealthMonitor`; new warnings are printed with ``say``;
    * every ``metrics_every`` epochs (:meth:`on_epoch_end`):
      :func:`minigan.metrics.classifier_metrics` of ``metrics_samples`` images from fixed
      noise (Inception score, Frechet classifier distance to the test set, class
      histogram, classes covered) with the dataset's metric classifier, next to the same
      scores of as many held-out real images (``holdout``, default training images from
      50,000 for MNIST); the histogram also goes to the monitor
      (``MODE_COLLAPSE``); the rows are written to ``metrics.json`` and plotted to
      ``metrics.png`` in ``out_dir``.

    Parameters
    ----------
    gan : GAN
    health : bool
        Run the health checks.
    metrics_every : int, optional
        Epochs between classifier metrics (None: never). The first use trains and caches the
        MNIST classifier (:func:`minigan.classifier.load_classifier`, about a minute).
    metrics_samples : int
        Generated images per evaluation (default 2000).
    data_dir : dataset location
    seed : int
        Seeds the fixed metric noise.
    out_dir : path, optional
        Where ``metrics.json`` / ``metrics.png`` go.
    say : callable
        Prints a line (``tqdm.write`` under a progress bar).
    monitor : HealthMonitor, optional
        Custom thresholds. Default: one with the checks ``gan.objective.health_checks``.
    dataset : str
        Which metric classifier scores the samples (:data:`minigan.classifier.CLASSIFIERS`);
        for a dataset without one the metrics are skipped, with one printed line.
    holdout : [start, stop), optional
        Held-out training images for the real reference row (default: the last sixth of the
        training split, MNIST's 50,000..59,999).
    data_options : dict, optional
        The training run's loader options (e.g. CIFAR-10 ``{"batches": (1,)}``): the
        held-out images come from the same subset the run was trained on.

    Attributes
    ----------
    monitor : HealthMonitor
    metrics : list of dict
        One row per evaluation: ``epoch``, ``step`` and the keys of ``classifier_metrics``.
    artifacts : dict of str -> Path
        ``metrics_plot`` and ``metrics_json`` once written.
    """

    def __init__(
        self,
        gan,
        *,
        health: bool = True,
        metrics_every: int | None = None,
        metrics_samples: int = 2000,
        data_dir=None,
        seed: int = 0,
        out_dir=None,
        say=print,
        monitor: HealthMonitor | None = None,
        dataset: str = "mnist",
        holdout=None,
        data_options: dict | None = None,
    ):
        if metrics_every is not None:
            metrics_every = _positive_int("metrics_every", metrics_every)
        self.gan = gan
        self.health = bool(health)
        self.metrics_every = metrics_every
        self.metrics_samples = _positive_int("metrics_samples", metrics_samples)
        if self.metrics_samples < 10:
            raise ValueError(f"metrics_samples: expected >= 10, got {metrics_samples}")
        self.data_dir = data_dir
        self.dataset = dataset
        self.holdout = None if holdout is None else tuple(int(v) for v in holdout)
        self.data_options = dict(data_options or {})
        self.seed = int(seed)
        self.out_dir = out_dir
        self.say = say
        if monitor is None:
            objective = getattr(gan, "objective", None)
            monitor = HealthMonitor(checks=getattr(objective, "health_checks", None))
        self.monitor = monitor
        self.metrics: list[dict[str, Any]] = []
        self.artifacts: dict[str, Any] = {}
        self._classifier = None
        self._reference = None  # (mu, cov) of the test set's features, and its scores

    @property
    def warnings(self) -> list[HealthWarning]:
        """Every health warning raised so far, in order."""
        return self.monitor.warnings

    def _report(self, warnings: list[HealthWarning]) -> None:
        for w in warnings:
            self.say(str(w))

    def device_stats(self) -> dict[str, Any]:
        """The gradient norms :meth:`on_log` checks, as 0-d device arrays (no host sync),
        so that the caller can copy them to the host with its own transfer; ``{}`` when the
        health checks are off."""
        if not self.health:
            return {}
        return {
            "g_grad_norm": grad_norm_device(self.gan.generator),
            "d_grad_norm": grad_norm_device(self.gan.discriminator),
        }

    def on_log(self, step: int, rows, host_stats=None) -> list[HealthWarning]:
        """Check the rows of one log interval (dicts of the step's metrics, e.g. d_loss).

        ``host_stats``: :meth:`device_stats` already copied to the host (floats); without
        it the gradient norms are read here (two host syncs).
        """
        if not self.health or not rows:
            return []
        names = [k for k in rows[0] if k not in ("step", "epoch")]  # the step's own metrics
        stats: dict[str, Any] = {k: float(np.mean([r[k] for r in rows])) for k in names}
        if host_stats is None:
            host_stats = {k: float(v) for k, v in self.device_stats().items()}
        stats.update(host_stats)
        new = self.monitor.update(step, stats)
        self._report(new)
        return new

    def _load_reference(self) -> bool:
        """Load the dataset's classifier and the real reference row; False (once said) if none."""
        from .classifier import CLASSIFIERS, load_classifier, load_dataset, spec_images
        from .metrics import classifier_metrics, default_holdout, feature_statistics

        spec = CLASSIFIERS.get(self.dataset)
        if spec is None:
            self.say(
                f"metrics_every: no metric classifier for dataset {self.dataset!r} (known: "
                f"{sorted(CLASSIFIERS)}); the per-epoch metrics are skipped"
            )
            self.metrics_every = None
            return False

        def device_images(u8):  # uint8 (N, C, H, W) -> (N, C*H*W) in [0, 1] on the device
            flat = u8.reshape(u8.shape[0], -1).astype(np.float32) / 255.0
            return self.gan.backend.asarray(flat)

        self._classifier = load_classifier(
            device=self.gan.backend, data_dir=self.data_dir, dataset=self.dataset
        )
        test, _ = spec_images(spec, "test", self.data_dir)
        stats = feature_statistics(self._classifier.features_and_logits(device_images(test))[0])
        # reference row: as many held-out real images (the run's holdout, else the last sixth)
        train, _ = load_dataset(self.dataset, "train", self.data_dir, **self.data_options)
        start, stop = self.holdout or default_holdout(train.shape[0])
        held_out = device_images(
            train[start : min(stop, start + self.metrics_samples, start + 10000)]
        )
        self._reference = (stats, classifier_metrics(held_out, self._classifier, stats))
        return True

    def on_epoch_end(self, epoch: int, step: int) -> dict[str, Any] | None:
        """Classifier metrics every ``metrics_every`` epochs; returns the row or None."""
        if self.metrics_every is None or epoch % self.metrics_every != 0:
            return None
        from pathlib import Path

        from .metrics import classifier_metrics, generate_samples, plot_metrics

        if self._classifier is None and not self._load_reference():
            return None
        stats, real = self._reference
        # the same noise at every evaluation, independent of the training noise
        samples = generate_samples(self.gan, self.metrics_samples, seed=[self.seed, 3])
        samples = self.gan.backend.xp.reshape(samples, (samples.shape[0], -1))  # (N, C*H*W)
        row: dict[str, Any] = {"epoch": int(epoch), "step": int(step)}
        row |= classifier_metrics(samples, self._classifier, stats)
        row["reference"] = {
            k: real[k] for k in ("inception_score", "fcd", "digits_covered", "kl_uniform")
        }
        self.metrics.append(row)
        self.say(
            f"metrics epoch {epoch}: Inception score {row['inception_score']:.2f} (real "
            f"{real['inception_score']:.2f}), FCD {row['fcd']:.2f} (real {real['fcd']:.2f}), "
            f"classes covered {row['digits_covered']}/10, KL to uniform {row['kl_uniform']:.3f}"
        )
        if self.health:
            self._report(self.monitor.update(step, {"class_hist": row["histogram"]}))
        if self.out_dir is not None:
            import json

            out = Path(self.out_dir)
            self.artifacts["metrics_plot"] = plot_metrics(self.metrics, out / "metrics.png")
            path = out / "metrics.json"
            with atomic_write(path, "w") as f:
                f.write(json.dumps(self.metrics, indent=1))
            self.artifacts["metrics_json"] = path
        return row
