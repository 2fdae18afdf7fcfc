"""Model builders by name: what a preset's ``generator`` / ``discriminator`` fields refer to.

A builder is called as ``builder(image_shape, latent_dim, *, dtype, device, rng, **args)``
and returns a :class:`~minigan.layers.Module`: a generator maps z (N, latent_dim) to images in
the builder's :attr:`ModelBuilder.layout`, a discriminator maps such images to (N, 1) outputs.
The layout says how the training loop hands images to the models:

* ``"flat"``: (N, C*H*W) rows (the MLPs);
* ``"image"``: (N, C, H, W) (convolutional nets).

A new architecture is one function and one :data:`MODELS` entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from typing import Any

from .backend import as_generator
from .layers import BatchNorm1d, Dropout, LeakyReLU, Linear, Module, ReLU, Sequential, Tanh

__all__ = [
    "mlp_generator",
    "mlp_discriminator",
    "ModelBuilder",
    "MODELS",
    "LAYOUTS",
    "NORMS",
    "get_model",
]

_ACTIVATIONS: dict[str, Callable[[float], Module]] = {
    "leaky_relu": LeakyReLU,
    "relu": lambda negative_slope: ReLU(),
}


def _activation(name: str, negative_slope: float) -> Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation: expected 'leaky_relu' or 'relu', got {name!r}")
    return _ACTIVATIONS[name](negative_slope)


#: Normalisation layers an MLP may put after each hidden Linear (``norm=`` of the builders).
NORMS: dict[str | None, Callable[..., Module] | None] = {None: None, "batch": BatchNorm1d}


def _check_mlp_options(norm: str | None, dropout: float) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm: expected one of {list(NORMS)}, got {norm!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")


def _mlp(sizes, activation, negative_slope, dtype, device, rng, norm=None, dropout=0.0):
    """Linear [-> norm] -> act [-> Dropout] per hidden layer, then the last Linear."""
    _check_mlp_options(norm, dropout)
    rng = as_generator(rng)
    layers: list[Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(Linear(a, b, dtype=dtype, device=device, rng=rng))
        if i == len(sizes) - 2:
            break
        if NORMS[norm] is not None:
            layers.append(NORMS[norm](b, dtype=dtype, device=device))
        layers.append(_activation(activation, negative_slope))
        if dropout:
            layers.append(Dropout(dropout, rng=rng))
    return layers


def mlp_generator(
    latent_dim: int = 100,
    hidden_sizes: tuple[int, ...] = (256, 512, 1024),
    out_features: int = 784,
    negative_slope: float = 0.2,
    *,
    activation: str = "leaky_relu",
    norm: str | None = None,
    dropout: float = 0.0,
    dtype: Any = "float32",
    device: Any = "cpu",
    rng=None,
) -> Sequential:
    """MLP generator ``z -> Linear [-> BatchNorm1d] -> act -> ... -> Linear -> Tanh``.

    Shapes: z (N, latent_dim) -> x (N, out_features), values in (-1, 1) (tanh range, the
    range the data is scaled to).

    Parameters
    ----------
    latent_dim, hidden_sizes, out_features : ints
    negative_slope : float
        LeakyReLU slope (0.2, as in DCGAN); ignored for ``activation="relu"``.
    activation : {"leaky_relu", "relu"}
    norm : {None, "batch"}
        A key of :data:`NORMS`: ``"batch"`` puts a BatchNorm1d between each hidden Linear and
        its activation (as the MLP GANs of PyTorch-GAN and Keras do in G).
    dropout : float in [0, 1)
        If > 0, a :class:`~minigan.layers.Dropout` after each hidden activation (the 2014
        paper's D used dropout; Goodfellow et al. 2014, section 5).
    dtype, device, rng : as for :class:`~minigan.layers.Linear`

    Raises
    ------
    ValueError
        Unknown ``activation`` or ``norm``; ``dropout`` outside [0, 1); a size that is not a
        positive int; an unknown device string.
    TypeError
        ``dtype`` not float32 / float64; ``rng`` not None, an int or a Generator.

    Notes
    -----
    Dropout's masks come from ``rng`` (the generator that drew the weights, continued), so a
    seed fixes them too.
    """
    sizes = (latent_dim, *hidden_sizes, out_features)
    layers = _mlp(sizes, activation, negative_slope, dtype, device, rng, norm, dropout)
    return Sequential(*layers, Tanh())


def mlp_discriminator(
    in_features: int = 784,
    hidden_sizes: tuple[int, ...] = (1024, 512, 256),
    negative_slope: float = 0.2,
    *,
    activation: str = "leaky_relu",
    norm: str | None = None,
    dropout: float = 0.0,
    dtype: Any = "float32",
    device: Any = "cpu",
    rng=None,
) -> Sequential:
    """MLP discriminator ``x -> Linear -> act [-> Dropout] -> ... -> Linear`` returning **logits**.

    Shapes: x (N, in_features) -> logits (N, 1). ``sigmoid(logits)`` is D(x), the probability
    that x is real; the loss takes logits for stability (:class:`BCEWithLogitsLoss`).
    Parameters as for :func:`mlp_generator`.

    Raises
    ------
    ValueError
        Unknown ``activation`` or ``norm``; ``dropout`` outside [0, 1); a size that is not a
        positive int; an unknown device string.
    TypeError
        ``dtype`` not float32 / float64; ``rng`` not None, an int or a Generator.
    """
    sizes = (in_features, *hidden_sizes, 1)
    return Sequential(*_mlp(sizes, activation, negative_slope, dtype, device, rng, norm, dropout))


def _build_mlp_generator(image_shape, latent_dim, *, dtype, device, rng, **args) -> Module:
    return mlp_generator(latent_dim, out_features=prod(image_shape), dtype=dtype, device=device,
                         rng=rng, **args)  # fmt: skip


def _build_mlp_discriminator(image_shape, latent_dim, *, dtype, device, rng, **args) -> Module:
    return mlp_discriminator(prod(image_shape), dtype=dtype, device=device, rng=rng, **args)


#: How each layout shapes a batch of images (C, H, W) for the models.
LAYOUTS: dict[str, Callable[[tuple[int, ...]], tuple[int, ...]]] = {
    "flat": lambda image_shape: (prod(image_shape),),
    "image": tuple,
}


@dataclass(frozen=True)
class ModelBuilder:
    """A registered builder and the image layout its models take or produce.

    Attributes
    ----------
    build : callable
        ``build(image_shape, latent_dim, *, dtype, device, rng, **args) -> Module``.
    layout : {"flat", "image"}
        A key of :data:`LAYOUTS`.
    """

    build: Callable[..., Module]
    layout: str

    def data_shape(self, image_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The per-example shape the model sees: (C*H*W,) for "flat", (C, H, W) for "image"."""
        return LAYOUTS[self.layout](tuple(image_shape))


#: Builders by name (a preset's ``generator`` / ``discriminator``).
MODELS: dict[str, ModelBuilder] = {
    "mlp_generator": ModelBuilder(_build_mlp_generator, "flat"),
    "mlp_discriminator": ModelBuilder(_build_mlp_discriminator, "flat"),
}

try:  # the DCGAN builders arrive with the conv layers; this branch works without them
    from . import dcgan as _dcgan
except ImportError:  # pragma: no cover - depends on the branch
    _dcgan = None
else:
    _dcgan_builders = getattr(_dcgan, "MODEL_BUILDERS", None)
    if _dcgan_builders is None:
        _dcgan_builders = {
            name: ModelBuilder(getattr(_dcgan, name), "image")
            for name in ("dcgan_generator", "dcgan_discriminator")
            if hasattr(_dcgan, name)
        }
    MODELS.update(_dcgan_builders)


def get_model(name: str) -> ModelBuilder:
    """The :data:`MODELS` entry of ``name``.

    Raises
    ------
    ValueError
        Unknown name; the message lists the known builders.
    """
    if name not in MODELS:
        raise ValueError(f"model builder: expected one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name]
