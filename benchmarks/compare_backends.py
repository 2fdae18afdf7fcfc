"""The first training steps of one seed on two backends, loss by loss.

Builds the same GAN (``build_gan(preset, seed=...)``, float32) on backend A and backend B, feeds
both the same real batches (real MNIST when a data folder is given, else uniform noise in
[-1, 1] from the seed) and records, after every ``GAN.train_step``, the four numbers it returns
(``d_loss``, ``g_loss``, ``d_real``, ``d_fake``). A third run, NumPy in float64, is the reference
that says how large float32 rounding is here (it draws its noise in float32 and upcasts it,
so the three runs see the same numbers; ``GAN.sample_noise`` alone would draw other float64
numbers). Adam amplifies rounding: its first steps move every weight by about ``lr`` whatever
the gradient's size, so a gradient near 0 whose sign rounding flips moves its weight the other
way, and after 20 steps two correct float32 runs differ by about 1e-3 (MNIST, batch 64).
Hence two pass marks:

* the first ``--exact-steps`` steps (default 3) agree within the project's float32 tolerance
  (``rtol=1e-4, atol=1e-5``, STYLE guide): a wrong op shows here at once;
* over all steps, the largest difference between A and B is at most ``--drift-factor``
  (default 3) times the largest difference between A and the float64 run: B strays from A no
  more than float32 rounding makes A stray from the exact numbers.

Backends: ``cpu`` (NumPy), ``gpu`` (CuPy), ``strict`` (array-api-strict on ``"device1"``, the
CPU stand-in for a GPU). Nothing here is timed; the per-step host copies are deliberate.

Usage::

    python benchmarks/compare_backends.py --a cpu --b gpu          # on a GPU machine
    python benchmarks/compare_backends.py --a cpu --b strict       # anywhere
    python benchmarks/compare_backends.py --data-dir DIR --out compare.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from minigan.backend import to_numpy
from minigan.gan import build_gan

METRICS = ("d_loss", "g_loss", "d_real", "d_fake")
RTOL, ATOL = 1e-4, 1e-5  # float32 against a reference (STYLE.md, "Tests")


def device_of_name(name: str):
    """``"cpu"``/``"gpu"`` as they are; ``"strict"`` -> ``array_api_strict.Device("device1")``."""
    if name == "strict":
        import array_api_strict

        return array_api_strict.Device("device1")
    if name in ("cpu", "gpu"):
        return name
    raise ValueError(f"backend: expected one of cpu, gpu, strict, got {name!r}")


def real_batches(steps: int, batch: int, seed: int, data_dir) -> tuple[np.ndarray, str]:
    """``(steps, batch, 784)`` float64 host batches in [-1, 1] and where they came from."""
    if data_dir:
        from minigan.data import load_mnist, preprocess

        images, _ = load_mnist("train", root=data_dir, download=False)
        x = preprocess(images[: steps * batch]).astype(np.float64)
        return x.reshape(steps, batch, -1), f"MNIST train images 0..{steps * batch - 1}"
    rng = np.random.default_rng([seed, 7])
    return rng.uniform(-1, 1, (steps, batch, 784)), "uniform(-1, 1) noise"


class Float32Noise:
    """``gan.sample_noise`` for the float64 reference: the float32 draw, upcast on the host."""

    def __init__(self, gan):
        self.gan = gan

    def __call__(self, n: int):
        z = self.gan.rng.standard_normal((n, self.gan.latent_dim), dtype=np.float32)
        return self.gan.backend.asarray(z.astype(np.float64), dtype="float64")


def run_steps(device, batches: np.ndarray, preset: str, seed: int, dtype: str) -> dict:
    """Train ``len(batches)`` steps; return per-step metrics and the final weights (host)."""
    gan = build_gan(preset, device=device, seed=seed, dtype=dtype)
    if dtype == "float64":
        gan.sample_noise = Float32Noise(gan)  # the float32 runs' noise (see the module doc)
    rows = []
    for host in batches:
        out = gan.train_step(gan.backend.asarray(host, dtype=dtype))
        rows.append({k: float(to_numpy(out[k])) for k in METRICS})
    weights = {
        k: to_numpy(v).astype(np.float64)
        for k, v in gan.state_dict().items()
        if k.startswith(("generator.", "discriminator."))
    }
    return {"rows": rows, "weights": weights}


def diffs(a: dict, b: dict, exact_steps: int) -> dict:
    """Max abs / rel difference of every metric over the steps and of the final weights, and
    whether the first ``exact_steps`` steps agree within ``RTOL``/``ATOL``."""
    out: dict = {}
    exact = True
    for k in METRICS:
        x = np.array([r[k] for r in a["rows"]])
        y = np.array([r[k] for r in b["rows"]])
        abs_d = np.abs(x - y)
        out[k] = {
            "max_abs": float(abs_d.max()),
            "max_rel": float((abs_d / np.maximum(np.abs(y), 1e-12)).max()),
            "first_steps_max_abs": float(abs_d[:exact_steps].max()),
        }
        exact &= bool(np.all(abs_d[:exact_steps] <= ATOL + RTOL * np.abs(y[:exact_steps])))
    out["weights_max_abs"] = max(
        float(np.max(np.abs(wa - b["weights"][k]))) for k, wa in a["weights"].items()
    )
    out["first_steps_within_tolerance"] = exact
    out["max_abs"] = max(out[k]["max_abs"] for k in METRICS)
    out["max_rel"] = max(out[k]["max_rel"] for k in METRICS)
    return out


def compare(a: str, b: str, args) -> dict:
    """Run A and B in float32 and NumPy in float64; the result document (JSON-able)."""
    steps, batch, seed, preset, k = args.steps, args.batch, args.seed, args.preset, args.exact_steps
    batches, source = real_batches(steps, batch, seed, args.data_dir)
    run_a = run_steps(device_of_name(a), batches, preset, seed, "float32")
    run_b = run_steps(device_of_name(b), batches, preset, seed, "float32")
    ref = run_steps("cpu", batches, preset, seed, "float64")
    ab, a64, b64 = diffs(run_a, run_b, k), diffs(run_a, ref, k), diffs(run_b, ref, k)
    drift_ok = ab["max_abs"] <= args.drift_factor * a64["max_abs"] + ATOL
    return {
        "a": a,
        "b": b,
        "preset": preset,
        "seed": seed,
        "steps": steps,
        "batch": batch,
        "data": source,
        "tolerance": {
            "rtol": RTOL,
            "atol": ATOL,
            "exact_steps": k,
            "drift_factor": args.drift_factor,
        },
        "a_vs_b": ab,
        "a_vs_float64": {q: a64[q] for q in ("max_abs", "max_rel", "weights_max_abs")},
        "b_vs_float64": {q: b64[q] for q in ("max_abs", "max_rel", "weights_max_abs")},
        "first_steps_passed": ab["first_steps_within_tolerance"],
        "drift_passed": bool(drift_ok),
        "passed": bool(ab["first_steps_within_tolerance"] and drift_ok),
        "rows": [
            {"step": i + 1, a: ra, b: rb, "float64": rr}
            for i, (ra, rb, rr) in enumerate(
                zip(run_a["rows"], run_b["rows"], ref["rows"], strict=True)
            )
        ],
    }


def summary(res: dict) -> str:
    a, b, ab = res["a"], res["b"], res["a_vs_b"]
    lines = [
        f"{a} vs {b}, preset {res['preset']}, seed {res['seed']}, {res['steps']} steps of "
        f"batch {res['batch']} ({res['data']}), float32:",
        f"{'metric':<8} {'max abs':>10} {'max rel':>10} {'first steps':>12}",
    ]
    lines += [
        f"{k:<8} {ab[k]['max_abs']:10.2e} {ab[k]['max_rel']:10.2e} "
        f"{ab[k]['first_steps_max_abs']:12.2e}"
        for k in METRICS
    ]
    tol = res["tolerance"]
    lines += [
        f"final weights: max abs diff {ab['weights_max_abs']:.2e}",
        f"float32 rounding scale (vs NumPy float64, same noise): {a} "
        f"{res['a_vs_float64']['max_abs']:.2e}, {b} {res['b_vs_float64']['max_abs']:.2e}",
        f"{'PASS' if res['first_steps_passed'] else 'FAIL'}: first {tol['exact_steps']} steps "
        f"within rtol {RTOL:g}, atol {ATOL:g}",
        f"{'PASS' if res['drift_passed'] else 'FAIL'}: {a} vs {b} drift <= "
        f"{tol['drift_factor']:g} x {a}'s drift from float64",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", default="cpu", help="backend A: cpu, gpu or strict (default cpu)")
    ap.add_argument("--b", default="gpu", help="backend B: cpu, gpu or strict (default gpu)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--data-dir", default=os.environ.get("MINIGAN_DATA_DIR"))
    ap.add_argument("--exact-steps", type=int, default=3, help="steps held to rtol/atol")
    ap.add_argument("--drift-factor", type=float, default=3.0)
    ap.add_argument("--out", type=Path, help="write the result as JSON here")
    args = ap.parse_args(argv)
    if min(args.steps, args.batch, args.exact_steps) < 1:
        ap.error(
            f"--steps, --batch, --exact-steps: expected >= 1, got {args.steps}, {args.batch}, "
            f"{args.exact_steps}"
        )
    res = compare(args.a, args.b, args)
    print(summary(res))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0 if res["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
