"""The GAN: MLP generator and discriminator builders, presets, and one training step.

Goodfellow et al. (2014), "Generative Adversarial Nets": the discriminator D maximises
``log D(x) + log(1 - D(G(z)))``; the generator uses the *non-saturating* loss
``-log D(G(z))`` (Sec. 3 of the paper), whose gradient does not vanish when D wins.
D outputs logits, so both losses are :class:`~minigan.losses.BCEWithLogitsLoss`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import functional as F
from .backend import as_generator, backend_of, host_rng_state, resolve_device, set_host_rng_state
from .functional import sigmoid
from .layers import LeakyReLU, Linear, Module, ReLU, Sequential, Sigmoid, Tanh
from .losses import BCEWithLogitsLoss
from .optim import Adam, Optimizer

__all__ = [
    "mlp_generator",
    "mlp_discriminator",
    "GAN",
    "Preset",
    "PRESETS",
    "get_preset",
    "build_gan",
    "G_LOSSES",
]

G_LOSSES = ("non_saturating", "saturating")

# Modules whose output row i depends only on input row i: a batch of [real; fake] through
# them equals the two halves done separately (GAN.d_joint_batch).
ROW_WISE_MODULES = (Linear, LeakyReLU, ReLU, Tanh, Sigmoid, Sequential)


def _activation(name: str, negative_slope: float) -> Module:
    if name == "leaky_relu":
        return LeakyReLU(negative_slope)
    if name == "relu":
        return ReLU()
    raise ValueError(f"activation: expected 'leaky_relu' or 'relu', got {name!r}")


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


class GAN:
    """A generator, a discriminator, their optimizers, and the training step.

    Parameters
    ----------
    generator, discriminator : Module
        ``G: (N, latent_dim) -> (N, D_data)`` and ``D: (N, D_data) -> (N, 1)`` logits.
    latent_dim : int
    g_optimizer, d_optimizer : Optimizer
        Over ``generator.parameters()`` and ``discriminator.parameters()``.
    seed : int or numpy.random.Generator
        Seeds the host generator of the noise ``z ~ N(0, I)``.
    g_loss : {"non_saturating", "saturating"}
        ``-log D(G(z))`` (default, Goodfellow et al. 2014 Sec. 3) or the original minimax
        ``log(1 - D(G(z)))`` (kept to show why it fails: its gradient vanishes when D wins).

    Attributes
    ----------
    d_joint_batch : bool
        Run D's update as one pass over the 2N rows ``[real; fake]`` instead of two passes
        (see :meth:`train_step`). True when every module of D acts row by row (Linear and the
        activations); a D with any other module (e.g. a future BatchNorm, whose statistics
        would mix real and fake rows) gets False and the two-pass form. Set it to False to
        run the teaching form; ``minigan.functional.fast_paths(False)`` does too.

    Raises
    ------
    ValueError
        Unknown ``g_loss``; in :meth:`sample`, ``z`` not of shape (n, latent_dim); in
        :meth:`train_step`, ``real`` whose width is not D's ``in_features``.
    TypeError
        ``seed`` not an int or Generator; in :meth:`train_step`, ``real`` of another dtype
        or array library than the model's.
    AttributeError
        In :meth:`train_step`, ``real`` is not an array (no ``.shape``).
    """

    def __init__(
        self,
        generator: Module,
        discriminator: Module,
        latent_dim: int,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        seed=0,
        g_loss: str = "non_saturating",
    ):
        if g_loss not in G_LOSSES:
            raise ValueError(f"g_loss: expected one of {G_LOSSES}, got {g_loss!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.g_loss = g_loss
        self.rng = as_generator(seed)
        self.loss = BCEWithLogitsLoss()
        first = generator.parameters()[0].data
        self.backend = backend_of(first)
        self.dtype = first.dtype
        self._targets: dict[int, tuple[Any, Any]] = {}
        self.preset: Preset | None = None  # set by build_gan
        self.d_joint_batch = all(type(m) in ROW_WISE_MODULES for m in discriminator.modules())

    # -- helpers ---------------------------------------------------------------------------
    def sample_noise(self, n: int):
        """``z ~ N(0, I)`` of shape (n, latent_dim), drawn on the host, moved to the device.

        Drawing on the host keeps NumPy and CuPy runs with one seed identical; the copy is
        n * latent_dim floats per step (25 KB at n=64) and needs no device sync.
        """
        host_dtype = np.float32 if "32" in str(self.dtype) else np.float64
        z = self.rng.standard_normal((n, self.latent_dim), dtype=host_dtype)
        return self.backend.asarray(z, dtype=self.dtype)

    def targets(self, n: int):
        """Label arrays ``(ones, zeros)`` of shape (n, 1), made once per batch size."""
        if n not in self._targets:
            b = self.backend
            self._targets[n] = (
                b.asarray(np.ones((n, 1)), dtype=self.dtype),
                b.asarray(np.zeros((n, 1)), dtype=self.dtype),
            )
        return self._targets[n]

    # -- the step --------------------------------------------------------------------------
    def train_step(self, real) -> dict[str, Any]:
        """One discriminator update on real + fake, then one generator update.

        Parameters
        ----------
        real : array (N, D_data) on the model's device, dtype of the model, in [-1, 1]

        Returns
        -------
        dict of 0-d arrays **on the device** (no host sync): ``d_loss`` (real + fake BCE),
        ``g_loss``, ``d_real`` = mean D(x), ``d_fake`` = mean D(G(z)) (before D's update).
        """
        G, D, loss = self.generator, self.discriminator, self.loss
        xp = self.backend.xp
        n = real.shape[0]
        ones, zeros = self.targets(n)

        # Discriminator: minimise BCE(D(x), 1) + BCE(D(G(z)), 0).
        z = self.sample_noise(n)
        fake = G.forward(z)  # (N, D_data); G keeps its cache for the generator step below
        self.d_optimizer.zero_grad()
        if self.d_joint_batch and F.FAST_PATHS:
            # Fast form, same gradients: one pass over the 2N rows [real; fake]. D's layers act
            # row by row, so the halves do not interact, and dL/dW sums over all 2N rows just
            # as the two backward passes below add up. One forward/backward, larger matrices.
            logits = D.forward(xp.concat([real, fake], axis=0))  # (2N, 1)
            real_logits, fake_logits = logits[:n, :], logits[n:, :]
            d_loss_real = loss.forward(real_logits, ones)
            dreal = loss.backward()
            d_loss_fake = loss.forward(fake_logits, zeros)
            D.backward(xp.concat([dreal, loss.backward()], axis=0), input_grad=False)
        else:  # teaching form: real, then fake, gradients accumulating in D.grads
            real_logits = D.forward(real)  # (N, 1)
            d_loss_real = loss.forward(real_logits, ones)
            D.backward(loss.backward(), input_grad=False)  # nobody needs dL/dx of real data
            fake_logits = D.forward(fake)
            d_loss_fake = loss.forward(fake_logits, zeros)
            D.backward(loss.backward(), input_grad=False)  # G is not updated here ("detach")
        self.d_optimizer.step()

        # Generator: minimise -log D(G(z)) (non-saturating) through the *updated* D.
        self.g_optimizer.zero_grad()
        logits = D.forward(fake)
        if self.g_loss == "non_saturating":
            g_loss = loss.forward(logits, ones)  # = mean(-log D(G(z)))
            dlogits = loss.backward()
        else:  # saturating: minimise log(1 - D(G(z))) = -BCE(D(G(z)), 0)
            g_loss = -loss.forward(logits, zeros)
            dlogits = -loss.backward()
        # Only dL/d(fake) is needed from D here. D's parameter gradients would be wasted work,
        # and harmful if kept: they would leak into D's next update. Freezing D is exact
        # because G's loss reaches G's weights only through D's *input*, so dL/d(fake) does
        # not depend on whether dL/dW_D is computed (PyTorch: requires_grad_(False) on D).
        D.requires_grad_(False)
        dfake = D.backward(dlogits)  # (N, D_data)
        D.requires_grad_(True)
        G.backward(dfake, input_grad=False)  # the noise z needs no gradient
        self.g_optimizer.step()

        return {
            "d_loss": d_loss_real + d_loss_fake,
            "g_loss": g_loss,
            "d_real": xp.mean(sigmoid(real_logits)),
            "d_fake": xp.mean(sigmoid(fake_logits)),
        }

    def sample(self, n: int, z=None):
        """Generate ``n`` images (N, D_data) in (-1, 1) from noise ``z`` (drawn if None).

        ``z`` may be a host NumPy array or a device array of shape (n, latent_dim).
        """
        if z is None:
            z = self.sample_noise(n)
        elif tuple(z.shape) != (n, self.latent_dim):
            raise ValueError(f"z: expected shape {(n, self.latent_dim)}, got {tuple(z.shape)}")
        elif isinstance(z, np.ndarray):
            z = self.backend.asarray(z, dtype=self.dtype)
        return self.generator.forward(z)

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume bit-exactly, as a flat dict of arrays and scalars.

        Keys: ``generator.<param>``, ``discriminator.<param>``, ``g_optimizer.<key>``,
        ``d_optimizer.<key>``, ``rng`` (the noise generator's state as a JSON string).
        """
        out: dict[str, Any] = {}
        for prefix, obj in (
            ("generator", self.generator),
            ("discriminator", self.discriminator),
            ("g_optimizer", self.g_optimizer),
            ("d_optimizer", self.d_optimizer),
        ):
            for k, v in obj.state_dict().items():
                out[f"{prefix}.{k}"] = v
        out["rng"] = host_rng_state(self.rng)
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (NumPy arrays are moved to the model's device).

        Raises
        ------
        KeyError / ValueError
            Missing keys or shapes that do not match the model (the message names them).
        """

        def part(prefix):
            return {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}

        self.generator.load_state_dict(part("generator"))
        self.discriminator.load_state_dict(part("discriminator"))
        self.g_optimizer.load_state_dict(part("g_optimizer"))
        self.d_optimizer.load_state_dict(part("d_optimizer"))
        rng = state["rng"]
        set_host_rng_state(self.rng, str(rng.item() if hasattr(rng, "item") else rng))


@dataclass(frozen=True)
class Preset:
    """A named GAN configuration (architecture + optimizer + batch size)."""

    name: str
    latent_dim: int = 100
    g_hidden: tuple[int, ...] = (256, 512, 1024)
    d_hidden: tuple[int, ...] = (1024, 512, 256)
    g_activation: str = "leaky_relu"
    d_activation: str = "leaky_relu"
    negative_slope: float = 0.2
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-8
    batch_size: int = 64
    g_loss: str = "non_saturating"
    notes: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The preset's fields as a plain dict (what checkpoints and logs record)."""
        return asdict(self)


PRESETS: dict[str, Preset] = {
    "default": Preset(
        "default",
        notes="LeakyReLU(0.2) MLPs 100-256-512-1024-784 / 784-1024-512-256-1, Adam 2e-4 "
        "betas (0.5, 0.999) as in DCGAN (Radford et al. 2016), batch 64.",
    ),
    "seed-keras-mlp": Preset(
        "seed-keras-mlp",
        g_activation="relu",
        lr=1e-4,
        betas=(0.9, 0.999),
        eps=1e-7,
        notes="The classic Keras MLP GAN: G with ReLU, D with LeakyReLU(0.2), Adam(lr=1e-4) "
        "with Keras' default betas (0.9, 0.999) and epsilon 1e-7.",
    ),
}


def get_preset(name: str | Preset) -> Preset:
    """Look up a preset by name.

    Raises
    ------
    ValueError
        Unknown name; the message lists the known presets.
    """
    if isinstance(name, Preset):
        return name
    if name not in PRESETS:
        raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name]


def build_gan(
    preset: str | Preset = "default",
    *,
    device: Any = "cpu",
    seed: int = 0,
    dtype: Any = "float32",
    data_dim: int = 784,
    **overrides,
) -> GAN:
    """Build a :class:`GAN` from a preset: models initialised from ``seed``, Adam optimizers.

    ``overrides`` replace preset fields (``lr=1e-3``, ``g_loss="saturating"``...).

    The same ``seed`` gives the same weights and noise on every backend.

    Raises
    ------
    ValueError
        Unknown preset name, ``activation`` or ``g_loss``; a size that is not a positive int;
        an unknown device string.
    TypeError
        An override that is not a :class:`Preset` field; ``dtype`` not float32 / float64.
    RuntimeError
        ``device="gpu"`` without CuPy or a visible CUDA device.
    """
    p = get_preset(preset)
    if overrides:
        p = Preset(**{**p.to_dict(), **overrides})
    backend = resolve_device(device)
    rng = np.random.default_rng(seed)
    G = mlp_generator(
        p.latent_dim,
        p.g_hidden,
        data_dim,
        p.negative_slope,
        activation=p.g_activation,
        dtype=dtype,
        device=backend,
        rng=rng,
    )
    D = mlp_discriminator(
        data_dim,
        p.d_hidden,
        p.negative_slope,
        activation=p.d_activation,
        dtype=dtype,
        device=backend,
        rng=rng,
    )
    g_opt = Adam(G.parameters(), lr=p.lr, betas=p.betas, eps=p.eps)
    d_opt = Adam(D.parameters(), lr=p.lr, betas=p.betas, eps=p.eps)
    gan = GAN(G, D, p.latent_dim, g_opt, d_opt, seed=rng.integers(2**63), g_loss=p.g_loss)
    gan.preset = p
    return gan
