"""Loss modules: ``forward(input, target) -> scalar`` and ``backward() -> dinput``.

Thin wrappers around the pure functions in :mod:`minigan.functional`, with PyTorch's names and
``reduction`` argument (``torch.nn.BCELoss``, ``torch.nn.BCEWithLogitsLoss``,
``torch.nn.CrossEntropyLoss``).
"""

from __future__ import annotations

from . import functional as F
from .backend import array_namespace, device_of

__all__ = ["Loss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss"]


class Loss:
    """Base class: keeps the cache of the last ``forward`` for ``backward``.

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}
        How per-element losses are combined (default ``"mean"``).

    Raises
    ------
    ValueError
        Unknown reduction (here), shape mismatch between input and target (in ``forward``).
    RuntimeError
        ``backward`` before ``forward``.
    """

    _forward = None
    _backward = None

    def __init__(self, reduction: str = "mean"):
        if reduction not in F.REDUCTIONS:
            raise ValueError(f"reduction: expected one of {F.REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self._cache = None

    def forward(self, input, target):
        """Return the loss: a 0-d array for "mean"/"sum", else the shape of ``input``."""
        loss, self._cache = type(self)._forward(input, target, self.reduction)
        return loss

    def __call__(self, input, target):
        """``loss(input, target)`` is ``loss.forward(input, target)`` (a subclass's own)."""
        return self.forward(input, target)

    def backward(self, dout=None):
        """Return dL/dinput. ``dout`` defaults to 1 (the loss is the final output)."""
        if self._cache is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward() called before forward(): run forward() first"
            )
        if dout is None:
            like = self._cache[0]
            xp = array_namespace(like)
            shape = () if self.reduction != "none" else tuple(like.shape)
            dout = xp.ones(shape, dtype=like.dtype, device=device_of(like))
        return type(self)._backward(dout, self._cache)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"


class BCELoss(Loss):
    """Binary cross-entropy on probabilities, logs clamped at -100 (``torch.nn.BCELoss``).

    ``l = -(y log p + (1 - y) log(1 - p))``. Shapes: input (*), target (*) -> () or (*).
    Prefer :class:`BCEWithLogitsLoss` after a linear layer: it is stable for any logit.

    Raises
    ------
    ValueError
        Unknown ``reduction``; ``input`` and ``target`` of different shapes.
    TypeError
        Non-float ``input``, or a ``target`` of another dtype.
    RuntimeError
        ``backward`` before ``forward``.
    """

    _forward = staticmethod(F.bce_forward)
    _backward = staticmethod(F.bce_backward)


class BCEWithLogitsLoss(Loss):
    """Sigmoid + binary cross-entropy in one stable formula (``torch.nn.BCEWithLogitsLoss``).

    ``l = max(z, 0) - z y + log1p(exp(-|z|))``, gradient ``sigmoid(z) - y``.
    Shapes: input (*), target (*) -> () or (*).

    Raises
    ------
    ValueError
        Unknown ``reduction``; ``input`` and ``target`` of different shapes.
    TypeError
        Non-float ``input``, or a ``target`` of another dtype.
    RuntimeError
        ``backward`` before ``forward``.
    """

    _forward = staticmethod(F.bce_with_logits_forward)
    _backward = staticmethod(F.bce_with_logits_backward)


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy over classes (``torch.nn.CrossEntropyLoss``).

    ``l_n = logsumexp(z_n) - z_n[y_n]``, gradient ``softmax(z) - onehot(y)``.
    Shapes: input (N, C) float logits, target (N,) integer labels -> () or (N,).

    Raises
    ------
    ValueError
        Unknown ``reduction``; logits not (N, C) or labels not (N,).
    TypeError
        Non-float logits.
    RuntimeError
        ``backward`` before ``forward``.
    """

    _forward = staticmethod(F.softmax_cross_entropy_forward)
    _backward = staticmethod(F.softmax_cross_entropy_backward)

    def backward(self, dout=None):
        if dout is None and self._cache is not None and self.reduction == "none":
            probs = self._cache[0]
            xp = array_namespace(probs)
            dout = xp.ones((probs.shape[0],), dtype=probs.dtype, device=device_of(probs))
        return super().backward(dout)
