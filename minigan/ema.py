"""Exponential moving average of a model's weights, for sampling (Yazici et al. 2019).

GAN training oscillates around an equilibrium instead of settling there; the average of the
generator's recent weights often draws better samples than the last ones. After every
generator step::

    theta_ema = decay * theta_ema + (1 - decay) * theta

and samples are drawn from a copy of the generator holding ``theta_ema``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from .backend import array_namespace

__all__ = ["EMA"]


class EMA:
    """EMA of a module's weights and floating buffers: ``e = decay * e + (1 - decay) * w``.

    Parameters
    ----------
    module : minigan.layers.Module
        The model being trained (the generator); never modified here.
    decay : float in [0, 1)
        e.g. 0.999 (Yazici et al. 2019, Sec. 4: 0.999 and 0.9999). ``0`` copies the weights.
    warmup : bool
        Use ``min(decay, (1 + n) / (10 + n))`` at the n-th update (n from 0), as
        ``tf.train.ExponentialMovingAverage(decay, num_updates=n)`` does: the average forgets
        the random initial weights within the first epoch instead of carrying
        ``decay**n`` of them (0.999**781 = 46% after one MNIST epoch at batch 64).

    Attributes
    ----------
    module : Module
        The averaged copy (``EMA.module.forward(z)`` samples with the averaged weights); it
        starts equal to the model, is frozen (no gradients) and keeps the model's dtype and
        device.
    num_updates : int
        Calls of :meth:`update` (saved in the state for exact resume).

    Shapes
    ------
    Those of ``module``.

    Raises
    ------
    ValueError
        ``decay`` outside [0, 1) or not a number.

    Notes
    -----
    Every entry of ``module.state_dict()`` is averaged in place on the device, except
    non-floating buffers (such as a batch counter), which are copied (as
    ``torch.optim.swa_utils.AveragedModel(use_buffers=True)`` does with
    ``get_ema_multi_avg_fn``). The copy is made with ``copy.deepcopy`` without the forward
    cache. Create the EMA after moving the model to its device.
    """

    def __init__(self, module, decay: float = 0.999, *, warmup: bool = False):
        ok = isinstance(decay, (int, float)) and not isinstance(decay, bool)
        if not ok or not math.isfinite(decay) or not 0.0 <= decay < 1.0:
            raise ValueError(f"ema_decay: expected a number in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.source = module
        caches = [(m, m._cache) for m in module.modules()]
        try:
            for m, _ in caches:
                m._cache = None  # do not copy activations
            self.module = copy.deepcopy(module)
        finally:
            for m, cache in caches:
                m._cache = cache
        self.module.requires_grad_(False)
        self.num_updates = 0

    def update(self) -> None:
        """One EMA step from the model's current weights (call after each generator step).

        Raises
        ------
        KeyError
            The model's state keys no longer match the copy's.
        """
        own = self.module.state_dict()
        new = self.source.state_dict()
        decay = self.current_decay()
        if set(own) != set(new):
            raise KeyError(f"EMA: model keys {sorted(new)} differ from the copy's {sorted(own)}")
        for k, e in own.items():
            w = new[k]
            xp = array_namespace(e, w, names=(f"ema.{k}", k))
            if not xp.isdtype(e.dtype, "real floating"):
                e[...] = w  # counters are copied, not averaged
                continue
            e *= decay
            e += (1 - decay) * w  # in place: the copy's arrays stay the same objects
        self.num_updates += 1

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses: ``decay``, or with ``warmup``
        ``min(decay, (1 + n) / (10 + n))`` after n updates."""
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    def state_dict(self) -> dict[str, Any]:
        """Flat dict: ``num_updates``, ``decay`` and the averaged arrays by dotted name."""
        return {"num_updates": self.num_updates, "decay": self.decay, **self.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (NumPy arrays are moved to the copy's device).

        Raises
        ------
        KeyError, ValueError
            From :meth:`Module.load_state_dict`: keys or shapes that differ.
        """
        arrays = {k: v for k, v in state.items() if k not in ("num_updates", "decay")}
        self.module.load_state_dict(arrays)
        self.num_updates = int(state["num_updates"])
        if "decay" in state:
            self.decay = float(state["decay"])

    def __repr__(self) -> str:
        warm = ", warmup=True" if self.warmup else ""
        return f"EMA(decay={self.decay}{warm}, num_updates={self.num_updates})"
