"""Weight initialisers, in place, drawn from a seeded host generator (``torch.nn.init``).

Each function draws float64 numbers on the host with a :class:`numpy.random.Generator`, casts
them to the array's dtype and writes them into the array on its device. The same seed therefore
gives the same initial weights on NumPy, CuPy and array-api-strict.
"""

from __future__ import annotations

import math

import numpy as np

from .backend import as_generator, backend_of

__all__ = [
    "fill_",
    "uniform_",
    "normal_",
    "zeros_",
    "xavier_uniform_",
    "kaiming_uniform_",
    "calculate_gain",
    "linear_default_",
    "dcgan_init_",
]


def fill_(array, host_values: np.ndarray):
    """Write host values into ``array`` in place (cast to its dtype, moved to its device).

    ``host_values`` must broadcast to ``array.shape``. Returns ``array``.

    Raises
    ------
    TypeError
        ``array`` is not float32 / float64 (or not an array).
    ValueError
        ``host_values`` does not broadcast to ``array.shape``.
    """
    array[...] = backend_of(array).asarray(host_values, dtype=array.dtype)
    return array


def uniform_(array, a: float = 0.0, b: float = 1.0, rng=None):
    """Fill ``array`` with U(a, b) samples (``torch.nn.init.uniform_``). Returns ``array``.

    Samples are drawn on the host in float64, then cast to ``array``'s dtype.

    Raises
    ------
    TypeError
        ``rng`` is not None, an int or a Generator; ``array`` is not float32 / float64.
    """
    return fill_(array, as_generator(rng).uniform(a, b, size=tuple(array.shape)))


def normal_(array, mean: float = 0.0, std: float = 1.0, rng=None):
    """Fill ``array`` with N(mean, std**2) samples (``torch.nn.init.normal_``).

    DCGAN (Radford et al. 2016) initialises all weights with ``normal_(w, 0, 0.02)``.
    Returns ``array``.

    Raises
    ------
    TypeError
        ``rng`` is not None, an int or a Generator; ``array`` is not float32 / float64.
    ValueError
        ``std < 0`` (NumPy's check).
    """
    return fill_(array, as_generator(rng).normal(mean, std, size=tuple(array.shape)))


def zeros_(array):
    """Fill ``array`` with zeros (``torch.nn.init.zeros_``)."""
    array[...] = 0
    return array


def _fans(shape) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"fan in/out need an array of at least 2 dimensions, got shape {shape}")
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Recommended gain for an activation (``torch.nn.init.calculate_gain``).

    Raises
    ------
    ValueError
        ``nonlinearity`` is not one of linear, sigmoid, conv1d, conv2d, tanh, relu,
        leaky_relu.
    """
    if nonlinearity in ("linear", "sigmoid", "conv1d", "conv2d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    raise ValueError(f"nonlinearity: unsupported {nonlinearity!r}")


def xavier_uniform_(array, gain: float = 1.0, rng=None):
    """Glorot & Bengio (2010): U(-a, a), ``a = gain * sqrt(6 / (fan_in + fan_out))``.

    For a weight (out_features, in_features): ``fan_in = in_features``. Returns ``array``.

    Raises
    ------
    ValueError
        ``array`` has fewer than 2 dimensions.
    TypeError
        As for :func:`uniform_`.
    """
    fan_in, fan_out = _fans(tuple(array.shape))
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(array, -a, a, rng)


def kaiming_uniform_(array, a: float = 0.0, nonlinearity: str = "leaky_relu", rng=None):
    """He et al. (2015): U(-b, b), ``b = gain * sqrt(3 / fan_in)`` (``kaiming_uniform_``).

    ``gain = calculate_gain(nonlinearity, a)``; ``fan_in = array.shape[1]`` (times the
    receptive field). Returns ``array``.

    Raises
    ------
    ValueError
        ``array`` has fewer than 2 dimensions, or ``nonlinearity`` is unsupported.
    TypeError
        As for :func:`uniform_`.
    """
    fan_in, _ = _fans(tuple(array.shape))
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan_in)
    return uniform_(array, -bound, bound, rng)


def linear_default_(weight, bias=None, rng=None):
    """PyTorch's ``nn.Linear.reset_parameters``: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)).

    ``kaiming_uniform_(weight, a=sqrt(5))`` gives exactly the bound ``1/sqrt(fan_in)``.
    """
    rng = as_generator(rng)
    kaiming_uniform_(weight, a=math.sqrt(5), rng=rng)
    if bias is not None:
        fan_in, _ = _fans(tuple(weight.shape))
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform_(bias, -bound, bound, rng)
    return weight, bias


def dcgan_init_(module, rng=None):
    """DCGAN initialisation (Radford et al. 2016, section 4): in place on a module tree.

    "All weights were initialized from a zero-centered Normal distribution with standard
    deviation 0.02": every weight of 2 or more dimensions (Conv2d, ConvTranspose2d, Linear)
    ~ N(0, 0.02) and its bias 0; every 1-D weight, i.e. a normalisation layer's per-channel
    scale (BatchNorm), ~ N(1, 0.02) and its bias 0 (the ``weights_init`` of PyTorch's DCGAN
    example). The rule reads the weight's rank, never the layer's type.

    Parameters
    ----------
    module : minigan.layers.Module
        Every module in ``module.modules()`` with a ``"weight"`` parameter is re-initialised.
    rng : numpy.random.Generator, int or None
        Host generator (None: minigan's global one); one stream, modules in order.

    Returns
    -------
    module

    Raises
    ------
    TypeError
        ``rng`` is not None, an int or a Generator.
    """
    rng = as_generator(rng)
    for m in module.modules():
        weight = m.params.get("weight")
        if weight is None:
            continue
        normal_(weight, 1.0 if weight.ndim == 1 else 0.0, 0.02, rng)
        if m.params.get("bias") is not None:
            zeros_(m.params["bias"])
    return module
