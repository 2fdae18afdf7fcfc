"""Every objective on lesson 8's ring of 8 Gaussians, with its preset's settings.

Each objective trains the ``ring`` preset's small MLPs (8-64-64-2 / 2-64-64-1, batch 128) with
the optimizer and objective settings of the preset named in :data:`SETTINGS` (``wgan``: RMSprop
5e-5, clipping 0.01, n_critic 5; ``wgan-gp``: Adam 1e-4 betas (0.0, 0.9), lambda 10, n_critic 5;
...) for the same number of **G** updates, then reports the modes covered of 8
(:func:`minigan.metrics.modes_covered`: >= 20% of a mode's fair share within 4 std) and the
fraction of samples near a mode. Writes ``results/ring_objectives.{json,md}``.

    OPENBLAS_NUM_THREADS=1 python benchmarks/ring_objectives.py [--g-steps 3000] [--seeds 0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from minigan.data import ring_centers, sample_ring
from minigan.gan import build_gan
from minigan.metrics import modes_covered
from minigan.presets import get_preset

#: objective -> (the preset whose optimizer and objective settings it trains with, overrides)
SETTINGS: dict[str, tuple[str, dict]] = {
    "non_saturating": ("default", {}),
    "minimax": ("default", {"objective": "minimax"}),
    "lsgan": ("lsgan", {}),
    "wgan": ("wgan", {}),
    "wgan_gp": ("wgan-gp", {}),
    "hinge": ("default", {"objective": "hinge"}),
}
STD = 0.03


def ring_gan(objective: str, seed: int = 0, lr: float | None = None):
    """The ``ring`` preset's models with ``objective``'s preset optimizer and objective
    (``lr``: another learning rate for both players, e.g. the ring preset's 1e-3)."""
    name, extra = SETTINGS[objective]
    p = get_preset(name)
    fields = {
        "optimizer": p.optimizer,
        "optimizer_args": p.optimizer_args,
        "d_optimizer_args": p.d_optimizer_args,
        "objective": p.objective,
        "objective_args": p.objective_args,
        **extra,
    }
    if "objective" in extra:  # another game on the same optimizer: its own default settings
        fields["objective_args"] = {}
    if lr is not None:
        fields["optimizer_args"] = {**fields["optimizer_args"], "lr": lr}
    return build_gan("ring", data_dim=2, seed=seed, **fields)


def train_ring(objective: str, g_steps: int, seed: int = 0, lr: float | None = None) -> dict:
    """Train for ``g_steps`` G updates (n_critic D updates each); modes covered of 8."""
    gan = ring_gan(objective, seed, lr)
    rng = np.random.default_rng([seed, 1])
    batch = gan.preset.batch_size
    d_steps = g_steps * gan.objective.n_critic
    t0 = time.perf_counter()
    for _ in range(d_steps):
        gan.train_step(gan.backend.asarray(sample_ring(batch, rng, std=STD)))
    seconds = time.perf_counter() - t0
    x = np.asarray(gan.sample(2000, z=np.random.default_rng([seed, 2]).standard_normal(
        (2000, gan.latent_dim), dtype=np.float32)))  # fmt: skip
    covered, near = modes_covered(x, ring_centers(), STD)
    return {"objective": objective, "seed": seed, "lr": gan.preset.lr, "g_steps": g_steps,
            "d_steps": d_steps,
            "modes": covered, "near": near, "seconds": seconds}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--g-steps", type=int, default=3000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--objectives", nargs="+", default=list(SETTINGS))
    ap.add_argument("--lr", type=float, default=None, help="one lr for all (default: presets')")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ring_objectives"))
    args = ap.parse_args()
    rows = []
    for obj in args.objectives:
        for seed in args.seeds:
            row = train_ring(obj, args.g_steps, seed, args.lr)
            rows.append(row)
            took = f"lr {row['lr']:g}, {row['d_steps']} D steps in {row['seconds']:.0f} s"
            print(f"{obj:<15} seed {seed}: {row['modes']}/8 modes, {row['near']:.2f} near, {took}",
                  flush=True)  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    lines = ["| objective | preset settings | lr | seed | G steps | D steps | modes of 8 | near |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        cells = (r["objective"], SETTINGS[r["objective"]][0], r["lr"], r["seed"], r["g_steps"])
        cells += (r["d_steps"], r["modes"], f"{r['near']:.2f}")
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
