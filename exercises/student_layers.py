"""Coursework: write the backward passes yourself, then check them with minigan.gradcheck.

Fill in every ``TODO`` below (each one currently raises ``NotImplementedError``). The forward
passes are given; do not change them. Use NumPy only: calling ``minigan.functional`` or a
minigan layer's ``backward`` would defeat the purpose (the grader lists minigan imports for the
teacher).

=====================================  ======================================  ==========
Exercise                               What to write                           Lesson
=====================================  ======================================  ==========
1. ``LeakyReLU.backward``              ``dx``                                  3
2. ``Sigmoid.backward``                ``dx`` from the cached output           3
3. ``Linear.backward``                 ``dx``; add ``dW``, ``db`` into grads   2
4. ``BCEWithLogitsLoss.backward``      ``dL/dz`` for "mean" and "sum"          4
5. ``d_loss_grad_fake``                ``dL_D / d(fake)``                      8
=====================================  ======================================  ==========

Check one layer while you work (float64, inputs away from 0 for LeakyReLU)::

    import numpy as np, minigan
    from student_layers import LeakyReLU
    x = np.random.default_rng(0).uniform(0.1, 2, (4, 5)) * np.array([1, -1, 1, -1, 1])
    print(minigan.check_module(LeakyReLU(0.2), x))

and everything at once, as your teacher will::

    minigan check exercises/student_layers.py

The layer contract (lesson 2): ``forward(x)`` keeps what backward needs in ``self._cache``;
``backward(dout)`` returns ``dx = dL/dx`` (same shape as ``x``) and **adds** the parameter
gradients into ``self.grads`` (same keys and shapes as ``self.params``) unless the module is frozen
(``self.requires_grad`` False). ``backward(dout, input_grad=False)`` returns ``None`` (the caller
needs no ``dx``) but still adds the parameter gradients. Never change ``dout``, ``x`` or the
parameters in place: updating is the optimizer's job.
"""

# ruff: noqa: F841  (the TODO stubs unpack the cache for you before you use it)
from __future__ import annotations

import numpy as np

from minigan.layers import Module


class LeakyReLU(Module):
    """``y = x if x > 0 else negative_slope * x``. Shapes: x (*) -> y (*)."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        mask = x > 0  # (*) bool
        self._cache = mask
        return np.where(mask, x, self.negative_slope * x)

    def backward(self, dout, *, input_grad: bool = True):
        """Return ``dx`` of shape (*): ``dout`` where x > 0, ``negative_slope * dout`` elsewhere.

        ``None`` when ``input_grad`` is False; never write into ``dout``.
        """
        mask = self._cached()  # raises if forward was not called
        # TODO (exercise 1): compute and return dx.
        raise NotImplementedError("exercise 1: LeakyReLU.backward")


class Sigmoid(Module):
    """``y = 1 / (1 + exp(-x))`` in the stable form. Shapes: x (*) -> y (*)."""

    def forward(self, x):
        e = np.exp(-np.abs(x))  # never overflows
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        self._cache = y
        return y

    def backward(self, dout, *, input_grad: bool = True):
        """Return ``dx`` of shape (*), using the cached output ``y`` (no new exponentials).

        ``None`` when ``input_grad`` is False; never write into ``dout``.
        """
        y = self._cached()
        # TODO (exercise 2): compute and return dx.
        raise NotImplementedError("exercise 2: Sigmoid.backward")


class Linear(Module):
    """``y = x @ weight.T + bias`` with PyTorch's layout and initialisation.

    Shapes: x (N, in_features) -> y (N, out_features); weight (out_features, in_features);
    bias (out_features,).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        dtype="float32",
        rng=None,
    ):
        super().__init__()
        rng = np.random.default_rng(rng)
        bound = 1 / np.sqrt(in_features)
        self.params["weight"] = rng.uniform(-bound, bound, (out_features, in_features)).astype(
            dtype
        )
        if bias:
            self.params["bias"] = rng.uniform(-bound, bound, (out_features,)).astype(dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x):
        self._cache = x
        y = x @ self.params["weight"].T  # (N, out)
        if "bias" in self.params:
            y = y + self.params["bias"]
        return y

    def backward(self, dout, *, input_grad: bool = True):
        """Add ``dW`` into ``self.grads["weight"]`` and ``db`` into ``self.grads["bias"]``
        (when the layer has a bias); return ``dx`` (or ``None`` when ``input_grad`` is False).

        Shapes: dout (N, out) -> dx (N, in); dW (out, in); db (out,).
        """
        x = self._cached()
        weight = self.params["weight"]
        # TODO (exercise 3): accumulate dW and db (use +=), return dx.
        raise NotImplementedError("exercise 3: Linear.backward")


class BCEWithLogitsLoss:
    """Binary cross-entropy on logits, ``l = max(z, 0) - z y + log1p(exp(-|z|))``.

    Shapes: input z (*), target y (*) -> loss () for ``reduction`` "mean" (average over all
    elements) or "sum".
    """

    def __init__(self, reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        self._cache = None

    def forward(self, input, target):
        if input.shape != target.shape:
            raise ValueError(f"target shape {target.shape} does not match input {input.shape}")
        z, y = input, target
        loss = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))  # (*)
        self._cache = (z, y)
        return np.mean(loss) if self.reduction == "mean" else np.sum(loss)

    __call__ = forward

    def backward(self, dout=None):
        """Return ``dL/dz`` (shape of the input) times the upstream scalar ``dout``
        (default 1.0)."""
        if self._cache is None:
            raise RuntimeError("BCEWithLogitsLoss.backward() called before forward()")
        z, y = self._cache
        dout = 1.0 if dout is None else dout
        # TODO (exercise 4): compute and return dL/dz, for reduction "mean" and "sum".
        raise NotImplementedError("exercise 4: BCEWithLogitsLoss.backward")


def d_loss_grad_fake(discriminator, fake):
    """The gradient of the discriminator's loss on a fake batch, into the generator's output.

    The discriminator's loss on fakes is ``L_D = mean(BCEWithLogits(D(fake), 0))`` (the real
    half of D's loss does not depend on ``fake``). Return ``dL_D / d(fake)`` (lesson 8). This is
    not the gradient G is trained with: with the default loss, ``-dL_D/d(fake)`` is the gradient
    of G's *saturating* loss ``mean(log(1 - D(G(z))))``; G's non-saturating loss uses target 1.

    Leave the discriminator as you found it: its parameters and gradients unchanged and its
    ``requires_grad`` as before (freeze it with ``requires_grad_(False)`` while you
    backpropagate, and unfreeze it afterwards).

    Parameters
    ----------
    discriminator : minigan.layers.Module
        ``D: (N, D_data) -> (N, 1)`` logits, with ``forward`` and ``backward``.
    fake : numpy.ndarray (N, D_data)
        The generator's output.

    Returns
    -------
    numpy.ndarray (N, D_data)

    Hint: run ``discriminator.forward``, get the gradient of the loss with respect to the
    logits, then ``discriminator.backward`` it.
    """
    # TODO (exercise 5)
    raise NotImplementedError("exercise 5: d_loss_grad_fake")
