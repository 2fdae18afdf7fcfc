"""Optimizers with PyTorch's update rules: :class:`SGD`, :class:`Adam`, :class:`RMSprop`,
:func:`clip_grad_norm_`; :data:`OPTIMIZERS` names them for presets; learning-rate schedules
(:class:`LinearDecayLR`, named by :data:`LR_SCHEDULES`).

Each optimizer holds :class:`minigan.layers.Parameter` handles (``model.parameters()``) and
updates ``param.data`` **in place** from ``param.grad``; buffers live on the parameters'
device and keep their dtype (float32 stays float32). Like PyTorch, each parameter keeps its own
step count: a parameter skipped while frozen (``requires_grad_(False)``) does not advance it,
so its bias corrections (Adam) and first momentum step (SGD) are those PyTorch would use.

Fast path (NumPy and CuPy): an optimizer moves its parameters, their gradients and its own
buffers into one flat array each (:class:`minigan.layers.FlatParameters`), so that
``zero_grad``, ``step`` and :func:`clip_grad_norm_` run the update lines *once* on the flat
arrays instead of once per parameter. It applies while every parameter is trainable and all
have the same step count (the usual case); otherwise, on array-api-strict, or inside
``fast_paths(False)``, the same lines run per parameter. Both give the same numbers bit for bit
(``tests/test_fastpath.py``); ``state_dict()`` keeps its per-parameter keys. Create the
optimizer after ``model.to(device)``, and reach arrays through the module (``layer.weight``,
``param.data``), not through a reference kept from before the optimizer existed.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .backend import array_namespace, backend_of, device_of, to_numpy
from .functional import ufuncs_with_out
from .layers import flat_gradient, flatten_parameters

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "RMSprop",
    "OPTIMIZERS",
    "clip_grad_norm_",
    "LinearDecayLR",
    "LR_SCHEDULES",
    "make_lr_schedule",
]


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)  # NumPy scalars included


def _check_nonnegative(name: str, v) -> None:
    """A hyperparameter that must be a finite number >= 0 (NaN and inf refused too)."""
    if not (_is_number(v) and 0 <= v < math.inf):
        raise ValueError(f"{name}: expected a value >= 0 (finite), got {v!r}")


class Optimizer:
    """Base class: the parameter list, ``zero_grad`` and ``state_dict`` machinery.

    Subclasses name their hyperparameters in ``hyper`` and per-parameter buffers in
    ``buffer_names``; ``state_dict()`` returns ``{"step": int, "step.<i>": int, <hyper>...,
    "<buffer>.<i>": array}``, flat and free of Python objects, so it saves to ``.npz`` without
    pickle. ``step`` counts :meth:`step` calls; ``step.<i>`` counts the updates parameter ``i``
    received (``state[p]["step"]`` in PyTorch).

    Attributes
    ----------
    step_count : int
        Calls of :meth:`step`.
    param_steps : list of int
        Updates each parameter received (frozen parameters are skipped and not counted).
    """

    buffer_names: tuple[str, ...] = ()

    def __init__(self, params, lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(lr, (int, float)) or lr < 0 or not math.isfinite(lr):
            raise ValueError(f"lr: expected a finite number >= 0, got {lr!r}")
        self.lr = float(lr)
        self.step_count = 0
        self.param_steps = [0] * len(self.params)
        self.state: dict[str, list[Any]] = {}
        self._flat = flatten_parameters(self.params)  # None: per-parameter only
        self._flat_state: dict[str, Any] = {}  # buffer name -> flat array behind self.state

    def zero_grad(self) -> None:
        """Reset the gradients of every parameter to zero, in place."""
        flat = self._flat_now()
        if flat is not None:  # fast path: one array operation
            flat.grad[...] = 0
            return
        for p in self.params:
            p.grad[...] = 0

    def _flat_now(self):
        """The flat buffer when the fast path applies to every parameter now, else None."""
        flat = self._flat
        if flat is None or ufuncs_with_out(flat.data) is None or not flat.intact(self.params):
            return None
        return flat

    def _chunks(self, names: tuple[str, ...]):
        """What one update runs on: ``(data, grad, buffers, t)`` per trainable parameter,
        advancing its step count ``t`` (frozen parameters are skipped), or, on the fast path,
        one such tuple for all parameters at once (flat arrays, the common ``t``).

        ``buffers`` holds the per-parameter state named in ``names`` (``None`` for a name
        not in use, e.g. ``max_exp_avg_sq`` without amsgrad).
        """
        state = [self._buffers(n) if n else None for n in names]
        flat = self._flat_now()
        steps = self.param_steps
        if (
            flat is not None
            and all(p.requires_grad for p in self.params)
            and steps.count(steps[0]) == len(steps)
        ):
            self.param_steps = [t + 1 for t in steps]
            bufs = [self._flat_state[n] if n else None for n in names]
            yield flat.data, flat.grad, bufs, steps[0] + 1
            return
        for i, p in enumerate(self.params):
            if not p.requires_grad:
                continue
            steps[i] += 1
            yield p.data, p.grad, [b[i] if b is not None else None for b in state], steps[i]

    def step(self) -> None:
        """Update every parameter in place from its ``.grad`` (each subclass implements it)."""
        raise NotImplementedError

    def _hyper(self) -> dict[str, float]:
        return {"lr": self.lr}

    def _buffers(self, name: str) -> list[Any]:
        """Per-parameter buffer ``name``, created as zeros on first use."""
        if name not in self.state:
            if self._flat is not None:  # views into one flat array (see _adopt)
                flat = self._flat
                self._flat_state[name] = backend_of(flat.data).zeros(
                    flat.data.shape, flat.data.dtype
                )
                self.state[name] = flat.views(self._flat_state[name])
            else:
                self.state[name] = [
                    backend_of(p.data).zeros(p.data.shape, p.data.dtype) for p in self.params
                ]
        return self.state[name]

    def _adopt(self, name: str, bufs: list[Any]) -> None:
        """Make ``bufs`` (one per parameter) the state ``name``: copied into a flat array
        and viewed from it when this optimizer has a flat buffer, else kept as they are."""
        if self._flat is None:
            self.state[name] = bufs
            return
        self._flat_state[name] = self._flat.flatten(bufs)
        self.state[name] = self._flat.views(self._flat_state[name])

    def state_dict(self) -> dict[str, Any]:
        """Flat dict: ``step``, hyperparameters, and ``"<buffer>.<i>"`` arrays (on device)."""
        out: dict[str, Any] = {"step": self.step_count, **self._hyper()}
        out.update({f"step.{i}": n for i, n in enumerate(self.param_steps)})
        for name, bufs in self.state.items():
            for i, b in enumerate(bufs):
                out[f"{name}.{i}"] = b
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (arrays may be NumPy; they are moved and cast).

        A state without per-parameter counts (``step.<i>``, checkpoints written before they
        existed) gives every parameter the optimizer's ``step``.

        Raises
        ------
        KeyError
            A buffer is missing for some parameter.
        ValueError
            A buffer's shape differs from its parameter's.
        """
        self.step_count = int(state["step"])
        self.param_steps = [
            int(state.get(f"step.{i}", self.step_count)) for i in range(len(self.params))
        ]
        for k in self._hyper():
            if k in state:
                v = state[k]
                setattr(self, k, float(v) if not isinstance(v, bool) else v)
        for name in self.buffer_names:
            keys = [k for k in state if k.startswith(name + ".") and k[len(name) + 1 :].isdigit()]
            if not keys:
                continue
            bufs = []
            for i, p in enumerate(self.params):
                key = f"{name}.{i}"
                if key not in state:
                    raise KeyError(f"optimizer state: missing {key!r}")
                v = state[key]
                if tuple(v.shape) != tuple(p.data.shape):
                    raise ValueError(
                        f"optimizer state {key}: expected shape {tuple(p.data.shape)}, "
                        f"got {tuple(v.shape)}"
                    )
                bufs.append(backend_of(p.data).asarray(to_numpy(v), dtype=p.data.dtype))
            self._adopt(name, bufs)

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v}" for k, v in self._hyper().items())
        return f"{type(self).__name__}({hp})"


class SGD(Optimizer):
    """Stochastic gradient descent with momentum (``torch.optim.SGD``, same update rule).

    For each parameter ``p`` with gradient ``g``::

        g = g + weight_decay * p
        if momentum:  b = g (first step) else momentum * b + (1 - dampening) * g
                      g = g + momentum * b  if nesterov else b
        p = p - lr * g

    Parameters
    ----------
    params : list of Parameter
    lr : float, >= 0
    momentum, dampening, weight_decay : float, >= 0
    nesterov : bool
        Needs ``momentum > 0`` and ``dampening == 0``, as in PyTorch.

    Raises
    ------
    ValueError
        Negative lr, momentum or weight decay; nesterov without momentum.
    """

    buffer_names = ("momentum_buffer",)

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr)
        for name, v in (
            ("momentum", momentum),
            ("dampening", dampening),
            ("weight_decay", weight_decay),
        ):
            _check_nonnegative(name, v)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov momentum needs momentum > 0 and dampening == 0")
        self.momentum = float(momentum)
        self.dampening = float(dampening)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)

    def _hyper(self):
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "dampening": self.dampening,
            "weight_decay": self.weight_decay,
        }

    def step(self) -> None:
        """Apply one update to every parameter, in place."""
        self.step_count += 1
        names = ("momentum_buffer" if self.momentum else "",)
        # One chunk per parameter, or one for all of them (flat arrays; see _chunks).
        for data, g, (b,), t in self._chunks(names):
            if self.weight_decay:
                g = g + self.weight_decay * data
            if self.momentum:
                if t == 1:  # first step of this parameter
                    b[...] = g
                else:
                    b *= self.momentum
                    b += (1 - self.dampening) * g
                g = g + self.momentum * b if self.nesterov else b
            data -= self.lr * g  # in place: optimizers never replace the parameter array


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1) with PyTorch's conventions (``torch.optim.Adam``).

    At step ``t`` (this parameter's own count, as in PyTorch) for each parameter ``p`` with
    gradient ``g``::

        g = g + weight_decay * p                      (L2 penalty, not AdamW)
        m = beta1 * m + (1 - beta1) * g               first moment
        v = beta2 * v + (1 - beta2) * g**2            second moment
        v_hat = max(v_hat, v) if amsgrad else v
        p = p - lr / (1 - beta1**t) * m / (sqrt(v_hat) / sqrt(1 - beta2**t) + eps)

    Parameters
    ----------
    params : list of Parameter
    lr : float, >= 0 (default 1e-3)
    betas : (float, float), each in [0, 1) (default (0.9, 0.999); GANs use (0.5, 0.999))
    eps : float, > 0 (default 1e-8)
    weight_decay : float, >= 0
    amsgrad : bool (Reddi et al. 2018)

    Raises
    ------
    ValueError
        lr negative, eps not > 0, a beta outside [0, 1), weight decay negative (any of them
        NaN or infinite).

    Notes
    -----
    :meth:`step` shows the update as plain array-API lines (they run on array-api-strict).
    On NumPy and CuPy the same operations, in the same order, run through ``_step_out``,
    which writes every intermediate into one reused scratch buffer (``out=``) instead of six
    fresh arrays, over the flat arrays of all parameters (module docstring) in blocks of
    ``block`` elements that stay in the CPU cache (:func:`_blocks`). Results are identical bit
    for bit (``tests/test_fastpath.py``); timings in ``docs/benchmarks.md``.
    """

    buffer_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    block = 1 << 17  # elements per block of the flat fast path (see _blocks)

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ):
        super().__init__(params, lr)
        if len(betas) != 2:
            raise ValueError(f"betas: expected two values, got {betas!r}")
        for i, b in enumerate(betas):
            if not (_is_number(b) and 0.0 <= b < 1.0):
                raise ValueError(f"betas[{i}]: expected a value in [0, 1), got {b!r}")
        if not (_is_number(eps) and 0 < eps < math.inf):
            raise ValueError(
                f"eps: expected a finite value > 0, got {eps!r} (eps keeps m / (sqrt(v) + eps) "
                "finite where a gradient is 0)"
            )
        _check_nonnegative("weight_decay", weight_decay)
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.amsgrad = bool(amsgrad)
        self._scratch_bufs: dict[Any, Any] = {}  # see _scratch

    @property
    def betas(self) -> tuple[float, float]:
        """``(beta1, beta2)``, the decay rates of the first and second moment estimates."""
        return (self.beta1, self.beta2)

    def _hyper(self):
        return {
            "lr": self.lr,
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
        }

    def step(self) -> None:
        """Apply one Adam update to every parameter, in place."""
        self.step_count += 1
        names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq" if self.amsgrad else "")
        # One chunk per parameter, or one for all of them (flat arrays; see _chunks).
        for data, g, (m, v, max_sq), t in self._chunks(names):
            # t: this parameter's own step, as in PyTorch
            sqrt_bias_correction2 = math.sqrt(1 - self.beta2**t)
            step_size = self.lr / (1 - self.beta1**t)
            if self.weight_decay:
                g = g + self.weight_decay * data
            fast = ufuncs_with_out(data)
            if fast is not None:  # NumPy/CuPy: the lines below, without temporaries
                args = (step_size, sqrt_bias_correction2)
                for z in _blocks(data, self.block):  # the flat arrays block by block
                    mz = None if max_sq is None else max_sq[z]
                    self._step_out(fast, data[z], g[z], m[z], v[z], mz, *args)
                continue
            xp = array_namespace(data)
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * (g * g)
            if self.amsgrad:
                max_sq[...] = xp.maximum(max_sq, v)
                v = max_sq
            denom = xp.sqrt(v)
            denom /= sqrt_bias_correction2
            denom += self.eps
            data -= step_size * (m / denom)  # in place

    def _step_out(self, fast, data, g, m, v, max_sq, step_size, sqrt_bias_correction2):
        """Fast path of :meth:`step` for one parameter: the same operations in the same order
        (so the same float32 results, bit for bit), but every intermediate goes into one
        reused scratch buffer via ``out=`` instead of a fresh array. ``fast`` is the NumPy or
        CuPy module (:func:`minigan.functional.ufuncs_with_out`)."""
        s = self._scratch(data)
        m *= self.beta1
        fast.multiply(g, 1 - self.beta1, out=s)
        m += s  # m = beta1 m + (1 - beta1) g
        v *= self.beta2
        fast.multiply(g, g, out=s)
        s *= 1 - self.beta2
        v += s  # v = beta2 v + (1 - beta2) g^2
        if max_sq is not None:
            fast.maximum(max_sq, v, out=max_sq)
            v = max_sq
        fast.sqrt(v, out=s)
        s /= sqrt_bias_correction2
        s += self.eps  # s = sqrt(v_hat) / sqrt(1 - beta2^t) + eps
        fast.divide(m, s, out=s)
        s *= step_size
        data -= s

    def _scratch(self, like):
        """A buffer shaped like ``like``: a view into one flat array per dtype and device,
        reused for every parameter so that it stays in cache (never part of the state)."""
        key = (type(like), like.dtype, str(device_of(like)))
        bufs = self._scratch_bufs
        if key not in bufs or bufs[key].size < like.size:  # the flat path needs all of them
            size = max([like.size] + [p.data.size for p in self.params])
            bufs[key] = array_namespace(like).empty(
                (size,), dtype=like.dtype, device=device_of(like)
            )
        return bufs[key][: like.size].reshape(like.shape)


def _blocks(x, block: int) -> list[Any]:
    """Indices of ``x`` in blocks of ``block`` elements when ``x`` is flat, else ``[...]``.

    The fast path runs Adam's dozen elementwise lines block by block over the flat arrays,
    so that each block stays in the CPU cache from the first line to the last instead of
    every line streaming the whole parameter set through memory (about 35% less time for
    Adam here; ``docs/benchmarks.md``). Elementwise lines: the same numbers, bit for bit.
    """
    if x.ndim != 1:
        return [...]
    return [slice(a, a + block) for a in range(0, x.shape[0], block)]


class RMSprop(Optimizer):
    """RMSprop (Hinton, Coursera lecture 6e, 2012) with PyTorch's update (``torch.optim.RMSprop``).

    For each parameter ``p`` with gradient ``g``::

        g = g + weight_decay * p                            (L2 penalty)
        v = alpha * v + (1 - alpha) * g**2                  square_avg
        if centered:  m = alpha * m + (1 - alpha) * g       grad_avg
                      d = sqrt(v - m**2) + eps
        else:         d = sqrt(v) + eps
        if momentum:  b = momentum * b + g / d              momentum_buffer
                      p = p - lr * b
        else:         p = p - lr * g / d

    Parameters
    ----------
    params : list of Parameter
    lr : float, >= 0 (default 1e-2, PyTorch's; WGAN uses 5e-5)
    alpha : float in [0, 1] (smoothing constant, default 0.99)
    eps : float, >= 0 (default 1e-8; added *outside* the square root, as in PyTorch)
    weight_decay, momentum : float, >= 0
    centered : bool
        Divide by an estimate of the gradient's variance instead of its second moment
        (Graves 2013, Eq. 38-40).

    Raises
    ------
    ValueError
        lr, eps, weight decay or momentum negative; alpha outside [0, 1].

    Notes
    -----
    State keys as in PyTorch: ``square_avg``, ``grad_avg`` (centered), ``momentum_buffer``.
    Plain array-API lines on every backend (no ``out=`` fast path: WGAN's critic is small
    next to the penalty that dominates its step); on NumPy/CuPy they run once over the flat
    arrays (module docstring).
    """

    buffer_names = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ):
        super().__init__(params, lr)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha: expected a value in [0, 1], got {alpha!r}")
        for name, v in (("eps", eps), ("weight_decay", weight_decay), ("momentum", momentum)):
            if v < 0:
                raise ValueError(f"{name}: expected a value >= 0, got {v!r}")
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.momentum = float(momentum)
        self.centered = bool(centered)

    def _hyper(self):
        return {
            "lr": self.lr,
            "alpha": self.alpha,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
        }

    def step(self) -> None:
        """Apply one RMSprop update to every parameter, in place."""
        self.step_count += 1
        names = (
            "square_avg",
            "grad_avg" if self.centered else "",
            "momentum_buffer" if self.momentum else "",
        )
        # One chunk per parameter, or one for all of them (flat arrays; see _chunks).
        for data, g, (v, m, b), _ in self._chunks(names):
            xp = array_namespace(data)
            if self.weight_decay:
                g = g + self.weight_decay * data
            v *= self.alpha
            v += (1 - self.alpha) * (g * g)
            if self.centered:
                m *= self.alpha
                m += (1 - self.alpha) * g
                denom = xp.sqrt(v - m * m)
            else:
                denom = xp.sqrt(v)
            denom += self.eps
            if self.momentum:
                b *= self.momentum
                b += g / denom
                data -= self.lr * b  # in place
            else:
                data -= self.lr * (g / denom)


def clip_grad_norm_(params, max_norm: float):
    """Scale gradients in place so their global L2 norm is at most ``max_norm``.

    ``total = sqrt(sum_p ||g_p||^2)``; every gradient is multiplied by
    ``min(1, max_norm / (total + 1e-6))`` (``torch.nn.utils.clip_grad_norm_``). No host sync:
    the factor is applied on the device even when it is 1. When the gradients are exactly one
    optimizer's flat buffer (:func:`minigan.layers.flat_gradient`) the sum runs over that one
    array: the same norm up to float rounding (summation order), the same scaling.

    Returns
    -------
    total_norm : 0-d array on the parameters' device (the norm *before* clipping)

    Raises
    ------
    ValueError
        ``max_norm`` not positive, or no parameters.
    """
    params = list(params)
    if not params:
        raise ValueError("clip_grad_norm_: got no parameters")
    if not max_norm > 0:
        raise ValueError(f"max_norm: expected a value > 0, got {max_norm!r}")
    xp = array_namespace(params[0].grad)
    flat = flat_gradient(params)  # fast path: all gradients as one array (see FlatParameters)
    if flat is not None:
        total = xp.asarray(xp.sqrt(xp.sum(flat * flat)))
        flat *= xp.clip(max_norm / (total + 1e-6), None, 1.0)
        return total
    # xp.asarray: NumPy's sum returns a scalar; keep the documented 0-d array on every backend.
    total = xp.asarray(xp.sqrt(sum(xp.sum(p.grad * p.grad) for p in params)))
    coef = xp.clip(max_norm / (total + 1e-6), None, 1.0)
    for p in params:
        g = p.grad
        g *= coef
    return total


#: Optimizers by name (a preset's ``optimizer`` field): a new one is a class and an entry here.
OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


# -- learning-rate schedules ---------------------------------------------------------------
class LinearDecayLR:
    """The learning rate's factor over a run: 1, then linear down to ``end_factor`` at the end.

    With ``p = step / total_steps`` (the run's progress, 0 at the first step, 1 at the end)::

        factor(p) = 1                                                   for p <= start
        factor(p) = 1 - (1 - end_factor) * (p - start) / (1 - start)   for p > start

    and every optimizer it is applied to steps with ``lr = base_lr * factor``. ``start=0``
    decays over the whole run (Gulrajani et al. 2017's CIFAR-10 WGAN-GP; Miyato et al. 2018);
    ``start=0.5`` keeps the rate for the first half, as pix2pix's and CycleGAN's linear decay
    (Isola et al. 2017; Zhu et al. 2017). The schedule holds no state: the factor is a function
    of the step, so a resumed run continues it exactly.

    Parameters
    ----------
    start : float in [0, 1)
        The fraction of the run after which the decay begins.
    end_factor : float in [0, 1]
        The factor reached at the end of the run (0: the rate ends at 0).

    Raises
    ------
    ValueError
        ``start`` outside [0, 1) or ``end_factor`` outside [0, 1]; in :meth:`factor`, a
        ``total_steps`` that is not a positive int.

    Notes
    -----
    PyTorch: ``SequentialLR(opt, [ConstantLR(opt, factor=1.0, total_iters=s), LinearLR(opt,
    start_factor=1.0, end_factor=end_factor, total_iters=T - s)], milestones=[s])`` with
    ``s = start * T``, ``scheduler.step()`` after every optimizer step.
    """

    name = "linear"

    def __init__(self, start: float = 0.5, end_factor: float = 0.0):
        if not (_is_number(start) and 0 <= start < 1):
            raise ValueError(f"lr schedule start: expected a fraction in [0, 1), got {start!r}")
        if not (_is_number(end_factor) and 0 <= end_factor <= 1):
            raise ValueError(
                f"lr schedule end_factor: expected a value in [0, 1], got {end_factor!r}"
            )
        self.start = float(start)
        self.end_factor = float(end_factor)

    def factor(self, step: int, total_steps: int) -> float:
        """The factor after ``step`` of ``total_steps`` steps (steps past the end keep the last)."""
        if (
            isinstance(total_steps, bool)
            or not isinstance(total_steps, numbers.Integral)
            or total_steps < 1
        ):
            raise ValueError(f"total_steps: expected an int >= 1, got {total_steps!r}")
        p = min(step / total_steps, 1.0)
        if p <= self.start:
            return 1.0
        return 1.0 - (1.0 - self.end_factor) * (p - self.start) / (1.0 - self.start)

    def __repr__(self) -> str:
        return f"LinearDecayLR(start={self.start}, end_factor={self.end_factor})"


#: Learning-rate schedules by name (a preset's ``lr_schedule`` field).
LR_SCHEDULES: dict[str, type[LinearDecayLR]] = {"linear": LinearDecayLR}


def make_lr_schedule(name: str, **settings: Any) -> LinearDecayLR:
    """``LR_SCHEDULES[name](**settings)``.

    Raises
    ------
    ValueError
        Unknown name (the message lists the known ones), or bad settings.
    """
    if name not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule: expected one of {sorted(LR_SCHEDULES)}, got {name!r}")
    return LR_SCHEDULES[name](**settings)
