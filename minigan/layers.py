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

from . import functional as F
from . import init
from .backend import backend_of, resolve_device, resolve_dtype, to_device, to_numpy

__all__ = [
    "Parameter",
    "Module",
    "Linear",
    "ReLU",
    "LeakyReLU",
    "Tanh",
    "Sigmoid",
    "Sequential",
]


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
        self.training = True
        self.requires_grad = True
        self._cache = None

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
        """Move parameters and gradients to ``device`` (``"cpu"``, ``"gpu"``, a Backend...).

        Create optimizers after moving, as in PyTorch. Returns ``self``.
        """
        backend = resolve_device(device)
        for m in self.modules():
            m.params = {k: to_device(v, backend) for k, v in m.params.items()}
            m.grads = {k: to_device(v, backend) for k, v in m.grads.items()}
            m._cache = None
        return self

    def state_dict(self) -> dict[str, Any]:
        """Parameters by dotted name (``{"0.weight": array, ...}``), arrays on the device."""
        return {name: p.data for name, p in self.named_parameters()}

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> None:
        """Copy arrays (NumPy or device) into the parameters, in place.

        Raises
        ------
        KeyError
            ``strict`` and the keys differ (missing and unexpected keys are listed).
        ValueError
            A shape differs: the message names the parameter, expected and got shapes.
        """
        own = dict(self.named_parameters())
        if strict:
            missing = sorted(set(own) - set(state_dict))
            unexpected = sorted(set(state_dict) - set(own))
            if missing or unexpected:
                raise KeyError(
                    f"state_dict keys do not match the model: missing {missing}, "
                    f"unexpected {unexpected}"
                )
        for name, p in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            if tuple(value.shape) != tuple(p.data.shape):
                raise ValueError(
                    f"{name}: expected shape {tuple(p.data.shape)}, got {tuple(value.shape)}"
                )
            p.data[...] = backend_of(p.data).asarray(to_numpy(value), dtype=p.data.dtype)

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
