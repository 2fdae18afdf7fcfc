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
from .backend import array_namespace, backend_of, device_of

__all__ = [
    "Objective",
    "NonSaturating",
    "Minimax",
    "LSGAN",
    "WGAN",
    "WGANGP",
    "Hinge",
    "gradient_penalty",
    "check_penalty_critic",
    "OBJECTIVES",
    "get_objective",
]

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
    def penalty(self, critic, real, fake, rng, labels=None):
        """Add a regulariser's parameter gradients into ``critic.grads``; return it or None.

        Called after D's loss was back-propagated and before D's optimizer step. ``rng`` is
        the GAN's host ``numpy.random.Generator`` (e.g. for interpolation weights); ``labels``
        the batch's classes for a conditional critic (None otherwise).
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


def _check_n_critic(n_critic) -> int:
    if isinstance(n_critic, bool) or not isinstance(n_critic, int) or n_critic <= 0:
        raise ValueError(f"n_critic: expected an int >= 1, got {n_critic!r}")
    return n_critic


def _check_number(name: str, value, *, low: float = -math.inf, strict: bool = False) -> float:
    """``value`` as a float, or a one-line error unless it is a finite number above ``low``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= low if strict else value < low):
        bound = f"> {low}" if strict else f">= {low}"
        raise ValueError(f"{name}: expected a finite number {bound}, got {value!r}")
    return float(value)


def _constant_grad(out, value: float):
    """``value / N`` everywhere: the gradient of ``value * mean(out)``."""
    xp = array_namespace(out)
    return xp.full(out.shape, value / out.shape[0], dtype=out.dtype, device=device_of(out))


def _mean(out):
    xp = array_namespace(out)
    return xp.asarray(xp.mean(out))


class LSGAN(Objective):
    """Least-squares GAN (Mao et al. 2017, Eq. 2), D outputs a raw score ``D(x)``::

        L_D = 1/2 mean (D(x) - b)^2 + 1/2 mean (D(G(z)) - a)^2
        L_G = 1/2 mean (D(G(z)) - c)^2

    with the paper's 0-1 coding ``a = 0`` (fake), ``b = c = 1`` (real); ``a=-1, b=1, c=0``
    is its Pearson-chi^2 choice (Eq. 8). Gradients ``dL_D/dD(x) = (D(x) - b) / N``, etc.

    Parameters
    ----------
    a, b, c : float
        Targets of D for fakes, of D for reals, and the value G wants D to give its fakes.

    Raises
    ------
    ValueError
        A target that is not a finite number; ``a == b``; outputs not of shape (N, 1).
    """

    name = "lsgan"
    metric_names = ("d_real", "d_fake")

    def __init__(self, a: float = 0.0, b: float = 1.0, c: float = 1.0):
        self.a, self.b, self.c = (_check_number(k, v) for k, v in (("a", a), ("b", b), ("c", c)))
        if self.a == self.b:
            raise ValueError(
                f"a, b: expected different targets for fakes and reals, got {a} == {b}"
            )

    def d_loss(self, real_out, fake_out):
        """``1/2 mean (D(x) - b)^2 + 1/2 mean (D(G(z)) - a)^2`` and its two gradients."""
        _check_out(real_out, "real_out")
        _check_out(fake_out, "fake_out")
        xp = array_namespace(real_out, fake_out, names=("real_out", "fake_out"))
        er, ef = real_out - self.b, fake_out - self.a
        loss = 0.5 * xp.mean(er * er) + 0.5 * xp.mean(ef * ef)
        return xp.asarray(loss), er / real_out.shape[0], ef / fake_out.shape[0]

    def g_loss(self, fake_out):
        """``1/2 mean (D(G(z)) - c)^2`` and its gradient ``(D(G(z)) - c) / N``."""
        _check_out(fake_out, "fake_out")
        xp = array_namespace(fake_out)
        e = fake_out - self.c
        return xp.asarray(0.5 * xp.mean(e * e)), e / fake_out.shape[0]

    def metrics(self, real_out, fake_out):
        """``d_real`` = mean D(x), ``d_fake`` = mean D(G(z)) (raw scores; targets b and a)."""
        return {"d_real": _mean(real_out), "d_fake": _mean(fake_out)}

    def config(self):
        return {
            k: v
            for k, v, d in (("a", self.a, 0.0), ("b", self.b, 1.0), ("c", self.c, 1.0))
            if v != d
        }


class _CriticGame(Objective):
    """Shared by the Wasserstein games: D is a critic with an unbounded score ``f(x)``::

        L_D = mean f(G(z)) - mean f(x)        (the critic maximises the estimate W)
        L_G = -mean f(G(z))

    ``W = mean f(x) - mean f(G(z))`` estimates the Wasserstein-1 distance (up to the critic's
    Lipschitz constant; Arjovsky et al. 2017, Eq. 3) and is logged as ``wasserstein``.
    """

    metric_names = ("wasserstein",)

    def d_loss(self, real_out, fake_out):
        """``mean f(G(z)) - mean f(x)``, gradients ``-1/N`` (real) and ``+1/N`` (fake)."""
        _check_out(real_out, "real_out")
        _check_out(fake_out, "fake_out")
        loss = _mean(fake_out) - _mean(real_out)
        return loss, _constant_grad(real_out, -1.0), _constant_grad(fake_out, 1.0)

    def g_loss(self, fake_out):
        """``-mean f(G(z))`` and its gradient ``-1/N``."""
        _check_out(fake_out, "fake_out")
        return -_mean(fake_out), _constant_grad(fake_out, -1.0)

    def metrics(self, real_out, fake_out):
        """``wasserstein`` = mean f(x) - mean f(G(z))."""
        return {"wasserstein": _mean(real_out) - _mean(fake_out)}


class WGAN(_CriticGame):
    """Wasserstein GAN with weight clipping (Arjovsky et al. 2017, Algorithm 1).

    Losses as in the Wasserstein game: ``L_D = mean f(G(z)) - mean f(x)``,
    ``L_G = -mean f(G(z))``. After every critic update each parameter is clipped to
    ``[-clip_value, clip_value]`` (:meth:`after_d_step`), a crude way of keeping f Lipschitz;
    the critic is updated ``n_critic`` times per generator update. The paper's settings:
    ``clip_value = 0.01``, ``n_critic = 5``, RMSprop with lr 5e-5 (the ``wgan`` preset).

    Parameters
    ----------
    clip_value : float, > 0
    n_critic : int, >= 1

    Raises
    ------
    ValueError
        ``clip_value`` not a positive finite number; ``n_critic`` not an int >= 1; outputs not
        of shape (N, 1).
    """

    name = "wgan"

    def __init__(self, clip_value: float = 0.01, n_critic: int = 5):
        self.clip_value = _check_number("clip_value", clip_value, low=0.0, strict=True)
        self.n_critic = _check_n_critic(n_critic)

    def after_d_step(self, critic) -> None:
        """Clip every critic parameter in place: ``w = clip(w, -c, c)``."""
        c = self.clip_value
        for p in critic.parameters():
            data = p.data
            data[...] = array_namespace(data).clip(data, -c, c)

    def config(self):
        return {"clip_value": self.clip_value, "n_critic": self.n_critic}


class WGANGP(_CriticGame):
    """Wasserstein GAN with gradient penalty (Gulrajani et al. 2017, Algorithm 1, Eq. 3).

    ``L_D = mean f(G(z)) - mean f(x) + lambda * mean_n (||grad_x f(x_hat_n)||_2 - 1)^2`` at
    the interpolates ``x_hat = eps * x + (1 - eps) * G(z)``, ``eps ~ U(0, 1)`` one per example
    (drawn from the host generator given to :meth:`penalty`); ``L_G = -mean f(G(z))``. The
    penalty and its parameter gradient come from :func:`gradient_penalty` (a hand-written
    double backward). The paper's settings: ``weight = lambda = 10``, ``n_critic = 5``, Adam
    with lr 1e-4 and betas (0, 0.9) (the ``wgan-gp`` preset); no batch norm in the critic.

    Parameters
    ----------
    weight : float, >= 0
        lambda.
    n_critic : int, >= 1

    Raises
    ------
    ValueError
        ``weight`` negative or not finite; ``n_critic`` not an int >= 1; outputs not of shape
        (N, 1); real and fake batches of different shapes.

    Notes
    -----
    ``metrics`` adds ``gradient_penalty``: the value of the latest :meth:`penalty` call (0
    before the first).
    """

    name = "wgan_gp"
    metric_names = ("wasserstein", "gradient_penalty")

    def __init__(self, weight: float = 10.0, n_critic: int = 5):
        self.weight = _check_number("weight", weight, low=0.0)
        self.n_critic = _check_n_critic(n_critic)
        self.last_penalty = None

    def penalty(self, critic, real, fake, rng, labels=None):
        """``lambda * mean (||grad f(x_hat)|| - 1)^2``; adds its gradient into ``critic.grads``.

        Shapes: real, fake (N, ...), labels (N,) or None -> penalty (). ``rng`` draws ``eps``
        (N,) in float64 on the host (so every backend sees the same numbers), cast to the
        batch's dtype. A conditional critic sees each interpolate with its example's label
        (real and fake share the labels in :meth:`minigan.gan.GAN.train_step`).
        """
        if tuple(real.shape) != tuple(fake.shape):
            raise ValueError(
                f"fake: expected the real batch's shape {tuple(real.shape)}, "
                f"got {tuple(fake.shape)}"
            )
        n = real.shape[0]
        eps_host = rng.random(n).reshape((n,) + (1,) * (real.ndim - 1))  # (N, 1, ...)
        eps = backend_of(real).asarray(eps_host, dtype=real.dtype)
        x_hat = eps * real + (1 - eps) * fake  # (N, ...)
        self.last_penalty = gradient_penalty(critic, x_hat, self.weight, labels=labels)
        return self.last_penalty

    def metrics(self, real_out, fake_out):
        """``wasserstein`` and ``gradient_penalty`` (the latest penalty, 0-d array)."""
        out = super().metrics(real_out, fake_out)
        last = self.last_penalty
        if last is None:
            xp = array_namespace(real_out)
            last = xp.zeros((), dtype=real_out.dtype, device=device_of(real_out))
        out["gradient_penalty"] = last
        return out

    def config(self):
        return {"weight": self.weight, "n_critic": self.n_critic}


class Hinge(Objective):
    """Hinge loss GAN (Lim & Ye 2017, Eq. 7-8; Miyato et al. 2018, Eq. 16-17)::

        L_D = mean max(0, 1 - D(x)) + mean max(0, 1 + D(G(z)))
        L_G = -mean D(G(z))

    D outputs a raw score. ``dL_D/dD(x) = -[D(x) < 1] / N``, ``dL_D/dD(G(z)) = [D(G(z)) > -1]
    / N`` (subgradient 0 at the kinks, like ``torch.relu``); ``dL_G/dD(G(z)) = -1/N``.

    Raises
    ------
    ValueError
        Outputs not of shape (N, 1).
    """

    name = "hinge"
    metric_names = ("score_real", "score_fake")

    def d_loss(self, real_out, fake_out):
        """``mean relu(1 - D(x)) + mean relu(1 + D(G(z)))`` and its two (sub)gradients."""
        _check_out(real_out, "real_out")
        _check_out(fake_out, "fake_out")
        xp = array_namespace(real_out, fake_out, names=("real_out", "fake_out"))
        loss_real, active_real = F.relu_forward(1 - real_out)
        loss_fake, active_fake = F.relu_forward(1 + fake_out)
        loss = xp.mean(loss_real) + xp.mean(loss_fake)
        dreal = -xp.astype(active_real, real_out.dtype) / real_out.shape[0]
        dfake = xp.astype(active_fake, fake_out.dtype) / fake_out.shape[0]
        return xp.asarray(loss), dreal, dfake

    def g_loss(self, fake_out):
        """``-mean D(G(z))`` and its gradient ``-1/N``."""
        _check_out(fake_out, "fake_out")
        return -_mean(fake_out), _constant_grad(fake_out, -1.0)

    def metrics(self, real_out, fake_out):
        """``score_real`` = mean D(x), ``score_fake`` = mean D(G(z)) (margins at +-1)."""
        return {"score_real": _mean(real_out), "score_fake": _mean(fake_out)}


# ----------------------------------------------------------------------------------------------
# The gradient penalty: a hand-written double backward
# ----------------------------------------------------------------------------------------------
def _named_modules(module, prefix: str = ""):
    yield prefix or type(module).__name__, module
    for name, child in module.children().items():
        yield from _named_modules(child, f"{prefix}.{name}" if prefix else name)


def check_penalty_critic(critic) -> None:
    """Refuse a critic the double backward cannot differentiate (one-line error).

    Raises
    ------
    ValueError
        A module says ``mixes_batch_rows = True`` (BatchNorm): the penalty is per example,
        and Gulrajani et al. (2017, Sec. 4) advise against batch norm in the critic.
    TypeError
        A module has no ``jvp`` / ``jvp_backward`` (the double-backward methods).
    """
    for name, m in _named_modules(critic):
        kind = type(m).__name__
        if getattr(m, "mixes_batch_rows", False):
            raise ValueError(
                f"gradient_penalty: critic module {name!r} ({kind}) mixes the rows of a batch; "
                "the penalty needs per-example gradients: use a critic without batch norm"
            )
        if not (callable(getattr(m, "jvp", None)) and callable(getattr(m, "jvp_backward", None))):
            raise TypeError(
                f"gradient_penalty: critic module {name!r} ({kind}) has no double backward "
                "(jvp / jvp_backward methods)"
            )


def gradient_penalty(critic, x, weight: float = 10.0, *, labels=None):
    """``P = weight * mean_n (||grad_x D(x)_n||_2 - 1)^2``; **adds** ``dP/dtheta`` into
    ``critic.grads`` (Gulrajani et al. 2017, Eq. 3).

    The parameter gradient is a second derivative, computed reverse over forward
    (``docs/math.md``, "The gradient of a gradient"): ``g = backward(ones)`` (critic frozen),
    ``v = dP/dg``; then ``dP/dtheta = d/dtheta sum_n D'(x_n)[v_n]``: a tangent pass
    ``critic.jvp(v)`` and its reverse ``critic.jvp_backward(None, ones)``.

    Parameters
    ----------
    critic : Module whose every sub-module has ``jvp`` / ``jvp_backward`` (Linear, Conv2d,
        ConvTranspose2d, activations, Flatten, Unflatten, Dropout, Sequential)
    x : array (N, ...), the points (interpolates), dtype of the critic
    weight : float, lambda
    labels : int array (N,), optional
        The classes of a conditional critic (``critic.forward(x, labels)``, a
        :class:`~minigan.models.LabelConcat`); the gradient is taken with respect to x only.

    Shapes
    ------
    x (N, *) -> critic(x) (N, 1); penalty ().

    Returns
    -------
    penalty : 0-d array on the critic's device

    Raises
    ------
    ValueError
        The critic mixes batch rows (BatchNorm); its output is not (N, 1).
    TypeError
        A module without the double-backward methods (named in the message).

    Notes
    -----
    The norm is ``sqrt(||g||^2 + 1e-12)``, so a zero gradient gives no NaN. The critic's
    forward caches and ``requires_grad`` flags are restored afterwards: a ``backward`` that
    follows sees the caches of the last ``forward`` before this call. A frozen critic gets
    no gradient. A training-mode Dropout draws one mask in this call's forward; the input
    backward, the tangent pass and its reverse reuse it (``P`` is differentiated with the
    mask held fixed; see :class:`~minigan.layers.Dropout`). Cost: a forward, an input
    backward, a tangent pass and its reverse (about 1.6x a forward + backward of the default
    MLP critic; ``benchmarks/bench_penalty.py``).
    """
    check_penalty_critic(critic)
    modules = list(critic.modules())
    saved = [(m, m._cache, m.requires_grad) for m in modules]
    try:
        out = critic.forward(x) if labels is None else critic.forward(x, labels)
        _check_out(out, "critic(x)")
        xp = array_namespace(out)
        ones = xp.ones_like(out)
        for m in modules:
            m.requires_grad = False  # g = dD/dx only; no parameter gradients from this pass
        g = critic.backward(ones)  # (N, *x)
        for m, _, flag in saved:
            m.requires_grad = flag
        penalty, cache = F.grad_norm_penalty_forward(g, weight)
        v = F.grad_norm_penalty_backward(xp.ones((), dtype=out.dtype, device=device_of(out)), cache)
        critic.jvp(v)  # (N, 1): D'(x)[v] per example
        critic.jvp_backward(None, ones, input_grad=False)  # adds dP/dtheta into critic.grads
    finally:
        for m, cache_, flag in saved:
            m._cache, m.requires_grad, m._tangent = cache_, flag, None
    return penalty


#: Objectives by registry name; a new objective is one class and one entry here.
OBJECTIVES: dict[str, type[Objective]] = {
    NonSaturating.name: NonSaturating,
    Minimax.name: Minimax,
    LSGAN.name: LSGAN,
    WGAN.name: WGAN,
    WGANGP.name: WGANGP,
    Hinge.name: Hinge,
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
