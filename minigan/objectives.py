"""GAN objectives: the game D and G play, as small classes the training step calls.

An objective turns D's raw outputs (logits for the BCE games, critic scores for Wasserstein)
into the two players' losses and the gradients of those losses **with respect to D's
outputs**. The step (:meth:`minigan.gan.GAN.train_step`) back-propagates those gradients
through D (and, for G, on into G); it contains nothing specific to any objective::

    d_loss, d_real_out, d_fake_out = objective.d_loss(real_out, fake_out)   # D's update
    penalty = objective.penalty(D, real, fake, rng)                        # may add to D.grads
    ... d_optimizer.step(); objective.after_d_step(D)                      # e.g. weight clipping
    g_loss, d_fake_out = objective.g_loss(fake_out)                        # G's update

Shapes: ``real_out``, ``fake_out`` (N, 1), float, on the model's device; every gradient
returned has the shape and dtype of the output it belongs to; losses are 0-d arrays.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from . import functional as F
from .backend import array_namespace, device_of

__all__ = ["Objective", "NonSaturating", "Minimax", "OBJECTIVES", "get_objective"]

#: Health-check codes of :class:`minigan.health.HealthMonitor` that hold for every objective.
GENERIC_CHECKS = ("NAN", "GRAD_EXPLODING", "MODE_COLLAPSE")
#: Codes that read D's output as a probability and its loss as a BCE (the minimax games).
BCE_CHECKS = ("D_WINS", "D_FAKE_ZERO", "G_LOSS_RISING")


class Objective:
    """Base class of a GAN objective (see the module docstring for how the step uses it).

    Class attributes
    ----------------
    name : str
        Registry name (``minigan.objectives.OBJECTIVES``, a preset's ``objective`` field).
    n_critic : int
        D (critic) updates per G update (1 for the BCE games, 5 for WGAN).
    health_checks : tuple of str
        The :class:`~minigan.health.HealthMonitor` codes that mean something for this game:
        a Wasserstein critic loss is negative by design, so "D wins" does not apply to it.
    metric_names : tuple of str
        The keys of :meth:`metrics` (logged per step beside ``d_loss`` and ``g_loss``).
    reference_lines : dict of str -> float
        Values worth a dashed line in the loss plot (the equilibrium of the game), by metric;
        empty when the game has none.
    """

    name: ClassVar[str] = ""
    n_critic: int = 1
    health_checks: ClassVar[tuple[str, ...]] = GENERIC_CHECKS
    metric_names: ClassVar[tuple[str, ...]] = ()
    reference_lines: ClassVar[dict[str, float]] = {}

    # -- the two players' losses -----------------------------------------------------------
    def d_loss(self, real_out, fake_out) -> tuple[Any, Any, Any]:
        """D's loss and its gradients ``(loss, dloss/dreal_out, dloss/dfake_out)``."""
        raise NotImplementedError

    def g_loss(self, fake_out) -> tuple[Any, Any]:
        """G's loss and its gradient ``(loss, dloss/dfake_out)`` (D's output on G(z))."""
        raise NotImplementedError

    # -- optional parts (defaults do nothing) ----------------------------------------------
    def penalty(self, critic, real, fake, rng):
        """Add a regulariser's parameter gradients into ``critic.grads``; return it or None.

        Called after D's loss was back-propagated and before D's optimizer step. ``rng`` is
        the GAN's host ``numpy.random.Generator`` (e.g. for interpolation weights).
        """
        return None

    def after_d_step(self, critic) -> None:
        """Called right after D's optimizer step (WGAN clips the weights here)."""

    def metrics(self, real_out, fake_out) -> dict[str, Any]:
        """Extra per-step statistics (0-d device arrays) named by :attr:`metric_names`."""
        return {}

    def config(self) -> dict[str, Any]:
        """The settings that rebuild this objective: ``type(self)(**obj.config())``."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _check_out(out, name: str) -> None:
    if len(out.shape) != 2 or out.shape[1] != 1:
        raise ValueError(f"{name}: expected D's output of shape (N, 1), got {tuple(out.shape)}")


def _bce_logits(out, target: float):
    """Mean BCE of logits ``out`` against a constant target, and d(loss)/d(out)."""
    xp, dev = array_namespace(out), device_of(out)
    y = xp.full(out.shape, target, dtype=out.dtype, device=dev)
    loss, cache = F.bce_with_logits_forward(out, y, "mean")
    one = xp.ones((), dtype=out.dtype, device=dev)
    return loss, F.bce_with_logits_backward(one, cache)


class _BCEGame(Objective):
    """Shared by the two games of Goodfellow et al. (2014): D outputs logits, D(x) = sigmoid."""

    health_checks = GENERIC_CHECKS + BCE_CHECKS
    metric_names = ("d_real", "d_fake")
    # At the equilibrium D(x) = D(G(z)) = 1/2 and L_D = 2 log 2 (Goodfellow et al. 2014, Thm. 1)
    reference_lines = {"d_loss": 2 * math.log(2.0), "d_real": 0.5, "d_fake": 0.5}

    def __init__(self, real_label: float = 1.0):
        if not isinstance(real_label, (int, float)) or not 0.5 < real_label <= 1.0:
            raise ValueError(f"real_label: expected a number in (0.5, 1], got {real_label!r}")
        self.real_label = float(real_label)

    def d_loss(self, real_out, fake_out):
        """``BCE(D(x), real_label) + BCE(D(G(z)), 0)`` on logits, with its two gradients."""
        _check_out(real_out, "real_out")
        _check_out(fake_out, "fake_out")
        loss_real, dreal = _bce_logits(real_out, self.real_label)
        loss_fake, dfake = _bce_logits(fake_out, 0.0)
        return loss_real + loss_fake, dreal, dfake

    def metrics(self, real_out, fake_out):
        """``d_real`` = mean D(x), ``d_fake`` = mean D(G(z)) (probabilities)."""
        xp = array_namespace(real_out)
        return {"d_real": xp.mean(F.sigmoid(real_out)), "d_fake": xp.mean(F.sigmoid(fake_out))}

    def config(self):
        return {} if self.real_label == 1.0 else {"real_label": self.real_label}


class NonSaturating(_BCEGame):
    """The non-saturating GAN game (Goodfellow et al. 2014, Sec. 3), minigan's default.

    ``L_D = -mean log D(x) - mean log(1 - D(G(z)))``, ``L_G = -mean log D(G(z))``, with
    ``D = sigmoid(logits)`` computed stably from logits (:func:`bce_with_logits_forward`).
    ``dL_G/dlogit = (D(G(z)) - 1) / N``: large while D rejects the fakes, unlike the minimax
    loss. ``real_label < 1`` is one-sided label smoothing (Salimans et al. 2016, Sec. 3.4).

    Raises
    ------
    ValueError
        ``real_label`` outside (0.5, 1]; outputs not of shape (N, 1).
    """

    name = "non_saturating"

    def g_loss(self, fake_out):
        """``-mean log D(G(z)) = BCE(D(G(z)), 1)`` and its gradient."""
        _check_out(fake_out, "fake_out")
        return _bce_logits(fake_out, 1.0)


class Minimax(_BCEGame):
    """The original saturating minimax game (Goodfellow et al. 2014, Eq. 1).

    ``L_G = mean log(1 - D(G(z))) = -BCE(D(G(z)), 0)``; its gradient
    ``dL_G/dlogit = D(G(z)) / N`` vanishes when D confidently rejects the fakes (kept to show
    why it fails; lesson 11). ``L_D`` as :class:`NonSaturating`.

    Raises
    ------
    ValueError
        ``real_label`` outside (0.5, 1]; outputs not of shape (N, 1).
    """

    name = "minimax"

    def g_loss(self, fake_out):
        """``mean log(1 - D(G(z)))`` and its gradient."""
        _check_out(fake_out, "fake_out")
        loss, grad = _bce_logits(fake_out, 0.0)
        return -loss, -grad


#: Objectives by registry name; a new objective is one class and one entry here.
OBJECTIVES: dict[str, type[Objective]] = {
    NonSaturating.name: NonSaturating,
    Minimax.name: Minimax,
}


def get_objective(name: str | Objective, **settings: Any) -> Objective:
    """An objective instance from its registry name and settings (or the instance itself).

    Raises
    ------
    ValueError
        Unknown name (the message lists the known ones).
    TypeError
        A setting the objective does not take.
    """
    if isinstance(name, Objective):
        return name
    if name not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {sorted(OBJECTIVES)}, got {name!r}")
    return OBJECTIVES[name](**settings)


LOG_2 = math.log(2.0)  # the BCE games' per-term loss at equilibrium, D = 1/2
