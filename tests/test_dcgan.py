"""DCGAN builders and initialisation (issue 10), on every backend.

Shapes for 28x28 grey and 32x32 colour images, the architecture rules of Radford et al. 2016
(no BatchNorm at G's output or D's input, Tanh out of G, logits out of D), a small G and D
gradient-checked end to end in float64, and the N(0, 0.02) / N(1, 0.02) initialisation.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import Maker, host

from minigan import (
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    LeakyReLU,
    ReLU,
    Tanh,
    dcgan_discriminator,
    dcgan_generator,
)
from minigan.backend import resolve_device
from minigan.dcgan import dcgan_stages
from minigan.gradcheck import check_module
from minigan.init import dcgan_init_

TOL_DEEP = 1e-5  # STYLE.md: stacks of three or more layers


@pytest.mark.parametrize(
    "shape, stages", [((1, 28, 28), (2, 7, 7)), ((3, 32, 32), (3, 4, 4)), ((3, 64, 48), (3, 8, 6))]
)
def test_dcgan_shapes(backend, make, shape, stages):
    assert dcgan_stages(shape) == stages
    G = dcgan_generator(10, shape, 4, device=backend, rng=0)
    D = dcgan_discriminator(shape, 4, device=backend, rng=1)
    fake = G.forward(make((3, 10), "float32"))
    assert tuple(fake.shape) == (3, *shape)
    assert float(np.max(np.abs(host(fake)))) <= 1.0  # Tanh
    assert tuple(D.forward(fake).shape) == (3, 1)


def test_dcgan_follows_radford_guidelines():
    G = dcgan_generator(100, (1, 28, 28), 8, rng=0)
    D = dcgan_discriminator((1, 28, 28), 8, rng=1)
    kinds = [type(m).__name__ for m in G.layers]
    assert kinds[-2:] == ["ConvTranspose2d", "Tanh"]  # no BatchNorm at the output
    assert "LeakyReLU" not in kinds and kinds.count("ReLU") == kinds.count("BatchNorm2d")
    assert [type(m) for m in D.layers[:2]] == [Conv2d, LeakyReLU]  # no BatchNorm on the input
    assert all(m.negative_slope == 0.2 for m in D.layers if isinstance(m, LeakyReLU))
    assert not any(isinstance(m, (ReLU, Tanh)) for m in D.layers)  # logits out
    assert all(m.stride == (2, 2) for m in D.layers if isinstance(m, Conv2d))
    assert all(m.stride == (2, 2) for m in G.layers if isinstance(m, ConvTranspose2d))
    assert any(m.mixes_batch_rows for m in D.modules())
    critic = dcgan_discriminator((1, 28, 28), 8, norm=None, rng=1)
    assert not any(isinstance(m, BatchNorm2d) for m in critic.layers)
    assert not any(m.mixes_batch_rows for m in critic.modules())
    assert all(m.bias is not None for m in critic.layers if isinstance(m, Conv2d))


def test_dcgan_discriminator_dropout_follows_every_leaky_relu():
    from minigan import Dropout

    plain = dcgan_discriminator((1, 28, 28), 8, rng=1)
    assert not any(isinstance(m, Dropout) for m in plain.layers)
    D = dcgan_discriminator((1, 28, 28), 8, dropout=0.3, rng=1)
    after = [D.layers[i + 1] for i, m in enumerate(D.layers) if isinstance(m, LeakyReLU)]
    assert len(after) == 2 and all(isinstance(m, Dropout) and m.p == 0.3 for m in after)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 1, 28, 28)).astype(np.float32)
    assert not np.array_equal(host(D.forward(x)), host(D.forward(x)))  # training: new masks
    D.eval()
    assert np.array_equal(host(D.forward(x)), host(D.forward(x)))
    with pytest.raises(ValueError, match=r"p: expected a drop probability in \[0, 1\), got 1.5"):
        dcgan_discriminator(dropout=1.5)


def test_dcgan_dense_features_add_infogans_fully_connected_layers():
    from minigan import BatchNorm1d, Linear

    G = dcgan_generator(100, (1, 28, 28), 8, dense_features=32, rng=0)
    assert [type(m) for m in G.layers[:4]] == [Linear, BatchNorm1d, ReLU, Linear]
    assert (G.layers[0].in_features, G.layers[0].out_features) == (100, 32)
    assert G.layers[3].in_features == 32 and G.layers[3].out_features == 16 * 7 * 7
    D = dcgan_discriminator((1, 28, 28), 8, dense_features=32, rng=1)
    assert [type(m) for m in D.layers[-4:]] == [Linear, BatchNorm1d, LeakyReLU, Linear]
    assert (D.layers[-1].in_features, D.layers[-4].bias) == (32, None)  # BatchNorm follows
    critic = dcgan_discriminator((1, 28, 28), 8, norm=None, dense_features=32, rng=1)
    assert not any(isinstance(m, BatchNorm1d) for m in critic.layers)
    assert critic.layers[-3].bias is not None
    plain = dcgan_generator(100, (1, 28, 28), 8, rng=0)
    assert type(plain.layers[1]).__name__ == "Unflatten"  # None: the plain DCGAN


def test_dcgan_errors():
    with pytest.raises(ValueError, match=r"norm: expected one of \['batch', None\], got 'layer'"):
        dcgan_discriminator(norm="layer")
    with pytest.raises(ValueError, match=r"expected even sides of at least 8 .*got \(1, 7, 7\)"):
        dcgan_generator(image_shape=(1, 7, 7))
    with pytest.raises(ValueError, match=r"image_shape: expected \(C, H, W\) .*got \(28, 28\)"):
        dcgan_discriminator(image_shape=(28, 28))


SMALL = {  # 16x16: two stride-2 stages, so D has a BatchNorm and G two
    "D (norm=batch)": (lambda be: dcgan_discriminator((1, 16, 16), 2, dtype="float64",
                                                      device=be, rng=3), (2, 1, 16, 16)),
    "D (norm=None)": (lambda be: dcgan_discriminator((1, 16, 16), 2, norm=None,
                                                     dtype="float64", device=be, rng=3),
                      (2, 1, 16, 16)),
    "G": (lambda be: dcgan_generator(3, (1, 16, 16), 2, dtype="float64", device=be, rng=4),
          (3, 3)),
    "G (dense_features)": (lambda be: dcgan_generator(3, (1, 16, 16), 2, dense_features=5,
                                                      dtype="float64", device=be, rng=4), (3, 3)),
    "D (dense_features)": (lambda be: dcgan_discriminator((1, 16, 16), 2, dense_features=5,
                                                          dtype="float64", device=be, rng=3),
                           (2, 1, 16, 16)),
}  # fmt: skip


@pytest.mark.parametrize("name", list(SMALL))
def test_small_dcgan_gradcheck_end_to_end(rng, record_figure, name):
    # NumPy only (a few thousand forwards); every op in it is gradient-checked on every
    # backend in test_conv.py / test_norm.py, and the whole net is compared below.
    build, shape = SMALL[name]
    make = Maker(resolve_device("cpu"), rng)
    model = build(make.backend)
    report = check_module(model, make(shape), seed=11)
    assert len(report.rows) == 1 + len(model.parameters())
    assert report.passed and report.max_rel_error < TOL_DEEP, str(report)
    record_figure("gradcheck max rel error: conv", f"DCGAN {name}", report.max_rel_error)


@pytest.mark.parametrize("name", list(SMALL))
def test_small_dcgan_same_on_every_backend(backend, make, name):
    build, shape = SMALL[name]
    ours, ref = build(backend), build(resolve_device("cpu"))
    x = make.host(shape)
    y = ours.forward(make.asarray(x))
    dout = make.host(tuple(y.shape))
    dx = ours.backward(make.asarray(dout))
    np.testing.assert_allclose(host(y), ref.forward(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(dx), ref.backward(dout), rtol=1e-12, atol=1e-12)
    for (k, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
        np.testing.assert_allclose(host(p.grad), q.grad, rtol=1e-12, atol=1e-12, err_msg=k)


def test_dcgan_init_statistics_and_seed():
    G = dcgan_generator(100, (3, 32, 32), 16, rng=5)
    for m in G.modules():
        w = m.params.get("weight")
        if w is None:
            continue
        w = host(w)
        if w.ndim == 1:  # BatchNorm scale
            assert abs(w.mean() - 1) < 0.01 and abs(w.std() - 0.02) < 0.01
        else:
            assert abs(w.mean()) < 0.005 and abs(w.std() - 0.02) < 0.002
        if m.params.get("bias") is not None:
            assert np.all(host(m.params["bias"]) == 0)
    again = dcgan_generator(100, (3, 32, 32), 16, rng=5)
    for (k, a), (_, b) in zip(G.state_dict().items(), again.state_dict().items(), strict=True):
        np.testing.assert_array_equal(host(a), host(b), err_msg=k)
    D = dcgan_init_(dcgan_discriminator((1, 28, 28), 4, rng=0), rng=1)
    assert abs(float(host(D[0].weight).std()) - 0.02) < 0.01
