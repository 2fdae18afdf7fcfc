"""The GAN: a generator, a discriminator, their optimizers, an objective, and one training step.

Goodfellow et al. (2014), "Generative Adversarial Nets": D and G play a game whose losses come
from an :class:`~minigan.objectives.Objective` (default: the non-saturating game, Sec. 3 of the
paper, with D's outputs as logits). :meth:`GAN.train_step` contains nothing specific to any
objective: it asks the objective for the losses and for their gradients with respect to D's
outputs, and back-propagates those. :func:`build_gan` builds a GAN from a preset
(:mod:`minigan.presets`) with the model builders of :mod:`minigan.models`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import functional as F
from .backend import as_generator, backend_of, host_rng_state, resolve_device, set_host_rng_state
from .ema import EMA
from .models import get_model, mlp_discriminator, mlp_generator
from .objectives import Objective, get_objective
from .optim import LinearDecayLR, Optimizer, clip_grad_norm_, make_lr_schedule
from .presets import G_LOSSES, PRESETS, Preset, get_preset, make_optimizer

__all__ = [
    "mlp_generator",
    "mlp_discriminator",
    "GAN",
    "Preset",
    "PRESETS",
    "get_preset",
    "build_gan",
    "G_LOSSES",
    "mixes_batch_rows",
]


def mixes_batch_rows(module) -> bool:
    """True when some module of the tree mixes the rows of a batch (BatchNorm says so).

    A module declares it with the class attribute ``mixes_batch_rows = True``; then a batch of
    ``[real; fake]`` through it differs from the two halves done separately.
    """
    return any(getattr(m, "mixes_batch_rows", False) for m in module.modules())


def _modes(module) -> list[tuple[Any, bool, bool]]:
    """Each module's ``(module, training, requires_grad)``, to put back afterwards."""
    return [(m, m.training, m.requires_grad) for m in module.modules()]


def _restore(modes) -> None:
    for m, training, requires_grad in modes:
        m.training = training
        m.requires_grad = requires_grad


def _caches(module) -> list[tuple[Any, Any]]:
    return [(m, m._cache) for m in module.modules()]


#: Preset fields handed to :class:`GAN` as they are (the stability switches and the EMA).
SWITCHES = ("ema_decay", "ema_warmup", "instance_noise", "instance_noise_steps", "max_grad_norm")


def _check_switches(instance_noise, instance_noise_steps, max_grad_norm) -> None:
    """One-line errors for the stability switches of :class:`GAN`."""
    ok = isinstance(instance_noise, (int, float)) and not isinstance(instance_noise, bool)
    if not ok or not np.isfinite(instance_noise) or instance_noise < 0:
        raise ValueError(f"instance_noise: expected a finite std >= 0, got {instance_noise!r}")
    steps = instance_noise_steps
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"instance_noise_steps: expected an int >= 0, got {steps!r}")
    if max_grad_norm is not None and not (
        isinstance(max_grad_norm, (int, float)) and np.isfinite(max_grad_norm) and max_grad_norm > 0
    ):
        raise ValueError(f"max_grad_norm: expected None or a number > 0, got {max_grad_norm!r}")


def _forward(module, x, labels):
    """``module.forward(x)``, or ``forward(x, labels)`` for a conditional model."""
    return module.forward(x) if labels is None else module.forward(x, labels)


class GAN:
    """A generator, a discriminator, their optimizers, an objective, and the training step.

    Parameters
    ----------
    generator, discriminator : Module
        ``G: (N, latent_dim) -> images`` and ``D: images -> (N, 1)`` outputs; the images are
        (N, D_data) for MLPs, (N, C, H, W) for conv nets (whatever G produces).
    latent_dim : int
    g_optimizer, d_optimizer : Optimizer
        Over ``generator.parameters()`` and ``discriminator.parameters()``.
    seed : int or numpy.random.Generator
        Seeds the host generator of the noise ``z ~ N(0, I)``.
    g_loss : {"non_saturating", "saturating"}
        Shorthand for the objective when ``objective`` is None: ``-log D(G(z))`` (default,
        Goodfellow et al. 2014 Sec. 3) or the original minimax ``log(1 - D(G(z)))``.
    objective : Objective or str, optional
        The game (:data:`minigan.objectives.OBJECTIVES`); overrides ``g_loss``.
    ema_decay : float in [0, 1), optional
        Keep an exponential moving average of G's weights (:class:`~minigan.ema.EMA`, Yazici
        et al. 2019), updated after every G step and used by :meth:`sample`.
    ema_warmup : bool
        The EMA's decay ramps up as ``min(decay, (1 + n) / (10 + n))`` (``EMA(warmup=True)``).
    instance_noise : float >= 0
        Instance noise (Sonderby et al. 2017, Sec. 3.1; Arjovsky & Bottou 2017): D sees
        ``x + sigma * eps``, eps ~ N(0, I) drawn on the host, for real and fake alike, also in
        G's step; 0 (default) is off and draws nothing.
    instance_noise_steps : int >= 0
        Anneal sigma linearly to 0 over this many D steps (0: constant sigma).
    max_grad_norm : float, optional
        Clip each player's global gradient norm before its optimizer step
        (:func:`~minigan.optim.clip_grad_norm_`, ``torch.nn.utils.clip_grad_norm_``).
    lr_schedule : LinearDecayLR, optional
        Before every :meth:`train_step` both optimizers get ``lr = base_lr *
        lr_schedule.factor(d_steps, total_steps)``, base_lr being their rates when the GAN was
        built; needs :attr:`total_steps` (``train()`` sets it).

    Attributes
    ----------
    objective : Objective
    num_classes : int or None
        Classes of a conditional GAN (Mirza & Osindero 2014): the models' ``num_classes``
        (:class:`~minigan.models.LabelConcat`); None for an unconditional one. A conditional
        GAN takes labels in :meth:`train_step` and :meth:`sample`, G as ``G(z, y)`` and D as
        ``D(x, y)``; the fake batch gets the real batch's labels.
    ema : EMA or None
    d_joint_batch : bool
        Run D's update as one pass over the 2N rows ``[real; fake]`` instead of two passes
        (see :meth:`train_step`). True unless a module of D says it mixes the rows of a batch
        (``mixes_batch_rows = True``, e.g. BatchNorm, whose statistics would mix real and fake
        rows). Set it to False to run the teaching form; ``fast_paths(False)`` does too.
    d_steps : int
        D updates so far; G is updated on every ``objective.n_critic``-th (saved in
        :meth:`state_dict`, so a resumed run continues mid-cycle exactly).
    total_steps : int or None
        The run's length in :meth:`train_step` calls, for ``lr_schedule`` (``train()`` sets it
        to epochs x batches per epoch); None until set.

    Raises
    ------
    ValueError
        Unknown ``g_loss`` or objective; ``ema_decay`` outside [0, 1); G and D that disagree
        on ``num_classes``; in :meth:`sample`, ``z`` not of shape (n, latent_dim); in
        :meth:`train_step`, ``real`` whose shape D does not take; labels given to an
        unconditional GAN, missing for a conditional one, of the wrong shape, or (host
        labels) outside ``0..num_classes-1``.
    TypeError
        ``seed`` not an int or Generator; in :meth:`train_step`, ``real`` of another dtype
        or array library than the model's.
    """

    def __init__(
        self,
        generator,
        discriminator,
        latent_dim: int,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        seed=0,
        g_loss: str = "non_saturating",
        *,
        objective: Objective | str | None = None,
        ema_decay: float | None = None,
        ema_warmup: bool = False,
        instance_noise: float = 0.0,
        instance_noise_steps: int = 0,
        max_grad_norm: float | None = None,
        lr_schedule: LinearDecayLR | None = None,
    ):
        if g_loss not in G_LOSSES:
            raise ValueError(f"g_loss: expected one of {tuple(G_LOSSES)}, got {g_loss!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.objective = get_objective(G_LOSSES[g_loss] if objective is None else objective)
        self.rng = as_generator(seed)
        first = generator.parameters()[0].data
        self.backend = backend_of(first)
        self.dtype = first.dtype
        self.preset: Preset | None = None  # set by build_gan
        self.d_joint_batch = not mixes_batch_rows(discriminator)
        self.d_steps = 0
        self._last_g_loss = None
        self._targets: dict[int, tuple[Any, Any]] = {}
        self.num_classes = getattr(generator, "num_classes", None)
        d_classes = getattr(discriminator, "num_classes", None)
        if d_classes != self.num_classes:
            raise ValueError(
                f"num_classes: the generator has {self.num_classes}, the discriminator "
                f"{d_classes} (both conditional on the same classes, or neither)"
            )
        self.ema = None if ema_decay is None else EMA(generator, ema_decay, warmup=ema_warmup)
        _check_switches(instance_noise, instance_noise_steps, max_grad_norm)
        self.instance_noise = float(instance_noise)
        self.instance_noise_steps = int(instance_noise_steps)
        self.max_grad_norm = max_grad_norm
        self.lr_schedule = lr_schedule
        self.base_lrs = (g_optimizer.lr, d_optimizer.lr)
        self.total_steps: int | None = None

    @property
    def g_loss(self) -> str:
        """The objective's legacy name ("non_saturating", "saturating") or its registry name."""
        back = {v: k for k, v in G_LOSSES.items()}
        return back.get(self.objective.name, self.objective.name)

    # -- helpers ---------------------------------------------------------------------------
    @property
    def conditional(self) -> bool:
        """True when G and D take class labels (``num_classes`` is not None)."""
        return self.num_classes is not None

    def balanced_labels(self, n: int, start: int = 0):
        """Labels ``(start + i) % num_classes`` for i < n (host int64), None if unconditional.

        What grids and metrics ask a conditional GAN for: every class equally often.
        """
        if self.num_classes is None:
            return None
        return (start + np.arange(n, dtype=np.int64)) % self.num_classes

    def noise_std(self) -> float:
        """Instance-noise sigma at this D step: ``sigma * max(0, 1 - d_steps / steps)``."""
        if self.instance_noise_steps == 0:
            return self.instance_noise
        return self.instance_noise * max(0.0, 1.0 - self.d_steps / self.instance_noise_steps)

    def _noisy(self, x):
        """``x + sigma * eps`` (instance noise) for D's input; ``x`` itself when sigma is 0."""
        sigma = self.noise_std()
        if sigma == 0.0:
            return x
        host_dtype = np.float32 if "32" in str(self.dtype) else np.float64
        eps = self.rng.standard_normal(tuple(x.shape), dtype=host_dtype)
        return x + self.backend.asarray(sigma * eps, dtype=self.dtype)

    def _schedule_lr(self) -> None:
        """Both optimizers' ``lr = base_lr * factor`` at this step, when there is a schedule."""
        if self.lr_schedule is None:
            return
        if self.total_steps is None:
            raise ValueError(
                "lr_schedule: the GAN does not know the run's length; set gan.total_steps "
                "(train() sets it to epochs x batches per epoch)"
            )
        f = self.lr_schedule.factor(self.d_steps, self.total_steps)
        self.g_optimizer.lr, self.d_optimizer.lr = (lr * f for lr in self.base_lrs)

    def _clip(self, module) -> None:
        if self.max_grad_norm is not None:
            clip_grad_norm_(module.parameters(), self.max_grad_norm)

    def check_labels(self, labels, n: int):
        """Labels as the models take them: None (unconditional) or int64 (n,) on the device.

        Host labels (a list or NumPy array) are range-checked; device labels (from
        :class:`~minigan.data.BatchIterator`, checked once when loaded) only by shape and
        dtype, since reading them would wait for the device.

        Raises
        ------
        ValueError
            Labels given to an unconditional GAN, missing for a conditional one, not of shape
            (n,), not integers, or (host) outside ``0..num_classes-1``.
        """
        if self.num_classes is None:
            if labels is not None:
                raise ValueError("labels: this GAN is unconditional (num_classes None), got labels")
            return None
        if labels is None:
            raise ValueError(
                f"labels: this GAN is conditional, expected (n,) ints in "
                f"0..{self.num_classes - 1}, got none"
            )
        if isinstance(labels, (list, tuple, range, np.ndarray)):
            host = np.asarray(labels)
            if host.size and not np.issubdtype(host.dtype, np.integer):
                raise ValueError(f"labels: expected integers, got dtype {host.dtype}")
            if host.size and (host.min() < 0 or host.max() >= self.num_classes):
                raise ValueError(
                    f"labels: expected values in 0..{self.num_classes - 1}, got "
                    f"{host.min()}..{host.max()}"
                )
            labels = self.backend.asarray(host.astype(np.int64))
        elif not self.backend.xp.isdtype(labels.dtype, "integral"):
            raise ValueError(f"labels: expected integers, got dtype {labels.dtype}")
        if tuple(labels.shape) != (n,):
            raise ValueError(f"labels: expected shape {(n,)}, got {tuple(labels.shape)}")
        return labels

    def sample_noise(self, n: int):
        """``z ~ N(0, I)`` of shape (n, latent_dim), drawn on the host, moved to the device.

        Drawing on the host keeps NumPy and CuPy runs with one seed identical; the copy is
        n * latent_dim floats per step (25 KB at n=64) and needs no device sync.
        """
        host_dtype = np.float32 if "32" in str(self.dtype) else np.float64
        z = self.rng.standard_normal((n, self.latent_dim), dtype=host_dtype)
        return self.backend.asarray(z, dtype=self.dtype)

    def targets(self, n: int):
        """Label arrays ``(ones, zeros)`` of shape (n, 1), made once per batch size (lessons)."""
        if n not in self._targets:
            b = self.backend
            self._targets[n] = (
                b.asarray(np.ones((n, 1)), dtype=self.dtype),
                b.asarray(np.zeros((n, 1)), dtype=self.dtype),
            )
        return self._targets[n]

    # -- the step --------------------------------------------------------------------------
    def train_step(self, real, labels=None) -> dict[str, Any]:
        """One D (critic) update on real + fake; every ``n_critic``-th call also one G update.

        Parameters
        ----------
        real : array (N, ...) in G's output shape, on the model's device, in [-1, 1]
        labels : int array (N,), optional
            The real batch's classes, for a conditional GAN (required there, refused
            otherwise; see :meth:`check_labels`). G draws the fake batch for the same labels.

        Returns
        -------
        dict of 0-d arrays **on the device** (no host sync): ``d_loss``, ``g_loss`` (of the
        last G update; before the first one, G's loss on this batch) and the objective's
        :attr:`~minigan.objectives.Objective.metric_names` (BCE games: ``d_real`` = mean
        D(x), ``d_fake`` = mean D(G(z)), before D's update).
        """
        self._check_real(real)
        y = self.check_labels(labels, real.shape[0])
        self._schedule_lr()
        z = self.sample_noise(real.shape[0])
        fake = _forward(self.generator, z, y)  # G keeps its cache for the generator step below
        d_loss, real_out, fake_out = self._d_step(real, fake, y)
        self.d_steps += 1
        if self.d_steps % self.objective.n_critic == 0:
            self._last_g_loss = self._g_step(fake, y)
        elif self._last_g_loss is None:
            self._last_g_loss = self.objective.g_loss(fake_out)[0]  # no update, a value to log
        return {
            "d_loss": d_loss,
            "g_loss": self._last_g_loss,
            **self.objective.metrics(real_out, fake_out),
        }

    def _check_real(self, real) -> None:
        """TypeError/ValueError naming ``real``'s dtype or shape when D cannot take it."""
        dtype, shape = getattr(real, "dtype", None), tuple(getattr(real, "shape", ()))
        if dtype != self.dtype:
            raise TypeError(
                f"real: expected dtype {self.dtype} (the model's), got {dtype}; convert the "
                "batch first (minigan.data.preprocess gives float32 in [-1, 1])"
            )
        want = getattr(self, "data_shape", None)  # set by build_gan
        if want is None:
            return
        want = tuple(want)
        if len(shape) != 1 + len(want) or shape[1:] != want or shape[0] < 1:
            raise ValueError(
                f"real: expected a batch of shape (N, {', '.join(map(str, want))}) with N >= 1 "
                f"(D's input), got {shape}"
            )

    def _d_outputs(self, real, fake, y=None):
        """D's outputs on real and fake, gradients back-propagated into D.grads."""
        D, obj = self.discriminator, self.objective
        xp = self.backend.xp
        n = real.shape[0]
        if self.d_joint_batch and F.FAST_PATHS:
            # Fast form, same gradients: one pass over the 2N rows [real; fake]. D's layers act
            # row by row, so the halves do not interact, and dL/dW sums over all 2N rows just
            # as the two backward passes below add up. One forward/backward, larger matrices.
            yy = None if y is None else xp.concat([y, y], axis=0)  # (2N,)
            out = _forward(D, xp.concat([real, fake], axis=0), yy)  # (2N, 1)
            real_out, fake_out = out[:n, :], out[n:, :]
            d_loss, dreal, dfake = obj.d_loss(real_out, fake_out)
            D.backward(xp.concat([dreal, dfake], axis=0), input_grad=False)
            return d_loss, real_out, fake_out
        # Teaching form: real, then fake, gradients accumulating in D.grads. The loss needs
        # both outputs, so real's layer caches wait aside while D sees the fake batch.
        real_out = _forward(D, real, y)  # (N, 1)
        real_caches = _caches(D)
        fake_out = _forward(D, fake, y)
        d_loss, dreal, dfake = obj.d_loss(real_out, fake_out)
        D.backward(dfake, input_grad=False)  # G is not updated here ("detach")
        for m, cache in real_caches:
            m._cache = cache
        D.backward(dreal, input_grad=False)  # nobody needs dL/dx of real data
        return d_loss, real_out, fake_out

    def _d_step(self, real, fake, y=None):
        """D's update: loss, optional penalty, optimizer step, the objective's hook."""
        self.d_optimizer.zero_grad()
        real, fake = self._noisy(real), self._noisy(fake)  # instance noise (off: unchanged)
        d_loss, real_out, fake_out = self._d_outputs(real, fake, y)
        penalty = self.objective.penalty(self.discriminator, real, fake, self.rng, labels=y)
        if penalty is not None:
            d_loss = d_loss + penalty
        self._clip(self.discriminator)
        self.d_optimizer.step()
        self.objective.after_d_step(self.discriminator)
        return d_loss, real_out, fake_out

    def _g_step(self, fake, y=None):
        """G's update through the *updated* D, then the EMA of G; returns G's loss."""
        G, D = self.generator, self.discriminator
        self.g_optimizer.zero_grad()
        g_loss, dout = self.objective.g_loss(_forward(D, self._noisy(fake), y))
        # Only dL/d(fake) is needed from D here. D's parameter gradients would be wasted work,
        # and harmful if kept: they would leak into D's next update. Freezing D is exact
        # because G's loss reaches G's weights only through D's *input*, so dL/d(fake) does
        # not depend on whether dL/dW_D is computed (PyTorch: requires_grad_(False) on D).
        modes = _modes(D)
        D.requires_grad_(False)
        try:
            dfake = D.backward(dout)  # (N, ...) like fake
        finally:
            _restore(modes)  # the caller's setting, also after an error
        G.backward(dfake, input_grad=False)  # the noise z needs no gradient
        self._clip(G)
        self.g_optimizer.step()
        if self.ema is not None:
            self.ema.update()
        return g_loss

    def sample(self, n: int, z=None, *, labels=None):
        """Generate ``n`` images in (-1, 1) from noise ``z`` (drawn if None), G in eval mode.

        ``z`` may be a host NumPy array or a device array of shape (n, latent_dim). G runs in
        evaluation mode (BatchNorm uses and keeps its running statistics) and gets its previous
        mode back afterwards. With an EMA (``ema_decay``), the averaged copy of G draws.

        Shapes: z (n, latent_dim), labels (n,) -> images (n, ...) as G produces them.

        Parameters
        ----------
        n : int
        z : array (n, latent_dim), optional
        labels : ints (n,), optional
            The class of each image: required for a conditional GAN, refused otherwise
            (:meth:`check_labels`).

        Raises
        ------
        ValueError
            ``n`` not an integer >= 0; ``z`` of another shape; labels as :meth:`check_labels`
            refuses them.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n: expected a number of images >= 0, got {n!r}")
        y = self.check_labels(labels, n)
        if z is None:
            z = self.sample_noise(n)
        elif tuple(z.shape) != (n, self.latent_dim):
            raise ValueError(f"z: expected shape {(n, self.latent_dim)}, got {tuple(z.shape)}")
        elif isinstance(z, np.ndarray):
            z = self.backend.asarray(z, dtype=self.dtype)
        G = self.generator if self.ema is None else self.ema.module
        modes = _modes(G)
        G.eval()
        try:
            return _forward(G, z, y)
        finally:
            _restore(modes)

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume bit-exactly, as a flat dict of arrays and scalars.

        Keys: ``generator.<param>``, ``discriminator.<param>``, ``g_optimizer.<key>``,
        ``d_optimizer.<key>``, ``rng`` (the noise generator's state as a JSON string),
        ``layer_rngs`` (a JSON list of the states of the generators Dropout layers draw their
        masks from, when there are such layers), ``d_steps`` (D updates so far), between G
        updates of a multi-critic objective ``last_g_loss``, and with an EMA ``ema.<key>``
        (:meth:`EMA.state_dict`).
        """
        out: dict[str, Any] = {}
        for prefix, obj in (
            ("generator", self.generator),
            ("discriminator", self.discriminator),
            ("g_optimizer", self.g_optimizer),
            ("d_optimizer", self.d_optimizer),
        ):
            for k, v in obj.state_dict().items():
                out[f"{prefix}.{k}"] = v
        if self.ema is not None:
            out.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        out["rng"] = host_rng_state(self.rng)
        if self._layer_rngs():  # Dropout's mask generators, so a resume draws the same masks
            out["layer_rngs"] = json.dumps([host_rng_state(g) for g in self._layer_rngs()])
        out["d_steps"] = int(self.d_steps)
        if self.objective.n_critic > 1 and self._last_g_loss is not None:
            out["last_g_loss"] = self._last_g_loss
        return out

    def _layer_rngs(self) -> list[np.random.Generator]:
        """The host generators layers of G and D draw from in a forward (Dropout's ``rng``)."""
        nets = (self.generator, self.discriminator)
        found = [getattr(m, "rng", None) for net in nets for m in net.modules()]
        return [g for g in found if isinstance(g, np.random.Generator)]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (NumPy arrays are moved to the model's device).

        A state without ``d_steps`` (minigan 0.1) starts the critic cycle at 0.

        Raises
        ------
        KeyError / ValueError
            Missing keys or shapes that do not match the model (the message names them).
        """
        parts: dict[str, dict[str, Any]] = {}
        for k, v in state.items():
            prefix, _, rest = k.partition(".")
            parts.setdefault(prefix, {})[rest] = v
        self.generator.load_state_dict(parts.get("generator", {}))
        self.discriminator.load_state_dict(parts.get("discriminator", {}))
        self.g_optimizer.load_state_dict(parts.get("g_optimizer", {}))
        self.d_optimizer.load_state_dict(parts.get("d_optimizer", {}))
        if self.ema is not None:
            if "ema" not in parts:
                raise KeyError("state has no 'ema.*' entries, but this GAN keeps an EMA of G")
            self.ema.load_state_dict(parts["ema"])
        rng = state["rng"]
        set_host_rng_state(self.rng, str(rng.item() if hasattr(rng, "item") else rng))
        if "layer_rngs" in state:
            saved = state["layer_rngs"]
            saved = json.loads(str(saved.item() if hasattr(saved, "item") else saved))
            for g, own in zip(self._layer_rngs(), saved, strict=True):
                set_host_rng_state(g, own)
        self.d_steps = int(state.get("d_steps", 0))
        last = state.get("last_g_loss")
        self._last_g_loss = None if last is None else self.backend.asarray(last, self.dtype)


def build_gan(
    preset: str | Preset = "default",
    *,
    device: Any = "cpu",
    seed: int = 0,
    dtype: Any = "float32",
    data_dim: int | None = None,
    image_shape: tuple[int, ...] | None = None,
    **overrides,
) -> GAN:
    """Build a :class:`GAN` from a preset: models initialised from ``seed``, its optimizers.

    Parameters
    ----------
    preset : a name of :data:`PRESETS` or a :class:`Preset`
    device, seed, dtype
        The same ``seed`` gives the same weights and noise on every backend.
    data_dim : int, optional
        Flat data width (minigan 0.1's argument; e.g. 784, or 2 for a toy set).
    image_shape : tuple (C, H, W), optional
        The dataset's image shape (default (1, 28, 28), or ``(data_dim,)``).
    **overrides
        Preset fields or shortcuts (``lr=1e-3``, ``g_loss="saturating"``, ``g_hidden=(128,)``;
        see :meth:`Preset.with_overrides`).

    Returns
    -------
    GAN
        With ``preset`` (overrides applied), ``image_shape`` and ``data_shape`` (the
        per-example shape G produces and D takes, from the builder's layout) set.

    Raises
    ------
    ValueError
        Unknown preset, override, model builder, optimizer or objective; a size that is not
        a positive int; an unknown device string.
    TypeError
        A builder argument the builder does not take; ``dtype`` not float32 / float64.
    RuntimeError
        ``device="gpu"`` without CuPy or a visible CUDA device.
    """
    p = get_preset(preset)
    if overrides:
        p = p.with_overrides(**overrides)
    if image_shape is None:
        image_shape = (1, 28, 28) if data_dim is None else (int(data_dim),)
    g_build, d_build = get_model(p.generator), get_model(p.discriminator)
    backend = resolve_device(device)
    rng = np.random.default_rng(seed)
    made = {"image_shape": tuple(image_shape), "latent_dim": p.latent_dim, "dtype": dtype,
            "device": backend, "rng": rng}  # fmt: skip
    G = g_build.build(**made, **p.generator_args)
    D = d_build.build(**made, **p.discriminator_args)
    g_opt = make_optimizer(p.optimizer, G.parameters(), **p.optimizer_args)
    d_opt = make_optimizer(
        p.optimizer, D.parameters(), **{**p.optimizer_args, **p.d_optimizer_args}
    )
    objective = get_objective(p.objective, **p.objective_args)
    switches = {k: getattr(p, k) for k in SWITCHES}
    schedule = (
        None if p.lr_schedule is None else make_lr_schedule(p.lr_schedule, **p.lr_schedule_args)
    )
    gan = GAN(G, D, p.latent_dim, g_opt, d_opt, seed=rng.integers(2**63), objective=objective,
              lr_schedule=schedule, **switches)  # fmt: skip
    gan.preset = p
    gan.image_shape = tuple(image_shape)
    gan.data_shape = g_build.data_shape(image_shape)
    return gan
