"""The fast paths compute what the teaching forms compute.

minigan keeps two forms where speed and readability pull apart (``docs/benchmarks.md``):

* ``Adam.step``: the plain array-API update (lesson-facing) and, on NumPy/CuPy, ``_step_out``,
  the same operations written into one scratch buffer with ``out=``;
* LeakyReLU: the teaching pair ``F.leaky_relu_forward/backward`` (``where`` on a mask) and the
  pair the layer runs, ``F.leaky_relu_fast_forward/backward`` (multiply by the cached slope);
* ``GAN.train_step``'s discriminator update: two passes (real, then fake) or one pass over
  ``[real; fake]`` (``GAN.d_joint_batch``).

The first two do the same floating-point operations on the same values, so they are checked
for **exact** equality; the joint pass sums over rows in another order (equal to rounding:
1e-12 in float64, 1e-5 in float32). The whole ``GAN.train_step`` is then checked against a
reference step written here from the plain teaching functions only (``F.linear_*``,
``F.leaky_relu_*``, ``F.tanh_*``, ``F.bce_with_logits_*`` and Adam's equations), for a few
steps: to 1e-12 relative in float64 and within float32 rounding (1e-5 relative) in float32.

No timing here: speed is measured in ``benchmarks/bench_step.py``.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from conftest import host

from minigan import functional as F
from minigan.backend import backend_of
from minigan.functional import fast_paths, ufuncs_with_out
from minigan.gan import build_gan
from minigan.health import grad_norm
from minigan.layers import LeakyReLU, Linear, Sequential, flat_gradient, flatten_parameters
from minigan.optim import SGD, Adam, RMSprop, clip_grad_norm_

SLOPES = [0.2, 0.01, 0.0, 1.0, 1.5, -0.3, 1 / 3]
SMALL = dict(latent_dim=6, g_hidden=(16, 24), d_hidden=(24, 16), data_dim=20)


# ----------------------------------------------------------------------------------------------
# The one library switch
# ----------------------------------------------------------------------------------------------
def test_ufuncs_with_out_names_numpy_and_nothing_else(backend):
    x = backend.zeros((2,), "float32")
    got = ufuncs_with_out(x)
    if backend.name == "cpu":
        assert got is np
    elif backend.name == "gpu":
        import cupy

        assert got is cupy
    else:
        assert got is None  # array-api-strict: the plain lines
    with fast_paths(False):
        assert ufuncs_with_out(x) is None
    assert ufuncs_with_out(x) is got  # restored on exit


def test_fast_paths_switch_restores_after_an_error():
    with pytest.raises(RuntimeError), fast_paths(False):
        raise RuntimeError("boom")
    assert F.FAST_PATHS is True


# ----------------------------------------------------------------------------------------------
# LeakyReLU: multiply by the cached slope == where on the mask, bit for bit
# ----------------------------------------------------------------------------------------------
def _special_inputs(rng, dtype):
    x = rng.standard_normal((7, 9)) * 3
    x.flat[:8] = [0.0, -0.0, np.inf, -np.inf, 1e30, -1e30, 1e-40, -1e-40]
    x.flat[8] = np.nan
    return x.astype(dtype)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # -inf * 0: NaN in both forms
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("slope", SLOPES)
def test_leaky_relu_fast_pair_equals_teaching_pair_exactly(backend, rng, dtype, slope):
    x = backend.asarray(_special_inputs(rng, dtype), dtype)
    dout = backend.asarray(rng.standard_normal((7, 9)), dtype)
    y_teach, c_teach = F.leaky_relu_forward(x, slope)
    y_fast, c_fast = F.leaky_relu_fast_forward(x, slope)
    dx_teach = F.leaky_relu_backward(dout, c_teach)
    dx_fast = F.leaky_relu_fast_backward(dout, c_fast)
    for teach, fast in ((y_teach, y_fast), (dx_teach, dx_fast)):
        assert fast.dtype == x.dtype
        # exact, NaN where NaN (the NaN input), same sign of zero not required (0 == -0)
        np.testing.assert_array_equal(host(fast), host(teach))
    # the cached slope holds exactly 1 or negative_slope
    s = host(c_fast)
    assert set(np.unique(s).tolist()) <= {1.0, float(np.asarray(slope, dtype=dtype))}


def test_leaky_relu_fast_pair_gradcheck(rng):
    from minigan.gradcheck import check_function

    x = rng.standard_normal((4, 5))
    x = np.where(np.abs(x) < 0.1, 0.5, x)  # away from the kink
    report = check_function(
        lambda x: F.leaky_relu_fast_forward(x, 0.2),
        F.leaky_relu_fast_backward,
        x,
        names=["x"],
        seed=3,
    )
    assert report.max_rel_error < 1e-6, str(report)


def test_leaky_relu_layer_runs_the_fast_pair_and_matches_the_teaching_pair(rng):
    x = rng.standard_normal((5, 6)).astype(np.float32)
    dout = rng.standard_normal((5, 6)).astype(np.float32)
    layer = LeakyReLU(0.2)
    y = layer.forward(x)
    dx = layer.backward(dout)
    y_ref, cache = F.leaky_relu_forward(x, 0.2)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(dx, F.leaky_relu_backward(dout, cache))
    assert layer.backward(dout, input_grad=False) is None


# ----------------------------------------------------------------------------------------------
# Adam: the out= path equals the plain array-API lines, bit for bit
# ----------------------------------------------------------------------------------------------
def _adam_run(dtype, fast, *, amsgrad=False, weight_decay=0.0, steps=5):
    rng = np.random.default_rng(5)
    model = Linear(7, 3, dtype=dtype, rng=1)
    opt = Adam(
        model.parameters(),
        lr=1e-2,
        betas=(0.5, 0.999),
        eps=1e-8,
        weight_decay=weight_decay,
        amsgrad=amsgrad,
    )
    with fast_paths(fast):
        for _ in range(steps):
            opt.zero_grad()
            for p in opt.params:
                p.grad[...] = rng.standard_normal(p.grad.shape) * rng.uniform(0.01, 10)
            opt.step()
    return [np.array(p.data) for p in opt.params], opt.state_dict()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_out_path_equals_plain_update_exactly(dtype, amsgrad, weight_decay):
    fast, fast_state = _adam_run(dtype, True, amsgrad=amsgrad, weight_decay=weight_decay)
    plain, plain_state = _adam_run(dtype, False, amsgrad=amsgrad, weight_decay=weight_decay)
    for a, b in zip(fast, plain, strict=True):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, b)
    for key, value in plain_state.items():
        np.testing.assert_array_equal(np.asarray(fast_state[key]), np.asarray(value))
    assert not any("scratch" in k for k in fast_state), "scratch buffers are not state"


def test_adam_out_path_changes_the_parameters():
    # guard against a vacuous equality: a run that updated nothing would also be "equal"
    fast, _ = _adam_run("float32", True)
    start = [np.array(p.data) for p in Linear(7, 3, dtype="float32", rng=1).parameters()]
    assert all(np.max(np.abs(a - b)) > 1e-3 for a, b in zip(fast, start, strict=True))


# ----------------------------------------------------------------------------------------------
# The whole GAN step against a reference built from the teaching functions only
# ----------------------------------------------------------------------------------------------
def _host_params(seq):
    """[(W, b), ...] host copies of a Sequential's Linear layers, in order."""
    return [
        (np.array(host(m.params["weight"])), np.array(host(m.params["bias"])))
        for m in seq.layers
        if isinstance(m, Linear)
    ]


def _mlp_forward(params, x, slope, tanh):
    caches = []
    for i, (w, b) in enumerate(params):
        x, c = F.linear_forward(x, w, b)
        caches.append(("linear", c))
        if i < len(params) - 1:
            x, c = F.leaky_relu_forward(x, slope)
            caches.append(("leaky", c))
    if tanh:
        x, c = F.tanh_forward(x)
        caches.append(("tanh", c))
    return x, caches


def _mlp_backward(dout, caches, *, need_dparams, need_input_grad):
    grads = []
    first = caches[0][1]
    for kind, c in reversed(caches):
        if kind == "linear":
            dx, dw, db = F.linear_backward(
                dout,
                c,
                need_dx=need_input_grad or c is not first,
                need_dparams=need_dparams,
            )
            grads.append((dw, db))
            dout = dx
        elif kind == "leaky":
            dout = F.leaky_relu_backward(dout, c)
        else:
            dout = F.tanh_backward(dout, c)
    return dout, grads[::-1]


class _RefAdam:
    """Adam's equations (Kingma & Ba 2015, Alg. 1, PyTorch's eps placement) on host arrays."""

    def __init__(self, params, lr, betas, eps):
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.m = [[np.zeros_like(a) for a in wb] for wb in params]
        self.v = [[np.zeros_like(a) for a in wb] for wb in params]
        self.t = 0

    def step(self, grads):
        self.t += 1
        b1, b2 = self.betas
        for i, (wb, gwb) in enumerate(zip(self.params, grads, strict=True)):
            for j, (p, g) in enumerate(zip(wb, gwb, strict=True)):
                m, v = self.m[i][j], self.v[i][j]
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * (g * g)
                denom = np.sqrt(v) / math.sqrt(1 - b2**self.t) + self.eps
                p -= self.lr / (1 - b1**self.t) * (m / denom)


def _reference_steps(gan, reals):
    """Run ``len(reals)`` GAN steps with the teaching functions; returns (losses, G, D)."""
    p = gan.preset
    G, D = _host_params(gan.generator), _host_params(gan.discriminator)
    g_opt = _RefAdam(G, p.lr, p.betas, p.eps)
    d_opt = _RefAdam(D, p.lr, p.betas, p.eps)
    rng = copy.deepcopy(gan.rng)
    dtype = G[0][0].dtype
    losses = []
    for real in reals:
        n = real.shape[0]
        ones, zeros = np.ones((n, 1), dtype), np.zeros((n, 1), dtype)
        z = rng.standard_normal((n, p.latent_dim), dtype=dtype)
        fake, g_caches = _mlp_forward(G, z, p.negative_slope, tanh=True)
        # D step: real, then fake (detached), gradients summed
        logits_r, c = _mlp_forward(D, real, p.negative_slope, tanh=False)
        loss_r, lc = F.bce_with_logits_forward(logits_r, ones)
        _, d_grads_r = _mlp_backward(
            F.bce_with_logits_backward(np.ones((), dtype), lc),
            c,
            need_dparams=True,
            need_input_grad=False,
        )
        logits_f, c = _mlp_forward(D, fake, p.negative_slope, tanh=False)
        loss_f, lc = F.bce_with_logits_forward(logits_f, zeros)
        _, d_grads_f = _mlp_backward(
            F.bce_with_logits_backward(np.ones((), dtype), lc),
            c,
            need_dparams=True,
            need_input_grad=False,
        )
        d_opt.step(
            [(wr + wf, br + bf) for (wr, br), (wf, bf) in zip(d_grads_r, d_grads_f, strict=True)]
        )
        # G step: non-saturating loss through the updated D; D's weights get no gradient
        logits, c = _mlp_forward(D, fake, p.negative_slope, tanh=False)
        g_loss, lc = F.bce_with_logits_forward(logits, ones)
        dfake, _ = _mlp_backward(
            F.bce_with_logits_backward(np.ones((), dtype), lc),
            c,
            need_dparams=False,
            need_input_grad=True,
        )
        _, g_grads = _mlp_backward(dfake, g_caches, need_dparams=True, need_input_grad=False)
        g_opt.step(g_grads)
        losses.append([float(loss_r + loss_f), float(g_loss)])
    return np.array(losses), G, D


def _rel(a, b) -> float:
    return float(np.max(np.abs(a - b)) / max(1e-30, float(np.max(np.abs(b)))))


@pytest.mark.parametrize(("dtype", "tol"), [("float64", 1e-12), ("float32", 1e-5)])
def test_fast_gan_step_equals_reference_step_from_teaching_functions(dtype, tol):
    gan = build_gan("classic", seed=3, dtype=dtype, **SMALL)
    rng = np.random.default_rng(9)
    reals = [rng.uniform(-1, 1, (8, SMALL["data_dim"])).astype(dtype) for _ in range(4)]
    want_losses, want_g, want_d = _reference_steps(gan, reals)

    got_losses = []
    for real in reals:
        out = gan.train_step(real)
        got_losses.append([float(out["d_loss"]), float(out["g_loss"])])
    assert _rel(np.array(got_losses), want_losses) < tol
    for got_seq, want in ((gan.generator, want_g), (gan.discriminator, want_d)):
        for (gw, gb), (ww, wb) in zip(_host_params(got_seq), want, strict=True):
            assert gw.dtype == np.dtype(dtype)
            assert _rel(gw, ww) < tol
            assert _rel(gb, wb) < tol
    # not vacuous: training moved the weights away from their initial values
    start = build_gan("classic", seed=3, dtype=dtype, **SMALL)
    assert _rel(_host_params(gan.generator)[0][0], _host_params(start.generator)[0][0]) > 1e-4


def _run_pair(reals, dtype, joint: bool):
    """The same GAN twice: fast paths on (``d_joint_batch=joint``) and all off."""
    fast, plain = (build_gan("classic", seed=1, dtype=dtype, **SMALL) for _ in range(2))
    fast.d_joint_batch = joint
    assert plain.d_joint_batch  # fast_paths(False) must switch the joint pass off by itself
    losses = []
    for real in reals:
        a = fast.train_step(real)
        with fast_paths(False):
            b = plain.train_step(real)
        losses.append([[float(a[k]), float(b[k])] for k in ("d_loss", "g_loss", "d_real")])
    return np.array(losses), fast.state_dict(), plain.state_dict()


def test_gan_step_fast_paths_except_joint_batch_are_bit_identical():
    rng = np.random.default_rng(2)
    reals = [rng.uniform(-1, 1, (8, SMALL["data_dim"])).astype(np.float32) for _ in range(3)]
    losses, sa, sb = _run_pair(reals, "float32", joint=False)
    np.testing.assert_array_equal(losses[..., 0], losses[..., 1])
    for key, value in sb.items():
        if key != "rng":
            np.testing.assert_array_equal(np.asarray(sa[key]), np.asarray(value), err_msg=key)


@pytest.mark.parametrize(("dtype", "tol"), [("float64", 1e-12), ("float32", 1e-5)])
def test_gan_step_joint_d_batch_equals_two_passes(dtype, tol):
    """D on [real; fake] in one pass vs the teaching form's two passes: the same math, the
    sums over rows taken in another order, so equal to rounding."""
    rng = np.random.default_rng(2)
    reals = [rng.uniform(-1, 1, (8, SMALL["data_dim"])).astype(dtype) for _ in range(4)]
    losses, sa, sb = _run_pair(reals, dtype, joint=True)
    assert _rel(losses[..., 0], losses[..., 1]) < tol
    for key, value in sb.items():
        if key != "rng" and hasattr(value, "shape"):
            assert _rel(np.asarray(sa[key]), np.asarray(value)) < tol, key


def test_joint_d_batch_only_for_row_wise_discriminators():
    """The joint pass is a property modules declare (``mixes_batch_rows``), not a type list:
    an unknown row-wise module keeps it, a module that says it mixes rows switches it off."""
    from minigan.layers import Module, Sequential

    class RowMixer(Module):  # stands for BatchNorm: each output row depends on all rows
        mixes_batch_rows = True

        def forward(self, x):
            return x - x.mean(axis=0)

    class RowWise(Module):  # not in any list of known types, acts row by row
        def forward(self, x):
            return x

    gan = build_gan(seed=0, **SMALL)
    assert gan.d_joint_batch
    for mod, joint in ((RowMixer(), False), (RowWise(), True)):
        d = Sequential(*gan.discriminator.layers[:1], mod, *gan.discriminator.layers[1:])
        other = type(gan)(gan.generator, d, SMALL["latent_dim"], gan.g_optimizer, gan.d_optimizer)
        assert other.d_joint_batch is joint


def test_fast_paths_off_reaches_leaky_relu(monkeypatch):
    """``fast_paths(False)`` promises the plain lines everywhere: LeakyReLU too (it ran the
    fast pair regardless before)."""
    calls = []
    for name in ("leaky_relu_forward", "leaky_relu_backward"):
        real = getattr(F, name)
        monkeypatch.setattr(F, name, lambda *a, _r=real, _n=name: calls.append(_n) or _r(*a))
    layer = LeakyReLU(0.2)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    y_fast = layer.forward(x)
    dx_fast = layer.backward(x)
    assert calls == []
    with fast_paths(False):
        y = layer.forward(x)
        dx = layer.backward(x)
    assert calls == ["leaky_relu_forward", "leaky_relu_backward"]
    np.testing.assert_array_equal(y, y_fast)
    np.testing.assert_array_equal(dx, dx_fast)


def test_gan_step_on_array_api_strict_equals_numpy(backend):
    """The fast paths run only on NumPy/CuPy; array-api-strict takes the plain lines. Same
    numbers in float64 (1e-12), so the two forms agree inside the real training step too."""
    if backend.name == "cpu":
        pytest.skip("this test compares another backend with NumPy")
    rng = np.random.default_rng(4)
    reals = [rng.uniform(-1, 1, (8, SMALL["data_dim"])) for _ in range(3)]
    ref = build_gan(seed=2, dtype="float64", **SMALL)
    other = build_gan(seed=2, dtype="float64", device=backend, **SMALL)
    for real in reals:
        a = ref.train_step(real)
        b = other.train_step(backend.asarray(real, "float64"))
        assert abs(float(a["g_loss"]) - float(host(b["g_loss"]))) < 1e-12
    for key, value in ref.state_dict().items():
        if key != "rng" and hasattr(value, "shape"):
            assert _rel(host(other.state_dict()[key]), np.asarray(value)) < 1e-12, key


# ----------------------------------------------------------------------------------------------
# Flat parameters: one update over one flat array == one update per parameter, bit for bit
# ----------------------------------------------------------------------------------------------
OPTIMIZER_CASES = {
    "adam": lambda ps: Adam(ps, lr=1e-2, betas=(0.5, 0.999)),
    "adam-amsgrad-wd": lambda ps: Adam(ps, lr=1e-2, amsgrad=True, weight_decay=0.1),
    "sgd-momentum-wd": lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.1),
    "sgd-nesterov": lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    "sgd-plain": lambda ps: SGD(ps, lr=0.1),
    "rmsprop-centered-momentum": lambda ps: RMSprop(ps, lr=1e-2, centered=True, momentum=0.5),
    "rmsprop": lambda ps: RMSprop(ps, lr=1e-2, weight_decay=0.1),
}


def _mlp(dtype="float32", device="cpu"):
    return Sequential(
        Linear(5, 7, dtype=dtype, device=device, rng=1),
        LeakyReLU(0.2),
        Linear(7, 3, dtype=dtype, device=device, rng=2),
    )


def _optimizer_run(make_opt, fast, *, dtype="float32", steps=4, frozen_at=(), device="cpu"):
    """A few steps with random gradients; the second layer frozen at the steps in
    ``frozen_at`` (so the step counts differ from then on)."""
    rng = np.random.default_rng(3)
    model = _mlp(dtype, device)
    opt = make_opt(model.parameters())
    with fast_paths(fast):
        for step in range(steps):
            model.layers[2].requires_grad_(step not in frozen_at)
            opt.zero_grad()
            for p in opt.params:
                g = rng.standard_normal(p.grad.shape) * rng.uniform(0.01, 10)
                p.grad[...] = backend_of(p.grad).asarray(g, dtype=p.grad.dtype)
            opt.step()
    model.requires_grad_(True)
    return model, opt


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(OPTIMIZER_CASES))
@pytest.mark.parametrize("frozen_at", [(), (1,)], ids=["same-steps", "one-frozen-step"])
def test_flat_update_equals_per_parameter_update_exactly(name, dtype, frozen_at):
    fast_model, fast = _optimizer_run(OPTIMIZER_CASES[name], True, dtype=dtype, frozen_at=frozen_at)
    plain_model, plain = _optimizer_run(
        OPTIMIZER_CASES[name], False, dtype=dtype, frozen_at=frozen_at
    )
    assert fast._flat is not None  # the fast run did have a flat buffer
    for key, value in plain_model.state_dict().items():
        np.testing.assert_array_equal(fast_model.state_dict()[key], value, err_msg=key)
    assert fast.state_dict().keys() == plain.state_dict().keys()
    for key, value in plain.state_dict().items():
        np.testing.assert_array_equal(np.asarray(fast.state_dict()[key]), np.asarray(value), key)
    assert fast.param_steps == plain.param_steps == [4, 4, 4 - len(frozen_at), 4 - len(frozen_at)]


def test_flat_buffer_holds_the_parameters_gradients_and_state():
    model = _mlp()
    before = {k: np.array(v) for k, v in model.state_dict().items()}
    opt = Adam(model.parameters())
    flat = opt._flat
    assert flat.data.shape == (5 * 7 + 7 + 7 * 3 + 3,)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])  # same values, now views
    for p in opt.params:
        assert np.shares_memory(p.data, flat.data) and np.shares_memory(p.grad, flat.grad)
    opt.zero_grad()
    _optimizer_step_with_grads(opt)
    for b in opt.state["exp_avg"]:
        assert np.shares_memory(b, opt._flat_state["exp_avg"])
    opt.zero_grad()
    assert not np.any(flat.grad)


def _optimizer_step_with_grads(opt, seed=0):
    rng = np.random.default_rng(seed)
    for p in opt.params:
        p.grad[...] = rng.standard_normal(p.grad.shape)
    opt.step()


def test_flat_state_dict_round_trip_resumes_bit_identically():
    model, opt = _optimizer_run(OPTIMIZER_CASES["adam"], True, steps=3)
    saved_model = {k: np.array(v) for k, v in model.state_dict().items()}
    saved_opt = {k: np.array(v) if hasattr(v, "shape") else v for k, v in opt.state_dict().items()}
    _optimizer_step_with_grads(opt, seed=9)
    resumed = _mlp()
    resumed.load_state_dict(saved_model)
    opt2 = Adam(resumed.parameters(), lr=1e-2, betas=(0.5, 0.999))
    opt2.load_state_dict(saved_opt)
    assert all(np.shares_memory(b, opt2._flat_state["exp_avg"]) for b in opt2.state["exp_avg"])
    _optimizer_step_with_grads(opt2, seed=9)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[key], value, err_msg=key)
    for key, value in opt.state_dict().items():
        np.testing.assert_array_equal(np.asarray(opt2.state_dict()[key]), np.asarray(value), key)


def test_replaced_arrays_leave_the_flat_path_and_stay_correct():
    model = _mlp()
    opt = SGD(model.parameters(), lr=0.5)
    model.layers[0].params["weight"] = np.array(model.layers[0].params["weight"])  # not a view
    assert opt._flat_now() is None
    w0 = np.array(model.layers[0].weight)
    opt.zero_grad()
    model.layers[0].grads["weight"][...] = 1.0
    opt.step()
    np.testing.assert_array_equal(model.layers[0].weight, w0 - np.float32(0.5))
    assert flat_gradient(opt.params) is None


@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_flat_equals_per_parameter(max_norm):
    norms, grads = [], []
    for fast in (True, False):
        model = _mlp("float64")
        opt = SGD(model.parameters(), lr=0.1)
        rng = np.random.default_rng(1)
        for p in opt.params:
            p.grad[...] = rng.standard_normal(p.grad.shape)
        with fast_paths(fast):
            assert (flat_gradient(opt.params) is not None) is fast
            norms.append(float(clip_grad_norm_(opt.params, max_norm)))
            norms.append(float(grad_norm(model)))
        grads.append(np.concatenate([np.ravel(p.grad) for p in opt.params]))
    assert abs(norms[0] - norms[2]) <= 1e-14 * norms[2]  # summation order only
    assert abs(norms[1] - norms[3]) <= 1e-14 * norms[3]
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-14)
    assert norms[1] == pytest.approx(min(norms[0], max_norm), rel=1e-5)  # it did clip


def test_no_flat_buffer_without_views(backend):
    """array-api-strict promises no views of a slice: per-parameter arrays, same numbers."""
    model = _mlp("float64", backend)
    opt = Adam(model.parameters())
    if backend.name == "cpu":
        assert opt._flat is not None
        return
    assert opt._flat is None and flatten_parameters(opt.params) is None
    assert flat_gradient(opt.params) is None
    ref_model, ref = _optimizer_run(OPTIMIZER_CASES["adam"], True, dtype="float64")
    got_model, got = _optimizer_run(OPTIMIZER_CASES["adam"], True, dtype="float64", device=backend)
    for key, value in ref_model.state_dict().items():
        assert _rel(host(got_model.state_dict()[key]), np.asarray(value)) < 1e-12, key


@pytest.mark.parametrize("block", [1, 16, 50, 1 << 17])
@pytest.mark.parametrize("name", ["adam", "adam-amsgrad-wd"])
def test_adam_blocked_flat_update_equals_per_parameter_update(monkeypatch, name, block):
    """Adam's fast path walks the flat arrays in blocks (the last one partial): same numbers."""
    monkeypatch.setattr(Adam, "block", block)
    fast_model, _ = _optimizer_run(OPTIMIZER_CASES[name], True)
    plain_model, _ = _optimizer_run(OPTIMIZER_CASES[name], False)
    for key, value in plain_model.state_dict().items():
        np.testing.assert_array_equal(fast_model.state_dict()[key], value, err_msg=key)
