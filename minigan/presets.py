"""Named GAN configurations as data: builders, optimizers, objective, batch size, epochs.

A :class:`Preset` is a frozen dataclass. It names the model builders of
:data:`minigan.models.MODELS` with their arguments, the optimizer (:data:`OPTIMIZERS`) with its
settings, the objective of :data:`minigan.objectives.OBJECTIVES` with its settings, the batch
size and the epochs. Nothing
in the training loop looks at a preset's name: a new preset is one :data:`PRESETS` entry.

Overrides (``train(..., lr=1e-3, g_hidden=(128,))``, :meth:`Preset.with_overrides`) take any
field, or one of the short names of :data:`SHORTCUTS` that reach into the argument dicts
(``lr`` -> ``optimizer_args["lr"]``, ``g_hidden`` -> ``generator_args["hidden_sizes"]``,
``g_loss="saturating"`` -> ``objective="minimax"``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

__all__ = [
    "Preset",
    "PRESETS",
    "SHORTCUTS",
    "OPTIMIZERS",
    "G_LOSSES",
    "get_preset",
    "make_optimizer",
    "preset_line",
]

#: Optimizer names -> class names in :mod:`minigan.optim` (looked up when used).
OPTIMIZERS: dict[str, str] = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}

#: The legacy ``g_loss`` field's values -> objective names (:data:`minigan.objectives.OBJECTIVES`).
G_LOSSES: dict[str, str] = {"non_saturating": "non_saturating", "saturating": "minimax"}

#: Short override names -> the (field, key) places they set.
SHORTCUTS: dict[str, tuple[tuple[str, str], ...]] = {
    "g_hidden": (("generator_args", "hidden_sizes"),),
    "d_hidden": (("discriminator_args", "hidden_sizes"),),
    "g_activation": (("generator_args", "activation"),),
    "d_activation": (("discriminator_args", "activation"),),
    "negative_slope": (
        ("generator_args", "negative_slope"),
        ("discriminator_args", "negative_slope"),
    ),
    "lr": (("optimizer_args", "lr"),),
    "betas": (("optimizer_args", "betas"),),
    "eps": (("optimizer_args", "eps"),),
    "d_lr": (("d_optimizer_args", "lr"),),
    "n_critic": (("objective_args", "n_critic"),),
    "clip_value": (("objective_args", "clip_value"),),
    "real_label": (("objective_args", "real_label"),),
}


def _mlp_args(hidden: tuple[int, ...]) -> dict[str, Any]:
    return {"hidden_sizes": hidden, "negative_slope": 0.2, "activation": "leaky_relu"}


def _tuples(v: Any) -> Any:
    """JSON lists back to tuples, also inside dicts (presets hold tuples)."""
    if isinstance(v, list):
        return tuple(_tuples(x) for x in v)
    if isinstance(v, dict):
        return {k: _tuples(x) for k, x in v.items()}
    return v


@dataclass(frozen=True)
class Preset:
    """A named GAN configuration: models, optimizers, objective, batch size and epochs.

    Attributes
    ----------
    name : str
    generator, discriminator : str
        Keys of :data:`minigan.models.MODELS`; their builders get ``*_args``.
    generator_args, discriminator_args : dict
    latent_dim : int
        Width of the noise z ~ N(0, I).
    optimizer : str
        A key of :data:`OPTIMIZERS`, for both players.
    optimizer_args : dict
        Its settings (``lr``, ``betas``, ``eps`` for Adam).
    d_optimizer_args : dict
        D's settings on top of ``optimizer_args`` (e.g. another ``lr``, TTUR).
    batch_size, epochs : int
        What ``train()`` uses when its arguments are None.
    objective : str
        A key of :data:`minigan.objectives.OBJECTIVES`; ``objective_args`` are its settings.
    objective_args : dict
    ema_decay : float or None
        Exponential moving average of G's weights (None: off; Yazici et al. 2019 use 0.999).
    ema_warmup : bool
        Ramp the EMA's decay up as ``min(decay, (1 + n) / (10 + n))`` after n G steps
        (TensorFlow's ``ExponentialMovingAverage(num_updates=n)``), so early samples do not
        average in the random initial weights.
    instance_noise : float
        Std of Gaussian noise added to D's inputs, real and fake (Sonderby et al. 2017).
    instance_noise_steps : int
        Anneal it linearly to 0 over this many D steps (0: constant).
    max_grad_norm : float or None
        Clip both players' global gradient norm (``torch.nn.utils.clip_grad_norm_``; Pascanu
        et al. 2013).
    lr_schedule : str or None
        A key of :data:`minigan.optim.LR_SCHEDULES` (None: constant rates); ``lr_schedule_args``
        are its settings, e.g. ``{"start": 0.5}`` for :class:`~minigan.optim.LinearDecayLR`
        (both rates decay linearly to 0 over the second half of the run).
    lr_schedule_args : dict
    notes : str
        One line for ``minigan presets`` (not compared).

    Notes
    -----
    Stability switches, each off by default (see :class:`minigan.gan.GAN`): one-sided label
    smoothing ``objective_args={"real_label": 0.9}`` for the BCE games (Salimans et al. 2016,
    Sec. 3.4; shortcut ``real_label``); TTUR, two time-scale learning rates,
    ``d_optimizer_args={"lr": 4e-4}`` (Heusel et al. 2017; shortcut ``d_lr``); ``n_critic``
    critic steps per G step in ``objective_args`` of the Wasserstein games (Arjovsky et al.
    2017; shortcut ``n_critic``); instance noise and gradient-norm clipping (the fields above).
    """

    name: str
    generator: str = "mlp_generator"
    generator_args: dict[str, Any] = field(default_factory=lambda: _mlp_args((256, 512, 1024)))
    discriminator: str = "mlp_discriminator"
    discriminator_args: dict[str, Any] = field(default_factory=lambda: _mlp_args((1024, 512, 256)))
    latent_dim: int = 100
    optimizer: str = "adam"
    optimizer_args: dict[str, Any] = field(
        default_factory=lambda: {"lr": 2e-4, "betas": (0.5, 0.999), "eps": 1e-8}
    )
    d_optimizer_args: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 64
    epochs: int = 30
    objective: str = "non_saturating"
    objective_args: dict[str, Any] = field(default_factory=dict)
    ema_decay: float | None = None
    ema_warmup: bool = False
    instance_noise: float = 0.0
    instance_noise_steps: int = 0
    max_grad_norm: float | None = None
    lr_schedule: str | None = None
    lr_schedule_args: dict[str, Any] = field(default_factory=dict)
    notes: str = field(default="", compare=False)

    # -- data ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The preset's fields as a plain dict (what checkpoints and logs record)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preset:
        """Rebuild a preset from :meth:`to_dict` (JSON lists become tuples again).

        Raises
        ------
        ValueError
            A key that is not a field (the message lists the fields).
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"preset data: unknown field(s) {unknown}; fields: {sorted(known)}")
        return cls(**{k: _tuples(v) for k, v in d.items()})

    @classmethod
    def overridable(cls) -> list[str]:
        """Every name :meth:`with_overrides` accepts (fields and :data:`SHORTCUTS`)."""
        own = [f.name for f in fields(cls) if f.name not in ("name", "notes")]
        return sorted([*own, *SHORTCUTS, "g_loss"])

    def with_overrides(self, **overrides: Any) -> Preset:
        """A copy with fields (or :data:`SHORTCUTS`, or ``g_loss``) replaced.

        Raises
        ------
        ValueError
            An unknown name (the message lists the known ones); an unknown ``g_loss``.
        """
        unknown = sorted(set(overrides) - set(self.overridable()))
        if unknown:
            raise ValueError(
                f"unknown preset field(s) {unknown}; known: {', '.join(self.overridable())}"
            )
        new = {k: v for k, v in overrides.items() if k not in SHORTCUTS and k != "g_loss"}
        if "g_loss" in overrides:
            if overrides["g_loss"] not in G_LOSSES:
                raise ValueError(
                    f"g_loss: expected one of {tuple(G_LOSSES)}, got {overrides['g_loss']!r}"
                )
            new["objective"] = G_LOSSES[overrides["g_loss"]]
        if new.get("objective", self.objective) != self.objective and "objective_args" not in new:
            new[
                "objective_args"
            ] = {}  # settings belong to their objective: another one starts clean
        for short, places in SHORTCUTS.items():
            if short in overrides:
                for fname, key in places:
                    base = new.get(fname, getattr(self, fname))
                    new[fname] = {**base, key: overrides[short]}
        return replace(self, **new)

    # -- the settings of minigan 0.1's flat preset, read-only ------------------------------
    def __getattr__(self, name: str) -> Any:
        """``preset.lr``, ``preset.g_hidden``...: the :data:`SHORTCUTS`, read from their dicts."""
        if name in SHORTCUTS:
            fname, key = SHORTCUTS[name][0]
            return object.__getattribute__(self, fname).get(key)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def g_loss(self) -> str:
        """The legacy name of the objective ("non_saturating", "saturating"), else its name."""
        back = {v: k for k, v in G_LOSSES.items()}
        return back.get(self.objective, self.objective)


PRESETS: dict[str, Preset] = {
    "default": Preset(
        "default",
        generator_args={**_mlp_args((256, 512, 1024)), "norm": "batch"},
        discriminator_args=_mlp_args((512, 256)),
        optimizer_args={"lr": 3e-4, "betas": (0.5, 0.999), "eps": 1e-8},
        batch_size=128,
        epochs=40,
        ema_decay=0.999,
        ema_warmup=True,
        notes="The classic MLP GAN made to cover every digit within 15 minutes on a 2-core CPU "
        "(issue 12): BatchNorm1d in G (as PyTorch-GAN's and Keras' MLP GANs), a narrower D "
        "(784-512-256-1), batch 128, samples from an EMA of G's weights (decay 0.999 with "
        "warm-up; Yazici et al. 2019); LeakyReLU(0.2) MLPs, G 100-256-512-1024-784, Adam 3e-4 "
        "betas (0.5, 0.999) (2e-4 scaled by sqrt 2 for the doubled batch), 40 epochs.",
    ),
    "classic": Preset(
        "classic",
        notes="minigan 0.1's default: LeakyReLU(0.2) MLPs 100-256-512-1024-784 / "
        "784-1024-512-256-1, no normalisation, no dropout, Adam 2e-4 betas (0.5, 0.999) as in "
        "DCGAN (Radford et al. 2016), batch 64. Covers all digits unevenly (mode collapse).",
    ),
    "lsgan": Preset(
        "lsgan",
        generator_args={**_mlp_args((256, 512, 1024)), "norm": "batch"},
        discriminator_args={**_mlp_args((1024, 512, 256)), "dropout": 0.3},
        objective="lsgan",
        objective_args={"a": 0.0, "b": 1.0, "c": 1.0},
        notes="Least-squares GAN (Mao et al. 2017, Eq. 2 with a=0, b=c=1) on the MLPs "
        "100-256-512-1024-784 with BatchNorm1d in G and 784-1024-512-256-1 with Dropout(0.3) "
        "in D (on the plain MLPs D won within 2 epochs), Adam 2e-4 betas (0.5, 0.999).",
    ),
    "wgan": Preset(
        "wgan",
        optimizer="rmsprop",
        optimizer_args={"lr": 5e-5},
        objective="wgan",
        objective_args={"clip_value": 0.01, "n_critic": 5},
        notes="WGAN (Arjovsky et al. 2017, Algorithm 1): critic weights clipped to 0.01, "
        "5 critic steps per G step, RMSprop lr 5e-5.",
    ),
    "wgan-gp": Preset(
        "wgan-gp",
        generator_args={**_mlp_args((256, 512, 1024)), "norm": "batch"},
        optimizer_args={"lr": 1e-4, "betas": (0.0, 0.9), "eps": 1e-8},
        objective="wgan_gp",
        objective_args={"weight": 10.0, "n_critic": 5},
        notes="WGAN-GP (Gulrajani et al. 2017, Algorithm 1): the default preset's G "
        "(BatchNorm1d, as the paper's generators), an MLP critic without BatchNorm or dropout, "
        "lambda 10, 5 critic steps per G step, Adam 1e-4 betas (0.0, 0.9).",
    ),
    "cgan": Preset(
        "cgan",
        generator="conditional_mlp_generator",
        generator_args={**_mlp_args((256, 512, 1024)), "norm": "batch", "num_classes": 10},
        discriminator="conditional_mlp_discriminator",
        discriminator_args={**_mlp_args((1024, 512, 256)), "num_classes": 10},
        epochs=15,
        ema_decay=0.999,
        ema_warmup=True,
        notes="Conditional GAN (Mirza & Osindero 2014): one-hot labels concatenated to z and to "
        "D's input; the default preset's MLPs with BatchNorm1d in G (without it G ignored the "
        "label: 10% of samples the asked-for digit after 1 epoch, 80% with it after 3), "
        "samples from an EMA of G (0.999 with warm-up; CAS 0.954 after 15 epochs vs 0.928 "
        "without it after 10), Adam 2e-4 betas (0.5, 0.999), 15 epochs.",
    ),
    "ring": Preset(
        "ring",
        generator_args=_mlp_args((64, 64)),
        discriminator_args=_mlp_args((64, 64)),
        latent_dim=8,
        optimizer_args={"lr": 1e-3, "betas": (0.5, 0.999), "eps": 1e-8},
        batch_size=128,
        notes="Lesson 8's toy setting for the 2-D ring of 8 Gaussians: 8-64-64-2 / 2-64-64-1 "
        "MLPs, Adam 1e-3 betas (0.5, 0.999), batch 128 (build_gan(..., data_dim=2)).",
    ),
    "seed-keras-mlp": Preset(
        "seed-keras-mlp",
        generator_args={**_mlp_args((256, 512, 1024)), "activation": "relu"},
        optimizer_args={"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-7},
        notes="The classic Keras MLP GAN: G with ReLU, D with LeakyReLU(0.2), Adam(lr=1e-4) "
        "with Keras' default betas (0.9, 0.999) and epsilon 1e-7.",
    ),
    # DCGAN (Radford, Metz & Chintala 2016): strided (transposed) convolutions, BatchNorm,
    # ReLU in G / LeakyReLU(0.2) in D, N(0, 0.02) init, Adam 2e-4 betas (0.5, 0.999) (section
    # 4 of the paper), batch 64 / 128 (the paper: 128). The widths are cut from the paper's
    # (ngf = ndf = 64 in the PyTorch example) so the runs fit a 2-core CPU; the sizes and the
    # measured step times are in their notes and in docs/benchmarks.md.
    "dcgan": Preset(
        "dcgan",
        generator="dcgan_generator",
        generator_args={"base_channels": 16, "dense_features": 1024},
        discriminator="dcgan_discriminator",
        discriminator_args={"base_channels": 16, "norm": "batch", "dense_features": 1024},
        batch_size=64,
        epochs=5,
        ema_decay=0.999,
        ema_warmup=True,
        notes="DCGAN (Radford et al. 2016) for 28x28 grey (MNIST, Fashion-MNIST) with InfoGAN's "
        "fully connected layers (Chen et al. 2016, appendix C.1; without them the held-out FCD "
        "stayed near 80 at any width): G 100 -> FC 1024 -> 32x7x7 -> 16x14x14 -> 1x28x28, "
        "D 1 -> 16 -> 32 channels (4x4 stride-2 convs) -> FC 1024 -> 1, BatchNorm, samples "
        "from an EMA of G (0.999, warm-up), Adam 2e-4 betas (0.5, 0.999), batch 64.",
    ),
    "cdcgan": Preset(
        "cdcgan",
        generator="conditional_dcgan_generator",
        generator_args={"base_channels": 16, "num_classes": 10},
        discriminator="conditional_dcgan_discriminator",
        discriminator_args={"base_channels": 16, "norm": "batch", "num_classes": 10},
        batch_size=64,
        epochs=5,
        notes="Conditional DCGAN (Mirza & Osindero 2014 on Radford et al. 2016): the dcgan "
        "preset with one-hot labels appended to z and as 10 constant label maps to D's input "
        "channels (1+10 -> 16 -> 32), Adam 2e-4 betas (0.5, 0.999), batch 64.",
    ),
    "wgan-gp-dcgan": Preset(
        "wgan-gp-dcgan",
        generator="dcgan_generator",
        generator_args={"base_channels": 16},
        discriminator="dcgan_discriminator",
        discriminator_args={"base_channels": 16, "norm": None},
        optimizer_args={"lr": 1e-4, "betas": (0.0, 0.9), "eps": 1e-8},
        objective="wgan_gp",
        objective_args={"weight": 10.0, "n_critic": 5},
        batch_size=64,
        epochs=5,
        notes="WGAN-GP (Gulrajani et al. 2017, Algorithm 1) on the dcgan preset's nets: the "
        "conv critic without BatchNorm (the penalty is per sample), lambda 10, 5 critic steps "
        "per G step, Adam 1e-4 betas (0.0, 0.9), batch 64.",
    ),
    "dcgan-cifar10": Preset(
        "dcgan-cifar10",
        generator="dcgan_generator",
        generator_args={"base_channels": 32},
        discriminator="dcgan_discriminator",
        discriminator_args={"base_channels": 32, "norm": "batch"},
        batch_size=128,
        epochs=4,
        notes="DCGAN (Radford et al. 2016) for 32x32 colour (CIFAR-10): G 100 -> 128x4x4 -> "
        "64x8x8 -> 32x16x16 -> 3x32x32, D 3 -> 32 -> 64 -> 128 channels, BatchNorm, Adam 2e-4 "
        "betas (0.5, 0.999), batch 128 (the paper's); ~4 CPU-min per 50k-image epoch.",
    ),
}


def get_preset(name: str | Preset) -> Preset:
    """Look up a preset by name (a :class:`Preset` is returned as it is).

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


def make_optimizer(name: str, params, **settings: Any):
    """``OPTIMIZERS[name](params, **settings)`` from :mod:`minigan.optim`.

    Raises
    ------
    ValueError
        Unknown optimizer name, or one whose class this minigan does not have yet.
    """
    from . import optim

    cls = getattr(optim, OPTIMIZERS.get(name, ""), None)
    if cls is None:
        known = sorted(k for k, v in OPTIMIZERS.items() if hasattr(optim, v))
        raise ValueError(f"optimizer: expected one of {known}, got {name!r}")
    return cls(params, **settings)


def preset_line(p: Preset) -> str:
    """One line for ``minigan presets``: name, models, optimizer, objective, batch, notes."""
    return (
        f"{p.name:<16} {p.generator}/{p.discriminator}, {p.optimizer} lr={p.lr:g}, "
        f"{p.objective}, batch {p.batch_size}, {p.epochs} epochs. {p.notes}"
    )
