"""Gradient checking: compare hand-written backward passes with finite differences.

The tool students use on their own layers. For a function ``f`` and a random upstream gradient
``dout`` the scalar ``L = sum(f(x) * dout)`` has ``dL/dx`` equal to what ``backward(dout)``
must return; the central difference::

    dL/dx_i  ~  (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

has error O(eps^2) and is computed element by element. Work in float64: float32 rounding
(~1e-7 relative) divided by ``eps = 1e-6`` would swamp the comparison.

Two measures, both reported per tensor:

* ``rel_error(a, n) = max|a - n| / max(1e-8, max(|a| + |n|))`` (CS231n's check, one number);
* torch's elementwise criterion ``|a - n| <= atol + rtol * |n|`` (``torch.autograd.gradcheck``),
  which decides pass/fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backend import array_namespace, backend_of, to_numpy

__all__ = [
    "numerical_gradient",
    "rel_error",
    "gradcheck",
    "check_module",
    "check_function",
    "GradcheckError",
    "GradcheckReport",
    "TensorCheck",
]


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` when an analytic gradient disagrees with the numeric one."""


def rel_error(a, b) -> float:
    """``max|a - b| / max(1e-8, max(|a| + |b|))`` over all elements (arrays of any backend).

    Both are copied to the host as float64; returns a Python float (0.0 for empty arrays).

    Raises
    ------
    ValueError
        ``a`` and ``b`` have different shapes (both are named in the message).
    """
    a64 = to_numpy(a).astype(np.float64)
    b64 = to_numpy(b).astype(np.float64)
    if a64.shape != b64.shape:
        raise ValueError(f"rel_error: shapes differ, {a64.shape} vs {b64.shape}")
    if a64.size == 0:
        return 0.0
    return float(np.max(np.abs(a64 - b64)) / max(1e-8, float(np.max(np.abs(a64) + np.abs(b64)))))


def numerical_gradient(f: Callable, x, dout, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of ``L = sum(f(x) * dout)`` with respect to ``x``.

    Parameters
    ----------
    f : callable
        ``f(x) -> array``; called ``2 * x.size`` times. ``x`` is perturbed **in place** (and
        restored), so ``f`` may also ignore its argument and read ``x`` through a closure,
        e.g. a layer parameter.
    x : array (any backend), float64 recommended
    dout : array of the shape of ``f(x)``
    eps : float
        Step (default 1e-6).

    Returns
    -------
    numpy.ndarray, float64, shape of ``x`` (on the host).

    Raises
    ------
    ValueError
        ``dout`` does not broadcast against ``f(x)`` (NumPy's broadcasting error).
    """
    dout64 = to_numpy(dout).astype(np.float64)
    grad = np.zeros(tuple(x.shape), dtype=np.float64)
    for idx in np.ndindex(*x.shape):
        old = float(to_numpy(x[idx]))
        x[idx] = old + eps
        plus = to_numpy(f(x)).astype(np.float64)
        x[idx] = old - eps
        minus = to_numpy(f(x)).astype(np.float64)
        x[idx] = old
        grad[idx] = np.sum((plus - minus) * dout64) / (2 * eps)
    return grad


@dataclass
class TensorCheck:
    """The comparison for one tensor (an input or a parameter)."""

    name: str
    shape: tuple[int, ...]
    rel_error: float
    max_abs_error: float
    worst_index: tuple[int, ...] | None
    analytic: float | None
    numeric: float | None
    passed: bool
    message: str = ""

    def line(self) -> str:
        """One report row: PASS/FAIL, name, shape, errors and the worst element."""
        status = "PASS" if self.passed else "FAIL"
        if self.message:
            return f"{status}  {self.name:<14} {str(self.shape):<14} {self.message}"
        where = (
            f"worst at {self.worst_index}: analytic {self.analytic:+.6e} numeric "
            f"{self.numeric:+.6e}"
            if self.worst_index is not None
            else ""
        )
        return (
            f"{status}  {self.name:<14} {str(self.shape):<14} rel_error {self.rel_error:.2e}  "
            f"max|a-n| {self.max_abs_error:.2e}  {where}"
        )


@dataclass
class GradcheckReport:
    """Per-tensor results of a gradient check; ``str(report)`` is a readable table."""

    title: str
    rows: list[TensorCheck] = field(default_factory=list)
    atol: float = 1e-5
    rtol: float = 1e-3

    @property
    def passed(self) -> bool:
        """True when every tensor passes."""
        return all(r.passed for r in self.rows)

    @property
    def max_rel_error(self) -> float:
        """The largest relative error over all tensors (inf if a gradient was missing)."""
        return max((r.rel_error for r in self.rows), default=0.0)

    @property
    def failed(self) -> list[str]:
        """Names of the tensors that failed."""
        return [r.name for r in self.rows if not r.passed]

    def __getitem__(self, name: str) -> TensorCheck:
        for r in self.rows:
            if r.name == name:
                return r
        names = [r.name for r in self.rows]
        raise KeyError(f"no tensor named {name!r} in this report; have {names}")

    def __str__(self) -> str:
        head = (
            f"gradient check: {self.title}  (pass if |a-n| <= {self.atol:g} + {self.rtol:g}*|n| "
            f"everywhere)"
        )
        verdict = "all passed" if self.passed else f"FAILED: {', '.join(self.failed)}"
        return "\n".join([head, *("  " + r.line() for r in self.rows), "  " + verdict])


def _compare(name, analytic, numeric: np.ndarray, atol: float, rtol: float) -> TensorCheck:
    shape = tuple(numeric.shape)
    if analytic is None:
        return TensorCheck(
            name,
            shape,
            float("inf"),
            float("inf"),
            None,
            None,
            None,
            False,
            "no analytic gradient (backward returned None)",
        )
    a = to_numpy(analytic).astype(np.float64)
    if a.shape != shape:
        return TensorCheck(
            name,
            shape,
            float("inf"),
            float("inf"),
            None,
            None,
            None,
            False,
            f"analytic gradient has shape {a.shape}, expected {shape}",
        )
    if a.size == 0:
        return TensorCheck(name, shape, 0.0, 0.0, None, None, None, True)
    diff = np.abs(a - numeric)
    if not np.all(np.isfinite(a)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        return TensorCheck(
            name, shape, float("inf"), float("inf"), bad, float(a[bad]), float(numeric[bad]), False
        )
    allowed = atol + rtol * np.abs(numeric)
    worst = np.unravel_index(int(np.argmax(diff / allowed)), shape)
    worst = tuple(int(i) for i in worst)
    return TensorCheck(
        name=name,
        shape=shape,
        rel_error=rel_error(a, numeric),
        max_abs_error=float(np.max(diff)),
        worst_index=worst,
        analytic=float(a[worst]),
        numeric=float(numeric[worst]),
        passed=bool(np.all(diff <= allowed)),
    )


def _require_float64(name: str, a) -> None:
    xp = array_namespace(a, names=(name,))
    if a.dtype != xp.float64:
        raise TypeError(
            f"{name}: gradient checks need float64 arrays, got {a.dtype}. float32 rounding "
            "(~1e-7) divided by eps=1e-6 swamps the comparison; build the layer with "
            "dtype='float64' and pass float64 inputs."
        )


def _random_like(out, seed: int):
    """A random upstream gradient (never all ones) of ``out``'s shape, dtype and device."""
    host = np.random.default_rng(seed).standard_normal(tuple(out.shape))
    return backend_of(out).asarray(host, dtype=out.dtype)


def check_module(
    module,
    x,
    dout=None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> GradcheckReport:
    """Check a module's ``backward`` against finite differences, tensor by tensor.

    Runs ``forward(x)`` and ``backward(dout)`` once (after ``zero_grad()``) for the analytic
    gradients, then perturbs ``x`` and every parameter element by element. A module with
    state (``forward_state()``: BatchNorm buffers, Dropout's generator) is reset to the state
    it had on entry before every forward, so all runs see the same statistics and masks; on
    return it is left as after one forward.

    Parameters
    ----------
    module : minigan.layers.Module (or any object with ``forward``, ``backward``, ``params``,
        ``grads``), float64 parameters
    x : float64 array, the input
    dout : array of the output's shape, optional (default: standard normal from ``seed``)
    eps, atol, rtol : float
        Step and tolerances (defaults as ``torch.autograd.gradcheck``).

    Returns
    -------
    GradcheckReport
        A row for ``"input"`` and for each parameter (dotted names like ``"0.weight"``);
        ``str(report)`` names which tensor and which element went wrong.

    Raises
    ------
    TypeError
        ``x`` or a parameter is not float64.
    """
    _require_float64("x", x)
    named = _named_params(module)
    for name, (params, key) in named.items():
        _require_float64(name, params[key])
    if hasattr(module, "zero_grad"):
        module.zero_grad()
    else:
        for g in getattr(module, "grads", {}).values():
            g[...] = 0
    # Every forward below starts from the same buffers (BatchNorm's running statistics) and
    # the same host random state (Dropout's mask), so the perturbed runs do not drift.
    state = module.forward_state() if hasattr(module, "forward_state") else None

    def forward():
        if state is not None:
            module.set_forward_state(state)
        return module.forward(x)

    out = forward()
    if dout is None:
        dout = _random_like(out, seed)
    dx = module.backward(dout)
    analytic = {"input": dx}
    for name, (params, key) in named.items():
        analytic[name] = _grads_for(module, name, key, params)
    analytic = {k: (None if v is None else to_numpy(v).copy()) for k, v in analytic.items()}

    def f(_):
        return forward()

    report = GradcheckReport(
        f"{type(module).__name__} on input {tuple(x.shape)}", atol=atol, rtol=rtol
    )
    report.rows.append(
        _compare("input", analytic["input"], numerical_gradient(f, x, dout, eps), atol, rtol)
    )
    for name, (params, key) in named.items():
        num = numerical_gradient(f, params[key], dout, eps)
        report.rows.append(_compare(name, analytic[name], num, atol, rtol))
    return report


def _named_params(module) -> dict[str, tuple[dict, str]]:
    """``{"0.weight": (params_dict, "weight")}`` for a minigan Module or a bare object."""
    if hasattr(module, "named_parameters"):
        return {n: (p.module.params, p.name) for n, p in module.named_parameters()}
    return {k: (module.params, k) for k in getattr(module, "params", {})}


def _grads_for(module, name, key, params):
    if hasattr(module, "named_parameters"):
        p = dict(module.named_parameters())[name]
        return p.module.grads.get(p.name)
    return getattr(module, "grads", {}).get(key)


def check_function(
    forward: Callable,
    backward: Callable,
    *inputs,
    names=None,
    dout=None,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> GradcheckReport:
    """Check a functional pair ``forward(*inputs) -> (out, cache)``,
    ``backward(dout, cache) -> grad or tuple of grads`` (one per input, ``None`` to skip).

    Every float64 array input whose gradient is not ``None`` is checked. Non-array inputs
    (floats, strings such as ``reduction``) are passed through unchanged.

    Returns
    -------
    GradcheckReport with one row per checked input (``names`` or ``"input0"``, ...).

    Raises
    ------
    TypeError
        A checked input is not float64 (float32 rounding swamps the comparison).
    ValueError
        ``dout`` does not match the shape of ``forward``'s output.
    """
    names = list(names) if names is not None else [f"input{i}" for i in range(len(inputs))]
    out, cache = forward(*inputs)
    if dout is None:
        dout = _random_like(out, seed)
    grads = backward(dout, cache)
    if not isinstance(grads, tuple):
        grads = (grads,)
    report = GradcheckReport(getattr(forward, "__name__", "function"), atol=atol, rtol=rtol)
    for i, (name, a) in enumerate(zip(names, inputs, strict=False)):
        if i >= len(grads) or grads[i] is None or not hasattr(a, "shape"):
            continue
        _require_float64(name, a)
        analytic = to_numpy(grads[i]).copy()

        def f(_):
            return forward(*inputs)[0]

        report.rows.append(
            _compare(name, analytic, numerical_gradient(f, a, dout, eps), atol, rtol)
        )
    return report


def gradcheck(
    fn_or_module: Any,
    *inputs,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    dout=None,
    seed: int = 0,
    raise_exception: bool = True,
) -> bool:
    """Check analytic gradients against central differences, like ``torch.autograd.gradcheck``.

    Parameters
    ----------
    fn_or_module
        * a :class:`~minigan.layers.Module`: ``gradcheck(layer, x)`` checks the input and every
          parameter;
        * a loss (:class:`~minigan.losses.Loss`): ``gradcheck(loss, input, target)`` checks the
          input;
        * a pair ``(forward, backward)`` of :mod:`minigan.functional`:
          ``gradcheck((F.linear_forward, F.linear_backward), x, w, b)`` checks every input
          whose gradient is returned.
    *inputs : float64 arrays
    eps, atol, rtol : float
        Step (1e-6) and the elementwise criterion ``|a - n| <= atol + rtol * |n|``.
    raise_exception : bool
        Raise on failure (default) or return False.

    Returns
    -------
    True when every gradient matches.

    Raises
    ------
    GradcheckError
        A gradient differs; the message is the full per-tensor report (tensor name, worst
        element index, analytic and numeric values).
    TypeError
        Inputs or parameters not float64.
    """
    from .losses import Loss

    kw = dict(eps=eps, atol=atol, rtol=rtol, seed=seed, dout=dout)
    if isinstance(fn_or_module, tuple) and len(fn_or_module) == 2:
        report = check_function(*fn_or_module, *inputs, **kw)
    elif isinstance(fn_or_module, Loss):
        loss = fn_or_module
        if len(inputs) != 2:
            raise TypeError("gradcheck(loss, input, target): expected exactly two inputs")

        def fwd(inp, target):
            out = loss.forward(inp, target)
            return out, loss._cache

        def bwd(d, cache):
            loss._cache = cache
            return loss.backward(d)

        fwd.__name__ = type(loss).__name__
        report = check_function(fwd, bwd, *inputs, names=["input", "target"], **kw)
    elif hasattr(fn_or_module, "forward") and hasattr(fn_or_module, "backward"):
        if len(inputs) != 1:
            raise TypeError("gradcheck(module, x): expected exactly one input")
        report = check_module(fn_or_module, inputs[0], **kw)
    else:
        raise TypeError(
            "gradcheck: expected a Module, a Loss or a (forward, backward) pair, got "
            f"{type(fn_or_module).__name__}"
        )
    if not report.passed:
        if raise_exception:
            raise GradcheckError(str(report))
        return False
    return True
