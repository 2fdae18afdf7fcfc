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

from . import dcgan as _dcgan
from .backend import as_generator
from .layers import LeakyReLU, Linear, Module, ReLU, Sequential, Tanh

__all__ = [
    "mlp_generator",
    "mlp_discriminator",
    "ModelBuilder",
    "MODELS",
    "LAYOUTS",
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


def _mlp(sizes, activation, negative_slope, dtype, device, rng) -> list[Module]:
    rng = as_generator(rng)
    layers: list[Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(Linear(a, b, dtype=dtype, device=device, rng=rng))
        if i < len(sizes) - 2:
            layers.append(_activation(activation, negative_slope))
    return layers


def mlp_generator(
    latent_dim: int = 100,
    hidden_sizes: tuple[int, ...] = (256, 512, 1024),
    out_features: int = 784,
    negative_slope: float = 0.2,
    *,
    activation: str = "leaky_relu",
    dtype: Any = "float32",
    device: Any = "cpu",
    rng=None,
) -> Sequential:
    """MLP generator ``z -> Linear -> act -> ... -> Linear -> Tanh``.

    Shapes: z (N, latent_dim) -> x (N, out_features), values in (-1, 1) (tanh range, the
    range the data is scaled to).

    Parameters
    ----------
    latent_dim, hidden_sizes, out_features : ints
    negative_slope : float
        LeakyReLU slope (0.2, as in DCGAN); ignored for ``activation="relu"``.
    activation : {"leaky_relu", "relu"}
    dtype, device, rng : as for :class:`~minigan.layers.Linear`

    Raises
    ------
    ValueError
        Unknown ``activation``; a size that is not a positive int; an unknown device string.
    TypeError
        ``dtype`` not float32 / float64; ``rng`` not None, an int or a Generator.
    """
    sizes = (latent_dim, *hidden_sizes, out_features)
    return Sequential(*_mlp(sizes, activation, negative_slope, dtype, device, rng), Tanh())


def mlp_discriminator(
    in_features: int = 784,
    hidden_sizes: tuple[int, ...] = (1024, 512, 256),
    negative_slope: float = 0.2,
    *,
    activation: str = "leaky_relu",
    dtype: Any = "float32",
    device: Any = "cpu",
    rng=None,
) -> Sequential:
    """MLP discriminator ``x -> Linear -> act -> ... -> Linear`` returning **logits**.

    Shapes: x (N, in_features) -> logits (N, 1). ``sigmoid(logits)`` is D(x), the probability
    that x is real; the loss takes logits for stability (:class:`BCEWithLogitsLoss`).
    Parameters as for :func:`mlp_generator`.

    Raises
    ------
    ValueError
        Unknown ``activation``; a size that is not a positive int; an unknown device string.
    TypeError
        ``dtype`` not float32 / float64; ``rng`` not None, an int or a Generator.
    """
    sizes = (in_features, *hidden_sizes, 1)
    return Sequential(*_mlp(sizes, activation, negative_slope, dtype, device, rng))


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

# The DCGAN builders live beside their architecture (minigan/dcgan.py) as (build, layout) pairs.
MODELS.update(
    {name: ModelBuilder(build, layout) for name, (build, layout) in _dcgan.MODEL_BUILDERS.items()}
)


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
