"""minigan: an educational, from-scratch GAN library on NumPy and CuPy.

Hand-written forward and backward passes (:mod:`minigan.functional`), layers
(:mod:`minigan.layers`), losses, optimizers, gradient checking, and a GAN trainer for MNIST.
"""

__version__ = "0.1.0"

from . import functional, init  # noqa: E402
from .backend import (  # noqa: E402
    array_namespace,
    manual_seed,
    resolve_device,
    to_device,
    to_numpy,
)
from .dcgan import dcgan_discriminator, dcgan_generator  # noqa: E402
from .gan import GAN, build_gan, mlp_discriminator, mlp_generator  # noqa: E402
from .gradcheck import check_module, gradcheck, numerical_gradient, rel_error  # noqa: E402
from .layers import (  # noqa: E402
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    Module,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    Unflatten,
)
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss  # noqa: E402
from .optim import SGD, Adam, clip_grad_norm_  # noqa: E402


def __getattr__(name):
    # train_mnist pulls in data/plotting code; import it on first use.
    if name == "train_mnist":
        from .train import train_mnist

        return train_mnist
    raise AttributeError(f"module 'minigan' has no attribute {name!r}")


__all__ = [
    "__version__",
    "functional",
    "init",
    "array_namespace",
    "manual_seed",
    "resolve_device",
    "to_device",
    "to_numpy",
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
    "dcgan_generator",
    "dcgan_discriminator",
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "SGD",
    "Adam",
    "clip_grad_norm_",
    "gradcheck",
    "check_module",
    "numerical_gradient",
    "rel_error",
    "GAN",
    "build_gan",
    "mlp_generator",
    "mlp_discriminator",
    "train_mnist",
]
