"""Layers: state (parameters, gradients, one cache) around the math in :mod:`minigan.functional`.

The contract every layer keeps (``../STYLE.md``):

* ``forward(x)`` computes the output and keeps one cache;
* ``backward(dout)`` returns ``dx`` and **adds** the parameter gradients into ``self.grads``
  (same keys as ``self.params``), so two backward passes give twice the gradient;
* ``zero_grad()`` resets the gradients; ``backward`` before ``forward`` raises ``RuntimeError``.

Names and defaults follow PyTorch (``Linear(in_features, out_features, bias=True)``,
``weight`` of shape ``(out_features, in_features)``, ``LeakyReLU(negative_slope=0.01)``), so
a student can move on to ``torch.nn`` and the tests can compare one to one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from . import functional as F
from . import init
from .backend import (
    as_generator,
    backend_of,
    host_rng_state,
    resolve_device,
    resolve_dtype,
    set_host_rng_state,
    to_device,
    to_numpy,
)

__all__ = [
    "Parameter",
    "Module",
    "Linear",
    "ReLU",
    "LeakyReLU",
    "Tanh",
    "Sigmoid",
    "Sequential",
    "Conv2d",
    "ConvTranspose2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Dropout",
    "Flatten",
    "Unflatten",
]


def _cached_tangent(module):
    """The input tangent kept by ``module.jvp``, or a clear error if it has not run."""
    tangent = getattr(module, "_tangent", None)
    if tangent is None:
        raise RuntimeError(
            f"{type(module).__name__}.jvp_backward() called before jvp(): run jvp(tangent) first"
        )
    return tangent


class Parameter:
    """A handle on one trainable array: ``module.params[name]`` and ``module.grads[name]``.

    Optimizers hold these handles (what ``Module.parameters()`` returns) and update
    ``param.data`` in place using ``param.grad``. The handle looks the arrays up on each use,
    so it stays valid after ``module.to(device)`` or ``load_state_dict``.
    """

    __slots__ = ("module", "name")

    def __init__(self, module: Module, name: str):
        self.module = module
        self.name = name

    @property
    def data(self):
        """The parameter array."""
        return self.module.params[self.name]

    @property
    def grad(self):
        """The accumulated gradient array (same shape and dtype as ``data``)."""
        return self.module.grads[self.name]

    @property
    def requires_grad(self) -> bool:
        """False while the owning module is frozen with ``requires_grad_(False)``."""
        return self.module.requires_grad

    def __repr__(self) -> str:
        return (
            f"Parameter({type(self.module).__name__}.{self.name}, shape={tuple(self.data.shape)})"
        )


class Module:
    """Base class of every layer and network.

    Attributes
    ----------
    params : dict[str, array]
        Trainable arrays of this module (not of its children).
    grads : dict[str, array]
        Gradients, same keys, shapes and dtypes as ``params``; accumulated by ``backward``.
    training : bool
        Set by ``train()`` / ``eval()`` (matters for Dropout and BatchNorm).
    requires_grad : bool
        When False, ``backward`` still returns ``dx`` but skips the parameter gradients
        (``requires_grad_``; PyTorch's ``param.requires_grad_(False)``).
    buffers : dict[str, array]
        State that is not trained (BatchNorm's ``running_mean``, ``running_var``,
        ``num_batches_tracked``): in ``state_dict()``, moved by ``to()``, no gradient.
    mixes_batch_rows : bool
        Class attribute: True when the output of one row depends on the other rows of the
        batch (BatchNorm). Code that would batch real and fake images together asks
        ``any(m.mixes_batch_rows for m in D.modules())``, never a list of types.

    Raises
    ------
    NotImplementedError
        ``forward`` / ``backward`` of a subclass that does not define them.
    RuntimeError
        ``backward`` before ``forward`` (no cache).
    KeyError, ValueError
        In :meth:`load_state_dict`: keys that differ (``strict``), or a shape that differs.
    """

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.grads: dict[str, Any] = {}
        self.buffers: dict[str, Any] = {}
        self.training = True
        self.requires_grad = True
        self._cache = None

    mixes_batch_rows: bool = False

    # -- to be written by subclasses -------------------------------------------------------
    def forward(self, x):
        """Compute the output and keep the cache for ``backward``."""
        raise NotImplementedError

    def backward(self, dout, *, input_grad: bool = True):
        """Return ``dx`` = dL/dx and add dL/dparam into ``self.grads``.

        ``input_grad=False`` lets a module skip ``dx`` (and return ``None``) when the caller
        does not need it, e.g. for the first layer of a network.
        """
        raise NotImplementedError

    # -- shared machinery ------------------------------------------------------------------
    def __call__(self, x):
        return self.forward(x)

    def _cached(self):
        """The forward cache, or a clear error if ``forward`` has not run."""
        if self._cache is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward() called before forward(): run forward(x) first"
            )
        return self._cache

    def children(self) -> dict[str, Module]:
        """Direct sub-modules by name (empty for a leaf layer)."""
        return {}

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Yield ``("0.weight", Parameter)`` pairs, PyTorch-style dotted names."""
        for name in self.params:
            yield prefix + name, Parameter(self, name)
        for child_name, child in self.children().items():
            yield from child.named_parameters(prefix + child_name + ".")

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """Yield ``("1.running_mean", array)`` pairs of this module and its children."""
        for name, value in self.buffers.items():
            yield prefix + name, value
        for child_name, child in self.children().items():
            yield from child.named_buffers(prefix + child_name + ".")

    def forward_state(self) -> list[Any]:
        """Copies of what a forward pass changes besides the cache, for this module tree.

        That is every buffer (BatchNorm's running statistics) and the state of every host
        random generator a layer draws from (Dropout's mask). :func:`minigan.gradcheck.check_module`
        restores it with :meth:`set_forward_state` before each perturbed forward, so all of
        them see the same statistics and the same dropout mask.
        """
        return [m._own_forward_state() for m in self.modules()]

    def set_forward_state(self, state: list[Any]) -> None:
        """Restore what :meth:`forward_state` returned (in place, on the device)."""
        for m, own in zip(self.modules(), state, strict=True):
            m._set_own_forward_state(own)

    def _own_forward_state(self) -> Any:
        xp_copy = {}
        for k, v in self.buffers.items():
            xp_copy[k] = backend_of(v).xp.asarray(v, copy=True)
        return xp_copy

    def _set_own_forward_state(self, own: Any) -> None:
        for k, v in own.items():
            self.buffers[k][...] = v

    def parameters(self) -> list[Parameter]:
        """All trainable parameters of this module and its children, in order."""
        return [p for _, p in self.named_parameters()]

    def modules(self) -> Iterator[Module]:
        """This module and every descendant, depth first."""
        yield self
        for child in self.children().values():
            yield from child.modules()

    def zero_grad(self) -> None:
        """Set every gradient to zero, in place."""
        for m in self.modules():
            for g in m.grads.values():
                g[...] = 0

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze (True) the parameter gradients of this module tree."""
        for m in self.modules():
            m.requires_grad = requires_grad
        return self

    def train(self, mode: bool = True) -> Module:
        """Training mode (the default); ``train(False)`` equals ``eval()``."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        """Evaluation mode."""
        return self.train(False)

    def to(self, device: Any) -> Module:
        """Move parameters, gradients and buffers to ``device`` (``"cpu"``, ``"gpu"``, ...).

        Create optimizers after moving, as in PyTorch. Returns ``self``.
        """
        backend = resolve_device(device)
        for m in self.modules():
            m.params = {k: to_device(v, backend) for k, v in m.params.items()}
            m.grads = {k: to_device(v, backend) for k, v in m.grads.items()}
            m.buffers = {k: to_device(v, backend) for k, v in m.buffers.items()}
            m._cache = None
        return self

    def state_dict(self, prefix: str = "") -> dict[str, Any]:
        """Parameters and buffers by dotted name (``{"0.weight": array, ...}``), on the device.

        Keys and order as ``torch.nn.Module.state_dict``: each module's parameters, then its
        buffers (``"1.running_mean"``, ``"1.num_batches_tracked"``), then its children's.
        """
        out = {prefix + k: v for k, v in self.params.items()}
        out.update({prefix + k: v for k, v in self.buffers.items()})
        for child_name, child in self.children().items():
            out.update(child.state_dict(prefix + child_name + "."))
        return out

    def _state_slots(self, prefix: str = "") -> Iterator[tuple[str, dict, str]]:
        """``(dotted name, owning dict, key)`` of every parameter and buffer, in order."""
        for k in self.params:
            yield prefix + k, self.params, k
        for k in self.buffers:
            yield prefix + k, self.buffers, k
        for child_name, child in self.children().items():
            yield from child._state_slots(prefix + child_name + ".")

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> None:
        """Copy arrays (NumPy or device) into the parameters and buffers, in place.

        Raises
        ------
        KeyError
            ``strict`` and the keys differ (missing and unexpected keys are listed).
        ValueError
            A shape differs: the message names the parameter, expected and got shapes.
        """
        own = {name: (owner, key) for name, owner, key in self._state_slots()}
        if strict:
            missing = sorted(set(own) - set(state_dict))
            unexpected = sorted(set(state_dict) - set(own))
            if missing or unexpected:
                raise KeyError(
                    f"state_dict keys do not match the model: missing {missing}, "
                    f"unexpected {unexpected}"
                )
        for name, (owner, key) in own.items():
            if name not in state_dict:
                continue
            value, target = state_dict[name], owner[key]
            if not hasattr(value, "shape"):  # a 0-d buffer read back as a Python int
                value = np.asarray(value)
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(
                    f"{name}: expected shape {tuple(target.shape)}, got {tuple(value.shape)}"
                )
            xp = backend_of(target).xp  # buffers may be int64: cast to the target's own dtype
            target[...] = xp.asarray(to_numpy(value), dtype=target.dtype, device=target.device)

    def extra_repr(self) -> str:
        """Settings shown inside ``repr(module)`` (as in PyTorch); empty by default."""
        return ""

    def __repr__(self) -> str:
        kids = self.children()
        if not kids:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({k}): " + repr(v).replace("\n", "\n  ") for k, v in kids.items()]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class Linear(Module):
    """Fully connected layer ``y = x @ weight.T + bias`` (``torch.nn.Linear``).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
        Learn an additive bias (default True).
    dtype : str or dtype
        ``"float32"`` (default, for training) or ``"float64"`` (for gradient checks).
    device : str or Backend
        ``"cpu"`` (default), ``"gpu"``, ``"auto"``, or an array-api-strict device.
    rng : numpy.random.Generator, int or None
        Host generator for the initial weights (``None``: minigan's global one).

    Shapes
    ------
    x (N, in_features) -> y (N, out_features); weight (out_features, in_features);
    bias (out_features,)

    Notes
    -----
    Initialised like PyTorch: weight and bias ~ U(-1/sqrt(in_features), 1/sqrt(in_features))
    (``kaiming_uniform_(a=sqrt(5))``), drawn on the host in float64, then cast and moved.
    Gradients accumulate across backward calls.

    Raises
    ------
    ValueError
        Non-positive sizes; in ``forward``, ``x`` of wrong rank or width (shapes named).
    TypeError
        Non-float input or a dtype differing from the weight's.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        dtype: Any = "float32",
        device: Any = "cpu",
        rng=None,
    ):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        self.in_features = in_features
        self.out_features = out_features
        backend = resolve_device(device)
        dtype = resolve_dtype(backend.xp, dtype)
        self.params["weight"] = backend.zeros((out_features, in_features), dtype)
        if bias:
            self.params["bias"] = backend.zeros((out_features,), dtype)
        init.linear_default_(self.params["weight"], self.params.get("bias"), rng=rng)
        self.grads = {k: backend.zeros(v.shape, dtype) for k, v in self.params.items()}

    @property
    def weight(self):
        """The weight array, shape (out_features, in_features)."""
        return self.params["weight"]

    @property
    def bias(self):
        """The bias array, shape (out_features,), or None when built with ``bias=False``."""
        return self.params.get("bias")

    def forward(self, x):
        y, self._cache = F.linear_forward(x, self.params["weight"], self.params.get("bias"))
        return y

    def backward(self, dout, *, input_grad: bool = True):
        dx, dw, db = F.linear_backward(
            dout, self._cached(), need_dx=input_grad, need_dparams=self.requires_grad
        )
        if self.requires_grad:
            self.grads["weight"] += dw
            if db is not None:
                self.grads["bias"] += db
        return dx

    def jvp(self, tangent):
        """Tangent of the output for a tangent of the input, ``dy = t @ weight.T``.

        Runs after ``forward`` (it reads its cache) and keeps ``tangent`` for
        :meth:`jvp_backward`: the forward pass of the double backward (``docs/math.md``).
        """
        self._cached()
        self._tangent = tangent
        return F.linear_jvp(tangent, self._cache)

    def jvp_backward(self, dout, dtangent, *, input_grad: bool = True):
        """Reverse pass through ``(y, dy)``: returns ``(dx, dt)``, adds ``dout^T x +
        dtangent^T t`` into ``grads["weight"]`` and ``sum dout`` into ``grads["bias"]``.

        ``dout`` may be ``None`` (zero). ``input_grad=False`` returns ``(None, None)``.
        """
        tangent = _cached_tangent(self)
        dx, dt, dw, db = F.linear_jvp_backward(
            dout,
            dtangent,
            self._cached(),
            tangent,
            need_dx=input_grad,
            need_dparams=self.requires_grad,
        )
        if self.requires_grad:
            self.grads["weight"] += dw
            if db is not None:
                self.grads["bias"] += db
        return dx, dt

    def extra_repr(self) -> str:
        """``in_features=..., out_features=..., bias=...``."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={'bias' in self.params}"
        )


class _Elementwise(Module):
    """An activation without parameters: ``forward``/``backward`` call one functional pair."""

    _forward = staticmethod(lambda x: (x, None))
    _backward = staticmethod(lambda dout, cache: dout)

    def forward(self, x):
        y, self._cache = type(self)._forward(x)
        return y

    def backward(self, dout, *, input_grad: bool = True):
        cache = self._cached()
        return type(self)._backward(dout, cache) if input_grad else None


class ReLU(_Elementwise):
    """``y = max(x, 0)`` (``torch.nn.ReLU``). Shapes: x (*) -> y (*).

    Raises
    ------
    TypeError
        ``forward`` on a non-float array (float32 and float64 are kept as they are).
    ValueError
        ``backward`` with a ``dout`` whose shape differs from the output's.
    RuntimeError
        ``backward`` before ``forward``.
    """

    _forward = staticmethod(F.relu_forward)
    _backward = staticmethod(F.relu_backward)

    def jvp(self, tangent):
        """Tangent of the output, ``phi'(x) * t`` (after ``forward``; kept for
        :meth:`jvp_backward`)."""
        self._tangent = tangent
        return F.relu_jvp(tangent, self._cached())

    def jvp_backward(self, dout, dtangent, *, input_grad: bool = True):
        """Reverse pass through ``(phi(x), phi'(x) t)``: returns ``(dx, dt)``
        (:func:`~minigan.functional_double.relu_jvp_backward`)."""
        tangent = _cached_tangent(self)
        if not input_grad:
            return None, None
        return F.relu_jvp_backward(dout, dtangent, self._cached(), tangent)


class Tanh(_Elementwise):
    """``y = tanh(x)`` (``torch.nn.Tanh``); ``dy/dx = 1 - y**2``. Shapes: x (*) -> y (*).

    Raises
    ------
    TypeError
        ``forward`` on a non-float array (float32 and float64 are kept as they are).
    ValueError
        ``backward`` with a ``dout`` whose shape differs from the output's.
    RuntimeError
        ``backward`` before ``forward``.
    """

    _forward = staticmethod(F.tanh_forward)
    _backward = staticmethod(F.tanh_backward)

    def jvp(self, tangent):
        """Tangent of the output, ``phi'(x) * t`` (after ``forward``; kept for
        :meth:`jvp_backward`)."""
        self._tangent = tangent
        return F.tanh_jvp(tangent, self._cached())

    def jvp_backward(self, dout, dtangent, *, input_grad: bool = True):
        """Reverse pass through ``(phi(x), phi'(x) t)``: returns ``(dx, dt)``
        (:func:`~minigan.functional_double.tanh_jvp_backward`)."""
        tangent = _cached_tangent(self)
        if not input_grad:
            return None, None
        return F.tanh_jvp_backward(dout, dtangent, self._cached(), tangent)


class Sigmoid(_Elementwise):
    """``y = 1 / (1 + exp(-x))``, stable form (``torch.nn.Sigmoid``). Shapes: x (*) -> y (*).

    Raises
    ------
    TypeError
        ``forward`` on a non-float array (float32 and float64 are kept as they are).
    ValueError
        ``backward`` with a ``dout`` whose shape differs from the output's.
    RuntimeError
        ``backward`` before ``forward``.
    """

    _forward = staticmethod(F.sigmoid_forward)
    _backward = staticmethod(F.sigmoid_backward)

    def jvp(self, tangent):
        """Tangent of the output, ``phi'(x) * t`` (after ``forward``; kept for
        :meth:`jvp_backward`)."""
        self._tangent = tangent
        return F.sigmoid_jvp(tangent, self._cached())

    def jvp_backward(self, dout, dtangent, *, input_grad: bool = True):
        """Reverse pass through ``(phi(x), phi'(x) t)``: returns ``(dx, dt)``
        (:func:`~minigan.functional_double.sigmoid_jvp_backward`)."""
        tangent = _cached_tangent(self)
        if not input_grad:
            return None, None
        return F.sigmoid_jvp_backward(dout, dtangent, self._cached(), tangent)


class LeakyReLU(Module):
    """``y = x if x > 0 else negative_slope * x`` (``torch.nn.LeakyReLU``).

    Parameters
    ----------
    negative_slope : float
        Slope for negative inputs (default 0.01, PyTorch's; GANs usually use 0.2).

    Shapes
    ------
    x (*) -> y (*), same dtype and device.

    Raises
    ------
    TypeError, ValueError
        ``negative_slope`` that ``float()`` cannot convert.
    TypeError
        In ``forward``: ``x`` is not an array or not float32 / float64.
    RuntimeError
        ``backward`` before ``forward``.

    Notes
    -----
    Runs the fast pair :func:`~minigan.functional.leaky_relu_fast_forward` /
    ``leaky_relu_fast_backward`` (multiply by the cached slope ``dy/dx`` instead of
    ``where``): the same numbers as the teaching pair ``leaky_relu_forward`` /
    ``leaky_relu_backward``, several times faster on a CPU (``tests/test_fastpath.py``).
    Inside ``with minigan.functional.fast_paths(False):`` it runs the teaching pair.
    """

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        fast = F.FAST_PATHS  # ``fast_paths(False)``: the teaching pair
        pair = F.leaky_relu_fast_forward if fast else F.leaky_relu_forward
        y, cache = pair(x, self.negative_slope)
        self._cache = (fast, cache)
        return y

    def backward(self, dout, *, input_grad: bool = True):
        fast, cache = self._cached()
        if not input_grad:
            return None
        return (F.leaky_relu_fast_backward if fast else F.leaky_relu_backward)(dout, cache)

    def jvp(self, tangent):
        """Tangent of the output, ``phi'(x) * t`` (after ``forward``; kept for
        :meth:`jvp_backward`)."""
        self._tangent = tangent
        return F.leaky_relu_fast_jvp(tangent, self._cached())

    def jvp_backward(self, dout, dtangent, *, input_grad: bool = True):
        """Reverse pass through ``(phi(x), phi'(x) t)``: returns ``(dx, dt)``
        (:func:`~minigan.functional_double.leaky_relu_fast_jvp_backward`)."""
        tangent = _cached_tangent(self)
        if not input_grad:
            return None, None
        return F.leaky_relu_fast_jvp_backward(dout, dtangent, self._cached(), tangent)

    def extra_repr(self) -> str:
        """``negative_slope=...``."""
        return f"negative_slope={self.negative_slope}"


class Sequential(Module):
    """A chain of modules (``torch.nn.Sequential``): forward in order, backward in reverse.

    Parameters are named ``"<index>.<name>"`` (``"0.weight"``), as in PyTorch.

    Shapes: whatever the first module takes -> whatever the last returns.

    Raises
    ------
    TypeError
        An argument is not a :class:`Module` (its index is named).
    RuntimeError
        ``backward`` before ``forward`` (from the layers).
    """

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: argument {i} is not a Module, got {type(m).__name__}")
        self.layers = list(modules)

    def children(self) -> dict[str, Module]:
        return {str(i): m for i, m in enumerate(self.layers)}

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout, *, input_grad: bool = True):
        """Back-propagate through the layers in reverse order; returns dL/dx of the input.

        With ``input_grad=False`` the first layer skips its input gradient (returns None).
        """
        for i in range(len(self.layers) - 1, -1, -1):
            if i == 0 and not input_grad:
                return self.layers[0].backward(dout, input_grad=False)
            dout = self.layers[i].backward(dout)
        return dout

    def jvp(self, tangent):
        """Push a tangent of the input through the layers (after ``forward``): ``D'(x)[t]``."""
        for layer in self.layers:
            tangent = layer.jvp(tangent)
        return tangent

    def jvp_backward(self, dout, dtangent, *, input_grad: bool = True):
        """Reverse pass of :meth:`jvp` through the layers; returns ``(dx, dt)`` of the input.

        Each layer adds its share of the parameter gradients; with ``input_grad=False`` the
        first layer skips its input adjoints (returns ``(None, None)``).
        """
        for i in range(len(self.layers) - 1, -1, -1):
            dout, dtangent = self.layers[i].jvp_backward(
                dout, dtangent, input_grad=input_grad or i > 0
            )
        return dout, dtangent


# ----------------------------------------------------------------------------------------------
# Convolutional layers, normalisation, dropout, reshaping (issue 10)
# ----------------------------------------------------------------------------------------------
def _positive_int(name: str, v) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ValueError(f"{name}: expected a positive int, got {v!r}")
    return v


class _ConvNd(Module):
    """Shared state of Conv2d and ConvTranspose2d: weight, bias, geometry, the backward."""

    _backward_fn = staticmethod(F.conv2d_backward)

    def _build(self, weight_shape, n_bias, bias, dtype, device, rng):
        backend = resolve_device(device)
        dtype = resolve_dtype(backend.xp, dtype)
        self.params["weight"] = backend.zeros(weight_shape, dtype)
        if bias:
            self.params["bias"] = backend.zeros((n_bias,), dtype)
        # PyTorch's _ConvNd.reset_parameters is Linear's: kaiming_uniform_(a=sqrt(5)) on the
        # weight and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on the bias, fan_in = shape[1]*kH*kW.
        init.linear_default_(self.params["weight"], self.params.get("bias"), rng=rng)
        self.grads = {k: backend.zeros(v.shape, dtype) for k, v in self.params.items()}

    @property
    def weight(self):
        """The weight array (see the class's Shapes)."""
        return self.params["weight"]

    @property
    def bias(self):
        """The bias array (out_channels,), or None when built with ``bias=False``."""
        return self.params.get("bias")

    def backward(self, dout, *, input_grad: bool = True):
        dx, dw, db = type(self)._backward_fn(
            dout, self._cached(), need_dx=input_grad, need_dparams=self.requires_grad
        )
        if self.requires_grad:
            self.grads["weight"] += dw
            if db is not None:
                self.grads["bias"] += db
        return dx


class Conv2d(_ConvNd):
    """2-D convolution ``y = W * x + b`` over NCHW images (``torch.nn.Conv2d``, zero padding).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or pair
    stride : int or pair of positive ints (default 1)
    padding : int or pair of non-negative ints (default 0)
    bias : bool (default True)
    dtype, device, rng
        As for :class:`Linear`.

    Shapes
    ------
    x (N, in_channels, H, W) -> y (N, out_channels, H_out, W_out),
    ``H_out = (H + 2 padding - kH) // stride + 1``; weight (out_channels, in_channels, kH, kW);
    bias (out_channels,)

    Raises
    ------
    ValueError
        Non-positive sizes, stride 0, negative padding; in ``forward``, a wrong channel count
        or an input smaller than the kernel (expected and got named).
    TypeError
        Non-float input or a dtype differing from the weight's.

    Notes
    -----
    The math is :func:`~minigan.functional.conv2d_forward` / ``conv2d_backward`` (im2col and
    one GEMM). Initialised like PyTorch: ``kaiming_uniform_(a=sqrt(5))``, i.e. weight and bias
    ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), ``fan_in = in_channels * kH * kW``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        bias: bool = True,
        *,
        dtype: Any = "float32",
        device: Any = "cpu",
        rng=None,
    ):
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.out_channels = _positive_int("out_channels", out_channels)
        self.kernel_size = F._conv._pair(kernel_size, "kernel_size", 1)
        self.stride = F._conv._pair(stride, "stride", 1)
        self.padding = F._conv._pair(padding, "padding", 0)
        shape = (out_channels, in_channels, *self.kernel_size)
        self._build(shape, out_channels, bias, dtype, device, rng)

    def forward(self, x):
        y, self._cache = F.conv2d_forward(
            x, self.params["weight"], self.params.get("bias"), self.stride, self.padding
        )
        return y

    def extra_repr(self) -> str:
        """``in, out, kernel_size=..., stride=..., padding=..., bias=...``."""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={'bias' in self.params}"
        )


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution (``torch.nn.ConvTranspose2d``): upsamples by ``stride``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or pair
    stride : int or pair of positive ints (default 1)
    padding : int or pair of non-negative ints (default 0)
    output_padding : int or pair, each less than its stride (default 0)
    bias : bool (default True)
    dtype, device, rng
        As for :class:`Linear`.

    Shapes
    ------
    x (N, in_channels, H, W) -> y (N, out_channels, H_out, W_out),
    ``H_out = (H - 1) stride - 2 padding + kH + output_padding``;
    weight (in_channels, out_channels, kH, kW) (PyTorch's layout); bias (out_channels,)

    Raises
    ------
    ValueError
        Non-positive sizes, stride 0, negative padding, ``output_padding >= stride``; in
        ``forward``, a wrong channel count (expected and got named).
    TypeError
        Non-float input or a dtype differing from the weight's.

    Notes
    -----
    The math is :func:`~minigan.functional.conv_transpose2d_forward` (the adjoint of conv2d:
    one GEMM, then col2im). Initialised like PyTorch (its ``fan_in`` is
    ``out_channels * kH * kW``, from ``weight.shape[1]``).
    """

    _backward_fn = staticmethod(F.conv_transpose2d_backward)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        bias: bool = True,
        *,
        dtype: Any = "float32",
        device: Any = "cpu",
        rng=None,
    ):
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.out_channels = _positive_int("out_channels", out_channels)
        self.kernel_size = F._conv._pair(kernel_size, "kernel_size", 1)
        self.stride = F._conv._pair(stride, "stride", 1)
        self.padding = F._conv._pair(padding, "padding", 0)
        self.output_padding = F._conv._pair(output_padding, "output_padding", 0)
        if any(o >= s for o, s in zip(self.output_padding, self.stride, strict=True)):
            raise ValueError(
                f"output_padding: expected less than stride {self.stride} in each dim, "
                f"got {self.output_padding}"
            )
        shape = (in_channels, out_channels, *self.kernel_size)
        self._build(shape, out_channels, bias, dtype, device, rng)

    def forward(self, x):
        y, self._cache = F.conv_transpose2d_forward(
            x,
            self.params["weight"],
            self.params.get("bias"),
            self.stride,
            self.padding,
            self.output_padding,
        )
        return y

    def extra_repr(self) -> str:
        """``in, out, kernel_size=..., stride=..., padding=..., output_padding=..., bias=...``."""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, "
            f"output_padding={self.output_padding}, bias={'bias' in self.params}"
        )


class _BatchNorm(Module):
    """Batch normalisation over dim 1; BatchNorm1d and BatchNorm2d differ only in the rank."""

    mixes_batch_rows = True  # each row is normalised with the statistics of the whole batch
    _ranks: tuple[int, ...] = (2,)

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        dtype: Any = "float32",
        device: Any = "cpu",
    ):
        super().__init__()
        self.num_features = _positive_int("num_features", num_features)
        self.eps = float(eps)
        if momentum is not None and not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"momentum: expected a float in [0, 1] or None, got {momentum!r}")
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        backend = resolve_device(device)
        dtype = resolve_dtype(backend.xp, dtype)
        xp = backend.xp
        if affine:
            self.params["weight"] = xp.ones((num_features,), dtype=dtype, device=backend.device)
            self.params["bias"] = backend.zeros((num_features,), dtype)
        if track_running_stats:
            self.buffers["running_mean"] = backend.zeros((num_features,), dtype)
            self.buffers["running_var"] = xp.ones(
                (num_features,), dtype=dtype, device=backend.device
            )
            self.buffers["num_batches_tracked"] = xp.zeros(
                (), dtype=xp.int64, device=backend.device
            )
        self.grads = {k: backend.zeros(v.shape, dtype) for k, v in self.params.items()}

    @property
    def weight(self):
        """The scale gamma (num_features,), or None without ``affine``."""
        return self.params.get("weight")

    @property
    def bias(self):
        """The shift beta (num_features,), or None without ``affine``."""
        return self.params.get("bias")

    @property
    def running_mean(self):
        """Running mean (num_features,), or None without ``track_running_stats``."""
        return self.buffers.get("running_mean")

    @property
    def running_var(self):
        """Running unbiased variance (num_features,), or None without ``track_running_stats``."""
        return self.buffers.get("running_var")

    def forward(self, x):
        if x.ndim not in self._ranks or x.shape[1] != self.num_features:
            want = " or ".join(f"{r}-D" for r in self._ranks)
            raise ValueError(
                f"x: expected a {want} input with {self.num_features} features in dim 1, got "
                f"shape {tuple(x.shape)}"
            )
        use_running = not self.training and self.track_running_stats
        y, cache = F.batch_norm_forward(
            x,
            self.params.get("weight"),
            self.params.get("bias"),
            self.buffers.get("running_mean") if use_running else None,
            self.buffers.get("running_var") if use_running else None,
            training=not use_running,
            eps=self.eps,
        )
        if self.training and self.track_running_stats:
            self._update_running_stats(cache)
        self._cache = cache
        return y

    def _update_running_stats(self, cache) -> None:
        b = self.buffers
        b["num_batches_tracked"] += 1
        # momentum=None: PyTorch's cumulative average, factor 1/num_batches_tracked.
        factor = self.momentum
        if factor is None:
            factor = 1.0 / float(to_numpy(b["num_batches_tracked"]))
        mean, var = F.batch_norm_running_stats(b["running_mean"], b["running_var"], cache, factor)
        b["running_mean"][...] = mean
        b["running_var"][...] = var

    def backward(self, dout, *, input_grad: bool = True):
        dx, dw, db = F.batch_norm_backward(dout, self._cached(), need_dx=input_grad)
        if self.requires_grad and self.affine:
            self.grads["weight"] += dw
            self.grads["bias"] += db
        return dx

    def extra_repr(self) -> str:
        """``num_features, eps=..., momentum=..., affine=..., track_running_stats=...``."""
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) features (``torch.nn.BatchNorm1d``; Ioffe & Szegedy 2015).

    ``y = weight * (x - mean) / sqrt(var + eps) + bias`` per feature. Training mode: batch
    mean and biased batch variance, and the running statistics are updated,
    ``running = (1 - momentum) running + momentum * batch`` with the *unbiased* variance
    (``momentum=None``: cumulative average). Evaluation mode: the running statistics
    (or the batch ones when ``track_running_stats=False``, as PyTorch).

    Parameters
    ----------
    num_features : int
    eps : float (1e-5)
    momentum : float in [0, 1] or None (0.1, PyTorch's convention)
    affine : bool
        Learn ``weight`` (init 1) and ``bias`` (init 0).
    track_running_stats : bool
        Keep the buffers ``running_mean`` (0), ``running_var`` (1), ``num_batches_tracked``.
    dtype, device
        As for :class:`Linear`.

    Shapes
    ------
    x (N, num_features) -> y (same)

    Raises
    ------
    ValueError
        In ``forward``: wrong rank or feature count (expected and got), or training mode with
        one value per feature (N = 1), as PyTorch.

    Notes
    -----
    ``mixes_batch_rows = True``: a discriminator containing it must see real and fake images
    in separate passes. Math: :func:`~minigan.functional.batch_norm_forward`.
    """

    _ranks = (2,)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation per channel of (N, C, H, W) images (``torch.nn.BatchNorm2d``).

    As :class:`BatchNorm1d`, with the statistics over N, H and W of each channel.

    Parameters
    ----------
    num_features : int
        The number of channels C.
    eps, momentum, affine, track_running_stats, dtype, device
        As for :class:`BatchNorm1d`.

    Shapes
    ------
    x (N, C, H, W) -> y (same)

    Raises
    ------
    ValueError
        In ``forward``: not 4-D or a wrong channel count (expected and got), or training mode
        with one value per channel (N*H*W = 1).
    """

    _ranks = (4,)


class Dropout(Module):
    """Inverted dropout (``torch.nn.Dropout``; Srivastava et al. 2014).

    Training: ``y = x * mask``, mask ``1/(1-p)`` with probability ``1-p`` else 0, drawn from
    a seeded host generator and moved to the device; evaluation: ``y = x``.

    Parameters
    ----------
    p : float in [0, 1)
        Probability of dropping a unit (default 0.5).
    rng : numpy.random.Generator, int or None
        Host generator for the masks (None: minigan's global one, looked up at each forward).

    Shapes
    ------
    x (*) -> y (same)

    Raises
    ------
    ValueError
        ``p`` outside [0, 1).

    Notes
    -----
    :meth:`forward_state` includes the generator's state, so
    :func:`~minigan.gradcheck.check_module` replays the same mask in every perturbed forward.
    """

    def __init__(self, p: float = 0.5, *, rng=None):
        super().__init__()
        self.p = F._norm._check_p(p)
        self.rng = rng if rng is None else as_generator(rng)

    def _generator(self):
        return as_generator(self.rng)

    def forward(self, x):
        y, mask = F.dropout_forward(x, self.p, self.training, self._generator())
        self._cache = (mask,)  # mask is None in evaluation mode (the identity)
        return y

    def backward(self, dout, *, input_grad: bool = True):
        (mask,) = self._cached()
        return F.dropout_backward(dout, mask) if input_grad else None

    def _own_forward_state(self):
        return host_rng_state(self._generator())

    def _set_own_forward_state(self, own) -> None:
        set_host_rng_state(self._generator(), own)

    def extra_repr(self) -> str:
        """``p=...``."""
        return f"p={self.p}"


class Flatten(Module):
    """Merge dims ``start_dim..end_dim`` (``torch.nn.Flatten``): (N, C, H, W) -> (N, C*H*W).

    Parameters
    ----------
    start_dim : int (1), end_dim : int (-1)

    Shapes
    ------
    x (N, *dims) -> y (N, prod(dims)) with the defaults

    Raises
    ------
    ValueError
        In ``forward``: a dim out of range for the input.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x):
        y, self._cache = F.flatten_forward(x, self.start_dim, self.end_dim)
        return y

    def backward(self, dout, *, input_grad: bool = True):
        cache = self._cached()
        return F.flatten_backward(dout, cache) if input_grad else None

    def extra_repr(self) -> str:
        """``start_dim=..., end_dim=...``."""
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size`` (``torch.nn.Unflatten``).

    Parameters
    ----------
    dim : int
    unflattened_size : tuple of ints

    Shapes
    ------
    x (N, C*H*W) -> y (N, C, H, W) for ``Unflatten(1, (C, H, W))``

    Raises
    ------
    ValueError
        In ``forward``: the sizes' product differs from ``x.shape[dim]`` (both named).
    """

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim = int(dim)
        self.unflattened_size = tuple(int(v) for v in unflattened_size)

    def forward(self, x):
        y, self._cache = F.unflatten_forward(x, self.dim, self.unflattened_size)
        return y

    def backward(self, dout, *, input_grad: bool = True):
        cache = self._cached()
        return F.unflatten_backward(dout, cache) if input_grad else None

    def extra_repr(self) -> str:
        """``dim=..., unflattened_size=...``."""
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
