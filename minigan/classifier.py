"""An MNIST digit classifier built from minigan's own layers, for the classifier-based metrics.

:mod:`minigan.metrics` scores generated digits with a classifier the way the Inception Score
and FID use an ImageNet network: the class probabilities give an Inception Score, a class
histogram and the digits covered; the penultimate-layer activations give a Frechet distance.
Here the network is a small MLP trained with minigan itself (``Linear``, ``ReLU``,
``CrossEntropyLoss``, ``Adam``), so the whole pipeline stays from scratch.

The trained weights are cached in the user cache dir (``$MINIGAN_CACHE_DIR/classifier``, else
``pooch.os_cache("minigan")/classifier``, e.g. ``~/.cache/minigan/classifier``) in one ``.npz``
file per configuration, named by a hash of the configuration, and read back without pickle
(:func:`minigan.checkpoint.load_checkpoint`). The first :func:`load_classifier` trains it (about
a minute on two CPU cores); later calls load it in milliseconds.

Default network (:class:`ClassifierConfig`): 784-512-256-10 with ReLU, inputs standardised with
the MNIST training mean and std (0.1307, 0.3081), trained for 6 epochs with Adam (lr 1e-3,
cosine decay to 0, batch 128) on all 60,000 training images shifted at random by up to one
pixel. It reaches about 98.7% test accuracy (``tests/test_metrics.py`` asserts >= 98%).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backend import array_namespace, resolve_device, to_numpy
from .checkpoint import load_checkpoint, save_checkpoint
from .layers import Linear, ReLU, Sequential
from .losses import CrossEntropyLoss
from .optim import Adam

__all__ = [
    "ClassifierConfig",
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
    """How the metric classifier is built and trained; its hash names the cache file.

    Attributes
    ----------
    hidden : tuple of int
        Hidden layer widths; the last one is the feature dimension of the Frechet distance.
    epochs, batch_size, lr : training schedule (Adam, cosine decay of lr to 0 over all steps)
    max_shift : int
        Random translation of each training image by up to this many pixels (0: none).
    seed : int
        Seeds the weights, the data order and the shifts.
    mean, std : float
        Input standardisation ``(x - mean) / std`` of pixels in [0, 1].
    """

    hidden: tuple[int, ...] = (512, 256)
    epochs: int = 6
    batch_size: int = 128
    lr: float = 1e-3
    max_shift: int = 1
    seed: int = 0
    mean: float = 0.1307
    std: float = 0.3081

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a JSON-friendly dict (``hidden`` as a list)."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassifierConfig:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        KeyError
            ``d`` has no ``"hidden"`` entry.
        TypeError
            ``d`` has a key that is not a field of :class:`ClassifierConfig`.
        """
        d = dict(d)
        d["hidden"] = tuple(d["hidden"])
        return cls(**d)

    def key(self) -> str:
        """16 hex digits of SHA-256 of the configuration (and the file format)."""
        blob = json.dumps({"format": _FORMAT, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


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


def build_classifier(
    config: ClassifierConfig = ClassifierConfig(),  # noqa: B008 - frozen dataclass
    *,
    device: Any = "cpu",
    dtype: Any = "float32",
    rng=None,
    in_features: int = 784,
) -> Sequential:
    """The MLP ``in_features -> hidden... -> 10`` (ReLU between layers), untrained.

    Shapes: x (N, in_features) standardised -> logits (N, 10). ``in_features`` is 784 for
    MNIST (smaller only in gradient checks). Weights are ``dtype`` on ``device``.

    Raises
    ------
    ValueError
        ``in_features`` or a ``config.hidden`` width is not a positive int (from
        :class:`~minigan.layers.Linear`); an unknown device string.
    TypeError
        ``dtype`` is not float32 / float64, or ``device`` is not a device.
    RuntimeError
        ``device="gpu"`` without CuPy or a visible CUDA device.
    """
    sizes = (in_features, *config.hidden, 10)
    rng = np.random.default_rng(config.seed) if rng is None else rng
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(Linear(a, b, dtype=dtype, device=device, rng=rng))
        if i < len(sizes) - 2:
            layers.append(ReLU())
    return Sequential(*layers)


class MNISTClassifier:
    """A trained digit classifier with batched, backend-agnostic inference.

    Parameters
    ----------
    net : Sequential
        From :func:`build_classifier`; ``net[-1]`` is the output layer, everything before it
        gives the features.
    config : ClassifierConfig
    test_accuracy : float or None
        Accuracy on the 10,000 MNIST test images measured right after training.

    Notes
    -----
    Every method takes flattened images ``(N, 784)`` with pixels in [0, 1], on the device of
    the network (NumPy arrays are moved there), and works in batches of ``batch_size`` rows.
    Images are cast to the network's dtype (float32 unless built otherwise).

    Raises
    ------
    ValueError
        Images not of shape (N, 784) (the message gives the shape); in :meth:`load`, a file
        that is not a classifier checkpoint.
    TypeError
        Images that are not an array, or an array of another library than the network's.
    """

    def __init__(self, net: Sequential, config: ClassifierConfig, test_accuracy=None):
        self.net = net.eval()
        self.config = config
        self.test_accuracy = test_accuracy
        first = net.parameters()[0].data
        from .backend import backend_of

        self.backend = backend_of(first)
        self.dtype = first.dtype

    @property
    def feature_dim(self) -> int:
        """Width of the penultimate features (the last hidden layer, for the Frechet distance)."""
        return self.config.hidden[-1]

    def _prepare(self, x):
        if isinstance(x, np.ndarray) and self.backend.name != "cpu":
            x = self.backend.asarray(x)
        xp = array_namespace(x, names=("images",))
        if x.ndim != 2 or x.shape[1] != 784:
            raise ValueError(
                f"images: expected shape (N, 784) with pixels in [0, 1], got {tuple(x.shape)}"
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
        """Predicted digits, host int64 (N,)."""
        return np.argmax(to_numpy(self.logits(x, batch_size)), axis=1).astype(np.int64)

    def accuracy(self, x, labels) -> float:
        """Fraction of ``labels`` (host ints, (N,)) predicted correctly."""
        labels = np.asarray(labels).astype(np.int64)
        return float(np.mean(self.predict(x) == labels))

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the weights, config and test accuracy to an ``.npz`` (no pickle)."""
        state = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        state["test_accuracy"] = float(self.test_accuracy or float("nan"))
        config = {"kind": _KIND, "format": _FORMAT, "classifier": self.config.to_dict()}
        return save_checkpoint(path, state, config)

    @classmethod
    def load(cls, path: str | os.PathLike, device: Any = "cpu") -> MNISTClassifier:
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
        net = build_classifier(config, device=device)
        net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
        acc = state.get("test_accuracy")
        acc = None if acc is None or not math.isfinite(acc) else float(acc)
        return cls(net, config, acc)

    def __repr__(self) -> str:
        acc = "untested" if self.test_accuracy is None else f"{100 * self.test_accuracy:.2f}%"
        sizes = "-".join(str(s) for s in (784, *self.config.hidden, 10))
        return f"MNISTClassifier({sizes} MLP, test accuracy {acc}, {self.backend.name})"


def _shifted(windows: np.ndarray, idx: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Crops of the padded images: (B, 28, 28) uint8, image i shifted by offsets[i]."""
    return windows[idx, offsets[:, 0], offsets[:, 1]]


def train_classifier(
    config: ClassifierConfig = ClassifierConfig(),  # noqa: B008 - frozen dataclass
    *,
    data_dir: str | os.PathLike | None = None,
    device: Any = "cpu",
    progress: bool = False,
) -> MNISTClassifier:
    """Train the metric classifier on the 60,000 MNIST training images; measure test accuracy.

    Each step: a batch of images shifted at random by up to ``max_shift`` pixels (zero
    padding), standardised, ``CrossEntropyLoss`` on the logits, backward, Adam step with
    ``lr_t = lr * (1 + cos(pi t / T)) / 2``.

    Parameters
    ----------
    config : ClassifierConfig
    data_dir : path, optional
        MNIST location (see :func:`minigan.data.load_mnist`).
    device : str or Backend
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    MNISTClassifier with ``test_accuracy`` set.

    Raises
    ------
    MNISTNotFoundError
        The MNIST files are missing and cannot be downloaded (from
        :func:`~minigan.data.load_mnist`).
    ValueError
        A corrupt or wrong-hash MNIST file; an unknown device string; a non-positive
        ``config.hidden`` width.
    RuntimeError
        ``device="gpu"`` without CuPy or a visible CUDA device.

    Notes
    -----
    Batches are cut and shifted on the host and copied to the device (one ~400 KB copy per
    step): this runs once per configuration, after which the weights come from the cache.
    """
    from tqdm.auto import tqdm

    from .data import load_mnist

    backend = resolve_device(device)
    images, labels = load_mnist("train", root=data_dir)
    rng = np.random.default_rng(config.seed)
    net = build_classifier(config, device=backend, rng=rng)
    opt = Adam(net.parameters(), lr=config.lr)
    loss_fn = CrossEntropyLoss()
    s = int(config.max_shift)
    padded = np.pad(images, ((0, 0), (s, s), (s, s)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (28, 28), axis=(1, 2))
    n, b = images.shape[0], config.batch_size
    steps_per_epoch = n // b
    total = config.epochs * steps_per_epoch
    labels = labels.astype(np.int64)
    scale = np.float32(1.0 / (255.0 * config.std))
    shift = np.float32(config.mean / config.std)
    t = 0
    with tqdm(total=total, disable=not progress, desc="MNIST classifier", unit="step") as bar:
        for _ in range(config.epochs):
            perm = rng.permutation(n)
            for i in range(steps_per_epoch):
                idx = perm[i * b : (i + 1) * b]
                offsets = rng.integers(0, 2 * s + 1, size=(b, 2))
                x = _shifted(windows, idx, offsets).reshape(b, 784).astype(np.float32)
                x = x * scale - shift  # (x / 255 - mean) / std
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
    clf = MNISTClassifier(net, config)
    test_x, test_y = load_mnist("test", root=data_dir)
    clf.test_accuracy = clf.accuracy(backend.asarray(test_x.reshape(-1, 784) / 255.0), test_y)
    return clf


def load_classifier(
    config: ClassifierConfig | None = None,
    *,
    device: Any = "cpu",
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    train_if_missing: bool = True,
    progress: bool = True,
) -> MNISTClassifier:
    """The metric classifier: from the cache, or trained once and cached.

    Parameters
    ----------
    config : ClassifierConfig, optional
        Default :class:`ClassifierConfig()`.
    device : where to put it
    data_dir : MNIST location, used only when training
    cache_dir : path, optional
        Default :func:`classifier_cache_dir`.
    train_if_missing : bool
        Train (and cache) when no cached file exists; else raise ``FileNotFoundError``.
    progress : bool
        Progress bar while training.

    Returns
    -------
    MNISTClassifier

    Raises
    ------
    FileNotFoundError
        Not cached and ``train_if_missing`` is False.
    """
    config = ClassifierConfig() if config is None else config
    folder = Path(cache_dir) if cache_dir is not None else classifier_cache_dir()
    path = folder / f"mnist-mlp-{config.key()}.npz"
    if path.is_file():
        return MNISTClassifier.load(path, device=device)
    if not train_if_missing:
        raise FileNotFoundError(
            f"no cached MNIST classifier at {path}; call load_classifier(train_if_missing=True)"
        )
    if progress:
        print(f"Training the MNIST metric classifier once (cached at {path})...")
    clf = train_classifier(config, data_dir=data_dir, device="cpu", progress=progress)
    folder.mkdir(parents=True, exist_ok=True)
    clf.save(path)
    return MNISTClassifier.load(path, device=device) if device != "cpu" else clf
