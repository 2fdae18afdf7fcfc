"""BatchNorm1d/2d, Dropout, Flatten/Unflatten and Module buffers (issue 10), on every backend.

Finite differences in float64 in training and evaluation mode (input, weight, bias); one to
one with torch.nn in float64 (outputs, gradients, running statistics after several steps,
state_dict keys loadable both ways); gradient checks that keep buffers and dropout masks
fixed; train/eval switching; the bad-input errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import dtype_name, host, require_torch

from minigan import (
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    Sequential,
    Unflatten,
)
from minigan import functional as F
from minigan.backend import resolve_device
from minigan.gradcheck import check_function, check_module

TOL = 1e-6
BN = {"1d": (BatchNorm1d, (6, 3)), "2d": (BatchNorm2d, (3, 2, 3, 4))}


def bn(backend, kind, **kw):
    cls, shape = BN[kind]
    layer = cls(shape[1], dtype=kw.pop("dtype", "float64"), device=backend, **kw)
    return layer, shape


def _randomise(layer, make):
    """Non-trivial weight, bias and running statistics (so each one is really exercised)."""
    c = layer.num_features
    if layer.affine:
        layer.params["weight"][...] = make((c,), low=0.5, high=1.5)
        layer.params["bias"][...] = make((c,))
    if layer.track_running_stats:
        layer.buffers["running_mean"][...] = make((c,))
        layer.buffers["running_var"][...] = make((c,), low=0.5, high=2.0)


def _record(record_figure, name, report):
    assert report.passed and report.max_rel_error < TOL, str(report)
    record_figure("gradcheck max rel error: norm, dropout, reshape", name, report.max_rel_error)


# ----------------------------------------------------------------------------------------------
# Batch norm: finite differences
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("kind", list(BN))
def test_batch_norm_layer_gradcheck(backend, make, record_figure, kind, mode):
    layer, shape = bn(backend, kind)
    _randomise(layer, make)
    layer.train(mode == "train")
    before = host(layer.running_mean).copy()
    report = check_module(layer, make(shape), seed=5)
    assert [r.name for r in report.rows] == ["input", "weight", "bias"]
    _record(record_figure, f"BatchNorm{kind} {mode}", report)
    # check_module ran ~2*(size) forwards; the running stats moved by exactly one step.
    moved = not np.array_equal(host(layer.running_mean), before)
    assert moved == (mode == "train")
    assert int(host(layer.buffers["num_batches_tracked"])) == (1 if mode == "train" else 0)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("kind", list(BN))
def test_batch_norm_functional_gradcheck(backend, make, record_figure, kind, training):
    shape = BN[kind][1]
    c = shape[1]
    rm, rv = make((c,)), make((c,), low=0.5, high=2.0)
    report = check_function(
        lambda x, w, b: F.batch_norm_forward(x, w, b, rm, rv, training=training),
        F.batch_norm_backward,
        make(shape),
        make((c,)),
        make((c,)),
        names=["x", "weight", "bias"],
        seed=6,
    )
    assert [r.name for r in report.rows] == ["x", "weight", "bias"]
    _record(record_figure, f"batch_norm {kind} training={training}", report)


def test_batch_norm_without_affine_or_running_stats(backend, make, record_figure):
    layer = BatchNorm2d(2, affine=False, track_running_stats=False, dtype="float64", device=backend)
    assert layer.params == {} and layer.buffers == {} and layer.weight is None
    layer.eval()  # without running statistics, evaluation uses the batch ones (as PyTorch)
    x = make((3, 2, 2, 2))
    y = host(layer.forward(x))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    report = check_module(layer, x, seed=7)
    _record(record_figure, "BatchNorm2d(affine=False, no running stats)", report)


# ----------------------------------------------------------------------------------------------
# Batch norm: PyTorch, float64
# ----------------------------------------------------------------------------------------------
def _torch_bn(torch, kind, layer):
    ref = getattr(torch.nn, f"BatchNorm{kind}")(layer.num_features, momentum=layer.momentum)
    ref = ref.double()
    ref.load_state_dict({k: torch.tensor(host(v)) for k, v in layer.state_dict().items()})
    return ref


@pytest.mark.parametrize("momentum", [0.1, 0.3, None], ids=["m0.1", "m0.3", "cumulative"])
@pytest.mark.parametrize("kind", list(BN))
def test_batch_norm_matches_torch_over_training_steps(backend, make, kind, momentum):
    torch = require_torch()
    layer, shape = bn(backend, kind, momentum=momentum)
    _randomise(layer, make)
    ref = _torch_bn(torch, kind, layer)
    assert list(layer.state_dict()) == list(ref.state_dict())
    for step in range(4):  # training steps, then evaluation
        x, dout = make(shape) * 2 + 1, make(shape)
        tx = torch.tensor(host(x), requires_grad=True)
        layer.zero_grad()
        ref.zero_grad()
        y = layer.forward(x)
        dx = layer.backward(dout)
        ty = ref(tx)
        ty.backward(torch.tensor(host(dout)))
        pairs = [("y", y, ty), ("dx", dx, tx.grad)]
        pairs += [(k, layer.grads[k], getattr(ref, k).grad) for k in ("weight", "bias")]
        for what, a, t in pairs:
            np.testing.assert_allclose(
                host(a), t.detach().numpy(), rtol=1e-10, atol=1e-10, err_msg=f"{what} {step}"
            )
    for k, v in ref.state_dict().items():  # running statistics after 4 steps, and the count
        np.testing.assert_allclose(host(layer.state_dict()[k]), v.numpy(), rtol=1e-10, err_msg=k)
    assert dtype_name(layer.buffers["num_batches_tracked"]) == "int64"
    layer.eval()
    ref.eval()
    x = make(shape)
    np.testing.assert_allclose(
        host(layer.forward(x)), ref(torch.tensor(host(x))).detach().numpy(), rtol=1e-10, atol=1e-10
    )


def test_state_dict_keys_equal_torch_and_load_both_ways(backend, make):
    torch = require_torch()
    ours = Sequential(
        Conv2d(1, 2, 3, dtype="float64", device=backend, rng=0),
        BatchNorm2d(2, dtype="float64", device=backend),
        LeakyReLU(0.2),
        Flatten(),
        Linear(8, 3, dtype="float64", device=backend, rng=1),
        BatchNorm1d(3, dtype="float64", device=backend),
    )
    nn = torch.nn
    ref = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(8, 3),
        nn.BatchNorm1d(3),
    ).double()  # fmt: skip
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert "1.running_mean" in ours.state_dict() and "5.num_batches_tracked" in ours.state_dict()
    ours.forward(make((4, 1, 4, 4)))  # running stats move: loading must carry them
    ref.load_state_dict({k: torch.tensor(host(v)) for k, v in ours.state_dict().items()})
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), host(ours.state_dict()[k]), err_msg=k)
    ref(torch.tensor(host(make((4, 1, 4, 4)))))  # torch trains a step; load it back into ours
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(host(ours.state_dict()[k]), v.numpy(), err_msg=k)
    assert int(host(ours.state_dict()["1.num_batches_tracked"])) == 2


# ----------------------------------------------------------------------------------------------
# Buffers: state_dict, to(), no gradient, train/eval, mixes_batch_rows
# ----------------------------------------------------------------------------------------------
def test_buffers_move_with_to_and_get_no_gradient(backend, make):
    model = Sequential(
        Linear(3, 4, dtype="float64", rng=0), BatchNorm1d(4, dtype="float64"), Dropout(0.5, rng=1)
    )
    model.forward(make.host((5, 3)))  # train: running stats move on the host
    expect = {k: host(v).copy() for k, v in model.state_dict().items()}
    model.to(backend)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert [n for n, _ in model.named_buffers()] == [
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    ]
    assert set(model[1].grads) == {"weight", "bias"}  # buffers have no gradient
    for k, v in model.state_dict().items():
        assert type(v) is type(make((1,))), k  # on the backend
        np.testing.assert_array_equal(host(v), expect[k], err_msg=k)
    model.forward(make((5, 3)))
    model.backward(make((5, 4)))
    assert int(host(model[1].buffers["num_batches_tracked"])) == 2


def test_train_eval_switch_batch_norm_and_dropout(backend, make):
    model = Sequential(BatchNorm1d(4, dtype="float64", device=backend), Dropout(0.5, rng=0))
    x = make((6, 4)) * 3 + 2
    y_train = host(model.forward(x))
    assert np.any(y_train == 0)  # dropout dropped something
    model.eval()
    assert not model[0].training and not model[1].training
    y_eval = host(model.forward(x))
    bn_layer = model[0]
    rm, rv = host(bn_layer.running_mean), host(bn_layer.running_var)
    np.testing.assert_allclose(y_eval, (host(x) - rm) / np.sqrt(rv + 1e-5), rtol=1e-12)
    np.testing.assert_array_equal(host(model.forward(x)), y_eval)  # eval changes nothing
    model.train()
    assert model[0].training and model[1].training


def test_mixes_batch_rows_property():
    D = Sequential(Conv2d(1, 2, 3), BatchNorm2d(2), LeakyReLU(0.2), Flatten(), Linear(2, 1))
    assert any(m.mixes_batch_rows for m in D.modules())
    assert [m.mixes_batch_rows for m in D.layers] == [False, True, False, False, False]
    assert BatchNorm1d.mixes_batch_rows and not Dropout.mixes_batch_rows
    assert not any(m.mixes_batch_rows for m in Sequential(Linear(2, 2), Dropout()).modules())


def test_batch_norm_accumulates_and_keeps_float32(backend, make):
    layer, shape = bn(backend, "2d", dtype="float32")
    x = make(shape, "float32")
    y = layer.forward(x)
    dout = make(shape, "float32")
    dx = layer.backward(dout)
    once = {k: host(g).copy() for k, g in layer.grads.items()}
    layer.backward(dout)
    for k, g in layer.grads.items():
        assert np.any(once[k] != 0), k
        np.testing.assert_array_equal(host(g), 2 * once[k], err_msg=k)
    names = [dtype_name(a) for a in (y, dx, *layer.grads.values())]
    names += [dtype_name(layer.running_mean), dtype_name(layer.running_var)]
    assert names == ["float32"] * len(names)
    ref, _ = bn(resolve_device("cpu"), "2d")
    np.testing.assert_allclose(
        host(y), ref.forward(host(x).astype(np.float64)), rtol=1e-4, atol=1e-5
    )


# ----------------------------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------------------------
def test_dropout_functional_gradcheck_with_fixed_mask(backend, make, record_figure):
    x = make((4, 5))
    mask = F.dropout_mask(x, 0.3, rng=0)
    report = check_function(
        lambda x, m: F.dropout_forward(x, 0.3, mask=m), F.dropout_backward, x, mask, names=["x"]
    )
    assert [r.name for r in report.rows] == ["x"]
    _record(record_figure, "dropout (fixed mask)", report)


def test_dropout_layer_gradcheck_replays_the_mask(backend, make, record_figure):
    # check_module restores the generator before each forward: every run draws one mask.
    model = Sequential(Linear(4, 6, dtype="float64", device=backend, rng=0), Dropout(0.4, rng=3))
    report = check_module(model, make((3, 4)), seed=8)
    assert [r.name for r in report.rows] == ["input", "0.weight", "0.bias"]
    _record(record_figure, "Linear -> Dropout(0.4)", report)


def test_dropout_mask_same_on_every_backend_and_scaled(backend, make):
    x = make((200, 50))
    y = host(Dropout(0.25, rng=7).forward(x))
    ref = host(Dropout(0.25, rng=7).forward(host(x)))  # NumPy
    np.testing.assert_array_equal(y, ref)
    kept = y != 0
    np.testing.assert_allclose(y[kept], host(x)[kept] / 0.75, rtol=1e-15)
    assert abs(1 - kept.mean() - 0.25) < 0.02  # about p of the units dropped
    assert not np.array_equal(host(Dropout(0.25, rng=8).forward(x)), y)


def test_dropout_eval_and_p0_are_identity(backend, make):
    x = make((3, 4))
    layer = Dropout(0.5).eval()
    assert layer.forward(x) is x
    assert layer.backward(x) is x
    assert Dropout(0.0).forward(x) is x


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_p_outside_0_1(p):
    with pytest.raises(ValueError, match=rf"p: expected a drop probability in \[0, 1\), got {p}"):
        Dropout(p)
    with pytest.raises(ValueError, match=r"p: expected a drop probability in \[0, 1\)"):
        F.dropout_forward(np.zeros(3), p)


# ----------------------------------------------------------------------------------------------
# Flatten / Unflatten
# ----------------------------------------------------------------------------------------------
def test_flatten_unflatten_gradcheck_and_shapes(backend, make, record_figure):
    model = Sequential(
        Flatten(), Linear(24, 12, dtype="float64", device=backend, rng=0), Unflatten(1, (3, 2, 2))
    )
    x = make((2, 2, 3, 4))
    assert tuple(model.forward(x).shape) == (2, 3, 2, 2)
    report = check_module(model, x, seed=9)
    _record(record_figure, "Flatten -> Linear -> Unflatten", report)
    y, cache = F.flatten_forward(x, 1, 2)
    assert tuple(y.shape) == (2, 6, 4)
    assert tuple(F.flatten_backward(y, cache).shape) == (2, 2, 3, 4)


def test_flatten_unflatten_errors(backend, make):
    with pytest.raises(
        ValueError, match=r"unflattened_size: expected sizes whose product is 6 .*got \(4, 2\)"
    ):
        Unflatten(1, (4, 2)).forward(make((2, 6)))
    with pytest.raises(ValueError, match=r"start_dim: expected a dim in \[-2, 2\), got 3"):
        Flatten(3).forward(make((2, 6)))


# ----------------------------------------------------------------------------------------------
# Batch norm errors
# ----------------------------------------------------------------------------------------------
def test_batch_norm_wrong_feature_count_or_rank(backend, make):
    with pytest.raises(
        ValueError, match=r"expected a 4-D input with 3 features in dim 1, got shape \(2, 4, 2, 2\)"
    ):
        BatchNorm2d(3, dtype="float64", device=backend).forward(make((2, 4, 2, 2)))
    with pytest.raises(ValueError, match=r"expected a 2-D input with 3 features .* \(2, 3, 2, 2\)"):
        BatchNorm1d(3, dtype="float64", device=backend).forward(make((2, 3, 2, 2)))
    with pytest.raises(ValueError, match=r"weight: expected shape \(2,\) .*got \(3,\)"):
        F.batch_norm_forward(make((4, 2)), make((3,)))


def test_batch_norm_training_with_one_value_per_channel(backend, make):
    with pytest.raises(
        ValueError,
        match=r"expected more than 1 value per channel when training, got input shape \(1, 3\)",
    ):
        BatchNorm1d(3, dtype="float64", device=backend).forward(make((1, 3)))
    with pytest.raises(ValueError, match=r"more than 1 value per channel .*\(1, 2, 1, 1\)"):
        BatchNorm2d(2, dtype="float64", device=backend).forward(make((1, 2, 1, 1)))
    layer = BatchNorm1d(3, dtype="float64", device=backend).eval()
    assert tuple(layer.forward(make((1, 3))).shape) == (1, 3)  # eval: running stats, fine


def test_batch_norm_constructor_errors():
    with pytest.raises(ValueError, match=r"num_features: expected a positive int, got 0"):
        BatchNorm1d(0)
    with pytest.raises(ValueError, match=r"momentum: expected a float in \[0, 1\] or None, got 2"):
        BatchNorm2d(3, momentum=2)
