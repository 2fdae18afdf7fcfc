"""Time WGAN-GP's gradient penalty against a plain forward + backward of the same critic.

The critic is the ``"classic"`` preset's plain MLP discriminator (784-1024-512-256-1,
LeakyReLU(0.2), no dropout, float32; the ``wgan-gp`` preset's critic), batch 64. Three
contenders, interleaved round by round so that machine noise hits each alike:

* ``d_fwd_bwd``  -- ``D.forward(x)`` + ``D.backward(dout, input_grad=False)``: the work of one
  critic loss term;
* ``penalty``    -- ``gradient_penalty(D, x)``: forward, input backward, tangent pass and the
  double backward into D's weights;
* ``wgan_gp_cycle`` -- one n_critic cycle of the ``wgan-gp`` preset's ``GAN.train_step``
  (5 critic updates, each with its penalty, and 1 generator update) on the same batch; the
  summary prints the step time (cycle / 5) and the share of it spent in the penalty;
* ``torch_gp``   -- the same penalty with ``torch.autograd.grad(..., create_graph=True)`` and
  ``backward`` on PyTorch's CPU build (when importable), for scale.

Prints ms per call (median, p25-p75) and the ratio to ``d_fwd_bwd``; writes
``benchmarks/results/penalty_<device>.{json,md}``. Nothing here is a test; timing is never
asserted. Run with the BLAS defaults (``unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE`` in the command
that starts it); the BLAS kernel is printed via threadpoolctl.

Usage::

    python benchmarks/bench_penalty.py [--batch 64] [--rounds 30] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from minigan.backend import resolve_device
from minigan.gan import build_gan, mlp_discriminator
from minigan.objectives import gradient_penalty

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def blas_info() -> list | str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    keys = ("internal_api", "num_threads", "version", "architecture")
    return [{k: d.get(k) for k in keys} for d in threadpool_info()]


def torch_penalty(torch, D, x_host):
    """A PyTorch copy of D and a closure-free callable running its penalty once."""
    layers = []
    for m in D.layers:
        if hasattr(m, "weight"):
            lin = torch.nn.Linear(m.in_features, m.out_features)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.asarray(m.weight)))
                lin.bias.copy_(torch.from_numpy(np.asarray(m.bias)))
            layers.append(lin)
        else:
            layers.append(torch.nn.LeakyReLU(m.negative_slope))
    return torch.nn.Sequential(*layers), torch.from_numpy(x_host)


def run_torch_gp(torch, net, x):
    net.zero_grad()
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net(xr).sum(), xr, create_graph=True)
    p = 10.0 * ((torch.sqrt((g * g).sum(dim=1) + 1e-12) - 1) ** 2).mean()
    p.backward()


def sync(x):
    """Wait for the device (CuPy) before reading the clock."""
    if hasattr(x, "device") and "cupy" in type(x).__module__:
        import cupy

        cupy.cuda.Device().synchronize()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="limit BLAS (and torch) threads")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    backend = resolve_device(args.device)
    rng = np.random.default_rng(0)
    D = mlp_discriminator(device=backend, rng=1)
    x_host = rng.uniform(-1, 1, (args.batch, 784)).astype(np.float32)
    x = backend.asarray(x_host, "float32")
    dout = backend.asarray(rng.standard_normal((args.batch, 1)) / args.batch, "float32")

    def d_fwd_bwd():
        D.forward(x)
        D.backward(dout, input_grad=False)
        sync(D[0].grads["weight"])

    def penalty():
        gradient_penalty(D, x)
        sync(D[0].grads["weight"])

    gan = build_gan("wgan-gp", device=backend, seed=1)
    n_critic = gan.objective.n_critic

    def wgan_gp_cycle():
        for _ in range(n_critic):
            out = gan.train_step(x)
        sync(out["d_loss"])

    contenders = {"d_fwd_bwd": d_fwd_bwd, "penalty": penalty, "wgan_gp_cycle": wgan_gp_cycle}
    torch = None
    if not args.no_torch and args.device == "cpu":
        try:
            import torch
        except ImportError:
            torch = None
    if torch is not None:
        if args.threads:
            torch.set_num_threads(args.threads)
        net, xt = torch_penalty(torch, D, x_host)
        contenders["torch_gp"] = lambda: run_torch_gp(torch, net, xt)
    times = {k: [] for k in contenders}
    for _ in range(3):  # warm-up
        for f in contenders.values():
            f()
    for _ in range(args.rounds):
        for k, f in contenders.items():
            t0 = time.perf_counter()
            f()
            times[k].append(1e3 * (time.perf_counter() - t0))
    base = statistics.median(times["d_fwd_bwd"])
    rows = {}
    for k, ts in times.items():
        q = statistics.quantiles(ts, n=4)
        rows[k] = {"median_ms": statistics.median(ts), "p25_ms": q[0], "p75_ms": q[2]}
        rows[k]["ratio_to_d_fwd_bwd"] = rows[k]["median_ms"] / base
    result = {"batch": args.batch, "device": args.device, "rounds": args.rounds, "rows": rows}
    result["blas"] = blas_info()
    result["threads"] = args.threads
    print(f"critic 784-1024-512-256-1 LeakyReLU(0.2), float32, batch {args.batch}, {args.device}")
    print(f"BLAS: {result['blas']}")
    print(f"{'contender':<12} {'ms (median)':>12} {'p25-p75':>16} {'x d_fwd_bwd':>12}")
    lines = ["| contender | ms (median) | p25-p75 | x d_fwd_bwd |", "|---|---|---|---|"]
    for k, r in rows.items():
        rng_s = f"{r['p25_ms']:.2f}-{r['p75_ms']:.2f}"
        print(f"{k:<12} {r['median_ms']:>12.2f} {rng_s:>16} {r['ratio_to_d_fwd_bwd']:>12.2f}")
        lines.append(f"| {k} | {r['median_ms']:.2f} | {rng_s} | {r['ratio_to_d_fwd_bwd']:.2f} |")
    step = rows["wgan_gp_cycle"]["median_ms"] / n_critic
    share = rows["penalty"]["median_ms"] / step
    result["wgan_gp_step_ms"], result["penalty_share_of_step"] = step, share
    print(
        f"wgan-gp train_step (mean over a cycle of {n_critic}): {step:.2f} ms, penalty {share:.0%}"
    )
    what = f"MLP, batch {args.batch}, mean over an n_critic={n_critic} cycle"
    lines.append(
        f"\nwgan-gp `train_step` ({what}): {step:.2f} ms; the penalty is {share:.0%} of it."
    )
    RESULTS_DIR.mkdir(exist_ok=True)
    stem = RESULTS_DIR / f"penalty_{args.device}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return result


if __name__ == "__main__":
    main()
