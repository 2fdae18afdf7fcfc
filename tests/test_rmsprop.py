"""RMSprop, per-parameter step counts and the optimizer registry.

RMSprop's trajectory over 100 steps on the quadratic of ``test_optim`` must equal a reference
written here from ``torch.optim.RMSprop``'s documented algorithm, to 1e-10 in float64, for every
combination of weight decay, momentum and centering; when PyTorch is installed, the same runs are
also compared with ``torch.optim.RMSprop``.

Per-parameter steps: a parameter frozen for some steps (PyTorch: its ``grad`` is None) keeps its
own count, so Adam's bias corrections and SGD's first momentum step match PyTorch after it is
unfrozen; old optimizer states with a single ``step`` still load.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import dtype_name, host, require_torch
from test_optim import Quadratic, _torch_run, max_deviation

from minigan import Linear, Sequential
from minigan.optim import OPTIMIZERS, SGD, Adam, RMSprop

STEPS = 100
TRAJ_TOL = 1e-10


def rmsprop_reference(
    q, steps, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False
):
    """torch.optim.RMSprop's documented algorithm, step by step, in float64 NumPy."""
    ps = [p.copy() for p in q.p0]
    v = [np.zeros_like(p) for p in ps]
    g_avg = [np.zeros_like(p) for p in ps]
    buf = [np.zeros_like(p) for p in ps]
    traj = []
    for _ in range(steps):
        for i, p in enumerate(ps):
            g = q.grad_host(i, p)
            if weight_decay != 0:
                g = g + weight_decay * p
            v[i] = alpha * v[i] + (1 - alpha) * g**2
            v_tilde = v[i]
            if centered:
                g_avg[i] = alpha * g_avg[i] + (1 - alpha) * g
                v_tilde = v_tilde - g_avg[i] ** 2
            if momentum > 0:
                buf[i] = momentum * buf[i] + g / (np.sqrt(v_tilde) + eps)
                ps[i] = p - lr * buf[i]
            else:
                ps[i] = p - lr * g / (np.sqrt(v_tilde) + eps)
        traj.append([p.copy() for p in ps])
    return traj


# lr 1e-3: at lr 1e-2 RMSprop without momentum reaches a sign-like oscillation around the
# optimum where a 1-ulp difference (PyTorch's fused addcdiv) grows ~4x per step; here the
# trajectory contracts, so the comparison measures the update rule, not the chaos.
RMS_CASES = {
    f"wd={wd},momentum={mom},centered={c}": dict(
        lr=1e-3, alpha=0.9, weight_decay=wd, momentum=mom, centered=c
    )
    for wd, mom, c in itertools.product((0.0, 0.1), (0.0, 0.9), (False, True))
}
RMS_CASES["defaults"] = dict()


@pytest.mark.parametrize("case", list(RMS_CASES))
def test_rmsprop_trajectory_matches_reference(backend, record_figure, case):
    q = Quadratic(backend)
    kw = RMS_CASES[case]
    traj = q.run(RMSprop(q.params, **kw))
    dev = max_deviation(traj, rmsprop_reference(q, STEPS, **kw))
    record_figure(
        "optimizer trajectory max |minigan - reference| (100 steps)", f"RMSprop {case}", dev
    )
    assert dev < TRAJ_TOL
    assert q.value(traj[-1]) < q.value(q.p0)


@pytest.mark.parametrize("case", list(RMS_CASES))
def test_rmsprop_matches_torch(backend, record_figure, case):
    torch = require_torch()
    q = Quadratic(backend)
    kw = RMS_CASES[case]
    ours = q.run(RMSprop(q.params, **kw))
    dev = max_deviation(ours, _torch_run(q, torch, "RMSprop", kw))
    record_figure(
        "optimizer trajectory max |minigan - torch.optim| (100 steps)", f"RMSprop {case}", dev
    )
    assert dev < TRAJ_TOL


def test_rmsprop_state_round_trip_and_keys(backend):
    kw = dict(lr=0.01, alpha=0.9, momentum=0.9, centered=True, weight_decay=0.1)
    full = Quadratic(backend)
    traj_full = full.run(RMSprop(full.params, **kw), steps=40)
    first = Quadratic(backend)
    opt = RMSprop(first.params, **kw)
    first.run(opt, steps=20)
    state = {
        k: (np.array(host(v)) if hasattr(v, "shape") else v) for k, v in opt.state_dict().items()
    }
    for buf in ("square_avg", "grad_avg", "momentum_buffer"):
        assert {f"{buf}.0", f"{buf}.1"} <= set(state)
    assert {"step", "step.0", "step.1", "lr", "alpha", "eps", "momentum"} <= set(state)
    resumed = Quadratic(backend)
    resumed.model.load_state_dict(
        {k: np.array(host(v)) for k, v in first.model.state_dict().items()}
    )
    opt2 = RMSprop(resumed.params, **kw)
    opt2.load_state_dict(state)
    for a, b in zip(resumed.run(opt2, steps=20), traj_full[20:], strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_rmsprop_float32_stays_float32(backend):
    q = Quadratic(backend, dtype="float32")
    opt = RMSprop(q.params, lr=0.01, momentum=0.5, centered=True, weight_decay=0.1)
    q.run(opt, steps=3)
    arrays = [v for v in opt.state_dict().values() if hasattr(v, "shape")]
    assert arrays and all(dtype_name(a) == "float32" for a in arrays)
    assert all(dtype_name(p.data) == "float32" for p in q.params)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(lr=-1.0), r"lr: expected a finite number >= 0, got -1\.0"),
        (dict(alpha=1.5), r"alpha: expected a value in \[0, 1\], got 1\.5"),
        (dict(eps=-1e-8), r"eps: expected a value >= 0"),
        (dict(momentum=-0.1), r"momentum: expected a value >= 0"),
        (dict(weight_decay=-0.1), r"weight_decay: expected a value >= 0"),
    ],
)
def test_rmsprop_bad_hyperparameters(kw, match):
    with pytest.raises(ValueError, match=match):
        RMSprop(Linear(2, 2, rng=0).parameters(), **kw)


# ----------------------------------------------------------------------------------------------
# Per-parameter step counts
# ----------------------------------------------------------------------------------------------
FROZEN_STEPS = 7  # the second layer is frozen for the first steps, then trained


def _two_layers(backend):
    return Sequential(
        Linear(3, 2, dtype="float64", device=backend, rng=1),
        Linear(2, 2, dtype="float64", device=backend, rng=2),
    )


def _grad_host(i, p):
    """A fixed smooth gradient per parameter: that of 1/2 ||p - i||^2 * (1 + i)."""
    return (1.0 + i) * (p - 0.1 * i)


def _run_ours(model, opt, steps):
    params = model.parameters()
    traj = []
    for t in range(steps):
        model[1].requires_grad_(t >= FROZEN_STEPS)
        for i, p in enumerate(params):
            p.grad[...] = _backend_grad(i, p)
        opt.step()
        traj.append([host(p.data).copy() for p in params])
    return traj


def _backend_grad(i, p):
    return (1.0 + i) * (p.data - 0.1 * i)


def _run_torch(torch, model_host, cls, kw, steps):
    tparams = [torch.tensor(p, requires_grad=True) for p in model_host]
    opt = getattr(torch.optim, cls)(tparams, **kw)
    traj = []
    for t in range(steps):
        for i, p in enumerate(tparams):
            frozen = i >= 2 and t < FROZEN_STEPS  # parameters 2, 3: the second layer
            p.grad = None if frozen else torch.tensor(_grad_host(i, p.detach().numpy()))
        opt.step()
        traj.append([p.detach().numpy().copy() for p in tparams])
    return traj


def _adam_reference(p0, steps, lr, betas, eps=1e-8):
    """Adam with a step count per parameter, advanced only when the parameter is updated."""
    b1, b2 = betas
    ps = [p.copy() for p in p0]
    m = [np.zeros_like(p) for p in ps]
    v = [np.zeros_like(p) for p in ps]
    t = [0] * len(ps)
    traj = []
    for s in range(steps):
        for i, p in enumerate(ps):
            if i >= 2 and s < FROZEN_STEPS:
                continue
            t[i] += 1
            g = _grad_host(i, p)
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g**2
            m_hat, v_hat = m[i] / (1 - b1 ** t[i]), v[i] / (1 - b2 ** t[i])
            ps[i] = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        traj.append([p.copy() for p in ps])
    return traj


def test_adam_keeps_a_step_count_per_parameter(backend):
    model = _two_layers(backend)
    p0 = [host(p.data).copy() for p in model.parameters()]
    opt = Adam(model.parameters(), lr=0.05, betas=(0.5, 0.9))
    traj = _run_ours(model, opt, 20)
    assert opt.step_count == 20 and opt.param_steps == [
        20,
        20,
        20 - FROZEN_STEPS,
        20 - FROZEN_STEPS,
    ]
    assert max_deviation(traj, _adam_reference(p0, 20, 0.05, (0.5, 0.9))) < TRAJ_TOL


@pytest.mark.parametrize(
    "cls,kw",
    [
        ("Adam", dict(lr=0.05, betas=(0.5, 0.9))),
        ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.2)),
        ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ],
)
def test_frozen_then_unfrozen_matches_torch(backend, record_figure, cls, kw):
    torch = require_torch()
    model = _two_layers(backend)
    p0 = [host(p.data).copy() for p in model.parameters()]
    ours = _run_ours(
        model, {"Adam": Adam, "SGD": SGD, "RMSprop": RMSprop}[cls](model.parameters(), **kw), 20
    )
    dev = max_deviation(ours, _run_torch(torch, p0, cls, kw, 20))
    record_figure(
        "optimizer trajectory max |minigan - torch.optim| (frozen 7 of 20 steps)", cls, dev
    )
    assert dev < TRAJ_TOL


def test_old_state_with_one_step_count_loads_for_every_parameter(backend):
    model = _two_layers(backend)
    opt = Adam(model.parameters(), lr=0.05)
    for i, p in enumerate(model.parameters()):
        p.grad[...] = _backend_grad(i, p)
    opt.step()
    opt.step()
    state = {k: v for k, v in opt.state_dict().items() if not k.startswith("step.")}
    assert state["step"] == 2
    fresh = Adam(_two_layers(backend).parameters(), lr=0.05)
    fresh.load_state_dict(state)
    assert fresh.step_count == 2 and fresh.param_steps == [2, 2, 2, 2]
    new = dict(opt.state_dict(), **{"step.3": 1})
    fresh.load_state_dict(new)
    assert fresh.param_steps == [2, 2, 2, 1]


def test_optimizer_registry_names_the_classes():
    assert OPTIMIZERS == {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}
    params = Linear(2, 2, rng=0).parameters()
    assert isinstance(OPTIMIZERS["rmsprop"](params, lr=5e-5), RMSprop)
