"""DCGAN generator and discriminator builders (Radford, Metz & Chintala 2016).

The architecture guidelines of the paper (section 3), as followed here:

* no pooling: strided convolutions downsample in D, transposed convolutions upsample in G;
* BatchNorm in G except its output layer and in D except its input layer;
* no hidden fully connected layers: G starts with one projection of z (a matmul, "project and
  reshape") and D ends with one linear map of the flattened features to a logit;
* ReLU in G with Tanh at the output; LeakyReLU(0.2) in D;
* weights initialised N(0, 0.02) (:func:`minigan.init.dcgan_init_`).

Images whose sides halve down to a start size of at least 4 work: 28 x 28 (MNIST,
Fashion-MNIST: 7 -> 14 -> 28) and 32 x 32 (CIFAR-10: 4 -> 8 -> 16 -> 32), 64 x 64, ... Each
stage is a 4 x 4 kernel, stride 2, padding 1 (the PyTorch DCGAN example's), which exactly
doubles or halves the side. D returns logits (pair it with ``BCEWithLogitsLoss``), and with
``norm=None`` has no BatchNorm at all, as a WGAN-GP critic needs (Gulrajani et al. 2017,
section 4: the penalty is per sample, BatchNorm would couple the samples).
"""

from __future__ import annotations

from typing import Any

from . import init
from .backend import as_generator
from .layers import (
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Tanh,
    Unflatten,
)

__all__ = ["dcgan_generator", "dcgan_discriminator", "dcgan_stages", "NORMS", "MODEL_BUILDERS"]

#: Normalisation layers D may use between its convolutions (None: none, for a WGAN-GP critic).
NORMS: dict[str | None, Any] = {"batch": BatchNorm2d, None: None}


def dcgan_stages(image_shape) -> tuple[int, int, int]:
    """``(stages, start_h, start_w)``: how many stride-2 stages reach ``image_shape``.

    The sides are halved while both are even and their halves are at least 4:
    (1, 28, 28) -> (2, 7, 7); (3, 32, 32) -> (3, 4, 4); (3, 64, 64) -> (4, 4, 4).

    Raises
    ------
    ValueError
        ``image_shape`` is not (C, H, W) of positive ints, or not even one stage fits
        (a side that is odd or below 8).
    """
    shape = tuple(image_shape)
    if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
        raise ValueError(f"image_shape: expected (C, H, W) of positive ints, got {image_shape!r}")
    _, h, w = shape
    stages = 0
    while h % 2 == 0 and w % 2 == 0 and h // 2 >= 4 and w // 2 >= 4:
        h, w, stages = h // 2, w // 2, stages + 1
    if stages == 0:
        raise ValueError(
            f"image_shape: expected even sides of at least 8 (one stride-2 stage), got {shape}"
        )
    return stages, h, w


def dcgan_generator(
    latent_dim: int = 100,
    image_shape=(1, 28, 28),
    base_channels: int = 16,
    dense_features: int | None = None,
    *,
    dtype: Any = "float32",
    device: Any = "cpu",
    rng=None,
) -> Sequential:
    """DCGAN generator ``z (N, latent_dim) -> image (N, C, H, W)`` in [-1, 1].

    ``Linear(latent_dim, c0*h0*w0)`` -> ``Unflatten`` -> BatchNorm2d -> ReLU, then per stage
    ``ConvTranspose2d(c, c/2, 4, stride 2, padding 1)`` -> BatchNorm2d -> ReLU, and a last
    ``ConvTranspose2d(base_channels, C, 4, 2, 1)`` -> Tanh (no BatchNorm at the output).
    ``c0 = base_channels * 2**(stages - 1)``; layers followed by BatchNorm have no bias (it
    would be cancelled by the mean subtraction). With ``dense_features`` a fully connected
    ``Linear(latent_dim, dense_features)`` -> BatchNorm1d -> ReLU comes first (InfoGAN's
    28 x 28 generator, Chen et al. 2016, appendix C.1: FC 1024 before the 128 x 7 x 7 map).

    Parameters
    ----------
    latent_dim : int
    image_shape : (C, H, W)
        (1, 28, 28) for MNIST / Fashion-MNIST, (3, 32, 32) for CIFAR-10.
    base_channels : int
        Channels of the last hidden stage (the PyTorch example's ``ngf``; 64 there). The
        default 16 keeps a CPU epoch of MNIST within a few minutes: a full ``GAN.train_step``
        at batch 64, 28 x 28, one BLAS thread, measured on the shared 2-core machine (load
        ~13) took 0.30 s (epoch of 938 steps ~5 min); base_channels 32 took 0.62 s.
    dense_features : int, optional
        Width of a first fully connected layer (None: z goes straight to the first map).
    dtype, device, rng
        As for :class:`~minigan.layers.Linear`; the weights are then re-drawn by
        :func:`~minigan.init.dcgan_init_` from the same ``rng``.

    Shapes
    ------
    z (N, latent_dim) -> x (N, C, H, W)

    Returns
    -------
    Sequential

    Raises
    ------
    ValueError
        Non-positive sizes or an ``image_shape`` without a stride-2 stage (see
        :func:`dcgan_stages`).
    """
    stages, h0, w0 = dcgan_stages(image_shape)
    channels = image_shape[0]
    rng = as_generator(rng)
    kw = dict(dtype=dtype, device=device)
    c = base_channels * 2 ** (stages - 1)
    layers, width = [], latent_dim
    if dense_features:
        layers += [Linear(width, dense_features, bias=False, rng=rng, **kw),
                   BatchNorm1d(dense_features, **kw), ReLU()]  # fmt: skip
        width = dense_features
    layers += [
        Linear(width, c * h0 * w0, bias=False, rng=rng, **kw),
        Unflatten(1, (c, h0, w0)),
        BatchNorm2d(c, **kw),
        ReLU(),
    ]
    for _ in range(stages - 1):
        layers += [
            ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False, rng=rng, **kw),
            BatchNorm2d(c // 2, **kw),
            ReLU(),
        ]
        c //= 2
    layers += [ConvTranspose2d(c, channels, 4, 2, 1, rng=rng, **kw), Tanh()]
    return init.dcgan_init_(Sequential(*layers), rng)


def dcgan_discriminator(
    image_shape=(1, 28, 28),
    base_channels: int = 16,
    norm: str | None = "batch",
    dropout: float = 0.0,
    dense_features: int | None = None,
    *,
    dtype: Any = "float32",
    device: Any = "cpu",
    rng=None,
) -> Sequential:
    """DCGAN discriminator ``image (N, C, H, W) -> logit (N, 1)``.

    ``Conv2d(C, base_channels, 4, stride 2, padding 1)`` -> LeakyReLU(0.2) (no BatchNorm on
    the input layer), then per further stage ``Conv2d(c, 2c, 4, 2, 1)`` -> norm ->
    LeakyReLU(0.2), then ``Flatten`` -> ``Linear(features, 1)``: a logit, no sigmoid. With
    ``dropout > 0`` a ``Dropout(dropout)`` follows every LeakyReLU (as the 28 x 28 DCGAN of
    TensorFlow's tutorial, and the 2014 paper's D).

    Parameters
    ----------
    image_shape : (C, H, W)
    base_channels : int
        Channels of the first convolution (the PyTorch example's ``ndf``; 16 by default,
        see :func:`dcgan_generator`).
    norm : "batch" or None
        A key of :data:`NORMS`: BatchNorm2d between the convolutions (DCGAN), or none (a
        WGAN-GP critic; the convolutions then keep their biases).
    dropout : float in [0, 1)
        Drop probability after each LeakyReLU (0: no Dropout layers, the state_dict keys of
        the plain DCGAN).
    dense_features : int, optional
        A fully connected ``Linear(features, dense_features)`` -> norm (BatchNorm1d) ->
        LeakyReLU(0.2) before the logit (InfoGAN's 28 x 28 discriminator, Chen et al. 2016,
        appendix C.1: FC 1024).
    dtype, device, rng
        As for :func:`dcgan_generator`.

    Shapes
    ------
    x (N, C, H, W) -> logits (N, 1)

    Returns
    -------
    Sequential (``any(m.mixes_batch_rows for m in D.modules())`` is True with BatchNorm)

    Raises
    ------
    ValueError
        An unknown ``norm`` (the known ones listed), or a bad ``image_shape``.
    """
    if norm not in NORMS:
        raise ValueError(f"norm: expected one of {list(NORMS)}, got {norm!r}")
    norm_layer = NORMS[norm]
    stages, h0, w0 = dcgan_stages(image_shape)
    rng = as_generator(rng)
    kw = dict(dtype=dtype, device=device)
    c = base_channels
    layers = [Conv2d(image_shape[0], c, 4, 2, 1, rng=rng, **kw), LeakyReLU(0.2)]
    layers += _dropout(dropout, rng)
    for _ in range(stages - 1):
        layers.append(Conv2d(c, 2 * c, 4, 2, 1, bias=norm_layer is None, rng=rng, **kw))
        if norm_layer is not None:
            layers.append(norm_layer(2 * c, **kw))
        layers += [LeakyReLU(0.2), *_dropout(dropout, rng)]
        c *= 2
    layers, width = layers + [Flatten()], c * h0 * w0
    if dense_features:
        layers.append(Linear(width, dense_features, bias=norm_layer is None, rng=rng, **kw))
        if norm_layer is not None:
            layers.append(BatchNorm1d(dense_features, **kw))
        layers += [LeakyReLU(0.2), *_dropout(dropout, rng)]
        width = dense_features
    layers.append(Linear(width, 1, rng=rng, **kw))
    return init.dcgan_init_(Sequential(*layers), rng)


def _dropout(p: float, rng) -> list[Dropout]:
    """``[Dropout(p)]``, or no layer at all for p = 0 (the plain DCGAN's layer indices)."""
    return [Dropout(p, rng=rng)] if p else []


def _build_generator(image_shape, latent_dim, *, dtype, device, rng, **args) -> Sequential:
    return dcgan_generator(latent_dim, tuple(image_shape), dtype=dtype, device=device, rng=rng,
                           **args)  # fmt: skip


def _build_discriminator(image_shape, latent_dim, *, dtype, device, rng, **args) -> Sequential:
    return dcgan_discriminator(tuple(image_shape), dtype=dtype, device=device, rng=rng, **args)


#: The builders in the call :data:`minigan.models.MODELS` makes,
#: ``build(image_shape, latent_dim, *, dtype, device, rng, **args)``, with their layout
#: ("image": (N, C, H, W) batches). ``minigan.models`` wraps each pair in a ``ModelBuilder``
#: (this module does not import ``models``, which imports it). The DCGAN initialisation
#: (:func:`~minigan.init.dcgan_init_`) is part of both builders.
MODEL_BUILDERS: dict[str, tuple[Any, str]] = {
    "dcgan_generator": (_build_generator, "image"),
    "dcgan_discriminator": (_build_discriminator, "image"),
}
