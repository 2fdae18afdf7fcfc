"""Shared fixtures: one test body, three array backends.

``backend`` runs a test on

* ``numpy``: NumPy on the CPU (``device="cpu"``);
* ``array_api_strict``: array-api-strict arrays on ``array_api_strict.Device("device1")``, which
  refuse NumPy calls and mixing with host arrays exactly like CuPy does, so a CPU-only run proves
  the code is ready for the GPU;
* ``cupy``: CuPy on GPU 0 (skipped, with the reason printed by ``-ra``, when CuPy or a GPU is
  missing).

Every random test input comes from a seeded host ``numpy.random.Generator`` (``rng``) and is
moved to the backend with ``Backend.asarray`` (``make``), so all backends see the same numbers.

The gradient-check figures asked for by issue 2 (max relative error per op, layer and stack;
optimizer trajectory deviations) are collected with ``record_figure`` and printed in the
terminal summary of every run.
"""

from __future__ import annotations

import importlib.util
import os
from collections import defaultdict

import numpy as np
import pytest

from minigan.backend import Backend, array_namespace, cupy_available, resolve_device, to_numpy
from minigan.data import dataset_dir, get_dataset

HAS_STRICT = importlib.util.find_spec("array_api_strict") is not None
HAS_CUPY_GPU = cupy_available()

BACKENDS = [
    pytest.param("numpy", id="numpy"),
    pytest.param(
        "array_api_strict",
        id="array_api_strict",
        marks=pytest.mark.skipif(
            not HAS_STRICT,
            reason="array-api-strict is not installed (pip install -e '.[dev]')",
        ),
    ),
    pytest.param(
        "cupy",
        id="cupy",
        marks=pytest.mark.skipif(
            not HAS_CUPY_GPU,
            reason="CuPy with a visible CUDA GPU is not available "
            "(pip install -e '.[gpu-cuda12]' on a GPU machine)",
        ),
    ),
]


def make_backend(name: str) -> Backend:
    """The :class:`~minigan.backend.Backend` behind a ``backend`` fixture id."""
    if name == "numpy":
        return resolve_device("cpu")
    if name == "array_api_strict":
        import array_api_strict

        return resolve_device(array_api_strict.Device("device1"))
    if name == "cupy":
        return resolve_device("gpu")
    raise ValueError(f"unknown backend id {name!r}")


@pytest.fixture(params=BACKENDS)
def backend(request) -> Backend:
    """The array backend under test (numpy, array-api-strict on device1, cupy)."""
    return make_backend(request.param)


@pytest.fixture
def rng() -> np.random.Generator:
    """A host generator with a fixed seed, fresh for each test."""
    return np.random.default_rng(20240601)


class Maker:
    """Build test arrays on a backend from the seeded host generator.

    ``make(shape)`` draws standard normal float64 numbers; ``make(shape, "float32")`` casts;
    ``make(shape, low=a, high=b)`` draws U(a, b); ``make(shape, away=0.1)`` keeps |x| >= 0.1
    (inputs of ReLU-like layers, so finite differences never straddle the kink at 0);
    ``make.asarray(host, dtype)`` moves given host values; ``make.labels(n, classes)`` gives
    int64 class labels.
    """

    def __init__(self, backend: Backend, rng: np.random.Generator):
        self.backend = backend
        self.rng = rng

    def host(self, shape, *, low=None, high=None, away=None) -> np.ndarray:
        shape = tuple(shape)
        if low is not None or high is not None:
            low = -1.0 if low is None else low
            high = 1.0 if high is None else high
            return self.rng.uniform(low, high, shape)
        if away is not None:
            sign = np.where(self.rng.random(shape) < 0.5, -1.0, 1.0)
            return sign * self.rng.uniform(away, 1.0, shape)
        return self.rng.standard_normal(shape)

    def __call__(self, shape, dtype="float64", *, low=None, high=None, away=None):
        return self.backend.asarray(self.host(shape, low=low, high=high, away=away), dtype)

    def asarray(self, host, dtype="float64"):
        return self.backend.asarray(np.asarray(host, dtype=np.float64), dtype)

    def labels(self, n: int, classes: int):
        return self.ints(self.rng.integers(0, classes, size=n))

    def ints(self, host):
        """Given host integers as an int64 array on the backend."""
        host = np.asarray(host, dtype=np.int64)
        if self.backend.name == "cpu":
            return host
        return self.backend.xp.asarray(host, device=self.backend.device)


@pytest.fixture
def make(backend, rng) -> Maker:
    """``make(shape, dtype="float64", low=, high=, away=)`` -> array on ``backend``."""
    return Maker(backend, rng)


def host(x) -> np.ndarray:
    """Any backend's array as a float64-or-int host NumPy array (for assertions)."""
    return np.asarray(to_numpy(x))


def dtype_name(x) -> str:
    """``"float32"``, ``"float64"``, ... for an array of any backend (no data copied)."""
    xp = array_namespace(x)
    for name in ("float32", "float64", "float16", "int64", "int32", "bool"):
        if hasattr(xp, name) and x.dtype == getattr(xp, name):
            return name
    return str(x.dtype)


# ----------------------------------------------------------------------------------------------
# Figures for the acceptance list, printed at the end of the run
# ----------------------------------------------------------------------------------------------
_FIGURES: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)


@pytest.fixture
def record_figure(request):
    """``record_figure(kind, name, value)``: keep the worst value per (kind, name, backend)."""
    callspec = getattr(request.node, "callspec", None)
    backend_id = callspec.params.get("backend", "-") if callspec else "-"

    def record(kind: str, name: str, value: float) -> None:
        per_backend = _FIGURES[(kind, name)]
        per_backend[backend_id] = max(float(value), per_backend.get(backend_id, 0.0))

    return record


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    tr = terminalreporter
    tr.section("minigan figures (worst value over the backends listed)")
    kind_now = None
    for (kind, name), per_backend in sorted(_FIGURES.items()):
        if kind != kind_now:
            tr.write_line(f"{kind}:")
            kind_now = kind
        worst = max(per_backend.values())
        tr.write_line(f"  {name:<50} {worst:.2e}  ({', '.join(sorted(per_backend))})")


def require_torch():
    """Import torch for an optional comparison, or skip the test saying why."""
    return pytest.importorskip(
        "torch", reason="PyTorch is not installed: optional comparison against torch skipped"
    )


# The README's test command passes a relative MINIGAN_DATA_DIR, and some tests chdir: make it
# absolute once, at session start, so every test sees the same folder.
if os.environ.get("MINIGAN_DATA_DIR") and not os.path.isabs(os.environ["MINIGAN_DATA_DIR"]):
    os.environ["MINIGAN_DATA_DIR"] = os.path.abspath(os.environ["MINIGAN_DATA_DIR"])


def _data_folder(name: str, flat_ok: bool = False) -> str | None:
    """The folder of a dataset's files under $MINIGAN_DATA_DIR, or None.

    ``flat_ok``: $MINIGAN_DATA_DIR may be the folder of the files itself (minigan 0.1's MNIST
    layout); otherwise the folder must carry the dataset's folder name (Fashion-MNIST's files
    share MNIST's names, so a flat MNIST folder is no Fashion-MNIST folder).
    """
    root = os.environ.get("MINIGAN_DATA_DIR")
    if not root:
        return None
    info = get_dataset(name)
    folder = dataset_dir(info, root)
    if not flat_ok and folder.name != info.folder:
        return None
    return str(folder) if all((folder / n).is_file() for n in info.all_files()) else None


# Real MNIST (CI: ../shared/data through MINIGAN_DATA_DIR); tests that need it skip without.
MNIST_DIR = _data_folder("mnist", flat_ok=True)
needs_mnist = pytest.mark.skipif(
    MNIST_DIR is None,
    reason="real MNIST not available: set MINIGAN_DATA_DIR to the data root holding mnist/ (or "
    "to a directory with the four .gz files) (CI: ../shared/data)",
)
# Real Fashion-MNIST, beside MNIST under the data root.
FASHION_DIR = _data_folder("fashion-mnist")
needs_fashion = pytest.mark.skipif(
    FASHION_DIR is None,
    reason="real Fashion-MNIST not available: set MINIGAN_DATA_DIR to the data root holding "
    "fashion-mnist/ (CI: ../shared/data)",
)
