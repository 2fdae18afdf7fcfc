"""minigan on the oldest versions it declares (issue 15, item 14).

pyproject.toml said ``numpy>=1.24``, but ``array.device`` exists only on NumPy >= 2 and, run
on NumPy 1.24 by ``.ci/oldest-deps.sh``, 51 tests of the quick subset failed: ``.device``,
array-api-compat 1.9's ``clip`` on NumPy 1.x, and NumPy 1.x promoting float32 with Python
scalars to float64 (before NEP 50). The floor is now NumPy 2.0, and the code asks
``array_api_compat.device(x)`` instead of ``x.device``: arrays whose ``.device`` raises, as
NumPy 1.x arrays do, go through every place that used it. ``.ci/oldest-deps.sh`` runs this
file (with a quick subset) on the floors of pyproject.toml.
"""

from __future__ import annotations

import numpy as np

from minigan import functional as F
from minigan.gan import build_gan
from minigan.losses import BCEWithLogitsLoss, CrossEntropyLoss


class _NumPy1Array(np.ndarray):
    """An ndarray without the NumPy 2 ``device`` attribute."""

    @property
    def device(self):
        raise AttributeError("'numpy.ndarray' object has no attribute 'device' (NumPy 1.x)")


def _old(a) -> np.ndarray:
    return np.asarray(a).view(_NumPy1Array)


def test_losses_default_dout_without_array_device():
    rng = np.random.default_rng(0)
    z, y = _old(rng.standard_normal((4, 1))), _old(rng.uniform(size=(4, 1)))
    loss = BCEWithLogitsLoss()
    loss.forward(z, y)
    dz = loss.backward()  # before: AttributeError on like.device
    np.testing.assert_allclose(np.asarray(dz), (1 / (1 + np.exp(-np.asarray(z))) - y) / 4)
    ce = CrossEntropyLoss(reduction="none")
    logits, labels = _old(rng.standard_normal((3, 5))), _old(np.array([0, 4, 2]))
    ce.forward(logits, labels)
    assert np.asarray(ce.backward()).shape == (3, 5)  # before: probs.device


def test_softmax_cross_entropy_without_array_device():
    logits = _old(np.random.default_rng(1).standard_normal((3, 4)))
    out, _ = F.softmax_cross_entropy_forward(logits, _old(np.array([1, 0, 3])))
    assert np.isfinite(float(out))  # before: labels.device


def test_one_gan_step_on_this_numpy():
    gan = build_gan("default", device="cpu", seed=0, latent_dim=4, g_hidden=(8,), d_hidden=(8,))
    real = np.random.default_rng(2).uniform(-1, 1, (6, 784)).astype(np.float32)
    out = gan.train_step(real)
    assert all(np.isfinite(float(v)) for v in out.values() if np.ndim(v) == 0)
