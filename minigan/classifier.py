"""Metric classifiers built from minigan's own layers, one per dataset, for the scores of metrics.

:mod:`minigan.metrics` scores generated images with a classifier the way the Inception Score
and FID use an ImageNet network: the class probabilities give an Inception Score, a class
histogram and the classes covered; the penultimate-layer activations give a Frechet distance.
Here each network is small and trained with minigan itself (``Linear``, ``ReLU``,
``CrossEntropyLoss``, ``Adam``), so the whole pipeline stays from scratch.

One :class:`ClassifierSpec` per dataset lives in the registry :data:`CLASSIFIERS` (architecture
and training settings as data): ``"mnist"`` and ``"fashion-mnist"`` are MLPs
784-512-256-10; ``"cifar10"`` is a small conv net once :class:`minigan.layers.Conv2d` exists,
and until then an MLP 3072-512-256-10 *placeholder* (its description says so). A new dataset
is a new entry, never a branch in the code.

The trained weights are cached in the user cache dir (``$MINIGAN_CACHE_DIR/classifier``, else
``pooch.os_cache("minigan")/classifier``, e.g. ``~/.cache/minigan/classifier``) in one ``.npz``
file per dataset and configuration, named by a hash of the configuration, and read back without
pickle (:func:`minigan.checkpoint.load_checkpoint`). The first :func:`load_classifier` trains
it (about a minute per dataset on two CPU cores); later calls load it in milliseconds.

The MNIST network (the default :class:`ClassifierConfig`): 784-512-256-10 with ReLU, inputs
standardised with the MNIST training mean and std (0.1307, 0.3081), trained for 6 epochs with
Adam (lr 1e-3, cosine decay to 0, batch 128) on all 60,000 training images shifted at random by
up to one pixel. It reaches about 98.7% test accuracy (``tests/test_metrics.py`` asserts >= 98%).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .backend import array_namespace, resolve_device, to_numpy
from .checkpoint import load_checkpoint, save_checkpoint
from .layers import Linear, Module, ReLU, Sequential
from .losses import CrossEntropyLoss
from .optim import Adam

__all__ = [
    "ClassifierConfig",
    "ClassifierSpec",
    "CLASSIFIERS",
    "get_spec",
    "load_dataset",
    "spec_images",
    "MetricClassifier",
    "MNISTClassifier",
    "build_classifier",
    "train_classifier",
    "load_classifier",
    "classifier_cache_dir",
    "softmax",
    "CACHE_ENV",
]

#: Environment variable overriding the cache root (the classifier goes to ``<root>/classifier``).
CACHE_ENV = "MINIGAN_CACHE_DIR"
_FORMAT = 1  # bump when the file layout or the meaning of a config field changes
_KIND = "minigan.classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    """How a metric classifier is built and trained; its hash names the cache file.

    Attributes
    ----------
    hidden : tuple of int
        Hidden layer widths of the MLP head; the last one is the feature dimension of the
        Frechet distance.
    epochs, batch_size, lr : training schedule (Adam, cosine decay of lr to 0 over all steps)
    max_shift : int
        Random translation of each training image by up to this many pixels (0: none).
    seed : int
        Seeds the weights, the data order and the augmentations.
    mean, std : float
        Input standardisation ``(x - mean) / std`` of pixels in [0, 1] (all channels).
    conv : tuple of int
        Output channels of 3x3 stride-2 convolutions (each followed by ReLU) before the MLP
        head; empty for a plain MLP. Needs :class:`minigan.layers.Conv2d`.
    flip : bool
        Random horizontal flips in training (natural images; not digits).
    """

    hidden: tuple[int, ...] = (512, 256)
    epochs: int = 6
    batch_size: int = 128
    lr: float = 1e-3
    max_shift: int = 1
    seed: int = 0
    mean: float = 0.1307
    std: float = 0.3081
    conv: tuple[int, ...] = ()
    flip: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a JSON-friendly dict (tuples as lists)."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["conv"] = list(self.conv)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassifierConfig:
        """Inverse of :meth:`to_dict` (a dict without ``conv`` / ``flip`` gets their defaults).

        Raises
        ------
        KeyError
            ``d`` has no ``"hidden"`` entry.
        TypeError
            ``d`` has a key that is not a field of :class:`ClassifierConfig`.
        """
        d = dict(d)
        d["hidden"] = tuple(d["hidden"])
        d["conv"] = tuple(d.get("conv", ()))
        return cls(**d)

    def key(self) -> str:
        """16 hex digits of SHA-256 of the configuration (and the file format).

        Fields added after the first release (``conv``, ``flip``) enter the hash only when they
        differ from their defaults, so the MNIST classifier cached before they existed keeps
        its file name.
        """
        d = self.to_dict()
        for f in fields(self):
            if f.name in _ADDED_FIELDS and getattr(self, f.name) == f.default:
                del d[f.name]
        blob = json.dumps({"format": _FORMAT, **d}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


_ADDED_FIELDS = ("conv", "flip")


@dataclass(frozen=True)
class ClassifierSpec:
    """One registry entry: which classifier scores images of one dataset, and on what data.

    Attributes
    ----------
    dataset : str
        Name as :func:`load_dataset` (later :func:`minigan.data.load`) knows it.
    config : ClassifierConfig
    image_shape : (C, H, W)
    description : str
        Shown in the evaluation table after the architecture ("" for none); a placeholder
        says so here.
    train_range, test_range : (split, start, stop)
        Images that train the classifier and measure its test accuracy; ``stop=None``: to the
        end of the split. They are also the "real test set" of :func:`minigan.metrics`.
    class_names : tuple of str
    data_options : dict
        Keyword options of :func:`minigan.data.load` for the ranges' split (CIFAR-10: only
        ``batches=(1,)``, the batch its ranges lie in, so the one batch found offline suffices).
    """

    dataset: str
    config: ClassifierConfig
    image_shape: tuple[int, int, int]
    description: str
    train_range: tuple[str, int, int | None] = ("train", 0, None)
    test_range: tuple[str, int, int | None] = ("test", 0, None)
    class_names: tuple[str, ...] = field(default=tuple(str(i) for i in range(10)))
    data_options: dict = field(default_factory=dict)

    @property
    def in_features(self) -> int:
        """``C * H * W``: the width of a flattened image."""
        c, h, w = self.image_shape
        return c * h * w

    @property
    def architecture(self) -> str:
        """``"784-512-256-10 MLP"`` or ``"conv 32-64-128 + 256-10"``."""
        if self.config.conv:
            conv = "-".join(str(c) for c in self.config.conv)
            return f"conv {conv} + {'-'.join(str(h) for h in (*self.config.hidden, 10))}"
        return "-".join(str(s) for s in (self.in_features, *self.config.hidden, 10)) + " MLP"


def _has_conv() -> bool:
    from . import layers

    return hasattr(layers, "Conv2d")


_CIFAR_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# Only CIFAR-10's training batch 1 (10,000 images) is on hand here: the classifier trains on
# its first 8,000 images and is tested on the last 2,000 (until the full data set is read).
_CIFAR_RANGES = {
    "train_range": ("train", 0, 8000),
    "test_range": ("train", 8000, 10000),
    "data_options": {"batches": (1,)},  # both ranges lie in data_batch_1
}

#: Dataset name -> the metric classifier that scores its images.
CLASSIFIERS: dict[str, ClassifierSpec] = {
    "mnist": ClassifierSpec("mnist", ClassifierConfig(), (1, 28, 28), ""),
    "fashion-mnist": ClassifierSpec(
        "fashion-mnist",
        ClassifierConfig(epochs=10, mean=0.2860, std=0.3530),
        (1, 28, 28),
        "",
        class_names=_FASHION_CLASSES,
    ),
    "cifar10": (
        ClassifierSpec(
            "cifar10",
            ClassifierConfig(
                hidden=(256,),
                conv=(32, 64, 128),
                epochs=20,
                max_shift=2,
                flip=True,
                mean=0.4734,
                std=0.2516,
            ),  # fmt: skip
            (3, 32, 32),
            "",
            class_names=_CIFAR_CLASSES,
            **_CIFAR_RANGES,
        )
        if _has_conv()
        else ClassifierSpec(
            "cifar10",
            ClassifierConfig(epochs=20, max_shift=2, flip=True, mean=0.4734, std=0.2516),
            (3, 32, 32),
            "MLP PLACEHOLDER until minigan.layers.Conv2d exists; weak, not a reference",
            class_names=_CIFAR_CLASSES,
            **_CIFAR_RANGES,
        )
    ),
}


def get_spec(dataset: str) -> ClassifierSpec:
    """The registry entry of ``dataset``.

    Raises
    ------
    KeyError
        No metric classifier for ``dataset``; the message lists the known datasets.
    """
    try:
        return CLASSIFIERS[dataset]
    except (KeyError, TypeError):
        raise KeyError(
            f"no metric classifier for dataset {dataset!r}; known: {sorted(CLASSIFIERS)}"
        ) from None


# ----------------------------------------------------------------------------------------------
# Real images of each dataset
# ----------------------------------------------------------------------------------------------
def load_dataset(dataset: str, split: str = "train", data_dir=None, **options):
    """Real images and labels of one split: uint8 (N, C, H, W) and uint8 (N,).

    :func:`minigan.data.load` with ``root=data_dir`` (``options`` such as CIFAR-10's
    ``batches=(1,)`` pass through).

    Raises
    ------
    ValueError
        Unknown dataset or split (the message lists the known ones); a corrupt file.
    FileNotFoundError
        The files are not there (the message says where it looked).
    """
    from .data import load

    return load(dataset, split, root=data_dir, **options)


def spec_images(spec: ClassifierSpec, which: str, data_dir=None):
    """The ``"train"`` or ``"test"`` images of a spec: uint8 (N, C, H, W), uint8 (N,)."""
    split, start, stop = spec.train_range if which == "train" else spec.test_range
    images, labels = load_dataset(spec.dataset, split, data_dir, **spec.data_options)
    return images[start:stop], labels[start:stop]


# ----------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------
def softmax(logits):
    """Row-wise softmax ``exp(z - max z) / sum exp(z - max z)`` of (N, C) logits, any backend.

    Returns an array of the same shape, dtype and device as ``logits``; each row sums to 1.

    Raises
    ------
    TypeError
        ``logits`` is not an array.
    IndexError
        ``logits`` has fewer than 2 dimensions (NumPy raises ``AxisError``, a subclass).
    """
    xp = array_namespace(logits, names=("logits",))
    e = xp.exp(logits - xp.max(logits, axis=1, keepdims=True))
    return e / xp.sum(e, axis=1, keepdims=True)


def classifier_cache_dir() -> Path:
    """``$MINIGAN_CACHE_DIR/classifier`` if set, else ``pooch.os_cache("minigan")/classifier``."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / "classifier"
    import pooch

    return Path(pooch.os_cache("minigan")) / "classifier"


class _Reshape(Module):
    """``(N, D) -> (N, *shape)`` and back in ``backward`` (no parameters)."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        xp = array_namespace(x)
        self._in_shape = x.shape
        return xp.reshape(x, (x.shape[0], *self.shape))

    def backward(self, dout, *, input_grad: bool = True):
        return array_namespace(dout).reshape(dout, self._in_shape)


def _conv_layers(config, image_shape, device, dtype, rng) -> list[Module]:
    """3x3 stride-2 convolutions with ReLU, then a flatten: (N, C*H*W) -> (N, features)."""
    from . import layers

    if not hasattr(layers, "Conv2d"):
        raise RuntimeError("config.conv needs minigan.layers.Conv2d, which this minigan lacks")
    c, h, w = image_shape
    out: list[Module] = [_Reshape(image_shape)]
    for channels in config.conv:
        out += [
            layers.Conv2d(c, channels, 3, stride=2, padding=1, dtype=dtype, device=device, rng=rng),
            ReLU(),
        ]
        c, h, w = channels, (h + 1) // 2, (w + 1) // 2
    out.append(_Reshape((c * h * w,)))
    return out


def build_classifier(
    config: ClassifierConfig = ClassifierConfig(),  # noqa: B008 - frozen dataclass
    *,
    device: Any = "cpu",
    dtype: Any = "float32",
    rng=None,
    in_features: int | None = None,
    image_shape: tuple[int, int, int] = (1, 28, 28),
) -> Sequential:
    """The untrained network: ``[conv...] -> hidden... -> 10`` (ReLU between layers).

    Shapes: x (N, C*H*W) standardised -> logits (N, 10). ``in_features`` (default
    ``C*H*W`` of ``image_shape``) can be set smaller for gradient checks of an MLP. A
    ``config.conv`` adds 3x3 stride-2 convolutions (each halving H and W) before the MLP.
    Weights are ``dtype`` on ``device``.

    Raises
    ------
    ValueError
        ``in_features`` or a ``config.hidden`` width is not a positive int (from
        :class:`~minigan.layers.Linear`); an unknown device string.
    TypeError
        ``dtype`` is not float32 / float64, or ``device`` is not a device.
    RuntimeError
        ``device="gpu"`` without CuPy or a visible CUDA device; ``config.conv`` without
        ``minigan.layers.Conv2d``.
    """
    rng = np.random.default_rng(config.seed) if rng is None else rng
    layers: list[Module] = []
    width = math.prod(image_shape) if in_features is None else in_features
    if config.conv:
        layers = _conv_layers(config, image_shape, device, dtype, rng)
        c, h, w = image_shape
        for _ in config.conv:
            h, w = (h + 1) // 2, (w + 1) // 2
        width = config.conv[-1] * h * w
    sizes = (width, *config.hidden, 10)
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(Linear(a, b, dtype=dtype, device=device, rng=rng))
        if i < len(sizes) - 2:
            layers.append(ReLU())
    return Sequential(*layers)


class MetricClassifier:
    """A trained classifier with batched, backend-agnostic inference.

    Parameters
    ----------
    net : Sequential
        From :func:`build_classifier`; ``net[-1]`` is the output layer, everything before it
        gives the features.
    config : ClassifierConfig
    test_accuracy : float or None
        Accuracy on the spec's test images measured right after training.
    spec : ClassifierSpec, optional
        The dataset entry (default: MNIST's).

    Notes
    -----
    Every method takes flattened images ``(N, C*H*W)`` (784 for MNIST) with pixels in
    [0, 1], on the device of the network (NumPy arrays are moved there), and works in
    batches of ``batch_size`` rows. Images are cast to the network's dtype.

    Raises
    ------
    ValueError
        Images not of shape (N, C*H*W) (the message gives the shape); in :meth:`load`, a
        file that is not a classifier checkpoint.
    TypeError
        Images that are not an array, or an array of another library than the network's.
    """

    def __init__(self, net: Sequential, config: ClassifierConfig, test_accuracy=None, spec=None):
        self.net = net.eval()
        self.config = config
        self.test_accuracy = test_accuracy
        self.spec = CLASSIFIERS["mnist"] if spec is None else spec
        first = net.parameters()[0].data
        from .backend import backend_of

        self.backend = backend_of(first)
        self.dtype = first.dtype

    @property
    def feature_dim(self) -> int:
        """Width of the penultimate features (the last hidden layer, for the Frechet distance)."""
        return self.config.hidden[-1]

    @property
    def in_features(self) -> int:
        """Width of a flattened input image (784 for MNIST)."""
        return self.spec.in_features

    def _prepare(self, x):
        if isinstance(x, np.ndarray) and self.backend.name != "cpu":
            x = self.backend.asarray(x)
        xp = array_namespace(x, names=("images",))
        d = self.in_features
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(
                f"images: expected shape (N, {d}) with pixels in [0, 1], got {tuple(x.shape)}"
            )
        x = xp.astype(x, self.dtype)
        return (x - self.config.mean) * (1.0 / self.config.std)

    def features_and_logits(self, x, batch_size: int = 1000):
        """Penultimate activations (N, hidden[-1]) and logits (N, 10), on the device."""
        x = self._prepare(x)
        xp = array_namespace(x)
        body = self.net.layers
        feats, logits = [], []
        n = x.shape[0]
        for start in range(0, n, batch_size):
            h = x[start : min(start + batch_size, n), :]  # in-bounds slices (array API)
            for layer in body[:-1]:
                h = layer.forward(h)
            feats.append(h)
            logits.append(body[-1].forward(h))
        return xp.concat(feats, axis=0), xp.concat(logits, axis=0)

    def logits(self, x, batch_size: int = 1000):
        """Class logits (N, 10) on the device."""
        return self.features_and_logits(x, batch_size)[1]

    def predict_proba(self, x, batch_size: int = 1000):
        """Softmax class probabilities p(y | x), (N, 10), on the device."""
        return softmax(self.logits(x, batch_size))

    def predict(self, x, batch_size: int = 1000) -> np.ndarray:
        """Predicted classes, host int64 (N,)."""
        return np.argmax(to_numpy(self.logits(x, batch_size)), axis=1).astype(np.int64)

    def accuracy(self, x, labels) -> float:
        """Fraction of ``labels`` (host ints, (N,)) predicted correctly."""
        labels = np.asarray(labels).astype(np.int64)
        return float(np.mean(self.predict(x) == labels))

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the weights, config, dataset and test accuracy to an ``.npz`` (no pickle)."""
        state = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        state["test_accuracy"] = float(self.test_accuracy or float("nan"))
        config = {
            "kind": _KIND,
            "format": _FORMAT,
            "classifier": self.config.to_dict(),
            "dataset": self.spec.dataset,
        }
        return save_checkpoint(path, state, config)

    @classmethod
    def load(cls, path: str | os.PathLike, device: Any = "cpu") -> MetricClassifier:
        """Read a file written by :meth:`save` onto ``device``.

        Raises
        ------
        ValueError
            Not a classifier file, a newer format, or weights that do not fit the config.
        """
        state, meta = load_checkpoint(path)
        if meta.get("kind") != _KIND or meta.get("format", 0) > _FORMAT:
            raise ValueError(
                f"{path} is not a minigan classifier file of format <= {_FORMAT} "
                f"(kind {meta.get('kind')!r}, format {meta.get('format')!r})"
            )
        config = ClassifierConfig.from_dict(meta["classifier"])
        spec = CLASSIFIERS.get(meta.get("dataset", "mnist"), CLASSIFIERS["mnist"])
        net = build_classifier(config, device=device, image_shape=spec.image_shape)
        net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
        acc = state.get("test_accuracy")
        acc = None if acc is None or not math.isfinite(acc) else float(acc)
        return cls(net, config, acc, spec)

    def __repr__(self) -> str:
        acc = "untested" if self.test_accuracy is None else f"{100 * self.test_accuracy:.2f}%"
        return (
            f"MetricClassifier({self.spec.dataset}: {self.spec.architecture}, test accuracy "
            f"{acc}, {self.backend.name})"
        )


#: The first name of :class:`MetricClassifier` (it scored MNIST only); kept for old code.
MNISTClassifier = MetricClassifier


def _as_float_images(images) -> np.ndarray:
    """uint8 0..255 or float 0..1 images (N, C, H, W) -> float32 in [0, 1]."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)
    return images.astype(np.float32, copy=False)


def _augment(windows, idx, s: int, flip: bool, rng) -> np.ndarray:
    """Random crops of the padded images (shift by up to s pixels), optionally mirrored."""
    b = idx.shape[0]
    offsets = rng.integers(0, 2 * s + 1, size=(b, 2))
    x = windows[idx, :, offsets[:, 0], offsets[:, 1]]  # (B, C, H, W)
    if flip:
        mirror = rng.random(b) < 0.5
        x[mirror] = x[mirror, :, :, ::-1]
    return x.reshape(b, -1)


def train_classifier(
    config: ClassifierConfig = ClassifierConfig(),  # noqa: B008 - frozen dataclass
    *,
    data_dir: str | os.PathLike | None = None,
    device: Any = "cpu",
    progress: bool = False,
    dataset: str = "mnist",
    images=None,
    labels=None,
) -> MetricClassifier:
    """Train a metric classifier and measure its accuracy on the dataset's real test images.

    Each step: a batch of images shifted at random by up to ``max_shift`` pixels (zero
    padding; mirrored at random with ``flip``), standardised, ``CrossEntropyLoss`` on the
    logits, backward, Adam step with ``lr_t = lr * (1 + cos(pi t / T)) / 2``.

    Parameters
    ----------
    config : ClassifierConfig
    data_dir : path, optional
        Dataset location (see :func:`load_dataset`).
    device : str or Backend
    progress : bool
        Show a tqdm bar.
    dataset : str
        A key of :data:`CLASSIFIERS`: the image shape and the real test images.
    images, labels : arrays (N, C, H, W) and (N,), optional
        Train on these instead of the spec's training images: uint8 0..255 or float in
        [0, 1] (e.g. generated samples, for :func:`minigan.metrics.classification_accuracy_score`).

    Returns
    -------
    MetricClassifier with ``test_accuracy`` set.

    Raises
    ------
    KeyError
        Unknown dataset.
    FileNotFoundError
        The dataset's files are missing (from :func:`load_dataset`).
    ValueError
        A corrupt file; ``images`` and ``labels`` of different lengths or fewer images than
        one batch; an unknown device string; a non-positive ``config.hidden`` width.
    RuntimeError
        ``device="gpu"`` without CuPy or a visible CUDA device.

    Notes
    -----
    Batches are cut and shifted on the host and copied to the device (one small copy per
    step): this runs once per configuration, after which the weights come from the cache.
    """
    from tqdm.auto import tqdm

    spec = get_spec(dataset)
    backend = resolve_device(device)
    if images is None:
        images, labels = spec_images(spec, "train", data_dir)
    images = _as_float_images(images).reshape(-1, *spec.image_shape)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    n, b = images.shape[0], config.batch_size
    if labels.shape[0] != n or n < b:
        raise ValueError(
            f"images/labels: expected as many labels as images and >= batch_size={b} images, "
            f"got {n} images and {labels.shape[0]} labels"
        )
    rng = np.random.default_rng(config.seed)
    net = build_classifier(config, device=backend, rng=rng, image_shape=spec.image_shape)
    opt = Adam(net.parameters(), lr=config.lr)
    loss_fn = CrossEntropyLoss()
    s = int(config.max_shift)
    padded = np.pad(images, ((0, 0), (0, 0), (s, s), (s, s)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, spec.image_shape[1:], axis=(2, 3))
    steps_per_epoch = n // b
    total = config.epochs * steps_per_epoch
    t = 0
    with tqdm(total=total, disable=not progress, desc=f"{dataset} classifier", unit="step") as bar:
        for _ in range(config.epochs):
            perm = rng.permutation(n)
            for i in range(steps_per_epoch):
                idx = perm[i * b : (i + 1) * b]
                x = _augment(windows, idx, s, config.flip, rng)
                x = (x - np.float32(config.mean)) * np.float32(1.0 / config.std)
                opt.lr = config.lr * 0.5 * (1.0 + math.cos(math.pi * t / total))
                opt.zero_grad()
                logits = net.forward(backend.asarray(x))  # (B, 10)
                loss = loss_fn.forward(logits, backend.asarray(labels[idx]))
                net.backward(loss_fn.backward(), input_grad=False)
                opt.step()
                t += 1
                bar.update(1)
                if progress and t % 100 == 0:  # the only host sync, and only for the bar
                    bar.set_postfix(loss=f"{float(loss):.3f}", refresh=False)
    clf = MetricClassifier(net, config, spec=spec)
    test_x, test_y = spec_images(spec, "test", data_dir)
    flat = _as_float_images(test_x).reshape(test_x.shape[0], -1)
    clf.test_accuracy = clf.accuracy(backend.asarray(flat), test_y)
    return clf


def load_classifier(
    config: ClassifierConfig | None = None,
    *,
    device: Any = "cpu",
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    train_if_missing: bool = True,
    progress: bool = True,
    dataset: str = "mnist",
) -> MetricClassifier:
    """The metric classifier of ``dataset``: from the cache, or trained once and cached.

    Parameters
    ----------
    config : ClassifierConfig, optional
        Default: the registry's (:data:`CLASSIFIERS`) for ``dataset``.
    device : where to put it
    data_dir : dataset location, used only when training
    cache_dir : path, optional
        Default :func:`classifier_cache_dir`.
    train_if_missing : bool
        Train (and cache) when no cached file exists; else raise ``FileNotFoundError``.
    progress : bool
        Progress bar while training.
    dataset : str
        A key of :data:`CLASSIFIERS`.

    Returns
    -------
    MetricClassifier

    Raises
    ------
    KeyError
        No classifier for ``dataset`` (the message lists the known ones).
    FileNotFoundError
        Not cached and ``train_if_missing`` is False.
    """
    spec = get_spec(dataset)
    config = spec.config if config is None else config
    folder = Path(cache_dir) if cache_dir is not None else classifier_cache_dir()
    kind = "conv" if config.conv else "mlp"
    path = folder / f"{dataset}-{kind}-{config.key()}.npz"
    label = dataset.upper()
    if path.is_file():
        return MetricClassifier.load(path, device=device)
    if not train_if_missing:
        raise FileNotFoundError(
            f"no cached {label} classifier at {path}; call load_classifier(train_if_missing=True)"
        )
    if progress:
        print(f"Training the {label} metric classifier once (cached at {path})...")
    clf = train_classifier(
        config, data_dir=data_dir, device="cpu", progress=progress, dataset=dataset
    )
    folder.mkdir(parents=True, exist_ok=True)
    clf.save(path)
    return MetricClassifier.load(path, device=device) if device != "cpu" else clf
