"""SGD, Adam and clip_grad_norm_ on every backend.

The trajectories over 100 steps on a small quadratic must equal a reference written here from
the published update equations, to 1e-10 in float64:

* SGD: PyTorch's documented algorithm (``torch.optim.SGD``: weight decay, momentum with
  dampening, Nesterov), where the first step sets the momentum buffer to the gradient;
* Adam: Kingma & Ba (2015), Algorithm 1 (bias-corrected moments, ``eps`` added to
  ``sqrt(v_hat)``), with PyTorch's L2 ``weight_decay`` (added to the gradient) and AMSGrad as
  ``torch.optim.Adam`` computes it: the running max is taken of the raw second moment ``v_t``
  and then bias corrected (PyTorch docs since pytorch/pytorch#142351, matching its code).

When PyTorch is installed the same runs are also compared with ``torch.optim``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import dtype_name, host, require_torch

from minigan import SGD, Adam, Linear, clip_grad_norm_
from minigan.backend import resolve_device

STEPS = 100
TRAJ_TOL = 1e-10


# ----------------------------------------------------------------------------------------------
# The quadratic: f(p) = 1/2 sum_i c_i (p_i - t_i)^2 over a Linear(3, 2)'s weight and bias
# ----------------------------------------------------------------------------------------------
class Quadratic:
    """Curvatures ``c`` (0.5 .. 3) and targets ``t`` per parameter, on the host and the backend."""

    def __init__(self, backend, dtype="float64"):
        hrng = np.random.default_rng(7)
        self.model = Linear(3, 2, dtype=dtype, device=backend, rng=11)
        self.params = self.model.parameters()
        shapes = [tuple(p.data.shape) for p in self.params]
        self.c_host = [hrng.uniform(0.5, 3.0, s) for s in shapes]
        self.t_host = [hrng.standard_normal(s) for s in shapes]
        self.c = [backend.asarray(c, dtype) for c in self.c_host]
        self.t = [backend.asarray(t, dtype) for t in self.t_host]
        self.p0 = [host(p.data).astype(np.float64) for p in self.params]

    def set_grads(self):
        """grad = c * (p - t), computed on the backend, written into the gradient in place."""
        for p, c, t in zip(self.params, self.c, self.t, strict=True):
            p.grad[...] = c * (p.data - t)

    def run(self, opt, steps=STEPS):
        traj = []
        for _ in range(steps):
            opt.zero_grad()
            self.set_grads()
            opt.step()
            traj.append([host(p.data).copy() for p in self.params])
        return traj

    def grad_host(self, i, p):
        return self.c_host[i] * (p - self.t_host[i])

    def value(self, ps):
        return sum(
            0.5 * float(np.sum(c * (p - t) ** 2))
            for c, p, t in zip(self.c_host, ps, self.t_host, strict=True)
        )


def sgd_reference(q, steps, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    """torch.optim.SGD's documented algorithm, step by step, in float64 NumPy."""
    ps = [p.copy() for p in q.p0]
    bufs = [None] * len(ps)
    traj = []
    for _ in range(steps):
        for i, p in enumerate(ps):
            g = q.grad_host(i, p)
            if weight_decay != 0:
                g = g + weight_decay * p
            if momentum != 0:
                if bufs[i] is None:
                    bufs[i] = g.copy()
                else:
                    bufs[i] = momentum * bufs[i] + (1 - dampening) * g
                g = g + momentum * bufs[i] if nesterov else bufs[i]
            ps[i] = p - lr * g
        traj.append([p.copy() for p in ps])
    return traj


def adam_reference(
    q, steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False
):
    """Kingma & Ba (2015) Algorithm 1 (+ PyTorch's weight decay and AMSGrad), float64 NumPy."""
    b1, b2 = betas
    ps = [p.copy() for p in q.p0]
    m = [np.zeros_like(p) for p in ps]
    v = [np.zeros_like(p) for p in ps]
    vmax = [np.zeros_like(p) for p in ps]
    traj, amsgrad_mattered = [], False
    for t in range(1, steps + 1):
        for i, p in enumerate(ps):
            g = q.grad_host(i, p)
            if weight_decay != 0:
                g = g + weight_decay * p
            m[i] = b1 * m[i] + (1 - b1) * g  # biased first moment estimate
            v[i] = b2 * v[i] + (1 - b2) * g**2  # biased second raw moment estimate
            m_hat = m[i] / (1 - b1**t)  # bias-corrected first moment
            if amsgrad:
                amsgrad_mattered |= bool(np.any(v[i] < vmax[i]))
                vmax[i] = np.maximum(vmax[i], v[i])
                v_hat = vmax[i] / (1 - b2**t)
            else:
                v_hat = v[i] / (1 - b2**t)  # bias-corrected second moment
            ps[i] = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        traj.append([p.copy() for p in ps])
    if amsgrad:
        assert amsgrad_mattered, "test setup: the running max never differed from v_t"
    return traj


def max_deviation(traj, ref):
    return max(
        float(np.max(np.abs(a - b)))
        for step_a, step_b in zip(traj, ref, strict=True)
        for a, b in zip(step_a, step_b, strict=True)
    )


SGD_CASES = {
    "plain": dict(lr=0.1),
    "momentum=0.9": dict(lr=0.05, momentum=0.9),
    "momentum=0.9,dampening=0.3": dict(lr=0.05, momentum=0.9, dampening=0.3),
    "nesterov": dict(lr=0.05, momentum=0.9, nesterov=True),
    "momentum,weight_decay=0.1": dict(lr=0.05, momentum=0.5, weight_decay=0.1),
}
ADAM_CASES = {
    "default": dict(),
    "lr=0.05,betas=(0.5,0.999)": dict(lr=0.05, betas=(0.5, 0.999)),
    "weight_decay=0.1": dict(lr=0.05, weight_decay=0.1),
    "amsgrad": dict(lr=0.1, betas=(0.5, 0.9), amsgrad=True),
    "amsgrad,weight_decay=0.05": dict(lr=0.1, betas=(0.5, 0.9), amsgrad=True, weight_decay=0.05),
}


@pytest.mark.parametrize("case", list(SGD_CASES))
def test_sgd_trajectory_matches_reference(backend, record_figure, case):
    q = Quadratic(backend)
    kw = SGD_CASES[case]
    traj = q.run(SGD(q.params, **kw))
    ref = sgd_reference(q, STEPS, **kw)
    dev = max_deviation(traj, ref)
    record_figure("optimizer trajectory max |minigan - reference| (100 steps)", f"SGD {case}", dev)
    assert dev < TRAJ_TOL
    assert q.value(traj[-1]) < 1e-3 * q.value(q.p0)  # and it really optimizes


@pytest.mark.parametrize("case", list(ADAM_CASES))
def test_adam_trajectory_matches_reference(backend, record_figure, case):
    q = Quadratic(backend)
    kw = ADAM_CASES[case]
    traj = q.run(Adam(q.params, **kw))
    ref = adam_reference(q, STEPS, **kw)
    dev = max_deviation(traj, ref)
    record_figure("optimizer trajectory max |minigan - reference| (100 steps)", f"Adam {case}", dev)
    assert dev < TRAJ_TOL
    assert q.value(traj[-1]) < q.value(q.p0)


def test_amsgrad_changes_the_trajectory(backend):
    plain, ams = Quadratic(backend), Quadratic(backend)
    a = plain.run(Adam(plain.params, lr=0.1, betas=(0.5, 0.9)))
    b = ams.run(Adam(ams.params, lr=0.1, betas=(0.5, 0.9), amsgrad=True))
    assert max_deviation(a, b) > 1e-3


def _torch_run(q, torch, cls, kw, steps=STEPS):
    tparams = [torch.tensor(p, requires_grad=True) for p in q.p0]
    opt = getattr(torch.optim, cls)(tparams, **kw)
    traj = []
    for _ in range(steps):
        opt.zero_grad()
        for i, p in enumerate(tparams):
            p.grad = torch.tensor(q.grad_host(i, p.detach().numpy()))
        opt.step()
        traj.append([p.detach().numpy().copy() for p in tparams])
    return traj


@pytest.mark.parametrize(
    "cls,case", [("SGD", c) for c in SGD_CASES] + [("Adam", c) for c in ADAM_CASES]
)
def test_matches_torch_optim(backend, record_figure, cls, case):
    torch = require_torch()
    q = Quadratic(backend)
    kw = (SGD_CASES if cls == "SGD" else ADAM_CASES)[case]
    ours = q.run({"SGD": SGD, "Adam": Adam}[cls](q.params, **kw))
    dev = max_deviation(ours, _torch_run(q, torch, cls, kw))
    record_figure(
        "optimizer trajectory max |minigan - torch.optim| (100 steps)", f"{cls} {case}", dev
    )
    assert dev < TRAJ_TOL


# ----------------------------------------------------------------------------------------------
# state_dict round trip, in-place updates, zero_grad, frozen parameters
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
        lambda ps: Adam(ps, lr=0.05, betas=(0.5, 0.9), amsgrad=True, weight_decay=0.01),
    ],
    ids=["SGD", "Adam"],
)
def test_state_dict_round_trip_continues_identically(backend, make_opt):
    full = Quadratic(backend)
    traj_full = full.run(make_opt(full.params), steps=60)

    first = Quadratic(backend)
    opt = make_opt(first.params)
    first.run(opt, steps=30)
    # A checkpoint holds host arrays: move everything to NumPy, then into fresh objects.
    model_state = {k: np.array(host(v)) for k, v in first.model.state_dict().items()}
    opt_state = {
        k: (np.array(host(v)) if hasattr(v, "shape") else v) for k, v in opt.state_dict().items()
    }
    assert opt_state["step"] == 30

    resumed = Quadratic(backend)
    resumed.model.load_state_dict(model_state)
    opt2 = make_opt(resumed.params)
    opt2.load_state_dict(opt_state)
    assert opt2.step_count == 30
    for name, bufs in opt2.state.items():
        for b, b_ref in zip(bufs, opt.state[name], strict=True):
            assert type(b) is type(b_ref) and dtype_name(b) == "float64"
    traj_resumed = resumed.run(opt2, steps=30)
    for a, b in zip(traj_resumed, traj_full[30:], strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_state_dict_keys(backend):
    q = Quadratic(backend)
    adam = Adam(q.params, amsgrad=True)
    q.run(adam, steps=1)
    keys = set(adam.state_dict())
    assert {"step", "lr", "beta1", "beta2", "eps", "weight_decay"} <= keys
    for buf in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        assert {f"{buf}.0", f"{buf}.1"} <= keys
    sgd = SGD(q.params, lr=0.1, momentum=0.9)
    q.run(sgd, steps=1)
    assert {"step", "lr", "momentum", "momentum_buffer.0", "momentum_buffer.1"} <= set(
        sgd.state_dict()
    )


def test_load_state_dict_errors(backend):
    q = Quadratic(backend)
    opt = Adam(q.params)
    q.run(opt, steps=1)
    state = {
        k: (np.array(host(v)) if hasattr(v, "shape") else v) for k, v in opt.state_dict().items()
    }
    bad = dict(state, **{"exp_avg.1": np.zeros((3,))})
    with pytest.raises(ValueError, match=r"exp_avg\.1: expected shape \(2,\), got \(3,\)"):
        Adam(q.params).load_state_dict(bad)
    missing = {k: v for k, v in state.items() if k != "exp_avg_sq.0"}
    with pytest.raises(KeyError, match=r"missing 'exp_avg_sq\.0'"):
        Adam(q.params).load_state_dict(missing)


@pytest.mark.parametrize(
    "make_opt",
    [lambda ps: SGD(ps, lr=0.1, momentum=0.9), lambda ps: Adam(ps, lr=0.1)],
    ids=["SGD", "Adam"],
)
def test_updates_in_place_and_zero_grad(backend, make_opt):
    q = Quadratic(backend)
    opt = make_opt(q.params)  # on NumPy this moves the arrays into one flat buffer: take them now
    arrays = [p.data for p in q.params]
    q.set_grads()
    opt.step()
    assert all(p.data is a for p, a in zip(q.params, arrays, strict=True))
    assert not np.array_equal(host(arrays[0]), q.p0[0])
    opt.zero_grad()
    assert all(np.all(host(p.grad) == 0) for p in q.params)


def test_frozen_parameters_are_skipped(backend):
    q = Quadratic(backend)
    q.model.requires_grad_(False)
    opt = Adam(q.params, lr=0.1)
    q.set_grads()
    opt.step()
    for p, p0 in zip(q.params, q.p0, strict=True):
        np.testing.assert_array_equal(host(p.data), p0)


# ----------------------------------------------------------------------------------------------
# float32 stays float32
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: SGD(ps, lr=0.1),
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.1),
        lambda ps: Adam(ps),
        lambda ps: Adam(ps, lr=0.01, weight_decay=0.1, amsgrad=True),
    ],
    ids=["SGD", "SGD-nesterov-wd", "SGD-dampening", "Adam", "Adam-amsgrad-wd"],
)
def test_float32_params_and_state_stay_float32(backend, make_opt):
    q = Quadratic(backend, dtype="float32")
    opt = make_opt(q.params)
    q.run(opt, steps=3)
    for p in q.params:
        assert (dtype_name(p.data), dtype_name(p.grad)) == ("float32", "float32")
    arrays = [v for k, v in opt.state_dict().items() if hasattr(v, "shape")]
    buffer_keys = [k for k in opt.state_dict() if k.endswith(".0") and not k.startswith("step.")]
    assert arrays or not buffer_keys  # per-parameter step counts ("step.0") are ints
    assert all(dtype_name(a) == "float32" for a in arrays)
    total = clip_grad_norm_(q.params, 0.01)
    assert dtype_name(total) == "float32"
    assert all(dtype_name(p.grad) == "float32" for p in q.params)


@pytest.mark.parametrize("cls,case", [("SGD", "nesterov"), ("Adam", "amsgrad,weight_decay=0.05")])
def test_float32_trajectory_matches_float64_numpy(backend, cls, case):
    # STYLE.md: float32 (and GPU) results are checked against a float64 NumPy run.
    kw = (SGD_CASES if cls == "SGD" else ADAM_CASES)[case]
    opt_cls = {"SGD": SGD, "Adam": Adam}[cls]
    ref, ours = Quadratic(resolve_device("cpu")), Quadratic(backend, dtype="float32")
    a = ref.run(opt_cls(ref.params, **kw), steps=20)
    b = ours.run(opt_cls(ours.params, **kw), steps=20)
    for step_a, step_b in zip(a, b, strict=True):
        for x, y in zip(step_a, step_b, strict=True):
            np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# clip_grad_norm_
# ----------------------------------------------------------------------------------------------
def test_clip_grad_norm_returns_norm_and_clips(backend):
    q = Quadratic(backend)
    q.set_grads()
    g = [host(p.grad).copy() for p in q.params]
    norm = math.sqrt(sum(float(np.sum(x**2)) for x in g))
    total = clip_grad_norm_(q.params, max_norm=0.5 * norm)
    # the norm before clipping, as a 0-d array of the parameters' backend (no host sync)
    assert type(total) is type(q.params[0].data) and tuple(total.shape) == ()
    assert float(host(total)) == pytest.approx(norm, rel=1e-14)
    coef = 0.5 * norm / (norm + 1e-6)  # torch.nn.utils.clip_grad_norm_'s factor
    for p, x in zip(q.params, g, strict=True):
        np.testing.assert_allclose(host(p.grad), coef * x, rtol=1e-14)
    new_norm = math.sqrt(sum(float(np.sum(host(p.grad) ** 2)) for p in q.params))
    assert new_norm == pytest.approx(0.5 * norm, rel=1e-5) and new_norm <= 0.5 * norm


def test_clip_grad_norm_leaves_small_gradients_alone(backend):
    q = Quadratic(backend)
    q.set_grads()
    g = [host(p.grad).copy() for p in q.params]
    norm = math.sqrt(sum(float(np.sum(x**2)) for x in g))
    total = clip_grad_norm_(q.params, max_norm=2 * norm)
    assert float(host(total)) == pytest.approx(norm, rel=1e-14)
    for p, x in zip(q.params, g, strict=True):
        np.testing.assert_array_equal(host(p.grad), x)


def test_clip_grad_norm_matches_torch(backend):
    torch = require_torch()
    q = Quadratic(backend)
    q.set_grads()
    tparams = [torch.tensor(p, requires_grad=True) for p in q.p0]
    for p, tp in zip(q.params, tparams, strict=True):
        tp.grad = torch.tensor(host(p.grad))
    total = clip_grad_norm_(q.params, 0.3)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, 0.3)
    assert float(host(total)) == pytest.approx(float(ttotal), rel=1e-14)
    for p, tp in zip(q.params, tparams, strict=True):
        np.testing.assert_allclose(host(p.grad), tp.grad.numpy(), rtol=1e-14)


def test_clip_grad_norm_errors(backend):
    q = Quadratic(backend)
    with pytest.raises(ValueError, match=r"max_norm: expected a value > 0, got 0"):
        clip_grad_norm_(q.params, 0)
    with pytest.raises(ValueError, match=r"got no parameters"):
        clip_grad_norm_([], 1.0)


# ----------------------------------------------------------------------------------------------
# Hyperparameter errors
# ----------------------------------------------------------------------------------------------
def _params():
    return Linear(2, 2, device=resolve_device("cpu"), rng=0).parameters()


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: SGD(_params(), lr=-0.1), r"lr: expected a finite number >= 0, got -0\.1"),
        (lambda: SGD(_params(), lr=float("nan")), r"lr: expected a finite number >= 0, got nan"),
        (lambda: Adam(_params(), lr=-1e-3), r"lr: expected a finite number >= 0, got -0\.001"),
        (lambda: SGD(_params(), lr=0.1, momentum=-0.5), r"momentum: expected a value >= 0"),
        (lambda: SGD(_params(), lr=0.1, weight_decay=-1), r"weight_decay: expected a value >= 0"),
        (lambda: SGD(_params(), lr=0.1, nesterov=True), r"nesterov momentum needs momentum > 0"),
        (
            lambda: SGD(_params(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
            r"dampening == 0",
        ),
        (lambda: Adam(_params(), betas=(0.9, 1.0)), r"betas\[1\]: expected a value in \[0, 1\)"),
        (lambda: Adam(_params(), betas=(-0.1, 0.9)), r"betas\[0\]: expected a value in \[0, 1\)"),
        (lambda: Adam(_params(), betas=(0.9,)), r"betas: expected two values"),
        (lambda: Adam(_params(), eps=-1e-8), r"eps: expected a finite value > 0, got -1e-08"),
        # issue 15 item 4: eps=0 is 0/0 on a zero gradient; NaN hyperparameters were accepted.
        (lambda: Adam(_params(), eps=0.0), r"eps: expected a finite value > 0, got 0\.0"),
        (lambda: Adam(_params(), eps=float("nan")), r"eps: expected a finite value > 0"),
        (lambda: Adam(_params(), eps=float("inf")), r"eps: expected a finite value > 0"),
        (lambda: Adam(_params(), betas=(float("nan"), 0.9)), r"betas\[0\]: expected a value"),
        (lambda: Adam(_params(), weight_decay=float("nan")), r"weight_decay: expected a value"),
        (lambda: SGD(_params(), lr=0.1, momentum=float("nan")), r"momentum: expected a value"),
        (lambda: SGD(_params(), lr=0.1, momentum=float("inf")), r"momentum: expected a value"),
        (lambda: SGD(_params(), lr=0.1, dampening="0.1"), r"dampening: expected a value"),
        (lambda: Adam(_params(), weight_decay=-0.1), r"weight_decay: expected a value >= 0"),
        (lambda: Adam([]), r"empty parameter list"),
    ],
    ids=[
        "sgd-negative-lr",
        "sgd-nan-lr",
        "adam-negative-lr",
        "negative-momentum",
        "sgd-negative-wd",
        "nesterov-no-momentum",
        "nesterov-dampening",
        "beta2=1",
        "beta1<0",
        "one-beta",
        "negative-eps",
        "zero-eps",
        "nan-eps",
        "inf-eps",
        "nan-beta",
        "nan-wd",
        "nan-momentum",
        "inf-momentum",
        "str-dampening",
        "adam-negative-wd",
        "no-params",
    ],
)
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ----------------------------------------------------------------------------------------------
# Learning-rate schedules
# ----------------------------------------------------------------------------------------------
def _linear_reference(step: int, total: int, start: float, end: float) -> float:
    """The documented formula, written out: 1 up to ``start``, then a straight line to ``end``."""
    p = min(step / total, 1.0)
    return 1.0 if p <= start else 1.0 + (end - 1.0) * (p - start) / (1.0 - start)


@pytest.mark.parametrize(("start", "end"), [(0.0, 0.0), (0.5, 0.0), (0.3, 0.25)])
def test_linear_decay_factor_is_one_then_a_line_to_end_factor(start, end):
    from minigan.optim import LinearDecayLR

    s = LinearDecayLR(start=start, end_factor=end)
    got = [s.factor(i, 20) for i in range(0, 25)]
    assert got == pytest.approx([_linear_reference(i, 20, start, end) for i in range(0, 25)])
    assert got[0] == 1.0 and got[20] == pytest.approx(end) and got[24] == got[20]
    assert all(a >= b for a, b in zip(got, got[1:], strict=False))  # never rises


def test_linear_decay_matches_torch_sequential_lr():
    torch = require_torch()
    from minigan.optim import LinearDecayLR

    total, start, end = 20, 0.5, 0.0
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    s = int(start * total)
    sched = torch.optim.lr_scheduler.SequentialLR(
        opt,
        [
            torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=s),
            torch.optim.lr_scheduler.LinearLR(opt, 1.0, end, total_iters=total - s),
        ],
        milestones=[s],
    )
    theirs = []
    for _ in range(total):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = [LinearDecayLR(start, end).factor(i, total) for i in range(total)]
    assert ours == pytest.approx(theirs, abs=1e-12)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"start": 1.0}, r"lr schedule start: expected a fraction in \[0, 1\), got 1.0"),
        ({"start": -0.1}, r"lr schedule start: expected a fraction in \[0, 1\), got -0.1"),
        ({"end_factor": 1.5}, r"lr schedule end_factor: expected a value in \[0, 1\], got 1.5"),
    ],
)
def test_linear_decay_bad_settings(kw, match):
    from minigan.optim import LinearDecayLR, make_lr_schedule

    with pytest.raises(ValueError, match=match):
        LinearDecayLR(**kw)
    with pytest.raises(ValueError, match=r"lr_schedule: expected one of \['linear'\], got 'cos'"):
        make_lr_schedule("cos")
    with pytest.raises(ValueError, match=r"total_steps: expected an int >= 1, got 0"):
        LinearDecayLR().factor(0, 0)
