"""Model builders by name: what a preset's ``generator`` / ``discriminator`` fields refer to.

A builder is called as ``builder(image_shape, latent_dim, *, dtype, device, rng, **args)``
and returns a :class:`~minigan.layers.Module`: a generator maps z (N, latent_dim) to images in
the builder's :attr:`ModelBuilder.layout`, a discriminator maps such images to (N, 1) outputs.
The layout says how the training loop hands images to the models:

* ``"flat"``: (N, C*H*W) rows (the MLPs);
* ``"image"``: (N, C, H, W) (convolutional nets).

A conditional model (Mirza & Osindero 2014) takes class labels too: :class:`LabelConcat` wraps
any network and concatenates one-hot labels (or label maps, for images) to its input, so G
maps (z, y) and D maps (x, y). Whether a model is conditional is its ``num_classes``
attribute (None: not), which the GAN reads; the ``conditional_*`` builders wrap a registered
builder (MLP or DCGAN).

A new architecture is one function and one :data:`MODELS` entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from math import prod
from typing import Any

from . import dcgan as _dcgan
from .backend import array_namespace, as_generator, device_of
from .layers import BatchNorm1d, Dropout, LeakyReLU, Linear, Module, ReLU, Sequential, Tanh

__all__ = [
    "mlp_generator",
    "mlp_discriminator",
    "one_hot",
    "LabelConcat",
    "conditional_generator",
    "conditional_discriminator",
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


def one_hot(labels, num_classes: int, dtype):
    """``Y[i, k] = 1 if labels[i] == k else 0``: integer labels (N,) -> (N, num_classes).

    Plain array-API code (a comparison with ``arange``), so it runs on every backend; the
    labels' device is kept. Out-of-range labels give all-zero rows: callers check the range.
    """
    xp = array_namespace(labels, names=("labels",))
    classes = xp.arange(num_classes, dtype=labels.dtype, device=device_of(labels))
    return xp.astype(labels[:, None] == classes[None, :], dtype)  # (N, num_classes)


class LabelConcat(Module):
    """A conditional wrapper ``y = net([x, one_hot(labels)])`` (Mirza & Osindero 2014, Sec. 4.1).

    The one-hot labels are appended to the input's features: to the noise z of a generator,
    to the flat image of a discriminator; or, with ``label_maps=True``, as K constant feature
    maps appended to the channels of an image (a convolutional discriminator: map k is 1
    everywhere for label k, 0 otherwise). The labels get no gradient (they are data).

    Parameters
    ----------
    net : Module
        The wrapped network: its input has ``in_features + num_classes`` columns, or
        ``C + num_classes`` channels with ``label_maps``.
    num_classes : int
        Number of classes K; labels are ints in ``0..K-1``.
    label_maps : bool
        False: x is (N, F), the one-hot (N, K) is concatenated on the features. True: x is
        (N, C, H, W), the one-hot is broadcast to (N, K, H, W) and concatenated on the channels.

    Shapes
    ------
    x (N, F) or (N, C, H, W), labels (N,) int -> net's output; ``backward`` returns dx of x's
    shape.

    Raises
    ------
    ValueError
        ``num_classes`` < 1; in ``forward``, labels not of shape (N,), or x of the other rank
        (2-D expected without ``label_maps``, 4-D with).
    TypeError
        ``forward`` without labels.

    Notes
    -----
    Concatenating one-hot y to the first layer's input equals adding a learned per-class bias
    ``W_y[:, y]`` to that layer, i.e. an embedding of y (PyTorch: ``nn.Embedding`` plus a
    concat, as in most cGAN code); for label maps and a convolution, a learned per-class bias
    map. State-dict keys are the wrapped net's under ``net.``.
    """

    def __init__(self, net: Module, num_classes: int, *, label_maps: bool = False):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes: expected an int >= 1, got {num_classes!r}")
        self.net = net
        self.num_classes = num_classes
        self.label_maps = bool(label_maps)

    def children(self) -> dict[str, Module]:
        """``{"net": net}``."""
        return {"net": self.net}

    def __call__(self, x, labels=None):
        return self.forward(x, labels)

    def forward(self, x, labels=None):
        """``net([x, one_hot(labels)])``; keeps the input width for :meth:`backward`."""
        if labels is None:
            raise TypeError(
                f"LabelConcat.forward: a conditional model needs labels (N,) in "
                f"0..{self.num_classes - 1}, got none"
            )
        if tuple(labels.shape) != (x.shape[0],):
            raise ValueError(f"labels: expected shape {(x.shape[0],)}, got {tuple(labels.shape)}")
        rank = 4 if self.label_maps else 2
        if x.ndim != rank:
            want = "(N, C, H, W) with label_maps" if self.label_maps else "(N, F)"
            raise ValueError(f"x: expected {want}, got shape {tuple(x.shape)}")
        xp = array_namespace(x, labels, names=("x", "labels"))
        self._cache = x.shape[1]
        y = one_hot(labels, self.num_classes, x.dtype)  # (N, K)
        if self.label_maps:  # (N, K, 1, 1) broadcast to (N, K, H, W)
            n, _, h, w = x.shape
            y = xp.broadcast_to(y[:, :, None, None], (n, self.num_classes, h, w))
        return self.net.forward(xp.concat([x, y], axis=1))  # (N, F + K) or (N, C + K, H, W)

    def backward(self, dout, *, input_grad: bool = True):
        """dx of the input's features or channels (the labels' part is dropped)."""
        width = self._cached()
        dx = self.net.backward(dout, input_grad=input_grad)
        return None if dx is None else dx[:, :width, ...]

    def jvp(self, tangent):
        """``net``'s tangent for an input tangent of x (after ``forward``): the labels are
        data, so their part of the tangent is zero. Used by the gradient penalty of a
        conditional critic (:func:`minigan.objectives.gradient_penalty`)."""
        xp = array_namespace(tangent, names=("tangent",))
        shape = (tangent.shape[0], self.num_classes, *tangent.shape[2:])
        zeros = xp.zeros(shape, dtype=tangent.dtype, device=device_of(tangent))
        return self.net.jvp(xp.concat([tangent, zeros], axis=1))

    def jvp_backward(self, dout, dtangent, *, input_grad: bool = True):
        """Reverse pass of :meth:`jvp`: ``(dx, dt)`` of x (the labels' part is dropped)."""
        width = self._cached()
        dx, dt = self.net.jvp_backward(dout, dtangent, input_grad=input_grad)
        if dx is None and dt is None:
            return None, None
        return (
            None if dx is None else dx[:, :width, ...],
            None if dt is None else dt[:, :width, ...],
        )

    def extra_repr(self) -> str:
        """``num_classes=...`` (and ``label_maps=True``)."""
        return f"num_classes={self.num_classes}" + (", label_maps=True" if self.label_maps else "")


def conditional_generator(
    image_shape, latent_dim, *, base="mlp_generator", num_classes=10, **args
) -> LabelConcat:
    """``G(z, y)``: the builder ``base`` built for noise of width latent_dim + num_classes.

    Any generator takes flat noise, so ``base`` may be of either layout (the MLP or the
    DCGAN generator). Shapes: z (N, latent_dim), labels (N,) -> images as ``base`` makes them.

    Raises
    ------
    ValueError
        ``base`` unknown; ``num_classes`` < 1.
    """
    net = get_model(base).build(image_shape, latent_dim + num_classes, **args)
    return LabelConcat(net, num_classes)


def conditional_discriminator(
    image_shape, latent_dim, *, base="mlp_discriminator", num_classes=10, **args
) -> LabelConcat:
    """``D(x, y)``: the builder ``base`` built for inputs that carry the labels too.

    A flat ``base`` gets rows of width C*H*W + num_classes (one-hot appended); an image
    ``base`` (a conv net) gets C + num_classes channels (one-hot label maps, Mirza & Osindero's
    conditioning as in most conditional DCGANs).

    Shapes: x (N, C*H*W) or (N, C, H, W), labels (N,) -> (N, 1).

    Raises
    ------
    ValueError
        ``base`` unknown; ``num_classes`` < 1.
    """
    builder = get_model(base)
    c, *hw = image_shape
    shape = (
        (prod(image_shape) + num_classes,) if builder.layout == "flat" else (c + num_classes, *hw)
    )
    net = builder.build(shape, latent_dim, **args)
    return LabelConcat(net, num_classes, label_maps=builder.layout == "image")


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
    "conditional_mlp_generator": ModelBuilder(
        partial(conditional_generator, base="mlp_generator"), "flat"
    ),
    "conditional_mlp_discriminator": ModelBuilder(
        partial(conditional_discriminator, base="mlp_discriminator"), "flat"
    ),
}

# The DCGAN builders live beside their architecture (minigan/dcgan.py) as (build, layout) pairs.
MODELS.update(
    {name: ModelBuilder(build, layout) for name, (build, layout) in _dcgan.MODEL_BUILDERS.items()}
)
# Conditional DCGAN: one-hot labels appended to z, and as label maps to D's input channels.
MODELS.update(
    {
        "conditional_dcgan_generator": ModelBuilder(
            partial(conditional_generator, base="dcgan_generator"), "image"
        ),
        "conditional_dcgan_discriminator": ModelBuilder(
            partial(conditional_discriminator, base="dcgan_discriminator"), "image"
        ),
    }
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
